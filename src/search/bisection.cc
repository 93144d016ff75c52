#include "search/bisection.h"

#include <algorithm>
#include <map>

#include "search/passes.h"
#include "search/ranking.h"

namespace oq::search {

WalkResult bisection_walk(int64_t n_tensors, double all_int4_score, double threshold,
                          const std::function<double(int64_t)>& evaluate,
                          const std::function<void(const Attempt&)>& on_write, std::optional<double> all_int8_score) {
  WalkResult w;
  w.steps = bisection_steps(n_tensors);
  std::map<int64_t, double> cache{{0, all_int4_score}};
  if (all_int8_score && n_tensors > 0) cache[n_tensors] = *all_int8_score;
  w.attempts.push_back({0, all_int4_score, passes(all_int4_score, threshold), false});
  auto write = [&](size_t idx) {
    Attempt& a = w.attempts[idx];
    if (!a.passed || a.written) return;
    if (all_int8_score && a.n_int8 == n_tensors && n_tensors > 0) return;  // the 8-bit reference, written already
    // Never write the same n twice (the walk can come back to an n it already wrote).
    for (size_t j = 0; j < idx; ++j)
      if (w.attempts[j].written && w.attempts[j].n_int8 == a.n_int8) return;
    a.written = true;
    if (on_write) on_write(a);
  };
  int64_t n = 0;
  for (int64_t step : w.steps) {
    size_t prev = w.attempts.size() - 1;
    if (w.attempts[prev].passed) {
      write(prev);
      n -= step;
    } else {
      n += step;
    }
    n = std::clamp<int64_t>(n, 0, n_tensors);
    auto it = cache.find(n);
    double score = it != cache.end() ? it->second : evaluate(n);
    cache[n] = score;
    w.attempts.push_back({n, score, passes(score, threshold), false});
  }
  write(w.attempts.size() - 1);
  for (size_t i = 0; i < w.attempts.size(); ++i) {
    if (all_int8_score && w.attempts[i].n_int8 == n_tensors && n_tensors > 0) continue;  // not a mixed attempt
    if (w.attempts[i].passed && (!w.answer || w.attempts[i].n_int8 < w.attempts[*w.answer].n_int8)) w.answer = i;
  }
  return w;
}

}  // namespace oq::search
