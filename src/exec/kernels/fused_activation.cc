#include "exec/kernels/fused_activation.h"

#include "core/clones.h"

namespace oq::exec {

// Memory-bound pass over a GEMM's output right after it is written: compiled for AVX-512 and AVX2 as well as
// the baseline (GCC target_clones, picked at run time), since the project builds for baseline x86-64.
OQ_TARGET_CLONES void bias_activation_rows(
    float* y, int64_t rows, int64_t cols, int64_t ld, const float* bias, const FusedActivation& act) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * ld;
    if (bias) {
      const float b = bias[r];
      for (int64_t j = 0; j < cols; ++j) row[j] += b;
    }
    act.apply(row, cols);
  }
}

}  // namespace oq::exec
