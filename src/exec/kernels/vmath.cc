// Vectorised float32 math (see vmath.h). The element functions are branch-free (selects, no calls), so the loops
// that call them vectorise; this file is compiled with -ffp-contract=off (CMakeLists.txt) so that the AVX-512
// clone, which has FMA, rounds as the others do.
#include "exec/kernels/vmath.h"

#include <bit>
#include <cstdint>

#include "core/clones.h"

namespace oq::exec::vmath {

namespace {

#define OQ_VM_INLINE inline __attribute__((always_inline))

OQ_VM_INLINE float abs_f(float x) { return std::bit_cast<float>(std::bit_cast<uint32_t>(x) & 0x7fffffffu); }
OQ_VM_INLINE float copysign_f(float v, float s) {
  return std::bit_cast<float>((std::bit_cast<uint32_t>(v) & 0x7fffffffu) | (std::bit_cast<uint32_t>(s) & 0x80000000u));
}

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
  float p = 1.98974652e-4f;  // coefficients of r^2 (tools/fit_vmath.py, "exp")
  p = p * r + 1.39464461e-3f;
  p = p * r + 8.33328068e-3f;
  p = p * r + 4.16662619e-2f;
  p = p * r + 1.66666672e-1f;
  p = p * r + 0.5f;
  p = (p * (r * r) + r) + 1.0f;
  const int32_t n1 = n >> 1, n2 = n - n1;
  const float s1 = std::bit_cast<float>(static_cast<uint32_t>(n1 + 127) << 23);
  const float s2 = std::bit_cast<float>(static_cast<uint32_t>(n2 + 127) << 23);
  return (p * s1) * s2;
}

// tanh: the odd polynomial below 0.625, else 1 - 2 / (exp(2|x|) + 1) with x's sign (exp's overflow gives 1).
OQ_VM_INLINE float tanh_f(float x) {
  const float ax = abs_f(x);
  const float t = x * x;
  float p = -5.73121104e-3f;  // "tanh"
  p = p * t + 2.06647404e-2f;
  p = p * t + -5.37484474e-2f;
  p = p * t + 1.33315608e-1f;
  p = p * t + -3.33332866e-1f;
  const float small = copysign_f(x + x * (t * p), x);  // keeps -0
  const float big = copysign_f(1.0f - 2.0f / (exp_f(2.0f * ax) + 1.0f), x);
  return ax < 0.625f ? small : big;
}

// erf: x + x P(x^2) below 0.921875, else 1 - exp(Q(|x| - 2.5)) with x's sign; 1 from 3.925 on.
OQ_VM_INLINE float erf_f(float x) {
  const float ax = abs_f(x);
  const float t = x * x;
  float p = 8.43876041e-5f;  // "erf_small"
  p = p * t + -8.16078158e-4f;
  p = p * t + 5.20283543e-3f;
  p = p * t + -2.68602408e-2f;
  p = p * t + 1.12837136e-1f;
  p = p * t + -3.76126349e-1f;
  p = p * t + 1.28379166e-1f;
  const float small = x + x * p;
  const float u = (ax > 3.925f ? 3.925f : ax) - 2.5f;  // NaN stays NaN
  float q = 1.63555535e-6f;                          // "erf_big"
  q = q * u + -1.32817795e-5f;
  q = q * u + 7.73169086e-5f;
  q = q * u + -4.20234661e-4f;
  q = q * u + 2.16524536e-3f;
  q = q * u + -1.08584352e-2f;
  q = q * u + -9.43893671e-1f;
  q = q * u + -5.35268068e+0f;
  q = q * u + -7.80681515e+0f;
  const float big = copysign_f(1.0f - exp_f(q), x);
  return ax < 0.921875f ? small : big;
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

namespace {
constexpr int kLanes = 16;  // partial results, combined at the end (the reductions vectorise)
}  // namespace

OQ_TARGET_CLONES float max(const float* __restrict x, int64_t n) {
  const float ninf = -__builtin_inff();
  float m[kLanes];
  for (float& v : m) v = ninf;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) m[k] = m[k] < x[i + k] ? x[i + k] : m[k];
  float r = ninf;
  for (; i < n; ++i) r = r < x[i] ? x[i] : r;
  for (float v : m) r = r < v ? v : r;
  return r;
}

OQ_TARGET_CLONES float exp_shifted_sum(const float* __restrict x, float* __restrict y, int64_t n, float m) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_f(x[i] - m);
  float s[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) s[k] += y[i + k];
  float r = 0.0f;
  for (float v : s) r += v;
  for (; i < n; ++i) r += y[i];
  return r;
}

OQ_TARGET_CLONES void scale(float* __restrict y, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}
OQ_TARGET_CLONES void shift(const float* __restrict x, float* __restrict y, int64_t n, float a, float b) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] - a - b;
}

}  // namespace oq::exec::vmath
