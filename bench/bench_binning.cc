// Micro-benchmark of the calibration histogram binning (calib/binning.h), the hot loop of Entropy and
// Percentile calibration (~40 % of their CPU on MobileNetV2, docs/benchmarks.md):
//   [OQ_BINNING_LANES=4|8|16] build-bench/bench/oq_bench_binning [--benchmark_filter=...]
// Data: 1M float32 values per batch, fixed seed, shaped like MobileNetV2's activations: "relu6" (half zeros,
// 2 % exactly 6, the rest uniform in (0, 6)) and "signed" (normal, sigma 2). Edges as the collectors make
// them: 128 bins over [-max|x|, max|x|] (Entropy), 2048 bins over [0, max|x|] on |x| (Percentile).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "calib/binning.h"
#include "core/parallel.h"

namespace {

std::vector<float> make_data(bool relu6, size_t n) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::normal_distribution<float> g(0.f, 2.f);
  std::vector<float> x(n);
  for (auto& v : x) {
    if (!relu6) {
      v = g(rng);
    } else {
      const float r = u(rng);
      v = r < 0.5f ? 0.f : r < 0.52f ? 6.f : 6.f * u(rng);
    }
  }
  return x;
}

std::vector<float> uniform_edges(float lo, float hi, int bins) {
  std::vector<float> e(static_cast<size_t>(bins) + 1);
  for (int i = 0; i <= bins; ++i) e[i] = static_cast<float>(lo + (static_cast<double>(hi) - lo) * i / bins);
  return e;
}

void BM_Binning(benchmark::State& st) {
  const bool relu6 = st.range(0) != 0, absolute = st.range(1) != 0;
  const int bins = static_cast<int>(st.range(2));
  const std::vector<float> x = make_data(relu6, static_cast<size_t>(st.range(3)));
  float amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  const auto edges = absolute ? uniform_edges(0.f, amax, bins) : uniform_edges(-amax, amax, bins);
  oq::calib::Binner<float> binner(edges);
  std::vector<int64_t> counts(static_cast<size_t>(bins), 0);
  for (auto _ : st) {
    binner.add(x, absolute, counts);
    benchmark::DoNotOptimize(counts.data());
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(x.size()));
}
// (relu6, absolute, bins, values): Entropy on a ReLU6 output and on a signed one; Percentile on both; batches
// of 2^20 values (4 MB, more than L2) and 2^16 (256 KB, inside L2).
BENCHMARK(BM_Binning)
    ->ArgsProduct({{1, 0}, {0}, {128}, {1 << 20, 1 << 16}})
    ->ArgsProduct({{1, 0}, {1}, {2048}, {1 << 20, 1 << 16}})
    ->Unit(benchmark::kMicrosecond);

// The per-batch min/max scan of MinMax calibration (calib::finite_min_max on one thread), on batches inside L1
// (64 KB), inside L2 (1.6 MB, MobileNetV2's 32x112x112 output) and beyond it (4.8 MB, 96x112x112).
void BM_MinMax(benchmark::State& st) {
  const std::vector<float> x = make_data(false, static_cast<size_t>(st.range(0)));
  for (auto _ : st) {
    const auto mm = oq::calib::finite_min_max(x);
    benchmark::DoNotOptimize(mm);
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(x.size() * sizeof(float)));
}
BENCHMARK(BM_MinMax)->Arg(1 << 14)->Arg(401408)->Arg(1204224)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  oq::set_num_threads(1);  // per-thread cost: calibration runs one sample per thread (exec::run_ordered)
  // OQ_BINNING_LANES=4|8|16 caps the kernel width (SSE2 / AVX2 / AVX-512F), to compare the kernels.
  if (const char* l = std::getenv("OQ_BINNING_LANES")) oq::calib::set_binning_lanes(std::atoi(l));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
