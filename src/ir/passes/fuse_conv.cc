// Fusions into Conv, as ONNX Runtime's graph optimizer does on load (PadFusion, ConvActivationFusion), and of a
// QuantizeLinear -> DequantizeLinear pair after it (or after a Gemm or MatMul). The executor applies them all to
// its private copy of a model (exec/optimize.cc). Pad fusion leaves a standard Conv (only `pads` changes) and is
// also part of pre-processing (preprocess.cc), whose output is written; the others add private attributes and
// are never applied to a model onnxquant writes. PadFusion into an AveragePool (count_include_pad set) is
// pre-processing only.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

std::optional<float> const_scalar(const Graph& g, const std::string& n, bool ovr) {
  const Tensor* t = constant_value(g, n, ovr);
  if (!t || t->numel() != 1 || t->dtype() != DType::Float) return std::nullopt;
  return t->data<float>()[0];
}

// Spatial pads [x1_begin.., x1_end..] of a zero-constant Pad over N, C and spatial axes, or nullopt.
std::optional<std::vector<int64_t>> zero_spatial_pads(const Graph& g, const Node& pad, int opset, bool ovr) {
  if (pad.attr_string("mode", "constant") != "constant") return std::nullopt;
  std::vector<int64_t> pads;
  if (opset < 11) {
    pads = pad.attr_ints("pads", pad.attr_ints("paddings"));
    if (pad.attr_float("value", 0.f) != 0.f) return std::nullopt;
  } else {
    const Tensor* p = constant_value(g, pad.input(1), ovr);
    if (!p || p->dtype() != DType::Int64) return std::nullopt;
    pads = p->to_int64s();
    // ORT counts the inputs as written: a constant_value given as "" (present, not a constant) and any 4th input
    // (opset 18 `axes`, even "") refuse the fusion.
    if (pad.inputs.size() > 3 || (pad.inputs.size() == 3 && pad.input(2).empty())) return std::nullopt;
    if (!pad.input(2).empty()) {
      auto v = const_scalar(g, pad.input(2), ovr);
      if (!v || *v != 0.f || std::signbit(*v)) return std::nullopt;  // ORT checks the bytes: -0.0 is not fused
    }
  }
  const size_t r = pads.size() / 2;
  if (pads.size() % 2 || r < 3) return std::nullopt;
  if (pads[0] || pads[1] || pads[r] || pads[r + 1]) return std::nullopt;
  if (std::any_of(pads.begin(), pads.end(), [](int64_t v) { return v < 0; })) return std::nullopt;
  std::vector<int64_t> sp;
  for (size_t i = 2; i < r; ++i) sp.push_back(pads[i]);
  for (size_t i = 2; i < r; ++i) sp.push_back(pads[r + i]);
  return sp;
}

void drop_nodes(Model& m, const std::vector<char>& dead) {
  std::vector<Node> kept;
  for (size_t k = 0; k < m.graph.nodes.size(); ++k)
    if (!dead[k]) kept.push_back(std::move(m.graph.nodes[k]));
  m.graph.nodes = std::move(kept);
  remove_dead(m);
}

// State of one fusion pass over a model: nodes fused away are marked dead and dropped by finish().
struct FusionPass {
  Model& m;
  Graph& g;
  const std::unordered_set<std::string> sub;
  const int opset;
  const bool ovr;
  const GraphIndex idx;
  std::vector<char> dead;
  size_t fused = 0;

  explicit FusionPass(Model& model)
      : m(model), g(model.graph), sub(subgraph_refs(model.graph)), opset(static_cast<int>(model.default_opset())),
        ovr(inputs_overridable(model)), idx(model.graph), dead(model.graph.nodes.size(), 0) {}
  std::optional<size_t> consumer(const std::string& t) const { return sole_consumer(g, idx, sub, t); }
  void fuse_away(size_t node) {
    dead[node] = 1;
    ++fused;
  }
  size_t finish() {
    if (fused) drop_nodes(m, dead);
    return fused;
  }
};

// The node of type `op` that is the only reader of Pad `pad`'s output, through its data input 0.
std::optional<size_t> pad_reader(const FusionPass& f, const Node& pad, const char* op) {
  if (pad.op_type != "Pad" || !pad.is_default_domain() || pad.outputs.size() != 1 || pad.input(0).empty())
    return std::nullopt;
  auto c = f.consumer(pad.outputs[0]);
  if (!c) return std::nullopt;
  const Node& r = f.g.nodes[*c];
  if (r.op_type != op || !r.is_default_domain() || r.input(0) != pad.outputs[0]) return std::nullopt;
  return c;
}

}  // namespace

size_t fuse_pad_into_conv(Model& m) {
  FusionPass f(m);
  Graph& g = f.g;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const Node& pad = g.nodes[k];
    auto c = pad_reader(f, pad, "Conv");
    if (!c) continue;
    Node& conv = g.nodes[*c];
    if (conv.attr_string("auto_pad", "NOTSET") != "NOTSET") continue;
    auto sp = zero_spatial_pads(g, pad, f.opset, f.ovr);
    if (!sp) continue;
    const size_t nsp = sp->size() / 2;
    std::vector<int64_t> cp = conv.attr_ints("pads", std::vector<int64_t>(2 * nsp, 0));
    if (cp.size() != 2 * nsp) continue;
    for (size_t i = 0; i < cp.size(); ++i) cp[i] += (*sp)[i];
    conv.set_attr_ints("pads", cp);
    conv.inputs[0] = pad.inputs[0];
    f.fuse_away(k);
  }
  return f.finish();
}

size_t fuse_pad_into_avgpool(Model& m) {
  FusionPass f(m);
  Graph& g = f.g;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const Node& pad = g.nodes[k];
    auto c = pad_reader(f, pad, "AveragePool");
    if (!c) continue;
    Node& pool = g.nodes[*c];
    if (pool.outputs.size() != 1 || pool.attr_string("auto_pad", "NOTSET") != "NOTSET" || pool.attr_int("ceil_mode", 0))
      continue;
    auto sp = zero_spatial_pads(g, pad, f.opset, f.ovr);
    const std::vector<int64_t> kernel = pool.attr_ints("kernel_shape");
    if (!sp || kernel.size() * 2 != sp->size()) continue;
    const size_t nsp = kernel.size();
    std::vector<int64_t> pp = pool.attr_ints("pads", std::vector<int64_t>(2 * nsp, 0));
    if (pp.size() != 2 * nsp) continue;
    // Pads the pool had are averaged over as zeros only with count_include_pad; each pad stays below the kernel.
    const bool had = std::any_of(pp.begin(), pp.end(), [](int64_t v) { return v != 0; });
    if (had && pool.attr_int("count_include_pad", 0) == 0) continue;
    bool ok = true;
    for (size_t i = 0; i < pp.size(); ++i) ok &= (pp[i] += (*sp)[i]) < kernel[i % nsp];
    if (!ok) continue;
    pool.set_attr_ints("pads", pp);
    pool.set_attr_int("count_include_pad", 1);
    pool.set_attr_string("auto_pad", "NOTSET");
    pool.set_attr_int("ceil_mode", 0);
    pool.inputs[0] = pad.inputs[0];
    f.fuse_away(k);
  }
  return f.finish();
}

size_t fuse_conv_activation(Model& m) {
  FusionPass f(m);
  Graph& g = f.g;
  const int opset = f.opset;
  const bool ovr = f.ovr;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    Node& conv = g.nodes[k];
    if (conv.op_type != "Conv" || !conv.is_default_domain() || conv.outputs.size() != 1 ||
        conv.has_attr(kFusedActivationAttr))
      continue;
    auto c = f.consumer(conv.outputs[0]);
    if (!c) continue;
    const Node& act = g.nodes[*c];
    if (!act.is_default_domain() || act.outputs.size() != 1 || act.outputs[0].empty() || act.input(0) != conv.outputs[0])
      continue;
    std::string kind;
    float alpha = 0.f, beta = 0.f;
    if (act.op_type == "Relu") {
      kind = "Relu";
    } else if (act.op_type == "LeakyRelu") {
      kind = "LeakyRelu";
      alpha = act.attr_float("alpha", 0.01f);
    } else if (act.op_type == "Clip") {
      kind = "Clip";
      alpha = -FLT_MAX;
      beta = FLT_MAX;
      if (opset < 11) {
        alpha = act.attr_float("min", alpha);
        beta = act.attr_float("max", beta);
      } else {
        if (!act.input(1).empty()) {
          auto v = const_scalar(g, act.input(1), ovr);
          if (!v) continue;
          alpha = *v;
        }
        if (!act.input(2).empty()) {
          auto v = const_scalar(g, act.input(2), ovr);
          if (!v) continue;
          beta = *v;
        }
      }
      if (!(alpha <= beta)) continue;  // Clip with min > max (or NaN bounds): leave the node as it is
    } else {
      continue;
    }
    conv.set_attr_string(kFusedActivationAttr, kind);
    conv.set_attr_float(std::string(kFusedActivationAttr) + "_alpha", alpha);
    conv.set_attr_float(std::string(kFusedActivationAttr) + "_beta", beta);
    conv.outputs[0] = act.outputs[0];
    f.fuse_away(*c);
  }
  return f.finish();
}

namespace {
// Scale, zero point and type of a per-tensor QuantizeLinear / DequantizeLinear with constant parameters.
struct PerTensorQdq {
  float scale = 0;
  int64_t zero_point = 0;
  DType type = DType::UInt8;
};
std::optional<PerTensorQdq> per_tensor_qdq(const Graph& g, const Node& n, int opset, bool ovr) {
  if (!n.is_default_domain() || n.outputs.size() != 1 || n.inputs.size() < 2 || n.attr_int("block_size", 0) != 0)
    return std::nullopt;
  PerTensorQdq q;
  auto s = const_scalar(g, n.input(1), ovr);
  if (!s || !(*s > 0) || !std::isfinite(*s)) return std::nullopt;
  q.scale = *s;
  if (n.op_type == "QuantizeLinear" && opset >= 21 && n.attr_int("output_dtype", 0) != 0)
    q.type = static_cast<DType>(n.attr_int("output_dtype", 0));
  if (!n.input(2).empty()) {
    const Tensor* z = constant_value(g, n.input(2), ovr);
    if (!z || z->numel() != 1) return std::nullopt;
    if (n.op_type == "QuantizeLinear" && opset >= 21 && n.attr_int("output_dtype", 0) != 0 && q.type != z->dtype())
      return std::nullopt;  // contradictory: left to the kernel, which reports it
    q.type = z->dtype();
    if (!is_quant_type(q.type)) return std::nullopt;
    q.zero_point = z->to_int64s()[0];
  }
  if (!is_quant_type(q.type)) return std::nullopt;
  return q;
}
}  // namespace

size_t fuse_fake_quant(Model& m) {
  FusionPass f(m);
  Graph& g = f.g;
  if (f.opset < 10) return 0;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    Node& conv = g.nodes[k];  // or Gemm / MatMul
    if ((conv.op_type != "Conv" && conv.op_type != "Gemm" && conv.op_type != "MatMul") ||
        !conv.is_default_domain() || conv.outputs.size() != 1 || conv.has_attr(kFusedFakeQuantAttr))
      continue;
    auto qi = f.consumer(conv.outputs[0]);
    if (!qi || g.nodes[*qi].op_type != "QuantizeLinear" || g.nodes[*qi].input(0) != conv.outputs[0]) continue;
    const Node& q = g.nodes[*qi];
    auto di = f.consumer(q.outputs[0]);
    if (!di || g.nodes[*di].op_type != "DequantizeLinear" || g.nodes[*di].input(0) != q.outputs[0]) continue;
    const Node& d = g.nodes[*di];
    auto qp = per_tensor_qdq(g, q, f.opset, f.ovr), dp = per_tensor_qdq(g, d, f.opset, f.ovr);
    if (!qp || !dp || d.outputs[0].empty() || qp->scale != dp->scale || qp->zero_point != dp->zero_point ||
        (!d.input(2).empty() && qp->type != dp->type))
      continue;
    const QRange r = full_range(qp->type);
    const std::string a = kFusedFakeQuantAttr;
    conv.set_attr_float(a + "_scale", qp->scale);
    conv.set_attr_float(a + "_lo", static_cast<float>(r.qmin - qp->zero_point));
    conv.set_attr_float(a + "_hi", static_cast<float>(r.qmax - qp->zero_point));
    conv.set_attr_int(a, 1);
    conv.outputs[0] = d.outputs[0];
    f.fuse_away(*qi);
    f.fuse_away(*di);
  }
  return f.finish();
}

}  // namespace oq::ir::passes
