// Calibration STRATEGIES: how a range is chosen from what a collector measured (collectors.h). Ports of
// ONNX Runtime's calibrate.py range computations:
//   minmax_range      MinMaxCalibrater.compute_data (+ merge_range)
//   percentile_range  HistogramCollector.compute_percentile
//   entropy_range     HistogramCollector.get_entropy_threshold (KL-divergence threshold search)
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "calib/collectors.h"

namespace oq::calib {

struct TensorRange {
  float rmin = 0, rmax = 0;
};

// (min, max), or (-a, a) with a = max(|min|, |max|) when symmetric (ORT symmetrises each collect_data chunk
// before the moving average; MinMaxStats::absmax carries that).
TensorRange minmax_range(const MinMaxStats& s, bool symmetric);

// ORT compute_percentile. Absolute histogram (ORT symmetric=true): t = the |x| edge where the CDF first
// reaches percentile/100, range (-t, t). Value histogram (symmetric=false): cut (100-percentile)/2 % on each
// side, range (edge_left, edge_right). Either way each bound is then clamped to the data's min/max.
// percentile in [0, 100].
TensorRange percentile_range(const Histogram& h, double percentile);

// percentile_range of the histogram of ALL the data over the range a first pass found (ORT's single
// collect_data() call; HistogramCollector::preset's edges), without the histogram: the CDF first reaches a
// fraction p in the bin of the (floor((1 - p) * total) + 1)-th largest value (of |x| for Absolute; the left
// bound of Value mode symmetrically from the smallest), so the extreme values kept by `tails` decide it.
// nullopt when they do not suffice (the rank is beyond what was kept) or when (1 - p) * total is so close to
// an integer that the float64 CDF numpy computes could round the other way: build the histogram then.
std::optional<TensorRange> percentile_from_tails(const RangeScanner& all, const TailCollector& tails,
                                                 HistogramMode mode, int64_t num_bins, double percentile);
// The ranks it needs for `total` finite values: the bin of the top-th largest value is the upper threshold
// (of |x| for Absolute), of the bottom-th smallest the lower one (Value); nullopt when (1 - p) * total (or
// cut * total) is within the float CDF's error of a whole number.
struct PercentileRanks {
  int64_t top = 0, bottom = 0;
};
std::optional<PercentileRanks> percentile_ranks(int64_t total, HistogramMode mode, int64_t num_bins,
                                                double percentile);

// ORT get_entropy_threshold on a Value histogram: for every symmetric window of at least
// num_quantized_bins bins around the zero bin, KL(P || Q) between the window's distribution P (outliers
// folded into the end bins) and its num_quantized_bins-level quantisation Q (both smoothed as ORT does);
// the window with the smallest divergence (first on ties) gives the range, clamped to the data's min/max.
// Needs counts.size() >= num_quantized_bins.
TensorRange entropy_range(const Histogram& h, int64_t num_quantized_bins);

// Building blocks (numpy float32 arithmetic, as ORT computes them), exposed for tests.
namespace kl {
// numpy's pairwise float32 summation (np.sum of a float32 vector).
float pairwise_sum(std::span<const float> a);
// ORT quant_utils.smooth_distribution: zeros become 1e-4, the non-zeros give that mass back evenly.
// nullopt when every entry is zero (or when ORT's eps1 < 1 assertion would fail).
std::optional<std::vector<float>> smooth(std::span<const int64_t> counts);
// ORT calibrate.entropy(p, q) = sum p' * log(p' / q') with p', q' normalised (scipy.stats.entropy), float32.
float entropy(std::span<const float> p, std::span<const float> q);
// The divergences of every candidate window of entropy_range, in ORT's order (for tests).
std::vector<float> divergences(const Histogram& h, int64_t num_quantized_bins);
}  // namespace kl

}  // namespace oq::calib
