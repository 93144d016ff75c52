// Config checks of the sixteenth QA report, all at load (each message names the key path, the value and the line of
// the value, none for a command-line override): operator names, the types and granularity against target_opset,
// full_auto's and the evaluation modes' needs, booleans as PyYAML reads them, override entries that are pairs with
// a map, a key given twice in an override's value, dataset.class_names listed twice. The expected lines are
// counted by hand in the YAML text of each test.
//
// Before these changes the operator names, the opset rules and full_auto's were checked after the model was loaded
// (quant/overrides.cc, quant/quantizer.cc, tools/cli/mode_full_auto.cc), so load_config_from_string accepted every
// config below that these tests expect refused; y / n, quoted booleans, `[w]` / `[w, null]`, a duplicated key in an
// override's value and class_names [a, a] were accepted too; known_op_types() did not exist.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "config_test_util.h"
#include "core/error.h"
#include "exec/kernel.h"

using namespace oq;
using namespace oq::config;

namespace {

using oq::config::test_util::config_error;

// Lines 1-5; the quantization section's keys follow from line 6.
const std::string kHead = "model:\n  model_path: m.onnx\ndataset:\n  quantization_path: d.npz\nquantization:\n";
// The same with a test set on line 5; the quantization section's keys follow from line 7.
const std::string kHeadTest =
    "model:\n  model_path: m.onnx\ndataset:\n  quantization_path: d.npz\n  test_path: t.npz\nquantization:\n";
const std::string kExtra = "quantization.onnx_extra_options.";
const std::string kParams = "quantization.onnx_quant_parameters.";

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)
#define EXPECT_LACKS(msg, part) EXPECT_EQ((msg).find(part), std::string::npos) << "message: " << (msg)

Config load(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return load_config_from_string(yaml, overrides, "cfg.yaml");
}

}  // namespace

TEST(ConfigRules, KnownOperatorTypesAreTheKernelRegistry) {
  const auto known = known_op_types();
  EXPECT_EQ(std::vector<std::string>(known.begin(), known.end()), exec::registered_ops())
      << "src/config/op_types.cc must list exactly the operators of the executor's kernels";
}

TEST(ConfigRules, OperatorNamesAreCheckedAtLoad) {
  std::string m = config_error(kHead + "  onnx_quant_parameters:\n    op_types_to_quantize: [Conv, Frob]\n");
  EXPECT_EQ(m, kParams + "op_types_to_quantize[1]: 'Frob' is not an ONNX operator onnxquant runs (operator names "
                         "are case-sensitive) (cfg.yaml:7)");
  m = config_error(kHead + "  onnx_extra_options:\n    OpTypesToExcludeOutputQuantization:\n      - Conv\n"
                           "      - gemm\n");
  EXPECT_EQ(m, kExtra + "OpTypesToExcludeOutputQuantization[1]: 'gemm' is not an ONNX operator onnxquant runs "
                        "(operator names are case-sensitive), did you mean 'Gemm'? (cfg.yaml:9)");
  m = config_error(kHead + "  onnx_extra_options:\n    QDQOpTypePerChannelSupportToAxis: {Matmul: 0}\n");
  EXPECT_HAS(m, kExtra + "QDQOpTypePerChannelSupportToAxis.Matmul: 'Matmul' is not an ONNX operator");
  EXPECT_HAS(m, "did you mean 'MatMul'? (cfg.yaml:7)");
  m = config_error(kHead, {"quantization.onnx_quant_parameters.op_types_to_quantize=[Frob]"});
  EXPECT_EQ(m, kParams + "op_types_to_quantize[0]: 'Frob' is not an ONNX operator onnxquant runs (operator names "
                         "are case-sensitive)");
  Config c = load(kHead + "  onnx_quant_parameters: {op_types_to_quantize: [Conv, MatMul, Sub]}\n"
                          "  onnx_extra_options: {OpTypesToExcludeOutputQuantization: [Relu],\n"
                          "                       QDQOpTypePerChannelSupportToAxis: {MatMul: 0}}\n");
  EXPECT_EQ(c.quantization.params.op_types_to_quantize, (std::vector<std::string>{"Conv", "MatMul", "Sub"}));
}

TEST(ConfigRules, FourAndSixteenBitTypesNeedTargetOpset21) {
  std::string m = config_error(kHead + "  target_opset: 19\n  onnx_quant_parameters:\n    weightType: Int4\n");
  EXPECT_EQ(m, "quantization.target_opset: Int4 quantization (" + kParams + "weightType) needs QuantizeLinear/"
               "DequantizeLinear from opset 21, got 19: set target_opset: 21 (cfg.yaml:6; " + kParams +
               "weightType: cfg.yaml:8)");
  // The default has no line: the type's is cited. 16-bit types may use UseQDQContribOps instead.
  m = config_error(kHead + "  onnx_quant_parameters: {activ_type: Int16}\n");
  EXPECT_HAS(m, "Int16 quantization (" + kParams + "activ_type) needs");
  EXPECT_HAS(m, "got 17 (the default): set target_opset: 21, or UseQDQContribOps: True");
  EXPECT_HAS(m, "(" + kParams + "activ_type: cfg.yaml:6)");
  EXPECT_NO_THROW(load(kHead + "  onnx_quant_parameters: {activType: UInt16}\n"
                               "  onnx_extra_options: {UseQDQContribOps: true}\n"));
  m = config_error(kHead + "  onnx_quant_parameters: {weightType: UInt4}\n"
                           "  onnx_extra_options: {UseQDQContribOps: true}\n");
  EXPECT_HAS(m, "UInt4 quantization");
  EXPECT_LACKS(m, "UseQDQContribOps");
  // Override types: weights/activations_tensor_override, TensorQuantOverrides and their convert.
  m = config_error(kHead + "  target_opset: 20\n  onnx_extra_options:\n    weights_tensor_override:\n"
                           "      - [w, {}]\n      - [v, {quant_type: Int4}]\n");
  EXPECT_HAS(m, "(" + kExtra + "weights_tensor_override[1].quant_type) needs");
  EXPECT_HAS(m, "(cfg.yaml:6; " + kExtra + "weights_tensor_override[1].quant_type: cfg.yaml:10)");
  m = config_error(kHead + "  onnx_extra_options:\n    activations_tensor_override: [[a, {quant_type: UInt16}]]\n");
  EXPECT_HAS(m, kExtra + "activations_tensor_override[0].quant_type: cfg.yaml:7)");
  m = config_error(kHead + "  onnx_extra_options:\n    TensorQuantOverrides:\n"
                           "      a: [{quant_type: QUInt8, convert: {quant_type: QUInt16}}]\n");
  EXPECT_HAS(m, "(" + kExtra + "TensorQuantOverrides.a[0].convert.quant_type: cfg.yaml:8)");
  // An override has no line; target_opset 21 and newer takes every type.
  m = config_error(kHead, {"quantization.onnx_quant_parameters.weightType=Int4", "quantization.target_opset=18"});
  EXPECT_EQ(m, "quantization.target_opset: Int4 quantization (" + kParams + "weightType) needs QuantizeLinear/"
               "DequantizeLinear from opset 21, got 18: set target_opset: 21");
  EXPECT_NO_THROW(load(kHead + "  target_opset: 21\n  onnx_quant_parameters: {weightType: Int4, activType: Int16}\n"));
  // operation_mode evaluation does not use the quantization section.
  EXPECT_NO_THROW(load(kHeadTest + "  onnx_quant_parameters: {weightType: Int4}\noperation_mode: evaluation\n"));
}

TEST(ConfigRules, PerChannelNeedsTargetOpset13) {
  std::string m = config_error(kHead + "  target_opset: 12\n");
  EXPECT_EQ(m, "quantization.target_opset: per-channel quantization (quantization.granularity: per_channel, the "
               "default) needs QuantizeLinear/DequantizeLinear with an axis, from opset 13, got 12: set target_opset: "
               "13 or higher, or granularity: per_tensor (cfg.yaml:6)");
  m = config_error(kHead + "  granularity: per_channel\n  target_opset: 10\n");
  EXPECT_HAS(m, "(quantization.granularity: per_channel) needs");
  EXPECT_HAS(m, "(cfg.yaml:7; quantization.granularity: cfg.yaml:6)");
  EXPECT_NO_THROW(load(kHead + "  granularity: per_tensor\n  target_opset: 10\n"));
  // An override's axis is per channel whatever granularity says (the model failed its schema check when saved).
  m = config_error(kHead + "  granularity: per_tensor\n  target_opset: 12\n  onnx_extra_options:\n"
                           "    weights_tensor_override: [[w, {}], [v, {axis: 0}]]\n");
  EXPECT_EQ(m, "quantization.target_opset: per-channel quantization (" + kExtra + "weights_tensor_override[1].axis) "
               "needs QuantizeLinear/DequantizeLinear with an axis, from opset 13, got 12: set target_opset: 13 or "
               "higher (cfg.yaml:7; " + kExtra + "weights_tensor_override[1].axis: cfg.yaml:9)");
  m = config_error(kHead + "  granularity: per_tensor\n  target_opset: 11\n",
                   {"quantization.onnx_extra_options.TensorQuantOverrides={w: [{axis: 0}]}"});
  EXPECT_HAS(m, "per-channel quantization (" + kExtra + "TensorQuantOverrides.w[0].axis) needs");
  EXPECT_HAS(m, "got 11: set target_opset: 13 or higher (cfg.yaml:7)");
}

TEST(ConfigRules, FullAutoNeedsOpset21Int8AndAnEvaluationSet) {
  std::string m = config_error(kHeadTest + "  target_opset: 19\n  operating_mode: full_auto\n");
  EXPECT_EQ(m, "quantization.target_opset: full_auto writes Int4 weights, which need QuantizeLinear/DequantizeLinear "
               "from opset 21, got 19: set target_opset: 21 (cfg.yaml:7; quantization.operating_mode: cfg.yaml:8)");
  m = config_error(kHeadTest + "  operating_mode: full_auto\n");
  EXPECT_HAS(m, "got 17 (the default): set target_opset: 21 (quantization.operating_mode: cfg.yaml:7)");
  m = config_error(kHeadTest + "  target_opset: 21\n  operating_mode: full_auto\n"
                               "  onnx_quant_parameters: {weightType: Int8, activType: UInt8}\n");
  EXPECT_EQ(m, kParams + "activType: full_auto needs weightType Int8 and activType Int8 (it searches which Int8 "
                         "weights can go to Int4), got UInt8 (cfg.yaml:9; quantization.operating_mode: cfg.yaml:8)");
  m = config_error(kHead + "  target_opset: 21\n  operating_mode: full_auto\n");
  EXPECT_EQ(m, "dataset.test_path: full_auto scores its attempts on an evaluation set: give dataset.test_path (or "
               "dataset.validation_path, used when test_path is not given) (quantization.operating_mode: cfg.yaml:7)");
  m = config_error(kHead + "  target_opset: 21\n", {"quantization.operating_mode=full_auto", "dataset.test_path="});
  EXPECT_EQ(m.find("cfg.yaml"), std::string::npos) << m;
  Config c = load(kHead + "  target_opset: 21\n  operating_mode: full_auto\n", {"dataset.validation_path=v.npz"});
  EXPECT_EQ(c.quantization.operating_mode, OperatingMode::FullAuto);
}

TEST(ConfigRules, EvaluationModesNeedAnEvaluationSet) {
  std::string m = config_error("operation_mode: evaluation\nmodel: {model_path: m.onnx}\n");
  EXPECT_EQ(m, "dataset.test_path: operation_mode 'evaluation' evaluates on dataset.test_path (or "
               "dataset.validation_path, used when test_path is not given): give one of them "
               "(operation_mode: cfg.yaml:1)");
  m = config_error(kHead + "  target_opset: 13\noperation_mode: chain_qe\n");
  EXPECT_HAS(m, "operation_mode 'chain_qe'");
  EXPECT_NO_THROW(load("operation_mode: evaluation\nmodel: {model_path: m.onnx}\ndataset: {validation_path: v}\n"));
}

TEST(ConfigRules, BooleansAsPyYamlReadsThem) {
  for (const char* v : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
    EXPECT_TRUE(load(kHead + "  optimize: " + v + "\n").quantization.optimize) << v;
  for (const char* v : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
    EXPECT_FALSE(load(kHead + "  optimize: " + v + "\n").quantization.optimize) << v;
  for (const char* v : {"y", "Y", "n", "N"}) {
    std::string m = config_error(kHead + "  onnx_extra_options:\n    WeightSymmetric: " + v + "\n");
    EXPECT_EQ(m, kExtra + "WeightSymmetric: expected a boolean, got '" + v + "', which PyYAML / Hydra (ST's flow) "
                 "read as a string, true there whatever it means: write true or false (cfg.yaml:7)");
  }
  std::string m = config_error(kHead, {"quantization.onnx_extra_options.CalibMovingAverage=n"});
  EXPECT_HAS(m, kExtra + "CalibMovingAverage: expected a boolean, got 'n'");
  EXPECT_LACKS(m, "cfg.yaml");
  for (const char* v : {"'false'", "\"true\"", "!!str no"}) {
    m = config_error(kHead + "  optimize: " + v + "\n");
    EXPECT_HAS(m, "quantization.optimize: expected a boolean, got the quoted string");
    EXPECT_HAS(m, "write true or false without quotes (cfg.yaml:6)");
  }
  m = config_error(kHead, {"quantization.optimize='false'"});  // a string for Hydra's override grammar too
  EXPECT_EQ(m, "quantization.optimize: expected a boolean, got 'false': Hydra reads 'false' in a command-line "
               "override as a string, which ST's flow takes as true; write false");
  // Other spellings keep the plain message; TensorQuantOverrides' booleans follow the same rule.
  EXPECT_EQ(config_error(kHead + "  optimize: tRUE\n"),
            "quantization.optimize: expected a boolean (true/false), got 'tRUE' (cfg.yaml:6)");
  m = config_error(kHead + "  onnx_extra_options:\n    TensorQuantOverrides: {a: [{symmetric: n}]}\n");
  EXPECT_HAS(m, kExtra + "TensorQuantOverrides.a[0].symmetric: expected a boolean, got 'n'");
}

TEST(ConfigRules, OverrideEntriesArePairsWithAMap) {
  std::string m = config_error(kHead + "  onnx_extra_options:\n    weights_tensor_override:\n      - [w, {}]\n"
                                       "      - [weights.0]\n");
  EXPECT_EQ(m, kExtra + "weights_tensor_override[1]: the entry of tensor 'weights.0' gives no settings: expected "
                        "['weights.0', {quant_type, scale, zero_point, axis}] (every key optional; {} keeps the "
                        "config's type, per tensor) (cfg.yaml:9)");
  m = config_error(kHead + "  onnx_extra_options:\n    activations_tensor_override: [[a, null]]\n");
  EXPECT_HAS(m, kExtra + "activations_tensor_override[0]: the entry of tensor 'a' gives null as its settings");
  EXPECT_HAS(m, "(cfg.yaml:7)");
  m = config_error(kHead + "  onnx_extra_options:\n    weights_tensor_override: [[w, [Int4]]]\n");
  EXPECT_HAS(m, kExtra + "weights_tensor_override[0]: expected a map of keys, got a list (cfg.yaml:7)");
  m = config_error(kHead, {"quantization.onnx_extra_options.weights_tensor_override=[[w, null]]"});
  EXPECT_HAS(m, kExtra + "weights_tensor_override[0]: the entry of tensor 'w' gives null");
  EXPECT_LACKS(m, "cfg.yaml");
  Config c = load(kHead + "  onnx_extra_options: {weights_tensor_override: [[w, {}]]}\n");
  ASSERT_EQ(c.quantization.extra.weights_tensor_override.size(), 1u);
  EXPECT_FALSE(c.quantization.extra.weights_tensor_override[0].quant_type.has_value());
}

TEST(ConfigRules, KeyGivenTwiceInAnOverridesValue) {
  std::string m = config_error(
      kHead, {"quantization.onnx_extra_options.weights_tensor_override=[[w, {quant_type: Int4, quant_type: Int8}]]"});
  EXPECT_EQ(m, "override 'quantization.onnx_extra_options.weights_tensor_override=[[w, {quant_type: Int4, quant_type: "
               "Int8}]]': quantization.onnx_extra_options.weights_tensor_override[0][1].quant_type: key given twice; "
               "keep one");
  m = config_error(kHead, {"quantization={granularity: per_tensor, granularity: per_channel}"});
  EXPECT_HAS(m, ": quantization.granularity: key given twice; keep one");
  // In the file, as before: both lines.
  m = config_error(kHead + "  onnx_extra_options:\n    activations_tensor_override:\n"
                           "      - [a, {quant_type: Int8,\n             quant_type: Int4}]\n");
  EXPECT_EQ(m.rfind("cfg.yaml:9: " + kExtra + "activations_tensor_override[0][1].quant_type: key given twice (lines 8 "
                    "and 9)", 0), 0u) << m;
}

TEST(ConfigRules, ClassNamesListedOnce) {
  std::string m = config_error("model: {model_path: m.onnx}\ndataset:\n  quantization_path: d.npz\n"
                               "  class_names:\n    - a\n    - b\n    - a\nquantization: {}\n");
  EXPECT_EQ(m, "dataset.class_names[2]: class 'a' is listed twice; list each class once (cfg.yaml:7; "
               "dataset.class_names[0]: cfg.yaml:5)");
  m = config_error(kHead, {"dataset.class_names=[x, x]"});
  EXPECT_EQ(m, "dataset.class_names[1]: class 'x' is listed twice; list each class once");
}
