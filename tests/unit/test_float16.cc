// Float16 models: the execution copy (ir::passes::upcast_float16, exec::Session), float16 type propagation,
// float16 scales (quant::compute_scale_zp) and double -> half rounding. Expected values computed by hand / numpy.
#include <gtest/gtest.h>

#include <cmath>
#include <iomanip>
#include <utility>

#include "core/dtype.h"
#include "exec/session.h"
#include "ir/passes/passes.h"
#include "passes_test_util.h"
#include "quant/qparams.h"

namespace oq {
namespace {

using test_passes::mk;
using test_passes::vi;

// x (float16) -> Mul(x, c16) -> m -> Cast(to=FLOAT16) -> h -> Relu -> y (float16).
ir::Model half_model() {
  ir::Model m;
  m.ir_version = 10;
  m.opsets = {{"", 21}};
  m.graph.inputs = {vi("x", {1, 4}, DType::Float16)};
  m.graph.outputs = {vi("y", {1, 4}, DType::Float16)};
  m.graph.add_initializer("c", Tensor::from_vector(DType::Float, {4}, std::vector<float>{1.f, 0.5f, -2.f, 3.f})
                                   .cast(DType::Float16));
  ir::Node cast = mk("Cast", {"m"}, {"h"}, "to16");
  cast.set_attr_int("to", 10);
  m.graph.nodes = {mk("Mul", {"x", "c"}, {"m"}, "mul"), cast, mk("Relu", {"h"}, {"y"}, "relu")};
  return m;
}

TEST(Float16, DoubleToHalfRoundsOnce) {
  // 1 + 2^-11 is the tie between 1 and 1 + 2^-10: even -> 1. Just above it -> up. Via float the value just above
  // would round first to the tie (float has 24 bits) and then to 1.
  EXPECT_EQ(double_to_half(1.0 + std::ldexp(1.0, -11)), 0x3c00);
  EXPECT_EQ(double_to_half(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)), 0x3c01);
  EXPECT_EQ(double_to_half(-0.1), 0xae66);  // numpy: np.float16(-0.1).view(np.uint16) == 0xae66
  EXPECT_EQ(double_to_half(6e-8), 0x0001);   // smallest subnormal 5.96e-8
  EXPECT_EQ(double_to_half(2e-8), 0x0000);
  EXPECT_FLOAT_EQ(round_to_half(0.1), 0.0999755859375f);
}

TEST(Float16, DoubleToHalfJustBelowTheOverflowThreshold) {
  // Expected bits from numpy 2.4.6 (.venv): np.array(d, np.float64).astype(np.float16).view(np.uint16). 65520 is
  // halfway from 65504 (0x7bff, the largest half) to 2^16: below it numpy gives 65504, from it on inf; the float
  // nearest to 65519.99999999 is 65520.0f, so a conversion via float overflowed.
  const std::pair<double, uint16_t> cases[] = {
      {65519.99999999, 0x7bff}, {65519.999, 0x7bff},  {-65519.9999999, 0xfbff},
      {std::nextafter(65520.0, 0.0), 0x7bff},       {65520.0, 0x7c00},     {-65520.0, 0xfc00},
      {65520.00000001, 0x7c00}, {65519.0, 0x7bff},  {65512.0, 0x7bff},     {65504.0, 0x7bff},
      {65535.0, 0x7c00},        {100000.0, 0x7c00}, {-1e300, 0xfc00},
  };
  for (const auto& [d, want] : cases) EXPECT_EQ(double_to_half(d), want) << std::setprecision(17) << d;
  EXPECT_EQ(round_to_half(65519.99999999), 65504.0f);
}

TEST(Float16, ScaleZeroPoint) {
  // ORT (numpy, float16 range): rmin -1.0, rmax 2.5 -> scale float16(3.5 / 255) = 0.01372528..., zero point
  // round(-128 + 1 / (3.5 / 255)) = round(-55.142857) = -55 (from the double scale).
  auto s = quant::compute_scale_zp(-1.0, 2.5, -128, 127, false, std::nullopt, DType::Float16);
  EXPECT_EQ(s.scale, round_to_half(3.5 / 255.0));
  EXPECT_EQ(double_to_half(s.scale), 0x2307);  // np.float16(3.5/255).view(np.uint16)
  EXPECT_EQ(s.zero_point, -55);
  // Range ends are float16 values first: 0.1 -> 0.0999755859375.
  auto t = quant::compute_scale_zp(0.0, 0.1, -127, 127, true, std::nullopt, DType::Float16);
  EXPECT_EQ(t.scale, round_to_half(0.0999755859375 * 2 / 254));
  // A scale that rounds to 0 in float16 -> 1, zero point 0; a subnormal one is kept.
  auto z = quant::compute_scale_zp(0.0, 1e-6, 0, 255, false, std::nullopt, DType::Float16);
  EXPECT_EQ(z.scale, 1.f);
  EXPECT_EQ(z.zero_point, 0);
  auto sub = quant::compute_scale_zp(0.0, 1e-4, 0, 255, false, std::nullopt, DType::Float16);
  EXPECT_EQ(sub.scale, round_to_half(1e-4 / 255));
  EXPECT_LT(sub.scale, 6.1e-5f);  // below the smallest normal float16
}

TEST(Float16, WeightParamsFromHalfInitializer) {
  Tensor w = Tensor::from_vector(DType::Float, {2, 2}, std::vector<float>{0.3f, -0.7f, 0.1f, 0.2f}).cast(DType::Float16);
  auto q = quant::weight_params(w, DType::Int8, true, 0);
  EXPECT_EQ(q.scale_type, DType::Float16);
  ASSERT_EQ(q.scale.size(), 2u);
  // |w| max of row 0 is float16(0.7) = 0.7001953125.
  EXPECT_EQ(q.scale[0], round_to_half(2 * 0.7001953125 / 254));
  Tensor qt = quant::quantize_tensor(w, q);
  // -0.7001953125 / scale[0] (float32 division) = -127.02... -> -127.
  EXPECT_EQ(qt.data<int8_t>()[1], -127);
}

TEST(Float16, UpcastKeepsNamesAndRounding) {
  ir::Model m = half_model();
  auto half = ir::passes::float16_values(m.graph);
  for (const char* n : {"x", "c", "m", "h", "y"}) EXPECT_TRUE(half.count(n)) << n;
  ASSERT_TRUE(ir::passes::has_float16(m));
  EXPECT_TRUE(ir::passes::computes_in_float16(m));
  ir::Model up = m;
  EXPECT_GT(ir::passes::upcast_float16(up), 0u);
  EXPECT_FALSE(half.empty());
  EXPECT_EQ(up.graph.inputs[0].dtype, DType::Float);
  EXPECT_EQ(up.graph.outputs[0].dtype, DType::Float);
  EXPECT_EQ(up.graph.find_initializer("c")->tensor.dtype(), DType::Float);
  ASSERT_EQ(up.graph.nodes.size(), 4u);  // the Cast to float16 is followed by a Cast to float writing "h"
  EXPECT_EQ(up.graph.nodes[2].op_type, "Cast");
  EXPECT_EQ(up.graph.nodes[2].outputs[0], "h");
  EXPECT_EQ(up.graph.nodes[2].attr_int("to", 0), 1);
  EXPECT_EQ(up.graph.nodes[1].attr_int("to", 0), 10);
  EXPECT_FALSE(ir::passes::has_float16(ir::Model{}));

  // The session: a float32 feed is rounded to float16 (0.1 -> 0.0999755859375), the product is rounded to float16 by
  // the model's Cast, the output comes back as float16; observers see float32 under the model's names.
  exec::Session s(m);
  Tensor x = Tensor::from_vector(DType::Float, {1, 4}, std::vector<float>{0.1f, 1.f, 1.f, 0.3333f});
  std::map<std::string, DType> seen;
  exec::RunOptions ro;
  ro.observer = [&](const std::string& n, const Tensor& v) { seen[n] = v.dtype(); };
  auto out = s.run({{"x", x}}, ro);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].dtype(), DType::Float16);
  std::vector<double> y = out[0].to_doubles();
  EXPECT_EQ(y[0], static_cast<double>(round_to_half(0.1)));
  EXPECT_EQ(y[1], 0.5);
  EXPECT_EQ(y[2], 0.0);
  EXPECT_EQ(y[3], static_cast<double>(round_to_half(round_to_half(0.3333f) * 3.0)));
  EXPECT_EQ(seen["m"], DType::Float);
  EXPECT_EQ(seen["h"], DType::Float);
  EXPECT_EQ(seen["y"], DType::Float);
  // A float16 feed is taken as it is.
  auto out16 = s.run({{"x", x.cast(DType::Float16)}});
  EXPECT_EQ(out16[0].to_doubles(), y);
}

}  // namespace
}  // namespace oq
