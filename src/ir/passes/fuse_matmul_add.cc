// MatMul + Add -> Gemm, the pre-processing counterpart of ONNX Runtime's MatMulAddFusion (run by
// onnxruntime.quantization's quant_pre_process at ORT_ENABLE_BASIC): the dense layer of a tf2onnx export
// (MatMul with the kernel, Add with the bias) becomes the one Gemm that ORT's quantizer would see, so the bias
// is quantized to int32 with the weight instead of being a float Add between two Q/DQ pairs.
//
// Narrower than ORT on purpose: ORT also fuses a non-constant B or C, a C of shape [M, N] / [M, 1] equal to A's
// first dim, and an A of rank > 2 with fully static shape (it then adds Reshape nodes around the Gemm). Here B and
// C must be initializers (weight and bias of a dense layer, what the quantizer handles; one a caller may override,
// also listed as a graph input, is fused as ORT fuses it) and A must have rank 2
// (symbolic dims are fine): a Reshape pair would give the quantizer two more nodes to wrap for no benefit.
#include <algorithm>

#include "ir/passes/infer_shapes.h"
#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

// Shape of a float initializer, nullopt when `n` is not one. One also listed as a graph input counts: ORT fuses a
// non-constant B or C too, and quantize_static then quantizes such an initializer as a weight / int32 bias.
std::optional<Shape> float_constant_shape(const Graph& g, const std::string& n) {
  const Tensor* t = constant_value(g, n, /*overridable=*/false);
  if (!t || t->dtype() != DType::Float) return std::nullopt;
  return t->shape();
}

}  // namespace

size_t fuse_matmul_add(Model& m) {
  Graph& g = m.graph;
  const int opset = static_cast<int>(m.default_opset());
  if (opset < 7 || !has_op(g, {"MatMul"})) return 0;  // Gemm broadcasts C without `broadcast` from opset 7 on
  const auto sub = subgraph_refs(g);
  const GraphIndex idx(g);
  // A's rank: ORT knows it from the shape inference quant_pre_process runs first; tf2onnx exports carry no
  // value_info (the dense layer after GlobalAveragePool -> Squeeze).
  const ShapeInfo shapes = infer_shapes(m);
  NameGen names(g);
  std::vector<char> dead(g.nodes.size(), 0);
  size_t fused = 0;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    Node& mm = g.nodes[k];
    if (mm.op_type != "MatMul" || !mm.is_default_domain() || mm.inputs.size() != 2 || mm.outputs.size() != 1)
      continue;
    const std::string& y = mm.outputs[0];
    // The MatMul output: read by exactly one input of one node, not a graph output, not seen by a sub-graph.
    if (y.empty() || g.is_graph_output(y) || sub.count(y)) continue;
    auto cs = idx.consumers.find(y);
    if (cs == idx.consumers.end() || cs->second.size() != 1) continue;
    const size_t ai = cs->second[0];
    const Node& add = g.nodes[ai];
    if (add.op_type != "Add" || !add.is_default_domain() || add.inputs.size() != 2 || add.outputs.size() != 1 ||
        add.outputs[0].empty() || dead[ai])
      continue;
    if (std::count(add.inputs.begin(), add.inputs.end(), y) != 1) continue;  // Add(y, y): no bias
    const std::string& bias = add.inputs[0] == y ? add.inputs[1] : add.inputs[0];
    // B: constant float [K, N]; A: rank 2.
    auto bs = float_constant_shape(g, mm.inputs[1]);
    if (!bs || bs->size() != 2) continue;
    auto ra = shapes.rank(mm.inputs[0]);
    if (!ra || *ra != 2) continue;
    // C: constant float [N] or [1, N] (what Gemm broadcasts over the rows without depending on M).
    auto cshape = float_constant_shape(g, bias);
    const int64_t n = (*bs)[1];
    if (!cshape || !(*cshape == Shape{n} || *cshape == Shape{1, n})) continue;

    Node gemm;
    gemm.name = names.make(mm.name + kMatMulAddFusionSuffix);  // ORT's name for the fused node
    gemm.op_type = "Gemm";
    gemm.domain = mm.domain;
    gemm.inputs = {mm.inputs[0], mm.inputs[1], bias};
    gemm.outputs = {add.outputs[0]};
    gemm.set_attr_int("transA", 0);  // explicit, in ORT's order
    gemm.set_attr_float("alpha", 1.f);
    gemm.set_attr_int("transB", 0);
    gemm.set_attr_float("beta", 1.f);
    mm = std::move(gemm);  // in the MatMul's place: A, B and C are all available there
    dead[ai] = 1;
    ++fused;
  }
  if (!fused) return 0;
  std::vector<Node> kept;
  kept.reserve(g.nodes.size() - fused);
  for (size_t k = 0; k < g.nodes.size(); ++k)
    if (!dead[k]) kept.push_back(std::move(g.nodes[k]));
  g.nodes = std::move(kept);
  prune_value_info(g);  // the MatMul output is gone
  return fused;
}

}  // namespace oq::ir::passes
