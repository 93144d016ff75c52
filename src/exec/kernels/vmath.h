// Vectorised float32 math over arrays: exp, tanh, erf, log1p and the activations built on them (Sigmoid, Swish,
// Gelu, Elu, LeakyRelu, Softplus, Mish), plus the row passes of Softmax. Branch-free polynomial approximations
// that GCC vectorises, compiled for AVX-512 and AVX2 as well as the baseline (target_clones, core/clones.h) with
// no FMA contraction, so every clone gives the same bits. Accuracy against glibc's libm (the naive reference, the formulas of
// activation.cc's float_loop) over a dense sweep of float inputs, tails, NaN, inf and denormals
// (tests/unit/test_vmath.cc): exp <= 1 ulp, tanh <= 2 ulps, erf <= 3 ulps, Sigmoid <= 2 ulps, Softplus <= 4 ulps;
// Gelu, Swish, Elu <= 4 ulps except where the formula itself cancels (Gelu for x < -1, Elu near 0): there 4 ulps
// of max(|x|, 1); Mish <= 6 ulps while softplus(x) is normal (x > -87.3), else within |x| 2^-147.
// log <= 1 ulp over the whole float range (denormals included; -0 and +0 give -inf, negatives NaN); sqrt is the
// correctly rounded instruction, as libm's (NaN for negatives, -0 for -0); sin and cos <= 1 ulp (computed in double
// below |x| = 2^28 pi/2, libm above; sin keeps -0; inf and NaN give NaN).
// NaN in gives NaN out, +-inf the limits of the function. Coefficients: least-squares fits, tools/fit_vmath.py
// (log: Cephes' logf polynomial).
#pragma once
#include <cstdint>

namespace oq::exec::vmath {

void exp(const float* x, float* y, int64_t n);
void tanh(const float* x, float* y, int64_t n);
void erf(const float* x, float* y, int64_t n);
void sigmoid(const float* x, float* y, int64_t n);
void swish(const float* x, float* y, int64_t n, float alpha);  // x * sigmoid(alpha x)
void gelu(const float* x, float* y, int64_t n);                // 0.5 x (1 + erf(x / sqrt 2))
void gelu_tanh(const float* x, float* y, int64_t n);           // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
void softplus(const float* x, float* y, int64_t n);            // log(1 + exp(x)), stable for both signs
void mish(const float* x, float* y, int64_t n);                // x tanh(softplus(x))
void elu(const float* x, float* y, int64_t n, float alpha);    // x < 0 ? alpha (exp(x) - 1) : x
void leaky_relu(const float* x, float* y, int64_t n, float alpha);
void log(const float* x, float* y, int64_t n);
void sqrt(const float* x, float* y, int64_t n);
void sin(const float* x, float* y, int64_t n);
void cos(const float* x, float* y, int64_t n);

// Softmax: the largest element (NaN elements are skipped, as std::max(m, x) skips them; -inf for an empty or
// all-NaN row); y = exp(x - m) returning the sum of y (16 partial sums); a whole row, Softmax or (log) LogSoftmax:
// y = exp(x - max) / sum, or x - max - log(sum).
float max(const float* x, int64_t n);
float exp_shifted_sum(const float* x, float* y, int64_t n, float m);
void softmax_row(const float* x, float* y, int64_t n, bool log);
// `rows` consecutive rows of n (one call for many short rows).
void softmax_rows(const float* x, float* y, int64_t rows, int64_t n, bool log);
// Softmax along a strided axis works on whole inner rows: m[i] = max(m[i], x[i]) (NaN x skipped, as std::max);
// y[i] = exp(x[i] - m[i]) and sum[i] += y[i].
void max_into(const float* x, float* m, int64_t n);
void exp_sub_acc(const float* x, const float* m, float* y, float* sum, int64_t n);

}  // namespace oq::exec::vmath
