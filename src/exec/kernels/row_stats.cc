// Row passes of row_stats.h. Eight lanes per accumulator, written as fixed-length inner loops that GCC turns
// into vector code for each target_clones variant (core/clones.h); the lanes are combined in a fixed order,
// so the result does not depend on the variant. Built with -ffp-contract=off (CMakeLists.txt).
#include "exec/kernels/row_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/clones.h"

namespace oq::exec::rows {
namespace {

constexpr int kLanes = 8;

// Sum of f(x[i]) in double over kLanes lanes, then the tail; lanes combined pairwise in a fixed order.
template <typename F>
inline double lane_sum(const float* __restrict x, int64_t n, F f) {
  double acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += f(static_cast<double>(x[i + j]));
  double tail = 0;
  for (; i < n; ++i) tail += f(static_cast<double>(x[i]));
  return (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) + tail;
}

// Max (or min): two 8-float vectors (GCC vector extensions, so each clone gets its own vector code) keep
// acc < v ? v : acc (maxps / minps; a NaN v is skipped), and beside them the largest |x| bit pattern, which is
// above that of +inf exactly when some element is NaN.
typedef float V8f __attribute__((vector_size(32)));
typedef int32_t V8i __attribute__((vector_size(32)));

template <bool kMax>
inline float lane_extreme(const float* __restrict x, int64_t n) {
  const float init = kMax ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
  V8f a0 = init - V8f{}, a1 = a0;
  V8i b0 = V8i{}, b1 = b0;
  auto step = [](V8f& a, V8i& b, const float* p) {
    V8f v;
    std::memcpy(&v, p, sizeof v);
    a = (kMax ? a < v : v < a) ? v : a;
    V8i u;
    std::memcpy(&u, &v, sizeof u);
    u &= 0x7fffffff;
    b = b < u ? u : b;
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) step(a0, b0, x + i), step(a1, b1, x + i + 8);
  float r = init;
  int32_t b = 0;
  for (int j = 0; j < 8; ++j) {
    for (float v : {a0[j], a1[j]}) r = (kMax ? r < v : v < r) ? v : r;
    b = std::max({b, b0[j], b1[j]});
  }
  for (; i < n; ++i) {
    r = (kMax ? r < x[i] : x[i] < r) ? x[i] : r;
    b = std::max(b, x[i] != x[i] ? 0x7fc00000 : 0);
  }
  return b > 0x7f800000 ? std::numeric_limits<float>::quiet_NaN() : r;
}

}  // namespace

// One row through the batched function `f`.
template <typename R>
R one_row(void (*f)(const float*, int64_t, int64_t, R*), const float* x, int64_t n) {
  R r;
  f(x, 1, n, &r);
  return r;
}

double sum(const float* x, int64_t n) { return one_row(sum_rows, x, n); }
double sum_sq(const float* x, int64_t n) { return one_row(sum_sq_rows, x, n); }
double sum_abs(const float* x, int64_t n) { return one_row(sum_abs_rows, x, n); }
float max(const float* x, int64_t n) { return one_row(max_rows, x, n); }
float min(const float* x, int64_t n) { return one_row(min_rows, x, n); }
OQ_TARGET_CLONES double sum_sq_dev(const float* x, int64_t n, double m) {
  return lane_sum(x, n, [m](double v) { return (v - m) * (v - m); });
}

OQ_TARGET_CLONES void sum_rows(const float* x, int64_t rows, int64_t n, double* y) {
  for (int64_t r = 0; r < rows; ++r) y[r] = lane_sum(x + r * n, n, [](double v) { return v; });
}
OQ_TARGET_CLONES void sum_abs_rows(const float* x, int64_t rows, int64_t n, double* y) {
  for (int64_t r = 0; r < rows; ++r) y[r] = lane_sum(x + r * n, n, [](double v) { return std::fabs(v); });
}
OQ_TARGET_CLONES void sum_sq_rows(const float* x, int64_t rows, int64_t n, double* y) {
  for (int64_t r = 0; r < rows; ++r) y[r] = lane_sum(x + r * n, n, [](double v) { return v * v; });
}
OQ_TARGET_CLONES void max_rows(const float* x, int64_t rows, int64_t n, float* y) {
  for (int64_t r = 0; r < rows; ++r) y[r] = lane_extreme<true>(x + r * n, n);
}
OQ_TARGET_CLONES void min_rows(const float* x, int64_t rows, int64_t n, float* y) {
  for (int64_t r = 0; r < rows; ++r) y[r] = lane_extreme<false>(x + r * n, n);
}

OQ_TARGET_CLONES void add(double* __restrict acc, const float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<double>(x[i]);
}
OQ_TARGET_CLONES void add_sq(double* __restrict acc, const float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<double>(x[i]) * static_cast<double>(x[i]);
}
OQ_TARGET_CLONES void add_abs(double* __restrict acc, const float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += std::fabs(static_cast<double>(x[i]));
}
OQ_TARGET_CLONES void add_sq_dev(double* __restrict acc, const float* __restrict x, const double* __restrict m,
                                 int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - m[i];
    acc[i] += d * d;
  }
}

OQ_TARGET_CLONES void shift_scale(const float* __restrict x, float* __restrict y, int64_t n, double m, double s) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>((static_cast<double>(x[i]) - m) * s);
}
OQ_TARGET_CLONES void shift_scale_each(const float* __restrict x, float* __restrict y, int64_t n,
                                       const double* __restrict m, const double* __restrict s) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>((static_cast<double>(x[i]) - m[i]) * s[i]);
}
OQ_TARGET_CLONES void scale_each(const float* __restrict x, float* __restrict y, int64_t n,
                                 const double* __restrict s) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<double>(x[i]) * s[i]);
}

OQ_TARGET_CLONES void norm_affine(const float* __restrict x, float* __restrict y, int64_t n, float m, float inv,
                                  const float* __restrict scale, const float* __restrict bias) {
  if (bias)
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * inv * scale[i] + bias[i];
  else
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * inv * scale[i] + 0.0f;
}

}  // namespace oq::exec::rows
