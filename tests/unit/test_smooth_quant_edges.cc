// SmoothQuant on data holding non-finite values: max|X_j| leaves them out, as the calibrator's ranges do; a channel
// with no finite value keeps s = 1 (hand-computed maxima; the smoothed model checked with the executor). The
// end-to-end cases (ORT): tests/python/test_smooth_quant_edges.py.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "data/dataset.h"
#include "quant/smooth_quant.h"
#include "quality_test_util.h"

using namespace oq;
using namespace oq::testq;

namespace {

// Fixed samples of input "x" (batch dim 1 each), no labels.
class ArrayDataset : public data::Dataset {
 public:
  explicit ArrayDataset(std::vector<Tensor> rows) : rows_(std::move(rows)) {}
  int64_t size() const override { return static_cast<int64_t>(rows_.size()); }
  bool has_labels() const override { return false; }
  data::Sample sample(int64_t i) const override { return {{"x", rows_[static_cast<size_t>(i)]}}; }
  int64_t label(int64_t) const override { return 0; }
  std::string sample_name(int64_t i) const override { return "row " + std::to_string(i); }
  std::string describe() const override { return "test rows"; }

 private:
  std::vector<Tensor> rows_;
};

}  // namespace

// x[N, 4] -> MatMul(W[4, 3]) -> y. Channel 1 holds one +inf and one NaN among finite values, channel 2 is +inf on
// every sample: max|x_1| is the finite maximum, channel 2 has no finite value (absmax 0, s = 1: W's row 2 is kept).
TEST(SmoothQuant, NonFiniteValuesLeftOut) {
  ir::Model m = base_model();
  Tensor w = rnd({4, 3}, 21);
  m.graph.add_initializer("W", w);
  m.graph.inputs = {vi("x", {-1, 4})};
  m.graph.outputs = {vi("y", {-1, 3})};
  m.graph.nodes.push_back(mk("MatMul", {"x", "W"}, {"y"}));
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<Tensor> rows;
  std::vector<double> want(4, 0.0);
  for (int i = 0; i < 6; ++i) {
    Tensor r(DType::Float, {1, 4});
    for (int j = 0; j < 4; ++j) r.data<float>()[j] = static_cast<float>((j + 1) * (i % 2 ? -1 : 1) * (0.5 + 0.1 * i));
    r.data<float>()[2] = inf;
    if (i == 1) r.data<float>()[1] = inf;
    if (i == 4) r.data<float>()[1] = nan;
    for (int j = 0; j < 4; ++j)
      if (std::isfinite(r.data<float>()[j])) want[j] = std::max(want[j], std::fabs(static_cast<double>(r.data<float>()[j])));
    rows.push_back(r);
  }
  auto data = std::make_shared<ArrayDataset>(rows);
  const auto targets = quant::smooth_targets(m.graph);
  auto st = quant::measure_channel_absmax(m, targets, data, 2);
  ASSERT_EQ(st.absmax.at("x").size(), 4u);
  for (int j = 0; j < 4; ++j) EXPECT_FLOAT_EQ(st.absmax.at("x")[j], static_cast<float>(want[j])) << "channel " << j;
  EXPECT_EQ(st.absmax.at("x")[2], 0.f);
  EXPECT_EQ(st.nonfinite.at("x"), 6 + 2);
  EXPECT_EQ(st.channels_without_finite.at("x"), 1);

  ir::Model sm = m;
  auto rep = quant::smooth_quant(sm, st, {0.5, true});
  EXPECT_EQ(rep.targets, 1);
  EXPECT_EQ(rep.neutral_channels, 1);
  const Tensor& ws = sm.graph.find_initializer("W")->tensor;
  for (int j = 0; j < 4; ++j) {
    double wmax = 0;
    for (int k = 0; k < 3; ++k) wmax = std::max(wmax, std::fabs(static_cast<double>(w.data<float>()[j * 3 + k])));
    const double s = j == 2 ? 1.0 : std::sqrt(want[j]) / std::sqrt(wmax);
    for (int k = 0; k < 3; ++k) {
      ASSERT_TRUE(std::isfinite(ws.data<float>()[j * 3 + k]));
      EXPECT_NEAR(ws.data<float>()[j * 3 + k], w.data<float>()[j * 3 + k] * s, 1e-5 * std::fabs(w.data<float>()[j * 3 + k] * s));
    }
  }
  Tensor x = rnd({5, 4}, 22);
  EXPECT_LE(max_rel(run(m, x), run(sm, x)), 1e-5);
}
