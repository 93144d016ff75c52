// BitwiseAnd / BitwiseOr / BitwiseXor / BitwiseNot (18) and BitShift (11) — bitwise.cc. The naive reference
// (full index unravelling, one element at a time) that the broadcast kernels are tested against.
#pragma once
#include "core/tensor.h"

namespace oq::exec {

enum class BitOp { And, Or, Xor, Not, ShiftLeft, ShiftRight };

// a op b with numpy broadcasting (b ignored for Not). Integer types only; a shift by the type's width or more
// gives 0 (numpy's result; C++ leaves it undefined).
Tensor bitwise_naive(BitOp op, const Tensor& a, const Tensor* b);

}  // namespace oq::exec
