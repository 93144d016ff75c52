// OmegaConf's interpolation grammar, as far as onnxquant takes it: `${now:FORMAT}` is expanded (Hydra's resolver:
// strftime of the load time), every other interpolation is an error. Escapes and nesting as OmegaConf 2.1+ reads
// them (its OmegaConfGrammarLexer.g4 / grammar_visitor.py):
//   * top level: 2k+1 backslashes before `${` are k backslashes and a literal `${` (`\${x}` is the text `${x}`);
//     2k backslashes before `${` are k backslashes and an interpolation; other backslashes are literal.
//   * an interpolation ends at its matching `}`: `${...}` and `{...}` inside it nest.
//   * a resolver's argument is resolved inside out (`${now:${now:%Y}}` formats what `${now:%Y}` gave); white space
//     around it is dropped, and `\` before one of \ ( ) [ ] { } : = , space tab is that character.
#include <cctype>
#include <string>

#include "config/config.h"
#include "core/error.h"

namespace oq::config {
namespace {

constexpr int kMaxDepth = 32;

class Expander {
 public:
  explicit Expander(std::time_t now) : now_(now) {}

  // The value with its interpolations expanded; false with error_ set otherwise.
  bool top_level(std::string_view v, std::string& out) { return text(v, out, 0, true); }
  const std::string& error() const { return error_; }

 private:
  bool set_error(std::string e) {
    if (error_.empty()) error_ = std::move(e);
    return false;
  }

  // The end (one past the closing '}') of the interpolation that starts at v[open] == '$', npos when unterminated.
  static size_t interpolation_end(std::string_view v, size_t open) {
    int depth = 0;
    for (size_t i = open; i < v.size(); ++i) {
      if (v[i] == '\\') {
        ++i;  // an escaped character never opens nor closes
      } else if (v[i] == '$' && i + 1 < v.size() && v[i + 1] == '{') {
        ++depth;
        ++i;
      } else if (v[i] == '{') {
        ++depth;
      } else if (v[i] == '}' && --depth == 0) {
        return i + 1;
      }
    }
    return std::string_view::npos;
  }

  // `v` as text: the top level of a value (backslashes are literal unless before `${`), or a resolver's argument
  // (OmegaConf's escapes apply).
  bool text(std::string_view v, std::string& out, int depth, bool top) {
    for (size_t i = 0; i < v.size();) {
      if (v[i] == '\\') {
        size_t n = 0;
        while (i + n < v.size() && v[i + n] == '\\') ++n;
        const bool before_interpolation = v.substr(i + n, 2) == "${";
        if (top && !before_interpolation) {
          out.append(n, '\\');
          i += n;
          continue;
        }
        if (before_interpolation) {
          out.append(n / 2, '\\');
          i += n;
          if (n % 2 == 1) {  // an escaped `${`: literal text
            out += "${";
            i += 2;
          }
          continue;
        }
        // In an argument: `\\` is one backslash, `\{`, `\:`, ... the character; a lone one stays.
        const char next = i + 1 < v.size() ? v[i + 1] : '\0';
        if (next && std::string_view("\\()[]{}:=, \t").find(next) != std::string_view::npos) {
          out += next;
          i += 2;
        } else {
          out += '\\';
          ++i;
        }
        continue;
      }
      if (v.substr(i, 2) == "${") {
        const size_t end = interpolation_end(v, i);
        if (end == std::string_view::npos) return set_error("unterminated interpolation in " + quote(v));
        if (!interpolation(v.substr(i, end - i), out, depth)) return false;
        i = end;
        continue;
      }
      out += v[i++];
    }
    return true;
  }

  // `whole` is `${...}` with its matching braces.
  bool interpolation(std::string_view whole, std::string& out, int depth) {
    if (depth >= kMaxDepth) return set_error("interpolations nested more than " + std::to_string(kMaxDepth) + " deep");
    std::string_view inner = whole.substr(2, whole.size() - 3);
    while (!inner.empty() && (inner.front() == ' ' || inner.front() == '\t')) inner.remove_prefix(1);
    size_t name_end = 0;
    while (name_end < inner.size() &&
           (std::isalnum(static_cast<unsigned char>(inner[name_end])) || inner[name_end] == '_' || inner[name_end] == '.'))
      ++name_end;
    const bool resolver = name_end < inner.size() && inner[name_end] == ':';
    if (!resolver || inner.substr(0, name_end) != "now")
      return set_error("interpolation " + quote(whole) + " is not supported by onnxquant (only ${now:FORMAT} is expanded)");
    std::string_view arg = inner.substr(name_end + 1);
    auto is_ws = [](char c) { return c == ' ' || c == '\t'; };
    while (!arg.empty() && is_ws(arg.front())) arg.remove_prefix(1);
    while (!arg.empty() && is_ws(arg.back()) && !(arg.size() >= 2 && arg[arg.size() - 2] == '\\')) arg.remove_suffix(1);
    std::string format;
    if (!text(arg, format, depth + 1, false)) {
      error_ += ", in " + quote(whole);
      return false;
    }
    return strftime_into(format, out);
  }

  bool strftime_into(const std::string& format, std::string& out) {
    if (format.empty()) return true;
    std::tm tm{};
    localtime_r(&now_, &tm);
    char buf[512];
    const size_t n = std::strftime(buf, sizeof buf, format.c_str(), &tm);
    if (n == 0) return set_error(quote("${now:" + format + "}") + " expands to nothing or too long a string");
    out.append(buf, n);
    return true;
  }

  std::time_t now_;
  std::string error_;
};

}  // namespace

std::optional<std::string> try_expand_interpolations(std::string_view value, std::time_t now, std::string* error) {
  Expander e(now);
  std::string out;
  if (!e.top_level(value, out)) {
    if (error) *error = e.error();
    return std::nullopt;
  }
  return out;
}

std::string expand_interpolations(std::string_view value, const std::string& key_path, std::time_t now) {
  std::string err;
  auto v = try_expand_interpolations(value, now, &err);
  if (!v) fail(ErrorKind::Config, "{}: {}", key_path, err);
  return *v;
}

}  // namespace oq::config
