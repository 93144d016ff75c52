// The float32 execution copy of a float16 model, and which values of a model are float16.
#include <unordered_map>
#include <unordered_set>

#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

constexpr int64_t kFloat16 = static_cast<int64_t>(DType::Float16);
constexpr int64_t kFloat = static_cast<int64_t>(DType::Float);

// Ops with a `dtype` attribute naming their output type.
bool has_dtype_attr(const Node& n) {
  static const std::unordered_set<std::string> ops = {"EyeLike", "RandomNormal", "RandomUniform",
                                                      "RandomNormalLike", "RandomUniformLike", "Bernoulli"};
  return n.is_default_domain() && ops.count(n.op_type) > 0;
}

// Cast and BitCast (26) to float16: their output is float16 whatever the copy computes before.
bool is_cast_to_half(const Node& n) {
  return n.is_default_domain() && (n.op_type == "Cast" || n.op_type == "BitCast") && n.attr_int("to", 0) == kFloat16;
}
bool is_bitcast(const Node& n) { return n.is_default_domain() && n.op_type == "BitCast"; }

// DequantizeLinear-23+ names its output type in `output_dtype` (0: the type of x_scale).
bool is_dequantize_to_half(const Node& n) {
  return n.is_default_domain() && n.op_type == "DequantizeLinear" && n.attr_int("output_dtype", 0) == kFloat16;
}

// The window ops and MelWeightMatrix (17) name their output type in `output_datatype` (default float).
bool has_output_datatype(const Node& n) {
  static const std::unordered_set<std::string> ops = {"HannWindow", "HammingWindow", "BlackmanWindow",
                                                      "MelWeightMatrix"};
  return n.is_default_domain() && ops.count(n.op_type) > 0;
}
bool is_output_datatype_half(const Node& n) {
  return has_output_datatype(n) && n.attr_int("output_datatype", kFloat) == kFloat16;
}

// The element type of output `k` of `n` by the operator's type rule, given the types known so far (Undefined:
// not known, or not a type this analysis needs).
DType output_type(const Node& n, size_t k, const std::unordered_map<std::string, DType>& types) {
  auto type_of = [&](const std::string& t) {
    auto it = types.find(t);
    return it == types.end() ? DType::Undefined : it->second;
  };
  auto attr_type = [&](const char* name, DType def) {
    const int64_t v = n.attr_int(name, static_cast<int64_t>(def));
    return v > 0 && v <= INT32_MAX && dtype_is_known(static_cast<int32_t>(v)) ? static_cast<DType>(v)
                                                                              : DType::Undefined;
  };
  if (!n.is_default_domain()) return DType::Undefined;
  const std::string& op = n.op_type;
  if (op == "Constant") {
    if (const Attribute* a = n.attr("value"); a && a->type == AttrType::Tensor) return a->t.dtype();
    if (n.has_attr("value_float") || n.has_attr("value_floats")) return DType::Float;
    return DType::Undefined;
  }
  if (op == "ConstantOfShape") {
    const Tensor* v = n.attr_tensor("value");
    return v ? v->dtype() : DType::Float;
  }
  if (op == "Cast" || op == "BitCast") return attr_type("to", DType::Undefined);
  if (op == "CastLike") return type_of(n.input(1));
  if (op == "DequantizeLinear")
    return n.attr_int("output_dtype", 0) != 0 ? attr_type("output_dtype", DType::Undefined) : type_of(n.input(1));
  if (has_output_datatype(n)) return attr_type("output_datatype", DType::Float);
  if (has_dtype_attr(n)) {
    if (n.has_attr("dtype")) return attr_type("dtype", DType::Float);
    return op == "EyeLike" || op.ends_with("Like") ? type_of(n.input(0)) : DType::Float;
  }
  if (op == "If" || op == "Loop" || op == "Scan") {
    // Loop / Scan state outputs keep their initial value's type; other outputs: the body output's declared type.
    const bool scan8 = op == "Scan" && n.inputs.size() > 0 && n.attr("directions");
    const size_t first_state = op == "Loop" ? 2 : scan8 ? 1 : 0;
    const size_t states = op == "If" ? 0 : n.inputs.size() - std::min(n.inputs.size(), first_state) -
                                               (op == "Scan" ? static_cast<size_t>(n.attr_int("num_scan_inputs", 0)) : 0);
    if (op != "If" && k < states) return type_of(n.input(first_state + k));
    const size_t body_out = op == "Loop" ? k + 1 : k;
    for (const auto& a : n.attrs)
      if (a.g && body_out < a.g->outputs.size()) {
        const ValueInfo& v = a.g->outputs[body_out];
        if (v.dtype != DType::Undefined) return v.dtype;
        if (DType t = type_of(v.name); t != DType::Undefined) return t;  // an outer value passed through
      }
    return DType::Undefined;
  }
  static const std::unordered_set<std::string> not_float = {
      "Shape", "Size", "ArgMax", "ArgMin", "NonZero", "QuantizeLinear", "Equal", "Less", "Greater", "LessOrEqual",
      "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf", "Multinomial", "DynamicQuantizeLinear",
      "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "StringNormalizer",
      "TfIdfVectorizer", "BitShift"};
  if (not_float.count(op)) return DType::Undefined;
  if (op == "OneHot") return type_of(n.input(2));
  if (op == "Where") return type_of(n.input(1));
  if (k > 0 && op != "Split") {  // secondary outputs: indices, masks, statistics
    if (op == "LayerNormalization") return attr_type("stash_type", DType::Float);
    if (op == "BatchNormalization") return type_of(n.input(0));
    return DType::Undefined;
  }
  return type_of(n.input(0));  // type-preserving ops: the first data input carries the type
}

// The float16 values of g, also in a body: names it reads from enclosing graphs are float16 when `outer_half`
// has them.
std::unordered_set<std::string> half_values_in(const Graph& g, const std::unordered_set<std::string>& outer_half) {
  std::unordered_map<std::string, DType> types;
  for (const auto& init : g.initializers) types[init.name] = init.tensor.dtype();
  for (const auto* list : {&g.inputs, &g.outputs, &g.value_info})
    for (const auto& v : *list)
      if (v.dtype != DType::Undefined) types.try_emplace(v.name, v.dtype);
  std::unordered_set<std::string> defined, outer;
  for (const auto& init : g.initializers) defined.insert(init.name);
  for (const auto& v : g.inputs) defined.insert(v.name);
  for (const auto& n : g.nodes) defined.insert(n.outputs.begin(), n.outputs.end());
  for (const auto& n : g.nodes) {
    // Names read from enclosing scopes, also those a nested body reads (an If in a branch reading a main-graph
    // initializer), which topological_order wants to know.
    std::vector<std::string> reads = n.inputs;
    if (has_subgraphs(n))
      for (auto& r : implicit_inputs(n)) reads.push_back(std::move(r));
    for (const auto& i : reads)
      if (!i.empty() && !defined.count(i)) {
        outer.insert(i);
        if (outer_half.count(i)) types.try_emplace(i, DType::Float16);
      }
  }
  for (size_t i : topological_order(g, &outer)) {
    const Node& n = g.nodes[i];
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty() && !types.count(n.outputs[k]))
        if (DType t = output_type(n, k, types); t != DType::Undefined) types[n.outputs[k]] = t;
  }
  std::unordered_set<std::string> r;
  for (const auto& [name, t] : types)
    if (t == DType::Float16) r.insert(name);
  return r;
}

void upcast_graph(Graph& g, NameGen& names, const std::unordered_set<std::string>& outer_half) {
  // BitCast reinterprets bytes: one reading a float16 value reads it as float16 again (a Cast before it).
  std::unordered_set<std::string> half_values = half_values_in(g, outer_half);
  half_values.insert(outer_half.begin(), outer_half.end());
  for (auto& init : g.initializers)
    if (init.tensor.dtype() == DType::Float16) init.tensor = init.tensor.cast(DType::Float);
  g.reindex();
  for (auto* list : {&g.inputs, &g.outputs, &g.value_info})
    for (auto& v : *list)
      if (v.dtype == DType::Float16) v.dtype = DType::Float;
  std::vector<Node> nodes;
  nodes.reserve(g.nodes.size());
  for (auto& n : g.nodes) {
    for (auto& a : n.attrs) {
      if (a.type == AttrType::Tensor && a.t.dtype() == DType::Float16) a.t = a.t.cast(DType::Float);
      if (a.type == AttrType::Graph && a.g) upcast_graph(*a.g, names, half_values);
      if (a.type == AttrType::Graphs)
        for (auto& sg : a.graphs)
          if (sg) upcast_graph(*sg, names, half_values);
    }
    if (has_dtype_attr(n) && n.attr_int("dtype", kFloat) == kFloat16) n.set_attr_int("dtype", kFloat);
    if (is_dequantize_to_half(n)) n.set_attr_int("output_dtype", kFloat);
    if (is_output_datatype_half(n)) n.set_attr_int("output_datatype", kFloat);
    if (is_bitcast(n) && !n.inputs.empty() && half_values.count(n.inputs[0])) {
      Node narrow;
      narrow.name = names.make(n.name.empty() ? n.inputs[0] + "_oq_to_float16" : n.name + "_oq_to_float16");
      narrow.op_type = "Cast";
      narrow.inputs = {n.inputs[0]};
      narrow.outputs = {names.make(n.inputs[0] + "_oq_float16")};
      narrow.set_attr_int("to", kFloat16);
      n.inputs[0] = narrow.outputs[0];
      nodes.push_back(std::move(narrow));
    }
    if (is_cast_to_half(n) && !n.outputs.empty() && !n.outputs[0].empty()) {
      // Keep the rounding the model asks for: Cast to float16 under a private name, then back to float under
      // the model's name.
      const std::string out = n.outputs[0];
      n.outputs[0] = names.make(out + "_oq_float16");
      Node widen;
      widen.name = names.make(n.name.empty() ? out + "_oq_to_float" : n.name + "_oq_to_float");
      widen.op_type = "Cast";
      widen.inputs = {n.outputs[0]};
      widen.outputs = {out};
      widen.set_attr_int("to", kFloat);
      nodes.push_back(std::move(n));
      nodes.push_back(std::move(widen));
      continue;
    }
    nodes.push_back(std::move(n));
  }
  g.nodes = std::move(nodes);
}

bool graph_has_float16(const Graph& g) {
  for (const auto& init : g.initializers)
    if (init.tensor.dtype() == DType::Float16) return true;
  for (const auto* list : {&g.inputs, &g.outputs, &g.value_info})
    for (const auto& v : *list)
      if (v.dtype == DType::Float16) return true;
  for (const auto& n : g.nodes) {
    if (is_cast_to_half(n) || is_dequantize_to_half(n) || is_output_datatype_half(n) ||
        (has_dtype_attr(n) && n.attr_int("dtype", kFloat) == kFloat16))
      return true;
    for (const auto& a : n.attrs) {
      if (a.type == AttrType::Tensor && a.t.dtype() == DType::Float16) return true;
      if (a.type == AttrType::Graph && a.g && graph_has_float16(*a.g)) return true;
      if (a.type == AttrType::Graphs)
        for (const auto& sg : a.graphs)
          if (sg && graph_has_float16(*sg)) return true;
    }
  }
  return false;
}

// The float16 values of g (and of its bodies) that are not constants: initializers and Constant outputs aside;
// names a body reads from outside it were judged in the enclosing graph.
bool graph_computes_in_float16(const Graph& g, const std::unordered_set<std::string>& outer_half) {
  const auto half = half_values_in(g, outer_half);
  std::unordered_set<std::string> local, consts;
  for (const auto& init : g.initializers) consts.insert(init.name);
  for (const auto* list : {&g.inputs, &g.outputs, &g.value_info})
    for (const auto& v : *list) local.insert(v.name);
  for (const auto& n : g.nodes) {
    for (const auto& o : n.outputs) {
      local.insert(o);
      if (n.op_type == "Constant" && n.is_default_domain()) consts.insert(o);
    }
  }
  for (const auto& v : half)
    if (local.count(v) && !consts.count(v)) return true;
  std::unordered_set<std::string> inner = outer_half;
  inner.insert(half.begin(), half.end());
  for (const auto& n : g.nodes)
    for (const auto& a : n.attrs) {
      if (a.type == AttrType::Graph && a.g && graph_computes_in_float16(*a.g, inner)) return true;
      if (a.type == AttrType::Graphs)
        for (const auto& sg : a.graphs)
          if (sg && graph_computes_in_float16(*sg, inner)) return true;
    }
  return false;
}

}  // namespace

bool computes_in_float16(const Model& m) { return graph_computes_in_float16(m.graph, {}); }

std::unordered_set<std::string> float16_values(const Graph& g) { return half_values_in(g, {}); }

bool has_float16(const Model& m) { return graph_has_float16(m.graph); }

size_t upcast_float16(Model& m) {
  if (!has_float16(m)) return 0;
  const size_t half = float16_values(m.graph).size();
  NameGen names(m.graph);
  upcast_graph(m.graph, names, {});
  return std::max<size_t>(half, 1);
}

}  // namespace oq::ir::passes
