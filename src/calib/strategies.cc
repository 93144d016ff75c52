// Calibration strategies (see strategies.h). The KL divergence is computed in float32 exactly as ORT's numpy
// code does (pairwise sums, float32 divisions), so the compiler must not fuse operations into FMAs here.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "calib/strategies.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/clones.h"

namespace oq::calib {

namespace {
TensorRange clamp_to_data(float lo, float hi, const Histogram& h) {
  // ORT: `if threshold[0] < min_value: ...; if threshold[1] > max_value: ...`
  if (lo < h.min) lo = h.min;
  if (hi > h.max) hi = h.max;
  return {lo, hi};
}

// np.searchsorted(a, v, side='left'): first index with a[i] >= v.
size_t searchsorted_left(const std::vector<double>& a, double v) {
  return static_cast<size_t>(std::lower_bound(a.begin(), a.end(), v) - a.begin());
}
}  // namespace

TensorRange minmax_range(const MinMaxStats& s, bool symmetric) {
  if (symmetric) return {-s.absmax, s.absmax};
  return {s.min, s.max};
}

std::optional<PercentileRanks> percentile_ranks(int64_t total, HistogramMode mode, int64_t num_bins,
                                                double percentile) {
  if (total <= 0) return std::nullopt;
  // The float64 CDF is within ~num_bins * 2^-53 of the exact one (np.cumsum of hist / total): a target
  // count m at least this far from an integer gives the same bin in both.
  const long double margin = 1e-15L * static_cast<long double>(num_bins) * static_cast<long double>(total) + 1e-6L;
  // floor(m) + 1 for m = frac * total (frac as ORT computes it, in float64), nullopt near a whole number
  auto rank = [&](long double frac) -> std::optional<int64_t> {
    const long double m = frac * static_cast<long double>(total);
    const long double f = std::floor(m);
    if (m < 0 || m - f <= margin || f + 1 - m <= margin) return std::nullopt;
    return static_cast<int64_t>(f) + 1;
  };
  PercentileRanks r;
  if (mode == HistogramMode::Absolute) {
    // searchsorted(cdf, p): first i with U_i <= (1 - p) * total, U_i the count above bin i
    const auto t = rank(1.0L - static_cast<long double>(percentile / 100.0));
    if (!t) return std::nullopt;
    r.top = *t;
    return r;
  }
  const double cut = (100.0 - percentile) / 200.0;
  // right: searchsorted(cdf, 1 - cut); left: searchsorted(cdf, cut), i.e. first i with C_i >= cut * total
  const auto t = rank(1.0L - static_cast<long double>(1.0 - cut));
  const auto b = rank(static_cast<long double>(cut));
  if (!t || !b) return std::nullopt;
  r.top = *t, r.bottom = *b;
  return r;
}

std::optional<TensorRange> percentile_from_tails(const RangeScanner& all, const TailCollector& tails,
                                                 HistogramMode mode, int64_t num_bins, double percentile) {
  if (!(percentile >= 0 && percentile <= 100))
    fail(ErrorKind::Config, "calibration: percentile {} is not in [0, 100]", percentile);
  if (all.empty()) return std::nullopt;
  const auto ranks = percentile_ranks(tails.count(), mode, num_bins, percentile);
  if (!ranks) return std::nullopt;
  // The edges HistogramCollector::preset gives the histogram of all the data.
  const float amax = std::max(std::fabs(all.min()), std::fabs(all.max()));
  const std::vector<float> edges = mode == HistogramMode::Value ? np::uniform_edges(-amax, amax, num_bins)
                                                                : np::uniform_edges(all.abs_min(), amax, num_bins);
  const Binner<float> bins(edges);
  auto edge_of = [&](std::optional<float> v) -> std::optional<float> {
    if (!v) return std::nullopt;
    const int64_t k = bins.bin_of(*v);
    if (k < 0) return std::nullopt;  // cannot happen: the edges span the data
    return edges[static_cast<size_t>(k)];
  };
  auto clamp = [&](float lo, float hi) {
    if (lo < all.min()) lo = all.min();
    if (hi > all.max()) hi = all.max();
    return TensorRange{lo, hi};
  };
  const auto hi = edge_of(tails.largest(ranks->top));
  if (!hi) return std::nullopt;
  if (mode == HistogramMode::Absolute) return clamp(-*hi, *hi);
  const auto lo = edge_of(tails.smallest(ranks->bottom));
  if (!lo) return std::nullopt;
  return clamp(*lo, *hi);
}

TensorRange percentile_range(const Histogram& h, double percentile) {
  if (!(percentile >= 0 && percentile <= 100))
    fail(ErrorKind::Config, "calibration: percentile {} is not in [0, 100]", percentile);
  const int64_t total = h.total();
  if (h.counts.empty() || total == 0) fail(ErrorKind::Data, "percentile calibration: the histogram is empty");
  // cdf = np.cumsum(hist / total) in float64.
  std::vector<double> cdf(h.counts.size());
  double acc = 0;
  for (size_t i = 0; i < cdf.size(); ++i) {
    acc += static_cast<double>(h.counts[i]) / static_cast<double>(total);
    cdf[i] = acc;
  }
  if (h.mode == HistogramMode::Absolute) {
    const float t = h.edges[searchsorted_left(cdf, percentile / 100.0)];
    return clamp_to_data(-t, t, h);
  }
  const double cut = (100.0 - percentile) / 200.0;
  const size_t r = searchsorted_left(cdf, 1.0 - cut);
  const size_t l = searchsorted_left(cdf, cut);
  return clamp_to_data(h.edges[l], h.edges[r], h);
}

namespace kl {

namespace {
float pairwise(const float* a, int64_t n) {
  if (n < 8) {
    float res = 0.0f;
    for (int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    float r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise(a, n2) + pairwise(a + n2, n - n2);
}
}  // namespace

float pairwise_sum(std::span<const float> a) {
  // np.add.reduce starts from the identity 0 and adds the pairwise sum of the whole vector.
  return 0.0f + pairwise(a.data(), static_cast<int64_t>(a.size()));
}

// Wider vectors where the CPU has them: the same IEEE operations (conversions, divisions), so the same results.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define OQ_KL_CLONES OQ_TARGET_CLONES
#else
#define OQ_KL_CLONES
#endif

namespace {
// ORT smooth_distribution into out (counts.size() floats); false where smooth() gives nullopt. Branch-free
// per element (a zero count is as likely as not).
OQ_KL_CLONES bool smooth_into(std::span<const int64_t> counts, float* out) {
  int64_t n_zeros = 0;
  for (int64_t c : counts) n_zeros += (c == 0);
  const int64_t n_nonzeros = static_cast<int64_t>(counts.size()) - n_zeros;
  if (n_nonzeros == 0) return false;
  const double eps = 0.0001;
  const double eps1 = eps * static_cast<double>(n_zeros) / static_cast<double>(n_nonzeros);
  if (!(eps1 < 1.0)) return false;  // ORT: assert eps1 < 1.0
  // hist = p.astype(float32); hist += eps * is_zeros + (-eps1) * is_nonzeros   (float32)
  const auto eps_f = static_cast<float>(eps);
  const auto neg_eps1_f = static_cast<float>(-eps1);
  const int64_t* c = counts.data();
  for (size_t i = 0; i < counts.size(); ++i) {
    const float v = static_cast<float>(c[i]) + neg_eps1_f;
    out[i] = c[i] == 0 ? eps_f : v;
  }
  return true;
}

// entropy(p, q) with caller-provided scratch (n floats): the divisions in vectorisable loops, the logarithm
// (the same std::log as always, for the same results) in its own loop.
OQ_KL_CLONES float entropy_into(const float* p, const float* q, size_t n, float* vec) {
  const float sp = pairwise_sum(std::span<const float>(p, n)), sq = pairwise_sum(std::span<const float>(q, n));
  for (size_t i = 0; i < n; ++i) {
    const float pk = p[i] / sp, qk = q[i] / sq;
    vec[i] = pk / qk;
  }
  for (size_t i = 0; i < n; ++i) vec[i] = std::log(vec[i]);
  constexpr float inf = std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n; ++i) {
    const float pk = p[i] / sp, qk = q[i] / sq;
    const float term = pk * vec[i];
    vec[i] = (pk > 0 && qk > 0) ? term : inf;  // rel_entr: p == 0 or q <= 0
  }
  return pairwise_sum(std::span<const float>(vec, n));
}
}  // namespace

std::optional<std::vector<float>> smooth(std::span<const int64_t> counts) {
  std::vector<float> out(counts.size());
  if (!smooth_into(counts, out.data())) return std::nullopt;
  return out;
}

float entropy(std::span<const float> p, std::span<const float> q) {
  OQ_CHECK(p.size() == q.size(), "entropy: size mismatch");
  std::vector<float> vec(p.size());
  return entropy_into(p.data(), q.data(), p.size(), vec.data());
}

std::vector<float> divergences(const Histogram& h, int64_t num_quantized_bins) {
  const auto nb = static_cast<int64_t>(h.counts.size());
  const int64_t nq = num_quantized_bins;
  if (nq < 1) fail(ErrorKind::Config, "entropy calibration: num_quantized_bins {} must be >= 1", nq);
  const int64_t zero_bin = nb / 2, half_q = nq / 2;
  if (zero_bin < half_q)
    fail(ErrorKind::Config, "entropy calibration: the histogram has {} bins, fewer than num_quantized_bins {}", nb,
         nq);
  // prefix sums of the counts and of "count != 0": every window's group sums and non-zero counts in O(1)
  std::vector<int64_t> prefix(static_cast<size_t>(nb) + 1, 0), nz_prefix(static_cast<size_t>(nb) + 1, 0);
  for (int64_t i = 0; i < nb; ++i) {
    prefix[i + 1] = prefix[i] + h.counts[i];
    nz_prefix[i + 1] = nz_prefix[i] + (h.counts[i] != 0);
  }
  std::vector<float> out;
  out.reserve(static_cast<size_t>(zero_bin - half_q + 1));
  // buffers for the longest window, reused by every window
  const auto cap = static_cast<size_t>(std::min(2 * zero_bin + 1, nb));
  std::vector<int64_t> p(cap), q(cap);
  std::vector<float> ps(cap), qs(cap), vec(cap);
  for (int64_t i = half_q; i <= zero_bin; ++i) {
    const int64_t start = zero_bin - i, end = std::min(zero_bin + i + 1, nb), len = end - start;
    const int64_t* slice = h.counts.data() + start;
    // reference distribution p: the window, outliers folded into its end bins
    std::copy(slice, slice + len, p.begin());
    p[0] += prefix[start];
    p[len - 1] += prefix[nb] - prefix[end];
    // quantise the window (without outliers) into nq bins of `merged` bins, the remainder into the last;
    // expand back: every bin of a group gets quantized / (non-zero bins of p in the group), truncated
    const int64_t merged = len / nq;
    std::fill(q.begin(), q.begin() + len, 0);
    for (int64_t k = 0; k < nq; ++k) {
      const int64_t b = k * merged, e = (k + 1) * merged;  // the group, within the window
      int64_t qsum = prefix[start + e] - prefix[start + b];
      if (k == nq - 1) qsum += prefix[end] - prefix[start + nq * merged];
      // non-zero bins of p: those of the slice, corrected where p differs from it (its two end bins)
      int64_t norm = nz_prefix[start + e] - nz_prefix[start + b];
      if (b == 0 && e > 0) norm += (p[0] != 0) - (slice[0] != 0);
      if (e >= len && len - 1 >= b && len > 1) norm += (p[len - 1] != 0) - (slice[len - 1] != 0);
      if (norm == 0) continue;
      const int64_t v = static_cast<int64_t>(static_cast<double>(qsum) / static_cast<double>(norm));
      std::fill(q.begin() + b, q.begin() + e, v);
    }
    const bool ok = smooth_into(std::span<const int64_t>(p.data(), len), ps.data()) &&
                    smooth_into(std::span<const int64_t>(q.data(), len), qs.data());
    out.push_back(ok ? entropy_into(ps.data(), qs.data(), static_cast<size_t>(len), vec.data())
                     : std::numeric_limits<float>::infinity());
  }
  return out;
}

}  // namespace kl

TensorRange entropy_range(const Histogram& h, int64_t num_quantized_bins) {
  if (h.mode != HistogramMode::Value)
    fail(ErrorKind::Config, "entropy calibration needs a value histogram (not an |x| histogram)");
  if (h.counts.empty()) fail(ErrorKind::Data, "entropy calibration: the histogram is empty");
  const std::vector<float> div = kl::divergences(h, num_quantized_bins);
  // np.argmin: the first minimum (a NaN, if any, wins).
  size_t best = 0;
  for (size_t k = 0; k < div.size(); ++k) {
    if (std::isnan(div[k])) {
      best = k;
      break;
    }
    if (div[k] < div[best]) best = k;
  }
  const auto nb = static_cast<int64_t>(h.counts.size());
  const int64_t zero_bin = nb / 2, i = num_quantized_bins / 2 + static_cast<int64_t>(best);
  const int64_t start = zero_bin - i, end = std::min(zero_bin + i + 1, nb);
  return clamp_to_data(h.edges[start], h.edges[end], h);
}

}  // namespace oq::calib
