// Config loading: defaults, the shared ST example, arithmetic strings, overrides, Hydra ${now:} expansion,
// output-dir resolution and the ST-style description. Error cases are in test_config_errors.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>

#include <unistd.h>

#include "config/config.h"
#include "core/error.h"

using namespace oq;
using namespace oq::config;

namespace {

const char* kMinimal =
    "model:\n"
    "  model_path: m.onnx\n"
    "quantization:\n"
    "  quantizer: onnx_quantizer\n";

std::string local_strftime(std::time_t t, const char* f) {
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[128];
  return std::string(buf, std::strftime(buf, sizeof buf, f, &tm));
}

}  // namespace

TEST(Config, EveryDefault) {
  Config c = load_config_from_string(kMinimal);
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(c.operation_mode, OperationMode::Quantization);
  EXPECT_EQ(c.general.project_name, "<unnamed>");
  EXPECT_EQ(c.general.logs_dir, "logs");
  EXPECT_EQ(c.general.saved_models_dir, "saved_models");
  EXPECT_EQ(c.general.global_seed, 123);
  EXPECT_EQ(c.model.model_path, "m.onnx");
  EXPECT_TRUE(c.model.input_shape.empty());
  const DatasetConfig& d = c.dataset;
  EXPECT_EQ(d.name, "");
  EXPECT_TRUE(d.class_names.empty());
  EXPECT_EQ(d.training_path, "");
  EXPECT_EQ(d.quantization_path, "");
  EXPECT_EQ(d.quantization_split, 1.0);
  EXPECT_EQ(d.test_path, "");
  EXPECT_EQ(d.validation_path, "");
  EXPECT_EQ(d.seed, 123);
  EXPECT_EQ(d.batch_size, 1);
  EXPECT_FALSE(d.skip_bad_files);
  const PreprocessingConfig& p = c.preprocessing;
  EXPECT_EQ(p.scale, 1.0);
  EXPECT_EQ(p.offset, 0.0);
  EXPECT_EQ(p.interpolation, Interpolation::Nearest);
  EXPECT_EQ(p.aspect_ratio, AspectRatio::Fit);
  EXPECT_EQ(p.color_mode, ColorMode::Rgb);
  EXPECT_EQ(p.layout, Layout::Auto);
  EXPECT_TRUE(c.has_quantization);
  const QuantizationConfig& q = c.quantization;
  EXPECT_EQ(q.input_type, IoType::Float);
  EXPECT_EQ(q.output_type, IoType::Float);
  EXPECT_EQ(q.granularity, Granularity::PerChannel);
  EXPECT_EQ(q.export_dir, "quantized_models");
  EXPECT_FALSE(q.optimize);
  EXPECT_EQ(q.target_opset, 17);
  EXPECT_EQ(q.operating_mode, OperatingMode::Default);
  EXPECT_EQ(q.params.weight_type, DType::Int8);
  EXPECT_EQ(q.params.activ_type, DType::Int8);
  EXPECT_EQ(q.params.calibrate_method, CalibrateMethod::MinMax);
  EXPECT_TRUE(q.params.op_types_to_quantize.empty());
  EXPECT_TRUE(q.params.nodes_to_quantize.empty());
  EXPECT_TRUE(q.params.nodes_to_exclude.empty());
  const ExtraOptions& e = q.extra;
  EXPECT_TRUE(e.weight_symmetric);
  EXPECT_FALSE(e.activation_symmetric);
  EXPECT_FALSE(e.calib_moving_average);
  EXPECT_TRUE(e.quantize_bias);
  EXPECT_FALSE(e.smooth_quant);
  EXPECT_EQ(e.smooth_quant_alpha, 0.5);
  EXPECT_TRUE(e.smooth_quant_folding);
  EXPECT_FALSE(e.minimum_real_range.has_value());
  EXPECT_EQ(e.calib_percentile, 99.999);
  EXPECT_EQ(e.weight_quantizer, WeightQuantizer::MinMax);
  EXPECT_FALSE(e.bias_correction);
  EXPECT_FALSE(e.cross_layer_equalization);
  EXPECT_FALSE(e.cross_layer_equalization_replace_relu6);
  EXPECT_TRUE(e.weights_tensor_override.empty());
  EXPECT_TRUE(e.activations_tensor_override.empty());
  const IterativeParameters& it = q.iterative;
  EXPECT_EQ(it.inspection_split, 1.0);
  EXPECT_EQ(it.accuracy_tolerance, 1.0);
  EXPECT_EQ(it.tolerance_mode, ToleranceMode::Absolute);
  EXPECT_EQ(it.metric, Metric::Auto);
  EXPECT_EQ(it.evaluator_command, "");
  EXPECT_EQ(it.ranking, Ranking::Static);
  EXPECT_EQ(it.search, SearchStrategy::Bisection);
  EXPECT_EQ(it.snr_threshold, 20.0);
  EXPECT_EQ(c.hydra_run_dir, "");
}

TEST(Config, NullKeysTakeTheirDefaults) {
  Config c = load_config_from_string(
      "general:\n  global_seed:\n"
      "model: {model_path: m.onnx}\n"
      "dataset: {quantization_split: null, batch_size: ~, seed: }\n"
      "preprocessing: {rescaling: {scale: null}, resizing: null, color_mode: null}\n"
      "quantization:\n  granularity:\n  target_opset:\n  onnx_quant_parameters:\n  onnx_extra_options:\n"
      "    SmoothQuantAlpha:\n    MinimumRealRange:\n    CalibStridedMinMax:\n  iterative_quant_parameters:\n");
  EXPECT_EQ(c.general.global_seed, 123);
  EXPECT_EQ(c.dataset.quantization_split, 1.0);
  EXPECT_EQ(c.dataset.batch_size, 1);
  EXPECT_EQ(c.dataset.seed, 123);
  EXPECT_EQ(c.preprocessing.scale, 1.0);
  EXPECT_EQ(c.preprocessing.color_mode, ColorMode::Rgb);
  EXPECT_EQ(c.quantization.granularity, Granularity::PerChannel);
  EXPECT_EQ(c.quantization.target_opset, 17);
  EXPECT_EQ(c.quantization.extra.smooth_quant_alpha, 0.5);
  EXPECT_FALSE(c.quantization.extra.minimum_real_range.has_value());
  EXPECT_FALSE(c.quantization.extra.calib_strided_minmax.has_value());
}

TEST(Config, SharedStExampleParsesAsIs) {
  std::string path = std::string(OQ_SHARED_DIR) + "/examples/st_user_config_full_auto.yaml";
  Config c = load_config(path);
  // general.gpu_memory_limit is fine (general keys are accepted); mlflow is the only ignored section.
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0], "mlflow: ignored by onnxquant");
  EXPECT_EQ(c.source, path);
  EXPECT_EQ(c.operation_mode, OperationMode::Quantization);
  EXPECT_EQ(c.general.project_name, "flowers");
  EXPECT_EQ(c.general.global_seed, 127);
  EXPECT_EQ(c.model.model_path, "../shared/models/mobilenet_v2_0.35_128_tfs_channel_first.onnx");
  EXPECT_EQ(c.dataset.name, "tf_flowers");
  EXPECT_EQ(c.dataset.class_names, (std::vector<std::string>{"daisy", "dandelion", "roses", "sunflowers", "tulips"}));
  EXPECT_EQ(c.dataset.training_path, "");
  EXPECT_EQ(c.dataset.quantization_path, "./datasets/flower_photos");
  EXPECT_DOUBLE_EQ(c.dataset.quantization_split, 0.3);
  EXPECT_EQ(c.dataset.test_path, "./datasets/flower_photos_test");
  EXPECT_EQ(c.dataset.seed, 123);
  EXPECT_EQ(c.preprocessing.scale, 1.0 / 127.5);
  EXPECT_EQ(c.preprocessing.offset, -1.0);
  EXPECT_EQ(c.preprocessing.interpolation, Interpolation::Nearest);
  EXPECT_EQ(c.preprocessing.aspect_ratio, AspectRatio::Fit);
  EXPECT_EQ(c.preprocessing.color_mode, ColorMode::Rgb);
  const QuantizationConfig& q = c.quantization;
  EXPECT_EQ(q.granularity, Granularity::PerChannel);
  EXPECT_EQ(q.target_opset, 21);
  EXPECT_EQ(q.operating_mode, OperatingMode::FullAuto);
  EXPECT_EQ(q.params.weight_type, DType::Int8);
  EXPECT_EQ(q.params.activ_type, DType::Int8);
  EXPECT_TRUE(q.extra.weight_symmetric);
  EXPECT_FALSE(q.extra.activation_symmetric);
  EXPECT_TRUE(q.extra.smooth_quant);
  EXPECT_DOUBLE_EQ(q.extra.smooth_quant_alpha, 0.1);
  EXPECT_DOUBLE_EQ(q.iterative.inspection_split, 0.5);
  EXPECT_EQ(q.iterative.accuracy_tolerance, 1.0);
  std::regex re(R"(\./experiments_outputs/\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2})");
  EXPECT_TRUE(std::regex_match(c.hydra_run_dir, re)) << c.hydra_run_dir;
  EXPECT_EQ(c.hydra_run_dir, "./experiments_outputs/" + local_strftime(c.load_time, "%Y_%m_%d_%H_%M_%S"));
  EXPECT_EQ(resolve_output_dir(c, ""), c.hydra_run_dir);
}

TEST(Config, IgnoredSectionsAndKeysWarnOncePerKey) {
  Config c = load_config_from_string(std::string(kMinimal) +
                                     "general: {gpu_memory_limit: 8, display_figures: true}\n"
                                     "training: {epochs: 10}\nmlflow: {uri: x}\nbenchmarking: {board: B}\n"
                                     "dataset: {format: tf, name: d}\npreprocessing: {rescaling: {scale: 2, foo: 1}}\n"
                                     "hydra: {run: {dir: out}, sweep: {dir: s}}\n");
  std::vector<std::string> want = {"preprocessing.rescaling.foo: ignored by onnxquant",
                                   "dataset.format: ignored by onnxquant", "hydra.sweep: ignored by onnxquant",
                                   "training: ignored by onnxquant", "mlflow: ignored by onnxquant",
                                   "benchmarking: ignored by onnxquant"};
  std::sort(want.begin(), want.end());
  std::vector<std::string> got = c.warnings;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(c.preprocessing.scale, 2.0);
  EXPECT_EQ(c.hydra_run_dir, "out");
}

TEST(Config, EvaluationModeNeedsNoQuantizationSection) {
  Config c =
      load_config_from_string("operation_mode: evaluation\nmodel: {model_path: m.onnx}\ndataset: {test_path: t}\n");
  EXPECT_EQ(c.operation_mode, OperationMode::Evaluation);
  EXPECT_FALSE(c.has_quantization);
  Config c2 = load_config_from_string(std::string(kMinimal) + "operation_mode: chain_qe\ndataset: {test_path: t}\n");
  EXPECT_EQ(c2.operation_mode, OperationMode::ChainQE);
}

TEST(Config, EnumsAndBooleansInStSpellings) {
  Config c = load_config_from_string(
      "model: {model_path: m.onnx, input_shape: [128, 128, 3]}\n"
      "dataset: {dataset_name: flowers, skip_bad_files: True, batch_size: 4, quantization_split: 0.25}\n"
      "preprocessing: {resizing: {interpolation: Bilinear, aspect_ratio: padding}, color_mode: BGR, layout: nhwc}\n"
      "quantization:\n  quantizer: ONNX_QUANTIZER\n  quantization_type: ptq\n  quantization_input_type: uint8\n"
      "  quantization_output_type: int8\n  granularity: per_tensor\n  optimize: TRUE\n  operating_mode: inspection\n"
      "  onnx_quant_parameters: {calibrate_method: percentile, op_types_to_quantize: [Conv, Gemm],\n"
      "                          nodes_to_exclude: [n1]}\n"
      "  onnx_extra_options: {WeightSymmetric: False, ActivationSymmetric: true, CalibMovingAverage: yes,\n"
      "    CalibStridedMinMax: 1, QuantizeBias: false, SmoothQuantFolding: False, MinimumRealRange: 0.0001,\n"
      "    CalibPercentile: 99.9,\n"
      "    WeightQuantizer: GPTQ, BiasCorrection: True, CrossLayerEqualization: True,\n"
      "    CrossLayerEqualizationReplaceRelu6: True}\n"
      "  iterative_quant_parameters: {tolerance_mode: relative, metric: evaluator_command,\n"
      "    evaluator_command: ./eval.sh, ranking: static, search: greedy, snr_threshold: 30, accuracy_tolerance: 0}\n");
  EXPECT_EQ(c.model.input_shape, (std::vector<int64_t>{128, 128, 3}));
  EXPECT_EQ(c.dataset.name, "flowers");
  EXPECT_TRUE(c.dataset.skip_bad_files);
  EXPECT_EQ(c.dataset.batch_size, 4);
  EXPECT_EQ(c.dataset.quantization_split, 0.25);
  EXPECT_EQ(c.preprocessing.interpolation, Interpolation::Bilinear);
  EXPECT_EQ(c.preprocessing.aspect_ratio, AspectRatio::Padding);
  EXPECT_EQ(c.preprocessing.color_mode, ColorMode::Bgr);
  EXPECT_EQ(c.preprocessing.layout, Layout::NHWC);
  const QuantizationConfig& q = c.quantization;
  EXPECT_EQ(q.input_type, IoType::UInt8);
  EXPECT_EQ(q.output_type, IoType::Int8);
  EXPECT_EQ(q.granularity, Granularity::PerTensor);
  EXPECT_TRUE(q.optimize);
  EXPECT_EQ(q.operating_mode, OperatingMode::Inspection);
  EXPECT_EQ(q.params.calibrate_method, CalibrateMethod::Percentile);
  EXPECT_EQ(q.extra.calib_strided_minmax, std::optional<int64_t>(1));
  EXPECT_EQ(q.params.op_types_to_quantize, (std::vector<std::string>{"Conv", "Gemm"}));
  EXPECT_EQ(q.params.nodes_to_exclude, (std::vector<std::string>{"n1"}));
  EXPECT_FALSE(q.extra.weight_symmetric);
  EXPECT_TRUE(q.extra.activation_symmetric);
  EXPECT_TRUE(q.extra.calib_moving_average);
  EXPECT_FALSE(q.extra.quantize_bias);
  EXPECT_FALSE(q.extra.smooth_quant_folding);
  ASSERT_TRUE(q.extra.minimum_real_range.has_value());
  EXPECT_EQ(*q.extra.minimum_real_range, 0.0001);
  EXPECT_EQ(q.extra.calib_percentile, 99.9);
  EXPECT_EQ(q.extra.weight_quantizer, WeightQuantizer::Gptq);
  EXPECT_TRUE(q.extra.bias_correction);
  EXPECT_TRUE(q.extra.cross_layer_equalization);
  EXPECT_TRUE(q.extra.cross_layer_equalization_replace_relu6);
  EXPECT_EQ(q.iterative.tolerance_mode, ToleranceMode::Relative);
  EXPECT_EQ(q.iterative.metric, Metric::EvaluatorCommand);
  EXPECT_EQ(q.iterative.evaluator_command, "./eval.sh");
  EXPECT_EQ(q.iterative.ranking, Ranking::Static);
  EXPECT_EQ(q.iterative.search, SearchStrategy::Greedy);
  EXPECT_EQ(q.iterative.snr_threshold, 30.0);
  EXPECT_EQ(q.iterative.accuracy_tolerance, 0.0);
}

TEST(Config, BothWeightTypeSpellings) {
  auto load = [](const std::string& params) {
    return load_config_from_string("model: {model_path: m.onnx}\nquantization:\n  target_opset: 21\n"
                                   "  onnx_quant_parameters: " + params + "\n");
  };
  Config a = load("{weight_type: qint4, activ_type: Int16}");
  EXPECT_EQ(a.quantization.params.weight_type, DType::Int4);
  EXPECT_EQ(a.quantization.params.activ_type, DType::Int16);
  Config b = load("{weightType: UINT8, activType: QUInt16}");
  EXPECT_EQ(b.quantization.params.weight_type, DType::UInt8);
  EXPECT_EQ(b.quantization.params.activ_type, DType::UInt16);
  Config m = load("{weightType: uint4, activ_type: QInt8}");
  EXPECT_EQ(m.quantization.params.weight_type, DType::UInt4);
  EXPECT_EQ(m.quantization.params.activ_type, DType::Int8);
  // One spelling given as null and the other set: not a conflict.
  Config n = load("{weight_type: null, weightType: Int4}");
  EXPECT_EQ(n.quantization.params.weight_type, DType::Int4);
}

TEST(Config, TensorOverridesInTheSeedSyntax) {
  Config c = load_config_from_string(
      "model: {model_path: m.onnx}\nquantization:\n  target_opset: 21\n  onnx_extra_options:\n"
      "    weights_tensor_override: [['block6a/ReadVariableOp:0', {'quant_type': Int16, 'scale': 0.0025, "
      "'zero_point': -12}],\n"
      "                              ['stem_conv/merged_input:0', {'quant_type': QInt4, \"axis\": 0}],\n"
      "                              [w_pc, {scale: [1/64, 0.5], zero_point: [0, -3], axis: 1}]]\n"
      "    activations_tensor_override: [['mul_1:0', {'quant_type': Int16}], [bias_add, {}]]\n");
  const auto& w = c.quantization.extra.weights_tensor_override;
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].tensor, "block6a/ReadVariableOp:0");
  EXPECT_EQ(w[0].quant_type, DType::Int16);
  EXPECT_EQ(w[0].scale, (std::vector<double>{0.0025}));
  EXPECT_EQ(w[0].zero_point, (std::vector<int64_t>{-12}));
  EXPECT_FALSE(w[0].values_are_lists);
  EXPECT_FALSE(w[0].axis.has_value());
  EXPECT_TRUE(w[0].has_fixed_qparams());
  EXPECT_EQ(w[1].quant_type, DType::Int4);
  EXPECT_FALSE(w[1].has_fixed_qparams());
  EXPECT_EQ(w[1].axis, 0);
  EXPECT_FALSE(w[2].quant_type.has_value());
  EXPECT_EQ(w[2].scale, (std::vector<double>{1.0 / 64, 0.5}));
  EXPECT_EQ(w[2].zero_point, (std::vector<int64_t>{0, -3}));
  EXPECT_TRUE(w[2].values_are_lists);
  EXPECT_EQ(w[2].axis, 1);
  const auto& a = c.quantization.extra.activations_tensor_override;
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].tensor, "mul_1:0");
  EXPECT_EQ(a[0].quant_type, DType::Int16);
  EXPECT_EQ(a[1].tensor, "bias_add");
  EXPECT_FALSE(a[1].quant_type.has_value());
  EXPECT_FALSE(a[1].has_fixed_qparams());
}

TEST(Config, ArithmeticEvaluator) {
  EXPECT_EQ(*eval_arithmetic("1/127.5"), 1.0 / 127.5);
  EXPECT_EQ(*eval_arithmetic("-1"), -1.0);
  EXPECT_EQ(*eval_arithmetic("2*0.5"), 1.0);
  EXPECT_EQ(*eval_arithmetic(" (1 + 2) * 3 "), 9.0);
  EXPECT_EQ(*eval_arithmetic("-(2-5)/2"), 1.5);
  EXPECT_EQ(*eval_arithmetic("1-2-3"), -4.0);    // left associative
  EXPECT_EQ(*eval_arithmetic("8/4/2"), 1.0);     // left associative
  EXPECT_EQ(*eval_arithmetic("1+2*3"), 7.0);     // precedence
  EXPECT_EQ(*eval_arithmetic("--1"), 1.0);
  EXPECT_EQ(*eval_arithmetic("+.5"), 0.5);
  EXPECT_EQ(*eval_arithmetic("5."), 5.0);
  EXPECT_EQ(*eval_arithmetic("1e-3"), 0.001);
  EXPECT_EQ(*eval_arithmetic("2.5E+2"), 250.0);
  EXPECT_EQ(*eval_arithmetic("-127.5/127.5"), -1.0);
  std::string err;
  for (const char* bad : {"", "  ", "1/0", "abc", "1+", "(1", "1)", "2e", "1 2", "True", "__import__('os')",
                          "1e999", "1/(2-2)", "2**3", "."}) {
    err.clear();
    EXPECT_FALSE(eval_arithmetic(bad, &err).has_value()) << bad;
    EXPECT_FALSE(err.empty()) << bad;
  }
  EXPECT_FALSE(eval_arithmetic(std::string(10000, '(') + "1" + std::string(10000, ')')).has_value());
  EXPECT_EQ(*eval_arithmetic(std::string(20, '(') + "1" + std::string(20, ')')), 1.0);
}

TEST(Config, ArithmeticStringsInConfigValues) {
  Config c = load_config_from_string(
      "model: {model_path: m.onnx}\n"
      "dataset: {quantization_split: 1/4, batch_size: 2*16, seed: '(1+2)*41'}\n"
      "preprocessing: {rescaling: {scale: 1/255, offset: -127.5/127.5}}\n"
      "quantization:\n  target_opset: 7*3\n  onnx_extra_options: {SmoothQuantAlpha: (1+1)/4, CalibPercentile: "
      "100 - 1e-3}\n");
  EXPECT_EQ(c.dataset.quantization_split, 0.25);
  EXPECT_EQ(c.dataset.batch_size, 32);
  EXPECT_EQ(c.dataset.seed, 123);
  EXPECT_EQ(c.preprocessing.scale, 1.0 / 255);
  EXPECT_EQ(c.preprocessing.offset, -1.0);
  EXPECT_EQ(c.quantization.target_opset, 21);
  EXPECT_EQ(c.quantization.extra.smooth_quant_alpha, 0.5);
  EXPECT_EQ(c.quantization.extra.calib_percentile, 100 - 1e-3);
}

TEST(Config, OverridesApplyBeforeValidation) {
  // The YAML alone is invalid (granularity) and lacks sections; the overrides fix and create them.
  Config c = load_config_from_string(
      "model: {model_path: m.onnx}\nquantization: {granularity: bogus}\n",
      {"quantization.granularity=per_tensor", "dataset.batch_size=8", "preprocessing.resizing.interpolation=area",
       "preprocessing.rescaling.scale=1/255", "quantization.onnx_quant_parameters.nodes_to_exclude=[a, b]",
       "+general.project_name=p", "++operation_mode=chain_qe", "hydra.run.dir=out/${now:%Y}",
       "quantization.onnx_extra_options.weights_tensor_override=[[w, {quant_type: Int4}]]",
       "quantization.target_opset=21",
       "dataset.test_path=x=y"});
  EXPECT_EQ(c.quantization.granularity, Granularity::PerTensor);
  EXPECT_EQ(c.dataset.batch_size, 8);
  EXPECT_EQ(c.preprocessing.interpolation, Interpolation::Area);
  EXPECT_EQ(c.preprocessing.scale, 1.0 / 255);
  EXPECT_EQ(c.quantization.params.nodes_to_exclude, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.general.project_name, "p");
  EXPECT_EQ(c.operation_mode, OperationMode::ChainQE);
  EXPECT_EQ(c.hydra_run_dir, "out/" + local_strftime(c.load_time, "%Y"));
  ASSERT_EQ(c.quantization.extra.weights_tensor_override.size(), 1u);
  EXPECT_EQ(c.quantization.extra.weights_tensor_override[0].quant_type, DType::Int4);
  EXPECT_EQ(c.dataset.test_path, "x=y");  // split at the first '='
  // An empty value is YAML null: the key takes its default.
  Config d = load_config_from_string(std::string(kMinimal) + "dataset: {batch_size: 5}\n", {"dataset.batch_size="});
  EXPECT_EQ(d.dataset.batch_size, 1);
  // Overrides also work on an empty document.
  Config e =
      load_config_from_string("", {"model.model_path=z.onnx", "operation_mode=evaluation", "dataset.test_path=t"});
  EXPECT_EQ(e.model.model_path, "z.onnx");
}

TEST(Config, NowInterpolationExpandsWithStrftime) {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 2;
  tm.tm_mday = 5;
  tm.tm_hour = 7;
  tm.tm_min = 8;
  tm.tm_sec = 9;
  tm.tm_isdst = -1;
  std::time_t t = std::mktime(&tm);
  EXPECT_EQ(expand_interpolations("./exp/${now:%Y_%m_%d_%H_%M_%S}", "k", t), "./exp/2024_03_05_07_08_09");
  EXPECT_EQ(expand_interpolations("${now:%Y}-${now:%d}/x", "k", t), "2024-05/x");
  EXPECT_EQ(expand_interpolations("plain", "k", t), "plain");
  Config c = load_config_from_string(std::string(kMinimal) + "hydra:\n  run:\n    dir: r/${now:%H-%M}_${now:%Y}\n");
  EXPECT_TRUE(std::regex_match(c.hydra_run_dir, std::regex(R"(r/\d{2}-\d{2}_\d{4})"))) << c.hydra_run_dir;
}

// OmegaConf 2.1+'s grammar (OmegaConfGrammarLexer.g4, grammar_visitor.py), expected values by hand from its rules.
TEST(Config, InterpolationEscapesAndNesting) {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 2;
  tm.tm_mday = 5;
  tm.tm_isdst = -1;
  const std::time_t t = std::mktime(&tm);
  auto x = [&](std::string_view v) { return expand_interpolations(v, "k", t); };
  EXPECT_EQ(x(R"(exp/\${now:%Y})"), "exp/${now:%Y}");        // 1 backslash: a literal ${
  EXPECT_EQ(x(R"(exp/\\${now:%Y})"), R"(exp/\2024)");         // 2: one backslash, then the interpolation
  EXPECT_EQ(x(R"(exp/\\\${now:%Y})"), R"(exp/\${now:%Y})");   // 3: one backslash and a literal ${
  EXPECT_EQ(x(R"(exp/\\\\${now:%Y})"), R"(exp/\\2024)");      // 4: two backslashes, then the interpolation
  EXPECT_EQ(x(R"(a\b\\c\)"), R"(a\b\\c\)");                   // not before ${: literal
  EXPECT_EQ(x(R"(\${a}}x)"), "${a}}x");                       // after an escaped ${ everything is text
  EXPECT_EQ(x("${now:${now:%Y}}"), "2024");                   // inside out: strftime("2024")
  EXPECT_EQ(x("${now:%m${now:%Y}%d}"), "03202405");
  EXPECT_EQ(x("${ now:  %Y-%m }"), "2024-03");                // white space around the argument dropped
  EXPECT_EQ(x(R"(${now:%Y\:%m})"), "2024:03");                // an escaped ':' in an argument
  EXPECT_EQ(x("x${now:}y"), "xy");
  std::string err;
  EXPECT_FALSE(try_expand_interpolations("exp/${now:${general.project_name}}", t, &err));
  EXPECT_EQ(err, "interpolation '${general.project_name}' is not supported by onnxquant (only ${now:FORMAT} is "
                 "expanded), in '${now:${general.project_name}}'");
  EXPECT_FALSE(try_expand_interpolations("${now:${now:%Y}", t, &err));
  EXPECT_EQ(err, "unterminated interpolation in '${now:${now:%Y}'");
  EXPECT_FALSE(try_expand_interpolations(R"(\\${oc.env:HOME})", t, &err));
  EXPECT_EQ(err, "interpolation '${oc.env:HOME}' is not supported by onnxquant (only ${now:FORMAT} is expanded)");
  EXPECT_FALSE(try_expand_interpolations("${hydra:run.dir}", t, &err));
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "${now:";
  deep += "%Y" + std::string(40, '}');
  EXPECT_FALSE(try_expand_interpolations(deep, t, &err));
  EXPECT_NE(err.find("nested more than 32 deep"), std::string::npos) << err;
}

TEST(Config, DefaultsListOnlyHydraGroups) {
  // _self_, hydra/ groups and null options change no key: accepted, with the section's warning.
  Config c = load_config_from_string("defaults:\n  - _self_\n  - override hydra/job_logging: disabled\n"
                                     "  - hydra/hydra_logging@_group_: none\n  - /hydra/help: default\n"
                                     "  - optional dataset: null\n" + std::string(kMinimal));
  EXPECT_NE(std::find(c.warnings.begin(), c.warnings.end(), "defaults: ignored by onnxquant"), c.warnings.end());
  for (const char* entry : {"dataset: flowers", "override dataset: flowers", "optional db@x: mysql", "base_config",
                            "/dataset: a", "hydraulics: x", "db: [a, b]"}) {
    try {
      load_config_from_string("defaults:\n  - _self_\n  - " + std::string(entry) + "\n" + kMinimal, {}, "c.yaml");
      ADD_FAILURE() << entry;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("defaults[1]: Hydra would compose config", 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).find("(c.yaml:3)"), std::string::npos) << e.what();
    }
  }
}

TEST(Config, OutputDirResolution) {
  Config c = load_config_from_string(std::string(kMinimal) + "hydra: {run: {dir: hyd}}\n");
  EXPECT_EQ(resolve_output_dir(c, "cli_dir"), "cli_dir");
  EXPECT_EQ(resolve_output_dir(c, ""), "hyd");
  Config d = load_config_from_string(kMinimal);
  std::string out = resolve_output_dir(d, "");
  EXPECT_TRUE(std::regex_match(out, std::regex(R"(experiments_outputs/\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2})"))) << out;
  EXPECT_EQ(out, "experiments_outputs/" + local_strftime(d.load_time, "%Y_%m_%d_%H_%M_%S"));
  EXPECT_EQ(resolve_output_dir(d, "x"), "x");
}

TEST(Config, LoadFromFileKeepsRelativePathsAsGiven) {
  auto dir = std::filesystem::temp_directory_path() / ("oq_cfg_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "user_config.yaml";
  {
    std::ofstream f(file);
    f << "model:\n  model_path: ../models/m.onnx\ndataset:\n  quantization_path: ./data\nquantization: {}\n"
         "operation_mode: evaluation\n";
  }
  Config c = load_config(file.string(), {"dataset.test_path=t"});
  EXPECT_EQ(c.model.model_path, "../models/m.onnx");  // relative to the cwd, not to the config file
  EXPECT_EQ(c.dataset.quantization_path, "./data");
  EXPECT_EQ(c.dataset.test_path, "t");
  EXPECT_EQ(c.source, file.string());
  std::filesystem::remove_all(dir);
}

TEST(Config, DescribeAsStLogsIt) {
  Config c = load_config_from_string(kMinimal);
  auto lines = describe_quantization(c.quantization);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "Quantization granularity: per_channel");
  EXPECT_EQ(lines[1],
            "Quantization parameters: {'weightType': 'Int8', 'activType': 'Int8', 'calibrate_method': 'MinMax', "
            "'op_types_to_quantize': None, 'nodes_to_quantize': None, 'nodes_to_exclude': None}");
  EXPECT_EQ(lines[2],
            "Quantization extra options: {'WeightSymmetric': True, 'ActivationSymmetric': False, "
            "'CalibMovingAverage': False, 'CalibStridedMinMax': None, 'QuantizeBias': True, 'SmoothQuant': False, "
            "'SmoothQuantAlpha': 0.5, "
            "'SmoothQuantFolding': True, 'SmoothQuantUnfolded': 'mul', 'MinimumRealRange': None, 'CalibPercentile': 99.999, "
            "'WeightQuantizer': 'minmax', 'BiasCorrection': False, 'CrossLayerEqualization': False, "
            "'CrossLayerEqualizationReplaceRelu6': False, 'weights_tensor_override': None, "
            "'activations_tensor_override': None}");
  Config d = load_config_from_string(
      "model: {model_path: m.onnx}\nquantization:\n  granularity: per_tensor\n  target_opset: 21\n"
      "  onnx_quant_parameters: {weightType: Int4, activType: UInt8, calibrate_method: entropy,\n"
      "                          nodes_to_exclude: [\"it's\", b]}\n"
      "  onnx_extra_options: {SmoothQuantAlpha: 1, MinimumRealRange: 1e-5,\n"
      "    weights_tensor_override: [[w, {quant_type: Int16, scale: 0.0025, zero_point: -12}],\n"
      "                              [v, {scale: [0.5, 2], zero_point: [1, 2], axis: 0}]]}\n");
  lines = describe_quantization(d.quantization);
  EXPECT_EQ(lines[0], "Quantization granularity: per_tensor");
  EXPECT_EQ(lines[1],
            "Quantization parameters: {'weightType': 'Int4', 'activType': 'UInt8', 'calibrate_method': 'Entropy', "
            "'op_types_to_quantize': None, 'nodes_to_quantize': None, 'nodes_to_exclude': [\"it's\", 'b']}");
  EXPECT_NE(lines[2].find("'SmoothQuantAlpha': 1.0,"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("'MinimumRealRange': 1e-05,"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("'weights_tensor_override': [['w', {'quant_type': 'Int16', 'scale': 0.0025, "
                          "'zero_point': -12}], ['v', {'scale': [0.5, 2.0], 'zero_point': [1, 2], 'axis': 0}]], "
                          "'activations_tensor_override': None}"),
            std::string::npos)
      << lines[2];
}

TEST(Config, YamlMergeKeysAsPyYaml) {
  // `<<: *anchor` merges the anchored map's keys where the map does not set them (PyYAML / Hydra); with a list,
  // the first map wins; an anchored map merged twice stays itself.
  Config c = load_config_from_string(
      "paths: &paths\n"
      "  quantization_path: calib.npz\n"
      "  test_path: test.npz\n"
      "  seed: 7\n"
      "more: &more\n"
      "  seed: 9\n"
      "  batch_size: 4\n"
      "model: {model_path: m.onnx}\n"
      "dataset:\n"
      "  <<: [*paths, *more]\n"
      "  test_path: mine.npz\n"
      "preprocessing:\n"
      "  rescaling: {<<: {scale: 0.5}, offset: -1}\n"
      "quantization:\n"
      "  quantizer: onnx_quantizer\n");
  EXPECT_EQ(c.dataset.quantization_path, "calib.npz");
  EXPECT_EQ(c.dataset.test_path, "mine.npz");  // the map's own key wins
  EXPECT_EQ(c.dataset.seed, 7);                // the first merged map wins
  EXPECT_EQ(c.dataset.batch_size, 4);
  EXPECT_DOUBLE_EQ(c.preprocessing.scale, 0.5);
  EXPECT_DOUBLE_EQ(c.preprocessing.offset, -1.0);
  for (const auto& w : c.warnings) EXPECT_EQ(w.find("<<"), std::string::npos) << w;
  try {
    load_config_from_string("model: {model_path: m.onnx}\ndataset:\n  <<: 3\nquantization: {quantizer: onnx_quantizer}\n",
                            {}, "u.yaml");
    ADD_FAILURE() << "a scalar merge accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("u.yaml:3: dataset.<<: a merge key takes a map"), std::string::npos) << e.what();
  }
}
