// Det, Col2Im and AffineGrid (geometry_extra.cc): the computations behind the kernels (their only implementation,
// plain loops) on float32 / float64 tensors (Col2Im: any numeric type), arguments validated by the kernels.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace oq::exec {

// Determinants of x [*, M, M] (LU with partial pivoting, in double); shape [*].
Tensor det(const Tensor& x);
// ONNX Col2Im of x [N, C * prod(block), L] into [N, C, image...]; pads as [begin..., end...].
Tensor col2im(const Tensor& x, const std::vector<int64_t>& image, const std::vector<int64_t>& block,
              const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
              const std::vector<int64_t>& pads);
// ONNX AffineGrid: theta [N, 2, 3] with size [N, C, H, W] -> [N, H, W, 2]; theta [N, 3, 4] with
// size [N, C, D, H, W] -> [N, D, H, W, 3].
Tensor affine_grid(const Tensor& theta, const std::vector<int64_t>& size, bool align_corners);

}  // namespace oq::exec
