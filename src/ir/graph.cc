#include "ir/graph.h"

#include <algorithm>
#include <queue>
#include <unordered_set>

namespace oq::ir {

std::optional<Shape> ValueInfo::static_shape() const {
  if (!shape) return std::nullopt;
  Shape s;
  for (const Dim& d : *shape) s.push_back(d.known() ? d.value : -1);
  return s;
}

const Attribute* Node::attr(const std::string& n) const {
  for (const auto& a : attrs)
    if (a.name == n) return &a;
  return nullptr;
}

static const Attribute* typed(const Node& node, const std::string& n, AttrType want) {
  const Attribute* a = node.attr(n);
  if (a && a->type != want)
    fail(ErrorKind::Model, "node '{}' ({}): attribute '{}' has the wrong type", node.name, node.op_type, n);
  return a;
}

int64_t Node::attr_int(const std::string& n, int64_t def) const {
  const Attribute* a = typed(*this, n, AttrType::Int);
  return a ? a->i : def;
}
float Node::attr_float(const std::string& n, float def) const {
  const Attribute* a = attr(n);
  if (a && a->type == AttrType::Int) return static_cast<float>(a->i);  // lenient: some exporters write ints
  a = typed(*this, n, AttrType::Float);
  return a ? a->f : def;
}
std::string Node::attr_string(const std::string& n, const std::string& def) const {
  const Attribute* a = typed(*this, n, AttrType::String);
  return a ? a->s : def;
}
std::vector<int64_t> Node::attr_ints(const std::string& n, std::vector<int64_t> def) const {
  const Attribute* a = typed(*this, n, AttrType::Ints);
  return a ? a->ints : def;
}
std::vector<float> Node::attr_floats(const std::string& n, std::vector<float> def) const {
  const Attribute* a = typed(*this, n, AttrType::Floats);
  return a ? a->floats : def;
}
const Tensor* Node::attr_tensor(const std::string& n) const {
  const Attribute* a = typed(*this, n, AttrType::Tensor);
  return a ? &a->t : nullptr;
}

static Attribute& upsert(Node& node, const std::string& n, AttrType t) {
  for (auto& a : node.attrs)
    if (a.name == n) {
      a = Attribute{};
      a.name = n;
      a.type = t;
      return a;
    }
  node.attrs.push_back(Attribute{});
  node.attrs.back().name = n;
  node.attrs.back().type = t;
  return node.attrs.back();
}
void Node::set_attr_int(const std::string& n, int64_t v) { upsert(*this, n, AttrType::Int).i = v; }
void Node::set_attr_ints(const std::string& n, std::vector<int64_t> v) {
  upsert(*this, n, AttrType::Ints).ints = std::move(v);
}
void Node::set_attr_float(const std::string& n, float v) { upsert(*this, n, AttrType::Float).f = v; }
void Node::set_attr_string(const std::string& n, std::string v) {
  upsert(*this, n, AttrType::String).s = std::move(v);
}
void Node::remove_attr(const std::string& n) {
  std::erase_if(attrs, [&](const Attribute& a) { return a.name == n; });
}
const std::string& Node::input(size_t i) const {
  static const std::string empty;
  return i < inputs.size() ? inputs[i] : empty;
}

void Graph::reindex() const {
  init_index_.clear();
  for (size_t i = 0; i < initializers.size(); ++i) init_index_[initializers[i].name] = i;
  index_valid_ = true;
}
const Initializer* Graph::find_initializer(const std::string& n) const {
  if (!index_valid_ || init_index_.size() != initializers.size()) reindex();
  auto it = init_index_.find(n);
  if (it != init_index_.end() && it->second < initializers.size() && initializers[it->second].name == n)
    return &initializers[it->second];
  // Not in the index, or the index is stale (the vector was edited directly): a scan settles it without
  // rebuilding the index for the common case, a name that is not an initializer (rebuilding it on every such
  // miss made the QDQ writer quadratic: 38 % of a small job).
  for (const Initializer& i : initializers)
    if (i.name == n) {
      reindex();
      return &initializers[init_index_.at(n)];
    }
  return nullptr;
}
Initializer* Graph::find_initializer(const std::string& n) {
  return const_cast<Initializer*>(static_cast<const Graph*>(this)->find_initializer(n));
}
void Graph::add_initializer(std::string n, Tensor t) {
  if (Initializer* e = find_initializer(n)) {
    e->tensor = std::move(t);
    return;
  }
  initializers.push_back({std::move(n), std::move(t), {}, {}});
  if (index_valid_ && init_index_.size() + 1 == initializers.size())
    init_index_.emplace(initializers.back().name, initializers.size() - 1);  // keeps the index valid
  else
    index_valid_ = false;
}
bool Graph::remove_initializer(const std::string& n) {
  size_t before = initializers.size();
  std::erase_if(initializers, [&](const Initializer& i) { return i.name == n; });
  index_valid_ = false;
  return initializers.size() != before;
}
const ValueInfo* Graph::find_value_info(const std::string& n) const {
  for (const auto* v : {&inputs, &outputs, &value_info})
    for (const auto& vi : *v)
      if (vi.name == n) return &vi;
  return nullptr;
}
bool Graph::is_graph_input(const std::string& n) const {
  return std::any_of(inputs.begin(), inputs.end(), [&](const ValueInfo& v) { return v.name == n; });
}
bool Graph::is_graph_output(const std::string& n) const {
  return std::any_of(outputs.begin(), outputs.end(), [&](const ValueInfo& v) { return v.name == n; });
}
std::string node_label(const Node& n) {
  if (!n.name.empty()) return n.name;
  return "(unnamed) -> " + (n.outputs.empty() ? std::string("?") : n.outputs[0]);
}

std::string Function::label() const {
  std::string s = domain.empty() ? name : domain + "." + name;
  if (!overload.empty()) s += ":" + overload;
  return s;
}

std::string batchnorm_training_reason(const Node& n, int64_t opset) {
  if (n.op_type != "BatchNormalization" || !n.is_default_domain()) return {};
  if (opset >= 14) return n.attr_int("training_mode", 0) != 0 ? "training_mode=1 is not supported (inference only)" : "";
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty())
      return "output " + std::to_string(i + 1) + " '" + n.outputs[i] + "' is declared: below opset 14 that is " +
             "training mode (batch statistics, as onnxruntime computes them), which is not supported (inference " +
             "only; give the extra outputs empty names or drop them)";
  return {};
}

std::vector<const ValueInfo*> Graph::real_inputs() const {
  std::vector<const ValueInfo*> r;
  for (const auto& v : inputs)
    if (!find_initializer(v.name)) r.push_back(&v);
  return r;
}

int64_t Model::default_opset() const { return opset_of(""); }
int64_t Model::opset_of(const std::string& domain) const {
  for (const auto& o : opsets) {
    bool def = domain.empty() || domain == "ai.onnx";
    bool odef = o.domain.empty() || o.domain == "ai.onnx";
    if ((def && odef) || (!def && o.domain == domain)) return o.version;
  }
  return 0;
}
void Model::set_default_opset(int64_t v) {
  for (auto& o : opsets)
    if (o.domain.empty() || o.domain == "ai.onnx") {
      o.version = v;
      return;
    }
  opsets.push_back({"", v});
}

GraphIndex::GraphIndex(const Graph& g) {
  producer.reserve(g.nodes.size() + g.nodes.size() / 2);
  consumers.reserve(2 * g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (const auto& o : g.nodes[i].outputs)
      if (!o.empty()) producer[o] = i;
    for (const auto& in : g.nodes[i].inputs)
      if (!in.empty()) {
        auto& c = consumers[in];
        if (c.empty() || c.back() != i) c.push_back(i);
      }
  }
}

bool has_subgraphs(const Node& n) {
  for (const auto& a : n.attrs)
    if (a.g || !a.graphs.empty()) return true;
  return false;
}

namespace {
// Names `g` reads from outside itself, appended to `out` (first-read order; `seen` dedups).
void free_names(const Graph& g, const std::string& body, std::vector<std::string>& out,
                std::unordered_set<std::string>& seen, std::vector<std::string>* body_of) {
  std::unordered_set<std::string> defined;
  for (const auto& v : g.inputs) defined.insert(v.name);
  for (const auto& i : g.initializers) defined.insert(i.name);
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty()) defined.insert(o);
  auto use = [&](const std::string& name) {
    if (name.empty() || defined.count(name) || !seen.insert(name).second) return;
    out.push_back(name);
    if (body_of) body_of->push_back(body);
  };
  for (const auto& n : g.nodes) {
    for (const auto& in : n.inputs) use(in);
    if (has_subgraphs(n))
      for (const auto& name : implicit_inputs(n)) use(name);
  }
  for (const auto& o : g.outputs) use(o.name);
}
}  // namespace

std::vector<std::string> implicit_inputs(const Node& n, std::vector<std::string>* body_of) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (const auto& a : n.attrs) {
    if (a.g) free_names(*a.g, a.name, out, seen, body_of);
    for (size_t k = 0; k < a.graphs.size(); ++k)
      if (a.graphs[k]) free_names(*a.graphs[k], fmt::format("{}[{}]", a.name, k), out, seen, body_of);
  }
  return out;
}

void check_unique_node_names(const Graph& g) {
  std::unordered_set<std::string> names;
  for (const auto& n : g.nodes)
    if (!n.name.empty() && !names.insert(n.name).second)
      fail(ErrorKind::Model, "two nodes are named '{}' (node names must be unique in a graph; onnxruntime refuses "
           "the model: rename one)", n.name);
  for (const auto& n : g.nodes)
    for (const auto& a : n.attrs) {
      try {
        if (a.g) check_unique_node_names(*a.g);
        for (const auto& sg : a.graphs)
          if (sg) check_unique_node_names(*sg);
      } catch (const Error& e) {
        fail(e.kind(), "node '{}' ({}), body '{}': {}", node_label(n), n.op_type, a.name, e.what());
      }
    }
}

std::vector<size_t> topological_order(const Graph& g, const std::unordered_set<std::string>* outer) {
  std::unordered_set<std::string> available;
  for (const auto& v : g.inputs) available.insert(v.name);
  for (const auto& i : g.initializers) available.insert(i.name);
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& o : g.nodes[i].outputs)
      if (!o.empty()) {
        if (producer.count(o) || available.count(o))
          fail(ErrorKind::Model, "tensor '{}' is produced more than once (node '{}')", o, g.nodes[i].name);
        producer[o] = i;
      }
  std::vector<int> missing(g.nodes.size(), 0);
  std::unordered_map<std::string, std::vector<size_t>> waiting;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    std::unordered_set<std::string> seen;
    for (const auto& in : g.nodes[i].inputs) {
      if (in.empty() || available.count(in) || !seen.insert(in).second) continue;
      if (!producer.count(in)) {
        if (outer && outer->count(in)) continue;
        fail(ErrorKind::Model, "node '{}' ({}): input '{}' is not produced by any node, graph input or initializer",
             g.nodes[i].name, g.nodes[i].op_type, in);
      }
      missing[i]++;
      waiting[in].push_back(i);
    }
    if (!has_subgraphs(g.nodes[i])) continue;
    std::vector<std::string> body_of;
    const auto implicit = implicit_inputs(g.nodes[i], &body_of);
    for (size_t k = 0; k < implicit.size(); ++k) {
      const std::string& in = implicit[k];
      if (available.count(in) || !seen.insert(in).second) continue;
      if (!producer.count(in)) {
        if (outer && outer->count(in)) continue;
        fail(ErrorKind::Model,
             "node '{}' ({}): body '{}' reads '{}', which no node, graph input or initializer of the enclosing graph "
             "produces", node_label(g.nodes[i]), g.nodes[i].op_type, body_of[k], in);
      }
      if (producer.at(in) == i)
        fail(ErrorKind::Model, "node '{}' ({}): body '{}' reads '{}', an output of the node itself",
             node_label(g.nodes[i]), g.nodes[i].op_type, body_of[k], in);
      missing[i]++;
      waiting[in].push_back(i);
    }
  }
  // Min-heap on the file index keeps the order stable.
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (missing[i] == 0) ready.push(i);
  std::vector<size_t> order;
  order.reserve(g.nodes.size());
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (const auto& o : g.nodes[i].outputs) {
      auto it = waiting.find(o);
      if (it == waiting.end()) continue;
      for (size_t c : it->second)
        if (--missing[c] == 0) ready.push(c);
    }
  }
  if (order.size() != g.nodes.size()) {
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (missing[i] > 0)
        fail(ErrorKind::Model, "graph has a cycle through node '{}' ({})", g.nodes[i].name, g.nodes[i].op_type);
  }
  return order;
}

}  // namespace oq::ir
