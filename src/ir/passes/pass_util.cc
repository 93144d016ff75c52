#include "ir/passes/pass_util.h"

#include <algorithm>
#include <climits>

namespace oq::ir::passes::detail {

static void collect_refs(const Graph& g, std::unordered_set<std::string>& out) {
  for (const auto& n : g.nodes) {
    for (const auto& in : n.inputs)
      if (!in.empty()) out.insert(in);
    for (const auto& a : n.attrs) {
      if (a.g) collect_refs(*a.g, out);
      for (const auto& sg : a.graphs)
        if (sg) collect_refs(*sg, out);
    }
  }
  for (const auto& o : g.outputs) out.insert(o.name);
}

std::unordered_set<std::string> subgraph_refs(const Graph& g) {
  std::unordered_set<std::string> out;
  for (const auto& n : g.nodes)
    for (const auto& a : n.attrs) {
      if (a.g) collect_refs(*a.g, out);
      for (const auto& sg : a.graphs)
        if (sg) collect_refs(*sg, out);
    }
  return out;
}

bool is_constant(const Graph& g, const std::string& n, bool overridable) {
  return !n.empty() && g.find_initializer(n) != nullptr && (!overridable || !g.is_graph_input(n));
}

const Tensor* constant_value(const Graph& g, const std::string& n, bool overridable) {
  if (!is_constant(g, n, overridable)) return nullptr;
  return &g.find_initializer(n)->tensor;
}

Tensor constant_node_value(const Node& n) {
  for (const auto& a : n.attrs) {
    if (a.name == "value" && a.type == AttrType::Tensor) return a.t;
    if (a.name == "value_float" && a.type == AttrType::Float) return Tensor::scalar_float(a.f);
    if (a.name == "value_int" && a.type == AttrType::Int) return Tensor::scalar_int64(a.i);
    if (a.name == "value_floats" && a.type == AttrType::Floats)
      return Tensor::from_vector(DType::Float, {static_cast<int64_t>(a.floats.size())}, a.floats);
    if (a.name == "value_ints" && a.type == AttrType::Ints)
      return Tensor::from_vector(DType::Int64, {static_cast<int64_t>(a.ints.size())}, a.ints);
    if (a.name == "value_string" && a.type == AttrType::String) {
      Tensor t(DType::String, {});
      t.strings() = {a.s};
      return t;
    }
    if (a.name == "value_strings" && a.type == AttrType::Strings) {
      Tensor t(DType::String, {static_cast<int64_t>(a.strings.size())});
      t.strings() = a.strings;
      return t;
    }
  }
  return {};
}

void rename_outer_refs(Graph& g, const std::unordered_map<std::string, std::string>& map) {
  std::unordered_set<std::string> own;
  for (const auto& v : g.inputs) own.insert(v.name);
  for (const auto& i : g.initializers) own.insert(i.name);
  for (const auto& n : g.nodes) own.insert(n.outputs.begin(), n.outputs.end());
  auto ren = [&](std::string& s) {
    if (auto it = map.find(s); it != map.end() && !own.count(s)) s = it->second;
  };
  for (auto& n : g.nodes) {
    for (auto& in : n.inputs) ren(in);
    for (auto& a : n.attrs) {
      if (a.g) rename_outer_refs(*a.g, map);
      for (auto& sg : a.graphs)
        if (sg) rename_outer_refs(*sg, map);
    }
  }
  for (auto& o : g.outputs) ren(o.name);
}

namespace {

std::vector<Graph*> bodies_of(Node& n) {
  std::vector<Graph*> r;
  for (auto& a : n.attrs) {
    if (a.g) r.push_back(a.g.get());
    for (auto& sg : a.graphs)
      if (sg) r.push_back(sg.get());
  }
  return r;
}

bool reads(const Node& n, const std::string& name) {
  const auto imp = implicit_inputs(n);
  return std::find(imp.begin(), imp.end(), name) != imp.end();
}

// ORT's CanUpdateImplicitInputNameInSubgraph: no body of `n` has a value named `to`, nor a body of a nested node
// that also reads `from`.
bool can_rename(Node& n, const std::string& from, const std::string& to) {
  for (Graph* b : bodies_of(n)) {
    for (const auto* vs : {&b->inputs, &b->outputs, &b->value_info})
      for (const auto& v : *vs)
        if (v.name == to) return false;
    if (b->find_initializer(to)) return false;
    for (auto& bn : b->nodes) {
      for (const auto* names : {&bn.inputs, &bn.outputs})
        if (std::find(names->begin(), names->end(), to) != names->end()) return false;
      if (has_subgraphs(bn) && (reads(bn, to) || (reads(bn, from) && !can_rename(bn, from, to)))) return false;
    }
  }
  return true;
}

}  // namespace

bool rename_body_reads(Graph& g, const std::string& from, const std::string& to) {
  std::vector<Node*> readers;
  for (auto& n : g.nodes)
    if (has_subgraphs(n) && reads(n, from)) {
      if (!can_rename(n, from, to)) return false;
      readers.push_back(&n);
    }
  const std::unordered_map<std::string, std::string> map{{from, to}};
  for (Node* n : readers)
    for (Graph* b : bodies_of(*n)) rename_outer_refs(*b, map);
  return true;
}

void drop_unused_initializers(Graph& g, const std::unordered_set<std::string>& keep) {
  std::unordered_set<std::string> used = keep;
  for (const auto& n : g.nodes)
    for (const auto& s : n.inputs) used.insert(s);
  std::unordered_set<std::string> dropped;
  std::erase_if(g.initializers, [&](const Initializer& i) {
    const bool drop = !used.count(i.name) && !g.is_graph_input(i.name) && !g.is_graph_output(i.name);
    if (drop) dropped.insert(i.name);
    return drop;
  });
  std::erase_if(g.value_info, [&](const ValueInfo& v) { return dropped.count(v.name) > 0; });
  g.reindex();
}

DType known_dtype(const Graph& g, const std::string& name) {
  static const std::unordered_set<std::string> kChanges = {
      "Cast", "CastLike", "Shape", "Size", "ArgMax", "ArgMin", "NonZero", "QuantizeLinear", "ConstantOfShape",
      "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf",
      "EyeLike", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
      "Bernoulli", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger",
      "If", "Loop", "Scan", "Range", "OneHot", "StringNormalizer", "TfIdfVectorizer"};
  GraphIndex idx(g);
  std::string n = name;
  for (int hop = 0; hop < 10000 && !n.empty(); ++hop) {
    if (const Initializer* i = g.find_initializer(n)) return i->tensor.dtype();
    if (const ValueInfo* vi = g.find_value_info(n); vi && vi->dtype != DType::Undefined) return vi->dtype;
    auto it = idx.producer.find(n);
    if (it == idx.producer.end()) return DType::Undefined;
    const Node& p = g.nodes[it->second];
    if (!p.is_default_domain()) return DType::Undefined;
    if (p.op_type == "Constant") {
      if (const Attribute* a = p.attr("value"); a && a->type == AttrType::Tensor) return a->t.dtype();
      if (p.has_attr("value_float") || p.has_attr("value_floats")) return DType::Float;
      if (p.has_attr("value_int") || p.has_attr("value_ints")) return DType::Int64;
      return DType::Undefined;
    }
    if (p.op_type == "DequantizeLinear") {
      if (const int64_t to = p.attr_int("output_dtype", 0); to != 0)  // opset 23+
        return to <= INT32_MAX && dtype_is_known(static_cast<int32_t>(to)) ? static_cast<DType>(to) : DType::Undefined;
      n = p.input(1);
      continue;
    }
    if (p.op_type == "Cast" && p.outputs[0] == n) {  // the type it casts to (exporters often write no value_info)
      const int64_t to = p.attr_int("to", 0);
      return to > 0 && to <= INT32_MAX && dtype_is_known(static_cast<int32_t>(to)) ? static_cast<DType>(to)
                                                                                   : DType::Undefined;
    }
    if (p.op_type == "CastLike" && p.outputs[0] == n) {
      n = p.input(1);
      continue;
    }
    if (kChanges.count(p.op_type)) return DType::Undefined;
    if (!p.outputs.empty() && p.outputs[0] != n) {  // secondary outputs: indices, masks, statistics
      if (p.op_type == "TopK" || p.op_type == "MaxPool" || p.op_type == "Unique") return DType::Int64;
      if (p.op_type != "Split" && p.op_type != "BatchNormalization") return DType::Undefined;
    }
    // Type-preserving ops: the first data input carries the type (Where: input 1).
    n = p.op_type == "Where" ? p.input(1) : p.input(0);
  }
  return DType::Undefined;
}

std::optional<size_t> sole_consumer(const Graph& g, const GraphIndex& idx, const std::unordered_set<std::string>& sub,
                                    const std::string& t) {
  if (t.empty() || g.is_graph_output(t) || sub.count(t)) return std::nullopt;
  auto c = idx.consumers.find(t);
  if (c == idx.consumers.end() || c->second.size() != 1) return std::nullopt;
  const Node& n = g.nodes[c->second[0]];
  if (std::count(n.inputs.begin(), n.inputs.end(), t) != 1) return std::nullopt;
  return c->second[0];
}

bool has_op(const Graph& g, std::initializer_list<std::string_view> ops) {
  for (const auto& n : g.nodes)
    if (n.is_default_domain() && std::find(ops.begin(), ops.end(), n.op_type) != ops.end()) return true;
  return false;
}

void replace_input_uses(Graph& g, const std::string& from, const std::string& to) {
  for (auto& node : g.nodes)
    for (auto& in : node.inputs)
      if (in == from) in = to;
}

void sort_topologically(Graph& g) {
  auto order = topological_order(g);
  bool same = true;
  for (size_t i = 0; i < order.size(); ++i) same &= order[i] == i;
  if (same) return;
  std::vector<Node> nodes;
  nodes.reserve(g.nodes.size());
  for (size_t i : order) nodes.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(nodes);
}

void prune_value_info(Graph& g) {
  std::unordered_set<std::string> live;
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs) live.insert(o);
  for (const auto& i : g.initializers) live.insert(i.name);
  for (const auto& v : g.inputs) live.insert(v.name);
  std::erase_if(g.value_info, [&](const ValueInfo& v) { return !live.count(v.name); });
}

NameGen::NameGen(const Graph& g) { collect(g); }

void NameGen::collect(const Graph& g) {
  for (const auto* vs : {&g.inputs, &g.outputs, &g.value_info})
    for (const auto& v : *vs) used_.insert(v.name);
  for (const auto& i : g.initializers) used_.insert(i.name);
  for (const auto& n : g.nodes) {
    used_.insert(n.name);
    for (const auto& s : n.inputs) used_.insert(s);
    for (const auto& s : n.outputs) used_.insert(s);
    for (const auto& a : n.attrs) {
      if (a.g) collect(*a.g);
      for (const auto& sg : a.graphs)
        if (sg) collect(*sg);
    }
  }
}

std::string NameGen::make(const std::string& base) {
  std::string n = base;
  for (int k = 1; used_.count(n); ++k) n = base + "_" + std::to_string(k);
  used_.insert(n);
  return n;
}

}  // namespace oq::ir::passes::detail
