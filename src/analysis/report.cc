#include "analysis/report.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string_view>
#include <utility>

#include "analysis/json_text.h"
#include "core/error.h"

namespace oq::analysis {

namespace {

std::string fmt_snr(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : std::string("nan"); }

bool snr_less(const TensorInspection* a, const TensorInspection* b) {
  double x = a->snr(), y = b->snr();
  if (std::isnan(x) != std::isnan(y)) return std::isnan(y);
  if (x != y && !std::isnan(x)) return x < y;
  return a->name < b->name;
}

nlohmann::json node_json(const NodeRef& n) {
  if (n.op_type.empty()) return nullptr;
  return {{"name", n.name}, {"op_type", n.op_type}};
}

nlohmann::json num_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) {
    if (c == '"') o += '"';
    o += c;
  }
  return o + "\"";
}

std::string csv_num(double v) { return std::isfinite(v) ? fmt::format("{:.6f}", v) : std::string(); }

// The escape of the character at s[i] when a single-quoted YAML scalar cannot hold it as itself, else "" (`len`:
// its bytes): C0 controls (a line break is folded to a space, \x01 refused by PyYAML), DEL, NEL (U+0085), LS / PS
// (U+2028 / U+2029, line breaks to YAML 1.1) and the byte order mark U+FEFF. The escapes are the ones YAML's
// double-quoted scalars and JSON strings share.
std::string yaml_escape_at(std::string_view s, size_t i, size_t& len) {
  static constexpr std::pair<std::string_view, std::string_view> kWide[] = {
      {"\xC2\x85", "\\u0085"}, {"\xE2\x80\xA8", "\\u2028"}, {"\xE2\x80\xA9", "\\u2029"}, {"\xEF\xBB\xBF", "\\ufeff"}};
  len = 1;
  const auto c = static_cast<unsigned char>(s[i]);
  if (c == '\n') return "\\n";
  if (c == '\t') return "\\t";
  if (c == '\r') return "\\r";
  if (c < 0x20 || c == 0x7f) return fmt::format("\\u{:04x}", c);
  for (const auto& [utf8, escape] : kWide)
    if (s.substr(i).starts_with(utf8)) {
      len = utf8.size();
      return std::string(escape);
    }
  return "";
}

// A tensor name as a YAML flow scalar that reads back as the same bytes: single-quoted, or double-quoted with
// escapes when it holds a character of yaml_escape_at.
std::string yaml_quote(const std::string& s) {
  bool escapes = false;
  size_t len = 1;
  for (size_t i = 0; i < s.size() && !escapes; i += len) escapes = !yaml_escape_at(s, i, len).empty();
  if (!escapes) {
    std::string o = "'";
    for (char c : s) {
      if (c == '\'') o += '\'';
      o += c;
    }
    return o + "'";
  }
  std::string o = "\"";
  for (size_t i = 0; i < s.size(); i += len) {
    const std::string e = yaml_escape_at(s, i, len);
    if (e.empty() && (s[i] == '"' || s[i] == '\\')) o += '\\';
    o += e.empty() ? std::string(1, s[i]) : e;
  }
  return o + "\"";
}

std::string override_item(const std::string& name, const quant::TensorOverride& ov) {
  std::vector<std::string> parts;
  if (ov.qtype) parts.push_back(fmt::format("quant_type: {}", quant_type_name(*ov.qtype)));
  if (!ov.scale.empty()) {
    std::vector<std::string> sc, zp;
    for (double v : ov.scale) sc.push_back(fmt::format("{:.9g}", v));
    for (int64_t v : ov.zero_point) zp.push_back(std::to_string(v));
    if (sc.size() == 1) {
      parts.push_back("scale: " + sc[0]);
      parts.push_back("zero_point: " + zp[0]);
    } else {
      parts.push_back(fmt::format("scale: [{}]", fmt::join(sc, ", ")));
      parts.push_back(fmt::format("zero_point: [{}]", fmt::join(zp, ", ")));
    }
  }
  if (ov.axis) parts.push_back(fmt::format("axis: {}", *ov.axis));
  return fmt::format("  - [{}, {{{}}}]", yaml_quote(name), fmt::join(parts, ", "));
}

}  // namespace

std::vector<std::string> st_header_lines(const std::vector<std::string>& quantization_lines) {
  std::vector<std::string> l = {"", "Baseline quantization with parameters specified in config file:"};
  l.insert(l.end(), quantization_lines.begin(), quantization_lines.end());
  return l;
}

std::vector<const TensorInspection*> worst_first(const InspectionResult& r) {
  std::vector<const TensorInspection*> v;
  for (const auto& t : r.tensors) v.push_back(&t);
  std::stable_sort(v.begin(), v.end(), snr_less);
  return v;
}

std::vector<std::string> st_snr_lines(const InspectionResult& r) {
  std::vector<std::string> l = {"", "Baseline quantized model (config file parameters), SNR analysis (dB):",
                                "Weights tensors SNR:"};
  auto sorted = worst_first(r);
  for (const auto* t : sorted)
    if (t->initializer) l.push_back(fmt::format("{}: {}", t->name, fmt_snr(t->snr())));
  l.push_back("Activations tensors SNR:");
  for (const auto* t : sorted)
    if (!t->initializer) l.push_back(fmt::format("{}: {}", t->name, fmt_snr(t->snr())));
  return l;
}

std::string to_json(const InspectionResult& r, const ReportSettings& s) {
  nlohmann::json settings = {{"model", s.model_path},
                             {"quantized_model", s.quantized_model_path},
                             {"quantization", s.quantization_lines},
                             {"snr_threshold_db", s.snr_threshold},
                             {"inspection_split", s.inspection_split},
                             {"calibration_samples", s.calibration_samples},
                             {"inspected_samples", r.samples},
                             {"batch_size", s.batch_size},
                             {"target_opset", s.target_opset}};
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : r.tensors) {
    nlohmann::json consumers = nlohmann::json::array();
    for (const auto& c : t.consumers) consumers.push_back(node_json(c));
    nlohmann::json folded = nlohmann::json::array();
    for (const auto& f : t.folded) folded.push_back(f.op_type);
    nlohmann::json j = {{"name", t.name},
                        {"kind", std::string(to_string(t.kind))},
                        {"exec_index", t.exec_index},
                        {"producer", node_json(t.producer)},
                        {"consumers", consumers},
                        {"shape", t.shape},
                        {"quant_type", std::string(quant_type_name(t.qtype))},
                        {"granularity", t.granularity()},
                        {"axis", t.axis >= 0 ? nlohmann::json(t.axis) : nlohmann::json(nullptr)},
                        {"scale_min", t.scale_min},
                        {"scale_max", t.scale_max},
                        {"zero_point_min", t.zero_point_min},
                        {"zero_point_max", t.zero_point_max},
                        {"override_list", t.activation_override ? "activations_tensor_override"
                                                                : "weights_tensor_override"}};
    if (!t.shares_params_with.empty()) j["shares_params_with"] = t.shares_params_with;
    if (!folded.empty()) j["folded_into_producer"] = folded;
    if (t.initializer) {
      j["snr_db"] = num_or_null(t.snr_db);
    } else {
      j["snr_xmodel_db"] = num_or_null(t.snr_xmodel_db);
      j["snr_local_db"] = num_or_null(t.snr_local_db);
      j["zeroed_fraction"] = num_or_null(t.zeroed_fraction);
    }
    tensors.push_back(std::move(j));
  }
  nlohmann::json root = {{"settings", settings}, {"tensors", tensors}};
  return dump_json(root);
}

std::string to_csv(const InspectionResult& r) {
  std::string o =
      "exec_index,name,kind,producer,producer_op,consumers,consumer_ops,quant_type,granularity,axis,scale_min,"
      "scale_max,snr_db,snr_xmodel_db,snr_local_db,zeroed_fraction\n";
  for (const auto& t : r.tensors) {
    std::vector<std::string> cn, co;
    for (const auto& c : t.consumers) cn.push_back(c.name), co.push_back(c.op_type);
    o += fmt::format("{},{},{},{},{},{},{},{},{},{},{:.9g},{:.9g},{},{},{},{}\n", t.exec_index, csv_field(t.name),
                     to_string(t.kind), csv_field(t.producer.name), t.producer.op_type,
                     csv_field(fmt::format("{}", fmt::join(cn, ";"))), fmt::format("{}", fmt::join(co, ";")),
                     quant_type_name(t.qtype), t.granularity(), t.axis >= 0 ? std::to_string(t.axis) : "",
                     t.scale_min, t.scale_max, t.initializer ? csv_num(t.snr_db) : "",
                     t.initializer ? "" : csv_num(t.snr_xmodel_db), t.initializer ? "" : csv_num(t.snr_local_db),
                     t.initializer ? "" : csv_num(t.zeroed_fraction));
  }
  return o;
}

std::vector<Suggestion> suggest_overrides(const InspectionResult& r, double threshold, const quant::QuantOptions& o) {
  std::vector<Suggestion> out;
  std::set<std::string> taken;
  // Outputs below the threshold, by producing node: a zeroed tensor counts when one of its consumers' outputs is
  // flagged (the small probabilities a Softmax output rounds to 0 harm nothing downstream: not suggested).
  std::set<std::string> flagged_producers;
  for (const auto& t : r.tensors)
    if (!t.initializer && t.snr() < threshold && !t.producer.name.empty()) flagged_producers.insert(t.producer.name);
  std::vector<const TensorInspection*> order;
  std::set<const TensorInspection*> zeroed;
  for (const auto& t : r.tensors)
    if (!t.initializer && t.zeroed_fraction >= kZeroedSuggest &&
        std::any_of(t.consumers.begin(), t.consumers.end(),
                    [&](const NodeRef& c) { return flagged_producers.count(c.name) > 0; })) {
      order.push_back(&t);
      zeroed.insert(&t);
    }
  for (const auto* t : worst_first(r)) order.push_back(t);
  for (const auto* t : order) {
    double snr = t->snr();
    // Below the threshold, or (listed first) an activation whose scale rounds most of its values to 0.
    if ((!(snr < threshold) && !zeroed.count(t)) || t->kind == TensorKind::Bias) continue;
    Suggestion s;
    s.snr = snr;
    if (t->activation_override) {
      s.activations = true;
      s.tensor = t->shares_params_with.empty() ? t->name : t->shares_params_with;
      if (dtype_bits(t->qtype) >= 16) continue;
      s.qtype = DType::Int16;
    } else {
      s.tensor = t->name;
      bool per_tensor = t->axis < 0;
      if (t->channel_axis < 0) {
        if (dtype_bits(t->qtype) >= 16) continue;
        s.qtype = DType::Int16;
      } else if (per_tensor || dtype_bits(t->qtype) < 8) {
        s.qtype = DType::Int8;
        s.axis = t->channel_axis;
      } else if (dtype_bits(t->qtype) < 16) {
        s.qtype = DType::Int16;
        s.axis = t->channel_axis;
      } else {
        continue;
      }
    }
    // Already overridden by the user (a TensorQuantOverrides constant may sit in either map): no suggestion.
    const bool existing = o.activation_overrides.count(s.tensor) || o.weight_overrides.count(s.tensor);
    if (existing || !taken.insert((s.activations ? "a:" : "w:") + s.tensor).second) continue;
    out.push_back(std::move(s));
  }
  return out;
}

std::string overrides_yaml(const std::vector<Suggestion>& sug, const quant::QuantOptions& o, double threshold,
                           int64_t target_opset) {
  size_t nw = 0, na = 0;
  bool needs16 = false;
  for (const auto& s : sug) {
    (s.activations ? na : nw)++;
    needs16 |= dtype_bits(s.qtype) == 16;
  }
  std::string y = "# Paste under quantization.onnx_extra_options (replacing both keys there).\n";
  y += fmt::format("# Suggested for tensors below {} dB: {} weight(s), {} activation(s); existing overrides kept.\n",
                   threshold, nw, na);
  if (needs16 && target_opset < 21) y += "# Int16 quantization needs quantization.target_opset: 21\n";
  for (int list = 0; list < 2; ++list) {
    const bool acts = list == 1;
    const auto& existing = acts ? o.activation_overrides : o.weight_overrides;
    std::vector<std::string> items;
    for (const auto& [name, ov] : existing)  // TensorQuantOverrides entries stay under their own key
      if (ov.source != quant::OverrideSource::TensorQuantOverrides) items.push_back(override_item(name, ov));
    for (const auto& s : sug) {
      if (s.activations != acts) continue;
      quant::TensorOverride ov;
      ov.qtype = s.qtype;
      if (s.axis >= 0) ov.axis = s.axis;
      items.push_back(override_item(s.tensor, ov) + fmt::format("   # {:.3f} dB", s.snr));
    }
    y += acts ? "activations_tensor_override:" : "weights_tensor_override:";
    if (items.empty()) {
      y += "\n";
      continue;
    }
    y += "\n";
    for (const auto& it : items) y += it + "\n";
  }
  return y;
}

}  // namespace oq::analysis
