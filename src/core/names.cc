#include "core/names.h"

#include <algorithm>
#include <cctype>

namespace oq {

size_t name_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment: insertions, deletions, substitutions and swaps of two adjacent letters cost 1.
  auto eq = [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  };
  std::vector<size_t> pprev(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (eq(a[i - 1], b[j - 1]) ? 0 : 1)});
      if (i > 1 && j > 1 && eq(a[i - 1], b[j - 2]) && eq(a[i - 2], b[j - 1]))
        cur[j] = std::min(cur[j], pprev[j - 2] + 1);
    }
    std::swap(pprev, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_name(std::string_view typed, const std::vector<std::string>& candidates, size_t max_distance) {
  std::string best;
  size_t best_d = max_distance + 1;
  for (const auto& c : candidates) {
    if (c == typed) continue;
    const size_t d = name_distance(typed, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::string closest_name(std::string_view typed, const std::vector<std::string>& candidates) {
  if (typed.empty()) return {};
  return closest_name(typed, candidates, std::min(1 + typed.size() / 3, typed.size() - 1));
}

std::string did_you_mean(std::string_view typed, const std::vector<std::string>& candidates) {
  std::string c = closest_name(typed, candidates);
  return c.empty() ? std::string() : ", did you mean '" + c + "'?";
}

}  // namespace oq
