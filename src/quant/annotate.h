// Annotators: decide which tensors get Q/DQ, following ONNX Runtime's QDQ quantizer rules op by op.
#pragma once
#include <optional>
#include <string>
#include <unordered_map>

#include "ir/graph.h"
#include "quant/options.h"
#include "quant/plan.h"

namespace oq::quant {

// Element type of every tensor of the graph (from a float run and the initializers).
using TypeMap = std::unordered_map<std::string, DType>;

struct Range {
  double rmin = 0, rmax = 0;
};
using RangeMap = std::unordered_map<std::string, Range>;

// Whether a node is quantized under the options (op type list, nodes_to_quantize, nodes_to_exclude).
bool should_quantize_node(const ir::Node& n, const QuantOptions& o);

// Float tensors whose range calibration must measure: inputs and outputs of every quantized node
// that are not initializers.
std::vector<std::string> tensors_to_calibrate(const ir::Graph& g, const QuantOptions& o, const TypeMap& types);

// Whether a Relu/Clip node's input takes the node's output range (ORT's adjust_tensor_ranges): the node is
// quantized and its input has no other consumer and is not a graph output. The last condition is onnxquant's:
// ORT also narrows a graph output that way, which cuts the model's output to the activation's range
// (docs/conformance.md, "A graph output read by a Relu / Clip").
bool input_takes_activation_range(const ir::Graph& g, const ir::GraphIndex& idx, const ir::Node& n,
                                  const QuantOptions& o);

// ORT's adjust_tensor_ranges: Relu/Clip inputs take their output's range (input_takes_activation_range);
// Softmax outputs get [0, 1].
void adjust_ranges(const ir::Graph& g, const QuantOptions& o, RangeMap& ranges);

// Marks tensors on `g` (node order), removing Relu/Clip nodes whose range folds into the producer
// (the producer then writes the removed node's output). `g` is modified accordingly.
QuantPlan annotate(ir::Graph& g, int opset, const QuantOptions& o, const TypeMap& types, const RangeMap& ranges);

// Per-channel axis of the weight input of a node (Conv 0, ConvTranspose 1, Gemm transB ? 0 : 1, MatMul 1, ...).
int default_weight_axis(const ir::Node& n);
// The same with ORT's QDQOpTypePerChannelSupportToAxis (QuantOptions::per_channel_axis) applied.
int default_weight_axis(const ir::Node& n, const QuantOptions& o);

}  // namespace oq::quant
