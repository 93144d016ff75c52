// Identity / inference Dropout removal.
#include <unordered_set>

#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

// Identity, or a Dropout that is a no-op at inference (training_mode absent or a constant false) whose mask
// output is not used.
bool removable(const Graph& g, const Node& n, const GraphIndex& idx, bool ovr) {
  if (!n.is_default_domain() || n.inputs.empty() || n.input(0).empty() || n.outputs.empty() ||
      n.outputs[0].empty())
    return false;
  if (n.op_type == "Identity") return n.outputs.size() == 1;
  if (n.op_type != "Dropout") return false;
  if (n.attr_int("is_test", 1) == 0) return false;  // opset < 7 training flag
  if (!n.input(2).empty()) {
    const Tensor* t = constant_value(g, n.input(2), ovr);
    if (!t || t->numel() != 1 || t->to_int64s()[0] != 0) return false;
  }
  for (size_t i = 1; i < n.outputs.size(); ++i) {
    const std::string& o = n.outputs[i];
    if (o.empty()) continue;
    if (g.is_graph_output(o) || idx.consumers.count(o)) return false;
  }
  return true;
}

}  // namespace

size_t remove_identity(Model& m) {
  Graph& g = m.graph;
  auto sub = subgraph_refs(g);
  size_t removed = 0;
  for (size_t k = 0; k < g.nodes.size();) {
    const Node& n = g.nodes[k];
    if (n.op_type != "Identity" && n.op_type != "Dropout") {
      ++k;
      continue;
    }
    GraphIndex idx(g);  // rebuilt per candidate: the graph changes after every removal
    if (!removable(g, n, idx, inputs_overridable(m))) {
      ++k;
      continue;
    }
    const std::string in = n.input(0), out = n.outputs[0];
    const bool to_output = g.is_graph_output(out);
    // A body reading `out` reads `in` instead, as ORT renames it (not when a body already has a value named `in`;
    // and not when `out` is a graph output, whose producer would take its name).
    if (to_output ? (sub.count(out) || sub.count(in)) : (sub.count(out) && !rename_body_reads(g, out, in))) {
      ++k;
      continue;
    }
    if (sub.count(out)) sub = subgraph_refs(g);
    if (to_output) {
      // The producer of `in` takes the graph-output name; impossible if `in` is itself an interface tensor.
      auto p = idx.producer.find(in);
      if (p == idx.producer.end() || g.is_graph_output(in) || g.is_graph_input(in)) {
        ++k;
        continue;
      }
      for (auto& o : g.nodes[p->second].outputs)
        if (o == in) o = out;
      replace_input_uses(g, in, out);
      std::erase_if(g.value_info, [&](const ValueInfo& v) { return v.name == in; });
    } else {
      replace_input_uses(g, out, in);
      std::erase_if(g.value_info, [&](const ValueInfo& v) { return v.name == out; });
    }
    g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(k));
    ++removed;
  }
  if (removed) drop_unused_initializers(g, sub);
  return removed;
}

}  // namespace oq::ir::passes
