// A decomposed LayerNormalization and an erf GELU fused into the ONNX ops, as ONNX Runtime's LayerNormFusion and
// GeluFusion do in quant_pre_process (its optimizer at the basic level creates these ONNX-domain ops when the
// model's opset has them: LayerNormalization from 17, Gelu from 20). Conditions as ORT 1.32 applies them (probed
// with quant_pre_process on small models; docs/conformance.md lists them and where onnxquant is stricter):
//
// LayerNormalization (opset >= 17):
//   X -> ReduceMean -> Sub(X, mean) -> Pow(d, 2) -> ReduceMean -> Add(eps) -> Sqrt -> Div(d, sd) -> Mul(gamma)
//     -> Add(beta)
//   (or two Subs of X and the mean, one for the Pow, one for the Div, as older PyTorch exports write). Every
//   intermediate value is read by the pattern only (the Sub's output twice) and is not a graph output; the last
//   Add's output may be read by anything. Both ReduceMeans reduce the last axis only (`axes` [-1], or
//   [rank - 1] when the rank is known; an attribute, or a constant input from opset 18) and keep dims.
//   eps: a constant float with one element (any shape of rank at most X's; ORT takes any rank), not NaN, on
//   either side of the Add; the exponent a constant 2 of one element, float, double or float16 (ORT 1.32 fuses
//   any value of those types: a Pow by 3 becomes a LayerNorm there; onnxquant keeps what is not a square).
//   gamma, beta: the other inputs of the Mul / Add, of rank 1 (constant or not), with the same length.
//   -> LayerNormalization(X, gamma, beta) with axis -1, epsilon = eps, stash_type 1, named
//   "<Mul name>/LayerNormFusion/", writing the last Add's output.
//
// Gelu (opset >= 20):
//   X -> Div(X, sqrt 2) -> Erf -> Add(1) -> Mul(X * 0.5, .) or Mul(X, .) -> Mul(0.5)
//   sqrt 2, 1 and 0.5: constant floats of shape [] or [1] (only [] on an X known to be a scalar; ORT takes [1]
//   there too) within 1e-8 + 1e-5 * |value| (sqrt 2 also ORT's 1.4142099618911743 of some BERT exports); the
//   constants on either side. Intermediate values read once and not graph outputs; the final Mul's output may be
//   read by anything. ORT takes the final Mul's first Mul-made input as the X * 0.5 branch: when that is X itself
//   (X made by a Mul) the pattern is refused, as ORT refuses it.
//   -> Gelu(X) with approximate "none", named "Gelu" (ORT's Graph::GenerateNodeName: "Gelu_token_<n>" when the
//   name is taken).
//
// Constants are initializers that cannot be overridden (not listed as graph inputs). Values read by an If / Loop /
// Scan body are treated as read by more nodes (not fused). Initializers nothing reads any more are dropped.
#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "ir/passes/infer_shapes.h"
#include "ir/passes/ort_order.h"
#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

struct View {
  Graph& g;
  bool ovr;
  const ShapeInfo& shapes;  // inferred before the pass (ORT's shape inference runs before its optimizer)
  GraphIndex idx;
  std::unordered_set<std::string> sub;
  std::unordered_map<std::string, size_t> slots;  // tensor -> number of node inputs reading it
  std::vector<char> dead;

  View(Graph& graph, bool overridable, const ShapeInfo& s)
      : g(graph), ovr(overridable), shapes(s), idx(graph), sub(subgraph_refs(graph)), dead(graph.nodes.size(), 0) {
    for (const auto& n : g.nodes)
      for (const auto& s : n.inputs)
        if (!s.empty()) ++slots[s];
  }
  // ORT's output edges of the value (a body's read counts as more).
  size_t edges(const std::string& t) const {
    if (sub.count(t)) return 1000;
    auto it = slots.find(t);
    return it == slots.end() ? 0 : it->second;
  }
  // Read by exactly `k` node inputs and not a graph output (ORT's optimizer_utils::CheckOutputEdges).
  bool only(const std::string& t, size_t k) const { return !t.empty() && !g.is_graph_output(t) && edges(t) == k; }
  // The live default-domain node of type `op` that makes `t`, or -1.
  long producer(const std::string& t, const char* op) const {
    auto it = idx.producer.find(t);
    if (it == idx.producer.end() || dead[it->second]) return -1;
    const Node& n = g.nodes[it->second];
    return n.op_type == op && n.is_default_domain() ? static_cast<long>(it->second) : -1;
  }
  // The single reading node of `t` when it has type `op` (default domain, one output), or -1.
  long reader(const std::string& t, const char* op) const {
    auto it = idx.consumers.find(t);
    if (it == idx.consumers.end() || it->second.size() != 1 || dead[it->second[0]]) return -1;
    const Node& n = g.nodes[it->second[0]];
    return n.op_type == op && n.is_default_domain() && n.outputs.size() == 1 && !n.outputs[0].empty()
               ? static_cast<long>(it->second[0])
               : -1;
  }
  const Node& node(long i) const { return g.nodes[static_cast<size_t>(i)]; }
  // A constant float with `numel` 1 (nullptr otherwise); `scalar_like`: also rank 0 or [1] only (ORT's IsScalar).
  const Tensor* one_float(const std::string& n, bool scalar_like) const {
    const Tensor* t = constant_value(g, n, ovr);
    if (!t || t->dtype() != DType::Float || t->numel() != 1) return nullptr;
    if (scalar_like && t->rank() > 1) return nullptr;
    return t;
  }
  // ORT's optimizer_utils::IsInitializerWithExpectedValue for a float initializer.
  bool near(const std::string& n, float want) const {
    const Tensor* t = one_float(n, true);
    if (!t) return false;
    const float v = t->data<float>()[0];
    return std::isfinite(v) && std::fabs(v - want) <= 1e-8f + 1e-5f * std::fabs(want);
  }
};

bool binary(const Node& n) { return n.inputs.size() == 2 && n.outputs.size() == 1 && !n.outputs[0].empty(); }

// The other input of a two-input node (the one that is not `t`; "" when both or neither are `t`).
std::string other(const Node& n, const std::string& t) {
  if (n.inputs[0] == t && n.inputs[1] != t) return n.inputs[1];
  if (n.inputs[1] == t && n.inputs[0] != t) return n.inputs[0];
  return "";
}

// Axes of a ReduceMean that keeps dims, normalized to negative values: the attribute, or (opset 18) a constant
// input. nullopt when absent (every axis), not constant, keepdims 0, or positive without a known rank.
std::optional<std::vector<int64_t>> last_axes(const View& v, const Node& r, std::optional<int> rank) {
  if (r.attr_int("keepdims", 1) != 1) return std::nullopt;
  std::vector<int64_t> axes;
  if (r.has_attr("axes")) {
    axes = r.attr_ints("axes");
  } else if (r.inputs.size() >= 2 && !r.inputs[1].empty()) {
    const Tensor* t = constant_value(v.g, r.inputs[1], v.ovr);
    if (!t || (t->dtype() != DType::Int64 && t->dtype() != DType::Int32)) return std::nullopt;
    axes = t->to_int64s();
  }
  if (axes.empty()) return std::nullopt;
  for (int64_t& a : axes)
    if (a >= 0) {
      if (!rank) return std::nullopt;
      a -= *rank;
    }
  std::sort(axes.begin(), axes.end());
  for (size_t i = 1; i < axes.size(); ++i)
    if (axes[i] != axes[i - 1] + 1) return std::nullopt;
  if (axes.back() != -1) return std::nullopt;
  return axes;
}

// Rank-1 length of gamma / beta as ORT compares it (dim_value: 0 when symbolic or unknown); nullopt when the rank
// is not known to be 1 or the type is known not to be float.
std::optional<int64_t> vector_length(const View& v, const std::string& n) {
  if (const Initializer* i = v.g.find_initializer(n)) {
    if (i->tensor.rank() != 1) return std::nullopt;
    return i->tensor.dim(0);
  }
  const TensorType* t = v.shapes.find(n);
  if (!t || !t->shape || t->shape->size() != 1) return std::nullopt;
  if (t->dtype != DType::Undefined && t->dtype != DType::Float) return std::nullopt;
  if (auto s = t->static_shape()) return (*s)[0];
  return 0;
}

// Tries the LayerNormalization pattern from ReduceMean `ri`; true when fused.
bool fuse_ln_at(View& v, size_t ri, OrtNodeNames& names) {
  Graph& g = v.g;
  const Node& r1 = g.nodes[ri];
  if (r1.op_type != "ReduceMean" || !r1.is_default_domain() || r1.inputs.empty() || r1.outputs.size() != 1) return false;
  const std::string x = r1.inputs[0], mean = r1.outputs[0];
  if (x.empty() || mean.empty() || g.is_graph_output(mean) || v.sub.count(mean)) return false;
  // The mean is read by one or two Subs, each Sub(X, mean).
  auto cs = v.idx.consumers.find(mean);
  if (cs == v.idx.consumers.end() || cs->second.empty() || cs->second.size() > 2 || v.edges(mean) != cs->second.size())
    return false;
  std::vector<size_t> subs = cs->second;
  for (size_t s : subs) {
    const Node& n = g.nodes[s];
    if (v.dead[s] || n.op_type != "Sub" || !n.is_default_domain() || !binary(n) || n.inputs[0] != x ||
        n.inputs[1] != mean)
      return false;
  }
  // One Sub: its output read by the Pow and the Div; two: one each.
  for (size_t s : subs)
    if (!v.only(g.nodes[s].outputs[0], subs.size() == 1 ? 2 : 1)) return false;
  auto is_dev = [&](const std::string& t) {
    return std::any_of(subs.begin(), subs.end(), [&](size_t s) { return g.nodes[s].outputs[0] == t; });
  };
  // Div(d, sd) read once; its reader the Mul.
  long div = -1;
  for (size_t s : subs)
    for (size_t c : v.idx.consumers.at(g.nodes[s].outputs[0]))
      if (g.nodes[c].op_type == "Div") div = static_cast<long>(c);
  if (div < 0 || v.dead[div]) return false;
  const Node& dn = v.node(div);
  if (!dn.is_default_domain() || !binary(dn) || !is_dev(dn.inputs[0]) || !v.only(dn.outputs[0], 1)) return false;
  const long sq = v.producer(dn.inputs[1], "Sqrt");
  if (sq < 0 || v.node(sq).inputs.size() != 1 || !v.only(v.node(sq).outputs[0], 1)) return false;
  const long add = v.producer(v.node(sq).inputs[0], "Add");
  if (add < 0 || !binary(v.node(add)) || !v.only(v.node(add).outputs[0], 1)) return false;
  const Node& an = v.node(add);
  long r2 = v.producer(an.inputs[0], "ReduceMean");
  std::string eps_name = an.inputs[1];
  if (r2 < 0) {
    r2 = v.producer(an.inputs[1], "ReduceMean");
    eps_name = an.inputs[0];
  }
  const Tensor* eps = v.one_float(eps_name, false);
  if (r2 < 0 || !eps || std::isnan(eps->data<float>()[0])) return false;
  const Node& r2n = v.node(r2);
  if (r2n.inputs.empty() || r2n.outputs.size() != 1 || !v.only(r2n.outputs[0], 1)) return false;
  const long pw = v.producer(r2n.inputs[0], "Pow");
  if (pw < 0 || !binary(v.node(pw)) || !v.only(v.node(pw).outputs[0], 1) || !is_dev(v.node(pw).inputs[0])) return false;
  // The exponent: a constant 2 of one element, float, double or float16 (Pow's exponent type may differ from X's;
  // ORT 1.32 takes the three float types, not an integer one).
  const Tensor* p = constant_value(v.g, v.node(pw).inputs[1], v.ovr);
  if (!p || p->numel() != 1 ||
      (p->dtype() != DType::Float && p->dtype() != DType::Double && p->dtype() != DType::Float16) ||
      p->to_doubles()[0] != 2.0)
    return false;
  // Two Subs: the Pow and the Div read different ones.
  if (subs.size() == 2 && v.node(pw).inputs[0] == dn.inputs[0]) return false;
  const long mul = v.reader(dn.outputs[0], "Mul");
  if (mul < 0 || !binary(v.node(mul)) || !v.only(v.node(mul).outputs[0], 1)) return false;
  const long last = v.reader(v.node(mul).outputs[0], "Add");
  if (last < 0 || !binary(v.node(last))) return false;
  // Axes: the last one, the same for both.
  const auto rank = v.shapes.rank(x);
  // An eps of higher rank than X broadcasts the original's output up ([1,1,1] on a 2-D X makes [1,M,N]), which
  // the LayerNormalization would not (ORT fuses it anyway); a rank the model does not give counts as 1.
  if (eps->rank() > (rank ? *rank : 1)) return false;
  const auto ax1 = last_axes(v, r1, rank), ax2 = last_axes(v, r2n, rank);
  if (!ax1 || !ax2 || *ax1 != *ax2 || ax1->size() != 1) return false;
  // gamma / beta: ORT takes the last input of rank 1 of the Mul / Add; with a 1-D X that is the normalized value
  // when it comes second (a broken graph): not fused.
  const std::string gamma = other(v.node(mul), dn.outputs[0]), beta = other(v.node(last), v.node(mul).outputs[0]);
  if (gamma.empty() || beta.empty()) return false;
  if (rank && *rank == 1 && (v.node(mul).inputs[1] != gamma || v.node(last).inputs[1] != beta)) return false;
  const auto lg = vector_length(v, gamma), lb = vector_length(v, beta);
  if (!lg || !lb || *lg != *lb) return false;

  Node ln;
  ln.name = names.make(v.node(mul).name + "/LayerNormFusion/");
  ln.op_type = "LayerNormalization";
  ln.inputs = {x, gamma, beta};
  ln.outputs = {v.node(last).outputs[0]};
  ln.set_attr_int("axis", (*ax1)[0]);
  ln.set_attr_float("epsilon", eps->data<float>()[0]);
  ln.set_attr_int("stash_type", 1);  // ORT writes the default
  for (long k : {static_cast<long>(ri), div, sq, add, r2, pw, mul}) v.dead[k] = 1;
  for (size_t s : subs) v.dead[s] = 1;
  g.nodes[last] = std::move(ln);  // where the last Add was: X, gamma and beta are all made before it
  return true;
}

// Tries the Gelu pattern from Div `di`; true when fused.
bool fuse_gelu_at(View& v, size_t di, OrtNodeNames& names) {
  Graph& g = v.g;
  const Node& div = g.nodes[di];
  if (div.op_type != "Div" || !div.is_default_domain() || !binary(div) || !v.only(div.outputs[0], 1)) return false;
  if (!v.near(div.inputs[1], 1.41421356237309504880f) && !v.near(div.inputs[1], 1.4142099618911743f)) return false;
  const std::string x = div.inputs[0];
  if (x.empty()) return false;
  const long erf = v.reader(div.outputs[0], "Erf");
  if (erf < 0 || !v.only(v.node(erf).outputs[0], 1)) return false;
  const std::string e = v.node(erf).outputs[0];
  const long add = v.reader(e, "Add");
  if (add < 0 || !binary(v.node(add)) || !v.only(v.node(add).outputs[0], 1)) return false;
  const Node& an = v.node(add);
  std::vector<std::string> consts{div.inputs[1], an.inputs[an.inputs[0] == e ? 1 : 0]};  // sqrt 2, 1, 0.5
  if (!v.near(consts[1], 1.f)) return false;
  const long mul = v.reader(an.outputs[0], "Mul");
  if (mul < 0 || !binary(v.node(mul))) return false;
  const Node& mn = v.node(mul);
  // ORT's FirstParentByType(mul, "Mul"): the Mul-made input whose node comes first.
  long half = -1;
  for (const auto& in : mn.inputs)
    if (long p = v.producer(in, "Mul"); p >= 0 && (half < 0 || p < half)) half = p;
  long last;
  if (half >= 0) {  // (X * 0.5) * (1 + erf)
    const Node& hn = v.node(half);
    if (!binary(hn) || !v.only(hn.outputs[0], 1)) return false;
    const int root = hn.inputs[0] == x ? 0 : hn.inputs[1] == x ? 1 : -1;
    consts.push_back(hn.inputs[root == 0 ? 1 : 0]);
    if (root < 0 || !v.near(consts.back(), 0.5f)) return false;
    last = mul;
  } else {  // (X * (1 + erf)) * 0.5
    if (!v.only(mn.outputs[0], 1) || (mn.inputs[0] != x && mn.inputs[1] != x)) return false;
    half = v.reader(mn.outputs[0], "Mul");
    if (half < 0 || !binary(v.node(half))) return false;
    const Node& hn = v.node(half);
    consts.push_back(hn.inputs[hn.inputs[0] == mn.outputs[0] ? 1 : 0]);
    if (!v.near(consts.back(), 0.5f)) return false;
    last = half;
  }
  // A [1] constant on a scalar X makes the original's output [1], Gelu's [] (ORT fuses it anyway).
  if (v.shapes.rank(x) == 0)
    for (const auto& c : consts)
      if (constant_value(g, c, v.ovr)->rank() > 0) return false;

  Node gelu;
  gelu.name = names.make("Gelu");
  gelu.op_type = "Gelu";
  gelu.inputs = {x};
  gelu.outputs = {v.node(last).outputs[0]};
  gelu.set_attr_string("approximate", "none");  // ORT writes the default
  for (long k : {static_cast<long>(di), erf, add, mul, half})
    if (k != last) v.dead[k] = 1;
  g.nodes[last] = std::move(gelu);
  return true;
}

}  // namespace

LnGeluStats fuse_layer_norm_gelu(Model& m) {
  LnGeluStats st;
  Graph& g = m.graph;
  const int64_t opset = m.default_opset();
  if (opset < 17) return st;
  OrtNodeNames names(g);
  const bool ovr = inputs_overridable(m);
  // ORT runs GeluFusion before LayerNormFusion; both visit the nodes in order.
  auto pass = [&](bool gelu) {
    const ShapeInfo shapes = infer_shapes(m);
    View v(g, ovr, shapes);
    size_t n = 0;
    for (size_t k = 0; k < g.nodes.size(); ++k)
      if (!v.dead[k]) n += gelu ? fuse_gelu_at(v, k, names) : fuse_ln_at(v, k, names);
    if (n) {
      std::vector<Node> kept;
      for (size_t k = 0; k < g.nodes.size(); ++k)
        if (!v.dead[k]) kept.push_back(std::move(g.nodes[k]));
      g.nodes = std::move(kept);
    }
    return n;
  };
  if (opset >= 20 && has_op(g, {"Erf"})) st.gelus = pass(true);
  if (has_op(g, {"ReduceMean"}) && has_op(g, {"Pow"})) st.layer_norms = pass(false);
  if (st.gelus + st.layer_norms) {
    drop_unused_initializers(g, subgraph_refs(g));
    prune_value_info(g);
  }
  return st;
}

}  // namespace oq::ir::passes
