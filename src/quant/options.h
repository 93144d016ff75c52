// Typed quantization options (the integrator maps the YAML config onto this; the core never sees strings).
#pragma once
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace oq::quant {

// Where an override comes from: names the key in messages and keeps each key's rules. FullAuto: not a user
// override but full_auto's own choice of a weight's type (its 4-bit candidates), which the user-override rules
// (e.g. no weights_tensor_override with nodes_to_quantize) do not concern.
enum class OverrideSource { WeightsTensorOverride, ActivationsTensorOverride, TensorQuantOverrides, FullAuto };
const char* override_key(OverrideSource s);  // "weights_tensor_override", ... "TensorQuantOverrides"

// A user's rmin / rmax in place of the measured (activations) or data (initializers) range.
struct RangeOverride {
  std::optional<double> rmin, rmax;
};

// TensorQuantOverrides' `convert`: an activation quantized with its own parameters, then converted to these for
// the nodes in recv_nodes (nullopt: every node that reads it).
struct ConvertOverride {
  DType qtype = DType::Int8;
  std::vector<double> scale;        // empty, or one value (with zero_point)
  std::vector<int64_t> zero_point;
  std::optional<bool> symmetric;
  std::vector<RangeOverride> ranges;  // empty or one entry
  std::optional<std::set<std::string>> recv_nodes;
};

// A user override for one tensor (weights_tensor_override / activations_tensor_override / ORT's
// TensorQuantOverrides, whose dicts the integrator turns into this once).
struct TensorOverride {
  std::optional<DType> qtype;
  std::vector<double> scale;          // empty: computed; 1 value: per tensor; n values: per channel
  std::vector<int64_t> zero_point;    // same length as scale
  std::optional<int64_t> axis;        // initializers only: per-channel along this axis
  std::optional<bool> symmetric;      // instead of WeightSymmetric / ActivationSymmetric (per channel: instead of true)
  std::optional<bool> reduce_range;   // initializers only
  // Empty: none. Per tensor: one entry. Per channel: entry c for channel c, channels past the end use the data
  // (ORT's _calc_initializer_quant_params: one dict with an axis gives its rmin / rmax to channel 0 only).
  std::vector<RangeOverride> ranges;
  std::optional<ConvertOverride> convert;  // TensorQuantOverrides, activations only
  OverrideSource source = OverrideSource::WeightsTensorOverride;
};

struct QuantOptions {
  DType weight_type = DType::Int8;
  DType activation_type = DType::Int8;
  bool per_channel = true;
  bool weight_symmetric = true;
  bool activation_symmetric = false;
  bool quantize_bias = true;
  std::optional<double> min_real_range;
  // Empty = ORT's default list (every op ORT quantizes in QDQ format that the engine runs).
  std::set<std::string> op_types_to_quantize;
  std::set<std::string> nodes_to_quantize;  // empty = all
  std::set<std::string> nodes_to_exclude;
  std::map<std::string, TensorOverride> weight_overrides;
  std::map<std::string, TensorOverride> activation_overrides;
  int target_opset = 21;
  // Bias correction (quant/bias_correction.h): calibrate() also measures the layers' input means and
  // build_qdq() corrects each bias for the quantized weight it is built with.
  bool bias_correction = false;
  // Constant initializers quantized per channel (symmetric, along the given axis) even where the op would
  // take a per-tensor constant: the 1/s vectors of the Mul nodes SmoothQuant inserts (their values span
  // orders of magnitude; one scale would round most of them to 0). Opset 13 or newer only.
  std::map<std::string, int> channel_constants;
  // ONNX Runtime's QDQKeepRemovableActivations, QDQDisableWeightAdjustForInt32Bias, ForceQuantizeNoInputCheck,
  // OpTypesToExcludeOutputQuantization, ActivationRestrictedAsymmetric.
  bool keep_removable_activations = false;
  bool activation_restricted_asymmetric = false;
  bool add_qdq_pair_to_weight = false;  // ORT's AddQDQPairToWeight, DedicatedQDQPair (quant/qdq_writer.h)
  bool dedicated_qdq_pair = false;
  bool use_qdq_contrib_ops = false;  // ORT's UseQDQContribOps: Q/DQ in com.microsoft (16/4-bit below opset 21)
  // ORT's QDQOpTypePerChannelSupportToAxis: the per-channel axis of the constant inputs of MatMul and of the
  // normalization scales, by op type (ORT applies it to those only; Conv, ConvTranspose and Gemm keep theirs).
  std::map<std::string, int> per_channel_axis;
  bool disable_weight_adjust_for_int32_bias = false;
  bool force_quantize_no_input_check = false;
  std::set<std::string> op_types_no_output;
};

// ORT's default op types for static QDQ quantization (QLinearOpsRegistry ∪ QDQRegistry).
const std::set<std::string>& default_op_types();

}  // namespace oq::quant
