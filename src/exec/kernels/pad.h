// Pad building blocks (exposed for tests).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::exec {

enum class PadMode { Constant, Reflect, Edge, Wrap };

// Input index for each output position of one axis of size d padded by pb / pe (negative = crop); -1 marks
// constant fill.
std::vector<int64_t> pad_axis_map(int64_t d, int64_t pb, int64_t pe, PadMode mode);

// pads = [begin_0 .. begin_{r-1}, end_0 .. end_{r-1}]; fill: one element of x's dtype (constant mode).
Tensor pad_tensor(const ir::Node& node, const Tensor& x, const std::vector<int64_t>& pads, PadMode mode,
                  const Tensor& fill);

}  // namespace oq::exec
