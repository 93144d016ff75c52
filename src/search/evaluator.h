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

// Top-1 class of each sample of a [N, ...] output (argmax over everything but the batch dim; first max wins).
// As numpy's argmax (what ST's evaluation and the ORT scripts take): a row holding a NaN gets its first NaN.
std::vector<int64_t> argmax_rows(const Tensor& out);

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
  std::vector<int64_t> argmax;                // per sample
  std::vector<std::vector<Tensor>> outputs;   // per batch (OutputSnr only)
};

Reference compute_reference(exec::Session& float_session, const data::DatasetPtr& data, const EvalOptions& o);

// Score in percent (Top1, Agreement) or dB (OutputSnr). `ref` needed for Agreement and OutputSnr.
double evaluate(exec::Session& session, const data::DatasetPtr& data, const EvalOptions& o,
                const Reference* ref = nullptr, const exec::RunOptions& ro = {});

}  // namespace oq::search
