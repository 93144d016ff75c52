#include "quant/params.h"

#include <cmath>
#include <limits>

#include "core/log.h"
#include "quant/overrides.h"
#include "quant/qparams.h"

namespace oq::quant {

// A user's fixed scale is stored in the tensor's float type (ORT: np.array(scale, initializer dtype)).
static exec::QuantParams from_override(const TensorOverride& ov, DType qtype, int axis, DType float_type) {
  exec::QuantParams q;
  q.qtype = qtype;
  q.axis = axis;
  q.scale_type = float_type;
  for (double s : ov.scale) q.scale.push_back(float_type == DType::Float16 ? half_scale(s) : static_cast<float>(s));
  q.zero_point = ov.zero_point;
  return q;
}

static std::vector<double> values_of(const Tensor& t) {
  const Tensor f = t.dtype() == DType::Float ? t : t.cast(DType::Float);
  return std::vector<double>(f.data<float>(), f.data<float>() + f.numel());
}

// The smallest float16 not below v (ORT's rounding of an enlarged float16 weight scale: round to nearest, then
// one step up when that fell below).
static float half_at_least(double v) {
  uint16_t h = double_to_half(v);
  if (static_cast<double>(half_to_float(h)) < v && (h & 0x7fffu) < 0x7c00u) h = static_cast<uint16_t>(h + 1);
  return half_to_float(h);
}

std::optional<exec::QuantParams> bias_params(const exec::QuantParams& in, const exec::QuantParams& w,
                                             const Shape& bias_shape) {
  exec::QuantParams q;
  q.qtype = DType::Int32;
  q.axis = -1;
  std::vector<float> ws = w.scale;
  if (w.axis >= 0 && w.scale.size() > 1) {
    if (bias_shape.empty()) return std::nullopt;
    const int64_t len = bias_shape.back(), c = static_cast<int64_t>(w.scale.size());
    if (len % c != 0) return std::nullopt;
    q.axis = static_cast<int>(bias_shape.size()) - 1;
    ws.clear();
    for (int64_t i = 0; i < len; ++i) ws.push_back(w.scale[static_cast<size_t>(i % c)]);
  } else if (w.axis >= 0 && !bias_shape.empty()) {
    // One weight channel (a one-output Conv, a depthwise ConvTranspose whose axis 1 has one channel): ORT's bias
    // scale is input scale x that one weight scale, shape [1], written per tensor.
    q.axis = static_cast<int>(bias_shape.size()) - 1;
  }
  float is = in.scale.at(0);
  // A float16 model's bias scale: numpy float16 arithmetic (the product rounded to float16).
  const bool half = in.scale_type == DType::Float16 && w.scale_type == DType::Float16;
  q.scale_type = half ? DType::Float16 : DType::Float;
  for (float s0 : ws) {
    // ORT: float32 input_scale * float32 weight_scale.
    const float s = half ? half_scale(static_cast<double>(is) * s0) : is * s0;
    q.scale.push_back(s);
    q.zero_point.push_back(0);
  }
  return q;
}

std::optional<exec::QuantParams> float16_bias_params(const exec::QuantParams& in, const exec::QuantParams& w,
                                                     double beta, const Tensor& bias) {
  auto q = bias_params(in, w, bias.shape());
  if (!q || q->scale_type != DType::Float16) return q;
  const std::vector<double> b = values_of(bias);
  const double imax = static_cast<double>(std::numeric_limits<int32_t>::max());
  bool fits = true;
  for (size_t i = 0; i < b.size(); ++i) {
    const double s = q->scale.size() == 1 ? q->scale[0] : q->scale[i % q->scale.size()];
    fits &= s != 0 && std::fabs(b[i] * beta) <= imax * s;
  }
  if (fits) return q;
  // ORT: the float16 scale would erase or clip the bias: a float32 scale, floored so the bias fits, and a
  // float32 DequantizeLinear followed by a Cast to float16.
  exec::QuantParams in32 = in, w32 = w;
  in32.scale_type = w32.scale_type = DType::Float;
  q = bias_params(in32, w32, bias.shape());
  std::vector<double> floor(q->scale.size(), 0.0);
  for (size_t i = 0; i < b.size(); ++i) {
    double& f = floor[q->scale.size() == 1 ? 0 : i % q->scale.size()];
    f = std::max(f, std::fabs(b[i] * beta) / imax);
  }
  for (size_t c = 0; c < q->scale.size(); ++c) {
    float s = static_cast<float>(std::max(static_cast<double>(q->scale[c]), floor[c] * 1.0001));
    q->scale[c] = s == 0.f ? 1.f : s;
  }
  return q;
}

Tensor quantize_bias(const Tensor& bias, const exec::QuantParams& q, double beta) {
  if (bias.dtype() == DType::Float16) return quantize_bias(bias.cast(DType::Float), q, beta);
  Tensor out(DType::Int32, bias.shape());
  const float* b = bias.data<float>();
  int32_t* o = out.data<int32_t>();
  for (int64_t i = 0; i < bias.numel(); ++i) {
    double s = q.scale.size() == 1 ? q.scale[0] : q.scale[static_cast<size_t>(i) % q.scale.size()];
    // beta = 1 keeps ORT's arithmetic exactly; beta = 0 stores 0 (the Gemm adds nothing, whatever C holds).
    if (beta == 0.0) {
      o[i] = 0;
      continue;
    }
    double v = std::nearbyint((beta == 1.0 ? static_cast<double>(b[i]) : static_cast<double>(b[i]) * beta) / s);
    v = std::clamp(v, static_cast<double>(std::numeric_limits<int32_t>::min()),
                   static_cast<double>(std::numeric_limits<int32_t>::max()));
    o[i] = static_cast<int32_t>(v);
  }
  return out;
}

// Values of beta x bias that quantize_bias clips to int32.
static int64_t int32_overflows(const Tensor& bias, const exec::QuantParams& q, double beta) {
  const std::vector<double> b = values_of(bias);
  const double lo = static_cast<double>(std::numeric_limits<int32_t>::min()),
               hi = static_cast<double>(std::numeric_limits<int32_t>::max());
  int64_t n = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double s = q.scale.size() == 1 ? q.scale[0] : q.scale[i % q.scale.size()];
    if (s == 0) continue;
    const double v = std::nearbyint(b[i] * beta / s);
    n += !(v >= lo && v <= hi) && std::isfinite(b[i]);
  }
  return n;
}

// ORT 1.20+ (_adjust_weight_scale_for_int32_bias): enlarge the weight scale when input_scale × weight_scale
// is too small to hold the bias in int32. The bias holds beta × C (quantize_bias), so the bound is on |beta × C|
// (ORT's |C|: its model adds C, not beta × C; docs/conformance.md); beta = 1 is ORT's arithmetic, bit for bit.
// beta = 0: no enlargement, the bias adds nothing (ORT sizes it for C and can zero every weight).
static bool adjust_for_bias(const Tensor& bias, float input_scale, double beta, exec::QuantParams& w) {
  if (beta == 0.0) return false;
  const double qr = static_cast<double>(std::numeric_limits<int32_t>::max()) -
                    static_cast<double>(std::numeric_limits<int32_t>::min() + 1);
  const double eps = 1.0001, abeta = std::fabs(beta);
  const std::vector<double> b = values_of(bias);
  bool changed = false;
  auto fix = [&](double smallest, float& ws) {
    double cand = static_cast<double>(input_scale) * static_cast<double>(ws);
    if (cand < smallest && cand > 0.0) {
      const double enlarged = static_cast<double>(ws) * (smallest / cand);
      ws = w.scale_type == DType::Float16 ? half_at_least(enlarged) : static_cast<float>(enlarged);
      changed = true;
    }
  };
  if (w.axis < 0) {
    double lo = 0, hi = 0;
    for (double v : b) lo = std::min(lo, v), hi = std::max(hi, v);
    fix(eps * (2.0 * (abeta * std::max(std::fabs(lo), std::fabs(hi)))) / qr, w.scale[0]);  // float64 in ORT
  } else {  // bias entry i lies on channel (i mod last dim) of the bias, which uses weight scale (that mod C)
    const size_t len = bias.rank() ? static_cast<size_t>(bias.dim(-1)) : 1, c = w.scale.size();
    std::vector<double> absmax(c, 0.0);
    for (size_t i = 0; i < b.size(); ++i) absmax[(i % len) % c] = std::max(absmax[(i % len) % c], std::fabs(b[i]));
    // ORT's per-channel arithmetic: 1.0001 * (2.0 * |bias[i]|) in the bias's float type (numpy scalars of that type
    // with Python floats), then divided by the float64 range.
    const bool half = bias.dtype() == DType::Float16;
    for (size_t k = 0; k < c; ++k) {
      if (beta != 1.0) {  // onnxquant's own bound (ORT has none for beta x C): float64
        fix(eps * (2.0 * (abeta * absmax[k])) / qr, w.scale[k]);
        continue;
      }
      double t = half ? round_to_half(2.0 * absmax[k]) : static_cast<float>(2.0 * absmax[k]);
      t = half ? round_to_half(round_to_half(eps) * t) : static_cast<double>(static_cast<float>(eps) * static_cast<float>(t));
      fix(t / qr, w.scale[k]);
    }
  }
  return changed;
}

ParamMap compute_params(const ir::Graph& g, const QuantPlan& plan, const QuantOptions& o, const RangeMap& ranges,
                        ParamNotes* notes, const WeightParamsFn& weight_fn,
                        WeightCache* cache) {
  ParamMap pm;
  // A calibrated activation's parameters: fixed ones, or from its range (TensorQuantOverrides' rmin / rmax taken
  // as float32, as ORT computes with numpy.float32 values) with the type and symmetry given.
  auto activation_params = [&](const std::string& name, const TensorSpec& s, DType qt, const std::vector<double>& scale,
                               const std::vector<int64_t>& zero_point, std::optional<bool> symmetric,
                               const std::vector<RangeOverride>& user) {
    if (!scale.empty()) {
      TensorOverride fixed;
      fixed.scale = scale;
      fixed.zero_point = zero_point;
      return from_override(fixed, qt, -1, s.float_type);
    }
    auto r = ranges.find(name);
    if (r == ranges.end()) fail(ErrorKind::Runtime, "tensor '{}' is marked for quantization but was not calibrated", name);
    Range rg = r->second;
    if (!user.empty()) {
      if (user[0].rmin) rg.rmin = static_cast<float>(*user[0].rmin);
      if (user[0].rmax) rg.rmax = static_cast<float>(*user[0].rmax);
    }
    const bool sym = symmetric.value_or(o.activation_symmetric);
    QRange qr = qrange(qt, sym);  // ORT: activations never take reduce_range (TensorQuantOverrides refuses it)
    ScaleZp sz = o.activation_restricted_asymmetric && qt == DType::UInt8 && !sym
                     ? snap_zero_point_uint8(rg.rmin, rg.rmax, qr.qmin, qr.qmax, o.min_real_range, s.float_type)
                     : compute_scale_zp(rg.rmin, rg.rmax, qr.qmin, qr.qmax, sym, o.min_real_range, s.float_type);
    return exec::QuantParams{qt, {sz.scale}, {sz.zero_point}, -1, s.float_type};
  };
  // Initializers and plain activations first.
  for (const auto& name : plan.marked_order) {
    const TensorSpec& s = plan.tensors.at(name);
    if (!s.share_from.empty() || s.role == TensorRole::Bias) continue;
    if (s.is_initializer) {
      const Tensor& w = g.find_initializer(name)->tensor;
      const TensorOverride* ov = find_override(o, name, true);
      DType qt = s.weight_type ? o.weight_type : o.activation_type;
      if (ov && ov->qtype) qt = *ov->qtype;
      if (ov && !ov->scale.empty()) {
        pm[name] = from_override(*ov, qt, s.axis, s.float_type);
        continue;
      }
      // ORT: per-channel initializers are symmetric unless a TensorQuantOverrides `symmetric` says otherwise.
      const bool sym = ov && ov->symmetric ? *ov->symmetric
                                           : s.axis >= 0 || (s.weight_type ? o.weight_symmetric : o.activation_symmetric);
      const bool reduce = ov && ov->reduce_range && *ov->reduce_range;
      static const std::vector<RangeOverride> kNoRanges;
      const std::vector<RangeOverride>& user_ranges = ov ? ov->ranges : kNoRanges;
      // A weight whose range the user fixed (symmetric / reduce_range / rmin / rmax) is not re-chosen by a weight
      // quantizer (MSE, GPTQ).
      const bool fixed = ov && (ov->symmetric || ov->reduce_range || !ov->ranges.empty());
      if (WeightCache::Entry* e = cache ? cache->find(name, qt, s.axis) : nullptr) {
        pm[name] = e->params;
        if (e->values.dtype() != DType::Undefined) {
          if (!notes) fail(ErrorKind::Runtime, "weight '{}': modified values need ParamNotes", name);
          notes->weight_values[name] = e->values;
        }
        continue;
      }
      exec::QuantParams q = weight_params(w, qt, sym, s.axis, reduce, o.min_real_range, user_ranges);
      Tensor chosen_values;
      if (weight_fn && s.role == TensorRole::Weight && !fixed) {
        WeightChoice c = weight_fn(name, w, WeightProposal{std::move(q), sym, reduce, o.min_real_range});
        q = std::move(c.params);
        if (c.values.dtype() != DType::Undefined) {
          if (c.values.shape() != w.shape() || c.values.dtype() != w.dtype())
            fail(ErrorKind::Runtime, "weight quantizer returned values of another shape/type for '{}'", name);
          if (!notes) fail(ErrorKind::Runtime, "weight '{}': modified values need ParamNotes", name);
          chosen_values = c.values;
          notes->weight_values[name] = std::move(c.values);
        }
      }
      if (cache) {
        WeightCache::Entry& e = cache->at(name, qt, s.axis);
        e.params = q;
        e.values = chosen_values;
      }
      pm[name] = std::move(q);
      continue;
    }
    const TensorOverride* ov = find_override(o, name, false);
    if (ov)
      pm[name] = activation_params(name, s, ov->qtype.value_or(o.activation_type), ov->scale, ov->zero_point,
                                   ov->symmetric, ov->ranges);
    else
      pm[name] = activation_params(name, s, o.activation_type, {}, {}, std::nullopt, {});
  }
  // TensorQuantOverrides' convert (plain and shared activations alike: ORT computes both from the tensor's range).
  std::map<std::string, ParamNotes::Converted> converted;
  for (const auto& name : plan.marked_order) {
    const TensorSpec& s = plan.tensors.at(name);
    const TensorOverride* ov = s.is_initializer ? nullptr : find_override(o, name, false);
    if (!ov || !ov->convert) continue;
    const ConvertOverride& c = *ov->convert;
    converted[name] = {activation_params(name, s, c.qtype, c.scale, c.zero_point, c.symmetric, c.ranges), c.recv_nodes};
  }
  // The parameters node `node` reads for tensor t: the converted ones when it is one of their receivers.
  auto for_consumer = [&](const std::string& t, const std::string& node) -> const exec::QuantParams* {
    if (auto c = converted.find(t); c != converted.end() && (!c->second.recv_nodes || c->second.recv_nodes->count(node)))
      return &c->second.params;
    auto p = pm.find(t);
    return p == pm.end() ? nullptr : &p->second;
  };
  // Shared parameters, each from its provider as its reading node sees them (resolved through chains: Transpose
  // after Reshape after Conv, ...).
  for (bool progress = true; progress;) {
    progress = false;
    for (const auto& name : plan.marked_order) {
      const TensorSpec& s = plan.tensors.at(name);
      if (s.share_from.empty() || pm.count(name)) continue;
      if (const exec::QuantParams* p = for_consumer(s.share_from, s.node)) {
        if (p->axis >= 0) {
          // A per-channel provider (a Gather's table that a Gemm / MatMul also reads as its weight, or that a
          // TensorQuantOverrides `axis` makes per channel): ORT gives the activation the table's per-channel scale
          // without an axis, a model onnxruntime cannot run. onnxquant deliberately quantizes the activation with its
          // own calibrated range, per tensor, in the provider's type (the type ORT's shared Q/DQ would have:
          // docs/conformance.md).
          OQ_INFO("tensor '{}' gets its own parameters: '{}', whose parameters it would share, is quantized per channel",
                  name, s.share_from);
          pm[name] = activation_params(name, s, p->qtype, {}, {}, std::nullopt, {});
        } else {
          pm[name] = *p;
        }
        progress = true;
      }
    }
  }
  for (const auto& name : plan.marked_order) {
    const TensorSpec& s = plan.tensors.at(name);
    if (!s.share_from.empty() && !pm.count(name))
      fail(ErrorKind::Runtime, "tensor '{}' shares parameters with unquantized '{}'", name, s.share_from);
  }
  // int32 biases, after enlarging weight scales where a bias would overflow int32. ORT first enlarges the weights
  // for every bias (_adjust_weight_quant_params_for_bias_tensors, in bias_to_quantize order, biases written as
  // ordinary constants included), then quantizes the biases with the final weight scales.
  auto bias_spec = [&](const std::string& name) -> const TensorSpec& {
    auto it = plan.tensors.find(name);
    return it != plan.tensors.end() && it->second.role == TensorRole::Bias ? it->second : plan.shadowed_biases.at(name);
  };
  // A per-channel weight whose scales the bias cannot carry (its last dim not a multiple of the channel count).
  auto cannot_carry = [&](const Tensor& b, const exec::QuantParams& w) {
    return w.axis >= 0 && w.scale.size() > 1 &&
           (b.rank() == 0 || b.dim(-1) % static_cast<int64_t>(w.scale.size()) != 0);
  };
  // A scale given in weights_tensor_override is kept as written (a warning below says when the bias then saturates);
  // one computed for an override (quant_type / axis only) is enlarged like any other, and ORT adjusts a
  // TensorQuantOverrides weight whatever it sets.
  auto fixed_scale = [&](const std::string& weight) {
    const auto wo = o.weight_overrides.find(weight);
    return wo != o.weight_overrides.end() && wo->second.source != OverrideSource::TensorQuantOverrides &&
           !wo->second.scale.empty();
  };
  // ORT: Int8 / Int16 weights whose zero points are all 0. onnxquant also enlarges Int4 / UInt4 weights
  // (deliberately, docs/conformance.md: ORT leaves their biases to saturate int32), whatever their zero point: a
  // larger scale only draws the quantized values towards it.
  auto enlargeable = [](const exec::QuantParams& w) {
    const bool zero_zp = std::all_of(w.zero_point.begin(), w.zero_point.end(), [](int64_t z) { return z == 0; });
    return ((w.qtype == DType::Int8 || w.qtype == DType::Int16) && zero_zp) || w.qtype == DType::Int4 ||
           w.qtype == DType::UInt4;
  };
  for (const auto& name : plan.bias_order) {
    const TensorSpec& s = bias_spec(name);
    const exec::QuantParams* in = for_consumer(s.bias_input, s.node);
    auto w = pm.find(s.bias_weight);
    // ORT adjusts initializer weights only (initializer_quant_params), not a Conv's computed weight.
    if (!in || w == pm.end() || !g.find_initializer(s.bias_weight) || o.disable_weight_adjust_for_int32_bias ||
        fixed_scale(s.bias_weight))
      continue;
    const Tensor& b = g.find_initializer(name)->tensor;
    if (!enlargeable(w->second) || cannot_carry(b, w->second)) continue;
    // A shadowed bias (an ordinary constant, no int32 values) keeps ORT's enlargement for C, except with beta 0.
    const bool int32 = plan.tensors.count(name) && plan.tensors.at(name).role == TensorRole::Bias;
    if (adjust_for_bias(b, in->scale.at(0), int32 || s.bias_beta == 0.0 ? s.bias_beta : 1.0, w->second)) {
      OQ_INFO("Increased the scale of weight '{}' so that bias '{}' fits in int32", s.bias_weight, name);
      if (notes) notes->adjusted_weights.push_back(s.bias_weight);
    }
  }
  for (const auto& name : plan.marked_order) {
    const TensorSpec& s = plan.tensors.at(name);
    if (s.role != TensorRole::Bias) continue;
    const exec::QuantParams* in = for_consumer(s.bias_input, s.node);
    auto w = pm.find(s.bias_weight);
    if (!in || w == pm.end()) continue;  // ORT leaves such biases in float
    const Tensor& b = g.find_initializer(name)->tensor;
    if (cannot_carry(b, w->second)) {
      OQ_WARN("bias '{}' (shape {}) stays in float: it cannot carry the {} per-channel scales of weight '{}'", name,
              shape_str(b.shape()), w->second.scale.size(), s.bias_weight);
      continue;
    }
    pm[name] = *float16_bias_params(*in, w->second, s.bias_beta, b);
    if (const int64_t n = int32_overflows(b, pm[name], s.bias_beta); n > 0)
      OQ_WARN("bias '{}': {} of {} values saturate int32 (input scale x the scale of weight '{}' is too small for "
              "them{}): the quantized model adds a clipped bias there",
              name, n, b.numel(), s.bias_weight,
              fixed_scale(s.bias_weight)                ? ", a scale fixed by weights_tensor_override"
              : o.disable_weight_adjust_for_int32_bias  ? ", DisableWeightAdjustForInt32Bias"
              : !enlargeable(w->second)                 ? ", a weight type or zero point whose scale ORT does not enlarge"
                                                        : "");
  }
  if (notes) notes->converted = std::move(converted);
  return pm;
}

}  // namespace oq::quant
