// What the passes that reproduce ONNX Runtime's rule-based rewrites (quant_pre_process) need from ORT's Graph:
// its name generator and the order in which its rules visit the nodes. Internal to src/ir/passes.
#pragma once
#include <cstddef>
#include <string>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"

namespace oq::ir::passes::detail {

// ORT's Graph::GenerateNodeArgName: the base when no tensor has that name and it was not generated before, else
// base + "_token_" + n with a counter shared by all names generated (by one pass here; ORT's counter runs over the
// whole optimization, which matters only when names collide in two different kinds of rewrite).
class OrtNames {
 public:
  explicit OrtNames(const Graph& g);
  std::string make(const std::string& base);  // an empty base gives `_token_<n>`
  // Takes a number as a name ORT generates and does not keep would (its transpose optimizer: one per pushed node).
  void skip() { ++counter_; }

 private:
  std::unordered_set<std::string> used_;
  size_t counter_ = 0;
};

// ORT's Graph::GenerateNodeName: the base when no node has that name and it was not generated before, else
// base + "_token_" + n with one counter for the graph (node names are a namespace apart from tensor names).
class OrtNodeNames {
 public:
  explicit OrtNodeNames(const Graph& g);
  std::string make(const std::string& base);

 private:
  std::unordered_set<std::string> used_;
  size_t counter_ = 0;
};

// ORT's node order (Graph's topological sort): nodes without input edges pushed on a stack in index order, then
// popped one at a time, each pushing the readers whose last input edge it was (in index order). Siblings thus
// come in reverse file order; what matters is the order in which fusions generate names. Returns the first output
// name of every node of type `op_type` (by name: indices move as the passes erase nodes).
std::vector<std::string> ort_node_order(const Graph& g, const std::string& op_type);
// The same for every node whose type is one of `op_types`.
std::vector<std::string> ort_node_order(const Graph& g, const std::vector<std::string>& op_types);

}  // namespace oq::ir::passes::detail
