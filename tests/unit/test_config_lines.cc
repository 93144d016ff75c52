// Config errors found by the fifteenth QA report: the line a rule between two keys cites, values repeated in
// messages (quoted, escaped: one whole line), NUL bytes in paths, YAML alias bombs, overrides through aliases.
// The expected lines are counted by hand in the YAML text of each test.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "core/error.h"
#include "config_test_util.h"

using namespace oq;
using namespace oq::config;

namespace {

using oq::config::test_util::config_error;

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

#define EXPECT_ENDS(msg, suffix) EXPECT_TRUE(ends_with(msg, suffix)) << "message: " << (msg)
#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)
#define EXPECT_LACKS(msg, part) EXPECT_EQ((msg).find(part), std::string::npos) << "message: " << (msg)

// Lines 1-5; the quantization section's keys follow from line 6.
const std::string kHead = "model:\n  model_path: m.onnx\ndataset:\n  quantization_path: d.npz\nquantization:\n";

// A message that is one line and whole: no control character, and it ends as `suffix` says.
void expect_one_line(const std::string& m) {
  for (char c : m) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << "control character in: " << m;
}

// A string holding a NUL, as YAML's "\0" escape gives it.
std::string with_nul(const char* a, const char* b) { return std::string(a) + std::string(1, '\0') + b; }

// `levels` nested alias lists of nine under an ignored top-level key: 9^levels paths through 10 * levels nodes.
std::string alias_bomb(int levels, const std::string& leaf = "x") {
  std::string y = "a0: &a0 [";
  y += leaf;
  for (int i = 1; i < 9; ++i) y += ", " + leaf;
  y += "]\n";
  for (int l = 1; l < levels; ++l) {
    const std::string prev = "*a" + std::to_string(l - 1);
    y += "a" + std::to_string(l) + ": &a" + std::to_string(l) + " [" + prev;
    for (int i = 1; i < 9; ++i) y += ", " + prev;
    y += "]\n";
  }
  return y;
}

}  // namespace

TEST(ConfigLines, CrossKeyRulesCiteTheValueTheyName) {
  // The QA case: CalibStridedMinMax on line 12, calibrate_method on line 8 (the section starts on line 9).
  const std::string y = kHead +
                        "  onnx_quant_parameters:\n"       // 6
                        "    weightType: Int8\n"           // 7
                        "    calibrate_method: Entropy\n"  // 8
                        "  onnx_extra_options:\n"          // 9
                        "    WeightSymmetric: True\n"      // 10
                        "    QuantizeBias: True\n"         // 11
                        "    CalibStridedMinMax: 2\n";     // 12
  std::string m = config_error(y);
  EXPECT_HAS(m, "quantization.onnx_extra_options.CalibStridedMinMax: 2 batches per call");
  EXPECT_ENDS(m, "(cfg.yaml:12; quantization.onnx_quant_parameters.calibrate_method: cfg.yaml:8)");
  // The value named by the message set by an override: no line for it, the other one's line still given.
  m = config_error(y, {"quantization.onnx_extra_options.CalibStridedMinMax=3"});
  EXPECT_ENDS(m, "(the same histograms) (quantization.onnx_quant_parameters.calibrate_method: cfg.yaml:8)");
  // Both values from overrides: no line at all (was: the line of the enclosing section, 6 or 9).
  m = config_error(y, {"quantization.onnx_quant_parameters.nodes_to_quantize=[a]",
                       "quantization.onnx_extra_options.weights_tensor_override=[[fc.weight, {}]]"});
  EXPECT_HAS(m, "quantization.onnx_quant_parameters.nodes_to_quantize: cannot be combined");
  EXPECT_LACKS(m, "cfg.yaml");
  m = config_error(y, {"quantization.onnx_extra_options.TensorQuantOverrides={fc.weight: []}",
                       "quantization.onnx_extra_options.weights_tensor_override=[[fc.weight, {}]]"});
  EXPECT_HAS(m, "TensorQuantOverrides.fc.weight: tensor 'fc.weight' is also in");
  EXPECT_LACKS(m, "cfg.yaml");
  // The same rules with both values in the file.
  m = config_error(kHead +
                   "  onnx_quant_parameters:\n"                       // 6
                   "    nodes_to_quantize: [a]\n"                     // 7
                   "  onnx_extra_options:\n"                          // 8
                   "    WeightSymmetric: True\n"                      // 9
                   "    weights_tensor_override: [[fc.weight, {}]]\n");  // 10
  EXPECT_ENDS(m, "(cfg.yaml:7; quantization.onnx_extra_options.weights_tensor_override: cfg.yaml:10)");
  m = config_error(kHead +
                   "  onnx_extra_options:\n"                          // 6
                   "    weights_tensor_override:\n"                   // 7
                   "      - [fc.weight, {}]\n"                        // 8
                   "    TensorQuantOverrides:\n"                      // 9
                   "      other: []\n"                                // 10
                   "      fc.weight: []\n");                          // 11
  EXPECT_ENDS(m, "override it in one of the two (cfg.yaml:11; "
                 "quantization.onnx_extra_options.weights_tensor_override[0]: cfg.yaml:8)");
}

TEST(ConfigLines, OtherTwoValueRules) {
  std::string m = config_error(kHead +
                               "  onnx_quant_parameters:\n"  // 6
                               "    weight_type: Int8\n"     // 7
                               "    activType: Int8\n"       // 8
                               "    weightType: Int4\n");    // 9
  EXPECT_HAS(m, "quantization.onnx_quant_parameters.weightType: both weight_type and weightType");
  EXPECT_ENDS(m, "(cfg.yaml:9; quantization.onnx_quant_parameters.weight_type: cfg.yaml:7)");
  m = config_error(kHead +
                   "  iterative_quant_parameters:\n"  // 6
                   "    ranking: static\n"            // 7
                   "    metric: evaluator_command\n"); // 8
  EXPECT_HAS(m, "quantization.iterative_quant_parameters.evaluator_command: required when metric is evaluator_command");
  EXPECT_ENDS(m, "(quantization.iterative_quant_parameters.metric: cfg.yaml:8)");
  m = config_error(kHead +
                   "  onnx_extra_options:\n"                        // 6
                   "    weights_tensor_override:\n"                 // 7
                   "      - [w, {quant_type: Int8}]\n"              // 8
                   "      - [v, {}]\n"                              // 9
                   "      - [w, {quant_type: Int4}]\n");            // 10
  EXPECT_HAS(m, "weights_tensor_override[2]: tensor 'w' is overridden twice");
  EXPECT_ENDS(m, "(cfg.yaml:10; quantization.onnx_extra_options.weights_tensor_override[0]: cfg.yaml:8)");
  m = config_error(kHead +
                   "  onnx_extra_options:\n"                                        // 6
                   "    TensorQuantOverrides:\n"                                    // 7
                   "      w:\n"                                                     // 8
                   "        - {axis: 0, quant_type: QInt8}\n"                       // 9
                   "        - {axis: 0,\n"                                          // 10
                   "           quant_type: QInt4}\n");                              // 11
  EXPECT_HAS(m, "TensorQuantOverrides.w[1].quant_type: differs from the first dict's");
  EXPECT_ENDS(m, "(cfg.yaml:11; quantization.onnx_extra_options.TensorQuantOverrides.w[0].quant_type: cfg.yaml:9)");
  m = config_error(kHead +
                   "  onnx_extra_options:\n"                     // 6
                   "    TensorQuantOverrides:\n"                 // 7
                   "      a:\n"                                  // 8
                   "        - scale: 0.5\n"                      // 9
                   "          zero_point: 0\n"                   // 10
                   "          symmetric: true\n");               // 11
  EXPECT_ENDS(m, "(cfg.yaml:11; quantization.onnx_extra_options.TensorQuantOverrides.a[0].scale: cfg.yaml:9)");
  m = config_error("model: {model_path: m.onnx}\ndataset:\n  dataset_name: a\n  name: b\nquantization: {}\n");
  EXPECT_ENDS(m, "(cfg.yaml:3; dataset.name: cfg.yaml:4)");
  m = config_error("operation_mode: chain_qe\nmodel: {model_path: m.onnx}\n");
  EXPECT_HAS(m, "quantization: section missing; operation_mode 'chain_qe' requires it");
  EXPECT_ENDS(m, "(operation_mode: cfg.yaml:1)");
  // A null element of a block list: the element's line, not the list's (7).
  m = config_error(kHead + "  onnx_quant_parameters:\n    nodes_to_exclude:\n      - a\n      - b\n      - ~\n");
  EXPECT_HAS(m, "nodes_to_exclude[2]: expected a string, got null");
  EXPECT_ENDS(m, "(cfg.yaml:10)");
}

TEST(ConfigLines, ValuesAreQuotedWithEscapes) {
  // A block scalar keeps its newline; a double-quoted "\0" is a NUL: both used to cut or break the message.
  std::string m = config_error(kHead + "  granularity: |\n    per_tensor\n");
  EXPECT_EQ(m, "quantization.granularity: expected one of per_channel, per_tensor, got 'per_tensor\\n' (cfg.yaml:6)");
  m = config_error(kHead + "  granularity: \"per_tensor\\0x\"\n");
  EXPECT_EQ(m, "quantization.granularity: expected one of per_channel, per_tensor, got 'per_tensor\\0x' (cfg.yaml:6)");
  m = config_error(kHead + "  quantizer: \"it's\\ttabbed\\\\\"\n");
  EXPECT_EQ(m, "quantization.quantizer: 'it\\'s\\ttabbed\\\\' is not supported by onnxquant; use onnx_quantizer "
               "(cfg.yaml:6)");
  // Keys are repeated too: a key holding a newline gives one line.
  m = config_error(kHead + "  \"gran\\nularity\": per_tensor\n");
  expect_one_line(m);
  EXPECT_HAS(m, "quantization.gran\\nularity: unknown key");
  m = config_error(kHead, {"quantization.granularity=\"a\\u0007b\""});
  EXPECT_EQ(m, "quantization.granularity: expected one of per_channel, per_tensor, got 'a\\x07b'");
  // Warnings of ignored keys: one line each as well.
  Config c = load_config_from_string(kHead + "\"ign\\nored\": 1\n", {}, "cfg.yaml");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0], "ign\\nored: ignored by onnxquant");
}

TEST(ConfigLines, PathsWithNulAreRefusedAtLoad) {
  struct Case {
    std::string key, yaml;
  };
  const std::string nul = "\"a\\0b\"";
  const std::vector<Case> cases = {
      {"model.model_path", "model: {model_path: " + nul + "}\nquantization: {}\n"},
      {"dataset.quantization_path", kHead + "  granularity: per_tensor\n"},
      {"dataset.training_path", "model: {model_path: m.onnx}\ndataset: {training_path: " + nul + "}\nquantization: {}\n"},
      {"dataset.test_path", "model: {model_path: m.onnx}\ndataset: {test_path: " + nul + "}\nquantization: {}\n"},
      {"dataset.validation_path",
       "model: {model_path: m.onnx}\ndataset: {validation_path: " + nul + "}\nquantization: {}\n"},
      {"dataset.class_names[1]", "model: {model_path: m.onnx}\ndataset: {class_names: [a, " + nul + "]}\nquantization: {}\n"},
      {"quantization.export_dir", kHead + "  export_dir: " + nul + "\n"},
      {"hydra.run.dir", "model: {model_path: m.onnx}\nquantization: {}\nhydra: {run: {dir: " + nul + "}}\n"},
      {"general.logs_dir", "general: {logs_dir: " + nul + "}\nmodel: {model_path: m.onnx}\nquantization: {}\n"},
      {"general.saved_models_dir",
       "general: {saved_models_dir: " + nul + "}\nmodel: {model_path: m.onnx}\nquantization: {}\n"},
      {"quantization.iterative_quant_parameters.evaluator_command",
       kHead + "  iterative_quant_parameters: {evaluator_command: " + nul + "}\n"},
  };
  for (const auto& c : cases) {
    std::string yaml = c.yaml;
    std::vector<std::string> ov;
    if (c.key == "dataset.quantization_path") ov = {"dataset.quantization_path=" + nul};  // also through an override
    const std::string m = config_error(yaml, ov);
    EXPECT_HAS(m, c.key + ": holds a NUL byte");
    EXPECT_HAS(m, "'a\\0b'");
    expect_one_line(m);
  }
  // Without the NUL the same strings load (the check refuses NUL only).
  Config ok = load_config_from_string(kHead + "  export_dir: \"a\\nb\"\n", {}, "cfg.yaml");
  EXPECT_EQ(ok.quantization.export_dir, "a\nb");
  EXPECT_EQ(with_nul("a", "b").size(), 3u);
}

TEST(ConfigLines, AliasBombsTakeLinearTime) {
  // 10 levels: 9^10 (3.5e9) paths through 100 nodes. Walking every path (the duplicate-key check, the merge-key
  // resolution) took minutes from 7 levels on; each distinct node is visited once now, so these finish at once.
  const std::string valid = "model: {model_path: m.onnx}\nquantization: {granularity: per_tensor}\n";
  Config c = load_config_from_string(alias_bomb(10) + valid, {}, "cfg.yaml");
  EXPECT_EQ(c.quantization.granularity, Granularity::PerTensor);
  EXPECT_EQ(c.warnings.size(), 10u);  // a0 .. a9: ignored by onnxquant
  // Merge keys inside the bomb: resolved once per distinct map.
  Config cm = load_config_from_string(alias_bomb(10, "{<<: {k: 1}, j: 2}") + valid, {}, "cfg.yaml");
  EXPECT_EQ(cm.warnings.size(), 10u);
  // A merge that uses the bomb's maps where the config reads them.
  Config cq = load_config_from_string("base: &m {granularity: per_tensor}\n" + alias_bomb(10, "*m") +
                                          "model: {model_path: m.onnx}\nquantization: {<<: *m}\n",
                                      {}, "cfg.yaml");
  EXPECT_EQ(cq.quantization.granularity, Granularity::PerTensor);
  // A duplicate key deep inside is still found, once.
  std::string m = config_error(alias_bomb(10, "{k: 1, k: 2}") + valid);
  EXPECT_HAS(m, "key given twice (lines 1 and 1)");
  // The same bomb as the value of a command-line override: refused at once, as Hydra's override grammar has no
  // anchors ('&' is a token recognition error there).
  std::string flow = "[&a0 [x, x, x, x, x, x, x, x, x]";
  for (int l = 1; l < 10; ++l) {
    flow += ", &a" + std::to_string(l) + " [";
    for (int i = 0; i < 9; ++i) flow += std::string(i ? ", " : "") + "*a" + std::to_string(l - 1);
    flow += "]";
  }
  flow += "]";
  m = config_error(valid, {"mlflow.bomb=" + flow});
  EXPECT_HAS(m, "override 'mlflow.bomb=[&a0 [x, x");
  EXPECT_HAS(m, "does not accept '&' outside quotes; quote the value");
}

TEST(ConfigLines, RecursiveAliasesAreRefused) {
  std::string m = config_error("a: &a {b: *a}\nmodel: {model_path: m.onnx}\nquantization: {}\n");
  EXPECT_HAS(m, "cfg.yaml:1: a.b: an alias refers to a node that contains it");
}

TEST(ConfigLines, OverrideThroughAnAliasChangesOneKey) {
  // Hydra changes the key given; yaml-cpp assigned through the shared node, which changed every alias of it.
  Config c = load_config_from_string("model: {model_path: m.onnx}\n"
                                     "dataset: {quantization_path: &d a.npz, test_path: *d}\n"
                                     "quantization: &q {granularity: per_tensor}\n"
                                     "mlflow: {copy: *q}\n",
                                     {"dataset.test_path=b.npz", "quantization.granularity=per_channel"}, "cfg.yaml");
  EXPECT_EQ(c.dataset.quantization_path, "a.npz");
  EXPECT_EQ(c.dataset.test_path, "b.npz");
  EXPECT_EQ(c.quantization.granularity, Granularity::PerChannel);
  // Keys keep their order and their lines after an override elsewhere in their map.
  std::string m = config_error("model: {model_path: m.onnx}\nquantization:\n  granularity: per_tensr\n",
                               {"quantization.export_dir=out"});
  EXPECT_HAS(m, "got 'per_tensr' (cfg.yaml:3)");
}
