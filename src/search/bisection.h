// The bisection walk of full_auto, independent of models: it asks an evaluator for the score of "the n
// lowest-ranked tensors in Int8, the rest in Int4" and decides the next n. Unit-tested with mock evaluators.
#pragma once
#include <functional>
#include <optional>
#include <vector>

namespace oq::search {

struct Attempt {
  int64_t n_int8 = 0;  // number of lowest-ranked tensors kept in Int8
  double score = 0;
  bool passed = false;
  bool written = false;  // a passing attempt the walk asked to write out
};

struct WalkResult {
  std::vector<Attempt> attempts;      // in evaluation order (the all-Int4 attempt first)
  std::optional<size_t> answer;       // index into attempts: the passing one with the fewest Int8 tensors
  std::vector<int64_t> steps;
};

// `evaluate(n)` returns the score with n tensors in Int8; `threshold` is the passing score (search::passes:
// score >= threshold, with a relative 1e-9 of slack). `all_int4_score` is the already-measured n = 0 attempt.
// `on_write(attempt)` is called for each passing attempt when the walk writes it (before moving on, and for the
// last one).
// Evaluations of an n already measured are reused, not repeated. With `all_int8_score` (the 8-bit reference,
// n = n_tensors, measured and written by the caller) that n is never evaluated, written nor the answer: when no
// mixed attempt passes there is no answer.
WalkResult bisection_walk(int64_t n_tensors, double all_int4_score, double threshold,
                          const std::function<double(int64_t)>& evaluate,
                          const std::function<void(const Attempt&)>& on_write,
                          std::optional<double> all_int8_score = std::nullopt);

}  // namespace oq::search
