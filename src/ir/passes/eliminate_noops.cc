// Nodes that compute their input unchanged, removed as ONNX Runtime's optimizer does in quant_pre_process (its
// NoopElimination, CastElimination and ExpandElimination rules), with the conditions ORT 1.32 shows (probed with
// quant_pre_process; docs/conformance.md):
//  - Add of 0 (either side), Sub of 0 (right side only), Mul by 1 (either side), Div by 1 (right side only), the
//    constant an initializer with one element whose rank is at most the other input's (a scalar, [1], [1,1] on a
//    4-D tensor; [C,1,1] of zeros is not removed, nor a [1,1,1,1,1] on a 4-D tensor); -0.0 counts as 0; a
//    constant of rank 2 or more needs the other input's rank (inferred, infer_shapes.h), a [1] does not;
//  - Cast whose `to` is its input's element type;
//  - Expand whose constant shape broadcasts to the input's own shape (every dim 1 or equal to the input's known
//    size, rank at most the input's: ORT's rule, a symbolic dim only under a 1). The input's shape is the inferred
//    one (infer_shapes.h, as ORT's from its shape inference); a rank that cannot be inferred keeps the Expand.
//  - pairs that undo each other: Transpose pairs (also with layout-agnostic unary ops between) and exact Cast round
//    trips (cancel_pairs.cc).
// Common to all: the node's output is not a graph output; an If / Loop / Scan body reading it reads the input instead
// (ORT's renaming; the node stays when a body already has a value of the input's name; the pairs stay). The data input of an
// Add / Sub / Mul / Div / Expand must be produced by a node (ORT keeps those on a graph input; it removes a Cast of a
// graph input). Readers of the output then read the input. Initializers nothing reads any more are dropped.
#include <cmath>
#include <unordered_set>

#include "ir/passes/infer_shapes.h"
#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

bool numeric(DType t) {
  return t == DType::Float || t == DType::Double || t == DType::Int32 || t == DType::Int64;
}

// Index of the data input of a no-op Add / Sub / Mul / Div, or -1.
int arith_noop_input(const Graph& g, const ShapeInfo& shapes, const Node& n, bool ovr) {
  const bool add = n.op_type == "Add" || n.op_type == "Sub";
  const bool right_only = n.op_type == "Sub" || n.op_type == "Div";
  if (n.inputs.size() != 2) return -1;
  for (int ci = 1; ci >= (right_only ? 1 : 0); --ci) {
    const Tensor* k = constant_value(g, n.input(ci), ovr);
    if (!k || !numeric(k->dtype()) || k->numel() != 1) continue;
    const int di = 1 - ci;
    if (constant_value(g, n.input(di), ovr)) continue;  // both constant: constant folding's business
    // The output would take the constant's rank if it were larger. A rank the model does not give counts as at
    // least 1 (activations are not scalars), so [1] goes, as in ORT, which knows every shape.
    if (k->rank() > 0) {
      auto r = shapes.rank(n.input(di));
      if (r ? *r < k->rank() : k->rank() > 1) continue;
    }
    const double v = k->to_doubles()[0];
    if (v == (add ? 0.0 : 1.0)) return di;
  }
  return -1;
}

// Index of the data input when node `n` computes it unchanged, or -1.
int noop_input(const Graph& g, const ShapeInfo& shapes, const Node& n, bool ovr) {
  if (!n.is_default_domain() || n.outputs.size() != 1 || n.outputs[0].empty() || n.inputs.empty()) return -1;
  const std::string& op = n.op_type;
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") return arith_noop_input(g, shapes, n, ovr);
  if (op == "Cast") {
    const DType t = known_dtype(g, n.input(0));
    return t != DType::Undefined && static_cast<int64_t>(t) == n.attr_int("to", 0) ? 0 : -1;
  }
  if (op == "Expand" && n.inputs.size() == 2) {
    const Tensor* s = constant_value(g, n.input(1), ovr);
    const TensorType* t = shapes.find(n.input(0));
    if (!s || s->dtype() != DType::Int64 || s->rank() != 1 || !t || !t->shape) return -1;
    const auto dims = s->to_int64s();
    const auto& in = *t->shape;
    if (dims.size() > in.size()) return -1;
    for (size_t i = 0; i < dims.size(); ++i) {  // ORT's rule: each dim 1 or the input's (known) size
      const Dim& have = in[in.size() - dims.size() + i];
      if (dims[i] != 1 && !(have.known() && have.value == dims[i])) return -1;
    }
    return 0;
  }
  return -1;
}

}  // namespace

size_t eliminate_noops(Model& m) {
  Graph& g = m.graph;
  auto sub = subgraph_refs(g);
  const bool ovr = inputs_overridable(m);
  // Removing a no-op changes no other tensor's type or shape: one inference serves the whole pass.
  const ShapeInfo shapes = infer_shapes(m);
  size_t removed = 0;
  for (size_t k = 0; k < g.nodes.size();) {
    const Node& n = g.nodes[k];
    const int di = noop_input(g, shapes, n, ovr);
    if (di < 0) {
      ++k;
      continue;
    }
    const std::string in = n.input(di), out = n.outputs[0];
    GraphIndex idx(g);
    const bool needs_producer = n.op_type != "Cast";  // ORT removes a Cast of a graph input, not the others
    if (in.empty() || (needs_producer && !idx.producer.count(in)) || g.is_graph_output(out)) {
      ++k;
      continue;
    }
    if (sub.count(out)) {  // a body reading `out` reads `in` instead, as ORT renames it (when it can)
      if (!rename_body_reads(g, out, in)) {
        ++k;
        continue;
      }
      sub = subgraph_refs(g);
    }
    replace_input_uses(g, out, in);
    std::erase_if(g.value_info, [&](const ValueInfo& v) { return v.name == out; });
    g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(k));
    ++removed;
  }
  removed += cancel_inverse_pairs(g, sub);
  if (removed) drop_unused_initializers(g, sub);
  return removed;
}

}  // namespace oq::ir::passes
