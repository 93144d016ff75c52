// Arithmetic strings for config values (interpolations: interpolate.cc).
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

#include "config/config.h"
#include "core/error.h"

namespace oq::config {
namespace {

// A hand-written recursive-descent parser (no library evaluates these safely and this small):
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/') unary)*
//   unary   := ('+' | '-') unary | primary
//   primary := NUMBER | '(' expr ')'
//   NUMBER  := digits ['.' digits] [('e'|'E') ['+'|'-'] digits]   (also ".5" and "5."; no integer 010)
class ArithParser {
 public:
  explicit ArithParser(std::string_view s) : s_(s) {}

  bool parse(double& out) {
    if (!expr(out, 0)) return false;
    skip_ws();
    if (pos_ != s_.size()) return set_error("unexpected '" + std::string(1, s_[pos_]) + "'");
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  static constexpr int kMaxDepth = 64;

  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool set_error(std::string e) {
    if (error_.empty()) error_ = std::move(e);
    return false;
  }
  bool expr(double& v, int depth) {
    if (!term(v, depth)) return false;
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size() || (s_[pos_] != '+' && s_[pos_] != '-')) return true;
      char op = s_[pos_++];
      double r;
      if (!term(r, depth)) return false;
      v = op == '+' ? v + r : v - r;
    }
  }
  bool term(double& v, int depth) {
    if (!unary(v, depth)) return false;
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size() || (s_[pos_] != '*' && s_[pos_] != '/')) return true;
      char op = s_[pos_++];
      double r;
      if (!unary(r, depth)) return false;
      if (op == '/' && r == 0.0) return set_error("division by zero");
      v = op == '*' ? v * r : v / r;
    }
  }
  bool unary(double& v, int depth) {
    if (depth > kMaxDepth) return set_error("expression nested too deeply");
    skip_ws();
    if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) {
      char op = s_[pos_++];
      if (!unary(v, depth + 1)) return false;
      if (op == '-') v = -v;
      return true;
    }
    return primary(v, depth);
  }
  bool primary(double& v, int depth) {
    skip_ws();
    if (pos_ >= s_.size()) return set_error("unexpected end of expression");
    if (s_[pos_] == '(') {
      ++pos_;
      if (!expr(v, depth + 1)) return false;
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ')') return set_error("missing ')'");
      ++pos_;
      return true;
    }
    return number(v);
  }
  bool number(double& v) {
    size_t start = pos_;
    auto digits = [&] {
      size_t b = pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      return pos_ - b;
    };
    size_t n = digits();
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      n += digits();
    }
    if (n == 0) {
      pos_ = start;
      return set_error(pos_ < s_.size() ? "unexpected '" + std::string(1, s_[pos_]) + "'" : "expected a number");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      size_t save = pos_++;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) pos_ = save;  // "2e" is not an exponent; the parser then stops at 'e'
    }
    std::string lit(s_.substr(start, pos_ - start));
    // An integer literal with a leading zero: octal for PyYAML 1.1 (a plain `010` is 8 in ST's flow: yaml11.cc),
    // an error for Python 3 and a string for Hydra's override grammar; decimal here would be a third reading.
    if (lit.size() > 1 && lit[0] == '0' && lit.find_first_not_of("0123456789") == std::string::npos &&
        lit.find_first_not_of('0') != std::string::npos)
      return set_error("the integer '" + lit + "' has a leading zero (octal for PyYAML, a string for Hydra's "
                       "override grammar, an error for Python): write it without the zero");
    v = std::strtod(lit.c_str(), nullptr);
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

std::optional<double> eval_arithmetic(std::string_view text, std::string* error) {
  ArithParser p(text);
  double v = 0;
  if (!p.parse(v)) {
    if (error) *error = p.error();
    return std::nullopt;
  }
  if (!std::isfinite(v)) {
    if (error) *error = "result is not finite";
    return std::nullopt;
  }
  return v;
}

}  // namespace oq::config
