// Det (11, 22), Col2Im (18) and AffineGrid (20), registered up to kMaxOpset. Float types of the schemas
// (float16 / bfloat16 computed in float32 and rounded back; Col2Im also sums integer types in their own type,
// wrapping). One plain implementation each, declared in geometry_extra.h as the reference the tests call.
//
// Det: LU decomposition with partial pivoting in double (hand-written: a few lines; no LAPACK dependency for
// one op). Det-22 only adds bfloat16.
// Col2Im: y[n, c, p] = sum of input[n, c * prod(block) + k, l] over the blocks l and taps k landing on p
// (p = l * stride - pad_begin + k * dilation per axis); image and block shapes from the inputs.
// AffineGrid: base grid of normalised coordinates (align_corners = 1: linspace(-1, 1, n), -1 for n = 1 as numpy and
// ORT; 0: (2i + 1) / n - 1)
// times theta^T; 2-D (theta [N, 2, 3], size [N, C, H, W]) and 3-D (theta [N, 3, 4], size [N, C, D, H, W]).
#include "exec/kernels/geometry_extra.h"

#include <cmath>
#include <algorithm>
#include <utility>

#include "exec/kernels/elementwise.h"
#include "exec/kernels/extra_util.h"
#include "exec/kernels/indexing.h"
#include "exec/kernels/spatial.h"

namespace oq::exec {

Tensor det(const Tensor& x) {
  const int r = x.rank();
  const int64_t m = x.dim(r - 1), batch = x.numel() / std::max<int64_t>(m * m, 1);
  Shape ys(x.shape().begin(), x.shape().end() - 2);
  const std::vector<double> X = x.to_doubles();
  Tensor y(DType::Double, ys);
  std::vector<double> a(static_cast<size_t>(m * m));
  for (int64_t b = 0; b < (m == 0 ? shape_numel(ys) : batch); ++b) {
    std::copy(X.begin() + b * m * m, X.begin() + (b + 1) * m * m, a.begin());
    double d = 1;
    for (int64_t c = 0; c < m && d != 0; ++c) {
      int64_t piv = c;
      for (int64_t i = c + 1; i < m; ++i)
        if (std::abs(a[i * m + c]) > std::abs(a[piv * m + c])) piv = i;
      if (a[piv * m + c] == 0) {
        d = 0;
        break;
      }
      if (piv != c) {
        for (int64_t j = 0; j < m; ++j) std::swap(a[c * m + j], a[piv * m + j]);
        d = -d;
      }
      d *= a[c * m + c];
      for (int64_t i = c + 1; i < m; ++i) {
        const double f = a[i * m + c] / a[c * m + c];
        for (int64_t j = c; j < m; ++j) a[i * m + j] -= f * a[c * m + j];
      }
    }
    y.data<double>()[b] = d;  // an empty matrix (m = 0) has determinant 1
  }
  return y.cast(x.dtype());
}

Tensor col2im(const Tensor& x, const std::vector<int64_t>& image, const std::vector<int64_t>& block,
              const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
              const std::vector<int64_t>& pads) {
  const size_t n = image.size();
  int64_t kprod = 1, iprod = 1;
  for (size_t a = 0; a < n; ++a) kprod *= block[a], iprod *= image[a];
  const int64_t N = x.dim(0), C = x.dim(1) / kprod, L = x.dim(2);
  std::vector<int64_t> nblk(n);
  for (size_t a = 0; a < n; ++a)
    nblk[a] = (image[a] + pads[a] + pads[a + n] - (dilations[a] * (block[a] - 1) + 1)) / strides[a] + 1;
  Shape ys{N, C};
  ys.insert(ys.end(), image.begin(), image.end());
  Tensor y(x.dtype(), ys);
  std::vector<int64_t> ki(n), li(n);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* X = x.data<T>();
    T* Y = y.data<T>();
    for (int64_t b = 0; b < N; ++b)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t k = 0; k < kprod; ++k) {
          for (int64_t a = static_cast<int64_t>(n) - 1, f = k; a >= 0; --a) ki[a] = f % block[a], f /= block[a];
          for (int64_t l = 0; l < L; ++l) {
            for (int64_t a = static_cast<int64_t>(n) - 1, f = l; a >= 0; --a) li[a] = f % nblk[a], f /= nblk[a];
            int64_t off = 0;
            bool inside = true;
            for (size_t a = 0; a < n && inside; ++a) {
              const int64_t p = li[a] * strides[a] - pads[a] + ki[a] * dilations[a];
              inside = p >= 0 && p < image[a];
              off = off * image[a] + p;
            }
            if (inside) {
              T& dst = Y[(b * C + c) * iprod + off];
              dst = wrap_add(dst, X[(b * C * kprod + c * kprod + k) * L + l]);
            }
          }
        }
  };
  const bool ok = dispatch_numeric(x.dtype(), run);
  OQ_CHECK(ok, "col2im: unsupported type");
  return y;
}

Tensor affine_grid(const Tensor& theta, const std::vector<int64_t>& size, bool align_corners) {
  const bool three = size.size() == 5;
  const int64_t N = size[0], D = three ? size[2] : 1, H = size[size.size() - 2], W = size.back();
  const int dims = three ? 3 : 2;
  auto coord = [&](int64_t i, int64_t len) -> double {
    if (align_corners) return len > 1 ? -1.0 + 2.0 * static_cast<double>(i) / static_cast<double>(len - 1) : -1.0;
    return (2.0 * static_cast<double>(i) + 1.0) / static_cast<double>(len) - 1.0;
  };
  Shape gs = three ? Shape{N, D, H, W, 3} : Shape{N, H, W, 2};
  const std::vector<double> T = theta.to_doubles();
  Tensor g(DType::Double, gs);
  double* G = g.data<double>();
  const int64_t cols = dims + 1;
  for (int64_t b = 0; b < N; ++b)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          const double base[4] = {coord(w, W), coord(h, H), three ? coord(d, D) : 1.0, 1.0};
          double* out = G + (((b * D + d) * H + h) * W + w) * dims;
          for (int r = 0; r < dims; ++r) {
            double s = 0;
            for (int64_t k = 0; k < cols; ++k)
              s += T[(b * dims + r) * cols + k] * (three ? base[k] : (k == 2 ? 1.0 : base[k]));
            out[r] = s;
          }
        }
  return g.cast(theta.dtype());
}

namespace {

std::unique_ptr<Kernel> make_det(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const bool bf16 = ki.opset >= 22;
  return fn_kernel([node, bf16](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    require_float_type(node, x.dtype(), "X", bf16);
    if (x.rank() < 2 || x.dim(-1) != x.dim(-2))
      kfail(node, "X must be [*, M, M] (square matrices), got shape {}", shape_str(x.shape()));
    out[0] = narrow_to(det(widen_half(x)), x.dtype());
  });
}

std::unique_ptr<Kernel> make_col2im(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const std::vector<int64_t> strides = node.attr_ints("strides"), dil = node.attr_ints("dilations"),
                             pads = node.attr_ints("pads");
  for (int64_t v : strides)
    if (v <= 0) kfail(node, "strides must be positive");
  for (int64_t v : dil)
    if (v <= 0) kfail(node, "dilations must be positive");
  for (int64_t v : pads)
    if (v < 0) kfail(node, "pads must be non-negative");
  return fn_kernel([node, strides, dil, pads](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const std::vector<int64_t> image = index_values(node, input_at(node, in, 1), "image_shape", false);
    const std::vector<int64_t> block = index_values(node, input_at(node, in, 2), "block_shape", false);
    if (x.rank() != 3) kfail(node, "input must be [N, C * prod(block_shape), L], got shape {}", shape_str(x.shape()));
    const size_t n = image.size();
    if (n == 0 || block.size() != n)
      kfail(node, "image_shape ({} values) and block_shape ({} values) must have one value per spatial axis", n,
            block.size());
    auto per_axis = [&](const std::vector<int64_t>& v, size_t want, int64_t def, const char* what) {
      if (v.empty()) return std::vector<int64_t>(want, def);
      if (v.size() != want) kfail(node, "{} has {} values, expected {}", what, v.size(), want);
      return v;
    };
    const auto s = per_axis(strides, n, 1, "strides"), d = per_axis(dil, n, 1, "dilations"), p = per_axis(pads, 2 * n, 0, "pads");
    int64_t kprod = 1, L = 1;
    for (size_t a = 0; a < n; ++a) {
      if (image[a] <= 0 || block[a] <= 0) kfail(node, "image_shape and block_shape must be positive");
      kprod *= block[a];
      const int64_t span = image[a] + p[a] + p[a + n] - (d[a] * (block[a] - 1) + 1);
      if (span < 0) kfail(node, "block larger than the padded image on axis {}", a);
      L *= span / s[a] + 1;
    }
    if (x.dim(1) % kprod != 0)
      kfail(node, "input dim 1 ({}) is not a multiple of prod(block_shape) = {}", x.dim(1), kprod);
    if (x.dim(2) != L) kfail(node, "input has {} blocks (dim 2), the geometry gives {}", x.dim(2), L);
    const DType t = x.dtype();
    if (t == DType::String || t == DType::Bool || t == DType::Int4 || t == DType::UInt4)
      kfail(node, "type {} cannot be summed", dtype_name(t));
    Shape os{x.dim(0), x.dim(1) / kprod};
    os.insert(os.end(), image.begin(), image.end());
    check_output_size(node, os);
    out[0] = narrow_to(col2im(widen_half(x), image, block, s, d, p), t);
  });
}

std::unique_ptr<Kernel> make_affine_grid(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const int64_t ac = node.attr_int("align_corners", 0);
  if (ac != 0 && ac != 1) kfail(node, "align_corners must be 0 or 1, got {}", ac);
  return fn_kernel([node, ac](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& theta = input_at(node, in, 0);
    require_float_type(node, theta.dtype(), "theta", true);
    const std::vector<int64_t> size = index_values(node, input_at(node, in, 1), "size", false);
    if (size.size() != 4 && size.size() != 5)
      kfail(node, "size must be [N, C, H, W] or [N, C, D, H, W], got {} values", size.size());
    const int64_t dims = static_cast<int64_t>(size.size()) - 2;
    if (theta.rank() != 3 || theta.dim(0) != size[0] || theta.dim(1) != dims || theta.dim(2) != dims + 1)
      kfail(node, "theta must be [{}, {}, {}] for size {}, got {}", size[0], dims, dims + 1, shape_str(size),
            shape_str(theta.shape()));
    for (int64_t v : size)
      if (v < 0) kfail(node, "size {} has a negative value", shape_str(size));
    Shape gs{size[0]};
    gs.insert(gs.end(), size.begin() + 2, size.end());
    gs.push_back(dims);
    check_output_size(node, gs);
    out[0] = narrow_to(affine_grid(widen_half(theta), size, ac != 0), theta.dtype());
  });
}

}  // namespace

OQ_REGISTER_KERNEL(Det, 11, kMaxOpset, make_det);
OQ_REGISTER_KERNEL(Col2Im, 18, kMaxOpset, make_col2im);
OQ_REGISTER_KERNEL(AffineGrid, 20, kMaxOpset, make_affine_grid);

}  // namespace oq::exec
