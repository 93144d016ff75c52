// Config -> core options mapping (the only place where config enums meet core enums).
#include "app.h"
#include "core/log.h"
#include "exec/kernel.h"
#include "ir/passes/passes.h"

namespace oq::app {

static_assert(config::kMaxTargetOpset == exec::kMaxOpset, "config's target_opset bound is the executor's newest opset");
static_assert(ir::passes::kMaxConvertOpset == exec::kMaxOpset, "the opset converter reaches the executor's newest opset");

quant::QuantOptions quant_options(const config::Config& cfg) {
  const auto& q = cfg.quantization;
  quant::QuantOptions o;
  o.weight_type = q.params.weight_type;
  o.activation_type = q.params.activ_type;
  o.per_channel = q.granularity == config::Granularity::PerChannel;
  o.weight_symmetric = q.extra.weight_symmetric;
  o.activation_symmetric = q.extra.activation_symmetric;
  o.quantize_bias = q.extra.quantize_bias;
  o.bias_correction = q.extra.bias_correction;
  o.min_real_range = q.extra.minimum_real_range;
  o.keep_removable_activations = q.extra.qdq_keep_removable_activations;
  o.activation_restricted_asymmetric = q.extra.activation_restricted_asymmetric;
  o.add_qdq_pair_to_weight = q.extra.add_qdq_pair_to_weight;
  o.dedicated_qdq_pair = q.extra.dedicated_qdq_pair;
  o.use_qdq_contrib_ops = q.extra.use_qdq_contrib_ops;
  for (const auto& [op, axis] : q.extra.qdq_op_type_per_channel_support_to_axis)
    o.per_channel_axis[op] = static_cast<int>(axis);
  o.disable_weight_adjust_for_int32_bias = q.extra.qdq_disable_weight_adjust_for_int32_bias;
  o.force_quantize_no_input_check = q.extra.force_quantize_no_input_check;
  o.op_types_no_output.insert(q.extra.op_types_to_exclude_output_quantization.begin(),
                              q.extra.op_types_to_exclude_output_quantization.end());
  o.op_types_to_quantize = {q.params.op_types_to_quantize.begin(), q.params.op_types_to_quantize.end()};
  o.nodes_to_quantize = {q.params.nodes_to_quantize.begin(), q.params.nodes_to_quantize.end()};
  o.nodes_to_exclude = {q.params.nodes_to_exclude.begin(), q.params.nodes_to_exclude.end()};
  auto map_override = [](const config::TensorOverride& c) {
    quant::TensorOverride t;
    t.qtype = c.quant_type;
    t.scale = c.scale;
    t.zero_point = c.zero_point;
    t.axis = c.axis;
    return t;
  };
  for (const auto& c : q.extra.weights_tensor_override) o.weight_overrides[c.tensor] = map_override(c);
  for (const auto& c : q.extra.activations_tensor_override) {
    o.activation_overrides[c.tensor] = map_override(c);
    o.activation_overrides[c.tensor].source = quant::OverrideSource::ActivationsTensorOverride;
  }
  o.target_opset = static_cast<int>(q.target_opset);
  return o;
}

std::map<std::string, std::optional<quant::TensorOverride>> tensor_quant_overrides(const config::Config& cfg) {
  std::map<std::string, std::optional<quant::TensorOverride>> out;
  for (const auto& t : cfg.quantization.extra.tensor_quant_overrides) {
    if (t.dicts.empty()) {  // an empty list: no override, the name is still checked
      out[t.tensor] = std::nullopt;
      continue;
    }
    quant::TensorOverride o;
    o.source = quant::OverrideSource::TensorQuantOverrides;
    const config::QuantOverrideDict& d0 = t.dicts[0];  // type, axis, symmetric, reduce_range: the same in every dict
    o.qtype = d0.quant_type;
    o.axis = d0.axis;
    o.symmetric = d0.symmetric;
    o.reduce_range = d0.reduce_range;
    for (const auto& d : t.dicts) {
      if (d.scale) {
        o.scale.push_back(*d.scale);
        o.zero_point.push_back(*d.zero_point);
      }
      // Per channel: one entry a dict (one without rmin / rmax keeps its data range), which also gives the dict
      // count the model check needs; per tensor: one entry when rmin or rmax is given.
      if (t.per_channel() || d.rmin || d.rmax) o.ranges.push_back(quant::RangeOverride{d.rmin, d.rmax});
    }
    if (const auto& c = d0.convert) {
      quant::ConvertOverride v;
      v.qtype = c->quant_type;
      if (c->scale) v.scale = {*c->scale}, v.zero_point = {*c->zero_point};
      v.symmetric = c->symmetric;
      if (c->rmin || c->rmax) v.ranges.push_back(quant::RangeOverride{c->rmin, c->rmax});
      if (c->recv_nodes) v.recv_nodes = std::set<std::string>(c->recv_nodes->begin(), c->recv_nodes->end());
      o.convert = std::move(v);
    }
    out[t.tensor] = std::move(o);
  }
  return out;
}

calib::CalibOptions calib_options(const config::Config& cfg) {
  const auto& q = cfg.quantization;
  calib::CalibOptions c;
  switch (q.params.calibrate_method) {
    case config::CalibrateMethod::MinMax: c.method = calib::CalibMethod::MinMax; break;
    case config::CalibrateMethod::Entropy: c.method = calib::CalibMethod::Entropy; break;
    case config::CalibrateMethod::Percentile: c.method = calib::CalibMethod::Percentile; break;
  }
  c.minmax.moving_average = q.extra.calib_moving_average;
  c.minmax.averaging_constant = static_cast<float>(q.extra.calib_moving_average_constant);
  c.symmetric = q.extra.calib_tensor_range_symmetric;
  // ORT's CalibStridedMinMax. Absent: quantize_static's default, one collect_data() call over all the batches
  // (histograms: a first pass for each tensor's overall range, a second binning into one histogram over it).
  // k: one call per k batches (MinMax: the moving average per chunk; histograms, k = 1 only: grown batch by
  // batch in one pass).
  if (q.extra.calib_strided_minmax)
    c.minmax.batches_per_chunk = *q.extra.calib_strided_minmax;
  else
    c.two_pass_histogram = true;
  c.percentile = q.extra.calib_percentile;
  c.validate();
  return c;
}

data::PreprocessOptions preprocess_options(const config::Config& cfg) {
  const auto& p = cfg.preprocessing;
  data::PreprocessOptions o;
  o.scale = static_cast<float>(p.scale);
  o.offset = static_cast<float>(p.offset);
  switch (p.interpolation) {
    case config::Interpolation::Nearest: o.interpolation = data::Interp::Nearest; break;
    case config::Interpolation::Bilinear: o.interpolation = data::Interp::Bilinear; break;
    case config::Interpolation::Bicubic: o.interpolation = data::Interp::Bicubic; break;
    case config::Interpolation::Area: o.interpolation = data::Interp::Area; break;
  }
  switch (p.aspect_ratio) {
    case config::AspectRatio::Fit: o.aspect = data::AspectMode::Fit; break;
    case config::AspectRatio::Crop: o.aspect = data::AspectMode::Crop; break;
    case config::AspectRatio::Padding: o.aspect = data::AspectMode::Padding; break;
  }
  switch (p.color_mode) {
    case config::ColorMode::Grayscale: o.color = data::ColorMode::Grayscale; break;
    case config::ColorMode::Rgb: o.color = data::ColorMode::RGB; break;
    case config::ColorMode::Rgba: o.color = data::ColorMode::RGBA; break;
    case config::ColorMode::Bgr: o.color = data::ColorMode::BGR; break;
  }
  switch (p.layout) {
    case config::Layout::Auto: o.layout = data::Layout::Auto; break;
    case config::Layout::NCHW: o.layout = data::Layout::NCHW; break;
    case config::Layout::NHWC: o.layout = data::Layout::NHWC; break;
  }
  // model.input_shape: the image size for inputs whose height/width are dynamic. ST writes (H, W, C); a
  // (C, H, W) spelling is recognised by its small first value.
  const auto& is = cfg.model.input_shape;
  if (is.size() == 2 || is.size() == 3) {
    auto is_ch = [](int64_t d) { return d == 1 || d == 3 || d == 4; };
    const bool chw = is.size() == 3 && is_ch(is[0]) && !is_ch(is[2]);
    o.height = chw ? is[1] : is[0];
    o.width = chw ? is[2] : is[1];
  }
  return o;
}

data::DataOptions data_options(const config::Config& cfg, const std::string& path, double split) {
  const auto& p = cfg.preprocessing;
  const bool arrays = path.ends_with(".npz") || path.ends_with(".npy") || path.ends_with(".NPZ") ||
                      path.ends_with(".NPY");
  if (arrays && (p.scale != 1.0 || p.offset != 0.0))
    OQ_WARN("preprocessing.rescaling (scale {}, offset {}) applies to image folders only: the arrays of {} are fed "
            "to the model as they are", p.scale, p.offset, path);
  if (arrays) {  // the other image settings, when not their defaults, are ignored likewise
    std::string keys;
    auto add = [&](bool set, const char* key) {
      if (set) keys += (keys.empty() ? "" : ", ") + std::string(key);
    };
    add(p.color_mode != config::ColorMode::Rgb, "preprocessing.color_mode");
    add(p.interpolation != config::Interpolation::Nearest, "preprocessing.resizing.interpolation");
    add(p.aspect_ratio != config::AspectRatio::Fit, "preprocessing.resizing.aspect_ratio");
    add(p.layout != config::Layout::Auto, "preprocessing.layout");
    add(!cfg.model.input_shape.empty(), "model.input_shape");
    if (!keys.empty())
      OQ_WARN("{} {} to image folders only: the arrays of {} are fed to the model as they are (no color "
              "conversion, resizing or transposition)", keys, keys.find(',') == std::string::npos ? "applies" : "apply",
              path);
  }
  data::DataOptions o;
  o.path = path;
  o.selection.split = split;
  o.selection.seed = static_cast<uint64_t>(cfg.dataset.seed);
  o.class_names = cfg.dataset.class_names;
  o.skip_bad_files = cfg.dataset.skip_bad_files;
  o.preprocess = preprocess_options(cfg);
  return o;
}

}  // namespace oq::app
