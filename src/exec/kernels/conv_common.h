// What the two Conv kernels (conv.cc on NCHW tensors, conv_blocked.cc on channel-blocked ones) share: the
// attributes parsed once per node, and the weight dimensions oneDNN takes for grouped convolutions.
#pragma once
#include <cstdint>

#include "exec/finite.h"
#include "exec/kernel.h"
#include "exec/kernels/dnnl_common.h"
#include "exec/kernels/fused_activation.h"
#include "exec/kernels/spatial.h"

namespace oq::exec {

struct ConvAttrs {
  SpatialAttrs spatial;
  int64_t group = 1;
  FusedActivation act;  // fused by the executor's optimizer (none otherwise)
  FusedFakeQuant fq;    // likewise, applied after act

  explicit ConvAttrs(const ir::Node& n)
      : spatial(parse_spatial(n, false)),
        group(n.attr_int("group", 1)),
        act(FusedActivation::from_node(n)),
        fq(FusedFakeQuant::from_node(n)) {
    if (group <= 0) kfail(n, "group must be positive, got {}", group);
  }
};

// Whether a Conv's inputs are finite, so that oneDNN's post-op for its fused Relu / Clip gives ONNX Runtime's
// values (FusedActivation::post_op_needs_finite). known(): without looking, when the node's inputs are finite
// whenever the feeds are and the Session found this run's feeds finite (exec/finite.h). Otherwise weights()
// checks W once per tensor (a reference keeps its storage, hence the pointer, from being reused; call it under
// the kernel's lock) and the caller checks X and B (exec::all_finite) on every run.
class ConvInputsFinite {
 public:
  explicit ConvInputsFinite(bool finite_with_feeds) : finite_with_feeds_(finite_with_feeds) {}
  bool known() const { return finite_with_feeds_ && feeds_finite(); }
  bool weights(const Tensor& w) {
    if (w_.raw() != w.raw() || w_.shape() != w.shape()) {
      w_finite_ = all_finite(w);
      w_ = w;
    }
    return w_finite_;
  }

 private:
  bool finite_with_feeds_;
  Tensor w_;
  bool w_finite_ = false;
};

// W [O, I/g, k...] as oneDNN's weights: the same dims, or [g, O/g, I/g, k...] when grouped.
inline dnnl_util::dims grouped_weight_dims(const Tensor& w, int64_t group) {
  dnnl_util::dims wd = w.shape();
  if (group > 1) {
    wd[0] /= group;
    wd.insert(wd.begin(), group);
  }
  return wd;
}

}  // namespace oq::exec
