#include "quant/annotate.h"

#include <algorithm>
#include <optional>
#include <unordered_set>

#include "quant/overrides.h"

namespace oq::quant {

const std::set<std::string>& default_op_types() {
  static const std::set<std::string> ops = {
      // ORT QLinearOpsRegistry ∪ QDQRegistry (onnxruntime/quantization/registry.py), restricted to ops the
      // executor runs.
      "ArgMax", "Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Relu", "Clip", "LeakyRelu",
      "Sigmoid", "MaxPool", "GlobalAveragePool", "Split", "Pad", "Reshape", "Squeeze", "Unsqueeze", "Flatten",
      "Resize", "AveragePool", "Concat", "Softmax", "Where", "Gather", "GatherElements", "Transpose", "Slice",
      "InstanceNormalization", "LayerNormalization", "BatchNormalization", "TopK", "CumSum"};
  return ops;
}

std::optional<TensorSpec> QuantPlan::mark(const std::string& t, TensorSpec s, bool replace) {
  std::optional<TensorSpec> shadowed;
  auto it = tensors.find(t);
  if (it != tensors.end() && it->second.role == TensorRole::Bias) {
    // Only a bias so far (ORT's bias_to_quantize): the tensor now enters tensors_to_quantize, which wins.
    shadowed = it->second;
    shadowed_biases.emplace(t, std::move(it->second));
    tensors.erase(it);
    std::erase(marked_order, t);
    it = tensors.end();
  }
  if (it != tensors.end()) {
    // ORT: a per-channel weight or a parameter provider overwrites the entry (in place: a Python dict keeps the
    // key's position); any other request keeps the first.
    if (replace || !s.share_from.empty()) {
      s.order = it->second.order;
      it->second = std::move(s);
    }
    return shadowed;
  }
  s.order = marked_order.size();
  marked_order.push_back(t);
  tensors.emplace(t, std::move(s));
  return shadowed;
}

void QuantPlan::mark_bias(const std::string& t, TensorSpec s) {
  s.role = TensorRole::Bias;
  bias_order.push_back(t);
  bias_names.insert(t);
  if (tensors.count(t)) {  // already an ordinary constant (tensors_to_quantize): the bias entry stays aside
    shadowed_biases.emplace(t, std::move(s));
    return;
  }
  s.order = marked_order.size();
  marked_order.push_back(t);
  tensors.emplace(t, std::move(s));
}

bool should_quantize_node(const ir::Node& n, const QuantOptions& o) {
  if (!n.is_default_domain()) return false;
  if (!o.nodes_to_quantize.empty() && !o.nodes_to_quantize.count(n.name)) return false;
  const auto& types = o.op_types_to_quantize.empty() ? default_op_types() : o.op_types_to_quantize;
  if (!types.count(n.op_type)) return false;
  if (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear") return false;
  return !o.nodes_to_exclude.count(n.name);
}

// The float types ORT quantizes (float32 and float16).
static bool quantizable_type(DType t) { return t == DType::Float || t == DType::Float16; }

static DType tensor_type(const std::string& t, const ir::Graph& g, const TypeMap& types) {
  if (t.empty()) return DType::Undefined;
  if (const auto* init = g.find_initializer(t)) return init->tensor.dtype();
  auto it = types.find(t);
  return it == types.end() ? DType::Undefined : it->second;
}

static bool is_float_tensor(const std::string& t, const ir::Graph& g, const TypeMap& types) {
  return quantizable_type(tensor_type(t, g, types));
}

std::vector<std::string> tensors_to_calibrate(const ir::Graph& g, const QuantOptions& o, const TypeMap& types) {
  std::vector<std::string> r;
  std::set<std::string> seen;
  for (const auto& n : g.nodes) {
    if (!should_quantize_node(n, o)) continue;
    for (const auto* list : {&n.inputs, &n.outputs})
      for (const auto& t : *list)
        if (!t.empty() && !g.find_initializer(t) && is_float_tensor(t, g, types) && seen.insert(t).second)
          r.push_back(t);
  }
  return r;
}

bool input_takes_activation_range(const ir::Graph& g, const ir::GraphIndex& idx, const ir::Node& n,
                                  const QuantOptions& o) {
  if ((n.op_type != "Relu" && n.op_type != "Clip") || n.outputs.empty() || !should_quantize_node(n, o)) return false;
  const std::string& in = n.input(0);
  auto c = idx.consumers.find(in);
  return c != idx.consumers.end() && c->second.size() == 1 && !g.is_graph_output(in);
}

void adjust_ranges(const ir::Graph& g, const QuantOptions& o, RangeMap& ranges) {
  ir::GraphIndex idx(g);
  for (const auto& n : g.nodes) {
    if (!should_quantize_node(n, o)) continue;
    if (n.op_type == "Relu" || n.op_type == "Clip") {
      if (!input_takes_activation_range(g, idx, n, o)) continue;
      const std::string& in = n.input(0);
      if (!ranges.count(in) || !ranges.count(n.outputs[0])) continue;
      ranges[in] = ranges[n.outputs[0]];
    } else if (n.op_type == "Softmax") {
      ranges[n.outputs[0]] = Range{0.0, 1.0};
    }
  }
}

int default_weight_axis(const ir::Node& n) {
  if (n.op_type == "Conv") return 0;
  if (n.op_type == "ConvTranspose") return 1;
  if (n.op_type == "Gemm") return n.attr_int("transB", 0) ? 0 : 1;
  if (n.op_type == "MatMul") return 1;
  return 1;  // normalization scales
}

int default_weight_axis(const ir::Node& n, const QuantOptions& o) {
  if (n.op_type == "MatMul" || n.op_type == "InstanceNormalization" || n.op_type == "LayerNormalization" ||
      n.op_type == "BatchNormalization")
    if (auto it = o.per_channel_axis.find(n.op_type); it != o.per_channel_axis.end()) return it->second;
  return default_weight_axis(n);
}

namespace {

struct Annotator {
  ir::Graph& g;
  int opset;
  const QuantOptions& o;
  const TypeMap& types;
  const RangeMap& ranges;
  QuantPlan plan;

  std::optional<std::unordered_set<std::string>> body_refs;  // names If / Loop / Scan bodies read (lazy)

  bool quantizable(const std::string& t) const { return is_float_tensor(t, g, types); }
  bool body_reads(const std::string& t) {
    if (!body_refs) {
      body_refs.emplace();
      for (const auto& n : g.nodes)
        if (ir::has_subgraphs(n))
          for (const auto& name : ir::implicit_inputs(n)) body_refs->insert(name);
    }
    return body_refs->count(t) > 0;
  }
  bool is_marked(const std::string& t) const { return plan.is_marked(t); }
  // plan.mark; a Gemm bias that becomes an ordinary constant (another reader quantizes it first or later) keeps its
  // beta: the annotator took beta out to fold it into the int32 values, which are not written now.
  void mark(const std::string& t, TensorSpec s, bool replace = false) {
    if (auto b = plan.mark(t, std::move(s), replace)) restore_beta(*b);
  }
  void restore_beta(const TensorSpec& b) {
    if (b.bias_beta == 1.0 || b.node_index >= g.nodes.size()) return;
    ir::Node& n = g.nodes[b.node_index];
    // ORT resets beta to 1 here too (set_default_beta), its model then adding C instead of beta · C: onnxquant
    // deliberately keeps beta (docs/conformance.md).
    if (n.op_type == "Gemm" && !n.has_attr("beta")) n.set_attr_float("beta", static_cast<float>(b.bias_beta));
  }
  bool float_init(const ir::Initializer* init) const { return init && quantizable_type(init->tensor.dtype()); }
  DType float_type(const std::string& t) const {
    return tensor_type(t, g, types) == DType::Float16 ? DType::Float16 : DType::Float;
  }

  void activation(const std::string& t) {
    if (!quantizable(t)) return;
    TensorSpec s;
    s.float_type = float_type(t);
    s.role = TensorRole::Activation;
    s.is_initializer = g.find_initializer(t) != nullptr;
    if (s.is_initializer && opset >= 13)
      if (auto c = o.channel_constants.find(t); c != o.channel_constants.end()) s.axis = c->second;
    // ORT (_calc_initializer_quant_params): a TensorQuantOverrides axis makes any initializer per channel.
    if (const auto* ov = s.is_initializer ? find_override(o, t, true) : nullptr; ov && ov->axis) {
      const int rank = g.find_initializer(t)->tensor.rank();
      s.axis = static_cast<int>(*ov->axis < 0 ? *ov->axis + rank : *ov->axis);
    }
    mark(t, s);
  }
  void same_as_input(const std::string& out, const std::string& in, const std::string& node) {
    if (!quantizable(out)) return;
    TensorSpec s;
    s.float_type = float_type(out);
    s.share_from = in;
    s.node = node;
    mark(out, s);
  }
  // Per-channel unless a per-tensor override exists; ORT's is_tensor_per_channel. A per-channel registration
  // replaces an earlier one of the tensor (ORT's quantize_weight_tensor_per_channel assigns tensors_to_quantize[t]):
  // a weight several nodes read takes the last per-channel reader's axis, or that reader's per-channel
  // quantization over an earlier per-tensor one (a Gather of a tied embedding, an Add); a per-tensor registration
  // (quantize_weight_tensor) keeps whatever came first.
  void weight(const std::string& t, int default_axis) {
    const auto* init = g.find_initializer(t);
    if (!float_init(init)) {
      activation(t);
      return;
    }
    TensorSpec s;
    s.float_type = float_type(t);
    s.role = TensorRole::Weight;
    s.is_initializer = true;
    s.weight_type = true;
    auto ov = o.weight_overrides.find(t);
    bool has_override = ov != o.weight_overrides.end();
    int rank = init->tensor.rank();
    if (has_override && ov->second.axis) {
      s.axis = static_cast<int>(*ov->second.axis < 0 ? *ov->second.axis + rank : *ov->second.axis);
    } else if (o.per_channel && !(has_override && !ov->second.axis) && rank > 0) {
      int a = default_axis < 0 ? default_axis + rank : default_axis;
      if (a >= 0 && a < rank) s.axis = a;
    }
    mark(t, s, s.axis >= 0);
  }
  // ORT's get_largest_initializer_name_suffix(prefix) + 1: one more than the largest integer that follows
  // `prefix` in an initializer name (0 when none does).
  int64_t next_name_suffix(const std::string& prefix) const {
    int64_t largest = -1;
    for (const auto& init : g.initializers) {
      if (init.name.size() <= prefix.size() || init.name.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string rest = init.name.substr(prefix.size());
      size_t i = (rest[0] == '+' || rest[0] == '-') ? 1 : 0;
      if (i == rest.size() || rest.find_first_not_of("0123456789", i) != std::string::npos || rest.size() - i > 15)
        continue;
      largest = std::max(largest, static_cast<int64_t>(std::stoll(rest)));
    }
    return largest + 1;
  }
  bool name_taken(const std::string& t) const {
    if (g.find_initializer(t) || g.is_graph_input(t) || g.is_graph_output(t)) return true;
    for (const auto& n : g.nodes)
      if (std::find(n.outputs.begin(), n.outputs.end(), t) != n.outputs.end() ||
          std::find(n.inputs.begin(), n.inputs.end(), t) != n.inputs.end())
        return true;
    return std::any_of(g.value_info.begin(), g.value_info.end(), [&](const ir::ValueInfo& v) { return v.name == t; });
  }
  // Input `idx` of node `n` is its bias. A bias another quantized node already uses is duplicated for this
  // one (ORT's quantize_bias_tensor / _dup_initializer: `<bias><n>`), since its scale follows this node's
  // input and weight scales. A bias that is also an ordinary input of some quantized node (an Add reading a Conv's
  // bias), before or after this one, is written once as an ordinary constant (QuantPlan::mark_bias / mark).
  // Returns whether the bias will be an int32 bias (so far: a later reader can still make it a constant).
  bool bias(ir::Node& n, size_t idx, double beta) {
    const std::string b = n.input(idx);
    // User overrides: treat the bias as a regular weight, with or without QuantizeBias (ORT's quantize_bias_tensor
    // looks at the overrides first; QuantizeBias only decides the int32 path).
    if (o.weight_overrides.count(b)) {
      weight(b, 0);
      return false;
    }
    if (!o.quantize_bias) return false;
    const auto* init = g.find_initializer(b);
    if (!float_init(init)) return false;
    const DType ft = float_type(b);
    std::string name = b;
    if (plan.is_bias(b)) {
      // ORT's name, unless a tensor of the model already has it (ORT looks at initializers only).
      int64_t k = next_name_suffix(b);
      while (name_taken(b + std::to_string(k))) ++k;
      name = b + std::to_string(k);
      Tensor copy = init->tensor.clone();
      g.add_initializer(name, std::move(copy));
      n.inputs[idx] = name;
      plan.duplicated[name] = b;
    }
    TensorSpec s;
    s.float_type = ft;
    s.role = TensorRole::Bias;
    s.is_initializer = true;
    s.bias_input = n.input(0);
    s.bias_weight = n.input(1);
    s.bias_beta = beta;
    s.node = n.name;
    s.node_index = static_cast<size_t>(&n - g.nodes.data());
    plan.mark_bias(name, s);
    return plan.tensors.count(name) && plan.tensors.at(name).role == TensorRole::Bias;
  }

  void conv(ir::Node& n) {
    activation(n.input(0));
    activation(n.outputs[0]);
    weight(n.input(1), n.op_type == "Conv" ? 0 : 1);
    if (!n.input(2).empty()) bias(n, 2, 1.0);
  }
  void gemm(ir::Node& n) {
    activation(n.input(0));
    activation(n.outputs[0]);
    weight(n.input(1), n.attr_int("transB", 0) ? 0 : 1);
    if (!n.input(2).empty() && g.find_initializer(n.input(2))) {
      const bool overridden = o.weight_overrides.count(n.input(2)) > 0;
      const bool int32 = bias(n, 2, n.attr_float("beta", 1.0f));
      // Folded into the int32 bias values (ORT resets it whatever the bias becomes: onnxquant keeps it for a float
      // bias or an ordinary constant, see restore_beta).
      if (o.quantize_bias && !overridden && int32) n.remove_attr("beta");
    }
  }
  void matmul(const ir::Node& n) {
    for (const auto* list : {&n.inputs, &n.outputs})
      for (const auto& t : *list) {
        if (g.find_initializer(t))
          weight(t, default_weight_axis(n, o));
        else
          activation(t);
      }
  }
  void direct(const ir::Node& n) {  // output keeps the input's parameters
    if (o.force_quantize_no_input_check) activation(n.input(0));  // ORT's QDQDirect8BitOp
    if (is_marked(n.input(0))) same_as_input(n.outputs[0], n.input(0), n.name);
  }
  void removable_activation(size_t idx) {
    ir::Node& n = g.nodes[idx];
    const std::string in = n.input(0), out = n.outputs[0];
    if (!is_marked(in)) return;
    if (!o.activation_symmetric && !o.keep_removable_activations && try_replace_upstream(in, out)) {
      plan.removed_nodes.push_back(idx);
    } else {
      activation(in);
    }
    activation(out);
  }
  bool try_replace_upstream(const std::string& up, const std::string& out) {
    if (!ranges.count(out) || !ranges.count(up)) return false;
    for (const auto* t : {&up, &out})  // ORT: not when either is converted
      if (const auto* ov = find_override(o, *t, false); ov && ov->convert) return false;
    if (g.is_graph_output(up) || g.is_graph_input(up)) return false;
    // A body of an If / Loop / Scan reading either name would read the un-activated values once the node is gone
    // (ORT counts only main-graph readers and writes such a model; onnxquant keeps the node).
    if (body_reads(up) || body_reads(out)) return false;
    size_t consumers = 0;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (std::find(plan.removed_nodes.begin(), plan.removed_nodes.end(), i) != plan.removed_nodes.end()) continue;
      for (const auto& in : g.nodes[i].inputs) consumers += (in == up);
    }
    if (consumers != 1) return false;
    for (auto& node : g.nodes)
      for (auto& t : node.outputs)
        if (t == up) t = out;
    plan.renamed[up] = out;
    if (plan.tensors.erase(up)) std::erase(plan.marked_order, up);
    return true;
  }
  void pad(const ir::Node& n) {
    for (const auto& t : n.inputs) activation(t);  // ORT's QDQPad: every input (the int64 pads are skipped)
    std::string mode = n.attr_string("mode", "constant");
    bool same = mode != "constant";
    if (!same) {
      double v = 0;
      if (opset < 11) {
        v = n.attr_float("value", 0.f);
      } else if (!n.input(2).empty()) {
        const auto* c = g.find_initializer(n.input(2));
        if (!c) {
          activation(n.outputs[0]);
          return;
        }
        v = c->tensor.numel() ? c->tensor.to_doubles()[0] : 0.0;
      }
      same = v == 0.0;
    }
    if (same)
      same_as_input(n.outputs[0], n.input(0), n.name);
    else
      activation(n.outputs[0]);
  }
  void normalization(ir::Node& n) {
    activation(n.input(0));
    if (g.find_initializer(n.input(1)))
      weight(n.input(1), default_weight_axis(n, o));
    else
      activation(n.input(1));
    if (n.inputs.size() > 2 && !n.input(2).empty()) bias(n, 2, 1.0);
    for (const auto& t : n.outputs) activation(t);
  }
  void base(const ir::Node& n) {
    for (const auto& t : n.inputs) activation(t);
    for (const auto& t : n.outputs) activation(t);
  }

  void run() {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (!should_quantize_node(g.nodes[i], o)) continue;
      plan.quantized_nodes.insert(i);
      // ORT's OpTypesToExcludeOutputQuantization: what this node marks on its outputs is taken back (a later
      // consumer may still quantize them as its inputs). Not for Gather / GatherElements: ORT's QDQGather is the one
      // op quantizer of its QDQ registry that never reads the flag (quantize_output_same_as_input regardless), so
      // their output keeps sharing the input's parameters.
      const std::string& op = g.nodes[i].op_type;
      const bool no_output = o.op_types_no_output.count(op) > 0 && op != "Gather" && op != "GatherElements";
      std::set<std::string> before;
      if (no_output)
        for (const auto& t : g.nodes[i].outputs)
          if (plan.is_marked(t)) before.insert(t);
      node(i);
      if (no_output)
        for (const auto& t : g.nodes[i].outputs)
          if (!before.count(t) && plan.tensors.erase(t)) std::erase(plan.marked_order, t);
    }
  }
  void node(size_t i) {
    ir::Node& n = g.nodes[i];
    const std::string& op = n.op_type;
    if (op == "Conv" || op == "ConvTranspose") conv(n);
    else if (op == "Gemm") gemm(n);
    else if (op == "MatMul") matmul(n);
    else if (op == "Relu" || op == "Clip") removable_activation(i);
    else if (op == "Reshape" || op == "Transpose" || op == "Squeeze" || op == "Unsqueeze" || op == "Flatten" ||
             op == "AveragePool" || op == "Slice" || op == "TopK")
      direct(n);
    else if (op == "MaxPool") {
      if (opset >= 12) direct(n);
    } else if (op == "Resize") {
      if (opset >= 11) direct(n);
    } else if (op == "Split") {
      if (!is_marked(n.input(0))) activation(n.input(0));
      for (const auto& t : n.outputs) same_as_input(t, n.input(0), n.name);
    } else if (op == "Gather" || op == "GatherElements") {
      // ORT's QDQGather: a float initializer table (embedding) is quantized like an activation constant.
      const auto* table = g.find_initializer(n.input(0));
      if (float_init(table) || o.force_quantize_no_input_check) activation(n.input(0));
      if (is_marked(n.input(0))) same_as_input(n.outputs[0], n.input(0), n.name);
    } else if (op == "Where") {
      if (o.force_quantize_no_input_check) activation(n.input(1)), activation(n.input(2));  // ORT's QDQWhere
      if (is_marked(n.input(1)) && is_marked(n.input(2)))
        for (const auto& t : n.outputs) activation(t);
    } else if (op == "Pad") pad(n);
    else if (op == "InstanceNormalization" || op == "LayerNormalization" || op == "BatchNormalization")
      normalization(n);
    else base(n);
  }
};

}  // namespace

QuantPlan annotate(ir::Graph& g, int opset, const QuantOptions& o, const TypeMap& types, const RangeMap& ranges) {
  Annotator a{g, opset, o, types, ranges, {}, {}};
  a.run();
  return std::move(a.plan);
}

}  // namespace oq::quant
