// GroupNormalization, LRN, MeanVarianceNormalization, LpNormalization and Hardmax (norm_extra.cc), LpPool and
// MaxUnpool (pool_extra.cc): the computations behind the kernels, on float32 or float64 tensors (the kernels
// compute float16 / bfloat16 in float32 and round the result back). Attributes arrive validated.
//
// GroupNormalization and LpPool have a threaded path in the kernel, MeanVarianceNormalization and
// LpNormalization a float32 path (namespace fast below, norm_fast.cc), and the naive functions here (direct
// loops, full index unravelling, double accumulation, no threading) are the yardstick they are tested against
// (tests/unit/test_kernels_extra.cc, tests/unit/test_norm_fast.cc). LRN and Hardmax run the functions below
// directly (float64 MeanVarianceNormalization and LpNormalization too): rare in models of the field.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "exec/kernels/compute_ref.h"

namespace oq::exec::ref {

// GroupNormalization: x [N, C, ...] (C divisible by `groups`); scale / bias [C] (opset 21) or [groups] (opset
// 18, per_group_affine). Stage one — (x - mean) / sqrt(var + epsilon) over each (n, group) — in `stash`
// precision (DType::Float or DType::Double, rounded to it), then y = normalized * scale + bias in x's type.
Tensor group_norm(const Tensor& x, const Tensor& scale, const Tensor& bias, int64_t groups, float epsilon,
                  bool per_group_affine, DType stash);

// LRN across channels of x [N, C, ...]: y = x / (bias + alpha / size * sum of x^2 over channels
// [c - floor((size-1)/2), c + ceil((size-1)/2)])^beta.
Tensor lrn(const Tensor& x, int64_t size, float alpha, float beta, float bias);

// MeanVarianceNormalization over `axes` (normalised, distinct): (x - mean) / (sqrt(E[x^2] - mean^2) + 1e-9).
Tensor mean_variance_norm(const Tensor& x, const std::vector<int64_t>& axes);

// LpNormalization along `axis` (normalised), p = 1 or 2; a zero norm gives 0.
Tensor lp_norm(const Tensor& x, int axis, int p);

// Hardmax: 1 at the first maximum, 0 elsewhere. coerce_2d (opsets < 13): over all axes from `axis` on, as one
// row; else along `axis` only. A NaN counts as the maximum (the first NaN wins, as numpy.argmax).
Tensor hardmax(const Tensor& x, int axis, bool coerce_2d);

// LpPool over the spatial axes of x [N, C, ...]: (sum over the window of |x|^p)^(1/p); window positions
// outside the input (padding) contribute nothing. Geometry as for the other pools.
Tensor lp_pool(const Tensor& x, const ConvGeom& g, const std::vector<int64_t>& out_spatial, int64_t p);

// MaxUnpool: a zero tensor of `out_shape` with y.flat[indices[i]] = x[i] (later elements win on duplicates);
// `indices` same shape as x, every value in [0, numel(out_shape)) (checked by the caller).
Tensor max_unpool(const Tensor& x, const Tensor& indices, const Shape& out_shape);

}  // namespace oq::exec::ref

namespace oq::exec::fast {

// The kernels' float32 paths (float16 / bfloat16 arrive widened to float32): the formulas of the references
// above with vectorised row passes (exec/kernels/row_stats.h), statistics in double, threads over rows.
Tensor mean_variance_norm(const Tensor& x, const std::vector<int64_t>& axes);
Tensor lp_norm(const Tensor& x, int axis, int p);

}  // namespace oq::exec::fast
