// Helpers shared by the index kernels (indexing.cc: GatherND, ScatterND, ScatterElements; index_gen.cc:
// OneHot, NonZero, Trilu). Unlike strided.h these handle every dtype the Tensor class holds, strings included:
// an element is addressed by a pointer (raw bytes, or a std::string for STRING tensors) and moved or combined
// by a function picked once per run for the dtype.
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "exec/kernel.h"

namespace oq::exec {

// Reduction of ScatterND / ScatterElements (attribute `reduction`, opset 16: none/add/mul, 18: max/min).
enum class ScatterReduction { None, Add, Mul, Max, Min };
// Parses and validates the attribute for the node's opset (absent: None).
ScatterReduction parse_scatter_reduction(const KernelInit& ki);
const char* scatter_reduction_name(ScatterReduction r);

// Elements of a tensor addressed by index: raw bytes, or std::string objects for STRING tensors.
struct ElemPtr {
  uint8_t* base = nullptr;
  size_t size = 0;  // bytes per element (sizeof(std::string) for strings)
  void* at(int64_t i) const { return base + static_cast<size_t>(i) * size; }
};
ElemPtr elems(Tensor& t);
ElemPtr elems(const Tensor& t);  // (read-only use only)

// dst[i] = combine(dst[i], src[i]) for i < n; with ScatterReduction::None a plain copy dst[i] = src[i].
// Elements of type `t`: numbers, bool (add = or, mul = and, max = or, min = and, as numpy), Float16/BFloat16
// (computed in float, rounded back), strings (copy only).
using CombineFn = void (*)(void* dst, const void* src, int64_t n);
// The function for dtype `t` and reduction `r`; throws naming the node when the pair is not supported.
CombineFn combine_fn(const ir::Node& node, DType t, ScatterReduction r);

// Sets n elements from dst to the dtype's zero (0, false, "").
void zero_elems(DType t, void* dst, int64_t n);

// Index tensor values as int64 (int32 or int64 only, else an error naming `what`).
std::vector<int64_t> index_values(const ir::Node& node, const Tensor& t, const char* what, bool allow_int32);

}  // namespace oq::exec
