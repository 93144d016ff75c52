// The score an external evaluator prints (full_auto's `metric: evaluator_command`): its last output line must be a
// plain finite decimal number, read the same whatever the locale.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace oq::search {

// The last non-blank line of `output`, without its surrounding white space ("" when there is none).
std::string last_output_line(std::string_view output);

// `line` (surrounding white space allowed) as a number when it is a plain decimal: an optional sign, digits with
// an optional decimal point ("97", "97.25", ".5", "-3."), an optional exponent ("1e-3"). Anything else (a decimal
// comma, hexadecimal, inf / nan, a unit or other text around the number) is nullopt with the reason in *why.
// Parsed with std::from_chars: the C locale's decimal point, whatever LC_NUMERIC says.
std::optional<double> parse_score_line(std::string_view line, std::string* why = nullptr);

}  // namespace oq::search
