// Phase two of QDQ insertion: one pass writes QuantizeLinear/DequantizeLinear nodes and quantized
// initializers for a plan, with ONNX Runtime's naming so existing tools work on the output.
#pragma once
#include "ir/graph.h"
#include "quant/params.h"
#include "quant/plan.h"
#include "quant/weight_cache.h"

namespace oq::quant {

struct WriteStats {
  std::map<std::string, int> tensors_per_type;  // "Int8 activations": n, ...
  int q_nodes = 0, dq_nodes = 0;
  // Where each quantized tensor went (names may differ from ORT's pattern when the model already used one):
  // the DequantizeLinear output its consumers read (the first one with dedicated pairs) and, for activations,
  // the QuantizeLinear input (the tensor itself, or `<t>_QuantizeLinear_Input` for a graph output).
  std::map<std::string, std::string> dq_output, q_input;
};

// ORT's QDQ layout options (AddQDQPairToWeight, DedicatedQDQPair).
struct QdqLayout {
  bool add_qdq_pair_to_weight = false;  // weights stay float, followed by QuantizeLinear -> DequantizeLinear
  bool dedicated_qdq_pair = false;      // an activation read by several quantized nodes: one pair per reader
  bool contrib_ops = false;             // UseQDQContribOps: Q/DQ nodes in the com.microsoft domain
};

// `g` is the annotated graph (Relu/Clip nodes of plan.removed_nodes still present; they are dropped here).
// The graph is rewritten in place and topologically sorted. `weight_values` (optional): float values to
// quantize instead of an initializer's own (weights a WeightParamsFn modified, e.g. GPTQ). `converted` (optional):
// activations converted to a second type (TensorQuantOverrides' convert): ORT's Q -> DQ (-> DQ clone) -> Q -> DQ
// chain, `<t>_convert_*` names, the receiving nodes reading the converted DequantizeLinear.
WriteStats write_qdq(ir::Graph& g, const QuantPlan& plan, const ParamMap& params,
                     const std::map<std::string, Tensor>* weight_values = nullptr, WeightCache* cache = nullptr,
                     const QdqLayout& layout = {},
                     const std::map<std::string, ParamNotes::Converted>* converted = nullptr);

}  // namespace oq::quant
