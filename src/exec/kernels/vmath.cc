// Vectorised float32 math (see vmath.h). The element functions are branch-free (selects, no calls), so the loops
// that call them vectorise; this file is compiled with -ffp-contract=off (CMakeLists.txt) so that the AVX-512
// clone, which has FMA, rounds as the others do, and with -fno-trapping-math so that selects after a computation
// (log's special values) are if-converted rather than branched around it.
#include "exec/kernels/vmath.h"

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/clones.h"

namespace oq::exec::vmath {

namespace {

#define OQ_VM_INLINE inline __attribute__((always_inline))

OQ_VM_INLINE float abs_f(float x) { return std::bit_cast<float>(std::bit_cast<uint32_t>(x) & 0x7fffffffu); }
OQ_VM_INLINE float copysign_f(float v, float s) {
  return std::bit_cast<float>((std::bit_cast<uint32_t>(v) & 0x7fffffffu) | (std::bit_cast<uint32_t>(s) & 0x80000000u));
}

// Horner: c[0] t^(N-1) + ... + c[N-1] (coefficients from tools/fit_vmath.py, highest degree first).
template <size_t N>
OQ_VM_INLINE float poly(float t, const float (&c)[N]) {
  float p = c[0];
  for (size_t i = 1; i < N; ++i) p = p * t + c[i];
  return p;
}

constexpr float kExpP[] = {1.98974652e-4f, 1.39464461e-3f, 8.33328068e-3f, 4.16662619e-2f, 1.66666672e-1f, 0.5f};
constexpr float kTanhP[] = {-5.73121104e-3f, 2.06647404e-2f, -5.37484474e-2f, 1.33315608e-1f, -3.33332866e-1f};
constexpr float kErfSmallP[] = {8.43876041e-5f, -8.16078158e-4f, 5.20283543e-3f, -2.68602408e-2f,
                                1.12837136e-1f, -3.76126349e-1f, 1.28379166e-1f};
constexpr float kAtanhP[] = {1.f / 11, 1.f / 9, 1.f / 7, 1.f / 5, 1.f / 3};  // atanh(s) / s - 1 = s^2 P(s^2)
// Cephes logf: log(1 + f) = f - f^2 / 2 + f^3 P(f) for 1 + f in [sqrt(1/2), sqrt(2)).
constexpr float kLogP[] = {7.0376836292e-2f, -1.1514610310e-1f, 1.1676998740e-1f, -1.2420140846e-1f, 1.4249322787e-1f,
                           -1.6668057665e-1f, 2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f};
constexpr float kErfBigQ[] = {1.63555535e-6f, -1.32817795e-5f, 7.73169086e-5f, -4.20234661e-4f, 2.16524536e-3f,
                              -1.08584352e-2f, -9.43893671e-1f, -5.35268068e+0f, -7.80681515e+0f};

// exp(x) = 2^n exp(r), n = round(x / ln2), r = x - n ln2 (ln2 in two parts, the first exact times n). 2^n is
// applied as two factors 2^(n/2) 2^(n - n/2) so that results down in the denormals and up to the overflow are
// rounded once. The clamp keeps n in [-150, 128]; NaN passes it (comparisons are false) and stays NaN.
OQ_VM_INLINE float exp_f(float x) {
  float xc = x < -104.0f ? -104.0f : x;
  xc = xc > 88.8f ? 88.8f : xc;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer, half to even
  const float t = xc * 1.44269504088896341f + magic;
  const float nf = t - magic;
  const int32_t n = static_cast<int32_t>(std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(magic));
  const float r = (xc - nf * 0.693359375f) - nf * -2.12194440e-4f;
  const float p = (poly(r, kExpP) * (r * r) + r) + 1.0f;
  const int32_t n1 = n >> 1, n2 = n - n1;
  const float s1 = std::bit_cast<float>(static_cast<uint32_t>(n1 + 127) << 23);
  const float s2 = std::bit_cast<float>(static_cast<uint32_t>(n2 + 127) << 23);
  return (p * s1) * s2;
}

// tanh: the odd polynomial below 0.625, else 1 - 2 / (exp(2|x|) + 1) with x's sign (exp's overflow gives 1).
OQ_VM_INLINE float tanh_f(float x) {
  const float ax = abs_f(x);
  const float t = x * x;
  const float small = copysign_f(x + x * (t * poly(t, kTanhP)), x);  // keeps -0
  const float big = copysign_f(1.0f - 2.0f / (exp_f(2.0f * ax) + 1.0f), x);
  return ax < 0.625f ? small : big;
}

// erf: x + x P(x^2) below 0.921875, else 1 - exp(Q(|x| - 2.5)) with x's sign; 1 from 3.925 on.
OQ_VM_INLINE float erf_f(float x) {
  const float ax = abs_f(x);
  const float t = x * x;
  const float small = x + x * poly(t, kErfSmallP);
  const float u = (ax > 3.925f ? 3.925f : ax) - 2.5f;  // NaN stays NaN
  const float big = copysign_f(1.0f - exp_f(poly(u, kErfBigQ)), x);
  return ax < 0.921875f ? small : big;
}

// log(u) for u in [1, 2]: u = 2^k m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m - 1) / (m + 1)
// (|s| < 0.172: the series to s^11 is below half an ulp), plus k ln2 in two parts.
OQ_VM_INLINE float log_1_2(float u) {
  const bool high = u > 1.41421356f;
  const float m = high ? 0.5f * u : u;
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  const float lm = 2.0f * s + (2.0f * s) * (s2 * poly(s2, kAtanhP));
  return high ? 0.693145752f + (lm + 1.42860677e-6f) : lm;
}

// log(x) = k ln2 + log(m), x = 2^k m with m in [sqrt(1/2), sqrt(2)) taken from the bits (denormals scaled by 2^23
// first), ln2 in two parts (the first exact times k). Specials by selects: NaN, +inf, +-0 -> -inf, x < 0 -> NaN.
OQ_VM_INLINE float log_f(float x) {
  const bool den = x < 1.17549435e-38f;  // a denormal (zero and negatives too: their results are replaced below)
  const float scaled = x * 8388608.0f;
  const float xs = den ? scaled : x;
  const uint32_t ib = std::bit_cast<uint32_t>(xs);
  const int32_t k = static_cast<int32_t>(ib - 0x3f3504f3u) >> 23;  // 0x3f3504f3 = sqrt(1/2)
  const float f = std::bit_cast<float>(ib - (static_cast<uint32_t>(k) << 23)) - 1.0f;
  const float kf = static_cast<float>(den ? k - 23 : k);
  const float z = f * f;
  float y = f * z * poly(f, kLogP);
  y = y + kf * -2.12194440e-4f;
  y = y - 0.5f * z;
  float r = (f + y) + kf * 0.693359375f;
  const float inf = __builtin_inff();
  r = x == inf ? inf : r;
  r = x == 0.0f ? -inf : r;
  return x < 0.0f || x != x ? __builtin_nanf("") : r;
}

// sin and cos: x reduced in double by the nearest multiple n pi/2 (pi/2 in two parts of 25 and 53 bits: FreeBSD's
// __rem_pio2f, exact enough for every float below 2^28 pi/2), then FreeBSD's double kernels __kernel_sindf /
// __kernel_cosdf on [-pi/4, pi/4], picked and signed by n mod 4 (cos x = sin(x + pi/2): n + 1). Larger |x|, inf
// and NaN are left to libm (trig_fallback).
constexpr double kInvPio2 = 6.36619772367581382433e-01, kPio2Hi = 1.57079631090164184570e+00,
                 kPio2Lo = 1.58932547735281966916e-08;
constexpr uint32_t kTrigMaxBits = 0x4dc90fdbu;  // 2^28 pi/2
constexpr double kSinS[] = {-0x15555554cbac77.0p-55, 0x111110896efbb2.0p-59, -0x1a00f9e2cae774.0p-65,
                            0x16cd878c3b46a7.0p-71};
constexpr double kCosC[] = {-0x1ffffffd0c5e81.0p-54, 0x155553e1053a42.0p-57, -0x16c087e80f1e27.0p-62,
                            0x199342e0ee5069.0p-68};

OQ_VM_INLINE float sincos_f(float x, int shift) {
  const double xd = x;
  const double magic = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer, half to even
  const double t = xd * kInvPio2 + magic;
  const double fn = t - magic;
  const int32_t q = static_cast<int32_t>(std::bit_cast<uint64_t>(t) - std::bit_cast<uint64_t>(magic)) + shift;
  const double r = (xd - fn * kPio2Hi) - fn * kPio2Lo;
  const double z = r * r, w = z * z;
  const double sz = z * r;
  const double sn = (r + sz * (kSinS[0] + z * kSinS[1])) + sz * w * (kSinS[2] + z * kSinS[3]);
  const double cs = ((1.0 + z * kCosC[0]) + w * kCosC[1]) + (w * z) * (kCosC[2] + z * kCosC[3]);
  const double v = (q & 1) ? cs : sn;
  const float f = static_cast<float>((q & 2) ? -v : v);
  return x == 0.0f && shift == 0 ? x : f;  // sin keeps the zero's sign
}

// log1p(e) for e in [0, 1] (NaN stays NaN): log(1 + e) corrected for the rounding of 1 + e.
OQ_VM_INLINE float log1p_01(float e) {
  const float u = 1.0f + e;
  const float d = u - 1.0f;
  return d == 0.0f ? e : log_1_2(u) * (e / d);
}

// Softplus as activation.cc's float_loop writes it: x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)).
OQ_VM_INLINE float softplus_f(float x) {
  const float l = log1p_01(exp_f(-abs_f(x)));
  return x > 0.0f ? x + l : l;
}

// Sigmoid as activation.cc's float_loop writes it (never exponentiates a large positive number).
OQ_VM_INLINE float sigmoid_f(float x) {
  const float e = exp_f(-abs_f(x));
  return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

}  // namespace

OQ_TARGET_CLONES void exp(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_f(x[i]);
}
OQ_TARGET_CLONES void tanh(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = tanh_f(x[i]);
}
OQ_TARGET_CLONES void erf(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = erf_f(x[i]);
}
OQ_TARGET_CLONES void sigmoid(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = sigmoid_f(x[i]);
}
OQ_TARGET_CLONES void swish(const float* __restrict x, float* __restrict y, int64_t n, float alpha) {
  for (int64_t i = 0; i < n; ++i) {
    const float a = alpha * x[i];
    const float e = exp_f(-abs_f(a));
    y[i] = x[i] * ((a >= 0.0f ? 1.0f : e) / (1.0f + e));
  }
}
OQ_TARGET_CLONES void gelu(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + erf_f(x[i] * 0.70710678118654752440f));
}
OQ_TARGET_CLONES void gelu_tanh(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + tanh_f(0.79788456080286535588f * (v + 0.044715f * v * v * v)));
  }
}
OQ_TARGET_CLONES void softplus(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = softplus_f(x[i]);
}
OQ_TARGET_CLONES void mish(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {  // a NaN x is returned as it is (the product's NaN depends on operand order)
    const float r = x[i] * tanh_f(softplus_f(x[i]));
    y[i] = x[i] != x[i] ? x[i] : r;
  }
}
OQ_TARGET_CLONES void elu(const float* __restrict x, float* __restrict y, int64_t n, float alpha) {
  for (int64_t i = 0; i < n; ++i) {
    const float neg = alpha * (exp_f(x[i]) - 1.0f);
    y[i] = x[i] < 0.0f ? neg : x[i];
  }
}
OQ_TARGET_CLONES void leaky_relu(const float* __restrict x, float* __restrict y, int64_t n, float alpha) {
  for (int64_t i = 0; i < n; ++i) {
    const float neg = alpha * x[i];
    y[i] = x[i] < 0.0f ? neg : x[i];
  }
}

OQ_TARGET_CLONES void log(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = log_f(x[i]);
}
OQ_TARGET_CLONES void sqrt(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = __builtin_sqrtf(x[i]);  // -fno-math-errno: the vector instruction
}

namespace {
// The elements sincos_f leaves to libm: |x| >= 2^28 pi/2, inf, NaN (rare: a scan, then a call for each).
void trig_fallback(const float* x, float* y, int64_t n, bool cos) {
  for (int64_t i = 0; i < n; ++i)
    if (!((std::bit_cast<uint32_t>(x[i]) & 0x7fffffffu) < kTrigMaxBits)) y[i] = cos ? std::cos(x[i]) : std::sin(x[i]);
}
}  // namespace

OQ_TARGET_CLONES void sin(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = sincos_f(x[i], 0);
  trig_fallback(x, y, n, false);
}
OQ_TARGET_CLONES void cos(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = sincos_f(x[i], 1);
  trig_fallback(x, y, n, true);
}

namespace {

constexpr int kLanes = 16;  // partial results in fixed lanes, combined at the end: the same bits in every clone

// 16 lanes as one GCC vector (one zmm, two ymm or four xmm registers, per clone): the running max of a row stays in
// registers (as a float[16] the compiler kept it in memory and compared lane by lane).
// (Passed by reference: by value, GCC warns that the ABI differs without AVX.)
typedef float V16 __attribute__((vector_size(64)));
typedef float V8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));

template <typename V>
OQ_VM_INLINE void vmax(V& a, const V& b) { a = a < b ? b : a; }  // a NaN b is skipped: lanes start at -inf

template <typename V, typename H>
OQ_VM_INLINE void halves(const V& v, H& lo, H& hi) {
  std::memcpy(&lo, &v, sizeof(H));
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(H), sizeof(H));
}

// Lanes combined pairwise (8, 4, 2, 1 apart): a short dependency chain for short rows, the same order everywhere.
OQ_VM_INLINE float tree_max(const V16& m) {
  V8 a, b;
  halves(m, a, b);
  vmax(a, b);
  V4 c, d;
  halves(a, c, d);
  vmax(c, d);
  const float f = c[0] < c[2] ? c[2] : c[0], g = c[1] < c[3] ? c[3] : c[1];
  return f < g ? g : f;
}
OQ_VM_INLINE float tree_sum(float (&s)[kLanes]) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int k = 0; k < w; ++k) s[k] += s[k + w];
  return s[0];
}

OQ_VM_INLINE void max16(V16& m, const float* p) {
  V16 v;
  std::memcpy(&v, p, sizeof(v));
  vmax(m, v);
}

// Rows of 16 or more: the tail (n % 16 values) goes through the 16-lane body as the row's last 16 values, which
// overlap the block before (max is idempotent; the sum skips the lanes counted already, and y gets the same values
// again). Shorter rows: one block padded with -inf (max skips it, exp gives 0).
OQ_VM_INLINE float max_i(const float* __restrict x, int64_t n) {
  const float ninf = -__builtin_inff();
  V16 m = V16{} + ninf;
  if (n >= kLanes) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) max16(m, x + i);
    if (i < n) max16(m, x + n - kLanes);
  } else {
    float xt[kLanes];
    for (float& v : xt) v = ninf;
    for (int64_t k = 0; k < n; ++k) xt[k] = x[k];
    max16(m, xt);
  }
  return tree_max(m);
}

OQ_VM_INLINE float exp_shifted_sum_i(const float* __restrict x, float* __restrict y, int64_t n, float m) {
  float s[kLanes] = {};
  auto block = [&](const float* xb, float* yb, int skip) {
    for (int k = 0; k < kLanes; ++k) {
      const float e = exp_f(xb[k] - m);
      yb[k] = e;
      s[k] += k < skip ? 0.0f : e;
    }
  };
  if (n >= kLanes) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) block(x + i, y + i, 0);
    if (i < n) block(x + n - kLanes, y + n - kLanes, static_cast<int>(kLanes - (n - i)));
  } else {
    float xt[kLanes], yt[kLanes];
    for (float& v : xt) v = -__builtin_inff();
    for (int64_t k = 0; k < n; ++k) xt[k] = x[k];
    block(xt, yt, 0);
    for (int64_t k = 0; k < n; ++k) y[k] = yt[k];
  }
  return tree_sum(s);
}

OQ_VM_INLINE void softmax_row_i(const float* __restrict x, float* __restrict y, int64_t n, bool log) {
  const float m = max_i(x, n);
  const float s = exp_shifted_sum_i(x, y, n, m);
  if (log) {
    const float ls = std::log(s);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] - m - ls;
  } else {
    const float inv = 1.0f / s;
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

}  // namespace

OQ_TARGET_CLONES float max(const float* __restrict x, int64_t n) { return max_i(x, n); }

OQ_TARGET_CLONES float exp_shifted_sum(const float* __restrict x, float* __restrict y, int64_t n, float m) {
  return exp_shifted_sum_i(x, y, n, m);
}

OQ_TARGET_CLONES void softmax_row(const float* __restrict x, float* __restrict y, int64_t n, bool log) {
  softmax_row_i(x, y, n, log);
}

OQ_TARGET_CLONES void softmax_rows(const float* __restrict x, float* __restrict y, int64_t rows, int64_t n, bool log) {
  for (int64_t r = 0; r < rows; ++r) softmax_row_i(x + r * n, y + r * n, n, log);
}

OQ_TARGET_CLONES void max_into(const float* __restrict x, float* __restrict m, int64_t n) {
  for (int64_t i = 0; i < n; ++i) m[i] = m[i] < x[i] ? x[i] : m[i];
}

OQ_TARGET_CLONES void exp_sub_acc(const float* __restrict x, const float* __restrict m, float* __restrict y,
                                  float* __restrict sum, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float e = exp_f(x[i] - m[i]);
    y[i] = e;
    sum[i] += e;
  }
}

}  // namespace oq::exec::vmath
