// quantization.onnx_extra_options.TensorQuantOverrides: ONNX Runtime's per-tensor override dicts, read into typed
// structs with ORT's rules that need no model (tensor_quant_overrides.py, is_valid). The rules that need the
// model (the tensor exists, initializer or not, axis and channel count) are in quant/overrides.cc.
#include <cmath>

#include "config/yaml_read.h"

namespace oq::config::detail {
namespace {

// Keys ORT refuses next to scale / zero_point (keys_unsupported_with_scale_zp).
const char* kNotWithScale[] = {"symmetric", "reduce_range", "rmin", "rmax"};

// scale + zero_point (together, > 0, without the keys ORT refuses next to them), symmetric, rmin, rmax: the keys a
// dict and its `convert` share.
template <typename D>
void read_common(MapReader& m, const YAML::Node& n, const std::string& path, D& d) {
  const Ctx& ctx = m.ctx();
  const bool sc = m.present("scale"), zp = m.present("zero_point");
  if (sc != zp)
    key_fail(ctx, at_or(m.get(sc ? "scale" : "zero_point"), n), path,
             "'scale' and 'zero_point' must be given together (ONNX Runtime's rule)");
  if (sc) {
    d.scale = read_number(ctx, m.get("scale"), m.path("scale"));
    // Written as float32: a value that is not a finite float32 > 0 would become inf or 0 in the model.
    const float f = static_cast<float>(*d.scale);
    if (!(f > 0) || !std::isfinite(f))
      key_fail(ctx, m.get("scale"), m.path("scale"),
               fmt::format("must be a finite number > 0 in float32 (about 1.4e-45 to 3.4e38), got {}", *d.scale));
    d.zero_point = read_int(ctx, m.get("zero_point"), m.path("zero_point"));
    for (const char* k : kNotWithScale)
      if (m.present(k))
        key_fail2(ctx, at_or(m.get(k), n), path,
                  std::string("'") + k + "' cannot be given with 'scale' and 'zero_point' (ONNX Runtime's rule)",
                  m.path("scale"), m.get("scale"));
  }
  if (YAML::Node v = m.get("symmetric"); !is_null(v)) d.symmetric = read_bool(ctx, v, m.path("symmetric"));
  // rmin / rmax are taken as float32 (as ORT's numpy values): beyond its range the scale would be inf.
  auto read_bound = [&](const char* k, std::optional<double>& out) {
    const YAML::Node v = m.get(k);
    if (is_null(v)) return;
    out = read_number(ctx, v, m.path(k));
    if (!std::isfinite(static_cast<float>(*out)))
      key_fail(ctx, v, m.path(k), fmt::format("must be a finite float32 number (|x| < 3.4e38), got {}", *out));
  };
  read_bound("rmin", d.rmin);
  read_bound("rmax", d.rmax);
}

ConvertDict read_convert(const Ctx& ctx, const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) key_fail(ctx, n, path, "expected a map ({quant_type, recv_nodes, ...}), got " + show(n));
  MapReader m(ctx, n, path);
  ConvertDict c;
  if (!m.present("quant_type")) key_fail(ctx, n, path, "must give a 'quant_type' (ONNX Runtime's rule)");
  c.quant_type = read_quant_type(ctx, m.get("quant_type"), m.path("quant_type"));
  if (m.present("reduce_range"))
    key_fail(ctx, m.get("reduce_range"), m.path("reduce_range"),
             "only supported for initializers, and a converted tensor is an activation (ONNX Runtime's rule)");
  read_common(m, n, path, c);
  if (YAML::Node v = m.get("recv_nodes"); !is_null(v)) {
    if (!v.IsSequence()) key_fail(ctx, v, m.path("recv_nodes"), "expected a list of node names, got " + show(v));
    c.recv_nodes.emplace();
    for (size_t i = 0; i < v.size(); ++i)
      c.recv_nodes->push_back(read_string(ctx, v[i], m.path("recv_nodes") + "[" + std::to_string(i) + "]"));
  }
  m.finish_strict();
  return c;
}

QuantOverrideDict read_dict(const Ctx& ctx, const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) key_fail(ctx, n, path, "expected a map of override keys (quant_type, scale, ...), got " + show(n));
  MapReader m(ctx, n, path);
  QuantOverrideDict d;
  if (YAML::Node v = m.get("quant_type"); !is_null(v)) d.quant_type = read_quant_type(ctx, v, m.path("quant_type"));
  read_common(m, n, path, d);
  if (YAML::Node v = m.get("reduce_range"); !is_null(v)) d.reduce_range = read_bool(ctx, v, m.path("reduce_range"));
  if (YAML::Node v = m.get("axis"); !is_null(v)) d.axis = read_int(ctx, v, m.path("axis"));
  if (YAML::Node v = m.get("convert"); !is_null(v)) d.convert = read_convert(ctx, v, m.path("convert"));
  m.finish_strict();
  return d;
}

// ORT's _is_valid_per_channel rules between the first dict and the others.
void check_channels(const Ctx& ctx, const YAML::Node& list, const std::string& path, const TensorQuantOverride& t) {
  const QuantOverrideDict& d0 = t.dicts[0];
  if (!d0.axis)
    key_fail(ctx, at_or(list[0], list), path, fmt::format("{} per-channel dicts but no 'axis' in the first one (ONNX Runtime's rule)",
                                          t.dicts.size()));
  if (d0.rmin.has_value() != d0.rmax.has_value())
    key_fail(ctx, at_or(child(list[0], d0.rmin ? "rmin" : "rmax"), list), path + "[0]",
             "per-channel overrides need both 'rmin' and 'rmax' (ONNX Runtime's rule)");
  for (size_t i = 0; i < t.dicts.size(); ++i)
    if (t.dicts[i].convert)
      key_fail(ctx, at_or(child(list[i], "convert"), list), path + "[" + std::to_string(i) + "].convert",
               "cannot be used in per-channel overrides (per channel is for initializers; convert for activations)");
  for (size_t i = 1; i < t.dicts.size(); ++i) {
    const QuantOverrideDict& d = t.dicts[i];
    const std::string ip = path + "[" + std::to_string(i) + "]";
    auto differs = [&](const char* key, bool given, bool same) {
      if (given && !same)
        key_fail2(ctx, at_or(child(list[i], key), list), ip + "." + key,
                  std::string("differs from the first dict's; every channel has the same ") + key +
                      " (ONNX Runtime's rule)",
                  path + "[0]." + key, child(list[0], key));
    };
    differs("quant_type", d.quant_type.has_value(), d.quant_type == d0.quant_type);
    differs("axis", d.axis.has_value(), d.axis == d0.axis);  // a negative / positive spelling: quant/overrides.cc
    differs("symmetric", d.symmetric.has_value(), d.symmetric == d0.symmetric);
    differs("reduce_range", d.reduce_range.has_value(), d.reduce_range == d0.reduce_range);
    if (d0.has_fixed_qparams() && !d.has_fixed_qparams())
      key_fail(ctx, at_or(list[i], list), ip, "missing 'scale' and 'zero_point': the first channel has them, so every "
                                              "channel must (ONNX Runtime's rule)");
    if (d0.rmin && !(d.rmin && d.rmax))
      key_fail(ctx, at_or(list[i], list), ip, "missing 'rmin' / 'rmax': the first channel has them, so every channel "
                                              "must (ONNX Runtime's rule)");
  }
}

}  // namespace

std::vector<TensorQuantOverride> read_tensor_quant_overrides(const Ctx& ctx, const YAML::Node& n,
                                                             const std::string& path) {
  std::vector<TensorQuantOverride> out;
  if (is_null(n)) return out;
  if (!n.IsMap())
    key_fail(ctx, n, path, "expected a map of tensor name to a list of override dicts, got " + show(n));
  for (const auto& kv : n) {
    TensorQuantOverride t;
    t.tensor = read_string(ctx, kv.first, path);
    const std::string tp = path + "." + t.tensor;
    if (t.tensor.empty()) key_fail(ctx, kv.first, path, "empty tensor name");
    const YAML::Node& list = kv.second;
    // ORT: an empty list (or null here) is no override, but its tensor must exist (checked with the model).
    if (!is_null(list) && !list.IsSequence())
      key_fail(ctx, list, tp, "expected a list of override dicts (e.g. [{quant_type: QUInt16}]), got " + show(list));
    for (size_t i = 0; !is_null(list) && i < list.size(); ++i)
      t.dicts.push_back(read_dict(ctx, list[i], tp + "[" + std::to_string(i) + "]"));
    if (t.per_channel()) check_channels(ctx, list, tp, t);
    for (const auto& o : out)
      if (o.tensor == t.tensor) key_fail(ctx, kv.first, tp, "tensor " + quote(t.tensor) + " is given twice");
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace oq::config::detail
