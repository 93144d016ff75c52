// Helpers shared by the kernels of norm_extra.cc, pool_extra.cc, bitwise.cc: float-type checks and the
// float16 / bfloat16 widening (computed in float32, rounded back once at the end).
#pragma once
#include "core/tensor.h"
#include "exec/kernel.h"
#include "exec/kernels/strided.h"

namespace oq::exec {

// float32 / float64 / float16 always; bfloat16 when the schema version allows it (`bf16`).
inline void require_float_type(const ir::Node& node, DType t, const char* what, bool bf16) {
  if (t == DType::Float || t == DType::Double || t == DType::Float16) return;
  if (t == DType::BFloat16) {
    if (bf16) return;
    kfail(node, "{}: bfloat16 needs a newer version of the operator", what);
  }
  kfail(node, "{}: unsupported type {} (float16, float, double{})", what, dtype_name(t), bf16 ? ", bfloat16" : "");
}

// x as float32 / float64 for computing: float16 and bfloat16 widened to float32 (a copy), the others shared.
inline Tensor widen_half(const Tensor& x) {
  return x.dtype() == DType::Float16 || x.dtype() == DType::BFloat16 ? x.cast(DType::Float) : x;
}
// The computed tensor in the node's type `t` (a no-op unless t is a 16-bit float).
inline Tensor narrow_to(Tensor y, DType t) { return y.dtype() == t ? y : y.cast(t); }

}  // namespace oq::exec
