// The annotator's registration rules for tensors several nodes read (ORT's tensors_to_quantize / bias_to_quantize,
// checked against quantize_static in tests/python/test_shared_tensors.py) and the weight-scale enlargement for int32
// biases (hand computations: ORT's bound 1.0001 x 2|b| / (2^32 - 2)).
#include <gtest/gtest.h>

#include <cmath>

#include "passes_test_util.h"
#include "quant/annotate.h"
#include "quant/params.h"

using namespace oq;
using namespace oq::test_passes;
namespace Q = oq::quant;

namespace {

// Every tensor float; each activation's range [-1, 1].
Q::QuantPlan plan_of(ir::Model& m, const Q::QuantOptions& o, Q::RangeMap* ranges = nullptr) {
  Q::TypeMap types;
  Q::RangeMap r;
  for (const auto& n : m.graph.nodes)
    for (const auto* l : {&n.inputs, &n.outputs})
      for (const auto& t : *l) {
        types[t] = DType::Float;
        if (!m.graph.find_initializer(t)) r[t] = Q::Range{-1.0, 1.0};
      }
  for (const auto& i : m.graph.inputs) types[i.name] = DType::Float, r[i.name] = Q::Range{-1.0, 1.0};
  if (ranges) *ranges = r;
  return Q::annotate(m.graph, 13, o, types, r);
}

const double kQRange = 2147483647.0 - (-2147483647.0);

}  // namespace

TEST(AnnotateShared, LastPerChannelReaderWins) {
  for (bool gemm_last : {true, false}) {
    ir::Model m = model(13);
    auto& g = m.graph;
    g.inputs = {vi("x", {1, 4})};
    g.add_initializer("W", rnd({4, 4}, 1));
    ir::Node mm = mk("MatMul", {"x", "W"}, {"m"}, "mm");
    ir::Node gemm = mk("Gemm", {"x", "W"}, {"g"}, "gemm");
    gemm.set_attr_int("transB", 1);
    g.nodes = gemm_last ? std::vector<ir::Node>{mm, gemm} : std::vector<ir::Node>{gemm, mm};
    g.outputs = {vi_any("m"), vi_any("g")};
    Q::QuantOptions o;
    Q::QuantPlan p = plan_of(m, o);
    EXPECT_EQ(p.tensors.at("W").axis, gemm_last ? 0 : 1);  // Gemm transB=1: axis 0; MatMul: axis 1
    o.per_channel = false;  // per tensor: one registration, the first
    ir::Model m2 = m;
    EXPECT_EQ(plan_of(m2, o).tensors.at("W").axis, -1);
  }
  // An Add (an activation-type constant, per tensor) then a MatMul: the MatMul's per-channel weight, in the Add's
  // place in the marking order.
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 4})};
  g.add_initializer("W", rnd({4, 4}, 2));
  g.nodes = {mk("Add", {"x", "W"}, {"a"}, "add"), mk("MatMul", {"a", "W"}, {"y"}, "mm")};
  g.outputs = {vi_any("y")};
  Q::QuantPlan p = plan_of(m, Q::QuantOptions{});
  const Q::TensorSpec& w = p.tensors.at("W");
  EXPECT_EQ(w.role, Q::TensorRole::Weight);
  EXPECT_TRUE(w.weight_type);
  EXPECT_EQ(w.axis, 1);
  EXPECT_EQ(p.marked_order, (std::vector<std::string>{"x", "W", "a", "y"}));
}

TEST(AnnotateShared, BiasAlsoAnOrdinaryInputIsAConstant) {
  for (bool conv_first : {true, false}) {
    ir::Model m = model(13);
    auto& g = m.graph;
    g.inputs = {vi("x", {1, 2, 3, 2})};
    g.add_initializer("W", rnd({2, 2, 1, 1}, 3));
    g.add_initializer("b", rnd({2}, 4));
    ir::Node conv = mk("Conv", {"x", "W", "b"}, {"c"}, "conv");
    ir::Node add = mk("Add", {"c", "b"}, {"y"}, "add");
    if (!conv_first) add = mk("Add", {"x", "b"}, {"a"}, "add"), conv = mk("Conv", {"a", "W", "b"}, {"y"}, "conv");
    g.nodes = conv_first ? std::vector<ir::Node>{conv, add} : std::vector<ir::Node>{add, conv};
    g.outputs = {vi_any("y")};
    Q::QuantPlan p = plan_of(m, Q::QuantOptions{});
    EXPECT_EQ(p.tensors.at("b").role, Q::TensorRole::Activation) << conv_first;
    EXPECT_FALSE(p.tensors.at("b").weight_type);
    EXPECT_EQ(p.bias_order, std::vector<std::string>{"b"});
    ASSERT_TRUE(p.shadowed_biases.count("b"));
    EXPECT_EQ(p.shadowed_biases.at("b").bias_weight, "W");
    EXPECT_TRUE(p.duplicated.empty());
  }
}

TEST(AnnotateShared, GemmBetaKeptWhenItsBiasIsAConstant) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 4})};
  g.add_initializer("W", rnd({3, 4}, 5));
  g.add_initializer("C", rnd({3}, 6));
  ir::Node gemm = mk("Gemm", {"x", "W", "C"}, {"g"}, "gemm");
  gemm.set_attr_int("transB", 1);
  gemm.set_attr_float("beta", 2.f);
  g.nodes = {gemm, mk("Add", {"g", "C"}, {"y"}, "add")};
  g.outputs = {vi_any("y")};
  plan_of(m, Q::QuantOptions{});
  ASSERT_TRUE(g.nodes[0].has_attr("beta"));
  EXPECT_FLOAT_EQ(g.nodes[0].attr_float("beta", 0.f), 2.f);
  // Alone, the int32 bias takes beta into its values: the attribute goes.
  g.nodes.pop_back();
  g.nodes[0].outputs = {"y"};
  plan_of(m, Q::QuantOptions{});
  EXPECT_FALSE(g.nodes[0].has_attr("beta"));
}

// Conv 1x1 with two output channels, the second ~1e-30 (a dead channel), bias {0.5, 1}; input range [-1, 1] (Int8
// activations: scale 2/255). The second channel's weight scale is enlarged to 1.0001 x 2 x 1 / (2^32 - 2) / (2/255)
// (per channel: the bound in float32, as ORT's numpy scalars) for Int8 and, unlike ORT, for Int4 / UInt4.
TEST(AnnotateShared, FourBitWeightScaleEnlargedForTheBias) {
  for (DType wt : {DType::Int8, DType::Int4, DType::UInt4, DType::UInt8}) {
    ir::Model m = model(13);
    auto& g = m.graph;
    g.inputs = {vi("x", {1, 1, 2, 2})};
    g.add_initializer("W", f32({2, 1, 1, 1}, {0.7f, 3e-30f}));
    g.add_initializer("b", f32({2}, {0.5f, 1.f}));
    g.nodes = {mk("Conv", {"x", "W", "b"}, {"y"}, "conv")};
    g.outputs = {vi_any("y")};
    Q::QuantOptions o;
    o.weight_type = wt;
    Q::RangeMap ranges;
    Q::QuantPlan p = plan_of(m, o, &ranges);
    Q::ParamNotes notes;
    Q::ParamMap pm = Q::compute_params(g, p, o, ranges, &notes);
    const double in_scale = pm.at("x").scale[0];
    EXPECT_FLOAT_EQ(static_cast<float>(in_scale), 2.f / 255.f);
    const float bound = 1.0001f * 2.f;  // float32, as ORT computes it per channel
    const float want = static_cast<float>(static_cast<double>(bound) / kQRange / in_scale);
    const bool enlarged = wt != DType::UInt8;  // UInt8: zero point 128, ORT's rule leaves it (and onnxquant)
    EXPECT_EQ(notes.adjusted_weights.size(), enlarged ? 1u : 0u) << dtype_name(wt);
    if (enlarged) {
      EXPECT_FLOAT_EQ(pm.at("W").scale[1], want) << dtype_name(wt);
      const Tensor q = Q::quantize_bias(g.find_initializer("b")->tensor, pm.at("b"));
      EXPECT_NEAR(q.data<int32_t>()[1] * static_cast<double>(pm.at("b").scale[1]), 1.0, 1e-6) << dtype_name(wt);
    } else {
      EXPECT_LT(pm.at("W").scale[1], want * 1e-6);
    }
    // Channel 0 keeps its own scale: 0.7 / 127 (Int8), 0.7 / 7.5 (Int4: full range [-8, 7]), ...
    if (wt == DType::Int8) EXPECT_FLOAT_EQ(pm.at("W").scale[0], 0.7f / 127.f);
  }
}

// Two biases on one weight: the larger one's enlargement applies to both (ORT enlarges for every bias first).
TEST(AnnotateShared, WeightEnlargedForEveryBiasBeforeAnyIsQuantized) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 1, 2, 2})};
  g.add_initializer("W", f32({1, 1, 1, 1}, {1e-30f}));
  g.add_initializer("b1", f32({1}, {0.001f}));
  g.add_initializer("b2", f32({1}, {100.f}));
  g.nodes = {mk("Conv", {"x", "W", "b1"}, {"c1"}, "conv1"), mk("Conv", {"x", "W", "b2"}, {"c2"}, "conv2"),
             mk("Add", {"c1", "c2"}, {"y"}, "add")};
  g.outputs = {vi_any("y")};
  Q::QuantOptions o;
  o.per_channel = false;
  Q::RangeMap ranges;
  Q::QuantPlan p = plan_of(m, o, &ranges);
  Q::ParamMap pm = Q::compute_params(g, p, o, ranges);
  const double in_scale = pm.at("x").scale[0];
  const float w = static_cast<float>(1.0001 * 2 * 100.0 / kQRange / in_scale);  // per tensor: float64 bound
  EXPECT_FLOAT_EQ(pm.at("W").scale[0], w);
  for (const char* b : {"b1", "b2"}) EXPECT_FLOAT_EQ(pm.at(b).scale[0], static_cast<float>(in_scale) * w) << b;
}
