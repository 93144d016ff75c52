// Reductions (ReduceSum/Mean/Max/Min/Prod/L2/L1/SumSquare/LogSum/LogSumExp), ArgMax/ArgMin and TopK (reduce.cc):
// the naive references the optimised kernels are tested against.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace oq::exec {

enum class ReduceOp { Sum, Mean, Max, Min, Prod, L2, L1, SumSquare, LogSum, LogSumExp };

// Reduces `x` (float, double, int32 or int64) over `axes` (non-negative, any order; empty = all axes),
// element by element in double. The result has x's dtype.
Tensor naive_reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, bool keepdims);

// Index (INT64) of the max/min along `axis` (non-negative); ties -> first, or last when select_last.
Tensor naive_arg_reduce(bool is_max, const Tensor& x, int64_t axis, bool keepdims, bool select_last);

// TopK along `axis` (non-negative) by full stable sort of each slice: values (x's dtype) and INT64 indices,
// sorted (largest first when largest, else smallest first), ties by lower index.
void naive_topk(const Tensor& x, int64_t k, int64_t axis, bool largest, Tensor& values, Tensor& indices);

}  // namespace oq::exec
