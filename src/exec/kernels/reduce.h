// Reductions (ReduceSum/Mean/Max/Min/Prod/L2/L1/SumSquare/LogSum/LogSumExp), ArgMax/ArgMin and TopK (reduce.cc):
// the naive references the optimised kernels are tested against.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace oq::exec {

enum class ReduceOp { Sum, Mean, Max, Min, Prod, L2, L1, SumSquare, LogSum, LogSumExp };

// The Reduce kernel's float32 path when only the innermost axes are reduced: y[r] = op over the contiguous row
// x[r * len, (r + 1) * len), r < rows, threads over rows. Sums in double (row_stats.h); Max / Min propagate NaN;
// LogSumExp as ORT, max + log(sum(exp(x - max))) (finite for any finite input; the kernel's other LogSumExp
// path shifts by the max too). Returns false, writing nothing, for Prod and LogSum (no row path).
bool reduce_rows_float(ReduceOp op, const float* x, int64_t rows, int64_t len, float* y);

// Reduces `x` (float, double, int32 or int64) over `axes` (non-negative, any order; empty = all axes),
// element by element in double. The result has x's dtype.
Tensor naive_reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, bool keepdims);

// Index (INT64) of the max/min along `axis` (non-negative); ties -> first, or last when select_last.
Tensor naive_arg_reduce(bool is_max, const Tensor& x, int64_t axis, bool keepdims, bool select_last);

// TopK along `axis` (non-negative) by full stable sort of each slice: values (x's dtype) and INT64 indices,
// sorted (largest first when largest, else smallest first), ties by lower index.
void naive_topk(const Tensor& x, int64_t k, int64_t axis, bool largest, Tensor& values, Tensor& indices);

}  // namespace oq::exec
