#include "ir/passes/ort_order.h"

#include <algorithm>

#include "ir/passes/pass_util.h"

namespace oq::ir::passes::detail {

OrtNodeNames::OrtNodeNames(const Graph& g) {
  for (const auto& n : g.nodes)
    if (!n.name.empty()) used_.insert(n.name);
}

std::string OrtNodeNames::make(const std::string& base) {
  std::string n = base;
  while (used_.count(n)) n = base + "_token_" + std::to_string(counter_++);
  used_.insert(n);
  return n;
}

OrtNames::OrtNames(const Graph& g) {
  used_.insert("");  // never a generated name (ORT: an unnamed node's output is `_token_<n>`)
  for (const auto* vs : {&g.inputs, &g.outputs, &g.value_info})
    for (const auto& v : *vs) used_.insert(v.name);
  for (const auto& i : g.initializers) used_.insert(i.name);
  for (const auto& n : g.nodes) {
    for (const auto& s : n.inputs) used_.insert(s);
    for (const auto& s : n.outputs) used_.insert(s);
  }
  for (const auto& s : subgraph_refs(g)) used_.insert(s);
}

std::string OrtNames::make(const std::string& base) {
  std::string n = base;
  while (used_.count(n)) n = base + "_token_" + std::to_string(counter_++);
  used_.insert(n);
  return n;
}

std::vector<std::string> ort_node_order(const Graph& g, const std::string& op_type) {
  return ort_node_order(g, std::vector<std::string>{op_type});
}

std::vector<std::string> ort_node_order(const Graph& g, const std::vector<std::string>& op_types) {
  GraphIndex idx(g);
  const size_t n = g.nodes.size();
  std::vector<size_t> indeg(n, 0);
  std::vector<std::vector<size_t>> out(n);
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::string> reads = g.nodes[i].inputs;
    if (has_subgraphs(g.nodes[i]))
      for (const auto& r : implicit_inputs(g.nodes[i])) reads.push_back(r);
    for (const auto& r : reads) {
      auto p = idx.producer.find(r);
      if (r.empty() || p == idx.producer.end()) continue;
      ++indeg[i];
      out[p->second].push_back(i);
    }
  }
  std::vector<size_t> stack;
  for (size_t i = 0; i < n; ++i)
    if (indeg[i] == 0) stack.push_back(i);
  std::vector<std::string> found;
  while (!stack.empty()) {
    const size_t i = stack.back();
    stack.pop_back();
    if (std::find(op_types.begin(), op_types.end(), g.nodes[i].op_type) != op_types.end() &&
        !g.nodes[i].outputs.empty()) found.push_back(g.nodes[i].outputs[0]);
    std::sort(out[i].begin(), out[i].end());
    for (size_t r : out[i])
      if (--indeg[r] == 0) stack.push_back(r);
  }
  return found;
}

}  // namespace oq::ir::passes::detail
