#include "quant/qparams.h"

#include <cfloat>
#include <cmath>
#include <limits>

#include "calib/binning.h"
#include "exec/kernels/qdq.h"

namespace oq::quant {

QRange qrange(DType t, bool symmetric, bool reduce_range) {
  if (reduce_range) {
    switch (t) {
      case DType::UInt8: return {0, 127};
      case DType::Int8: return {-64, 64};
      case DType::UInt16: return {0, 32767};
      case DType::Int16: return {-16384, 16384};
      case DType::UInt4: return {0, 7};
      case DType::Int4: return {-4, 3};
      default: break;
    }
  } else if (symmetric) {
    switch (t) {
      case DType::Int8: return {-127, 127};
      case DType::UInt8: return {0, 254};
      case DType::Int16: return {-32767, 32767};
      case DType::UInt16: return {0, 65534};
      default: break;  // 4-bit types keep their full range, as ORT does
    }
  }
  QRange r = full_range(t);
  if (r.qmin == 0 && r.qmax == 0) fail(ErrorKind::Runtime, "{} is not a quantization type", dtype_name(t));
  return r;
}

// A range end as ORT holds it: a float32 value, or a float16 one for a float16 tensor.
static double narrow_to(double v, DType float_type) {
  return float_type == DType::Float16 ? static_cast<double>(round_to_half(v)) : static_cast<double>(static_cast<float>(v));
}

ScaleZp compute_scale_zp(double rmin, double rmax, int64_t qmin, int64_t qmax, bool symmetric,
                         std::optional<double> min_real_range, DType float_type) {
  OQ_CHECK(qmin <= 0 && qmax >= 0 && qmin < qmax, "qmin {} qmax {}", qmin, qmax);
  const bool half = float_type == DType::Float16;
  // ORT works on float32 (float16) ranges: round the inputs first so results match bit for bit.
  rmin = std::min<double>(narrow_to(rmin, float_type), 0.0);
  rmax = std::max<double>(narrow_to(rmax, float_type), 0.0);
  if (min_real_range) {
    // ORT: rmin + numpy.asarray(min_real_range, dtype=rmin.dtype), a float32 (float16: float32, then rounded)
    // addition of the range rounded to that type.
    const float sum = static_cast<float>(rmin) + static_cast<float>(narrow_to(*min_real_range, float_type));
    rmax = std::max(rmax, narrow_to(sum, float_type));
  }
  if (symmetric) {
    double a = std::max(std::fabs(rmin), std::fabs(rmax));
    rmin = -a;
    rmax = a;
  }
  double scale = (rmax - rmin) / (static_cast<double>(qmax) - static_cast<double>(qmin));
  ScaleZp r;
  // float: a scale below the smallest normal float; float16: one that rounds to 0 (subnormal float16 scales
  // are kept, as ORT keeps them). Both also catch NaN.
  const float stored = half ? half_scale(scale) : static_cast<float>(scale);
  if (half ? !(stored > 0.f) : !(scale >= static_cast<double>(FLT_MIN))) {
    r.scale = 1.f;
    r.zero_point = 0;
    return r;
  }
  if (symmetric)
    r.zero_point = static_cast<int64_t>(std::nearbyint((static_cast<double>(qmin) + qmax) / 2.0));
  else
    r.zero_point = static_cast<int64_t>(std::nearbyint(static_cast<double>(qmin) - rmin / scale));
  r.zero_point = std::clamp(r.zero_point, qmin, qmax);
  r.scale = stored;
  return r;
}

ScaleZp snap_zero_point_uint8(double rmin, double rmax, int64_t qmin, int64_t qmax,
                              std::optional<double> min_real_range, DType float_type) {
  OQ_CHECK(qmin < qmax, "qmin {} qmax {}", qmin, qmax);
  const int64_t mid = (qmin + qmax + 1) / 2;
  const double span = static_cast<double>(qmax - qmin);
  const bool half = float_type == DType::Float16;
  auto store = [&](double s) { return half ? half_scale(s) : static_cast<float>(s); };
  rmin = std::min<double>(narrow_to(rmin, float_type), 0.0);
  rmax = std::max<double>(narrow_to(rmax, float_type), 0.0);
  const bool floor = min_real_range && *min_real_range > 0;
  if (floor) rmax = std::max(rmax, rmin + *min_real_range);
  ScaleZp r;
  double scale = 0;
  if (rmax <= rmin) {  // [0, 0]
    r.zero_point = rmin >= 0 ? qmin : mid;
    const double abs_max = std::max(std::fabs(rmin), std::fabs(rmax));
    const double denom = r.zero_point == qmin ? span : std::max<double>(1, (qmax - qmin) / 2);
    scale = (abs_max > 0 ? abs_max : 1.0) / std::max(1.0, denom);
    if (min_real_range && scale < *min_real_range / span) scale = *min_real_range / span;
    r.scale = store(scale);
    return r;
  }
  if (rmin >= 0) {
    r.zero_point = qmin;
    scale = rmax / span;
  } else {
    r.zero_point = mid;
    scale = std::max(-rmin / static_cast<double>(mid - qmin), rmax / static_cast<double>(qmax - mid));
  }
  r.scale = static_cast<float>(scale);
  if (floor && static_cast<double>(r.scale) < *min_real_range / span) r.scale = static_cast<float>(*min_real_range / span);
  if (half) r.scale = half_scale(r.scale);
  return r;
}

int64_t quantize_value(float x, float scale, int64_t zp, int64_t qmin, int64_t qmax) {
  float v = std::nearbyint(x / scale) + static_cast<float>(zp);
  if (std::isnan(v)) return std::clamp<int64_t>(zp, qmin, qmax);
  if (v <= static_cast<float>(qmin)) return qmin;
  if (v >= static_cast<float>(qmax)) return qmax;
  return static_cast<int64_t>(v);
}

void channel_minmax(const Tensor& x, int axis, std::vector<double>& mins, std::vector<double>& maxs) {
  if (x.dtype() == DType::Float16) return channel_minmax(x.cast(DType::Float), axis, mins, maxs);
  OQ_CHECK(x.dtype() == DType::Float, "channel_minmax on {}", dtype_name(x.dtype()));
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const float* d = x.data<float>();
  // NaN is skipped, infinities count (as std::min / std::max over the values would do).
  if (axis < 0) {
    float lo = kInf, hi = -kInf;
    calib::min_max_into({d, static_cast<size_t>(x.numel())}, lo, hi);
    if (x.numel() == 0) lo = hi = 0;
    mins = {lo};
    maxs = {hi};
    return;
  }
  int64_t outer = 1, inner = 1, ch = x.dim(axis);
  for (int i = 0; i < axis; ++i) outer *= x.dim(i);
  for (int i = axis + 1; i < x.rank(); ++i) inner *= x.dim(i);
  std::vector<float> lo(static_cast<size_t>(ch), kInf), hi(static_cast<size_t>(ch), -kInf);
  for (int64_t o = 0; o < outer; ++o) {
    const float* row = d + o * ch * inner;
    if (inner == 1) {  // channels along the last axis (MatMul / Gemm weights [K, N]): element-wise over a row
      for (int64_t c = 0; c < ch; ++c) {
        const float v = row[c];
        lo[c] = v < lo[c] ? v : lo[c];
        hi[c] = v > hi[c] ? v : hi[c];
      }
      continue;
    }
    for (int64_t c = 0; c < ch; ++c) calib::min_max_into({row + c * inner, static_cast<size_t>(inner)}, lo[c], hi[c]);
  }
  mins.assign(lo.begin(), lo.end());
  maxs.assign(hi.begin(), hi.end());
  for (int64_t c = 0; c < ch; ++c)
    if (mins[c] > maxs[c]) mins[c] = maxs[c] = 0;
}

exec::QuantParams weight_params(const Tensor& w, DType qtype, bool symmetric, int axis, bool reduce_range,
                                std::optional<double> min_real_range, const std::vector<RangeOverride>& range_overrides) {
  std::vector<double> mins, maxs;
  channel_minmax(w, axis, mins, maxs);
  for (size_t c = 0; c < std::min(range_overrides.size(), mins.size()); ++c) {
    // float16 tensors: compute_scale_zp rounds the range to float16 itself.
    auto as_float = [&](double v) { return w.dtype() == DType::Float16 ? v : static_cast<double>(static_cast<float>(v)); };
    if (range_overrides[c].rmin) mins[c] = as_float(*range_overrides[c].rmin);
    if (range_overrides[c].rmax) maxs[c] = as_float(*range_overrides[c].rmax);
  }
  QRange r = qrange(qtype, symmetric, reduce_range);
  exec::QuantParams q;
  q.qtype = qtype;
  q.axis = axis;
  q.scale_type = w.dtype() == DType::Float16 ? DType::Float16 : DType::Float;
  for (size_t c = 0; c < mins.size(); ++c) {
    ScaleZp s = compute_scale_zp(mins[c], maxs[c], r.qmin, r.qmax, symmetric, min_real_range, q.scale_type);
    q.scale.push_back(s.scale);
    q.zero_point.push_back(s.zero_point);
  }
  return q;
}

Tensor quantize_tensor(const Tensor& x, const exec::QuantParams& q) {
  if (x.dtype() == DType::Float16) return quantize_tensor(x.cast(DType::Float), q);
  OQ_CHECK(x.dtype() == DType::Float, "quantize_tensor on {}", dtype_name(x.dtype()));
  const int axis = q.axis >= 0 && x.rank() > 0 ? q.axis : -1;
  const exec::QLayout L = exec::make_qlayout(x.shape(), axis, 0);
  OQ_CHECK(static_cast<int64_t>(q.scale.size()) == L.params(), "scale count {} vs channels {}", q.scale.size(),
           L.params());
  OQ_CHECK(q.zero_point.size() == q.scale.size(), "zero point count {} vs scales {}", q.zero_point.size(),
           q.scale.size());
  std::vector<int32_t> zp(q.zero_point.begin(), q.zero_point.end());
  Tensor out(q.qtype, x.shape());
  // The executor's vectorised QuantizeLinear (the same values as quantize_value) ...
  exec::quantize_array(x.data<float>(), L, q.scale.data(), zp.data(), q.qtype, out.raw());
  // ... except for NaN, which quantize_value maps to the zero point (clamped).
  const float* d = x.data<float>();
  bool any_nan = false;
  // The vectorised scan flags any non-finite value (a scalar NaN test over a MobileNetV2's weights was ~3 ms of
  // a run's fixed cost); only then look for NaNs one by one.
  if (calib::finite_min_max(std::span<const float>(d, static_cast<size_t>(x.numel()))).non_finite)
    for (int64_t i = 0; i < x.numel() && !any_nan; ++i) any_nan = d[i] != d[i];
  if (any_nan) {
    const QRange r = full_range(q.qtype);
    const int64_t inner = axis < 0 ? x.numel() : L.inner, ch = axis < 0 ? 1 : L.D;
    for (int64_t i = 0; i < x.numel(); ++i)
      if (d[i] != d[i]) {
        const int64_t c = (i / inner) % ch;
        const int64_t v = quantize_value(d[i], q.scale[c], q.zero_point[c], r.qmin, r.qmax);
        switch (q.qtype) {
          case DType::Int8: case DType::Int4: out.data<int8_t>()[i] = static_cast<int8_t>(v); break;
          case DType::UInt8: case DType::UInt4: out.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
          case DType::Int16: out.data<int16_t>()[i] = static_cast<int16_t>(v); break;
          case DType::UInt16: out.data<uint16_t>()[i] = static_cast<uint16_t>(v); break;
          default: fail(ErrorKind::Runtime, "cannot quantize to {}", dtype_name(q.qtype));
        }
      }
  }
  return out;
}

}  // namespace oq::quant
