// MaxPool (float, int8, uint8; optional Indices), AveragePool, GlobalAveragePool, GlobalMaxPool — opsets
// 1-21. Spatial axes are canonicalised to three (unit axes prepended); per-axis tables of the valid kernel
// range of every output position make the window loops branch-free; (sample, channel, depth) rows are
// spread over threads.
#include <algorithm>
#include <cmath>
#include <limits>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/compute_ref.h"
#include "exec/kernels/pool.h"
#include "exec/kernels/row_stats.h"
#include "exec/kernels/spatial.h"

namespace oq::exec {
namespace {

// One spatial axis: for output position o, kernel taps k in [k0[o], k1[o]) land inside the input at
// o*stride - pad + k*dil; `padded[o]` counts taps inside [-pad_begin, in + pad_end).
struct AxisTable {
  int64_t in = 1, out = 1, stride = 1, dil = 1, pad = 0;
  std::vector<int64_t> k0, k1, padded;
};

AxisTable make_axis(int64_t in, int64_t out, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe) {
  AxisTable t{in, out, s, d, pb, {}, {}, {}};
  t.k0.resize(out);
  t.k1.resize(out);
  t.padded.resize(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t base = o * s - pb, lo = k, hi = 0, pc = 0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t p = base + j * d;
      if (p >= 0 && p < in) lo = std::min(lo, j), hi = j + 1;
      if (p >= -pb && p < in + pe) ++pc;
    }
    t.k0[o] = lo < hi ? lo : 0;
    t.k1[o] = lo < hi ? hi : 0;
    t.padded[o] = pc;
  }
  return t;
}

struct Plan {
  AxisTable ax[3];
  int64_t nc = 0;
};

Plan make_plan(const Shape& xs, const Geometry& g) {
  Plan p;
  size_t n = xs.size() - 2;
  p.nc = xs[0] * xs[1];
  for (size_t i = 0; i < n; ++i)
    p.ax[3 - n + i] = make_axis(xs[2 + i], g.out[i], g.kernel[i], g.strides[i], g.dilations[i], g.pads_begin[i],
                                g.pads_end[i]);
  for (size_t i = 0; i < 3 - n; ++i) p.ax[i] = make_axis(1, 1, 1, 1, 1, 0, 0);
  return p;
}

template <typename T>
void max_pool_fast(const Plan& p, const T* X, T* Y, int64_t* I, int storage_order) {
  const AxisTable &D = p.ax[0], &H = p.ax[1], &W = p.ax[2];
  const int64_t in_sz = D.in * H.in * W.in;
  parallel_for(p.nc * D.out, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t nc = r / D.out, od = r % D.out;
      const T* Xc = X + nc * in_sz;
      for (int64_t oh = 0; oh < H.out; ++oh) {
        T* yrow = Y + (r * H.out + oh) * W.out;
        int64_t* irow = I ? I + (r * H.out + oh) * W.out : nullptr;
        for (int64_t ow = 0; ow < W.out; ++ow) {
          T best = std::numeric_limits<T>::lowest();
          if constexpr (std::numeric_limits<T>::has_infinity) best = -std::numeric_limits<T>::infinity();
          int64_t bi = -1;
          for (int64_t kd = D.k0[od]; kd < D.k1[od]; ++kd) {
            const int64_t id = od * D.stride - D.pad + kd * D.dil;
            for (int64_t kh = H.k0[oh]; kh < H.k1[oh]; ++kh) {
              const int64_t ih = oh * H.stride - H.pad + kh * H.dil;
              const T* row = Xc + (id * H.in + ih) * W.in;
              const int64_t base = ow * W.stride - W.pad;
              if (!irow) {
                for (int64_t kw = W.k0[ow]; kw < W.k1[ow]; ++kw) best = std::max(best, row[base + kw * W.dil]);
              } else {
                for (int64_t kw = W.k0[ow]; kw < W.k1[ow]; ++kw) {
                  const T v = row[base + kw * W.dil];
                  if (bi < 0 || v > best) {
                    best = v;
                    const int64_t iw = base + kw * W.dil;
                    bi = storage_order == 0 ? (id * H.in + ih) * W.in + iw : id + ih * D.in + iw * D.in * H.in;
                  }
                }
              }
            }
          }
          yrow[ow] = best;
          if (irow) irow[ow] = nc * in_sz + bi;
        }
      }
    }
  });
}

// For kernel tap kw of the last axis: the outputs [lo, hi) whose tap lands inside the input.
struct TapRange {
  int64_t lo, hi;
};
std::vector<TapRange> tap_ranges(const AxisTable& a, int64_t k) {
  std::vector<TapRange> r(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) {
    int64_t off = a.pad - j * a.dil;  // p = o*s - off must lie in [0, in)
    int64_t lo = off <= 0 ? 0 : (off + a.stride - 1) / a.stride;
    int64_t hi = (a.in - 1 + off) < 0 ? 0 : (a.in - 1 + off) / a.stride + 1;
    r[j] = {std::min(lo, a.out), std::clamp<int64_t>(hi, 0, a.out)};
    if (r[j].hi < r[j].lo) r[j].hi = r[j].lo;
  }
  return r;
}

// Row-at-a-time pooling without indices: for every kernel tap, one contiguous (or strided) sweep over the
// output row, which the compiler vectorises. kw is the kernel size of the last axis.
template <typename T, bool kMax>
void pool_rows(const Plan& p, int64_t kw, const T* X, T* Y, bool include_pad) {
  const AxisTable &D = p.ax[0], &H = p.ax[1], &W = p.ax[2];
  const int64_t in_sz = D.in * H.in * W.in;
  const std::vector<TapRange> taps = tap_ranges(W, kw);
  std::vector<float> wcount(W.out), wpadded(W.out);
  for (int64_t ow = 0; ow < W.out; ++ow) wcount[ow] = static_cast<float>(W.k1[ow] - W.k0[ow]), wpadded[ow] = static_cast<float>(W.padded[ow]);
  parallel_for(p.nc * D.out, 4, [&](int64_t r0, int64_t r1) {
    std::vector<float> acc(W.out);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t nc = r / D.out, od = r % D.out;
      const T* Xc = X + nc * in_sz;
      for (int64_t oh = 0; oh < H.out; ++oh) {
        const float init = kMax ? -std::numeric_limits<float>::infinity() : 0.0f;
        std::fill(acc.begin(), acc.end(), init);
        for (int64_t kd = D.k0[od]; kd < D.k1[od]; ++kd) {
          const int64_t id = od * D.stride - D.pad + kd * D.dil;
          for (int64_t kh = H.k0[oh]; kh < H.k1[oh]; ++kh) {
            const T* row = Xc + (id * H.in + oh * H.stride - H.pad + kh * H.dil) * W.in;
            for (int64_t j = 0; j < kw; ++j) {
              const int64_t off = j * W.dil - W.pad, s = W.stride;
              float* a = acc.data();
              if constexpr (kMax) {
                for (int64_t ow = taps[j].lo; ow < taps[j].hi; ++ow) a[ow] = std::max(a[ow], static_cast<float>(row[ow * s + off]));
              } else {
                for (int64_t ow = taps[j].lo; ow < taps[j].hi; ++ow) a[ow] += static_cast<float>(row[ow * s + off]);
              }
            }
          }
        }
        T* yrow = Y + (r * H.out + oh) * W.out;
        if constexpr (kMax) {
          for (int64_t ow = 0; ow < W.out; ++ow) yrow[ow] = static_cast<T>(acc[ow]);
        } else {
          const float dh = include_pad ? static_cast<float>(D.padded[od] * H.padded[oh])
                                       : static_cast<float>((D.k1[od] - D.k0[od]) * (H.k1[oh] - H.k0[oh]));
          const float* wc = include_pad ? wpadded.data() : wcount.data();
          for (int64_t ow = 0; ow < W.out; ++ow) {
            const float cnt = dh * wc[ow];
            yrow[ow] = static_cast<T>(cnt > 0 ? acc[ow] / cnt : 0.0f);
          }
        }
      }
    }
  });
}

// dst[o] = max(dst[o], src[o*s + offs[0]], src[o*s + offs[1]], ...) for o in [lo, hi), taps in order (std::max
// keeps the earlier value on ties and ignores a NaN tap, exactly as pool_rows' per-tap sweeps do). Blocks of
// 16 outputs stay in registers across the taps; a short tail is done as an overlapping last block (the max
// over the same taps again leaves every bit unchanged).
void max_taps(float* dst, const float* src, int64_t s, const std::vector<int64_t>& offs, int64_t lo, int64_t hi) {
  constexpr int64_t kB = 16;
  auto block = [&](int64_t o) {
    float v[kB];
    for (int64_t i = 0; i < kB; ++i) v[i] = dst[o + i];
    if (s == 1) {
#if defined(__SSE__)
      // _mm_max_ps(q, v) = q > v ? q : v: std::max(v, q) bit for bit (v kept on ties and NaN q).
      __m128 r0 = _mm_loadu_ps(v), r1 = _mm_loadu_ps(v + 4), r2 = _mm_loadu_ps(v + 8), r3 = _mm_loadu_ps(v + 12);
      for (int64_t off : offs) {
        const float* q = src + off + o;
        r0 = _mm_max_ps(_mm_loadu_ps(q), r0), r1 = _mm_max_ps(_mm_loadu_ps(q + 4), r1);
        r2 = _mm_max_ps(_mm_loadu_ps(q + 8), r2), r3 = _mm_max_ps(_mm_loadu_ps(q + 12), r3);
      }
      _mm_storeu_ps(v, r0), _mm_storeu_ps(v + 4, r1), _mm_storeu_ps(v + 8, r2), _mm_storeu_ps(v + 12, r3);
#else
      for (int64_t off : offs) {
        const float* q = src + off + o;
        for (int64_t i = 0; i < kB; ++i) v[i] = std::max(v[i], q[i]);
      }
#endif
    } else {
      for (int64_t off : offs) {
        const float* q = src + off + o * s;
        for (int64_t i = 0; i < kB; ++i) v[i] = std::max(v[i], q[i * s]);
      }
    }
    for (int64_t i = 0; i < kB; ++i) dst[o + i] = v[i];
  };
  int64_t o = lo;
  for (; o + kB <= hi; o += kB) block(o);
  if (o < hi && hi - lo >= kB) return block(hi - kB);
  for (; o < hi; ++o) {
    float v = dst[o];
    for (int64_t off : offs) v = std::max(v, src[off + o * s]);
    dst[o] = v;
  }
}

// Float MaxPool without Indices over at most two spatial axes (p.ax[0] is a unit axis), separably: every input
// row's max along W into a row buffer, then the max of kernel-height buffer rows. Rows are first copied between
// -inf pads wide enough for every window (ceil_mode included): a -inf tap never changes a max, so all outputs
// take the vector loop. Bitwise equal to pool_rows: both take, per output, the first tap in (kh, kw) order
// whose value compares >= all others (NaN never wins).
void max_pool_separable(const Plan& p, int64_t kw, const float* X, float* Y) {
  const AxisTable &H = p.ax[1], &W = p.ax[2];
  const int64_t in_sz = H.in * W.in, s = W.stride;
  const int64_t width = std::max(W.pad + W.in, (W.out - 1) * s + (kw - 1) * W.dil + 1);
  std::vector<int64_t> woffs(static_cast<size_t>(kw));
  for (int64_t j = 0; j < kw; ++j) woffs[j] = j * W.dil;
  const float ninf = -std::numeric_limits<float>::infinity();
  parallel_for(p.nc, 1, [&](int64_t c0, int64_t c1) {
    std::vector<float> rows(static_cast<size_t>(H.in * W.out)), padded(static_cast<size_t>(width), ninf);
    std::vector<int64_t> hoffs;
    for (int64_t c = c0; c < c1; ++c) {
      const float* Xc = X + c * in_sz;
      for (int64_t ih = 0; ih < H.in; ++ih) {
        float* a = rows.data() + ih * W.out;
        std::copy(Xc + ih * W.in, Xc + (ih + 1) * W.in, padded.data() + W.pad);  // the pads stay -inf
        std::fill(a, a + W.out, ninf);
        max_taps(a, padded.data(), s, woffs, 0, W.out);
      }
      for (int64_t oh = 0; oh < H.out; ++oh) {
        float* y = Y + (c * H.out + oh) * W.out;
        std::fill(y, y + W.out, ninf);
        hoffs.clear();
        for (int64_t kh = H.k0[oh]; kh < H.k1[oh]; ++kh) hoffs.push_back((oh * H.stride - H.pad + kh * H.dil) * W.out);
        max_taps(y, rows.data(), 1, hoffs, 0, W.out);
      }
    }
  });
}

class PoolKernel final : public Kernel {
 public:
  PoolKernel(const KernelInit& init, bool is_max) : node_(init.node), max_(is_max) {
    attrs_ = parse_spatial(node_, /*with_ceil=*/true);
    if (attrs_.kernel_shape.empty()) kfail(node_, "attribute kernel_shape is required");
    if (!max_ && init.opset < 19 && !attrs_.dilations.empty() &&
        std::any_of(attrs_.dilations.begin(), attrs_.dilations.end(), [](int64_t d) { return d != 1; }))
      kfail(node_, "dilations need AveragePool opset 19 (model imports {})", init.opset);
    storage_order_ = static_cast<int>(node_.attr_int("storage_order", 0));
    if (storage_order_ != 0 && storage_order_ != 1) kfail(node_, "storage_order must be 0 or 1");
    include_pad_ = node_.attr_int("count_include_pad", 0) != 0;
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.empty() || !in[0]) kfail(node_, "needs input X");
    const Tensor& x = *in[0];
    if (x.rank() < 3) kfail(node_, "X must have rank >= 3, got shape {}", shape_str(x.shape()));
    DType t = x.dtype();
    if (!(t == DType::Float || (max_ && (t == DType::Int8 || t == DType::UInt8))))
      kfail(node_, "unsupported input type {}", dtype_name(t));
    Shape sp(x.shape().begin() + 2, x.shape().end());
    Geometry g = forward_geometry(node_, attrs_, sp, attrs_.kernel_shape);
    Shape os{x.dim(0), x.dim(1)};
    os.insert(os.end(), g.out.begin(), g.out.end());
    // Every output position is written below unless X is empty (then the outputs stay zero).
    out[0] = x.numel() ? Tensor::uninitialized(t, os) : Tensor(t, os);
    Tensor* idx = nullptr;
    if (max_ && out.size() > 1 && !node_.outputs[1].empty()) {
      out[1] = x.numel() ? Tensor::uninitialized(DType::Int64, os) : Tensor(DType::Int64, os);
      idx = &out[1];
    }
    if (x.numel() == 0 || out[0].numel() == 0) return;
    if (sp.size() > 3) {  // rare: the reference handles any rank
      ref::ConvGeom rg{1, g.kernel, g.strides, g.dilations, g.pads_begin, g.pads_end};
      if (t != DType::Float) kfail(node_, "more than 3 spatial axes are supported for float only");
      if (max_) ref::max_pool(x, rg, out[0], idx, storage_order_);
      else ref::avg_pool(x, rg, include_pad_, out[0]);
      return;
    }
    Plan p = make_plan(x.shape(), g);
    int64_t* I = idx ? idx->data<int64_t>() : nullptr;
    const int64_t kw = attrs_.kernel_shape.back();
    if (!max_) pool_rows<float, false>(p, kw, x.data<float>(), out[0].data<float>(), include_pad_);
    else if (!I && t == DType::Float && sp.size() <= 2) max_pool_separable(p, kw, x.data<float>(), out[0].data<float>());
    else if (!I && t == DType::Float) pool_rows<float, true>(p, kw, x.data<float>(), out[0].data<float>(), false);
    else if (t == DType::Float) max_pool_fast(p, x.data<float>(), out[0].data<float>(), I, storage_order_);
    else if (t == DType::Int8) max_pool_fast(p, x.data<int8_t>(), out[0].data<int8_t>(), I, storage_order_);
    else max_pool_fast(p, x.data<uint8_t>(), out[0].data<uint8_t>(), I, storage_order_);
  }

 private:
  ir::Node node_;
  bool max_;
  SpatialAttrs attrs_;
  int storage_order_ = 0;
  bool include_pad_ = false;
};

class GlobalPoolKernel final : public Kernel {
 public:
  GlobalPoolKernel(const KernelInit& init, bool is_max) : node_(init.node), max_(is_max) {}

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.empty() || !in[0]) kfail(node_, "needs input X");
    const Tensor& x = *in[0];
    if (x.dtype() != DType::Float) kfail(node_, "only float32 is supported, got {}", dtype_name(x.dtype()));
    if (x.rank() < 3) kfail(node_, "X must have rank >= 3, got shape {}", shape_str(x.shape()));
    Shape os(x.rank(), 1);
    os[0] = x.dim(0);
    os[1] = x.dim(1);
    out[0] = Tensor::uninitialized(DType::Float, os);  // one value per (n, c)
    const int64_t nc = x.dim(0) * x.dim(1), sz = nc ? x.numel() / nc : 0;
    if (nc == 0) return;
    if (sz == 0) kfail(node_, "empty spatial extent in X shape {}", shape_str(x.shape()));
    const float* X = x.data<float>();
    float* Y = out[0].data<float>();
    parallel_for(nc, std::max<int64_t>(1, 4096 / sz), [&](int64_t c0, int64_t c1) {
      if (max_) return rows::max_rows(X + c0 * sz, c1 - c0, sz, Y + c0);  // a NaN in a plane gives NaN
      for (int64_t c = c0; c < c1; ++c) {
        const float* p = X + c * sz;
        // Eight partial sums: vectorises without -ffast-math and keeps float rounding small.
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = 0;
        for (; i + 8 <= sz; i += 8)
          for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
        float s = 0;
        for (; i < sz; ++i) s += p[i];
        for (int j = 0; j < 8; ++j) s += acc[j];
        Y[c] = s / static_cast<float>(sz);
      }
    });
  }

 private:
  ir::Node node_;
  bool max_;
};

std::unique_ptr<Kernel> make_max_pool(const KernelInit& i) { return std::make_unique<PoolKernel>(i, true); }
std::unique_ptr<Kernel> make_avg_pool(const KernelInit& i) { return std::make_unique<PoolKernel>(i, false); }
std::unique_ptr<Kernel> make_gmax(const KernelInit& i) { return std::make_unique<GlobalPoolKernel>(i, true); }
std::unique_ptr<Kernel> make_gavg(const KernelInit& i) { return std::make_unique<GlobalPoolKernel>(i, false); }

}  // namespace

Tensor max_pool_float(const ir::Node& node, const Tensor& x, MaxPoolPath path) {
  const SpatialAttrs a = parse_spatial(node, /*with_ceil=*/true);
  const Shape sp(x.shape().begin() + 2, x.shape().end());
  if (x.dtype() != DType::Float || sp.empty() || sp.size() > 2) kfail(node, "max_pool_float: float, 1-2 spatial axes");
  const Geometry g = forward_geometry(node, a, sp, a.kernel_shape);
  Shape os{x.dim(0), x.dim(1)};
  os.insert(os.end(), g.out.begin(), g.out.end());
  Tensor y(DType::Float, os);
  if (x.numel() == 0 || y.numel() == 0) return y;
  const Plan p = make_plan(x.shape(), g);
  if (path == MaxPoolPath::Separable) max_pool_separable(p, a.kernel_shape.back(), x.data<float>(), y.data<float>());
  else pool_rows<float, true>(p, a.kernel_shape.back(), x.data<float>(), y.data<float>(), false);
  return y;
}

OQ_REGISTER_KERNEL(MaxPool, 1, kMaxOpset, make_max_pool);
OQ_REGISTER_KERNEL(AveragePool, 1, kMaxOpset, make_avg_pool);
OQ_REGISTER_KERNEL(GlobalMaxPool, 1, kMaxOpset, make_gmax);
OQ_REGISTER_KERNEL(GlobalAveragePool, 1, kMaxOpset, make_gavg);

}  // namespace oq::exec
