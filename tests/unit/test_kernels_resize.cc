// Resize / Upsample: hand-computed values from the ONNX coordinate formulas (2x2 -> 4x4, 4x4 -> 3x3), every
// nearest mode, cubic weights, tf_crop_and_resize, keep_aspect_ratio_policy, antialias, and the separable
// implementation against a non-separable reference on random odd shapes.
#include "exec/kernels/resize.h"
#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;

namespace {

ir::Node resize_node(const std::string& mode, const std::string& coord, const std::string& nearest = "",
                     size_t n_in = 3) {
  ir::Node n = make_node("Resize", n_in);
  n.set_attr_string("mode", mode);
  if (!coord.empty()) n.set_attr_string("coordinate_transformation_mode", coord);
  if (!nearest.empty()) n.set_attr_string("nearest_mode", nearest);
  return n;
}

Tensor x2x2() { return ft({1, 1, 2, 2}, {1, 2, 3, 4}); }
Tensor x4x4() {
  Tensor t(DType::Float, {1, 1, 4, 4});
  for (int i = 0; i < 16; ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}
Tensor up2() { return ft({4}, {1, 1, 2, 2}); }

// 2-D output from a 1-D row pattern r (applied to both axes of [[1,2],[3,4]]): v = 1 + r[i]*2 + r[j] for
// nearest index maps / linear positions.
std::vector<double> outer2(const std::vector<double>& rows, const std::vector<double>& cols, double row_step,
                           double base) {
  std::vector<double> v;
  for (double r : rows)
    for (double c : cols) v.push_back(base + r * row_step + c);
  return v;
}

}  // namespace

TEST(KernelsResize, Linear2x2To4x4EachCoordinateMode) {
  // 1-D positions on [0, 1] for 2 -> 4 (scale 2), clamped like edge padding:
  //   half_pixel / pytorch_half_pixel: x = (j + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> 0, .25, .75, 1
  //   align_corners: x = j / 3;  asymmetric: x = j / 2 = 0, .5, 1, 1.5 -> 0, .5, 1, 1
  std::vector<double> hp = {0, 0.25, 0.75, 1}, ac = {0, 1.0 / 3, 2.0 / 3, 1}, as = {0, 0.5, 1, 1};
  struct Case {
    const char* coord;
    std::vector<double> pos;
  } cases[] = {{"half_pixel", hp}, {"pytorch_half_pixel", hp}, {"align_corners", ac}, {"asymmetric", as}};
  for (const auto& c : cases) {
    auto y = run_kernel(resize_node("linear", c.coord), 13, {x2x2(), Tensor(), up2()})[0];
    EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 4}));
    expect_values(y, outer2(c.pos, c.pos, 2, 1), 1e-6);  // value = 1 + 2*row + col
  }
}

TEST(KernelsResize, Linear4x4To3x3BySizes) {
  // scale 3/4: half_pixel x = (j + .5) / .75 - .5 = 1/6, 1.5, 17/6; align_corners x = 1.5 j; asymmetric x = 4j/3.
  std::vector<double> hp = {1.0 / 6, 1.5, 17.0 / 6}, ac = {0, 1.5, 3}, as = {0, 4.0 / 3, 8.0 / 3};
  struct Case {
    const char* coord;
    std::vector<double> pos;
  } cases[] = {{"half_pixel", hp}, {"pytorch_half_pixel", hp}, {"align_corners", ac}, {"asymmetric", as}};
  for (const auto& c : cases) {
    auto y = run_kernel(resize_node("linear", c.coord, "", 4), 13, {x4x4(), Tensor(), Tensor(), it64({4}, {1, 1, 3, 3})})[0];
    EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
    expect_values(y, outer2(c.pos, c.pos, 4, 0), 1e-5);  // value = 4*row + col
  }
}

TEST(KernelsResize, NearestModes2x2To4x4) {
  // Index maps (per axis, 2 -> 4) from x and the rounding rule, clamped into [0, 1].
  struct Case {
    const char *coord, *nearest;
    std::vector<double> idx;
  } cases[] = {
      {"half_pixel", "round_prefer_floor", {0, 0, 1, 1}},     // x = -.25 .25 .75 1.25
      {"half_pixel", "round_prefer_ceil", {0, 0, 1, 1}},
      {"half_pixel", "floor", {0, 0, 0, 1}},
      {"half_pixel", "ceil", {0, 1, 1, 1}},
      {"asymmetric", "round_prefer_floor", {0, 0, 1, 1}},     // x = 0 .5 1 1.5
      {"asymmetric", "round_prefer_ceil", {0, 1, 1, 1}},
      {"asymmetric", "floor", {0, 0, 1, 1}},
      {"asymmetric", "ceil", {0, 1, 1, 1}},
      {"align_corners", "round_prefer_floor", {0, 0, 1, 1}},  // x = 0 1/3 2/3 1
      {"align_corners", "ceil", {0, 1, 1, 1}},
      {"tf_half_pixel_for_nn", "round_prefer_floor", {0, 1, 1, 1}},  // x = .25 .75 1.25 1.75
      {"tf_half_pixel_for_nn", "floor", {0, 0, 1, 1}},
      {"pytorch_half_pixel", "round_prefer_floor", {0, 0, 1, 1}},
  };
  for (const auto& c : cases) {
    auto y = run_kernel(resize_node("nearest", c.coord, c.nearest), 13, {x2x2(), Tensor(), up2()})[0];
    expect_values(y, outer2(c.idx, c.idx, 2, 1));
  }
  // 4x4 -> 3x3 by sizes, tf_half_pixel_for_nn: x = (j + .5) / .75 = 2/3, 2, 10/3 -> 1, 2, 3.
  auto y = run_kernel(resize_node("nearest", "tf_half_pixel_for_nn", "", 4), 13,
                      {x4x4(), Tensor(), Tensor(), it64({4}, {1, 1, 3, 3})})[0];
  expect_values(y, {5, 6, 7, 9, 10, 11, 13, 14, 15});
  // Nearest on an integer type is an exact gather.
  Tensor xi = Tensor::from_vector(DType::Int64, {1, 1, 2, 2}, std::vector<int64_t>{1, 2, 3, 4});
  auto yi = run_kernel(resize_node("nearest", "asymmetric", "floor"), 13, {xi, Tensor(), up2()})[0];
  EXPECT_EQ(yi.dtype(), DType::Int64);
  expect_values(yi, outer2({0, 0, 1, 1}, {0, 0, 1, 1}, 2, 1));
}

TEST(KernelsResize, UpsampleAndResize10) {
  // Upsample-9 nearest, scales [1,1,2,3]: each element repeated 2x3.
  auto up = run_kernel(make_node("Upsample", 2), 9, {x2x2(), ft({4}, {1, 1, 2, 3})})[0];
  EXPECT_EQ(up.shape(), (Shape{1, 1, 4, 6}));
  expect_values(up, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4});
  // Upsample-7 attribute form, linear (asymmetric): row positions 0, .5, 1, 1.
  ir::Node u7 = make_node("Upsample", 1);
  u7.set_attr_string("mode", "linear");
  ir::Attribute s;
  s.name = "scales";
  s.type = ir::AttrType::Floats;
  s.floats = {1, 1, 2, 2};
  u7.attrs.push_back(s);
  expect_values(run_kernel(u7, 7, {x2x2()})[0], outer2({0, .5, 1, 1}, {0, .5, 1, 1}, 2, 1));
  // Resize-10 nearest downsampling, scale 0.6: out 1x2, x = j / .6 -> ceil -> 0, 2.
  ir::Node r10 = make_node("Resize", 2);
  auto d = run_kernel(r10, 10, {ft({1, 1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8}), ft({4}, {1, 1, 0.6f, 0.6f})})[0];
  EXPECT_EQ(d.shape(), (Shape{1, 1, 1, 2}));
  expect_values(d, {1, 3});
}

TEST(KernelsResize, CubicWeightsAndRamp) {
  exec::ResizeSpec s;
  s.mode = exec::ResizeMode::Cubic;
  s.coord = exec::CoordMode::Asymmetric;
  // x = 1.5 (j=3, scale 2): ratio .5, A = -0.75 -> [-0.09375, 0.59375, 0.59375, -0.09375] on indices 0..3.
  auto t = exec::resize_axis_taps(s, 2.0, 8, 16, 0, 1);
  ASSERT_EQ(t.n_taps, 4);
  std::vector<double> w(t.weight.begin() + 12, t.weight.begin() + 16);
  std::vector<int64_t> ix(t.index.begin() + 12, t.index.begin() + 16);
  EXPECT_EQ(ix, (std::vector<int64_t>{0, 1, 2, 3}));
  const double want[] = {-0.09375, 0.59375, 0.59375, -0.09375};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(w[i], want[i], 1e-12);
  // With A = -0.5 cubic convolution reproduces a linear ramp wherever all taps are inside.
  ir::Node n = resize_node("cubic", "half_pixel");
  n.set_attr_float("cubic_coeff_a", -0.5f);
  Tensor ramp(DType::Float, {1, 8});
  for (int i = 0; i < 8; ++i) ramp.data<float>()[i] = static_cast<float>(i);
  auto y = run_kernel(n, 13, {ramp, Tensor(), ft({2}, {1, 2})})[0];
  ASSERT_EQ(y.shape(), (Shape{1, 16}));
  for (int j = 4; j < 12; ++j) EXPECT_NEAR(y.data<float>()[j], (j + 0.5) / 2 - 0.5, 1e-5) << j;
  // exclude_outside renormalises: at x = -0.25 (j=0) only in-range taps 0..2 remain.
  s.coord = exec::CoordMode::HalfPixel;
  s.exclude_outside = true;
  auto te = exec::resize_axis_taps(s, 2.0, 8, 16, 0, 1);
  double sum = 0;
  for (int i = 0; i < 4; ++i) sum += te.weight[i];
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_EQ(te.weight[0], 0.0);  // tap at index -2 excluded
}

TEST(KernelsResize, CropAndResizeAspectPolicyAntialias) {
  // tf_crop_and_resize on axis 1 only (axes attr, opset 18), roi [.5, 1.5], size 3, extrapolation 10:
  // x = .5*3 + j*1*3/2 = 1.5, 3, 4.5 (outside) -> 1.5, 3, 10.
  ir::Node n = resize_node("linear", "tf_crop_and_resize", "", 4);
  n.set_attr_ints("axes", {1});
  n.set_attr_float("extrapolation_value", 10.f);
  auto y = run_kernel(n, 18, {ft({1, 4}, {0, 1, 2, 3}), ft({2}, {0.5f, 1.5f}), Tensor(), it64({1}, {3})})[0];
  expect_values(y, {1.5, 3, 10});
  // keep_aspect_ratio_policy on a 2x4 with sizes 3x3: not_larger -> scale .75 -> 2x3; not_smaller -> 1.5 -> 3x6.
  for (auto [policy, shape] : {std::pair<const char*, Shape>{"not_larger", {1, 1, 2, 3}}, {"not_smaller", {1, 1, 3, 6}}}) {
    ir::Node k = resize_node("nearest", "asymmetric", "", 4);
    k.set_attr_ints("axes", {2, 3});
    k.set_attr_string("keep_aspect_ratio_policy", policy);
    Tensor x(DType::Float, {1, 1, 2, 4});
    EXPECT_EQ(run_kernel(k, 18, {x, Tensor(), Tensor(), it64({2}, {3, 3})})[0].shape(), shape) << policy;
  }
  // Antialiased linear downsampling by 2 (half_pixel): x = 2j + .5, weights .125 .375 .375 .125 on 2j-1..2j+2.
  ir::Node a = resize_node("linear", "half_pixel");
  a.set_attr_int("antialias", 1);
  Tensor ramp(DType::Float, {1, 8});
  for (int i = 0; i < 8; ++i) ramp.data<float>()[i] = static_cast<float>(i);
  auto ya = run_kernel(a, 18, {ramp, Tensor(), ft({2}, {1, 0.5f})})[0];
  ASSERT_EQ(ya.shape(), (Shape{1, 4}));
  EXPECT_NEAR(ya.data<float>()[0], 0.625, 1e-6);
  EXPECT_NEAR(ya.data<float>()[1], 2.5, 1e-6);
  EXPECT_THROW(run_kernel(resize_node("linear", "bogus"), 13, {x2x2(), Tensor(), up2()}), Error);
}

TEST(KernelsResize, SeparableMatchesNaiveRandom) {
  ThreadGuard g;
  std::mt19937 rng(4242);
  const exec::ResizeMode modes[] = {exec::ResizeMode::Nearest, exec::ResizeMode::Linear, exec::ResizeMode::Cubic};
  const exec::CoordMode coords[] = {exec::CoordMode::HalfPixel,      exec::CoordMode::HalfPixelSymmetric,
                                    exec::CoordMode::PytorchHalfPixel, exec::CoordMode::AlignCorners,
                                    exec::CoordMode::Asymmetric,     exec::CoordMode::TfCropAndResize};
  ir::Node node = make_node("Resize", 3);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int it = 0; it < 60; ++it) {
      exec::ResizeSpec s;
      s.mode = modes[it % 3];
      s.coord = coords[(it / 3) % 6];
      s.exclude_outside = it % 4 == 1;
      s.antialias = it % 5 == 2;
      s.extrapolation_value = -7;
      Shape in = {1 + static_cast<int64_t>(rng() % 3), 1 + static_cast<int64_t>(rng() % 7),
                  1 + static_cast<int64_t>(rng() % 9)};
      if (it % 15 == 0) in = {3, 40, 37};  // parallel path
      Shape out;
      std::vector<double> scales, roi;
      for (int64_t d : in) {
        int64_t o = 1 + static_cast<int64_t>(rng() % (2 * d + 2));
        out.push_back(o);
        scales.push_back(static_cast<double>(o) / static_cast<double>(d));
      }
      if (s.coord == exec::CoordMode::TfCropAndResize) roi = {0.1, -0.2, 0.3, 0.9, 1.1, 0.8};
      Tensor x = random_float(in, rng);
      Tensor got = exec::resize_tensor(node, x, s, scales, out, roi);
      Tensor want = exec::resize_naive(x, s, scales, out, roi);
      expect_close(got, want, 1e-4);
    }
  }
}

TEST(KernelsResize, IntegerOutputLengthAndUntouchedAxes) {
  // align_corners uses the integer output length (spec, ONNX Runtime): 4 -> floor(4 * 0.6) = 2 gives
  // x = j * 3 / 1 = 0, 3 -> values 1 and 4 (the ONNX reference's 2.4 - 1 would give 3.142857).
  auto y = run_kernel(resize_node("linear", "align_corners"), 13,
                      {ft({1, 1, 1, 4}, {1, 2, 3, 4}), Tensor(), ft({4}, {1, 1, 1, 0.6f})})[0];
  expect_values(y, {1, 4});
  // Axes with scale 1 are not remapped even where the formula would shift them (tf_half_pixel_for_nn gives
  // x = j + 0.5 there). H: 2 -> 1, x = 0.5 / 0.75 -> row 1; W: x = (j + .5) / 3 -> 0 1 1 1 1 1.
  Tensor x(DType::Float, {1, 2, 2, 2});
  for (int i = 0; i < 8; ++i) x.data<float>()[i] = static_cast<float>(i + 1);
  auto z = run_kernel(resize_node("nearest", "tf_half_pixel_for_nn", "round_prefer_ceil"), 13,
                      {x, Tensor(), ft({4}, {1, 1, 0.75f, 3})})[0];
  EXPECT_EQ(z.shape(), (Shape{1, 2, 1, 6}));
  expect_values(z, {3, 4, 4, 4, 4, 4, 7, 8, 8, 8, 8, 8});
}

// half_pixel_symmetric in double (linear / cubic): exact on dyadic scales. The spec's order of operations
// (offset + (x + 0.5) / scale - 0.5) gave 1.0000000000000002 for 7 -> scale 0.5 and 0.5000000000000004 for
// 14 -> 0.75 (the review's cases); the rewritten quotient gives the exact 1 and 1/2.
TEST(KernelsResize, HalfPixelSymmetricExactOnDyadicScales) {
  using exec::CoordMode;
  EXPECT_EQ(exec::resize_source_coord(CoordMode::HalfPixelSymmetric, 0, 0.5, 7, 3, 0, 1), 1.0);
  EXPECT_EQ(exec::resize_source_coord(CoordMode::HalfPixelSymmetric, 2, 0.5, 7, 3, 0, 1), 5.0);
  EXPECT_EQ(exec::resize_source_coord(CoordMode::HalfPixelSymmetric, 0, 0.75, 14, 10, 0, 1), 0.5);
  EXPECT_EQ(exec::resize_source_coord(CoordMode::HalfPixelSymmetric, 0, 0.25, 14, 3, 0, 1), 2.5);
  // Equal to the spec's formula up to rounding on a non-dyadic case (13 -> 0.6: out 7, out_f 7.8).
  const double out_f = 0.6 * 13, offset = 13 / 2.0 * (1 - 7 / out_f);
  for (int j = 0; j < 7; ++j)
    EXPECT_NEAR(exec::resize_source_coord(CoordMode::HalfPixelSymmetric, j, 0.6, 13, 7, 0, 1),
                offset + (j + 0.5) / 0.6 - 0.5, 1e-12);
}

// Nearest mode: float32 coordinates in ONNX Runtime's order of operations, and its 1e-6 tie window (values
// measured with onnxruntime 1.32; tests/python/test_kernels_data_ort.py sweeps them against ORT itself).
TEST(KernelsResize, NearestFloat32CoordinatesAndTieWindow) {
  using exec::CoordMode;
  using exec::NearestMode;
  // half_pixel 5 -> 3 at the float32 scale 0.6f: (1.5f / 0.6f) - 0.5f = 2 exactly (in double: 1.9999999).
  EXPECT_EQ(exec::resize_source_coord_f32(CoordMode::HalfPixel, 1, 0.6f, 5, 3, 0, 1), 2.0f);
  exec::ResizeSpec s;
  s.coord = CoordMode::HalfPixel;
  s.nearest = NearestMode::Floor;
  EXPECT_EQ(exec::resize_nearest_source(s, 1, 0.6f, 5, 3, 0, 1), 2);
  // asymmetric 7 -> 2 (scale 2/7 as float32): 1 / 0.2857143f = 3.4999998, inside the tie window.
  s.coord = CoordMode::Asymmetric;
  s.nearest = NearestMode::RoundPreferCeil;
  EXPECT_EQ(exec::resize_nearest_source(s, 1, 2.0 / 7, 7, 2, 0, 1), 4);
  s.nearest = NearestMode::RoundPreferFloor;
  EXPECT_EQ(exec::resize_nearest_source(s, 1, 2.0 / 7, 7, 2, 0, 1), 3);
  EXPECT_EQ(exec::resize_nearest_index(NearestMode::RoundPreferCeil, 0.5 - 9.5e-7, 1), 1);
  EXPECT_EQ(exec::resize_nearest_index(NearestMode::RoundPreferCeil, 0.5 - 1.07e-6, 1), 0);
  EXPECT_EQ(exec::resize_nearest_index(NearestMode::RoundPreferFloor, 10.5 + 9.5e-7, 1), 10);
  EXPECT_EQ(exec::resize_nearest_index(NearestMode::RoundPreferFloor, 10.5 + 1.9e-6, 1), 11);
  EXPECT_EQ(exec::resize_nearest_index(NearestMode::Floor, 3 - 2.4e-7, 1), 2);  // no window for floor / ceil
  // half_pixel_symmetric 7 -> 0.5 (ceil): ORT's float offset lands on 1, 3, 5.
  s.coord = CoordMode::HalfPixelSymmetric;
  s.nearest = NearestMode::Ceil;
  for (int j = 0; j < 3; ++j) EXPECT_EQ(exec::resize_nearest_source(s, j, 0.5, 7, 3, 0, 1), 2 * j + 1);
}
