// Compress, ReverseSequence, CenterCropPad and Unique (select_extra.cc): the computations behind the kernels on
// tensors of any dtype the Tensor class holds except 4-bit (strings included), with validated arguments. They are
// the kernels' only implementation (plain data movement) and what the unit tests call directly.
#pragma once
#include <optional>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::exec {

// Slices of x along `axis` (none: the flattened x) whose condition entry is true; cond may be shorter.
Tensor compress(const ir::Node& node, const Tensor& x, const std::vector<bool>& cond, std::optional<int> axis);
// The first lens[b] entries along time_axis reversed for every batch entry b; batch/time axes are 0 and 1.
Tensor reverse_sequence(const ir::Node& node, const Tensor& x, const std::vector<int64_t>& lens, int batch_axis,
                        int time_axis);
// x centre-cropped / zero-padded to `target` (same rank).
Tensor center_crop_pad(const ir::Node& node, const Tensor& x, const Shape& target);
// {Y, indices, inverse_indices, counts} of ONNX Unique along `axis` (none: flattened).
std::vector<Tensor> unique(const ir::Node& node, const Tensor& x, std::optional<int> axis, bool sorted);

}  // namespace oq::exec
