// Helpers shared by the graph passes (internal to src/ir/passes).
#pragma once
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::ir::passes::detail {

// Every tensor name that nodes inside sub-graphs (If/Loop/Scan bodies, recursively) read. These may be
// outer-scope references, so the passes never remove or rename them.
std::unordered_set<std::string> subgraph_refs(const Graph& g);

// True when `n` is an initializer that cannot be overridden at run time: not also a graph input, or
// `overridable` false (IR version < 4, where every initializer is listed among the inputs).
bool is_constant(const Graph& g, const std::string& n, bool overridable = true);
const Tensor* constant_value(const Graph& g, const std::string& n, bool overridable = true);
// Value of a Constant node, or empty when it uses a form kept as a node (sparse_value).
Tensor constant_node_value(const Node& n);
// Whether initializers listed as graph inputs can be overridden for this model (IR version >= 4).
inline bool inputs_overridable(const Model& m) { return m.ir_version >= 4; }

// Shapes, ranks and channel counts: infer_shapes (infer_shapes.h).
// Element type when it can be found: initializer, value infos, or following type-preserving producers.
DType known_dtype(const Graph& g, const std::string& n);
// Removes the initializers no node of g reads (graph inputs and outputs and the names in `keep`, e.g. those bodies
// read, stay) with their value info; reindexes g.
void drop_unused_initializers(Graph& g, const std::unordered_set<std::string>& keep);

// In a body and its nested bodies: renames the outer-scope names it reads (names `map` renames that the graph does
// not define itself: node inputs, its outputs).
void rename_outer_refs(Graph& g, const std::unordered_map<std::string, std::string>& map);
// Removing a node of g whose output `from` an If / Loop / Scan body reads: its readers read `to` instead, in the
// bodies too, as ONNX Runtime renames them (graph_utils::CanUpdateImplicitInputNameInSubgraphs). False, with nothing
// changed, when a body of such a node already has a value named `to` (ORT then keeps the node).
bool rename_body_reads(Graph& g, const std::string& from, const std::string& to);

// The single consumer node of `t`, when `t` is read by exactly one input of exactly one node and is neither
// a graph output nor read by a sub-graph (`sub`: subgraph_refs(g)).
std::optional<size_t> sole_consumer(const Graph& g, const GraphIndex& idx, const std::unordered_set<std::string>& sub,
                                    const std::string& t);

// Whether g (top level) has a default-domain node of one of these types: passes skip their shape inference when
// nothing they rewrite is there.
bool has_op(const Graph& g, std::initializer_list<std::string_view> ops);

// Replaces every top-level node input equal to `from` by `to`.
void replace_input_uses(Graph& g, const std::string& from, const std::string& to);

// Reorders g.nodes topologically (stable).
void sort_topologically(Graph& g);

// Removes the node pairs that undo each other (cancel_pairs.cc: Transpose pairs, also through a chain of
// layout-agnostic unary ops, and exact Cast round trips such as float32 -> float64 -> float32), as ONNX Runtime's
// quant_pre_process does. `sub`: subgraph_refs(g). Returns the number of nodes removed.
size_t cancel_inverse_pairs(Graph& g, const std::unordered_set<std::string>& sub);

// Drops value_info entries for names that no longer exist in the graph.
void prune_value_info(Graph& g);

// Generates names not yet used anywhere in a model (nodes, tensors, sub-graphs included).
class NameGen {
 public:
  explicit NameGen(const Graph& g);
  std::string make(const std::string& base);
  void reserve(const std::string& n) { used_.insert(n); }
  // True when a sub-graph node reads `n` (set by the pass that owns the generator).
  bool outer_ref(const std::string& n) const { return refs_ && refs_->count(n); }
  void set_refs(const std::unordered_set<std::string>* refs) { refs_ = refs; }

 private:
  void collect(const Graph& g);
  std::unordered_set<std::string> used_;
  const std::unordered_set<std::string>* refs_ = nullptr;
};

}  // namespace oq::ir::passes::detail
