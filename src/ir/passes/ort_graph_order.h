// The node order of the model quant_pre_process writes, reproduced on the pre-processed graph.
//
// quant_pre_process saves the model ONNX Runtime optimized, and Graph::ToGraphProto writes the nodes in
// GraphViewer's default topological order: Graph::ReverseDFSFrom(leaf nodes, leave = append, NodeCompare), a
// depth-first walk up the input edges from the nodes no edge leaves (in NodeIndex order, so the last is walked
// first), each node's producers pushed in increasing NodeIndex order (the highest is walked first), a node
// appended when it is left. NodeIndex is the node's place among the file's nodes (Constant nodes become
// initializers at load), then creation order for the nodes rewrites create (Graph::AddNode). A graph ORT's
// optimizer did not change keeps the file's order (ToGraphProto returns the proto as loaded, Constant nodes
// aside). quantize_static then walks that order, and some of its decisions depend on it (a Resize / MaxPool
// quantizes its output only when its input is already marked; DedicatedQDQPair numbers readers in it):
// docs/conformance.md, "Node order".
#pragma once
#include <tuple>
#include <vector>

#include "ir/graph.h"

namespace oq::ir::passes {

// Gives every main-graph node without an ort_index the next one, in vector order (the file's order for a model
// just loaded). Called on a loaded model before anything inlines model-local functions, as ORT numbers the file's
// nodes before its AOT inliner creates the bodies' nodes.
void number_nodes(Graph& g);

// Used by preprocess(): numbered when built, told after each rewrite that creates nodes how ORT would have created
// them, applied at the end.
class OrtGraphOrder {
 public:
  // Numbers the nodes not numbered yet (number_nodes) and remembers the graph's nodes as ORT loads it.
  explicit OrtGraphOrder(Graph& g);
  // After a fusion (MatMulAddFusion, MatmulBNFusion, LayerNormFusion, GeluFusion): ORT creates the fused nodes as
  // its transformer visits the graph, in its topological order; the new nodes are numbered in that order (the
  // order's walk, each new node placed by the numbered node before it in the vector, where the rewrite left it).
  void number_fused(Graph& g);
  // After an inlining (If on a constant condition, HardSwish / Mish / Swish / GroupNormalization, model-local
  // functions): ORT inlines the calls in NodeIndex order, each body in its own order; the new nodes are numbered in
  // vector order (bodies take their call's place).
  void number_inlined(Graph& g) { number_nodes(g); }
  // Writes the nodes in ORT's order: GraphViewer's when the graph differs from the one loaded (the optimizer ran:
  // `optimized`, and changed a node), else the loaded order (a stable topological sort by ort_index).
  void apply(Graph& g, bool optimized) const;

 private:
  // (ort_index, op_type, inputs, outputs) of the nodes as loaded, Constant nodes aside.
  using Signature = std::vector<std::tuple<int64_t, std::string, std::vector<std::string>, std::vector<std::string>>>;
  static Signature signature(const Graph& g);
  Signature loaded_;
  bool created_at_load_ = false;
};

}  // namespace oq::ir::passes
