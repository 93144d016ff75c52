// Conv on channel-blocked tensors (exec/layout.h); conv.cc hands it the Conv nodes the layout pass marked.
#pragma once
#include <memory>

#include "exec/kernel.h"

namespace oq::exec {

std::unique_ptr<Kernel> make_conv_blocked(const KernelInit& init);

// NCHW copy [N, channels, H, W] of a blocked tensor [N, ceil(channels/B), H, W, B].
Tensor blocked_to_nchw(const Tensor& x, int64_t channels);

// The values of the real channels of a blocked tensor, shape [N, channels, H, W] but NOT in NCHW order (per
// sample: the full channel blocks as they lie, then the channels of the partial block): for observers that
// need only the values (min/max, histograms). A plain copy instead of a layout conversion.
Tensor blocked_values(const Tensor& x, int64_t channels);

}  // namespace oq::exec
