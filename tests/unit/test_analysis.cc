// Inspection (src/analysis): SNR, dequantization, weight and activation SNR of a small quantized model against
// a naive re-computation in the test, report layouts and override suggestions (loaded back by the config loader).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>

#include "analysis/inspect.h"
#include "analysis/report.h"
#include "analysis/snr.h"
#include "config/config.h"
#include "data/dataset.h"
#include "quant/quantizer.h"

using namespace oq;
using namespace oq::analysis;

TEST(Snr, HandValues) {
  // x = (3, 4), x̂ = (3, 3): ‖x‖ = 5, ‖x − x̂‖ = 1 -> 20·log10(5) dB.
  SnrAccumulator a;
  a.add(std::vector<float>{3, 4}, std::vector<float>{3, 3});
  EXPECT_NEAR(a.db(), 20.0 * std::log10(5.0), 1e-12);
  EXPECT_EQ(a.count(), 2);
  // Exact image: the noise floor is ε.
  SnrAccumulator e;
  e.add(std::vector<float>{3, 4}, std::vector<float>{3, 4});
  EXPECT_NEAR(e.db(), 20.0 * std::log10(5.0 / DBL_EPSILON), 1e-9);
  // Exact images of a signal below 1 and of an all-zero tensor (a zero bias): at least a unit signal's
  // 20·log10(1/ε), never the 0 dB of ε/ε that would flag a perfectly kept tensor.
  EXPECT_NEAR(snr_db(0, 0), 20.0 * std::log10(1.0 / DBL_EPSILON), 1e-9);
  EXPECT_NEAR(snr_db(0.25, 0), 20.0 * std::log10(1.0 / DBL_EPSILON), 1e-9);
  EXPECT_GT(snr_db(0, 0), 300.0);
  // A zero signal with any noise stays at the bottom.
  EXPECT_NEAR(snr_db(0, 4.0), 20.0 * std::log10(DBL_EPSILON / 2.0), 1e-9);
  // Accumulating in pieces = one pass over everything.
  SnrAccumulator p, w;
  std::vector<float> x = {1.5f, -2.f, 0.25f, 7.f, -3.f}, y = {1.f, -2.5f, 0.f, 7.5f, -3.f};
  p.add(std::span<const float>(x).subspan(0, 2), std::span<const float>(y).subspan(0, 2));
  p.add(std::span<const float>(x).subspan(2), std::span<const float>(y).subspan(2));
  w.add(x, y);
  EXPECT_DOUBLE_EQ(p.db(), w.db());
  // Σx² = 2.25+4+0.0625+49+9 = 64.3125; Σd² = 0.25·3 + 0.0625 = 0.8125.
  EXPECT_NEAR(w.db(), 10.0 * std::log10(64.3125 / 0.8125), 1e-9);
  Tensor t(DType::Float, {2, 2}), u(DType::Float, {3});
  EXPECT_THROW(a.add(t, u, "t"), Error);
}

TEST(Dequantize, PerTensorAndPerAxis) {
  Tensor q = Tensor::from_vector<int8_t>(DType::Int8, {2, 3}, {-128, -1, 0, 1, 5, 127});
  Tensor s = Tensor::from_vector<float>(DType::Float, {}, {0.5f});
  Tensor z = Tensor::from_vector<int8_t>(DType::Int8, {}, {-1});
  auto d = dequantize(q, s, z, 1);
  std::vector<float> want = {-63.5f, 0.f, 0.5f, 1.f, 3.f, 64.f};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(d.data<float>()[i], want[i]) << i;
  // Per axis 1 (3 channels) and axis 0 (2 channels), uint8 and int4 storage.
  Tensor qu = Tensor::from_vector<uint8_t>(DType::UInt8, {2, 3}, {0, 10, 20, 30, 40, 255});
  Tensor s3 = Tensor::from_vector<float>(DType::Float, {3}, {1.f, 0.25f, 2.f});
  Tensor z3 = Tensor::from_vector<uint8_t>(DType::UInt8, {3}, {10, 0, 128});
  auto d1 = dequantize(qu, s3, z3, 1);
  std::vector<float> w1 = {-10.f, 2.5f, -216.f, 20.f, 10.f, 254.f};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(d1.data<float>()[i], w1[i]) << i;
  Tensor q4 = Tensor::from_vector<int8_t>(DType::Int4, {2, 3}, {-8, 0, 7, 1, -1, 3});
  Tensor s2 = Tensor::from_vector<float>(DType::Float, {2}, {0.5f, 4.f});
  auto d0 = dequantize(q4, s2, Tensor(), -2);
  std::vector<float> w0 = {-4.f, 0.f, 3.5f, 4.f, -4.f, 12.f};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(d0.data<float>()[i], w0[i]) << i;
  EXPECT_THROW(dequantize(qu, s2, Tensor(), 1), Error);  // 2 scales on a 3-wide axis
}

namespace {

ir::Node make_node(const std::string& name, const std::string& op, std::vector<std::string> in, std::string out) {
  ir::Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = {std::move(out)};
  return n;
}

// x[b,6] -> Mul(x, c) -> m -> Relu -> r -> MatMul(r, W[6,3]) -> y (graph output).
ir::Model small_model() {
  ir::Model m;
  m.ir_version = 10;
  m.set_default_opset(21);
  auto& g = m.graph;
  g.inputs.push_back(ir::ValueInfo{"x", DType::Float, std::vector<ir::Dim>{{-1, "batch"}, {6, ""}}, "", ""});
  g.outputs.push_back(ir::ValueInfo{"y", DType::Float, std::nullopt, "", ""});
  g.add_initializer("c", Tensor::from_vector<float>(DType::Float, {6}, {1.f, -2.f, 0.5f, 3.f, -1.f, 0.1f}));
  std::vector<float> w(18);
  for (int i = 0; i < 18; ++i) w[i] = std::sin(0.7f * static_cast<float>(i) + 0.3f) * (i % 3 == 2 ? 5.f : 1.f);
  g.add_initializer("W", Tensor::from_vector<float>(DType::Float, {6, 3}, w));
  g.nodes = {make_node("mul", "Mul", {"x", "c"}, "m"), make_node("relu", "Relu", {"m"}, "r"),
             make_node("mm", "MatMul", {"r", "W"}, "y")};
  return m;
}

// Naive QuantizeLinear -> DequantizeLinear of one value (x / scale in float, as the operator specifies).
float fq(float v, float s, int64_t zp, DType t) {
  QRange r = full_range(t);
  const float ratio = v / s;
  double q = std::nearbyint(static_cast<double>(ratio)) + static_cast<double>(zp);
  q = std::clamp(q, static_cast<double>(r.qmin), static_cast<double>(r.qmax));
  return static_cast<float>(static_cast<int64_t>(q) - zp) * s;
}
std::vector<float> fq_all(const std::vector<float>& v, const exec::QuantParams& p, int channels = 1) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    size_t c = p.scale.size() == 1 ? 0 : i % static_cast<size_t>(channels);
    o[i] = fq(v[i], p.scale[c], p.zero_point[c], p.qtype);
  }
  return o;
}

}  // namespace

TEST(Inspect, SmallModelAgainstNaiveReference) {
  ir::Model model = small_model();
  quant::QuantOptions o;
  auto data = data::make_random_dataset(data::input_specs(model.graph), 7, 5);
  quant::CalibrationRequest req;
  auto cal = quant::calibrate(model, o, data, req);
  auto q = quant::build_qdq(model, o, cal);

  auto r = describe(model, q);
  std::vector<std::string> names;
  for (const auto& t : r.tensors) names.push_back(t.name);
  ASSERT_EQ(names, (std::vector<std::string>{"x", "c", "r", "W", "y"}));
  EXPECT_EQ(r.tensors[1].kind, TensorKind::Weight);
  EXPECT_TRUE(r.tensors[1].activation_override);
  EXPECT_EQ(r.tensors[2].producer.op_type, "Relu");
  ASSERT_EQ(r.tensors[2].folded.size(), 1u);
  EXPECT_EQ(r.tensors[2].folded[0].op_type, "Relu");
  EXPECT_EQ(r.tensors[3].axis, 1);
  EXPECT_EQ(r.tensors[3].channel_axis, 1);
  EXPECT_EQ(r.tensors[4].consumers.size(), 0u);

  measure_weights(model, q, r);
  auto subset = data::first_n(data, 4);
  measure_activations(model, q, subset, 3, r);
  EXPECT_EQ(r.samples, 4);

  const auto& P = q.params;
  const auto& c = model.graph.find_initializer("c")->tensor;
  const auto& W = model.graph.find_initializer("W")->tensor;
  std::vector<float> cv(c.span<float>().begin(), c.span<float>().end()), wv(W.span<float>().begin(), W.span<float>().end());
  auto ch = fq_all(cv, P.at("c")), wh = fq_all(wv, P.at("W"), 3);
  SnrAccumulator sc, sw, xx, xr, lr, xy, ly;
  sc.add(cv, ch);
  sw.add(wv, wh);
  for (int64_t i = 0; i < 4; ++i) {
    Tensor xt = subset->sample(i).at("x");
    std::vector<float> x(xt.span<float>().begin(), xt.span<float>().end());
    auto xh = fq_all(x, P.at("x"));
    std::vector<float> rf(6), rpre(6), rrelu(6), yf(3, 0.f), ypre(3, 0.f);
    for (int k = 0; k < 6; ++k) {
      rf[k] = std::max(x[k] * cv[k], 0.f);
      rpre[k] = xh[k] * ch[k];
      rrelu[k] = std::max(rpre[k], 0.f);
    }
    auto rh = fq_all(rpre, P.at("r"));
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 6; ++k) {
        yf[j] += rf[k] * wv[k * 3 + j];
        ypre[j] += rh[k] * wh[k * 3 + j];
      }
    auto yh = fq_all(ypre, P.at("y"));
    xx.add(x, xh);
    xr.add(rf, rh);
    lr.add(rrelu, rh);
    xy.add(yf, yh);
    ly.add(ypre, yh);
  }
  EXPECT_NEAR(r.tensors[1].snr_db, sc.db(), 1e-6);
  EXPECT_NEAR(r.tensors[3].snr_db, sw.db(), 1e-6);
  EXPECT_NEAR(r.tensors[0].snr_xmodel_db, xx.db(), 1e-6);
  EXPECT_NEAR(r.tensors[0].snr_local_db, xx.db(), 1e-6);
  EXPECT_NEAR(r.tensors[2].snr_xmodel_db, xr.db(), 1e-4);
  EXPECT_NEAR(r.tensors[2].snr_local_db, lr.db(), 1e-4);
  EXPECT_NEAR(r.tensors[4].snr_xmodel_db, xy.db(), 1e-3);
  EXPECT_NEAR(r.tensors[4].snr_local_db, ly.db(), 1e-3);
  EXPECT_GT(r.tensors[2].snr_local_db, 20.0);  // the Relu itself is not counted as error
}

namespace {

TensorInspection fake(const std::string& name, TensorKind kind, DType t, int axis, int channel_axis, double snr) {
  TensorInspection x;
  x.name = name;
  x.kind = kind;
  x.initializer = kind != TensorKind::Activation;
  x.activation_override = kind == TensorKind::Activation;
  x.qtype = t;
  x.axis = axis;
  x.channel_axis = channel_axis;
  (x.initializer ? x.snr_db : x.snr_xmodel_db) = snr;
  x.snr_local_db = snr + 1;
  return x;
}

// A minimal config with `yaml` pasted under quantization.onnx_extra_options.
config::Config load_with_overrides(const std::string& yaml) {
  std::string indented;
  size_t start = 0;
  while (start < yaml.size()) {
    size_t end = yaml.find('\n', start);
    if (end == std::string::npos) end = yaml.size();
    indented += "    " + yaml.substr(start, end - start) + "\n";
    start = end + 1;
  }
  // target_opset 21, as the snippet's comment asks when it suggests Int16 (the config is refused at load without).
  return config::load_config_from_string(
      "model:\n  model_path: m.onnx\nquantization:\n  quantizer: onnx_quantizer\n  target_opset: 21\n"
      "  onnx_extra_options:\n" + indented);
}

}  // namespace

TEST(Report, StLinesWorstFirst) {
  InspectionResult r;
  r.tensors = {fake("w1", TensorKind::Weight, DType::Int8, 0, 0, 30.12345),
               fake("a1", TensorKind::Activation, DType::Int8, -1, -1, 25.0),
               fake("b1", TensorKind::Bias, DType::Int32, -1, -1, 80.0),
               fake("w2", TensorKind::Weight, DType::Int8, -1, 0, 12.5),
               fake("a2", TensorKind::Activation, DType::Int8, -1, -1, 9.9996)};
  auto l = st_snr_lines(r);
  std::vector<std::string> want = {"",
                                   "Baseline quantized model (config file parameters), SNR analysis (dB):",
                                   "Weights tensors SNR:",
                                   "w2: 12.500",
                                   "w1: 30.123",
                                   "b1: 80.000",
                                   "Activations tensors SNR:",
                                   "a2: 10.000",
                                   "a1: 25.000"};
  EXPECT_EQ(l, want);
  auto h = st_header_lines({"Quantization granularity: per_channel", "p", "e"});
  EXPECT_EQ(h[0], "");
  EXPECT_EQ(h[1], "Baseline quantization with parameters specified in config file:");
  EXPECT_EQ(h.size(), 5u);
  auto csv = to_csv(r);
  EXPECT_NE(csv.find("\n0,w1,weight,,,,,Int8,per_channel,0,"), std::string::npos) << csv;
}

TEST(Report, SuggestionsLoadBackThroughTheConfigLoader) {
  InspectionResult r;
  r.tensors = {fake("conv.w'q", TensorKind::Weight, DType::Int8, -1, 0, 5.0),   // per tensor -> Int8 axis 0
               fake("pc.w", TensorKind::Weight, DType::Int8, 0, 0, 8.0),        // per channel -> Int16 axis 0
               fake("w4", TensorKind::Weight, DType::Int4, 1, 1, 9.0),          // 4-bit -> Int8 axis 1
               fake("ok.w", TensorKind::Weight, DType::Int8, -1, 0, 40.0),      // above threshold
               fake("bias", TensorKind::Bias, DType::Int32, -1, -1, 3.0),       // biases: never
               fake("act", TensorKind::Activation, DType::UInt8, -1, -1, 11.0),
               fake("act16", TensorKind::Activation, DType::Int16, -1, -1, 2.0),  // already 16-bit
               fake("reshaped", TensorKind::Activation, DType::Int8, -1, -1, 12.0),
               fake("kept", TensorKind::Activation, DType::Int8, -1, -1, 1.0)};
  r.tensors[7].shares_params_with = "provider";
  quant::QuantOptions o;
  o.activation_overrides["kept"].qtype = DType::Int16;
  quant::TensorOverride& fixed = o.weight_overrides["fixed"];
  fixed.qtype = DType::Int8;
  fixed.scale = {0.5, 0.25};
  fixed.zero_point = {0, 0};
  fixed.axis = 0;
  auto sug = suggest_overrides(r, 20.0, o);
  ASSERT_EQ(sug.size(), 5u);
  std::string yaml = overrides_yaml(sug, o, 20.0, 17);
  EXPECT_NE(yaml.find("target_opset: 21"), std::string::npos);
  auto cfg = load_with_overrides(yaml);
  const auto& w = cfg.quantization.extra.weights_tensor_override;
  const auto& a = cfg.quantization.extra.activations_tensor_override;
  ASSERT_EQ(w.size(), 4u) << yaml;
  EXPECT_EQ(w[0].tensor, "fixed");
  EXPECT_EQ(w[0].scale, (std::vector<double>{0.5, 0.25}));
  EXPECT_EQ(w[1].tensor, "conv.w'q");
  EXPECT_EQ(w[1].quant_type, DType::Int8);
  EXPECT_EQ(w[1].axis, 0);
  EXPECT_EQ(w[2].tensor, "pc.w");
  EXPECT_EQ(w[2].quant_type, DType::Int16);
  EXPECT_EQ(w[3].tensor, "w4");
  EXPECT_EQ(w[3].quant_type, DType::Int8);
  EXPECT_EQ(w[3].axis, 1);
  ASSERT_EQ(a.size(), 3u) << yaml;
  EXPECT_EQ(a[0].tensor, "kept");
  EXPECT_EQ(a[1].tensor, "act");
  EXPECT_EQ(a[1].quant_type, DType::Int16);
  EXPECT_FALSE(a[1].axis.has_value());
  EXPECT_EQ(a[2].tensor, "provider");
  // Nothing below the threshold: both keys present and empty.
  auto none = overrides_yaml({}, quant::QuantOptions{}, 20.0, 21);
  auto cfg2 = load_with_overrides(none);
  EXPECT_TRUE(cfg2.quantization.extra.weights_tensor_override.empty());
  EXPECT_TRUE(cfg2.quantization.extra.activations_tensor_override.empty());
  auto html = to_html(r, ReportSettings{}, yaml);
  EXPECT_NE(html.find("<pre id=\"overrides-yaml\">"), std::string::npos);
  EXPECT_NE(html.find("conv.w&#39;q"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // no other URL
}
