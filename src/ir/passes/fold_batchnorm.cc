// BatchNormalization (inference) folded into the preceding Conv / ConvTranspose / Gemm.
#include <algorithm>
#include <cmath>

#include "ir/passes/ort_order.h"
#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

// BN(x) as ORT's ConvBNFusion computes it for quant_pre_process (onnxruntime/core/optimizer/conv_bn_fusion.cc,
// Initializer arithmetic): float32, element by element, in its order, so that the folded weights and biases are
// bit for bit ORT's (float64 or another association is 1 ulp off in ~40 % of them, and the quantized integers flip
// at rounding ties): v = var + eps, v = sqrt(v), s = scale / v, W' = W * s; with a producer bias
// B' = ((B - mean) * s) + bn_B, without one B' = bn_B - (mean * s). Parameters of another float type are read as
// float (ORT folds only when all have the weight's type).
struct BnParams {
  std::vector<float> s, mean, bias;
  // The folded bias of channel c; `b` is the producer's bias value, or null when it has none.
  float folded_bias(int64_t c, const float* b) const {
    if (b) {
      float t = *b - mean[c];
      t = t * s[c];
      return t + bias[c];
    }
    const float ms = mean[c] * s[c];
    return bias[c] - ms;
  }
};

std::optional<BnParams> bn_params(const Graph& g, const Node& bn, int64_t channels, bool ovr) {
  const Tensor* t[4];
  for (int i = 0; i < 4; ++i) {
    t[i] = constant_value(g, bn.input(i + 1), ovr);
    if (!t[i] || t[i]->numel() != channels || t[i]->dtype() == DType::String) return std::nullopt;
  }
  auto floats = [](const Tensor* x) {
    const auto d = x->to_doubles();
    return std::vector<float>(d.begin(), d.end());
  };
  const std::vector<float> scale = floats(t[0]), var = floats(t[3]);
  const float eps = bn.attr_float("epsilon", 1e-5f);
  BnParams p;
  p.bias = floats(t[1]);
  p.mean = floats(t[2]);
  p.s.resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    float v = var[c] + eps;
    v = std::sqrt(v);
    p.s[c] = scale[c] / v;
  }
  return p;
}

// Puts `t` under `name` when nothing else reads that initializer (no other node, no other input of `p`: a Gemm
// reading one initializer as B and C), else under a fresh name; returns the name.
std::string store(Graph& g, const GraphIndex& idx, NameGen& names, const Node& p, const std::string& name, Tensor t) {
  auto c = idx.consumers.find(name);
  bool shared = (c != idx.consumers.end() && c->second.size() > 1) || names.outer_ref(name) ||
                std::count(p.inputs.begin(), p.inputs.end(), name) > 1;
  if (!name.empty() && !shared && !g.is_graph_output(name) && !g.is_graph_input(name)) {
    std::erase_if(g.value_info, [&](const ValueInfo& v) { return v.name == name; });
    g.find_initializer(name)->tensor = std::move(t);
    return name;
  }
  std::string n = names.make(name.empty() ? "bn_folded_bias" : name + "_bn_folded");
  g.add_initializer(n, std::move(t));
  return n;
}

bool is_float_const(const Tensor* t) { return t && t->dtype() == DType::Float; }

// Rewrites producer `p` so that it computes BN(p(x)); false when the pattern does not apply.
bool fold_into(Graph& g, const GraphIndex& idx, NameGen& names, OrtNames& ort_names, Node& p, const Node& bn,
               bool ovr) {
  const Tensor* w = constant_value(g, p.input(1), ovr);
  if (!is_float_const(w) || w->rank() < 2) return false;
  const Tensor* b = p.input(2).empty() ? nullptr : constant_value(g, p.input(2), ovr);
  if (!p.input(2).empty() && !is_float_const(b)) return false;

  if (p.op_type == "Conv" || p.op_type == "ConvTranspose") {
    const bool tr = p.op_type == "ConvTranspose";
    const int64_t group = p.attr_int("group", 1);
    if (group < 1 || (tr && w->dim(0) % group)) return false;
    const int64_t cout = tr ? w->dim(1) * group : w->dim(0);
    if (b && b->numel() != cout) return false;
    auto prm = bn_params(g, bn, cout, ovr);
    if (!prm) return false;
    Tensor nw = w->clone();
    float* d = nw.data<float>();
    const int64_t d0 = w->dim(0), d1 = w->dim(1), inner = w->numel() / (d0 * d1);
    for (int64_t i = 0; i < d0; ++i)
      for (int64_t j = 0; j < d1; ++j) {
        const int64_t oc = tr ? (i / (d0 / group)) * d1 + j : i;
        float* row = d + (i * d1 + j) * inner;
        for (int64_t k = 0; k < inner; ++k) row[k] = row[k] * prm->s[oc];
      }
    Tensor nb(DType::Float, {cout});
    for (int64_t c = 0; c < cout; ++c)
      nb.data<float>()[c] = prm->folded_bias(c, b ? b->data<float>() + c : nullptr);
    // ORT's ConvBNFusion (what quant_pre_process runs; Conv and ConvTranspose alike) names the new initializers
    // after the weight and the BN's bias, so the quantized model's names match those of ORT's flow (the old ones are
    // dropped when nothing else reads them). A name already in use gets ORT's `_token_<n>` (two Convs sharing a
    // weight, each before a BN: the one ORT visits second gets `ConvBnFusion_W_<W>_token_0`).
    const std::string wn = ort_names.make("ConvBnFusion_W_" + p.input(1));
    g.add_initializer(wn, std::move(nw));
    const std::string bname = ort_names.make("ConvBnFusion_BN_B_" + bn.input(2));
    g.add_initializer(bname, std::move(nb));
    p.inputs.resize(3);
    p.inputs[1] = wn;
    p.inputs[2] = bname;
    return true;
  }

  // Gemm: Y = alpha * A' * B' + beta * C, BN along N (axis 1 of Y).
  if (w->rank() != 2) return false;
  const bool trans_b = p.attr_int("transB", 0) != 0;
  const int64_t n = trans_b ? w->dim(0) : w->dim(1);
  auto prm = bn_params(g, bn, n, ovr);
  if (!prm) return false;
  // alpha scales A*B', which now includes s, so it stays; beta is folded into C (then set to 1). ORT does not fold
  // a BN into a Gemm (onnxquant's choice); the arithmetic is ConvBNFusion's, float32, with beta * C as the bias.
  const float beta = p.attr_float("beta", 1.0f);
  Tensor nw = w->clone();
  float* d = nw.data<float>();
  for (int64_t r = 0; r < w->dim(0); ++r)
    for (int64_t c = 0; c < w->dim(1); ++c) {
      const int64_t oc = trans_b ? r : c;
      d[r * w->dim(1) + c] = d[r * w->dim(1) + c] * prm->s[oc];
    }
  // C broadcast to [rows, N] with rows = 1 (scalar, [N], [1,N], [1,1]) or M ([M,N], [M,1]).
  int64_t rows = 1;
  if (b) {
    if (b->rank() > 2) return false;
    const int64_t last = b->rank() == 0 ? 1 : b->dim(-1);
    if (last != 1 && last != n) return false;
    if (b->rank() == 2) rows = b->dim(0);
  }
  Tensor nc(DType::Float, rows == 1 ? Shape{n} : Shape{rows, n});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c) {
      float cv = 0;
      if (b) {
        const int64_t last = b->rank() == 0 ? 1 : b->dim(-1);
        cv = beta * b->data<float>()[r * last + (last == 1 ? 0 : c)];
      }
      nc.data<float>()[r * n + c] = prm->folded_bias(c, b ? &cv : nullptr);
    }
  std::string wn = store(g, idx, names, p, p.input(1), std::move(nw));
  std::string cn = store(g, idx, names, p, p.input(2), std::move(nc));
  p.inputs.resize(3);
  p.inputs[1] = wn;
  p.inputs[2] = cn;
  p.set_attr_float("beta", 1.0f);
  return true;
}

}  // namespace

size_t fold_batchnorm(Model& m) {
  Graph& g = m.graph;
  const auto sub = subgraph_refs(g);
  NameGen names(g);
  names.set_refs(&sub);
  OrtNames ort_names(g);
  const bool ovr = inputs_overridable(m);
  size_t folded = 0;
  LazyGraphIndex index(g);
  // ORT's ConvBNFusion is a rule on the Conv / ConvTranspose: the producers are visited in ORT's node order
  // (siblings in reverse file order), which decides who gets the `_token_<n>` names when two collide. Rounds
  // repeat until nothing folds (ORT's rule loop does): Conv -> BN -> BN folds both.
  for (size_t round_folds = 1; round_folds > 0;) {
    round_folds = 0;
    for (const std::string& out : ort_node_order(g, std::vector<std::string>{"Conv", "ConvTranspose", "Gemm"})) {
      const GraphIndex& idx = index.get();  // rebuilt after every fold
      auto pit = idx.producer.find(out);
      if (out.empty() || pit == idx.producer.end()) continue;
      Node& p = g.nodes[pit->second];
      auto cit = idx.consumers.find(out);
      if (!p.is_default_domain() || p.outputs.size() != 1 || cit == idx.consumers.end() ||
          cit->second.size() != 1 || g.is_graph_output(out) || sub.count(out))
        continue;
      const size_t k = cit->second[0];
      const Node& bn = g.nodes[k];
      if (bn.op_type != "BatchNormalization" || !bn.is_default_domain() ||
          !batchnorm_training_reason(bn, m.default_opset()).empty() ||
          bn.attr_int("spatial", 1) != 1 || bn.inputs.size() != 5 || bn.outputs.empty() || bn.outputs[0].empty() ||
          bn.input(0) != out)
        continue;
      bool extra_used = false;
      for (size_t i = 1; i < bn.outputs.size(); ++i)
        extra_used |= !bn.outputs[i].empty() && (idx.consumers.count(bn.outputs[i]) ||
                                                 g.is_graph_output(bn.outputs[i]) || sub.count(bn.outputs[i]));
      if (extra_used || !fold_into(g, idx, names, ort_names, p, bn, ovr)) continue;
      index.invalidate();
      p.outputs[0] = bn.outputs[0];
      std::erase_if(g.value_info, [&](const ValueInfo& v) { return v.name == out; });
      g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(k));
      ++round_folds;
    }
    folded += round_folds;
  }
  if (folded) {
    // BN parameters (and weights replaced under new names) that nothing reads any more.
    drop_unused_initializers(g, sub);
  }
  return folded;
}

}  // namespace oq::ir::passes
