// Vectorised row passes of float32 data shared by the reductions and normalisations (Reduce*, GlobalMaxPool,
// MeanVarianceNormalization, LpNormalization, LayerNormalization): sums in double over eight independent lanes
// (each element converted to double, so a sum of n floats is off the exact sum by at most ~n 2^-53 of the sum
// of magnitudes, far below float resolution), NaN-propagating max / min, and the per-element affine passes
// computed in double and rounded once. Compiled for AVX-512, AVX2 and baseline x86-64 (target_clones) without
// FMA contraction, so every clone gives the same bits. Naive counterparts: tests/unit/test_row_stats.cc.
#pragma once
#include <cstdint>

namespace oq::exec::rows {

double sum(const float* x, int64_t n);                 // sum of x
double sum_abs(const float* x, int64_t n);             // sum of |x|
double sum_sq(const float* x, int64_t n);              // sum of x^2 (each square in double)
double sum_sq_dev(const float* x, int64_t n, double m);  // sum of (x - m)^2 in double

// The largest / smallest element; NaN when any element is NaN; -inf / +inf for n == 0.
float max(const float* x, int64_t n);
float min(const float* x, int64_t n);

// The same over `rows` contiguous rows of n elements (y[r] for row r): one call for many short rows.
void sum_rows(const float* x, int64_t rows, int64_t n, double* y);
void sum_abs_rows(const float* x, int64_t rows, int64_t n, double* y);
void sum_sq_rows(const float* x, int64_t rows, int64_t n, double* y);
void max_rows(const float* x, int64_t rows, int64_t n, float* y);
void min_rows(const float* x, int64_t rows, int64_t n, float* y);

// acc[i] += x[i]; acc[i] += x[i]^2; acc[i] += |x[i]|; acc[i] += (x[i] - m[i])^2 (all in double).
void add(double* acc, const float* x, int64_t n);
void add_sq(double* acc, const float* x, int64_t n);
void add_abs(double* acc, const float* x, int64_t n);
void add_sq_dev(double* acc, const float* x, const double* m, int64_t n);

// y[i] = (x[i] - m) * s, and the per-element y[i] = (x[i] - m[i]) * s[i] and y[i] = x[i] * s[i]. In double,
// rounded once to float.
void shift_scale(const float* x, float* y, int64_t n, double m, double s);
void shift_scale_each(const float* x, float* y, int64_t n, const double* m, const double* s);
void scale_each(const float* x, float* y, int64_t n, const double* s);

// LayerNormalization's output row: y[i] = (x[i] - m) * inv * scale[i] + bias[i] in float (bias may be null: 0).
void norm_affine(const float* x, float* y, int64_t n, float m, float inv, const float* scale, const float* bias);

}  // namespace oq::exec::rows
