#include "exec/kernels/fused_activation.h"

#include <algorithm>

#include "core/clones.h"
#include "core/parallel.h"
#include "exec/kernels/qdq.h"

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

namespace {
OQ_TARGET_CLONES void activation_run(float* __restrict p, int64_t n, const FusedActivation& act) { act.apply(p, n); }
}  // namespace

void FusedActivation::apply_parallel(float* p, int64_t n) const {
  if (!active()) return;
  parallel_for(n, 16384, [&](int64_t b, int64_t e) { activation_run(p + b, e - b, *this); });
}

void FusedActivation::apply_blocked(float* p, int64_t n, int64_t blocks, int64_t hw, int64_t block,
                                    int64_t channels) const {
  if (!active()) return;
  const int64_t rest = channels - (blocks - 1) * block;  // real channels of the last block
  parallel_for(n * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* q = p + t * hw * block;
      if (t % blocks != blocks - 1 || rest == block) {
        activation_run(q, hw * block, *this);
        continue;
      }
      for (int64_t i = 0; i < hw; ++i) {
        activation_run(q + i * block, rest, *this);
        std::fill(q + i * block + rest, q + (i + 1) * block, 0.f);
      }
    }
  });
}

namespace {
// The arithmetic of quantize_value / dequantize_value (exec/kernels/qdq.h) with the zero point folded into the
// bounds; `+ 0.f` turns a -0 into the +0 that float(0) * scale gives. Branch-free, so the loop vectorises.
OQ_TARGET_CLONES void fake_quant_run(float* __restrict p, int64_t n, float scale, float lo, float hi) {
  for (int64_t i = 0; i < n; ++i) {
    float v = round_half_even(p[i] / scale);
    v = v > hi ? hi : v;
    v = v >= lo ? v : lo;  // also maps NaN to lo
    p[i] = v * scale + 0.f;
  }
}
}  // namespace

void FusedFakeQuant::apply(float* p, int64_t n) const {
  if (!on) return;
  parallel_for(n, 16384, [&](int64_t b, int64_t e) { fake_quant_run(p + b, e - b, scale, lo, hi); });
}

}  // namespace oq::exec
