// Static shape inference over the IR: the element type and shape of every tensor of a graph as far as they follow
// without running the model, from graph inputs, initializers and the ops' rules (infer_shapes_*.cc). The value_info
// of a node output gives its element type, and its rank only when inference knows none: declared dims never replace
// inferred ones, as quant_pre_process ignores value_info (see merge_declared); value_info of names no node produces
// (a body's outer values) are taken as declared. A dim is a known size, a symbol (a dim_param carried through the
// ops, e.g. the batch "N") or unknown; the rank may be unknown. Small int64 / int32 tensors of rank 0 or 1 also
// carry their value element by element when it follows (constants, and Shape -> Gather / Slice / Concat /
// Unsqueeze / arithmetic chains, onnx's data propagation), so that a Reshape / Expand / Tile / ConstantOfShape
// reading such a chain gets its output shape. Rule: never a wrong shape; when in doubt, unknown (data-dependent
// outputs: NonZero, Unique, NonMaxSuppression, Compress, a Reshape to an unknown shape; Loop / Scan output
// shapes).
#pragma once
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::ir::passes {

// What is known of one tensor.
struct TensorType {
  DType dtype = DType::Undefined;
  std::optional<std::vector<Dim>> shape;  // nullopt: rank unknown
  // Element-wise value of a small integer tensor of rank 0 / 1: per element a known int of any sign (param
  // empty), a symbol (param set) or unknown (value INT64_MIN, param empty).
  std::optional<std::vector<Dim>> value;

  std::optional<int> rank() const;
  // Every dim known: the shape; else nullopt.
  std::optional<Shape> static_shape() const;
};

class ShapeInfo {
 public:
  const TensorType* find(const std::string& n) const;
  std::optional<int> rank(const std::string& n) const;
  std::optional<Shape> static_shape(const std::string& n) const;
  DType dtype(const std::string& n) const;
  // Dim 1 (the channels of an NCHW tensor) when known.
  std::optional<int64_t> channels(const std::string& n) const;

  std::unordered_map<std::string, TensorType> types;
};

// Infers the graph's tensors in topological order. `opset`: the default-domain opset; `overridable`: whether
// initializers listed as graph inputs may be overridden (then only their declared input type counts, not their
// value). `outer`: what enclosing graphs know, for the names a body reads from them.
ShapeInfo infer_shapes(const Graph& g, int opset, bool overridable = true, const ShapeInfo* outer = nullptr);
// The main graph of a model.
ShapeInfo infer_shapes(const Model& m);

// What a written model declares, made to agree with infer_shapes: the value_info of node outputs (main graph) take
// the inferred shapes, so that a declared batch-1 shape left from a static export does not tell onnxruntime's
// optimizer (which trusts value_info) a symbolic-batch tensor is static; a graph output declared without a shape
// (or type) gets the inferred one, as quant_pre_process writes it (onnx.checker's full check requires the field).
void declare_inferred_shapes(Model& m);

}  // namespace oq::ir::passes
