// Evaluators: the score of a model on a data set, computed in-process with the executor. The same number is
// shown everywhere (log, reports, the `eval` command).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "exec/session.h"
#include "ir/graph.h"

namespace oq::search {

enum class MetricKind { Top1, Agreement, OutputSnr };

// An output of a batch of `samples` samples holds one row per sample: its values per row (the classes the
// top-1 class is taken from) are numel / samples, whatever the output's shape ([N, C], [N, C, 1, 1], [N, 2, 5],
// or [C] when a batch of one is squeezed). Dim 0 is not taken for the batch: a fixed-batch-1 model's [C] output
// is one sample of C classes, not C samples of one. An output whose size is not a positive multiple of `samples`
// is an error naming it (`name`, the model's output) and its shape.
int64_t values_per_row(const Tensor& out, int64_t samples, const std::string& name);

// Top-1 class of each of the `samples` rows of `out` (argmax over the values_per_row values; first max wins).
// As numpy's argmax (what ST's evaluation and the ORT scripts take): a row holding a NaN gets its first NaN.
std::vector<int64_t> argmax_rows(const Tensor& out, int64_t samples, const std::string& name);

struct EvalOptions {
  MetricKind metric = MetricKind::Top1;
  int64_t batch_size = 1;
  std::string progress_label = "Evaluation";
  // Warn, after the run, naming the samples whose (float) inputs hold NaN or infinite values. A caller that
  // evaluates the same data several times (full_auto) turns it off after the first.
  bool warn_non_finite = true;
};

// Reference outputs of the float model, kept per sample so agreement/SNR can compare (argmax for agreement,
// full outputs for SNR — memory grows with the set for SNR only).
struct Reference {
  std::vector<int64_t> argmax;                // per sample (Agreement only)
  int64_t samples = 0;                        // samples run
  std::vector<std::vector<Tensor>> outputs;   // per batch (OutputSnr only)
};

Reference compute_reference(exec::Session& float_session, const data::DatasetPtr& data, const EvalOptions& o);

// Score in percent (Top1, Agreement) or dB (OutputSnr). `ref` needed for Agreement and OutputSnr.
double evaluate(exec::Session& session, const data::DatasetPtr& data, const EvalOptions& o,
                const Reference* ref = nullptr, const exec::RunOptions& ro = {});

}  // namespace oq::search
