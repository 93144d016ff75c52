// Resize (opsets 10-21) and Upsample (7-9) building blocks, exposed for tests.
// Interpolation is separable: linear / cubic resize runs one 1-D pass per resized axis; nearest resize is a
// pure gather (exact for every dtype). Linear / cubic coordinates are computed in double (the ONNX reference);
// nearest ones in float32 in ONNX Runtime's order of operations, so that ties pick ORT's pixel.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::exec {

enum class ResizeMode { Nearest, Linear, Cubic };
enum class CoordMode { HalfPixel, HalfPixelSymmetric, PytorchHalfPixel, AlignCorners, Asymmetric,
                       TfHalfPixelForNN, TfCropAndResize };
// Simple = Upsample / Resize-10 behaviour (ONNX Runtime): downsampling ceil(x), upsampling truncation.
enum class NearestMode { RoundPreferFloor, RoundPreferCeil, Floor, Ceil, Simple };

struct ResizeSpec {
  ResizeMode mode = ResizeMode::Nearest;
  CoordMode coord = CoordMode::HalfPixel;
  NearestMode nearest = NearestMode::RoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation_value = 0.0;
  bool antialias = false;
};

// Source coordinate of output position j on one axis (in: input length, out: output length).
double resize_source_coord(CoordMode m, int64_t j, double scale, int64_t in, int64_t out, double roi_start,
                           double roi_end);
// The same in float32, as ONNX Runtime computes it (scale: the model's float32 scale); used by nearest mode.
float resize_source_coord_f32(CoordMode m, int64_t j, float scale, int64_t in, int64_t out, float roi_start,
                              float roi_end);
// Nearest input index (before clamping) for a source coordinate.
int64_t resize_nearest_index(NearestMode m, double x, double scale);
// Nearest mode: the input index output j reads (clamped into [0, in)), or -1 where tf_crop_and_resize
// extrapolates; coordinates from resize_source_coord_f32.
int64_t resize_nearest_source(const ResizeSpec& s, int64_t j, double scale, int64_t in, int64_t out,
                              double roi_start, double roi_end);

// An output extent from a scale as onnxruntime's kernel computes it (upsamplebase.h): the float32 product
// scale * in, or with keep_aspect_ratio_policy (`round`) that product rounded half away from zero; the caller
// truncates it to an integer after checking its range (int64_t(0.7f * 10.0f) = 7, where floor(0.7 * 10) is 6).
// Shape inference and the kernel both use it.
inline float resize_scaled_extent(double scale, int64_t in, bool round = false) {
  const float p = static_cast<float>(scale) * static_cast<float>(in);
  return round ? std::round(p) : p;
}

// Interpolation taps of one axis: for output j, n_taps (index, weight) pairs; extrapolated[j] = use the
// extrapolation value (tf_crop_and_resize outside the input).
struct AxisTaps {
  int64_t n_taps = 0;
  std::vector<int64_t> index;  // out * n_taps, clamped into [0, in)
  std::vector<double> weight;  // out * n_taps
  std::vector<uint8_t> extrapolated;
};
AxisTaps resize_axis_taps(const ResizeSpec& s, double scale, int64_t in, int64_t out, double roi_start,
                          double roi_end);

// Resize x (any numeric dtype) to out_shape; scales and roi (2*rank entries, or empty) are per axis.
Tensor resize_tensor(const ir::Node& node, const Tensor& x, const ResizeSpec& s, const std::vector<double>& scales,
                     const Shape& out_shape, const std::vector<double>& roi);
// Non-separable reference: each output is the full tensor-product sum over every axis' taps (float x only).
Tensor resize_naive(const Tensor& x, const ResizeSpec& s, const std::vector<double>& scales, const Shape& out_shape,
                    const std::vector<double>& roi);

}  // namespace oq::exec
