// HardSwish, Mish, Swish and GroupNormalization expanded into their ONNX function bodies, as ONNX Runtime's
// quant_pre_process returns them (its graph inliner expands function ops its CPU provider has no kernel for; the
// quantizer then quantizes the pieces: HardSigmoid, Softplus, Sigmoid, Mul, Add, ...). Tensor names as ORT's inliner makes them, so that the Q/DQ names
// match: `_inlfunc_<Op>_<body name>` for the first node of an op type, `_inlfunc_<Op>_token_<k>_<body name>` for
// the next ones (k counts over the graph, in node order). Node names are left empty, as ORT leaves them.
// Written here: no library expands ONNX functions on this IR (onnx's inliner works on protobuf).
#include <map>
#include <optional>
#include <set>

#include "ir/passes/infer_shapes.h"
#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

Node make(const std::string& op, std::vector<std::string> in, std::string out) {
  Node n;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = {std::move(out)};
  return n;
}

bool inlined(const Node& n, int64_t opset) {
  if (!n.is_default_domain() || n.outputs.size() != 1 || n.input(0).empty()) return false;
  if (n.op_type == "GroupNormalization")  // ORT's CPU provider has no kernel for it (opsets 18 and 21 bodies)
    return opset >= 18 && n.inputs.size() == 3 && !n.input(1).empty() && !n.input(2).empty() &&
           n.has_attr("num_groups");
  return n.inputs.size() == 1 && (n.op_type == "HardSwish" || n.op_type == "Mish" || n.op_type == "Swish");
}

// The node's own rules, checked before it disappears into its body (where a broken one would fail as a broadcast
// error of an unnamed inner Mul during calibration): the same messages as its kernel, naming the node.
void check_group_norm(const Graph& g, const ShapeInfo& shapes, const Node& n, int64_t opset) {
  auto bad = [&](const std::string& msg) {
    fail(ErrorKind::Model, "node '{}' ({}): {}", node_label(n), n.op_type, msg);
  };
  const int64_t groups = n.attr_int("num_groups", 0);
  if (groups <= 0) bad(fmt::format("num_groups must be positive, got {}", groups));
  const Tensor *sc = constant_value(g, n.input(1)), *bi = constant_value(g, n.input(2));
  const std::optional<int64_t> c = shapes.channels(n.input(0));
  if (c && *c % groups != 0) bad(fmt::format("{} channels are not divisible by num_groups={}", *c, groups));
  const bool v21 = opset >= 21;
  std::optional<int64_t> want = v21 ? c : std::optional<int64_t>(groups);
  for (const Tensor* t : {sc, bi})
    if (t && want && (t->rank() != 1 || t->numel() != *want))
      bad(fmt::format("scale and bias must have shape [{}] ({} at opset {}), got {} and {}", *want,
                      v21 ? "one value per channel" : "one value per group", opset, sc ? shape_str(sc->shape()) : "?",
                      bi ? shape_str(bi->shape()) : "?"));
}

// GroupNormalization's function body (18: scale / bias per group; 21: per channel, stage one in stash_type), as
// ORT's inliner and optimizer leave it: Constant nodes become initializers of shape [1] / [3], nodes unnamed.
void expand_group_norm(Graph& g, NameGen& names, const Node& n, const std::string& prefix, int64_t opset,
                       std::vector<Node>& out) {
  auto t = [&](const char* what) { return names.make(prefix + what); };
  auto i64 = [&](const char* what, std::vector<int64_t> v) {
    const std::string name = t(what);
    g.add_initializer(name, Tensor::from_vector(DType::Int64, {static_cast<int64_t>(v.size())}, v));
    return name;
  };
  auto cast = [&](const std::string& x, const std::string& y, int64_t to) {
    Node c = make("Cast", {x}, y);
    c.set_attr_int("to", to);
    return c;
  };
  auto shape = [&](const std::string& x, const std::string& y, int64_t start, std::optional<int64_t> end) {
    Node s = make("Shape", {x}, y);
    s.set_attr_int("start", start);
    if (end) s.set_attr_int("end", *end);
    return s;
  };
  auto reduce_mean = [&](const std::string& x, const std::string& axes, const std::string& y) {
    Node r = make("ReduceMean", {x, axes}, y);
    r.set_attr_int("keepdims", 1);
    return r;
  };
  const bool v21 = opset >= 21;
  const DType xt = known_dtype(g, n.input(0));
  const int64_t T = static_cast<int64_t>(xt == DType::Undefined ? DType::Float : xt);
  const int64_t stash = n.attr_int("stash_type", 1);
  const std::string &x = n.input(0), &scale = n.input(1), &bias = n.input(2), &y = n.outputs[0];
  const std::string eps_f = t("FloatEpsilon");
  g.add_initializer(eps_f, Tensor::from_vector(DType::Float, {1}, std::vector<float>{n.attr_float("epsilon", 1e-5f)}));
  const std::string num_groups = i64("NumGroups", {n.attr_int("num_groups", 1)});
  const std::string shape3d = i64("Shape3D", {0, 0, -1}), axes2 = i64("Axes2", {2});
  const std::string scale_shape = i64("ScaleShape", {1, -1, 1});
  const std::string scale_t = t("ScaleT"), scale_r = t("ScaleReshaped");
  out.push_back(cast(scale, scale_t, T));
  out.push_back(make("Reshape", {scale_t, scale_shape}, scale_r));
  const std::string inst = t("InstanceShape"), nn = t("N"), c = t("C"), gsize = t("GroupSize"), new_shape = t("NewShape");
  out.push_back(shape(x, inst, 2, std::nullopt));
  out.push_back(shape(x, nn, 0, 1));
  out.push_back(shape(x, c, 1, 2));
  out.push_back(make("Div", {c, num_groups}, gsize));
  Node concat = make("Concat", {nn, num_groups, gsize, inst}, new_shape);
  concat.set_attr_int("axis", 0);
  out.push_back(std::move(concat));
  std::string xu = x;
  if (v21) {
    xu = t("XU");
    out.push_back(cast(x, xu, stash));
  }
  const std::string xr = t("XReshaped"), x3 = t("X3D"), mean = t("Mean"), dev = t("Deviation");
  out.push_back(make("Reshape", {xu, new_shape}, xr));
  out.push_back(make("Reshape", {xr, shape3d}, x3));
  out.push_back(reduce_mean(x3, axes2, mean));
  out.push_back(make("Sub", {x3, mean}, dev));
  const std::string sq_mean = t("SquareOfMean"), sq = t("Square"), mean_sq = t("MeanOfSquare"), var = t("Var");
  out.push_back(make("Mul", {mean, mean}, sq_mean));
  out.push_back(make("Mul", {x3, x3}, sq));
  out.push_back(reduce_mean(sq, axes2, mean_sq));
  out.push_back(make("Sub", {mean_sq, sq_mean}, var));
  const std::string eps = t("Epsilon"), vpe = t("VarPlusEpsilon"), sd = t("StdDev");
  out.push_back(cast(eps_f, eps, v21 ? stash : T));
  out.push_back(make("Add", {var, eps}, vpe));
  out.push_back(make("Sqrt", {vpe}, sd));
  const std::string normalized = t(v21 ? "NormalizedU" : "Normalized");
  out.push_back(make("Div", {dev, sd}, normalized));
  std::string to_scale = normalized;
  std::string x_shape;
  if (v21) {
    x_shape = t("XShape");
    const std::string orig = t("NormalizedOriginalShape"), nc = t("NormalizedNC"), nt = t("NormalizedT");
    out.push_back(shape(xu, x_shape, 0, std::nullopt));
    out.push_back(make("Reshape", {normalized, x_shape}, orig));
    out.push_back(make("Reshape", {orig, shape3d}, nc));
    out.push_back(cast(nc, nt, T));
    to_scale = nt;
  }
  const std::string scaled = t("Scaled"), bias_t = t("BiasT"), bias_r = t("BiasReshaped"), biased = t("Biased");
  out.push_back(make("Mul", {scale_r, to_scale}, scaled));
  out.push_back(cast(bias, bias_t, T));
  out.push_back(make("Reshape", {bias_t, scale_shape}, bias_r));
  out.push_back(make("Add", {scaled, bias_r}, biased));
  if (!v21) {
    x_shape = t("XShape");
    out.push_back(shape(x, x_shape, 0, std::nullopt));
  }
  out.push_back(make("Reshape", {biased, x_shape}, y));
}

}  // namespace

size_t inline_functions(Model& m) {
  Graph& g = m.graph;
  const auto refs = subgraph_refs(g);
  NameGen names(g);
  names.set_refs(&refs);
  std::set<std::string> first_seen;
  int token = 0;
  size_t count = 0;
  // Expansions by node index, built while g.nodes is intact (the checks and known_dtype look at producers), then
  // spliced in.
  std::map<size_t, std::vector<Node>> expanded;
  const int64_t opset = m.default_opset();
  const ShapeInfo shapes = infer_shapes(m);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!inlined(n, opset) || refs.count(n.outputs[0])) continue;
    std::vector<Node>& out = expanded[i];
    std::string prefix = "_inlfunc_";
    prefix.append(n.op_type).append("_");
    if (!first_seen.insert(n.op_type).second) prefix.append("token_").append(std::to_string(token++)).append("_");
    const std::string& x = n.input(0);
    const std::string& y = n.outputs[0];
    if (n.op_type == "GroupNormalization") {
      check_group_norm(g, shapes, n, opset);
      expand_group_norm(g, names, n, prefix, opset, out);
    } else if (n.op_type == "HardSwish") {
      const std::string hs = names.make(prefix + "HS_X");
      Node sig = make("HardSigmoid", {x}, hs);
      sig.set_attr_float("alpha", 1.0f / 6.0f);
      sig.set_attr_float("beta", 0.5f);
      out.push_back(std::move(sig));
      out.push_back(make("Mul", {x, hs}, y));
    } else if (n.op_type == "Mish") {
      const std::string sp = names.make(prefix + "Softplus_X"), th = names.make(prefix + "TanHSoftplusX");
      out.push_back(make("Softplus", {x}, sp));
      out.push_back(make("Tanh", {sp}, th));
      out.push_back(make("Mul", {x, th}, y));
    } else {  // Swish: Alpha = Constant(alpha) (an initializer, as ORT makes it), CastLike(Alpha, X) as a Cast
      const std::string alpha = names.make(prefix + "Alpha"), cast = names.make(prefix + "AlphaCast");
      const std::string mul = names.make(prefix + "AlphaMulX"), sig = names.make(prefix + "SigmoidAlphaMulX");
      g.add_initializer(alpha, Tensor::scalar_float(n.attr_float("alpha", 1.0f)));
      const DType xt = known_dtype(g, x);
      Node c = make("Cast", {alpha}, cast);
      c.set_attr_int("to", static_cast<int64_t>(xt == DType::Undefined ? DType::Float : xt));
      out.push_back(std::move(c));
      out.push_back(make("Mul", {cast, x}, mul));
      out.push_back(make("Sigmoid", {mul}, sig));
      out.push_back(make("Mul", {x, sig}, y));
    }
    ++count;
  }
  if (expanded.empty()) return 0;
  std::vector<Node> all;
  all.reserve(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    auto e = expanded.find(i);
    if (e == expanded.end()) {
      all.push_back(std::move(g.nodes[i]));
      continue;
    }
    for (auto& x : e->second) all.push_back(std::move(x));
  }
  g.nodes = std::move(all);
  return count;
}

}  // namespace oq::ir::passes
