// The one pass/fail rule of full_auto: score >= threshold, where threshold = 8-bit score - tolerance. Both are
// sums and differences of decimal-looking doubles (98.9 - 0.1 = 98.80000000000001), so the comparison allows a
// relative 1e-9: an attempt exactly at the documented edge passes.
#pragma once
#include <algorithm>
#include <cmath>

namespace oq::search {

inline bool passes(double score, double threshold) {
  return score >= threshold - 1e-9 * std::max(1.0, std::abs(threshold));
}

}  // namespace oq::search
