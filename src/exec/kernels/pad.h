// Pad building blocks (exposed for tests).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::exec {

enum class PadMode { Constant, Reflect, Edge, Wrap };

// Input index for each output position of one axis of size d padded by pb / pe; -1 marks constant fill.
// Negative pads crop first and the modes then pad the cropped extent (ONNX Runtime's order: it matters for
// wrap). An extent cropped to nothing gives fill everywhere (the kernel refuses it in the non-constant modes).
std::vector<int64_t> pad_axis_map(int64_t d, int64_t pb, int64_t pe, PadMode mode);

// pads = [begin_0 .. begin_{r-1}, end_0 .. end_{r-1}]; fill: one element of x's dtype (constant mode).
// Constant mode goes through pad_constant, the other modes through pad_tensor_general.
Tensor pad_tensor(const ir::Node& node, const Tensor& x, const std::vector<int64_t>& pads, PadMode mode,
                  const Tensor& fill);
// Any mode as a gather through pad_axis_map index maps (gather_by_maps): the reference for pad_constant.
Tensor pad_tensor_general(const ir::Node& node, const Tensor& x, const std::vector<int64_t>& pads, PadMode mode,
                          const Tensor& fill);
// Constant-mode padding of a dense array of `esz`-byte elements (pads as above, already validated; `out` has
// the padded shape): each output row is fill, one memcpy'd input row, fill; rows outside the input are fill.
void pad_constant(size_t esz, const Shape& in_shape, const uint8_t* in, const std::vector<int64_t>& pads,
                  const uint8_t* fill, uint8_t* out);

}  // namespace oq::exec
