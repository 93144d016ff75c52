// Detection kernels (NonMaxSuppression, GridSample, RoiAlign): hand-computed values, ordering and tie rules,
// opset rules and errors naming the node. Random odd shapes are compared with onnxruntime in
// tests/python/test_kernels_detection_ort.py.
#include "core/dtype.h"
#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;

namespace {

bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

ir::Node nms_node(size_t n_in, int64_t center_point_box = 0) {
  ir::Node n = make_node("NonMaxSuppression", n_in);
  if (center_point_box) n.set_attr_int("center_point_box", center_point_box);
  return n;
}

// Four boxes [y1, x1, y2, x2] with known overlaps (areas 4, 4, 4, 1):
//   A = [0,0,2,2]  B = [0,1,2,3]  C = [1,1,3,3]  D = [10,10,11,11]
//   IoU(A,B) = 2/6 = 1/3, IoU(A,C) = 1/7, IoU(B,C) = 2/6 = 1/3, D overlaps nothing.
Tensor four_boxes() { return ft({1, 4, 4}, {0, 0, 2, 2, 0, 1, 2, 3, 1, 1, 3, 3, 10, 10, 11, 11}); }
// The same boxes as [x_center, y_center, width, height].
Tensor four_boxes_center() { return ft({1, 4, 4}, {1, 1, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 10.5f, 10.5f, 1, 1}); }
Tensor four_scores() { return ft({1, 1, 4}, {0.9f, 0.8f, 0.7f, 0.6f}); }

std::vector<int64_t> triples(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::Int64);
  EXPECT_EQ(t.rank(), 2);
  if (t.rank() == 2) {
    EXPECT_EQ(t.dim(1), 3);
  }
  return t.to_int64s();
}

}  // namespace

// ---------------------------------------------------------------------------------------- NonMaxSuppression
TEST(KernelsDetection, NmsSuppressesByKnownIou) {
  const Tensor mx = it64({1}, {10});
  // iou 0.5: no pair exceeds it, every box kept in score order.
  auto y = run_kernel(nms_node(4), 11, {four_boxes(), four_scores(), mx, ft({1}, {0.5f})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3}));
  // iou 0.3: B (1/3 with A) goes, C (1/7 with A) stays; C's 1/3 with the suppressed B does not count.
  y = run_kernel(nms_node(4), 11, {four_boxes(), four_scores(), mx, ft({1}, {0.3f})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 0, 0, 0, 2, 0, 0, 3}));
  // The same with center_point_box = 1, opset 10.
  y = run_kernel(nms_node(4, 1), 10, {four_boxes_center(), four_scores(), mx, ft({1}, {0.3f})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 0, 0, 0, 2, 0, 0, 3}));
  // iou 0.1: C (1/7 > 0.1) goes as well.
  y = run_kernel(nms_node(4), 11, {four_boxes(), four_scores(), mx, ft({}, {0.1f})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 0, 0, 0, 3}));
  // score_threshold 0.65 (strictly greater) drops D; max_output_boxes_per_class 2 stops after A, C.
  y = run_kernel(nms_node(5), 11, {four_boxes(), four_scores(), mx, ft({1}, {0.3f}), ft({1}, {0.65f})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 0, 0, 0, 2}));
  y = run_kernel(nms_node(5), 11, {four_boxes(), four_scores(), mx, ft({1}, {0.3f}), ft({1}, {0.6f})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 0, 0, 0, 2}));
  y = run_kernel(nms_node(4), 11, {four_boxes(), four_scores(), it64({}, {2}), ft({1}, {0.3f})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 0, 0, 0, 2}));
}

TEST(KernelsDetection, NmsOptionalInputsAbsentOrEmpty) {
  // No max_output_boxes_per_class (absent or empty): 0, nothing selected, shape [0, 3].
  auto y = run_kernel(nms_node(2), 11, {four_boxes(), four_scores()})[0];
  EXPECT_EQ(shape_str(y.shape()), "[0,3]");
  y = run_kernel(nms_node(3), 11, {four_boxes(), four_scores(), Tensor(DType::Int64, {0})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[0,3]");
  y = run_kernel(nms_node(3), 11, {four_boxes(), four_scores(), it64({1}, {-3})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[0,3]");
  // iou_threshold absent = 0: any overlap suppresses (A, B, C all overlap A or each other).
  y = run_kernel(nms_node(3), 11, {four_boxes(), four_scores(), it64({1}, {10})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 0, 0, 0, 3}));
  // score_threshold given with iou_threshold omitted (empty name -> null input).
  y = run_kernel(nms_node(5), 11, {four_boxes(), four_scores(), it64({1}, {10}), Tensor(), ft({1}, {0.75f})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 0}));
}

TEST(KernelsDetection, NmsTiesBatchesAndClasses) {
  // Identical boxes and equal scores: the lowest index wins a tie; iou 1.0 never suppresses (IoU > 1 is
  // impossible), so all come out, by score then index.
  Tensor b = ft({1, 4, 4}, {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 5, 5, 6, 6});
  Tensor s = ft({1, 1, 4}, {0.5f, 0.9f, 0.5f, 0.9f});
  auto y = run_kernel(nms_node(3), 11, {b, s, it64({1}, {10})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 1, 0, 0, 3}));
  y = run_kernel(nms_node(4), 11, {b, s, it64({1}, {10}), ft({1}, {1.0f})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 1, 0, 0, 3, 0, 0, 0, 0, 0, 2}));
  // Two batches x two classes: rows ordered batch, class, then selection order.
  Tensor b2 = ft({2, 2, 4}, {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 3, 3, 4, 4});
  Tensor s2 = ft({2, 2, 2}, {0.1f, 0.2f, 0.7f, 0.6f, 0.3f, 0.4f, 0.9f, 0.95f});
  y = run_kernel(nms_node(4), 11, {b2, s2, it64({1}, {5}), ft({1}, {0.5f})})[0];
  // batch 0: the boxes coincide, only the best of each class stays; batch 1: disjoint, both kept.
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0}));
  // Flipped corners ([y2, x2, y1, x1]) are the same boxes.
  Tensor flipped = ft({1, 4, 4}, {2, 2, 0, 0, 2, 3, 0, 1, 3, 3, 1, 1, 11, 11, 10, 10});
  y = run_kernel(nms_node(4), 11, {flipped, four_scores(), it64({1}, {10}), ft({1}, {0.3f})})[0];
  EXPECT_EQ(triples(y), (std::vector<int64_t>{0, 0, 0, 0, 0, 2, 0, 0, 3}));
}

TEST(KernelsDetection, NmsErrorsNameTheNode) {
  EXPECT_TRUE(has(kernel_error(nms_node(2, 2), 11, {four_boxes(), four_scores()}), "t_NonMaxSuppression"));
  EXPECT_TRUE(has(kernel_error(nms_node(2, 2), 11, {four_boxes(), four_scores()}), "center_point_box"));
  std::string e = kernel_error(nms_node(4), 11, {four_boxes(), four_scores(), it64({1}, {3}), ft({1}, {1.5f})});
  EXPECT_TRUE(has(e, "t_NonMaxSuppression") && has(e, "iou_threshold must be in [0, 1]")) << e;
  e = kernel_error(nms_node(2), 11, {ft({1, 4, 3}, std::vector<float>(12)), four_scores()});
  EXPECT_TRUE(has(e, "t_NonMaxSuppression") && has(e, "boxes must have shape")) << e;
  e = kernel_error(nms_node(2), 11, {four_boxes(), ft({1, 1, 3}, {1, 2, 3})});
  EXPECT_TRUE(has(e, "disagree")) << e;
  e = kernel_error(nms_node(3), 11, {four_boxes(), four_scores(), Tensor::from_vector(DType::Int32, {1}, std::vector<int32_t>{3})});
  EXPECT_TRUE(has(e, "max_output_boxes_per_class must be INT64")) << e;
}

// ------------------------------------------------------------------------------------------------ GridSample
namespace {

ir::Node gs_node(const std::string& mode, const std::string& pad, int64_t align) {
  ir::Node n = make_node("GridSample", 2);
  if (!mode.empty()) n.set_attr_string("mode", mode);
  if (!pad.empty()) n.set_attr_string("padding_mode", pad);
  n.set_attr_int("align_corners", align);
  return n;
}
Tensor img2x2() { return ft({1, 1, 2, 2}, {1, 2, 3, 4}); }
// Grid of points (x, y) as [1, 1, n, 2].
Tensor points(std::vector<float> xy) { return ft({1, 1, static_cast<int64_t>(xy.size() / 2), 2}, xy); }

}  // namespace

TEST(KernelsDetection, GridSampleBilinearOn2x2) {
  // align_corners 1: (-1,-1) is pixel (0,0), (1,-1) pixel (0,1), (0,0) the centre, (0.5,0) x = 0.75, y = 0.5.
  auto y = run_kernel(gs_node("bilinear", "zeros", 1), 16, {img2x2(), points({-1, -1, 1, -1, 0, 0, 0.5f, 0})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[1,1,1,4]");
  expect_values(y, {1, 2, 2.5, 0.5 * 1.75 + 0.5 * 3.75});
  // align_corners 0: (-1,-1) is the corner (-0.5,-0.5) of pixel (0,0): zeros gives 1/4 of it, border and
  // reflection the pixel itself; (0,0) is still the centre.
  y = run_kernel(gs_node("bilinear", "zeros", 0), 16, {img2x2(), points({-1, -1, 0, 0, 1, 1})})[0];
  expect_values(y, {0.25, 2.5, 1.0});
  y = run_kernel(gs_node("linear", "border", 0), 20, {img2x2(), points({-1, -1, 0, 0, 3, 3, -5, 0.0f})})[0];
  expect_values(y, {1, 2.5, 4, 0.5 * 1 + 0.5 * 3});
  // Reflection, align_corners 0: x = 2.25 (g = 1.75) reflects about 1.5 to 0.75; y = -0.5 is on the border, its
  // tap -1 reflects to row 0.
  y = run_kernel(gs_node("linear", "reflection", 0), 20, {img2x2(), points({1.75f, -1})})[0];
  expect_values(y, {0.25 * 1 + 0.75 * 2});
}

TEST(KernelsDetection, GridSampleNearestAndCubic) {
  // Nearest, align_corners 0: x = 0.6 -> 1, y = -0.1 -> 0; x = y = 0.5 rounds half to even -> 0; x = 1.5 -> 2 is
  // outside: zeros 0, border the last column.
  auto y = run_kernel(gs_node("nearest", "zeros", 0), 16, {img2x2(), points({0.1f, -0.6f, 0, 0, 1, -1})})[0];
  expect_values(y, {2, 1, 0});
  y = run_kernel(gs_node("nearest", "border", 0), 20, {img2x2(), points({1, -1})})[0];
  expect_values(y, {2});
  // Cubic on a ramp 0 1 2 3 (Keys' kernel reproduces a linear function from interior taps): x = 1.5 -> 1.5; the
  // height-1 axis sits exactly on its pixel (weight 1 on tap 0).
  Tensor ramp = ft({1, 1, 1, 4}, {0, 1, 2, 3});
  y = run_kernel(gs_node("bicubic", "zeros", 1), 16, {ramp, points({0, 0})})[0];
  expect_values(y, {1.5}, 1e-6);
  // Cubic + border at x = -0.25 (align_corners 1): taps -2..1 clamp to pixels 0 0 0 1 of [5, 1, 2, 3], weights
  // at t = 0.75; the tap weight of pixel 1 is c3(0.75) = -0.10546875, so 5 * (1 - c3) + c3 = 5.421875 (ORT and
  // PyTorch; onnx.reference clamps the location to 0 first and gives 5).
  y = run_kernel(gs_node("cubic", "border", 1), 20, {ft({1, 1, 1, 4}, {5, 1, 2, 3}), points({-1 - 0.25f / 1.5f, 0})})[0];
  expect_values(y, {5.421875}, 1e-6);
}

TEST(KernelsDetection, GridSampleOtherRanksAtOpset20) {
  // 5-D: trilinear at the centre of a 2x2x2 cube holding 0..7 is their mean.
  Tensor cube(DType::Float, {1, 2, 2, 2, 2});
  for (int i = 0; i < 16; ++i) cube.data<float>()[i] = static_cast<float>(i);
  auto y = run_kernel(gs_node("linear", "zeros", 1), 20, {cube, ft({1, 1, 1, 1, 3}, {0, 0, 0})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[1,2,1,1,1]");
  expect_values(y, {3.5, 11.5});
  // Grid components are x (innermost axis) first: (x=1, y=-1, z=-1) is element [0][0][1].
  y = run_kernel(gs_node("nearest", "zeros", 1), 20, {cube, ft({1, 1, 1, 1, 3}, {1, -1, -1})})[0];
  expect_values(y, {1, 9});
  // 3-D (one spatial axis): x = 1.25 between 10 and 20.
  y = run_kernel(gs_node("linear", "zeros", 1), 20, {ft({1, 1, 3}, {0, 10, 20}), ft({1, 1, 1}, {0.25f})})[0];
  expect_values(y, {12.5});
}

TEST(KernelsDetection, GridSampleErrorsNameTheNode) {
  const std::vector<Tensor> in = {img2x2(), points({0, 0})};
  auto err = [&](const ir::Node& n, int opset, const std::vector<Tensor>& i) { return kernel_error(n, opset, i); };
  std::string e = err(gs_node("linear", "zeros", 0), 16, in);
  EXPECT_TRUE(has(e, "t_GridSample") && has(e, "bilinear, nearest or bicubic")) << e;
  e = err(gs_node("bilinear", "zeros", 0), 20, in);
  EXPECT_TRUE(has(e, "t_GridSample") && has(e, "linear, nearest or cubic")) << e;
  e = err(gs_node("", "wrap", 0), 20, in);
  EXPECT_TRUE(has(e, "padding_mode")) << e;
  e = err(gs_node("", "", 2), 20, in);
  EXPECT_TRUE(has(e, "align_corners")) << e;
  e = err(gs_node("", "", 0), 16, {ft({1, 1, 3}, {0, 1, 2}), ft({1, 1, 1}, {0})});
  EXPECT_TRUE(has(e, "t_GridSample") && has(e, "4-D")) << e;
  e = err(gs_node("", "", 0), 20, {img2x2(), ft({1, 1, 1, 3}, {0, 0, 0})});
  EXPECT_TRUE(has(e, "grid must have shape")) << e;
  e = err(gs_node("", "", 0), 20, {ft({2, 1, 2, 2}, std::vector<float>(8)), points({0, 0})});
  EXPECT_TRUE(has(e, "grid must have shape")) << e;
}

// -------------------------------------------------------------------------------------------------- RoiAlign
namespace {

ir::Node roi_node(const std::string& mode, int64_t oh, int64_t ow, int64_t sr, const std::string& ctm = "",
                  float scale = 1.f) {
  ir::Node n = make_node("RoiAlign", 3);
  n.set_attr_string("mode", mode);
  n.set_attr_int("output_height", oh);
  n.set_attr_int("output_width", ow);
  n.set_attr_int("sampling_ratio", sr);
  if (scale != 1.f) n.set_attr_float("spatial_scale", scale);
  if (!ctm.empty()) n.set_attr_string("coordinate_transformation_mode", ctm);
  return n;
}
// [N, 1, 8, 8] with X[n, 0, y, x] = 10 y + x + 100 n: bilinear sampling of it is exact inside the image.
Tensor ramp(int64_t n = 1) {
  Tensor t(DType::Float, {n, 1, 8, 8});
  for (int64_t b = 0; b < n; ++b)
    for (int64_t y = 0; y < 8; ++y)
      for (int64_t x = 0; x < 8; ++x) t.data<float>()[(b * 8 + y) * 8 + x] = static_cast<float>(10 * y + x + 100 * b);
  return t;
}

}  // namespace

TEST(KernelsDetection, RoiAlignAvgOnRampIsTheBinCentre) {
  // ROI [x1,y1,x2,y2] = [1,1,5,5], 2x2 bins of 2x2 pixels. output_half_pixel (opset 10's only behaviour):
  // bins centred at 2 and 4 -> 10 y + x. half_pixel shifts by -0.5: centres 1.5 and 3.5.
  const Tensor rois = ft({1, 4}, {1, 1, 5, 5});
  const Tensor b0 = it64({1}, {0});
  for (int64_t sr : {0, 1, 2, 3}) {
    auto y = run_kernel(roi_node("avg", 2, 2, sr), 10, {ramp(), rois, b0})[0];
    EXPECT_EQ(shape_str(y.shape()), "[1,1,2,2]");
    expect_values(y, {22, 24, 42, 44}, 1e-6);
    y = run_kernel(roi_node("avg", 2, 2, sr, "output_half_pixel"), 16, {ramp(), rois, b0})[0];
    expect_values(y, {22, 24, 42, 44}, 1e-6);
    y = run_kernel(roi_node("avg", 2, 2, sr), 16, {ramp(), rois, b0})[0];  // half_pixel is opset 16's default
    expect_values(y, {16.5, 18.5, 36.5, 38.5}, 1e-6);
  }
  // spatial_scale 0.5 on doubled coordinates, and the second image of the batch (+100).
  auto y = run_kernel(roi_node("avg", 2, 2, 2, "output_half_pixel", 0.5f), 16,
                      {ramp(2), ft({2, 4}, {2, 2, 10, 10, 2, 2, 10, 10}), it64({2}, {1, 0})})[0];
  expect_values(y, {122, 124, 142, 144, 22, 24, 42, 44}, 1e-6);
  // Float16 computed in float: same values, rounded to half.
  y = run_kernel(roi_node("avg", 2, 2, 2, "output_half_pixel"), 16,
                 {ramp().cast(DType::Float16), rois.cast(DType::Float16), b0})[0];
  EXPECT_EQ(y.dtype(), DType::Float16);
  expect_values(y, {22, 24, 42, 44}, 1e-3);
}

TEST(KernelsDetection, RoiAlignMaxTakesTheLargestWeightedCorner) {
  // One sample at (2.5, 2.5): corners 22, 23, 32, 33 with weights 1/4 each. ORT / onnx.reference max mode keeps
  // max(w_i x_i) = 33 / 4, not the interpolated 27.5.
  auto y = run_kernel(roi_node("max", 1, 1, 1, "output_half_pixel"), 16, {ramp(), ft({1, 4}, {1, 1, 4, 4}), it64({1}, {0})})[0];
  expect_values(y, {33.0 / 4}, 1e-6);
  // Two samples in x (2.0 and 3.0 at y = 2.5, weights 1/2 on rows 2 and 3): max(0.5 * 33) = 16.5.
  y = run_kernel(roi_node("max", 1, 1, 0, "output_half_pixel"), 16, {ramp(), ft({1, 4}, {1.5f, 2, 3.5f, 3}), it64({1}, {0})})[0];
  // sampling ratio ceil(2/1) = 2 in x, ceil(1/1) = 1 in y: x samples 2.0, 3.0; y sample 2.5.
  expect_values(y, {0.5 * 33}, 1e-6);
  // avg of the same: mean of the interpolated values 27 and 28.
  y = run_kernel(roi_node("avg", 1, 1, 0, "output_half_pixel"), 16, {ramp(), ft({1, 4}, {1.5f, 2, 3.5f, 3}), it64({1}, {0})})[0];
  expect_values(y, {27.5}, 1e-6);
}

TEST(KernelsDetection, RoiAlignErrorsNameTheNode) {
  const std::vector<Tensor> in = {ramp(), ft({1, 4}, {1, 1, 5, 5}), it64({1}, {0})};
  std::string e = kernel_error(roi_node("min", 1, 1, 0), 16, in);
  EXPECT_TRUE(has(e, "t_RoiAlign") && has(e, "'avg' or 'max'")) << e;
  e = kernel_error(roi_node("avg", 1, 1, -1), 16, in);
  EXPECT_TRUE(has(e, "t_RoiAlign") && has(e, "sampling_ratio")) << e;
  e = kernel_error(roi_node("avg", -1, 1, 0), 16, in);
  EXPECT_TRUE(has(e, "output_height")) << e;
  e = kernel_error(roi_node("avg", 1, 1, 0, "align_corners"), 16, in);
  EXPECT_TRUE(has(e, "coordinate_transformation_mode")) << e;
  e = kernel_error(roi_node("avg", 1, 1, 0, "half_pixel"), 10, in);
  EXPECT_TRUE(has(e, "t_RoiAlign") && has(e, "needs opset 16")) << e;
  e = kernel_error(roi_node("avg", 1, 1, 0), 16, {ramp(), ft({1, 4}, {1, 1, 5, 5}), it64({1}, {1})});
  EXPECT_TRUE(has(e, "t_RoiAlign") && has(e, "out of range [0, 1)")) << e;
  e = kernel_error(roi_node("avg", 1, 1, 0), 16, {ramp(), ft({1, 3}, {1, 1, 5}), it64({1}, {0})});
  EXPECT_TRUE(has(e, "rois must have shape")) << e;
  e = kernel_error(roi_node("avg", 1, 1, 0), 16, {ramp(), ft({1, 4}, {1, 1, 5, 5}), it64({2}, {0, 0})});
  EXPECT_TRUE(has(e, "batch_indices must have shape")) << e;
}
