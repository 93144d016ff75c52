// Typed configuration of onnxquant, loaded from an ST model-zoo user_config.yaml (+ Hydra-style command-line
// overrides). Everything is validated once, at load: the structs below hold only legal values, so the rest
// of onnxquant never re-checks strings. Errors are oq::Error(ErrorKind::Config) whose message names the key
// path (e.g. `quantization.onnx_extra_options.SmothQuant: unknown key`). Model-dependent checks (tensor
// exists, channel counts, zero point vs type range) are left to the quantizer. See docs/config.md.
#pragma once
#include <cstdint>
#include <ctime>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace oq::config {

// The newest opset onnxquant writes (the executor's exec::kMaxOpset; the app layer asserts they agree).
inline constexpr int64_t kMaxTargetOpset = 28;  // the message in load_quant.cc names it

// Top-level `operation_mode` values onnxquant runs (other ST modes are rejected at load).
enum class OperationMode { Quantization, Evaluation, ChainQE };
enum class Interpolation { Nearest, Bilinear, Bicubic, Area };
enum class AspectRatio { Fit, Crop, Padding };
enum class ColorMode { Grayscale, Rgb, Rgba, Bgr };
enum class Layout { Auto, NCHW, NHWC };
// quantization_input_type / quantization_output_type (kept as given; QDQ models keep float I/O anyway).
enum class IoType { Float, Int8, UInt8 };
enum class Granularity { PerChannel, PerTensor };
enum class OperatingMode { Default, Inspection, FullAuto };
enum class CalibrateMethod { MinMax, Entropy, Percentile };
enum class WeightQuantizer { MinMax, Mse, Gptq };
// SmoothQuant's division by s where it cannot be folded into the producer (docs/config.md, SmoothQuantUnfolded).
enum class SmoothQuantUnfolded { Mul, Conv, Skip };
enum class ToleranceMode { Absolute, Relative };
enum class Metric { Auto, Top1, Agreement, OutputSnr, EvaluatorCommand };
enum class Ranking { Static, Sensitivity };
enum class SearchStrategy { Bisection, Greedy };

// The spelling used in YAML (and accepted, case-insensitively, when loading).
std::string_view to_string(OperationMode v);
std::string_view to_string(Interpolation v);
std::string_view to_string(AspectRatio v);
std::string_view to_string(ColorMode v);
std::string_view to_string(Layout v);
std::string_view to_string(IoType v);
std::string_view to_string(Granularity v);
std::string_view to_string(OperatingMode v);
std::string_view to_string(CalibrateMethod v);
std::string_view to_string(WeightQuantizer v);
std::string_view to_string(SmoothQuantUnfolded v);
std::string_view to_string(ToleranceMode v);
std::string_view to_string(Metric v);
std::string_view to_string(Ranking v);
std::string_view to_string(SearchStrategy v);

struct GeneralConfig {
  std::string project_name = "<unnamed>";
  std::string logs_dir = "logs";
  std::string saved_models_dir = "saved_models";
  int64_t global_seed = 123;
};

struct ModelConfig {
  std::string model_path;            // required; relative paths are relative to the current directory
  std::vector<int64_t> input_shape;  // optional (ST's model.input_shape, e.g. [128, 128, 3]); empty if absent
};

// Paths: empty string = not given. They are kept as written (relative ones resolve against the cwd).
struct DatasetConfig {
  std::string name;  // `name` (or ST's newer spelling `dataset_name`)
  std::vector<std::string> class_names;
  std::string training_path;
  std::string quantization_path;
  double quantization_split = 1.0;  // fraction in (0, 1]; null = all (1.0)
  std::string test_path;
  std::string validation_path;
  int64_t seed = 123;
  int64_t batch_size = 1;
  bool skip_bad_files = false;
};

struct PreprocessingConfig {
  double scale = 1.0;  // rescaling: x * scale + offset
  double offset = 0.0;
  Interpolation interpolation = Interpolation::Nearest;
  AspectRatio aspect_ratio = AspectRatio::Fit;
  ColorMode color_mode = ColorMode::Rgb;
  Layout layout = Layout::Auto;
};

// One `[tensor_name, {quant_type, scale, zero_point, axis}]` entry of weights/activations_tensor_override.
// Structurally valid: scale and zero_point are both given or both absent; when given they have the same
// count (a scalar is count 1 with *_is_list false); every scale > 0.
struct TensorOverride {
  std::string tensor;
  std::optional<DType> quant_type;  // absent: the weight/activation type of the config
  std::vector<double> scale;        // empty: computed from calibration
  std::vector<int64_t> zero_point;  // same count as scale
  bool values_are_lists = false;    // scale/zero_point were written as lists (per-channel)
  std::optional<int64_t> axis;
  bool has_fixed_qparams() const { return !scale.empty(); }
};

// `convert` of a TensorQuantOverrides dict: the activation is quantized to the dict's type, then converted
// (DequantizeLinear -> QuantizeLinear) to this one for `recv_nodes` (absent: every consumer).
struct ConvertDict {
  DType quant_type = DType::Int8;     // required
  std::optional<double> scale;        // with zero_point, without symmetric / rmin / rmax
  std::optional<int64_t> zero_point;
  std::optional<bool> symmetric;
  std::optional<double> rmin, rmax;
  std::optional<std::vector<std::string>> recv_nodes;
};

// One dict of ONNX Runtime's TensorQuantOverrides list, every key optional. Structurally valid at load (ORT's
// rules that need no model): scale and zero_point together and without symmetric / reduce_range / rmin / rmax;
// `convert` with a quant_type, without reduce_range, and not in per-channel lists.
struct QuantOverrideDict {
  std::optional<DType> quant_type;
  std::optional<double> scale;        // > 0
  std::optional<int64_t> zero_point;  // with scale
  std::optional<bool> symmetric;
  std::optional<bool> reduce_range;
  std::optional<double> rmin, rmax;
  std::optional<int64_t> axis;  // per channel (first dict); the other dicts may repeat it
  std::optional<ConvertDict> convert;
  bool has_fixed_qparams() const { return scale.has_value(); }
};

// `<tensor>: [dict, ...]` of TensorQuantOverrides: one dict = per tensor (or, with `axis`, the same settings for
// every channel); several = one per channel (per-channel rules of ORT checked at load: axis in the first dict,
// the same quant_type / axis / symmetric / reduce_range in every dict, scale/zero_point and rmin/rmax in all or
// none). An empty list is dropped at load (ORT: no override).
struct TensorQuantOverride {
  std::string tensor;
  // Empty: listed with an empty list, no override (ORT), but the tensor must still exist in the model.
  std::vector<QuantOverrideDict> dicts;
  bool per_channel() const { return dicts.size() > 1 || (!dicts.empty() && dicts[0].axis.has_value()); }
};

struct QuantParameters {  // quantization.onnx_quant_parameters
  DType weight_type = DType::Int8;
  DType activ_type = DType::Int8;
  CalibrateMethod calibrate_method = CalibrateMethod::MinMax;
  std::vector<std::string> op_types_to_quantize;  // empty (or null): every supported op type
  std::vector<std::string> nodes_to_quantize;     // empty (or null): every node
  std::vector<std::string> nodes_to_exclude;
};

struct ExtraOptions {  // quantization.onnx_extra_options
  bool weight_symmetric = true;
  bool activation_symmetric = false;
  bool calib_moving_average = false;
  // ORT's CalibStridedMinMax: batches per collect_data() call. nullopt: one call over all the batches
  // (quantize_static's default; histograms then take two passes over the data).
  std::optional<int64_t> calib_strided_minmax;
  bool quantize_bias = true;
  bool smooth_quant = false;
  double smooth_quant_alpha = 0.5;  // [0, 1]
  bool smooth_quant_folding = true;
  SmoothQuantUnfolded smooth_quant_unfolded = SmoothQuantUnfolded::Mul;
  std::optional<double> minimum_real_range;  // >= 0 when given
  double calib_percentile = 99.999;          // (0, 100]
  WeightQuantizer weight_quantizer = WeightQuantizer::MinMax;
  double gptq_hessian_budget_mib = 1024;  // (0, 1e9]: GPTQ Hessians held at once (MiB; at least one layer's)
  bool bias_correction = false;
  bool cross_layer_equalization = false;
  bool cross_layer_equalization_replace_relu6 = false;  // Clip(0, 6) -> Relu inside equalized pairs
  std::vector<TensorOverride> weights_tensor_override;
  std::vector<TensorOverride> activations_tensor_override;
  // ONNX Runtime's own options, with ORT's meaning and defaults.
  double calib_moving_average_constant = 0.01;          // [0, 1]
  std::optional<bool> calib_tensor_range_symmetric;     // nullopt: the method's default
  std::optional<int64_t> calib_max_intermediate_outputs;  // accepted; no effect (statistics are streamed)
  bool matmul_const_b_only = false;                     // accepted; no effect in QDQ format (as in ORT)
  bool enable_subgraph = false;                         // accepted; no effect in QDQ (as in ORT)
  bool qdq_keep_removable_activations = false;
  bool activation_restricted_asymmetric = false;  // UInt8 activations: zero point snapped to 0 or 128
  bool add_qdq_pair_to_weight = false;             // weights stay float, followed by a Q -> DQ pair
  bool dedicated_qdq_pair = false;                 // one Q -> DQ pair per quantized reader of an activation
  bool use_qdq_contrib_ops = false;                // Q/DQ nodes in ONNX Runtime's com.microsoft domain
  std::map<std::string, int64_t> qdq_op_type_per_channel_support_to_axis;  // op type -> weight channel axis
  bool qdq_disable_weight_adjust_for_int32_bias = false;
  bool force_quantize_no_input_check = false;
  std::vector<std::string> op_types_to_exclude_output_quantization;
  std::vector<TensorQuantOverride> tensor_quant_overrides;  // ORT's TensorQuantOverrides, in file order
};

struct IterativeParameters {  // quantization.iterative_quant_parameters
  double inspection_split = 1.0;  // (0, 1]
  double accuracy_tolerance = 1.0;  // >= 0
  ToleranceMode tolerance_mode = ToleranceMode::Absolute;
  Metric metric = Metric::Auto;
  std::string evaluator_command;  // required when metric is evaluator_command
  Ranking ranking = Ranking::Static;  // the seed's behaviour (issue 8: defaults keep it)
  SearchStrategy search = SearchStrategy::Bisection;
  double snr_threshold = 20.0;  // dB, flags tensors in the inspection report
};

struct QuantizationConfig {
  // `quantizer` must be onnx_quantizer and `quantization_type` PTQ: checked at load, not stored.
  IoType input_type = IoType::Float;
  IoType output_type = IoType::Float;
  Granularity granularity = Granularity::PerChannel;
  std::string export_dir = "quantized_models";
  bool optimize = false;
  int64_t target_opset = 17;  // 10 .. kMaxTargetOpset
  OperatingMode operating_mode = OperatingMode::Default;
  QuantParameters params;
  ExtraOptions extra;
  IterativeParameters iterative;
};

struct Config {
  GeneralConfig general;
  OperationMode operation_mode = OperationMode::Quantization;
  ModelConfig model;
  DatasetConfig dataset;
  PreprocessingConfig preprocessing;
  bool has_quantization = false;  // the `quantization` section was given (always true for quantization modes)
  QuantizationConfig quantization;
  std::string hydra_run_dir;  // `${now:...}` already expanded; empty if absent
  // One line per ignored section / key (e.g. "mlflow: section ignored by onnxquant"); the caller logs them.
  std::vector<std::string> warnings;
  std::string source;          // file name (or the name given to load_config_from_string)
  std::time_t load_time = 0;   // the `now` used for ${now:...} and for the default output dir
};

// Loads, applies `overrides` ("dotted.key=value", value parsed as YAML) to the tree, then validates.
// Throws oq::Error(ErrorKind::Config) naming the file (missing file, YAML syntax error with line:column)
// or the key path.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
Config load_config_from_string(const std::string& yaml_text, const std::vector<std::string>& overrides = {},
                               const std::string& source_name = "<string>");

// `cli_output_dir` if non-empty, else hydra.run.dir, else experiments_outputs/<YYYY_MM_DD_HH_MM_SS> (load time).
std::string resolve_output_dir(const Config& cfg, const std::string& cli_output_dir);

// The quantization settings as ST logs them, three lines:
//   Quantization granularity: per_channel
//   Quantization parameters: {'weightType': 'Int8', 'activType': 'Int8', ...}
//   Quantization extra options: {'WeightSymmetric': True, ...}
std::vector<std::string> describe_quantization(const QuantizationConfig& q);

// Safe evaluator for ST's arithmetic strings ("1/127.5", "-1", "2*(0.5+1)", "1e-3"): + - * / unary +/-,
// parentheses, decimal/exponent literals. Returns nullopt (and a reason in *error) if not such an expression
// or the result is not finite.
std::optional<double> eval_arithmetic(std::string_view text, std::string* error = nullptr);

// The ai.onnx operator types onnxquant runs (a static list equal to exec::registered_ops(), without the kernels):
// the names op_types_to_quantize, OpTypesToExcludeOutputQuantization and QDQOpTypePerChannelSupportToAxis may give.
std::span<const std::string_view> known_op_types();
bool is_known_op_type(std::string_view op);

// Expands every `${now:FORMAT}` with strftime(FORMAT, localtime(now)), OmegaConf's escapes and nesting included
// (`\${` is a literal `${`, `\\${` a backslash and an interpolation; `${now:${...}}` resolves the inner one
// first); nullopt with the reason in *error for any other interpolation (nested ones too), an unterminated one or
// a format that expands to nothing (interpolate.cc).
std::optional<std::string> try_expand_interpolations(std::string_view value, std::time_t now, std::string* error);
// The same, throwing a Config error "<key_path>: <reason>".
std::string expand_interpolations(std::string_view value, const std::string& key_path, std::time_t now);

}  // namespace oq::config
