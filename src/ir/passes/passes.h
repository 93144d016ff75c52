// Graph rewrites on the IR (no protobuf): what a quantization flow expects from a pre-processing step
// (constant folding, Identity/Dropout removal, BatchNormalization folding) and opset up-conversion.
// Every pass edits the model in place, keeps graph inputs/outputs (names, order) intact and leaves the
// nodes in a topological order.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ir/graph.h"

namespace oq::ir::passes {

struct FoldOptions {
  // Outputs larger than this are not folded (keeps e.g. Expand/Tile of constants from blowing up a model).
  size_t max_folded_bytes = size_t{64} << 20;
};

struct FoldStats {
  size_t constants = 0;  // Constant nodes turned into initializers
  size_t shapes = 0;     // Shape/Size nodes replaced by their statically known value
  size_t evaluated = 0;  // nodes with only constant inputs evaluated by their kernel
  size_t removed_initializers = 0;
  size_t total() const { return constants + shapes + evaluated; }
};

// Constant nodes -> initializers; Shape/Size of statically shaped tensors -> initializers; nodes whose inputs
// are all initializers (deterministic, default domain, with an executor kernel) evaluated into initializers;
// then dead nodes and unused initializers removed (graph inputs/outputs are never removed).
// Initializers that are also graph inputs (overridable at run time) are not treated as constants.
FoldStats fold_constants(Model& m, const FoldOptions& opts = {});

// Removes Identity and inference-mode Dropout nodes. Returns the number removed.
size_t remove_identity(Model& m);

// Folds inference BatchNormalization into a preceding Conv / ConvTranspose / Gemm. Returns the number folded.
size_t fold_batchnorm(Model& m);

// Inference-only fusions (the executor's private copy of a model; never written out):
// Pad (constant 0, spatial axes only) followed by its only consumer Conv -> the Conv's pads.
size_t fuse_pad_into_conv(Model& m);
// Conv followed by its only consumer Relu / LeakyRelu / Clip (constant bounds) -> one Conv node carrying the
// activation in attributes kFusedActivationAttr ("Relu" | "LeakyRelu" | "Clip"), <attr>_alpha (LeakyRelu slope
// or Clip min) and <attr>_beta (Clip max); the Conv takes the activation's output name.
inline constexpr const char* kFusedActivationAttr = "_oq_fused_activation";
size_t fuse_conv_activation(Model& m);
// Conv (activation fused or not), Gemm or MatMul whose output's only reader is a per-tensor QuantizeLinear
// (scale and zero point constant scalars, a 4/8/16-bit integer type) whose output's only reader is a
// DequantizeLinear with the same scale and zero point values -> one node carrying the pair in attributes
// kFusedFakeQuantAttr (_scale, _lo = qmin - zero point, _hi = qmax - zero point), writing the
// DequantizeLinear's output name. Run after fuse_conv_activation (the pair comes after the activation).
inline constexpr const char* kFusedFakeQuantAttr = "_oq_fused_fake_quant";
size_t fuse_fake_quant(Model& m);

// Removes nodes none of whose outputs are used (transitively) and initializers nothing reads.
// Returns the number of nodes removed.
size_t remove_dead(Model& m);

struct PreprocessStats {
  size_t nodes_before = 0, nodes_after = 0;
  size_t folded_constants = 0, removed_identities = 0, folded_batchnorms = 0;
};
// fold_constants -> remove_identity -> fold_batchnorm -> fold_constants; logs a one-line summary.
PreprocessStats preprocess(Model& m);

// Raises the default-domain opset to `target`, rewriting nodes whose schema changed on the way; sets the IR
// version to at least the one matching `target`. A node that cannot be converted, a target lower than the
// model's opset or outside [7, 21] -> Model error. Returns the number of nodes rewritten.
size_t convert_opset(Model& m, int target);

// IR version that goes with a default-domain opset (7..21).
int64_t ir_version_for_opset(int64_t opset);

}  // namespace oq::ir::passes
