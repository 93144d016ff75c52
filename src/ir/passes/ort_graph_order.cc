#include "ir/passes/ort_graph_order.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>

namespace oq::ir::passes {
namespace {

// A NodeIndex, or for a node not numbered yet (number_fused) the index of the numbered node before it in the
// vector and its place after that one: an order in which every node has its own key.
using Key = std::pair<int64_t, int64_t>;

// Positions of g's nodes in GraphViewer's default order (graph_viewer.cc, Graph::ReverseDFSFrom in graph.cc) with
// `key` as NodeIndex. Edges run from the producer of each input, implicit inputs of If / Loop / Scan bodies
// included (ORT's BuildConnections adds those too); a tensor read twice gives two edges to one producer, which
// the walk visits once.
std::vector<size_t> graph_viewer_order(const Graph& g, const std::vector<Key>& key) {
  const size_t n = g.nodes.size();
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < n; ++i)
    for (const auto& o : g.nodes[i].outputs)
      if (!o.empty()) producer.emplace(o, i);
  std::vector<std::vector<size_t>> inputs(n);
  std::vector<char> read(n, 0);
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::string> names = g.nodes[i].inputs;
    if (has_subgraphs(g.nodes[i]))
      for (auto& s : implicit_inputs(g.nodes[i])) names.push_back(std::move(s));
    for (const auto& s : names) {
      auto p = s.empty() ? producer.end() : producer.find(s);
      if (p == producer.end()) continue;
      inputs[i].push_back(p->second);
      read[p->second] = 1;
    }
  }
  auto by_key = [&](size_t a, size_t b) { return key[a] < key[b]; };  // NodeCompare: Index() < Index()
  // Work entries (node, leave) as ReverseDFSFrom's stack: the leaves (no output edge) in index order, popped from
  // the back; entering a node pushes its leave entry, then its unvisited producers sorted by index.
  std::vector<size_t> leaves;
  for (size_t i = 0; i < n; ++i)
    if (!read[i]) leaves.push_back(i);
  std::sort(leaves.begin(), leaves.end(), by_key);
  std::vector<std::pair<size_t, bool>> stack;
  for (size_t i : leaves) stack.emplace_back(i, false);
  std::vector<char> visited(n, 0);
  std::vector<size_t> order;
  order.reserve(n);
  while (!stack.empty()) {
    const auto [i, leave] = stack.back();
    stack.pop_back();
    if (leave) {
      order.push_back(i);  // GraphViewer's `leave` callback: nodes_in_topological_order_.push_back
      continue;
    }
    if (visited[i]) continue;
    visited[i] = 1;
    stack.emplace_back(i, true);
    std::sort(inputs[i].begin(), inputs[i].end(), by_key);
    for (size_t p : inputs[i])
      if (!visited[p]) stack.emplace_back(p, false);
  }
  return order;
}

void permute(Graph& g, const std::vector<size_t>& order) {
  if (order.size() != g.nodes.size()) return;  // a cycle (refused before the pre-processing gets here)
  std::vector<Node> nodes;
  nodes.reserve(g.nodes.size());
  for (size_t i : order) nodes.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(nodes);
}

}  // namespace

void number_nodes(Graph& g) {
  int64_t next = 0;
  for (const auto& n : g.nodes) next = std::max(next, n.ort_index + 1);
  for (auto& n : g.nodes)
    if (n.ort_index < 0) n.ort_index = next++;
}

OrtGraphOrder::OrtGraphOrder(Graph& g) {
  bool numbered = false, unnumbered = false;
  for (const auto& n : g.nodes) (n.ort_index >= 0 ? numbered : unnumbered) = true;
  // Nodes numbered at load and nodes created since: model-local functions inlined at load, as ORT's AOT inliner
  // does before its optimizer, which marks the graph changed.
  created_at_load_ = numbered && unnumbered;
  number_nodes(g);
  loaded_ = signature(g);
}

OrtGraphOrder::Signature OrtGraphOrder::signature(const Graph& g) {
  Signature s;
  for (const auto& n : g.nodes)
    if (!(n.is_default_domain() && n.op_type == "Constant"))  // initializers from ORT's load on
      s.emplace_back(n.ort_index, n.op_type, n.inputs, n.outputs);
  std::sort(s.begin(), s.end());
  return s;
}

void OrtGraphOrder::number_fused(Graph& g) {
  std::vector<Key> key(g.nodes.size());
  int64_t prev = -1, after = 0, next = 0;
  bool fresh = false;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const int64_t x = g.nodes[i].ort_index;
    if (x >= 0) {
      key[i] = {prev = x, after = 0};
      next = std::max(next, x + 1);
    } else {
      key[i] = {prev, ++after};
      fresh = true;
    }
  }
  if (!fresh) return;
  for (size_t i : graph_viewer_order(g, key))
    if (g.nodes[i].ort_index < 0) g.nodes[i].ort_index = next++;
}

void OrtGraphOrder::apply(Graph& g, bool optimized) const {
  number_nodes(g);
  if (optimized && (created_at_load_ || signature(g) != loaded_)) {
    std::vector<Key> key(g.nodes.size());
    for (size_t i = 0; i < g.nodes.size(); ++i) key[i] = {g.nodes[i].ort_index, 0};
    permute(g, graph_viewer_order(g, key));
    return;
  }
  // Unchanged for ORT (or its optimizer skipped, as in the float16 flow): the loaded order, kept topological for
  // the nodes onnxquant's own rewrites changed.
  std::stable_sort(g.nodes.begin(), g.nodes.end(),
                   [](const Node& a, const Node& b) { return a.ort_index < b.ort_index; });
  permute(g, topological_order(g));
}

}  // namespace oq::ir::passes
