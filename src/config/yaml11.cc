// Numbers as ST's flow reads them: PyYAML 1.1's int forms and OmegaConf 2.3's float forms for the plain scalars of
// the file, and PyYAML's !!int / !!float construction for tagged scalars (the tags the override reader gives the
// numbers of Hydra's override grammar: override_value.cc).
#include <algorithm>
#include <cmath>
#include <optional>
#include <regex>
#include <string>

#include "config/yaml_read.h"

namespace oq::config::detail {
namespace {

const std::string kIntTag = "tag:yaml.org,2002:int";
const std::string kFloatTag = "tag:yaml.org,2002:float";

// PyYAML 1.1's implicit resolver of tag:yaml.org,2002:int (yaml/resolver.py).
const std::regex& int_form() {
  static const std::regex re(
      "[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+");
  return re;
}

// The float resolver OmegaConf 2.3 adds to PyYAML's (omegaconf/_utils.py get_yaml_loader; it accepts every form of
// PyYAML's own, which comes first, and exponents without a dot or a sign: `1e-3`). Checked after int_form, as
// PyYAML tries the resolvers in their order of registration.
const std::regex& float_form() {
  static const std::regex re(
      "[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
      "|\\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(?:inf|Inf|INF)"
      "|\\.(?:nan|NaN|NAN)");
  return re;
}

// Python's int(s, base) for the digits PyYAML hands it (no sign, no '_'); nullopt when Python raises.
std::optional<double> python_int(const std::string& s, int base) {
  if (s.empty()) return std::nullopt;
  double v = 0;
  for (char c : s) {
    const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                  : std::isalpha(static_cast<unsigned char>(c)) ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
                                                                 : 99;
    if (d >= base) return std::nullopt;
    v = v * base + d;
  }
  return v;
}

// Python's float(s) for what PyYAML hands it (lower case, no sign, no '_'): decimal forms, inf, nan.
std::optional<double> python_float(const std::string& s) {
  static const std::regex dec("(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:e[-+]?[0-9]+)?");
  if (s == "inf" || s == "infinity") return HUGE_VAL;
  if (s == "nan") return std::nan("");
  if (!std::regex_match(s, dec)) return std::nullopt;
  return std::strtod(s.c_str(), nullptr);
}

// Sexagesimal `1:30` (90): each part converted by `part`, the last the units, each earlier one 60 times the next.
template <typename F>
std::optional<double> sexagesimal(const std::string& s, F part) {
  double v = 0;
  size_t b = 0;
  for (;;) {
    const size_t e = s.find(':', b);
    auto p = part(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (!p) return std::nullopt;
    v = v * 60 + *p;
    if (e == std::string::npos) return v;
    b = e + 1;
  }
}

// PyYAML's construct_yaml_int / construct_yaml_float: '_' dropped, the sign taken off, then the form by its prefix.
std::optional<double> construct(std::string s, bool is_float) {
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  const double sign = s[0] == '-' ? -1 : 1;
  if (s[0] == '-' || s[0] == '+') s.erase(0, 1);
  if (s.empty()) return std::nullopt;
  std::optional<double> v;
  if (is_float) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (s == ".inf") v = HUGE_VAL;
    else if (s == ".nan") v = std::nan("");
    else if (s.find(':') != std::string::npos) v = sexagesimal(s, python_float);
    else v = python_float(s);
  } else if (s == "0") {
    v = 0;
  } else if (s.rfind("0b", 0) == 0) {
    v = python_int(s.substr(2), 2);
  } else if (s.rfind("0x", 0) == 0) {
    v = python_int(s.substr(2), 16);
  } else if (s[0] == '0') {
    v = python_int(s, 8);
  } else if (s.find(':') != std::string::npos) {
    v = sexagesimal(s, [](const std::string& p) { return python_int(p, 10); });
  } else {
    v = python_int(s, 10);
  }
  if (v) *v *= sign;
  return v;
}

}  // namespace

Yaml11Number yaml11_number(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  bool is_float;
  if (n.Tag() == kIntTag || n.Tag() == kFloatTag) {
    is_float = n.Tag() == kFloatTag;
  } else if (n.Tag() == "?") {  // a plain scalar: PyYAML's implicit resolution
    if (std::regex_match(s, int_form())) is_float = false;
    else if (std::regex_match(s, float_form())) is_float = true;
    else return {};
  } else {
    return {};  // quoted, !!str, or a string of Hydra's override grammar
  }
  Yaml11Number out;
  out.is_number = true;
  out.value = construct(s, is_float);
  if (!out.value)
    out.error = std::string("PyYAML (ST's flow) cannot read it as ") + (is_float ? "a float" : "an integer");
  return out;
}

}  // namespace oq::config::detail
