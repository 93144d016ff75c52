// The packed recurrence product of RNN / GRU / LSTM (rnn_gemm.h).
#include "exec/kernels/rnn_gemm.h"

#include <algorithm>
#include <cstring>

namespace oq::exec {
namespace {

// GCC vector types of 16, 8 and 4 floats (one AVX-512, AVX or SSE register), loaded and stored through memcpy
// (unaligned moves: the output rows have any alignment).
typedef float V16 __attribute__((vector_size(64)));
typedef float V8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));

template <typename V>
inline __attribute__((always_inline)) void loadu(V& v, const float* p) {
  std::memcpy(&v, p, sizeof v);
}
template <typename V>
inline __attribute__((always_inline)) void storeu(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

constexpr int64_t kPanel = PackedRt::kPanel;

// Stores `cols` (<= 4 vectors' worth) of the accumulators acc[0..3] at c.
template <typename V>
inline __attribute__((always_inline)) void store_row(float* c, const V (&acc)[4], int64_t cols) {
  constexpr int64_t L = sizeof(V) / sizeof(float);
  if (cols == 4 * L) {
    for (int i = 0; i < 4; ++i) storeu(c + i * L, acc[i]);
    return;
  }
  float tmp[4 * L];
  for (int i = 0; i < 4; ++i) storeu(tmp + i * L, acc[i]);
  std::memcpy(c, tmp, static_cast<size_t>(cols) * sizeof(float));
}

// Rows a[0..R) (stride lda) times the 4 vectors of columns at p (K lines of stride kPanel) into c (stride ldc).
template <typename V, int R>
inline __attribute__((always_inline)) void block(const float* __restrict a, int64_t lda, int64_t K,
                                                 const float* __restrict p, float* __restrict c, int64_t ldc,
                                                 int64_t cols) {
  V acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < 4; ++i) acc[r][i] = V{};
  for (int64_t k = 0; k < K; ++k) {
    const float* b = p + k * kPanel;
    constexpr int64_t L = sizeof(V) / sizeof(float);
    V b0, b1, b2, b3;
    loadu(b0, b), loadu(b1, b + L), loadu(b2, b + 2 * L), loadu(b3, b + 3 * L);
    for (int r = 0; r < R; ++r) {
      const float x = a[r * lda + k];
      acc[r][0] += x * b0;
      acc[r][1] += x * b1;
      acc[r][2] += x * b2;
      acc[r][3] += x * b3;
    }
  }
  for (int r = 0; r < R; ++r) store_row(c + r * ldc, acc[r], cols);
}

template <typename V>
inline __attribute__((always_inline)) void multiply_impl(const float* A, int64_t lda, int64_t M, const float* P,
                                                         int64_t n, int64_t K, float* C, int64_t ldc) {
  constexpr int64_t W = 4 * static_cast<int64_t>(sizeof(V) / sizeof(float));  // columns per block
  for (int64_t col0 = 0; col0 < n; col0 += W) {
    const float* p = P + (col0 / kPanel) * K * kPanel + col0 % kPanel;
    const int64_t cols = std::min(W, n - col0);
    int64_t m = 0;
    for (; m + 4 <= M; m += 4) block<V, 4>(A + m * lda, lda, K, p, C + m * ldc + col0, ldc, cols);
    for (; m < M; ++m) block<V, 1>(A + m * lda, lda, K, p, C + m * ldc + col0, ldc, cols);
  }
}

#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
__attribute__((target("arch=x86-64-v4"))) void multiply_avx512(const float* A, int64_t lda, int64_t M,
                                                               const float* P, int64_t n, int64_t K, float* C,
                                                               int64_t ldc) {
  multiply_impl<V16>(A, lda, M, P, n, K, C, ldc);
}
__attribute__((target("arch=x86-64-v3"))) void multiply_avx2(const float* A, int64_t lda, int64_t M, const float* P,
                                                             int64_t n, int64_t K, float* C, int64_t ldc) {
  multiply_impl<V8>(A, lda, M, P, n, K, C, ldc);
}
#endif
void multiply_base(const float* A, int64_t lda, int64_t M, const float* P, int64_t n, int64_t K, float* C,
                   int64_t ldc) {
  multiply_impl<V4>(A, lda, M, P, n, K, C, ldc);
}

using Isa = PackedRt::Isa;
Isa detect() {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return Isa::Avx2;
#endif
  return Isa::Baseline;
}
const Isa kBest = detect();

}  // namespace

void PackedRt::pack(const float* R, int64_t n, int64_t K) {
  n_ = n, k_ = K;
  const int64_t panels = (n + kPanel - 1) / kPanel;
  p_.assign(static_cast<size_t>(panels * K), Line{});
  for (int64_t j = 0; j < n; ++j) {
    Line* panel = p_.data() + (j / kPanel) * K;
    const float* row = R + j * K;
    for (int64_t k = 0; k < K; ++k) panel[k].v[j % kPanel] = row[k];
  }
}

PackedRt::Isa PackedRt::best_isa() { return kBest; }

const char* PackedRt::isa_name(Isa isa) {
  return isa == Isa::Avx512 ? "avx512" : isa == Isa::Avx2 ? "avx2" : "baseline";
}

void PackedRt::multiply(const float* A, int64_t lda, int64_t M, float* C, int64_t ldc, Isa isa) const {
  if (M == 0 || n_ == 0) return;
  if (k_ == 0) {
    for (int64_t m = 0; m < M; ++m) std::fill_n(C + m * ldc, n_, 0.0f);
    return;
  }
  const float* P = p_.front().v;
  if (static_cast<int>(isa) < static_cast<int>(kBest)) isa = kBest;  // a version this CPU lacks
  switch (isa) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
    case Isa::Avx512: return multiply_avx512(A, lda, M, P, n_, k_, C, ldc);
    case Isa::Avx2: return multiply_avx2(A, lda, M, P, n_, k_, C, ldc);
#endif
    default: return multiply_base(A, lda, M, P, n_, k_, C, ldc);
  }
}

void gemm_nt_reference(const float* A, int64_t lda, int64_t M, const float* R, int64_t n, int64_t K, float* C,
                       int64_t ldc) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(A[m * lda + k]) * R[j * K + k];
      C[m * ldc + j] = static_cast<float>(s);
    }
}

}  // namespace oq::exec
