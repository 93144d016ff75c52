// Config errors: each one is an oq::Error of kind Config (exit code 2) whose message names the key path
// (or the file / the override) and says what is wrong.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <unistd.h>

#include "config/config.h"
#include "core/error.h"
#include "config_test_util.h"

using namespace oq;
using namespace oq::config;

namespace {

using oq::config::test_util::config_error;

// A valid config with `quant_body` (indented by 2) as the quantization section.
std::string with_quant(const std::string& quant_body) {
  return "model: {model_path: m.onnx}\nquantization:\n" + quant_body;
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

#define EXPECT_STARTS(msg, prefix) EXPECT_TRUE(starts_with(msg, prefix)) << "message: " << (msg)
#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)

}  // namespace

TEST(ConfigErrors, UnknownQuantizationKeysNameTheirFullPath) {
  std::string m = config_error(with_quant("  onnx_extra_options:\n    SmothQuant: true\n"));
  EXPECT_STARTS(m, "quantization.onnx_extra_options.SmothQuant: unknown key");
  EXPECT_HAS(m, "(cfg.yaml:4)");  // the line of the offending key's value
  EXPECT_STARTS(config_error(with_quant("  quantizr: onnx_quantizer\n")), "quantization.quantizr: unknown key");
  EXPECT_STARTS(config_error(with_quant("  onnx_quant_parameters: {weightTyp: Int8}\n")),
                "quantization.onnx_quant_parameters.weightTyp: unknown key");
  EXPECT_STARTS(config_error(with_quant("  iterative_quant_parameters: {tolerance: 1}\n")),
                "quantization.iterative_quant_parameters.tolerance: unknown key");
  EXPECT_STARTS(config_error(with_quant("  onnx_extra_options: {weights_tensor_override: [[w, {quant_typ: Int8}]]}\n")),
                "quantization.onnx_extra_options.weights_tensor_override[0].quant_typ: unknown key");
}

TEST(ConfigErrors, MisspeltKeysGetTheClosestKnownKey) {
  // In strict sections the error says which key was meant.
  EXPECT_HAS(config_error(with_quant("  onnx_extra_options:\n    SmothQuant: true\n")), "did you mean 'SmoothQuant'?");
  EXPECT_HAS(config_error(with_quant("  granularty: per_tensor\n")), "did you mean 'granularity'?");
  // Sections that tolerate ST's other keys refuse one that is a letter or two from a key onnxquant reads (its
  // value would be ignored), letter case included; a key far from every known one stays a warning.
  std::string m = config_error("model: {model_path: m.onnx}\nquantisation: {granularity: per_tensor}\n"
                               "quantization: {}\n");
  EXPECT_STARTS(m, "quantisation: unknown key, did you mean 'quantization'?");
  EXPECT_HAS(m, "(cfg.yaml:2)");
  EXPECT_STARTS(config_error("model: {model_path: m.onnx}\nQuantization: {}\nquantization: {}\n"),
                "Quantization: unknown key, did you mean 'quantization'?");
  EXPECT_STARTS(config_error("model: {model_path: m.onnx}\ndataset: {quantisation_path: d.npz}\nquantization: {}\n"),
                "dataset.quantisation_path: unknown key, did you mean 'quantization_path'?");
  EXPECT_STARTS(config_error("model: {model_path: m.onnx}\nquantization: {}\n", {"quantisation.granularity=per_tensor"}),
                "quantisation: unknown key, did you mean 'quantization'?");
  Config c = load_config_from_string("model: {model_path: m.onnx, model_type: x}\nquantization: {}\n"
                                     "postprocessing: {a: 1}\nmlflow: {uri: u}\ntraining: {epochs: 3}\n",
                                     {}, "cfg.yaml");
  EXPECT_EQ(c.warnings.size(), 4u);
}

TEST(ConfigErrors, RepeatedKeysAndSecondDocuments) {
  std::string m = config_error(with_quant("  granularity: per_tensor\n  granularity: per_channel\n"));
  EXPECT_STARTS(m, "cfg.yaml:4: quantization.granularity: key given twice (lines 3 and 4)");
  m = config_error("model: {model_path: m.onnx}\nquantization: {}\nquantization: {granularity: per_tensor}\n");
  EXPECT_STARTS(m, "cfg.yaml:3: quantization: key given twice (lines 2 and 3)");
  m = config_error(with_quant("  onnx_extra_options: {weights_tensor_override: [[w, {axis: 0, axis: 1}]]}\n"));
  EXPECT_HAS(m, "quantization.onnx_extra_options.weights_tensor_override[0][1].axis: key given twice");
  m = config_error("model: {model_path: m.onnx}\nquantization: {}\n---\nfoo: 1\n");
  EXPECT_STARTS(m, "cfg.yaml:4: a second YAML document");
  // An empty document after the separator is harmless.
  EXPECT_NO_THROW(load_config_from_string("model: {model_path: m.onnx}\nquantization: {}\n---\n", {}, "cfg.yaml"));
}

TEST(ConfigErrors, ExportDirStaysInsideTheOutputDirectory) {
  for (const char* d : {"/tmp/x", "../x", "a/../../x", ".."})
    EXPECT_STARTS(config_error(with_quant(std::string("  export_dir: '") + d + "'\n")),
                  "quantization.export_dir: must be a folder inside the output directory");
  EXPECT_NO_THROW(load_config_from_string(with_quant("  export_dir: a/b\n"), {}, "cfg.yaml"));
}

TEST(ConfigErrors, QuantizerAndType) {
  std::string m = config_error(with_quant("  quantizer: TFlite_converter\n"));
  EXPECT_STARTS(m, "quantization.quantizer: 'TFlite_converter' is not supported by onnxquant; use onnx_quantizer");
  EXPECT_STARTS(config_error(with_quant("  quantization_type: QAT\n")), "quantization.quantization_type: 'QAT' is not supported");
  EXPECT_STARTS(config_error(with_quant("  quantization_input_type: int16\n")),
                "quantization.quantization_input_type: expected one of float, int8, uint8, got 'int16'");
}

TEST(ConfigErrors, WrongTypesNameKeyExpectedTypeAndValue) {
  std::string m = config_error(with_quant("  optimize: 3\n"));
  EXPECT_STARTS(m, "quantization.optimize: expected a boolean (true/false), got '3'");
  m = config_error(with_quant("  target_opset: 17.5\n"));
  EXPECT_STARTS(m, "quantization.target_opset: expected an integer, got '17.5'");
  m = config_error(with_quant("  target_opset: [17]\n"));
  EXPECT_STARTS(m, "quantization.target_opset: expected an integer, got a list");
  m = config_error(with_quant("  export_dir: {a: 1}\n"));
  EXPECT_STARTS(m, "quantization.export_dir: expected a string, got a map");
  m = config_error(with_quant("  granularity: per_chanel\n"));
  EXPECT_STARTS(m, "quantization.granularity: expected one of per_channel, per_tensor, got 'per_chanel'");
  m = config_error(with_quant("  onnx_extra_options: {SmoothQuantAlpha: high}\n"));
  EXPECT_STARTS(m, "quantization.onnx_extra_options.SmoothQuantAlpha: expected a number");
  EXPECT_HAS(m, "'high'");
  m = config_error(with_quant("  onnx_quant_parameters: {op_types_to_quantize: Conv}\n"));
  EXPECT_STARTS(m, "quantization.onnx_quant_parameters.op_types_to_quantize: expected a list of strings, got 'Conv'");
  m = config_error(with_quant("  onnx_quant_parameters: {nodes_to_exclude: [a, [b]]}\n"));
  EXPECT_STARTS(m, "quantization.onnx_quant_parameters.nodes_to_exclude[1]: expected a string, got a list");
  m = config_error("model: {model_path: m.onnx}\ndataset: {skip_bad_files: maybe}\nquantization: {}\n");
  EXPECT_STARTS(m, "dataset.skip_bad_files: expected a boolean (true/false), got 'maybe'");
  m = config_error("model: {model_path: m.onnx}\ndataset: {seed: abc}\nquantization: {}\n");
  EXPECT_STARTS(m, "dataset.seed: expected an integer, got 'abc'");
  m = config_error("general: {global_seed: [1]}\nmodel: {model_path: m.onnx}\nquantization: {}\n");
  EXPECT_STARTS(m, "general.global_seed: expected an integer, got a list");
}

TEST(ConfigErrors, RangesAndEnums) {
  EXPECT_STARTS(config_error(with_quant("  target_opset: 9\n")), "quantization.target_opset: must be between 10");
  EXPECT_STARTS(config_error(with_quant("  target_opset: 29\n")), "quantization.target_opset: must be between 10");
  EXPECT_HAS(config_error(with_quant("  target_opset: 29\n")), "got 29");
  EXPECT_HAS(config_error(with_quant("  target_opset: 29\n")), "and 28 (the newest opset onnxquant writes)");
  EXPECT_STARTS(config_error(with_quant("  operating_mode: auto\n")),
                "quantization.operating_mode: expected one of default, inspection, full_auto, got 'auto'");
  EXPECT_STARTS(config_error(with_quant("  onnx_quant_parameters: {calibrate_method: Distribution}\n")),
                "quantization.onnx_quant_parameters.calibrate_method: expected one of MinMax, Entropy, Percentile");
  EXPECT_STARTS(config_error(with_quant("  onnx_extra_options: {MinimumRealRange: 1e39}\n")),
                "quantization.onnx_extra_options.MinimumRealRange: must be >= 0 and finite in float32 (at most "
                "3.4e38), got 1e+39");
  EXPECT_STARTS(config_error(with_quant("  onnx_extra_options: {SmoothQuantAlpha: 1.5}\n")),
                "quantization.onnx_extra_options.SmoothQuantAlpha: must be in [0, 1], got 1.5");
  EXPECT_STARTS(config_error(with_quant("  onnx_extra_options: {GptqHessianBudget: 0}\n")),
                "quantization.onnx_extra_options.GptqHessianBudget: must be in (0, 1e9] (MiB), got 0");
  EXPECT_STARTS(config_error(with_quant("  onnx_extra_options: {CalibPercentile: 0}\n")),
                "quantization.onnx_extra_options.CalibPercentile: must be in (0, 100]");
  EXPECT_STARTS(config_error(with_quant("  onnx_extra_options: {CalibPercentile: 100.5}\n")),
                "quantization.onnx_extra_options.CalibPercentile: must be in (0, 100]");
  EXPECT_STARTS(config_error(with_quant("  onnx_extra_options: {CalibStridedMinMax: 0}\n")),
                "quantization.onnx_extra_options.CalibStridedMinMax: must be >= 1");
  EXPECT_STARTS(config_error(with_quant("  onnx_quant_parameters: {calibrate_method: Entropy}\n"
                                        "  onnx_extra_options: {CalibStridedMinMax: 4}\n")),
                "quantization.onnx_extra_options.CalibStridedMinMax: 4 batches per call is supported with MinMax "
                "only; for Entropy set dataset.batch_size to 4");
  // ORT's call holds k batches of dataset.batch_size samples: the advice is k x batch_size (it used to be k)
  EXPECT_HAS(config_error("model: {model_path: m.onnx}\ndataset: {quantization_path: d.npz, batch_size: 4}\n"
                          "quantization:\n  onnx_quant_parameters: {calibrate_method: Percentile}\n"
                          "  onnx_extra_options: {CalibStridedMinMax: 2}\n"),
             "for Percentile set dataset.batch_size to 8 (2 x batch_size 4: the samples of one call) and "
             "CalibStridedMinMax to 1");
  EXPECT_STARTS(config_error(with_quant("  onnx_extra_options: {MinimumRealRange: -1}\n")),
                "quantization.onnx_extra_options.MinimumRealRange: must be >= 0");
  EXPECT_STARTS(config_error(with_quant("  onnx_extra_options: {WeightQuantizer: adaround}\n")),
                "quantization.onnx_extra_options.WeightQuantizer: expected one of minmax, mse, gptq, got 'adaround'");
  const char* it = "quantization.iterative_quant_parameters.";
  EXPECT_STARTS(config_error(with_quant("  iterative_quant_parameters: {inspection_split: 0}\n")),
                std::string(it) + "inspection_split: must be in (0, 1]");
  EXPECT_STARTS(config_error(with_quant("  iterative_quant_parameters: {inspection_split: 1.5}\n")),
                std::string(it) + "inspection_split: must be in (0, 1]");
  EXPECT_STARTS(config_error(with_quant("  iterative_quant_parameters: {accuracy_tolerance: -0.1}\n")),
                std::string(it) + "accuracy_tolerance: must be >= 0");
  EXPECT_STARTS(config_error(with_quant("  iterative_quant_parameters: {tolerance_mode: percent}\n")),
                std::string(it) + "tolerance_mode: expected one of absolute, relative");
  EXPECT_STARTS(config_error(with_quant("  iterative_quant_parameters: {metric: map}\n")),
                std::string(it) + "metric: expected one of auto, top1, agreement, output_snr, evaluator_command");
  EXPECT_STARTS(config_error(with_quant("  iterative_quant_parameters: {metric: evaluator_command}\n")),
                std::string(it) + "evaluator_command: required when metric is evaluator_command");
  EXPECT_STARTS(config_error(with_quant("  iterative_quant_parameters: {ranking: random}\n")),
                std::string(it) + "ranking: expected one of static, sensitivity");
  EXPECT_STARTS(config_error(with_quant("  iterative_quant_parameters: {search: exhaustive}\n")),
                std::string(it) + "search: expected one of bisection, greedy");
  std::string ds = "model: {model_path: m.onnx}\nquantization: {}\ndataset: ";
  EXPECT_STARTS(config_error(ds + "{quantization_split: 0}\n"), "dataset.quantization_split: must be in (0, 1], got 0");
  EXPECT_STARTS(config_error(ds + "{quantization_split: 1.2}\n"), "dataset.quantization_split: must be in (0, 1]");
  EXPECT_STARTS(config_error(ds + "{batch_size: 0}\n"), "dataset.batch_size: must be > 0, got 0");
  EXPECT_STARTS(config_error(ds + "{name: a, dataset_name: b}\n"), "dataset.dataset_name: both dataset.name");
  std::string pp = "model: {model_path: m.onnx}\nquantization: {}\npreprocessing: ";
  EXPECT_STARTS(config_error(pp + "{resizing: {interpolation: lanczos3}}\n"),
                "preprocessing.resizing.interpolation: expected one of nearest, bilinear, bicubic, area, got 'lanczos3'");
  EXPECT_STARTS(config_error(pp + "{resizing: {aspect_ratio: stretch}}\n"),
                "preprocessing.resizing.aspect_ratio: expected one of fit, crop, padding");
  EXPECT_STARTS(config_error(pp + "{color_mode: hsv}\n"), "preprocessing.color_mode: expected one of grayscale, rgb, rgba, bgr");
  EXPECT_STARTS(config_error(pp + "{layout: CHW}\n"), "preprocessing.layout: expected one of auto, NCHW, NHWC");
  std::string m = config_error(pp + "{rescaling: {scale: 1/0}}\n");
  EXPECT_STARTS(m, "preprocessing.rescaling.scale: expected a number or an arithmetic expression, got '1/0'");
  EXPECT_HAS(m, "division by zero");
  EXPECT_STARTS(config_error(pp + "{rescaling: 2}\n"), "preprocessing.rescaling: expected a map of keys, got '2'");
}

TEST(ConfigErrors, QuantTypes) {
  EXPECT_STARTS(config_error(with_quant("  onnx_quant_parameters: {weightType: Int32}\n")),
                "quantization.onnx_quant_parameters.weightType: expected one of Int4, UInt4, Int8, UInt8, Int16, UInt16");
  EXPECT_STARTS(config_error(with_quant("  onnx_quant_parameters: {activ_type: float}\n")),
                "quantization.onnx_quant_parameters.activ_type: expected one of Int4");
  std::string m = config_error(with_quant("  onnx_quant_parameters: {weight_type: Int8, weightType: Int4}\n"));
  EXPECT_STARTS(m, "quantization.onnx_quant_parameters.weightType: both weight_type and weightType are given");
  m = config_error(with_quant("  onnx_quant_parameters: {activType: Int8, activ_type: Int8}\n"));
  EXPECT_STARTS(m, "quantization.onnx_quant_parameters.activType: both activ_type and activType are given");
}

TEST(ConfigErrors, TensorOverrideStructure) {
  auto ov = [](const std::string& w) {
    return config_error(with_quant("  onnx_extra_options:\n    weights_tensor_override: " + w + "\n"));
  };
  const std::string p = "quantization.onnx_extra_options.weights_tensor_override";
  EXPECT_STARTS(ov("{w: 1}"), p + ": expected a list of [tensor_name, {quant_type, scale, zero_point, axis}] pairs, got a map");
  EXPECT_STARTS(ov("[w]"), p + "[0]: expected a [tensor_name, {quant_type, scale, zero_point, axis}] pair, got 'w'");
  EXPECT_STARTS(ov("[[w, {}, 3]]"), p + "[0]: expected a [tensor_name");
  EXPECT_STARTS(ov("[[[w], {}]]"), p + "[0][0]: expected a tensor name, got a list");
  EXPECT_STARTS(ov("[[w, 5]]"), p + "[0]: expected a map of keys, got '5'");
  EXPECT_STARTS(ov("[[w, {scale: 0.1}]]"), p + "[0].scale: scale and zero_point must be given together (tensor 'w')");
  EXPECT_STARTS(ov("[[w, {zero_point: 0}]]"), p + "[0].zero_point: scale and zero_point must be given together");
  EXPECT_STARTS(ov("[[w, {scale: 0, zero_point: 0}]]"), p + "[0].scale: must be > 0, got 0 (tensor 'w')");
  EXPECT_STARTS(ov("[[a, {}], [w, {scale: [0.1, -0.2], zero_point: [0, 0]}]]"), p + "[1].scale[1]: must be > 0, got -0.2");
  EXPECT_STARTS(ov("[[w, {scale: [0.1, 0.2], zero_point: [0]}]]"),
                p + "[0].zero_point: scale and zero_point must both be numbers or both lists of the same length");
  EXPECT_STARTS(ov("[[w, {scale: [0.1], zero_point: 0}]]"), p + "[0].zero_point: scale and zero_point must both");
  EXPECT_STARTS(ov("[[w, {scale: [], zero_point: []}]]"), p + "[0].scale: expected a number or a non-empty list");
  EXPECT_STARTS(ov("[[w, {scale: 0.1, zero_point: 1.5}]]"), p + "[0].zero_point: expected an integer, got '1.5'");
  EXPECT_STARTS(ov("[[w, {scale: 0.1, zero_point: 1, axis: x}]]"), p + "[0].axis: expected an integer, got 'x'");
  EXPECT_STARTS(ov("[[w, {quant_type: Int3}]]"), p + "[0].quant_type: expected one of Int4");
  EXPECT_STARTS(ov("[[w, {}], [w, {quant_type: Int4}]]"), p + "[1]: tensor 'w' is overridden twice");
  std::string m = config_error(with_quant(
      "  onnx_quant_parameters: {nodes_to_quantize: [conv1]}\n"
      "  onnx_extra_options: {weights_tensor_override: [[w, {quant_type: Int4}]]}\n"));
  EXPECT_STARTS(m, "quantization.onnx_quant_parameters.nodes_to_quantize: cannot be combined with a non-empty "
                   "quantization.onnx_extra_options.weights_tensor_override");
  EXPECT_HAS(m, "per-tensor quantization map of every node");
  // Activation overrides do not conflict with nodes_to_quantize.
  Config ok = load_config_from_string(with_quant(
      "  target_opset: 21\n  onnx_quant_parameters: {nodes_to_quantize: [conv1]}\n"
      "  onnx_extra_options: {activations_tensor_override: [[a, {quant_type: Int16}]]}\n"));
  EXPECT_EQ(ok.quantization.params.nodes_to_quantize.size(), 1u);
}

TEST(ConfigErrors, OperationModeAndRequiredSections) {
  std::string m = config_error("operation_mode: training\nmodel: {model_path: m.onnx}\nquantization: {}\n");
  EXPECT_STARTS(m, "operation_mode: 'training' is not supported by onnxquant; supported modes: quantization, "
                   "evaluation, chain_qe");
  EXPECT_STARTS(config_error("operation_mode: chain_tqe\nmodel: {model_path: m.onnx}\n"), "operation_mode: 'chain_tqe'");
  EXPECT_STARTS(config_error("model: {model_path: m.onnx}\n"),
                "quantization: section missing; operation_mode 'quantization' requires it");
  EXPECT_STARTS(config_error("operation_mode: chain_qe\nmodel: {model_path: m.onnx}\n"),
                "quantization: section missing; operation_mode 'chain_qe' requires it");
  // A `quantization:` line with no keys is the section with every key at its default.
  EXPECT_TRUE(load_config_from_string("operation_mode: chain_qe\nmodel: {model_path: m.onnx}\nquantization:\n"
                                      "dataset: {test_path: t}\n", {}, "cfg.yaml")
                  .has_quantization);
  EXPECT_STARTS(config_error("quantization: {}\n"), "model.model_path: missing");
  EXPECT_STARTS(config_error("model: {model_path: net.h5}\nquantization: {}\n"),
                "model.model_path: 'net.h5' is not an ONNX model");
  EXPECT_STARTS(config_error("model: 3\nquantization: {}\n"), "model: expected a map of keys, got '3'");
  EXPECT_STARTS(config_error("model:\n  model_path: m.onnx\n  input_shape: (1, x)\nquantization: {}\n"),
                "model.input_shape[1]: expected an integer, got 'x'");
  EXPECT_STARTS(config_error("- a\n- b\n"), "cfg.yaml: expected a map of sections at the top level, got a list");
  Config c = load_config_from_string("model:\n  model_path: m.onnx\n  input_shape: (128, 96, 3)\nquantization: {}\n");
  EXPECT_EQ(c.model.input_shape, (std::vector<int64_t>{128, 96, 3}));
}

TEST(ConfigErrors, Interpolations) {
  std::string m = config_error("model: {model_path: m.onnx}\nquantization: {}\nhydra: {run: {dir: 'out/${oc.env:HOME}'}}\n");
  EXPECT_STARTS(m, "hydra.run.dir: interpolation '${oc.env:HOME}' is not supported by onnxquant");
  m = config_error("model: {model_path: m.onnx}\nquantization: {}\nhydra: {run: {dir: 'out/${now:%Y'}}\n");
  EXPECT_STARTS(m, "hydra.run.dir: unterminated interpolation");
  m = config_error("model: {model_path: '${general.project_name}.onnx'}\nquantization: {}\n");
  EXPECT_STARTS(m, "model.model_path: interpolation '${general.project_name}'");
}

TEST(ConfigErrors, MalformedOverridesAreNamed) {
  std::string base = "model: {model_path: m.onnx}\nquantization: {}\n";
  for (const char* bad : {"noequals", "=5", "a..b=1", "a.=1", ".a=1", "a b=1", "~quantization"}) {
    std::string m = config_error(base, {bad});
    EXPECT_STARTS(m, std::string("override '") + bad + "': expected dotted.key=value");
  }
  EXPECT_STARTS(config_error(base, {"model.model_path.x=1"}), "override 'model.model_path.x=1': model.model_path is 'm.onnx', not a map");
  EXPECT_STARTS(config_error(base, {"quantization.granularity=[unclosed"}),
                "override 'quantization.granularity=[unclosed': value is not valid YAML");
  // A bad value set by an override is reported at its key path, without a file line.
  std::string m = config_error(base, {"quantization.granularity=bogus"});
  EXPECT_EQ(m, "quantization.granularity: expected one of per_channel, per_tensor, got 'bogus'");
}

TEST(ConfigErrors, YamlSyntaxErrorsGiveFileLineAndColumn) {
  std::string m = config_error("model:\n  model_path: m.onnx\nquantization: {granularity: [per_tensor}\n");
  EXPECT_TRUE(std::regex_search(m, std::regex(R"(^cfg\.yaml:3:\d+: YAML syntax error: )"))) << m;
  m = config_error("a: 1\nb: c: d\n");
  EXPECT_TRUE(std::regex_search(m, std::regex(R"(^cfg\.yaml:2:\d+: YAML syntax error: )"))) << m;
}

TEST(ConfigErrors, MissingFileIsNamed) {
  try {
    load_config("/nonexistent/dir/user_config.yaml");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_EQ(std::string(e.what()), "config file not found: /nonexistent/dir/user_config.yaml");
  }
  auto dir = std::filesystem::temp_directory_path() / ("oq_cfg_err_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "bad.yaml") << "model:\n  model_path: m.onnx\nquantization:\n  granularity: per_tensr\n";
  try {
    load_config((dir / "bad.yaml").string());
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_STARTS(m, "quantization.granularity: expected one of");
    EXPECT_HAS(m, "(" + (dir / "bad.yaml").string() + ":4)");
  }
  std::filesystem::remove_all(dir);
}
