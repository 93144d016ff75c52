#include "quant/overrides.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "core/log.h"
#include "core/names.h"
#include "exec/kernel.h"

namespace oq::quant {

static void check_values(const std::string& kind, const std::string& name, const TensorOverride& ov, DType qt) {
  if (ov.scale.empty() != ov.zero_point.empty())
    fail(ErrorKind::Config, "{} '{}': scale and zero_point must be given together", kind, name);
  if (ov.scale.size() != ov.zero_point.size())
    fail(ErrorKind::Config, "{} '{}': {} scales but {} zero points", kind, name, ov.scale.size(),
         ov.zero_point.size());
  QRange r = full_range(qt);
  for (double s : ov.scale)
    if (!(s > 0) || !std::isfinite(s))
      fail(ErrorKind::Config, "{} '{}': scale must be > 0, got {}", kind, name, s);
  for (int64_t z : ov.zero_point)
    if (z < r.qmin || z > r.qmax)
      fail(ErrorKind::Config, "{} '{}': zero_point {} is outside the {} range [{}, {}]", kind, name, z,
           quant_type_name(qt), r.qmin, r.qmax);
}

void validate_overrides(const ir::Graph& g, const QuantOptions& o) {
  if (!o.nodes_to_quantize.empty() && !o.weight_overrides.empty())
    fail(ErrorKind::Config,
         "quantization.onnx_quant_parameters.nodes_to_quantize cannot be combined with "
         "onnx_extra_options.weights_tensor_override: overrides apply to every node that reads the weight, "
         "while nodes_to_quantize restricts which nodes are quantized");
  std::unordered_set<std::string> tensors;
  for (const auto& n : g.nodes)
    for (const auto* l : {&n.inputs, &n.outputs})
      for (const auto& t : *l) tensors.insert(t);
  for (const auto& v : g.inputs) tensors.insert(v.name);

  for (const auto& [name, ov] : o.weight_overrides) {
    const auto* init = g.find_initializer(name);
    if (!init)
      fail(ErrorKind::Config, "weights_tensor_override: '{}' is not a weight (initializer) of the model", name);
    DType qt = ov.qtype.value_or(o.weight_type);
    check_values("weights_tensor_override", name, ov, qt);
    int rank = init->tensor.rank();
    if (ov.axis) {
      int64_t a = *ov.axis;
      if (a < -rank || a >= rank)
        fail(ErrorKind::Config, "weights_tensor_override '{}': axis {} is invalid for a weight of shape {}", name, a,
             shape_str(init->tensor.shape()));
      int64_t ch = init->tensor.dim(static_cast<int>(a < 0 ? a + rank : a));
      if (!ov.scale.empty() && static_cast<int64_t>(ov.scale.size()) != ch)
        fail(ErrorKind::Config, "weights_tensor_override '{}': {} scale/zero_point values for {} channels on axis {}",
             name, ov.scale.size(), ch, a);
    } else if (ov.scale.size() > 1) {
      fail(ErrorKind::Config, "weights_tensor_override '{}': {} scales given without an axis (per-tensor takes one)",
           name, ov.scale.size());
    }
  }
  for (const auto& [name, ov] : o.activation_overrides) {
    if (!tensors.count(name) || g.find_initializer(name))
      fail(ErrorKind::Config, "activations_tensor_override: '{}' is not an activation tensor of the model", name);
    if (ov.axis)
      fail(ErrorKind::Config, "activations_tensor_override '{}': activations are quantized per tensor; remove 'axis'",
           name);
    if (ov.scale.size() > 1)
      fail(ErrorKind::Config, "activations_tensor_override '{}': one scale and one zero_point expected, got {}", name,
           ov.scale.size());
    check_values("activations_tensor_override", name, ov, ov.qtype.value_or(o.activation_type));
  }
}

void validate_node_filters(const ir::Graph& g, const QuantOptions& o, const ir::Graph* also) {
  std::vector<std::string> nodes;
  for (const auto* graph : {&g, also})
    if (graph)
      for (const auto& n : graph->nodes)
        if (!n.name.empty()) nodes.push_back(n.name);
  std::unordered_set<std::string> node_set(nodes.begin(), nodes.end());
  auto check_nodes = [&](const std::set<std::string>& names, const char* key) {
    for (const auto& name : names)
      if (!node_set.count(name))
        fail(ErrorKind::Config, "quantization.onnx_quant_parameters.{}: the model has no node named '{}'{}", key, name,
             did_you_mean(name, nodes));
  };
  check_nodes(o.nodes_to_quantize, "nodes_to_quantize");
  check_nodes(o.nodes_to_exclude, "nodes_to_exclude");
  const std::vector<std::string> ops = exec::registered_ops();
  auto check_ops = [&](const std::set<std::string>& names, const char* key) {
    for (const auto& op : names)
      if (std::find(ops.begin(), ops.end(), op) == ops.end())
        fail(ErrorKind::Config, "quantization.{}: '{}' is not an ONNX operator onnxquant runs (operator names are "
             "case-sensitive){}", key, op, did_you_mean(op, ops));
  };
  check_ops(o.op_types_to_quantize, "onnx_quant_parameters.op_types_to_quantize");
  check_ops(o.op_types_no_output, "onnx_extra_options.OpTypesToExcludeOutputQuantization");
  std::set<std::string> axis_ops;
  for (const auto& [op, axis] : o.per_channel_axis) axis_ops.insert(op);
  check_ops(axis_ops, "onnx_extra_options.QDQOpTypePerChannelSupportToAxis");
}

void warn_unused_overrides(const QuantOptions& o, const QuantPlan& plan) {
  for (const auto* m : {&o.weight_overrides, &o.activation_overrides})
    for (const auto& [name, ov] : *m)
      if (!plan.is_marked(name))
        OQ_WARN("{} '{}': the tensor is not quantized (its nodes are filtered out by op_types_to_quantize, "
                "nodes_to_quantize or nodes_to_exclude); the override has no effect",
                m == &o.weight_overrides ? "weights_tensor_override" : "activations_tensor_override", name);
}

}  // namespace oq::quant
