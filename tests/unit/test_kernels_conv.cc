// Conv / ConvTranspose kernels: hand-computed cases and the oneDNN path against the naive reference on
// random odd shapes (groups, depthwise, strides, dilations, asymmetric pads, auto_pad, 1-D/2-D/3-D).
#include <algorithm>
#include <cmath>
#include <limits>

#include "compute_kernel_test_util.h"
#include "conv_test_util.h"
#include "deconv_test_util.h"
#include "exec/kernels/compute_ref.h"
#include "exec/layout.h"

namespace oq {
namespace {

using namespace ctest;
namespace ref = exec::ref;

TEST(ConvKernel, Hand3x3WithAndWithoutPadding) {
  Tensor x = ft({1, 1, 5, 5}, iota(25));
  Tensor w = ft({1, 1, 3, 3}, std::vector<float>(9, 1.f));
  ir::Node n = node("Conv", 2);
  n.set_attr_ints("kernel_shape", {3, 3});
  n.set_attr_ints("pads", {1, 1, 1, 1});
  expect_values(run(n, 11, {x, w})[0], {1, 1, 5, 5},
                {12, 21, 27, 33, 24, 33, 54, 63, 72, 51, 63, 99, 108, 117, 81, 93, 144, 153, 162, 111, 72, 111, 117,
                 123, 84});
  n.set_attr_ints("pads", {0, 0, 0, 0});
  expect_values(run(n, 11, {x, w})[0], {1, 1, 3, 3}, {54, 63, 72, 99, 108, 117, 144, 153, 162});
  n.set_attr_ints("pads", {1, 1, 1, 1});
  n.set_attr_ints("strides", {2, 2});
  expect_values(run(n, 11, {x, w})[0], {1, 1, 3, 3}, {12, 27, 24, 63, 108, 81, 72, 117, 84});
}

TEST(ConvKernel, HandBiasGroupsAndSameLower) {
  // Two groups of one channel each, 1-D, kernel [1, 1] with bias, SAME_LOWER padding with stride 1.
  Tensor x = ft({1, 2, 3}, {1, 2, 3, 10, 20, 30});
  Tensor w = ft({2, 1, 2}, {1, 1, 2, -1});
  Tensor b = ft({2}, {0.5f, -1});
  ir::Node n = node("Conv", 3);
  n.set_attr_int("group", 2);
  n.set_attr_string("auto_pad", "SAME_LOWER");
  // SAME_LOWER puts the single pad at the start: out[i] = x[i-1]*w0 + x[i]*w1.
  expect_values(run(n, 7, {x, w, b})[0], {1, 2, 3}, {1.5, 3.5, 5.5, -11, -1, 9});
  n.set_attr_string("auto_pad", "SAME_UPPER");
  expect_values(run(n, 7, {x, w, b})[0], {1, 2, 3}, {3.5, 5.5, 3.5, -1, 9, 59});
  n.set_attr_string("auto_pad", "VALID");
  expect_values(run(n, 7, {x, w, b})[0], {1, 2, 2}, {3.5, 5.5, -1, 9});
}

TEST(ConvKernel, RejectsBadShapes) {
  ir::Node n = node("Conv", 2);
  n.set_attr_int("group", 2);
  Tensor x = ft({1, 3, 4, 4}, iota(48));
  Tensor w = ft({2, 1, 3, 3}, iota(18));
  EXPECT_THROW(run(n, 11, {x, w}), Error);  // 3 channels vs 1*2
  n.set_attr_int("group", 1);
  n.set_attr_ints("kernel_shape", {2, 2});
  Tensor w3 = ft({2, 3, 3, 3}, iota(54));
  EXPECT_THROW(run(n, 11, {x, w3}), Error);  // kernel_shape disagrees with W
}

TEST(ConvKernel, MatchesReferenceOnRandomOddShapes) {
  ThreadGuard tg;
  std::mt19937 rng(1234);
  const std::vector<ConvCase> cases = {
      {{1, 3, 7, 9}, 5, 1, {3, 3}, {}, {}, {1, 1, 1, 1}, "", true},
      {{3, 5, 11, 7}, 7, 1, {3, 2}, {2, 2}, {}, {0, 1, 2, 0}, "", true},
      {{1, 6, 9, 9}, 9, 3, {3, 3}, {1, 2}, {2, 2}, {2, 1, 1, 2}, "", false},
      {{3, 7, 10, 13}, 7, 7, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, "", true},       // depthwise, stride 2
      {{1, 9, 8, 8}, 18, 9, {5, 5}, {1, 1}, {2, 2}, {}, "SAME_UPPER", true},    // depthwise x2, dilation 2
      // depthwise NCHW kernel (conv_depthwise.cc): strides 1/2/3, asymmetric and oversized pads, dilation,
      // a kernel wider than the image
      {{2, 13, 15, 17}, 13, 13, {3, 3}, {}, {}, {1, 1, 1, 1}, "", true},
      {{1, 11, 16, 9}, 11, 11, {3, 3}, {2, 2}, {}, {0, 0, 1, 1}, "", false},
      {{3, 5, 12, 13}, 5, 5, {5, 3}, {3, 2}, {2, 1}, {3, 4, 2, 3}, "", true},
      {{1, 6, 3, 2}, 6, 6, {5, 5}, {1, 1}, {}, {2, 2, 2, 2}, "", true},
      {{2, 17, 7, 19}, 17, 17, {3, 5}, {1, 2}, {}, {}, "SAME_UPPER", false},
      {{1, 4, 9, 70}, 4, 4, {3, 3}, {}, {}, {1, 1, 1, 1}, "", true},             // wide rows: per-row path
      {{2, 3, 8, 81}, 3, 3, {3, 3}, {2, 2}, {}, {0, 1, 1, 0}, "", true},
      {{1, 5, 12, 40}, 5, 5, {3, 3}, {1, 1}, {2, 2}, {2, 2, 2, 2}, "", false},  // dilated 3x3
      {{1, 5, 9, 10}, 3, 1, {4, 3}, {2, 3}, {}, {}, "SAME_LOWER", false},
      {{3, 4, 9, 12}, 6, 2, {3, 3}, {2, 1}, {}, {}, "VALID", true},
      {{1, 32, 14, 14}, 17, 1, {1, 1}, {}, {}, {}, "", true},                    // pointwise
      {{3, 5, 33, 35}, 7, 1, {1, 1}, {}, {}, {}, "", false},                     // pointwise, column split
      {{3, 6, 9, 11}, 5, 1, {1, 1}, {2, 2}, {}, {}, "", true},                   // strided pointwise
      {{3, 3, 17}, 5, 1, {5}, {2}, {2}, {3, 1}, "", true},                      // 1-D
      {{1, 4, 23}, 4, 4, {3}, {1}, {}, {}, "SAME_UPPER", false},               // 1-D depthwise
      {{1, 3, 5, 6, 7}, 5, 1, {3, 2, 3}, {1, 2, 1}, {}, {1, 0, 1, 1, 1, 0}, "", true},  // 3-D
      {{3, 4, 6, 5, 5}, 6, 2, {2, 3, 3}, {2, 1, 2}, {1, 2, 1}, {}, "SAME_UPPER", true},
  };
  for (int threads : {1, 2})
    for (const auto& c : cases) check_conv_case(c, rng, threads);
}

// An activation fused by the executor's optimizer (attributes set by ir::passes::fuse_conv_activation) on every
// path: sgemm (pointwise), depthwise NCHW (3x3, 5x5, 7x7, 1-D), oneDNN (with post-ops), 1-D and 3-D.
TEST(ConvKernel, FusedActivationOnEveryPath) {
  ThreadGuard tg;
  std::mt19937 rng(99);
  const std::vector<Act> acts = {{"Relu", 0.f, 0.f}, {"LeakyRelu", 0.1f, 0.f}, {"Clip", -0.25f, 0.5f}};
  const std::vector<ConvCase> cases = {
      {{2, 6, 9, 11}, 8, 1, {1, 1}, {}, {}, {}, "", true},             // pointwise
      {{2, 6, 9, 11}, 6, 6, {3, 3}, {2, 2}, {}, {1, 0, 1, 1}, "", true},  // depthwise
      {{1, 5, 9, 10}, 5, 5, {7, 7}, {}, {}, {3, 3, 3, 3}, "", true},      // depthwise 7x7, small plane
      {{1, 3, 8, 40}, 3, 3, {5, 5}, {2, 2}, {}, {2, 2, 2, 2}, "", true},  // depthwise 5x5 stride 2, per row
      {{2, 4, 33}, 8, 4, {9}, {}, {}, {4, 4}, "", true},                  // 1-D depthwise, multiplier 2
      {{2, 6, 9, 11}, 20, 2, {3, 3}, {}, {}, {1, 1, 1, 1}, "", false},    // oneDNN, groups
      {{2, 5, 13}, 7, 1, {3}, {}, {}, {1, 1}, "", true},                 // 1-D
      {{1, 3, 5, 6, 7}, 5, 1, {3, 2, 3}, {}, {}, {1, 0, 1, 1, 1, 0}, "", true},  // 3-D
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& c : cases)
      for (const auto& a : acts) {
        auto [ws, x, w, b, n] = conv_inputs(c, rng);
        const Tensor want = fused_reference(c, a, n, x, w, b);
        expect_close(run(n, 13, {x, w, b})[0], want, 1e-4,
                     fmt::format("{} x{} group {} threads {}", a.kind, shape_str(c.x), c.group, threads));
      }
  }
}

// The channel-blocked Conv (conv_blocked.cc, used inside the executor's blocked chains): NCHW -> blocks ->
// Conv on blocks -> NCHW with the layout kernels, against the naive reference, for both block sizes, channel
// counts that are not multiples of the block, plain and blocked sources, fused activations, 1 and 2 threads.
TEST(ConvKernel, BlockedMatchesReference) {
  ThreadGuard tg;
  std::mt19937 rng(4321);
  const std::vector<ConvCase> cases = {
      {{1, 3, 17, 19}, 24, 1, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, "", true},        // stem: 3 channels
      {{2, 24, 9, 11}, 24, 24, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}, "", true},       // depthwise
      {{1, 33, 10, 7}, 33, 33, {3, 3}, {2, 2}, {2, 2}, {2, 1, 2, 3}, "", false},  // depthwise, dilated, strided
      {{3, 20, 7, 9}, 44, 1, {1, 1}, {}, {}, {}, "", true},                       // pointwise
      {{1, 17, 6, 13}, 17, 1, {1, 1}, {2, 2}, {}, {}, "", false},                 // strided pointwise
      {{2, 16, 9, 10}, 16, 1, {3, 3}, {2, 2}, {}, {}, "SAME_UPPER", true},
      {{1, 9, 12, 12}, 40, 1, {5, 5}, {1, 1}, {1, 2}, {2, 2, 2, 2}, "", true},
  };
  auto layout = [](const char* op, const Tensor& x, int64_t block, int64_t channels) {
    ir::Node n = node(op, 1);
    n.set_attr_int(exec::kBlockAttr, block);
    if (channels) n.set_attr_int("channels", channels);
    return run(n, 13, {x})[0];
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int64_t block : {8, 16})
      for (const auto& c : cases)
        for (bool src_blocked : {false, true})
          for (const char* act : {"", "Clip"}) {
            auto [ws, x, w, b, n] = conv_inputs(c, rng);
            n.set_attr_int(exec::kBlockAttr, block);
            n.set_attr_int(exec::kBlockedSrcAttr, src_blocked ? 1 : 0);
            if (*act) {
              n.set_attr_string("_oq_fused_activation", act);
              n.set_attr_float("_oq_fused_activation_alpha", 0.f);
              n.set_attr_float("_oq_fused_activation_beta", 0.5f);
            }
            Shape os;
            ref::ConvGeom g = conv_geom(c, os);
            Tensor want(DType::Float, os);
            ref::conv(x, w, c.bias ? &b : nullptr, g, want);
            if (*act)
              for (float& v : want.span<float>()) v = std::min(std::max(v, 0.f), 0.5f);
            Tensor xin = src_blocked ? layout(exec::kToBlockedOp, x, block, 0) : x;
            Tensor yb = run(n, 13, c.bias ? std::vector<Tensor>{xin, w, b} : std::vector<Tensor>{xin, w})[0];
            ASSERT_EQ(yb.rank(), 5);
            expect_close(layout(exec::kFromBlockedOp, yb, block, c.m), want, 1e-4,
                         fmt::format("x{} group {} block {} src_blocked {} act '{}' threads {}", shape_str(c.x),
                                     c.group, block, src_blocked, act, threads));
          }
  }
}

// oneDNN's Relu / Clip post-ops turn NaN into the bound (vmaxps(x, 0) returns 0 for a NaN x); ORT keeps the NaN
// (and LeakyRelu(0)(-inf) is 0 * -inf = NaN there). With inputs that are not all finite the kernels run the
// primitive without the post-op and apply the activation themselves (FusedActivation::post_op_needs_finite).
// `want`: the reference Conv with the activation as ONNX defines it; NaN / inf must sit at the same places.
void expect_same_specials(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(shape_str(got.shape()), shape_str(want.shape())) << what;
  const std::vector<double> g = got.to_doubles(), w = want.to_doubles();
  int bad = 0;
  for (size_t i = 0; i < w.size() && bad < 5; ++i) {
    const bool same = std::isnan(w[i]) ? std::isnan(g[i])
                      : std::isinf(w[i]) ? g[i] == w[i]
                                         : std::fabs(g[i] - w[i]) <= 1e-4 * std::max(1.0, std::fabs(w[i]));
    if (!same) {
      ADD_FAILURE() << what << " at " << i << ": got " << g[i] << " want " << w[i];
      ++bad;
    }
  }
}

TEST(ConvKernel, FusedActivationKeepsNaN) {
  // By hand (the QA case): [NaN 1 -2 3], 3x3 kernel with only its centre 1, pads 1: the first two outputs read
  // the NaN (times 0), so Relu / Clip(0, 6) give [NaN NaN 0 3].
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> k9(9, 0.f);
  k9[4] = 1.f;
  for (const char* act : {"Relu", "Clip", "LeakyRelu"}) {
    ir::Node n = node("Conv", 2);
    n.set_attr_ints("pads", {1, 1, 1, 1});
    n.set_attr_string("_oq_fused_activation", act);
    n.set_attr_float("_oq_fused_activation_alpha", 0.f);
    n.set_attr_float("_oq_fused_activation_beta", 6.f);
    Tensor y = run(n, 13, {ft({1, 1, 1, 4}, {nan, 1, -2, 3}), ft({1, 1, 3, 3}, k9)})[0];
    const std::vector<double> v = y.to_doubles();
    ASSERT_EQ(v.size(), 4u);
    EXPECT_TRUE(std::isnan(v[0]) && std::isnan(v[1])) << act << " " << v[0] << " " << v[1];
    EXPECT_EQ(v[2], 0.0) << act;
    EXPECT_EQ(v[3], 3.0) << act;
  }
  // Random inputs with NaN and +-inf on the oneDNN paths (NCHW and channel-blocked), against the reference.
  ThreadGuard tg;
  std::mt19937 rng(2024);
  const std::vector<Act> acts = {{"Relu", 0.f, 0.f}, {"Clip", 0.f, 6.f}, {"Clip", 0.5f, 2.f}, {"LeakyRelu", 0.f, 0.f}};
  const std::vector<ConvCase> cases = {
      {{1, 16, 7, 9}, 16, 1, {3, 3}, {}, {}, {1, 1, 1, 1}, "", true},
      {{2, 5, 6, 7}, 3, 1, {3, 3}, {2, 2}, {}, {1, 0, 1, 1}, "", false},
      {{1, 17, 5, 6}, 17, 1, {1, 1}, {2, 2}, {}, {}, "", true},
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& c : cases)
      for (const auto& a : acts)
        for (int64_t block : {0, 8, 16}) {
          auto [ws, x, w, b, n] = conv_inputs(c, rng);
          float* px = x.data<float>();
          px[1] = nan, px[x.numel() / 2] = inf, px[x.numel() - 3] = -inf;
          const Tensor want = fused_reference(c, a, n, x, w, b);
          const std::string what = fmt::format("{} x{} block {} threads {}", a.kind, shape_str(c.x), block, threads);
          const std::vector<Tensor> in = c.bias ? std::vector<Tensor>{x, w, b} : std::vector<Tensor>{x, w};
          if (!block) {
            expect_same_specials(run(n, 13, in)[0], want, what);
            continue;
          }
          n.set_attr_int(exec::kBlockAttr, block);
          Tensor yb = run(n, 13, in)[0];
          ASSERT_EQ(yb.rank(), 5);
          const int64_t nblk = yb.dim(1), hw = yb.dim(2) * yb.dim(3);
          for (int64_t s = 0; s < yb.dim(0); ++s)  // padding channels stay 0 (Clip(0.5, 2) would give 0.5)
            for (int64_t i = 0; i < hw; ++i)
              for (int64_t l = c.m - (nblk - 1) * block; l < block; ++l)
                ASSERT_EQ(yb.data<float>()[((s * nblk + nblk - 1) * hw + i) * block + l], 0.f) << what;
          ir::Node back = node(exec::kFromBlockedOp, 1);
          back.set_attr_int(exec::kBlockAttr, block);
          back.set_attr_int("channels", c.m);
          expect_same_specials(run(back, 13, {yb})[0], want, what);
        }
  }
}

TEST(ConvKernel, NewWeightsAreNotServedFromTheCache) {
  std::mt19937 rng(7);
  ir::Node n = node("Conv", 2);
  auto f = exec::find_kernel("Conv", 13);
  ASSERT_NE(f, nullptr);
  auto k = f(exec::KernelInit{n, 13});
  Tensor x = rnd({1, 8, 6, 6}, rng);
  for (int rep = 0; rep < 3; ++rep) {
    Tensor w = rnd({16, 8, 3, 3}, rng);  // a fresh tensor each time, as a computed weight would be
    std::vector<Tensor> out(1);
    k->run({&x, &w}, out);
    Tensor want(DType::Float, {1, 16, 4, 4});
    ref::conv(x, w, nullptr, {1, {3, 3}, {1, 1}, {1, 1}, {0, 0}, {0, 0}}, want);
    expect_close(out[0], want, 1e-4, "rep " + std::to_string(rep));
  }
}

TEST(ConvTransposeKernel, Hand3x3) {
  Tensor x = ft({1, 1, 3, 3}, iota(9));
  Tensor w = ft({1, 2, 3, 3}, std::vector<float>(18, 1.f));
  ir::Node n = node("ConvTranspose", 2);
  std::vector<double> ch = {0, 1, 3, 3, 2, 3, 8, 15, 12, 7, 9, 21, 36, 27, 15, 9, 20, 33, 24, 13, 6, 13, 21, 15, 8};
  std::vector<double> want = ch;
  want.insert(want.end(), ch.begin(), ch.end());
  expect_values(run(n, 11, {x, w})[0], {1, 2, 5, 5}, want);
  // Stride 3 with output_shape [10, 8]: the 9x9 full result is cropped/extended (pads split, extra row zero).
  n.set_attr_ints("strides", {3, 2});
  n.set_attr_ints("output_shape", {10, 8});
  Tensor y = run(n, 11, {x, w})[0];
  ASSERT_EQ(shape_str(y.shape()), "[1,2,10,8]");
  std::vector<double> v = y.to_doubles();
  EXPECT_EQ(v[9 * 8 + 3], 0.0);  // row 9 lies beyond the last contribution
  EXPECT_EQ(v[0], 0.0);
  EXPECT_EQ(v[1], 0.0);
  EXPECT_EQ(v[2], 1.0);  // x[0,1] lands at column 2
}

TEST(ConvTransposeKernel, OutputShapeOddPaddingGoesFirst) {
  // Stride 2, 2x2 ones kernel on a 3x3 input: the full result is 6x6 with full[2i+a][2j+b] = x[i][j]; output_shape
  // [5, 5] leaves a total padding of 1, which the spec (auto_pad NOTSET) puts at the start: y[r][c] =
  // full[r+1][c+1] = x[(r+1)/2][(c+1)/2] (ORT computes the same).
  Tensor x = ft({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Tensor w = ft({1, 1, 2, 2}, {1, 1, 1, 1});
  ir::Node n = node("ConvTranspose", 2);
  n.set_attr_ints("strides", {2, 2});
  n.set_attr_ints("output_shape", {5, 5});
  std::vector<double> want;
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 5; ++c) want.push_back(1 + 3 * ((r + 1) / 2) + (c + 1) / 2);
  expect_values(run(n, 11, {x, w})[0], {1, 1, 5, 5}, want);
}

TEST(ConvTransposeKernel, SameWithKernelBelowStride) {
  // in 4, kernel 1 (weight 1), stride 3, SAME_UPPER / SAME_LOWER: the spec's output in * stride = 12 would need a
  // total padding of (4 - 1) * 3 + 1 - 12 = -2; ORT (and onnx shape inference) clamp it to 0: 10 values, the
  // inputs 3 apart. With output_shape [12] the data stays at the start (ORT), the last two values are 0.
  for (const char* ap : {"SAME_UPPER", "SAME_LOWER"}) {
    ir::Node n = node("ConvTranspose", 2);
    n.set_attr_ints("strides", {3});
    n.set_attr_string("auto_pad", ap);
    expect_values(run(n, 11, {ft({1, 1, 4}, {1, 2, 3, 4}), ft({1, 1, 1}, {1})})[0], {1, 1, 10},
                  {1, 0, 0, 2, 0, 0, 3, 0, 0, 4});
    n.set_attr_ints("output_shape", {12});
    expect_values(run(n, 11, {ft({1, 1, 4}, {1, 2, 3, 4}), ft({1, 1, 1}, {1})})[0], {1, 1, 12},
                  {1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0});
  }
  // kernel 2, stride 3, output_padding 2: full 3 * 3 + 2 + 2 = 13 >= in * stride: the spec's 12, total padding 1
  // (SAME_UPPER at the end, SAME_LOWER at the start).
  ir::Node n = node("ConvTranspose", 2);
  n.set_attr_ints("strides", {3});
  n.set_attr_ints("output_padding", {2});
  n.set_attr_string("auto_pad", "SAME_UPPER");
  expect_values(run(n, 11, {ft({1, 1, 4}, {1, 2, 3, 4}), ft({1, 1, 2}, {1, 1})})[0], {1, 1, 12},
                {1, 1, 0, 2, 2, 0, 3, 3, 0, 4, 4, 0});
  n.set_attr_string("auto_pad", "SAME_LOWER");
  expect_values(run(n, 11, {ft({1, 1, 4}, {1, 2, 3, 4}), ft({1, 1, 2}, {1, 1})})[0], {1, 1, 12},
                {1, 0, 2, 2, 0, 3, 3, 0, 4, 4, 0, 0});
}

TEST(ConvTransposeKernel, HandOutputPadding1D) {
  // in 2, stride 2, kernel 2, output_padding 1: out 5; the last position only gets the bias.
  Tensor x = ft({1, 1, 2}, {1, 2});
  Tensor w = ft({1, 1, 2}, {1, 10});
  Tensor b = ft({1}, {0.5f});
  ir::Node n = node("ConvTranspose", 3);
  n.set_attr_ints("strides", {2});
  n.set_attr_ints("output_padding", {1});
  expect_values(run(n, 11, {x, w, b})[0], {1, 1, 5}, {1.5, 10.5, 2.5, 20.5, 0.5});
}

TEST(ConvTransposeKernel, MatchesReferenceOnRandomOddShapes) {
  ThreadGuard tg;
  std::mt19937 rng(4321);
  const std::vector<DeconvCase> cases = {
      {{1, 3, 5, 7}, 5, 1, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, {1, 1}, {}, "", true},
      {{3, 4, 6, 5}, 3, 2, {3, 2}, {2, 3}, {}, {0, 1, 1, 0}, {}, {}, "", true},
      {{1, 6, 7, 7}, 1, 6, {3, 3}, {2, 2}, {2, 1}, {2, 1, 1, 2}, {1, 0}, {}, "", false},  // depthwise, dilation
      {{1, 5, 4, 6}, 3, 1, {3, 3}, {2, 2}, {}, {}, {}, {}, "SAME_UPPER", true},
      {{3, 2, 5, 5}, 3, 1, {4, 3}, {3, 2}, {}, {}, {}, {}, "SAME_LOWER", false},
      {{1, 3, 5, 4}, 2, 1, {3, 3}, {2, 2}, {}, {}, {}, {12, 9}, "", true},  // output_shape
      {{1, 3, 5, 4}, 2, 1, {3, 3}, {3, 3}, {}, {0, 0, 0, 0}, {2, 1}, {}, "", true},  // output_padding > pads
      {{3, 3, 11}, 4, 1, {5}, {3}, {2}, {2, 1}, {2}, {}, "", true},  // 1-D
      {{1, 4, 3, 4, 5}, 3, 2, {2, 3, 3}, {2, 1, 2}, {}, {0, 1, 1, 1, 0, 0}, {1, 0, 0}, {}, "", true},  // 3-D
  };
  for (int threads : {1, 2})
    for (const auto& c : cases) check_deconv_case(c, rng, threads);
}

}  // namespace
}  // namespace oq
