// Phase 1.5: parameters for every marked tensor (activations from calibrated ranges, weights from their
// data, biases from input and weight scales), honouring tensor overrides. Pure: no graph edits.
#pragma once
#include <optional>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "quant/annotate.h"
#include "quant/plan.h"
#include "quant/weight_cache.h"

namespace oq::quant {

struct ParamNotes {
  std::vector<std::string> adjusted_weights;  // weight scales enlarged so int32 biases do not overflow
  // Weights whose float values a WeightParamsFn replaced (GPTQ): the writer quantizes these instead of the
  // initializer's values.
  std::map<std::string, Tensor> weight_values;
  // Activations with TensorQuantOverrides' convert: the converted parameters and the nodes that read them
  // (nullopt: every reader). The writer adds the Q -> DQ -> Q -> DQ chain; params hold the original ones.
  struct Converted {
    exec::QuantParams params;
    std::optional<std::set<std::string>> recv_nodes;
  };
  std::map<std::string, Converted> converted;
};

// What a better weight quantizer decides for one weight: its parameters and, optionally, the float values to
// quantize with them (GPTQ changes the values; an undefined tensor = quantize the initializer as is). The
// values must have the weight's shape and dtype.
struct WeightChoice {
  exec::QuantParams params;
  Tensor values;
};

// A weight's min/max parameters (type, axis, scales) and the range settings they were computed with, which a
// weight quantizer's candidates use too (so that its clipping ratio 1 reproduces `params` exactly).
struct WeightProposal {
  exec::QuantParams params;
  bool symmetric = true;
  bool reduce_range = false;
  std::optional<double> min_real_range;  // QuantOptions::min_real_range
};

// `weight_params_fn` (optional) computes a weight's parameters instead of min/max (better weight quantizers);
// it receives the tensor and the min/max proposal and returns the choice.
using WeightParamsFn =
    std::function<WeightChoice(const std::string& name, const Tensor& w, const WeightProposal& proposal)>;

ParamMap compute_params(const ir::Graph& g, const QuantPlan& plan, const QuantOptions& o, const RangeMap& ranges,
                        ParamNotes* notes = nullptr, const WeightParamsFn& weight_fn = {},
                        WeightCache* cache = nullptr);

// Bias parameters: scale = input_scale × weight_scale, zero point 0 (a Gemm's beta goes into the values, see
// quantize_bias). Per channel where the weight is, along
// the bias's last axis (Conv/ConvTranspose [C], Gemm [N] or [1, N]); the weight's scales are repeated when the bias
// has a multiple of them (a grouped ConvTranspose: output channel o uses weight scale o mod C/group). nullopt when
// a per-channel weight's scales cannot be laid along the bias (a Gemm bias broadcast from a single value).
std::optional<exec::QuantParams> bias_params(const exec::QuantParams& input, const exec::QuantParams& weight,
                                             const Shape& bias_shape);
// bias_params, and for a float16 model (both scales float16) ORT's guard: when a float16 bias scale is 0 or too
// small for the bias in int32, the scale is float32 instead (input × weight scale in float32, floored at
// |beta × bias| / INT32_MAX · 1.0001; scale_type Float: the writer adds a Cast to float16 after its
// DequantizeLinear).
std::optional<exec::QuantParams> float16_bias_params(const exec::QuantParams& input, const exec::QuantParams& weight,
                                                     double beta, const Tensor& bias);
// int32 bias values: round(beta × bias / scale) in double, clipped to int32. `beta`: a Gemm's beta, taken out of
// the node: the DequantizeLinear gives back what the Gemm added, with the scale input × weight that ORT's QGemm
// fusion assumes for an int32 bias. (ORT 1.32's quantize_static puts beta into the scale instead and divides the
// bias by it, then resets beta to 1: its model adds bias, not beta × bias; docs/conformance.md.) beta 0: zeros.
Tensor quantize_bias(const Tensor& bias, const exec::QuantParams& q, double beta = 1.0);

}  // namespace oq::quant
