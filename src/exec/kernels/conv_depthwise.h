// Depthwise 1-D and 2-D convolution on NCHW float tensors (group == C input channels, M = C * multiplier output
// channels, one filter each), bias and fused activation included; see conv_depthwise.cc for why it is written here.
#pragma once
#include "core/tensor.h"
#include "exec/kernels/fused_activation.h"
#include "exec/kernels/spatial.h"

namespace oq::exec {

// True when x [N,C,H,W] / [N,C,W], w [C*mult,1,KH,KW] / [C*mult,1,KW] and group C describe a depthwise convolution.
bool depthwise_nchw_applies(const Tensor& x, const Tensor& w, int64_t group, const Geometry& g);

// True when oneDNN's depthwise kernel on 16-channel blocks (the activations reordered from and to NCHW around
// it) is faster than depthwise_nchw for this 2-D depthwise convolution: 5x5 and 7x7 kernels on narrow planes,
// where the NCHW kernel's vectors along a row of few columns are mostly padding (measured: docs/benchmarks.md).
bool depthwise_prefers_blocked(const Tensor& x, const Tensor& w, const Geometry& g);

// y must have the output shape [N, M, OH, OW] / [N, M, OW]; every element is written.
void depthwise_nchw(const Tensor& x, const Tensor& w, const Tensor* b, const Geometry& g, const FusedActivation& act,
                    Tensor& y);

}  // namespace oq::exec
