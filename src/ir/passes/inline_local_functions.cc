// Model-local functions (ModelProto.functions) inlined into the graph, as onnxruntime does when it loads a model
// (so quant_pre_process returns them inlined and quantize_static quantizes the pieces). Names as ORT's inliner
// (onnxruntime/core/graph/function_utils.cc) makes them: every call gets a prefix from Graph::GenerateNodeName
// ("_inlfunc_<op>" for the first call of an op type, "_inlfunc_<op>_token_<k>" for the next, k counting over the
// graph), the function's internal tensors and its named nodes become "<prefix>_<name>" (unnamed nodes stay
// unnamed), formal inputs / outputs become the call's actual names; an omitted input (given as "" or left off the
// end) stays "", an omitted output ("" or left off the end) gets the fresh name "<prefix>_<formal>", as ORT's
// Inliner::bind gives it (the body's node that makes it may need it: Conv's Y), attribute references take
// the call's attribute, else the function's default (attribute_proto), else the attribute is dropped. Calls of
// local functions inside an inlined body are inlined in the next round, as ORT's partitioner repeats its inlining;
// calls inside If / Loop / Scan bodies are inlined too.
#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "core/error.h"
#include "ir/passes/ort_order.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {

namespace {

using Key = std::tuple<std::string, std::string, std::string>;  // domain, name, overload

std::string canon_domain(const std::string& d) { return d == "ai.onnx" ? "" : d; }

Key key_of(const Node& n) { return {canon_domain(n.domain), n.op_type, n.overload}; }
Key key_of(const Function& f) { return {canon_domain(f.domain), f.name, f.overload}; }

class Renamer {
 public:
  Renamer(std::string prefix, const std::map<std::string, const Attribute*>& attrs, const Function& f)
      : prefix_(std::move(prefix)), attrs_(attrs), f_(f) {}

  void scope_push() { scopes_.emplace_back(); }
  void scope_pop() { scopes_.pop_back(); }
  void bind(const std::string& formal, const std::string& actual) { scopes_.back()[formal] = actual; }
  // A formal output the call omits: a fresh name, which the body's producer then writes (nothing reads it).
  void bind_omitted_output(const std::string& formal) { scopes_.back()[formal] = prefix_ + "_" + formal; }

  void rename(std::string& name, bool is_new_def) {
    if (name.empty()) return;
    for (size_t i = scopes_.size(); i > 0; --i) {
      auto it = scopes_[i - 1].find(name);
      if (it != scopes_[i - 1].end()) {
        name = it->second;
        return;
      }
    }
    if (is_new_def) {
      std::string fresh = prefix_ + "_" + name;
      scopes_.back()[name] = fresh;
      name = std::move(fresh);
    }
    // else: a name from an enclosing scope (never in a function body, whose nodes see only its inputs)
  }

  void transform(Node& n) {
    if (!n.name.empty()) n.name = prefix_ + "_" + n.name;
    for (auto& x : n.inputs) rename(x, false);
    for (auto& y : n.outputs) rename(y, true);
    std::vector<Attribute> kept;
    kept.reserve(n.attrs.size());
    for (auto& a : n.attrs) {
      if (!a.ref_attr_name.empty()) {
        auto it = attrs_.find(a.ref_attr_name);
        if (it == attrs_.end()) {
          if (std::find(f_.attributes.begin(), f_.attributes.end(), a.ref_attr_name) == f_.attributes.end())
            fail(ErrorKind::Model, "function '{}': node '{}' ({}) refers to attribute '{}', which the function does "
                 "not declare", f_.label(), node_label(n), n.op_type, a.ref_attr_name);
          continue;  // declared, not given by the call and without a default: the attribute is absent
        }
        std::string name = a.name;
        a = *it->second;
        a.name = std::move(name);
        a.ref_attr_name.clear();
      }
      if (a.g) transform(*a.g);
      for (auto& g : a.graphs)
        if (g) transform(*g);
      kept.push_back(std::move(a));
    }
    n.attrs = std::move(kept);
  }

  void transform(Graph& g) {
    scope_push();
    for (auto& x : g.inputs) rename(x.name, true);
    for (auto& i : g.initializers) rename(i.name, true);
    for (auto& n : g.nodes) transform(n);
    for (auto& y : g.outputs) rename(y.name, false);
    for (auto& v : g.value_info) rename(v.name, false);
    g.reindex();
    scope_pop();
  }

 private:
  std::string prefix_;
  const std::map<std::string, const Attribute*>& attrs_;
  const Function& f_;
  std::vector<std::map<std::string, std::string>> scopes_;
};

// The function's body at the model's opsets: a domain only the function imports is added to the model; a
// default-domain opset older than the model's is converted (convert_opset on the body: helper constants it adds
// become Constant nodes of the body); a newer one, or another version of any other domain, is refused.
std::vector<Node> body_at_model_opsets(Model& m, const Function& f) {
  int64_t from = 0, to = 0;
  for (const auto& o : f.opsets) {
    const std::string d = canon_domain(o.domain);
    bool found = false;
    for (const auto& mo : m.opsets) {
      if (canon_domain(mo.domain) != d) continue;
      found = true;
      if (mo.version == o.version) continue;
      if (d.empty() && o.version < mo.version && o.version >= 7 && mo.version <= kMaxConvertOpset) {
        from = o.version;
        to = mo.version;
        continue;
      }
      fail(ErrorKind::Model, "function '{}' imports opset {} of domain '{}', the model opset {}: its body cannot be "
           "converted{} (give the function the model's opset)", f.label(), o.version, d.empty() ? "ai.onnx" : d,
           mo.version, d.empty() ? " to an older opset" : "");
    }
    if (!found) m.opsets.push_back(o);
  }
  if (from == 0) return f.nodes;
  Model body;
  body.ir_version = m.ir_version;
  body.opsets = {{"", from}};
  body.graph.nodes = f.nodes;
  for (const auto& x : f.inputs) body.graph.inputs.push_back({x, DType::Undefined, std::nullopt, "", ""});
  for (const auto& y : f.outputs) body.graph.outputs.push_back({y, DType::Undefined, std::nullopt, "", ""});
  try {
    convert_opset(body, static_cast<int>(to));
  } catch (const Error& e) {
    fail(e.kind(), "function '{}': converting its body from opset {} to the model's {}: {}", f.label(), from, to,
         e.what());
  }
  std::vector<Node> nodes;
  for (auto& i : body.graph.initializers) {
    Node c;
    c.op_type = "Constant";
    c.outputs = {i.name};
    Attribute a;
    a.name = "value";
    a.type = AttrType::Tensor;
    a.t = std::move(i.tensor);
    c.attrs.push_back(std::move(a));
    nodes.push_back(std::move(c));
  }
  for (auto& n : body.graph.nodes) nodes.push_back(std::move(n));
  return nodes;
}


}  // namespace

namespace {

struct Inliner {
  Model& m;
  std::map<Key, size_t> by_key;
  std::set<size_t> inlined;
  std::map<size_t, std::vector<Node>> bodies;  // at the model's opsets, made at a function's first call
  size_t count = 0;

  // The calls of g (rounds until none is left: calls inside inlined bodies), then those of its nodes' bodies
  // (If / Loop / Scan), each graph with its own prefixes as each ORT Graph has its own name generator.
  void graph(Graph& g) {
    detail::OrtNodeNames prefixes(g);
    for (int round = 0;; ++round) {
      bool any = false;
      for (const auto& n : g.nodes) any = any || by_key.count(key_of(n));
      if (!any) break;
      if (round >= 64)
        fail(ErrorKind::Model, "model-local functions call each other more than 64 levels deep (recursion?)");
      std::vector<Node> all;
      all.reserve(g.nodes.size());
      for (auto& call : g.nodes) {
        auto k = by_key.find(key_of(call));
        if (k == by_key.end()) {
          all.push_back(std::move(call));
          continue;
        }
        inline_call(call, k->second, prefixes, all);
        inlined.insert(k->second);
        ++count;
      }
      g.nodes = std::move(all);
    }
    for (auto& n : g.nodes)
      for (auto& a : n.attrs) {
        if (a.g) graph(*a.g);
        for (auto& sub : a.graphs)
          if (sub) graph(*sub);
      }
  }

  void inline_call(const Node& call, size_t fi, detail::OrtNodeNames& prefixes, std::vector<Node>& out) {
    const Function& f = m.functions[fi];
    try {
      if (has_subgraphs(call)) fail(ErrorKind::Model, "a call with graph attributes is not supported");
      if (call.inputs.size() > f.inputs.size() || call.outputs.size() > f.outputs.size())
        fail(ErrorKind::Model, "{} inputs / {} outputs, the function declares {} / {}", call.inputs.size(),
             call.outputs.size(), f.inputs.size(), f.outputs.size());
      auto b = bodies.find(fi);
      if (b == bodies.end()) b = bodies.emplace(fi, body_at_model_opsets(m, f)).first;
      std::map<std::string, const Attribute*> attrs;
      for (const auto& a : call.attrs) {
        if (!a.ref_attr_name.empty())
          fail(ErrorKind::Model, "attribute '{}' refers to '{}' outside a function body", a.name, a.ref_attr_name);
        attrs[a.name] = &a;
      }
      for (const auto& a : f.attribute_defaults) attrs.emplace(a.name, &a);
      Renamer r(prefixes.make("_inlfunc_" + call.op_type), attrs, f);
      r.scope_push();
      for (size_t i = 0; i < f.inputs.size(); ++i) r.bind(f.inputs[i], i < call.inputs.size() ? call.inputs[i] : "");
      for (size_t i = 0; i < f.outputs.size(); ++i) {
        if (i < call.outputs.size() && !call.outputs[i].empty()) r.bind(f.outputs[i], call.outputs[i]);
        else r.bind_omitted_output(f.outputs[i]);
      }
      for (Node body : b->second) {
        r.transform(body);
        out.push_back(std::move(body));
      }
    } catch (const Error& e) {
      fail(e.kind(), "node '{}' ({}): {}", node_label(call), f.label(), e.what());
    }
  }
};

}  // namespace

size_t inline_local_functions(Model& m) {
  if (m.functions.empty()) return 0;
  Inliner in{m, {}, {}, {}, 0};
  for (size_t i = 0; i < m.functions.size(); ++i) {
    if (!in.by_key.emplace(key_of(m.functions[i]), i).second)
      fail(ErrorKind::Model, "function '{}' is defined twice", m.functions[i].label());
  }
  in.graph(m.graph);
  if (in.count) {
    // Two nodes of one body with the same name, or a body node whose "<prefix>_<name>" a node of the graph already
    // has: onnxruntime refuses the inlined graph ("two nodes with same node name"), so does onnxquant.
    try {
      check_unique_node_names(m.graph);
    } catch (const Error& e) {
      fail(e.kind(), "after inlining the model-local functions: {}", e.what());
    }
  }
  // Functions nothing calls any more go (onnxruntime drops them); functions no node ever called stay.
  std::vector<Function> kept;
  for (size_t i = 0; i < m.functions.size(); ++i)
    if (!in.inlined.count(i)) kept.push_back(std::move(m.functions[i]));
  m.functions = std::move(kept);
  return in.count;
}

}  // namespace oq::ir::passes
