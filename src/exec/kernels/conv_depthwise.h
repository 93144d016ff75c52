// Depthwise 1-D and 2-D convolution on NCHW float tensors (group == C input channels, M = C * multiplier output
// channels, one filter each), bias and fused activation included; see conv_depthwise.cc for why it is written here.
#pragma once
#include "core/tensor.h"
#include "exec/kernels/fused_activation.h"
#include "exec/kernels/spatial.h"

namespace oq::exec {

// True when x [N,C,H,W] / [N,C,W], w [C*mult,1,KH,KW] / [C*mult,1,KW] and group C describe a depthwise convolution.
bool depthwise_nchw_applies(const Tensor& x, const Tensor& w, int64_t group, const Geometry& g);

// y must have the output shape [N, M, OH, OW] / [N, M, OW]; every element is written.
void depthwise_nchw(const Tensor& x, const Tensor& w, const Tensor* b, const Geometry& g, const FusedActivation& act,
                    Tensor& y);

}  // namespace oq::exec
