// Reshape whose shape is a Concat of shape pieces -> a Reshape by a constant shape, as ONNX Runtime's ReshapeFusion
// (quant_pre_process, after constant folding and MatMulAddFusion) does it: PyTorch's x.view(x.size(0), -1) exports
// Shape -> Gather(0) -> Unsqueeze -> Concat(.., [-1]) -> Reshape, which ORT makes Reshape(x, [0, -1]) even when the
// batch is symbolic (dim 0 of the Reshape's own input is what 0 keeps). Conditions, from ORT's source and ORT 1.32
// run on small models (tests/python/test_ort_fusions_more.py):
//  - Reshape (default domain) with allowzero 0 or absent; its shape made by a Concat read only by it (not a graph
//    output, not read by a body);
//  - each Concat input, in order, is one of: a constant int64 / int32 initializer (its values); Shape(x) ->
//    Gather(i) -> Unsqueeze(axes [0]) where x is the Reshape's data input (or another tensor, of any rank, whose
//    inferred dim i is the same size or symbol as the data's dim i), the Shape has no start / end and i is the position this piece takes
//    in the new shape (a 0: "keep that dim"); or a tensor of exactly one element (a -1:
//    "infer"): ORT knows that from its shape inference, onnxquant from its own (infer_shapes) or the chain that
//    makes it (Shape -> Gather by a one-element index, Shape -> Slice of one element, Squeeze / Unsqueeze / Cast of
//    one element, Add / Sub / Mul / Div of one-element tensors);
//  - at most one -1 in the result (constants included).
// The new shape is an int64 initializer named after the Concat's output; the Concat goes, and so do the nodes that
// fed it and nothing else reads any more (ORT's RemoveNodesWithOneOutputBottomUp); unused initializers are dropped.
#include <algorithm>
#include <climits>
#include <functional>

#include "ir/passes/infer_shapes.h"
#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

struct Ctx {
  const Graph& g;
  const GraphIndex& idx;
  bool ovr;
  const ShapeInfo& shapes;

  const Node* producer(const std::string& t) const {
    auto p = idx.producer.find(t);
    return p == idx.producer.end() || t.empty() ? nullptr : &g.nodes[p->second];
  }
  const Node* producer_of(const std::string& t, const char* op) const {
    const Node* n = producer(t);
    return n && n->op_type == op && n->is_default_domain() ? n : nullptr;
  }
  // Values of a constant int64 / int32 tensor of rank 0 or 1.
  std::optional<std::vector<int64_t>> ints(const std::string& t) const {
    const Tensor* c = constant_value(g, t, ovr);
    if (!c || c->rank() > 1 || (c->dtype() != DType::Int64 && c->dtype() != DType::Int32)) return std::nullopt;
    return c->to_int64s();
  }
  bool unsqueeze_axes0(const Node& u) const {
    if (!u.input(1).empty()) return ints(u.input(1)) == std::vector<int64_t>{0};
    return u.has_attr("axes") && u.attr_ints("axes") == std::vector<int64_t>{0};
  }
  // Shape(x) with the whole shape (no start / end).
  const Node* full_shape(const std::string& t) const {
    const Node* s = producer_of(t, "Shape");
    return s && !s->has_attr("start") && !s->has_attr("end") ? s : nullptr;
  }
};

// Shape(x) -> Gather(i) -> Unsqueeze(axes [0]) writing `t`: {x, i}.
std::optional<std::pair<std::string, int64_t>> shape_dim(const Ctx& c, const std::string& t) {
  const Node* u = c.producer_of(t, "Unsqueeze");
  if (!u || !c.unsqueeze_axes0(*u)) return std::nullopt;
  const Node* ga = c.producer_of(u->input(0), "Gather");
  if (!ga) return std::nullopt;
  const Node* sh = c.full_shape(ga->input(0));
  auto i = c.ints(ga->input(1));
  if (!sh || !i || i->size() != 1) return std::nullopt;
  return std::make_pair(sh->input(0), (*i)[0]);
}

bool one_element(const Ctx& c, const std::string& t, int depth = 0) {
  if (auto s = c.shapes.static_shape(t)) {
    int64_t n = 1;
    for (int64_t d : *s) n *= d;
    return n == 1;
  }
  const Node* p = c.producer(t);
  if (!p || !p->is_default_domain() || depth > 16) return false;
  const std::string& op = p->op_type;
  if (op == "Gather") {
    auto i = c.ints(p->input(1));
    return i && i->size() == 1 && c.full_shape(p->input(0));
  }
  if (op == "Slice") {  // one element of a shape vector (ORT's Shape -> Slice -> Squeeze pattern)
    if (!c.full_shape(p->input(0))) return false;
    std::vector<int64_t> st, en;
    if (!p->input(1).empty()) {
      auto s = c.ints(p->input(1)), e = c.ints(p->input(2));
      if (!s || !e || (!p->input(4).empty() && c.ints(p->input(4)) != std::vector<int64_t>{1})) return false;
      st = *s;
      en = *e;
    } else {
      st = p->attr_ints("starts");
      en = p->attr_ints("ends");
    }
    if (st.size() != 1 || en.size() != 1) return false;
    const int64_t s = st[0], e = en[0];
    return (s == -1 && e >= INT_MAX) || (e - s == 1 && (s >= 0 || e < 0));
  }
  if (op == "Unsqueeze" || op == "Squeeze" || op == "Cast" || op == "Identity" || op == "Neg" || op == "Abs")
    return one_element(c, p->input(0), depth + 1);
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div")
    return p->inputs.size() == 2 && one_element(c, p->input(0), depth + 1) && one_element(c, p->input(1), depth + 1);
  return false;
}

// Dim `i` of Shape(x) stands for dim `i` of the Reshape's data input `root`: the same tensor, or (ORT 1.32, on its
// inferred shapes) that one dim of the two is the same known size or the same symbol; the ranks and the other dims
// do not matter (timm's `B, N, C = x.shape; ... .reshape(B, N, C)` on a 4-D tensor). Otherwise the piece is a -1.
bool same_dim(const Ctx& c, const std::string& x, const std::string& root, int64_t i) {
  if (x == root) return true;
  const TensorType *a = c.shapes.find(x), *b = c.shapes.find(root);
  if (!a || !b || !a->shape || !b->shape || i < 0 || i >= static_cast<int64_t>(a->shape->size()) ||
      i >= static_cast<int64_t>(b->shape->size()))
    return false;
  const Dim &u = (*a->shape)[i], &v = (*b->shape)[i];
  return u.known() ? v.known() && u.value == v.value : !u.param.empty() && u.param == v.param;
}

// The constant shape the Concat feeding `reshape` amounts to, or nullopt.
std::optional<std::vector<int64_t>> fused_shape(const Ctx& c, const Node& reshape, const Node& concat) {
  std::vector<int64_t> v;
  for (const auto& in : concat.inputs) {
    if (in.empty()) return std::nullopt;
    if (auto k = c.ints(in)) {
      v.insert(v.end(), k->begin(), k->end());
    } else if (auto d = shape_dim(c, in);
               d && d->second == static_cast<int64_t>(v.size()) && same_dim(c, d->first, reshape.input(0), d->second)) {
      v.push_back(0);
    } else if (one_element(c, in)) {
      v.push_back(-1);
    } else {
      return std::nullopt;
    }
  }
  if (std::count(v.begin(), v.end(), int64_t{-1}) > 1) return std::nullopt;
  return v;
}

}  // namespace

size_t fuse_reshape(Model& m) {
  Graph& g = m.graph;
  if (!has_op(g, {"Reshape"}) || !has_op(g, {"Concat"})) return 0;
  const auto sub = subgraph_refs(g);
  const bool ovr = inputs_overridable(m);
  // ORT decides "one element" from its shape inference; the fusions below only remove nodes, other shapes stay.
  const ShapeInfo shapes = infer_shapes(m);
  size_t fused = 0;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const Node& rs = g.nodes[k];
    if (rs.op_type != "Reshape" || !rs.is_default_domain() || rs.input(1).empty() || rs.attr_int("allowzero", 0) != 0)
      continue;
    GraphIndex idx(g);
    Ctx c{g, idx, ovr, shapes};
    const std::string shape = rs.input(1);
    const Node* concat = c.producer_of(shape, "Concat");
    auto readers = idx.consumers.find(shape);
    if (!concat || concat->outputs.size() != 1 || g.is_graph_output(shape) || sub.count(shape) ||
        readers->second.size() != 1 || std::count(rs.inputs.begin(), rs.inputs.end(), shape) != 1)
      continue;
    auto v = fused_shape(c, rs, *concat);
    if (!v) continue;
    // Nodes that fed the Concat and that nothing else reads, walking up.
    std::unordered_map<std::string, size_t> uses;
    for (const auto& [name, cs] : idx.consumers)
      for (size_t r : cs) uses[name] += std::count(g.nodes[r].inputs.begin(), g.nodes[r].inputs.end(), name);
    std::vector<char> dead(g.nodes.size(), 0);
    std::function<void(size_t)> drop = [&](size_t i) {
      dead[i] = 1;
      for (const auto& in : g.nodes[i].inputs) {
        if (in.empty() || --uses[in] > 0) continue;
        auto p = idx.producer.find(in);
        if (p == idx.producer.end() || dead[p->second]) continue;
        const Node& pn = g.nodes[p->second];
        bool free = true;
        for (const auto& o : pn.outputs) free &= o.empty() || (uses[o] == 0 && !g.is_graph_output(o) && !sub.count(o));
        if (free) drop(p->second);
      }
    };
    drop(idx.producer.at(shape));
    std::vector<Node> kept;
    size_t before = 0;  // nodes removed before the Reshape (all of them: they feed it)
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (!dead[i]) kept.push_back(std::move(g.nodes[i]));
      else before += i < k;
    g.nodes = std::move(kept);
    Tensor t(DType::Int64, {static_cast<int64_t>(v->size())});
    std::copy(v->begin(), v->end(), t.data<int64_t>());
    g.add_initializer(shape, std::move(t));
    ++fused;
    k -= before;
  }
  if (fused) {
    drop_unused_initializers(g, sub);
    prune_value_info(g);
  }
  return fused;
}

}  // namespace oq::ir::passes
