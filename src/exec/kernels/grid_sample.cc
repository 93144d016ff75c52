// GridSample (opset 16, 20): Y[n, c, o_1..o_r] = X[n, c] sampled at the location grid[n, o_1..o_r, :], whose last
// axis holds normalised coordinates in [-1, 1] innermost axis first (x = width, y = height, z = depth).
// Opset 16: 4-D X only, modes bilinear / nearest / bicubic. Opset 20+: any spatial rank r >= 1, modes linear /
// nearest / cubic. The kernel is generic over r (separable interpolation: 1, 2 or 4 taps per axis) and is its
// own naive reference; for 4-D and 5-D inputs it evaluates in onnxruntime's float order.
//
// Sampling, per axis d of extent L (onnx.reference's op_grid_sample.py and ORT's grid_sample.cc):
//  - location x = ((g + 1) * L - 1) / 2, or (g + 1) / 2 * (L - 1) with align_corners; nearest rounds it half
//    to even (nearbyint);
//  - reflection: a location outside [-0.5, L - 0.5] ([0, L - 1] with align_corners) is reflected into it;
//  - taps outside [0, L) read 0 (zeros), the nearest edge pixel (border) or the reflected pixel (reflection).
// With border padding the location itself is not clamped, only the taps (ORT / PyTorch). This equals the onnx
// reference for nearest and linear; for cubic the reference clamps the location first and differs near the
// edges — ORT 1.32 does not, and ORT is followed (docs/conformance.md, "Detection kernels").
// A non-finite grid coordinate gives NaN (ORT's result is undefined there).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "exec/kernels/strided.h"

namespace oq::exec {
namespace {

enum class GsMode { Linear, Nearest, Cubic };
enum class GsPad { Zeros, Border, Reflection };

struct GridSampleAttrs {
  GsMode mode = GsMode::Linear;
  GsPad pad = GsPad::Zeros;
  bool align_corners = false;
  bool only_4d = false;  // opset 16-19
};

template <typename T>
T gs_denormalize(T n, int64_t length, bool align_corners) {
  if (align_corners) return static_cast<T>((n + 1) / T(2) * static_cast<T>(length - 1));
  return static_cast<T>(((n + 1) * static_cast<T>(length) - 1) / T(2));
}

// Reflects x into [lo, hi] by the nearest border, repeatedly.
template <typename T>
T gs_reflect(T x, T lo, T hi) {
  const T range = hi - lo;
  if (!(range > 0)) return lo;  // a 1-pixel axis with align_corners: one position
  if (x < lo) {
    const T dx = lo - x;
    const T k = std::floor(dx / range);
    const T r = dx - k * range;
    return std::fmod(k, T(2)) == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    const T dx = x - hi;
    const T k = std::floor(dx / range);
    const T r = dx - k * range;
    return std::fmod(k, T(2)) == 0 ? hi - r : lo + r;
  }
  return x;
}

// Keys cubic convolution coefficients (alpha = -0.75) for the 4 taps at offsets -1, 0, 1, 2 of fraction t.
template <typename T>
void gs_cubic_coeffs(T t, T c[4]) {
  constexpr T a = T(-0.75);
  const T x = std::abs(t);
  c[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a;
  c[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
  c[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a;
}

// Taps of one axis: pixel index (-1 = zero padding) and weight.
template <typename T>
struct AxisTaps {
  int k = 0;
  int64_t idx[4];
  T w[4];
};

template <typename T>
struct GridSampler {
  const GridSampleAttrs& a;
  std::vector<int64_t> dims;  // input spatial extents, outermost first
  std::vector<T> lo, hi;      // per-axis borders

  GridSampler(const GridSampleAttrs& attrs, std::vector<int64_t> d) : a(attrs), dims(std::move(d)) {
    for (int64_t L : dims) {
      lo.push_back(a.align_corners ? T(0) : T(-0.5));
      hi.push_back(a.align_corners ? static_cast<T>(L - 1) : static_cast<T>(L) - T(0.5));
    }
  }

  int64_t pad_index(int64_t i, size_t d) const {
    const int64_t L = dims[d];
    if (i >= 0 && i < L) return i;
    switch (a.pad) {
      case GsPad::Zeros: return -1;
      case GsPad::Border: return std::clamp<int64_t>(i, 0, L - 1);
      case GsPad::Reflection: break;
    }
    const auto j = static_cast<int64_t>(gs_reflect(static_cast<T>(i), lo[d], hi[d]));
    return std::clamp<int64_t>(j, 0, L - 1);
  }

  // Taps of axis d at normalised coordinate g; false when g is not finite.
  bool taps(T g, size_t d, AxisTaps<T>& t) const {
    if (!std::isfinite(g)) return false;
    T x = gs_denormalize(g, dims[d], a.align_corners);
    if (a.mode == GsMode::Nearest) x = std::nearbyint(x);
    if (a.pad == GsPad::Reflection && (x < lo[d] || x > hi[d])) x = gs_reflect(x, lo[d], hi[d]);
    // Far outside, every tap pads the same way: clamping keeps the integer conversion defined.
    const T far = static_cast<T>(dims[d]) + T(4);
    x = std::clamp(x, -far, far);
    if (a.mode == GsMode::Nearest) {
      t.k = 1;
      t.idx[0] = pad_index(static_cast<int64_t>(x), d);
      t.w[0] = T(1);
      return true;
    }
    const auto i0 = static_cast<int64_t>(std::floor(x));
    if (a.mode == GsMode::Linear) {
      t.k = 2;
      t.idx[0] = pad_index(i0, d);
      t.idx[1] = pad_index(i0 + 1, d);
      t.w[0] = static_cast<T>(i0 + 1) - x;
      t.w[1] = x - static_cast<T>(i0);
      return true;
    }
    t.k = 4;
    gs_cubic_coeffs(x - static_cast<T>(i0), t.w);
    for (int j = 0; j < 4; ++j) t.idx[j] = pad_index(i0 - 1 + j, d);
    return true;
  }

  // Weighted sum over the taps of axes d.. (innermost axis summed first, as ORT).
  T eval(const T* plane, const std::vector<AxisTaps<T>>& taps, size_t d, int64_t offset) const {
    if (d == taps.size()) return plane[offset];
    const AxisTaps<T>& t = taps[d];
    T acc = 0;
    for (int j = 0; j < t.k; ++j)
      if (t.idx[j] >= 0) acc += t.w[j] * eval(plane, taps, d + 1, offset * dims[d] + t.idx[j]);
    return acc;
  }
};

template <typename T>
void grid_sample_typed(const GridSampleAttrs& a, const Tensor& x, const Tensor& grid, Tensor& y) {
  const int r = x.rank() - 2;
  const int64_t N = x.dim(0), C = x.dim(1);
  std::vector<int64_t> dims(x.shape().begin() + 2, x.shape().end());
  int64_t plane_in = 1, points = 1;
  for (int64_t d : dims) plane_in *= d;
  for (int i = 1; i <= r; ++i) points *= grid.dim(i);
  const GridSampler<T> s(a, dims);
  const T* xd = x.data<T>();
  const T* gd = grid.data<T>();
  T* yd = y.data<T>();
  const int64_t grain = std::max<int64_t>(1, 1024 / std::max<int64_t>(C, 1));
  parallel_for(N * points, grain, [&](int64_t lo, int64_t hi) {
    std::vector<AxisTaps<T>> taps(static_cast<size_t>(r));
    for (int64_t np = lo; np < hi; ++np) {
      const int64_t n = np / points, p = np % points;
      const T* g = gd + np * r;
      bool finite = true;
      for (int d = 0; d < r && finite; ++d) finite = s.taps(g[r - 1 - d], static_cast<size_t>(d), taps[d]);
      for (int64_t c = 0; c < C; ++c) {
        T* out = yd + (n * C + c) * points + p;
        *out = finite ? s.eval(xd + (n * C + c) * plane_in, taps, 0, 0) : std::numeric_limits<T>::quiet_NaN();
      }
    }
  });
}

std::unique_ptr<Kernel> make_grid_sample(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  GridSampleAttrs a;
  a.only_4d = ki.opset < 20;
  const std::string mode = node.attr_string("mode", a.only_4d ? "bilinear" : "linear");
  if (a.only_4d) {
    if (mode == "bilinear") a.mode = GsMode::Linear;
    else if (mode == "nearest") a.mode = GsMode::Nearest;
    else if (mode == "bicubic") a.mode = GsMode::Cubic;
    else kfail(node, "attribute 'mode' must be bilinear, nearest or bicubic at opset {}, got '{}'", ki.opset, mode);
  } else {
    if (mode == "linear") a.mode = GsMode::Linear;
    else if (mode == "nearest") a.mode = GsMode::Nearest;
    else if (mode == "cubic") a.mode = GsMode::Cubic;
    else kfail(node, "attribute 'mode' must be linear, nearest or cubic at opset {}, got '{}'", ki.opset, mode);
  }
  const std::string pad = node.attr_string("padding_mode", "zeros");
  if (pad == "zeros") a.pad = GsPad::Zeros;
  else if (pad == "border") a.pad = GsPad::Border;
  else if (pad == "reflection") a.pad = GsPad::Reflection;
  else kfail(node, "attribute 'padding_mode' must be zeros, border or reflection, got '{}'", pad);
  const int64_t ac = node.attr_int("align_corners", 0);
  if (ac != 0 && ac != 1) kfail(node, "attribute 'align_corners' must be 0 or 1, got {}", ac);
  a.align_corners = ac == 1;
  return fn_kernel([node, a](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const Tensor& grid = input_at(node, in, 1);
    const DType t = x.dtype();
    if (t != DType::Float && t != DType::Double && t != DType::Float16)
      kfail(node, "X must be float, double or float16, got {}", dtype_name(t));
    const DType gt = grid.dtype();
    if (gt != DType::Float && gt != DType::Double && gt != DType::Float16)
      kfail(node, "grid must be float, double or float16, got {}", dtype_name(gt));
    if (a.only_4d && x.rank() != 4)
      kfail(node, "X must be 4-D (N, C, H, W) at opset 16-19, got {}", shape_str(x.shape()));
    if (x.rank() < 3) kfail(node, "X must have rank >= 3 (N, C, D1, ...), got {}", shape_str(x.shape()));
    const int r = x.rank() - 2;
    if (grid.rank() != r + 2 || grid.dim(-1) != r || grid.dim(0) != x.dim(0))
      kfail(node, "grid must have shape [N={}, D1_out, ..., D{}_out, {}] for X {}, got {}", x.dim(0), r, r,
            shape_str(x.shape()), shape_str(grid.shape()));
    Shape ys = {x.dim(0), x.dim(1)};
    for (int i = 1; i <= r; ++i) ys.push_back(grid.dim(i));
    const int64_t plane_in = x.numel() / std::max<int64_t>(1, x.dim(0) * x.dim(1));
    if (shape_numel(ys) > 0 && plane_in == 0)
      kfail(node, "X has an empty spatial dimension {}: nothing to sample", shape_str(x.shape()));
    const DType ct = t == DType::Double ? DType::Double : DType::Float;  // Float16 computed in float
    const Tensor xc = t == ct ? x : x.cast(ct);
    const Tensor gc = gt == ct ? grid : grid.cast(ct);
    Tensor y = Tensor::uninitialized(ct, ys);
    if (ct == DType::Double) grid_sample_typed<double>(a, xc, gc, y);
    else grid_sample_typed<float>(a, xc, gc, y);
    out[0] = ct == t ? std::move(y) : y.cast(t);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(GridSample, 16, kMaxOpset, make_grid_sample);

}  // namespace oq::exec
