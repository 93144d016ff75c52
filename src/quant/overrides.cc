#include "quant/overrides.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_set>

#include "core/log.h"
#include "core/names.h"
#include "quant/annotate.h"

namespace oq::quant {

static void check_values(const std::string& kind, const std::string& name, const TensorOverride& ov, DType qt) {
  if (ov.scale.empty() != ov.zero_point.empty())
    fail(ErrorKind::Config, "{} '{}': scale and zero_point must be given together", kind, name);
  if (ov.scale.size() != ov.zero_point.size())
    fail(ErrorKind::Config, "{} '{}': {} scales but {} zero points", kind, name, ov.scale.size(),
         ov.zero_point.size());
  QRange r = full_range(qt);
  for (double s : ov.scale)  // stored as float32: 1e-50 would become 0, 1e39 inf
    if (!(static_cast<float>(s) > 0) || !std::isfinite(static_cast<float>(s)))
      fail(ErrorKind::Config, "{} '{}': scale must be a finite number > 0 in float32, got {}", kind, name, s);
  for (int64_t z : ov.zero_point)
    if (z < r.qmin || z > r.qmax)
      fail(ErrorKind::Config, "{} '{}': zero_point {} is outside the {} range [{}, {}]", kind, name, z,
           quant_type_name(qt), r.qmin, r.qmax);
}

const char* override_key(OverrideSource s) {
  switch (s) {
    case OverrideSource::WeightsTensorOverride: return "weights_tensor_override";
    case OverrideSource::ActivationsTensorOverride: return "activations_tensor_override";
    case OverrideSource::TensorQuantOverrides: return "TensorQuantOverrides";
    case OverrideSource::FullAuto: return "full_auto's 4-bit choice";
  }
  return "";
}

const TensorOverride* find_override(const QuantOptions& o, const std::string& name, bool initializer) {
  if (initializer)
    if (auto it = o.weight_overrides.find(name); it != o.weight_overrides.end()) return &it->second;
  auto it = o.activation_overrides.find(name);
  return it == o.activation_overrides.end() ? nullptr : &it->second;
}

static std::vector<std::string> tensor_names(const ir::Graph& g) {
  std::vector<std::string> v;
  std::unordered_set<std::string> seen;
  auto add = [&](const std::string& t) {
    if (!t.empty() && seen.insert(t).second) v.push_back(t);
  };
  for (const auto& i : g.initializers) add(i.name);
  for (const auto& i : g.inputs) add(i.name);
  for (const auto& n : g.nodes)
    for (const auto* l : {&n.inputs, &n.outputs})
      for (const auto& t : *l) add(t);
  return v;
}

void place_tensor_quant_overrides(const ir::Graph& g, const std::map<std::string, std::optional<TensorOverride>>& tqo,
                                  QuantOptions& o) {
  if (tqo.empty()) return;
  const std::vector<std::string> names = tensor_names(g);
  const std::unordered_set<std::string> known(names.begin(), names.end());
  for (const auto& [name, ov] : tqo) {
    if (!known.count(name)) {
      // A Conv / ConvTranspose / MatMul weight or bias renamed by BatchNormalization folding (the edit distance
      // cannot see the prefix).
      std::string hint;
      for (const char* prefix : {"ConvBnFusion_W_", "ConvBnFusion_BN_B_", "MatMulBnFusion_GemmB_"})
        if (known.count(prefix + name))
          hint = fmt::format(", did you mean '{}{}'? (pre-processing folded a BatchNormalization into its {})",
                             prefix, name, prefix[0] == 'M' ? "MatMul" : "Conv");
      fail(ErrorKind::Config, "quantization.onnx_extra_options.TensorQuantOverrides.{}: the model has no tensor named "
           "'{}'{}", name, name, hint.empty() ? did_you_mean(name, names) : hint);
    }
    if (ov) (g.find_initializer(name) ? o.weight_overrides : o.activation_overrides)[name] = *ov;
  }
}

// A per-channel `axis` on the weight of a quantized Conv / ConvTranspose / Gemm must be that node's output-channel
// axis (Conv 0, ConvTranspose 1, Gemm 0 with transB, else 1): its int32 bias takes input scale × weight scale per
// output channel, and a QLinearConv takes one filter scale per output channel. ORT raises on another axis when the
// node has a bias (or writes a model its own QLinearConv refuses when not). `rank_axis`: the axis, normalized.
// MatMul and the other readers take any axis (QDQOpTypePerChannelSupportToAxis).
static void check_channel_axis(const ir::Graph& g, const QuantOptions& o, const std::string& what,
                               const std::string& name, int64_t axis, int64_t rank_axis) {
  for (const auto& n : g.nodes) {
    if ((n.op_type != "Conv" && n.op_type != "ConvTranspose" && n.op_type != "Gemm") || n.inputs.size() < 2 ||
        n.input(1) != name || !should_quantize_node(n, o))
      continue;
    const int want = default_weight_axis(n);
    if (rank_axis != want)
      fail(ErrorKind::Config, "{}: axis {} is not the output-channel axis of {} '{}', which reads '{}' as its weight: "
           "use axis {} (its bias and filter scales are per output channel)", what, axis, n.op_type, n.name, name, want);
  }
}

// ORT's model-dependent rules of TensorQuantOverrides (tensor_quant_overrides.py is_valid, which checks only the
// first tensor with overrides; onnxquant checks every one), plus the per-channel scale/zero_point count ORT does
// not check (one dict for several channels writes a DequantizeLinear with one scale on an axis: an invalid model).
static void check_convert(const ir::Graph& g, const std::string& key, const std::string& name,
                          const ConvertOverride& c, DType qt, const QuantOptions& o) {
  if (c.qtype == qt)
    fail(ErrorKind::Config, "{}: 'convert' quant_type must differ from the tensor's ({}) (ONNX Runtime's rule)", key,
         quant_type_name(qt));
  TensorOverride values;
  values.scale = c.scale;
  values.zero_point = c.zero_point;
  check_values(key + ".convert", name, values, c.qtype);
  std::set<std::string> readers;
  for (const auto& n : g.nodes)
    if (std::find(n.inputs.begin(), n.inputs.end(), name) != n.inputs.end()) readers.insert(n.name);
  if (c.recv_nodes)
    for (const auto& r : *c.recv_nodes)
      if (!readers.count(r))
        fail(ErrorKind::Config, "{}: convert.recv_nodes names '{}', which is not a node that reads '{}'", key, r, name);
  if (o.dedicated_qdq_pair && readers.size() > 1)
    fail(ErrorKind::Config, "{}: 'convert' cannot be combined with DedicatedQDQPair on a tensor read by several nodes "
         "(ONNX Runtime refuses it too)", key);
}

static void check_tqo(const ir::Graph& g, const std::string& name, const TensorOverride& ov, DType qt,
                      const QuantOptions& o) {
  const std::string key = "quantization.onnx_extra_options.TensorQuantOverrides." + name;
  const auto* init = g.find_initializer(name);
  check_values(key, name, ov, qt);
  if (ov.convert && init)
    fail(ErrorKind::Config, "{}: 'convert' cannot be used for initializers (ONNX Runtime's rule)", key);
  if (ov.convert) check_convert(g, key, name, *ov.convert, qt, o);
  if (!init) {
    if (ov.axis) fail(ErrorKind::Config, "{}: per-channel overrides ('axis') need an initializer; '{}' is an activation", key, name);
    if (ov.reduce_range)
      fail(ErrorKind::Config, "{}: 'reduce_range' is only supported for initializers, not for activation '{}'", key, name);
    return;
  }
  if (!ov.axis) return;
  const int rank = init->tensor.rank();
  const int64_t a = *ov.axis;
  if (a < -rank || a >= rank)
    fail(ErrorKind::Config, "{}: axis {} is out of bounds for '{}' (rank {})", key, a, name, rank);
  const int64_t ch = init->tensor.dim(static_cast<int>(a < 0 ? a + rank : a));
  check_channel_axis(g, o, key, name, a, a < 0 ? a + rank : a);
  auto count = [&](size_t n, const char* what) {
    if (n > 1 && static_cast<int64_t>(n) != ch)
      fail(ErrorKind::Config, "{}: {} channel dicts for {} channels on axis {} (give one dict, or one per channel)",
           key, n, ch, a);
    if (n == 1 && ch > 1 && what)
      fail(ErrorKind::Config, "{}: one dict with {} for {} channels on axis {}: give one dict per channel", key, what,
           ch, a);
  };
  count(ov.ranges.size(), nullptr);
  count(ov.scale.size(), "scale/zero_point");
}

void validate_overrides(const ir::Graph& g, const QuantOptions& o) {
  // weights_tensor_override only: full_auto's own Int4 choices (FullAuto) are made among the nodes that
  // nodes_to_quantize selects.
  const bool user_weight_overrides =
      std::any_of(o.weight_overrides.begin(), o.weight_overrides.end(),
                  [](const auto& kv) { return kv.second.source == OverrideSource::WeightsTensorOverride; });
  if (!o.nodes_to_quantize.empty() && user_weight_overrides)
    fail(ErrorKind::Config,
         "quantization.onnx_quant_parameters.nodes_to_quantize cannot be combined with "
         "onnx_extra_options.weights_tensor_override: overrides apply to every node that reads the weight, "
         "while nodes_to_quantize restricts which nodes are quantized");
  std::unordered_set<std::string> tensors;
  for (const auto& n : g.nodes)
    for (const auto* l : {&n.inputs, &n.outputs})
      for (const auto& t : *l) tensors.insert(t);
  for (const auto& v : g.inputs) tensors.insert(v.name);

  for (const auto* m : {&o.weight_overrides, &o.activation_overrides})
    for (const auto& [name, ov] : *m)
      if (ov.source == OverrideSource::TensorQuantOverrides) {
        const bool init = g.find_initializer(name) != nullptr;
        if (!init && m == &o.weight_overrides)
          fail(ErrorKind::Config, "quantization.onnx_extra_options.TensorQuantOverrides.{}: '{}' is no longer an "
               "initializer after pre-processing", name, name);
        check_tqo(g, name, ov, ov.qtype.value_or(m == &o.weight_overrides ? o.weight_type : o.activation_type), o);
      }
  // Full key paths, and for a name the model lacks the closest one of the right kind (a weight named in the
  // activations' list, or the reverse, is told so).
  const std::string wkey = "quantization.onnx_extra_options.weights_tensor_override",
                    akey = "quantization.onnx_extra_options.activations_tensor_override";
  std::vector<std::string> weights, activations;
  for (const auto& i : g.initializers) weights.push_back(i.name);
  for (const auto& t : tensors)
    if (!t.empty() && !g.find_initializer(t)) activations.push_back(t);
  std::sort(activations.begin(), activations.end());  // a deterministic suggestion among equally close names
  for (const auto& [name, ov] : o.weight_overrides) {
    if (ov.source != OverrideSource::WeightsTensorOverride) continue;
    const auto* init = g.find_initializer(name);
    if (!init && tensors.count(name))
      fail(ErrorKind::Config, "{}: '{}' is an activation, not a weight (initializer): put it in "
           "activations_tensor_override", wkey, name);
    if (!init)
      fail(ErrorKind::Config, "{}: the model has no weight (initializer) named '{}'{}", wkey, name,
           did_you_mean(name, weights));
    DType qt = ov.qtype.value_or(o.weight_type);
    check_values(wkey, name, ov, qt);
    int rank = init->tensor.rank();
    if (ov.axis) {
      int64_t a = *ov.axis;
      if (a < -rank || a >= rank)
        fail(ErrorKind::Config, "{} '{}': axis {} is invalid for a weight of shape {}", wkey, name, a,
             shape_str(init->tensor.shape()));
      int64_t ch = init->tensor.dim(static_cast<int>(a < 0 ? a + rank : a));
      check_channel_axis(g, o, fmt::format("{} '{}'", wkey, name), name, a, a < 0 ? a + rank : a);
      if (!ov.scale.empty() && static_cast<int64_t>(ov.scale.size()) != ch)
        fail(ErrorKind::Config, "{} '{}': {} scale/zero_point values for {} channels on axis {}", wkey, name,
             ov.scale.size(), ch, a);
    } else if (ov.scale.size() > 1) {
      fail(ErrorKind::Config, "{} '{}': {} scales given without an axis (per-tensor takes one)", wkey, name,
           ov.scale.size());
    }
  }
  for (const auto& [name, ov] : o.activation_overrides) {
    if (ov.source == OverrideSource::TensorQuantOverrides) continue;
    if (g.find_initializer(name))
      fail(ErrorKind::Config, "{}: '{}' is a weight (initializer), not an activation: put it in "
           "weights_tensor_override", akey, name);
    if (!tensors.count(name))
      fail(ErrorKind::Config, "{}: the model has no activation tensor named '{}'{}", akey, name,
           did_you_mean(name, activations));
    if (ov.axis)
      fail(ErrorKind::Config, "{} '{}': activations are quantized per tensor; remove 'axis'", akey, name);
    if (ov.scale.size() > 1)
      fail(ErrorKind::Config, "{} '{}': one scale and one zero_point expected, got {}", akey, name, ov.scale.size());
    check_values(akey, name, ov, ov.qtype.value_or(o.activation_type));
  }
}

void validate_node_filters(const ir::Graph& g, const QuantOptions& o, const ir::Graph* also) {
  std::vector<std::string> nodes;
  for (const auto* graph : {&g, also})
    if (graph)
      for (const auto& n : graph->nodes)
        if (!n.name.empty()) nodes.push_back(n.name);
  std::unordered_set<std::string> node_set(nodes.begin(), nodes.end());
  auto check_nodes = [&](const std::set<std::string>& names, const char* key) {
    for (const auto& name : names)
      if (!node_set.count(name))
        fail(ErrorKind::Config, "quantization.onnx_quant_parameters.{}: the model has no node named '{}'{}", key, name,
             did_you_mean(name, nodes));
  };
  check_nodes(o.nodes_to_quantize, "nodes_to_quantize");
  check_nodes(o.nodes_to_exclude, "nodes_to_exclude");
  // The operator types (op_types_to_quantize, ...) are checked when the config is loaded: they need no model.
}

void warn_unused_overrides(const QuantOptions& o, const QuantPlan& plan, const ir::Graph& g, const TypeMap& types) {
  auto type_of = [&](const std::string& t) {
    if (const auto* init = g.find_initializer(t)) return init->tensor.dtype();
    auto it = types.find(t);
    return it == types.end() ? DType::Undefined : it->second;
  };
  for (const auto* m : {&o.weight_overrides, &o.activation_overrides})
    for (const auto& [name, ov] : *m)
      if (plan.is_marked(name) && !plan.tensors.at(name).share_from.empty())
        OQ_WARN("{} '{}': the tensor takes the parameters of its producer's input (ONNX Runtime's rule for Reshape, "
                "Transpose, MaxPool, ...); the override has no effect", override_key(ov.source), name);
      else if (const DType t = type_of(name); !plan.is_marked(name) && t != DType::Undefined && t != DType::Float &&
                                              t != DType::Float16)
        OQ_WARN("{} '{}': the tensor is not a float tensor ({}): only float32 / float16 tensors are quantized; the "
                "override has no effect", override_key(ov.source), name, dtype_name(t));
      else if (!plan.is_marked(name))
        OQ_WARN("{} '{}': the tensor is not quantized (its nodes are filtered out by op_types_to_quantize, "
                "nodes_to_quantize or nodes_to_exclude, or a Relu / Clip folded into its producer replaced it); the "
                "override has no effect", override_key(ov.source), name);
}

}  // namespace oq::quant
