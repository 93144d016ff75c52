// ConvTranspose (opsets 1-21, i.e. ConvTranspose-1 and -11) through oneDNN's deconvolution primitive, cached
// per input shape with weights reordered once, or, for 1 and 2 spatial axes where that primitive is slow (see
// use_gemm_path), as GEMM + col2im (conv_transpose_gemm.h). output_padding / output_shape beyond the last input
// contribution (a negative effective end pad) run the primitive on the covered part and fill the rest with
// the bias. More than 3 spatial axes use the naive reference, and so would a negative begin pad (none arises:
// pads are non-negative and transpose_geometry clamps SAME's total padding at 0, as ONNX Runtime).
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/log.h"
#include "exec/kernel.h"
#include "exec/kernels/compute_ref.h"
#include "exec/kernels/conv_transpose_gemm.h"
#include "exec/kernels/dnnl_common.h"
#include "exec/kernels/spatial.h"

namespace oq::exec {
namespace {

namespace du = dnnl_util;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

struct DeconvPrim {
  Geometry geo;
  Shape out_shape, inner_shape;  // inner: what the primitive writes (smaller when end pads are negative)
  bool use_ref = false, embed = false, use_gemm = false;
  DeconvGemmShape gemm;
  std::string impl;  // the path, for the debug line
  du::ImplKind kind = du::ImplKind::Reference;  // of oneDNN's primitive
  du::Prim prim;
  dnnl::memory::desc src_plain, dst_plain, wei_plain, src_md, dst_md, wei_md;
  du::Prim src_reorder, dst_reorder;  // plain -> src_md, dst_md -> plain (buffers per run)
  du::ReorderedWeights weights;
};

// Copies `inner` [NC, d', h', w'] into the leading corner of `y` [NC, d, h, w] (as 3 spatial axes), filling
// the remaining positions with the channel's bias (or 0).
void embed(const Tensor& inner, Tensor& y, const Tensor* b, int64_t channels) {
  auto sp3 = [](const Shape& s) {
    Shape r(3, 1);
    size_t n = s.size() - 2;
    for (size_t i = 0; i < n; ++i) r[3 - n + i] = s[2 + i];
    return r;
  };
  Shape is = sp3(inner.shape()), os = sp3(y.shape());
  int64_t NC = y.dim(0) * y.dim(1);
  const float* I = inner.data<float>();
  float* Y = y.data<float>();
  for (int64_t nc = 0; nc < NC; ++nc) {
    float bias = b ? b->data<float>()[nc % channels] : 0.0f;
    for (int64_t d = 0; d < os[0]; ++d)
      for (int64_t h = 0; h < os[1]; ++h) {
        float* row = Y + ((nc * os[0] + d) * os[1] + h) * os[2];
        int64_t copied = 0;
        if (d < is[0] && h < is[1]) {
          copied = std::min(is[2], os[2]);
          std::copy_n(I + ((nc * is[0] + d) * is[1] + h) * is[2], copied, row);
        }
        std::fill(row + copied, row + os[2], bias);
      }
  }
}

class ConvTransposeKernel final : public Kernel {
 public:
  explicit ConvTransposeKernel(const KernelInit& init) : node_(init.node) {
    attrs_ = parse_spatial(node_, false);
    group_ = node_.attr_int("group", 1);
    if (group_ <= 0) kfail(node_, "group must be positive, got {}", group_);
    output_padding_ = node_.attr_ints("output_padding");
    output_shape_ = node_.attr_ints("output_shape");
    for (int64_t v : output_padding_)
      if (v < 0) kfail(node_, "output_padding must be non-negative");
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const du::XWB xwb = du::conv_inputs(node_, in);
    const Tensor &x = xwb.x, &w = xwb.w, *b = xwb.b;
    check(x, w, b);
    std::unique_lock<std::mutex> lock(mu_);  // held while the cache and the weights are looked up
    DeconvPrim& p = du::cached_primitive(cache_, xwb, [this](auto&... a) { return build(a...); });
    dnnl::memory wei;
    if (!p.use_ref) {
      try {
        wei = p.weights.get(w, p.wei_plain, p.wei_md);
      } catch (const dnnl::error& e) {
        du::rethrow_dnnl(node_.name.c_str(), "ConvTranspose", e);
      }
    }
    lock.unlock();
    out[0] = Tensor::uninitialized(DType::Float, p.out_shape);  // the reference, the primitive or embed() writes all
    Tensor& y = out[0];
    if (p.use_gemm) {
      if (int st = deconv_gemm(p.gemm, x.data<float>(), w.data<float>(), b ? b->data<float>() : nullptr,
                               y.data<float>()))
        kfail(node_, "oneDNN sgemm failed (status {}) in the GEMM path", st);
      return;
    }
    if (p.use_ref) {
      ref::conv_transpose(x, w, b, {group_, p.geo.kernel, p.geo.strides, p.geo.dilations, p.geo.pads_begin,
                                    p.geo.pads_end}, y);
      return;
    }
    try {
      auto& eng = du::engine();
      Tensor inner = p.embed ? Tensor::uninitialized(DType::Float, p.inner_shape) : y;
      dnnl::memory src_user(p.src_plain, eng, const_cast<void*>(x.raw()));
      dnnl::memory dst_user(p.dst_plain, eng, inner.raw());
      const int64_t M = w.dim(1) * group_;
      dnnl::memory bias;
      if (b) bias = dnnl::memory(du::plain_f32({M}), eng, const_cast<void*>(b->raw()));
      du::execute_in_layouts(p.prim, p.src_reorder, p.src_md, p.dst_reorder, p.dst_md, src_user, dst_user, wei,
                             b ? &bias : nullptr);
      if (p.embed) embed(inner, y, b, M);
    } catch (const dnnl::error& e) {
      du::rethrow_dnnl(node_.name.c_str(), "ConvTranspose", e);
    }
  }

 private:
  void check(const Tensor& x, const Tensor& w, const Tensor* b) const {
    if (x.dtype() != DType::Float || w.dtype() != DType::Float || (b && b->dtype() != DType::Float))
      kfail(node_, "only float32 is supported (X {}, W {})", dtype_name(x.dtype()), dtype_name(w.dtype()));
    if (x.rank() < 3) kfail(node_, "X must have rank >= 3, got shape {}", shape_str(x.shape()));
    if (w.rank() != x.rank())
      kfail(node_, "W shape {} does not match X shape {}", shape_str(w.shape()), shape_str(x.shape()));
    if (x.dim(1) != w.dim(0)) kfail(node_, "X has {} channels but W {} expects {}", x.dim(1), shape_str(w.shape()), w.dim(0));
    if (x.dim(1) % group_ != 0) kfail(node_, "X has {} channels, not divisible by group {}", x.dim(1), group_);
    if (b && (b->rank() != 1 || b->dim(0) != w.dim(1) * group_))
      kfail(node_, "B shape {} must be [{}]", shape_str(b->shape()), w.dim(1) * group_);
    if (!attrs_.kernel_shape.empty() && attrs_.kernel_shape != Shape(w.shape().begin() + 2, w.shape().end()))
      kfail(node_, "kernel_shape does not match W shape {}", shape_str(w.shape()));
  }

  std::unique_ptr<DeconvPrim> build(const Tensor& x, const Tensor& w, const Tensor* b) {
    std::unique_ptr<DeconvPrim> p = build_path(x, w, b);
    OQ_DEBUG("ConvTranspose '{}': X {} W {} group {}: {}", ir::node_label(node_), shape_str(x.shape()),
             shape_str(w.shape()), group_, p->impl);
    return p;
  }

  // GEMM + col2im instead of oneDNN for 1 or 2 spatial axes when the kernel equals the stride (upsampling: a
  // plain GEMM), when oneDNN has only its reference loops or its own (slower) im2col GEMM for the geometry, or
  // when a group has few channels (in x out per group <= kGemmMaxGroupChannels: oneDNN's JIT kernels were
  // 1.2-7x ONNX Runtime there, the GEMM path 0.6-1.2x; with more, e.g. 256 -> 128, the JIT kernel is ahead).
  static constexpr int64_t kGemmMaxGroupChannels = 64 * 64;
  static bool use_gemm_path(const DeconvPrim& p, size_t nsp, int64_t cg, int64_t mg) {
    if (nsp > 2) return false;
    bool exact = true;
    for (size_t i = 0; i < nsp; ++i)
      exact = exact && p.geo.kernel[i] == p.geo.strides[i] && p.geo.dilations[i] == 1 && p.geo.pads_begin[i] == 0;
    return exact || p.use_ref || p.kind != du::ImplKind::Jit || cg * mg <= kGemmMaxGroupChannels;
  }

  static DeconvGemmShape gemm_shape(const DeconvPrim& p, const Tensor& x, const Tensor& w, int64_t group) {
    const Geometry& g = p.geo;
    DeconvGemmShape s;  // 1-D: the H axis stays 1
    s.batch = x.dim(0), s.channels = x.dim(1), s.group = group, s.m_per_group = w.dim(1);
    s.iw = x.shape().back(), s.ow = p.out_shape.back(), s.kw = g.kernel.back(), s.sw = g.strides.back();
    s.dw = g.dilations.back(), s.pw = g.pads_begin.back();
    if (g.kernel.size() == 2) {
      s.ih = x.dim(2), s.oh = p.out_shape[2], s.kh = g.kernel[0], s.sh = g.strides[0];
      s.dh = g.dilations[0], s.ph = g.pads_begin[0];
    }
    return s;
  }

  std::unique_ptr<DeconvPrim> build_path(const Tensor& x, const Tensor& w, const Tensor* b) {
    std::unique_ptr<DeconvPrim> p = build_dnnl(x, w, b);
    const size_t nsp = x.rank() - 2;
    const bool neg_begin =
        std::any_of(p->geo.pads_begin.begin(), p->geo.pads_begin.end(), [](int64_t v) { return v < 0; });
    const bool empty = x.numel() == 0 || w.numel() == 0 || shape_numel(p->out_shape) == 0;
    if (!neg_begin && !empty && use_gemm_path(*p, nsp, x.dim(1) / group_, w.dim(1))) {
      p->use_gemm = true;
      p->use_ref = false;
      p->prim = du::Prim();
      p->gemm = gemm_shape(*p, x, w, group_);
      p->impl = deconv_gemm_is_exact(p->gemm) ? "GEMM, kernel == stride (conv_transpose_gemm.cc)"
                                               : "GEMM + col2im (conv_transpose_gemm.cc)";
    }
    return p;
  }

  std::unique_ptr<DeconvPrim> build_dnnl(const Tensor& x, const Tensor& w, const Tensor* b) {
    auto p = std::make_unique<DeconvPrim>();
    Shape in(x.shape().begin() + 2, x.shape().end()), k(w.shape().begin() + 2, w.shape().end());
    p->geo = transpose_geometry(node_, attrs_, in, k, output_padding_, output_shape_);
    const int64_t M = w.dim(1) * group_, C = x.dim(1), Cg = C / group_, Mg = w.dim(1);
    p->out_shape = {x.dim(0), M};
    p->out_shape.insert(p->out_shape.end(), p->geo.out.begin(), p->geo.out.end());
    check_output_size(node_, p->out_shape);
    size_t nsp = in.size();
    bool neg_begin = std::any_of(p->geo.pads_begin.begin(), p->geo.pads_begin.end(), [](int64_t v) { return v < 0; });
    if (nsp > 3 || neg_begin || x.numel() == 0 || shape_numel(p->out_shape) == 0 || w.numel() == 0) {
      p->use_ref = true;
      p->impl = "reference (compute_ref.h)";
      return p;
    }
    du::dims pr = p->geo.pads_end;
    p->inner_shape = p->out_shape;
    for (size_t i = 0; i < nsp; ++i)
      if (pr[i] < 0) {
        p->inner_shape[2 + i] += pr[i];  // the primitive stops at the last input contribution
        pr[i] = 0;
        p->embed = true;
      }
    if (shape_numel(p->inner_shape) == 0 ||
        std::any_of(p->inner_shape.begin(), p->inner_shape.end(), [](int64_t v) { return v <= 0; })) {
      p->use_ref = true;  // the output lies entirely beyond the input's reach
      p->impl = "reference (compute_ref.h)";
      return p;
    }
    // ONNX W is [G, C/G, M/G, k...]; oneDNN wants (G,) OC, IC, k...: describe W with permuted strides.
    int64_t ksz = shape_numel(k);
    du::dims wd{Mg, Cg}, ws{ksz, Mg * ksz};
    for (size_t i = 0; i < nsp; ++i) wd.push_back(k[i]);
    du::dims kst = du::dense_strides(k);
    for (size_t i = 0; i < nsp; ++i) ws.push_back(kst[i]);
    if (group_ > 1) {
      wd.insert(wd.begin(), group_);
      ws.insert(ws.begin(), Cg * Mg * ksz);
    }
    du::dims dil(nsp);
    for (size_t i = 0; i < nsp; ++i) dil[i] = p->geo.dilations[i] - 1;
    p->src_plain = du::plain_f32(x.shape());
    p->dst_plain = du::plain_f32(p->inner_shape);
    p->wei_plain = dnnl::memory::desc(wd, dt::f32, ws);
    try {
      dnnl::memory::desc src_any(x.shape(), dt::f32, tag::any), dst_any(p->inner_shape, dt::f32, tag::any);
      dnnl::memory::desc wei_any(wd, dt::f32, tag::any);
      dnnl::memory::desc bias_md = b ? du::plain_f32({M}) : dnnl::memory::desc();
      dnnl::deconvolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                          dnnl::algorithm::deconvolution_direct, src_any, wei_any, bias_md, dst_any,
                                          p->geo.strides, dil, p->geo.pads_begin, pr);
      dnnl::deconvolution_forward::primitive_desc pd(d, du::user_scratchpad(), du::engine());
      p->prim = du::Prim(dnnl::deconvolution_forward(pd), pd);
      p->src_md = pd.src_desc();
      p->dst_md = pd.dst_desc();
      p->wei_md = pd.weights_desc();
      p->impl = "oneDNN " + std::string(pd.impl_info_str());
      p->kind = du::impl_kind(pd.impl_info_str());
      if (p->src_md != p->src_plain) p->src_reorder = du::make_reorder(p->src_plain, p->src_md);
      if (p->dst_md != p->dst_plain) p->dst_reorder = du::make_reorder(p->dst_md, p->dst_plain);
    } catch (const dnnl::error&) {
      p->use_ref = true;
      p->impl = "reference (compute_ref.h)";
    }
    return p;
  }

  ir::Node node_;
  SpatialAttrs attrs_;
  int64_t group_ = 1;
  std::vector<int64_t> output_padding_, output_shape_;
  std::mutex mu_;
  std::map<Shape, std::unique_ptr<DeconvPrim>> cache_;
};

std::unique_ptr<Kernel> make_conv_transpose(const KernelInit& init) {
  return std::make_unique<ConvTransposeKernel>(init);
}

}  // namespace

OQ_REGISTER_KERNEL(ConvTranspose, 1, kMaxOpset, make_conv_transpose);

}  // namespace oq::exec
