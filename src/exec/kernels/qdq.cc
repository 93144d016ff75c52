// QuantizeLinear, DequantizeLinear (opsets 10-21: per tensor, per axis, blocked) and exec::fake_quantize.
#include "exec/kernels/qdq.h"

#include <algorithm>

#include "core/clones.h"
#include "core/parallel.h"
#include "exec/kernels/strided.h"

namespace oq::exec {

QRange qdq_range(DType t) { return full_range(t); }

int64_t QLayout::params() const {
  switch (mode) {
    case Mode::PerTensor: return 1;
    case Mode::PerAxis: return D;
    case Mode::Blocked: return outer * nb * inner;
  }
  return 1;
}

QLayout make_qlayout(const Shape& s, int axis, int64_t block) {
  QLayout L;
  if (axis < 0) {
    L.inner = shape_numel(s);
    return L;
  }
  for (int k = 0; k < axis; ++k) L.outer *= s[k];
  L.D = s[axis];
  for (size_t k = axis + 1; k < s.size(); ++k) L.inner *= s[k];
  if (block > 0) {
    L.mode = QLayout::Mode::Blocked;
    L.block = block;
    L.nb = (L.D + block - 1) / block;
  } else {
    L.mode = QLayout::Mode::PerAxis;
  }
  return L;
}

namespace {

// Calls seg(i0, i1, p0, step) on runs of elements [i0, i1) whose scale / zero point index is
// p0 + step * (i - i0) (step 0: one parameter for the whole run, step 1: blocked along the last dims).
template <typename F>
void for_each_segment(const QLayout& L, F&& seg) {
  const int64_t n = L.outer * L.D * L.inner;
  parallel_for(n, 16384, [&](int64_t b, int64_t e) {
    int64_t i = b;
    while (i < e) {
      const int64_t r = i / L.inner, c = i % L.inner;
      const int64_t stop = std::min(e, (r + 1) * L.inner);
      switch (L.mode) {
        case QLayout::Mode::PerTensor: seg(i, stop, int64_t{0}, 0); break;
        case QLayout::Mode::PerAxis: seg(i, stop, r % L.D, 0); break;
        case QLayout::Mode::Blocked: seg(i, stop, ((r / L.D) * L.nb + (r % L.D) / L.block) * L.inner + c, 1); break;
      }
      i = stop;
    }
  });
}

// Runs g(i, scale, zero_point) over every element with tight loops (parameters hoisted per run).
template <typename G>
void for_each_with_param(const QLayout& L, const float* scale, const int32_t* zp, G&& g) {
  for_each_segment(L, [&](int64_t i0, int64_t i1, int64_t p0, int step) {
    if (step == 0) {
      const float s = scale[p0];
      const int32_t z = zp[p0];
      for (int64_t i = i0; i < i1; ++i) g(i, s, z);
    } else {
      for (int64_t i = i0; i < i1; ++i) g(i, scale[p0 + i - i0], zp[p0 + i - i0]);
    }
  });
}

template <typename F>
void visit_qtype(DType t, F&& f) {
  switch (t) {
    case DType::Int8: case DType::Int4: f(int8_t{}); break;
    case DType::UInt8: case DType::UInt4: f(uint8_t{}); break;
    case DType::Int16: f(int16_t{}); break;
    case DType::UInt16: f(uint16_t{}); break;
    case DType::Int32: f(int32_t{}); break;
    default: fail(ErrorKind::Model, "unsupported quantized type {}", dtype_name(t));
  }
}

}  // namespace

namespace {
// Runs with one scale and zero point: plain loops over restrict pointers, so that they vectorise (the
// per-element lambdas of for_each_with_param reload their captures on every element), compiled for AVX-512
// and AVX2 as well as the baseline (GCC target_clones, picked at run time; it does not take templates, hence
// one function per type). Same arithmetic in every clone: IEEE division, the exact rounding of
// quantize_value, so the results do not depend on the clone.
#define OQ_QDQ_RUNS(Q, suffix)                                                                          \
  OQ_TARGET_CLONES void quantize_run_##suffix(const float* __restrict x, int64_t n, float s, int32_t z, \
                                              int32_t qmin, int32_t qmax, Q* __restrict out) {          \
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<Q>(quantize_value(x[i], s, z, qmin, qmax));    \
  }                                                                                                     \
  OQ_TARGET_CLONES void dequantize_run_##suffix(const Q* __restrict in, int64_t n, float s, int32_t z,  \
                                                float* __restrict y) {                                  \
    for (int64_t i = 0; i < n; ++i) y[i] = dequantize_value(static_cast<int32_t>(in[i]), z, s);         \
  }
OQ_QDQ_RUNS(int8_t, i8)
OQ_QDQ_RUNS(uint8_t, u8)
OQ_QDQ_RUNS(int16_t, i16)
OQ_QDQ_RUNS(uint16_t, u16)
OQ_QDQ_RUNS(int32_t, i32)
#undef OQ_QDQ_RUNS

void quantize_run(const float* x, int64_t n, float s, int32_t z, int32_t qmin, int32_t qmax, int8_t* out) {
  quantize_run_i8(x, n, s, z, qmin, qmax, out);
}
void quantize_run(const float* x, int64_t n, float s, int32_t z, int32_t qmin, int32_t qmax, uint8_t* out) {
  quantize_run_u8(x, n, s, z, qmin, qmax, out);
}
void quantize_run(const float* x, int64_t n, float s, int32_t z, int32_t qmin, int32_t qmax, int16_t* out) {
  quantize_run_i16(x, n, s, z, qmin, qmax, out);
}
void quantize_run(const float* x, int64_t n, float s, int32_t z, int32_t qmin, int32_t qmax, uint16_t* out) {
  quantize_run_u16(x, n, s, z, qmin, qmax, out);
}
void quantize_run(const float* x, int64_t n, float s, int32_t z, int32_t qmin, int32_t qmax, int32_t* out) {
  quantize_run_i32(x, n, s, z, qmin, qmax, out);
}
void dequantize_run(const int8_t* in, int64_t n, float s, int32_t z, float* y) { dequantize_run_i8(in, n, s, z, y); }
void dequantize_run(const uint8_t* in, int64_t n, float s, int32_t z, float* y) { dequantize_run_u8(in, n, s, z, y); }
void dequantize_run(const int16_t* in, int64_t n, float s, int32_t z, float* y) { dequantize_run_i16(in, n, s, z, y); }
void dequantize_run(const uint16_t* in, int64_t n, float s, int32_t z, float* y) {
  dequantize_run_u16(in, n, s, z, y);
}
void dequantize_run(const int32_t* in, int64_t n, float s, int32_t z, float* y) { dequantize_run_i32(in, n, s, z, y); }
}  // namespace

void quantize_array(const float* x, const QLayout& L, const float* scale, const int32_t* zp, DType qtype, void* q) {
  const QRange r = qdq_range(qtype);
  const auto qmin = static_cast<int32_t>(r.qmin), qmax = static_cast<int32_t>(r.qmax);
  visit_qtype(qtype, [&](auto tag) {
    using Q = decltype(tag);
    Q* out = static_cast<Q*>(q);
    for_each_segment(L, [&](int64_t i0, int64_t i1, int64_t p0, int step) {
      if (step == 0) return quantize_run(x + i0, i1 - i0, scale[p0], zp[p0], qmin, qmax, out + i0);
      for (int64_t i = i0; i < i1; ++i)
        out[i] = static_cast<Q>(quantize_value(x[i], scale[p0 + i - i0], zp[p0 + i - i0], qmin, qmax));
    });
  });
}

void dequantize_array(const void* q, DType qtype, const QLayout& L, const float* scale, const int32_t* zp,
                      float* y) {
  visit_qtype(qtype, [&](auto tag) {
    using Q = decltype(tag);
    const Q* in = static_cast<const Q*>(q);
    for_each_segment(L, [&](int64_t i0, int64_t i1, int64_t p0, int step) {
      if (step == 0) return dequantize_run(in + i0, i1 - i0, scale[p0], zp[p0], y + i0);
      for (int64_t i = i0; i < i1; ++i)
        y[i] = dequantize_value(static_cast<int32_t>(in[i]), zp[p0 + i - i0], scale[p0 + i - i0]);
    });
  });
}

Tensor quantize_naive(const Tensor& x, int axis, int64_t block, const std::vector<float>& scale,
                      const std::vector<int32_t>& zp, DType qtype) {
  Tensor out(qtype, x.shape());
  const QRange r = qdq_range(qtype);
  Shape sshape = x.shape();
  if (axis >= 0 && block > 0) sshape[axis] = (sshape[axis] + block - 1) / block;
  for (int64_t i = 0; i < x.numel(); ++i) {
    std::vector<int64_t> idx(x.shape().size());
    int64_t rem = i;
    for (int k = x.rank() - 1; k >= 0; --k) {
      idx[k] = rem % x.shape()[k];
      rem /= x.shape()[k];
    }
    int64_t p = 0;
    if (axis >= 0 && block == 0) {
      p = idx[axis];
    } else if (axis >= 0) {
      for (int k = 0; k < x.rank(); ++k) p = p * sshape[k] + (k == axis ? idx[k] / block : idx[k]);
    }
    // Spec formula written out: saturate(round_half_even(x / scale) + zp).
    float v = std::nearbyint(x.data<float>()[i] / scale[p]) + static_cast<float>(zp[p]);
    int64_t qv = std::isnan(v) ? r.qmin : static_cast<int64_t>(std::clamp<float>(v, r.qmin, r.qmax));
    visit_qtype(qtype, [&](auto tag) { out.data<decltype(tag)>()[i] = static_cast<decltype(tag)>(qv); });
  }
  return out;
}

namespace {

struct QArgs {
  QLayout layout;
  std::vector<float> scale;
  std::vector<int32_t> zp;
};

// Validates scale / zero point against x and builds the layout (per tensor when scale has one element).
QArgs qdq_args(const ir::Node& node, const Tensor& x, const Tensor& scale, const Tensor* zp, int64_t axis_attr,
               int64_t block) {
  QArgs a;
  if (!is_float(scale.dtype())) kfail(node, "scale must be a float tensor, got {}", dtype_name(scale.dtype()));
  std::vector<double> sd = scale.to_doubles();
  a.scale.assign(sd.begin(), sd.end());
  if (zp) {
    if (zp->numel() != scale.numel())
      kfail(node, "zero point shape {} differs from scale shape {}", shape_str(zp->shape()), shape_str(scale.shape()));
    auto z = zp->to_int64s();
    a.zp.assign(z.begin(), z.end());
  } else {
    a.zp.assign(a.scale.size(), 0);
  }
  if (block > 0) {
    if (scale.rank() != x.rank())
      kfail(node, "blocked quantization needs scale of rank {}, got {}", x.rank(), shape_str(scale.shape()));
    int ax = normalize_axis(node, axis_attr, x.rank());
    a.layout = make_qlayout(x.shape(), ax, block);
    for (int k = 0; k < x.rank(); ++k) {
      int64_t want = k == ax ? a.layout.nb : x.shape()[k];
      if (scale.shape()[k] != want)
        kfail(node, "scale shape {} does not match input {} with block_size {} on axis {}", shape_str(scale.shape()),
              shape_str(x.shape()), block, ax);
    }
  } else if (scale.numel() == 1 && scale.rank() <= 1) {
    a.layout = make_qlayout(x.shape(), -1, 0);
  } else {
    if (scale.rank() != 1) kfail(node, "per-axis scale must be 1-D, got {}", shape_str(scale.shape()));
    int ax = normalize_axis(node, axis_attr, x.rank());
    if (scale.numel() != x.shape()[ax])
      kfail(node, "scale has {} entries but axis {} of input {} has {}", scale.numel(), ax, shape_str(x.shape()),
            x.shape()[ax]);
    a.layout = make_qlayout(x.shape(), ax, 0);
  }
  return a;
}

std::unique_ptr<Kernel> make_quantize(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  int64_t axis = ki.opset >= 13 ? node.attr_int("axis", 1) : 1;
  int64_t block = ki.opset >= 21 ? node.attr_int("block_size", 0) : 0;
  int64_t out_dt = ki.opset >= 21 ? node.attr_int("output_dtype", 0) : 0;
  if (block < 0) kfail(node, "block_size must be >= 0");
  if (out_dt != 0 && !(dtype_is_known(static_cast<int32_t>(out_dt)) && is_quant_type(static_cast<DType>(out_dt))))
    kfail(node, "unsupported output_dtype {}", out_dt);
  // Opset 23's `precision` (the type of the division x / y_scale; 0: y_scale's type). The kernel divides in
  // float32 for every scale type, so FLOAT is what it does; FLOAT16 / BFLOAT16 division is not implemented.
  const int64_t precision = ki.opset >= 23 ? node.attr_int("precision", 0) : 0;
  if (precision != 0 && precision != static_cast<int64_t>(DType::Float))
    kfail(node, "attribute precision={} is not supported (the executor divides in float32: precision 0 or 1)",
          precision);
  return fn_kernel([node, axis, block, out_dt](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const Tensor& scale = input_at(node, in, 1);
    const Tensor* zp = optional_input(in, 2);
    DType qt = zp ? zp->dtype() : (out_dt ? static_cast<DType>(out_dt) : DType::UInt8);
    if (zp && out_dt && static_cast<DType>(out_dt) != zp->dtype())
      kfail(node, "output_dtype {} differs from the zero point type {}", out_dt, dtype_name(zp->dtype()));
    if (!is_quant_type(qt)) kfail(node, "unsupported quantized type {}", dtype_name(qt));
    if (!is_float(x.dtype()) && x.dtype() != DType::Int32)
      kfail(node, "unsupported input type {}", dtype_name(x.dtype()));
    QArgs a = qdq_args(node, x, scale, zp, axis, block);
    Tensor xf = x.dtype() == DType::Float ? x : x.cast(DType::Float);
    Tensor q = Tensor::uninitialized(qt, x.shape());
    quantize_array(xf.data<float>(), a.layout, a.scale.data(), a.zp.data(), qt, q.raw());
    out[0] = std::move(q);
  });
}

std::unique_ptr<Kernel> make_dequantize(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  int64_t axis = ki.opset >= 13 ? node.attr_int("axis", 1) : 1;
  int64_t block = ki.opset >= 21 ? node.attr_int("block_size", 0) : 0;
  if (block < 0) kfail(node, "block_size must be >= 0");
  // Opset 23's `output_dtype` (0: the type of x_scale); the schema allows FLOAT, FLOAT16 and BFLOAT16.
  const int64_t out_dt = ki.opset >= 23 ? node.attr_int("output_dtype", 0) : 0;
  if (out_dt != 0 && out_dt != static_cast<int64_t>(DType::Float) && out_dt != static_cast<int64_t>(DType::Float16) &&
      out_dt != static_cast<int64_t>(DType::BFloat16))
    kfail(node, "attribute output_dtype={} is not FLOAT (1), FLOAT16 (10) or BFLOAT16 (16)", out_dt);
  return fn_kernel([node, axis, block, out_dt](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const Tensor& scale = input_at(node, in, 1);
    const Tensor* zp = optional_input(in, 2);
    if (!is_quant_type(x.dtype()) && x.dtype() != DType::Int32)
      kfail(node, "unsupported input type {}", dtype_name(x.dtype()));
    if (zp && zp->dtype() != x.dtype())
      kfail(node, "zero point type {} differs from input type {}", dtype_name(zp->dtype()), dtype_name(x.dtype()));
    QArgs a = qdq_args(node, x, scale, zp, axis, block);
    Tensor y = Tensor::uninitialized(DType::Float, x.shape());
    dequantize_array(x.raw(), x.dtype(), a.layout, a.scale.data(), a.zp.data(), y.data<float>());
    const DType want = out_dt ? static_cast<DType>(out_dt) : scale.dtype();
    out[0] = want == DType::Float ? std::move(y) : y.cast(want);
  });
}

}  // namespace

Tensor fake_quantize(const Tensor& x, const QuantParams& q) {
  if (x.dtype() != DType::Float)
    fail(ErrorKind::Runtime, "fake_quantize: tensor of type {} (only FLOAT is fake-quantized)", dtype_name(x.dtype()));
  if (!is_quant_type(q.qtype)) fail(ErrorKind::Runtime, "fake_quantize: unsupported type {}", dtype_name(q.qtype));
  if (q.scale.empty()) fail(ErrorKind::Runtime, "fake_quantize: no scale");
  if (!q.zero_point.empty() && q.zero_point.size() != q.scale.size())
    fail(ErrorKind::Runtime, "fake_quantize: {} scales but {} zero points", q.scale.size(), q.zero_point.size());
  QLayout L;
  if (q.per_axis()) {
    int ax = q.axis < 0 ? q.axis + x.rank() : q.axis;
    if (ax < 0 || ax >= x.rank())
      fail(ErrorKind::Runtime, "fake_quantize: axis {} out of range for shape {}", q.axis, shape_str(x.shape()));
    if (static_cast<int64_t>(q.scale.size()) != x.shape()[ax])
      fail(ErrorKind::Runtime, "fake_quantize: {} scales for axis {} of shape {}", q.scale.size(), ax,
           shape_str(x.shape()));
    L = make_qlayout(x.shape(), ax, 0);
  } else {
    L = make_qlayout(x.shape(), -1, 0);
  }
  std::vector<int32_t> zp(q.scale.size(), 0);
  for (size_t i = 0; i < q.zero_point.size(); ++i) zp[i] = static_cast<int32_t>(q.zero_point[i]);
  const QRange r = qdq_range(q.qtype);
  const auto qmin = static_cast<int32_t>(r.qmin), qmax = static_cast<int32_t>(r.qmax);
  Tensor y = Tensor::uninitialized(DType::Float, x.shape());
  const float* xs = x.data<float>();
  float* ys = y.data<float>();
  const float* sc = q.scale.data();
  for_each_with_param(L, sc, zp.data(), [&](int64_t i, float s, int32_t z) {
    ys[i] = dequantize_value(quantize_value(xs[i], s, z, qmin, qmax), z, s);
  });
  return y;
}

OQ_REGISTER_KERNEL(QuantizeLinear, 10, kMaxOpset, make_quantize);
OQ_REGISTER_KERNEL(DequantizeLinear, 10, kMaxOpset, make_dequantize);

}  // namespace oq::exec
