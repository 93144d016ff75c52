// quantization.onnx_extra_options.TensorQuantOverrides: parsing into typed dicts, ONNX Runtime's structural rules
// (one Config error naming TensorQuantOverrides.<tensor> a rule), and the core pieces it feeds (range overrides
// in weight_params, the model rules of validate_overrides).
#include <gtest/gtest.h>

#include "config/config.h"
#include "core/error.h"
#include "quant/overrides.h"
#include "quant/qparams.h"

using namespace oq;
using namespace oq::config;

namespace {

Config load_tqo(const std::string& body, const std::string& more = "") {
  return load_config_from_string("model: {model_path: m.onnx}\nquantization:\n  target_opset: 21\n"
                                 "  onnx_extra_options:\n"
                                 "    TensorQuantOverrides: " + body + "\n" + more,
                                 {}, "cfg.yaml");
}

std::string tqo_error(const std::string& body, const std::string& more = "") {
  try {
    load_tqo(body, more);
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for " << body;
  return "";
}

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)

}  // namespace

TEST(ConfigTqo, ParsesEveryKey) {
  Config c = load_tqo(
      "{conv1_out: [{quant_type: QUInt16, symmetric: false}], W1: [{axis: 0, quant_type: QInt4}],\n"
      "       act2: [{scale: 0.01, zero_point: 128}], act3: [{rmin: -1.0, rmax: 1.0}],\n"
      "       W2: [{axis: -1, rmin: -1, rmax: 1, reduce_range: true}, {rmin: -2, rmax: 2, axis: -1}],\n"
      "       skipped: [], W3: [{}]}");
  const auto& t = c.quantization.extra.tensor_quant_overrides;
  ASSERT_EQ(t.size(), 7u);  // `skipped: []` is no override (ORT), but kept: its name is checked against the model
  EXPECT_EQ(t[0].tensor, "conv1_out");
  EXPECT_EQ(t[0].dicts[0].quant_type, DType::UInt16);
  EXPECT_EQ(t[0].dicts[0].symmetric, false);
  EXPECT_FALSE(t[0].per_channel());
  EXPECT_EQ(t[1].tensor, "W1");
  EXPECT_TRUE(t[1].per_channel());
  EXPECT_EQ(t[1].dicts[0].axis, 0);
  EXPECT_EQ(t[1].dicts[0].quant_type, DType::Int4);
  EXPECT_EQ(t[2].dicts[0].scale, 0.01);
  EXPECT_EQ(t[2].dicts[0].zero_point, 128);
  EXPECT_TRUE(t[2].dicts[0].has_fixed_qparams());
  EXPECT_EQ(t[3].dicts[0].rmin, -1.0);
  EXPECT_EQ(t[3].dicts[0].rmax, 1.0);
  EXPECT_FALSE(t[3].dicts[0].symmetric.has_value());
  EXPECT_EQ(t[4].dicts.size(), 2u);
  EXPECT_EQ(t[4].dicts[0].reduce_range, true);
  EXPECT_EQ(t[4].dicts[1].rmin, -2.0);
  EXPECT_EQ(t[5].tensor, "skipped");
  EXPECT_TRUE(t[5].dicts.empty());
  EXPECT_FALSE(t[5].per_channel());
  EXPECT_EQ(t[6].tensor, "W3");
  ASSERT_EQ(t[6].dicts.size(), 1u);  // [{}]: an override with nothing set (ORT: the weight goes per tensor)
  EXPECT_FALSE(t[6].per_channel());
  EXPECT_TRUE(load_tqo("{}").quantization.extra.tensor_quant_overrides.empty());
  EXPECT_TRUE(load_tqo("null").quantization.extra.tensor_quant_overrides.empty());
}

TEST(ConfigTqo, OrtRulesAreConfigErrorsNamingTheTensor) {
  const std::string k = "quantization.onnx_extra_options.TensorQuantOverrides";
  EXPECT_HAS(tqo_error("[a]"), k + ": expected a map");
  EXPECT_HAS(tqo_error("{a: {quant_type: QInt8}}"), k + ".a: expected a list");
  EXPECT_HAS(tqo_error("{a: [QInt8]}"), k + ".a[0]: expected a map");
  EXPECT_HAS(tqo_error("{a: [{scale: 0.1}]}"), "together");
  EXPECT_HAS(tqo_error("{a: [{zero_point: 1}]}"), k + ".a[0]");
  for (const char* key : {"symmetric: true", "reduce_range: true", "rmin: -1", "rmax: 1"}) {
    const std::string m = tqo_error(std::string("{a: [{scale: 0.1, zero_point: 0, ") + key + "}]}");
    EXPECT_HAS(m, k + ".a[0]");
    EXPECT_HAS(m, std::string(key).substr(0, std::string(key).find(':')));
  }
  EXPECT_HAS(tqo_error("{a: [{scale: 0, zero_point: 0}]}"), "> 0");
  EXPECT_HAS(tqo_error("{a: [{quant_type: QInt7}]}"), k + ".a[0].quant_type");
  EXPECT_HAS(tqo_error("{a: [{quant_typ: QInt8}]}"), "quant_typ");
  EXPECT_HAS(tqo_error("{a: [{}, {}]}"), "no 'axis' in the first");
  EXPECT_HAS(tqo_error("{a: [{axis: 0, rmin: 1}]}"), "both 'rmin' and 'rmax'");
  EXPECT_HAS(tqo_error("{a: [{axis: 0, quant_type: QInt8}, {quant_type: QInt4}]}"), k + ".a[1].quant_type: differs");
  EXPECT_HAS(tqo_error("{a: [{axis: 0}, {axis: 1}]}"), k + ".a[1].axis: differs");
  EXPECT_HAS(tqo_error("{a: [{axis: 0, symmetric: true}, {symmetric: false}]}"), k + ".a[1].symmetric");
  EXPECT_HAS(tqo_error("{a: [{axis: 0}, {reduce_range: true}]}"), k + ".a[1].reduce_range");
  EXPECT_HAS(tqo_error("{a: [{axis: 0, scale: 1, zero_point: 0}, {}]}"), k + ".a[1]: missing 'scale'");
  EXPECT_HAS(tqo_error("{a: [{axis: 0, rmin: -1, rmax: 1}, {rmin: -1}]}"), k + ".a[1]: missing 'rmin'");
  EXPECT_HAS(tqo_error("{a: [{convert: {scale: 0.1, zero_point: 0}}]}"), k + ".a[0].convert: must give a 'quant_type'");
  EXPECT_HAS(tqo_error("{a: [{convert: {quant_type: QUInt16, reduce_range: true}}]}"),
             k + ".a[0].convert.reduce_range: only supported for initializers");
  EXPECT_HAS(tqo_error("{a: [{convert: {quant_type: QUInt16, scale: 0.1}}]}"), k + ".a[0].convert: 'scale' and");
  EXPECT_HAS(tqo_error("{a: [{convert: {quant_type: QUInt16, scale: 0.1, zero_point: 0, rmin: 0}}]}"),
             k + ".a[0].convert: 'rmin' cannot be given with 'scale'");
  EXPECT_HAS(tqo_error("{a: [{convert: {quant_type: QUInt16, recv_nodes: n1}}]}"), k + ".a[0].convert.recv_nodes");
  EXPECT_HAS(tqo_error("{a: [{axis: 0, convert: {quant_type: QUInt16}}]}"), k + ".a[0].convert: cannot be used in per-channel");
  {
    Config c = load_tqo("{a: [{quant_type: QUInt8, convert: {quant_type: QUInt16, symmetric: true, recv_nodes: [n1, n2]}}]}");
    const auto& cv = c.quantization.extra.tensor_quant_overrides.at(0).dicts.at(0).convert;
    ASSERT_TRUE(cv.has_value());
    EXPECT_EQ(cv->quant_type, DType::UInt16);
    EXPECT_EQ(cv->symmetric, true);
    EXPECT_EQ(cv->recv_nodes, (std::vector<std::string>{"n1", "n2"}));
  }
  // The same tensor under TensorQuantOverrides and onnxquant's own override lists.
  EXPECT_HAS(tqo_error("{w: [{quant_type: QInt8}]}", "    weights_tensor_override: [[w, {quant_type: Int4}]]\n"),
             "weights_tensor_override");
  EXPECT_HAS(tqo_error("{x: [{quant_type: QInt8}]}", "    activations_tensor_override: [[x, {quant_type: Int8}]]\n"),
             k + ".x: tensor 'x' is also in quantization.onnx_extra_options.activations_tensor_override");
}

TEST(ConfigTqo, RangeOverridesReplaceTheDataRange) {
  // Channels [-1, 0.5] and [0.25, 2]. Channel 0 gets [-0.5, 3] (asymmetric int8: scale 3.5/255, zp round(-128 +
  // 0.5/scale) = -92); channel 1 keeps its data range.
  auto w = Tensor::from_vector<float>(DType::Float, {2, 2}, {-1.f, 0.5f, 0.25f, 2.f});
  auto q = quant::weight_params(w, DType::Int8, false, 0, false, std::nullopt, {quant::RangeOverride{-0.5, 3.0}});
  ASSERT_EQ(q.scale.size(), 2u);
  EXPECT_FLOAT_EQ(q.scale[0], static_cast<float>(3.5 / 255));
  EXPECT_EQ(q.zero_point[0], -128 + static_cast<int64_t>(std::nearbyint(0.5 / (3.5 / 255))));
  EXPECT_FLOAT_EQ(q.scale[1], static_cast<float>(2.0 / 255));  // [0, 2]: 0 is included
  // Per tensor, only rmax given: rmin stays the data's -1.
  auto p = quant::weight_params(w, DType::Int8, true, -1, false, std::nullopt, {quant::RangeOverride{std::nullopt, 4.0}});
  EXPECT_FLOAT_EQ(p.scale[0], static_cast<float>(8.0 / 254));
}

TEST(ConfigTqo, ModelRulesOfValidateOverrides) {
  ir::Graph g;
  g.add_initializer("W", Tensor::from_vector<float>(DType::Float, {4, 2}, std::vector<float>(8, 0.5f)));
  ir::Node n;
  n.op_type = "Gemm";
  n.name = "gemm";
  n.inputs = {"x", "W"};
  n.outputs = {"y"};
  n.set_attr_int("transB", 1);  // output channels on axis 0
  g.nodes.push_back(n);
  quant::QuantOptions o;
  auto tqo = [](quant::TensorOverride ov) {
    ov.source = quant::OverrideSource::TensorQuantOverrides;
    return ov;
  };
  auto expect_error = [&](const char* needle) {
    try {
      quant::validate_overrides(g, o);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_HAS(std::string(e.what()), "TensorQuantOverrides.");
      EXPECT_HAS(std::string(e.what()), needle);
    }
  };
  quant::TensorOverride ov;
  ov.reduce_range = true;
  o.activation_overrides["y"] = tqo(ov);
  expect_error("'reduce_range' is only supported for initializers");
  o.activation_overrides.clear();
  ov = {};
  ov.axis = 0;
  o.activation_overrides["y"] = tqo(ov);
  expect_error("need an initializer");
  o.activation_overrides.clear();
  ov.axis = 2;
  o.weight_overrides["W"] = tqo(ov);
  expect_error("axis 2 is out of bounds");
  ov.axis = 1;  // the input channels of the Gemm's weight: its bias is per output channel (ORT raises)
  o.weight_overrides["W"] = tqo(ov);
  expect_error("axis 1 is not the output-channel axis of Gemm 'gemm', which reads 'W' as its weight: use axis 0");
  ov.axis = -2;  // = 0: 4 channels
  ov.ranges.assign(3, {});
  o.weight_overrides["W"] = tqo(ov);
  expect_error("3 channel dicts for 4 channels");
  ov.ranges.assign(4, {});
  o.weight_overrides["W"] = tqo(ov);
  EXPECT_NO_THROW(quant::validate_overrides(g, o));
  ov.scale = {0.1};
  ov.zero_point = {0};
  ov.ranges.clear();
  o.weight_overrides["W"] = tqo(ov);
  expect_error("one dict with scale/zero_point for 4 channels");
  // A TensorQuantOverrides weight with nodes_to_quantize is fine (ORT allows it); weights_tensor_override is not.
  o.weight_overrides["W"] = tqo(quant::TensorOverride{});
  o.nodes_to_quantize = {"gemm"};
  EXPECT_NO_THROW(quant::validate_overrides(g, o));
  // convert: an activation's, of another type; recv_nodes read the tensor; not with DedicatedQDQPair when
  // several nodes read it (ORT raises there too).
  o.weight_overrides.clear();
  o.nodes_to_quantize.clear();
  ir::Node relu;
  relu.op_type = "Relu";
  relu.name = "relu";
  relu.inputs = {"y"};
  relu.outputs = {"z"};
  g.nodes.push_back(relu);
  ov = {};
  ov.convert = quant::ConvertOverride{};
  ov.convert->qtype = DType::Int8;  // the activation type
  o.activation_overrides["y"] = tqo(ov);
  expect_error("'convert' quant_type must differ");
  ov.convert->qtype = DType::UInt16;
  ov.convert->recv_nodes = std::set<std::string>{"relu", "gemm"};
  o.activation_overrides["y"] = tqo(ov);
  expect_error("convert.recv_nodes names 'gemm', which is not a node that reads 'y'");
  ov.convert->recv_nodes = std::set<std::string>{"relu"};
  o.activation_overrides["y"] = tqo(ov);
  EXPECT_NO_THROW(quant::validate_overrides(g, o));
  g.nodes.push_back(relu);
  g.nodes.back().name = "relu2";
  o.dedicated_qdq_pair = true;
  expect_error("DedicatedQDQPair");
  o.activation_overrides.clear();
  o.weight_overrides["W"] = tqo(ov);
  expect_error("'convert' cannot be used for initializers");
  // place_tensor_quant_overrides: the tensor must exist in the model; initializers go to weight_overrides.
  quant::QuantOptions p;
  quant::place_tensor_quant_overrides(g, {{"W", tqo({})}, {"y", tqo({})}}, p);
  EXPECT_EQ(p.weight_overrides.count("W"), 1u);
  EXPECT_EQ(p.activation_overrides.count("y"), 1u);
  try {
    quant::place_tensor_quant_overrides(g, {{"yy", tqo({})}}, p);
    ADD_FAILURE() << "unknown tensor accepted";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "TensorQuantOverrides.yy: the model has no tensor named 'yy'");
  }
  // An empty list places nothing, but its tensor must exist (ORT: "not present in the model").
  quant::QuantOptions e;
  quant::place_tensor_quant_overrides(g, {{"y", std::nullopt}}, e);
  EXPECT_TRUE(e.activation_overrides.empty() && e.weight_overrides.empty());
  EXPECT_THROW(quant::place_tensor_quant_overrides(g, {{"nope", std::nullopt}}, e), Error);
}
