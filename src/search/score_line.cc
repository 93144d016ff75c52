#include "search/score_line.h"

#include <cctype>
#include <charconv>
#include <cmath>

namespace oq::search {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) {
  const auto sp = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && sp(s.front())) s.remove_prefix(1);
  while (!s.empty() && sp(s.back())) s.remove_suffix(1);
  return s;
}

// Length of the plain decimal at the start of `s` (sign, digits and point, exponent), 0 when there is none.
size_t decimal_length(std::string_view s) {
  size_t i = 0, digits = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  for (; i < s.size() && is_digit(s[i]); ++i) ++digits;
  if (i < s.size() && s[i] == '.')
    for (++i; i < s.size() && is_digit(s[i]); ++i) ++digits;
  if (digits == 0) return 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1, exp_digits = 0;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    for (; j < s.size() && is_digit(s[j]); ++j) ++exp_digits;
    if (exp_digits) i = j;
  }
  return i;
}

// A decimal comma: digits, one comma, digits ("99,44", "-0,5"), as a printf under a de_DE / fr_FR locale writes.
bool decimal_comma(std::string_view s) {
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
  const size_t c = s.find(',');
  if (c == std::string_view::npos || c == 0 || c + 1 == s.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (i != c && !is_digit(s[i])) return false;
  return true;
}

}  // namespace

std::string last_output_line(std::string_view output) {
  const size_t end = output.find_last_not_of(" \t\r\n\v\f");
  if (end == std::string_view::npos) return "";
  const size_t nl = output.find_last_of('\n', end);
  const size_t start = nl == std::string_view::npos ? 0 : nl + 1;
  return std::string(trim(output.substr(start, end - start + 1)));
}

std::optional<double> parse_score_line(std::string_view line, std::string* why) {
  auto refuse = [&](std::string reason) -> std::optional<double> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  const std::string_view s = trim(line);
  if (s.empty()) return refuse("an empty line");
  if (decimal_comma(s))
    return refuse("a decimal comma, as the evaluator's locale writes numbers (LC_ALL / LC_NUMERIC such as "
                  "de_DE.UTF-8): print it with a decimal point, e.g. start the command with LC_NUMERIC=C (LC_ALL=C "
                  "when LC_ALL is set: it overrides LC_NUMERIC)");
  const size_t n = decimal_length(s);
  if (n != s.size()) return refuse("not a plain decimal number (hexadecimal, inf, nan, units and other text are refused)");
  // from_chars takes no '+'; the C locale's '.' whatever the process locale.
  const std::string_view digits = s[0] == '+' ? s.substr(1) : s;
  double v = 0;
  const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size() || !std::isfinite(v))
    return refuse("not a finite number");
  return v;
}

}  // namespace oq::search
