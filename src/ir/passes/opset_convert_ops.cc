// Default-domain opset up-conversion: rewrites that change the node structure (Softmax family, Resize,
// Upsample) or its outputs (BatchNormalization, Dropout).
#include "ir/passes/opset_convert.h"

#include <algorithm>
#include <cmath>

#include "exec/kernels/resize.h"

namespace oq::ir::passes::detail {

// Softmax / LogSoftmax / Hardmax before 13 coerce the input to 2-D at `axis` (default 1) and normalise each
// row; from 13 on they work along the single dimension `axis` (default -1).
bool OpsetConverter::convert_softmax(Node& n, std::vector<Node>& after) {
  if (!crosses(13)) return false;
  const int64_t axis = n.attr_int("axis", 1);
  const std::string x = n.input(0), y = n.outputs.empty() ? "" : n.outputs[0];
  if (x.empty() || y.empty()) cannot(n, "missing input or output");
  if (auto r = shapes_->rank(x)) {
    const int64_t a = axis < 0 ? axis + *r : axis;
    if (a == *r - 1) {  // the coerced 2-D rows are exactly the last dimension
      n.set_attr_int("axis", -1);
      return true;
    }
  }
  Node flat;
  flat.op_type = "Flatten";
  flat.name = node_name(n, "flatten");
  flat.inputs = {x};
  flat.outputs = {tensor_name(n, "flat")};
  flat.set_attr_int("axis", axis);
  // The Reshape back reads the input's shape: a constant when the inferred shape is fully static (ORT's constant
  // folding turns onnx's Shape node into one), else a Shape node (also for an empty dim: Reshape reads a 0 as
  // "copy the dim" of its 2-D input).
  std::string target;
  Node shape;
  auto s = shapes_->static_shape(x);
  if (s && std::find(s->begin(), s->end(), 0) == s->end()) {
    target = const_i64(n, "shape", *s);
  } else {
    shape.op_type = "Shape";
    shape.name = node_name(n, "shape");
    shape.inputs = {x};
    shape.outputs = {tensor_name(n, "shape")};
    target = shape.outputs[0];
  }
  Node reshape;
  reshape.op_type = "Reshape";
  reshape.name = node_name(n, "reshape");
  reshape.inputs = {tensor_name(n, "2d"), target};
  reshape.outputs = {y};
  n.inputs[0] = flat.outputs[0];
  n.outputs[0] = reshape.inputs[0];
  n.set_attr_int("axis", -1);
  emit(std::move(flat));
  if (!shape.op_type.empty()) emit(std::move(shape));
  after.push_back(std::move(reshape));
  return true;
}

bool OpsetConverter::convert_resize(Node& n) {
  bool changed = false;
  if (crosses(11)) {
    // Resize-10 (X, scales) sampled with asymmetric coordinates and, for nearest, floor rounding.
    const std::string scales = n.input(1);
    const std::string mode = n.attr_string("mode", "nearest");
    const std::string roi = to_ >= 13 ? std::string() : [&] {
      std::string name = tensor_name(n, "roi");
      g_->add_initializer(name, Tensor(DType::Float, {0}));
      return name;
    }();
    n.inputs = {n.input(0), roi, scales};
    n.set_attr_string("coordinate_transformation_mode", "asymmetric");
    if (mode == "nearest") legacy_nearest_rounding(n, false);
    changed = true;
  }
  if (crosses(13) && n.attr_string("coordinate_transformation_mode", "half_pixel") == "tf_half_pixel_for_nn") {
    // tf_half_pixel_for_nn = half_pixel + 0.5; round(c + 0.5) is expressible for two rounding modes. Linear / cubic
    // sample at (x + 0.5) / scale too, which no opset-13 mode does (half_pixel is 0.5 input pixel off).
    const std::string mode = n.attr_string("mode", "nearest");
    if (mode != "nearest")
      cannot(n, "coordinate_transformation_mode 'tf_half_pixel_for_nn' with mode '" + mode +
                    "' (samples at (x + 0.5) / scale; no mode of opset 13 or later does)");
    const std::string nm = n.attr_string("nearest_mode", "round_prefer_floor");
    if (nm == "round_prefer_ceil" || nm == "ceil") {
      tf_half_pixel_gathers(n, nm == "ceil");
      return true;
    }
    n.set_attr_string("coordinate_transformation_mode", "half_pixel");
    n.set_attr_string("nearest_mode", nm == "floor" ? "round_prefer_ceil" : "ceil");
    changed = true;
  }
  return changed;
}

// Resize-11 nearest with tf_half_pixel_for_nn and nearest_mode round_prefer_ceil / ceil samples input index
// clamp(nearest((x + 0.5) / scale), 0, in - 1) along each axis whose scale is not 1 (onnxruntime maps an axis of
// scale 1 one to one), computed in float32 as onnxruntime does; no opset-13 mode rounds that way. With constant
// scales / sizes and static extents on those axes the map is a constant: one Gather per axis, exact.
void OpsetConverter::tf_half_pixel_gathers(Node& n, bool ceil) {
  const std::string what = std::string("coordinate_transformation_mode 'tf_half_pixel_for_nn' with nearest_mode '") +
                           (ceil ? "ceil" : "round_prefer_ceil") + "'";
  const Tensor* sc = n.input(2).empty() ? nullptr : constant(n.input(2));
  const Tensor* sz = n.input(3).empty() ? nullptr : constant(n.input(3));
  if (sc && sc->numel() == 0) sc = nullptr;
  const TensorType* xt = shapes_->find(n.input(0));
  if ((!sc && !sz) || !xt || !xt->shape)
    cannot(n, what + ": the scales / sizes are not constant or the rank of the input is unknown");
  const std::vector<Dim>& dims = *xt->shape;
  const std::vector<double> scales = sc ? sc->to_doubles() : std::vector<double>{};
  const std::vector<int64_t> sizes = sc || !sz ? std::vector<int64_t>{} : sz->to_int64s();
  if ((sc ? scales.size() : sizes.size()) != dims.size()) cannot(n, what + ": scales / sizes do not match the rank");
  std::vector<std::pair<int64_t, std::vector<int64_t>>> maps;  // axis, input index per output index
  for (size_t a = 0; a < dims.size(); ++a) {
    if (sc && static_cast<float>(scales[a]) == 1.0f) continue;
    if (!dims[a].known() || dims[a].value == 0)
      cannot(n, what + fmt::format(": axis {} of the input has no static extent (the index map must be constant)", a));
    const int64_t in = dims[a].value;
    const float s = sc ? static_cast<float>(scales[a]) : static_cast<float>(sizes[a]) / static_cast<float>(in);
    if (s == 1.0f) continue;
    const float len = s * static_cast<float>(in);
    if (!(s > 0) || !(len < 0x1p24f)) cannot(n, what + fmt::format(": scale {} on axis {}", s, a));
    const int64_t out = sc ? static_cast<int64_t>(len) : sizes[a];
    // The kernel's own index rule (float32 coordinates and onnxruntime's 1e-6 tie window for round_prefer_ceil).
    exec::ResizeSpec spec;
    spec.coord = exec::CoordMode::TfHalfPixelForNN;
    spec.nearest = ceil ? exec::NearestMode::Ceil : exec::NearestMode::RoundPreferCeil;
    std::vector<int64_t> idx(static_cast<size_t>(out));
    for (int64_t x = 0; x < out; ++x) idx[x] = exec::resize_nearest_source(spec, x, s, in, out, 0.0, 1.0);
    maps.emplace_back(static_cast<int64_t>(a), std::move(idx));
  }
  n.attrs.clear();
  if (maps.empty()) {  // every scale 1: onnxruntime copies the input
    n.op_type = "Identity";
    n.inputs = {n.input(0)};
    return;
  }
  std::string x = n.input(0);
  for (size_t k = 0; k + 1 < maps.size(); ++k) {
    Node gather;
    gather.op_type = "Gather";
    gather.name = node_name(n, fmt::format("gather_axis{}", maps[k].first));
    gather.inputs = {x, const_i64(n, fmt::format("index_axis{}", maps[k].first), maps[k].second)};
    gather.outputs = {tensor_name(n, fmt::format("axis{}", maps[k].first))};
    gather.set_attr_int("axis", maps[k].first);
    x = gather.outputs[0];
    emit(std::move(gather));
  }
  n.op_type = "Gather";
  n.inputs = {x, const_i64(n, fmt::format("index_axis{}", maps.back().first), maps.back().second)};
  n.set_attr_int("axis", maps.back().first);
}

// Upsample-7 (scales attribute), Upsample-9 (scales input); deprecated at 10 in favour of Resize.
bool OpsetConverter::convert_upsample(Node& n) {
  if (to_ < 9 || (to_ == 9 && !n.has_attr("scales"))) return false;
  std::string mode = n.attr_string("mode", "nearest");
  if (mode == "bilinear") mode = "linear";
  if (mode != "nearest" && mode != "linear") cannot(n, "unknown mode '" + mode + "'");
  std::string scales = n.input(1);
  if (n.has_attr("scales")) {
    scales = const_f32(n, "scales", n.attr_floats("scales"));
    n.remove_attr("scales");
  }
  if (scales.empty()) cannot(n, "no scales");
  if (to_ == 9) {
    n.inputs = {n.input(0), scales};
    return true;
  }
  n.op_type = "Resize";
  n.attrs.clear();
  n.set_attr_string("mode", mode);
  if (to_ == 10) {
    n.inputs = {n.input(0), scales};
    return true;
  }
  std::string roi;
  if (to_ < 13) {
    roi = tensor_name(n, "roi");
    g_->add_initializer(roi, Tensor(DType::Float, {0}));
  }
  n.inputs = {n.input(0), roi, scales};
  n.set_attr_string("coordinate_transformation_mode", "asymmetric");
  if (mode == "nearest") legacy_nearest_rounding(n, true);
  return true;
}

void OpsetConverter::legacy_nearest_rounding(Node& n, bool from_upsample) {
  const std::optional<Tensor> sc = static_value(n.input(2));
  if (!sc && from_upsample) {
    n.set_attr_string("nearest_mode", "floor");
    return;
  }
  if (!sc) cannot(n, "nearest mode with non-constant scales (the rounding depends on the scale direction)");
  std::vector<double> s = sc->to_doubles();
  bool down = false, up = false;
  for (double v : s) {
    down |= v < 1;
    up |= v > 1;
  }
  if (!down || !up) {
    n.set_attr_string("nearest_mode", down ? "ceil" : "floor");
    return;
  }
  std::vector<float> sd, su;
  for (double v : s) {
    sd.push_back(v < 1 ? static_cast<float>(v) : 1.f);
    su.push_back(v > 1 ? static_cast<float>(v) : 1.f);
  }
  // Nearest sampling is separable per axis: downsampling axes first (ceil), then upsampling axes (floor).
  left_dead_ |= !constant(n.input(2));  // scales computed from static dims: their nodes are no longer read
  Node first = n;
  first.name = node_name(n, "down");
  first.inputs[2] = const_f32(n, "scales_down", sd);
  first.outputs = {tensor_name(n, "down")};
  first.set_attr_string("nearest_mode", "ceil");
  n.inputs[0] = first.outputs[0];
  n.inputs[2] = const_f32(n, "scales_up", su);
  n.set_attr_string("nearest_mode", "floor");
  emit(std::move(first));
}

bool OpsetConverter::convert_batchnorm(Node& n) {
  // Named outputs beyond Y make a BatchNormalization below 14 a training node (batch statistics): no inference
  // equivalent (prepare refuses such a model before any work; this guards direct callers).
  if (const std::string why = batchnorm_training_reason(n, from_); !why.empty()) cannot(n, why);
  bool changed = false;
  if (n.has_attr("is_test") || n.has_attr("consumed_inputs")) {
    n.remove_attr("is_test");
    n.remove_attr("consumed_inputs");
    changed = true;
  }
  if (crosses(9) && n.has_attr("spatial")) {
    const bool spatial = n.attr_int("spatial", 1) != 0;
    n.remove_attr("spatial");
    changed = true;
    if (!spatial) batchnorm_per_element(n);
  }
  if (crosses(14) && n.outputs.size() > 1) {
    n.outputs.resize(1);  // the extra outputs are all unnamed (above)
    changed = true;
  }
  return changed;
}

// BatchNormalization-7 with spatial=0: statistics per element of X.shape[1:] (onnxruntime requires exactly that
// shape), Y = X * s + b with s = scale / sqrt(var + epsilon) and b = B - mean * s broadcast over the batch. With
// statistics of rank 1 X is [N, C] and that is spatial=1 (the node stays a BatchNormalization); otherwise the node
// becomes Mul + Add, by constants when the four statistics are constants.
void OpsetConverter::batchnorm_per_element(Node& n) {
  const std::optional<int> xr = shapes_->rank(n.input(0));
  std::optional<int> pr;
  for (size_t i = 1; i <= 4 && !pr; ++i) pr = shapes_->rank(n.input(i));
  if (!pr && xr) pr = *xr - 1;
  if (!pr) cannot(n, "spatial=0 (per-element statistics): neither the rank of X nor that of the statistics is known");
  if (*pr < 1 || (xr && *xr != *pr + 1))
    cannot(n, fmt::format("spatial=0 takes statistics of shape X.shape[1:] (rank {}); they have rank {}",
                          xr ? std::to_string(*xr - 1) : std::string("rank(X) - 1"), *pr));
  if (*pr == 1) return;
  if (n.outputs.empty() || n.outputs[0].empty()) cannot(n, "no output Y");
  const double eps = n.attr_float("epsilon", 1e-5f);
  const Tensor* t[4];
  bool constants = true;
  for (size_t i = 0; i < 4; ++i) {
    t[i] = constant(n.input(i + 1));
    constants &= t[i] && is_float(t[i]->dtype()) && t[i]->shape() == t[0]->shape();
  }
  std::string s, b;
  if (constants) {
    const auto sc = t[0]->to_doubles(), bias = t[1]->to_doubles(), mean = t[2]->to_doubles(),
               var = t[3]->to_doubles();
    const Shape shape = t[0]->shape();  // t[] dangle once an initializer is added
    const DType dt = t[0]->dtype();
    std::vector<double> vs(sc.size()), vb(sc.size());
    for (size_t k = 0; k < sc.size(); ++k) {
      vs[k] = sc[k] / std::sqrt(var[k] + eps);
      vb[k] = bias[k] - mean[k] * vs[k];
    }
    auto store = [&](const char* what, const std::vector<double>& v) {
      Tensor r = dt == DType::Double ? Tensor::from_vector(DType::Double, shape, v) : [&] {
        std::vector<float> f(v.begin(), v.end());
        return Tensor::from_vector(DType::Float, shape, f).cast(dt);
      }();
      std::string name = tensor_name(n, what);
      g_->add_initializer(name, std::move(r));
      return name;
    };
    s = store("scale_per_element", vs);
    b = store("bias_per_element", vb);
  } else {
    auto op = [&](const char* type, const char* what, std::vector<std::string> in) {
      Node k;
      k.op_type = type;
      k.name = node_name(n, what);
      k.inputs = std::move(in);
      k.outputs = {tensor_name(n, what)};
      std::string out = k.outputs[0];
      emit(std::move(k));
      return out;
    };
    const std::string e = scalar_like(n, "epsilon", n.input(4), eps);
    s = op("Div", "scale_per_element", {n.input(1), op("Sqrt", "std", {op("Add", "var_eps", {n.input(4), e})})});
    b = op("Sub", "bias_per_element", {n.input(2), op("Mul", "mean_scaled", {n.input(3), s})});
  }
  Node mul;
  mul.op_type = "Mul";
  mul.name = node_name(n, "mul");
  mul.inputs = {n.input(0), s};
  mul.outputs = {tensor_name(n, "scaled")};
  n.op_type = "Add";
  n.attrs.clear();
  n.inputs = {mul.outputs[0], b};
  n.outputs.resize(1);
  emit(std::move(mul));
}

bool OpsetConverter::convert_dropout(Node& n) {
  bool changed = false;
  if (n.has_attr("is_test")) {
    if (n.attr_int("is_test", 0) == 0) cannot(n, "training-mode Dropout (is_test=0)");
    n.remove_attr("is_test");
    changed = true;
  }
  if (crosses(10) && n.outputs.size() > 1 && is_used(n.outputs[1]))
    cannot(n, "the mask output is used and changes type at opset 10");
  if (crosses(12) && n.has_attr("ratio")) {
    float r = n.attr_float("ratio", 0.5f);
    n.remove_attr("ratio");
    n.inputs.resize(1);
    n.inputs.push_back(const_f32(n, "ratio", {r}, true));
    changed = true;
  }
  return changed;
}

}  // namespace oq::ir::passes::detail
