// An If whose condition is a constant initializer replaced by the nodes of the branch it takes, as ONNX Runtime's
// constant folding does in quant_pre_process (Graph::InlineIfSubgraph): quantize_static then quantizes those nodes
// as main-graph nodes. Names as ORT makes them (checked against ORT 1.32): a prefix `_if_then_branch` /
// `_if_else_branch` (`..._token_<k>` when taken), every name the branch defines (node outputs, its initializers)
// becomes `<prefix>_<name>`, the branch outputs become the If's outputs, node names `<prefix>_<OpType>`
// (`..._token_<k>` on a repeat); one token counter for the graph. Several such Ifs are inlined last one first, the
// order ORT's pass visits them in (observed with Ifs on one condition). A branch whose output is not made by one of
// its nodes (an initializer of it, an outer value) is left as it is.
#include <unordered_map>
#include <unordered_set>

#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

void collect_names(const Graph& g, std::unordered_set<std::string>& used) {
  for (const auto* vs : {&g.inputs, &g.outputs, &g.value_info})
    for (const auto& v : *vs) used.insert(v.name);
  for (const auto& i : g.initializers) used.insert(i.name);
  for (const auto& n : g.nodes) {
    used.insert(n.name);
    used.insert(n.inputs.begin(), n.inputs.end());
    used.insert(n.outputs.begin(), n.outputs.end());
    for (const auto& a : n.attrs) {
      if (a.g) collect_names(*a.g, used);
      for (const auto& sg : a.graphs)
        if (sg) collect_names(*sg, used);
    }
  }
}

// Renames the outer references of nested bodies (names `map` renames that a body does not define itself).
void rename_refs(Graph& g, const std::unordered_map<std::string, std::string>& map) {
  std::unordered_set<std::string> own;
  for (const auto& v : g.inputs) own.insert(v.name);
  for (const auto& i : g.initializers) own.insert(i.name);
  for (const auto& n : g.nodes) own.insert(n.outputs.begin(), n.outputs.end());
  auto ren = [&](std::string& s) {
    if (auto it = map.find(s); it != map.end() && !own.count(s)) s = it->second;
  };
  for (auto& n : g.nodes) {
    for (auto& in : n.inputs) ren(in);
    for (auto& a : n.attrs) {
      if (a.g) rename_refs(*a.g, map);
      for (auto& sg : a.graphs)
        if (sg) rename_refs(*sg, map);
    }
  }
  for (auto& o : g.outputs) ren(o.name);
}

}  // namespace

size_t inline_constant_ifs(Model& m) {
  Graph& g = m.graph;
  const bool ovr = inputs_overridable(m);
  std::vector<size_t> cands;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!n.is_default_domain() || n.op_type != "If" || n.inputs.size() != 1) continue;
    const Tensor* c = constant_value(g, n.input(0), ovr);
    if (!c || c->numel() != 1 || c->dtype() != DType::Bool) continue;
    const Attribute* a = n.attr(c->data<uint8_t>()[0] ? "then_branch" : "else_branch");
    if (!a || !a->g || a->g->outputs.size() != n.outputs.size() || !a->g->inputs.empty()) continue;
    std::unordered_set<std::string> made;
    for (const auto& bn : a->g->nodes) made.insert(bn.outputs.begin(), bn.outputs.end());
    bool ok = true;
    std::unordered_set<std::string> outs;
    for (const auto& o : a->g->outputs) ok &= made.count(o.name) && outs.insert(o.name).second;
    if (ok) cands.push_back(i);
  }
  if (cands.empty()) return 0;
  std::unordered_set<std::string> used;
  collect_names(g, used);
  int token = 0;
  auto unique = [&](const std::string& base) {
    std::string n = base;
    while (used.count(n)) n = base + "_token_" + std::to_string(token++);
    used.insert(n);
    return n;
  };
  std::unordered_map<size_t, std::vector<Node>> replaced;
  for (auto it = cands.rbegin(); it != cands.rend(); ++it) {
    const Node& n = g.nodes[*it];
    const bool value = constant_value(g, n.input(0), ovr)->data<uint8_t>()[0] != 0;
    const std::string attr = value ? "then_branch" : "else_branch";
    const Graph& body = *n.attr(attr)->g;
    const std::string prefix = unique("_if_" + attr);
    std::unordered_map<std::string, std::string> map;
    for (size_t k = 0; k < body.outputs.size(); ++k)
      map[body.outputs[k].name] = n.outputs[k].empty() ? prefix + "_" + body.outputs[k].name : n.outputs[k];
    for (const auto& i : body.initializers) map.try_emplace(i.name, prefix + "_" + i.name);
    for (const auto& bn : body.nodes)
      for (const auto& o : bn.outputs)
        if (!o.empty()) map.try_emplace(o, prefix + "_" + o);
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
        if (a.g) rename_refs(*a.g, map);
        for (auto& sg : a.graphs)
          if (sg) rename_refs(*sg, map);
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
  sort_topologically(g);
  return replaced.size();
}

}  // namespace oq::ir::passes
