// The executor's inference optimizations (what ONNX Runtime's graph optimizer does on load): BatchNormalization
// folded into Conv/ConvTranspose/Gemm, Identity/Dropout removed, zero Pad folded into Conv pads, Relu/Clip/
// LeakyRelu fused into Conv, a per-tensor QuantizeLinear -> DequantizeLinear pair fused after a Conv, Gemm or
// MatMul (QDQ models), chains of convolutions in a channel-blocked layout (exec/layout.h). Applied to the
// Session's private copy of a model, never to a model onnxquant writes. A rewrite removes some tensors and
// changes the values of others (e.g. folded weights); a run that observes or fake-quantizes one of those
// `touched` names runs the model as given instead.
#pragma once
#include <optional>
#include <string>
#include <unordered_set>

#include "exec/layout.h"
#include "ir/graph.h"

namespace oq::exec {

struct InferenceGraph {
  ir::Model model;
  // Names of the original model (node outputs, initializers) that the optimized model no longer has, or
  // that hold different values there.
  std::unordered_set<std::string> touched;
  // Names of the original model that the optimized model holds only in channel-blocked form (not in
  // `touched`): observable, converted back to NCHW for the observer, but not fake-quantizable.
  std::unordered_map<std::string, BlockedAlias> blocked;
  // Names of the original model that the optimized model holds in both forms: converted back to NCHW by a node
  // (a graph output, or read outside the chain) while nodes of the chain read the blocked copy. Observable as
  // they are, but not fake-quantizable either: the fake quantization would not reach the chain's readers.
  std::unordered_set<std::string> converted_back;
  size_t rewrites = 0;
};

// nullopt when no rewrite applies. channel_block: 8 or 16 (exec/layout.h), 0 = keep NCHW everywhere, -1 = this
// CPU's native_channel_block().
std::optional<InferenceGraph> optimize_for_inference(const ir::Model& m, int channel_block = -1);

}  // namespace oq::exec
