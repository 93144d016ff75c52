// ConvTranspose of one or two spatial axes (1-D as H = 1) as GEMM + col2im, ONNX Runtime's algorithm, for the
// geometries where oneDNN 2.6's deconvolution is slow (few channels, kernel == stride upsampling, 1-D): per
// batch, group and block of input rows, T[(m, kh, kw), (ih, iw)] = W_gᵀ · X_g over the group's channels (one
// sgemm; an outer product with one channel per group), then every value of T lands on the output position it
// reaches. When the kernel equals the stride with no dilation and no begin pad (k2s2 upsampling: each input
// pixel owns a disjoint KHxKW block of the output), T plus the bias is stored there; otherwise the output starts
// as the bias and T is added (col2im).
// The naive reference is ref::conv_transpose (compute_ref.h), which the tests compare this path against.
#pragma once
#include <cstdint>

namespace oq::exec {

struct DeconvGemmShape {
  int64_t batch = 1, channels = 1, group = 1, m_per_group = 1;
  int64_t ih = 1, iw = 1, oh = 1, ow = 1;  // input and output extents (1-D: ih = oh = 1)
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t ph = 0, pw = 0;                  // begin pads (>= 0); the end follows from oh, ow
};

// Kernel == stride, no dilation, no begin pad, and the output no longer than the input's reach: every output
// value is exactly one value of T (stored, no accumulation).
bool deconv_gemm_is_exact(const DeconvGemmShape& s);

// y [batch, group * m_per_group, oh, ow] from x [batch, channels, ih, iw], w [channels, m_per_group, kh, kw]
// and the optional bias b [group * m_per_group]. Returns oneDNN's status of a failed sgemm, 0 on success.
int deconv_gemm(const DeconvGemmShape& s, const float* x, const float* w, const float* b, float* y);

}  // namespace oq::exec
