#include "exec/ordered_runs.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/alloc.h"
#include "core/log.h"
#include "core/parallel.h"

namespace oq::exec {
namespace {

// Thrown inside a worker (through the executor) when another worker failed. Not a std::exception, so the
// executor does not wrap it.
struct Aborted {};

class Runner {
 public:
  Runner(Session& s, const FeedSource& next, const RunOptions& ro, const OrderedRunOptions& o)
      : s_(s), next_(next), ro_(ro), o_(o) {}

  int64_t run() {
    const int want = o_.workers > 0 ? o_.workers : num_threads();
    if (want <= 1 || ro_.pre_fake_quant_observer) return run_sequential();
    index_slots();
    std::vector<char> seen(slot_names_.size());
    Feed first;
    int64_t first_index = 0;
    if (!claim(first, first_index)) return 0;
    int workers = want;
    {
      // The first feed alone, on this thread with one intra-op thread (its kernels set up once, without
      // contention): what it adds to the tensor allocator is what each further worker will hold.
      ThreadsOnThisThread one(1);
      const TensorCacheStats before = tensor_cache_stats();
      run_feed(first_index, first, seen);
      const TensorCacheStats after = tensor_cache_stats();
      const size_t per_worker = std::max<size_t>(
          1, (after.in_use_bytes + after.cached_bytes) - std::min(after.in_use_bytes + after.cached_bytes,
                                                                  before.in_use_bytes + before.cached_bytes));
      if (o_.workers == 0)
        workers = static_cast<int>(std::clamp<size_t>(o_.max_worker_memory / per_worker, 1, want));
      OQ_DEBUG("run_ordered: {} workers ({} threads asked, {} KiB per worker)", workers, want, per_worker >> 10);
    }
    if (workers <= 1) return run_sequential();
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(workers));
    try {
      for (int w = 0; w < workers; ++w) threads.push_back(start_thread(o_.role, w + 1, workers, [this] { worker(); }));
    } catch (...) {  // a thread could not be started: stop the ones that were, then report (named by start_thread)
      abort(std::current_exception());
    }
    for (auto& t : threads) t.join();
    OQ_DEBUG("run_ordered: {} feeds, {} observations held for later, {} waited for their turn", claimed_,
             deferred_.load(), waits_.load());
    if (error_) std::rethrow_exception(error_);
    return claimed_;
  }

 private:
  int64_t run_sequential() {
    for (;;) {
      Feed f;
      int64_t index;
      {
        std::lock_guard<std::mutex> lock(mu_);
        index = claimed_;
        if (!next_(f)) return claimed_;
        ++claimed_;
      }
      std::vector<Tensor> outs;
      if (!f.inputs.empty()) {
        with_origin(f, [&] {
          if (o_.before_run) o_.before_run(index, f);
          outs = s_.run(f.inputs, ro_);
        });
      }
      if (o_.on_done) o_.on_done(index, f, outs);
    }
  }

  // Runs fn; an oq::Error it throws gets the feed's origin (its data file and rows) added.
  template <typename F>
  static void with_origin(const Feed& f, F&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      if (!f.origin) throw;
      throw Error(e.kind(), fmt::format("{} (data: {})", e.what(), f.origin()));
    }
  }

  // The observed names, each with its turn counter.
  void index_slots() {
    if (!ro_.observer) return;
    if (ro_.observed) {
      slot_names_.assign(ro_.observed->begin(), ro_.observed->end());
    } else {
      for (const auto* vi : s_.graph().real_inputs()) slot_names_.push_back(vi->name);
      for (const auto& n : s_.graph().nodes)
        for (const auto& t : n.outputs)
          if (!t.empty()) slot_names_.push_back(t);
    }
    std::sort(slot_names_.begin(), slot_names_.end());
    slot_names_.erase(std::unique(slot_names_.begin(), slot_names_.end()), slot_names_.end());
    for (size_t k = 0; k < slot_names_.size(); ++k) slot_of_.emplace(slot_names_[k], static_cast<int>(k));
    turn_ = std::make_unique<std::atomic<int64_t>[]>(slot_names_.size());
    for (size_t k = 0; k < slot_names_.size(); ++k) turn_[k].store(0);
  }

  // The next feed and its index, under the lock; false when the stream is exhausted or a worker failed.
  bool claim(Feed& f, int64_t& index) {
    std::lock_guard<std::mutex> lock(mu_);
    if (exhausted_ || aborted_.load()) return false;
    if (!next_(f)) {
      exhausted_ = true;
      return false;
    }
    index = claimed_++;
    return true;
  }

  void wait_turn(int k, int64_t index) {
    std::atomic<int64_t>& t = turn_[k];
    if (t.load(std::memory_order_acquire) == index) return;
    ++waits_;
    for (;;) {
      const int64_t v = t.load(std::memory_order_acquire);
      if (v == index) return;
      if (aborted_.load()) throw Aborted{};
      t.wait(v, std::memory_order_acquire);
    }
  }

  void pass_turn(int k, int64_t index) {
    turn_[k].store(index + 1, std::memory_order_release);
    turn_[k].notify_all();
  }

  void observe(int k, int64_t index, const Tensor& v) {
    wait_turn(k, index);
    ro_.observer(slot_names_[static_cast<size_t>(k)], v);
    pass_turn(k, index);
  }

  bool ready(int k, int64_t index) const { return turn_[k].load(std::memory_order_acquire) == index; }

  // Observations of one feed whose turn had not come yet, held (up to max_deferred_bytes) instead of waited
  // for; the tensors are immutable once produced, so holding one only keeps its storage alive.
  struct Deferred {
    std::vector<std::pair<int, Tensor>> items;
    size_t bytes = 0;
  };

  // Observes the held tensors whose turn has come (all of them, waiting for each, when `all`).
  void flush(Deferred& d, int64_t index, bool all) {
    size_t kept = 0;
    for (auto& [k, v] : d.items) {
      if (all || ready(k, index)) {
        observe(k, index, v);
        d.bytes -= v.nbytes();
      } else {
        d.items[kept++] = {k, std::move(v)};
      }
    }
    d.items.resize(kept);
  }

  void run_feed(int64_t index, Feed& f, std::vector<char>& seen) {
    std::fill(seen.begin(), seen.end(), 0);
    std::vector<Tensor> outs;
    if (!f.inputs.empty()) {
      if (o_.before_run) with_origin(f, [&] { o_.before_run(index, f); });
      RunOptions r = ro_;
      Deferred d;
      if (ro_.observer)
        r.observer = [&](const std::string& name, const Tensor& v) {
          auto it = slot_of_.find(name);
          if (it == slot_of_.end()) return;
          const int k = it->second;
          OQ_CHECK(!seen[k], "run_ordered: tensor '{}' observed twice in one run", name);
          seen[k] = 1;
          if (!d.items.empty()) flush(d, index, false);
          if (!ready(k, index) && d.bytes + v.nbytes() <= o_.max_deferred_bytes) {
            d.items.emplace_back(k, v);
            d.bytes += v.nbytes();
            ++deferred_;
            return;
          }
          observe(k, index, v);
        };
      with_origin(f, [&] {
        outs = s_.run(f.inputs, r);
        flush(d, index, true);
      });
    }
    // The names this feed did not show: their turn passes to the next feed.
    for (size_t k = 0; k < seen.size(); ++k)
      if (!seen[k]) {
        wait_turn(static_cast<int>(k), index);
        pass_turn(static_cast<int>(k), index);
      }
    if (o_.on_done) {
      std::lock_guard<std::mutex> lock(mu_);
      o_.on_done(index, f, outs);
    }
  }

  void worker() {
    ThreadsOnThisThread one(1);
    std::vector<char> seen(slot_names_.size());
    try {
      Feed f;
      int64_t index = 0;
      while (claim(f, index)) {
        run_feed(index, f, seen);
        f = Feed();
      }
    } catch (const Aborted&) {
    } catch (...) {
      abort(std::current_exception());
    }
  }

  void abort(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = e;
    }
    aborted_.store(true);
    for (size_t k = 0; k < slot_names_.size(); ++k) {  // wake every waiter: it sees aborted_ and leaves
      turn_[k].store(-1, std::memory_order_release);
      turn_[k].notify_all();
    }
  }

  Session& s_;
  const FeedSource& next_;
  const RunOptions& ro_;
  const OrderedRunOptions& o_;
  std::vector<std::string> slot_names_;
  std::unordered_map<std::string, int> slot_of_;
  std::unique_ptr<std::atomic<int64_t>[]> turn_;
  std::mutex mu_;
  int64_t claimed_ = 0;
  bool exhausted_ = false;
  std::atomic<bool> aborted_{false};
  std::exception_ptr error_;
  std::atomic<int64_t> waits_{0}, deferred_{0};
};

}  // namespace

int64_t run_ordered(Session& session, const FeedSource& next, const RunOptions& ro, const OrderedRunOptions& o) {
  return Runner(session, next, ro, o).run();
}

}  // namespace oq::exec
