// TailCollector (the k most extreme values of a stream) against a full sort, and percentile_from_tails
// against percentile_range on the histogram of all the data (the route it replaces), on random data with a
// fixed seed: batches of odd sizes, NaN / infinities, ties, both histogram modes, many percentiles.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "calib/calibrator.h"
#include "calib/collectors.h"
#include "calib/strategies.h"

using namespace oq::calib;

namespace {
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Batches of odd sizes; values normal, with ties (rounded to a grid) and a few NaN / infinities.
std::vector<std::vector<float>> batches(uint32_t seed, bool ties, bool non_finite, int count = 6) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.3f, 2.f);
  std::uniform_int_distribution<int> size(1, 5000), pick(0, 997);
  std::vector<std::vector<float>> out;
  for (int b = 0; b < count; ++b) {
    std::vector<float> x(static_cast<size_t>(size(rng)));
    for (auto& v : x) {
      v = g(rng);
      if (ties) v = std::round(v * 4) / 4;
      if (non_finite) {
        const int p = pick(rng);
        v = p == 0 ? kNan : p == 1 ? kInf : p == 2 ? -kInf : v;
      }
    }
    out.push_back(std::move(x));
  }
  return out;
}
}  // namespace

TEST(CalibTails, KeepsTheExtremesOfTheStream) {
  for (bool absolute : {true, false})
    for (bool ties : {false, true}) {
      const auto bs = batches(absolute * 2 + ties + 1, ties, true);
      const int64_t k = 300;
      TailCollector t(k, absolute, true);
      RangeScanner direct(true), fused(true);  // the range from its own passes and from the tails' pass
      std::vector<float> all;  // finite values, as the collector sees them
      for (const auto& b : bs) {
        t.add(b, &fused);
        direct.add(b);
        for (float v : b)
          if (std::isfinite(v)) all.push_back(absolute ? std::fabs(v) : v);
      }
      ASSERT_EQ(t.count(), static_cast<int64_t>(all.size()));
      const std::vector<float> nan_only(100, kNan), inf_only{kInf, -kInf, kNan};
      t.add(nan_only, &fused), direct.add(nan_only);  // no finite value: not a batch of the range
      t.add(inf_only, &fused), direct.add(inf_only);
      EXPECT_EQ(fused.batches(), direct.batches());
      EXPECT_EQ(fused.min(), direct.min());
      EXPECT_EQ(fused.max(), direct.max());
      EXPECT_EQ(fused.abs_min(), direct.abs_min());
      std::vector<float> desc = all;
      std::sort(desc.begin(), desc.end(), std::greater<float>());
      for (int64_t r : {int64_t{1}, int64_t{2}, int64_t{57}, k - 1, k}) {
        ASSERT_TRUE(t.largest(r).has_value()) << r;
        EXPECT_EQ(*t.largest(r), desc[static_cast<size_t>(r - 1)]) << "absolute " << absolute << " rank " << r;
        if (!absolute) {
          ASSERT_TRUE(t.smallest(r).has_value());
          EXPECT_EQ(*t.smallest(r), desc[desc.size() - static_cast<size_t>(r)]) << "rank " << r;
        }
      }
      EXPECT_FALSE(t.largest(k + 1).has_value());
      EXPECT_FALSE(t.largest(0).has_value());
      if (absolute) {
        EXPECT_FALSE(t.smallest(1).has_value());  // no low side for |x|
      }
    }
}

// Where the tails decide, they give exactly percentile_range of the preset histogram; they decline only when
// (1 - p) * total is within the float CDF's error of a whole number, or when the rank was not kept.
TEST(CalibTails, PercentileEqualsTheHistogramRoute) {
  int decided = 0, declined = 0;
  for (bool absolute : {true, false})
    for (uint32_t seed = 1; seed <= 6; ++seed) {
      const auto bs = batches(seed * 7, seed % 2 == 0, seed % 3 == 0);
      const auto mode = absolute ? HistogramMode::Absolute : HistogramMode::Value;
      RangeScanner scan(absolute);
      for (const auto& b : bs) scan.add(b);
      HistogramCollector h(mode, 2048);
      h.preset(scan);
      for (const auto& b : bs) h.add(b);
      for (double p : {99.999, 99.99, 99.9, 99.5, 97.0, 90.0, 50.0}) {
        const double side = absolute ? 1 - p / 100 : (100 - p) / 200;
        TailCollector t(static_cast<int64_t>(side * (h.histogram().total() + 1)) + 2, absolute, !absolute);
        for (const auto& b : bs) t.add(b);
        const auto r = percentile_from_tails(scan, t, mode, 2048, p);
        if (!r) {
          ++declined;
          continue;
        }
        ++decided;
        const auto ref = percentile_range(h.histogram(), p);
        EXPECT_EQ(r->rmin, ref.rmin) << "absolute " << absolute << " seed " << seed << " p " << p;
        EXPECT_EQ(r->rmax, ref.rmax) << "absolute " << absolute << " seed " << seed << " p " << p;
      }
    }
  EXPECT_GE(decided, 70);
  // Too few values kept: declined, not a wrong answer.
  std::vector<float> x(1000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.37f;
  RangeScanner scan(true);
  scan.add(x);
  TailCollector small(3, true, false);
  small.add(x);
  EXPECT_FALSE(percentile_from_tails(scan, small, HistogramMode::Absolute, 2048, 99.0).has_value());
  // (1 - p) * total a whole number: 1 % of 1000 values. Declined: numpy's CDF could round either way.
  TailCollector big(100, true, false);
  big.add(x);
  EXPECT_FALSE(percentile_from_tails(scan, big, HistogramMode::Absolute, 2048, 99.0).has_value());
  EXPECT_TRUE(percentile_from_tails(scan, big, HistogramMode::Absolute, 2048, 99.05).has_value());
  (void)declined;
}

namespace {
// Runs the Calibrator as quant::calibrate does (needs_pass before each pass); returns the range and the passes.
std::pair<TensorRange, int> calibrate(const std::vector<std::vector<float>>& bs, bool symmetric, double p,
                                      bool tails, int64_t expected) {
  CalibOptions o;
  o.method = CalibMethod::Percentile;
  o.symmetric = symmetric;
  o.percentile = p;
  o.two_pass_histogram = true;
  o.percentile_tails = tails;
  Calibrator cal({"t"}, o);
  cal.expect_batches(expected);
  int run = 0;
  for (int pass = 0; pass < cal.passes() && cal.needs_pass(pass); ++pass, ++run) {
    cal.begin_pass(pass);
    for (const auto& b : bs) cal.observe("t", oq::Tensor::from_vector(oq::DType::Float, {(int64_t)b.size()}, b));
  }
  return {cal.compute().at("t"), run};
}
}  // namespace

// The Calibrator's three routes for Percentile over one histogram give the plain two-pass range: the tails
// (one pass), the stash of a small tensor when (1 - p) * total is a whole number (one pass), and the second
// pass when neither can (here: batches bigger than planned, so the stash is given up and too few values kept).
TEST(CalibTails, CalibratorRoutesAgreeWithTwoPasses) {
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.f, 1.f);
  auto make = [&](std::vector<int> sizes) {
    std::vector<std::vector<float>> bs;
    for (int n : sizes) {
      std::vector<float> b(static_cast<size_t>(n));
      for (auto& v : b) v = g(rng);
      bs.push_back(std::move(b));
    }
    return bs;
  };
  for (bool sym : {true, false}) {
    const auto odd = make({3001, 3001, 3001, 3001});  // 12004 values: 0.1 % is 12.004, decided by the tails
    const auto round = make({2500, 2500, 2500, 2500});  // 10000: 0.1 % is exactly 10, the stash decides
    const auto grow = make({10, 50000, 50000, 50000});  // planned from the first batch: 65 kept, 151 needed
    for (const auto* bs : {&odd, &round, &grow}) {
      const int64_t batches = static_cast<int64_t>(bs->size());
      const auto [ref, ref_passes] = calibrate(*bs, sym, 99.9, false, batches);
      const auto [got, passes] = calibrate(*bs, sym, 99.9, true, batches);
      EXPECT_EQ(ref_passes, 2);
      EXPECT_EQ(got.rmin, ref.rmin) << "symmetric " << sym << " batch " << (*bs)[0].size();
      EXPECT_EQ(got.rmax, ref.rmax) << "symmetric " << sym << " batch " << (*bs)[0].size();
      EXPECT_EQ(passes, bs == &grow ? 2 : 1) << "symmetric " << sym << " batch " << (*bs)[0].size();
    }
  }
}
