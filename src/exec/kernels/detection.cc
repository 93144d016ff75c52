// Detection kernels: NonMaxSuppression (opset 10, 11) and RoiAlign (opset 10, 16).
//
// Both follow onnx.reference (onnx/reference/ops/op_non_max_suppression.py, op_roi_align.py), which are ports of
// onnxruntime's CPU kernels, in the same float arithmetic, so results match ORT bit for bit in the usual case.
// They are straightforward loops and are their own naive reference. Deliberate choices where the reference or
// ORT is undefined or differs (docs/conformance.md, "Detection kernels"):
//  - NonMaxSuppression: candidates sorted by score descending, equal scores by box index ascending (ORT's
//    priority queue order); a NaN score sorts after every number (ORT's order is undefined there). An empty
//    max_output_boxes_per_class / iou_threshold / score_threshold tensor counts as absent (ORT reads an
//    undefined value for an empty max_output_boxes_per_class).
//  - RoiAlign opset 10 has no coordinate_transformation_mode and behaves as output_half_pixel (as ORT; the
//    onnx reference applies half_pixel there). mode=max takes, per sample point, the largest of the four
//    weighted corner values w_i * x_i, then the max over the bin's samples — ORT's and the reference's
//    definition (not the max of the interpolated samples). Malformed ROIs (end before start with half_pixel)
//    give 0 as in the reference (ORT raises an integer overflow error).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "exec/kernels/elementwise.h"
#include "exec/kernels/strided.h"

namespace oq::exec {
namespace {

// ------------------------------------------------------------------------------------------ NonMaxSuppression

struct NmsBox {
  float score;
  int64_t index;
};

// Whether box i suppresses box j (IoU > threshold), in float like the reference / ORT.
bool suppress_by_iou(const float* boxes, int64_t i, int64_t j, bool center_point_box, float iou_threshold) {
  const float* b1 = boxes + 4 * i;
  const float* b2 = boxes + 4 * j;
  float x1_min, x1_max, x2_min, x2_max, y1_min, y1_max, y2_min, y2_max;
  auto min_max = [](float a, float b, float& lo, float& hi) {
    if (a >= b) lo = b, hi = a;
    else lo = a, hi = b;
  };
  if (!center_point_box) {  // [y1, x1, y2, x2], corners in either order
    min_max(b1[1], b1[3], x1_min, x1_max);
    min_max(b2[1], b2[3], x2_min, x2_max);
    min_max(b1[0], b1[2], y1_min, y1_max);
    min_max(b2[0], b2[2], y2_min, y2_max);
  } else {  // [x_center, y_center, width, height]
    const float w1 = b1[2] / 2, h1 = b1[3] / 2, w2 = b2[2] / 2, h2 = b2[3] / 2;
    x1_min = b1[0] - w1, x1_max = b1[0] + w1, x2_min = b2[0] - w2, x2_max = b2[0] + w2;
    y1_min = b1[1] - h1, y1_max = b1[1] + h1, y2_min = b2[1] - h2, y2_max = b2[1] + h2;
  }
  const float ix_min = std::max(x1_min, x2_min), ix_max = std::min(x1_max, x2_max);
  if (ix_max <= ix_min) return false;
  const float iy_min = std::max(y1_min, y2_min), iy_max = std::min(y1_max, y2_max);
  if (iy_max <= iy_min) return false;
  const float inter = (ix_max - ix_min) * (iy_max - iy_min);
  if (inter <= 0.f) return false;
  const float area1 = (x1_max - x1_min) * (y1_max - y1_min);
  const float area2 = (x2_max - x2_min) * (y2_max - y2_min);
  const float uni = area1 + area2 - inter;
  if (area1 <= 0.f || area2 <= 0.f || uni <= 0.f) return false;
  return inter / uni > iou_threshold;
}

// First element of an optional scalar input (null / empty = absent).
const Tensor* nms_scalar(const ir::Node& node, const std::vector<const Tensor*>& in, size_t i, DType want,
                         const char* what) {
  const Tensor* t = optional_input(in, i);
  if (!t) return nullptr;
  if (t->dtype() != want) kfail(node, "{} must be {}, got {}", what, dtype_name(want), dtype_name(t->dtype()));
  return t;
}

std::unique_ptr<Kernel> make_nms(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const int64_t cpb = node.attr_int("center_point_box", 0);
  if (cpb != 0 && cpb != 1) kfail(node, "attribute 'center_point_box' must be 0 or 1, got {}", cpb);
  const bool center_point_box = cpb == 1;
  return fn_kernel([node, center_point_box](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& boxes = input_at(node, in, 0);
    const Tensor& scores = input_at(node, in, 1);
    if (boxes.dtype() != DType::Float || scores.dtype() != DType::Float)
      kfail(node, "boxes and scores must be float, got {} and {}", dtype_name(boxes.dtype()),
            dtype_name(scores.dtype()));
    if (boxes.rank() != 3 || boxes.dim(2) != 4)
      kfail(node, "boxes must have shape [num_batches, spatial_dimension, 4], got {}", shape_str(boxes.shape()));
    if (scores.rank() != 3)
      kfail(node, "scores must have shape [num_batches, num_classes, spatial_dimension], got {}",
            shape_str(scores.shape()));
    if (scores.dim(0) != boxes.dim(0) || scores.dim(2) != boxes.dim(1))
      kfail(node, "boxes {} and scores {} disagree on num_batches or spatial_dimension", shape_str(boxes.shape()),
            shape_str(scores.shape()));
    int64_t max_out = 0;
    float iou_threshold = 0.f, score_threshold = 0.f;
    if (const Tensor* t = nms_scalar(node, in, 2, DType::Int64, "max_output_boxes_per_class"))
      max_out = std::max<int64_t>(t->data<int64_t>()[0], 0);
    if (const Tensor* t = nms_scalar(node, in, 3, DType::Float, "iou_threshold")) {
      iou_threshold = t->data<float>()[0];
      if (!(iou_threshold >= 0.f && iou_threshold <= 1.f))
        kfail(node, "iou_threshold must be in [0, 1], got {}", iou_threshold);
    }
    const Tensor* st = nms_scalar(node, in, 4, DType::Float, "score_threshold");
    if (st) score_threshold = st->data<float>()[0];

    const int64_t batches = boxes.dim(0), classes = scores.dim(1), n = boxes.dim(1);
    // One list of selected box indices per (batch, class), filled in parallel, concatenated in order.
    std::vector<std::vector<int64_t>> selected(static_cast<size_t>(batches * classes));
    if (max_out > 0 && n > 0) {
      parallel_for(batches * classes, 1, [&](int64_t lo, int64_t hi) {
        std::vector<NmsBox> cand;
        for (int64_t bc = lo; bc < hi; ++bc) {
          const int64_t b = bc / classes;
          const float* bx = boxes.data<float>() + b * n * 4;
          const float* sc = scores.data<float>() + bc * n;
          cand.clear();
          for (int64_t i = 0; i < n; ++i)
            if (!st || sc[i] > score_threshold) cand.push_back({sc[i], i});
          // Score descending, NaN last; ties by index ascending (a strict weak order, so the sort is exact).
          std::sort(cand.begin(), cand.end(), [](const NmsBox& a, const NmsBox& c) {
            const bool an = std::isnan(a.score), cn = std::isnan(c.score);
            if (an != cn) return cn;
            if (!an && a.score != c.score) return a.score > c.score;
            return a.index < c.index;
          });
          std::vector<int64_t>& sel = selected[static_cast<size_t>(bc)];
          for (const NmsBox& c : cand) {
            if (static_cast<int64_t>(sel.size()) >= max_out) break;
            bool keep = true;
            for (int64_t s : sel)
              if (suppress_by_iou(bx, c.index, s, center_point_box, iou_threshold)) {
                keep = false;
                break;
              }
            if (keep) sel.push_back(c.index);
          }
        }
      });
    }
    int64_t total = 0;
    for (const auto& s : selected) total += static_cast<int64_t>(s.size());
    Tensor y(DType::Int64, {total, 3});
    int64_t* p = y.data<int64_t>();
    for (int64_t bc = 0; bc < batches * classes; ++bc)
      for (int64_t idx : selected[static_cast<size_t>(bc)]) {
        *p++ = bc / classes;
        *p++ = bc % classes;
        *p++ = idx;
      }
    out[0] = std::move(y);
  });
}

// --------------------------------------------------------------------------------------------------- RoiAlign

struct RoiAlignAttrs {
  bool max_mode = false;
  int64_t out_h = 1, out_w = 1, sampling_ratio = 0;
  float spatial_scale = 1.f;
  bool half_pixel = false;
};

// One bilinear sample: four flat positions in the H x W plane and their weights.
template <typename T>
struct RoiSample {
  int64_t pos[4] = {0, 0, 0, 0};
  T w[4] = {0, 0, 0, 0};
};

// y[r, c, ph, pw] for every ROI, in T (float or double), as onnx.reference's roi_align_forward.
template <typename T>
void roi_align_typed(const RoiAlignAttrs& a, const T* x, int64_t channels, int64_t height, int64_t width,
                     const T* rois, const int64_t* batch, int64_t num_rois, T* y) {
  const int64_t ph_n = a.out_h, pw_n = a.out_w;
  parallel_for(num_rois, 1, [&](int64_t lo, int64_t hi) {
    std::vector<RoiSample<T>> pre;
    for (int64_t r = lo; r < hi; ++r) {
      const T* roi = rois + r * 4;
      const T offset = a.half_pixel ? T(0.5) : T(0);
      const T start_w = roi[0] * a.spatial_scale - offset, start_h = roi[1] * a.spatial_scale - offset;
      const T end_w = roi[2] * a.spatial_scale - offset, end_h = roi[3] * a.spatial_scale - offset;
      T roi_w = end_w - start_w, roi_h = end_h - start_h;
      if (!a.half_pixel) {  // malformed ROIs forced to 1x1
        roi_w = std::max(roi_w, T(1));
        roi_h = std::max(roi_h, T(1));
      }
      const T bin_h = roi_h / static_cast<T>(ph_n), bin_w = roi_w / static_cast<T>(pw_n);
      const int64_t grid_h = a.sampling_ratio > 0 ? a.sampling_ratio
                                                  : static_cast<int64_t>(std::ceil(roi_h / static_cast<T>(ph_n)));
      const int64_t grid_w = a.sampling_ratio > 0 ? a.sampling_ratio
                                                  : static_cast<int64_t>(std::ceil(roi_w / static_cast<T>(pw_n)));
      const int64_t count = std::max<int64_t>(grid_h * grid_w, 1);
      const int64_t gh = std::max<int64_t>(grid_h, 0), gw = std::max<int64_t>(grid_w, 0);
      // Sample positions and weights, shared by every channel: [ph][pw][iy][ix].
      pre.assign(static_cast<size_t>(ph_n * pw_n * gh * gw), RoiSample<T>{});
      size_t k = 0;
      for (int64_t ph = 0; ph < ph_n; ++ph)
        for (int64_t pw = 0; pw < pw_n; ++pw)
          for (int64_t iy = 0; iy < gh; ++iy) {
            const T yy = start_h + static_cast<T>(ph) * bin_h +
                         static_cast<T>(iy + 0.5) * bin_h / static_cast<T>(grid_h);
            for (int64_t ix = 0; ix < gw; ++ix, ++k) {
              const T xx = start_w + static_cast<T>(pw) * bin_w +
                           static_cast<T>(ix + 0.5) * bin_w / static_cast<T>(grid_w);
              T yv = yy, xv = xx;
              if (yv < T(-1) || yv > static_cast<T>(height) || xv < T(-1) || xv > static_cast<T>(width))
                continue;  // outside the feature map: all weights 0
              yv = std::max(yv, T(0));
              xv = std::max(xv, T(0));
              int64_t y_low = static_cast<int64_t>(yv), x_low = static_cast<int64_t>(xv), y_high, x_high;
              if (y_low >= height - 1) {
                y_high = y_low = height - 1;
                yv = static_cast<T>(y_low);
              } else {
                y_high = y_low + 1;
              }
              if (x_low >= width - 1) {
                x_high = x_low = width - 1;
                xv = static_cast<T>(x_low);
              } else {
                x_high = x_low + 1;
              }
              const T ly = yv - static_cast<T>(y_low), lx = xv - static_cast<T>(x_low);
              const T hy = T(1) - ly, hx = T(1) - lx;
              RoiSample<T>& s = pre[k];
              s.pos[0] = y_low * width + x_low, s.pos[1] = y_low * width + x_high;
              s.pos[2] = y_high * width + x_low, s.pos[3] = y_high * width + x_high;
              s.w[0] = hy * hx, s.w[1] = hy * lx, s.w[2] = ly * hx, s.w[3] = ly * lx;
            }
          }
      for (int64_t c = 0; c < channels; ++c) {
        const T* plane = x + (batch[r] * channels + c) * height * width;
        T* out = y + (r * channels + c) * ph_n * pw_n;
        size_t q = 0;
        for (int64_t b = 0; b < ph_n * pw_n; ++b) {
          T v = 0;
          if (!a.max_mode) {
            for (int64_t i = 0; i < gh * gw; ++i, ++q) {
              const RoiSample<T>& s = pre[q];
              v += s.w[0] * plane[s.pos[0]] + s.w[1] * plane[s.pos[1]] + s.w[2] * plane[s.pos[2]] +
                   s.w[3] * plane[s.pos[3]];
            }
            v /= static_cast<T>(count);
          } else {
            for (int64_t i = 0; i < gh * gw; ++i, ++q) {
              const RoiSample<T>& s = pre[q];
              const T m = std::max(std::max(std::max(s.w[0] * plane[s.pos[0]], s.w[1] * plane[s.pos[1]]),
                                            s.w[2] * plane[s.pos[2]]),
                                   s.w[3] * plane[s.pos[3]]);
              v = i == 0 ? m : std::max(v, m);
            }
          }
          out[b] = v;
        }
      }
    }
  });
}

std::unique_ptr<Kernel> make_roi_align(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  RoiAlignAttrs a;
  const std::string mode = node.attr_string("mode", "avg");
  if (mode != "avg" && mode != "max") kfail(node, "attribute 'mode' must be 'avg' or 'max', got '{}'", mode);
  a.max_mode = mode == "max";
  a.out_h = node.attr_int("output_height", 1);
  a.out_w = node.attr_int("output_width", 1);
  if (a.out_h < 0 || a.out_w < 0)
    kfail(node, "attributes 'output_height' and 'output_width' must be >= 0, got {} and {}", a.out_h, a.out_w);
  a.sampling_ratio = node.attr_int("sampling_ratio", 0);
  if (a.sampling_ratio < 0) kfail(node, "attribute 'sampling_ratio' must be >= 0, got {}", a.sampling_ratio);
  a.spatial_scale = node.attr_float("spatial_scale", 1.f);
  if (!std::isfinite(a.spatial_scale))
    kfail(node, "attribute 'spatial_scale' must be finite, got {}", a.spatial_scale);
  if (ki.opset >= 16) {
    const std::string ctm = node.attr_string("coordinate_transformation_mode", "half_pixel");
    if (ctm != "half_pixel" && ctm != "output_half_pixel")
      kfail(node, "attribute 'coordinate_transformation_mode' must be 'half_pixel' or 'output_half_pixel', got '{}'",
            ctm);
    a.half_pixel = ctm == "half_pixel";
  } else if (node.has_attr("coordinate_transformation_mode")) {
    kfail(node, "attribute 'coordinate_transformation_mode' needs opset 16 (the model imports opset {})", ki.opset);
  }
  return fn_kernel([node, a](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const Tensor& rois = input_at(node, in, 1);
    const Tensor& bi = input_at(node, in, 2);
    const DType t = x.dtype();
    if (t != DType::Float && t != DType::Double && t != DType::Float16)
      kfail(node, "X must be float, double or float16, got {}", dtype_name(t));
    if (rois.dtype() != t) kfail(node, "rois must have X's type {}, got {}", dtype_name(t), dtype_name(rois.dtype()));
    if (bi.dtype() != DType::Int64) kfail(node, "batch_indices must be int64, got {}", dtype_name(bi.dtype()));
    if (x.rank() != 4) kfail(node, "X must have shape [N, C, H, W], got {}", shape_str(x.shape()));
    if (rois.rank() != 2 || rois.dim(1) != 4)
      kfail(node, "rois must have shape [num_rois, 4], got {}", shape_str(rois.shape()));
    if (bi.rank() != 1 || bi.dim(0) != rois.dim(0))
      kfail(node, "batch_indices must have shape [num_rois] = [{}], got {}", rois.dim(0), shape_str(bi.shape()));
    const int64_t num_rois = rois.dim(0), batches = x.dim(0);
    if (num_rois > 0 && x.dim(1) > 0 && (x.dim(2) == 0 || x.dim(3) == 0))
      kfail(node, "X has an empty spatial dimension {}: nothing to sample", shape_str(x.shape()));
    const int64_t* batch = bi.data<int64_t>();
    for (int64_t r = 0; r < num_rois; ++r)
      if (batch[r] < 0 || batch[r] >= batches)
        kfail(node, "batch_indices value {} at index {} is out of range [0, {})", batch[r], r, batches);
    const Shape ys = {num_rois, x.dim(1), a.out_h, a.out_w};
    if (t == DType::Double) {
      Tensor y(DType::Double, ys);
      roi_align_typed<double>(a, x.data<double>(), x.dim(1), x.dim(2), x.dim(3), rois.data<double>(), batch,
                              num_rois, y.data<double>());
      out[0] = std::move(y);
      return;
    }
    // Float16 is computed in float and rounded back.
    const Tensor xf = t == DType::Float ? x : x.cast(DType::Float);
    const Tensor rf = t == DType::Float ? rois : rois.cast(DType::Float);
    Tensor y(DType::Float, ys);
    roi_align_typed<float>(a, xf.data<float>(), x.dim(1), x.dim(2), x.dim(3), rf.data<float>(), batch, num_rois,
                           y.data<float>());
    out[0] = t == DType::Float ? std::move(y) : y.cast(t);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(NonMaxSuppression, 10, kMaxOpset, make_nms);
OQ_REGISTER_KERNEL(RoiAlign, 10, kMaxOpset, make_roi_align);

}  // namespace oq::exec
