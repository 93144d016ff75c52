// Greedy search (iterative_quant_parameters.search: greedy): starting from every ranked tensor in Int4, move
// tensors to Int8 from the lowest-ranked up until the score passes, then try to move each Int8 tensor back to
// Int4, highest-ranked first, keeping every move that still passes. More evaluations than the bisection
// (up to 2·N), but the answer is not tied to a prefix of the ranking. A set met again (phase 2's first trial is
// always one phase 1 measured) takes its earlier score: no set is evaluated twice. Independent of models: unit-tested
// with mock evaluators.
#pragma once
#include <functional>
#include <optional>
#include <vector>

namespace oq::search {

struct SetAttempt {
  std::vector<bool> int8;  // per ranked tensor: kept in Int8
  double score = 0;
  bool passed = false;
};

struct GreedyResult {
  std::vector<SetAttempt> attempts;  // in evaluation order (the all-Int4 attempt first)
  std::optional<size_t> answer;      // the final passing set (index into attempts)
};

// `evaluate(int8)` returns the score of the model with those tensors in Int8 (score >= threshold passes); it is
// called once per set (an attempt repeating a set reuses its score).
// With `all_int8_score` (the 8-bit reference, measured and written by the caller), as in bisection_walk: the set
// with every tensor in Int8 (n_tensors > 0) is not evaluated (its attempt takes that score) and is never the
// answer: when phase 1 has to go all the way and phase 2 moves nothing back to Int4, there is no answer (the
// 8-bit reference is).
GreedyResult greedy_walk(int64_t n_tensors, double all_int4_score, double threshold,
                         const std::function<double(const std::vector<bool>&)>& evaluate,
                         std::optional<double> all_int8_score = std::nullopt);

}  // namespace oq::search
