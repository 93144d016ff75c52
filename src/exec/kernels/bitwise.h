// BitwiseAnd / BitwiseOr / BitwiseXor / BitwiseNot (18) and BitShift (11) — bitwise.cc. The naive reference
// (full index unravelling, one element at a time) that the broadcast kernels are tested against.
#pragma once
#include "core/tensor.h"

namespace oq::exec {

enum class BitOp { And, Or, Xor, Not, ShiftLeft, ShiftRight };

// a op b with numpy broadcasting (b ignored for Not). Integer types only (signed shifts: BitShift-28); a shift by
// the type's width or more, or by a negative count, gives -1 for a right shift of a negative value, else 0.
Tensor bitwise_naive(BitOp op, const Tensor& a, const Tensor* b);

}  // namespace oq::exec
