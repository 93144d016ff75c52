// Graph rewrites on the IR (no protobuf): what a quantization flow expects from a pre-processing step
// (constant folding, Identity/Dropout removal, BatchNormalization folding, Pad -> Conv and MatMul + Add -> Gemm
// fusion) and opset up-conversion.
// Every pass edits the model in place, keeps graph inputs/outputs (names, order) intact and leaves the
// nodes in a topological order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>

#include "ir/graph.h"

namespace oq::ir::passes {

struct FoldOptions {
  // Outputs larger than this are not folded (keeps e.g. Expand/Tile of constants from blowing up a model).
  size_t max_folded_bytes = size_t{64} << 20;
  // Identity nodes whose output is not a graph output are left for remove_identity, which keeps the input's name
  // (ORT's EliminateIdentity runs before its constant folding: Identity(k1) -> Add keeps initializer k1).
  bool keep_identities = false;
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
// then dead nodes and unused initializers removed (graph inputs/outputs are never removed). A node producing a graph
// output folds too, into an initializer named after the output, as ORT's constant folding does (a constant graph
// output is then exact float in the quantized model).
// Initializers that are also graph inputs (overridable at run time) are not treated as constants.
FoldStats fold_constants(Model& m, const FoldOptions& opts = {});

// Removes Identity and inference-mode Dropout nodes. Returns the number removed.
size_t remove_identity(Model& m);

// Folds inference BatchNormalization into a preceding Conv / ConvTranspose / Gemm. Returns the number folded.
size_t fold_batchnorm(Model& m);

// Conv followed by a Mul / Add with a constant (scalar for Mul, or one value per output channel: [C,1,1] /
// [1,C,1,1] for a 2-D Conv) folded into the Conv's weight / bias, as ONNX Runtime's ConvMulFusion /
// ConvAddFusion (quant_pre_process) do, with their conditions and initializer names ("ConvMulFusion_W_<W>",
// "ConvMulFusion_Mul_B_<k>", "ConvAddFusion_B_<B>", "ConvAddFusion_Add_B_<k>"; fuse_conv_mul_add.cc).
// The Conv takes the Mul / Add's output name. Returns the number of Mul / Add nodes folded.
size_t fuse_conv_mul_add(Model& m);

// Add / Sub of 0, Mul / Div by 1 (one-element constant), Cast to the input's own type, Expand to the input's own
// shape, a Transpose pair that cancels: removed, readers of the output read the input (ORT's NoopElimination,
// CastElimination, ExpandElimination, transpose optimizer in quant_pre_process; conditions in eliminate_noops.cc). Not when the output is a graph
// output or read by a body, nor (except a Cast) when the input is a graph input. Returns the number removed.
size_t eliminate_noops(Model& m);

// Pad (constant mode, float value 0 or absent, non-negative pads on the spatial axes only, no opset-18 `axes`
// input) whose output is not a graph output and is read only by a Conv's data input (auto_pad NOTSET or absent)
// -> the pads added to the Conv's `pads` attribute (ONNX Runtime's PadFusion). The result is a standard Conv:
// used both by pre-processing (written out) and by the executor on its private copy.
size_t fuse_pad_into_conv(Model& m);
// Pad as above read only by an AveragePool (auto_pad NOTSET, ceil_mode 0; pads of its own only with
// count_include_pad 1; each summed pad below the kernel) -> pads added, count_include_pad 1 (ORT's PadFusion; not
// MaxPool, which ORT 1.32 leaves alone). Pre-processing only. Returns the number fused.
size_t fuse_pad_into_avgpool(Model& m);
// MatMul (constant 2-D B, rank-2 A) -> [Reshape...] -> BatchNormalization -> Gemm "MatMulBnFusion_Gemm"
// (B' "MatMulBnFusion_GemmB_<B>", C "MatMulBnFusion_GemmBias"), ORT's MatmulBNFusion (fuse_matmul_bn.cc).
size_t fuse_matmul_bn(Model& m);
// Reshape by a Concat of constants, Shape(data) -> Gather(i) -> Unsqueeze pieces (0) and one-element pieces (-1)
// -> Reshape by that constant shape, named after the Concat's output (ORT's ReshapeFusion; fuse_reshape.cc).
size_t fuse_reshape(Model& m);
// Suffix of the Gemm that fuse_matmul_add makes of a MatMul (ORT's name: "<MatMul name>/MatMulAddFusion").
inline constexpr const char* kMatMulAddFusionSuffix = "/MatMulAddFusion";
// MatMul(A, B) + Add(C) -> Gemm(A, B, C) (alpha 1, beta 1, no transposes), named "<MatMul name>/MatMulAddFusion"
// and writing the Add's output, as ONNX Runtime's MatMulAddFusion (quant_pre_process) does for float models
// when: B is a constant 2-D [K, N] initializer, A has rank 2 (from value_info or deduced from its producers;
// symbolic dims are fine; infer_shapes), the MatMul output is read only by the Add (and is not a graph output), the other
// Add input is a constant of shape [N] or [1, N]. Returns the number fused.
size_t fuse_matmul_add(Model& m);

// A decomposed LayerNormalization (ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul gamma, Add beta;
// opset >= 17) -> LayerNormalization named "<Mul name>/LayerNormFusion/", and an erf GELU (Div sqrt 2, Erf, Add 1,
// Mul x, Mul 0.5 in ORT's two orders; opset >= 20) -> Gelu named "Gelu", as ONNX Runtime's LayerNormFusion /
// GeluFusion in quant_pre_process (conditions in fuse_layer_norm_gelu.cc).
struct LnGeluStats {
  size_t layer_norms = 0, gelus = 0;
};
LnGeluStats fuse_layer_norm_gelu(Model& m);

// Inference-only fusions (the executor's private copy of a model; never written out):
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
  size_t fused_conv_mul_adds = 0;  // Mul / Add by a constant folded into the preceding Conv
  size_t removed_noops = 0;  // Add 0 / Sub 0 / Mul 1 / Div 1, Cast, Expand, Transpose pairs that change nothing
  size_t fused_pads = 0;         // Pad folded into a Conv's pads
  size_t fused_matmul_adds = 0;  // MatMul + Add fused into Gemm
  size_t fused_reshapes = 0;     // Reshape by a Concat of shape pieces -> by a constant shape
  size_t initializer_inputs = 0;  // initializers that were also graph inputs (now constants)
  size_t inlined_functions = 0;   // HardSwish / Mish / Swish / GroupNormalization expanded (inline_functions)
  size_t inlined_local_functions = 0;  // calls of model-local functions inlined (inline_local_functions)
  size_t inlined_ifs = 0;         // If nodes with a constant condition replaced by their branch
  size_t fused_layer_norms = 0, fused_gelus = 0;  // fuse_layer_norm_gelu
};
// fold_constants -> inline_constant_ifs (+ fold_constants) -> remove_identity -> fold_batchnorm
// alternating with fuse_conv_mul_add and eliminate_noops until nothing changes (not for float16 models) -> fold_constants ->
// fuse_pad_into_conv / fuse_pad_into_avgpool -> fuse_matmul_add -> fuse_reshape -> fuse_layer_norm_gelu ->
// inline_functions (what ONNX Runtime's quant_pre_process does to these patterns; fuse_matmul_bn runs in the loop),
// then the nodes in quant_pre_process's order (ort_graph_order.h); logs a one-line summary. Initializers also graph
// inputs (IR >= 4: inputs a caller may override, as older PyTorch exports write every weight) are not constants for
// these passes, as for ORT's optimizer; then they are, as quantization needs constant weights (and quantize_static).
PreprocessStats preprocess(Model& m);

// If nodes whose condition is a constant initializer replaced by the branch they take, with ONNX Runtime's names
// (its constant folding in quant_pre_process; inline_if.cc). Returns the number of If nodes inlined.
size_t inline_constant_ifs(Model& m);

// Calls of model-local functions (Model::functions) replaced by the function bodies, with ONNX Runtime's inliner
// names, as onnxruntime inlines them when it loads a model (inline_local_functions.cc); nested calls too. Inlined
// functions leave Model::functions, functions nothing calls stay. A body at an older default-domain opset than
// the model's is converted first (convert_opset). A construct it cannot inline (a newer default-domain opset than
// the model's, another version of any other domain both import, an attribute reference to an undeclared
// attribute, more inputs / outputs than declared, recursion) -> Model error naming the node and the function. Returns the
// number of calls inlined.
size_t inline_local_functions(Model& m);

// HardSwish, Mish, Swish and GroupNormalization (opsets 18 / 21 bodies) expanded into their ONNX function bodies
// with ORT's inliner names, as quant_pre_process returns them (inline_functions.cc). Returns the number of nodes
// expanded.
size_t inline_functions(Model& m);

// Float16 models (upcast_half.cc). The executor computes them in float32, on an execution copy:
// float16 initializers and Constant / ConstantOfShape values become float32, float16 graph inputs, outputs and
// value_info become float32, a `dtype` attribute of float16 (EyeLike, Random*) becomes float, and a
// Cast(to=FLOAT16) becomes that Cast under a private name followed by a Cast to float writing the model's name
// (values keep the rounding the model asks for). Sub-graphs included. Every tensor keeps its name, so
// observers, fake quantization and inspection match tensors by name as on the model itself. Returns 0 (and
// leaves the model alone) when it has nothing float16, else a positive count.
size_t upcast_float16(Model& m);
// Whether a model has anything upcast_float16 would change.
bool has_float16(const Model& m);
// Whether a model computes in float16: a graph input or output, or a value a node computes (Constant nodes
// aside), is float16 (sub-graphs included). A float32 model with float16 constants only (a Pow's exponent, a
// weight Cast to float) is not: ORT's quantize_static decides each tensor's scale type by its own type, and
// such a model goes through quant_pre_process's optimizer as any float32 model. This decides the float16 flow
// (pre-processing without ORT's optimizer rewrites, float16 scales needing opset 19).
bool computes_in_float16(const Model& m);
// Names of the values of a graph whose element type is float16: declared types (initializers, inputs, outputs,
// value_info), then node outputs in topological order by their operator's type rule (Cast: `to`; CastLike:
// its second input; DequantizeLinear: its scale; type-preserving ops: their first data input, Where its second).
std::unordered_set<std::string> float16_values(const Graph& g);

// Raises the default-domain opset to `target`, rewriting nodes whose schema changed on the way; sets the IR
// version to at least the one matching `target`. A node that cannot be converted, a target lower than the
// model's opset or outside [7, kMaxConvertOpset] -> Model error. Returns the number of nodes rewritten.
// No schema of the ops it knows changes meaning between 21 and 28 (opset 22 adds bfloat16, 23 to 25 add
// float4 / float8e8m0 / int2 types, 23, 24, 27 and 28 attributes whose defaults keep the old behaviour, 26 only
// new ops, 28 float6 / bfloat16 / signed BitShift types and float Mod with fmod = 0, all invalid before): those
// steps rewrite nothing. ReduceLogSum / ReduceLogSumExp on an integer input cannot cross 28 (version 28 drops
// the integer types): refused.
inline constexpr int kMaxConvertOpset = 28;
size_t convert_opset(Model& m, int target);

// IR version that goes with a default-domain opset (7..28; onnx.helper.VERSION_TABLE).
int64_t ir_version_for_opset(int64_t opset);

}  // namespace oq::ir::passes
