// Calibration collectors (see collectors.h). The histogram code reproduces numpy's float32 arithmetic
// (np.linspace, np.arange, np.floor_divide, np.histogram binning) operation by operation, so the compiler
// must not fuse a*b+c into one FMA here.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "calib/collectors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "calib/strategies.h"
#include "core/clones.h"

namespace oq::calib {

namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();
}  // namespace

namespace {
void check_bins(int64_t n, const char* what) {
  if (n > kMaxHistogramBins)
    fail(ErrorKind::Data,
         "calibration histogram: {} needs {} bins (limit {}): later batches range far wider than the first; "
         "use MinMax calibration for this tensor or put a representative sample first",
         what, n, kMaxHistogramBins);
}
}  // namespace

// ---------------------------------------------------------------- numpy-exact helpers

namespace np {

std::vector<float> uniform_edges(float first, float last, int64_t n) {
  OQ_CHECK(n >= 1, "uniform_edges: no bins");
  if (!std::isfinite(first) || !std::isfinite(last) || first > last)
    fail(ErrorKind::Data, "calibration histogram: invalid range [{}, {}]", first, last);
  if (first == last) {  // numpy: expand empty range to avoid divide by zero
    first = first - 0.5f;
    last = last + 0.5f;
  }
  // np.linspace(first, last, n + 1, dtype=float32): delta = stop - start; step = delta / n;
  // y = arange(n + 1) * step + start; y[-1] = stop. All in float32.
  const float delta = last - first;
  const float div = static_cast<float>(n);
  const float step = delta / div;
  std::vector<float> e(static_cast<size_t>(n) + 1);
  for (int64_t i = 0; i <= n; ++i) {
    const float fi = static_cast<float>(i);
    float y;
    if (step == 0) {
      const float t = fi / div;
      y = t * delta;
    } else {
      y = fi * step;
    }
    e[i] = y + first;
  }
  e[n] = last;
  for (int64_t i = 0; i < n; ++i)
    if (!(e[i] < e[i + 1]))
      fail(ErrorKind::Data, "calibration histogram: cannot make {} finite-sized bins over [{}, {}]", n, first,
           last);
  return e;
}

std::vector<double> arange(float start, float stop, float step) {
  OQ_CHECK(step > 0, "arange: step must be positive");
  // numpy (np.float32 scalars in, float64 array out): length = ceil((stop - start) / step) on the float32
  // scalars; buf[0] = start, buf[1] = start + step (float32), then DOUBLE_fill:
  // buf[i] = buf[0] + i * (buf[1] - buf[0]) in float64.
  const float range = stop - start;
  const float q = range / step;
  const double len_d = std::ceil(static_cast<double>(q));
  if (!(len_d > 0)) return {};
  check_bins(static_cast<int64_t>(std::min(len_d, 1e18)), "growing the |x| histogram");
  const auto len = static_cast<int64_t>(len_d);
  std::vector<double> b(static_cast<size_t>(len));
  b[0] = start;
  if (len > 1) b[1] = static_cast<float>(start + step);
  const double d = len > 1 ? b[1] - b[0] : 0.0;
  for (int64_t i = 2; i < len; ++i) {
    const double t = static_cast<double>(i) * d;
    b[i] = b[0] + t;
  }
  return b;
}

float floor_divide(float a, float b) {
  // npy_floor_divide / npy_divmod for float32.
  if (b == 0) return a / b;
  float mod = std::fmod(a, b);
  float div = (a - mod) / b;
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) {
      mod += b;
      div -= 1.0f;
    }
  }
  float floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5f) floordiv += 1.0f;
  } else {
    floordiv = std::copysign(0.0f, a / b);
  }
  return floordiv;
}

void accumulate(std::span<const float> x, bool absolute, std::span<const float> edges,
                std::vector<int64_t>& counts) {
  OQ_CHECK(edges.size() == counts.size() + 1, "histogram: edges/counts mismatch");
  Binner<float>(edges).add(x, absolute, counts);
}
void accumulate(std::span<const float> x, bool absolute, std::span<const double> edges,
                std::vector<int64_t>& counts) {
  OQ_CHECK(edges.size() == counts.size() + 1, "histogram: edges/counts mismatch");
  Binner<double>(edges).add(x, absolute, counts);
}

}  // namespace np

// ---------------------------------------------------------------- MinMaxCollector

MinMaxCollector::MinMaxCollector(MinMaxOptions opts) : opts_(opts) {
  if (!(opts_.averaging_constant >= 0 && opts_.averaging_constant <= 1))
    fail(ErrorKind::Config, "calibration: averaging_constant {} is not in [0, 1]", opts_.averaging_constant);
  if (opts_.batches_per_chunk < 0)
    fail(ErrorKind::Config, "calibration: batches_per_chunk {} is negative", opts_.batches_per_chunk);
}

namespace {
// np.nanmean of a chunk's per-batch float32 values as ORT gets it: numpy's pairwise float32 sum, true_divide
// by the count in float64, stored back as float32.
float chunk_mean(const std::vector<float>& v) {
  return static_cast<float>(static_cast<double>(kl::pairwise_sum(v)) / static_cast<double>(v.size()));
}

// One chunk's mean merged into the EMA as ORT's merge_range does.
void fold_chunk(const std::vector<float>& mins, const std::vector<float>& maxs, float c, bool& have, float& emin,
                float& emax, float& eabs) {
  const float cmin = chunk_mean(mins), cmax = chunk_mean(maxs);
  const float cabs = std::max(std::fabs(cmin), std::fabs(cmax));
  if (!have) {
    emin = cmin, emax = cmax, eabs = cabs, have = true;
    return;
  }
  const float dmin = cmin - emin, dmax = cmax - emax, dabs = cabs - eabs;
  const float smin = c * dmin, smax = c * dmax, sabs = c * dabs;
  emin = emin + smin;
  emax = emax + smax;
  eabs = eabs + sabs;
}
}  // namespace

void MinMaxCollector::add(std::span<const float> x) {
  const BatchMinMax mm = finite_min_max(x);
  non_finite_ |= mm.non_finite;
  if (!mm.any) {
    ++skipped_;
    return;
  }
  if (batches_ == 0) {
    min_ = mm.min, max_ = mm.max;
  } else {
    min_ = std::min(min_, mm.min);
    max_ = std::max(max_, mm.max);
  }
  ++batches_;
  if (!opts_.moving_average) return;
  chunk_mins_.push_back(mm.min);
  chunk_maxs_.push_back(mm.max);
  if (opts_.batches_per_chunk > 0 && static_cast<int64_t>(chunk_mins_.size()) == opts_.batches_per_chunk) {
    fold_chunk(chunk_mins_, chunk_maxs_, opts_.averaging_constant, have_ema_, ema_min_, ema_max_, ema_abs_);
    chunk_mins_.clear();
    chunk_maxs_.clear();
  }
}

MinMaxStats MinMaxCollector::stats() const {
  MinMaxStats s;
  s.batches = batches_;
  if (batches_ == 0) return s;
  if (!opts_.moving_average) {
    s.min = min_, s.max = max_;
    s.absmax = std::max(std::fabs(min_), std::fabs(max_));
    return s;
  }
  bool have = have_ema_;
  float emin = ema_min_, emax = ema_max_, eabs = ema_abs_;
  if (!chunk_mins_.empty())
    fold_chunk(chunk_mins_, chunk_maxs_, opts_.averaging_constant, have, emin, emax, eabs);
  s.min = emin, s.max = emax, s.absmax = eabs;
  return s;
}

// ---------------------------------------------------------------- HistogramCollector

int64_t Histogram::total() const {
  int64_t t = 0;
  for (int64_t c : counts) t += c;
  return t;
}

HistogramCollector::HistogramCollector(HistogramMode mode, int64_t num_bins) : num_bins_(num_bins) {
  if (num_bins < 1 || num_bins > kMaxHistogramBins)
    fail(ErrorKind::Config, "calibration: num_bins {} is not in [1, {}]", num_bins, kMaxHistogramBins);
  h_.mode = mode;
}

void RangeScanner::add(std::span<const float> x) {
  const BatchMinMax mm = finite_min_max(x);
  non_finite_ |= mm.non_finite;
  if (!mm.any) return;
  add_stats(mm.min, mm.max, with_abs_min_ ? calib::abs_min(x) : 0.f);  // finite data exists: abs_min is finite
}

void RangeScanner::add_stats(float mn, float mx, float amin) {
  ++batches_;
  const float am = with_abs_min_ ? amin : 0.f;
  if (!seen_) {
    min_ = mn, max_ = mx, abs_min_ = am, seen_ = true;
    return;
  }
  min_ = std::min(min_, mn);
  max_ = std::max(max_, mx);
  abs_min_ = std::min(abs_min_, am);
}

void HistogramCollector::set_edges(std::vector<float> edges) {
  h_.edges = std::move(edges);
  binner_.emplace(std::span<const float>(h_.edges));
}

void HistogramCollector::preset(const RangeScanner& all) {
  OQ_CHECK(!init_, "histogram preset after data");
  if (all.empty()) return;
  const float amax = std::max(std::fabs(all.min()), std::fabs(all.max()));
  if (h_.mode == HistogramMode::Value) {
    set_edges(np::uniform_edges(-amax, amax, num_bins_));
    h_.threshold = amax;
  } else {
    set_edges(np::uniform_edges(all.abs_min(), amax, num_bins_));
  }
  h_.counts.assign(static_cast<size_t>(num_bins_), 0);
  init_ = true;
}

void HistogramCollector::add(std::span<const float> x) {
  const bool absolute = h_.mode == HistogramMode::Absolute;
  // Once the histogram exists, bin against its edges in the same pass that finds the batch's range: almost
  // every batch keeps the edges; one that changes them is binned again (add_value / add_absolute).
  const BatchMinMax mm = init_ ? binner_->scan(x, absolute, scratch()) : finite_min_max(x);
  non_finite_ |= mm.non_finite;
  if (!mm.any) {
    if (init_) {
      scratch().discard();
    } else if (absolute && x.empty()) {
      // ORT's first |x| histogram of an empty batch: np.histogram's default range [0, 1] for no data, from
      // which later batches grow it. (A first empty x histogram spans [-0.5, 0.5] at threshold 0, which the
      // next batch replaces: the same as skipping it.)
      set_edges(np::uniform_edges(0.f, 1.f, num_bins_));
      h_.counts.assign(static_cast<size_t>(num_bins_), 0);
      init_ = true;
    }
    ++skipped_;
    return;
  }
  if (absolute)
    add_absolute(x, mm);
  else
    add_value(x, mm);
  if (batches_ == 0) {
    h_.min = mm.min, h_.max = mm.max;
  } else {
    h_.min = std::min(h_.min, mm.min);
    h_.max = std::max(h_.max, mm.max);
  }
  ++batches_;
}

// ORT collect_value + merge_histogram.
void HistogramCollector::add_value(std::span<const float> x, const BatchMinMax& mm) {
  const float thr = std::max(std::fabs(mm.min), std::fabs(mm.max));
  if (!init_) {
    init_ = true;
    set_edges(np::uniform_edges(-thr, thr, num_bins_));
    h_.counts.assign(static_cast<size_t>(num_bins_), 0);
    h_.threshold = thr;
    binner_->add(x, false, h_.counts);
    return;
  }
  const float old_t = h_.threshold;
  const auto old_n = static_cast<int64_t>(h_.counts.size());
  if (thr <= old_t) {  // same bins: x is binned already
    scratch().commit(h_.counts);
    return;
  }
  scratch().discard();
  if (old_t == 0) {  // ORT: new range, same bin count, old counts added index for index
    set_edges(np::uniform_edges(-thr, thr, old_n));
    h_.threshold = thr;
    binner_->add(x, false, h_.counts);
    return;
  }
  // ORT: widen by whole old strides on both sides; old counts land in the middle bins unchanged.
  const float two_t = 2 * old_t;
  const float stride = two_t / static_cast<float>(old_n);
  const float grow = thr - old_t;
  const float q = np::floor_divide(grow, stride) + 1.0f;
  if (!(static_cast<double>(q) < static_cast<double>(kMaxHistogramBins)))
    check_bins(kMaxHistogramBins + 1, "growing the histogram");
  const auto half = static_cast<int64_t>(q);
  const int64_t new_n = old_n + 2 * half;
  check_bins(new_n, "growing the histogram");
  const float ext = static_cast<float>(half) * stride;
  const float new_t = ext + old_t;
  std::vector<int64_t> counts(static_cast<size_t>(new_n), 0);
  std::copy(h_.counts.begin(), h_.counts.end(), counts.begin() + half);
  set_edges(np::uniform_edges(-new_t, new_t, new_n));
  h_.counts = std::move(counts);
  h_.threshold = new_t;
  binner_->add(x, false, h_.counts);
}

// ORT collect_absolute_value.
void HistogramCollector::add_absolute(std::span<const float> x, const BatchMinMax& mm) {
  const float amax = std::max(std::fabs(mm.min), std::fabs(mm.max));
  if (!init_) {
    init_ = true;
    set_edges(np::uniform_edges(abs_min(x), amax, num_bins_));
    h_.counts.assign(static_cast<size_t>(num_bins_), 0);
    binner_->add(x, true, h_.counts);
    return;
  }
  if (!(amax > h_.edges.back())) {  // same bins: x is binned already
    scratch().commit(h_.counts);
    return;
  }
  scratch().discard();
  // ORT: edges = hstack(old float32 edges, np.arange(...) float64) -> this batch is binned against the
  // float64 edges, which are then stored as float32 (hist_edges.astype(float32)).
  const float width = h_.edges[1] - h_.edges[0];
  const float start = h_.edges.back() + width;
  const float stop = amax + width;
  const std::vector<double> more = np::arange(start, stop, width);
  check_bins(static_cast<int64_t>(h_.counts.size() + more.size()), "growing the |x| histogram");
  std::vector<double> edges(h_.edges.begin(), h_.edges.end());
  edges.insert(edges.end(), more.begin(), more.end());
  h_.counts.resize(edges.size() - 1, 0);
  Binner<double>(edges).add(x, true, h_.counts);
  std::vector<float> fe(edges.size());
  for (size_t i = 0; i < edges.size(); ++i) fe[i] = static_cast<float>(edges[i]);
  set_edges(std::move(fe));
}

// ---------------------------------------------------------------- TailCollector

TailCollector::TailCollector(int64_t k, bool absolute, bool low)
    : k_(std::max<int64_t>(k, 1)), absolute_(absolute), low_(low && !absolute) {}

void TailCollector::Side::push(float a, int64_t k) {
  v.push_back(a);
  if (static_cast<int64_t>(v.size()) < 2 * k + 64) return;
  // keep the k largest: every value >= the new k-th largest stays candidate material, the rest cannot be in
  // the top k any more
  std::nth_element(v.begin(), v.begin() + (k - 1), v.end(), std::greater<float>());
  v.resize(static_cast<size_t>(k));
  thr = v[static_cast<size_t>(k - 1)];
}

std::optional<float> TailCollector::Side::rank(int64_t r, int64_t k) const {
  if (r < 1 || r > k || r > static_cast<int64_t>(v.size())) return std::nullopt;
  std::vector<float> c = v;
  std::nth_element(c.begin(), c.begin() + (r - 1), c.end(), std::greater<float>());
  return c[static_cast<size_t>(r - 1)];
}

void TailCollector::block(const float* x, int64_t n, Stats& st) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (std::isinf(v)) {  // NaN was counted by the vector scan
      ++non_finite_;
      continue;
    }
    if (std::isnan(v)) continue;
    st.min = v < st.min ? v : st.min;
    st.max = v > st.max ? v : st.max;
    const float m = std::fabs(v);
    st.abs_min = m < st.abs_min ? m : st.abs_min;
    const float a = absolute_ ? m : v;
    if (a >= top_.thr) top_.push(a, k_);
    if (low_ && -v >= bottom_.thr) bottom_.push(-v, k_);
  }
}

namespace {
typedef float tv16f __attribute__((vector_size(64)));
typedef int32_t tv16i __attribute__((vector_size(64)));

struct BlockScan {
  float min = kInf, max = -kInf, abs_min = kInf, abs_max = -kInf;  // NaN skipped, infinities included
  int64_t nan = 0;
};

// One pass over p[0, n), n a multiple of 16: signed and |x| min / max, NaN count.
OQ_TARGET_CLONES void tail_scan(const float* p, int64_t n, BlockScan& r) {
  tv16f hi = tv16f{} - kInf, lo = tv16f{} + kInf, ahi = hi, alo = lo;
  tv16i nans = tv16i{};
  const tv16i mask = tv16i{} + 0x7fffffff;
  for (int64_t i = 0; i < n; i += 16) {
    tv16f a;
    std::memcpy(&a, p + i, sizeof a);
    tv16i bits;
    std::memcpy(&bits, &a, sizeof a);
    bits &= mask;
    tv16f m;
    std::memcpy(&m, &bits, sizeof m);
    hi = a > hi ? a : hi;
    lo = a < lo ? a : lo;
    ahi = m > ahi ? m : ahi;
    alo = m < alo ? m : alo;
    nans -= (a != a);
  }
  for (int k = 0; k < 16; ++k) {
    r.max = hi[k] > r.max ? hi[k] : r.max;
    r.min = lo[k] < r.min ? lo[k] : r.min;
    r.abs_max = ahi[k] > r.abs_max ? ahi[k] : r.abs_max;
    r.abs_min = alo[k] < r.abs_min ? alo[k] : r.abs_min;
    r.nan += nans[k];
  }
}
}  // namespace

void TailCollector::add(std::span<const float> x, RangeScanner* range) {
  constexpr int64_t kBlk = 2048;  // one horizontal reduction per block; blocks reaching a threshold are rare
  constexpr int64_t kSub = 128;
  const auto n = static_cast<int64_t>(x.size());
  seen_ += n;
  Stats st;  // this batch's finite min / max and min |x|
  auto fold = [&](const BlockScan& b) {  // a block without infinities: its vector figures are the finite ones
    st.min = b.min < st.min ? b.min : st.min;
    st.max = b.max > st.max ? b.max : st.max;
    st.abs_min = b.abs_min < st.abs_min ? b.abs_min : st.abs_min;
  };
  // values reaching a side's threshold, or an infinity: look at them value by value
  auto reaches = [&](const BlockScan& b) {
    const float hi = absolute_ ? b.abs_max : b.max;
    return !(hi < top_.thr) || b.abs_max == kInf || (low_ && !(-b.min < bottom_.thr));
  };
  int64_t b = 0;
  for (; b + kBlk <= n; b += kBlk) {
    BlockScan bs;
    tail_scan(x.data() + b, kBlk, bs);
    non_finite_ += bs.nan;
    if (!reaches(bs)) {
      fold(bs);
      continue;
    }
    // narrow down to the 128-value pieces that hold them (common in the first batches, while the thresholds
    // are still low)
    for (int64_t s = b; s < b + kBlk; s += kSub) {
      BlockScan sub;  // its NaN were counted above
      tail_scan(x.data() + s, kSub, sub);
      if (reaches(sub))
        block(x.data() + s, kSub, st);
      else
        fold(sub);
    }
  }
  for (int64_t i = b; i < n; ++i) non_finite_ += std::isnan(x[static_cast<size_t>(i)]);
  block(x.data() + b, n - b, st);
  if (range && st.min <= st.max) range->add_stats(st.min, st.max, st.abs_min);
}

std::optional<float> TailCollector::largest(int64_t r) const {
  if (r > count()) return std::nullopt;
  return top_.rank(r, k_);
}

std::optional<float> TailCollector::smallest(int64_t r) const {
  if (!low_ || r > count()) return std::nullopt;
  auto v = bottom_.rank(r, k_);
  if (!v) return std::nullopt;
  return -*v;
}

// ---------------------------------------------------------------- PerChannelAbsMaxCollector

void PerChannelAbsMaxCollector::add(const Tensor& x) {
  if (x.dtype() != DType::Float)
    fail(ErrorKind::Data, "per-channel abs-max: expected a float32 tensor, got {}", dtype_name(x.dtype()));
  const int r = x.rank();
  const int ax = axis_ < 0 ? axis_ + r : axis_;
  if (ax < 0 || ax >= r)
    fail(ErrorKind::Data, "per-channel abs-max: axis {} is out of range for shape {}", axis_,
         shape_str(x.shape()));
  const int64_t ch = x.dim(ax);
  if (batches_ > 0 && ch != static_cast<int64_t>(absmax_.size()))
    fail(ErrorKind::Data, "per-channel abs-max: {} channels along axis {} (shape {}), earlier batches had {}", ch,
         axis_, shape_str(x.shape()), absmax_.size());
  if (batches_ == 0) absmax_.assign(static_cast<size_t>(ch), 0.0f);
  ++batches_;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < ax; ++i) outer *= x.dim(i);
  for (int i = ax + 1; i < r; ++i) inner *= x.dim(i);
  const float* p = x.data<float>();
  float* m = absmax_.data();
  // a > m ? a : m skips NaN; infinities are excluded explicitly.
  auto upd = [](float cur, float v) {
    const float a = std::fabs(v);
    return (a > cur && a != kInf) ? a : cur;
  };
  for (int64_t o = 0; o < outer; ++o) {
    const float* base = p + o * ch * inner;
    if (inner == 1) {
      for (int64_t c = 0; c < ch; ++c) m[c] = upd(m[c], base[c]);
    } else {
      for (int64_t c = 0; c < ch; ++c) {
        float cur = m[c];
        const float* q = base + c * inner;
        for (int64_t k = 0; k < inner; ++k) cur = upd(cur, q[k]);
        m[c] = cur;
      }
    }
  }
}

}  // namespace oq::calib
