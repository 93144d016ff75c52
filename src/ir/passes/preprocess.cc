// The pre-processing pipeline run before calibration; its result is what gets quantized and written.
// The fusions and eliminations are the ones ONNX Runtime's quant_pre_process applies to these patterns
// (ConvBNFusion, ConvMulFusion, ConvAddFusion, MatmulBNFusion, NoopElimination, CastElimination, ExpandElimination,
// PadFusion, MatMulAddFusion, ReshapeFusion): the quantized model then has the nodes an ORT-prepared model would
// have (no Q/DQ pair around a zero Pad, a Gemm with an int32 bias instead of MatMul + float Add).
#include "core/log.h"
#include "ir/passes/infer_shapes.h"
#include "ir/passes/ort_graph_order.h"
#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {

PreprocessStats preprocess(Model& m) {
  PreprocessStats st;
  // ORT's NodeIndex of every node (the file's order, then creation order): the order the result is written in.
  OrtGraphOrder order(m.graph);
  // First, as onnxruntime inlines model-local functions when it loads the model (a no-op when the loader did).
  st.inlined_local_functions = inline_local_functions(m);
  order.number_inlined(m.graph);
  st.nodes_before = m.graph.nodes.size();
  // Identities are left to remove_identity, which keeps their input's name (ORT's EliminateIdentity runs before its
  // constant folding: Identity(k1) -> Add quantizes k1 as `k1_quantized`); the folding after it takes any it keeps.
  FoldOptions keep_id;
  keep_id.keep_identities = true;
  st.folded_constants = fold_constants(m, keep_id).total();
  // A model that computes in float16 takes ORT's float16 flow (quant_pre_process with skip_optimization): none of
  // the optimizer's rewrites below. Float16 constants alone (a Pow's exponent) do not make a float16 model.
  const bool half = computes_in_float16(m);
  // ORT's constant folding inlines an If on a constant condition (not in its float16 flow, which skips the
  // optimizer); the branch's own constants fold next, which can make another If's condition constant (ORT's
  // optimizer repeats its passes until nothing changes).
  for (size_t k = 0; !half && (k = inline_constant_ifs(m)) > 0;) {
    st.inlined_ifs += k;
    order.number_inlined(m.graph);
    st.folded_constants += fold_constants(m, keep_id).total();
  }
  st.removed_identities = remove_identity(m);
  st.folded_batchnorms = fold_batchnorm(m);
  // ORT's rule-based optimizer visits the nodes in order, trying ConvAddFusion, ConvMulFusion and ConvBNFusion on
  // every Conv and NoopElimination / CastElimination / ExpandElimination on their ops (its transpose optimizer
  // cancels Transpose pairs), until nothing changes: a
  // chain Conv -> Mul -> BN -> Add folds in chain order, a Conv -> Mul by 1 is a ConvMulFusion (the Conv comes
  // first), a no-op between a Conv and a Mul goes and the Mul then folds. Each pass below rewrites only a Conv's
  // single reader or a no-op, so running them in turn until none changes anything gives the same graph. Not for
  // float16 models: ORT's float16 flow skips the optimizer.
  if (!half) {
    for (;;) {
      const size_t f = fuse_conv_mul_add(m), n = eliminate_noops(m), mb = fuse_matmul_bn(m);
      order.number_fused(m.graph);  // fuse_matmul_bn's Gemms
      st.folded_batchnorms += mb;
      st.fused_conv_mul_adds += f;
      st.removed_noops += n;
      if (f + n + mb == 0) break;
      st.folded_batchnorms += fold_batchnorm(m);
    }
  }
  st.folded_constants += fold_constants(m).total();
  // After constant folding: a Pad's pads / constant_value and a bias given by Constant nodes are initializers.
  // After BatchNormalization folding, so that a BN after a MatMul + Add is left as ORT leaves it.
  st.fused_pads = fuse_pad_into_conv(m) + (half ? 0 : fuse_pad_into_avgpool(m));
  st.fused_matmul_adds = fuse_matmul_add(m);
  order.number_fused(m.graph);
  // ORT's ReshapeFusion comes after its constant folding and MatMulAddFusion, before GeluFusion / LayerNormFusion
  // (not for float16 models: ORT's float16 flow skips the optimizer).
  if (!half) st.fused_reshapes = fuse_reshape(m);
  if (!half) {  // ORT's GeluFusion / LayerNormFusion (its float16 flow skips the optimizer)
    const LnGeluStats f = fuse_layer_norm_gelu(m);
    st.fused_layer_norms = f.layer_norms;
    st.fused_gelus = f.gelus;
    order.number_fused(m.graph);
    OQ_DEBUG("preprocess: {} LayerNormalization and {} Gelu fused", f.layer_norms, f.gelus);
  }
  // Last, as ORT's inliner leaves the Swish body's Cast of its alpha constant unfolded. Not for float16 models:
  // ORT's float16 flow is quant_pre_process with skip_optimization (its optimizer would insert Casts), which
  // leaves function ops whole (docs/conformance.md).
  if (!half) st.inlined_functions = inline_functions(m);
  order.number_inlined(m.graph);
  // The nodes in the order quant_pre_process writes them (quantize_static's decisions follow it: a Resize /
  // MaxPool quantizes its output only when its input is marked already; DedicatedQDQPair numbers the readers in
  // it). The float16 flow skips ORT's optimizer, which keeps the file's order.
  order.apply(m.graph, !half);
  // Initializers also listed as graph inputs become constants only now, for the quantizer (as quantize_static takes
  // every initializer as one). Until here they were what ORT's optimizer takes them for from IR 4 on: values a caller
  // may override, so no pass above folded them (ORT keeps a Conv + Add / Mul / BatchNormalization reading one, and
  // quantize_static then quantizes the Add's constant: docs/conformance.md).
  const size_t inputs_before = m.graph.inputs.size();
  std::erase_if(m.graph.inputs, [&](const ValueInfo& v) { return m.graph.find_initializer(v.name) != nullptr; });
  st.initializer_inputs = inputs_before - m.graph.inputs.size();
  if (st.initializer_inputs) detail::drop_unused_initializers(m.graph, detail::subgraph_refs(m.graph));
  // The value_info written agree with the shapes inferred (a stale batch-1 one would let onnxruntime's optimizer
  // fold a Shape of a symbolic-batch tensor); an output declared without a shape gets the inferred one.
  declare_inferred_shapes(m);
  st.nodes_after = m.graph.nodes.size();
  OQ_DEBUG("preprocess: {} -> {} nodes ({} constants folded, {} Identity/Dropout removed, {} BatchNormalization "
           "folded, {} Mul/Add folded into Conv, {} no-op Add/Sub/Mul/Div/Cast/Expand and inverse Transpose / Cast "
           "pair nodes removed, {} Pad folded into Conv, {} MatMul+Add fused into Gemm, {} HardSwish/Mish/Swish/"
           "GroupNormalization inlined, {} If with a constant condition inlined)",
           st.nodes_before, st.nodes_after, st.folded_constants, st.removed_identities, st.folded_batchnorms,
           st.fused_conv_mul_adds, st.removed_noops, st.fused_pads, st.fused_matmul_adds, st.inlined_functions,
           st.inlined_ifs);
  return st;
}

}  // namespace oq::ir::passes
