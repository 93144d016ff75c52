// Enum spellings and the ST-style rendering of the quantization settings (Python dict repr, as ST's logs
// print its OmegaConf sections).
#include <cmath>

#include <fmt/ranges.h>

#include "config/config.h"
#include "core/error.h"

namespace oq::config {

std::string_view to_string(OperationMode v) {
  switch (v) {
    case OperationMode::Quantization: return "quantization";
    case OperationMode::Evaluation: return "evaluation";
    case OperationMode::ChainQE: return "chain_qe";
  }
  return "?";
}
std::string_view to_string(Interpolation v) {
  switch (v) {
    case Interpolation::Nearest: return "nearest";
    case Interpolation::Bilinear: return "bilinear";
    case Interpolation::Bicubic: return "bicubic";
    case Interpolation::Area: return "area";
  }
  return "?";
}
std::string_view to_string(AspectRatio v) {
  switch (v) {
    case AspectRatio::Fit: return "fit";
    case AspectRatio::Crop: return "crop";
    case AspectRatio::Padding: return "padding";
  }
  return "?";
}
std::string_view to_string(ColorMode v) {
  switch (v) {
    case ColorMode::Grayscale: return "grayscale";
    case ColorMode::Rgb: return "rgb";
    case ColorMode::Rgba: return "rgba";
    case ColorMode::Bgr: return "bgr";
  }
  return "?";
}
std::string_view to_string(Layout v) {
  switch (v) {
    case Layout::Auto: return "auto";
    case Layout::NCHW: return "NCHW";
    case Layout::NHWC: return "NHWC";
  }
  return "?";
}
std::string_view to_string(IoType v) {
  switch (v) {
    case IoType::Float: return "float";
    case IoType::Int8: return "int8";
    case IoType::UInt8: return "uint8";
  }
  return "?";
}
std::string_view to_string(Granularity v) {
  return v == Granularity::PerChannel ? "per_channel" : "per_tensor";
}
std::string_view to_string(OperatingMode v) {
  switch (v) {
    case OperatingMode::Default: return "default";
    case OperatingMode::Inspection: return "inspection";
    case OperatingMode::FullAuto: return "full_auto";
  }
  return "?";
}
std::string_view to_string(CalibrateMethod v) {
  switch (v) {
    case CalibrateMethod::MinMax: return "MinMax";
    case CalibrateMethod::Entropy: return "Entropy";
    case CalibrateMethod::Percentile: return "Percentile";
  }
  return "?";
}
std::string_view to_string(SmoothQuantUnfolded v) {
  switch (v) {
    case SmoothQuantUnfolded::Mul: return "mul";
    case SmoothQuantUnfolded::Conv: return "conv";
    case SmoothQuantUnfolded::Skip: return "skip";
  }
  return "?";
}
std::string_view to_string(WeightQuantizer v) {
  switch (v) {
    case WeightQuantizer::MinMax: return "minmax";
    case WeightQuantizer::Mse: return "mse";
    case WeightQuantizer::Gptq: return "gptq";
  }
  return "?";
}
std::string_view to_string(ToleranceMode v) { return v == ToleranceMode::Absolute ? "absolute" : "relative"; }
std::string_view to_string(Metric v) {
  switch (v) {
    case Metric::Auto: return "auto";
    case Metric::Top1: return "top1";
    case Metric::Agreement: return "agreement";
    case Metric::OutputSnr: return "output_snr";
    case Metric::EvaluatorCommand: return "evaluator_command";
  }
  return "?";
}
std::string_view to_string(Ranking v) { return v == Ranking::Static ? "static" : "sensitivity"; }
std::string_view to_string(SearchStrategy v) { return v == SearchStrategy::Bisection ? "bisection" : "greedy"; }

namespace {

// Python repr() of a str: single quotes unless the text holds a single quote and no double quote.
std::string py_str(std::string_view s) {
  char q = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == '\\' || c == q) out.push_back('\\');
    out.push_back(c);
  }
  out.push_back(q);
  return out;
}

// Python repr() of a float: shortest round-trip digits, always with a '.' or an exponent.
std::string py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string py_bool(bool b) { return b ? "True" : "False"; }

std::string py_list(const std::vector<std::string>& v) {
  if (v.empty()) return "None";
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + py_str(v[i]);
  return s + "]";
}

std::string py_axis_map(const std::map<std::string, int64_t>& m) {
  std::string s = "{";
  for (const auto& [op, axis] : m) s += (s.size() > 1 ? ", " : "") + py_str(op) + ": " + std::to_string(axis);
  return s + "}";
}

// ORT's TensorQuantOverrides as the Python dict quantize_static would be given (type names as QuantType's).
std::string py_tqo(const std::vector<TensorQuantOverride>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    s += (i ? ", " : "") + py_str(v[i].tensor) + ": [";
    for (size_t j = 0; j < v[i].dicts.size(); ++j) {
      const QuantOverrideDict& d = v[i].dicts[j];
      std::vector<std::string> items;
      if (d.quant_type)
        items.push_back(fmt::format("'quant_type': {}", py_str(fmt::format("Q{}", quant_type_name(*d.quant_type)))));
      if (d.scale) items.push_back("'scale': " + py_float(*d.scale) + ", 'zero_point': " + std::to_string(*d.zero_point));
      if (d.symmetric) items.push_back("'symmetric': " + py_bool(*d.symmetric));
      if (d.reduce_range) items.push_back("'reduce_range': " + py_bool(*d.reduce_range));
      if (d.rmin) items.push_back("'rmin': " + py_float(*d.rmin));
      if (d.rmax) items.push_back("'rmax': " + py_float(*d.rmax));
      if (d.axis) items.push_back("'axis': " + std::to_string(*d.axis));
      s += (j ? ", {" : "{") + fmt::format("{}", fmt::join(items, ", ")) + "}";
    }
    s += "]";
  }
  return s + "}";
}

std::string py_overrides(const std::vector<TensorOverride>& v) {
  if (v.empty()) return "None";
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    const TensorOverride& o = v[i];
    std::vector<std::string> items;
    if (o.quant_type) items.push_back("'quant_type': " + py_str(quant_type_name(*o.quant_type)));
    if (o.has_fixed_qparams()) {
      std::string sc, zp;
      for (size_t j = 0; j < o.scale.size(); ++j) {
        if (j) sc += ", ", zp += ", ";
        sc += py_float(o.scale[j]);
        zp += std::to_string(o.zero_point[j]);
      }
      if (o.values_are_lists) {
        sc = "[" + sc + "]";
        zp = "[" + zp + "]";
      }
      items.push_back("'scale': " + sc);
      items.push_back("'zero_point': " + zp);
    }
    if (o.axis) items.push_back("'axis': " + std::to_string(*o.axis));
    std::string d;
    for (size_t j = 0; j < items.size(); ++j) d += (j ? ", " : "") + items[j];
    if (i) s += ", ";
    s += "[";
    s += py_str(o.tensor);
    s += ", {";
    s += d;
    s += "}]";
  }
  return s + "]";
}

}  // namespace

std::vector<std::string> describe_quantization(const QuantizationConfig& q) {
  const QuantParameters& p = q.params;
  const ExtraOptions& e = q.extra;
  std::vector<std::string> lines;
  lines.push_back("Quantization granularity: " + std::string(to_string(q.granularity)));
  lines.push_back(fmt::format(
      "Quantization parameters: {{'weightType': {}, 'activType': {}, 'calibrate_method': {}, "
      "'op_types_to_quantize': {}, 'nodes_to_quantize': {}, 'nodes_to_exclude': {}}}",
      py_str(quant_type_name(p.weight_type)), py_str(quant_type_name(p.activ_type)),
      py_str(to_string(p.calibrate_method)), py_list(p.op_types_to_quantize), py_list(p.nodes_to_quantize),
      py_list(p.nodes_to_exclude)));
  lines.push_back(fmt::format(
      "Quantization extra options: {{'WeightSymmetric': {}, 'ActivationSymmetric': {}, 'CalibMovingAverage': {}, "
      "'CalibStridedMinMax': {}, 'QuantizeBias': {}, 'SmoothQuant': {}, 'SmoothQuantAlpha': {}, "
      "'SmoothQuantFolding': {}, 'SmoothQuantUnfolded': {}, 'MinimumRealRange': {}, 'CalibPercentile': {}, 'WeightQuantizer': {}, 'BiasCorrection': {}, "
      "'CrossLayerEqualization': {}, 'CrossLayerEqualizationReplaceRelu6': {}, 'weights_tensor_override': {}, "
      "'activations_tensor_override': {}}}",
      py_bool(e.weight_symmetric), py_bool(e.activation_symmetric), py_bool(e.calib_moving_average),
      e.calib_strided_minmax ? std::to_string(*e.calib_strided_minmax) : "None", py_bool(e.quantize_bias),
      py_bool(e.smooth_quant), py_float(e.smooth_quant_alpha),
      py_bool(e.smooth_quant_folding), py_str(to_string(e.smooth_quant_unfolded)), e.minimum_real_range ? py_float(*e.minimum_real_range) : "None",
      py_float(e.calib_percentile), py_str(to_string(e.weight_quantizer)), py_bool(e.bias_correction),
      py_bool(e.cross_layer_equalization), py_bool(e.cross_layer_equalization_replace_relu6),
      py_overrides(e.weights_tensor_override),
      py_overrides(e.activations_tensor_override)));
  if (e.weight_quantizer == WeightQuantizer::Gptq)  // onnxquant's own key, not in ST's line above
    lines.push_back(fmt::format("GPTQ Hessian budget (GptqHessianBudget): {} MiB", py_float(e.gptq_hessian_budget_mib)));
  const bool ort_defaults = e.calib_moving_average_constant == 0.01 && !e.calib_tensor_range_symmetric &&
                            !e.calib_max_intermediate_outputs && !e.matmul_const_b_only && !e.enable_subgraph &&
                            !e.qdq_keep_removable_activations && !e.qdq_disable_weight_adjust_for_int32_bias &&
                            !e.force_quantize_no_input_check && e.op_types_to_exclude_output_quantization.empty() &&
                            !e.activation_restricted_asymmetric &&
                            e.qdq_op_type_per_channel_support_to_axis.empty() && !e.add_qdq_pair_to_weight &&
                            !e.dedicated_qdq_pair && !e.use_qdq_contrib_ops;
  if (!ort_defaults)
    lines.push_back(fmt::format(
        "ONNX Runtime extra options: {{'CalibMovingAverageConstant': {}, 'CalibTensorRangeSymmetric': {}, "
        "'CalibMaxIntermediateOutputs': {}, 'MatMulConstBOnly': {}, 'QDQKeepRemovableActivations': {}, "
        "'QDQDisableWeightAdjustForInt32Bias': {}, 'ForceQuantizeNoInputCheck': {}, "
        "'OpTypesToExcludeOutputQuantization': {}, 'ActivationRestrictedAsymmetric': {}, "
        "'QDQOpTypePerChannelSupportToAxis': {}, 'AddQDQPairToWeight': {}, 'DedicatedQDQPair': {}, "
        "'UseQDQContribOps': {}, 'EnableSubgraph': {}}}",
        py_float(e.calib_moving_average_constant),
        e.calib_tensor_range_symmetric ? py_bool(*e.calib_tensor_range_symmetric) : "None",
        e.calib_max_intermediate_outputs ? std::to_string(*e.calib_max_intermediate_outputs) : "None",
        py_bool(e.matmul_const_b_only), py_bool(e.qdq_keep_removable_activations),
        py_bool(e.qdq_disable_weight_adjust_for_int32_bias), py_bool(e.force_quantize_no_input_check),
        py_list(e.op_types_to_exclude_output_quantization), py_bool(e.activation_restricted_asymmetric),
        py_axis_map(e.qdq_op_type_per_channel_support_to_axis), py_bool(e.add_qdq_pair_to_weight),
        py_bool(e.dedicated_qdq_pair), py_bool(e.use_qdq_contrib_ops), py_bool(e.enable_subgraph)));
  if (!e.tensor_quant_overrides.empty()) lines.push_back("TensorQuantOverrides: " + py_tqo(e.tensor_quant_overrides));
  return lines;
}

}  // namespace oq::config
