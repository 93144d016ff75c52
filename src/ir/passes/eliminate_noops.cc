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
//  - a Transpose reading a Transpose, the two perms composing to the identity (ORT's transpose optimizer, its
//    simplest case; a graph input as the first's input is fine): both go, or only the second when something else
//    reads the first's output; not when the second writes a graph output (ORT renames the producer then).
// Common to all: the node's output is not a graph output; an If / Loop / Scan body reading it reads the input instead
// (ORT's renaming; the node stays when a body already has a value of the input's name; Transpose pairs stay). The data input of an
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

// For a Transpose reading the output of another Transpose: whether the two compose to the identity (perm p1 then
// p2: output dim i is input dim p1[p2[i]]). Both perms absent (reversals) cancel; one absent takes the other's rank.
bool cancels(const Node& t1, const Node& t2) {
  const bool h1 = t1.has_attr("perm"), h2 = t2.has_attr("perm");
  if (!h1 && !h2) return true;
  std::vector<int64_t> p1 = h1 ? t1.attr_ints("perm") : std::vector<int64_t>{};
  std::vector<int64_t> p2 = h2 ? t2.attr_ints("perm") : std::vector<int64_t>{};
  const size_t r = h1 ? p1.size() : p2.size();
  auto reversed = [r] {
    std::vector<int64_t> v(r);
    for (size_t i = 0; i < r; ++i) v[i] = static_cast<int64_t>(r - 1 - i);
    return v;
  };
  if (!h1) p1 = reversed();
  if (!h2) p2 = reversed();
  if (p1.size() != r || p2.size() != r) return false;
  for (size_t i = 0; i < r; ++i) {
    if (p2[i] < 0 || p2[i] >= static_cast<int64_t>(r)) return false;
    if (p1[static_cast<size_t>(p2[i])] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

// Transpose pairs that cancel, the simple case of ORT's transpose optimizer: the second Transpose's readers read
// the first's input; the first goes too when nothing else reads it. Not when the second writes a graph output (ORT
// then renames the producer) or a body reads a name involved. Returns the number of Transpose nodes removed.
size_t cancel_transpose_pairs(Graph& g, const std::unordered_set<std::string>& sub) {
  size_t removed = 0;
  for (size_t k = 0; k < g.nodes.size();) {
    const Node& t2 = g.nodes[k];
    if (t2.op_type != "Transpose" || !t2.is_default_domain() || t2.outputs.size() != 1 || t2.inputs.size() != 1) {
      ++k;
      continue;
    }
    GraphIndex idx(g);
    const std::string mid = t2.input(0), out = t2.outputs[0];
    auto pit = idx.producer.find(mid);
    if (pit == idx.producer.end() || g.is_graph_output(out) || sub.count(out) || sub.count(mid)) {
      ++k;
      continue;
    }
    const Node& t1 = g.nodes[pit->second];
    if (t1.op_type != "Transpose" || !t1.is_default_domain() || t1.outputs.size() != 1 || t1.inputs.size() != 1 ||
        !cancels(t1, t2)) {
      ++k;
      continue;
    }
    const std::string in = t1.input(0);
    const size_t i1 = pit->second;
    const bool first_too = idx.consumers[mid].size() == 1 && !g.is_graph_output(mid);
    replace_input_uses(g, out, in);
    std::erase_if(g.value_info, [&](const ValueInfo& v) { return v.name == out || (first_too && v.name == mid); });
    g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(k));
    ++removed;
    if (first_too) {
      g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(i1));
      ++removed;
      if (i1 < k) --k;
    }
  }
  return removed;
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
  removed += cancel_transpose_pairs(g, sub);
  if (removed) drop_unused_initializers(g, sub);
  return removed;
}

}  // namespace oq::ir::passes
