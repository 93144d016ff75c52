#include "config/yaml_read.h"

#include <cmath>

#include "core/names.h"

namespace oq::config::detail {

std::string show(const YAML::Node& n) {
  if (is_null(n)) return "null";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  return quote(n.Scalar());
}

std::string line_of(const Ctx& ctx, const YAML::Node& n) {
  if (!n.IsDefined()) return "";
  YAML::Mark m = n.Mark();
  if (m.is_null()) return "";
  return ctx.source + ":" + std::to_string(m.line + 1);
}

std::string where(const Ctx& ctx, const YAML::Node& n) {
  const std::string l = line_of(ctx, n);
  return l.empty() ? "" : " (" + l + ")";
}

std::string where2(const Ctx& ctx, const YAML::Node& n, const std::string& other_path, const YAML::Node& other) {
  const std::string a = line_of(ctx, n), b = line_of(ctx, other);
  if (b.empty()) return where(ctx, n);
  return " (" + (a.empty() ? "" : a + "; ") + other_path + ": " + b + ")";
}

YAML::Node child(const YAML::Node& map, const std::string& key) {
  if (!map.IsDefined() || !map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  const YAML::Node& cm = map;  // const access: never inserts the key
  return cm[key];
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

void key_fail(const Ctx& ctx, const YAML::Node& at, const std::string& path, const std::string& msg) {
  fail(ErrorKind::Config, "{}: {}{}", path, msg, where(ctx, at));
}

void key_fail2(const Ctx& ctx, const YAML::Node& at, const std::string& path, const std::string& msg,
               const std::string& other_path, const YAML::Node& other) {
  fail(ErrorKind::Config, "{}: {}{}", path, msg, where2(ctx, at, other_path, other));
}

MapReader::MapReader(const Ctx& ctx, const YAML::Node& node, std::string path)
    : ctx_(ctx), path_(std::move(path)) {
  if (is_null(node)) {
    node_ = YAML::Node(YAML::NodeType::Map);
    return;
  }
  if (!node.IsMap()) key_fail(ctx, node, path_, "expected a map of keys, got " + show(node));
  node_ = node;
}

YAML::Node MapReader::get(const std::string& key) {
  known_.insert(key);
  const YAML::Node& cn = node_;  // const access: never inserts the key
  return cn[key];
}

bool MapReader::present(const std::string& key) const {
  const YAML::Node& cn = node_;
  return !is_null(cn[key]);
}

std::vector<std::string> MapReader::unknown_keys() const {
  std::vector<std::string> out;
  for (const auto& kv : node_) {
    std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "<non-scalar key>";
    if (!known_.count(k)) out.push_back(k);
  }
  return out;
}

void MapReader::finish_strict() const {
  const std::vector<std::string> known(known_.begin(), known_.end());
  for (const auto& k : unknown_keys()) {
    const YAML::Node& cn = node_;
    key_fail(ctx_, cn[k], path(k), "unknown key" + did_you_mean(k, known));
  }
}

void MapReader::finish_warn(std::string_view what) const {
  // Keys of ST's files that onnxquant does not read are expected here; one that is a letter or two away from a
  // key it does read is a typo whose value would be ignored silently: an error.
  const std::vector<std::string> known(known_.begin(), known_.end());
  for (const auto& k : unknown_keys()) {
    const std::string near = closest_name(k, known, k.size() >= 6 ? 2 : 1);
    if (!near.empty()) {
      const YAML::Node& cn = node_;
      key_fail(ctx_, cn[k], path(k), "unknown key, did you mean '" + near + "'? (as written it would be ignored)");
    }
  }
  if (!ctx_.warnings) return;
  for (const auto& k : unknown_keys()) ctx_.warnings->push_back(path(k) + ": " + std::string(what));
}

// The spellings PyYAML (and so OmegaConf / Hydra, which ST's flow uses) reads as booleans: YAML 1.1's without y / n,
// which yaml-cpp also accepts. A value ST's flow reads as a string would be true there (ONNX Runtime's extra_options
// and ST's own keys test a string's truth), whatever onnxquant made of it: each is refused, naming the key. A
// command-line override's scalar carries the type Hydra's override grammar gives it (override_value.cc): `off`
// there is a string, `tRUE` a boolean (!!bool, constructed as PyYAML does: any letter case).
bool read_bool(const Ctx& ctx, const YAML::Node& n, const std::string& path) {
  static constexpr std::string_view kTrue[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
  static constexpr std::string_view kFalse[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
  if (!n.IsScalar()) key_fail(ctx, n, path, "expected a boolean (true/false), got " + show(n));
  const std::string& s = n.Scalar();
  const bool bool_tagged = n.Tag() == "tag:yaml.org,2002:bool";
  bool spelt = false, v = false;
  for (auto t : kTrue)
    if (s == t || (bool_tagged && iequals(s, t))) spelt = v = true;
  for (auto f : kFalse)
    if (s == f || (bool_tagged && iequals(s, f))) spelt = true;
  // A quoted scalar ('true', "no") or one tagged !!str is a string for every YAML reader; yaml-cpp marks it "!".
  const bool string_tagged = n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str";
  if (spelt && !string_tagged) return v;
  if (spelt && line_of(ctx, n).empty())  // a command-line override's value: Hydra's grammar, not PyYAML
    key_fail(ctx, n, path, "expected a boolean, got " + show(n) + ": Hydra reads " + show(n) +
                               " in a command-line override as a string, which ST's flow takes as true; write " +
                               (v ? "true" : "false"));
  if (spelt)
    key_fail(ctx, n, path, "expected a boolean, got the quoted string " + show(n) +
                               " (a string for PyYAML / Hydra, which ST's flow uses, and there any non-empty string "
                               "counts as true): write true or false without quotes");
  bool yaml11 = false;
  if (YAML::convert<bool>::decode(n, yaml11))  // y, Y, n, N
    key_fail(ctx, n, path, "expected a boolean, got " + show(n) +
                               ", which PyYAML / Hydra (ST's flow) read as a string, true there whatever it means: "
                               "write true or false");
  key_fail(ctx, n, path, "expected a boolean (true/false), got " + show(n));
}

// A number as ST's flow reads it (yaml11_number), else an arithmetic string; nullopt with `err` set when neither.
static std::optional<double> scalar_number(const YAML::Node& n, std::string& err) {
  const Yaml11Number y = yaml11_number(n);
  if (!y.is_number) return eval_arithmetic(n.Scalar(), &err);
  if (!y.value) err = y.error;
  else if (!std::isfinite(*y.value)) err = "result is not finite";
  return err.empty() ? y.value : std::nullopt;
}

double read_number(const Ctx& ctx, const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) key_fail(ctx, n, path, "expected a number, got " + show(n));
  std::string err;
  auto v = scalar_number(n, err);
  if (!v) key_fail(ctx, n, path, "expected a number or an arithmetic expression, got " + show(n) + " (" + err + ")");
  return *v;
}

int64_t read_int(const Ctx& ctx, const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) key_fail(ctx, n, path, "expected an integer, got " + show(n));
  std::string err;
  auto v = scalar_number(n, err);
  if (!v) key_fail(ctx, n, path, "expected an integer, got " + show(n) + " (" + err + ")");
  if (std::trunc(*v) != *v || std::fabs(*v) > 9007199254740992.0)
    key_fail(ctx, n, path, "expected an integer, got " + show(n));
  return static_cast<int64_t>(*v);
}

std::string read_string(const Ctx& ctx, const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) key_fail(ctx, n, path, "expected a string, got " + show(n));
  std::string err;
  std::optional<std::string> v = try_expand_interpolations(n.Scalar(), ctx.now, &err);
  if (!v) key_fail(ctx, n, path, err);  // with the value's file:line when it comes from the file
  return *std::move(v);
}

void check_no_nul(const Ctx& ctx, const YAML::Node& n, const std::string& path, const std::string& value) {
  if (value.find('\0') != std::string::npos)
    key_fail(ctx, n, path, "holds a NUL byte, which a file name or a command cannot contain: got " + quote(value));
}

std::string get_path(MapReader& m, const std::string& key, const std::string& def) {
  YAML::Node n = m.get(key);
  if (is_null(n)) return def;
  std::string v = read_string(m.ctx(), n, m.path(key));
  check_no_nul(m.ctx(), n, m.path(key), v);
  return v;
}

bool get_bool(MapReader& m, const std::string& key, bool def) {
  YAML::Node n = m.get(key);
  return is_null(n) ? def : read_bool(m.ctx(), n, m.path(key));
}

double get_number(MapReader& m, const std::string& key, double def) {
  YAML::Node n = m.get(key);
  return is_null(n) ? def : read_number(m.ctx(), n, m.path(key));
}

int64_t get_int(MapReader& m, const std::string& key, int64_t def) {
  YAML::Node n = m.get(key);
  return is_null(n) ? def : read_int(m.ctx(), n, m.path(key));
}

std::string get_string(MapReader& m, const std::string& key, const std::string& def) {
  YAML::Node n = m.get(key);
  return is_null(n) ? def : read_string(m.ctx(), n, m.path(key));
}

std::vector<std::string> get_string_list(MapReader& m, const std::string& key) {
  YAML::Node n = m.get(key);
  std::vector<std::string> out;
  if (is_null(n)) return out;
  std::string p = m.path(key);
  if (!n.IsSequence()) key_fail(m.ctx(), n, p, "expected a list of strings, got " + show(n));
  for (size_t i = 0; i < n.size(); ++i) {
    YAML::Node e = n[i];
    std::string ep = p + "[" + std::to_string(i) + "]";
    if (is_null(e)) key_fail(m.ctx(), at_or(e, n), ep, "expected a string, got null");
    out.push_back(read_string(m.ctx(), e, ep));
  }
  return out;
}

void check_range(MapReader& m, const std::string& key, bool ok, double v, const char* what) {
  if (ok) return;
  key_fail(m.ctx(), m.get(key), m.path(key), fmt::format("must be {}, got {}", what, v));
}

}  // namespace oq::config::detail
