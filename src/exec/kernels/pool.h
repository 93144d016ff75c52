// MaxPool's float paths without Indices (pool.cc), exposed for the tests: Separable (the max along W of every
// input row into a buffer, then along H; the kernel's path for 1-2 spatial axes) and Rows (one sweep of the
// output row per kernel tap: the naive reference Separable is tested against bitwise).
#pragma once

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::exec {

enum class MaxPoolPath { Separable, Rows };

// MaxPool of float x (rank 3 or 4) with `node`'s attributes through one path.
Tensor max_pool_float(const ir::Node& node, const Tensor& x, MaxPoolPath path);

}  // namespace oq::exec
