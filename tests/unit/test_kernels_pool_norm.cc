// Pooling, normalization and Softmax kernels: hand-computed cases (ceil_mode shapes, MaxPool Indices,
// Softmax before/after opset 13) and the optimised loops against the naive references on random odd shapes.
#include <cmath>
#include <cstring>
#include <limits>

#include "compute_kernel_test_util.h"
#include "exec/kernels/compute_ref.h"
#include "exec/kernels/pool.h"

namespace oq {
namespace {

using namespace ctest;
namespace ref = exec::ref;

TEST(PoolKernel, MaxPoolCeilModeShapeAndIndices) {
  Tensor x = ft({1, 1, 4, 4}, iota(16));
  ir::Node n = node("MaxPool", 1, 2);
  n.set_attr_ints("kernel_shape", {3, 3});
  n.set_attr_ints("strides", {2, 2});
  n.set_attr_int("ceil_mode", 1);
  auto out = run(n, 12, {x});
  expect_values(out[0], {1, 1, 2, 2}, {10, 11, 14, 15});
  expect_values(out[1], {1, 1, 2, 2}, {10, 11, 14, 15});
  n.set_attr_int("ceil_mode", 0);
  expect_values(run(n, 12, {x})[0], {1, 1, 1, 1}, {10});
  // storage_order 1: column-major offsets (h + w * H).
  n.set_attr_int("ceil_mode", 1);
  n.set_attr_int("storage_order", 1);
  expect_values(run(n, 12, {x})[1], {1, 1, 2, 2}, {10 / 4 + (10 % 4) * 4, 2 + 3 * 4, 3 + 2 * 4, 3 + 3 * 4});
}

TEST(PoolKernel, MaxPoolIndicesIncludeBatchAndChannel) {
  Tensor x = ft({2, 2, 2, 2}, {0, 5, 1, 2, 9, 1, 1, 1, 3, 1, 7, 2, 1, 1, 1, 8});
  ir::Node n = node("MaxPool", 1, 2);
  n.set_attr_ints("kernel_shape", {2, 2});
  auto out = run(n, 8, {x});
  expect_values(out[0], {2, 2, 1, 1}, {5, 9, 7, 8});
  expect_values(out[1], {2, 2, 1, 1}, {1, 4, 10, 15});
}

TEST(PoolKernel, AveragePoolPadsAndCountIncludePad) {
  Tensor x = ft({1, 1, 3, 3}, iota(9, 1));
  ir::Node n = node("AveragePool", 1);
  n.set_attr_ints("kernel_shape", {2, 2});
  n.set_attr_ints("pads", {1, 1, 0, 0});
  expect_values(run(n, 11, {x})[0], {1, 1, 3, 3}, {1, 1.5, 2.5, 2.5, 3, 4, 5.5, 6, 7});
  n.set_attr_int("count_include_pad", 1);
  expect_values(run(n, 11, {x})[0], {1, 1, 3, 3}, {0.25, 0.75, 1.25, 1.25, 3, 4, 2.75, 6, 7});
  // Dilations only from opset 19.
  n.set_attr_ints("dilations", {2, 2});
  EXPECT_THROW(run(n, 18, {x}), Error);
  EXPECT_NO_THROW(run(n, 19, {x}));
}

TEST(PoolKernel, SameUpperAndGlobalPools) {
  Tensor x = ft({1, 1, 2, 3}, {1, 2, 3, 4, 5, 6});
  ir::Node n = node("MaxPool", 1);
  n.set_attr_ints("kernel_shape", {2, 2});
  n.set_attr_string("auto_pad", "SAME_UPPER");
  expect_values(run(n, 11, {x})[0], {1, 1, 2, 3}, {5, 6, 6, 5, 6, 6});
  n.set_attr_string("auto_pad", "SAME_LOWER");
  expect_values(run(n, 11, {x})[0], {1, 1, 2, 3}, {1, 2, 3, 4, 5, 6});
  expect_values(run(node("GlobalAveragePool", 1), 11, {x})[0], {1, 1, 1, 1}, {3.5});
  expect_values(run(node("GlobalMaxPool", 1), 11, {x})[0], {1, 1, 1, 1}, {6});
}

struct PoolCase {
  Shape x, k, s, d, pads;
  std::string auto_pad;
  bool ceil;
};

TEST(PoolKernel, MatchesReferenceOnRandomOddShapes) {
  ThreadGuard tg;
  std::mt19937 rng(77);
  const std::vector<PoolCase> cases = {
      {{1, 3, 7, 9}, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, "", false},
      {{3, 5, 11, 8}, {3, 2}, {2, 3}, {}, {0, 1, 2, 0}, "", true},
      {{1, 7, 9, 9}, {3, 3}, {1, 2}, {2, 2}, {2, 1, 1, 2}, "", true},
      {{3, 4, 10, 7}, {2, 3}, {2, 2}, {}, {}, "SAME_UPPER", false},
      {{1, 5, 9, 10}, {4, 3}, {3, 2}, {}, {}, "SAME_LOWER", false},
      {{1, 3, 8, 9}, {3, 3}, {2, 2}, {}, {}, "VALID", true},
      {{3, 3, 17}, {5}, {2}, {2}, {3, 1}, "", true},
      {{1, 2, 5, 6, 7}, {3, 2, 3}, {2, 2, 1}, {1, 2, 1}, {1, 0, 1, 1, 1, 0}, "", true},
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& c : cases) {
      size_t n = c.k.size();
      Tensor x = rnd(c.x, rng);
      ref::ConvGeom g{1, c.k, c.s, c.d.empty() ? Shape(n, 1) : c.d, Shape(n, 0), Shape(n, 0)};
      Shape os{c.x[0], c.x[1]};
      for (size_t i = 0; i < n; ++i) {
        int64_t in = c.x[2 + i], ek = (c.k[i] - 1) * g.dilations[i] + 1, o;
        if (c.auto_pad == "SAME_UPPER" || c.auto_pad == "SAME_LOWER") {
          o = (in + c.s[i] - 1) / c.s[i];
          int64_t total = std::max<int64_t>(0, (o - 1) * c.s[i] + ek - in);
          g.pads_begin[i] = c.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
          g.pads_end[i] = total - g.pads_begin[i];
        } else {
          if (!c.pads.empty()) g.pads_begin[i] = c.pads[i], g.pads_end[i] = c.pads[n + i];
          int64_t span = in + g.pads_begin[i] + g.pads_end[i] - ek;
          o = c.ceil ? (span + c.s[i] - 1) / c.s[i] + 1 : span / c.s[i] + 1;
          if (c.ceil && (o - 1) * c.s[i] >= in + g.pads_begin[i]) --o;
        }
        os.push_back(o);
      }
      std::string what = fmt::format("pool x{} k{} threads {}", shape_str(c.x), shape_str(c.k), threads);
      for (int op = 0; op < 3; ++op) {
        ir::Node nd = node(op == 0 ? "MaxPool" : "AveragePool", 1, op == 0 ? 2 : 1);
        nd.set_attr_ints("kernel_shape", c.k);
        nd.set_attr_ints("strides", c.s);
        if (!c.d.empty()) nd.set_attr_ints("dilations", c.d);
        if (!c.pads.empty()) nd.set_attr_ints("pads", c.pads);
        if (!c.auto_pad.empty()) nd.set_attr_string("auto_pad", c.auto_pad);
        nd.set_attr_int("ceil_mode", c.ceil);
        if (op == 2) nd.set_attr_int("count_include_pad", 1);
        auto got = run(nd, 19, {x});
        Tensor want(DType::Float, os);
        if (op == 0) {
          Tensor wi(DType::Int64, os);
          ref::max_pool(x, g, want, &wi, 0);
          expect_close(got[0], want, 1e-6, what + " max");
          EXPECT_TRUE(got[1].equals(wi)) << what << " indices";
        } else {
          ref::avg_pool(x, g, op == 2, want);
          expect_close(got[0], want, 1e-5, what + (op == 2 ? " avg incl" : " avg"));
        }
      }
      Tensor gw(DType::Float, Shape(c.x.size(), 1));
      Shape gs = os;
      for (size_t i = 2; i < gs.size(); ++i) gs[i] = 1;
      Tensor gwant(DType::Float, gs);
      Shape full(c.x.begin() + 2, c.x.end());
      ref::avg_pool(x, {1, full, Shape(n, 1), Shape(n, 1), Shape(n, 0), Shape(n, 0)}, false, gwant);
      expect_close(run(node("GlobalAveragePool", 1), 13, {x})[0], gwant, 1e-5, what + " gap");
      ref::max_pool(x, {1, full, Shape(n, 1), Shape(n, 1), Shape(n, 0), Shape(n, 0)}, gwant, nullptr, 0);
      expect_close(run(node("GlobalMaxPool", 1), 13, {x})[0], gwant, 0, what + " gmp");
    }
  }
}

// The separable float MaxPool (the kernel's path for 1-2 spatial axes without Indices) against the per-tap
// row sweeps bitwise, on odd shapes with NaN, -inf and signed zeros; the kernel must take the separable path.
TEST(PoolKernel, SeparableMaxPoolBitwiseEqualsRowSweeps) {
  ThreadGuard tg;
  std::mt19937 rng(2026);
  std::uniform_int_distribution<int> pick(0, 99);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int it = 0; it < 120; ++it) {
      const bool one_d = it % 7 == 6;
      const int64_t kh = one_d ? 1 : 1 + pick(rng) % 13, kw = 1 + pick(rng) % 13;
      const int64_t sh = 1 + pick(rng) % 3, sw = 1 + pick(rng) % 3;
      const int64_t ph = pick(rng) % (kh / 2 + 1), pw = pick(rng) % (kw / 2 + 1);
      const int64_t h = std::max<int64_t>(kh - ph, 1) + 2 * (pick(rng) % 12),
                    w = std::max<int64_t>(kw - pw, 1) + 2 * (pick(rng) % 20) + (pick(rng) % 2) * 33;
      const Shape xs = one_d ? Shape{2, 3, w} : Shape{1 + pick(rng) % 2, 1 + pick(rng) % 4, h | 1, w | 1};
      Tensor x = rnd(xs, rng);
      float* xp = x.data<float>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        int r = pick(rng);
        if (r < 4) xp[i] = std::nanf("");
        else if (r < 7) xp[i] = -std::numeric_limits<float>::infinity();
        else if (r < 10) xp[i] = r % 2 ? 0.0f : -0.0f;
      }
      if (it % 11 == 0) std::fill(xp, xp + x.numel(), std::nanf(""));  // every window NaN: -inf out
      ir::Node nd = node("MaxPool", 1);
      nd.set_attr_ints("kernel_shape", one_d ? Shape{kw} : Shape{kh, kw});
      nd.set_attr_ints("strides", one_d ? Shape{sw} : Shape{sh, sw});
      nd.set_attr_ints("pads", one_d ? Shape{pw, pw / 2} : Shape{ph, pw, ph / 2, pw});
      nd.set_attr_int("ceil_mode", it % 2);
      const std::string what = fmt::format("x{} k{}x{} s{}x{} p{},{} ceil {} threads {}", shape_str(xs), kh, kw, sh,
                                           sw, ph, pw, it % 2, threads);
      Tensor want = exec::max_pool_float(nd, x, exec::MaxPoolPath::Rows);
      Tensor sep = exec::max_pool_float(nd, x, exec::MaxPoolPath::Separable);
      ASSERT_EQ(sep.shape(), want.shape()) << what;
      ASSERT_GT(want.numel(), 0) << what;
      EXPECT_EQ(std::memcmp(sep.data<float>(), want.data<float>(), want.numel() * sizeof(float)), 0) << what;
      Tensor got = run(nd, 12, {x})[0];
      EXPECT_EQ(std::memcmp(got.data<float>(), want.data<float>(), want.numel() * sizeof(float)), 0) << what;
      if (it % 11 == 0) {
        EXPECT_EQ(want.data<float>()[0], -std::numeric_limits<float>::infinity()) << what;
      }
    }
  }
}

// Hand case: a NaN in the window is ignored, -0 before +0 keeps -0 (the first of equal taps in (kh, kw) order).
TEST(PoolKernel, SeparableMaxPoolNanAndSignedZeroHand) {
  const float nan = std::nanf("");
  Tensor x = ft({1, 1, 2, 3}, {nan, -0.0f, 0.0f, -1.0f, 0.0f, nan});
  ir::Node nd = node("MaxPool", 1);
  nd.set_attr_ints("kernel_shape", {2, 2});
  Tensor y = run(nd, 12, {x})[0];
  ASSERT_EQ(y.shape(), (Shape{1, 1, 1, 2}));
  EXPECT_EQ(y.data<float>()[0], 0.0f);
  EXPECT_TRUE(std::signbit(y.data<float>()[0]));  // -0 at (0,1) comes before +0 at (1,1)
  EXPECT_EQ(y.data<float>()[1], 0.0f);
  EXPECT_TRUE(std::signbit(y.data<float>()[1]));  // -0 at (0,1) before +0 at (0,2)
}

TEST(NormKernel, BatchNormHandAndReference) {
  Tensor x = ft({1, 2, 1, 2}, {1, 2, 3, 4});
  Tensor s = ft({2}, {1, 2}), b = ft({2}, {0, 1}), m = ft({2}, {1, 3}), v = ft({2}, {4, 1});
  ir::Node n = node("BatchNormalization", 5);
  n.set_attr_float("epsilon", 0.0f);
  expect_values(run(n, 15, {x, s, b, m, v})[0], {1, 2, 1, 2}, {0, 0.5, 1, 3});
  n.set_attr_int("training_mode", 1);
  EXPECT_THROW(run(n, 15, {x, s, b, m, v}), Error);

  ThreadGuard tg;
  std::mt19937 rng(3);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Tensor xr = rnd({3, 7, 5, 9}, rng);
    Tensor sr = rnd({7}, rng), br = rnd({7}, rng), mr = rnd({7}, rng), vr = rnd({7}, rng, 0.1f, 2.f);
    ir::Node nb = node("BatchNormalization", 5);
    nb.set_attr_float("epsilon", 1e-3f);
    Tensor want(DType::Float, xr.shape());
    ref::batch_norm(xr, sr, br, mr, vr, 1e-3f, want);
    expect_close(run(nb, 9, {xr, sr, br, mr, vr})[0], want, 1e-5, "bn");
    // Opset 7 spatial=0: statistics per element of a sample.
    Tensor s2 = rnd({7, 5, 9}, rng), b2 = rnd({7, 5, 9}, rng), m2 = rnd({7, 5, 9}, rng),
           v2 = rnd({7, 5, 9}, rng, 0.1f, 2.f);
    nb.set_attr_int("spatial", 0);
    ref::batch_norm(xr, s2, b2, m2, v2, 1e-3f, want);
    expect_close(run(nb, 7, {xr, s2, b2, m2, v2})[0], want, 1e-5, "bn spatial=0");
  }
}

TEST(NormKernel, InstanceAndLayerNormMatchReference) {
  ThreadGuard tg;
  std::mt19937 rng(11);
  Tensor hx = ft({1, 1, 4}, {1, 2, 3, 4});
  ir::Node hn = node("InstanceNormalization", 3);
  hn.set_attr_float("epsilon", 0.0f);
  double inv = 1.0 / std::sqrt(1.25);
  expect_values(run(hn, 7, {hx, ft({1}, {2}), ft({1}, {1})})[0], {1, 1, 4},
                {1 - 3 * inv, 1 - inv, 1 + inv, 1 + 3 * inv});
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Tensor x = rnd({3, 5, 7, 3}, rng, -2.f, 3.f);
    Tensor s = rnd({5}, rng), b = rnd({5}, rng);
    Tensor want(DType::Float, x.shape());
    ref::instance_norm(x, s, b, 1e-5f, want);
    expect_close(run(node("InstanceNormalization", 3), 7, {x, s, b})[0], want, 1e-4, "instance norm");
    for (int axis : {-1, 1, 2, -3}) {
      int a = axis < 0 ? axis + 4 : axis;
      Shape ns(x.shape().begin() + a, x.shape().end());
      Tensor ls = rnd(ns, rng), lb = rnd(ns, rng);
      Shape st(x.shape().begin(), x.shape().begin() + a);
      st.resize(4, 1);
      Tensor want_m(DType::Float, st), want_i(DType::Float, st);
      ir::Node ln = node("LayerNormalization", 3, 3);
      ln.set_attr_int("axis", axis);
      ln.set_attr_float("epsilon", 1e-3f);
      ref::layer_norm(x, ls, &lb, a, 1e-3f, want, &want_m, &want_i);
      auto got = run(ln, 17, {x, ls, lb});
      std::string what = fmt::format("layer norm axis {}", axis);
      expect_close(got[0], want, 1e-4, what);
      expect_close(got[1], want_m, 1e-5, what + " mean");
      expect_close(got[2], want_i, 1e-4, what + " inv std");
      // No bias, broadcast scale of shape [last dim], single output.
      Tensor s1 = rnd({x.dim(-1)}, rng);
      ref::layer_norm(x, s1, nullptr, a, 1e-3f, want, nullptr, nullptr);
      ir::Node ln1 = node("LayerNormalization", 2, 1);
      ln1.set_attr_int("axis", axis);
      ln1.set_attr_float("epsilon", 1e-3f);
      expect_close(run(ln1, 18, {x, s1})[0], want, 1e-4, what + " no bias");
      // RMSNormalization (opset 23): no mean, no bias.
      ref::layer_norm(x, ls, nullptr, a, 1e-3f, want, nullptr, nullptr, /*rms=*/true);
      ir::Node rms = node("RMSNormalization", 2, 1);
      rms.set_attr_int("axis", axis);
      rms.set_attr_float("epsilon", 1e-3f);
      expect_close(run(rms, 23, {x, ls})[0], want, 1e-4, what + " rms");
    }
  }
}

// RMSNormalization-23 by hand: x / sqrt(mean(x^2) + epsilon) * scale over the axes from `axis` on.
TEST(NormKernel, RMSNormalizationHand) {
  ir::Node n = node("RMSNormalization", 2, 1);
  n.set_attr_float("epsilon", 0.0f);
  const double r = std::sqrt(12.5);  // rows [3, 4] and [6, 8]: mean squares 12.5 and 50
  expect_values(run(n, 23, {ft({2, 2}, {3, 4, 6, 8}), ft({2}, {1, 2})})[0], {2, 2},
                {3 / r, 8 / r, 6 / (2 * r), 16 / (2 * r)});
  n.set_attr_int("axis", 0);  // one group over all four values: mean square (9 + 16 + 36 + 64) / 4
  const double q = std::sqrt(125.0 / 4);
  expect_values(run(n, 23, {ft({2, 2}, {3, 4, 6, 8}), ft({1}, {1})})[0], {2, 2}, {3 / q, 4 / q, 6 / q, 8 / q});
  n.set_attr_int("stash_type", 10);
  EXPECT_THROW(run(n, 23, {ft({1}, {1}), ft({1}, {1})}), Error);
  EXPECT_EQ(exec::find_kernel("RMSNormalization", 22), nullptr);
  EXPECT_NE(exec::find_kernel("RMSNormalization", 24), nullptr);
}

TEST(SoftmaxKernel, Pre13CoercesTo2DAnd13UsesOneAxis) {
  Tensor x = ft({1, 2, 2}, {0, 1, 2, 3});
  ir::Node n = node("Softmax", 1);
  // opset 11, default axis 1: normalised over all 4 values.
  double z = 1 + std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  expect_values(run(n, 11, {x})[0], {1, 2, 2}, {1 / z, std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z});
  // opset 13, default axis -1: pairs.
  double p = 1 / (1 + std::exp(1.0));
  expect_values(run(n, 13, {x})[0], {1, 2, 2}, {p, 1 - p, p, 1 - p});
  // opset 13, axis 1: along the middle axis.
  n.set_attr_int("axis", 1);
  double q = 1 / (1 + std::exp(2.0));
  expect_values(run(n, 13, {x})[0], {1, 2, 2}, {q, q, 1 - q, 1 - q});
  ir::Node l = node("LogSoftmax", 1);
  expect_values(run(l, 13, {x})[0], {1, 2, 2}, {std::log(p), std::log(1 - p), std::log(p), std::log(1 - p)});
}

TEST(SoftmaxKernel, MatchesReferenceOnRandomShapes) {
  ThreadGuard tg;
  std::mt19937 rng(21);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Tensor x = rnd({3, 5, 7, 9}, rng, -10.f, 10.f);
    for (int opset : {7, 11, 13, 21})
      for (int axis : {0, 1, 2, 3, -1, -3})
        for (bool log : {false, true}) {
          ir::Node n = node(log ? "LogSoftmax" : "Softmax", 1);
          n.set_attr_int("axis", axis);
          Tensor want(DType::Float, x.shape());
          ref::softmax(x, axis < 0 ? axis + 4 : axis, opset, log, want);
          expect_close(run(n, opset, {x})[0], want, 1e-5,
                       fmt::format("{} opset {} axis {}", n.op_type, opset, axis));
        }
  }
}

}  // namespace
}  // namespace oq
