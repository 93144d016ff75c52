// oq_bench_executor: latency of the engine on one model, printed as one JSON line (read by bench_executor.py).
//
//   oq_bench_executor MODEL [--batch 1] [--threads 1] [--warmup 3] [--runs 20] [--preprocess] [--channel-block B]
//
// The input (every real graph input, symbolic dims set to --batch, other unknown dims to 1) is random normal
// data with a fixed seed. Times: load (parse the file), build (Session construction: kernels, constant
// folding of QDQ weights), first run (oneDNN primitive creation and weight reorders happen here), then
// `runs` timed runs after `warmup` untimed ones; the median is the figure reported.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "core/error.h"
#include "core/log.h"
#include "core/parallel.h"
#include "exec/session.h"
#include "ir/passes/passes.h"
#include "onnx/model_io.h"

using namespace oq;
using clk = std::chrono::steady_clock;

static double ms_since(clk::time_point t0) {
  return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
}

int main(int argc, char** argv) {
  CLI::App cli{"onnxquant executor latency benchmark"};
  std::string model;
  int batch = 1, threads = 1, warmup = 3, runs = 20;
  bool preprocess = false;
  int channel_block = -1;
  cli.add_option("model", model, "ONNX model")->required();
  cli.add_option("--batch", batch, "value of the symbolic (batch) dimension");
  cli.add_option("--threads", threads, "threads for oneDNN and the engine's kernels");
  cli.add_option("--warmup", warmup, "untimed runs after the first one");
  cli.add_option("--runs", runs, "timed runs");
  cli.add_flag("--preprocess", preprocess, "apply onnxquant's pre-processing passes (BN folding, ...) first");
  cli.add_option("--channel-block", channel_block,
                 "blocked layout for convolution chains: 8, 16, 0 = off, -1 = the CPU's (exec/layout.h)");
  CLI11_PARSE(cli, argc, argv);
  try {
    spdlog::set_level(spdlog::level::warn);
    set_num_threads(threads);
    auto t0 = clk::now();
    ir::Model m = onnx::load_model(model);
    if (preprocess) ir::passes::preprocess(m);
    double load_ms = ms_since(t0);
    t0 = clk::now();
    exec::SessionOptions so;
    so.channel_block = channel_block;
    exec::Session s(m, so);
    double build_ms = ms_since(t0);

    std::mt19937 rng(1234);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::map<std::string, Tensor> feeds;
    for (const auto* vi : m.graph.real_inputs()) {
      Shape shape;
      auto st = vi->static_shape();
      if (!st) fail(ErrorKind::Usage, "input '{}' has unknown rank", vi->name);
      for (size_t i = 0; i < st->size(); ++i) shape.push_back((*st)[i] >= 0 ? (*st)[i] : (i == 0 ? batch : 1));
      if (vi->dtype != DType::Float) fail(ErrorKind::Usage, "input '{}' is not float", vi->name);
      Tensor t(DType::Float, shape);
      for (auto& v : t.span<float>()) v = nd(rng);
      feeds[vi->name] = t;
    }
    t0 = clk::now();
    s.run(feeds);
    double first_ms = ms_since(t0);
    for (int i = 0; i < warmup; ++i) s.run(feeds);
    std::vector<double> times;
    for (int i = 0; i < runs; ++i) {
      t0 = clk::now();
      s.run(feeds);
      times.push_back(ms_since(t0));
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    double median = sorted.empty() ? 0 : (sorted.size() % 2 ? sorted[sorted.size() / 2]
                                                             : 0.5 * (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]));
    std::printf("{\"load_ms\": %.3f, \"build_ms\": %.3f, \"first_ms\": %.3f, \"median_ms\": %.4f, \"min_ms\": %.4f, \"times_ms\": [",
                load_ms, build_ms, first_ms, median, sorted.empty() ? 0 : sorted.front());
    for (size_t i = 0; i < times.size(); ++i) std::printf("%s%.4f", i ? ", " : "", times[i]);
    std::printf("]}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "oq_bench_executor: %s\n", e.what());
    return 1;
  }
  return 0;
}
