// Validation of tensor overrides against the model: each broken rule is a Config error naming the tensor.
#pragma once
#include "ir/graph.h"
#include "quant/annotate.h"
#include "quant/options.h"
#include "quant/plan.h"

namespace oq::quant {

void validate_overrides(const ir::Graph& g, const QuantOptions& o);

// ORT's TensorQuantOverrides (already typed, source TensorQuantOverrides) into o.weight_overrides (initializers of
// `g`, the pre-processed model, whose names ORT's overrides use after quant_pre_process) or o.activation_overrides
// (other tensors); nullopt (an empty list in the config) places nothing. A Config error naming the key path when
// the model has no such tensor (ORT: "not present in the model").
void place_tensor_quant_overrides(const ir::Graph& g, const std::map<std::string, std::optional<TensorOverride>>& tqo,
                                  QuantOptions& o);

// The override of a tensor, if any: an initializer's in weight_overrides (else activation_overrides), an
// activation's in activation_overrides.
const TensorOverride* find_override(const QuantOptions& o, const std::string& name, bool initializer);

// The node filters against the model as loaded (before pre-processing removes nodes): every name in
// nodes_to_quantize / nodes_to_exclude is a node of the model. A Config error naming the key and the name, with the
// closest match when there is one (a mistyped name would otherwise quantize nothing, or everything). The operator
// types (op_types_to_quantize, ...) need no model: they are checked when the config is loaded (src/config).
// `also` (optional): a second graph whose node names count too (the pre-processed model, whose fused nodes
// carry ORT's names, e.g. "<MatMul>/MatMulAddFusion", which users copy from ORT's pre-processed models).
void validate_node_filters(const ir::Graph& g, const QuantOptions& o, const ir::Graph* also = nullptr);

// Overrides of tensors the plan does not quantize (their node filtered out or excluded, or not a float tensor:
// `g` and `types` give the tensors' types): one warning each.
void warn_unused_overrides(const QuantOptions& o, const QuantPlan& plan, const ir::Graph& g, const TypeMap& types);

}  // namespace oq::quant
