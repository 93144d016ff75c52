// Internals of convert_opset (src/ir/passes/opset_convert*.cc).
#pragma once
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/passes/infer_shapes.h"
#include "ir/passes/pass_util.h"

namespace oq::ir::passes::detail {

// Converts the nodes of one graph (and its sub-graphs) from opset `from` to `to`.
class OpsetConverter {
 public:
  OpsetConverter(int from, int to, bool overridable, NameGen& names)
      : from_(from), to_(to), overridable_(overridable), names_(names) {}
  size_t convert(Graph& g);
  // True when a rewrite stopped reading a computed (non-constant) tensor, whose nodes may now be dead.
  bool left_dead_nodes() const { return left_dead_; }

 private:
  // Converts a body of `parent` (a node of `outer`): what `outer` knows of the values the body reads (their
  // inferred types and shapes, `outer_shapes`) is visible to its rewrites; errors are prefixed with the parent node
  // and the body's attribute name.
  size_t convert_body(Graph& body, const Graph& outer, const ShapeInfo& outer_shapes, const Node& parent,
                      const std::string& attr);
  // True when the schema change introduced at opset `v` lies on the way (from, to].
  bool crosses(int v) const { return from_ < v && v <= to_; }
  [[noreturn]] void cannot(const Node& n, const std::string& why) const;
  // Adds an int64 / float initializer to the graph being converted; returns its name.
  std::string const_i64(const Node& n, const std::string& what, const std::vector<int64_t>& v, bool scalar = false);
  std::string const_f32(const Node& n, const std::string& what, const std::vector<float>& v, bool scalar = false);
  // The element type of a tensor of the graph being converted: from its producers (known_dtype), else from shape
  // inference (a Loop / Scan output has its body output's type); Undefined when neither knows it.
  DType dtype_of(const std::string& name) const;
  // A scalar of the element type of tensor `like` (a CastLike node when that type is unknown, opset >= 15).
  std::string scalar_like(const Node& n, const std::string& what, const std::string& like, double v);
  std::string node_name(const Node& n, const std::string& suffix);
  std::string tensor_name(const Node& n, const std::string& suffix);
  void emit(Node n) { out_.push_back(std::move(n)); }
  bool is_used(const std::string& tensor) const;
  // A constant initializer seen from the graph being converted: its own, or, for a name it does not define, the
  // nearest enclosing graph's (a body reading an outer constant).
  const Tensor* constant(const std::string& name) const;
  // The value of a tensor that constants and the integer values shape inference propagates determine, though no
  // constant holds it (tf2onnx's Resize scales: target / Cast(Slice(Shape(x), 2, 4)) with a symbolic batch): a
  // short chain of shape-arithmetic nodes run on the executor's kernels; nullopt when anything on the way is unknown.
  std::optional<Tensor> static_value(const std::string& name) const;
  using ValueMemo = std::unordered_map<std::string, std::optional<Tensor>>;
  // One level of static_value; `memo` holds what this query already evaluated (a chain read by several nodes runs
  // once, not once per path).
  std::optional<Tensor> static_value(const std::string& name, int depth, ValueMemo& memo) const;
  std::optional<Tensor> evaluate(const std::string& name, int depth, ValueMemo& memo) const;  // not memoised

  // Returns true when the node was changed. May emit helper nodes before/after it.
  bool convert_node(Node& n);
  bool axes_to_input(Node& n, const char* attr, size_t input_index);
  bool convert_split(Node& n);
  bool convert_pad(Node& n);
  bool convert_clip(Node& n);
  bool convert_slice(Node& n);
  bool convert_topk(Node& n);
  bool convert_softmax(Node& n, std::vector<Node>& after);
  bool convert_resize(Node& n);
  bool convert_upsample(Node& n);
  // Resize-11 tf_half_pixel_for_nn with nearest_mode round_prefer_ceil (ceil false) or ceil as constant Gathers.
  void tf_half_pixel_gathers(Node& n, bool ceil);
  // Resize-10 / Upsample nearest rounding as a Resize-11+ node: floor when upsampling, ceil when
  // downsampling (split into two nodes when the scales go both ways). `n` is already in the 11+ form.
  // Upsample scales are >= 1 by definition, so they need not be constant; Resize-10 ones must be known before the
  // model runs (a constant, or static_value).
  void legacy_nearest_rounding(Node& n, bool from_upsample);
  bool convert_batchnorm(Node& n);
  void batchnorm_per_element(Node& n);
  bool convert_dropout(Node& n);
  bool convert_misc(Node& n);

  int from_, to_;
  bool overridable_;
  NameGen& names_;
  Graph* g_ = nullptr;
  const ShapeInfo* shapes_ = nullptr;  // of *g_ before its conversion (opset from_)
  std::vector<const Graph*> outer_;  // enclosing graphs of the body being converted, outermost first
  std::vector<Node> out_;
  GraphIndex* idx_ = nullptr;
  bool left_dead_ = false;
};

}  // namespace oq::ir::passes::detail
