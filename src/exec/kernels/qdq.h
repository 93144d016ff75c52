// QuantizeLinear / DequantizeLinear math shared by the kernels and exec::fake_quantize, so that fake
// quantization is bit-identical to an explicit QuantizeLinear -> DequantizeLinear pair.
//
// Arithmetic is ONNX Runtime's, in float32:
//   quantize:   q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)   (NaN -> qmin, as MLAS does)
//   dequantize: y = float(q - zero_point) * scale
#pragma once
#include <cmath>
#include <cstdint>

#include "core/tensor.h"
#include "exec/session.h"

namespace oq::exec {

// Round half to even, identical to std::nearbyint in the default rounding mode but inlined (no libm
// call): below 2^23, adding and subtracting 2^23 to |v| rounds it to an integer; larger values already are.
inline float round_half_even(float v) {
  constexpr float kTwo23 = 8388608.0f;
  float a = std::fabs(v);
  return a < kTwo23 ? std::copysign((a + kTwo23) - kTwo23, v) : v;
}

// Branch-free so loops vectorise: the rounding trick is exact below 2^23 and anything larger saturates
// anyway (|q| <= 65535), so the result equals clamp(nearbyint(x / scale) + zp) for every x, NaN -> qmin.
inline int32_t quantize_value(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax) {
  constexpr float kTwo23 = 8388608.0f;
  const float r = x / scale;
  float v = std::copysign((std::fabs(r) + kTwo23) - kTwo23, r) + static_cast<float>(zp);
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  v = v > hi ? hi : v;
  v = v >= lo ? v : lo;  // also maps NaN to qmin
  return static_cast<int32_t>(v);
}

inline float dequantize_value(int32_t q, int32_t zp, float scale) {
  return static_cast<float>(q - zp) * scale;
}

// How quantization parameters map onto a tensor viewed as [outer, D, inner] around the quantization axis.
struct QLayout {
  enum class Mode { PerTensor, PerAxis, Blocked } mode = Mode::PerTensor;
  int64_t outer = 1, D = 1, inner = 1;
  int64_t nb = 1;     // blocked: number of blocks along the axis (scale dim)
  int64_t block = 0;  // blocked: block size
  int64_t params() const;  // number of scale entries expected
};

// Per tensor when axis < 0. Per axis when block_size == 0; blocked otherwise (scale shape = x shape with the
// axis dim replaced by ceil(D / block_size)).
QLayout make_qlayout(const Shape& x_shape, int axis, int64_t block_size);

// n == product of the layout; scale/zp hold layout.params() entries (zp may be null = all zero).
void quantize_array(const float* x, const QLayout& L, const float* scale, const int32_t* zp, DType qtype, void* q);
void dequantize_array(const void* q, DType qtype, const QLayout& L, const float* scale, const int32_t* zp,
                      float* y);

// Straightforward per-element reference (full index unravel per element), for tests: x float, scale given
// with its shape ([] per tensor, [D] per axis, x's shape with ceil(D/block) on the axis when blocked).
Tensor quantize_naive(const Tensor& x, int axis, int64_t block, const std::vector<float>& scale,
                      const std::vector<int32_t>& zp, DType qtype);

// Integer range a QuantizeLinear/DequantizeLinear of this type uses (int32 included for dequantize).
QRange qdq_range(DType t);

}  // namespace oq::exec
