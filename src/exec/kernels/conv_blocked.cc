// Conv on channel-blocked tensors and the two layout conversions (exec/layout.h): oneDNN's convolution with
// nChw16c / nChw8c source and destination (its direct, 1x1 and depthwise JIT kernels), weights reordered once
// into the layout it picks, the fused activation as a post-op. Built lazily per input shape and cached.
// The naive reference for these kernels is the Conv reference on NCHW tensors (conv_ref.cc): the layout
// conversions are exact copies, and tests/unit/test_layout.cc compares whole blocked chains with it.
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/log.h"
#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/compute_ref.h"
#include "exec/kernels/conv_blocked.h"
#include "exec/kernels/conv_common.h"
#include "exec/kernels/dnnl_common.h"
#include "exec/kernels/fused_activation.h"
#include "exec/kernels/spatial.h"
#include "exec/layout.h"

namespace oq::exec {
namespace {

namespace du = dnnl_util;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

int64_t blocks_of(int64_t c, int64_t b) { return (c + b - 1) / b; }

int64_t parse_block(const ir::Node& n) {
  const int64_t b = n.attr_int(kBlockAttr, 0);
  if (b != 8 && b != 16) kfail(n, "channel block must be 8 or 16, got {}", b);
  return b;
}

void convert_layout(const Tensor& x, const du::dims& logical, int64_t block, bool to_blocked, Tensor& y);

tag blocked_tag(int64_t block) { return block == 16 ? tag::nChw16c : tag::nChw8c; }

dnnl::memory::desc blocked_md(const du::dims& logical, int64_t block) {
  return dnnl::memory::desc(logical, dt::f32, blocked_tag(block));
}

struct BlockedConvPrim {
  Shape out_shape;
  du::Prim prim;
  dnnl::memory::desc src_md, dst_md, wei_plain, wei_md, bias_md;
  // The primitive's own source and destination layouts, and the reorders from / to the tensors' (src_md, dst_md)
  // when they differ: oneDNN has only its reference kernel for some geometries in blocked layouts (kernel
  // extents above ~60, e.g. a 3x3 with dilation 29), and takes its own choice of layouts then.
  dnnl::memory::desc conv_src_md, conv_dst_md;
  du::Prim src_reorder, dst_reorder;
  std::string impl;
  du::ReorderedWeights weights;
  // A fused QuantizeLinear -> DequantizeLinear pair (ConvAttrs::fq) computed by the primitive's post-ops: the
  // division's divisor (the scale, one float) and the index of that binary post-op. Null when the pair is
  // applied after the primitive instead (no pair, or oneDNN refused the post-ops).
  dnnl::memory fq_scale;
  int fq_index = -1;
  // The primitive without post-ops, for runs whose inputs are not all finite (FusedActivation::
  // post_op_needs_finite: the activation and the pair then run after it), made on the first such run. Empty
  // when oneDNN refuses it: the reference runs on the NCHW values.
  du::Prim exact;
  dnnl::memory::desc exact_wei_md;
  du::ReorderedWeights exact_weights;
  bool exact_tried = false;
};

// FusedFakeQuant as post-ops after the activation's: x / scale (a binary division, exact as IEEE division;
// linear would multiply by a rounded 1/scale), round half to even, clip to [lo, hi], * scale + 0 (linear: the
// product, and a -0 becomes +0). The same values as FusedFakeQuant::apply, a NaN included: the clip's vmaxps
// returns lo for it, the pair's NaN -> qmin. (The activation's post-op before them is used only on finite
// inputs: FusedActivation::post_op_needs_finite.)
// The clip is eltwise_clip_v2 (the same forward values): oneDNN 2.6's kernel for a one-input-channel Conv applied
// the activation's eltwise_clip bounds (a fused Clip / ReLU6) to a second eltwise_clip in the chain as well.
dnnl::primitive_attr fake_quant_attr(const FusedActivation& act, const FusedFakeQuant& fq, int& binary_index) {
  dnnl::primitive_attr attr = act.dnnl_attr();
  dnnl::post_ops po = attr.get_post_ops();
  binary_index = po.len();
  po.append_binary(dnnl::algorithm::binary_div, du::plain_f32({1, 1, 1, 1}));
  po.append_eltwise(1.f, dnnl::algorithm::eltwise_round, 0.f, 0.f);
  po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip_v2, fq.lo, fq.hi);
  po.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, fq.scale, 0.f);
  attr.set_post_ops(po);
  return attr;
}

class BlockedConvKernel final : public Kernel {
 public:
  explicit BlockedConvKernel(const KernelInit& init)
      : node_(init.node),
        a_(node_),
        block_(parse_block(node_)),
        src_blocked_(node_.attr_int(kBlockedSrcAttr, 0) != 0),
        finite_(init.finite_with_feeds) {}

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (!compute(in, out))
      a_.fq.apply(out[0].data<float>(), out[0].numel());  // a fused QuantizeLinear -> DequantizeLinear pair
  }

 private:
  // Returns whether the primitive applied ConvAttrs::fq itself.
  bool compute(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const du::XWB xwb = du::conv_inputs(node_, in);
    const Tensor &x = xwb.x, &w = xwb.w, *b = xwb.b;
    check(x, w, b);
    bool fq_done = false;
    try {
      std::unique_lock<std::mutex> lock(mu_);  // held while the cache and the weights are looked up
      BlockedConvPrim& p = du::cached_primitive(cache_, xwb, [this](auto&... a) { return build(a...); });
      // oneDNN's Relu / Clip post-op turns NaN into a bound: with inputs not all finite, the primitive without
      // post-ops, then the activation on the real channels (the pair, if any, in run()).
      bool exact = false;
      if (a_.act.post_op_needs_finite() && !finite_.known()) {
        const bool w_finite = finite_.weights(w);
        lock.unlock();
        exact = !(w_finite && (!b || all_finite(*b)) && all_finite(x));
        lock.lock();
      }
      if (exact && !p.exact_tried) build_exact(p, x, w);
      if (exact && !p.exact) {
        lock.unlock();
        run_reference(x, w, b, p.out_shape, out[0]);
        return false;
      }
      dnnl::memory wei = exact ? p.exact_weights.get(w, p.wei_plain, p.exact_wei_md)
                               : p.weights.get(w, p.wei_plain, p.wei_md);
      lock.unlock();
      out[0] = Tensor::uninitialized(DType::Float, p.out_shape);  // oneDNN writes the values and zero padding
      auto& eng = du::engine();
      dnnl::memory src(p.src_md, eng, const_cast<void*>(x.raw()));
      dnnl::memory dst(p.dst_md, eng, out[0].raw());
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_WEIGHTS, wei}};
      if (b) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p.bias_md, eng, const_cast<void*>(b->raw())));
      if (!exact && p.fq_index >= 0)
        args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(p.fq_index) | DNNL_ARG_SRC_1, p.fq_scale);
      du::execute_in_layouts(exact ? p.exact : p.prim, p.src_reorder, p.conv_src_md, p.dst_reorder, p.conv_dst_md,
                             src, dst, std::move(args));
      if (exact) {
        const Shape& os = p.out_shape;
        a_.act.apply_blocked(out[0].data<float>(), os[0], os[1], os[2] * os[3], os[4], w.dim(0));
        return false;
      }
      fq_done = p.fq_index >= 0;
    } catch (const dnnl::error& e) {
      du::rethrow_dnnl(node_.name.c_str(), "Conv", e);
    }
    return fq_done;
  }

  int64_t in_channels(const Tensor& w) const { return w.dim(1) * a_.group; }

  void check(const Tensor& x, const Tensor& w, const Tensor* b) const {
    if (x.dtype() != DType::Float || w.dtype() != DType::Float || (b && b->dtype() != DType::Float))
      kfail(node_, "only float32 is supported");
    if (w.rank() != 4) kfail(node_, "blocked Conv needs a 4-D weight, got {}", shape_str(w.shape()));
    const int64_t cin = in_channels(w);
    const bool ok = src_blocked_ ? x.rank() == 5 && x.dim(1) == blocks_of(cin, block_) && x.dim(4) == block_
                                 : x.rank() == 4 && x.dim(1) == cin;
    if (!ok) kfail(node_, "X shape {} does not match {} input channels ({} layout)", shape_str(x.shape()), cin,
                   src_blocked_ ? "blocked" : "NCHW");
    if (w.dim(0) % a_.group != 0)
      kfail(node_, "W has {} output channels, not divisible by group {}", w.dim(0), a_.group);
    if (b && (b->rank() != 1 || b->dim(0) != w.dim(0)))
      kfail(node_, "B shape {} must be [{}]", shape_str(b->shape()), w.dim(0));
  }

  std::unique_ptr<BlockedConvPrim> build(const Tensor& x, const Tensor& w, const Tensor* b) {
    auto p = std::make_unique<BlockedConvPrim>();
    const int64_t n = x.dim(0), cin = in_channels(w), cout = w.dim(0);
    const Shape in = {x.dim(2), x.dim(3)}, k = {w.dim(2), w.dim(3)};
    const Geometry geo = forward_geometry(node_, a_.spatial, in, k);
    p->out_shape = {n, blocks_of(cout, block_), geo.out[0], geo.out[1], block_};
    check_output_size(node_, p->out_shape);
    const du::dims src_logical = {n, cin, in[0], in[1]}, dst_logical = {n, cout, geo.out[0], geo.out[1]};
    p->src_md = src_blocked_ ? blocked_md(src_logical, block_) : du::plain_f32(src_logical);
    p->dst_md = blocked_md(dst_logical, block_);
    const du::dims wd = grouped_weight_dims(w, a_.group);
    p->wei_plain = du::plain_f32(wd);
    p->bias_md = b ? du::plain_f32({cout}) : dnnl::memory::desc();
    const du::dims dil = {geo.dilations[0] - 1, geo.dilations[1] - 1};
    // Candidates: the tensors' layouts, then oneDNN's choice; each with the pair's post-ops first when there is a
    // pair (without them, the pair runs after the primitive).
    const dnnl::memory::desc wei_any(wd, dt::f32, tag::any);
    const int fq_index = a_.act.dnnl_attr().get_post_ops().len();
    using PD = dnnl::convolution_forward::primitive_desc;
    int chosen = -1;
    const std::optional<PD> pd = du::pick_primitive<PD>(4, du::ImplKind::Jit, [&](int i) -> std::optional<PD> {
      const bool own = i < 2, with_fq = i % 2 == 0;
      if (with_fq && !a_.fq.on) return std::nullopt;
      try {
        dnnl::convolution_forward::desc d(
            dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
            own ? p->src_md : dnnl::memory::desc(src_logical, dt::f32, tag::any), wei_any, p->bias_md,
            own ? p->dst_md : dnnl::memory::desc(dst_logical, dt::f32, tag::any), geo.strides, dil, geo.pads_begin,
            geo.pads_end);
        int index = -1;
        return PD(d, du::user_scratchpad(with_fq ? fake_quant_attr(a_.act, a_.fq, index) : a_.act.dnnl_attr()),
                  du::engine());
      } catch (const dnnl::error&) {
        return std::nullopt;
      }
    }, &chosen);
    if (!pd) kfail(node_, "oneDNN has no convolution for these blocked shapes");
    try {
      p->prim = du::Prim(dnnl::convolution_forward(*pd), *pd);
      p->wei_md = pd->weights_desc();
      p->conv_src_md = pd->src_desc();
      p->conv_dst_md = pd->dst_desc();
      if (p->conv_src_md != p->src_md) p->src_reorder = du::make_reorder(p->src_md, p->conv_src_md);
      if (p->conv_dst_md != p->dst_md) p->dst_reorder = du::make_reorder(p->conv_dst_md, p->dst_md);
      if (chosen % 2 == 0) {
        p->fq_index = fq_index;
        p->fq_scale = dnnl::memory(du::plain_f32({1, 1, 1, 1}), du::engine());
        *static_cast<float*>(p->fq_scale.get_data_handle()) = a_.fq.scale;
      }
    } catch (const dnnl::error& e) {
      du::rethrow_dnnl(node_.name.c_str(), "Conv", e);
    }
    p->impl = std::string("oneDNN ") + pd->impl_info_str() + (p->src_reorder || p->dst_reorder ? " (reordered)" : "");
    OQ_DEBUG("Conv '{}' (blocked {}): X {} W {} group {}: {}", ir::node_label(node_), block_, shape_str(x.shape()),
             shape_str(w.shape()), a_.group, p->impl);
    return p;
  }

  // BlockedConvPrim::exact for these inputs (p's layouts, no post-ops). Called under the lock.
  void build_exact(BlockedConvPrim& p, const Tensor& x, const Tensor& w) {
    p.exact_tried = true;
    const Geometry geo = forward_geometry(node_, a_.spatial, {x.dim(2), x.dim(3)}, {w.dim(2), w.dim(3)});
    const du::dims dil = {geo.dilations[0] - 1, geo.dilations[1] - 1};
    try {
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                        p.conv_src_md, dnnl::memory::desc(p.wei_plain.dims(), dt::f32, tag::any),
                                        p.bias_md, p.conv_dst_md, geo.strides, dil, geo.pads_begin, geo.pads_end);
      dnnl::convolution_forward::primitive_desc pd(d, du::user_scratchpad(), du::engine());
      p.exact = du::Prim(dnnl::convolution_forward(pd), pd);
      p.exact_wei_md = pd.weights_desc();
    } catch (const dnnl::error&) {
      p.exact = du::Prim();  // no implementation: run_reference
    }
  }

  // The naive reference on the NCHW values (X converted from the blocked layout when it is blocked), the
  // activation, and the result converted into `y` of the blocked shape `shape`.
  void run_reference(const Tensor& x, const Tensor& w, const Tensor* b, const Shape& shape, Tensor& y) {
    const int64_t cin = in_channels(w);
    const Tensor xp = src_blocked_ ? blocked_to_nchw(x, cin) : x;
    const Geometry geo = forward_geometry(node_, a_.spatial, {xp.dim(2), xp.dim(3)}, {w.dim(2), w.dim(3)});
    Tensor plain = Tensor::uninitialized(DType::Float, {xp.dim(0), w.dim(0), geo.out[0], geo.out[1]});
    ref::conv(xp, w, b, {a_.group, geo.kernel, geo.strides, geo.dilations, geo.pads_begin, geo.pads_end}, plain);
    a_.act.apply(plain.data<float>(), plain.numel());
    y = Tensor::uninitialized(DType::Float, shape);
    convert_layout(plain, plain.shape(), block_, true, y);
  }

  ir::Node node_;
  const ConvAttrs a_;
  const int64_t block_;
  const bool src_blocked_;
  ConvInputsFinite finite_;  // under mu_
  std::mutex mu_;
  std::map<Shape, std::unique_ptr<BlockedConvPrim>> cache_;
};

// NCHW <-> blocked copy of x (logical dims [N, C, H, W]) into y (already allocated), by a oneDNN reorder made
// once per (direction, dims, block, threads) and shared by every caller: the layout kernels and the observers'
// conversions (Session). Writing a blocked destination zero-fills its padding channels.
void convert_layout(const Tensor& x, const du::dims& logical, int64_t block, bool to_blocked, Tensor& y) {
  static std::mutex mu;
  static std::map<Shape, du::Prim> cache;
  const dnnl::memory::desc plain = du::plain_f32(logical), blk = blocked_md(logical, block);
  const dnnl::memory::desc& from = to_blocked ? plain : blk;
  const dnnl::memory::desc& to = to_blocked ? blk : plain;
  Shape key = logical;
  key.insert(key.end(), {block, to_blocked ? 1 : 0, du::threads_key()});
  du::Prim r;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, du::make_reorder(from, to)).first;
    r = it->second;  // a handle: the primitive is shared
  }
  dnnl::memory src(from, du::engine(), const_cast<void*>(x.raw())), dst(to, du::engine(), y.raw());
  r.execute(src, dst);
}

// _OqToBlocked / _OqFromBlocked.
class LayoutKernel final : public Kernel {
 public:
  LayoutKernel(const KernelInit& init, bool to_blocked) : node_(init.node), to_blocked_(to_blocked) {
    block_ = parse_block(node_);
    if (!to_blocked_) {
      channels_ = node_.attr_int("channels", 0);
      if (channels_ <= 0) kfail(node_, "needs a positive 'channels' attribute");
    }
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.empty() || !in[0]) kfail(node_, "needs an input");
    const Tensor& x = *in[0];
    if (x.dtype() != DType::Float) kfail(node_, "only float32 is supported");
    du::dims logical;
    Shape out_shape;
    if (to_blocked_) {
      if (x.rank() != 4) kfail(node_, "input must be 4-D, got {}", shape_str(x.shape()));
      logical = x.shape();
      out_shape = {x.dim(0), blocks_of(x.dim(1), block_), x.dim(2), x.dim(3), block_};
    } else {
      if (x.rank() != 5 || x.dim(4) != block_ || x.dim(1) != blocks_of(channels_, block_))
        kfail(node_, "input shape {} is not a blocked tensor of {} channels", shape_str(x.shape()), channels_);
      logical = {x.dim(0), channels_, x.dim(2), x.dim(3)};
      out_shape = logical;
    }
    out[0] = Tensor::uninitialized(DType::Float, out_shape);
    try {
      convert_layout(x, logical, block_, to_blocked_, out[0]);
    } catch (const dnnl::error& e) {
      du::rethrow_dnnl(node_.name.c_str(), node_.op_type.c_str(), e);
    }
  }

 private:
  ir::Node node_;
  bool to_blocked_;
  int64_t block_ = 16, channels_ = 0;
};

std::unique_ptr<Kernel> make_to_blocked(const KernelInit& init) { return std::make_unique<LayoutKernel>(init, true); }
std::unique_ptr<Kernel> make_from_blocked(const KernelInit& init) {
  return std::make_unique<LayoutKernel>(init, false);
}

}  // namespace

Tensor blocked_to_nchw(const Tensor& x, int64_t channels) {
  if (x.dtype() != DType::Float || x.rank() != 5 || (x.dim(4) != 8 && x.dim(4) != 16) ||
      x.dim(1) != blocks_of(channels, x.dim(4)))
    fail(ErrorKind::Runtime, "tensor of shape {} is not a blocked tensor of {} channels", shape_str(x.shape()),
         channels);
  const du::dims logical = {x.dim(0), channels, x.dim(2), x.dim(3)};
  Tensor y = Tensor::uninitialized(DType::Float, logical);
  try {
    convert_layout(x, logical, x.dim(4), false, y);
  } catch (const dnnl::error& e) {
    du::rethrow_dnnl("(observer)", "_OqFromBlocked", e);
  }
  return y;
}

Tensor blocked_values(const Tensor& x, int64_t channels) {
  if (x.dtype() != DType::Float || x.rank() != 5 || x.dim(4) <= 0 || x.dim(1) != blocks_of(channels, x.dim(4)))
    fail(ErrorKind::Runtime, "tensor of shape {} is not a blocked tensor of {} channels", shape_str(x.shape()),
         channels);
  const int64_t n = x.dim(0), b = x.dim(4), hw = x.dim(2) * x.dim(3);
  const int64_t full = channels / b, rest = channels % b;
  Tensor y = Tensor::uninitialized(DType::Float, {n, channels, x.dim(2), x.dim(3)});
  const float* src = x.data<float>();
  float* dst = y.data<float>();
  for (int64_t s = 0; s < n; ++s) {
    const float* xs = src + s * x.dim(1) * hw * b;
    std::memcpy(dst, xs, static_cast<size_t>(full * hw * b) * sizeof(float));
    dst += full * hw * b;
    const float* part = xs + full * hw * b;
    for (int64_t i = 0; i < (rest ? hw : 0); ++i, dst += rest)
      std::memcpy(dst, part + i * b, static_cast<size_t>(rest) * sizeof(float));
  }
  return y;
}

std::unique_ptr<Kernel> make_conv_blocked(const KernelInit& init) {
  return std::make_unique<BlockedConvKernel>(init);
}

OQ_REGISTER_KERNEL(_OqToBlocked, 1, kMaxOpset, make_to_blocked);
OQ_REGISTER_KERNEL(_OqFromBlocked, 1, kMaxOpset, make_from_blocked);

}  // namespace oq::exec
