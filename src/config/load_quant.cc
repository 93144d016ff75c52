// The `quantization` section: every key known, typed and range-checked; unknown keys are errors.
#include <filesystem>
#include <limits>
#include <set>

#include "config/yaml_read.h"
#include "core/names.h"

namespace oq::config::detail {

static const char* kQuantTypes = "Int4, UInt4, Int8, UInt8, Int16, UInt16 (Q prefix optional, any case)";

DType read_quant_type(const Ctx& ctx, const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) key_fail(ctx, n, path, std::string("expected one of ") + kQuantTypes + ", got " + show(n));
  auto t = parse_quant_type(n.Scalar());
  if (!t || !is_quant_type(*t))
    key_fail(ctx, n, path, std::string("expected one of ") + kQuantTypes + ", got " + show(n));
  return *t;
}

namespace {

// weight_type / weightType (or activ_type / activType): one spelling at most.
DType get_quant_type(MapReader& m, const std::string& snake, const std::string& camel, DType def) {
  YAML::Node a = m.get(snake), b = m.get(camel);
  if (!is_null(a) && !is_null(b))
    key_fail2(m.ctx(), b, m.path(camel), "both " + snake + " and " + camel + " are given; use one of them",
              m.path(snake), a);
  if (!is_null(a)) return read_quant_type(m.ctx(), a, m.path(snake));
  if (!is_null(b)) return read_quant_type(m.ctx(), b, m.path(camel));
  return def;
}

// An operator type the config names: one onnxquant runs (config::known_op_types()), letter case included.
void check_op_type(const Ctx& ctx, const YAML::Node& at, const std::string& path, const std::string& op) {
  if (is_known_op_type(op)) return;
  const auto known = known_op_types();
  key_fail(ctx, at, path, quote(op) + " is not an ONNX operator onnxquant runs (operator names are case-sensitive)" +
                              did_you_mean(op, std::vector<std::string>(known.begin(), known.end())));
}

// A list of operator types (op_types_to_quantize, OpTypesToExcludeOutputQuantization), each checked.
std::vector<std::string> get_op_type_list(MapReader& m, const std::string& key) {
  std::vector<std::string> ops = get_string_list(m, key);
  const YAML::Node n = m.get(key);
  for (size_t i = 0; i < ops.size(); ++i)
    check_op_type(m.ctx(), at_or(n[i], n), m.path(key) + "[" + std::to_string(i) + "]", ops[i]);
  return ops;
}

// A number or a non-empty list of numbers; returns whether it was a list.
template <typename T, typename ReadOne>
bool read_scalar_or_list(const Ctx& ctx, const YAML::Node& n, const std::string& path, std::vector<T>& out,
                         ReadOne read_one, const char* what) {
  if (n.IsSequence()) {
    if (n.size() == 0) key_fail(ctx, n, path, std::string("expected ") + what + " or a non-empty list of them, got an empty list");
    for (size_t i = 0; i < n.size(); ++i) {
      std::string ep = path + "[" + std::to_string(i) + "]";
      if (is_null(n[i])) key_fail(ctx, at_or(n[i], n), ep, std::string("expected ") + what + ", got null");
      out.push_back(read_one(ctx, n[i], ep));
    }
    return true;
  }
  if (!n.IsScalar()) key_fail(ctx, n, path, std::string("expected ") + what + " or a list of them, got " + show(n));
  out.push_back(read_one(ctx, n, path));
  return false;
}

// One entry: a [tensor_name, {...}] pair whose second element is a map ({} sets nothing: the tensor then takes
// the config's type, per tensor, as ST's flow makes it, [{}] in ORT's TensorQuantOverrides). A name alone or with
// null is refused: ST's flow fails on the first and hands ORT an override of None with the second.
TensorOverride read_override(const Ctx& ctx, const YAML::Node& item, const std::string& path) {
  static const char* kShape = "expected a [tensor_name, {quant_type, scale, zero_point, axis}] pair, got ";
  if (!item.IsSequence() || item.size() < 1 || item.size() > 2)
    key_fail(ctx, item, path, kShape + (item.IsSequence() ? "a list of " + std::to_string(item.size()) : show(item)));
  TensorOverride o;
  if (!item[0].IsScalar() || item[0].Scalar().empty())
    key_fail(ctx, item, path + "[0]", "expected a tensor name, got " + show(item[0]));
  o.tensor = item[0].Scalar();
  if (item.size() == 1 || is_null(item[1]))  // (another non-map gets MapReader's "expected a map of keys")
    key_fail(ctx, item.size() == 2 ? at_or(item[1], item) : item, path,
             "the entry of tensor " + quote(o.tensor) + " gives " +
                 (item.size() == 1 ? "no settings" : "null as its settings") +
                 ": expected [" + quote(o.tensor) + ", {quant_type, scale, zero_point, axis}] (every key optional; "
                 "{} keeps the config's type, per tensor)");
  MapReader m(ctx, item[1], path);
  YAML::Node qt = m.get("quant_type");
  if (!is_null(qt)) o.quant_type = read_quant_type(ctx, qt, m.path("quant_type"));
  YAML::Node sc = m.get("scale"), zp = m.get("zero_point");
  if (is_null(sc) != is_null(zp))
    key_fail(ctx, is_null(sc) ? zp : sc, m.path(is_null(sc) ? "zero_point" : "scale"),
             "scale and zero_point must be given together (tensor " + quote(o.tensor) + ")");
  if (!is_null(sc)) {
    bool sl = read_scalar_or_list(ctx, sc, m.path("scale"), o.scale, read_number, "a number");
    bool zl = read_scalar_or_list(ctx, zp, m.path("zero_point"), o.zero_point, read_int, "an integer");
    if (sl != zl || o.scale.size() != o.zero_point.size())
      key_fail2(ctx, zp, m.path("zero_point"),
                fmt::format("scale and zero_point must both be numbers or both lists of the same length "
                            "(tensor {}: {} scale(s), {} zero point(s))",
                            quote(o.tensor), o.scale.size(), o.zero_point.size()),
                m.path("scale"), sc);
    o.values_are_lists = sl;
    for (size_t i = 0; i < o.scale.size(); ++i)
      if (!(o.scale[i] > 0))
        key_fail(ctx, sl ? at_or(sc[i], sc) : sc, m.path("scale") + (sl ? "[" + std::to_string(i) + "]" : ""),
                 fmt::format("must be > 0, got {} (tensor {})", o.scale[i], quote(o.tensor)));
  }
  YAML::Node ax = m.get("axis");
  if (!is_null(ax)) o.axis = read_int(ctx, ax, m.path("axis"));
  m.finish_strict();
  return o;
}

std::vector<TensorOverride> get_overrides(MapReader& m, const std::string& key) {
  YAML::Node n = m.get(key);
  std::vector<TensorOverride> out;
  if (is_null(n)) return out;
  std::string p = m.path(key);
  if (!n.IsSequence())
    key_fail(m.ctx(), n, p, "expected a list of [tensor_name, {quant_type, scale, zero_point, axis}] pairs, got " + show(n));
  for (size_t i = 0; i < n.size(); ++i) {
    std::string ip = p + "[" + std::to_string(i) + "]";
    out.push_back(read_override(m.ctx(), n[i], ip));
    for (size_t j = 0; j + 1 < out.size(); ++j)
      if (out[j].tensor == out.back().tensor)
        key_fail2(m.ctx(), n[i], ip, "tensor " + quote(out.back().tensor) + " is overridden twice",
                  p + "[" + std::to_string(j) + "]", n[j]);
  }
  return out;
}

void read_params(const Ctx& ctx, const YAML::Node& node, QuantParameters& p) {
  MapReader m(ctx, node, "quantization.onnx_quant_parameters");
  p.weight_type = get_quant_type(m, "weight_type", "weightType", p.weight_type);
  p.activ_type = get_quant_type(m, "activ_type", "activType", p.activ_type);
  p.calibrate_method = get_enum(m, "calibrate_method", p.calibrate_method,
                                {CalibrateMethod::MinMax, CalibrateMethod::Entropy, CalibrateMethod::Percentile});
  p.op_types_to_quantize = get_op_type_list(m, "op_types_to_quantize");
  p.nodes_to_quantize = get_string_list(m, "nodes_to_quantize");
  p.nodes_to_exclude = get_string_list(m, "nodes_to_exclude");
  m.finish_strict();
}

// ONNX Runtime's extra_options beyond ST's that onnxquant reads: the ones it implements and the ones without
// effect on its QDQ output. ORT 1.32's two others are refused by name (BlockSize at its default, 0, is accepted):
// ignoring them would give another model than the one the user asked for. Any other key is an unknown key.
void read_ort_extra(MapReader& m, ExtraOptions& e) {
  if (m.present("BlockSize") && get_int(m, "BlockSize", 0) != 0)
    key_fail(m.ctx(), m.get("BlockSize"), m.path("BlockSize"),
             "ONNX Runtime's block-wise quantization is not implemented by onnxquant (only 0, ORT's default, is "
             "accepted): use granularity per_channel");
  m.get("BlockSize");
  if (m.present("DefaultTensorType"))
    key_fail(m.ctx(), m.get("DefaultTensorType"), m.path("DefaultTensorType"),
             "ONNX Runtime's fallback type for tensors whose type it cannot infer is not implemented by onnxquant: "
             "remove the key");
  m.get("DefaultTensorType");
  e.calib_moving_average_constant = get_number(m, "CalibMovingAverageConstant", e.calib_moving_average_constant);
  check_range(m, "CalibMovingAverageConstant", e.calib_moving_average_constant >= 0 && e.calib_moving_average_constant <= 1,
              e.calib_moving_average_constant, "in [0, 1]");
  if (m.present("CalibTensorRangeSymmetric"))
    e.calib_tensor_range_symmetric = get_bool(m, "CalibTensorRangeSymmetric", false);
  else
    m.get("CalibTensorRangeSymmetric");
  if (m.present("CalibMaxIntermediateOutputs")) {
    const int64_t v = get_int(m, "CalibMaxIntermediateOutputs", 1);
    check_range(m, "CalibMaxIntermediateOutputs", v >= 1, static_cast<double>(v), ">= 1");
    e.calib_max_intermediate_outputs = v;
  } else {
    m.get("CalibMaxIntermediateOutputs");
  }
  e.matmul_const_b_only = get_bool(m, "MatMulConstBOnly", e.matmul_const_b_only);
  e.qdq_keep_removable_activations = get_bool(m, "QDQKeepRemovableActivations", e.qdq_keep_removable_activations);
  e.qdq_disable_weight_adjust_for_int32_bias =
      get_bool(m, "QDQDisableWeightAdjustForInt32Bias", e.qdq_disable_weight_adjust_for_int32_bias);
  e.force_quantize_no_input_check = get_bool(m, "ForceQuantizeNoInputCheck", e.force_quantize_no_input_check);
  e.op_types_to_exclude_output_quantization = get_op_type_list(m, "OpTypesToExcludeOutputQuantization");
  e.activation_restricted_asymmetric =
      get_bool(m, "ActivationRestrictedAsymmetric", e.activation_restricted_asymmetric);
  e.add_qdq_pair_to_weight = get_bool(m, "AddQDQPairToWeight", e.add_qdq_pair_to_weight);
  e.dedicated_qdq_pair = get_bool(m, "DedicatedQDQPair", e.dedicated_qdq_pair);
  e.use_qdq_contrib_ops = get_bool(m, "UseQDQContribOps", e.use_qdq_contrib_ops);
  // Only ORT's QOperator quantizer reads it (bodies of If / Loop / Scan quantized there); its QDQ quantizer, which
  // onnxquant follows, leaves bodies alone whatever it says (docs/conformance.md "Control flow").
  e.enable_subgraph = get_bool(m, "EnableSubgraph", e.enable_subgraph);
  {
    const std::string k = "QDQOpTypePerChannelSupportToAxis";
    const YAML::Node n = m.get(k);
    if (!is_null(n)) {
      if (!n.IsMap()) key_fail(m.ctx(), n, m.path(k), "expected a map of operator type to axis, got " + show(n));
      for (const auto& kv : n) {
        const std::string op = read_string(m.ctx(), kv.first, m.path(k));
        check_op_type(m.ctx(), kv.first, m.path(k) + "." + op, op);
        e.qdq_op_type_per_channel_support_to_axis[op] = read_int(m.ctx(), kv.second, m.path(k) + "." + op);
      }
    }
  }
  e.tensor_quant_overrides = read_tensor_quant_overrides(m.ctx(), m.get("TensorQuantOverrides"),
                                                         m.path("TensorQuantOverrides"));
}

void read_extra(const Ctx& ctx, const YAML::Node& node, ExtraOptions& e) {
  MapReader m(ctx, node, "quantization.onnx_extra_options");
  e.weight_symmetric = get_bool(m, "WeightSymmetric", e.weight_symmetric);
  e.activation_symmetric = get_bool(m, "ActivationSymmetric", e.activation_symmetric);
  e.calib_moving_average = get_bool(m, "CalibMovingAverage", e.calib_moving_average);
  if (m.present("CalibStridedMinMax")) {
    const int64_t v = get_int(m, "CalibStridedMinMax", 1);
    check_range(m, "CalibStridedMinMax", v >= 1, static_cast<double>(v), ">= 1");
    e.calib_strided_minmax = v;
  } else {
    m.get("CalibStridedMinMax");  // null is allowed (= one call over all the batches)
  }
  e.quantize_bias = get_bool(m, "QuantizeBias", e.quantize_bias);
  e.smooth_quant = get_bool(m, "SmoothQuant", e.smooth_quant);
  e.smooth_quant_alpha = get_number(m, "SmoothQuantAlpha", e.smooth_quant_alpha);
  check_range(m, "SmoothQuantAlpha", e.smooth_quant_alpha >= 0 && e.smooth_quant_alpha <= 1, e.smooth_quant_alpha,
              "in [0, 1]");
  e.smooth_quant_folding = get_bool(m, "SmoothQuantFolding", e.smooth_quant_folding);
  e.smooth_quant_unfolded = get_enum(m, "SmoothQuantUnfolded", e.smooth_quant_unfolded,
                                     {SmoothQuantUnfolded::Mul, SmoothQuantUnfolded::Conv, SmoothQuantUnfolded::Skip});
  if (e.smooth_quant && !e.smooth_quant_folding && e.smooth_quant_unfolded == SmoothQuantUnfolded::Skip &&
      m.ctx().warnings)  // nothing is folded, so every input is skipped
    m.ctx().warnings->push_back(fmt::format("{}: skip with SmoothQuantFolding: False smooths no layer",
                                            m.path("SmoothQuantUnfolded")));
  if (m.present("MinimumRealRange")) {
    double v = get_number(m, "MinimumRealRange", 0.0);
    // float32, as the scales it makes: 1e39 would give infinite scales and NaN outputs.
    check_range(m, "MinimumRealRange", v >= 0 && v <= static_cast<double>(std::numeric_limits<float>::max()), v,
                ">= 0 and finite in float32 (at most 3.4e38)");
    e.minimum_real_range = v;
  } else {
    m.get("MinimumRealRange");  // null is allowed (= no minimum)
  }
  e.calib_percentile = get_number(m, "CalibPercentile", e.calib_percentile);
  check_range(m, "CalibPercentile", e.calib_percentile > 0 && e.calib_percentile <= 100, e.calib_percentile,
              "in (0, 100]");
  if (e.calib_percentile <= 1 && m.ctx().warnings)  // ORT's CalibPercentile is a percent: 0.99999 % clips almost all
    m.ctx().warnings->push_back(fmt::format(
        "{}: {} is a percent (ORT's meaning): it keeps {} % of the values; for the {} % percentile write {}",
        m.path("CalibPercentile"), e.calib_percentile, e.calib_percentile, e.calib_percentile * 100,
        e.calib_percentile * 100));
  e.weight_quantizer = get_enum(m, "WeightQuantizer", e.weight_quantizer,
                                {WeightQuantizer::MinMax, WeightQuantizer::Mse, WeightQuantizer::Gptq});
  e.gptq_hessian_budget_mib = get_number(m, "GptqHessianBudget", e.gptq_hessian_budget_mib);
  check_range(m, "GptqHessianBudget", e.gptq_hessian_budget_mib > 0 && e.gptq_hessian_budget_mib <= 1e9,
              e.gptq_hessian_budget_mib, "in (0, 1e9] (MiB)");
  e.bias_correction = get_bool(m, "BiasCorrection", e.bias_correction);
  e.cross_layer_equalization = get_bool(m, "CrossLayerEqualization", e.cross_layer_equalization);
  e.cross_layer_equalization_replace_relu6 =
      get_bool(m, "CrossLayerEqualizationReplaceRelu6", e.cross_layer_equalization_replace_relu6);
  e.weights_tensor_override = get_overrides(m, "weights_tensor_override");
  e.activations_tensor_override = get_overrides(m, "activations_tensor_override");
  read_ort_extra(m, e);
  m.finish_strict();
  // One tensor, two override lists: which one holds would be a guess. The line cited is that of the tensor's
  // TensorQuantOverrides entry, with that of its other entry (none for a value from a command-line override).
  const YAML::Node tqo = m.get("TensorQuantOverrides");
  for (const auto& t : e.tensor_quant_overrides) {
    YAML::Node at;
    if (tqo.IsMap())
      for (const auto& kv : tqo)
        if (kv.first.IsScalar() && kv.first.Scalar() == t.tensor) at.reset(kv.first);
    for (const char* key : {"weights_tensor_override", "activations_tensor_override"}) {
      const auto& l = std::string(key) == "weights_tensor_override" ? e.weights_tensor_override
                                                                    : e.activations_tensor_override;
      for (size_t i = 0; i < l.size(); ++i)
        if (l[i].tensor == t.tensor)
          key_fail2(ctx, at, m.path("TensorQuantOverrides") + "." + t.tensor,
                    "tensor " + quote(t.tensor) + " is also in " + m.path(key) + "; override it in one of the two",
                    m.path(key) + "[" + std::to_string(i) + "]", m.get(key)[i]);
    }
  }
}

void read_iterative(const Ctx& ctx, const YAML::Node& node, IterativeParameters& it) {
  MapReader m(ctx, node, "quantization.iterative_quant_parameters");
  it.inspection_split = get_number(m, "inspection_split", it.inspection_split);
  check_range(m, "inspection_split", it.inspection_split > 0 && it.inspection_split <= 1, it.inspection_split,
              "in (0, 1]");
  it.accuracy_tolerance = get_number(m, "accuracy_tolerance", it.accuracy_tolerance);
  check_range(m, "accuracy_tolerance", it.accuracy_tolerance >= 0, it.accuracy_tolerance, ">= 0");
  it.tolerance_mode = get_enum(m, "tolerance_mode", it.tolerance_mode, {ToleranceMode::Absolute, ToleranceMode::Relative});
  it.metric = get_enum(m, "metric", it.metric,
                       {Metric::Auto, Metric::Top1, Metric::Agreement, Metric::OutputSnr, Metric::EvaluatorCommand});
  it.evaluator_command = get_path(m, "evaluator_command", it.evaluator_command);  // run by the shell: no NUL
  if (it.metric == Metric::EvaluatorCommand && it.evaluator_command.empty())
    key_fail2(ctx, m.get("evaluator_command"), m.path("evaluator_command"), "required when metric is evaluator_command",
              m.path("metric"), m.get("metric"));
  it.ranking = get_enum(m, "ranking", it.ranking, {Ranking::Static, Ranking::Sensitivity});
  it.search = get_enum(m, "search", it.search, {SearchStrategy::Bisection, SearchStrategy::Greedy});
  it.snr_threshold = get_number(m, "snr_threshold", it.snr_threshold);
  m.finish_strict();
}

// `quantization.extra_options` (ST's older key) and a string `onnx_extra_options`: null or calib_moving_average
// (any case) only; true when calib_moving_average was given, with a warning naming the current spelling.
bool read_legacy_extra_options(MapReader& m) {
  bool cma = false;
  for (const char* key : {"extra_options", "onnx_extra_options"}) {
    const YAML::Node n = m.get(key);
    if (!n || n.IsNull()) continue;
    const bool legacy_key = std::string_view(key) == "extra_options";
    if (!legacy_key && !n.IsScalar()) continue;  // the map: read_extra
    if (!n.IsScalar() || !iequals(n.Scalar(), "calib_moving_average"))
      key_fail(m.ctx(), n, m.path(key),
               legacy_key ? "ST's older key takes only calib_moving_average (or null), got " + show(n) +
                                "; other options go in quantization.onnx_extra_options (a map)"
                          : "expected a map of keys (or ST's older string calib_moving_average), got " + show(n));
    cma = true;
    if (m.ctx().warnings)
      m.ctx().warnings->push_back(m.path(key) + ": calib_moving_average read as quantization.onnx_extra_options: "
                                  "{CalibMovingAverage: True} (ST's older spelling; ST's current flow refuses it)");
  }
  return cma;
}

}  // namespace

void read_quantization(const Ctx& ctx, const YAML::Node& node, QuantizationConfig& q) {
  MapReader m(ctx, node, "quantization");
  if (m.present("quantizer")) {
    std::string s = get_string(m, "quantizer");
    if (!iequals(s, "onnx_quantizer"))
      key_fail(ctx, m.get("quantizer"), m.path("quantizer"), quote(s) + " is not supported by onnxquant; use onnx_quantizer");
  }
  if (m.present("quantization_type")) {
    std::string s = get_string(m, "quantization_type");
    if (!iequals(s, "PTQ"))
      key_fail(ctx, m.get("quantization_type"), m.path("quantization_type"),
               quote(s) + " is not supported by onnxquant; only PTQ (post-training quantization)");
  }
  q.input_type = get_enum(m, "quantization_input_type", q.input_type, {IoType::Float, IoType::Int8, IoType::UInt8});
  q.output_type = get_enum(m, "quantization_output_type", q.output_type, {IoType::Float, IoType::Int8, IoType::UInt8});
  q.granularity = get_enum(m, "granularity", q.granularity, {Granularity::PerChannel, Granularity::PerTensor});
  q.export_dir = get_path(m, "export_dir", q.export_dir);
  if (q.export_dir.empty()) key_fail(ctx, m.get("export_dir"), m.path("export_dir"), "must not be empty");
  {
    const std::filesystem::path ed(q.export_dir);
    bool up = false;
    for (const auto& part : ed) up |= part == "..";
    if (ed.is_absolute() || up)
      key_fail(ctx, m.get("export_dir"), m.path("export_dir"),
               "must be a folder inside the output directory (a relative path without '..'), got " +
                   quote(q.export_dir));
  }
  q.optimize = get_bool(m, "optimize", q.optimize);
  q.target_opset = get_int(m, "target_opset", q.target_opset);
  check_range(m, "target_opset", q.target_opset >= 10 && q.target_opset <= kMaxTargetOpset,
              static_cast<double>(q.target_opset),
              "between 10 (QuantizeLinear/DequantizeLinear need opset 10+) and 28 (the newest opset onnxquant writes)");
  q.operating_mode = get_enum(m, "operating_mode", q.operating_mode,
                              {OperatingMode::Default, OperatingMode::Inspection, OperatingMode::FullAuto});
  read_params(ctx, m.get("onnx_quant_parameters"), q.params);
  // ST's older spelling, still in model-zoo READMEs: `extra_options: calib_moving_average` (or that string as the
  // value of onnx_extra_options) = onnx_extra_options: {CalibMovingAverage: True}, ST's only extra option then.
  const bool legacy_cma = read_legacy_extra_options(m);
  const YAML::Node extra_node = m.get("onnx_extra_options");
  const bool extra_is_string = extra_node.IsDefined() && extra_node.IsScalar();
  read_extra(ctx, extra_is_string && legacy_cma ? YAML::Node() : extra_node, q.extra);
  if (legacy_cma) {
    const YAML::Node cma = child(extra_node, "CalibMovingAverage");  // undefined unless a map
    if (cma && !cma.IsNull() && !q.extra.calib_moving_average)
      key_fail2(ctx, cma, "quantization.onnx_extra_options.CalibMovingAverage",
                "False contradicts quantization.extra_options: calib_moving_average (ST's older spelling of "
                "CalibMovingAverage: True); drop one of the two",
                "quantization.extra_options", m.get("extra_options"));
    q.extra.calib_moving_average = true;
  }
  read_iterative(ctx, m.get("iterative_quant_parameters"), q.iterative);
  m.finish_strict();
  // Rules between two keys: the line cited is that of the value the message names (none when it comes from a
  // command-line override), with the other value's line when that one is in the file.
  const YAML::Node params = m.get("onnx_quant_parameters"), extra = m.get("onnx_extra_options");
  if (!q.params.nodes_to_quantize.empty() && !q.extra.weights_tensor_override.empty())
    key_fail2(ctx, child(params, "nodes_to_quantize"), "quantization.onnx_quant_parameters.nodes_to_quantize",
              "cannot be combined with a non-empty quantization.onnx_extra_options.weights_tensor_override "
              "(weight overrides need the per-tensor quantization map of every node); drop one of the two",
              "quantization.onnx_extra_options.weights_tensor_override", child(extra, "weights_tensor_override"));
  // CalibStridedMinMax above 1 with a histogram method: config/rules.cc (its advice needs dataset.batch_size).
}

}  // namespace oq::config::detail
