// The per-batch kernels of the calibration collectors (collectors.h): vectorised min/max scans and exact
// histogram binning. Everything here runs once per observed tensor per sample, so it is written to cost
// about a nanosecond per value (SSE2, branch-free in the common case), not to be general.
//
// Binning rule (np.histogram with explicit edges, which ORT's calibrators use): a value v goes to the bin i
// with edges[i] <= v < edges[i+1] (precisely: the last i with edges[i] <= v), the last bin also holding
// v == edges.back(); values outside [edges.front(), edges.back()] and NaN are not counted. Binner follows it
// exactly for any non-decreasing edges: a vectorised estimate decides the bin only where it provably cannot
// be wrong (far enough inside a bin, see Binner's constructor), the other values are settled on the edges
// themselves. tests/unit/test_calib_binning.cc checks it against a naive search.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace oq::calib {

// min/max of the finite values of x in one vectorised pass; any=false when x has no finite value.
struct BatchMinMax {
  float min = 0, max = 0;
  bool any = false;
  bool non_finite = false;  // a NaN or an infinity was skipped (finite_min_max; Binner::scan: infinities only)
};
BatchMinMax finite_min_max(std::span<const float> x);
// min |v| over the values of x that are not NaN (+inf when there are none).
float abs_min(std::span<const float> x);
// min/max of the values of x that are not NaN, infinities included, folded into mn / mx (start them at +inf /
// -inf); one vectorised pass on this thread. The same values as `mn = std::min(mn, v)` over x (weights'
// per-channel ranges).
void min_max_into(std::span<const float> x, float& mn, float& mx);

// Counts of one batch, not yet added to a histogram: a few interleaved 32-bit sub-histograms (so that runs
// of equal values do not serialise on one counter). Kept zeroed between batches: commit() and discard()
// clear what was used. One per thread (see scratch()).
class BinScratch {
 public:
  // Adds the pending counts to counts (bins entries) and clears them.
  void commit(std::span<int64_t> counts);
  // Clears the pending counts.
  void discard();
  // Values binned between two folds of the 32-bit counters into 64-bit ones (tests lower it).
  void set_fold_interval(int64_t n) { fold_every_ = n; }

 private:
  template <typename E>
  friend class Binner;
  int64_t fold_every() const { return fold_every_; }
  uint32_t* prepare(int64_t bins, int subs);  // zeroed storage for subs x bins counters
  void fold_wide();                           // moves the 32-bit counters into wide_ (before they could wrap)
  void release();                             // nothing pending; frees oversized storage
  void absorb(BinScratch& other);             // adds other's pending counts (same shape, no wide) to these
  std::vector<uint32_t> sub_;
  std::vector<int64_t> wide_;  // only for batches of 2^31 values or more
  int64_t bins_ = 0;
  int64_t fold_every_ = int64_t{1} << 31;  // a 32-bit counter cannot wrap within it
  int subs_ = 0;
  bool has_wide_ = false;
};
// This thread's scratch.
BinScratch& scratch();

// Where a value falls on a Binner's edges, as the vectorised kernel sees it.
struct BinGrid {
  float lo, hi;             // the float32 values v with lo <= v <= hi are exactly those inside the edges
  float scale;              // bins per unit: the estimate is t = (v - lo) * scale
  float margin, margin_hi;  // t in [k + margin, k + margin_hi] is exactly bin k (margin >= 0.5: never)
  int32_t nb;
};

template <typename E>  // float or double edges
class Binner {
 public:
  // edges: at least 2, finite, non-decreasing (not checked beyond an internal check). O(bins) set-up.
  explicit Binner(std::span<const E> edges);
  int64_t bins() const { return nb_; }
  // Bins x (|x| when absolute) into s (pending: commit or discard it) and returns the min/max of the finite
  // values of x (signed, as finite_min_max) from the same pass over the data. A batch of 2^18 values or more
  // is split over the threads (core/parallel.h); the counts do not depend on it.
  BatchMinMax scan(std::span<const float> x, bool absolute, BinScratch& s) const;
  // scan + commit into counts (bins() entries).
  void add(std::span<const float> x, bool absolute, std::span<int64_t> counts) const;
  // The bin of one value, -1 when it is not counted (the reference rule, for tests and the slow path).
  int64_t bin_of(float v) const;

 private:
  int64_t settle(float v, int64_t est) const;
  void bin_range(const float* x, int64_t n, bool absolute, uint32_t* sub, int subs, float& mn, float& mx,
                 BinScratch* fold_into) const;

  int64_t nb_;
  std::vector<E> pad_;  // -inf, edges..., +inf: pad_[i + 1] = edges[i]
  BinGrid grid_;
  int32_t lo_bin_, hi_bin_, zero_bin_;  // exact bins of grid_.lo, grid_.hi and 0; -1: not counted
};

// Caps the vector width of the binning kernel (default: the CPU's best of 16 lanes with AVX-512F, 8 with
// AVX2, 4 with SSE2; 0 = no cap). Tests lower it to cover every kernel; the results do not depend on it.
void set_binning_lanes(int lanes);

extern template class Binner<float>;
extern template class Binner<double>;

}  // namespace oq::calib
