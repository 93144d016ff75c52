// Calibration collectors/strategies: hand-computed cases and naive reference implementations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "calib/calibrator.h"

using namespace oq;
using namespace oq::calib;

namespace {
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

Tensor vec(const std::vector<float>& v) { return Tensor::from_vector(DType::Float, {(int64_t)v.size()}, v); }

std::vector<float> iota_f(int from, int to) {  // from..to inclusive
  std::vector<float> v;
  for (int i = from; i <= to; ++i) v.push_back(static_cast<float>(i));
  return v;
}
}  // namespace

TEST(CalibMinMax, ThreeBatches) {
  MinMaxCollector c;
  c.add(std::vector<float>{1, -2, 3});
  c.add(std::vector<float>{0.5f, 4});
  c.add(std::vector<float>{-7, 0});
  const auto s = c.stats();
  EXPECT_EQ(s.batches, 3);
  EXPECT_EQ(minmax_range(s, false).rmin, -7);
  EXPECT_EQ(minmax_range(s, false).rmax, 4);
  EXPECT_EQ(minmax_range(s, true).rmin, -7);
  EXPECT_EQ(minmax_range(s, true).rmax, 7);
}

TEST(CalibMinMax, NonFiniteIgnored) {
  MinMaxCollector c;
  c.add(std::vector<float>{kNan, kInf, 2, -kInf});
  c.add(std::vector<float>{kNan, kNan});  // no finite value: skipped
  EXPECT_EQ(c.stats().batches, 1);
  EXPECT_EQ(c.batches_skipped(), 1);
  EXPECT_EQ(c.stats().min, 2);
  EXPECT_EQ(c.stats().max, 2);
}

TEST(CalibMinMax, MovingAverageOneChunkIsMean) {
  // ORT quantize_static (one collect_data call): nanmean of per-batch minima / maxima.
  MinMaxOptions o;
  o.moving_average = true;
  MinMaxCollector c(o);
  c.add(std::vector<float>{-1, 2});
  c.add(std::vector<float>{-3, 4});
  c.add(std::vector<float>{-2, 9});
  const auto s = c.stats();
  EXPECT_FLOAT_EQ(s.min, -2);
  EXPECT_FLOAT_EQ(s.max, 5);
  EXPECT_FLOAT_EQ(s.absmax, 5);  // max(|-2|, |5|) of the single chunk
}

TEST(CalibMinMax, MovingAverageStridedIsEma) {
  // CalibStridedMinMax=1, averaging constant 0.5: r = r + 0.5 (m - r).
  MinMaxOptions o;
  o.moving_average = true;
  o.averaging_constant = 0.5f;
  o.batches_per_chunk = 1;
  MinMaxCollector c(o);
  c.add(std::vector<float>{-1, 2});   // min -1, max 2, abs 2
  c.add(std::vector<float>{-3, 4});   // -2, 3, 3
  c.add(std::vector<float>{-2, 9});   // -2, 6, 6
  auto s = c.stats();
  EXPECT_FLOAT_EQ(s.min, -2);
  EXPECT_FLOAT_EQ(s.max, 6);
  EXPECT_FLOAT_EQ(minmax_range(s, true).rmax, 6);
  // chunks of 2: chunk means (-2, 3) then (-2, 9) pending: 3 + 0.5 * (9 - 3) = 6; abs: 3 -> 3 + 0.5*(9-3) = 6
  o.batches_per_chunk = 2;
  MinMaxCollector d(o);
  d.add(std::vector<float>{-1, 2});
  d.add(std::vector<float>{-3, 4});
  d.add(std::vector<float>{-2, 9});
  s = d.stats();
  EXPECT_FLOAT_EQ(s.min, -2);
  EXPECT_FLOAT_EQ(s.max, 6);
  EXPECT_FLOAT_EQ(s.absmax, 6);
  d.add(std::vector<float>{-6, 1});  // completes chunk 2: means (-4, 5): min -2 + 0.5*(-4+2) = -3, max 4
  s = d.stats();
  EXPECT_FLOAT_EQ(s.min, -3);
  EXPECT_FLOAT_EQ(s.max, 4);
}

TEST(CalibMinMax, MovingAverageIsNumpysFloat32Nanmean) {
  // ORT's chunk mean is np.nanmean of the per-batch float32 minima / maxima: numpy's pairwise float32 sum, divided
  // by the count in float64, rounded to float32. 500 batches {-k/3, m/3}; expected values from numpy 2.4
  // (a float64 sum gives -0x1.f673e2p+8 / 0x1.4c5d86p+7, one ulp off both).
  MinMaxOptions o;
  o.moving_average = true;
  o.averaging_constant = 0.3f;
  auto feed = [](MinMaxCollector& c) {
    for (int64_t i = 0; i < 500; ++i) {
      const float lo = -static_cast<float>(1000 + (i * 7919) % 1013) / 3.0f;
      const float hi = static_cast<float>(5 + (i * 104729) % 997) / 3.0f;
      c.add(std::vector<float>{lo, hi, 0.5f * (lo + hi)});
    }
  };
  MinMaxCollector one(o);
  feed(one);
  EXPECT_EQ(one.stats().min, -0x1.f673e4p+8f);
  EXPECT_EQ(one.stats().max, 0x1.4c5d88p+7f);
  EXPECT_EQ(one.stats().absmax, 0x1.f673e4p+8f);
  // Chunks of 200 (the last one 100 batches), EMA r + 0.3 (chunk - r) in float32.
  o.batches_per_chunk = 200;
  MinMaxCollector chunked(o);
  feed(chunked);
  EXPECT_EQ(chunked.stats().min, -0x1.f6a5dp+8f);
  EXPECT_EQ(chunked.stats().max, 0x1.4da14ap+7f);
  EXPECT_EQ(chunked.stats().absmax, 0x1.f6a5dp+8f);
}

TEST(CalibMinMax, FiniteMinMaxMatchesNaive) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (int n : {0, 1, 3, 15, 16, 17, 33, 100, 1023}) {
    std::vector<float> x(n);
    for (auto& v : x) v = nd(rng);
    for (int k = 0; k < n / 7; ++k) x[rng() % n] = (k % 3 == 0) ? kNan : (k % 3 == 1 ? kInf : -kInf);
    float mn = kInf, mx = -kInf;
    for (float v : x)
      if (std::isfinite(v)) mn = std::min(mn, v), mx = std::max(mx, v);
    const auto r = finite_min_max(x);
    EXPECT_EQ(r.any, mn <= mx) << n;
    if (r.any) {
      EXPECT_EQ(r.min, mn) << n;
      EXPECT_EQ(r.max, mx) << n;
    }
  }
}

TEST(CalibNumpy, UniformEdgesAndFloorDivide) {
  EXPECT_EQ(np::uniform_edges(-1, 1, 4), (std::vector<float>{-1, -0.5f, 0, 0.5f, 1}));
  EXPECT_EQ(np::uniform_edges(0, 0, 2), (std::vector<float>{-0.5f, 0, 0.5f}));  // empty range expanded
  EXPECT_EQ(np::floor_divide(7, 2), 3);
  EXPECT_EQ(np::floor_divide(-7, 2), -4);
  EXPECT_EQ(np::floor_divide(2.7f, 0.015625f), 172);
  EXPECT_EQ(np::arange(1, 2.5f, 0.5f), (std::vector<double>{1, 1.5, 2}));
}

namespace {
// naive np.histogram with explicit edges: the last i with edges[i] <= v; v == last edge goes to the last bin
template <typename E>
std::vector<int64_t> naive_hist(const std::vector<float>& x, const std::vector<E>& edges) {
  const int64_t nb = (int64_t)edges.size() - 1;
  std::vector<int64_t> want(nb, 0);
  for (float v : x) {
    if (!(v >= edges.front() && v <= edges.back())) continue;
    int64_t i = nb - 1;
    while (edges[i] > v) --i;
    ++want[i];
  }
  return want;
}
}  // namespace

TEST(CalibNumpy, AccumulateMatchesNaiveSearch) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> ud(-3.f, 3.f);
  for (int64_t nb : {1, 7, 128, 333}) {
    const auto edges = np::uniform_edges(-2.5f, 2.25f, nb);
    std::vector<float> x(2001);
    for (auto& v : x) v = ud(rng);
    x[0] = -2.5f, x[1] = 2.25f, x[2] = kNan;
    for (int64_t i = 0; i <= nb; i += std::max<int64_t>(1, nb / 5)) x[3 + i % 50] = edges[i];
    std::vector<int64_t> got(nb, 0);
    np::accumulate(x, false, std::span<const float>(edges), got);
    EXPECT_EQ(got, naive_hist(x, edges)) << nb;
  }
  // a range only ~130 ulps wide: bins are 1-3 ulps, far from uniform, so the estimate is often off by
  // more than one bin and the exact walk has to settle it
  const auto narrow = np::uniform_edges(100.f, 100.001f, 64);
  std::vector<float> x;
  for (float v = 99.9995f; v <= 100.0015f; v = std::nextafter(v, 200.f)) x.push_back(v);
  std::vector<int64_t> got(64, 0);
  np::accumulate(x, true, std::span<const float>(narrow), got);
  EXPECT_EQ(got, naive_hist(x, narrow));
  // float64 edges (an |x| histogram grown by np.arange) with float32 data
  std::vector<double> dedges(narrow.begin(), narrow.end());
  const auto more = np::arange(narrow.back() + 0.25f, 103.f, 0.25f);
  dedges.insert(dedges.end(), more.begin(), more.end());
  for (float v = 99.f; v < 104.f; v += 0.01f) x.push_back(v);
  got.assign(dedges.size() - 1, 0);
  np::accumulate(x, false, std::span<const double>(dedges), got);
  EXPECT_EQ(got, naive_hist(x, dedges));
}

TEST(CalibHistogram, ValueRebinningConservesCounts) {
  HistogramCollector c(HistogramMode::Value, 128);
  std::vector<float> a = {-1.f, -0.3f, 0.f, 0.2f, 0.99f, 1.f};
  c.add(a);
  const std::vector<int64_t> first = c.histogram().counts;
  EXPECT_EQ(c.histogram().total(), 6);
  EXPECT_EQ(c.histogram().threshold, 1.f);
  // 3.7 > 1: stride 2/128 = 0.015625, half = floor(2.7 / 0.015625) + 1 = 173, bins 128 + 346,
  // threshold 173 * 0.015625 + 1 = 3.703125; old counts shifted by 173 bins.
  c.add(std::vector<float>{3.7f, -0.5f, 2.f});
  const Histogram& h = c.histogram();
  ASSERT_EQ(h.counts.size(), 474u);
  EXPECT_EQ(h.threshold, 3.703125f);
  EXPECT_EQ(h.edges.front(), -3.703125f);
  EXPECT_EQ(h.edges.back(), 3.703125f);
  EXPECT_EQ(h.total(), 9);
  // bins 173..300 hold the first histogram plus the new values that fall there
  std::vector<int64_t> mid(h.counts.begin() + 173, h.counts.begin() + 301);
  int64_t extra = 0;
  for (size_t i = 0; i < mid.size(); ++i) {
    EXPECT_GE(mid[i], first[i]);
    extra += mid[i] - first[i];
  }
  EXPECT_EQ(extra, 1);  // -0.5 lands in the middle; 2 and 3.7 outside it
  EXPECT_EQ(h.min, -1.f);
  EXPECT_EQ(h.max, 3.7f);
  c.add(std::vector<float>{0.1f, -3.7f});  // within range: same bins
  EXPECT_EQ(c.histogram().counts.size(), 474u);
  EXPECT_EQ(c.histogram().total(), 11);
}

TEST(CalibHistogram, ValueAllZeroThenData) {
  HistogramCollector c(HistogramMode::Value, 8);
  c.add(std::vector<float>{0, 0, 0});  // range (-0.5, 0.5): zeros in bin 4
  EXPECT_EQ(c.histogram().counts[4], 3);
  EXPECT_EQ(c.histogram().threshold, 0.f);
  c.add(std::vector<float>{-2, 2});  // ORT: same bin count over (-2, 2), old counts index for index
  const Histogram& h = c.histogram();
  EXPECT_EQ(h.edges, (std::vector<float>{-2, -1.5f, -1, -0.5f, 0, 0.5f, 1, 1.5f, 2}));
  EXPECT_EQ(h.counts, (std::vector<int64_t>{1, 0, 0, 0, 3, 0, 0, 1}));
}

TEST(CalibHistogram, AbsoluteGrowsByArange) {
  HistogramCollector c(HistogramMode::Absolute, 4);
  c.add(std::vector<float>{-1, 2, 3, -5});  // |x| in [1, 5]: edges 1,2,3,4,5
  EXPECT_EQ(c.histogram().edges, (std::vector<float>{1, 2, 3, 4, 5}));
  EXPECT_EQ(c.histogram().counts, (std::vector<int64_t>{1, 1, 1, 1}));
  // 7.5 > 5: arange(6, 8.5, 1) = 6, 7, 8; |0.5| < 1 is dropped, as in ORT
  c.add(std::vector<float>{7.5f, -6, 0.5f, 5});
  const Histogram& h = c.histogram();
  EXPECT_EQ(h.edges, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(h.counts, (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(h.min, -6.f);
  EXPECT_EQ(h.max, 7.5f);
}

TEST(CalibHistogram, AbsoluteFirstEmptyBatchSpansZeroToOne) {
  // ORT's collect_absolute_value: np.histogram of an empty |x| batch spans numpy's default range [0, 1], and the
  // next batch grows it from there (it used to be skipped: the histogram then began at the next batch's range).
  HistogramCollector c(HistogramMode::Absolute, 4);
  c.add(std::vector<float>{});
  EXPECT_TRUE(c.empty());  // no value: no range of its own
  EXPECT_EQ(c.histogram().edges, (std::vector<float>{0, 0.25f, 0.5f, 0.75f, 1}));
  // 1.6 > 1: arange(1.25, 1.85, 0.25) = 1.25, 1.5, 1.75; 0.3 in [0.25, 0.5), 1.6 in [1.5, 1.75)
  c.add(std::vector<float>{-1.6f, 0.3f});
  const Histogram& h = c.histogram();
  EXPECT_EQ(h.edges, (std::vector<float>{0, 0.25f, 0.5f, 0.75f, 1, 1.25f, 1.5f, 1.75f}));
  EXPECT_EQ(h.counts, (std::vector<int64_t>{0, 1, 0, 0, 0, 0, 1}));
  // an x histogram: a first empty batch (ORT: threshold 0, replaced by the next batch) changes nothing
  HistogramCollector v(HistogramMode::Value, 4), ref(HistogramMode::Value, 4);
  v.add(std::vector<float>{});
  v.add(std::vector<float>{-1.6f, 0.3f});
  ref.add(std::vector<float>{-1.6f, 0.3f});
  EXPECT_EQ(v.histogram().edges, ref.histogram().edges);
  EXPECT_EQ(v.histogram().counts, ref.histogram().counts);
}

TEST(CalibPercentile, SymmetricAbsoluteHistogram) {
  // |x| = 1..100 twice; 99 bins of width 1; CDF first reaches 0.895 at bin 89 -> edge 90.
  HistogramCollector c(HistogramMode::Absolute, 99);
  std::vector<float> x = iota_f(1, 100);
  for (int i = 1; i <= 100; ++i) x.push_back(-static_cast<float>(i));
  c.add(x);
  auto r = percentile_range(c.histogram(), 89.5);
  EXPECT_EQ(r.rmin, -90.f);
  EXPECT_EQ(r.rmax, 90.f);
  // all-positive data: the lower bound is clamped to the data minimum
  HistogramCollector d(HistogramMode::Absolute, 99);
  d.add(iota_f(1, 100));
  r = percentile_range(d.histogram(), 89.5);
  EXPECT_EQ(r.rmin, 1.f);
  EXPECT_EQ(r.rmax, 90.f);
}

TEST(CalibPercentile, NonSymmetricValueHistogram) {
  // -100..100, 200 unit bins, total 201: 5% cut each side -> edges -90 and 90.
  HistogramCollector c(HistogramMode::Value, 200);
  c.add(iota_f(-100, 100));
  auto r = percentile_range(c.histogram(), 90);
  EXPECT_EQ(r.rmin, -90.f);
  EXPECT_EQ(r.rmax, 90.f);
  EXPECT_THROW(percentile_range(c.histogram(), 101), Error);
}

TEST(CalibEntropy, BuildingBlocks) {
  // smoothing: 2 zeros, 2 non-zeros: eps1 = 1e-4
  auto s = kl::smooth(std::vector<int64_t>{0, 2, 0, 4});
  ASSERT_TRUE(s);
  EXPECT_FLOAT_EQ((*s)[0], 1e-4f);
  EXPECT_FLOAT_EQ((*s)[1], 2 - 1e-4f);
  EXPECT_FLOAT_EQ((*s)[3], 4 - 1e-4f);
  EXPECT_FALSE(kl::smooth(std::vector<int64_t>{0, 0}));
  // KL(p||q), p = (1,2,3)/6, q = (3,2,1)/6: sum p log(p/q) = (1/6)log(1/3) + (3/6)log 3 = (1/3) log 3
  EXPECT_NEAR(kl::entropy(std::vector<float>{1, 2, 3}, std::vector<float>{3, 2, 1}), std::log(3.0) / 3, 1e-6);
  EXPECT_EQ(kl::entropy(std::vector<float>{1, 1}, std::vector<float>{2, 2}), 0.f);
  // pairwise sums: exact on small integers, close to double sums otherwise
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(0, 1);
  for (int n : {1, 7, 8, 9, 127, 128, 129, 1000, 4099}) {
    std::vector<float> a(n), ints(n);
    double ref = 0;
    for (int i = 0; i < n; ++i) a[i] = ud(rng), ints[i] = static_cast<float>(i % 17), ref += a[i];
    EXPECT_NEAR(kl::pairwise_sum(a), ref, 1e-6 * n) << n;
    int64_t isum = 0;
    for (int i = 0; i < n; ++i) isum += i % 17;
    EXPECT_EQ(kl::pairwise_sum(ints), static_cast<float>(isum)) << n;
  }
}

namespace {
// Naive double-precision reference of ORT's get_entropy_threshold divergences, straight from calibrate.py.
std::vector<double> naive_divergences(const Histogram& h, int nq) {
  const int nb = (int)h.counts.size(), zb = nb / 2, hq = nq / 2;
  std::vector<double> out;
  auto smooth = [](std::vector<double> p) {
    double nz = 0;
    for (double v : p) nz += (v == 0);
    const double eps1 = 1e-4 * nz / (p.size() - nz);
    for (double& v : p) v = v == 0 ? 1e-4 : v - eps1;
    return p;
  };
  for (int i = hq; i <= zb; ++i) {
    const int st = zb - i, en = std::min(zb + i + 1, nb), len = en - st;
    std::vector<double> p(h.counts.begin() + st, h.counts.begin() + en);
    for (int j = 0; j < st; ++j) p[0] += h.counts[j];
    for (int j = en; j < nb; ++j) p[len - 1] += h.counts[j];
    const int m = len / nq;
    std::vector<double> q(len, 0);
    for (int k = 0; k < nq; ++k) {
      double s = 0, norm = 0;
      for (int j = k * m; j < (k + 1) * m; ++j) s += h.counts[st + j], norm += (p[j] != 0);
      if (k == nq - 1)
        for (int j = nq * m; j < len; ++j) s += h.counts[st + j];
      if (norm != 0)
        for (int j = k * m; j < (k + 1) * m; ++j) q[j] = std::trunc(s / norm);
    }
    p = smooth(p), q = smooth(q);
    const double sp = std::accumulate(p.begin(), p.end(), 0.0), sq = std::accumulate(q.begin(), q.end(), 0.0);
    double d = 0;
    for (int j = 0; j < len; ++j) d += p[j] / sp * std::log((p[j] / sp) / (q[j] / sq));
    out.push_back(d);
  }
  return out;
}
}  // namespace

TEST(CalibEntropy, MatchesNaiveReference) {
  // ORT computes the divergences in float32 (and so do we, to pick the same window); a double-precision
  // reference must agree on every divergence to float32 accuracy, and our window must be optimal for it
  // up to that accuracy (the KL curve is often flat near its minimum).
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int trial = 0; trial < 4; ++trial) {
    HistogramCollector c(HistogramMode::Value, 512);
    for (int b = 0; b < 3; ++b) {
      std::vector<float> x(4000);
      for (auto& v : x) v = nd(rng) * (1 + trial);
      x[b] = 12.f * (b + 1) * (trial % 2 ? -1 : 1);  // outliers that extend the range
      c.add(x);
    }
    const Histogram& h = c.histogram();
    const auto got = kl::divergences(h, 128);
    const auto ref = naive_divergences(h, 128);
    ASSERT_EQ(got.size(), ref.size());
    const double tol = 2e-5;
    for (size_t k = 0; k < got.size(); ++k) ASSERT_NEAR(got[k], ref[k], tol) << trial << " window " << k;
    const auto r = entropy_range(h, 128);
    const size_t best = std::min_element(got.begin(), got.end()) - got.begin();
    EXPECT_LE(ref[best], *std::min_element(ref.begin(), ref.end()) + 2 * tol) << trial;
    const int64_t zb = (int64_t)h.counts.size() / 2, i = 64 + (int64_t)best;
    EXPECT_EQ(r.rmin, std::max(h.edges[zb - i], h.min)) << trial;
    EXPECT_EQ(r.rmax, std::min(h.edges[std::min<int64_t>(zb + i + 1, h.counts.size())], h.max)) << trial;
    if (trial % 2)  // the outliers are clipped
      EXPECT_GT(r.rmin, h.min) << trial;
    else
      EXPECT_LT(r.rmax, h.max) << trial;
  }
  // num_bins == num_quantized_bins: one candidate, the whole range (= min/max)
  HistogramCollector one(HistogramMode::Value, 128);
  one.add(std::vector<float>{-0.25f, 0.1f, 3.f});
  const auto r = entropy_range(one.histogram(), 128);
  EXPECT_EQ(r.rmin, -0.25f);
  EXPECT_EQ(r.rmax, 3.f);
}

TEST(CalibPerChannel, AbsMaxAlongAxis) {
  // shape [2, 3, 2], axis 1: channel c takes x[:, c, :]
  std::vector<float> v = {1, -2, 3, 0, -4, 5,   // o = 0
                          -6, 0.5f, 0, kNan, 2, -kInf};
  PerChannelAbsMaxCollector c(1);
  c.add(Tensor::from_vector(DType::Float, {2, 3, 2}, v));
  EXPECT_EQ(c.absmax(), (std::vector<float>{6, 3, 5}));
  PerChannelAbsMaxCollector last(-1);
  last.add(Tensor::from_vector(DType::Float, {2, 3, 2}, v));
  last.add(Tensor::from_vector(DType::Float, {1, 2}, std::vector<float>{7, -1}));
  EXPECT_EQ(last.absmax(), (std::vector<float>{7, 5}));
  EXPECT_THROW(last.add(Tensor::from_vector(DType::Float, {3}, std::vector<float>{1, 2, 3})), Error);
}

TEST(Calibrator, ObserverFeedsRequestedFloatTensors) {
  CalibOptions o;
  Calibrator cal({"a", "b", "never"}, o);
  auto obs = cal.observer();
  obs("a", vec({1, -3}));
  obs("a", vec({2, 5}));
  obs("b", vec({0.5f}));
  obs("other", vec({100}));                                                     // not requested
  obs("b", Tensor::from_vector(DType::Int64, {1}, std::vector<int64_t>{1000}));  // not float32
  const auto r = cal.compute();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.at("a").rmin, -3);
  EXPECT_EQ(r.at("a").rmax, 5);
  EXPECT_EQ(r.at("b").rmin, 0.5f);
  EXPECT_EQ(r.at("b").rmax, 0.5f);
  EXPECT_EQ(cal.unseen(), std::vector<std::string>{"never"});
  EXPECT_EQ(cal.batches("a"), 2);
}

TEST(Calibrator, EmptyOnEveryBatchGetsZeroRange) {
  // A tensor with 0 elements in every batch gets ORT's range [0, 0]; one that had values but none finite has no
  // range (unseen: the caller's error), also when some of its batches were empty.
  const std::vector<float> none, nan3 = {kNan, kNan, kNan};
  for (int config = 0; config < 6; ++config) {
    CalibOptions o;
    o.method = config < 2 ? CalibMethod::MinMax : config < 4 ? CalibMethod::Entropy : CalibMethod::Percentile;
    o.minmax.moving_average = config == 1;
    o.two_pass_histogram = config == 3 || config == 5;
    o.num_bins = 256;  // Entropy: more than one window, a real histogram
    Calibrator cal({"a", "empty", "nan", "mixed"}, o);
    cal.expect_batches(3);
    for (int p = 0; p < cal.passes() && cal.needs_pass(p); ++p) {
      cal.begin_pass(p);
      for (int b = 0; b < 3; ++b) {
        cal.observe("a", vec({-1.f - b, 2.f + b}));
        cal.observe("empty", vec(none));
        cal.observe("nan", vec(nan3));
        cal.observe("mixed", vec(b == 1 ? nan3 : none));
      }
    }
    const auto r = cal.compute();
    ASSERT_EQ(r.size(), 2u) << config;
    EXPECT_EQ(r.at("empty").rmin, 0.f) << config;
    EXPECT_EQ(r.at("empty").rmax, 0.f) << config;
    EXPECT_GT(r.at("a").rmax, 1.f) << config;
    EXPECT_EQ(cal.always_empty(), std::vector<std::string>{"empty"}) << config;
    EXPECT_EQ(cal.unseen(), (std::vector<std::string>{"mixed", "nan"})) << config;
  }
}

TEST(Calibrator, MethodsAndOptions) {
  EXPECT_EQ(parse_calib_method("MinMax"), CalibMethod::MinMax);
  EXPECT_EQ(parse_calib_method("percentile"), CalibMethod::Percentile);
  EXPECT_FALSE(parse_calib_method("kl"));
  CalibOptions o;
  o.method = CalibMethod::Percentile;
  o.percentile = 150;
  EXPECT_THROW(Calibrator({"a"}, o), Error);
  o.percentile = 89.5;
  o.num_bins = 99;
  Calibrator cal({"a"}, o);  // symmetric by default: |x| histogram
  std::vector<float> x = iota_f(1, 100);
  for (int i = 1; i <= 100; ++i) x.push_back(-static_cast<float>(i));
  cal.observe("a", vec(x));
  EXPECT_EQ(cal.compute().at("a").rmax, 90.f);
  o.method = CalibMethod::Entropy;
  o.num_bins = 64;  // fewer than num_quantized_bins
  EXPECT_THROW(Calibrator({"a"}, o), Error);
  // errors raised by a collector name the tensor
  o.num_bins = 128;
  Calibrator e({"t"}, o);
  e.observe("t", vec({1e-30f}));
  try {
    e.observe("t", vec({1e30f}));
    FAIL() << "expected a Data error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("'t'"), std::string::npos) << err.what();
  }
}

TEST(Calibrator, TwoPassHistogramEqualsOneHistogramOfAllData) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<std::vector<float>> batches;
  std::vector<float> all;
  for (float s : {0.5f, 2.f, 1.f, 6.f}) {
    std::vector<float> b(999);
    for (auto& v : b) v = nd(rng) * s + 0.3f;
    all.insert(all.end(), b.begin(), b.end());
    batches.push_back(std::move(b));
  }
  for (auto method : {CalibMethod::Percentile, CalibMethod::Entropy}) {
    for (bool sym : {true, false}) {
      CalibOptions o;
      o.method = method;
      o.symmetric = sym;
      o.num_bins = 1000;
      o.percentile = 99.5;
      o.two_pass_histogram = true;
      Calibrator cal({"t"}, o);
      ASSERT_EQ(cal.passes(), 2);
      for (const auto& b : batches) cal.observe("t", vec(b));
      EXPECT_THROW(cal.compute(), Error);  // the second pass is missing
      cal.begin_pass(1);
      for (const auto& b : batches) cal.observe("t", vec(b));
      const auto r = cal.compute().at("t");
      // reference: one histogram over the concatenation (its first and only batch sets the range)
      const auto mode = method == CalibMethod::Percentile && sym ? HistogramMode::Absolute : HistogramMode::Value;
      HistogramCollector one(mode, 1000);
      one.add(all);
      const auto ref = method == CalibMethod::Percentile ? percentile_range(one.histogram(), 99.5)
                                                         : entropy_range(one.histogram(), 128);
      EXPECT_EQ(r.rmin, ref.rmin) << calib_method_name(method) << sym;
      EXPECT_EQ(r.rmax, ref.rmax) << calib_method_name(method) << sym;
    }
  }
  CalibOptions mm;
  mm.two_pass_histogram = true;  // no effect on MinMax
  EXPECT_EQ(Calibrator({"t"}, mm).passes(), 1);

  // Entropy with one window (ORT's default 128 / 128 bins; also 129 / 128): one pass, no histogram, and the
  // range the full route gives (one histogram over everything, then the threshold search): the data's range.
  for (int64_t bins : {128, 129}) {
    CalibOptions e;
    e.method = CalibMethod::Entropy;
    e.num_bins = bins;
    e.two_pass_histogram = true;
    ASSERT_TRUE(e.entropy_is_data_range());
    Calibrator cal({"t"}, e);
    ASSERT_EQ(cal.passes(), 1);
    for (const auto& b : batches) cal.observe("t", vec(b));
    const auto r = cal.compute().at("t");
    EXPECT_EQ(cal.batches("t"), 4);
    HistogramCollector one(HistogramMode::Value, bins);
    one.add(all);
    const auto ref = entropy_range(one.histogram(), 128);
    EXPECT_EQ(r.rmin, ref.rmin) << bins;
    EXPECT_EQ(r.rmax, ref.rmax) << bins;
    EXPECT_EQ(r.rmin, *std::min_element(all.begin(), all.end()));
    EXPECT_EQ(r.rmax, *std::max_element(all.begin(), all.end()));
  }
  CalibOptions two;  // two windows or more: the histogram is needed
  two.method = CalibMethod::Entropy;
  two.num_bins = 130;
  two.two_pass_histogram = true;
  EXPECT_FALSE(two.entropy_is_data_range());
  EXPECT_EQ(Calibrator({"t"}, two).passes(), 2);
}
