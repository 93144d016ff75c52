// HardSwish, Mish and Swish expanded into their ONNX function bodies, as ONNX Runtime's quant_pre_process returns
// them (its graph inliner expands function ops its CPU provider has no kernel for; the quantizer then quantizes the
// pieces: HardSigmoid, Softplus, Sigmoid, Mul). Tensor names as ORT's inliner makes them, so that the Q/DQ names
// match: `_inlfunc_<Op>_<body name>` for the first node of an op type, `_inlfunc_<Op>_token_<k>_<body name>` for
// the next ones (k counts over the graph, in node order). Node names are left empty, as ORT leaves them.
// Written here: no library expands ONNX functions on this IR (onnx's inliner works on protobuf).
#include <map>
#include <set>

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

bool inlined(const Node& n) {
  return n.is_default_domain() && n.inputs.size() == 1 && n.outputs.size() == 1 && !n.input(0).empty() &&
         (n.op_type == "HardSwish" || n.op_type == "Mish" || n.op_type == "Swish");
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
  std::vector<Node> out;
  out.reserve(g.nodes.size());
  for (Node& n : g.nodes) {
    if (!inlined(n) || refs.count(n.outputs[0])) {
      out.push_back(std::move(n));
      continue;
    }
    std::string prefix = "_inlfunc_";
    prefix.append(n.op_type).append("_");
    if (!first_seen.insert(n.op_type).second) prefix.append("token_").append(std::to_string(token++)).append("_");
    const std::string& x = n.input(0);
    const std::string& y = n.outputs[0];
    if (n.op_type == "HardSwish") {
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
  g.nodes = std::move(out);
  return count;
}

}  // namespace oq::ir::passes
