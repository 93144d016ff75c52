// Resize (10, 11, 13, 18, 19) and Upsample (7, 9). See resize.h.
#include "exec/kernels/resize.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/parallel.h"
#include "exec/kernels/strided.h"

namespace oq::exec {

double resize_source_coord(CoordMode m, int64_t j, double scale, int64_t in, int64_t out, double roi_start,
                           double roi_end) {
  const double x = static_cast<double>(j);
  const double out_f = scale * static_cast<double>(in);  // "output_width" (fractional) of the spec
  switch (m) {
    case CoordMode::HalfPixel: return (x + 0.5) / scale - 0.5;
    // The spec's offset + (x + 0.5) / scale - 0.5 with offset = in/2 * (1 - out/out_f), rewritten as one
    // quotient: exact for dyadic scales, where the spec's order lands one ulp off integers and .5 ties.
    case CoordMode::HalfPixelSymmetric: return ((x + 0.5) + (out_f - static_cast<double>(out)) / 2) / scale - 0.5;
    case CoordMode::PytorchHalfPixel: return out > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    // align_corners / tf_crop_and_resize use the integer output length, as the spec and ONNX Runtime do (the
    // ONNX reference uses scale * in, which differs when that is fractional).
    case CoordMode::AlignCorners: return out == 1 ? 0.0 : x * static_cast<double>(in - 1) / static_cast<double>(out - 1);
    case CoordMode::Asymmetric: return x / scale;
    case CoordMode::TfHalfPixelForNN: return (x + 0.5) / scale;
    case CoordMode::TfCropAndResize:
      if (out == 1) return 0.5 * (roi_start + roi_end) * static_cast<double>(in - 1);
      return roi_start * static_cast<double>(in - 1) +
             x * (roi_end - roi_start) * static_cast<double>(in - 1) / static_cast<double>(out - 1);
  }
  return x;
}

float resize_source_coord_f32(CoordMode m, int64_t j, float scale, int64_t in, int64_t out, float roi_start,
                              float roi_end) {
  // ONNX Runtime's GetOriginalCoordinateFromResizedCoordinate (upsamplebase.h), operation for operation: float
  // operands, except where its expressions mix in a double literal (half_pixel_symmetric's tail, the one-pixel
  // tf_crop_and_resize branch), which are evaluated in double and rounded to float once at the end.
  const float x = static_cast<float>(j), lo = static_cast<float>(in), lr = static_cast<float>(out);
  switch (m) {
    case CoordMode::HalfPixel: return ((x + 0.5f) / scale) - 0.5f;
    case CoordMode::HalfPixelSymmetric: {
      const float output_width = scale * lo;
      const float adjustment = lr / output_width;
      const float center = lo / 2;
      const float offset = center * (1 - adjustment);
      return static_cast<float>(offset + (x + 0.5) / scale - 0.5);
    }
    case CoordMode::PytorchHalfPixel: return lr > 1 ? (x + 0.5f) / scale - 0.5f : 0.0f;
    case CoordMode::AlignCorners: return lr == 1 ? 0.0f : x * (lo - 1) / (lr - 1);
    case CoordMode::Asymmetric: return x / scale;
    case CoordMode::TfHalfPixelForNN: return (x + 0.5f) / scale;
    case CoordMode::TfCropAndResize:
      if (lr > 1) return roi_start * (lo - 1) + (x * (roi_end - roi_start) * (lo - 1)) / (lr - 1);
      return static_cast<float>(0.5 * (roi_start + roi_end) * (lo - 1));
  }
  return x;
}

int64_t resize_nearest_source(const ResizeSpec& s, int64_t j, double scale, int64_t in, int64_t out,
                              double roi_start, double roi_end) {
  // scale and roi come from float32 tensors (or sizes / in, whose double quotient rounds to ORT's float one);
  // a double roi beyond float's range is clamped first (converting it is undefined behaviour).
  auto f32 = [](double v) { return static_cast<float>(std::clamp<double>(v, -FLT_MAX, FLT_MAX)); };
  const double x = resize_source_coord_f32(s.coord, j, f32(scale), in, out, f32(roi_start), f32(roi_end));
  if (s.coord == CoordMode::TfCropAndResize && (x < 0 || x > static_cast<double>(in - 1))) return -1;
  return std::clamp<int64_t>(resize_nearest_index(s.nearest, x, scale), 0, in - 1);
}

int64_t resize_nearest_index(NearestMode m, double x, double scale) {
  // The caller clamps the index to [0, in-1]; coordinates far outside (a tf_crop_and_resize roi of 1e30) are
  // brought into int64 range first, since converting them is undefined behaviour. The index is the same.
  if (std::isnan(x)) return 0;  // a float32 tf_crop_and_resize coordinate of an overflowing roi (inf - inf)
  x = std::clamp(x, -0x1p62, 0x1p62);
  // ONNX Runtime 1.32 treats a coordinate within 1e-6 of k + 0.5 as the tie (measured: 0.5 - 9.5e-7 rounds
  // up with round_prefer_ceil, 0.5 - 1.07e-6 down; likewise at 10.5), so a float32 coordinate a few ulps off
  // an exact .5 still takes the preferred side.
  const double fl = std::floor(x);
  const bool tie = std::fabs(x - fl - 0.5) < 1e-6;
  switch (m) {
    case NearestMode::RoundPreferFloor: return static_cast<int64_t>(tie ? fl : std::floor(x + 0.5));
    case NearestMode::RoundPreferCeil: return static_cast<int64_t>(tie ? fl + 1 : std::floor(x + 0.5));
    case NearestMode::Floor: return static_cast<int64_t>(std::floor(x));
    case NearestMode::Ceil: return static_cast<int64_t>(std::ceil(x));
    case NearestMode::Simple: return scale < 1 ? static_cast<int64_t>(std::ceil(x)) : static_cast<int64_t>(x);
  }
  return 0;
}

namespace {

double cubic_kernel(double x, double A) {
  x = std::fabs(x);
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0.0;
}

// Axes with scale 1 and unchanged length are copied as they are (ONNX reference, ONNX Runtime), even in modes
// like tf_half_pixel_for_nn whose formula would shift them.
bool axis_is_identity(const ResizeSpec& s, double scale, int64_t in, int64_t out, double rs, double re) {
  return scale == 1.0 && in == out && (s.coord != CoordMode::TfCropAndResize || (rs == 0 && re == 1));
}

bool is_extrapolated(const ResizeSpec& s, double x, int64_t in) {
  return s.coord == CoordMode::TfCropAndResize && (x < 0 || x > static_cast<double>(in - 1));
}

}  // namespace

AxisTaps resize_axis_taps(const ResizeSpec& s, double scale, int64_t in, int64_t out, double roi_start,
                          double roi_end) {
  AxisTaps t;
  if (out == 0) {  // nothing to compute (and a scale of 0 or 1e-300 would overflow the antialiasing taps)
    t.n_taps = 1;
    return t;
  }
  if (s.mode == ResizeMode::Nearest) {
    t.n_taps = 1;
    t.weight.assign(static_cast<size_t>(out), 1.0);
    t.extrapolated.assign(static_cast<size_t>(out), 0);
    for (int64_t j = 0; j < out; ++j) {
      const int64_t i = resize_nearest_source(s, j, scale, in, out, roi_start, roi_end);
      t.extrapolated[j] = i < 0;
      t.index.push_back(std::max<int64_t>(i, 0));
    }
    return t;
  }
  const bool aa = s.antialias && scale < 1;
  const double sc = std::min(scale, 1.0);
  int64_t start;
  if (s.mode == ResizeMode::Linear) {
    start = aa ? static_cast<int64_t>(std::floor(-1 / sc)) + 1 : 0;
  } else {
    start = aa ? static_cast<int64_t>(std::floor(-2 / sc)) + 1 : -1;
  }
  t.n_taps = 2 - 2 * start;
  t.index.assign(static_cast<size_t>(out * t.n_taps), 0);
  t.weight.assign(static_cast<size_t>(out * t.n_taps), 0.0);
  t.extrapolated.assign(static_cast<size_t>(out), 0);
  std::vector<double> w(static_cast<size_t>(t.n_taps));
  for (int64_t j = 0; j < out; ++j) {
    double x = resize_source_coord(s.coord, j, scale, in, out, roi_start, roi_end);
    if (is_extrapolated(s, x, in)) {
      t.extrapolated[j] = 1;
      continue;
    }
    // Prefer the pixel left of x: an exact integer x uses base x-1 with ratio 1 (as the reference does).
    double fl = std::floor(x);
    int64_t base = static_cast<int64_t>(fl);
    double ratio = x - fl;
    if (ratio == 0) {
      base -= 1;
      ratio = 1;
    }
    double sum = 0;
    for (int64_t i = 0; i < t.n_taps; ++i) {
      double d = static_cast<double>(start + i) - ratio;  // tap position relative to x
      double v;
      if (s.mode == ResizeMode::Linear)
        v = aa ? std::clamp(1 - std::fabs(d * sc), 0.0, 1.0) : (i == 0 ? 1 - ratio : ratio);
      else
        v = cubic_kernel(aa ? d * sc : d, s.cubic_a);
      w[i] = v;
      sum += v;
    }
    if (aa)
      for (double& v : w) v /= sum;
    if (s.exclude_outside) {
      double ws = 0;
      for (int64_t i = 0; i < t.n_taps; ++i) {
        int64_t idx = base + start + i;
        if (idx < 0 || idx >= in) w[i] = 0;
        ws += w[i];
      }
      if (ws != 0)
        for (double& v : w) v /= ws;
    }
    for (int64_t i = 0; i < t.n_taps; ++i) {
      t.index[j * t.n_taps + i] = std::clamp<int64_t>(base + start + i, 0, in - 1);
      t.weight[j * t.n_taps + i] = w[i];
    }
  }
  return t;
}

namespace {

// One separable pass along `axis` of a [outer, in, inner] array into [outer, out, inner].
template <typename T>
void resize_pass(const T* src, const Shape& shape, int axis, const AxisTaps& taps, int64_t out_len, T extrap,
                 T* dst) {
  int64_t outer = 1, inner = 1;
  for (int k = 0; k < axis; ++k) outer *= shape[k];
  for (size_t k = axis + 1; k < shape.size(); ++k) inner *= shape[k];
  const int64_t in_len = shape[axis], nt = taps.n_taps;
  std::vector<T> w(taps.weight.begin(), taps.weight.end());
  if (inner == 1) {  // last axis: one row of the input per output row, taps unrolled for linear
    const T* W = w.data();
    const int64_t* IX = taps.index.data();
    const uint8_t* EX = taps.extrapolated.data();
    parallel_for(outer, std::max<int64_t>(1, 4096 / std::max<int64_t>(out_len, 1)), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const T* s = src + o * in_len;
        T* d = dst + o * out_len;
        if (nt == 2) {
          for (int64_t j = 0; j < out_len; ++j)
            d[j] = EX[j] ? extrap : W[2 * j] * s[IX[2 * j]] + W[2 * j + 1] * s[IX[2 * j + 1]];
          continue;
        }
        for (int64_t j = 0; j < out_len; ++j) {
          if (EX[j]) {
            d[j] = extrap;
            continue;
          }
          const T* wj = W + j * nt;
          const int64_t* ix = IX + j * nt;
          T acc = wj[0] * s[ix[0]];
          for (int64_t k = 1; k < nt; ++k) acc += wj[k] * s[ix[k]];
          d[j] = acc;
        }
      }
    });
    return;
  }
  parallel_for(outer * out_len, std::max<int64_t>(1, 4096 / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
    int64_t o = b / out_len, j = b % out_len - 1;
    for (int64_t t = b; t < e; ++t) {
      if (++j == out_len) {
        j = 0;
        ++o;
      }
      T* d = dst + t * inner;
      if (taps.extrapolated[j]) {
        std::fill(d, d + inner, extrap);
        continue;
      }
      const T* s = src + o * in_len * inner;
      const int64_t* ix = &taps.index[j * nt];
      const T* wj = &w[j * nt];
      const T* s0 = s + ix[0] * inner;
      for (int64_t i = 0; i < inner; ++i) d[i] = wj[0] * s0[i];
      for (int64_t k = 1; k < nt; ++k) {
        const T* sk = s + ix[k] * inner;
        const T wk = wj[k];
        for (int64_t i = 0; i < inner; ++i) d[i] += wk * sk[i];
      }
    }
  });
}

template <typename T>
Tensor resize_interp(const Tensor& x, DType dt, const ResizeSpec& s, const std::vector<double>& scales,
                     const Shape& out_shape, const std::vector<double>& roi) {
  const int r = x.rank();
  Tensor cur = x;
  for (int a = 0; a < r; ++a) {
    const int64_t in = cur.shape()[a], out = out_shape[a];
    double rs = roi.empty() ? 0.0 : roi[a], re = roi.empty() ? 1.0 : roi[a + r];
    if (axis_is_identity(s, scales[a], in, out, rs, re)) continue;
    Shape ns = cur.shape();
    ns[a] = out;
    Tensor next = Tensor::uninitialized(dt, ns);  // numel > 0 implies in > 0 (checked by resize_tensor)
    if (next.numel() > 0 && in > 0) {
      AxisTaps taps = resize_axis_taps(s, scales[a], in, out, rs, re);
      resize_pass<T>(cur.data<T>(), cur.shape(), a, taps, out, static_cast<T>(s.extrapolation_value), next.data<T>());
    }
    cur = next;
  }
  return cur;
}

}  // namespace

Tensor resize_tensor(const ir::Node& node, const Tensor& x, const ResizeSpec& s, const std::vector<double>& scales,
                     const Shape& out_shape, const std::vector<double>& roi) {
  const int r = x.rank();
  size_t esz = elem_size(node, x);
  OQ_CHECK(static_cast<int>(scales.size()) == r && static_cast<int>(out_shape.size()) == r, "resize plan rank");
  for (int a = 0; a < r; ++a)
    if (x.shape()[a] == 0 && out_shape[a] > 0) kfail(node, "cannot resize an empty axis {}", a);
  if (s.mode == ResizeMode::Nearest) {
    std::vector<std::vector<int64_t>> maps(static_cast<size_t>(r));
    for (int a = 0; a < r; ++a) {
      const int64_t in = x.shape()[a];
      double rs = roi.empty() ? 0.0 : roi[a], re = roi.empty() ? 1.0 : roi[a + r];
      if (axis_is_identity(s, scales[a], in, out_shape[a], rs, re)) {  // e.g. N and C: never remapped
        for (int64_t j = 0; j < in; ++j) maps[a].push_back(j);
        continue;
      }
      for (int64_t j = 0; j < out_shape[a]; ++j)
        maps[a].push_back(resize_nearest_source(s, j, scales[a], in, out_shape[a], rs, re));
    }
    Tensor fill = scalar_of(x.dtype(), s.extrapolation_value);
    Tensor out = Tensor::uninitialized(x.dtype(), out_shape);
    gather_by_maps(esz, x.shape(), static_cast<const uint8_t*>(x.raw()), maps,
                   static_cast<const uint8_t*>(fill.raw()), static_cast<uint8_t*>(out.raw()));
    return out;
  }
  if (x.dtype() == DType::Double) return resize_interp<double>(x, DType::Double, s, scales, out_shape, roi);
  if (!is_float(x.dtype()) && !is_integer(x.dtype()))
    kfail(node, "unsupported input type {} for interpolation", dtype_name(x.dtype()));
  Tensor xf = x.dtype() == DType::Float ? x : x.cast(DType::Float);
  Tensor y = resize_interp<float>(xf, DType::Float, s, scales, out_shape, roi);
  return x.dtype() == DType::Float ? y : y.cast(x.dtype());
}

Tensor resize_naive(const Tensor& x, const ResizeSpec& s, const std::vector<double>& scales, const Shape& out_shape,
                    const std::vector<double>& roi) {
  const int r = x.rank();
  std::vector<AxisTaps> taps;
  for (int a = 0; a < r; ++a) {
    ResizeSpec sa = s;
    double rs = roi.empty() ? 0.0 : roi[a], re = roi.empty() ? 1.0 : roi[a + r];
    taps.push_back(resize_axis_taps(sa, scales[a], x.shape()[a], out_shape[a], rs, re));
  }
  Tensor out(DType::Float, out_shape);
  auto st = contiguous_strides(x.shape());
  std::vector<int64_t> o(static_cast<size_t>(r)), t(static_cast<size_t>(r));
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t rem = i;
    bool ext = false;
    for (int k = r - 1; k >= 0; --k) {
      o[k] = rem % out_shape[k];
      rem /= out_shape[k];
      ext = ext || taps[k].extrapolated[o[k]];
    }
    if (ext) {
      out.data<float>()[i] = static_cast<float>(s.extrapolation_value);
      continue;
    }
    // Sum over the tensor product of all axes' taps (odometer over tap indices).
    double acc = 0;
    std::fill(t.begin(), t.end(), 0);
    while (true) {
      double w = 1;
      int64_t off = 0;
      for (int k = 0; k < r; ++k) {
        w *= taps[k].weight[o[k] * taps[k].n_taps + t[k]];
        off += taps[k].index[o[k] * taps[k].n_taps + t[k]] * st[k];
      }
      acc += w * x.data<float>()[off];
      int k = r - 1;
      for (; k >= 0; --k) {
        if (++t[k] < taps[k].n_taps) break;
        t[k] = 0;
      }
      if (k < 0) break;
    }
    out.data<float>()[i] = static_cast<float>(acc);
  }
  return out;
}

// ------------------------------------------------------------------------------------------ factories
namespace {

ResizeMode parse_resize_mode(const ir::Node& node, const std::string& m, bool allow_cubic) {
  if (m == "nearest") return ResizeMode::Nearest;
  if (m == "linear" || m == "bilinear") return ResizeMode::Linear;
  if (m == "cubic" && allow_cubic) return ResizeMode::Cubic;
  kfail(node, "unsupported mode '{}'", m);
}

CoordMode parse_coord(const ir::Node& node, const std::string& c) {
  if (c == "half_pixel") return CoordMode::HalfPixel;
  if (c == "half_pixel_symmetric") return CoordMode::HalfPixelSymmetric;
  if (c == "pytorch_half_pixel") return CoordMode::PytorchHalfPixel;
  if (c == "align_corners") return CoordMode::AlignCorners;
  if (c == "asymmetric") return CoordMode::Asymmetric;
  if (c == "tf_half_pixel_for_nn") return CoordMode::TfHalfPixelForNN;
  if (c == "tf_crop_and_resize") return CoordMode::TfCropAndResize;
  kfail(node, "unsupported coordinate_transformation_mode '{}'", c);
}

// Output extent of axis a from a scale as onnxruntime's kernel computes it: the float32 product scale * in,
// truncated (int64_t(0.7f * 10.0f) = 7 where floor(0.7 * 10) in double is 6), or with `round`
// (keep_aspect_ratio_policy) rounded half away from zero. It must fit in int64 (a scale of 1e38 does not;
// converting it would be undefined behaviour).
int64_t output_extent(const ir::Node& node, double scale, int64_t in, int a, bool round = false) {
  const float v = resize_scaled_extent(scale, in, round);
  if (!(v < 0x1p62f)) kfail(node, "scale {} makes axis {} {} elements long, too many", scale, a, v);
  return static_cast<int64_t>(v);
}

NearestMode parse_nearest(const ir::Node& node, const std::string& n) {
  if (n == "round_prefer_floor") return NearestMode::RoundPreferFloor;
  if (n == "round_prefer_ceil") return NearestMode::RoundPreferCeil;
  if (n == "floor") return NearestMode::Floor;
  if (n == "ceil") return NearestMode::Ceil;
  kfail(node, "unsupported nearest_mode '{}'", n);
}

// Upsample-7/9 and Resize-10: scales only, output = floor(in * scale).
Tensor resize_by_scales(const ir::Node& node, const Tensor& x, const ResizeSpec& spec, std::vector<double> sc) {
  if (static_cast<int>(sc.size()) != x.rank())
    kfail(node, "scales has {} entries for an input of rank {}", sc.size(), x.rank());
  Shape out;
  for (int a = 0; a < x.rank(); ++a) {
    if (!(sc[a] > 0)) kfail(node, "scale {} must be positive", sc[a]);
    out.push_back(output_extent(node, sc[a], x.shape()[a], a));
  }
  return resize_tensor(node, x, spec, sc, out, {});
}

std::unique_ptr<Kernel> make_upsample(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  ResizeSpec spec;
  spec.mode = parse_resize_mode(node, node.attr_string("mode", "nearest"), false);
  spec.coord = CoordMode::Asymmetric;
  spec.nearest = NearestMode::Simple;
  const bool attr_scales = ki.opset < 9;
  std::vector<float> fs = node.attr_floats("scales");
  if (attr_scales && fs.empty()) kfail(node, "attribute 'scales' is required");
  std::vector<double> ds(fs.begin(), fs.end());
  return fn_kernel([node, spec, attr_scales, ds](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    out[0] = resize_by_scales(node, x, spec, attr_scales ? ds : input_at(node, in, 1).to_doubles());
  });
}

std::unique_ptr<Kernel> make_resize(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  ResizeSpec spec;
  spec.mode = parse_resize_mode(node, node.attr_string("mode", "nearest"), ki.opset >= 11);
  if (ki.opset < 11) {
    spec.coord = CoordMode::Asymmetric;
    spec.nearest = NearestMode::Simple;
    return fn_kernel([node, spec](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
      out[0] = resize_by_scales(node, input_at(node, in, 0), spec, input_at(node, in, 1).to_doubles());
    });
  }
  spec.coord = parse_coord(node, node.attr_string("coordinate_transformation_mode", "half_pixel"));
  spec.nearest = parse_nearest(node, node.attr_string("nearest_mode", "round_prefer_floor"));
  spec.cubic_a = node.attr_float("cubic_coeff_a", -0.75f);
  spec.exclude_outside = node.attr_int("exclude_outside", 0) != 0;
  spec.extrapolation_value = node.attr_float("extrapolation_value", 0.0f);
  std::vector<int64_t> axes_attr;
  std::string keep = "stretch";
  if (ki.opset >= 18) {
    spec.antialias = node.attr_int("antialias", 0) != 0;
    axes_attr = node.attr_ints("axes");
    keep = node.attr_string("keep_aspect_ratio_policy", "stretch");
    if (keep != "stretch" && keep != "not_larger" && keep != "not_smaller")
      kfail(node, "unsupported keep_aspect_ratio_policy '{}'", keep);
  }
  return fn_kernel([node, spec, axes_attr, keep](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const int r = x.rank();
    std::vector<int64_t> axes;
    if (axes_attr.empty())
      for (int a = 0; a < r; ++a) axes.push_back(a);
    for (int64_t a : axes_attr) axes.push_back(normalize_axis(node, a, r));
    const size_t na = axes.size();
    const Tensor* roi_t = optional_input(in, 1);
    const Tensor* scales_t = optional_input(in, 2);
    const Tensor* sizes_t = optional_input(in, 3);
    if (scales_t && sizes_t) kfail(node, "only one of 'scales' and 'sizes' may be given");
    if (!scales_t && !sizes_t) kfail(node, "one of 'scales' and 'sizes' is required");
    std::vector<double> scales(static_cast<size_t>(r), 1.0);
    Shape os = x.shape();
    if (scales_t) {
      std::vector<double> v = scales_t->to_doubles();
      if (v.size() != na) kfail(node, "scales has {} entries for {} axes", v.size(), na);
      for (size_t i = 0; i < na; ++i) {
        if (!(v[i] > 0)) kfail(node, "scale {} must be positive", v[i]);
        scales[axes[i]] = v[i];
        os[axes[i]] = output_extent(node, v[i], x.shape()[axes[i]], static_cast<int>(axes[i]));
      }
    } else {
      std::vector<int64_t> v = int_values(node, *sizes_t, "sizes");
      if (v.size() != na) kfail(node, "sizes has {} entries for {} axes", v.size(), na);
      for (size_t i = 0; i < na; ++i) {
        if (v[i] < 0) kfail(node, "negative size {}", v[i]);
        if (x.shape()[axes[i]] == 0) kfail(node, "cannot resize an empty axis {}", axes[i]);
      }
      if (keep == "stretch") {
        for (size_t i = 0; i < na; ++i) {
          os[axes[i]] = v[i];
          scales[axes[i]] = static_cast<double>(v[i]) / static_cast<double>(x.shape()[axes[i]]);
        }
      } else {
        float sc = keep == "not_larger" ? INFINITY : 0.0f;  // float32 as onnxruntime
        for (size_t i = 0; i < na; ++i) {
          const float si = static_cast<float>(v[i]) / static_cast<float>(x.shape()[axes[i]]);
          sc = keep == "not_larger" ? std::min(sc, si) : std::max(sc, si);
        }
        for (size_t i = 0; i < na; ++i) {
          scales[axes[i]] = sc;
          os[axes[i]] = output_extent(node, sc, x.shape()[axes[i]], static_cast<int>(axes[i]), true);
        }
      }
    }
    std::vector<double> roi;
    if (spec.coord == CoordMode::TfCropAndResize && roi_t) {
      std::vector<double> v = roi_t->to_doubles();
      if (v.size() != 2 * na) kfail(node, "roi has {} entries for {} axes", v.size(), na);
      roi.assign(static_cast<size_t>(r), 0.0);
      roi.resize(static_cast<size_t>(2 * r), 1.0);
      for (size_t i = 0; i < 2 * na; ++i)
        if (!std::isfinite(v[i])) kfail(node, "roi entry {} is {}", i, v[i]);
      for (size_t i = 0; i < na; ++i) {
        roi[axes[i]] = v[i];
        roi[axes[i] + r] = v[i + na];
      }
    }
    out[0] = resize_tensor(node, x, spec, scales, os, roi);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(Upsample, kMinOpset, 9, make_upsample);
OQ_REGISTER_KERNEL(Resize, 10, kMaxOpset, make_resize);

}  // namespace oq::exec
