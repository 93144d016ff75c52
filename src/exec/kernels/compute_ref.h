// Naive reference implementations of the compute kernels (Conv, ConvTranspose, Gemm, MatMul, pooling,
// normalization, Softmax). Direct loops, any number of spatial axes, no threading: they are the yardstick the
// optimised kernels are tested against. Output tensors are allocated by the caller with the right shape
// unless the function returns one.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace oq::exec::ref {

// Per spatial axis. ConvTranspose: out = s*(in-1) + (k-1)*d+1 - pads_begin - pads_end (either may be < 0).
struct ConvGeom {
  int64_t group = 1;
  std::vector<int64_t> kernel, strides, dilations, pads_begin, pads_end;
};

// x [N,C,...], w [M,C/group,k...], b [M] or null, y [N,M,out...].
void conv(const Tensor& x, const Tensor& w, const Tensor* b, const ConvGeom& g, Tensor& y);
// x [N,C,...], w [C,M/group,k...], b [M] or null, y [N,M,out...].
void conv_transpose(const Tensor& x, const Tensor& w, const Tensor* b, const ConvGeom& g, Tensor& y);

// y = alpha * op(a) @ op(b) + beta * c (c unidirectionally broadcast to [M,N], may be null).
void gemm(const Tensor& a, const Tensor& b, const Tensor* c, float alpha, float beta, bool trans_a,
          bool trans_b, Tensor& y);
// numpy matmul (1-D operands promoted and squeezed, batch dims broadcast).
Tensor matmul(const Tensor& a, const Tensor& b);

// Pooling over the spatial axes of x [N,C,...]; y [N,C,out...]. Window positions outside the input are
// skipped. MaxPool indices (optional) are flat offsets into x (storage_order 1: spatial axes column-major).
void max_pool(const Tensor& x, const ConvGeom& g, Tensor& y, Tensor* indices, int storage_order);
// count_include_pad: divide by the window positions inside [-pads_begin, in + pads_end).
void avg_pool(const Tensor& x, const ConvGeom& g, bool count_include_pad, Tensor& y);

// Inference BatchNormalization. Per channel (scale etc. [C]) or, for the old spatial=0 form, per element
// of one sample (scale etc. shaped like x without the batch axis).
void batch_norm(const Tensor& x, const Tensor& scale, const Tensor& bias, const Tensor& mean,
                const Tensor& var, float epsilon, Tensor& y);
void instance_norm(const Tensor& x, const Tensor& scale, const Tensor& bias, float epsilon, Tensor& y);
// Normalizes over axes [axis, rank); mean / inv_std_dev (optional) shaped x.shape[:axis] + [1]*(rank-axis).
// rms: RMSNormalization (no mean subtracted; `bias` and `mean` are unused).
void layer_norm(const Tensor& x, const Tensor& scale, const Tensor* bias, int axis, float epsilon, Tensor& y,
                Tensor* mean, Tensor* inv_std_dev, bool rms = false);
// opset < 13: x coerced to 2-D at `axis`; opset >= 13: along `axis` only. `log` selects LogSoftmax.
void softmax(const Tensor& x, int axis, int opset, bool log, Tensor& y);

}  // namespace oq::exec::ref
