// An If whose condition is a constant initializer replaced by the nodes of the branch it takes, as ONNX Runtime's
// constant folding does in quant_pre_process (Graph::InlineIfSubgraph): quantize_static then quantizes those nodes
// as main-graph nodes. Names as ORT makes them (checked against ORT 1.32): a prefix `_if_then_branch` /
// `_if_else_branch` (`..._token_<k>` when taken), every name the branch defines (node outputs, its initializers)
// becomes `<prefix>_<name>`, the branch outputs become the If's outputs, node names `<prefix>_<OpType>`
// (`..._token_<k>` on a repeat); one token counter for the graph. Several such Ifs are inlined last one first, the
// order ORT's pass visits them in (observed with Ifs on one condition). Bodies first: an If nested in a taken branch
// (its condition a constant of the branch or of an enclosing graph) is inlined inside the branch, then with it. A branch whose output is not made by one of
// its nodes (an initializer of it, an outer value) is left as it is.
#include <unordered_map>
#include <unordered_set>

#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

// The names of g itself, not of its nodes' bodies: ORT's generated names are unique in their graph only (an
// inlined `_if_then_branch_Relu` keeps that name while another If's body has a node so named: checked with 1.32).
void collect_names(const Graph& g, std::unordered_set<std::string>& used) {
  for (const auto* vs : {&g.inputs, &g.outputs, &g.value_info})
    for (const auto& v : *vs) used.insert(v.name);
  for (const auto& i : g.initializers) used.insert(i.name);
  for (const auto& n : g.nodes) {
    used.insert(n.name);
    used.insert(n.inputs.begin(), n.inputs.end());
    used.insert(n.outputs.begin(), n.outputs.end());
  }
}

// The value of `name` as seen from the innermost of `scopes` (enclosing graphs, outermost first): the innermost
// graph that defines it decides; a constant initializer there gives its tensor, anything else (an input, a node
// output, an overridable initializer) null. ORT's constant folding also takes an outer scope's initializer as a
// constant condition (graph_utils::IsConstantInitializer with check_outer_scope).
const Tensor* scoped_constant(const std::vector<Graph*>& scopes, const std::string& name, bool ovr) {
  for (auto it = scopes.rbegin(); it != scopes.rend(); ++it) {
    const Graph& g = **it;
    if (g.find_initializer(name)) return constant_value(g, name, ovr);
    if (g.is_graph_input(name)) return nullptr;
    for (const auto& n : g.nodes)
      for (const auto& o : n.outputs)
        if (o == name) return nullptr;
  }
  return nullptr;
}

// Inlines the constant-condition Ifs of scopes.back(), the bodies of its nodes first (ORT's optimizer recurses
// into a node's subgraphs before the node itself, so an If nested in a taken branch is inlined inside the branch,
// its names prefixed there, then again by the outer inlining). Returns how many Ifs were inlined.
size_t inline_in(std::vector<Graph*>& scopes, bool ovr) {
  Graph& g = *scopes.back();
  size_t inlined = 0;
  for (auto& n : g.nodes)
    for (auto& a : n.attrs) {
      std::vector<Graph*> bodies;
      if (a.g) bodies.push_back(a.g.get());
      for (auto& sg : a.graphs)
        if (sg) bodies.push_back(sg.get());
      for (Graph* b : bodies) {
        scopes.push_back(b);
        inlined += inline_in(scopes, ovr);
        scopes.pop_back();
      }
    }
  auto cond_of = [&](const Node& n) -> const Tensor* {
    const Tensor* c = scoped_constant(scopes, n.input(0), ovr);
    return c && c->numel() == 1 && c->dtype() == DType::Bool ? c : nullptr;
  };
  std::vector<size_t> cands;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!n.is_default_domain() || n.op_type != "If" || n.inputs.size() != 1) continue;
    const Tensor* c = cond_of(n);
    if (!c) continue;
    const Attribute* a = n.attr(c->data<uint8_t>()[0] ? "then_branch" : "else_branch");
    if (!a || !a->g || a->g->outputs.size() != n.outputs.size() || !a->g->inputs.empty()) continue;
    std::unordered_set<std::string> made;
    for (const auto& bn : a->g->nodes) made.insert(bn.outputs.begin(), bn.outputs.end());
    bool ok = true;
    std::unordered_set<std::string> outs;
    for (const auto& o : a->g->outputs) ok &= made.count(o.name) && outs.insert(o.name).second;
    if (ok) cands.push_back(i);
  }
  if (cands.empty()) return inlined;
  std::unordered_set<std::string> used;
  collect_names(g, used);
  int token = 0;
  auto unique = [&](const std::string& base) {
    std::string n = base;
    while (used.count(n)) n = base + "_token_" + std::to_string(token++);
    used.insert(n);
    return n;
  };
  // A body tensor's name: <prefix>_<name>, or with `_<k>` when the graph already has that name (a tensor of the
  // graph or of an If inlined before); node names keep their own namespace (unique() above).
  std::unordered_set<std::string> tensors;
  auto fresh = [&](const std::string& base) {
    std::string n = base;
    for (int k = 1; used.count(n) || tensors.count(n); ++k) n = base + "_" + std::to_string(k);
    tensors.insert(n);
    return n;
  };
  std::unordered_map<size_t, std::vector<Node>> replaced;
  for (auto it = cands.rbegin(); it != cands.rend(); ++it) {
    const Node& n = g.nodes[*it];
    const bool value = cond_of(n)->data<uint8_t>()[0] != 0;
    const std::string attr = value ? "then_branch" : "else_branch";
    const Graph& body = *n.attr(attr)->g;
    const std::string prefix = unique("_if_" + attr);
    std::unordered_map<std::string, std::string> map;
    for (size_t k = 0; k < body.outputs.size(); ++k)
      map[body.outputs[k].name] = n.outputs[k].empty() ? fresh(prefix + "_" + body.outputs[k].name) : n.outputs[k];
    for (const auto& i : body.initializers)
      if (!map.count(i.name)) map[i.name] = fresh(prefix + "_" + i.name);
    for (const auto& bn : body.nodes)
      for (const auto& o : bn.outputs)
        if (!o.empty() && !map.count(o)) map[o] = fresh(prefix + "_" + o);
    for (const auto& i : body.initializers) g.add_initializer(map.at(i.name), i.tensor);
    std::vector<Node> nodes;
    for (const auto& bn : body.nodes) {
      Node c = bn;
      c.name = unique(prefix + "_" + bn.op_type);
      for (auto& in : c.inputs)
        if (auto f = map.find(in); f != map.end()) in = f->second;
      for (auto& o : c.outputs)
        if (!o.empty()) o = map.at(o);
      for (auto& a : c.attrs) {
        if (a.g) rename_outer_refs(*a.g, map);
        for (auto& sg : a.graphs)
          if (sg) rename_outer_refs(*sg, map);
      }
      nodes.push_back(std::move(c));
    }
    for (const auto& v : body.value_info)
      if (auto f = map.find(v.name); f != map.end() && !g.find_value_info(f->second)) {
        ValueInfo c = v;
        c.name = f->second;
        g.value_info.push_back(std::move(c));
      }
    replaced[*it] = std::move(nodes);
  }
  std::vector<Node> out;
  out.reserve(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    auto r = replaced.find(i);
    if (r == replaced.end()) {
      out.push_back(std::move(g.nodes[i]));
      continue;
    }
    for (auto& n : r->second) out.push_back(std::move(n));
  }
  g.nodes = std::move(out);
  // A body keeps its order (the inlined nodes take the If's place, after everything it read); the main graph is
  // sorted as after every pass.
  if (scopes.size() == 1) sort_topologically(g);
  return inlined + replaced.size();
}

}  // namespace

size_t inline_constant_ifs(Model& m) {
  std::vector<Graph*> scopes{&m.graph};
  return inline_in(scopes, inputs_overridable(m));
}

}  // namespace oq::ir::passes
