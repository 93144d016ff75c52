// Cross-layer equalization and bias correction (issue 8) on hand-built IR models: the equalized float model
// computes the same outputs, the per-channel ranges of each pair end up equal (hand-computed on a tiny model);
// after bias correction the mean output error of every channel of every corrected layer vanishes on the
// calibration data (it is clearly non-zero before), for the weights' final parameters (Int4 per tensor,
// Int8 per channel, values returned by a weight quantizer).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>

#include "data/dataset.h"
#include "data/loader.h"
#include "exec/session.h"
#include "quant/bias_correction.h"
#include "quant/cross_layer_eq.h"
#include "quant/quantizer.h"
#include "quant/weight_quantizers.h"
#include "log_capture_test_util.h"
#include "quality_test_util.h"

using namespace oq;
using namespace oq::testq;

namespace {

ir::Node conv(const std::string& x, const std::string& w, const std::string& b, const std::string& y, int64_t group = 1,
              std::vector<int64_t> pads = {1, 1, 1, 1}, std::vector<int64_t> strides = {1, 1}) {
  auto n = mk("Conv", b.empty() ? std::vector<std::string>{x, w} : std::vector<std::string>{x, w, b}, {y});
  if (group != 1) n.set_attr_int("group", group);
  n.set_attr_ints("pads", std::move(pads));
  n.set_attr_ints("strides", std::move(strides));
  return n;
}

// x[N,3,9,9] -> Conv1 3->8 3x3 -> Relu -> depthwise Conv 8 3x3 s2 -> LeakyRelu -> Conv3 8->6 1x1 -> Relu
//   -> Conv4 6->4 3x3 group 2 (no bias) -> Clip(0, 6) -> Conv5 4->2 1x1 -> y
ir::Model cle_model() {
  ir::Model m = base_model();
  auto& g = m.graph;
  g.add_initializer("W1", rnd({8, 3, 3, 3}, 1, -1.f, 1.f, true));
  g.add_initializer("B1", rnd({8}, 2));
  g.add_initializer("Wd", rnd({8, 1, 3, 3}, 3, -1.f, 1.f, true));
  g.add_initializer("Bd", rnd({8}, 4));
  g.add_initializer("W3", rnd({6, 8, 1, 1}, 5, -1.f, 1.f, true));
  g.add_initializer("B3", rnd({6}, 6));
  g.add_initializer("W4", rnd({4, 3, 3, 3}, 7, -1.f, 1.f, true));
  g.add_initializer("W5", rnd({2, 4, 1, 1}, 8));
  Tensor lo(DType::Float, {}), hi(DType::Float, {});
  lo.data<float>()[0] = 0.f;
  hi.data<float>()[0] = 6.f;
  g.add_initializer("lo", lo);
  g.add_initializer("hi", hi);
  g.inputs = {vi("x", {-1, 3, 9, 9})};
  g.outputs = {vi("y", {-1, 2, 5, 5})};
  g.nodes.push_back(conv("x", "W1", "B1", "a"));
  g.nodes.push_back(mk("Relu", {"a"}, {"ar"}));
  g.nodes.push_back(conv("ar", "Wd", "Bd", "d", 8, {1, 1, 1, 1}, {2, 2}));
  auto lr = mk("LeakyRelu", {"d"}, {"dr"});
  lr.set_attr_float("alpha", 0.1f);
  g.nodes.push_back(lr);
  g.nodes.push_back(conv("dr", "W3", "B3", "c", 1, {0, 0, 0, 0}));
  g.nodes.push_back(mk("Relu", {"c"}, {"cr"}));
  g.nodes.push_back(conv("cr", "W4", "", "e", 2));
  g.nodes.push_back(mk("Clip", {"e", "lo", "hi"}, {"er"}));
  g.nodes.push_back(conv("er", "W5", "", "y", 1, {0, 0, 0, 0}));
  return m;
}

}  // namespace

TEST(CrossLayerEqualization, HandComputedPair) {
  // W1 = [2, 8] (two output channels of a 1x1 Conv), b1 = [1, -4], W2 = [1, 0.5]:
  // r1 = [2, 8], r2 = [1, 0.5], s = sqrt(r1·r2)/r2 = [√2, 4] -> W1 = [√2, 2], b1 = [1/√2, -1], W2 = [√2, 2].
  ir::Model m = base_model();
  Tensor w1(DType::Float, {2, 1, 1, 1}), b1(DType::Float, {2}), w2(DType::Float, {1, 2, 1, 1});
  w1.data<float>()[0] = 2.f, w1.data<float>()[1] = 8.f;
  b1.data<float>()[0] = 1.f, b1.data<float>()[1] = -4.f;
  w2.data<float>()[0] = 1.f, w2.data<float>()[1] = 0.5f;
  m.graph.add_initializer("W1", w1);
  m.graph.add_initializer("B1", b1);
  m.graph.add_initializer("W2", w2);
  m.graph.inputs = {vi("x", {-1, 1, 2, 2})};
  m.graph.outputs = {vi("y", {-1, 1, 2, 2})};
  m.graph.nodes.push_back(conv("x", "W1", "B1", "a", 1, {0, 0, 0, 0}));
  m.graph.nodes.push_back(mk("Relu", {"a"}, {"r"}));
  m.graph.nodes.push_back(conv("r", "W2", "", "y", 1, {0, 0, 0, 0}));
  ir::Model e = m;
  auto rep = quant::cross_layer_equalize(e);
  EXPECT_EQ(rep.pairs, 1);
  EXPECT_EQ(rep.sweeps, 2);  // the second sweep finds s = 1
  EXPECT_TRUE(rep.converged);
  const float r2 = std::sqrt(2.f);
  const float* a = e.graph.find_initializer("W1")->tensor.data<float>();
  const float* b = e.graph.find_initializer("B1")->tensor.data<float>();
  const float* c = e.graph.find_initializer("W2")->tensor.data<float>();
  EXPECT_NEAR(a[0], r2, 1e-6);
  EXPECT_NEAR(a[1], 2.f, 1e-6);
  EXPECT_NEAR(b[0], 1.f / r2, 1e-6);
  EXPECT_NEAR(b[1], -1.f, 1e-6);
  EXPECT_NEAR(c[0], r2, 1e-6);
  EXPECT_NEAR(c[1], 2.f, 1e-6);
  Tensor x = rnd({3, 1, 2, 2}, 9);
  EXPECT_LE(max_rel(run(m, x), run(e, x)), 1e-6);
}

TEST(CrossLayerEqualization, ChainsEqualizedOutputsUnchanged) {
  ir::Model m = cle_model(), e = m;
  int clips = 0;
  auto pairs = quant::cle_pairs(m.graph, &clips);
  ASSERT_EQ(pairs.size(), 3u);  // Conv1-dw, dw-Conv3, Conv3-Conv4; Conv4 -> Clip -> Conv5 left alone
  EXPECT_EQ(clips, 1);
  EXPECT_EQ(pairs[1].activation, "LeakyRelu");
  auto spread = [&](const ir::Model& mm) {  // worst max(r1/r2, r2/r1) over the pairs' channels
    double worst = 1;
    for (const auto& p : pairs) {
      std::vector<double> r1, r2;
      quant::cle_ranges(mm.graph, p, r1, r2);
      for (size_t i = 0; i < r1.size(); ++i) worst = std::max({worst, r1[i] / r2[i], r2[i] / r1[i]});
    }
    return worst;
  };
  EXPECT_GT(spread(m), 3.0);
  auto rep = quant::cross_layer_equalize(e);
  EXPECT_EQ(rep.pairs, 3);
  EXPECT_EQ(rep.clip_pairs, 1);
  EXPECT_TRUE(rep.converged);
  EXPECT_GT(rep.sweeps, 2);  // the depthwise layer sits in two pairs: several sweeps
  EXPECT_LE(spread(e), 1.0 + 2e-4);
  // Conv5 (behind the Clip) and Conv4's output channels are untouched.
  const Tensor& w5 = e.graph.find_initializer("W5")->tensor;
  for (int64_t i = 0; i < w5.numel(); ++i)
    EXPECT_EQ(w5.data<float>()[i], m.graph.find_initializer("W5")->tensor.data<float>()[i]);
  Tensor x = rnd({4, 3, 9, 9}, 10, -1.f, 2.f);
  auto ref = run(m, x), got = run(e, x);
  EXPECT_LE(max_rel(ref, got), 1e-4);
  EXPECT_GT(max_rel(ref, got), 0.0);  // computed differently (not a no-op)
}

TEST(CrossLayerEqualization, SharedOrExposedTensorsBlockAPair) {
  ir::Model m = cle_model();
  m.graph.outputs.push_back(vi("ar", {-1, 8, 9, 9}));  // Relu output also a graph output
  auto pairs = quant::cle_pairs(m.graph);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(m.graph.nodes[pairs[0].first].input(1), "Wd");
}

namespace {

// x[N,3,8,8] -> ConvA 3->6 3x3 pad 1 (no bias) -> a -> Relu -> ConvB 6->4 3x3 stride 2 pads (1,0,0,1), dilation
// 1 -> b -> GlobalAveragePool -> Flatten -> f -> Gemm (transB 1, alpha 2.5, beta 0.5) -> y; f -> MatMul [4,3] -> Add
// -> z.
ir::Model bc_model() {
  ir::Model m = base_model();
  auto& g = m.graph;
  g.add_initializer("WA", rnd({6, 3, 3, 3}, 21, -0.3f, 1.f));
  g.add_initializer("WB", rnd({4, 6, 3, 3}, 22, -0.5f, 1.f));
  g.add_initializer("BB", rnd({4}, 23));
  g.add_initializer("WG", rnd({5, 4}, 24, -0.2f, 1.f));
  g.add_initializer("BG", rnd({5}, 25));
  g.add_initializer("WM", rnd({4, 3}, 26, -0.4f, 1.f));
  g.add_initializer("BM", rnd({3}, 27));
  g.inputs = {vi("x", {-1, 3, 8, 8})};
  g.outputs = {vi("a", {-1, 6, 8, 8}), vi("b", {-1, 4, 4, 4}), vi("y", {-1, 5}), vi("z", {-1, 3})};
  g.nodes.push_back(conv("x", "WA", "", "a"));
  g.nodes.push_back(mk("Relu", {"a"}, {"ar"}));
  g.nodes.push_back(conv("ar", "WB", "BB", "b", 1, {1, 0, 0, 1}, {2, 2}));
  g.nodes.push_back(mk("GlobalAveragePool", {"b"}, {"p"}));
  g.nodes.push_back(mk("Flatten", {"p"}, {"f"}));
  auto gemm = mk("Gemm", {"f", "WG", "BG"}, {"y"});
  gemm.set_attr_int("transB", 1);
  gemm.set_attr_float("alpha", 2.5f);
  gemm.set_attr_float("beta", 0.5f);
  g.nodes.push_back(gemm);
  g.nodes.push_back(mk("MatMul", {"f", "WM"}, {"mm"}));
  g.nodes.push_back(mk("Add", {"mm", "BM"}, {"z"}));
  return m;
}

// Per-channel (axis 1) mean over everything else of ref − got.
std::vector<double> mean_error(const Tensor& ref, const Tensor& got) {
  const int64_t C = ref.dim(1), inner = ref.numel() / (ref.dim(0) * C);
  std::vector<double> e(static_cast<size_t>(C), 0.0);
  for (int64_t n = 0; n < ref.dim(0); ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        int64_t k = (n * C + c) * inner + i;
        e[static_cast<size_t>(c)] += static_cast<double>(ref.data<float>()[k]) - got.data<float>()[k];
      }
  for (double& v : e) v /= static_cast<double>(ref.numel() / C);
  return e;
}

}  // namespace

TEST(BiasCorrection, MeanOutputErrorPerChannelVanishes) {
  ir::Model m = bc_model();
  EXPECT_EQ(quant::add_zero_biases(m.graph), 1);  // ConvA
  auto targets = quant::bias_targets(m.graph);
  ASSERT_EQ(targets.size(), 4u);
  EXPECT_EQ(targets[3].bias, "BM");
  EXPECT_EQ(targets[2].beta, 0.5);
  EXPECT_EQ(targets[2].alpha, 2.5);
  auto data = data::make_random_dataset(data::input_specs(m.graph), 48, 3);
  // Weights: ConvA, the Gemm and the MatMul in Int4 per tensor, ConvB in Int8 per channel; the Gemm's values
  // come from a "weight quantizer" that moves them (as GPTQ does).
  quant::QuantOptions o;
  o.bias_correction = true;
  for (const char* w : {"WA", "WG", "WM"}) o.weight_overrides[w].qtype = DType::Int4;
  Tensor moved = rnd({5, 4}, 31, -0.2f, 1.f);
  quant::WeightParamsFn fn = [&](const std::string& name, const Tensor&, const quant::WeightProposal& p) {
    return quant::WeightChoice{p.params, name == "WG" ? moved : Tensor()};
  };
  quant::CalibrationRequest req;
  req.batch_size = 16;
  auto cal = quant::calibrate(m, o, data, req);
  ASSERT_EQ(cal.input_means.size(), 4u);
  EXPECT_EQ(cal.input_means.at("WA").rows, 48 * 64);
  auto q = quant::build_qdq(m, o, cal, fn);
  EXPECT_EQ(q.corrected_biases, 4);
  EXPECT_EQ(q.params.at("WA").qtype, DType::Int4);
  EXPECT_EQ(q.params.at("WB").axis, 0);

  data::Loader loader(data, data::LoaderOptions{48, 0, 0});
  data::Batch batch;
  ASSERT_TRUE(loader.next(batch));
  const Tensor x = batch.inputs.at("x");
  const auto ref = run(m, x);
  struct Layer {
    const char *w, *b;
    size_t out;
  };
  for (Layer l : {Layer{"WA", "WA_bias", 0}, Layer{"WB", "BB", 1}, Layer{"WG", "BG", 2}, Layer{"WM", "BM", 3}}) {
    // Only this layer's weight quantized (float inputs): Q(W) with its final parameters; then also the bias
    // corrected for it.
    ir::Model only = m;
    const Tensor& src = std::string(l.w) == "WG" ? moved : m.graph.find_initializer(l.w)->tensor;
    only.graph.find_initializer(l.w)->tensor = quant::weight_fake_quant(src, q.params.at(l.w));
    auto before = mean_error(ref[l.out], run(only, x)[l.out]);
    ir::Model corrected = only;
    std::vector<quant::BiasTarget> one;
    for (const auto& t : targets)
      if (t.view.weight == l.w) one.push_back(t);
    ir::Model fixed = m;
    std::map<std::string, Tensor> vals;
    if (std::string(l.w) == "WG") vals["WG"] = moved;
    ASSERT_EQ(quant::correct_biases(fixed.graph, m.graph, one, q.params, vals, cal.input_means), 1);
    corrected.graph.find_initializer(l.b)->tensor = fixed.graph.find_initializer(l.b)->tensor;
    auto after = mean_error(ref[l.out], run(corrected, x)[l.out]);
    double worst_before = 0, worst_after = 0;
    for (size_t c = 0; c < before.size(); ++c) {
      worst_before = std::max(worst_before, std::fabs(before[c]));
      worst_after = std::max(worst_after, std::fabs(after[c]));
    }
    EXPECT_GT(worst_before, 1e-3) << l.w;
    EXPECT_LT(worst_after, 2e-3 * worst_before) << l.w << ": " << worst_after << " vs " << worst_before;
    // The written QDQ model holds the corrected bias (int32 with scale input × weight holding beta × bias for
    // the Gemm, or the Add constant in 8 bits): within half a quantization step.
    const Tensor& fb = fixed.graph.find_initializer(l.b)->tensor;
    const exec::QuantParams& bp = q.params.at(l.b);
    const double beta = q.plan.tensors.at(l.b).bias_beta;
    EXPECT_EQ(beta, std::string(l.b) == "BG" ? 0.5 : 1.0) << l.b;
    Tensor qi = q.model.graph.find_initializer(std::string(l.b) + "_quantized")->tensor.cast(DType::Int64);
    for (int64_t i = 0; i < fb.numel(); ++i) {
      size_t c = bp.scale.size() == 1 ? 0 : static_cast<size_t>(i);
      double deq = static_cast<double>(qi.data<int64_t>()[i] - bp.zero_point[c]) * bp.scale[c];
      EXPECT_NEAR(deq, beta * fb.data<float>()[i], 0.5001 * bp.scale[c] + 1e-7) << l.b << "[" << i << "]";
    }
  }
}

TEST(BiasCorrection, ConvTransposeMeanOutputErrorVanishes) {
  // ConvTranspose 4->6 (group 2), 3x3, stride 2, pads (1, 0, 0, 1), output_padding (1, 0), no bias; Int4 per
  // tensor. The border taps that fall outside the output make E[x_c] alone inexact: the column means are not.
  ir::Model m = base_model();
  m.graph.add_initializer("WT", rnd({4, 3, 3, 3}, 41, -0.3f, 1.f));
  m.graph.inputs = {vi("x", {-1, 4, 5, 5})};
  m.graph.outputs = {vi("y", {})};
  auto ct = mk("ConvTranspose", {"x", "WT"}, {"y"});
  ct.set_attr_int("group", 2);
  ct.set_attr_ints("strides", {2, 2});
  ct.set_attr_ints("pads", {1, 0, 0, 1});
  ct.set_attr_ints("output_padding", {1, 0});
  m.graph.nodes.push_back(ct);
  ASSERT_EQ(quant::add_zero_biases(m.graph), 1);
  auto view = quant::conv_transpose_view(m.graph, m.graph.nodes[0]);
  ASSERT_TRUE(view && view->groups == 2 && view->rows == 3 && view->k == 18);
  auto data = data::make_random_dataset(data::input_specs(m.graph), 24, 5);
  quant::QuantOptions o;
  o.bias_correction = true;
  o.weight_type = DType::Int4;
  o.per_channel = false;
  auto cal = quant::calibrate(m, o, data, quant::CalibrationRequest{});
  auto q = quant::build_qdq(m, o, cal);
  ASSERT_EQ(q.corrected_biases, 1);
  data::Loader loader(data, data::LoaderOptions{24, 0, 0});
  data::Batch batch;
  ASSERT_TRUE(loader.next(batch));
  const Tensor x = batch.inputs.at("x");
  const auto ref = run(m, x);
  ir::Model only = m;
  only.graph.find_initializer("WT")->tensor = quant::weight_fake_quant(m.graph.find_initializer("WT")->tensor, q.params.at("WT"));
  auto before = mean_error(ref[0], run(only, x)[0]);
  ir::Model fixed = m;
  ASSERT_EQ(quant::correct_biases(fixed.graph, m.graph, quant::bias_targets(m.graph), q.params, {}, cal.input_means), 1);
  only.graph.find_initializer("WT_bias")->tensor = fixed.graph.find_initializer("WT_bias")->tensor;
  auto after = mean_error(ref[0], run(only, x)[0]);
  ASSERT_EQ(before.size(), 6u);
  double wb = 0, wa = 0;
  for (size_t c = 0; c < 6; ++c) wb = std::max(wb, std::fabs(before[c])), wa = std::max(wa, std::fabs(after[c]));
  EXPECT_GT(wb, 1e-3);
  EXPECT_LT(wa, 2e-3 * wb) << wa << " vs " << wb;
}

// Gemms with alpha != 1 and without a usable C: without C (alpha 2), and with beta 0 (alpha 0.5; its C is
// ignored by the Gemm, so it is replaced by a zero C with beta 1). Both get a correction that makes the
// per-channel mean output error vanish (the shift to cancel is alpha·(W − Q(W))·E[x]).
TEST(BiasCorrection, GemmAlphaWithoutBiasAndBetaZero) {
  ir::Model m = base_model();
  auto& g = m.graph;
  g.add_initializer("W1", rnd({12, 6}, 51, -0.3f, 1.f));
  g.add_initializer("W2", rnd({6, 12}, 52, -0.3f, 1.f));
  g.add_initializer("C2", rnd({6}, 53));
  g.inputs = {vi("x", {-1, 12})};
  g.outputs = {vi("y1", {-1, 6}), vi("y2", {-1, 6})};
  auto g1 = mk("Gemm", {"x", "W1"}, {"y1"});
  g1.set_attr_float("alpha", 2.f);
  auto g2 = mk("Gemm", {"x", "W2", "C2"}, {"y2"});
  g2.set_attr_int("transB", 1);
  g2.set_attr_float("alpha", 0.5f);
  g2.set_attr_float("beta", 0.f);
  g.nodes = {g1, g2};
  const ir::Model orig = m;
  auto data = data::make_random_dataset(data::input_specs(m.graph), 32, 9);
  data::Loader loader(data, data::LoaderOptions{32, 0, 0});
  data::Batch batch;
  ASSERT_TRUE(loader.next(batch));
  const Tensor x = batch.inputs.at("x");
  const auto ref = run(orig, x);
  ASSERT_EQ(quant::add_zero_biases(m.graph), 2);
  EXPECT_EQ(m.graph.nodes[1].attr_float("beta", -1.f), 1.f);
  EXPECT_EQ(m.graph.find_initializer("C2"), nullptr);  // the ignored C is gone
  EXPECT_LE(max_rel(ref, run(m, x)), 1e-6);             // same function
  quant::QuantOptions o;
  o.bias_correction = true;
  o.weight_type = DType::Int4;
  o.per_channel = false;
  quant::CalibrationRequest req;
  req.batch_size = 8;
  auto cal = quant::calibrate(m, o, data, req);
  auto q = quant::build_qdq(m, o, cal);
  EXPECT_EQ(q.corrected_biases, 2);
  ir::Model fixed = m;
  ASSERT_EQ(quant::correct_biases(fixed.graph, m.graph, quant::bias_targets(m.graph), q.params, {}, cal.input_means), 2);
  for (auto [w, b, out] : {std::tuple{"W1", "W1_bias", 0}, std::tuple{"W2", "W2_bias", 1}}) {
    ir::Model only = m;
    only.graph.find_initializer(w)->tensor = quant::weight_fake_quant(m.graph.find_initializer(w)->tensor, q.params.at(w));
    auto before = mean_error(ref[out], run(only, x)[out]);
    only.graph.find_initializer(b)->tensor = fixed.graph.find_initializer(b)->tensor;
    auto after = mean_error(ref[out], run(only, x)[out]);
    double wb = 0, wa = 0;
    for (size_t c = 0; c < before.size(); ++c) wb = std::max(wb, std::fabs(before[c])), wa = std::max(wa, std::fabs(after[c]));
    EXPECT_GT(wb, 1e-3) << w;
    EXPECT_LT(wa, 2e-3 * wb) << w << ": " << wa << " vs " << wb;
  }
}

TEST(BiasCorrection, NonFiniteInputsLeftOutPerColumn) {
  // 1x1 Conv, group 2, 4 -> 2 channels (and the same as a ConvTranspose, weight [4, 1, 1, 1]): output 0 reads input
  // channels 0, 1; output 1 reads 2, 3. Input channel 1 is NaN / inf everywhere (column 1 of group 0 has no finite
  // value), channel 2 has one NaN and one +inf.
  for (const char* op : {"Conv", "ConvTranspose"}) {
    SCOPED_TRACE(op);
    const bool ct = std::string(op) == "ConvTranspose";
    ir::Model m = base_model();
    auto& g = m.graph;
    const Shape ws = ct ? Shape{4, 1, 1, 1} : Shape{2, 2, 1, 1};
    Tensor w(DType::Float, ws), wq(DType::Float, ws);
    const float wv[] = {1.f, 2.f, 3.f, 4.f}, dv[] = {0.5f, 0.25f, 0.125f, -0.5f};  // wq = w - d
    for (int i = 0; i < 4; ++i) w.data<float>()[i] = wv[i], wq.data<float>()[i] = wv[i] - dv[i];
    g.add_initializer("W", w);
    g.inputs = {vi("x", {-1, 4, 1, 2})};
    g.outputs = {vi("y", {-1, 2, 1, 2})};
    g.nodes.push_back(conv("x", "W", "", "y", 2, {0, 0, 0, 0}));
    g.nodes[0].op_type = op;
    auto view = ct ? quant::conv_transpose_view(g, g.nodes[0]) : quant::layer_view(g, g.nodes[0]);
    ASSERT_TRUE(view);
    Tensor x(DType::Float, {2, 4, 1, 2});
    const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
    // [n][c][pos]: channel 0: 1 2 | 3 4; channel 1 non-finite; channel 2: NaN 6 | 8 inf; channel 3: 1 1 | 1 5
    const float xv[] = {1, 2, nan, inf, nan, 6, 1, 1, 3, 4, -inf, nan, 8, inf, 1, 5};
    for (int i = 0; i < 16; ++i) x.data<float>()[i] = xv[i];
    quant::InputMeansCollector col({*view});
    col.observe("x", x);
    test_util::LogCapture log;
    auto means = col.take();
    EXPECT_NE(log.text().find(fmt::format("Bias correction: {} 'Conv_y' (weight 'W'): 1 of its 4 input columns have "
                                          "no finite value", op)),
              std::string::npos) << log.text();
    const auto& im = means.at("W");
    EXPECT_EQ(im.rows, 4);
    EXPECT_EQ(im.skipped, (std::vector<int64_t>{0, 4, 2, 0}));
    auto shift = quant::expected_shift(w, wq, im);
    ASSERT_EQ(shift.size(), 2u);
    EXPECT_TRUE(std::isnan(shift[0]));  // reads a column without a finite value
    // Output 1: 0.125 · mean(6, 8) + (−0.5) · mean(1, 1, 1, 5), by hand.
    EXPECT_DOUBLE_EQ(shift[1], 0.125 * 7.0 - 0.5 * 2.0);
  }
}

TEST(BiasCorrection, SharedWeightsAreLeftAlone) {
  // Two Convs reading different inputs with one weight: one set of input means cannot serve both biases.
  ir::Model m = bc_model();
  m.graph.nodes.push_back(conv("x", "WA", "", "a2"));
  m.graph.outputs.push_back(vi("a2", {-1, 6, 8, 8}));
  auto targets = quant::bias_targets(m.graph);
  ASSERT_EQ(targets.size(), 3u);
  for (const auto& t : targets) EXPECT_NE(t.view.weight, "WA");
  EXPECT_EQ(quant::add_zero_biases(m.graph), 0);
}

TEST(CrossLayerEqualization, Relu6ReplacedOnRequest) {
  // With replace_relu6, Conv4 -> Clip(0, 6) -> Conv5 becomes Conv4 -> Relu -> Conv5 and is equalized too. The
  // result computes what the model with that Clip replaced by Relu computes (not the original, where an
  // activation above 6 is clipped).
  ir::Model m = cle_model(), e = m, relu = m;
  for (auto& n : relu.graph.nodes)
    if (n.op_type == "Clip") {
      n.op_type = "Relu";
      n.inputs.resize(1);
    }
  quant::CleOptions o;
  o.replace_relu6 = true;
  int clips = -1;
  auto pairs = quant::cle_pairs(m.graph, &clips, /*relu6=*/true);
  ASSERT_EQ(pairs.size(), 4u);
  EXPECT_EQ(clips, 0);
  EXPECT_EQ(pairs[3].activation, "Clip");
  auto rep = quant::cross_layer_equalize(e, o);
  EXPECT_EQ(rep.pairs, 4);
  EXPECT_EQ(rep.clip_pairs, 0);
  EXPECT_EQ(rep.relu6_replaced, 1);
  EXPECT_TRUE(rep.converged);
  size_t n_clip = 0;
  for (const auto& n : e.graph.nodes) n_clip += n.op_type == "Clip";
  EXPECT_EQ(n_clip, 0u);
  for (const auto& p : quant::cle_pairs(e.graph)) {  // every pair's ranges now match, Conv4-Conv5 included
    std::vector<double> r1, r2;
    quant::cle_ranges(e.graph, p, r1, r2);
    for (size_t i = 0; i < r1.size(); ++i) EXPECT_NEAR(r1[i] / r2[i], 1.0, 2e-4);
  }
  Tensor x = rnd({4, 3, 9, 9}, 11, -1.f, 2.f);
  EXPECT_LE(max_rel(run(relu, x), run(e, x)), 1e-4);
  // A Clip with other bounds is never replaced.
  ir::Model other = cle_model();
  other.graph.find_initializer("hi")->tensor = Tensor::scalar_float(4.f);
  auto rep2 = quant::cross_layer_equalize(other, o);
  EXPECT_EQ(rep2.relu6_replaced, 0);
  EXPECT_EQ(rep2.clip_pairs, 1);
}
