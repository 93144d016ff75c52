#include "exec/subgraph.h"

#include <unordered_map>
#include <unordered_set>

namespace oq::exec {

const ir::Graph& body_attr(const ir::Node& n, const char* name) {
  const ir::Attribute* a = n.attr(name);
  if (!a) kfail(n, "attribute '{}' (a graph) is missing", name);
  if (a->type != ir::AttrType::Graph || !a->g) kfail(n, "attribute '{}' must be a graph", name);
  return *a->g;
}

static bool is_tensor_value(const ir::ValueInfo& v) { return v.opaque_type.empty() || v.dtype != DType::Undefined; }

void Body::fail_here(const std::string& msg) const {
  fail(ErrorKind::Model, "node '{}' ({}): body '{}': {}", ir::node_label(parent_), parent_.op_type, attr_, msg);
}

Body::Body(const ir::Graph& body, const std::string& attr, const ir::Node& parent, int opset,
           const std::vector<std::string>& outer)
    : parent_(parent), attr_(attr), g_(body), opset_(opset) {
  std::unordered_map<std::string, int> ids;
  auto id_of = [&](const std::string& n) {
    auto [it, inserted] = ids.emplace(n, static_cast<int>(names_.size()));
    if (inserted) names_.push_back(n);
    return it->second;
  };
  for (const auto* list : {&g_.inputs, &g_.outputs})
    for (const auto& v : *list)
      if (!is_tensor_value(v))
        fail_here(fmt::format("{} '{}' is not a tensor (sequence, optional and map values are not supported by the "
                              "executor)", list == &g_.inputs ? "input" : "output", v.name));
  // Formal inputs first (an initializer of the same name is a default the parent always overrides), then the
  // outer names not shadowed by the body, then the body's initializers.
  std::unordered_set<std::string> formal;
  for (const auto& v : g_.inputs) {
    if (!formal.insert(v.name).second) fail_here(fmt::format("input '{}' is listed twice", v.name));
    input_ids_.push_back(id_of(v.name));
  }
  std::unordered_set<std::string> outer_set(outer.begin(), outer.end());
  try {
    order_ = ir::topological_order(g_, &outer_set);
  } catch (const Error& e) {
    fail_here(e.what());
  }
  std::unordered_set<std::string> defined(formal);
  for (const auto& i : g_.initializers) defined.insert(i.name);
  for (const auto& n : g_.nodes)
    for (const auto& o : n.outputs) defined.insert(o);
  for (const auto& name : outer) outer_ids_.push_back(defined.count(name) ? -1 : id_of(name));
  for (const auto& init : g_.initializers) {
    if (formal.count(init.name)) continue;
    int id = id_of(init.name);
    if (static_cast<size_t>(id) >= constants_.size()) constants_.resize(id + 1);
    constants_[id] = init.tensor;
  }
  std::vector<std::string> unsupported;
  for (size_t i : order_) {
    const ir::Node& n = g_.nodes[i];
    if (!n.is_default_domain() || !find_kernel(n.op_type, opset_)) {
      std::string op = n.is_default_domain() ? n.op_type : n.domain + "." + n.op_type;
      unsupported.push_back(fmt::format("node '{}' ({}, opset {}) is not supported", ir::node_label(n), op, opset_));
    }
  }
  if (!unsupported.empty()) {
    std::string msg = unsupported[0];
    for (size_t i = 1; i < unsupported.size(); ++i) msg += "; " + unsupported[i];
    fail_here(msg);
  }
  for (size_t i : order_) {
    const ir::Node& n = g_.nodes[i];
    std::vector<int> ins, outs;
    for (const auto& s : n.inputs) ins.push_back(s.empty() ? -1 : id_of(s));
    implicit_.push_back(ir::has_subgraphs(n) ? ir::implicit_inputs(n) : std::vector<std::string>{});
    for (const auto& s : implicit_.back()) ins.push_back(id_of(s));
    for (const auto& s : n.outputs) outs.push_back(s.empty() ? -1 : id_of(s));
    step_inputs_.push_back(std::move(ins));
    step_outputs_.push_back(std::move(outs));
    try {
      kernels_.push_back(find_kernel(n.op_type, opset_)(
          KernelInit{n, opset_, implicit_.back().empty() && !ir::has_subgraphs(n) ? nullptr : &implicit_.back()}));
    } catch (const Error& e) {
      std::string_view msg = e.what();
      fail_here(msg.starts_with("node '") ? std::string(msg)
                                          : fmt::format("node '{}' ({}): {}", ir::node_label(n), n.op_type, msg));
    }
  }
  for (const auto& o : g_.outputs) {
    if (!ids.count(o.name))
      fail_here(fmt::format("output '{}' is not produced by any node, input, initializer or outer value", o.name));
    output_ids_.push_back(ids.at(o.name));
  }
  constants_.resize(names_.size());
  // Last use of every value a step produces -> freed after that step (outputs kept).
  std::vector<int> last(names_.size(), -1);
  for (size_t s = 0; s < step_inputs_.size(); ++s)
    for (int id : step_inputs_[s])
      if (id >= 0) last[id] = static_cast<int>(s);
  std::unordered_set<int> keep(output_ids_.begin(), output_ids_.end());
  std::unordered_set<int> produced;
  for (const auto& outs : step_outputs_)
    for (int id : outs)
      if (id >= 0) produced.insert(id);
  step_frees_.resize(step_inputs_.size());
  for (int id : produced)
    if (last[id] >= 0 && !keep.count(id)) step_frees_[last[id]].push_back(id);
}

Body::~Body() = default;

std::vector<Tensor> Body::run(const std::vector<const Tensor*>& inputs, const std::vector<const Tensor*>& outer) const {
  if (inputs.size() != input_ids_.size())
    fail_here(fmt::format("expects {} inputs, the node gives it {}", input_ids_.size(), inputs.size()));
  std::vector<Tensor> slots(names_.size());
  for (size_t id = 0; id < constants_.size(); ++id)
    if (!constants_[id].empty()) slots[id] = constants_[id];
  for (size_t k = 0; k < outer.size() && k < outer_ids_.size(); ++k)
    if (outer_ids_[k] >= 0 && outer[k]) slots[outer_ids_[k]] = *outer[k];
  for (size_t k = 0; k < inputs.size(); ++k)
    if (inputs[k]) slots[input_ids_[k]] = *inputs[k];
  std::vector<const Tensor*> ins;
  std::vector<Tensor> outs;
  for (size_t s = 0; s < kernels_.size(); ++s) {
    const ir::Node& node = g_.nodes[order_[s]];
    ins.clear();
    for (int id : step_inputs_[s]) {
      if (id < 0) {
        ins.push_back(nullptr);
        continue;
      }
      if (slots[id].empty())
        fail_here(fmt::format("node '{}' ({}): input '{}' has no value", ir::node_label(node), node.op_type,
                              names_[id]));
      ins.push_back(&slots[id]);
    }
    outs.assign(step_outputs_[s].size(), Tensor());
    try {
      kernels_[s]->run(ins, outs);
    } catch (const Error& e) {
      std::string_view msg = e.what();
      fail_here(msg.starts_with("node '") ? std::string(msg)
                                          : fmt::format("node '{}' ({}): {}", ir::node_label(node), node.op_type, msg));
    } catch (const std::exception& e) {
      fail_here(fmt::format("node '{}' ({}): {}", ir::node_label(node), node.op_type, exception_text(e)));
    }
    for (size_t o = 0; o < outs.size(); ++o) {
      int id = step_outputs_[s][o];
      if (id < 0) continue;
      if (outs[o].empty())
        fail_here(fmt::format("node '{}' ({}): kernel did not produce output '{}'", ir::node_label(node),
                              node.op_type, names_[id]));
      slots[id] = std::move(outs[o]);
    }
    for (int id : step_frees_[s]) slots[id] = Tensor();
  }
  std::vector<Tensor> result;
  result.reserve(output_ids_.size());
  for (int id : output_ids_) {
    if (slots[id].empty()) fail_here(fmt::format("output '{}' has no value", names_[id]));
    result.push_back(slots[id]);
  }
  return result;
}

}  // namespace oq::exec
