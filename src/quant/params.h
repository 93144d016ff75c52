// Phase 1.5: parameters for every marked tensor (activations from calibrated ranges, weights from their
// data, biases from input and weight scales), honouring tensor overrides. Pure: no graph edits.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "quant/annotate.h"
#include "quant/plan.h"

namespace oq::quant {

struct ParamNotes {
  std::vector<std::string> adjusted_weights;  // weight scales enlarged so int32 biases do not overflow
};

// `weight_params_fn` (optional) computes a weight's parameters instead of min/max (better weight quantizers);
// it receives the tensor and the proposed QuantParams (type, axis) and returns the final ones.
using WeightParamsFn = std::function<exec::QuantParams(const std::string& name, const Tensor& w, exec::QuantParams proposal)>;

ParamMap compute_params(const ir::Graph& g, const QuantPlan& plan, const QuantOptions& o, const RangeMap& ranges,
                        ParamNotes* notes = nullptr, const WeightParamsFn& weight_fn = {});

// Bias parameters: scale = input_scale × weight_scale × beta (per channel where the weight is), zero point 0.
exec::QuantParams bias_params(const exec::QuantParams& input, const exec::QuantParams& weight, double beta);
// int32 bias values: round(bias / scale) in double, clipped to int32.
Tensor quantize_bias(const Tensor& bias, const exec::QuantParams& q);

}  // namespace oq::quant
