// exec::run_ordered: feeds spread over worker threads give each observer the same sequence of tensors, in
// feed order and never two calls for one name at once, as a plain loop of Session::run on one thread; outputs
// reach on_done under their feed's index; errors stop every worker and come back to the caller. Reference:
// the same Session run feed after feed on one thread (the workers' kernels also run on one thread each, so
// the values are bit-identical).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_set>

#include "calib/calibrator.h"
#include "core/parallel.h"
#include "exec/ordered_runs.h"
#include "exec/session.h"
#include "data/array_dataset.h"
#include "onnx/model_io.h"
#include "search/evaluator.h"

using namespace oq;

namespace {

ir::Model load(const char* name) { return onnx::load_model(std::string(OQ_SOURCE_DIR) + "/testdata/" + name); }

// n feeds [1, 1, 16, 16] (feed i different from every other), every `empty_every`-th one empty.
std::vector<exec::Feed> make_feeds(const std::string& input, int n, int empty_every = 0) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<exec::Feed> feeds(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    feeds[i].samples = 1;
    if (empty_every && i % empty_every == empty_every - 1) continue;
    Tensor x(DType::Float, {1, 1, 16, 16});
    for (float& v : x.span<float>()) v = u(rng);
    feeds[i].inputs[input] = x;
  }
  return feeds;
}

exec::FeedSource source(const std::vector<exec::Feed>& feeds) {
  auto next = std::make_shared<size_t>(0);
  return [&feeds, next](exec::Feed& f) {
    if (*next >= feeds.size()) return false;
    f = feeds[(*next)++];
    return true;
  };
}

// What one observer saw: per name, the sum of each batch's values, in call order.
struct Record {
  std::mutex mu;
  std::map<std::string, std::vector<double>> seen;
  std::map<std::string, std::unique_ptr<std::atomic<int>>> busy;  // calls in flight per name
  std::atomic<int> overlaps{0};

  exec::Observer observer() {
    return [this](const std::string& name, const Tensor& v) {
      std::atomic<int>* b;
      std::vector<double>* s;
      {
        std::lock_guard<std::mutex> lock(mu);
        auto& slot = busy[name];
        if (!slot) slot = std::make_unique<std::atomic<int>>(0);
        b = slot.get();
        s = &seen[name];
      }
      if (b->fetch_add(1) != 0) ++overlaps;
      double sum = 0;
      if (v.dtype() == DType::Float)
        for (float x : v.span<float>()) sum += x;
      std::this_thread::yield();  // widen the window in which a second call for this name would overlap
      s->push_back(sum);
      b->fetch_sub(1);
    };
  }
};

struct Result {
  std::map<std::string, std::vector<double>> seen;
  std::map<int64_t, std::vector<Tensor>> outputs;
  int64_t feeds = 0;
  int overlaps = 0;
};

Result run(exec::Session& s, const std::vector<exec::Feed>& feeds, int workers,
           const std::unordered_set<std::string>* observed = nullptr, size_t deferred = 0) {
  Record rec;
  Result r;
  exec::RunOptions ro;
  ro.observer = rec.observer();
  ro.observed = observed;
  exec::OrderedRunOptions o;
  o.workers = workers;
  o.max_deferred_bytes = deferred;
  o.on_done = [&](int64_t index, const exec::Feed&, std::vector<Tensor>& outs) {
    EXPECT_FALSE(r.outputs.count(index));
    r.outputs[index] = outs;
  };
  {
    ThreadsOnThisThread one(workers == 1 ? 1 : num_threads());  // workers == 1: the one-thread reference
    r.feeds = exec::run_ordered(s, source(feeds), ro, o);
  }
  r.seen = std::move(rec.seen);
  r.overlaps = rec.overlaps.load();
  return r;
}

}  // namespace

TEST(OrderedRuns, WorkersSeeWhatOneLoopSees) {
  ir::Model m = load("digits16_mobilenet.onnx");
  const std::string input = m.graph.real_inputs()[0]->name;
  const std::vector<exec::Feed> feeds = make_feeds(input, 23, 7);  // feeds 6, 13 and 20 empty
  exec::Session ref_session(m);
  const Result ref = run(ref_session, feeds, 1);
  ASSERT_EQ(ref.feeds, 23);
  ASSERT_EQ(ref.outputs.size(), 23u);
  ASSERT_GT(ref.seen.size(), 50u);
  for (const auto& [name, sums] : ref.seen) ASSERT_EQ(sums.size(), 20u) << name;  // the non-empty feeds
  // Workers that wait for their turn, and workers that hold up to 64 KiB of tensors and observe them later.
  for (auto [workers, deferred] : {std::pair{2, 0}, {3, 0}, {5, 0}, {2, 1 << 16}, {3, 1 << 16}}) {
    exec::Session s(m);
    const Result r = run(s, feeds, workers, nullptr, static_cast<size_t>(deferred));
    EXPECT_EQ(r.feeds, 23) << workers;
    EXPECT_EQ(r.overlaps, 0) << workers;
    EXPECT_EQ(r.seen, ref.seen) << workers;  // same names, same batches, same order, same bits
    ASSERT_EQ(r.outputs.size(), ref.outputs.size()) << workers;
    for (const auto& [i, outs] : ref.outputs) {
      ASSERT_EQ(r.outputs.at(i).size(), outs.size()) << i;
      for (size_t k = 0; k < outs.size(); ++k) EXPECT_TRUE(r.outputs.at(i)[k].equals(outs[k])) << i;
    }
  }
}

// Observing a chosen set lets the Session run its optimized (fused, channel-blocked) graph, as calibration
// does; the workers still see each name's batches in order.
TEST(OrderedRuns, ObservedSetOnTheOptimizedGraph) {
  ir::Model m = load("digits_mobilenet.onnx");
  const std::string input = m.graph.real_inputs()[0]->name;
  std::vector<exec::Feed> feeds(17);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (auto& f : feeds) {
    Tensor x(DType::Float, {2, 1, 8, 8});
    for (float& v : x.span<float>()) v = u(rng);
    f.inputs[input] = x;
    f.samples = 2;
  }
  std::unordered_set<std::string> observed = {input, m.graph.outputs[0].name};
  for (const auto& n : m.graph.nodes)
    if (n.op_type == "Add" || n.op_type == "GlobalAveragePool") observed.insert(n.outputs[0]);
  exec::Session ref_session(m);
  const Result ref = run(ref_session, feeds, 1, &observed);
  exec::Session s(m);
  const Result r = run(s, feeds, 2, &observed);
  EXPECT_EQ(r.overlaps, 0);
  for (const auto& name : observed) {
    ASSERT_TRUE(ref.seen.count(name)) << name;
    EXPECT_EQ(r.seen.at(name), ref.seen.at(name)) << name;
  }
  EXPECT_EQ(r.seen.size(), observed.size());  // names outside the set are not passed on
}

// Order-dependent statistics (histograms that grow batch by batch, as ORT's do) come out bit-identical.
TEST(OrderedRuns, CalibrationRangesDoNotDependOnWorkers) {
  ir::Model m = load("digits16_mobilenet.onnx");
  const std::string input = m.graph.real_inputs()[0]->name;
  const std::vector<exec::Feed> feeds = make_feeds(input, 19);
  std::vector<std::string> names = {input};
  for (const auto& n : m.graph.nodes) names.push_back(n.outputs[0]);
  for (auto method : {calib::CalibMethod::MinMax, calib::CalibMethod::Entropy, calib::CalibMethod::Percentile}) {
    std::map<std::string, calib::TensorRange> want;
    for (int workers : {1, 2, 3, 4}) {
      calib::CalibOptions o;
      o.method = method;
      o.minmax.moving_average = true;
      calib::Calibrator cal(names, o);
      exec::Session s(m);
      exec::RunOptions ro;
      ro.observer = cal.observer();
      exec::OrderedRunOptions oo;
      oo.workers = std::min(workers, 3);
      oo.max_deferred_bytes = workers == 4 ? size_t{1} << 20 : 0;  // 4: three workers holding tensors
      ThreadsOnThisThread t(workers == 1 ? 1 : num_threads());
      exec::run_ordered(s, source(feeds), ro, oo);
      auto got = cal.compute();
      ASSERT_EQ(got.size(), names.size());
      if (workers == 1) {
        want = got;
        continue;
      }
      for (const auto& [name, r] : want) {
        EXPECT_EQ(got.at(name).rmin, r.rmin) << calib::calib_method_name(method) << " " << name << " " << workers;
        EXPECT_EQ(got.at(name).rmax, r.rmax) << calib::calib_method_name(method) << " " << name << " " << workers;
      }
    }
  }
}

TEST(OrderedRuns, ObserverErrorStopsEveryWorker) {
  ir::Model m = load("digits16_mobilenet.onnx");
  const std::string input = m.graph.real_inputs()[0]->name;
  const std::string target = m.graph.nodes[m.graph.nodes.size() / 2].outputs[0];
  const std::vector<exec::Feed> feeds = make_feeds(input, 40);
  for (int workers : {1, 2, 4}) {
    exec::Session s(m);
    std::atomic<int> calls{0};
    exec::RunOptions ro;
    ro.observer = [&](const std::string& name, const Tensor&) {
      if (name == target && ++calls == 5) fail(ErrorKind::Data, "tensor '{}': bad batch", name);
    };
    try {
      exec::OrderedRunOptions o;
      o.workers = workers;
      exec::run_ordered(s, source(feeds), ro, o);
      ADD_FAILURE() << "no error with " << workers << " workers";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Data);
      EXPECT_NE(std::string(e.what()).find("bad batch"), std::string::npos) << e.what();
    }
  }
}

TEST(OrderedRuns, RunErrorAndSourceErrorReachTheCaller) {
  ir::Model m = load("digits16_mobilenet.onnx");
  const std::string input = m.graph.real_inputs()[0]->name;
  std::vector<exec::Feed> feeds = make_feeds(input, 12);
  feeds[7].inputs[input] = Tensor(DType::Float, {1, 2, 16, 16});  // wrong channel count
  exec::RunOptions ro;
  ro.observer = [](const std::string&, const Tensor&) {};
  for (int workers : {1, 2}) {
    exec::Session s(m);
    exec::OrderedRunOptions o;
    o.workers = workers;
    EXPECT_THROW(exec::run_ordered(s, source(feeds), ro, o), Error) << workers;
  }
  const std::vector<exec::Feed> good = make_feeds(input, 12);
  int calls = 0;
  exec::FeedSource broken = [&](exec::Feed& f) {
    if (++calls == 6) fail(ErrorKind::Data, "sample 5: unreadable");
    f = good[static_cast<size_t>(calls - 1)];
    return true;
  };
  exec::Session s(m);
  exec::OrderedRunOptions o;
  o.workers = 2;
  EXPECT_THROW(exec::run_ordered(s, broken, ro, o), Error);
}

// The evaluators (full_auto, eval) run on the workers: scores are identical with 1 and 3 threads, for a
// labelled metric and for the float sums of the output SNR; the top-1 is checked by hand from the outputs.
TEST(OrderedRuns, EvaluatorScoresDoNotDependOnWorkers) {
  ir::Model m = load("digits_mobilenet.onnx");
  auto ds = data::open_npz_dataset(std::string(OQ_SOURCE_DIR) + "/testdata/digits_test.npz",
                                   data::input_specs(m.graph), {});
  ASSERT_GT(ds->size(), 100);
  exec::Session s(m);
  const int saved = process_threads();
  std::map<int, std::pair<double, double>> scores;  // threads -> (top1, snr vs a perturbed reference)
  for (int threads : {1, 3}) {
    set_num_threads(threads);
    search::EvalOptions o;
    o.batch_size = 7;  // the last batch is smaller
    const double top1 = search::evaluate(s, ds, o);
    o.metric = search::MetricKind::OutputSnr;
    search::Reference ref = search::compute_reference(s, ds, o);
    for (auto& outs : ref.outputs)  // a reference the model does not reproduce exactly
      for (auto& t : outs)
        for (float& v : t.span<float>()) v *= 1.001f;
    scores[threads] = {top1, search::evaluate(s, ds, o, &ref)};
  }
  set_num_threads(saved);
  EXPECT_EQ(scores[1].first, scores[3].first);
  EXPECT_EQ(scores[1].second, scores[3].second);  // bit-identical double
  EXPECT_NEAR(scores[1].second, 20.0 * std::log10(1.0 / 0.001), 0.05);  // noise = 0.1 % of the signal

  // Top-1 by hand: argmax of each sample's output against its label, one sample at a time.
  int64_t hits = 0;
  for (int64_t i = 0; i < ds->size(); ++i) {
    auto outs = s.run(ds->sample(i));
    hits += search::argmax_rows(outs[0], 1, "out")[0] == ds->label(i);
  }
  EXPECT_DOUBLE_EQ(scores[1].first, 100.0 * static_cast<double>(hits) / static_cast<double>(ds->size()));
}

// before_run: called once per non-empty feed, on the thread that then runs it and calls on_done for it (what
// inspection relies on to keep one batch's float values per worker).
TEST(OrderedRuns, BeforeRunOnTheFeedsThread) {
  ir::Model m = load("digits16_mobilenet.onnx");
  const std::string input = m.graph.real_inputs()[0]->name;
  const std::vector<exec::Feed> feeds = make_feeds(input, 17, 5);  // feeds 4, 9 and 14 empty
  for (int workers : {1, 3}) {
    exec::Session s(m);
    static thread_local int64_t current = -1;
    std::atomic<int> before{0}, mismatched{0};
    std::vector<int64_t> done;
    exec::RunOptions ro;
    ro.observer = [](const std::string&, const Tensor&) {
      if (current < 0) std::abort();  // an observer call before this thread's before_run
    };
    exec::OrderedRunOptions o;
    o.workers = workers;
    o.before_run = [&](int64_t index, const exec::Feed& f) {
      EXPECT_FALSE(f.inputs.empty());
      current = index;
      ++before;
    };
    o.on_done = [&](int64_t index, const exec::Feed& f, std::vector<Tensor>& outs) {
      if (!f.inputs.empty() && current != index) ++mismatched;
      EXPECT_EQ(outs.empty(), f.inputs.empty());
      done.push_back(index);
    };
    EXPECT_EQ(exec::run_ordered(s, source(feeds), ro, o), 17);
    EXPECT_EQ(before.load(), 14) << workers;
    EXPECT_EQ(mismatched.load(), 0) << workers;
    std::sort(done.begin(), done.end());
    for (int64_t i = 0; i < 17; ++i) EXPECT_EQ(done.at(static_cast<size_t>(i)), i);
    current = -1;
  }
}

// A NaN in an output row is its top-1 class (its first NaN), as numpy's argmax takes it (ST's evaluation and the
// onnxruntime scripts score with it): [5, 1, NaN, 3] -> 2, not 0.
TEST(Evaluator, ArgmaxTakesNaNAsNumpyDoes) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor out = Tensor::from_vector<float>(DType::Float, {4, 4}, {5, 1, nan, 3,  0, 2, 9, 1,  nan, nan, nan, nan,
                                                                 1, nan, 7, nan});
  EXPECT_EQ(search::argmax_rows(out, 4, "out"), (std::vector<int64_t>{2, 2, 0, 1}));
}

// The rows of an output are the samples of its batch, not its dim 0: numel / samples values each.
TEST(Evaluator, RowsAreTheBatchsSamples) {
  Tensor c = Tensor::from_vector<float>(DType::Float, {5}, {1, 4, 2, 0, 3});  // [C]: a batch of one squeezed
  EXPECT_EQ(search::argmax_rows(c, 1, "out"), (std::vector<int64_t>{1}));
  EXPECT_EQ(search::values_per_row(c, 1, "out"), 5);
  Tensor head = Tensor::from_vector<float>(DType::Float, {2, 3, 1, 1}, {0, 1, 2, 5, 4, 3});  // [N, C, 1, 1]
  EXPECT_EQ(search::argmax_rows(head, 2, "out"), (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(search::values_per_row(head, 2, "out"), 3);
  std::string e;
  try {
    search::argmax_rows(Tensor(DType::Float, {3, 3}), 2, "logits");
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("model output 'logits' has shape [3,3] (9 values) for a batch of 2 samples"), std::string::npos)
      << e;
}
