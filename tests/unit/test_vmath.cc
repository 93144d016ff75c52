// The vectorised math (exec/kernels/vmath.h) against glibc's libm, the naive reference (the formulas of
// activation.cc's float_loop): a dense sweep of float bit patterns (every 257th, so every exponent and sign) plus
// the tails, thresholds, NaN, +-inf and denormals, with the ulp bounds vmath.h states (log and sqrt too); the
// Softmax passes and rows on odd lengths (many short rows in one call, the strided-axis passes); the Pow fast
// paths bit for bit; floats_to_halves against float_to_half.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/half_array.h"
#include "exec/kernels/vmath.h"
#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;
namespace vm = oq::exec::vmath;

namespace {

// Inputs: every 257th bit pattern, the specials, and a fine grid over [-12, 12] (where the functions bend).
std::vector<float> sweep_inputs() {
  std::vector<float> x;
  for (uint64_t b = 0; b < (1ull << 32); b += 257) x.push_back(std::bit_cast<float>(static_cast<uint32_t>(b)));
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {0.f, -0.f, inf, -inf, std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min(),
                  std::numeric_limits<float>::min(), -std::numeric_limits<float>::min(),
                  std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest(), 88.7228f, 88.72284f,
                  88.8f, 89.f, -87.33655f, -87.4f, -103.2789f, -103.97208f, -103.9721f, -104.f, -110.f, 0.625f,
                  0.62499994f, 0.921875f, 0.92187494f, 3.925f, 3.9250002f, 9.f, -9.f})
    x.push_back(v);
  for (float v = -12.f; v <= 12.f; v += 1.f / 4096) x.push_back(v);
  for (size_t i = 0, n = x.size(); i < n; ++i) x.push_back(-x[i]);
  return x;
}

// Distance in representable floats (0 for two NaNs, huge for a NaN against a number).
double ulps(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : 1e30;
  auto key = [](float v) {
    const int64_t i = std::bit_cast<int32_t>(v);
    return i < 0 ? static_cast<int64_t>(INT32_MIN) - i : i;
  };
  return std::fabs(static_cast<double>(key(a) - key(b)));
}

template <typename Fast, typename Ref>
double max_ulps(const std::vector<float>& x, Fast fast, Ref ref, float* worst_x) {
  std::vector<float> y(x.size());
  fast(x.data(), y.data(), static_cast<int64_t>(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = ulps(y[i], ref(x[i]));
    if (d > worst) {
      worst = d;
      *worst_x = x[i];
    }
  }
  return worst;
}

float sigmoid_ref(float v) {  // activation.cc's float_loop
  const float e = std::exp(-std::fabs(v));
  return v >= 0 ? 1.f / (1.f + e) : e / (1.f + e);
}

float softplus_ref(float v) { return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)); }

TEST(VMath, ExpTanhErfSigmoidSoftplusWithinStatedUlpsOfLibm) {
  const std::vector<float> x = sweep_inputs();
  struct Case {
    const char* name;
    void (*fast)(const float*, float*, int64_t);
    float (*ref)(float);
    double bound;
  };
  const Case cases[] = {{"exp", vm::exp, [](float v) { return std::exp(v); }, 1},
                        {"tanh", vm::tanh, [](float v) { return std::tanh(v); }, 2},
                        {"erf", vm::erf, [](float v) { return std::erf(v); }, 3},
                        {"sigmoid", vm::sigmoid, sigmoid_ref, 2},
                        {"softplus", vm::softplus, softplus_ref, 4}};
  for (const Case& c : cases) {
    float wx = 0;
    const double worst = max_ulps(x, c.fast, c.ref, &wx);
    EXPECT_LE(worst, c.bound) << c.name << ": " << worst << " ulps at x = " << wx;
  }
}

TEST(VMath, CompositesWithinBounds) {
  const std::vector<float> x = sweep_inputs();
  std::vector<float> y(x.size());
  const int64_t n = static_cast<int64_t>(x.size());
  // Where the formula cancels (Gelu's 1 + erf(x / sqrt 2) for x < -1, Elu's exp(x) - 1 near 0) the bound is
  // absolute: 4 ulps of max(|x|, 1).
  auto check = [&](const char* name, auto ref, double ulp_bound) {
    for (size_t i = 0; i < x.size(); ++i) {
      const float r = ref(x[i]);
      if (ulps(y[i], r) <= ulp_bound) continue;
      const double slack = 4 * std::ldexp(1.0, std::ilogb(std::max(std::fabs(x[i]), 1.f)) - 23);
      ASSERT_LE(std::fabs(static_cast<double>(y[i]) - r), slack) << name << " at x = " << x[i] << ": " << y[i]
                                                                  << " vs " << r;
    }
  };
  vm::gelu(x.data(), y.data(), n);
  check("gelu", [](float v) { return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752440f)); }, 4);
  vm::gelu_tanh(x.data(), y.data(), n);
  check("gelu_tanh", [](float v) {
    return 0.5f * v * (1.f + std::tanh(0.79788456080286535588f * (v + 0.044715f * v * v * v)));
  }, 4);
  vm::swish(x.data(), y.data(), n, 1.7f);
  check("swish", [](float v) { return v * sigmoid_ref(1.7f * v); }, 3);
  vm::elu(x.data(), y.data(), n, 0.7f);
  check("elu", [](float v) { return v < 0 ? 0.7f * (std::exp(v) - 1.f) : v; }, 3);
  // Mish: 6 ulps while softplus(x) is a normal float; below x = -87.3 it is a denormal (fewer bits, in libm's
  // formula too): within |x| 2^-147.
  vm::mish(x.data(), y.data(), n);
  for (size_t i = 0; i < x.size(); ++i) {
    const float sp = softplus_ref(x[i]), r = x[i] * std::tanh(sp);
    if (std::fabs(sp) >= std::numeric_limits<float>::min() || std::isnan(r)) {
      ASSERT_LE(ulps(y[i], r), 6) << "mish at x = " << x[i] << ": " << y[i] << " vs " << r;
    } else {
      ASSERT_LE(std::fabs(static_cast<double>(y[i]) - r), std::fabs(x[i]) * std::ldexp(1.0, -147)) << x[i];
    }
  }
  // LeakyRelu is exact, -0 and NaN included.
  vm::leaky_relu(x.data(), y.data(), n, 0.1f);
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = x[i] < 0 ? 0.1f * x[i] : x[i];
    ASSERT_TRUE(std::bit_cast<uint32_t>(y[i]) == std::bit_cast<uint32_t>(want) || (std::isnan(y[i]) && std::isnan(want)))
        << x[i];
  }
}

TEST(VMath, LimitsAndSpecialsThroughTheKernels) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float dmin = std::numeric_limits<float>::denorm_min();
  Tensor x = ft({9}, {-inf, inf, nan, 0.f, -0.f, -100.f, 100.f, dmin, -dmin});
  auto run = [&](const char* op) { return run_kernel(make_node(op, 1), 20, {x})[0]; };
  const Tensor ex = run("Exp");  // kept: data() of a temporary would dangle
  const float* e = ex.data<float>();
  EXPECT_EQ(e[0], 0.f);
  EXPECT_EQ(e[1], inf);
  EXPECT_TRUE(std::isnan(e[2]));
  EXPECT_EQ(e[3], 1.f);
  EXPECT_EQ(e[5], std::exp(-100.f));  // a denormal, rounded once
  EXPECT_EQ(e[6], inf);
  for (const char* op : {"Sigmoid", "Tanh", "Erf", "Gelu"}) {
    Tensor y = run(op);
    const float* p = y.data<float>();
    SCOPED_TRACE(op);
    const bool sig = std::string(op) == "Sigmoid", gelu = std::string(op) == "Gelu";
    if (gelu) EXPECT_TRUE(std::isnan(p[0]));  // -inf * (1 + erf(-inf)) = -inf * 0, as libm's formula gives
    else EXPECT_EQ(p[0], sig ? 0.f : -1.f);
    EXPECT_EQ(p[1], gelu ? inf : 1.f);
    EXPECT_TRUE(std::isnan(p[2]));
    EXPECT_EQ(p[5], sig ? std::exp(-100.f) / (1.f + std::exp(-100.f)) : gelu ? 0.f : -1.f);
    if (!sig) {  // the zero's sign is kept
      EXPECT_EQ(std::bit_cast<uint32_t>(p[3]), 0u);
      EXPECT_EQ(std::bit_cast<uint32_t>(p[4]), 0x80000000u);
    }
  }
}

TEST(VMath, SoftmaxPassesOnOddLengths) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-30.f, 30.f);
  for (int64_t n : {1, 3, 15, 16, 17, 91, 197, 1000, 4099}) {
    std::vector<float> x(n), y(n);
    for (float& v : x) v = u(rng);
    float m = -std::numeric_limits<float>::infinity();
    for (float v : x) m = std::max(m, v);
    EXPECT_EQ(vm::max(x.data(), n), m) << n;
    const float s = vm::exp_shifted_sum(x.data(), y.data(), n, m);
    double want = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double r = std::exp(static_cast<double>(x[i] - m));  // x - m rounded to float, as the pass does
      EXPECT_NEAR(y[i], r, 2e-7 * r + 1e-45) << n << " " << i;
      want += r;
    }
    EXPECT_NEAR(s, want, 1e-6 * want) << n;
    // The whole row against float64 (x - max rounded to float, as the kernel computes it).
    std::vector<float> p(n), lp(n);
    vm::softmax_row(x.data(), p.data(), n, false);
    vm::softmax_row(x.data(), lp.data(), n, true);
    for (int64_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(x[i] - m);
      EXPECT_NEAR(p[i], std::exp(d) / want, 1e-6 * std::exp(d) / want + 1e-45) << n << " " << i;
      EXPECT_NEAR(lp[i], d - std::log(want), 1e-6 * std::fabs(d - std::log(want)) + 1e-6) << n << " " << i;
    }
  }
  std::vector<float> x = {std::nanf(""), 1.f, 2.f};  // NaN is skipped by the max, as std::max skips it
  EXPECT_EQ(vm::max(x.data(), 3), 2.f);
  EXPECT_EQ(vm::max(x.data(), 0), -std::numeric_limits<float>::infinity());
}

// Log and Sqrt (activation.cc's float32 path since this session; libm per element before): log within 1 ulp of
// glibc's logf over the sweep, every 61st denormal, a fine grid around 1 and sqrt(2) (where the reduction switches
// k) and the specials; sqrt bit for bit (NaN for negatives, -0 for -0).
TEST(VMath, LogAndSqrtOverTheFloatRange) {
  std::vector<float> x = sweep_inputs();
  for (uint32_t b = 1; b < 0x00800000u; b += 61) x.push_back(std::bit_cast<float>(b));
  for (uint32_t b = 0x3f300000u; b < 0x3f900000u; b += 3) x.push_back(std::bit_cast<float>(b));  // [0.69, 1.13]
  for (uint32_t b = 0x3fb40000u; b < 0x3fb80000u; b += 3) x.push_back(std::bit_cast<float>(b));  // around sqrt 2
  float wx = 0;
  const double worst = max_ulps(x, vm::log, [](float v) { return std::log(v); }, &wx);
  EXPECT_LE(worst, 1) << "log: " << worst << " ulps at x = " << wx;
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> sp = {0.f, -0.f, -1.f, -inf, inf, std::nanf(""), 1.f, std::numeric_limits<float>::denorm_min(),
                                 -std::numeric_limits<float>::denorm_min()};
  std::vector<float> y(sp.size());
  vm::log(sp.data(), y.data(), static_cast<int64_t>(sp.size()));
  EXPECT_EQ(y[0], -inf);
  EXPECT_EQ(y[1], -inf);
  EXPECT_TRUE(std::isnan(y[2]) && std::isnan(y[3]));
  EXPECT_EQ(y[4], inf);
  EXPECT_TRUE(std::isnan(y[5]));
  EXPECT_EQ(std::bit_cast<uint32_t>(y[6]), 0u);  // log 1 = +0
  EXPECT_EQ(y[7], std::log(std::numeric_limits<float>::denorm_min()));
  EXPECT_TRUE(std::isnan(y[8]));
  std::vector<float> r(x.size());
  vm::sqrt(x.data(), r.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = std::sqrt(x[i]);
    ASSERT_TRUE(std::bit_cast<uint32_t>(r[i]) == std::bit_cast<uint32_t>(want) || (std::isnan(r[i]) && std::isnan(want)))
        << "sqrt at x = " << x[i] << ": " << r[i] << " vs " << want;
  }
}

// Sin and Cos (vectorised this session; libm per element before): within 1 ulp of glibc over the sweep, a fine grid
// over [-64, 64] and large arguments on both sides of 2^28 pi/2 (where libm takes over); -0, +-inf, NaN.
TEST(VMath, SinCosWithinOneUlpOfLibm) {
  std::vector<float> x = sweep_inputs();
  for (float v = -64.f; v <= 64.f; v += 1.f / 1024) x.push_back(v);
  for (uint32_t b = 0x4dc90fdbu - 20000; b < 0x4dc90fdbu + 20000; ++b) x.push_back(std::bit_cast<float>(b));
  for (float v : {1e5f, 1e6f, 12345.678f, 3.14159265f, 1.57079633f, -1.57079633f, 6.28318531f, 1e-30f, 1e-45f})
    x.push_back(v);
  float wx = 0;
  double worst = max_ulps(x, vm::sin, [](float v) { return std::sin(v); }, &wx);
  EXPECT_LE(worst, 1) << "sin: " << worst << " ulps at x = " << wx;
  worst = max_ulps(x, vm::cos, [](float v) { return std::cos(v); }, &wx);
  EXPECT_LE(worst, 1) << "cos: " << worst << " ulps at x = " << wx;
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> sp = {-0.f, 0.f, inf, -inf, std::nanf("")};
  std::vector<float> ys(sp.size()), yc(sp.size());
  vm::sin(sp.data(), ys.data(), 5);
  vm::cos(sp.data(), yc.data(), 5);
  EXPECT_EQ(std::bit_cast<uint32_t>(ys[0]), 0x80000000u);
  EXPECT_EQ(std::bit_cast<uint32_t>(ys[1]), 0u);
  EXPECT_EQ(yc[0], 1.f);
  EXPECT_EQ(yc[1], 1.f);
  for (int i = 2; i < 5; ++i) EXPECT_TRUE(std::isnan(ys[i]) && std::isnan(yc[i])) << i;
}

// Many short rows in one call (Softmax over the last axis with rows of 1-98: YOLO's 16, SSD's 91, attention's 98)
// give the bits of softmax_row on each row; the strided passes (Softmax over a non-last axis) against libm.
TEST(VMath, SoftmaxRowsAndStridedPasses) {
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> u(-40.f, 40.f);
  for (int64_t n : {1, 2, 5, 15, 16, 17, 31, 91, 98, 197}) {
    const int64_t rows = 7;
    std::vector<float> x(rows * n), y(rows * n), one(n);
    for (float& v : x) v = u(rng);
    if (n > 1) x[n + 1] = -std::numeric_limits<float>::infinity();  // row 1: an -inf element gives 0
    for (bool log : {false, true}) {
      vm::softmax_rows(x.data(), y.data(), rows, n, log);
      for (int64_t r = 0; r < rows; ++r) {
        vm::softmax_row(x.data() + r * n, one.data(), n, log);
        double m = -INFINITY, s = 0;
        for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(x[r * n + i]));
        for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[r * n + i] - static_cast<float>(m)));
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(std::bit_cast<uint32_t>(y[r * n + i]), std::bit_cast<uint32_t>(one[i])) << n << " " << r << " " << i;
          const double d = static_cast<double>(x[r * n + i] - static_cast<float>(m));
          const double want = log ? d - std::log(s) : std::exp(d) / s;
          if (std::isinf(want)) ASSERT_EQ(y[r * n + i], want) << n << " " << r << " " << i;  // LogSoftmax of -inf
          else ASSERT_NEAR(y[r * n + i], want, 1e-6 * std::fabs(want) + (log ? 1e-5 : 1e-45)) << n << " " << r << " " << i;
        }
      }
    }
  }
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  for (int64_t n : {1, 7, 16, 33, 1001}) {
    std::vector<float> x(n), m(n), y(n), s(n);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = i % 5 == 1 ? nan : u(rng);
      m[i] = i % 3 == 0 ? -inf : u(rng);
      s[i] = static_cast<float>(i);
    }
    std::vector<float> m0 = m;
    vm::max_into(x.data(), m.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(m[i], std::max(m0[i], x[i])) << i;  // std::max skips a NaN x
    vm::exp_sub_acc(x.data(), m.data(), y.data(), s.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const float want = std::exp(x[i] - m[i]);
      ASSERT_LE(ulps(y[i], want), 1) << i;
      ASSERT_LE(ulps(s[i], static_cast<float>(i) + y[i]), 0) << i;
    }
  }
}

TEST(PowFastPath, ExponentsTwoThreeHalfOneMinusOneBitForBit) {
  std::mt19937 rng(5);
  std::vector<float> v;
  for (int i = 0; i < 20011; ++i) v.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  const float inf = std::numeric_limits<float>::infinity();
  for (float s : {0.f, -0.f, inf, -inf, std::nanf(""), 1e-45f, -1e-45f, 2.f, -3.f}) v.push_back(s);
  Tensor x = ft({static_cast<int64_t>(v.size())}, v);
  ir::Node n = make_node("Pow", 2);
  for (float e : {2.f, 3.f, 0.5f, 1.f, -1.f}) {
    for (const Tensor& exp_t : {ft({}, {e}), ft({1}, {e}), Tensor::from_vector(DType::Int64, {1, 1}, std::vector<int64_t>{
                                                            static_cast<int64_t>(e)})}) {
      if (exp_t.dtype() == DType::Int64 && e == 0.5f) continue;
      Tensor y = run_kernel(n, 15, {exp_t.dtype() == DType::Int64 ? x.reshaped({1, x.numel()}) : x, exp_t})[0];
      const float* p = y.data<float>();
      for (size_t i = 0; i < v.size(); ++i) {
        const float a = v[i];
        // onnxruntime's x * x and x * x * x; x^0.5 and x^-1 correctly rounded (sqrt in double, then to float:
        // exact) with pow's +0 for -0 and +inf for -inf; x for 1.
        const float root = a == 0 ? 0.f : a == -inf ? inf : static_cast<float>(std::sqrt(static_cast<double>(a)));
        const float want = e == 2.f ? a * a : e == 3.f ? a * a * a : e == 0.5f ? root : e == -1.f ? 1.f / a : a;
        ASSERT_TRUE(std::bit_cast<uint32_t>(p[i]) == std::bit_cast<uint32_t>(want) || (std::isnan(p[i]) && std::isnan(want)))
            << "x = " << a << " ^ " << e << ": " << p[i] << " vs " << want;
      }
    }
  }
  // An exponent of higher rank broadcasts the result: the general path.
  Tensor y = run_kernel(n, 15, {ft({2}, {3.f, -2.f}), ft({1, 1}, {2.f})})[0];
  EXPECT_EQ(y.shape(), (Shape{1, 2}));
  expect_values(y, {9, 4});
}

TEST(HalfArray, F16cMatchesFloatToHalf) {
  std::vector<float> x;
  // Every 61st pattern; then each sign / exponent / top-10-mantissa combination with the low 13 bits just below,
  // at and just above the tie (the rounding cases of normal halves) and the patterns that land in half denormals.
  for (uint64_t b = 0; b < (1ull << 32); b += 61) x.push_back(std::bit_cast<float>(static_cast<uint32_t>(b)));
  for (uint32_t hi = 0; hi < (1u << 19); ++hi)
    for (uint32_t lo : {0u, 1u, 0xfffu, 0x1000u, 0x1001u, 0x1fffu}) x.push_back(std::bit_cast<float>(hi << 13 | lo));
  for (uint32_t b = 0x33000000u; b < 0x38800000u; b += 7) {  // |x| from 2^-25 to 2^-14: half denormals
    x.push_back(std::bit_cast<float>(b));
    x.push_back(std::bit_cast<float>(b | 0x80000000u));
  }
  std::vector<uint16_t> y(x.size() + 1, 0xabcd);
  for (int64_t n : {static_cast<int64_t>(x.size()), int64_t{13}, int64_t{7}}) {  // odd lengths: the tail
    std::fill(y.begin(), y.end(), 0xabcd);
    floats_to_halves(x.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(y[i], float_to_half(x[i])) << std::hex << std::bit_cast<uint32_t>(x[i]);
    EXPECT_EQ(y[n], 0xabcd);
  }
}

TEST(HalfArray, F16cMatchesHalfToFloatOnEveryHalf) {
  std::vector<uint16_t> h(65536 + 5);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i);  // every pattern, signalling NaNs too
  std::vector<float> y(h.size() + 1, 7.f);
  halves_to_floats(h.data(), y.data(), static_cast<int64_t>(h.size()));
  for (size_t i = 0; i < h.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(half_to_float(h[i]))) << std::hex << h[i];
  EXPECT_EQ(y[h.size()], 7.f);
}

}  // namespace
