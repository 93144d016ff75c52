// The weight cache must not change what is written: models built with and without it are identical, and a
// later build hits the cache for every weight.
#include <gtest/gtest.h>

#include "data/dataset.h"
#include "onnx/model_io.h"
#include "quant/quantizer.h"

using namespace oq;

static bool same_initializers(const ir::Graph& a, const ir::Graph& b) {
  if (a.initializers.size() != b.initializers.size()) return false;
  for (const auto& i : a.initializers) {
    const auto* j = b.find_initializer(i.name);
    if (!j || !i.tensor.equals(j->tensor)) return false;
  }
  return true;
}

TEST(WeightCache, SameModelsAsWithoutCache) {
  ir::Model m = onnx::load_model(std::string(OQ_SOURCE_DIR) + "/testdata/digits_mlp.onnx");
  quant::QuantOptions o;
  auto ds = data::make_random_dataset(data::input_specs(m.graph), 4, 1);
  quant::CalibrationRequest req;
  auto cal = quant::calibrate(m, o, ds, req);
  quant::WeightCache cache;
  // digits_mlp: 3 MatMul weights (weight type) and 3 Add constants (quantized as activations, Int8).
  std::vector<size_t> sizes;
  for (DType t : {DType::Int8, DType::Int4, DType::Int8}) {
    o.weight_type = t;
    auto plain = quant::build_qdq(m, o, cal);
    auto cached = quant::build_qdq(m, o, cal, {}, &cache);
    EXPECT_TRUE(same_initializers(plain.model.graph, cached.model.graph)) << dtype_name(t);
    sizes.push_back(cache.size());
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{6, 9, 9}));  // the second Int8 round only reused entries
}
