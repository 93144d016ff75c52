// The value of a command-line override as ST's flow reads it: Hydra 1.3's override grammar
// (hydra/grammar/OverrideLexer.g4, OverrideParser.g4), not PyYAML. Its primitives have their own types: only
// true/false (any letter case) are booleans (`off`, `yes`, `n` are strings), integers are decimal without a leading
// zero (`010`, `0x8`, `1:30` are strings), `#`, `~`, `&`, `!` ... are not accepted unquoted, and `%x`, `a: b`, `- a`
// are strings. Each scalar of the result carries the type Hydra gives it as a YAML tag (!!bool, !!int, !!float, a
// null node, "!" for a string), which the typed readers honour (yaml_read.cc, yaml11.cc).
#include <regex>

#include "config/yaml_read.h"

namespace oq::config::detail {
namespace {

// Characters Hydra's value lexer has no token for: "token recognition error" there, whatever YAML would make of
// them (`#` a comment, `&` an anchor, `!` a tag, `%` a directive at the start ...).
bool hydra_refuses(unsigned char c) {
  return std::string_view("#~&!<>;^`").find(static_cast<char>(c)) != std::string_view::npos ||
         (c < 0x20 && c != '\t') || c == 0x7f;
}

// The first character outside quotes and `${...}` interpolations that Hydra's lexer refuses, or npos.
size_t refused_char(const std::string& v) {
  char quote_char = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (quote_char) {
      if (c == '\\') ++i;
      else if (c == quote_char) quote_char = 0;
    } else if (c == '\'' || c == '"') {
      quote_char = c;
    } else if (c == '$' && i + 1 < v.size() && v[i + 1] == '{') {
      const size_t close = v.find('}', i);
      if (close == std::string::npos) return std::string::npos;  // Hydra refuses it too; the reader says why
      i = close;
    } else if (hydra_refuses(static_cast<unsigned char>(c))) {
      return i;
    }
  }
  return std::string::npos;
}

// A primitive of Hydra's grammar with the type its lexer gives it: a lone NULL, BOOL, INT or FLOAT token is that
// type, anything else a string.
YAML::Node hydra_primitive(const std::string& text) {
  static const std::regex null_re("[Nn][Uu][Ll][Ll]");
  static const std::regex bool_re("[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]");
  static const std::string intu = "(?:0|[1-9](?:_?[0-9])*)", digits = "[0-9](?:_?[0-9])*";
  static const std::string point = "(?:" + intu + "\\.|(?:" + intu + ")?\\." + digits + ")";
  static const std::regex int_re("[+-]?" + intu);
  static const std::regex float_re("[+-]?(?:(?:" + intu + "|" + point + ")[eE][+-]?" + digits + "|" + point +
                                   "|[Ii][Nn][Ff]|[Nn][Aa][Nn])");
  if (std::regex_match(text, null_re)) return YAML::Node(YAML::NodeType::Null);
  YAML::Node n(text);
  if (std::regex_match(text, bool_re)) n.SetTag("tag:yaml.org,2002:bool");
  else if (std::regex_match(text, int_re)) n.SetTag("tag:yaml.org,2002:int");
  else if (std::regex_match(text, float_re)) n.SetTag("tag:yaml.org,2002:float");
  else n.SetTag("!");
  return n;
}

// Hydra's escapes in an unquoted primitive: `\,` is ',' (also \( \) \[ \] \{ \} \: \= \\ and an escaped blank);
// any other backslash stays.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && std::string_view("\\()[]{}:=, \t").find(s[i + 1]) != std::string_view::npos)
      ++i;
    out += s[i];
  }
  return out;
}

// A copy of a YAML-parsed list / map value without source marks, each plain scalar typed as Hydra's primitive;
// quoted scalars stay strings. Keys are kept as written; pairs with a repeated key are kept (the caller refuses
// them by name).
YAML::Node typed_copy(const YAML::Node& n) {
  if (n.IsScalar()) {
    if (n.Tag() == "?") return hydra_primitive(n.Scalar());
    YAML::Node out(n.Scalar());
    out.SetTag(n.Tag());
    return out;
  }
  YAML::Node out(n.IsSequence() ? YAML::NodeType::Sequence : n.IsMap() ? YAML::NodeType::Map : YAML::NodeType::Null);
  if (n.IsSequence())
    for (const auto& e : n) out.push_back(typed_copy(e));
  if (n.IsMap())
    for (const auto& kv : n) {
      YAML::Node k(kv.first.IsScalar() ? YAML::Node(kv.first.Scalar()) : typed_copy(kv.first));
      out.force_insert(k, typed_copy(kv.second));
    }
  return out;
}

}  // namespace

YAML::Node override_value(const std::string& ov, const std::string& value) {
  if (const size_t bad = refused_char(value); bad != std::string::npos)
    fail(ErrorKind::Config, "override {}: Hydra's override grammar (ST's command line) does not accept {} outside "
         "quotes{}; quote the value", quote(ov), quote(value.substr(bad, 1)),
         value[bad] == '#' ? " (YAML would drop the rest as a comment)" : "");
  const size_t b = value.find_first_not_of(" \t"), e = value.find_last_not_of(" \t");
  if (b == std::string::npos) return YAML::Node(YAML::NodeType::Null);  // `key=`: the key's default
  const std::string text = value.substr(b, e - b + 1);
  if (text[0] != '[' && text[0] != '{' && text[0] != '\'' && text[0] != '"') return hydra_primitive(unescape(text));
  try {
    return typed_copy(YAML::Load(text));
  } catch (const YAML::Exception& ex) {
    fail(ErrorKind::Config, "override {}: value is not valid YAML: {}", quote(ov), ex.msg);
  }
}

}  // namespace oq::config::detail
