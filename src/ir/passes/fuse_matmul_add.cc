// MatMul + Add -> Gemm, the pre-processing counterpart of ONNX Runtime's MatMulAddFusion (run by
// onnxruntime.quantization's quant_pre_process at ORT_ENABLE_BASIC): the dense layer of a tf2onnx export
// (MatMul with the kernel, Add with the bias) becomes the one Gemm that ORT's quantizer would see, so the bias
// is quantized to int32 with the weight instead of being a float Add between two Q/DQ pairs.
//
// Narrower than ORT on purpose: ORT also fuses a non-constant B or C, a C of shape [M, N] / [M, 1] equal to A's
// first dim, and an A of rank > 2 with fully static shape (it then adds Reshape nodes around the Gemm). Here B and
// C must be constants (weight and bias of a dense layer, what the quantizer handles) and A must have rank 2
// (symbolic dims are fine): a Reshape pair would give the quantizer two more nodes to wrap for no benefit.
#include <algorithm>
#include <unordered_map>

#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

// Ranks of the graph's tensors as far as they follow without running the model: initializers, graph inputs /
// outputs / value_info with a shape, and node outputs whose rank is fixed by the op and its input ranks. ORT
// knows these from the symbolic shape inference quant_pre_process runs first; tf2onnx exports carry no
// value_info, so without this the dense layer after GlobalAveragePool -> Squeeze would never be fused.
class Ranks {
 public:
  Ranks(const Graph& g, int opset, bool ovr) : g_(g) {
    for (const auto& n : g.nodes) {
      auto r = deduce(n, opset, ovr);
      if (!r) continue;
      for (size_t k = 0; k < n.outputs.size(); ++k)
        if (!n.outputs[k].empty() && (k == 0 || n.op_type == "Split")) r_.emplace(n.outputs[k], *r);
    }
  }

  std::optional<int> of(const std::string& n) const {
    if (n.empty()) return std::nullopt;
    if (auto r = known_rank(g_, n)) return r;  // initializer or value_info: authoritative
    auto it = r_.find(n);
    if (it == r_.end()) return std::nullopt;
    return it->second;
  }

 private:
  // Number of distinct entries of an axes list (attribute, or constant int64 input), nullopt when not known.
  std::optional<int> count_axes(const Node& n, bool from_input, bool ovr) const {
    std::vector<int64_t> axes;
    if (from_input) {
      const Tensor* t = constant_value(g_, n.input(1), ovr);
      if (!t || t->dtype() != DType::Int64) return std::nullopt;
      axes = t->to_int64s();
    } else {
      if (!n.has_attr("axes")) return std::nullopt;
      axes = n.attr_ints("axes");
    }
    if (axes.empty()) return std::nullopt;
    std::sort(axes.begin(), axes.end());
    if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) return std::nullopt;  // invalid model
    return static_cast<int>(axes.size());
  }

  std::optional<int> deduce(const Node& n, int opset, bool ovr) const {
    static const std::unordered_set<std::string> kSameRank = {
        "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "Sigmoid", "HardSigmoid",
        "HardSwish", "Tanh", "Softplus", "Softsign", "Gelu", "Mish", "Erf", "Exp", "Log", "Sqrt", "Reciprocal",
        "Neg", "Abs", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Clip", "Softmax", "LogSoftmax", "Hardmax",
        "Identity", "Dropout", "Cast", "CastLike", "Pad", "Transpose", "Conv", "ConvTranspose", "MaxPool",
        "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "BatchNormalization",
        "InstanceNormalization", "LayerNormalization", "GroupNormalization", "LpNormalization", "LRN",
        "DepthToSpace", "SpaceToDepth", "Resize", "Upsample", "QuantizeLinear", "DequantizeLinear", "Slice", "Tile",
        "Concat", "Split", "CumSum", "Trilu", "Not", "IsNaN", "IsInf"};
    static const std::unordered_set<std::string> kBroadcast = {
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less", "Greater",
        "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Mod"};
    static const std::unordered_set<std::string> kReduce = {
        "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
        "ReduceLogSumExp", "ReduceSumSquare"};
    if (!n.is_default_domain() || n.outputs.empty()) return std::nullopt;
    const std::string& op = n.op_type;
    if (op == "Flatten" || op == "Gemm") return 2;
    if (op == "Shape") return 1;
    if (op == "Size") return 0;
    if (kSameRank.count(op)) return of(n.input(0));
    if (kReduce.count(op) && n.attr_int("keepdims", 1) != 0) return of(n.input(0));
    if (kBroadcast.count(op)) {
      int r = 0;
      for (const auto& in : n.inputs) {
        if (in.empty()) continue;
        auto ri = of(in);
        if (!ri) return std::nullopt;
        r = std::max(r, *ri);
      }
      return r;
    }
    if (op == "MatMul") {  // numpy matmul: a 1-D operand gets a dim prepended / appended, then removed
      auto ra = of(n.input(0)), rb = of(n.input(1));
      if (!ra || !rb || *ra < 1 || *rb < 1) return std::nullopt;
      if (*ra == 1 && *rb == 1) return 0;
      if (*ra == 1) return *rb - 1;
      if (*rb == 1) return *ra - 1;
      return std::max(*ra, *rb);
    }
    if (op == "Reshape") {
      const Tensor* s = constant_value(g_, n.input(1), ovr);
      if (!s || s->rank() != 1) return std::nullopt;
      return static_cast<int>(s->numel());
    }
    if (op == "Squeeze" || op == "Unsqueeze") {
      auto r = of(n.input(0));
      auto k = count_axes(n, opset >= 13, ovr);
      if (!r || !k) return std::nullopt;
      return op == "Squeeze" ? *r - *k : *r + *k;
    }
    return std::nullopt;
  }

  const Graph& g_;
  std::unordered_map<std::string, int> r_;
};

// Shape of a float constant, nullopt when `n` is not one.
std::optional<Shape> float_constant_shape(const Graph& g, const std::string& n, bool ovr) {
  const Tensor* t = constant_value(g, n, ovr);
  if (!t || t->dtype() != DType::Float) return std::nullopt;
  return t->shape();
}

}  // namespace

size_t fuse_matmul_add(Model& m) {
  Graph& g = m.graph;
  const int opset = static_cast<int>(m.default_opset());
  if (opset < 7) return 0;  // Gemm broadcasts C without the `broadcast` attribute from opset 7 on
  const bool ovr = inputs_overridable(m);
  const auto sub = subgraph_refs(g);
  const GraphIndex idx(g);
  const Ranks ranks(g, opset, ovr);
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
    auto bs = float_constant_shape(g, mm.inputs[1], ovr);
    if (!bs || bs->size() != 2) continue;
    auto ra = ranks.of(mm.inputs[0]);
    if (!ra || *ra != 2) continue;
    // C: constant float [N] or [1, N] (what Gemm broadcasts over the rows without depending on M).
    auto cshape = float_constant_shape(g, bias, ovr);
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
