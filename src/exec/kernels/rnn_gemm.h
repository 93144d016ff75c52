// The recurrence product of RNN / GRU / LSTM, C[M, n] = A[M, K] · Rᵀ with R [n, K] (ONNX's R of one direction,
// or a block of its rows) and M the batch: a few rows times a matrix that stays the same for every time step.
// oneDNN's sgemm packs R again at each call (about half of an LSTM's time at batch 8); here R is packed once per
// node run into panels of 64 columns (P[panel][k][64], the last panel zero-padded), and a register-blocked kernel
// (4 rows x 64 columns, or 1 row, of accumulators; AVX-512 / AVX2+FMA / baseline versions picked at run time)
// runs over them. Float32 only. The naive reference is gemm_nt_reference (a dot product per value, in double),
// which the tests compare the packed kernel against.
#pragma once
#include <cstdint>
#include <vector>

namespace oq::exec {

class PackedRt {
 public:
  static constexpr int64_t kPanel = 64;
  PackedRt() = default;
  PackedRt(const float* R, int64_t n, int64_t K) { pack(R, n, K); }
  void pack(const float* R, int64_t n, int64_t K);
  // The instruction sets of the kernel's versions, best first; best_isa(): the best this CPU has.
  enum class Isa { Avx512, Avx2, Baseline };
  static Isa best_isa();
  static const char* isa_name(Isa isa);
  // C[m * ldc + j] = sum_k A[m * lda + k] * R[j * K + k], for m < M, j < n; with `isa` (the tests run every
  // version this CPU has; one it lacks is replaced by best_isa()).
  void multiply(const float* A, int64_t lda, int64_t M, float* C, int64_t ldc) const {
    multiply(A, lda, M, C, ldc, best_isa());
  }
  void multiply(const float* A, int64_t lda, int64_t M, float* C, int64_t ldc, Isa isa) const;
  int64_t cols() const { return n_; }
  int64_t depth() const { return k_; }

 private:
  struct alignas(64) Line {
    float v[kPanel];
  };
  std::vector<Line> p_;  // panels: (n + 63) / 64 of K lines each
  int64_t n_ = 0, k_ = 0;
};

// The naive reference of multiply: each value its own dot product, in double.
void gemm_nt_reference(const float* A, int64_t lda, int64_t M, const float* R, int64_t n, int64_t K, float* C,
                       int64_t ldc);

}  // namespace oq::exec
