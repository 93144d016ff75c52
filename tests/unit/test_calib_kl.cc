// The Entropy threshold search (kl::divergences, optimised: prefix sums, reused buffers, vectorised
// divisions) against the straightforward float32 port of ORT's get_entropy_threshold it replaced: the
// divergences must be bit for bit the same, so that the chosen window cannot move.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <random>

#include "calib/strategies.h"

using namespace oq;
using namespace oq::calib;

namespace {
// ORT calibrate.py, element by element in float32 (the previous implementation, kept as the reference).
std::vector<float> reference_divergences(const Histogram& h, int64_t nq) {
  const auto nb = static_cast<int64_t>(h.counts.size());
  const int64_t zero_bin = nb / 2, half_q = nq / 2;
  auto smooth = [](const std::vector<int64_t>& c) -> std::optional<std::vector<float>> {
    int64_t zeros = 0;
    for (int64_t v : c) zeros += (v == 0);
    const int64_t nonzeros = static_cast<int64_t>(c.size()) - zeros;
    if (nonzeros == 0) return std::nullopt;
    const double eps1 = 0.0001 * static_cast<double>(zeros) / static_cast<double>(nonzeros);
    if (!(eps1 < 1.0)) return std::nullopt;
    std::vector<float> out(c.size());
    for (size_t i = 0; i < c.size(); ++i)
      out[i] = c[i] == 0 ? static_cast<float>(0.0001) : static_cast<float>(c[i]) + static_cast<float>(-eps1);
    return out;
  };
  auto entropy = [](const std::vector<float>& p, const std::vector<float>& q) {
    const float sp = kl::pairwise_sum(p), sq = kl::pairwise_sum(q);
    std::vector<float> vec(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      const float pk = p[i] / sp, qk = q[i] / sq;
      if (pk > 0 && qk > 0) {
        const float ratio = pk / qk;
        const float lg = std::log(ratio);
        vec[i] = pk * lg;
      } else {
        vec[i] = std::numeric_limits<float>::infinity();
      }
    }
    return kl::pairwise_sum(vec);
  };
  std::vector<float> out;
  for (int64_t i = half_q; i <= zero_bin; ++i) {
    const int64_t start = zero_bin - i, end = std::min(zero_bin + i + 1, nb), len = end - start;
    std::vector<int64_t> p(h.counts.begin() + start, h.counts.begin() + end);
    for (int64_t j = 0; j < start; ++j) p[0] += h.counts[j];
    for (int64_t j = end; j < nb; ++j) p[len - 1] += h.counts[j];
    const int64_t merged = len / nq;
    std::vector<int64_t> qbins(nq, 0), q(len, 0);
    for (int64_t k = 0; k < nq; ++k)
      for (int64_t j = k * merged; j < (k + 1) * merged; ++j) qbins[k] += h.counts[start + j];
    for (int64_t j = nq * merged; j < len; ++j) qbins[nq - 1] += h.counts[start + j];
    for (int64_t k = 0; k < nq; ++k) {
      int64_t norm = 0;
      for (int64_t j = k * merged; j < (k + 1) * merged; ++j) norm += (p[j] != 0);
      if (norm == 0) continue;
      const auto v = static_cast<int64_t>(static_cast<double>(qbins[k]) / static_cast<double>(norm));
      for (int64_t j = k * merged; j < (k + 1) * merged; ++j) q[j] = v;
    }
    const auto ps = smooth(p), qs = smooth(q);
    out.push_back(ps && qs ? entropy(*ps, *qs) : std::numeric_limits<float>::infinity());
  }
  return out;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
}  // namespace

TEST(CalibKl, DivergencesBitIdenticalToReference) {
  std::mt19937 rng(1127);
  int checked = 0;
  for (int trial = 0; trial < 40; ++trial) {
    Histogram h;
    const int64_t nb = 1 + static_cast<int64_t>(rng() % 700);
    int64_t nq = trial % 4 == 0 ? 128 : 1 + static_cast<int64_t>(rng() % 97);  // odd ones too
    if (nb / 2 < nq / 2) nq = nb;
    // sparse, peaked, or with outliers only at the ends: zero runs and single non-zero bins in windows
    h.counts.assign(static_cast<size_t>(nb), 0);
    std::normal_distribution<double> nd(static_cast<double>(nb) / 2, 1 + static_cast<double>(nb) / (2 + trial % 7));
    const int n = 10 + static_cast<int>(rng() % 20000);
    for (int k = 0; k < n; ++k) {
      const auto b = static_cast<int64_t>(std::llround(nd(rng)));
      if (b >= 0 && b < nb && (trial % 3 != 1 || rng() % 4 == 0)) ++h.counts[b];
    }
    if (trial % 5 == 2) h.counts.front() += 3, h.counts.back() += 1000;
    const auto got = kl::divergences(h, nq);
    const auto want = reference_divergences(h, nq);
    ASSERT_EQ(got.size(), want.size()) << trial;
    for (size_t k = 0; k < got.size(); ++k)
      ASSERT_EQ(bits(got[k]), bits(want[k])) << "trial " << trial << " bins " << nb << " nq " << nq << " window " << k
                                             << ": " << got[k] << " vs " << want[k];
    checked += static_cast<int>(got.size());
  }
  EXPECT_GT(checked, 1000);
  // tiny num_quantized_bins: one-bin windows (both end corrections on the same bin), empty centre bins,
  // windows shorter than num_quantized_bins (no bin per group)
  for (int64_t nq : {1, 2, 3, 5}) {
    for (const std::vector<int64_t>& c : {std::vector<int64_t>{4, 0, 0, 0, 7}, std::vector<int64_t>{0, 3, 0, 2, 0, 9},
                                          std::vector<int64_t>{1, 0, 0, 0, 0, 0, 0}, std::vector<int64_t>{0, 0, 5, 0}}) {
      Histogram h;
      h.counts = c;
      if (static_cast<int64_t>(c.size()) / 2 < nq / 2) continue;
      const auto got = kl::divergences(h, nq), want = reference_divergences(h, nq);
      ASSERT_EQ(got.size(), want.size());
      for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(bits(got[k]), bits(want[k])) << "nq " << nq << " window " << k;
    }
  }
  // the public building blocks agree with the reference too
  EXPECT_FALSE(kl::smooth(std::vector<int64_t>{0, 0, 0}));
  const auto s = kl::smooth(std::vector<int64_t>{0, 5, 0, 1, 7});
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)[0], static_cast<float>(0.0001));
  EXPECT_EQ((*s)[1], 5.0f + static_cast<float>(-0.0001 * 2 / 3));
}
