// Issue 8 quality tools on hand-built IR models: SmoothQuant keeps the float outputs and helps W8A8 on
// activation outliers; mse and gptq beat min/max (errors computed with naive reference loops); the writer
// quantizes the values a weight quantizer returns; sensitivity ordering and the greedy walk.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "data/dataset.h"
#include "exec/session.h"
#include "quant/qparams.h"
#include "quant/quantizer.h"
#include "quant/smooth_quant.h"
#include "quant/weight_quantizers.h"
#include "search/greedy.h"
#include "search/sensitivity.h"
#include "quality_test_util.h"

using namespace oq;
using namespace oq::testq;

namespace {

// x[N,16] -> Gemm(W1[16,32], transB 0) -> Relu -> Gemm(W2 [8,32], transB 1) -> y; also x -> MatMul(W3[16,4]) -> z.
// Columns 0..2 of W1 are 100x larger (and the matching columns of W2 100x smaller, so every channel matters
// for y): the Relu output has outlier channels.
ir::Model mlp_model(bool outliers) {
  ir::Model m = base_model();
  Tensor w1 = rnd({16, 32}, 1);
  if (outliers)
    for (int64_t k = 0; k < 16; ++k)
      for (int64_t j = 0; j < 3; ++j) w1.data<float>()[k * 32 + j] *= 100.f;
  m.graph.add_initializer("W1", w1);
  m.graph.add_initializer("B1", rnd({32}, 2, 0.f, 0.5f));
  Tensor w2 = rnd({8, 32}, 3);
  if (outliers)
    for (int64_t k = 0; k < 8; ++k)
      for (int64_t j = 0; j < 3; ++j) w2.data<float>()[k * 32 + j] *= 0.01f;
  m.graph.add_initializer("W2", w2);
  m.graph.add_initializer("B2", rnd({8}, 4));
  m.graph.add_initializer("W3", rnd({16, 4}, 5));
  m.graph.inputs = {vi("x", {-1, 16})};
  m.graph.outputs = {vi("y", {-1, 8}), vi("z", {-1, 4})};
  m.graph.nodes.push_back(mk("Gemm", {"x", "W1", "B1"}, {"h"}));
  m.graph.nodes.push_back(mk("Relu", {"h"}, {"r"}));
  auto g2 = mk("Gemm", {"r", "W2", "B2"}, {"y"});
  g2.set_attr_int("transB", 1);
  m.graph.nodes.push_back(g2);
  m.graph.nodes.push_back(mk("MatMul", {"x", "W3"}, {"z"}));
  return m;
}

// x[N,3,7,7] -> Conv 3->8 3x3 pad 1 -> Relu -> Conv 8->6 3x3 stride 2 -> BatchNormalization -> Conv 6->5 1x1 -> y
ir::Model conv_model() {
  ir::Model m = base_model();
  m.graph.add_initializer("C1", rnd({8, 3, 3, 3}, 11));
  m.graph.add_initializer("C1b", rnd({8}, 12));
  m.graph.add_initializer("C2", rnd({6, 8, 3, 3}, 13));
  m.graph.add_initializer("bn_s", rnd({6}, 14, 0.5f, 2.f));
  m.graph.add_initializer("bn_b", rnd({6}, 15));
  m.graph.add_initializer("bn_m", rnd({6}, 16));
  m.graph.add_initializer("bn_v", rnd({6}, 17, 0.5f, 2.f));
  m.graph.add_initializer("C3", rnd({5, 6, 1, 1}, 18));
  m.graph.inputs = {vi("x", {-1, 3, 7, 7})};
  m.graph.outputs = {vi("y", {-1, 5, 3, 3})};
  auto c1 = mk("Conv", {"x", "C1", "C1b"}, {"a"});
  c1.set_attr_ints("pads", {1, 1, 1, 1});
  m.graph.nodes.push_back(c1);
  m.graph.nodes.push_back(mk("Relu", {"a"}, {"b"}));
  auto c2 = mk("Conv", {"b", "C2"}, {"c"});
  c2.set_attr_ints("strides", {2, 2});
  m.graph.nodes.push_back(c2);
  m.graph.nodes.push_back(mk("BatchNormalization", {"c", "bn_s", "bn_b", "bn_m", "bn_v"}, {"d"}));
  m.graph.nodes.push_back(mk("Conv", {"d", "C3"}, {"y"}));
  return m;
}

double snr_db(const std::vector<Tensor>& ref, const std::vector<Tensor>& out) {
  double s = 0, n = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    for (int64_t j = 0; j < ref[i].numel(); ++j) {
      double r = ref[i].data<float>()[j], d = r - out[i].data<float>()[j];
      s += r * r;
      n += d * d;
    }
  return 10 * std::log10(s / n);
}

}  // namespace

TEST(SmoothQuant, FloatOutputsUnchangedMlp) {
  for (bool folding : {true, false}) {
    ir::Model m = mlp_model(true), sm = m;
    auto data = data::make_random_dataset(data::input_specs(m.graph), 16, 7);
    auto rep = quant::apply_smooth_quant(sm, data, 4, {0.5, folding});
    EXPECT_EQ(rep.targets, 3);
    // Gemm2 folds into Gemm1 through the Relu; x feeds Gemm1 and MatMul (a graph input): one shared Mul.
    EXPECT_EQ(rep.folded, folding ? 1 : 0);
    EXPECT_EQ(rep.inserted_mul, folding ? 1 : 2);
    Tensor x = rnd({5, 16}, 99, 0.f, 1.f);
    EXPECT_LE(max_rel(run(m, x), run(sm, x)), 1e-4);
    EXPECT_NE(sm.graph.find_initializer("W2")->tensor.data<float>()[0], m.graph.find_initializer("W2")->tensor.data<float>()[0]);
  }
}

TEST(SmoothQuant, FloatOutputsUnchangedConvAndBatchNorm) {
  ir::Model m = conv_model(), sm = m;
  auto data = data::make_random_dataset(data::input_specs(m.graph), 8, 3);
  auto rep = quant::apply_smooth_quant(sm, data, 2, {0.3, true});
  EXPECT_EQ(rep.targets, 3);
  EXPECT_EQ(rep.folded, 2);  // C2 into C1 (through the Relu), C3 into the BatchNormalization
  EXPECT_EQ(rep.inserted_mul, 1);  // C1 reads the graph input
  Tensor x = rnd({2, 3, 7, 7}, 5, 0.f, 1.f);
  EXPECT_LE(max_rel(run(m, x), run(sm, x)), 1e-4);
}

// SmoothQuantUnfolded on conv_model: the graph input's division cannot be folded. conv writes it as a depthwise 1x1
// Conv (group 3, weight 1/s as [3,1,1,1], no bias: C1 is multiplied by the same s), skip leaves x and C1 alone
// while the two folded divisions stay; the float outputs are the original's in every mode (executor).
TEST(SmoothQuant, UnfoldedModesConvAndSkip) {
  ir::Model m = conv_model();
  auto data = data::make_random_dataset(data::input_specs(m.graph), 8, 3);
  Tensor x = rnd({2, 3, 7, 7}, 5, 0.f, 1.f);
  for (quant::Unfolded mode : {quant::Unfolded::Conv, quant::Unfolded::Skip}) {
    ir::Model sm = m;
    auto rep = quant::apply_smooth_quant(sm, data, 2, {0.3, true, mode});
    EXPECT_EQ(rep.folded, 2);
    EXPECT_EQ(rep.inserted_mul, 0);
    EXPECT_LE(max_rel(run(m, x), run(sm, x)), 1e-4);
    const Tensor& c1 = m.graph.find_initializer("C1")->tensor;
    const Tensor& c1s = sm.graph.find_initializer("C1")->tensor;
    if (mode == quant::Unfolded::Skip) {
      EXPECT_EQ(rep.skipped, 1);
      EXPECT_EQ(rep.targets, 2);
      EXPECT_EQ(sm.graph.nodes.size(), m.graph.nodes.size());
      EXPECT_EQ(sm.graph.nodes[0].input(0), "x");
      continue;
    }
    EXPECT_EQ(rep.inserted_conv, 1);
    EXPECT_EQ(rep.mul_not_4d, 0);
    EXPECT_TRUE(rep.inv_scales.empty());  // a Conv weight: quantized as one, not a channel constant
    const ir::Node* dw = nullptr;
    for (const auto& n : sm.graph.nodes)
      if (n.name == "x_smooth0_Conv") dw = &n;
    ASSERT_NE(dw, nullptr);
    EXPECT_EQ(dw->op_type, "Conv");
    EXPECT_EQ(dw->attr_int("group", 1), 3);
    ASSERT_EQ(dw->inputs.size(), 2u);
    EXPECT_EQ(dw->input(0), "x");
    const Tensor& inv = sm.graph.find_initializer(dw->input(1))->tensor;
    ASSERT_EQ(inv.shape(), (Shape{3, 1, 1, 1}));
    // C1 reads the Conv's output: its input channels j are multiplied by s_j = 1 / inv[j] (and its output rows o
    // divided by C2's folded s'_o): C1s[o, j, k] * inv[j] / C1[o, j, k] is one value per o.
    EXPECT_GT(std::fabs(inv.data<float>()[0] / inv.data<float>()[1] - 1.f), 1e-3f) << "the test needs distinct s";
    for (int64_t o = 0; o < 8; ++o) {
      const double r0 = c1s.data<float>()[o * 27] * inv.data<float>()[0] / c1.data<float>()[o * 27];
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t k = 0; k < 9; ++k) {
          const int64_t i = (o * 3 + j) * 9 + k;
          EXPECT_NEAR(c1s.data<float>()[i] * inv.data<float>()[j] / c1.data<float>()[i], r0, 1e-5 * r0)
              << "o " << o << " j " << j;
        }
    }
  }
}

TEST(SmoothQuant, ImprovesW8A8OnOutlierChannels) {
  ir::Model m = mlp_model(true);
  auto data = data::make_random_dataset(data::input_specs(m.graph), 64, 1);
  quant::QuantOptions o;
  quant::CalibrationRequest req;
  req.batch_size = 8;
  Tensor x = rnd({64, 16}, 1234, 0.f, 1.f);
  auto ref = run(m, x);
  auto q0 = quant::build_qdq(m, o, quant::calibrate(m, o, data, req));
  ir::Model sm = m;
  quant::apply_smooth_quant(sm, data, 8, {0.5, true});
  auto q1 = quant::build_qdq(sm, o, quant::calibrate(sm, o, data, req));
  // y only: z reads the graph input through the inserted Mul (no outliers there).
  double s0 = snr_db({ref[0]}, {run(q0.model, x)[0]}), s1 = snr_db({ref[0]}, {run(q1.model, x)[0]});
  EXPECT_GT(s1, s0 + 3.0) << "without " << s0 << " dB, with " << s1 << " dB";
}

// A channel that is 0 on all the calibration data (a dead Relu) gets s = 1; the inserted Mul's 1/s constant is
// quantized per channel, so each value survives (one per-tensor scale over 1/s values spanning orders of
// magnitude would round most of them to 0 — what made SmoothQuant wreck a real MobileNetV2).
TEST(SmoothQuant, DeadChannelAndInsertedMulConstant) {
  ir::Model m = mlp_model(true);
  Tensor& b1 = m.graph.find_initializer("B1")->tensor;
  b1.data<float>()[5] = -1000.f;  // h[:, 5] < 0 for x in [0, 1): r[:, 5] == 0 on every sample
  auto data = data::make_random_dataset(data::input_specs(m.graph), 64, 1);
  ir::Model sm = m;
  auto rep = quant::apply_smooth_quant(sm, data, 8, {0.5, false});
  ASSERT_EQ(rep.inserted_mul, 2);
  EXPECT_GE(rep.neutral_channels, 1);
  std::string r_inv;
  for (const auto& [name, axis] : rep.inv_scales) {
    EXPECT_EQ(axis, 0);
    if (sm.graph.find_initializer(name)->tensor.numel() == 32) r_inv = name;
  }
  ASSERT_FALSE(r_inv.empty());
  const Tensor inv = sm.graph.find_initializer(r_inv)->tensor;
  EXPECT_EQ(inv.data<float>()[5], 1.f);
  float lo = inv.data<float>()[0], hi = lo;
  for (float v : inv.span<float>()) lo = std::min(lo, v), hi = std::max(hi, v);
  ASSERT_GT(hi / lo, 50.f) << "the test needs 1/s values of very different sizes";

  quant::QuantOptions per_tensor, per_channel;
  per_channel.channel_constants = rep.inv_scales;
  quant::CalibrationRequest req;
  req.batch_size = 8;
  auto cal = quant::calibrate(sm, per_channel, data, req);
  auto q_pt = quant::build_qdq(sm, per_tensor, cal), q_pc = quant::build_qdq(sm, per_channel, cal);
  // Per channel: every dequantized 1/s within a rounding step of 127 levels of its own magnitude.
  const Tensor& q = q_pc.model.graph.find_initializer(fmt::format("{}_quantized", r_inv))->tensor;
  const Tensor& sc = q_pc.model.graph.find_initializer(fmt::format("{}_scale", r_inv))->tensor;
  ASSERT_EQ(sc.numel(), 32);
  for (int64_t j = 0; j < 32; ++j) {
    const double deq = q.data<int8_t>()[j] * static_cast<double>(sc.data<float>()[j]);
    EXPECT_NEAR(deq, inv.data<float>()[j], std::fabs(inv.data<float>()[j]) * 1e-6) << "channel " << j;
  }
  Tensor x = rnd({64, 16}, 1234, 0.f, 1.f);
  auto ref = run(m, x);
  const double s_pt = snr_db({ref[0]}, {run(q_pt.model, x)[0]}), s_pc = snr_db({ref[0]}, {run(q_pc.model, x)[0]});
  EXPECT_GE(s_pc, s_pt) << "per-tensor constant " << s_pt << " dB, per-channel " << s_pc << " dB";
}

TEST(SmoothQuant, SmoothingFactorsFollowTheFormula) {
  ir::Model m = mlp_model(false);
  quant::ChannelStats st;
  st.absmax["r"] = std::vector<float>(32, 4.f);
  st.rank["r"] = 2;
  ir::Model sm = m;
  quant::smooth_quant(sm, st, {0.25, false});
  // W2 is [8, 32] (transB 1): column j scaled by s_j = 4^0.25 / max_k|W2[k, j]|^0.75.
  const Tensor& w = m.graph.find_initializer("W2")->tensor;
  const Tensor& ws = sm.graph.find_initializer("W2")->tensor;
  for (int64_t j = 0; j < 32; ++j) {
    double mx = 0;
    for (int64_t k = 0; k < 8; ++k) mx = std::max(mx, static_cast<double>(std::fabs(w.data<float>()[k * 32 + j])));
    double s = std::pow(4.0, 0.25) / std::pow(mx, 0.75);
    EXPECT_NEAR(ws.data<float>()[5 * 32 + j], w.data<float>()[5 * 32 + j] * s, 1e-5);
  }
}

// A chain of two smoothed layers (Gemm1 -> Relu -> Gemm2, Gemm1 also smoothed for x): downstream first, so x's s
// comes from W1 with Gemm2's 1/s folded into its output columns (the weight that is quantized), whatever the
// tensor names (the groups used to be processed in name order: x's s came from the original W1 when "x" sorted
// before "r", from the folded one otherwise).
TEST(SmoothQuant, ChainScalesDownstreamFirstWhateverTheNames) {
  const double alpha = 0.5;
  std::vector<float> ax(16), ar(32);
  for (size_t j = 0; j < ax.size(); ++j) ax[j] = 0.5f + 0.25f * static_cast<float>(j % 5);
  for (size_t j = 0; j < ar.size(); ++j) ar[j] = 1.f + static_cast<float>((j * 7) % 11);
  std::vector<ir::Model> out;
  for (const std::string r : {"r", "zr"}) {  // "r" sorts before "x", "zr" after
    ir::Model m = mlp_model(true);
    for (auto& n : m.graph.nodes)
      for (auto* v : {&n.inputs, &n.outputs})
        for (auto& t : *v)
          if (t == "r") t = r;
    quant::ChannelStats st;
    st.absmax["x"] = ax, st.rank["x"] = 2;
    st.absmax[r] = ar, st.rank[r] = 2;
    auto rep = quant::smooth_quant(m, st, {alpha, true});
    EXPECT_EQ(rep.folded, 1);
    EXPECT_EQ(rep.inserted_mul, 1);
    out.push_back(std::move(m));
  }
  const ir::Model m = mlp_model(true);
  auto w = [&](const ir::Model& mm, const char* n) { return mm.graph.find_initializer(n)->tensor.data<float>(); };
  // Hand computation: W2 [8, 32] (transB 1) reads r (input axis 1): s_r from the original W2. W1 [16, 32] and
  // W3 [16, 4] read x (input axis 0): s_x from W1[j, k] / s_r[k] (Gemm2's division folded into W1) and W3.
  std::vector<double> sx(16), sr(32);
  for (int64_t j = 0; j < 32; ++j) {
    double mx = 0;
    for (int64_t k = 0; k < 8; ++k) mx = std::max(mx, static_cast<double>(std::fabs(w(m, "W2")[k * 32 + j])));
    sr[j] = std::pow(ar[j], alpha) / std::pow(mx, 1 - alpha);
  }
  for (int64_t j = 0; j < 16; ++j) {
    double mx = 0;
    for (int64_t k = 0; k < 32; ++k) mx = std::max(mx, std::fabs(w(m, "W1")[j * 32 + k] / sr[k]));
    for (int64_t k = 0; k < 4; ++k) mx = std::max(mx, static_cast<double>(std::fabs(w(m, "W3")[j * 4 + k])));
    sx[j] = std::pow(ax[j], alpha) / std::pow(mx, 1 - alpha);
  }
  for (const auto& sm : out) {
    std::string inv;
    for (const auto& i : sm.graph.initializers)
      if (i.name.find("_inv_scale") != std::string::npos) inv = i.name;
    ASSERT_EQ(inv, "x_smooth0_inv_scale");
    for (int64_t j = 0; j < 16; ++j) EXPECT_NEAR(w(sm, inv.c_str())[j], 1.0 / sx[j], 1e-6 / sx[j]) << j;
    for (int64_t j = 0; j < 16; ++j)
      for (int64_t k = 0; k < 32; ++k) {
        double e = w(m, "W1")[j * 32 + k] * sx[j] / sr[k];
        EXPECT_NEAR(w(sm, "W1")[j * 32 + k], e, 1e-5 * std::fabs(e) + 1e-7) << j << "," << k;
      }
    for (int64_t k = 0; k < 8; ++k)
      for (int64_t j = 0; j < 32; ++j) {
        double e = w(m, "W2")[k * 32 + j] * sr[j];
        EXPECT_NEAR(w(sm, "W2")[k * 32 + j], e, 1e-5 * std::fabs(e) + 1e-7);
      }
    Tensor x = rnd({5, 16}, 99, 0.f, 1.f);
    EXPECT_LE(max_rel(run(m, x), run(sm, x)), 1e-4);
  }
  for (const char* n : {"W1", "W2", "W3", "B1", "x_smooth0_inv_scale"}) {  // bitwise the same
    const Tensor& a = out[0].graph.find_initializer(n)->tensor;
    const Tensor& b = out[1].graph.find_initializer(n)->tensor;
    ASSERT_EQ(a.numel(), b.numel());
    EXPECT_EQ(std::memcmp(a.data<float>(), b.data<float>(), sizeof(float) * a.numel()), 0) << n;
  }
}

namespace {

// Naive ‖W − Q(W)‖² for per-channel (axis 0) symmetric parameters.
double naive_err(const Tensor& w, const exec::QuantParams& q) {
  int64_t C = w.dim(0), inner = w.numel() / C;
  double e = 0;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < inner; ++i) {
      float x = w.data<float>()[c * inner + i];
      double qv = std::nearbyint(x / q.scale[c]) + q.zero_point[c];
      qv = std::clamp(qv, -8.0, 7.0);
      double d = x - (qv - q.zero_point[c]) * q.scale[c];
      e += d * d;
    }
  return e;
}

Tensor heavy_tailed(const Shape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t(2.0f);
  Tensor w(DType::Float, s);
  for (float& v : w.span<float>()) v = 0.05f * t(rng);
  return w;
}

}  // namespace

TEST(WeightQuantizers, MseBeatsMinMaxOnHeavyTails) {
  Tensor w = heavy_tailed({16, 64, 3, 3}, 42);
  auto p = quant::weight_params(w, DType::Int4, true, 0);
  auto m = quant::mse_params(w, {p, true, false, std::nullopt});
  double e_minmax = naive_err(w, p), e_mse = naive_err(w, m);
  EXPECT_LT(e_mse, 0.95 * e_minmax) << e_mse << " vs " << e_minmax;
  EXPECT_NEAR(quant::quant_error(w, m), e_mse, 1e-6 * e_mse);
  for (int64_t c = 0; c < 16; ++c) EXPECT_LE(m.scale[c], p.scale[c] * 1.0001f);
}

TEST(WeightQuantizers, MseCandidatesTakeTheProposalsRangeSettings) {
  // Channel c holds q * s[c] for q in -64..64 (steps of 8): the 7-bit (reduce_range) min/max scale is s[c] and
  // its error 0, so ratio 1 is the only minimum, found only when the candidates are 7-bit too.
  const float s[2] = {0.0123f, 0.5f};
  Tensor w(DType::Float, {2, 17});
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t j = 0; j < 17; ++j) w.data<float>()[c * 17 + j] = static_cast<float>(8 * j - 64) * s[c];
  auto p = quant::weight_params(w, DType::Int8, true, 0, true);
  ASSERT_EQ(p.scale, std::vector<float>(s, s + 2));
  auto m = quant::mse_params(w, {p, true, true, std::nullopt});
  EXPECT_EQ(m.scale, p.scale);
  EXPECT_EQ(m.zero_point, p.zero_point);
  EXPECT_EQ(quant::quant_error(w, m), 0.0);
  // MinimumRealRange 100 binds (|w| <= 32): every candidate's scale is floored, none below the proposal's, and the
  // error never above it.
  auto pf = quant::weight_params(w, DType::Int8, true, 0, false, 100.0);
  auto mf = quant::mse_params(w, {pf, true, false, 100.0});
  for (int64_t c = 0; c < 2; ++c) EXPECT_GE(mf.scale[c], pf.scale[c]);
  EXPECT_LE(quant::quant_error(w, mf), quant::quant_error(w, pf));
  EXPECT_GT(pf.scale[1], 32.f / 127.f);  // the floor binds on both channels
}

TEST(WeightQuantizers, GptqLowersGemmOutputError) {
  // Correlated inputs X = Z·A, Gemm weight W [K=24, N=10] (transB 0, stored [k, rows]).
  ir::Model m = base_model();
  const int64_t K = 24, N = 10, M = 300;
  Tensor w = rnd({K, N}, 8);
  m.graph.add_initializer("W", w);
  m.graph.inputs = {vi("x", {-1, K})};
  m.graph.outputs = {vi("y", {-1, N})};
  m.graph.nodes.push_back(mk("Gemm", {"x", "W"}, {"y"}));
  Tensor z = rnd({M, K}, 9), a = rnd({K, K}, 10), x(DType::Float, {M, K});
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < K; ++j) {
      double s = 0;
      for (int64_t p = 0; p < K; ++p) s += z.data<float>()[i * K + p] * a.data<float>()[p * K + j];
      x.data<float>()[i * K + j] = static_cast<float>(s);
    }
  auto view = quant::layer_view(m.graph, m.graph.nodes[0]);
  ASSERT_TRUE(view && view->transposed && view->out_axis == 1);
  quant::LayerHessian h{*view, {}, 0, {}, 0};
  quant::accumulate_hessian(h, x.reshaped({3, 100, K}));  // leading dims are rows
  EXPECT_EQ(h.rows, M);
  auto p = quant::weight_params(w, DType::Int4, true, 1);
  Tensor rtn = quant::weight_fake_quant(w, p), g = quant::gptq_quantize(w, h, p);
  // Every GPTQ value lies on the grid of its column's scale.
  for (int64_t i = 0; i < K * N; ++i) {
    double q = g.data<float>()[i] / p.scale[i % N];
    EXPECT_NEAR(q, std::nearbyint(q), 1e-4);
    EXPECT_LE(std::fabs(q), 8.0001);
  }
  auto out_err = [&](const Tensor& wq) {  // naive ‖XW − XQ‖²
    double e = 0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t n = 0; n < N; ++n) {
        double d = 0;
        for (int64_t k = 0; k < K; ++k) d += x.data<float>()[i * K + k] * (w.data<float>()[k * N + n] - wq.data<float>()[k * N + n]);
        e += d * d;
      }
    return e;
  };
  double e_rtn = out_err(rtn), e_gptq = out_err(g);
  EXPECT_LT(e_gptq, 0.8 * e_rtn) << e_gptq << " vs " << e_rtn;
}

TEST(WeightQuantizers, GptqGroupedStridedConvThroughSession) {
  // Grouped (2 groups), strided, padded, dilated Conv: the output error measured by running the executor.
  ir::Model m = base_model();
  Tensor w = rnd({6, 2, 3, 3}, 21);
  m.graph.add_initializer("W", w);
  m.graph.inputs = {vi("x", {-1, 4, 9, 9})};
  m.graph.outputs = {vi("y", {})};
  auto c = mk("Conv", {"x", "W"}, {"y"});
  c.set_attr_int("group", 2);
  c.set_attr_ints("strides", {2, 1});
  c.set_attr_ints("pads", {1, 0, 2, 1});
  c.set_attr_ints("dilations", {1, 2});
  m.graph.nodes.push_back(c);
  // Smooth (spatially correlated) inputs make the Hessian far from diagonal.
  Tensor x(DType::Float, {8, 4, 9, 9});
  Tensor base = rnd({8, 4, 3, 3}, 22);
  for (int64_t n = 0; n < 8 * 4; ++n)
    for (int64_t i = 0; i < 9; ++i)
      for (int64_t j = 0; j < 9; ++j) x.data<float>()[n * 81 + i * 9 + j] = base.data<float>()[n * 9 + (i / 3) * 3 + j / 3] + 0.1f * std::sin(i + j);
  auto view = quant::layer_view(m.graph, m.graph.nodes[0]);
  ASSERT_TRUE(view && view->groups == 2 && view->k == 18);
  quant::LayerHessian h{*view, {}, 0, {}, 0};
  quant::accumulate_hessian(h, x);
  auto p = quant::weight_params(w, DType::Int4, true, 0);
  auto err = [&](const Tensor& wq) {
    ir::Model q = m;
    q.graph.find_initializer("W")->tensor = wq;
    auto a = run(m, x), b = run(q, x);
    double e = 0;
    for (int64_t i = 0; i < a[0].numel(); ++i) e += std::pow(a[0].data<float>()[i] - b[0].data<float>()[i], 2);
    return e;
  };
  double e_rtn = err(quant::weight_fake_quant(w, p)), e_gptq = err(quant::gptq_quantize(w, h, p));
  EXPECT_LT(e_gptq, 0.9 * e_rtn) << e_gptq << " vs " << e_rtn;
}

TEST(WeightQuantizers, WriterQuantizesTheReturnedValues) {
  ir::Model m = mlp_model(false);
  auto data = data::make_random_dataset(data::input_specs(m.graph), 8, 1);
  quant::QuantOptions o;
  quant::CalibrationRequest req;
  auto cal = quant::calibrate(m, o, data, req);
  Tensor moved = rnd({8, 32}, 77);
  quant::WeightParamsFn fn = [&](const std::string& name, const Tensor&, const quant::WeightProposal& p) {
    quant::WeightChoice c{p.params, Tensor()};
    if (name == "W2") c.values = moved;
    return c;
  };
  auto q = quant::build_qdq(m, o, cal, fn);
  const Tensor& qw = q.model.graph.find_initializer("W2_quantized")->tensor;
  Tensor expect = quant::quantize_tensor(moved, q.params.at("W2"));
  ASSERT_EQ(qw.numel(), expect.numel());
  for (int64_t i = 0; i < qw.numel(); ++i) EXPECT_EQ(qw.data<int8_t>()[i], expect.data<int8_t>()[i]);
  EXPECT_THROW(quant::build_qdq(m, o, cal, [&](const std::string&, const Tensor&, const quant::WeightProposal& p) {
                 return quant::WeightChoice{p.params, rnd({2, 2}, 1)};
               }),
               Error);
}

TEST(Search, SensitivityOrderIsParamsPerNoise) {
  std::vector<search::RankedTensor> c(3);
  c[0].name = "a", c[0].weights = 1000;  // 20 dB: noise 0.01 -> 1e5
  c[1].name = "b", c[1].weights = 10;    // 40 dB: noise 1e-4 -> 1e5 (tie keeps order)
  c[2].name = "c", c[2].weights = 100;   // 50 dB: noise 1e-5 -> 1e7
  auto r = search::rank_by_sensitivity(c, {20.0, 40.0, 50.0});
  EXPECT_EQ(r[0].name, "c");
  EXPECT_EQ(r[1].name, "a");
  EXPECT_EQ(r[2].name, "b");
}

TEST(Search, SensitivityNanRanksLowestAndKeepsTheOthersSorted) {
  // 32 x 10^0.028 ~ 34 < 8 x 10^4.02 ~ 8.4e4: c above a; the NaN (4-bit image made an output NaN) last. A NaN key
  // compared as a number left the order a, n, c.
  std::vector<search::RankedTensor> c(3);
  c[0].name = "a", c[0].weights = 32;
  c[1].name = "n", c[1].weights = 16;
  c[2].name = "c", c[2].weights = 8;
  auto r = search::rank_by_sensitivity(c, {0.28, std::nan(""), 40.2});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].name, "c");
  EXPECT_EQ(r[1].name, "a");
  EXPECT_EQ(r[2].name, "n");
}

TEST(Search, GreedyWalkWithMockEvaluator) {
  // Score = 100 - sum of per-tensor penalties of the Int4 tensors; threshold 95.
  std::vector<double> pen = {1, 3, 0.5, 2, 4};
  int calls = 0;
  auto eval = [&](const std::vector<bool>& int8) {
    ++calls;
    double s = 100;
    for (size_t i = 0; i < pen.size(); ++i) s -= int8[i] ? 0 : pen[i];
    return s;
  };
  auto r = search::greedy_walk(5, 100 - 10.5, 95, eval);
  ASSERT_TRUE(r.answer);
  const auto& a = r.attempts[*r.answer];
  // Phase 1 adds 4 (pen 4) then 3 (pen 2): 95.5 passes; phase 2 tries 3 back (93.5 fails: phase 1's first set,
  // whose score is reused), then 4 (91.5 fails).
  EXPECT_EQ(a.int8, (std::vector<bool>{false, false, false, true, true}));
  EXPECT_DOUBLE_EQ(a.score, 95.5);
  EXPECT_EQ(r.attempts.size(), 5u);
  EXPECT_EQ(calls, 3);
  // Phase 1 goes all the way to tensor 0; phase 2 then drops every other tensor back to Int4.
  pen = {5, 0.1, 0.1, 0.1, 0.1};
  auto r2 = search::greedy_walk(5, 100 - 5.4, 99, eval);
  ASSERT_TRUE(r2.answer);
  EXPECT_EQ(r2.attempts[*r2.answer].int8, (std::vector<bool>{true, false, false, false, false}));
  EXPECT_NEAR(r2.attempts[*r2.answer].score, 99.6, 1e-9);
  auto none = search::greedy_walk(2, 0, 200, [](const std::vector<bool>&) { return 0.0; });
  EXPECT_FALSE(none.answer);
}
