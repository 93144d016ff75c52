// Calibration COLLECTORS: what is measured on each activation, one tensor (= one batch, one Session::run) at a
// time, with memory independent of the number of batches (except the moving average: 8 bytes a batch of the
// current chunk, see MinMaxOptions). How a range is chosen from what was measured is the job of strategies.h.
//
// The semantics are those of ONNX Runtime's quantize_static calibrators (onnxruntime/quantization/calibrate.py),
// re-implemented here:
//   - MinMaxCollector      = MinMaxCalibrater (per-batch ReduceMin/ReduceMax, merged over batches; optional
//                            moving average exactly as ORT computes it, see MinMaxOptions).
//   - HistogramCollector   = HistogramCollector.collect_value (Value mode: Entropy, and Percentile with
//                            symmetric=false) and collect_absolute_value (Absolute mode: Percentile with
//                            symmetric=true), including ORT's way of growing the histogram when a batch
//                            exceeds its range. Bin edges are computed with numpy's float32 arithmetic, so the
//                            histograms are bin-for-bin those of ORT fed the same batches one collect() each
//                            (ORT's quantize_static with extra_options CalibStridedMinMax=1); with preset()
//                            from a first pass (RangeScanner) they are bin-for-bin ORT's single collect() of
//                            all batches (quantize_static's default). Both checked by
//                            tests/python/test_calib_vs_ort.py.
//   - PerChannelAbsMaxCollector: running max|x| per channel along one axis (for SmoothQuant).
//
// Deliberate deviation from ORT: non-finite values (NaN, +-inf) are ignored by every collector. ORT's histograms
// skip NaN (np.nanmin / np.nanmax) but fail on an inf; its MinMax (ReduceMin / ReduceMax) lets an inf through
// into the range, and a NaN too depending on where it sits. A batch with no finite value or no value at all is
// skipped (counted in batches_skipped()): for MinMax ORT's +inf / -inf of an empty batch drop out the same way
// (not from a moving average, where ORT's range becomes [0, 0]). One exception, as ORT: an empty FIRST batch of
// an |x| histogram creates it over numpy's default range [0, 1], which later batches grow. (A tensor empty on
// every batch gets ORT's range [0, 0] from the Calibrator.)
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "calib/binning.h"
#include "core/tensor.h"

namespace oq::calib {

// Range of everything seen, for a first pass before a fixed-range histogram (HistogramCollector::preset).
class RangeScanner {
 public:
  // with_abs_min: also track min |x| (for an |x| histogram; one more pass over each batch).
  explicit RangeScanner(bool with_abs_min = true) : with_abs_min_(with_abs_min) {}
  void add(std::span<const float> x);
  // A batch whose finite values span [mn, mx], with min |x| = amin (from a scan done elsewhere: TailCollector).
  void add_stats(float mn, float mx, float amin);
  bool empty() const { return !seen_; }
  int64_t batches() const { return batches_; }  // batches with a finite value
  float min() const { return min_; }
  float max() const { return max_; }
  float abs_min() const { return abs_min_; }  // of the finite values (0 without with_abs_min)
  bool saw_non_finite() const { return non_finite_; }  // a batch held NaN or an infinity (add() only)

 private:
  bool with_abs_min_ = true;
  bool seen_ = false, non_finite_ = false;
  int64_t batches_ = 0;
  float min_ = 0, max_ = 0, abs_min_ = 0;
};

struct MinMaxOptions {
  // ORT's CalibMovingAverage. ORT computes, for each collect_data() call ("chunk" of batches), the arithmetic
  // mean of the per-batch minima and maxima (np.nanmean: numpy's float32 pairwise sum, divided by the count in
  // float64, rounded to float32; reproduced bit for bit), and merges successive chunks with an exponential
  // moving average: r = r + averaging_constant * (chunk - r) (float32), the first chunk initialising r.
  // With quantize_static's default single collect_data() call this is the plain mean over all batches; with
  // CalibStridedMinMax=k it is the mean over each k batches, then the EMA across those groups.
  bool moving_average = false;
  float averaging_constant = 0.01f;  // ORT's CalibMovingAverageConstant; in [0, 1]
  int64_t batches_per_chunk = 0;      // ORT's CalibStridedMinMax; 0 = all batches form one chunk
};

// What MinMaxCollector measured, already merged as ORT merges it.
struct MinMaxStats {
  float min = 0, max = 0;  // the (averaged) range
  float absmax = 0;        // the symmetric variant: ORT symmetrises each chunk before averaging
  int64_t batches = 0;     // batches that contributed
};

class MinMaxCollector {
 public:
  explicit MinMaxCollector(MinMaxOptions opts = {});
  void add(std::span<const float> x);
  bool empty() const { return batches_ == 0; }
  int64_t batches_skipped() const { return skipped_; }
  bool saw_non_finite() const { return non_finite_; }  // a batch held NaN or an infinity
  // Result so far (the pending chunk of a moving average is folded in without being consumed).
  MinMaxStats stats() const;
  const MinMaxOptions& options() const { return opts_; }

 private:
  MinMaxOptions opts_;
  int64_t batches_ = 0, skipped_ = 0;
  bool non_finite_ = false;
  float min_ = 0, max_ = 0;  // plain running min/max
  // moving average: the per-batch minima / maxima of the current chunk (one float each per batch: numpy's
  // pairwise sum needs them all, its split points depend on the count) ...
  std::vector<float> chunk_mins_, chunk_maxs_;
  // ... and the EMA over finished chunks.
  bool have_ema_ = false;
  float ema_min_ = 0, ema_max_ = 0, ema_abs_ = 0;
};

enum class HistogramMode {
  Value,     // histogram of x over [-T, T], T = max|x| (ORT collect_value)
  Absolute,  // histogram of |x| over [min|x| of the first batch, max|x|] (ORT collect_absolute_value)
};

struct Histogram {
  HistogramMode mode = HistogramMode::Value;
  std::vector<int64_t> counts;
  std::vector<float> edges;  // counts.size() + 1, non-decreasing; the last bin includes its right edge
  float min = 0, max = 0;    // signed min/max of all (finite) data seen
  float threshold = 0;       // Value mode: the histogram spans [-threshold, threshold] (0: all data was 0)
  int64_t total() const;
};

// Histograms never grow beyond this many bins (ORT would try to allocate them): Data error instead.
inline constexpr int64_t kMaxHistogramBins = int64_t{1} << 24;

class HistogramCollector {
 public:
  // num_bins: bins of the first histogram (ORT: 128 for Entropy, 2048 for Percentile).
  HistogramCollector(HistogramMode mode, int64_t num_bins);
  // Fixes the histogram's range before the first batch to the range of ALL the data (from a first pass),
  // so that no batch grows it: the result is then ORT's histogram of all batches in one collect() call
  // (quantize_static's default). Value: [-T, T], T = max(|min|, |max|); Absolute: [abs_min, max|x|].
  void preset(const RangeScanner& all_data);
  void add(std::span<const float> x);
  bool empty() const { return batches_ == 0; }
  int64_t batches() const { return batches_; }
  int64_t batches_skipped() const { return skipped_; }
  bool saw_non_finite() const { return non_finite_; }  // NaN (first batch only) or an infinity seen
  const Histogram& histogram() const { return h_; }

 private:
  // Each finishes a batch: with the counts pending in the scratch (binned against the current edges) when
  // the histogram already existed, else binning x itself.
  void add_value(std::span<const float> x, const BatchMinMax& mm);
  void add_absolute(std::span<const float> x, const BatchMinMax& mm);
  void set_edges(std::vector<float> edges);  // h_.edges and binner_
  Histogram h_;
  std::optional<Binner<float>> binner_;  // for h_.edges
  int64_t num_bins_;
  bool init_ = false;  // edges exist (first batch seen, or preset)
  bool non_finite_ = false;
  int64_t batches_ = 0, skipped_ = 0;
};

// The k largest finite values seen (of |x| when absolute), and with `low` the k smallest too, exactly (ties
// kept up to k), plus the count of finite values. For Percentile over one histogram of all the data: the bin
// where ORT's CDF crosses the percentile is the bin of one order statistic near an end (strategies.h,
// percentile_from_tails), so these few values replace the histogram and its second pass. A batch costs a
// vectorised max / min scan per 2048 values; only blocks reaching the running k-th value are looked into.
class TailCollector {
 public:
  TailCollector(int64_t k, bool absolute, bool low);
  // With `range`, also adds the batch to it (same result as range->add(x), from the same pass over x).
  void add(std::span<const float> x, RangeScanner* range = nullptr);
  int64_t k() const { return k_; }
  int64_t count() const { return seen_ - non_finite_; }  // finite values
  bool saw_non_finite() const { return non_finite_ > 0; }
  // The r-th largest / smallest (1-based) finite value (largest |x| when absolute); nullopt when r is not
  // in [1, min(k, count())] or the side was not kept.
  std::optional<float> largest(int64_t r) const;
  std::optional<float> smallest(int64_t r) const;

 private:
  struct Side {  // the largest values of a stream: all values >= thr are kept, thr = k-th largest once known
    std::vector<float> v;
    float thr = -std::numeric_limits<float>::infinity();
    void push(float a, int64_t k);
    std::optional<float> rank(int64_t r, int64_t k) const;  // r-th largest
  };
  struct Stats {  // a batch's finite min / max and min |x|
    float min = std::numeric_limits<float>::infinity(), max = -std::numeric_limits<float>::infinity();
    float abs_min = std::numeric_limits<float>::infinity();
  };
  void block(const float* x, int64_t n, Stats& st);  // the slow path of one block: value by value
  int64_t k_;
  bool absolute_, low_;
  Side top_, bottom_;  // bottom_ holds -x
  int64_t seen_ = 0, non_finite_ = 0;
};

// Running max|x| per channel along `axis` (negative counts from the end) over all batches.
class PerChannelAbsMaxCollector {
 public:
  explicit PerChannelAbsMaxCollector(int axis) : axis_(axis) {}
  // x must be float32; the channel count must stay the same across batches (Data error otherwise).
  void add(const Tensor& x);
  bool empty() const { return batches_ == 0; }
  int axis() const { return axis_; }
  // One value per channel (0 for a channel that never had a finite non-zero value).
  const std::vector<float>& absmax() const { return absmax_; }

 private:
  int axis_;
  int64_t batches_ = 0;
  std::vector<float> absmax_;
};

// numpy-exact building blocks, exposed for the strategies and the tests.
namespace np {
// np.histogram(..., bins=n, range=(first, last)) edges for float32 data: linspace in float32, with numpy's
// expansion of an empty range to (first-0.5, last+0.5).
std::vector<float> uniform_edges(float first, float last, int64_t n);
// np.arange(start, stop, step) for np.float32 scalars: numpy returns FLOAT64 values here (length and the
// second value from float32 arithmetic, the rest filled in float64).
std::vector<double> arange(float start, float stop, float step);
// np.floor_divide for float32.
float floor_divide(float a, float b);
// Adds the values of x (|x| when absolute) to counts by the edges, as np.histogram does: bin i holds
// edges[i] <= v < edges[i+1], the last bin also v == edges.back(); values outside [edges.front(),
// edges.back()] and NaN are not counted.
void accumulate(std::span<const float> x, bool absolute, std::span<const float> edges,
                std::vector<int64_t>& counts);
void accumulate(std::span<const float> x, bool absolute, std::span<const double> edges,
                std::vector<int64_t>& counts);
}  // namespace np

}  // namespace oq::calib
