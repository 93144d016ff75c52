#include "quant/cross_layer_eq.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/log.h"
#include "ir/passes/passes.h"
#include "quant/graph_util.h"

namespace oq::quant {

namespace {

bool is_conv(const ir::Node& n) { return n.op_type == "Conv" && n.is_default_domain() && n.inputs.size() >= 2; }

// The Conv weight (private float constant, rank >= 3), or nullptr.
const ir::Initializer* conv_weight(const ir::Graph& g, const ir::Node& n) {
  const ir::Initializer* w = private_constant(g, n.input(1));
  return w && w->tensor.rank() >= 3 ? w : nullptr;
}

// The single consumer of t (not a graph output), or nullopt.
std::optional<size_t> only_consumer(const ir::Graph& g, const ir::GraphIndex& idx, const std::string& t) {
  auto c = idx.consumers.find(t);
  if (g.is_graph_output(t) || c == idx.consumers.end() || c->second.size() != 1) return std::nullopt;
  if (tensor_uses(g, t) != 1) return std::nullopt;  // also read by an If / Loop / Scan body
  const ir::Node& n = g.nodes[c->second[0]];
  if (std::count(n.inputs.begin(), n.inputs.end(), t) != 1) return std::nullopt;
  return c->second[0];
}

// For input channel i of Conv2 (weight [O2, cg, ...], group g2): visits every element index of W2[:, i, ...].
template <class F>
void for_input_channel(const Tensor& w2, int64_t group, int64_t i, F f) {
  const int64_t O2 = w2.dim(0), cg = w2.dim(1), og = O2 / group, inner = w2.numel() / (O2 * cg);
  const int64_t grp = i / cg, li = i % cg;
  for (int64_t o = grp * og; o < (grp + 1) * og; ++o)
    for (int64_t x = 0; x < inner; ++x) f((o * cg + li) * inner + x);
}

// Clip with bounds 0 and 6 (attributes before opset 11, constant inputs after; a missing bound is no bound).
bool is_relu6(const ir::Graph& g, const ir::Node& n) {
  auto bound = [&](size_t i, const char* attr) -> std::optional<float> {
    if (n.has_attr(attr)) return n.attr_float(attr, 0.f);
    if (n.input(i).empty()) return std::nullopt;
    const ir::Initializer* c = g.find_initializer(n.input(i));
    if (!c || c->tensor.dtype() != DType::Float || c->tensor.numel() != 1) return std::nullopt;
    return c->tensor.data<float>()[0];
  };
  const auto lo = bound(1, "min"), hi = bound(2, "max");
  return n.op_type == "Clip" && lo && hi && *lo == 0.f && *hi == 6.f;
}

}  // namespace

std::vector<ClePair> cle_pairs(const ir::Graph& g, int* clip_pairs, bool relu6) {
  std::vector<ClePair> out;
  ir::GraphIndex idx(g);
  int clips = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n1 = g.nodes[i];
    if (!is_conv(n1) || n1.outputs.empty()) continue;
    const ir::Initializer* w1 = conv_weight(g, n1);
    if (!w1) continue;
    const int64_t C = w1->tensor.dim(0);
    if (!n1.input(2).empty()) {
      const ir::Initializer* b1 = private_constant(g, n1.input(2));
      if (!b1 || b1->tensor.numel() != C) continue;
    }
    auto c = only_consumer(g, idx, n1.outputs[0]);
    if (!c) continue;
    ClePair p{i, *c, "", 0};
    const ir::Node* next = &g.nodes[*c];
    std::string act;
    if ((next->op_type == "Relu" || next->op_type == "LeakyRelu" || next->op_type == "Clip") &&
        next->is_default_domain() && next->input(0) == n1.outputs[0]) {
      act = next->op_type;
      p.act = *c;
      auto c2 = only_consumer(g, idx, next->outputs.at(0));
      if (!c2) continue;
      p.second = *c2;
      next = &g.nodes[*c2];
    }
    if (!is_conv(*next) || next->input(0) != (act.empty() ? n1.outputs[0] : g.nodes[*c].outputs.at(0))) continue;
    const ir::Initializer* w2 = conv_weight(g, *next);
    const int64_t g2 = next->attr_int("group", 1);
    if (!w2 || g2 <= 0 || w2->tensor.dim(0) % g2 || w2->tensor.dim(1) * g2 != C) continue;
    if (act == "Clip" && !(relu6 && is_relu6(g, g.nodes[p.act]))) {
      ++clips;
      continue;
    }
    p.activation = act;
    out.push_back(p);
  }
  if (clip_pairs) *clip_pairs = clips;
  return out;
}

void cle_ranges(const ir::Graph& g, const ClePair& p, std::vector<double>& r1, std::vector<double>& r2) {
  const Tensor& w1 = g.find_initializer(g.nodes[p.first].input(1))->tensor;
  const Tensor& w2 = g.find_initializer(g.nodes[p.second].input(1))->tensor;
  const int64_t C = w1.dim(0), inner1 = w1.numel() / C, g2 = g.nodes[p.second].attr_int("group", 1);
  r1.assign(static_cast<size_t>(C), 0.0);
  r2.assign(static_cast<size_t>(C), 0.0);
  const float* a = w1.data<float>();
  const float* b = w2.data<float>();
  for (int64_t i = 0; i < C; ++i) {
    double m = 0.0;
    for (int64_t x = 0; x < inner1; ++x) m = std::max(m, static_cast<double>(std::fabs(a[i * inner1 + x])));
    r1[static_cast<size_t>(i)] = m;
    m = 0.0;
    for_input_channel(w2, g2, i, [&](int64_t e) { m = std::max(m, static_cast<double>(std::fabs(b[e]))); });
    r2[static_cast<size_t>(i)] = m;
  }
}

CleReport cross_layer_equalize(ir::Model& m, const CleOptions& o) {
  ir::Graph& g = m.graph;
  CleReport rep;
  auto pairs = cle_pairs(g, &rep.clip_pairs, o.replace_relu6);
  rep.pairs = static_cast<int>(pairs.size());
  for (auto& p : pairs) {
    if (p.activation != "Clip") continue;
    ir::Node& a = g.nodes[p.act];  // Clip(0, 6) -> Relu: positive homogeneous, so the pair can be scaled
    a.op_type = "Relu";
    a.inputs.resize(1);
    a.remove_attr("min");
    a.remove_attr("max");
    p.activation = "Relu";
    ++rep.relu6_replaced;
  }
  rep.converged = true;
  for (int sweep = 0; sweep < o.max_iterations && !pairs.empty(); ++sweep) {
    double worst = 0.0;
    for (const auto& p : pairs) {
      std::vector<double> r1, r2;
      cle_ranges(g, p, r1, r2);
      std::vector<double> s(r1.size(), 1.0);
      for (size_t i = 0; i < s.size(); ++i) {
        if (r1[i] > 0.0 && r2[i] > 0.0) s[i] = std::sqrt(r1[i] * r2[i]) / r2[i];
        worst = std::max(worst, std::fabs(s[i] - 1.0));
      }
      ir::Node& n1 = g.nodes[p.first];
      ir::Node& n2 = g.nodes[p.second];
      scale_along(g.find_initializer(n1.input(1))->tensor, 0, s, true);
      if (!n1.input(2).empty()) {
        Tensor& b = g.find_initializer(n1.input(2))->tensor;
        b = b.reshaped({b.numel()});
        scale_along(b, 0, s, true);
      }
      Tensor& w2 = g.find_initializer(n2.input(1))->tensor;
      w2 = w2.clone();
      float* d = w2.data<float>();
      const int64_t g2 = n2.attr_int("group", 1);
      for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i)
        for_input_channel(w2, g2, i, [&](int64_t e) { d[e] = static_cast<float>(d[e] * s[static_cast<size_t>(i)]); });
    }
    rep.sweeps = sweep + 1;
    if (worst <= o.tolerance) break;
    if (sweep + 1 == o.max_iterations) rep.converged = false;
  }
  if (rep.relu6_replaced) ir::passes::remove_dead(m);  // the replaced Clips' bounds, when nothing else reads them
  return rep;
}

}  // namespace oq::quant
