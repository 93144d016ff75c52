#include "exec/finite.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "core/clones.h"
#include "core/parallel.h"

namespace oq::exec {

namespace {

// Largest |bits| of p[0, n): a value is NaN or infinite when its exponent bits are all ones (>= 0x7f800000).
// An integer max reduction, so that the loop vectorises without -ffast-math.
OQ_TARGET_CLONES uint32_t max_abs_bits(const float* __restrict p, int64_t n) {
  const uint32_t* u = reinterpret_cast<const uint32_t*>(p);
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, u[i] & 0x7fffffffu);
  return m;
}

template <typename U>
bool bits_finite(const Tensor& t, U exponent_mask) {
  const U* u = static_cast<const U*>(t.raw());
  for (int64_t i = 0; i < t.numel(); ++i)
    if ((u[i] & exponent_mask) == exponent_mask) return false;
  return true;
}

thread_local bool t_feeds_finite = false;

// Ops whose float outputs are finite whenever their inputs are, overflow aside (a sum or product beyond
// FLT_MAX, a Cast to float16 beyond 65504): data movement, comparisons and integer-valued ops, piecewise-linear
// and bounded activations, sums and products (Conv, Gemm, MatMul, Add, Mul, ...), normalisations whose divisor
// is at least sqrt(epsilon). Not listed (so their outputs count as possibly non-finite): Div, Log, Sqrt, Pow,
// Reciprocal, Exp and the like, control flow, anything else. BatchNormalization, the normalisations with an
// epsilon, the pools with pads, Div, Constant and ConstantOfShape are decided by safe_node() below.
const std::unordered_set<std::string>& safe_ops() {
  static const std::unordered_set<std::string> s = {
      // data movement and selection
      "Identity", "Dropout", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice",
      "Gather", "GatherElements", "GatherND", "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth", "Resize",
      "Upsample", "Where", "ScatterND", "ScatterElements", "Trilu", "ReverseSequence", "Compress", "TopK",
      "Cast", "CastLike", "QuantizeLinear", "DequantizeLinear", "_OqToBlocked", "_OqFromBlocked",
      // integer / boolean results
      "Shape", "Size", "NonZero", "ArgMax", "ArgMin", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
      "Not", "And", "Or", "Xor", "IsNaN", "IsInf", "Range", "OneHot",
      // arithmetic (overflow aside)
      "Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "Add", "Sub", "Mul", "Sum", "Mean", "Max", "Min", "Neg",
      "Abs", "Sign", "Floor", "Ceil", "Round", "CumSum", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2",
      "ReduceProd",
      // activations and pools
      "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu",
      "ThresholdedRelu", "Shrink", "Erf", "Gelu", "Softsign", "Softmax", "LogSoftmax", "Hardmax", "GlobalMaxPool",
      "GlobalAveragePool", "MeanVarianceNormalization"};
  return s;
}

bool values_all(const Tensor& t, bool (*pred)(double)) {
  if (!is_float(t.dtype())) return true;
  const Tensor d = t.cast(DType::Double);
  const double* p = d.data<double>();
  for (int64_t i = 0; i < d.numel(); ++i)
    if (!pred(p[i])) return false;
  return true;
}

bool safe_node(const ir::Node& n, const std::function<const Tensor*(const std::string&)>& constant) {
  if (!n.is_default_domain() && !n.op_type.starts_with("_Oq")) return false;
  const std::string& op = n.op_type;
  if (safe_ops().count(op)) return true;
  if (op == "BatchNormalization") {  // (x - mean) * scale / sqrt(var + epsilon): var a constant, var + eps > 0
    const Tensor* var = constant(n.input(4));
    const double eps = n.attr_float("epsilon", 1e-5f);
    if (!var || !is_float(var->dtype())) return false;
    const Tensor d = var->cast(DType::Double);
    for (int64_t i = 0; i < d.numel(); ++i)
      if (!(d.data<double>()[i] + eps > 0)) return false;
    return true;
  }
  if (op == "MaxPool" || op == "AveragePool") {  // a window wholly in the padding: -inf / 0 / 0 = NaN
    const std::vector<int64_t> k = n.attr_ints("kernel_shape"), pads = n.attr_ints("pads");
    for (size_t i = 0; i < pads.size(); ++i)
      if (k.empty() || pads[i] >= k[i % k.size()]) return false;
    return true;
  }
  if (op == "InstanceNormalization" || op == "LayerNormalization" || op == "GroupNormalization")
    return n.attr_float("epsilon", 1e-5f) > 0;  // divisor sqrt(var + epsilon), var >= 0
  if (op == "Div") {  // a constant divisor without zeros
    const Tensor* b = constant(n.input(1));
    return b && values_all(*b, [](double v) { return v != 0 && std::isfinite(v); });
  }
  if (op == "Constant" || op == "ConstantOfShape") {
    if (const Tensor* v = n.attr_tensor("value")) return all_finite(*v);
    for (float f : n.attr_floats("value_floats"))
      if (!std::isfinite(f)) return false;
    return std::isfinite(n.attr_float("value_float", 0.f));
  }
  return false;
}

}  // namespace

bool all_finite(const float* p, int64_t n) {
  if (n <= 0) return true;
  std::atomic<bool> ok{true};
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    if (max_abs_bits(p + b, e - b) >= 0x7f800000u) ok.store(false, std::memory_order_relaxed);
  });
  return ok.load();
}

bool all_finite(const Tensor& t) {
  switch (t.dtype()) {
    case DType::Float: return all_finite(t.data<float>(), t.numel());
    case DType::Float16: return bits_finite<uint16_t>(t, 0x7c00);
    case DType::BFloat16: return bits_finite<uint16_t>(t, 0x7f80);
    case DType::Double: return bits_finite<uint64_t>(t, 0x7ff0000000000000ull);
    default: return true;
  }
}

std::vector<char> finite_when_feeds_are(const ir::Graph& g, const std::vector<size_t>& order,
                                        const std::function<const Tensor*(const std::string&)>& constant) {
  std::unordered_map<std::string, bool> ok;  // value name -> finite whenever the feeds are
  for (const auto* in : g.real_inputs()) ok[in->name] = true;
  for (const auto& init : g.initializers) ok[init.name] = all_finite(init.tensor);
  std::vector<char> r(g.nodes.size(), 0);
  for (size_t i : order) {
    const ir::Node& n = g.nodes[i];
    bool inputs = true;
    for (const auto& t : n.inputs) {
      if (t.empty()) continue;
      auto it = ok.find(t);
      inputs = inputs && it != ok.end() && it->second;  // an unknown name (outer scope): not known finite
    }
    r[i] = inputs;
    const bool outputs = inputs && safe_node(n, constant);
    for (const auto& o : n.outputs)
      if (!o.empty()) ok[o] = outputs;
  }
  return r;
}

FeedsFiniteScope::FeedsFiniteScope(bool finite) : prev_(t_feeds_finite) { t_feeds_finite = finite; }
FeedsFiniteScope::~FeedsFiniteScope() { t_feeds_finite = prev_; }
bool feeds_finite() { return t_feeds_finite; }

}  // namespace oq::exec
