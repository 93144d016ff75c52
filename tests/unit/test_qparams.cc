// Scale/zero-point values checked against hand computations of ORT's compute_scale_zp formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "quant/overrides.h"
#include "quant/qparams.h"

using namespace oq;
using namespace oq::quant;

TEST(QRange, PerTypeFullSymmetricReduced) {
  EXPECT_EQ(qrange(DType::UInt8, false).qmax, 255);
  EXPECT_EQ(qrange(DType::UInt8, true).qmax, 254);
  EXPECT_EQ(qrange(DType::UInt8, false, true).qmax, 127);
  EXPECT_EQ(qrange(DType::Int8, true).qmin, -127);
  EXPECT_EQ(qrange(DType::Int8, false, true).qmin, -64);
  EXPECT_EQ(qrange(DType::Int8, false, true).qmax, 64);
  EXPECT_EQ(qrange(DType::UInt16, true).qmax, 65534);
  EXPECT_EQ(qrange(DType::Int16, true).qmin, -32767);
  EXPECT_EQ(qrange(DType::Int16, false, true).qmin, -16384);
  EXPECT_EQ(qrange(DType::Int4, true).qmin, -8);  // 4-bit keeps the full range when symmetric
  EXPECT_EQ(qrange(DType::UInt4, true).qmax, 15);
  EXPECT_EQ(qrange(DType::Int4, false, true).qmax, 3);
  EXPECT_EQ(qrange(DType::UInt4, false, true).qmax, 7);
}

TEST(ScaleZp, AsymmetricUInt8) {
  // [-1, 3] -> scale 4/255, zp round(0 + 1/(4/255)) = round(63.75) = 64.
  ScaleZp r = compute_scale_zp(-1, 3, 0, 255, false);
  EXPECT_FLOAT_EQ(r.scale, static_cast<float>(4.0 / 255.0));
  EXPECT_EQ(r.zero_point, 64);
}

TEST(ScaleZp, RangeIncludesZero) {
  // [2, 5] becomes [0, 5]: zp = 0 for uint8, -128 for int8.
  EXPECT_EQ(compute_scale_zp(2, 5, 0, 255, false).zero_point, 0);
  EXPECT_FLOAT_EQ(compute_scale_zp(2, 5, 0, 255, false).scale, static_cast<float>(5.0 / 255.0));
  EXPECT_EQ(compute_scale_zp(2, 5, -128, 127, false).zero_point, -128);
}

TEST(ScaleZp, SymmetricInt8) {
  ScaleZp r = compute_scale_zp(-1, 3, -127, 127, true);
  EXPECT_FLOAT_EQ(r.scale, static_cast<float>(6.0 / 254.0));
  EXPECT_EQ(r.zero_point, 0);
  // Symmetric uint8 (0..254): zp = (0 + 254) / 2 = 127.
  EXPECT_EQ(compute_scale_zp(-1, 3, 0, 254, true).zero_point, 127);
  // Int4 symmetric on the full range: zp = round(-0.5) = 0 (half to even).
  EXPECT_EQ(compute_scale_zp(-1, 1, -8, 7, true).zero_point, 0);
  EXPECT_FLOAT_EQ(compute_scale_zp(-1, 1, -8, 7, true).scale, static_cast<float>(2.0 / 15.0));
}

TEST(ScaleZp, ZeroPointRoundsHalfToEven) {
  // scale 1: zp = round(0 - rmin) -> rmin -0.5 gives 0, rmin -1.5 gives 2.
  EXPECT_EQ(compute_scale_zp(-0.5, 254.5, 0, 255, false).zero_point, 0);
  EXPECT_EQ(compute_scale_zp(-1.5, 253.5, 0, 255, false).zero_point, 2);
}

TEST(ScaleZp, TinyScaleBecomesOne) {
  ScaleZp r = compute_scale_zp(0, 0, -128, 127, false);
  EXPECT_EQ(r.scale, 1.f);
  EXPECT_EQ(r.zero_point, 0);
  r = compute_scale_zp(0, 1e-40, 0, 255, false);
  EXPECT_EQ(r.scale, 1.f);
}

TEST(ScaleZp, MinimumRealRange) {
  ScaleZp r = compute_scale_zp(0, 0.001, 0, 255, false, 0.01);
  EXPECT_NEAR(r.scale, 0.01 / 255.0, 1e-9);
}

// ORT: rmax = max(rmax, rmin + numpy.asarray(min_real_range, dtype=rmin.dtype)), a float32 addition. onnxquant added
// in float64 and rounded once, one float32 ulp off here, and the scale with it.
TEST(ScaleZp, MinimumRealRangeAddsInFloat32) {
  const float rmin = -0.0040973523f;
  const float floor = rmin + 0.1f;
  ASSERT_NE(floor, static_cast<float>(static_cast<double>(rmin) + 0.1));  // the case where the two differ
  const double scale = (static_cast<double>(floor) - static_cast<double>(rmin)) / 255.0;  // float64, as ORT
  ScaleZp r = compute_scale_zp(rmin, 0, 0, 255, false, 0.1);
  EXPECT_EQ(r.scale, static_cast<float>(scale));
  EXPECT_EQ(r.scale, 0x1.9b34dp-12f);  // onnxruntime 1.32's compute_scale_zp on these values
  EXPECT_EQ(r.zero_point, static_cast<int64_t>(std::nearbyint(0.0 - static_cast<double>(rmin) / scale)));
  EXPECT_EQ(r.zero_point, 10);
  r = compute_scale_zp(rmin, 0, -128, 127, false, 0.1);
  EXPECT_EQ(r.scale, 0x1.9b34dp-12f);
  EXPECT_EQ(r.zero_point, -118);
}

// A range [-t, t] quantized asymmetrically puts the zero point at exactly 127.5 in real arithmetic; ORT's float64
// qmin - rmin / scale (scale = 2t / 255 in float64) lands on either side, rounded half to even. Values from
// onnxruntime 1.32's compute_scale_zp: a threshold one ulp away can give the other zero point (Percentile's
// thresholds come from the histogram of the executor's outputs: docs/conformance.md).
TEST(ScaleZp, ZeroPointOfASymmetricRangeFollowsFloat64) {
  EXPECT_EQ(compute_scale_zp(-1.3843576f, 1.3843576f, 0, 255, false).zero_point, 128);  // 127.5
  EXPECT_EQ(compute_scale_zp(-1.3843575f, 1.3843575f, 0, 255, false).zero_point, 127);  // 127.49999999999999
  EXPECT_EQ(compute_scale_zp(-1.2950528f, 1.2950528f, 0, 255, false).zero_point, 127);  // 127.49999999999999
  EXPECT_EQ(compute_scale_zp(-1.2950526f, 1.2950526f, 0, 255, false).zero_point, 128);  // 127.50000000000001
}

// ORT's snap_zero_point_to_uint8 (ActivationRestrictedAsymmetric), by hand.
TEST(ScaleZp, SnapZeroPointUInt8) {
  ScaleZp a = snap_zero_point_uint8(-1.0, 3.0, 0, 255);  // mid 128: max(1/128, 3/127)
  EXPECT_EQ(a.zero_point, 128);
  EXPECT_EQ(a.scale, static_cast<float>(3.0 / 127));
  a = snap_zero_point_uint8(-3.0, 1.0, 0, 255);  // max(3/128, 1/127)
  EXPECT_EQ(a.zero_point, 128);
  EXPECT_EQ(a.scale, static_cast<float>(3.0 / 128));
  a = snap_zero_point_uint8(0.5, 2.0, 0, 255);  // widened to [0, 2]: zero point 0
  EXPECT_EQ(a.zero_point, 0);
  EXPECT_EQ(a.scale, static_cast<float>(2.0 / 255));
  a = snap_zero_point_uint8(0.0, 0.0, 0, 255);  // empty range
  EXPECT_EQ(a.zero_point, 0);
  EXPECT_EQ(a.scale, static_cast<float>(1.0 / 255));
  a = snap_zero_point_uint8(-1.0, 3.0, 0, 127);  // reduced range: mid 64, max(1/64, 3/63)
  EXPECT_EQ(a.zero_point, 64);
  EXPECT_EQ(a.scale, static_cast<float>(3.0 / 63));
  a = snap_zero_point_uint8(0.0, 0.01, 0, 255, 5.1);  // MinimumRealRange: rmax = 5.1, scale 5.1 / 255
  EXPECT_EQ(a.zero_point, 0);
  EXPECT_EQ(a.scale, static_cast<float>(5.1 / 255));
}

TEST(QuantizeValue, HalfEvenAndSaturation) {
  EXPECT_EQ(quantize_value(2.5f, 1.f, 0, -128, 127), 2);
  EXPECT_EQ(quantize_value(3.5f, 1.f, 0, -128, 127), 4);
  EXPECT_EQ(quantize_value(-2.5f, 1.f, 0, -128, 127), -2);
  EXPECT_EQ(quantize_value(1000.f, 1.f, 0, -128, 127), 127);
  EXPECT_EQ(quantize_value(-9.f, 1.f, 0, -8, 7), -8);
  EXPECT_EQ(quantize_value(1.f, 0.5f, 10, 0, 255), 12);
}

TEST(WeightParams, PerChannelAxis0) {
  // Two output channels: [-1, 0.5] and [0.25, 2]; symmetric int8 -> scales 2/254 and 4/254.
  auto w = Tensor::from_vector<float>(DType::Float, {2, 2}, {-1.f, 0.5f, 0.25f, 2.f});
  auto q = weight_params(w, DType::Int8, true, 0);
  ASSERT_EQ(q.scale.size(), 2u);
  EXPECT_FLOAT_EQ(q.scale[0], static_cast<float>(2.0 / 254.0));
  EXPECT_FLOAT_EQ(q.scale[1], static_cast<float>(4.0 / 254.0));
  auto t = quantize_tensor(w, q);
  EXPECT_EQ(t.data<int8_t>()[0], -127);
  EXPECT_EQ(t.data<int8_t>()[3], 127);
  EXPECT_EQ(t.data<int8_t>()[1], 64);  // 0.5 / (2/254) = 63.5 -> 64 (half to even)
}

// channel_minmax (vectorised) against the plain loop it replaced: std::min / std::max in double, element by
// element (NaN skipped, infinities kept, an all-NaN channel gives 0), on odd shapes with a fixed seed.
TEST(WeightParams, ChannelMinMaxMatchesNaiveLoop) {
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.f, 3.f);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Shape> shapes = {{7}, {5, 3}, {3, 70}, {13, 5, 3, 3}, {6, 33, 1, 1}, {2, 3, 37}, {1, 1}};
  for (const Shape& shape : shapes) {
    Tensor w(DType::Float, shape);
    float* d = w.data<float>();
    for (int64_t i = 0; i < w.numel(); ++i) {
      const auto r = rng() % 50;
      d[i] = r == 0 ? nan : r == 1 ? inf : r == 2 ? -inf : g(rng);
    }
    if (w.numel() > 3) d[0] = d[1] = d[2] = nan;  // a channel of NaN only, for the shapes whose first is that short
    for (int axis = -1; axis < w.rank(); ++axis) {
      std::vector<double> mins, maxs;
      channel_minmax(w, axis, mins, maxs);
      int64_t outer = 1, inner = 1, ch = axis < 0 ? 1 : w.dim(axis);
      if (axis < 0) inner = w.numel();
      for (int i = 0; axis >= 0 && i < axis; ++i) outer *= w.dim(i);
      for (int i = axis + 1; axis >= 0 && i < w.rank(); ++i) inner *= w.dim(i);
      ASSERT_EQ(mins.size(), static_cast<size_t>(ch));
      for (int64_t c = 0; c < ch; ++c) {
        double lo = std::numeric_limits<double>::infinity(), hi = -lo;
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t k = 0; k < inner; ++k) {
            const double v = d[(o * ch + c) * inner + k];
            lo = std::min<double>(lo, v);
            hi = std::max<double>(hi, v);
          }
        if (lo > hi) lo = hi = 0;
        EXPECT_EQ(mins[c], lo) << shape_str(shape) << " axis " << axis << " channel " << c;
        EXPECT_EQ(maxs[c], hi) << shape_str(shape) << " axis " << axis << " channel " << c;
      }
    }
  }
}

// quantize_tensor (vectorised, NaN found by the min/max scan) against quantize_value element by element: NaN to
// the zero point, infinities saturated, on odd shapes, per tensor and per channel, Int8 / UInt8 / Int4.
TEST(WeightParams, QuantizeTensorMatchesQuantizeValue) {
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.f, 2.f);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (const Shape& shape : std::vector<Shape>{{5, 3}, {3, 70}, {13, 5, 3, 3}, {1, 1}, {2, 1031}})
    for (int nan_every : {0, 7, 997}) {
      Tensor w(DType::Float, shape);
      float* d = w.data<float>();
      for (int64_t i = 0; i < w.numel(); ++i) {
        d[i] = g(rng);
        if (nan_every && i % nan_every == 3) d[i] = (i / nan_every) % 3 == 0 ? nan : (i / nan_every) % 3 == 1 ? inf : -inf;
      }
      for (DType qt : {DType::Int8, DType::UInt8, DType::Int4})
        for (int axis : {-1, 0}) {
          std::vector<double> mins, maxs;
          channel_minmax(w, axis, mins, maxs);
          exec::QuantParams q;
          q.qtype = qt;
          q.axis = axis;
          const QRange r = qrange(qt, false, false);
          for (size_t c = 0; c < mins.size(); ++c) {
            // finite ranges (infinities in the data saturate)
            const double lo = std::isfinite(mins[c]) ? mins[c] : -3, hi = std::isfinite(maxs[c]) ? maxs[c] : 3;
            ScaleZp s = compute_scale_zp(lo, hi, r.qmin, r.qmax, false, std::nullopt, DType::Float);
            q.scale.push_back(s.scale);
            q.zero_point.push_back(s.zero_point);
          }
          Tensor t = quantize_tensor(w, q);
          const int64_t inner = axis < 0 ? w.numel() : w.numel() / w.dim(0);
          int64_t nans = 0;
          for (int64_t i = 0; i < w.numel(); ++i) {
            const int64_t c = axis < 0 ? 0 : i / inner;
            const int64_t want = quantize_value(d[i], q.scale[c], q.zero_point[c], r.qmin, r.qmax);
            const int64_t got = qt == DType::UInt8 ? t.data<uint8_t>()[i] : t.data<int8_t>()[i];
            ASSERT_EQ(got, want) << shape_str(shape) << " " << dtype_name(qt) << " axis " << axis << " at " << i
                                 << " (" << d[i] << ")";
            nans += d[i] != d[i];
          }
          if (nan_every == 7 && w.numel() > 3) {
            EXPECT_GT(nans, 0);
          }
        }
    }
}

static TensorOverride override_of(DType q, std::vector<double> scale, std::vector<int64_t> zp,
                                  std::optional<int64_t> axis) {
  TensorOverride o;
  o.qtype = q;
  o.scale = std::move(scale);
  o.zero_point = std::move(zp);
  o.axis = axis;
  return o;
}

TEST(Overrides, Rules) {
  ir::Graph g;
  g.add_initializer("W", Tensor(DType::Float, {4, 3}));
  ir::Node n;
  n.op_type = "Gemm";
  n.name = "gemm";
  n.inputs = {"x", "W"};
  n.outputs = {"y"};
  n.set_attr_int("transB", 1);  // output channels on axis 0
  g.nodes.push_back(n);
  QuantOptions o;
  auto expect_error = [&](const char* needle) {
    try {
      validate_overrides(g, o);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_EQ(e.exit_code(), 2);
    }
  };
  o.weight_overrides["nope"] = {};
  expect_error("quantization.onnx_extra_options.weights_tensor_override: the model has no weight (initializer) "
               "named 'nope'");
  o.weight_overrides.clear();
  o.weight_overrides["w"] = {};  // letter case: one edit away
  expect_error("named 'w', did you mean 'W'?");
  o.weight_overrides.clear();
  o.weight_overrides["y"] = {};
  expect_error("weights_tensor_override: 'y' is an activation, not a weight (initializer): put it in "
               "activations_tensor_override");
  o.weight_overrides.clear();
  o.activation_overrides["W"] = {};
  expect_error("activations_tensor_override: 'W' is a weight (initializer), not an activation: put it in "
               "weights_tensor_override");
  o.activation_overrides.clear();
  o.activation_overrides["yy"] = {};
  expect_error("quantization.onnx_extra_options.activations_tensor_override: the model has no activation tensor "
               "named 'yy', did you mean 'y'?");
  o.activation_overrides.clear();
  o.weight_overrides["W"] = override_of(DType::Int8, {0.1, 0.2}, {0, 0}, 0);
  expect_error("2 scale/zero_point values for 4 channels");
  o.weight_overrides["W"] = override_of(DType::Int8, {0.1}, {}, std::nullopt);
  expect_error("together");
  o.weight_overrides["W"] = override_of(DType::Int8, {-0.1}, {0}, std::nullopt);
  expect_error("scale must be a finite number > 0 in float32");
  o.weight_overrides["W"] = override_of(DType::Int4, {0.1}, {9}, std::nullopt);
  expect_error("outside the Int4 range");
  o.weight_overrides["W"] = override_of(DType::Int8, {}, {}, 2);
  expect_error("axis 2 is invalid");
  // Not the Gemm's output-channel axis (its int32 bias is per output channel): refused, naming the node and the axis.
  o.weight_overrides["W"] = override_of(DType::Int8, {}, {}, -1);
  expect_error("weights_tensor_override 'W': axis -1 is not the output-channel axis of Gemm 'gemm', which reads 'W' "
               "as its weight: use axis 0");
  g.nodes[0].set_attr_int("transB", 0);
  o.weight_overrides["W"] = override_of(DType::Int8, {}, {}, 0);
  expect_error("axis 0 is not the output-channel axis of Gemm 'gemm', which reads 'W' as its weight: use axis 1");
  o.nodes_to_exclude = {"gemm"};  // a reader that is not quantized does not count
  EXPECT_NO_THROW(validate_overrides(g, o));
  o.nodes_to_exclude.clear();
  g.nodes[0].op_type = "MatMul";  // MatMul takes any axis (QDQOpTypePerChannelSupportToAxis)
  EXPECT_NO_THROW(validate_overrides(g, o));
  g.nodes[0].op_type = "Gemm";
  g.nodes[0].set_attr_int("transB", 1);
  o.weight_overrides.clear();
  o.activation_overrides["y"] = override_of(DType::Int16, {}, {}, 0);
  expect_error("per tensor");
  o.activation_overrides["y"] = override_of(DType::Int16, {0.1}, {0}, std::nullopt);
  EXPECT_NO_THROW(validate_overrides(g, o));
  o.nodes_to_quantize = {"gemm"};
  o.weight_overrides["W"] = override_of(DType::Int8, {}, {}, std::nullopt);
  expect_error("nodes_to_quantize");
}

TEST(Overrides, NodeFiltersNameNodesOfTheModel) {
  ir::Graph g;
  for (const char* name : {"stem/Conv", "head/Gemm"}) {
    ir::Node n;
    n.op_type = std::string(name).ends_with("Conv") ? "Conv" : "Gemm";
    n.name = name;
    g.nodes.push_back(n);
  }
  auto error_of = [&](const QuantOptions& o) -> std::string {
    try {
      validate_node_filters(g, o);
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 2);
      return e.what();
    }
    return "";
  };
  QuantOptions o;
  o.nodes_to_exclude = {"stem/conv"};
  EXPECT_EQ(error_of(o),
            "quantization.onnx_quant_parameters.nodes_to_exclude: the model has no node named 'stem/conv', did you "
            "mean 'stem/Conv'?");
  o = {};
  o.nodes_to_quantize = {"conv1"};
  EXPECT_EQ(error_of(o), "quantization.onnx_quant_parameters.nodes_to_quantize: the model has no node named 'conv1'");
  // Names that exist, and operators the model does not use, are fine (operator names are checked at load:
  // tests/unit/test_config_rules.cc).
  o = {};
  o.nodes_to_quantize = {"stem/Conv"};
  o.nodes_to_exclude = {"head/Gemm"};
  o.op_types_to_quantize = {"Conv", "MatMul", "Sub"};
  EXPECT_EQ(error_of(o), "");
  // A name of the pre-processed graph (ORT's name of a fused node) counts too.
  ir::Graph pre;
  ir::Node fused;
  fused.op_type = "Gemm";
  fused.name = "/MatMul/MatMulAddFusion";
  pre.nodes.push_back(fused);
  o = {};
  o.nodes_to_exclude = {"/MatMul/MatMulAddFusion"};
  EXPECT_NE(error_of(o), "");
  EXPECT_NO_THROW(validate_node_filters(g, o, &pre));
}
