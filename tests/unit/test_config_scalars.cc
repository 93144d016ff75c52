// Scalars typed as ST's flow types them: PyYAML 1.1 with OmegaConf 2.3's float resolver in the file, Hydra 1.3's
// override grammar on the command line. Every expected value was printed by OmegaConf 2.3.1
// (`OmegaConf.create("k: " + v).k`) or hydra-core 1.3.8 (`OverridesParser.create().parse_override("k=" + v).value()`)
// in the s19 config review's venv; "refused" marks a string there (or an error), which a number key refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "config_test_util.h"

using namespace oq;
using namespace oq::config;
using oq::config::test_util::config_error;

namespace {

const std::string kHead = "model: {model_path: m.onnx}\nquantization: {}\n";

// Block style (in a flow map yaml-cpp and PyYAML might split `1:30` differently).
std::string seed_yaml(const std::string& v) { return kHead + "general:\n  global_seed: " + v + "\n"; }
std::string scale_yaml(const std::string& v) { return kHead + "preprocessing:\n  rescaling:\n    scale: " + v + "\n"; }
int64_t seed_from_file(const std::string& v) {
  return load_config_from_string(seed_yaml(v), {}, "cfg.yaml").general.global_seed;
}
double scale_from_file(const std::string& v) {
  return load_config_from_string(scale_yaml(v), {}, "cfg.yaml").preprocessing.scale;
}
int64_t seed_from_override(const std::string& v) {
  return load_config_from_string(kHead, {"general.global_seed=" + v}, "cfg.yaml").general.global_seed;
}
double scale_from_override(const std::string& v) {
  return load_config_from_string(kHead, {"preprocessing.rescaling.scale=" + v}, "cfg.yaml").preprocessing.scale;
}

}  // namespace

TEST(ConfigScalars, IntegersOfTheFileAsPyYaml11) {
  const std::vector<std::pair<const char*, int64_t>> omegaconf = {
      {"010", 8},     {"-010", -8},     {"+010", 8},         {"07", 7},       {"00", 0},   {"0_", 0},
      {"0x8", 8},     {"0x_1F", 31},    {"-0x10", -16},      {"0b101", 5},    {"0b1_0", 2}, {"1_000", 1000},
      {"1__0", 10},   {"10_", 10},      {"1:30", 90},        {"-1:30", -90},  {"1:05", 65}, {"1_:30", 90},
      {"190:20:30", 685230}, {"!!int 010", 8}, {"!!int \"010\"", 8}, {"12", 12},
      {"2*16", 32}};  // a string for OmegaConf: onnxquant's arithmetic strings (docs/config.md)
  for (const auto& [v, want] : omegaconf) EXPECT_EQ(seed_from_file(v), want) << v;
  // Strings for OmegaConf (08, 0o10, 0:30, 1:60, a quoted '010') or errors (0b_, 0x_, !!int 1.5).
  for (const char* v : {"08", "09", "0o10", "0:30", "1:60", "'010'", "0b_", "0x_", "!!int 1.5", "2*010"}) {
    const std::string m = config_error(seed_yaml(v));
    EXPECT_EQ(m.rfind("general.global_seed: expected an integer, got ", 0), 0u) << v << ": " << m;
  }
  EXPECT_NE(config_error(seed_yaml("08")).find("has a leading zero"), std::string::npos);
  EXPECT_NE(config_error(seed_yaml("0b_")).find("PyYAML (ST's flow) cannot read it as an integer"), std::string::npos);
}

TEST(ConfigScalars, FloatsOfTheFileAsOmegaConf) {
  const std::vector<std::pair<const char*, double>> omegaconf = {
      {"1_000.5", 1000.5}, {"1:30.5", 90.5}, {"1.e3", 1000.0}, {"0.1_2", 0.12}, {"1e-3", 0.001}, {"1_0.5e-2", 0.105},
      {".5", 0.5},         {"010.5", 10.5},  {"010", 8.0},     {"0x10", 16.0}, {"!!float 010", 10.0}, {"1/255", 1.0 / 255}};
  for (const auto& [v, want] : omegaconf) EXPECT_DOUBLE_EQ(scale_from_file(v), want) << v;
  for (const char* v : {".inf", "-.inf", ".nan"}) {
    const std::string m = config_error(scale_yaml(v));
    EXPECT_NE(m.find("result is not finite"), std::string::npos) << v << ": " << m;
  }
}

TEST(ConfigScalars, OverridesAsHydraTypesThem) {
  // Hydra ints: decimal, '_' between digits, a sign.
  for (const auto& [v, want] : std::vector<std::pair<const char*, int64_t>>{{"1_000", 1000}, {"+5", 5}, {"-0", 0}, {"0", 0}})
    EXPECT_EQ(seed_from_override(v), want) << v;
  // Hydra strings: 010, -010, 00, 0x8, 0b1, 1:30, 1__0, 10_ (an arithmetic string, as 2*3 is, without a zero lead).
  for (const char* v : {"010", "-010", "0x8", "0b1", "1:30", "1__0", "10_"}) {
    const std::string m = config_error(kHead, {std::string("general.global_seed=") + v});
    EXPECT_EQ(m.rfind(std::string("general.global_seed: expected an integer, got '") + v + "'", 0), 0u) << m;
  }
  EXPECT_EQ(seed_from_override("2*3"), 6);
  // Hydra floats: 1e3, .5e3, 1_0e1_0 (1e11), 1_0.5, 1.; inf / nan are floats there, refused as not finite.
  for (const auto& [v, want] : std::vector<std::pair<const char*, double>>{
           {"1e3", 1000.0}, {".5e3", 500.0}, {"1_0e1_0", 1e11}, {"1_0.5", 10.5}, {"1.", 1.0}, {"-.5", -0.5}})
    EXPECT_DOUBLE_EQ(scale_from_override(v), want) << v;
  for (const char* v : {"inf", "NaN"})
    EXPECT_NE(config_error(kHead, {std::string("preprocessing.rescaling.scale=") + v}).find("result is not finite"),
              std::string::npos) << v;
}

TEST(ConfigScalars, OverrideBooleansAsHydraTypesThem) {
  const std::string key = "quantization.onnx_extra_options.WeightSymmetric";
  for (const char* v : {"true", "True", "tRUE"})
    EXPECT_TRUE(load_config_from_string(kHead, {key + "=" + v}, "cfg.yaml").quantization.extra.weight_symmetric) << v;
  for (const char* v : {"false", "FALSE", "fALSE"})
    EXPECT_FALSE(load_config_from_string(kHead, {key + "=" + v}, "cfg.yaml").quantization.extra.weight_symmetric) << v;
  // Strings for Hydra, so true in ST's flow: refused with the meaning YAML 1.1 gives them.
  for (const auto& [v, means] : std::vector<std::pair<const char*, const char*>>{
           {"off", "false"}, {"OFF", "false"}, {"no", "false"}, {"yes", "true"}, {"On", "true"}}) {
    EXPECT_EQ(config_error(kHead, {key + "=" + v}),
              key + ": expected a boolean, got '" + v + "': Hydra reads '" + v + "' in a command-line override as a "
              "string, which ST's flow takes as true; write " + means);
  }
  // Inside a list or map value too: {symmetric: off} is a string there.
  EXPECT_NE(config_error(kHead, {"quantization.onnx_extra_options.TensorQuantOverrides={w: [{symmetric: off}]}"})
                .find("TensorQuantOverrides.w[0].symmetric: expected a boolean, got 'off': Hydra reads"),
            std::string::npos);
}

TEST(ConfigScalars, OverrideValuesAreHydraPrimitivesNotYaml) {
  auto export_dir = [](const std::string& v) {
    return load_config_from_string(kHead, {"quantization.export_dir=" + v}, "cfg.yaml").quantization.export_dir;
  };
  // Hydra: %x, 'a: b', '- a', |, *x, @x are strings; \, is an escaped comma; blanks around a value are dropped.
  EXPECT_EQ(export_dir("%x"), "%x");
  EXPECT_EQ(export_dir("a: b"), "a: b");
  EXPECT_EQ(export_dir("- a"), "- a");
  EXPECT_EQ(export_dir("|"), "|");
  EXPECT_EQ(export_dir("*x"), "*x");
  EXPECT_EQ(export_dir("@x"), "@x");
  EXPECT_EQ(export_dir("a\\,b"), "a,b");
  EXPECT_EQ(export_dir("  x "), "x");
  EXPECT_EQ(export_dir("'#x'"), "#x");
  // Hydra: token recognition error at '#' / '~' / '&' / '!' / '>' / ';'; nULL is null (the default).
  for (const char* v : {"#x", "x #y", "x#y", "~", "&x", "!x", ">", "a;b", "[a #b]"}) {
    const std::string m = config_error(kHead, {std::string("quantization.export_dir=") + v});
    EXPECT_EQ(m.rfind(std::string("override 'quantization.export_dir=") + v + "': Hydra's override grammar", 0), 0u) << m;
  }
  EXPECT_EQ(export_dir("nULL"), "quantized_models");
}

TEST(ConfigScalars, SeveralMergeKeysInOneMap) {
  // OmegaConf.create of these dataset maps gives (seed, batch_size): (2, 2) (the later << wins), (3, 1) for
  // `<<: [*a, *b]` then `<<: *d` (the first of a list), (1, 1) for `<<: *d` then `<<: [*a, *b]`, (0, 2) with an
  // own seed (own keys win).
  using Pair = std::pair<int64_t, int64_t>;
  auto dseed = [&](const std::string& merges) {
    const std::string a2 = "a: &a {seed: 1, batch_size: 1}\nb: &b {seed: 2, batch_size: 2}\nd: &d {seed: 3}\n";
    Config c = load_config_from_string(a2 + kHead + "dataset:\n" + merges, {}, "cfg.yaml");
    return Pair{c.dataset.seed, c.dataset.batch_size};
  };
  EXPECT_EQ(dseed("  <<: *a\n  <<: *b\n"), Pair(2, 2));
  EXPECT_EQ(dseed("  <<: [*a, *b]\n  <<: *d\n"), Pair(3, 1));
  EXPECT_EQ(dseed("  <<: *d\n  <<: [*a, *b]\n"), Pair(1, 1));
  EXPECT_EQ(dseed("  seed: 0\n  <<: *a\n  <<: *b\n"), Pair(0, 2));
}
