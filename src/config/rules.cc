// Rules between keys of different sections that need only the config, checked at load once every value has been
// read (each is legal alone): what operation_mode evaluation / chain_qe and operating_mode full_auto need, the
// quantized types and granularity against quantization.target_opset, and CalibStridedMinMax against
// calibrate_method (with dataset.batch_size in its advice). Each message names the key whose value
// breaks the rule, its value and line, and the other key's line (none for a value from a command-line override).
// The rules that need the model (node and tensor names, channel counts, float16 models) are checked when it is
// loaded (quant/overrides.cc, tools/cli/job.cc).
#include "config/yaml_read.h"

namespace oq::config::detail {
namespace {

const char* kTargetOpset = "quantization.target_opset";
const char* kOperatingMode = "quantization.operating_mode";

// The node at keys[i..] below `n` (undefined when a key on the way is absent or not in a map). Recursive: an absent
// key's node is one that Node::reset() refuses.
YAML::Node at_path(const YAML::Node& n, const std::vector<std::string>& keys, size_t i = 0) {
  return i == keys.size() ? n : at_path(child(n, keys[i]), keys, i + 1);
}

// Element i of a sequence, read without the non-const operator[] (which may insert), or undefined.
YAML::Node element(const YAML::Node& seq, size_t i) {
  return seq.IsSequence() && i < seq.size() ? seq[i] : YAML::Node(YAML::NodeType::Undefined);
}

// "19" for a value of the file or an override, "17 (the default)" when the key is absent.
std::string value_of(int64_t v, const YAML::Node& n) {
  return std::to_string(v) + (is_null(n) ? " (the default)" : "");
}

// One quantized type the config asks for, with the key that gives it.
struct TypeUse {
  DType type;
  std::string path;
  YAML::Node node;
};

// The weight type, then the activation type (each under the spelling given, weightType / activType when neither
// is: a default has no node), then every override's type, in file order.
std::vector<TypeUse> type_uses(const YAML::Node& q, const QuantizationConfig& qc) {
  std::vector<TypeUse> out;
  const YAML::Node params = child(q, "onnx_quant_parameters"), extra = child(q, "onnx_extra_options");
  const std::string pp = "quantization.onnx_quant_parameters.", ep = "quantization.onnx_extra_options.";
  for (auto [keys, type] : {std::pair{std::pair{"weight_type", "weightType"}, qc.params.weight_type},
                            std::pair{std::pair{"activ_type", "activType"}, qc.params.activ_type}}) {
    const char* key = is_null(child(params, keys.first)) ? keys.second : keys.first;
    out.push_back({type, pp + key, child(params, key)});
  }
  for (auto [key, list] : {std::pair{"weights_tensor_override", &qc.extra.weights_tensor_override},
                           std::pair{"activations_tensor_override", &qc.extra.activations_tensor_override}}) {
    const YAML::Node entries = child(extra, key);
    for (size_t i = 0; i < list->size(); ++i)
      if (const auto& t = (*list)[i].quant_type) {
        const std::string p = ep + key + "[" + std::to_string(i) + "]";
        out.push_back({*t, p + ".quant_type", child(element(element(entries, i), 1), "quant_type")});
      }
  }
  const YAML::Node tqo = child(extra, "TensorQuantOverrides");
  for (const auto& t : qc.extra.tensor_quant_overrides)
    for (size_t j = 0; j < t.dicts.size(); ++j) {
      const std::string p = ep + "TensorQuantOverrides." + t.tensor + "[" + std::to_string(j) + "]";
      const YAML::Node d = element(child(tqo, t.tensor), j);
      if (const auto& qt = t.dicts[j].quant_type) out.push_back({*qt, p + ".quant_type", child(d, "quant_type")});
      if (const auto& c = t.dicts[j].convert)
        out.push_back({c->quant_type, p + ".convert.quant_type", at_path(d, {"convert", "quant_type"})});
    }
  return out;
}

// Every override that quantizes a weight per channel (an `axis`), in file order.
std::vector<std::pair<std::string, YAML::Node>> axis_uses(const YAML::Node& q, const QuantizationConfig& qc) {
  std::vector<std::pair<std::string, YAML::Node>> out;
  const YAML::Node extra = child(q, "onnx_extra_options");
  const std::string ep = "quantization.onnx_extra_options.";
  const YAML::Node entries = child(extra, "weights_tensor_override");
  for (size_t i = 0; i < qc.extra.weights_tensor_override.size(); ++i)
    if (qc.extra.weights_tensor_override[i].axis)
      out.emplace_back(ep + "weights_tensor_override[" + std::to_string(i) + "].axis",
                       child(element(element(entries, i), 1), "axis"));
  const YAML::Node tqo = child(extra, "TensorQuantOverrides");
  for (const auto& t : qc.extra.tensor_quant_overrides)
    if (!t.dicts.empty() && t.dicts[0].axis)
      out.emplace_back(ep + "TensorQuantOverrides." + t.tensor + "[0].axis",
                       child(element(child(tqo, t.tensor), 0), "axis"));
  return out;
}

bool needs_opset21(DType t) {
  return t == DType::Int4 || t == DType::UInt4 || t == DType::Int16 || t == DType::UInt16;
}

// The types and granularity against target_opset, as quantize_static's model needs them: 4- and 16-bit
// QuantizeLinear / DequantizeLinear from opset 21 (16-bit below it in com.microsoft with UseQDQContribOps),
// per-channel ones (an axis: granularity per_channel, or an override's axis) from 13. A model whose opset is above
// target_opset keeps its own, but the rule is on the config's value: the config says which opset it asks for.
void check_opset_rules(const Ctx& ctx, const YAML::Node& q, const QuantizationConfig& qc) {
  const YAML::Node opset = child(q, "target_opset");
  const int64_t target = qc.target_opset;
  if (target < 21)
    for (const TypeUse& u : type_uses(q, qc)) {
      if (!needs_opset21(u.type)) continue;
      const bool four_bit = u.type == DType::Int4 || u.type == DType::UInt4;
      if (qc.extra.use_qdq_contrib_ops && !four_bit) continue;
      key_fail2(ctx, opset, kTargetOpset,
                fmt::format("{} quantization ({}) needs QuantizeLinear/DequantizeLinear from opset 21, got {}: set "
                            "target_opset: 21{}",
                            quant_type_name(u.type), u.path, value_of(target, opset),
                            four_bit ? "" : ", or UseQDQContribOps: True for ONNX Runtime's own operators"),
                u.path, u.node);
    }
  if (target >= 13) return;
  const YAML::Node gran = child(q, "granularity");
  if (qc.granularity == Granularity::PerChannel)
    key_fail2(ctx, opset, kTargetOpset,
              fmt::format("per-channel quantization (quantization.granularity: per_channel{}) needs QuantizeLinear/"
                          "DequantizeLinear with an axis, from opset 13, got {}: set target_opset: 13 or higher, or "
                          "granularity: per_tensor",
                          is_null(gran) ? ", the default" : "", value_of(target, opset)),
              "quantization.granularity", gran);
  for (const auto& [path, node] : axis_uses(q, qc))  // per channel whatever granularity says
    key_fail2(ctx, opset, kTargetOpset,
              fmt::format("per-channel quantization ({}) needs QuantizeLinear/DequantizeLinear with an axis, from "
                          "opset 13, got {}: set target_opset: 13 or higher", path, value_of(target, opset)),
              path, node);
}

// operating_mode full_auto: Int8 weights and activations (it searches which Int8 weights go to Int4), opset 21 (it
// writes Int4 weights), and an evaluation set to score its attempts on.
void check_full_auto(const Ctx& ctx, const YAML::Node& root, const Config& cfg) {
  const YAML::Node q = child(root, "quantization"), mode = child(q, "operating_mode");
  const QuantizationConfig& qc = cfg.quantization;
  const std::vector<TypeUse> uses = type_uses(q, qc);
  for (size_t i = 0; i < 2; ++i) {  // weightType, then activType: the first two
    const TypeUse& u = uses[i];
    if (u.type != DType::Int8)
      key_fail2(ctx, u.node, u.path,
                fmt::format("full_auto needs weightType Int8 and activType Int8 (it searches which Int8 weights can "
                            "go to Int4), got {}", quant_type_name(u.type)),
                kOperatingMode, mode);
  }
  const YAML::Node opset = child(q, "target_opset");
  if (qc.target_opset < 21)
    key_fail2(ctx, opset, kTargetOpset,
              "full_auto writes Int4 weights, which need QuantizeLinear/DequantizeLinear from opset 21, got " +
                  value_of(qc.target_opset, opset) + ": set target_opset: 21",
              kOperatingMode, mode);
  if (cfg.dataset.test_path.empty() && cfg.dataset.validation_path.empty())
    key_fail2(ctx, at_path(root, {"dataset", "test_path"}), "dataset.test_path",
              "full_auto scores its attempts on an evaluation set: give dataset.test_path (or "
              "dataset.validation_path, used when test_path is not given)",
              kOperatingMode, mode);
}

// CalibStridedMinMax: k > 1 takes k batches per collect_data() call, which only MinMax supports here; the histogram
// methods get the same histograms from one call per batch of k times the samples.
void check_strided_histograms(const Ctx& ctx, const YAML::Node& root, const Config& cfg) {
  const QuantizationConfig& qc = cfg.quantization;
  if (!qc.extra.calib_strided_minmax || *qc.extra.calib_strided_minmax <= 1 ||
      qc.params.calibrate_method == CalibrateMethod::MinMax)
    return;
  const int64_t k = *qc.extra.calib_strided_minmax, b = cfg.dataset.batch_size;
  const YAML::Node q = child(root, "quantization");
  key_fail2(ctx, at_path(q, {"onnx_extra_options", "CalibStridedMinMax"}),
            "quantization.onnx_extra_options.CalibStridedMinMax",
            fmt::format("{} batches per call is supported with MinMax only; for {} set dataset.batch_size to {} ({} x "
                        "batch_size {}: the samples of one call) and CalibStridedMinMax to 1 (the same histograms)",
                        k, to_string(qc.params.calibrate_method), k * b, k, b),
            "quantization.onnx_quant_parameters.calibrate_method",
            at_path(q, {"onnx_quant_parameters", "calibrate_method"}));
}

}  // namespace

void check_rules(const Ctx& ctx, const YAML::Node& root, const Config& cfg) {
  if (cfg.operation_mode != OperationMode::Quantization && cfg.dataset.test_path.empty() &&
      cfg.dataset.validation_path.empty())
    key_fail2(ctx, at_path(root, {"dataset", "test_path"}), "dataset.test_path",
              "operation_mode '" + std::string(to_string(cfg.operation_mode)) +
                  "' evaluates on dataset.test_path (or dataset.validation_path, used when test_path is not given): "
                  "give one of them",
              "operation_mode", child(root, "operation_mode"));
  if (cfg.operation_mode == OperationMode::Evaluation) return;  // the quantization section is not used
  check_strided_histograms(ctx, root, cfg);
  if (cfg.quantization.operating_mode == OperatingMode::FullAuto) check_full_auto(ctx, root, cfg);
  check_opset_rules(ctx, child(root, "quantization"), cfg.quantization);
}

}  // namespace oq::config::detail
