// Quantization parameters: THE one function that turns a real range into scale and zero point, and the
// integer ranges of each type. Every part of onnxquant (weights, activations, overrides, search) calls these.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "exec/session.h"
#include "quant/options.h"

namespace oq::quant {

// Integer range for a quantized type: full, symmetric (int8 -127..127, uint8 0..254, int16 -32767..32767,
// uint16 0..65534; 4-bit types keep their full range) or reduced (uint8 0..127, int8 -64..64, ...).
QRange qrange(DType t, bool symmetric, bool reduce_range = false);

struct ScaleZp {
  float scale = 1.f;
  int64_t zero_point = 0;
};

// ORT's compute_scale_zp: the range is widened to include 0; `min_real_range` (if set) forces
// rmax >= rmin + min_real_range (both float32, added in float32); symmetric uses ±max(|rmin|,|rmax|) and zero
// point round((qmin+qmax)/2); scale = (rmax - rmin)/(qmax - qmin) computed in double, stored as float; a scale below
// the smallest normal float becomes 1 with zero point 0; zero point = round_half_even(qmin - rmin/scale) in double.
// float_type Float16 (a float16 tensor, as ORT computes with numpy float16 ranges): rmin / rmax (and rmin +
// min_real_range) are rounded to float16, the scale is stored as the float16 nearest to the double scale (1, zero
// point 0, when that is 0); the zero point still comes from the double scale.
ScaleZp compute_scale_zp(double rmin, double rmax, int64_t qmin, int64_t qmax, bool symmetric,
                         std::optional<double> min_real_range = std::nullopt, DType float_type = DType::Float);

// ORT's snap_zero_point_to_uint8 (option ActivationRestrictedAsymmetric, asymmetric UInt8 activations): after
// widening the range to include 0 (and MinimumRealRange), the zero point is qmin when rmin >= 0, else the middle
// (qmin + qmax + 1) / 2 of [qmin, qmax]; the scale is the smallest that reaches both ends from there (rmax / (qmax
// - qmin), or max(-rmin / (mid - qmin), rmax / (qmax - mid))), floored at MinimumRealRange / (qmax - qmin). An
// empty range [0, 0] gets zero point qmin and scale 1 / (qmax - qmin), as ORT's.
// float_type Float16: the range is rounded to float16 first and the scale last (ORT writes a float32 scale here
// whatever the tensor's type, which a float16 QuantizeLinear refuses).
ScaleZp snap_zero_point_uint8(double rmin, double rmax, int64_t qmin, int64_t qmax,
                              std::optional<double> min_real_range = std::nullopt, DType float_type = DType::Float);

// Quantize one value exactly as QuantizeLinear does: saturate(round_half_even(x / scale) + zp) in float.
int64_t quantize_value(float x, float scale, int64_t zp, int64_t qmin, int64_t qmax);

// Parameters of a weight tensor from its data: per tensor (axis < 0) or per channel along `axis`. A float16 `w`
// gets float16 scales (compute_scale_zp's float_type, scale_type Float16). `range_overrides` (TensorQuantOverrides'
// rmin / rmax): entry c replaces channel c's data min / max (rounded to the tensor's float type, as ORT's
// numpy.array(rmin, dtype=data.dtype)); channels past the end keep theirs.
exec::QuantParams weight_params(const Tensor& w, DType qtype, bool symmetric, int axis, bool reduce_range = false,
                                std::optional<double> min_real_range = std::nullopt,
                                const std::vector<RangeOverride>& range_overrides = {});

// A float16 tensor's scale stored in float16: the nearest float16 to s (as float).
inline float half_scale(double s) { return round_to_half(s); }

// Quantize a float (or float16: widened first) tensor with given parameters into a tensor of q.qtype (4-bit: one
// element per byte).
Tensor quantize_tensor(const Tensor& x, const exec::QuantParams& q);

// Per-channel min/max of x (float, or float16: widened) along axis (axis < 0: whole tensor, one entry).
void channel_minmax(const Tensor& x, int axis, std::vector<double>& mins, std::vector<double>& maxs);

}  // namespace oq::quant
