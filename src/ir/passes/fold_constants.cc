// Constant folding: Constant nodes, static Shape/Size, and nodes whose inputs are all constants.
#include <unordered_map>
#include <unordered_set>

#include "core/log.h"
#include "exec/kernel.h"
#include "ir/passes/infer_shapes.h"
#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

bool has_subgraph(const Node& n) {
  for (const auto& a : n.attrs)
    if (a.g || !a.graphs.empty()) return true;
  return false;
}

// Ops never evaluated at load time: random, training-dependent, or quantization structure to keep visible.
const std::unordered_set<std::string>& never_fold() {
  static const std::unordered_set<std::string> s = {
      "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
      "Dropout", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Constant", "If", "Loop", "Scan"};
  return s;
}

// A Range whose start, limit and delta are all constants must have scalars there: ONNX's shape inference (and
// ONNX Runtime on load) refuses a constant [1], which the kernel would take (at run time ORT's kernel takes a
// one-element vector: ONNX's AffineGrid function body feeds it sizes sliced from a shape it does not know).
void check_range_scalars(const Graph& g, const Node& n, bool ovr) {
  if (n.inputs.size() != 3) return;
  const Tensor* t[3] = {};
  for (size_t i = 0; i < 3; ++i)
    if (n.inputs[i].empty() || !(t[i] = constant_value(g, n.inputs[i], ovr))) return;
  for (size_t i = 0; i < 3; ++i)
    if (t[i]->rank() != 0)
      fail(ErrorKind::Model,
           "node '{}' (Range): input {} '{}' is a constant of shape {}: start, limit and delta must be scalars "
           "(shape []), as ONNX's shape inference and ONNX Runtime require",
           node_label(n), i == 0 ? "start" : i == 1 ? "limit" : "delta", n.inputs[i], shape_str(t[i]->shape()));
}

// Shape (opset 15 start/end) of a known static shape.
Tensor shape_value(const Node& n, const Shape& s) {
  int64_t r = static_cast<int64_t>(s.size());
  int64_t start = n.attr_int("start", 0), end = n.attr_int("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  std::vector<int64_t> v;
  for (int64_t i = start; i < end; ++i) v.push_back(s[i]);
  return Tensor::from_vector(DType::Int64, {static_cast<int64_t>(v.size())}, v);
}

}  // namespace

size_t remove_dead(Model& m) {
  Graph& g = m.graph;
  std::unordered_set<std::string> needed = subgraph_refs(g);
  for (const auto& o : g.outputs) needed.insert(o.name);
  std::vector<char> live(g.nodes.size(), 0);
  for (size_t k = g.nodes.size(); k-- > 0;) {  // reverse topological (nodes are kept in topological order)
    const Node& n = g.nodes[k];
    bool used = false;
    for (const auto& o : n.outputs) used |= !o.empty() && needed.count(o) > 0;
    if (!used) continue;
    live[k] = 1;
    for (const auto& in : n.inputs)
      if (!in.empty()) needed.insert(in);
  }
  size_t removed = 0;
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (live[k])
      kept.push_back(std::move(g.nodes[k]));
    else
      ++removed;
  }
  g.nodes = std::move(kept);
  std::erase_if(g.initializers, [&](const Initializer& i) {
    return !needed.count(i.name) && !g.is_graph_input(i.name);
  });
  g.reindex();
  prune_value_info(g);
  return removed;
}

namespace {

// One sweep in topological order; Shape / Size read the shapes inferred before it.
FoldStats fold_once(Model& m, const FoldOptions& opts) {
  Graph& g = m.graph;
  FoldStats st;
  sort_topologically(g);
  const ShapeInfo shapes = has_op(g, {"Shape", "Size"}) ? infer_shapes(m) : ShapeInfo{};
  const int opset = static_cast<int>(m.default_opset());
  const bool ovr = inputs_overridable(m);
  std::unordered_set<std::string> outputs;
  for (const auto& o : g.outputs) outputs.insert(o.name);
  auto feeds_output = [&](const Node& n) {
    for (const auto& o : n.outputs)
      if (outputs.count(o)) return true;
    return false;
  };
  auto fits = [&](const Tensor& t) { return t.nbytes() <= opts.max_folded_bytes; };

  std::vector<char> drop(g.nodes.size(), 0);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const Node& n = g.nodes[k];
    if (!n.is_default_domain() || n.outputs.empty() || n.outputs[0].empty()) continue;
    if (n.op_type == "Range") check_range_scalars(g, n, ovr);  // before any skip: refused, folded or not
    // A node writing a graph output folds too, into an initializer of the output's name, as ORT's constant folding
    // does (anchors = Mul(const, const) stays exact float; quantize_static leaves an initializer output alone).
    // An Identity of a constant that is not a graph output may be left to remove_identity (keep_identities).
    if (n.op_type == "Identity" && !feeds_output(n) && opts.keep_identities) continue;
    if (g.is_graph_input(n.outputs[0]) || g.find_initializer(n.outputs[0])) continue;

    if (n.op_type == "Constant") {
      Tensor t = constant_node_value(n);
      if (t.empty() || n.outputs.size() != 1) continue;
      g.add_initializer(n.outputs[0], t);
      drop[k] = 1;
      ++st.constants;
      continue;
    }
    if ((n.op_type == "Shape" || n.op_type == "Size") && n.outputs.size() == 1 && !n.input(0).empty()) {
      if (auto s = shapes.static_shape(n.input(0))) {
        Tensor v = n.op_type == "Shape" ? shape_value(n, *s) : Tensor::scalar_int64(shape_numel(*s));
        g.add_initializer(n.outputs[0], v);
        drop[k] = 1;
        ++st.shapes;
        continue;
      }
    }
    if (never_fold().count(n.op_type) || has_subgraph(n)) continue;
    std::vector<const Tensor*> in;
    bool all_const = !n.inputs.empty();
    for (const auto& name : n.inputs) {
      if (name.empty()) {
        in.push_back(nullptr);
        continue;
      }
      const Tensor* t = constant_value(g, name, ovr);
      if (!t) {
        all_const = false;
        break;
      }
      in.push_back(t);
    }
    if (!all_const) continue;
    exec::KernelFactory f = exec::find_kernel(n.op_type, opset);
    if (!f) continue;
    std::vector<Tensor> out(n.outputs.size());
    try {
      auto kernel = f(exec::KernelInit{n, opset});
      kernel->run(in, out);
    } catch (const Error& e) {
      OQ_DEBUG("fold_constants: node '{}' ({}) left as is: {}", n.name, n.op_type, e.what());
      continue;
    }
    bool ok = true;
    for (size_t i = 0; i < out.size(); ++i)
      ok &= n.outputs[i].empty() || (!out[i].empty() && fits(out[i]));
    if (!ok) continue;
    for (size_t i = 0; i < out.size(); ++i)
      if (!n.outputs[i].empty()) g.add_initializer(n.outputs[i], std::move(out[i]));
    drop[k] = 1;
    ++st.evaluated;
  }
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (size_t k = 0; k < g.nodes.size(); ++k)
    if (!drop[k]) kept.push_back(std::move(g.nodes[k]));
  g.nodes = std::move(kept);
  size_t inits_before = g.initializers.size();
  remove_dead(m);
  st.removed_initializers = inits_before - std::min(inits_before, g.initializers.size());
  return st;
}

}  // namespace

FoldStats fold_constants(Model& m, const FoldOptions& opts) {
  // Repeated until nothing folds: a folded Shape chain gives a Reshape its shape, which can make the shape of a
  // later tensor static, and so on.
  FoldStats st;
  for (;;) {
    const FoldStats s = fold_once(m, opts);
    st.constants += s.constants;
    st.shapes += s.shapes;
    st.evaluated += s.evaluated;
    st.removed_initializers += s.removed_initializers;
    if (s.total() == 0) return st;
  }
}

}  // namespace oq::ir::passes
