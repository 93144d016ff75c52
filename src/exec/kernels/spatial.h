// Attribute parsing and output-geometry rules shared by Conv, ConvTranspose and the pooling kernels
// (auto_pad NOTSET/SAME_UPPER/SAME_LOWER/VALID, pads, strides, dilations, ceil_mode).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::exec {

enum class AutoPad { NotSet, SameUpper, SameLower, Valid };

// The spatial attributes as written on the node (empty vectors = not given).
struct SpatialAttrs {
  AutoPad auto_pad = AutoPad::NotSet;
  std::vector<int64_t> kernel_shape, strides, dilations, pads;
  bool ceil_mode = false;
};

// Parses auto_pad/kernel_shape/strides/dilations/pads (and ceil_mode when `with_ceil`); validates signs.
SpatialAttrs parse_spatial(const ir::Node& node, bool with_ceil);

// Resolved geometry for one input shape: per spatial axis.
struct Geometry {
  std::vector<int64_t> kernel, strides, dilations, pads_begin, pads_end, out;
};

// A float output of `shape` must be allocatable (max_tensor_bytes, core/alloc.h) before a oneDNN primitive is
// built for it: creating one for a 100-million-column output took minutes (fuzz_session finding 14).
void check_output_size(const ir::Node& node, const Shape& shape);

// Conv / pooling: output size and pads for input spatial dims `in` and kernel `kernel` (checks ranks,
// throws a Model error naming the node on a non-positive output).
Geometry forward_geometry(const ir::Node& node, const SpatialAttrs& a, const std::vector<int64_t>& in,
                          const std::vector<int64_t>& kernel);

// ConvTranspose: output size and pads with out = s*(in-1) + (k-1)*d+1 - begin - end (pads_end may be negative
// when output_padding/output_shape extends the output beyond the last input contribution). SAME_UPPER /
// SAME_LOWER clamp a negative total padding to 0 as ONNX Runtime (the output is then shorter than in * stride).
// A given output_shape sets the pads from the total padding (spec, ONNX Runtime): `pads` are then ignored.
Geometry transpose_geometry(const ir::Node& node, const SpatialAttrs& a, const std::vector<int64_t>& in,
                            const std::vector<int64_t>& kernel, const std::vector<int64_t>& output_padding,
                            const std::vector<int64_t>& output_shape);

}  // namespace oq::exec
