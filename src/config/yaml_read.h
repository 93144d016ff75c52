// Internal to src/config: typed reads from a yaml-cpp tree with errors that name the key path.
#pragma once
#include <cctype>
#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/config.h"
#include "core/error.h"

namespace oq::config::detail {

struct Ctx {
  std::string source;                   // file name, for "(file:line)" hints
  std::time_t now = 0;                  // for ${now:...}
  std::vector<std::string>* warnings = nullptr;
};

// "'value'" for scalars (quote(): control characters escaped, so a message stays one whole line), "a list" /
// "a map" / "null" otherwise.
std::string show(const YAML::Node& n);
// " (file:line)" when the node carries a position, "" otherwise (e.g. set by an override).
std::string where(const Ctx& ctx, const YAML::Node& n);
// "file:line" when the node carries a position, "" otherwise.
std::string line_of(const Ctx& ctx, const YAML::Node& n);
// For a rule between two values: " (file:line)" of `n` (the value the message names), and the line of the other
// value named by its key path when that one comes from the file too: " (c.yaml:12; <other_path>: c.yaml:8)".
// A value set by a command-line override has no line, so neither is cited for it.
std::string where2(const Ctx& ctx, const YAML::Node& n, const std::string& other_path, const YAML::Node& other);
// `n` when it carries a position (a list element, a key), else `fallback` (its list or map).
inline YAML::Node at_or(const YAML::Node& n, const YAML::Node& fallback) {
  return n.IsDefined() && !n.Mark().is_null() ? n : fallback;
}
// The value of `key` in `map` when `map` is a map; an undefined node otherwise (no insertion).
YAML::Node child(const YAML::Node& map, const std::string& key);
bool iequals(std::string_view a, std::string_view b);
inline bool is_null(const YAML::Node& n) { return !n.IsDefined() || n.IsNull(); }

// A YAML map being read: get() marks keys as known; finish_*() deals with the keys never asked for.
class MapReader {
 public:
  // `node` must be a map or null/absent (treated as empty); anything else is an error naming `path`.
  MapReader(const Ctx& ctx, const YAML::Node& node, std::string path);

  // The value (undefined node if the key is absent).
  YAML::Node get(const std::string& key);
  bool present(const std::string& key) const;  // present and not null
  std::string path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::string& path() const { return path_; }
  const Ctx& ctx() const { return ctx_; }
  const YAML::Node& node() const { return node_; }

  void finish_strict() const;                      // unknown key -> error
  void finish_warn(std::string_view what) const;   // unknown key -> one warning each ("<path>: <what>")
  void finish_silent() const {}

 private:
  std::vector<std::string> unknown_keys() const;
  const Ctx& ctx_;
  YAML::Node node_;
  std::string path_;
  std::set<std::string> known_;
};

[[noreturn]] void key_fail(const Ctx& ctx, const YAML::Node& at, const std::string& path, const std::string& msg);
// The same for a rule between two values (where2).
[[noreturn]] void key_fail2(const Ctx& ctx, const YAML::Node& at, const std::string& path, const std::string& msg,
                            const std::string& other_path, const YAML::Node& other);

// A quantized type name (Int8, QUInt16, ...) or an error naming `path`.
DType read_quant_type(const Ctx& ctx, const YAML::Node& n, const std::string& path);
// quantization.onnx_extra_options.TensorQuantOverrides (load_tqo.cc): null / {} = none.
std::vector<TensorQuantOverride> read_tensor_quant_overrides(const Ctx& ctx, const YAML::Node& n,
                                                             const std::string& path);

// What ST's flow makes of a scalar as a number (yaml11.cc): for a plain scalar of the file, PyYAML 1.1's int forms
// (`010` octal 8, `0x8`, `0b1`, `1_000`, sexagesimal `1:30` = 90) and OmegaConf's float forms (`1_000.5`, `1e-3`,
// `1:30.5`, `.inf`); for a scalar tagged !!int / !!float (the numbers of an override: override_value.cc), PyYAML's
// construction of that type. Not a number (is_number false): any other scalar, which ST's flow takes as a string
// (the readers then evaluate it as an arithmetic string). `error` is set (and `value` empty) when PyYAML resolves
// the form but fails to construct it (`0b_`).
struct Yaml11Number {
  bool is_number = false;
  std::optional<double> value;
  std::string error;
};
Yaml11Number yaml11_number(const YAML::Node& n);

// The value text of command-line override `ov` as Hydra's override grammar reads it, each scalar tagged with the
// type Hydra gives it, without source marks (override_value.cc); a config error naming `ov` when Hydra refuses it.
YAML::Node override_value(const std::string& ov, const std::string& value);

bool read_bool(const Ctx& ctx, const YAML::Node& n, const std::string& path);
double read_number(const Ctx& ctx, const YAML::Node& n, const std::string& path);
int64_t read_int(const Ctx& ctx, const YAML::Node& n, const std::string& path);
std::string read_string(const Ctx& ctx, const YAML::Node& n, const std::string& path);  // ${now:} expanded

// Getters with defaults: an absent or null key keeps `def`.
bool get_bool(MapReader& m, const std::string& key, bool def);
double get_number(MapReader& m, const std::string& key, double def);
int64_t get_int(MapReader& m, const std::string& key, int64_t def);
std::string get_string(MapReader& m, const std::string& key, const std::string& def = "");
// A string handed to the operating system (a path, a shell command): a NUL byte is refused naming the key (the
// system would silently read the string only up to it: 'data.npz\0x' would open data.npz).
std::string get_path(MapReader& m, const std::string& key, const std::string& def = "");
void check_no_nul(const Ctx& ctx, const YAML::Node& n, const std::string& path, const std::string& value);
std::vector<std::string> get_string_list(MapReader& m, const std::string& key);  // null -> empty
// Range checks on a value already read (`what` e.g. "in (0, 1]").
void check_range(MapReader& m, const std::string& key, bool ok, double v, const char* what);

// Enum by its to_string() spelling, case-insensitively; lists the accepted spellings on error.
template <typename E>
E get_enum(MapReader& m, const std::string& key, E def, std::initializer_list<E> all) {
  YAML::Node n = m.get(key);
  if (is_null(n)) return def;
  std::string p = m.path(key);
  if (!n.IsScalar()) key_fail(m.ctx(), n, p, "expected one of " + [&] {
    std::string s;
    for (E e : all) s += (s.empty() ? "" : ", ") + std::string(to_string(e));
    return s;
  }() + ", got " + show(n));
  std::string v = n.Scalar();
  std::string names;
  for (E e : all) {
    if (iequals(v, to_string(e))) return e;
    names += (names.empty() ? "" : ", ") + std::string(to_string(e));
  }
  key_fail(m.ctx(), n, p, "expected one of " + names + ", got " + show(n));
}

// Sections (load_quant.cc).
void read_quantization(const Ctx& ctx, const YAML::Node& node, QuantizationConfig& q);
// Rules between sections that need only the config, on the values read from `root` (rules.cc).
void check_rules(const Ctx& ctx, const YAML::Node& root, const Config& cfg);

}  // namespace oq::config::detail
