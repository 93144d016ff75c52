#include "search/greedy.h"

#include <algorithm>
#include <map>

#include "search/passes.h"

namespace oq::search {

GreedyResult greedy_walk(int64_t n_tensors, double all_int4_score, double threshold,
                         const std::function<double(const std::vector<bool>&)>& evaluate,
                         std::optional<double> all_int8_score) {
  GreedyResult r;
  auto all_int8 = [&](const std::vector<bool>& f) {
    return all_int8_score && n_tensors > 0 && std::find(f.begin(), f.end(), false) == f.end();
  };
  std::vector<bool> cur(static_cast<size_t>(n_tensors), false);
  // Scores by set, as the bisection's cache: phase 2's first trial is the set phase 1 measured one step before
  // its last (or the all-Int4 set), and its attempt takes that score instead of a second evaluation. A set met
  // again is always one that failed (phase 2's trials are subsets of a passing set, never that set itself).
  std::map<std::vector<bool>, double> cache{{cur, all_int4_score}};
  if (all_int8_score && n_tensors > 0) cache[std::vector<bool>(static_cast<size_t>(n_tensors), true)] = *all_int8_score;
  auto score = [&](const std::vector<bool>& f) {
    if (auto it = cache.find(f); it != cache.end()) return it->second;
    const double s = evaluate(f);
    cache[f] = s;
    return s;
  };
  r.attempts.push_back({cur, all_int4_score, passes(all_int4_score, threshold)});
  if (r.attempts.back().passed) {
    r.answer = 0;
    return r;
  }
  // Phase 1: lowest-ranked tensors to Int8 until the score passes.
  bool passed = false;
  for (int64_t i = n_tensors - 1; i >= 0 && !passed; --i) {
    cur[static_cast<size_t>(i)] = true;
    double s = score(cur);
    passed = passes(s, threshold);
    r.attempts.push_back({cur, s, passed});
  }
  if (!passed) return r;
  if (!all_int8(cur)) r.answer = r.attempts.size() - 1;
  // Phase 2: each Int8 tensor back to Int4, highest-ranked first, when the score still passes.
  for (int64_t i = 0; i < n_tensors; ++i) {
    if (!cur[static_cast<size_t>(i)]) continue;
    std::vector<bool> trial = cur;
    trial[static_cast<size_t>(i)] = false;
    double s = score(trial);
    bool ok = passes(s, threshold);
    r.attempts.push_back({trial, s, ok});
    if (ok) {
      cur = trial;
      r.answer = r.attempts.size() - 1;
    }
  }
  return r;
}

}  // namespace oq::search
