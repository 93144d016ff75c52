// Data-parallel runs of one Session over a stream of feeds, with observers that see each tensor in feed order.
//
//   exec::run_ordered(session, next_feed, run_options, {.workers = 0});
//
// Calibration, inspection and evaluation run many small inferences (batch 1 by default, as ST's flow does).
// Splitting each inference over the threads pays a barrier per kernel, and the observers' statistics run on
// one thread while the others wait; running one feed per thread ("worker", each with one intra-op thread)
// keeps every core busy. The observers' results must not depend on it: the calls for one tensor name come in
// feed order, one at a time (worker k waits for the worker of the previous feed to have observed that tensor,
// or holds the tensor and observes it later: max_deferred_bytes),
// so a collector that depends on the order of its batches (ORT's growing histograms, moving averages) gives
// bit-identical results with any number of workers. Calls for different names may run at the same time on
// different threads: an observer must keep per-name state apart (or lock what it shares).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "exec/session.h"

namespace oq::exec {

struct Feed {
  std::map<std::string, Tensor> inputs;  // empty: nothing to run (the feed still counts, in order)
  int64_t samples = 0;                   // passed back to on_done (e.g. for a progress bar)
  std::vector<int64_t> labels;           // passed back to on_done untouched
  // Where the feed's data comes from ("data.npz rows 3, 7"); an error of its run gets " (data: ...)" added.
  std::function<std::string()> origin;
};

// Fills the next feed and returns true, or returns false when the stream is exhausted. Called one call at a
// time, in order (under the runner's lock).
using FeedSource = std::function<bool(Feed&)>;

// Feeds from a data::Loader (any type with bool next(Batch&) and dataset().samples_name(indices), Batch having
// inputs, indices and labels), one per batch: exec::feed_from<data::Batch>(loader).
template <typename Batch, typename Loader>
FeedSource feed_from(Loader& loader) {
  return [&loader](Feed& f) {
    Batch b;
    if (!loader.next(b)) return false;
    f.inputs = std::move(b.inputs);
    f.samples = static_cast<int64_t>(b.indices.size());
    f.labels = std::move(b.labels);
    f.origin = [&loader, idx = std::move(b.indices)] { return loader.dataset().samples_name(idx); };
    return true;
  };
}

struct OrderedRunOptions {
  // Threads running feeds at once, each with one intra-op thread. 0: num_threads(), lowered so that the
  // workers' memory (one run's tensors each, measured on the first feed) stays under max_worker_memory.
  // 1: every feed on the calling thread with all threads (exactly Session::run in a loop).
  int workers = 0;
  size_t max_worker_memory = size_t{2} << 30;
  // A worker that reaches a tensor the previous feed's worker has not observed yet goes on with its run and
  // observes that tensor later, holding up to this many bytes of such tensors (0: it waits). Worth it when
  // observers are slow (histograms): workers that trail each other by one tensor otherwise wait at each.
  // Within one feed, the names are then no longer observed in the order the run produced them: only for
  // observers whose per-name work does not depend on another name's of the same feed.
  size_t max_deferred_bytes = 0;
  // Called on the worker's thread just before a (non-empty) feed's run, outside the runner's lock: work of
  // that feed that needs no order (e.g. another model's run whose results the observer compares with).
  std::function<void(int64_t index, const Feed& feed)> before_run;
  // Called after each feed's run with its index and outputs (under the runner's lock: one call at a time,
  // not necessarily in feed order).
  std::function<void(int64_t index, const Feed& feed, std::vector<Tensor>& outputs)> on_done;
  // What the workers do, for the error when one cannot be started ("cannot start calibration worker thread 2
  // of 2: ...").
  std::string role = "inference worker";
};

// Runs every feed of `next` through `session` with `ro` (its observer wrapped as described above; names not
// in ro.observed, when set, are not passed on). Returns the number of feeds. The first error (a feed's run,
// an observer, the source) stops the workers and is rethrown here.
int64_t run_ordered(Session& session, const FeedSource& next, const RunOptions& ro, const OrderedRunOptions& o = {});

}  // namespace oq::exec
