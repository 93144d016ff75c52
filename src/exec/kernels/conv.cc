// Conv (opsets 1-21, i.e. Conv-1 and Conv-11): 2-D depthwise by conv_depthwise.cc (narrow 5x5 / 7x7 ones by
// oneDNN's jit_dw on 16-channel blocks: depthwise_prefers_blocked), 1x1 by sgemm, the rest
// (1-D/2-D/3-D) through oneDNN's convolution primitive, built
// lazily per input shape and cached; weights are reordered once into the layout oneDNN picked (activations
// are converted per run to the primitive's layout and back, see build()). Shapes the
// primitive cannot express (more than 3 spatial axes, empty tensors) run the naive reference.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/compute_ref.h"
#include "exec/kernels/conv_common.h"
#include "exec/kernels/conv_blocked.h"
#include "exec/kernels/conv_depthwise.h"
#include "exec/kernels/dnnl_common.h"
#include "exec/kernels/fused_activation.h"
#include "exec/kernels/spatial.h"
#include "exec/layout.h"

namespace oq::exec {
namespace {

namespace du = dnnl_util;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

// oneDNN's source and destination layouts to try, best first. Layouts (measured on MobileNetV2/ResNet-18,
// AVX-512): strided 1x1 convolutions run on the NCHW tensors as they are (oneDNN's GEMM path, no layout
// conversion); the others use 16-channel blocks, whose reorders from/to NCHW are cheap, rather than NHWC, whose
// transposing reorders cost more than the depthwise convolutions themselves. Below 16 channels a forced 16c
// block has no fast kernel: oneDNN chooses there. Where the first has only oneDNN's reference kernel (grouped
// convolutions whose channels per group are not a multiple of 16, large kernel extents: du::ImplKind), oneDNN's
// own choice, then channels-last, then NCHW.
struct ConvLayouts {
  dnnl::memory::desc src, dst;
};
std::vector<ConvLayouts> candidate_layouts(const Shape& x, const Shape& y, bool pointwise) {
  const size_t nsp = x.size() - 2;
  const tag blk = nsp == 1 ? tag::nCw16c : nsp == 2 ? tag::nChw16c : tag::nCdhw16c;
  const tag last = nsp == 1 ? tag::nwc : nsp == 2 ? tag::nhwc : tag::ndhwc;
  auto md = [](const Shape& s, tag t) { return dnnl::memory::desc(s, dt::f32, t); };
  std::vector<ConvLayouts> c;
  if (pointwise)
    c.push_back({du::plain_f32(x), du::plain_f32(y)});
  else
    c.push_back({md(x, x[1] >= 16 ? blk : tag::any), md(y, y[1] >= 16 ? blk : tag::any)});
  c.push_back({md(x, tag::any), md(y, tag::any)});
  c.push_back({md(x, last), md(y, last)});
  if (!pointwise) c.push_back({du::plain_f32(x), du::plain_f32(y)});
  return c;
}

struct ConvPrim {
  Geometry geo;
  Shape out_shape;
  std::string impl = "reference (conv_ref.cc)";  // the path taken, for the debug log and the tests
  bool use_ref = false;
  bool pointwise = false;  // 1x1, stride 1, no padding, one group: plain GEMMs on the NCHW tensors
  bool depthwise = false;  // 2-D depthwise: conv_depthwise.cc on the NCHW tensors
  du::Prim prim;
  dnnl::memory::desc src_plain, dst_plain, wei_plain, src_md, dst_md, wei_md;
  // plain -> src_md and dst_md -> plain when oneDNN prefers blocked layouts (buffers per run)
  du::Prim src_reorder, dst_reorder;
  du::ReorderedWeights weights;
  dnnl::memory::desc bias_md;
  du::dims dil;
  // The primitive without the fused activation, for runs whose inputs are not all finite
  // (FusedActivation::post_op_needs_finite): made on the first such run, with the same source and destination
  // layouts (its weights may be laid out differently). Left empty when oneDNN refuses it: the reference runs.
  du::Prim exact;
  dnnl::memory::desc exact_wei_md;
  du::ReorderedWeights exact_weights;
  bool exact_tried = false;
};

class ConvKernel final : public Kernel {
 public:
  explicit ConvKernel(const KernelInit& init) : node_(init.node), a_(node_), finite_(init.finite_with_feeds) {}

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    compute(in, out);
    a_.fq.apply(out[0].data<float>(), out[0].numel());  // a fused QuantizeLinear -> DequantizeLinear pair
  }

 private:
  void compute(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const du::XWB xwb = du::conv_inputs(node_, in);
    const Tensor &x = xwb.x, &w = xwb.w, *b = xwb.b;
    check(x, w, b);
    std::unique_lock<std::mutex> lock(mu_);  // held while the cache and the weights are looked up
    ConvPrim& p = du::cached_primitive(cache_, xwb, [this](auto&... a) { return build(a...); });
    const bool onednn = !p.use_ref && !p.depthwise && !p.pointwise;
    // oneDNN's Relu / Clip post-op turns NaN into a bound: with inputs not all finite, the primitive without it
    // and the activation after (the other paths apply it themselves, NaN-exact).
    bool exact = false;
    if (onednn && a_.act.post_op_needs_finite() && !finite_.known()) {
      const bool w_finite = finite_.weights(w);
      lock.unlock();
      exact = !(w_finite && (!b || all_finite(*b)) && all_finite(x));
      lock.lock();
    }
    dnnl::memory wei;
    if (onednn) {
      try {
        if (exact && !p.exact_tried) build_exact(p);
        if (!exact) wei = p.weights.get(w, p.wei_plain, p.wei_md);
        else if (p.exact) wei = p.exact_weights.get(w, p.wei_plain, p.exact_wei_md);
      } catch (const dnnl::error& e) {
        du::rethrow_dnnl(node_.name.c_str(), "Conv", e);
      }
    }
    lock.unlock();
    out[0] = Tensor::uninitialized(DType::Float, p.out_shape);  // every path writes every element
    Tensor& y = out[0];
    if (p.use_ref || (exact && !p.exact)) {
      ref::conv(x, w, b, ref_geom(p.geo), y);
      a_.act.apply(y.data<float>(), y.numel());
      return;
    }
    if (p.depthwise) {
      depthwise_nchw(x, w, b, p.geo, a_.act, y);
      return;
    }
    if (p.pointwise) {
      run_pointwise(x, w, b, y);
      return;
    }
    try {
      auto& eng = du::engine();
      dnnl::memory src_user(p.src_plain, eng, const_cast<void*>(x.raw()));
      dnnl::memory dst_user(p.dst_plain, eng, y.raw());
      dnnl::memory bias;
      if (b) bias = dnnl::memory(du::plain_f32({w.dim(0)}), eng, const_cast<void*>(b->raw()));
      du::execute_in_layouts(exact ? p.exact : p.prim, p.src_reorder, p.src_md, p.dst_reorder, p.dst_md, src_user,
                             dst_user, wei, b ? &bias : nullptr);
    } catch (const dnnl::error& e) {
      du::rethrow_dnnl(node_.name.c_str(), "Conv", e);
    }
    if (exact) a_.act.apply_parallel(y.data<float>(), y.numel());
  }

  // ConvPrim::exact: p's descriptors without the post-op. Called under the lock.
  void build_exact(ConvPrim& p) {
    p.exact_tried = true;
    try {
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                        p.src_md, dnnl::memory::desc(p.wei_plain.dims(), dt::f32, tag::any),
                                        p.bias_md, p.dst_md, p.geo.strides, p.dil, p.geo.pads_begin, p.geo.pads_end);
      dnnl::convolution_forward::primitive_desc pd(d, du::user_scratchpad(), du::engine());
      if (pd.src_desc() != p.src_md || pd.dst_desc() != p.dst_md) return;  // other layouts: the reference runs
      p.exact = du::Prim(dnnl::convolution_forward(pd), pd);
      p.exact_wei_md = pd.weights_desc();
    } catch (const dnnl::error&) {
      p.exact = du::Prim();  // no implementation: the reference runs
    }
  }

  void check(const Tensor& x, const Tensor& w, const Tensor* b) const {
    if (x.dtype() != DType::Float || w.dtype() != DType::Float || (b && b->dtype() != DType::Float))
      kfail(node_, "only float32 is supported (X {}, W {})", dtype_name(x.dtype()), dtype_name(w.dtype()));
    if (x.rank() < 3) kfail(node_, "X must have rank >= 3, got shape {}", shape_str(x.shape()));
    if (w.rank() != x.rank())
      kfail(node_, "W shape {} does not match X shape {}", shape_str(w.shape()), shape_str(x.shape()));
    if (x.dim(1) != w.dim(1) * a_.group)
      kfail(node_, "X has {} channels but W {} with group {} expects {}", x.dim(1), shape_str(w.shape()), a_.group,
            w.dim(1) * a_.group);
    if (w.dim(0) % a_.group != 0) kfail(node_, "W has {} output channels, not divisible by group {}", w.dim(0), a_.group);
    if (b && (b->rank() != 1 || b->dim(0) != w.dim(0)))
      kfail(node_, "B shape {} must be [{}]", shape_str(b->shape()), w.dim(0));
    if (!a_.spatial.kernel_shape.empty() && a_.spatial.kernel_shape != Shape(w.shape().begin() + 2, w.shape().end()))
      kfail(node_, "kernel_shape does not match W shape {}", shape_str(w.shape()));
  }

  // Per image Y[M, HW] = W[M, C] @ X[C, HW] (+ bias). Large images are split into one column block per thread
  // (each sgemm then runs on one thread: wide blocks keep sgemm efficient, small blocks measured slower);
  // otherwise sgemm itself is threaded.
  void run_pointwise(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
    const int64_t N = x.dim(0), C = x.dim(1), M = w.dim(0), HW = x.numel() / std::max<int64_t>(N * C, 1);
    const int threads = num_threads();
    const int64_t split = threads > 1 && HW >= 1024 ? threads : 1;
    const int64_t cols = ((HW + split - 1) / split + 15) / 16 * 16;
    const int64_t nblk = (HW + cols - 1) / cols, tasks = N * nblk;
    const float* X = x.data<float>();
    const float* W = w.data<float>();
    const float* B = b ? b->data<float>() : nullptr;
    float* Y = y.data<float>();
    auto task = [&](int64_t t) {
      const int64_t n = t / nblk, c0 = (t % nblk) * cols, nc = std::min(cols, HW - c0);
      float* yb = Y + n * M * HW + c0;
      dnnl_status_t st = dnnl_sgemm('N', 'N', M, nc, C, 1.0f, W, C, X + n * C * HW + c0, HW, 0.0f, yb, HW);
      if (st == dnnl_success && (B || a_.act.active())) bias_activation_rows(yb, M, nc, HW, B, a_.act);
      return st;
    };
    std::vector<int> status(static_cast<size_t>(tasks), dnnl_success);
    if (threads > 1 && tasks >= threads) {
      parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) status[t] = task(t);
      });
    } else {
      for (int64_t t = 0; t < tasks; ++t) status[t] = task(t);
    }
    for (int st : status)
      if (st != dnnl_success) kfail(node_, "oneDNN sgemm failed (status {})", st);
  }

  ref::ConvGeom ref_geom(const Geometry& g) const {
    return {a_.group, g.kernel, g.strides, g.dilations, g.pads_begin, g.pads_end};
  }

  std::unique_ptr<ConvPrim> build(const Tensor& x, const Tensor& w, const Tensor* b) {
    std::unique_ptr<ConvPrim> p = build_path(x, w, b);
    OQ_DEBUG("Conv '{}': X {} W {} group {}: {}", ir::node_label(node_), shape_str(x.shape()), shape_str(w.shape()),
             a_.group, p->impl);
    return p;
  }

  // The path for these shapes (ConvPrim::impl names it) and, for oneDNN, its primitive.
  std::unique_ptr<ConvPrim> build_path(const Tensor& x, const Tensor& w, const Tensor* b) {
    auto p = std::make_unique<ConvPrim>();
    Shape in(x.shape().begin() + 2, x.shape().end()), k(w.shape().begin() + 2, w.shape().end());
    p->geo = forward_geometry(node_, a_.spatial, in, k);
    p->out_shape = {x.dim(0), w.dim(0)};
    p->out_shape.insert(p->out_shape.end(), p->geo.out.begin(), p->geo.out.end());
    check_output_size(node_, p->out_shape);
    size_t nsp = in.size();
    if (nsp > 3 || x.numel() == 0 || shape_numel(p->out_shape) == 0 || w.numel() == 0) {
      p->use_ref = true;
      return p;
    }
    p->pointwise = a_.group == 1 && shape_numel(k) == 1;
    for (size_t i = 0; i < nsp; ++i)
      p->pointwise = p->pointwise && p->geo.strides[i] == 1 && p->geo.pads_begin[i] == 0 && p->geo.pads_end[i] == 0;
    if (p->pointwise) {
      p->impl = "sgemm on NCHW (1x1)";
      return p;
    }
    p->depthwise = depthwise_nchw_applies(x, w, a_.group, p->geo);
    if (p->depthwise && !depthwise_prefers_blocked(x, w, p->geo)) {
      p->impl = "depthwise on NCHW (conv_depthwise.cc)";
      return p;
    }
    const du::dims wd = grouped_weight_dims(w, a_.group);
    du::dims dil(nsp);
    for (size_t i = 0; i < nsp; ++i) dil[i] = p->geo.dilations[i] - 1;
    p->src_plain = du::plain_f32(x.shape());
    p->dst_plain = du::plain_f32(p->out_shape);
    p->wei_plain = du::plain_f32(wd);
    p->bias_md = b ? du::plain_f32({w.dim(0)}) : dnnl::memory::desc();
    p->dil = dil;
    const bool pointwise = shape_numel(k) == 1;
    const std::vector<ConvLayouts> layouts = candidate_layouts(x.shape(), p->out_shape, pointwise);
    // A strided 1x1 convolution takes oneDNN's GEMM on NCHW; the others want a JIT kernel.
    const du::ImplKind enough = pointwise ? du::ImplKind::Gemm : du::ImplKind::Jit;
    using PD = dnnl::convolution_forward::primitive_desc;
    const std::optional<PD> pd =
        du::pick_primitive<PD>(static_cast<int>(layouts.size()), enough, [&](int i) -> std::optional<PD> {
          try {
            dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                              dnnl::algorithm::convolution_direct, layouts[i].src,
                                              dnnl::memory::desc(wd, dt::f32, tag::any), p->bias_md, layouts[i].dst,
                                              p->geo.strides, dil, p->geo.pads_begin, p->geo.pads_end);
            return PD(d, du::user_scratchpad(a_.act.dnnl_attr()), du::engine());
          } catch (const dnnl::error&) {
            return std::nullopt;
          }
        });
    if (!pd) {
      p->use_ref = true;  // a geometry oneDNN has no implementation for: the reference still computes it
      return p;
    }
    try {
      p->prim = du::Prim(dnnl::convolution_forward(*pd), *pd);
    } catch (const dnnl::error&) {
      p->use_ref = true;
      return p;
    }
    if (p->depthwise && du::impl_kind(pd->impl_info_str()) < du::ImplKind::Jit) {
      p->impl = "depthwise on NCHW (conv_depthwise.cc)";  // no oneDNN kernel better than the hand one
      return p;
    }
    p->depthwise = false;
    p->impl = std::string("oneDNN ") + pd->impl_info_str();
    p->src_md = pd->src_desc();
    p->dst_md = pd->dst_desc();
    p->wei_md = pd->weights_desc();
    if (p->src_md != p->src_plain) p->src_reorder = du::make_reorder(p->src_plain, p->src_md);
    if (p->dst_md != p->dst_plain) p->dst_reorder = du::make_reorder(p->dst_md, p->dst_plain);
    return p;
  }

  ir::Node node_;
  const ConvAttrs a_;
  ConvInputsFinite finite_;  // under mu_
  std::mutex mu_;
  std::map<Shape, std::unique_ptr<ConvPrim>> cache_;
};

std::unique_ptr<Kernel> make_conv(const KernelInit& init) {
  if (init.node.has_attr(kBlockAttr)) return make_conv_blocked(init);  // marked by exec/layout.cc
  return std::make_unique<ConvKernel>(init);
}

}  // namespace

OQ_REGISTER_KERNEL(Conv, 1, kMaxOpset, make_conv);

}  // namespace oq::exec
