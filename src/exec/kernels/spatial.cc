#include "exec/kernels/spatial.h"

#include "core/alloc.h"
#include "exec/kernel.h"

namespace oq::exec {

SpatialAttrs parse_spatial(const ir::Node& node, bool with_ceil) {
  SpatialAttrs a;
  std::string ap = node.attr_string("auto_pad", "NOTSET");
  if (ap == "NOTSET" || ap.empty()) a.auto_pad = AutoPad::NotSet;
  else if (ap == "SAME_UPPER") a.auto_pad = AutoPad::SameUpper;
  else if (ap == "SAME_LOWER") a.auto_pad = AutoPad::SameLower;
  else if (ap == "VALID") a.auto_pad = AutoPad::Valid;
  else kfail(node, "unknown auto_pad '{}'", ap);
  a.kernel_shape = node.attr_ints("kernel_shape");
  a.strides = node.attr_ints("strides");
  a.dilations = node.attr_ints("dilations");
  a.pads = node.attr_ints("pads");
  if (with_ceil) a.ceil_mode = node.attr_int("ceil_mode", 0) != 0;
  for (int64_t v : a.kernel_shape)
    if (v <= 0) kfail(node, "kernel_shape must be positive");
  for (int64_t v : a.strides)
    if (v <= 0) kfail(node, "strides must be positive");
  for (int64_t v : a.dilations)
    if (v <= 0) kfail(node, "dilations must be positive");
  for (int64_t v : a.pads)
    if (v < 0) kfail(node, "pads must be non-negative");
  return a;
}

static std::vector<int64_t> or_ones(const ir::Node& node, const char* what, const std::vector<int64_t>& v,
                                    size_t n) {
  if (v.empty()) return std::vector<int64_t>(n, 1);
  if (v.size() != n) kfail(node, "{} has {} values, expected {} (one per spatial axis)", what, v.size(), n);
  return v;
}

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

void check_output_size(const ir::Node& node, const Shape& shape) {
  const int64_t n = shape_numel(shape), max = max_tensor_bytes();
  if (n > max / static_cast<int64_t>(sizeof(float)))
    kfail(node, "output of shape {} is too large to allocate (limit {} bytes)", shape_str(shape), max);
}

Geometry forward_geometry(const ir::Node& node, const SpatialAttrs& a, const std::vector<int64_t>& in,
                          const std::vector<int64_t>& kernel) {
  size_t n = in.size();
  if (n == 0) kfail(node, "input must have at least one spatial axis");
  if (kernel.size() != n) kfail(node, "kernel has {} axes but the input has {} spatial axes", kernel.size(), n);
  Geometry g;
  g.kernel = kernel;
  g.strides = or_ones(node, "strides", a.strides, n);
  g.dilations = or_ones(node, "dilations", a.dilations, n);
  g.pads_begin.assign(n, 0);
  g.pads_end.assign(n, 0);
  g.out.assign(n, 0);
  if (a.auto_pad == AutoPad::NotSet && !a.pads.empty()) {
    if (a.pads.size() != 2 * n) kfail(node, "pads has {} values, expected {}", a.pads.size(), 2 * n);
    for (size_t i = 0; i < n; ++i) g.pads_begin[i] = a.pads[i], g.pads_end[i] = a.pads[i + n];
  }
  for (size_t i = 0; i < n; ++i) {
    int64_t ek = (kernel[i] - 1) * g.dilations[i] + 1, s = g.strides[i];
    switch (a.auto_pad) {
      case AutoPad::SameUpper:
      case AutoPad::SameLower: {
        g.out[i] = ceil_div(in[i], s);
        int64_t total = std::max<int64_t>(0, (g.out[i] - 1) * s + ek - in[i]);
        int64_t small = total / 2, big = total - small;
        g.pads_begin[i] = a.auto_pad == AutoPad::SameUpper ? small : big;
        g.pads_end[i] = a.auto_pad == AutoPad::SameUpper ? big : small;
        break;
      }
      case AutoPad::Valid:
      case AutoPad::NotSet: {
        int64_t span = in[i] + g.pads_begin[i] + g.pads_end[i] - ek;
        if (span < 0) {
          g.out[i] = 0;
        } else if (a.ceil_mode) {
          g.out[i] = ceil_div(span, s) + 1;
          // The last window must start inside the input or the begin padding.
          if ((g.out[i] - 1) * s >= in[i] + g.pads_begin[i]) --g.out[i];
        } else {
          g.out[i] = span / s + 1;
        }
        break;
      }
    }
    if (g.out[i] <= 0)
      kfail(node, "spatial axis {} of size {} gives an empty output (kernel {}, dilation {}, pads {}+{})", i,
            in[i], kernel[i], g.dilations[i], g.pads_begin[i], g.pads_end[i]);
  }
  return g;
}

Geometry transpose_geometry(const ir::Node& node, const SpatialAttrs& a, const std::vector<int64_t>& in,
                            const std::vector<int64_t>& kernel, const std::vector<int64_t>& output_padding,
                            const std::vector<int64_t>& output_shape) {
  size_t n = in.size();
  if (n == 0) kfail(node, "input must have at least one spatial axis");
  if (kernel.size() != n) kfail(node, "kernel has {} axes but the input has {} spatial axes", kernel.size(), n);
  Geometry g;
  g.kernel = kernel;
  g.strides = or_ones(node, "strides", a.strides, n);
  g.dilations = or_ones(node, "dilations", a.dilations, n);
  g.pads_begin.assign(n, 0);
  g.pads_end.assign(n, 0);
  g.out.assign(n, 0);
  std::vector<int64_t> op(n, 0);
  if (!output_padding.empty()) {
    if (output_padding.size() != n) kfail(node, "output_padding has {} values, expected {}", output_padding.size(), n);
    op = output_padding;
  }
  std::vector<int64_t> os;
  if (!output_shape.empty()) {
    if (output_shape.size() == n) os = output_shape;
    else if (output_shape.size() == n + 2) os.assign(output_shape.begin() + 2, output_shape.end());
    else kfail(node, "output_shape has {} values, expected {}", output_shape.size(), n);
  }
  bool explicit_pads = a.auto_pad == AutoPad::NotSet && !a.pads.empty();
  if (explicit_pads) {
    if (a.pads.size() != 2 * n) kfail(node, "pads has {} values, expected {}", a.pads.size(), 2 * n);
    for (size_t i = 0; i < n; ++i) g.pads_begin[i] = a.pads[i], g.pads_end[i] = a.pads[i + n];
  }
  for (size_t i = 0; i < n; ++i) {
    int64_t ek = (kernel[i] - 1) * g.dilations[i] + 1, s = g.strides[i];
    int64_t full = s * (in[i] - 1) + op[i] + ek;  // output size with no padding
    bool same = a.auto_pad == AutoPad::SameUpper || a.auto_pad == AutoPad::SameLower;
    if (same) {
      // The spec's output in * stride, with ONNX Runtime's clamp (conv_transpose_attributes.h): a negative
      // total padding (kernel + output_padding < stride) becomes 0, so without output_shape the output is
      // `full` (shorter than in * stride: in 4, kernel 1, stride 3 gives 10, as ORT and onnx shape inference,
      // not the spec's 12), and with an output_shape larger than `full` the data starts at 0 (the rest is
      // bias) instead of being shifted by a negative begin pad.
      int64_t total = std::max<int64_t>(0, full - (os.empty() ? in[i] * s : os[i]));
      g.pads_begin[i] = a.auto_pad == AutoPad::SameUpper ? total / 2 : total - total / 2;
      g.pads_end[i] = total - g.pads_begin[i];
      g.out[i] = os.empty() ? full - total : os[i];
    } else if (!os.empty()) {
      // The spec's "else" branch of output_shape: the larger half of an odd total padding at the start. Given
      // `pads` are ignored ("If output_shape is specified pads values are ignored"; ONNX Runtime too).
      int64_t total = full - os[i];
      g.pads_begin[i] = std::max<int64_t>(total, 0) - std::max<int64_t>(total, 0) / 2;
      g.pads_end[i] = total - g.pads_begin[i];
      g.out[i] = os[i];
    } else {
      g.out[i] = full - g.pads_begin[i] - g.pads_end[i];
    }
    if (g.out[i] <= 0) kfail(node, "spatial axis {} gives an empty output ({})", i, g.out[i]);
    // Effective end pad (output_padding / output_shape folded in): out = s*(in-1) + ek - begin - end.
    g.pads_end[i] = s * (in[i] - 1) + ek - g.pads_begin[i] - g.out[i];
  }
  return g;
}

}  // namespace oq::exec
