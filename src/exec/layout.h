// Channel-blocked layout for chains of 2-D convolutions (what ONNX Runtime's NCHWc transformer does, here on
// oneDNN's nChw16c / nChw8c formats): inside a chain, Conv, residual Add and Relu pass tensors in blocks of B
// channels, so oneDNN's direct, 1x1 and depthwise kernels run without converting every activation from and to
// NCHW. A blocked tensor is an ordinary float tensor of shape [N, ceil(C/B), H, W, B] whose padding channels
// are zero. Internal nodes (never written to a file):
//   _OqToBlocked   (attr block)            [N,C,H,W]        -> [N,ceil(C/B),H,W,B]
//   _OqFromBlocked (attrs block, channels) [N,ceil(C/B),H,W,B] -> [N,C,H,W]
//   Conv with attrs kBlockAttr = B and kBlockedSrcAttr = 1 when its input X is blocked (0: plain NCHW);
//   its output is always blocked.
// Add and Relu need no change: on two blocked tensors of the same channel count they compute the same values
// in the same places (broadcasting over N, H or W included). In QDQ models, per-tensor QuantizeLinear ->
// DequantizeLinear pairs between the convolutions join the chain too (elementwise; the padding channels hold
// the zero point in between and are 0 again after the DequantizeLinear), and weights given as
// DequantizeLinear of initializers count as constant.
#pragma once
#include <cstddef>
#include <string>
#include <unordered_map>

#include "ir/graph.h"

namespace oq::exec {

inline constexpr const char* kBlockAttr = "_oq_block";
inline constexpr const char* kBlockedSrcAttr = "_oq_blocked_src";
inline constexpr const char* kToBlockedOp = "_OqToBlocked";
inline constexpr const char* kFromBlockedOp = "_OqFromBlocked";
inline constexpr const char* kBlockedSuffix = "__oq_blocked";

// Channel block of this CPU for oneDNN's f32 kernels: 16 with AVX-512, 8 with AVX2, 0 (no blocking) otherwise.
int native_channel_block();

// Rewrites every chain of at least two connected blockable nodes (Conv 2-D with constant 4-D weights, one
// group or depthwise, at least `block` output channels; Add of a blocked tensor and a tensor with the same
// channel count; Relu of a blocked tensor; per-tensor Q -> DQ pairs on blocked tensors) to the blocked
// layout, inserting conversions where the chain meets the rest of the graph (tensors read outside the chain,
// or graph outputs, keep their names and values). Returns the number of nodes converted. block: 8 or 16.
// aliases (optional): for every original tensor that now exists only in blocked form, its blocked name and
// channel count (a run can still show it to an observer, converted back: see Session).
struct BlockedAlias {
  std::string blocked;
  int64_t channels = 0;
};
size_t to_blocked_layout(ir::Model& m, int block, std::unordered_map<std::string, BlockedAlias>* aliases = nullptr);

}  // namespace oq::exec
