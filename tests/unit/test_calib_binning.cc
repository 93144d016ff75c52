// The optimised calibration kernels (src/calib/binning.h) against naive references: random odd sizes, fixed
// seeds, values placed on and around the edges, non-finite values, float and double edges.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "calib/collectors.h"
#include "core/parallel.h"

using namespace oq;
using namespace oq::calib;

namespace {
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// np.histogram with explicit edges, by definition: the last i with edges[i] <= v, capped at the last bin;
// values outside [front, back] and NaN dropped.
template <typename E>
std::vector<int64_t> naive_hist(const std::vector<float>& x, bool absolute, const std::vector<E>& edges) {
  const int64_t nb = static_cast<int64_t>(edges.size()) - 1;
  std::vector<int64_t> h(nb, 0);
  for (float f : x) {
    const float v = absolute ? std::fabs(f) : f;
    if (!(v >= edges.front() && v <= edges.back())) continue;
    int64_t i = 0;
    for (int64_t k = 0; k <= nb; ++k)
      if (edges[k] <= v) i = k;
    ++h[std::min(i, nb - 1)];
  }
  return h;
}

BatchMinMax naive_min_max(const std::vector<float>& x) {
  BatchMinMax r{kInf, -kInf, false};
  for (float v : x)
    if (std::isfinite(v)) r.min = std::min(r.min, v), r.max = std::max(r.max, v), r.any = true;
  return r;
}

// Data that stresses the binning: uniform over a slightly wider range than the edges, plus edges
// themselves, their float neighbours, 0, -0, the ends, NaN and infinities.
template <typename E>
std::vector<float> tricky_data(std::mt19937& rng, size_t n, const std::vector<E>& edges) {
  const double lo = edges.front(), hi = edges.back(), w = hi - lo;
  std::uniform_real_distribution<double> ud(lo - 0.1 * w - 1e-3, hi + 0.1 * w + 1e-3);
  std::vector<float> x(n);
  for (auto& v : x) v = static_cast<float>(ud(rng));
  for (size_t k = 0; k < n / 3; ++k) {
    const size_t at = rng() % n;
    const auto e = static_cast<float>(edges[rng() % edges.size()]);
    switch (rng() % 10) {
      case 0: x[at] = e; break;
      case 1: x[at] = std::nextafter(e, kInf); break;
      case 2: x[at] = std::nextafter(e, -kInf); break;
      case 3: x[at] = -e; break;
      case 4: x[at] = 0.0f; break;
      case 5: x[at] = -0.0f; break;
      case 6: x[at] = static_cast<float>(rng() % 2 ? lo : hi); break;
      case 7: x[at] = kNan; break;
      case 8: x[at] = rng() % 2 ? kInf : -kInf; break;
      default: break;
    }
  }
  return x;
}

template <typename E>
void check_binner(const std::vector<E>& edges, const std::vector<float>& x, const char* what) {
  const Binner<E> b{std::span<const E>(edges)};
  for (int lanes : {16, 8, 4, 1}) {  // every kernel this CPU has (AVX-512F, AVX2, SSE2, scalar)
    set_binning_lanes(lanes);
    for (bool absolute : {false, true}) {
      std::vector<int64_t> got(edges.size() - 1, 0);
      const BatchMinMax mm = b.scan(x, absolute, scratch());
      scratch().commit(got);
      set_binning_lanes(0);
      ASSERT_EQ(got, naive_hist(x, absolute, edges))
          << what << " n=" << x.size() << " abs=" << absolute << " lanes=" << lanes;
      set_binning_lanes(lanes);
      const BatchMinMax want = naive_min_max(x);
      ASSERT_EQ(mm.any, want.any) << what;
      if (want.any) {
        EXPECT_EQ(mm.min, want.min) << what << " lanes=" << lanes;
        EXPECT_EQ(mm.max, want.max) << what << " lanes=" << lanes;
      }
    }
  }
  set_binning_lanes(0);
  for (size_t k = 0; k < std::min<size_t>(x.size(), 200); ++k) {  // the single-value reference rule
    const std::vector<float> one{x[k]};
    const auto h = naive_hist(one, false, edges);
    const int64_t want = std::find(h.begin(), h.end(), 1) - h.begin();
    EXPECT_EQ(b.bin_of(x[k]), want == static_cast<int64_t>(h.size()) ? -1 : want) << what << " v=" << x[k];
  }
}
}  // namespace

TEST(CalibBinning, UniformFloatEdgesMatchNaive) {
  std::mt19937 rng(20261127);
  // (lo, hi, bins): symmetric ranges (zero on an edge or inside a bin), |x| ranges from 0, offset ranges,
  // ranges a few hundred ulps wide (bins of 1-3 ulps: the estimate is never trusted), huge magnitudes
  const struct {
    float lo, hi;
    int64_t bins;
  } cases[] = {{-1, 1, 128},     {-3.7f, 3.7f, 2047}, {0, 6, 2048},       {0.013f, 5.9f, 333},
               {-2.5f, 2.25f, 7}, {100.f, 100.001f, 64}, {-1e30f, 1e30f, 999}, {1e-30f, 3e-30f, 5},
               {-6, 6, 1},       {0, 1, 65537}};
  for (const auto& c : cases) {
    const auto edges = np::uniform_edges(c.lo, c.hi, c.bins);
    for (size_t n : {size_t{0}, size_t{1}, size_t{3}, size_t{1023}, size_t{1025}, size_t{4099}, size_t{70001}}) {
      if (n > 5000 && c.bins > 5000 && n < 100000) continue;  // keep the naive reference affordable
      check_binner(edges, tricky_data(rng, n, edges), "uniform");
      if (HasFatalFailure()) return;
    }
  }
}

TEST(CalibBinning, IrregularAndDoubleEdgesMatchNaive) {
  std::mt19937 rng(4242);
  // non-uniform, with repeated edges (empty bins): the estimate is off by many bins, the search settles it
  std::vector<float> irregular;
  std::uniform_real_distribution<float> ud(-4, 4);
  for (int i = 0; i < 301; ++i) irregular.push_back(ud(rng));
  std::sort(irregular.begin(), irregular.end());
  irregular[10] = irregular[11] = irregular[12];
  check_binner(irregular, tricky_data(rng, 5003, irregular), "irregular");
  // uniform edges nudged by a few ulps (as float32 rounding of float64 edges does)
  auto nudged = np::uniform_edges(-3, 3, 513);
  for (size_t i = 1; i + 1 < nudged.size(); i += 3) nudged[i] = std::nextafter(nudged[i], i % 2 ? kInf : -kInf);
  check_binner(nudged, tricky_data(rng, 9001, nudged), "nudged");
  // float64 edges: float32 edges extended by np.arange (a grown |x| histogram), ends not float32 values
  const auto base = np::uniform_edges(0.01f, 2.f, 200);
  std::vector<double> dedges(base.begin(), base.end());
  const auto more = np::arange(base.back() + 0.00995f, 3.3f, 0.00995f);
  dedges.insert(dedges.end(), more.begin(), more.end());
  check_binner(dedges, tricky_data(rng, 7777, dedges), "double");
}

TEST(CalibBinning, SubHistogramsAndFolding) {
  // long runs of one value (ReLU zeros) through 1, 2 and 4 sub-histograms, and 32-bit counters folded into
  // 64-bit ones many times within one batch
  std::mt19937 rng(77);
  const auto edges = np::uniform_edges(0, 6, 2048);
  std::vector<float> x = tricky_data(rng, 100003, edges);
  for (size_t i = 0; i < x.size(); i += (i % 7 == 0) ? 1 : 3) x[i] = 0;
  for (size_t n : {size_t{2047}, size_t{9001}, size_t{100003}}) {
    const std::vector<float> part(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(n));
    for (int64_t fold : {int64_t{1} << 31, int64_t{1000}, int64_t{5000}}) {
      scratch().set_fold_interval(fold);
      std::vector<int64_t> got(2048, 0);
      Binner<float>(edges).add(part, true, got);
      EXPECT_EQ(got, naive_hist(part, true, edges)) << n << " fold " << fold;
    }
  }
  scratch().set_fold_interval(int64_t{1} << 31);
  // a batch abandoned between scan and commit does not leak into the next one
  Binner<float> b{std::span<const float>(edges)};
  b.scan(x, false, scratch());
  std::vector<int64_t> got(2048, 0);
  b.add(std::vector<float>{1.f, 2.f}, false, got);
  EXPECT_EQ(std::accumulate(got.begin(), got.end(), int64_t{0}), 2);
}

TEST(CalibBinning, LargeBatchesSplitOverThreads) {
  // 2^18 values or more are binned in chunks on several threads: same counts and min/max as the definition
  // (searched with upper_bound here, the same rule as naive_hist), whatever the number of threads.
  std::mt19937 rng(2718);
  const int before = num_threads();
  for (int64_t nb : {128, 2048, 30001}) {
    const auto edges = np::uniform_edges(-2.f, 5.f, nb);
    const std::vector<float> x = tricky_data(rng, 300007, edges);
    for (bool absolute : {false, true}) {
      std::vector<int64_t> want(nb, 0);
      for (float f : x) {
        const float v = absolute ? std::fabs(f) : f;
        if (!(v >= edges.front() && v <= edges.back())) continue;
        const int64_t i = (std::upper_bound(edges.begin(), edges.end(), v) - edges.begin()) - 1;
        ++want[std::min(i, nb - 1)];
      }
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<int64_t> got(nb, 0);
        const BatchMinMax mm = Binner<float>(edges).scan(x, absolute, scratch());
        scratch().commit(got);
        EXPECT_EQ(got, want) << nb << " abs " << absolute << " threads " << threads;
        const BatchMinMax ref = naive_min_max(x);
        EXPECT_EQ(mm.min, ref.min);
        EXPECT_EQ(mm.max, ref.max);
      }
    }
  }
  set_num_threads(before);
}

// One NaN anywhere (vector blocks, the scalar tail, each thread's chunk) is reported; the range ignores it.
TEST(CalibBinning, MinMaxReportsASingleNaN) {
  const int before = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (size_t n : {size_t{1}, size_t{70}, size_t{200}, size_t{300007}})
      for (size_t at : {size_t{0}, n / 2, n - 1}) {
        std::vector<float> x(n);
        for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 97) - 40.f;
        const BatchMinMax clean = finite_min_max(x);
        EXPECT_FALSE(clean.non_finite) << n;
        x[at] = kNan;
        const BatchMinMax got = finite_min_max(x), want = naive_min_max(x);
        EXPECT_TRUE(got.non_finite) << n << " at " << at;
        EXPECT_EQ(got.any, want.any) << n;
        if (want.any) {
          EXPECT_EQ(got.min, want.min) << n;
          EXPECT_EQ(got.max, want.max) << n;
        }
      }
  }
  set_num_threads(before);
}

// Finite values whose sum overflows (the scan's non-finite check sums each chain) are not reported as
// non-finite; one infinity among them is.
TEST(CalibBinning, MinMaxHugeFiniteValuesAreNotNonFinite) {
  const float big = std::numeric_limits<float>::max() / 2;
  for (size_t n : {size_t{64}, size_t{640}, size_t{300007}}) {
    std::vector<float> x(n, big);
    x[n / 3] = -big;
    BatchMinMax got = finite_min_max(x);
    EXPECT_FALSE(got.non_finite) << n;
    EXPECT_EQ(got.min, -big);
    EXPECT_EQ(got.max, big);
    x[n - 1] = kInf;
    got = finite_min_max(x);
    EXPECT_TRUE(got.non_finite) << n;
    EXPECT_EQ(got.max, big) << n;
  }
}

TEST(CalibBinning, MinMaxScansMatchNaive) {
  std::mt19937 rng(99);
  std::normal_distribution<float> nd(0.f, 5.f);
  const int before = num_threads();
  set_num_threads(2);  // batches of 2^18 values or more are split over the threads
  for (size_t n : {size_t{0}, size_t{1}, size_t{5}, size_t{15}, size_t{17}, size_t{31}, size_t{63}, size_t{64}, size_t{65}, size_t{129}, size_t{1021}, size_t{40009},
                   size_t{300007}}) {
    for (bool infinities : {true, false}) {  // with infinities the scan takes its slow path
      std::vector<float> x(n);
      for (auto& v : x) v = nd(rng);
      for (size_t k = 0; k < n / 9; ++k) x[rng() % n] = k % 3 == 0 || !infinities ? kNan : (k % 3 == 1 ? kInf : -kInf);
      const BatchMinMax want = naive_min_max(x), got = finite_min_max(x);
      ASSERT_EQ(got.any, want.any) << n;
      EXPECT_EQ(got.non_finite, std::any_of(x.begin(), x.end(), [](float v) { return !std::isfinite(v); })) << n;
      if (want.any) {
        EXPECT_EQ(got.min, want.min) << n;
        EXPECT_EQ(got.max, want.max) << n;
      }
      float am = kInf;
      for (float v : x)
        if (!std::isnan(v)) am = std::min(am, std::fabs(v));
      EXPECT_EQ(abs_min(x), am) << n;
    }
  }
  set_num_threads(before);
}

TEST(CalibBinning, CollectorGrowthBinsEachBatchAgainstItsEdges) {
  // Every batch of a histogram collector ends up counted against the edges in force after it (the same
  // edges when it fits, the grown ones when it does not), the earlier counts moved as ORT moves them:
  // checked batch by batch against naive binning, for both modes.
  std::mt19937 rng(31337);
  for (auto mode : {HistogramMode::Value, HistogramMode::Absolute}) {
    HistogramCollector c(mode, 128);
    std::vector<int64_t> prev;
    int grown = 0;
    for (int b = 0; b < 12; ++b) {
      std::normal_distribution<float> nd(0.3f, 0.5f + 0.4f * static_cast<float>(b % 5));
      std::vector<float> x(1000 + 37 * b);
      for (auto& v : x) v = nd(rng);
      if (b % 4 == 1) x[5] = kNan;
      c.add(x);
      const Histogram& h = c.histogram();
      const auto batch = naive_hist(x, mode == HistogramMode::Absolute, h.edges);
      std::vector<int64_t> moved(h.counts.size(), 0);  // where the earlier counts went
      const size_t off = mode == HistogramMode::Value ? (h.counts.size() - prev.size()) / 2 : 0;
      for (size_t i = 0; i < prev.size(); ++i) moved[i + off] = prev[i];
      for (size_t i = 0; i < moved.size(); ++i) moved[i] += batch[i];
      if (mode == HistogramMode::Absolute && b > 0 && h.counts.size() != prev.size()) {
        // a grown |x| histogram bins its batch against float64 edges that are then stored as float32:
        // the naive float32 binning may differ at an edge; the counts must still add up
        EXPECT_EQ(h.total(), std::accumulate(moved.begin(), moved.end(), int64_t{0})) << b;
        ++grown;
      } else {
        ASSERT_EQ(h.counts, moved) << "mode " << static_cast<int>(mode) << " batch " << b;
      }
      prev = h.counts;
    }
    if (mode == HistogramMode::Absolute) {
      EXPECT_LT(grown, 8);  // most batches were checked bin for bin
    }
  }
}
