// LpPool (2, 11, 18, 22), GlobalLpPool (2, 22) and MaxUnpool (9, 11, 22), registered up to kMaxOpset, on
// float16 / float / double (bfloat16 from 22); float16 / bfloat16 computed in float32 and rounded back.
// GlobalLpPool is LpPool with one window over every spatial axis (p defaults to 2; GlobalLpPool-1's float p is
// not taken: opsets below 2 are not registered).
//
// Version differences: LpPool-11 only rewords auto_pad (SAME: out = ceil(in / stride), what
// forward_geometry computes for every version); LpPool-18 adds ceil_mode and dilations (refused before 18, where
// the schema has no such attributes); 22 adds bfloat16. MaxUnpool-11 only rewords `strides`; 22 adds bfloat16.
//
// LpPool: y = (sum over the window of |x|^p)^(1/p); window positions in the padding or past the input (ceil_mode)
// contribute nothing (as ORT). The kernel canonicalises the spatial axes to three and spreads (n, c) planes over
// threads; ref::lp_pool (naive, any rank) is the yardstick (tests/unit/test_kernels_extra.cc).
// MaxUnpool: y = zeros(output shape); y.flat[I[i]] = X[i] (a later element wins on duplicate indices, as ORT);
// output shape from the `output_shape` input when given, else (in - 1) * stride + kernel - pads per axis.
#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "exec/kernels/extra_util.h"
#include "exec/kernels/norm_extra.h"
#include "exec/kernels/spatial.h"

namespace oq::exec {

namespace ref {
namespace {
void unravel(int64_t f, const std::vector<int64_t>& dims, std::vector<int64_t>& idx) {
  idx.resize(dims.size());
  for (int i = static_cast<int>(dims.size()) - 1; i >= 0; --i) idx[i] = f % dims[i], f /= dims[i];
}
int64_t product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t d : v) p *= d;
  return p;
}
}  // namespace

Tensor lp_pool(const Tensor& x, const ConvGeom& g, const std::vector<int64_t>& out_spatial, int64_t p) {
  const std::vector<int64_t> in(x.shape().begin() + 2, x.shape().end());
  const int64_t NC = x.dim(0) * x.dim(1), in_sz = product(in), out_sz = product(out_spatial), k_sz = product(g.kernel);
  Shape os{x.dim(0), x.dim(1)};
  os.insert(os.end(), out_spatial.begin(), out_spatial.end());
  const std::vector<double> X = x.to_doubles();
  Tensor y(DType::Double, os);
  std::vector<int64_t> oi, ki;
  for (int64_t nc = 0; nc < NC; ++nc)
    for (int64_t o = 0; o < out_sz; ++o) {
      unravel(o, out_spatial, oi);
      double sum = 0;
      for (int64_t kk = 0; kk < k_sz; ++kk) {
        unravel(kk, g.kernel, ki);
        int64_t off = 0;
        bool inside = true;
        for (size_t a = 0; a < in.size(); ++a) {
          const int64_t pos = oi[a] * g.strides[a] - g.pads_begin[a] + ki[a] * g.dilations[a];
          inside = inside && pos >= 0 && pos < in[a];
          off = off * in[a] + pos;
        }
        if (inside) sum += std::pow(std::abs(X[nc * in_sz + off]), static_cast<double>(p));
      }
      y.data<double>()[nc * out_sz + o] = std::pow(sum, 1.0 / static_cast<double>(p));
    }
  return y.cast(x.dtype());
}

Tensor max_unpool(const Tensor& x, const Tensor& indices, const Shape& out_shape) {
  const std::vector<double> X = x.to_doubles();
  const int64_t* I = indices.data<int64_t>();
  Tensor y(DType::Double, out_shape);
  for (int64_t i = 0; i < x.numel(); ++i) y.data<double>()[I[i]] = X[i];
  return y.cast(x.dtype());
}

}  // namespace ref

namespace {

// One spatial axis: valid taps [k0[o], k1[o]) of output o land inside the input.
struct Axis {
  int64_t in = 1, out = 1, stride = 1, dil = 1, pad = 0;
  std::vector<int64_t> k0, k1;
};
Axis make_axis(int64_t in, int64_t out, int64_t k, int64_t s, int64_t d, int64_t pb) {
  Axis a{in, out, s, d, pb, std::vector<int64_t>(out), std::vector<int64_t>(out)};
  for (int64_t o = 0; o < out; ++o) {
    int64_t lo = k, hi = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t pos = o * s - pb + j * d;
      if (pos >= 0 && pos < in) lo = std::min(lo, j), hi = j + 1;
    }
    a.k0[o] = lo < hi ? lo : 0;
    a.k1[o] = lo < hi ? hi : 0;
  }
  return a;
}

template <typename T>
void lp_pool_fast(const T* X, T* Y, int64_t nc, const Axis (&ax)[3], int64_t p) {
  const Axis &D = ax[0], &H = ax[1], &W = ax[2];
  const int64_t in_sz = D.in * H.in * W.in, out_sz = D.out * H.out * W.out;
  auto pw = [p](double v) { return p == 1 ? std::abs(v) : p == 2 ? v * v : std::pow(std::abs(v), double(p)); };
  auto root = [p](double s) { return p == 1 ? s : p == 2 ? std::sqrt(s) : std::pow(s, 1.0 / double(p)); };
  parallel_for(nc, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const T* Xc = X + c * in_sz;
      T* Yc = Y + c * out_sz;
      for (int64_t od = 0; od < D.out; ++od)
        for (int64_t oh = 0; oh < H.out; ++oh)
          for (int64_t ow = 0; ow < W.out; ++ow) {
            double s = 0;
            for (int64_t kd = D.k0[od]; kd < D.k1[od]; ++kd) {
              const int64_t id = od * D.stride - D.pad + kd * D.dil;
              for (int64_t kh = H.k0[oh]; kh < H.k1[oh]; ++kh) {
                // First tap's offset (may lie left of the row: only taps [k0, k1) inside it are read).
                const int64_t base = (id * H.in + oh * H.stride - H.pad + kh * H.dil) * W.in + ow * W.stride - W.pad;
                for (int64_t kw = W.k0[ow]; kw < W.k1[ow]; ++kw) s += pw(static_cast<double>(Xc[base + kw * W.dil]));
              }
            }
            Yc[(od * H.out + oh) * W.out + ow] = static_cast<T>(root(s));
          }
    }
  });
}

class LpPoolKernel final : public Kernel {
 public:
  // global: GlobalLpPool, one window over all the spatial axes (no kernel_shape / strides / pads attributes).
  LpPoolKernel(const KernelInit& init, bool global) : node_(init.node), bf16_(init.opset >= 22), global_(global) {
    const bool v18 = init.opset >= 18 && !global;
    if (!global) {
      if (!v18 && node_.has_attr("dilations")) kfail(node_, "dilations need LpPool-18 (model imports {})", init.opset);
      if (!v18 && node_.attr_int("ceil_mode", 0) != 0)
        kfail(node_, "ceil_mode needs LpPool-18 (model imports {})", init.opset);
      attrs_ = parse_spatial(node_, v18);
      if (attrs_.kernel_shape.empty()) kfail(node_, "attribute kernel_shape is required");
    }
    p_ = node_.attr_int("p", 2);
    if (p_ < 1) kfail(node_, "p must be >= 1, got {}", p_);
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const Tensor& x = input_at(node_, in, 0);
    require_float_type(node_, x.dtype(), "X", bf16_);
    if (x.rank() < 3) kfail(node_, "X must have rank >= 3, got shape {}", shape_str(x.shape()));
    const std::vector<int64_t> sp(x.shape().begin() + 2, x.shape().end());
    SpatialAttrs a = attrs_;
    if (global_) a.kernel_shape = sp;
    const Geometry g = forward_geometry(node_, a, sp, a.kernel_shape);
    Shape os{x.dim(0), x.dim(1)};
    os.insert(os.end(), g.out.begin(), g.out.end());
    check_output_size(node_, os);
    const Tensor xc = widen_half(x);
    if (sp.size() > 3) {  // rare: the reference handles any rank
      out[0] = narrow_to(ref::lp_pool(xc, {1, g.kernel, g.strides, g.dilations, g.pads_begin, g.pads_end}, g.out, p_),
                         x.dtype());
      return;
    }
    Axis ax[3];
    const size_t n = sp.size();
    for (size_t i = 0; i < 3 - n; ++i) ax[i] = make_axis(1, 1, 1, 1, 1, 0);
    for (size_t i = 0; i < n; ++i)
      ax[3 - n + i] = make_axis(sp[i], g.out[i], g.kernel[i], g.strides[i], g.dilations[i], g.pads_begin[i]);
    Tensor y(xc.dtype(), os);
    if (xc.dtype() == DType::Float) lp_pool_fast(xc.data<float>(), y.data<float>(), x.dim(0) * x.dim(1), ax, p_);
    else lp_pool_fast(xc.data<double>(), y.data<double>(), x.dim(0) * x.dim(1), ax, p_);
    out[0] = narrow_to(std::move(y), x.dtype());
  }

 private:
  ir::Node node_;
  bool bf16_, global_;
  SpatialAttrs attrs_;
  int64_t p_ = 2;
};

class MaxUnpoolKernel final : public Kernel {
 public:
  explicit MaxUnpoolKernel(const KernelInit& init) : node_(init.node), bf16_(init.opset >= 22) {
    attrs_ = parse_spatial(node_, false);
    if (attrs_.kernel_shape.empty()) kfail(node_, "attribute kernel_shape is required");
    if (!attrs_.dilations.empty()) kfail(node_, "MaxUnpool has no dilations attribute");
    if (attrs_.auto_pad != AutoPad::NotSet) kfail(node_, "MaxUnpool has no auto_pad attribute");
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const Tensor& x = input_at(node_, in, 0);
    const Tensor& idx = input_at(node_, in, 1);
    require_float_type(node_, x.dtype(), "X", bf16_);
    if (idx.dtype() != DType::Int64) kfail(node_, "I must be int64, got {}", dtype_name(idx.dtype()));
    if (x.rank() < 3) kfail(node_, "X must have rank >= 3, got shape {}", shape_str(x.shape()));
    if (idx.shape() != x.shape())
      kfail(node_, "I shape {} differs from X shape {}", shape_str(idx.shape()), shape_str(x.shape()));
    const size_t n = static_cast<size_t>(x.rank() - 2);
    const SpatialAttrs& a = attrs_;
    if (a.kernel_shape.size() != n) kfail(node_, "kernel_shape has {} values for {} spatial axes", a.kernel_shape.size(), n);
    if (!a.strides.empty() && a.strides.size() != n) kfail(node_, "strides has {} values, expected {}", a.strides.size(), n);
    if (!a.pads.empty() && a.pads.size() != 2 * n) kfail(node_, "pads has {} values, expected {}", a.pads.size(), 2 * n);
    Shape os;
    const Tensor* osh = optional_input(in, 2);
    if (osh) {
      os = int_values(node_, *osh, "output_shape");
      if (os.size() != static_cast<size_t>(x.rank()))
        kfail(node_, "output_shape {} must have X's rank {}", shape_str(os), x.rank());
      for (int64_t d : os)
        if (d < 0) kfail(node_, "output_shape {} has a negative dimension", shape_str(os));
    } else {
      os = {x.dim(0), x.dim(1)};
      for (size_t i = 0; i < n; ++i) {
        const int64_t s = a.strides.empty() ? 1 : a.strides[i];
        const int64_t pads = a.pads.empty() ? 0 : a.pads[i] + a.pads[i + n];
        const int64_t d = (x.dim(static_cast<int>(i) + 2) - 1) * s + a.kernel_shape[i] - pads;
        if (d <= 0) kfail(node_, "spatial axis {} gives an empty output ({})", i, d);
        os.push_back(d);
      }
    }
    check_output_size(node_, os);
    const int64_t total = shape_numel(os);
    const int64_t* I = idx.data<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i)
      if (I[i] < 0 || I[i] >= total)
        kfail(node_, "index {} (element {}) is outside the output of {} elements {}", I[i], i, total, shape_str(os));
    // Scatter: a plain copy loop in element order (later wins), no threading needed for a data movement this size.
    const Tensor xc = widen_half(x);
    Tensor y(xc.dtype(), os);
    if (xc.dtype() == DType::Float) {
      for (int64_t i = 0; i < x.numel(); ++i) y.data<float>()[I[i]] = xc.data<float>()[i];
    } else {
      for (int64_t i = 0; i < x.numel(); ++i) y.data<double>()[I[i]] = xc.data<double>()[i];
    }
    out[0] = narrow_to(std::move(y), x.dtype());
  }

 private:
  ir::Node node_;
  bool bf16_;
  SpatialAttrs attrs_;
};

std::unique_ptr<Kernel> make_lp_pool(const KernelInit& i) { return std::make_unique<LpPoolKernel>(i, false); }
std::unique_ptr<Kernel> make_global_lp_pool(const KernelInit& i) { return std::make_unique<LpPoolKernel>(i, true); }
std::unique_ptr<Kernel> make_max_unpool(const KernelInit& i) { return std::make_unique<MaxUnpoolKernel>(i); }

}  // namespace

OQ_REGISTER_KERNEL(LpPool, 2, kMaxOpset, make_lp_pool);
OQ_REGISTER_KERNEL(GlobalLpPool, 2, kMaxOpset, make_global_lp_pool);
OQ_REGISTER_KERNEL(MaxUnpool, 9, kMaxOpset, make_max_unpool);

}  // namespace oq::exec
