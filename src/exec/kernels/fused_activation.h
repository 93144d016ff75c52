// An activation fused into a Conv by the executor's optimizer (ir::passes::fuse_conv_activation): parsed once
// from the node's attributes, applied by oneDNN as a post-op or, on the GEMM and reference paths, by apply().
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include <dnnl.hpp>

#include "ir/graph.h"
#include "ir/passes/passes.h"

namespace oq::exec {

struct FusedActivation {
  enum class Kind { None, Relu, LeakyRelu, Clip };
  Kind kind = Kind::None;
  float alpha = 0.f, beta = 0.f;  // LeakyRelu slope; Clip min / max

  static FusedActivation from_node(const ir::Node& n) {
    FusedActivation a;
    const std::string base = ir::passes::kFusedActivationAttr;
    const std::string k = n.attr_string(base, "");
    a.alpha = n.attr_float(base + "_alpha", 0.f);
    a.beta = n.attr_float(base + "_beta", 0.f);
    a.kind = k == "Relu" ? Kind::Relu : k == "LeakyRelu" ? Kind::LeakyRelu : k == "Clip" ? Kind::Clip : Kind::None;
    return a;
  }
  bool active() const { return kind != Kind::None; }

  // Branch-free form for vectorised inner loops: y = clamp(x < 0 ? slope*x : x, lo, hi). Same values as
  // operator() except for the sign of a zero (NaN stays NaN in both).
  struct Linear {
    float slope, lo, hi;
    // min/max only, so that loops calling it vectorise (always inlined: a call in the loop would stop that)
    __attribute__((always_inline)) float operator()(float x) const {
      float v = std::max(x, 0.f) + slope * std::min(x, 0.f);
      v = std::max(v, lo);
      return std::min(v, hi);
    }
  };
  Linear linear() const {
    const float inf = std::numeric_limits<float>::infinity();
    switch (kind) {
      case Kind::Relu: return {1.f, 0.f, inf};
      case Kind::LeakyRelu: return {alpha, -inf, inf};
      case Kind::Clip: return {1.f, alpha, beta};
      default: return {1.f, -inf, inf};
    }
  }

  // Same formulas as the Relu / LeakyRelu / Clip kernels.
  float operator()(float x) const {
    switch (kind) {
      case Kind::Relu: return x < 0.f ? 0.f : x;  // NaN stays NaN (ORT, ONNX)
      case Kind::LeakyRelu: return x < 0.f ? alpha * x : x;
      case Kind::Clip: x = x < alpha ? alpha : x; return x > beta ? beta : x;
      default: return x;
    }
  }
  void apply(float* p, int64_t n) const {
    switch (kind) {
      case Kind::Relu:
        for (int64_t i = 0; i < n; ++i) p[i] = p[i] < 0.f ? 0.f : p[i];
        break;
      case Kind::LeakyRelu:
        for (int64_t i = 0; i < n; ++i) p[i] = p[i] < 0.f ? alpha * p[i] : p[i];
        break;
      case Kind::Clip:
        for (int64_t i = 0; i < n; ++i) {
          float v = p[i] < alpha ? alpha : p[i];
          p[i] = v > beta ? beta : v;
        }
        break;
      default: break;
    }
  }
  // oneDNN computes Relu, Clip and LeakyRelu with slope 0 (its Relu) as max(x, lo) / min(x, hi) with x as the
  // first operand of vmaxps / vminps, which returns the bound for a NaN x: Relu(NaN) = 0 and Clip(NaN) = min
  // where ONNX Runtime (and operator() here) keep the NaN, and LeakyRelu(0)(-inf) = 0 where they give
  // 0 * -inf = NaN. A Conv with one of these uses the post-op only when its inputs are finite (exec/finite.h);
  // LeakyRelu with a slope is a blend (x > 0 ? x : slope * x), exact for NaN.
  bool post_op_needs_finite() const {
    return kind == Kind::Relu || kind == Kind::Clip || (kind == Kind::LeakyRelu && alpha == 0.f);
  }
  // apply(), split over the threads for large n.
  void apply_parallel(float* p, int64_t n) const;
  // apply() on a channel-blocked tensor [n, blocks, hw, block] (exec/layout.h) of `channels` real channels; the
  // padding channels of the last block are set to 0 (what consumers of the blocked layout expect: oneDNN
  // computes them with zero weights, so a NaN or infinite input leaves NaN there, and Clip's bounds need not
  // contain 0).
  void apply_blocked(float* p, int64_t n, int64_t blocks, int64_t hw, int64_t block, int64_t channels) const;

  // oneDNN post-ops computing the same values for finite inputs (see post_op_needs_finite).
  dnnl::primitive_attr dnnl_attr() const {
    dnnl::primitive_attr attr;
    if (!active()) return attr;
    dnnl::post_ops po;
    if (kind == Kind::Relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    if (kind == Kind::LeakyRelu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, alpha, 0.f);
    if (kind == Kind::Clip) po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, alpha, beta);
    attr.set_post_ops(po);
    return attr;
  }
};

// A per-tensor QuantizeLinear -> DequantizeLinear pair fused after a Conv (and its activation), Gemm or MatMul by
// the executor's optimizer (ir::passes::fuse_fake_quant), applied in place to the node's output:
//   y = clamp(round_half_even(x / scale), lo, hi) * scale,  lo = qmin - zero point, hi = qmax - zero point,
// bit for bit the pair's float(clamp(round_half_even(x / scale) + zero point, qmin, qmax) - zero point) * scale
// (exec/kernels/qdq.h), NaN -> lo * scale as the pair's NaN -> qmin, and +0 for a zero. Saves the pair's two
// passes and its two tensors (the quantized one and the dequantized copy).
struct FusedFakeQuant {
  bool on = false;
  float scale = 1.f, lo = 0.f, hi = 0.f;

  static FusedFakeQuant from_node(const ir::Node& n) {
    FusedFakeQuant q;
    const std::string a = ir::passes::kFusedFakeQuantAttr;
    if (n.attr_int(a, 0) == 0) return q;
    q.on = true;
    q.scale = n.attr_float(a + "_scale", 1.f);
    q.lo = n.attr_float(a + "_lo", 0.f);
    q.hi = n.attr_float(a + "_hi", 0.f);
    return q;
  }
  // In place over p[0, n), split over the threads for large n.
  void apply(float* p, int64_t n) const;
};

// For each of `rows` rows of y (row r at y + r*ld, `cols` elements): add bias[r] (when bias is not null),
// then apply the activation.
void bias_activation_rows(float* y, int64_t rows, int64_t cols, int64_t ld, const float* bias,
                          const FusedActivation& act);

}  // namespace oq::exec
