// Phase two of QDQ insertion: one pass writes QuantizeLinear/DequantizeLinear nodes and quantized
// initializers for a plan, with ONNX Runtime's naming so existing tools work on the output.
#pragma once
#include "ir/graph.h"
#include "quant/plan.h"
#include "quant/weight_cache.h"

namespace oq::quant {

struct WriteStats {
  std::map<std::string, int> tensors_per_type;  // "Int8 activations": n, ...
  int q_nodes = 0, dq_nodes = 0;
};

// `g` is the annotated graph (Relu/Clip nodes of plan.removed_nodes still present; they are dropped here).
// The graph is rewritten in place and topologically sorted. `weight_values` (optional): float values to
// quantize instead of an initializer's own (weights a WeightParamsFn modified, e.g. GPTQ).
WriteStats write_qdq(ir::Graph& g, const QuantPlan& plan, const ParamMap& params,
                     const std::map<std::string, Tensor>* weight_values = nullptr, WeightCache* cache = nullptr);

}  // namespace oq::quant
