// SmoothQuant (Xiao et al. 2023) as an IR rewrite of the float model, before calibration: per input channel j
// of each target (Conv with group 1, Gemm with transA 0, MatMul with a 2-D weight; the weight a constant used
// by that node only) s_j = max(max|X_j|^α / max(max|W_j|^(1−α), 1e-5), 1e-5), except s_j = 1 where max|X_j| = 0
// (a channel that is 0 on all the calibration data, e.g. a dead ReLU) or max|W_j| = 0; the weight is multiplied by s
// along its input-channel axis, the input divided by s. Targets reading the same tensor share one s (max|W_j|
// over all of them). The division is folded into the producer when every consumer of the input is a target
// and the producer is a Conv/ConvTranspose/Gemm/MatMul with constant weights (output-channel rows and bias),
// a BatchNormalization/InstanceNormalization (scale, bias), a LayerNormalization over the channel axis, or a
// Mul by a constant — also through a Relu in between (Relu(x)/s = Relu(x/s) for s > 0), when each tensor on
// the way has a single consumer and each constant a single user; otherwise a Mul by 1/s is inserted before
// the targets (it is quantized like any Mul, except that its 1/s constant is quantized per channel: see
// QuantOptions::channel_constants). SmoothQuantOptions::unfolded changes that: Conv writes the division of a 4-D
// input (channel axis 1) as a depthwise 1x1 Conv (group C, weight 1/s as [C,1,1,1], no bias), quantized as any
// Conv weight, which ONNX Runtime fuses into a QLinearConv (other ranks keep the Mul); Skip leaves such an input
// and its targets unsmoothed. Below opset 13 (no per-channel DequantizeLinear) an input that would get a Mul is
// skipped instead (SmoothReport::skipped_opset). Only the layers SmoothQuantOptions::selected accepts are targets
// (the nodes quantization will quantize): a layer kept in float is neither smoothed nor given a division.
// Non-finite values (NaN, ±inf) in the measured inputs are left out of max|X_j|, as the calibrator's ranges
// leave them out; a channel with no finite value keeps s = 1. The rewritten float model computes the same outputs.
// Order: the inputs are processed downstream first (reverse topological order of their first target), each s
// computed from the maxima measured on the original model and the current weights, then applied. A layer that is
// both smoothed and the producer a downstream 1/s' is folded into thus gets its s from W[o, j] / s'_o, the
// weight it is quantized with, and ends as W[o, j]·s_j / s'_o, whatever the tensor names.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "ir/graph.h"

namespace oq::quant {

// What to do with an input whose division by s cannot be folded into its producer.
enum class Unfolded { Mul, Conv, Skip };

struct SmoothQuantOptions {
  double alpha = 0.5;
  bool folding = true;
  Unfolded unfolded = Unfolded::Mul;
  // The layers quantization will quantize (should_quantize_node with the run's options): only those are smoothed.
  // Empty: every layer.
  std::function<bool(const ir::Node&)> selected = nullptr;
};

struct SmoothTarget {
  size_t node = 0;
  std::string input, weight;
  int w_axis = 0;  // input-channel axis of the weight
};

// The targets of a graph (nodes in file order) among the nodes `selected` accepts (empty: all).
std::vector<SmoothTarget> smooth_targets(const ir::Graph& g, const std::function<bool(const ir::Node&)>& selected = {});

// Per-channel max|x| of the targets' inputs (channel axis 1 for Conv, the last axis otherwise), streamed over
// the data, non-finite values left out; also the rank each input had, and per input the number of non-finite
// values left out and of channels with no finite value (their absmax is 0: s = 1).
struct ChannelStats {
  std::map<std::string, std::vector<float>> absmax;
  std::map<std::string, int64_t> rank;
  std::map<std::string, int64_t> nonfinite, channels_without_finite;
};
ChannelStats measure_channel_absmax(const ir::Model& m, const std::vector<SmoothTarget>& targets,
                                    const data::DatasetPtr& data, int64_t batch_size);

struct SmoothReport {
  int targets = 0, folded = 0, inserted_mul = 0;
  int inserted_conv = 0;    // Unfolded::Conv: depthwise 1x1 Convs written
  int mul_not_4d = 0;       // Unfolded::Conv: inputs of another rank, given a Mul instead
  int skipped = 0;          // Unfolded::Skip: inputs left unsmoothed (their targets too)
  int skipped_opset = 0;    // opset < 13: inputs that would have got a Mul, left unsmoothed (their targets too)
  int mixed_axes = 0;       // inputs left unsmoothed: their targets disagree on the channel axis or count
  int neutral_channels = 0;  // s = 1: the channel's max|x| or max|w| is 0
  // The inserted Muls' 1/s initializers and their channel axis (for QuantOptions::channel_constants).
  std::map<std::string, int> inv_scales;
};

// Rewrites `m` in place with the given statistics (inputs without statistics are left alone).
SmoothReport smooth_quant(ir::Model& m, const ChannelStats& stats, const SmoothQuantOptions& o);

// measure_channel_absmax + smooth_quant.
SmoothReport apply_smooth_quant(ir::Model& m, const data::DatasetPtr& data, int64_t batch_size,
                                const SmoothQuantOptions& o);

}  // namespace oq::quant
