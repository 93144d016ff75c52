// Internal to shape inference (infer_shapes*.cc): the per-node context and the rule families.
#pragma once
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/passes/infer_shapes.h"

namespace oq::ir::passes::infer {

using Dims = std::vector<Dim>;
inline Dim kdim(int64_t v) { return Dim{v, {}}; }
inline Dim udim() { return Dim{}; }
// A size computed from attributes / values: negative (invalid) is unknown.
inline Dim sdim(int64_t v) { return v >= 0 ? kdim(v) : udim(); }
// Overflow-checked int64 arithmetic (nullopt on overflow).
inline std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}
inline std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
// Known size d times f >= 0; unknown when d is not known, f is negative or the product overflows.
inline Dim mul_dim(const Dim& d, int64_t f) {
  if (!d.known() || f < 0) return udim();
  auto p = checked_mul(d.value, f);
  return p ? kdim(*p) : udim();
}
// Largest rank / number of dims a rule builds from a value (a larger one: rank unknown, no huge allocation).
inline constexpr int64_t kMaxBuiltRank = 4096;
inline bool is_one(const Dim& d) { return d.value == 1; }
// Same size for sure: equal known values or the same symbol.
inline bool same_dim(const Dim& a, const Dim& b) {
  return (a.known() && b.known() && a.value == b.value) || (!a.param.empty() && a.param == b.param);
}
// Product of dims: known when all are; a lone symbol times ones is the symbol; else unknown.
Dim dim_product(const Dims& d, size_t from = 0, size_t to = SIZE_MAX);
// Axis in [0, r) or nullopt.
std::optional<int64_t> norm_axis(int64_t a, int64_t r);
// ONNX multidirectional broadcasting of the given shapes (nullptr or rank unknown: nullopt).
std::optional<Dims> broadcast(const std::vector<const std::optional<Dims>*>& shapes);
// Dims of a known int vector (negative entries: unknown).
Dims known_dims(const std::vector<int64_t>& v);

// Propagated values (TensorType::value) hold one Dim per element: a known int of any sign (param empty), a
// symbol (param set), or unknown (value kUnknownValue).
inline constexpr int64_t kUnknownValue = INT64_MIN;
inline Dim uval() { return Dim{kUnknownValue, {}}; }
inline bool vknown(const Dim& d) { return d.param.empty() && d.value != kUnknownValue; }
inline Dim dim_to_val(const Dim& d) { return d.known() || !d.param.empty() ? d : uval(); }
inline Dim val_to_dim(const Dim& d) { return !d.param.empty() ? Dim{-1, d.param} : d.value >= 0 ? d : udim(); }
Dims known_vals(const std::vector<int64_t>& v);
// v converted to the integer type t exactly as Cast computes it (two's complement wrap to the target width);
// nullopt when t is not an 8..64-bit integer type or v does not survive (negative to UInt64).
std::optional<int64_t> cast_int(int64_t v, DType t);

class Ctx {
 public:
  Ctx(const Node& n, int opset, const ShapeInfo& info, const ShapeInfo* outer,
      const std::unordered_map<std::string, const Tensor*>& consts)
      : n(n), opset(opset), info_(info), outer_(outer), consts_(consts) {}

  const Node& n;
  const int opset;

  size_t inputs() const { return n.inputs.size(); }
  bool has(size_t i) const { return i < n.inputs.size() && !n.inputs[i].empty(); }
  // Input i as far as it is known (an empty TensorType when absent or unknown).
  const TensorType& in(size_t i) const;
  const std::optional<Dims>& shape(size_t i) const { return in(i).shape; }
  std::optional<int> rank(size_t i) const { return in(i).rank(); }
  DType dtype(size_t i) const { return in(i).dtype; }
  // Constant value of input i (initializer that cannot be overridden, or a Constant node's output).
  const Tensor* constant(size_t i) const;
  // Integer values of input i when every element is known (a constant or a propagated value).
  std::optional<std::vector<int64_t>> ints(size_t i) const;
  // Propagated value of input i (element-wise dims), also from an integer constant.
  std::optional<Dims> value(size_t i) const;
  std::optional<std::vector<double>> floats(size_t i) const;

  // Output i: type and shape (shape nullopt: rank unknown).
  void set(size_t i, DType t, std::optional<Dims> s);
  void set_value(size_t i, Dims v);
  std::vector<TensorType> outs;

 private:
  const ShapeInfo& info_;
  const ShapeInfo* outer_;
  const std::unordered_map<std::string, const Tensor*>& consts_;
};

// The rule families; each returns false when it does not know the op.
bool infer_tensor_op(Ctx& c);   // shape manipulation and data propagation (infer_shapes_tensor.cc)
bool infer_index_op(Ctx& c);    // Slice, Split, Gather*, OneHot, DepthToSpace / SpaceToDepth (infer_shapes_index.cc)
bool infer_nn_op(Ctx& c);       // conv, pooling, matrix products, reductions, resizing, RNNs (infer_shapes_nn.cc)

}  // namespace oq::ir::passes::infer
