// Per-batch calibration kernels (see binning.h).
#include "calib/binning.h"

#include <algorithm>
#include <mutex>
#include <cmath>
#include <cstring>
#include <limits>

#include "calib/binning_kernels.h"
#include "core/clones.h"
#include "core/error.h"
#include "core/parallel.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace oq::calib {

namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();
using kernels::kBlock;
constexpr int64_t kParallelMin = int64_t{1} << 18;  // values: smaller batches are binned on one thread

// Slow path of finite_min_max when an infinity was seen: min/max over finite values only.
BatchMinMax finite_min_max_slow(std::span<const float> x) {
  float mn = kInf, mx = -kInf;
  for (float v : x) {
    if (!std::isfinite(v)) continue;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  return {mn, mx, mn <= mx, true};
}

BatchMinMax finish_min_max(float mn, float mx, std::span<const float> x, bool nan) {
  if (mn == -kInf || mx == kInf) return finite_min_max_slow(x);
  return {mn, mx, mn <= mx, nan};
}
}  // namespace

namespace {
// 16-float vectors (GCC vector extensions): one AVX-512 register, two AVX2 or four SSE ones, per the clone.
typedef float v16f __attribute__((vector_size(64)));

// min/max over p[0, n - n % 64) into mn/mx (the caller starts them at +inf/-inf); returns the count covered.
// `a < m ? a : m` keeps m when a is NaN, as _mm_min_ps / vminps do, so NaN never enters the result. Four
// vectors per step, each with its own min and max chain: a min/max has a 4-cycle latency, so fewer chains
// leave the loop latency-bound below L1/L2 bandwidth (bench/bench_binning.cc BM_MinMax).
// `nan` is set when a NaN (or an infinity) was skipped: a sum of a - a stays 0 over finite values and turns NaN
// for either (one subtraction and one addition per vector, which keep the loop at memory speed).
OQ_TARGET_CLONES size_t min_max_blocks(const float* p, size_t n, float& mn, float& mx, bool& nan) {
  v16f mnv[4], mxv[4], chk[4];
  for (int k = 0; k < 4; ++k) mnv[k] = v16f{} + kInf, mxv[k] = v16f{} - kInf, chk[k] = v16f{};
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 4; ++k) {
      v16f a;
      std::memcpy(&a, p + i + 16 * k, sizeof a);
      mnv[k] = a < mnv[k] ? a : mnv[k];
      mxv[k] = a > mxv[k] ? a : mxv[k];
      chk[k] += a - a;
    }
  }
  if (i == 0) return 0;  // short rows (per-channel weights): no vector to reduce
  chk[0] += chk[1] + chk[2] + chk[3];
  for (int j = 0; j < 16; ++j) nan |= chk[0][j] != 0.f;  // NaN != 0 holds
  // Four chains into one, then the 16 lanes (one dependent chain of 16 instead of 64 per call: per-channel
  // weight ranges call this once per output channel).
  mnv[0] = mnv[1] < mnv[0] ? mnv[1] : mnv[0];
  mnv[2] = mnv[3] < mnv[2] ? mnv[3] : mnv[2];
  mnv[0] = mnv[2] < mnv[0] ? mnv[2] : mnv[0];
  mxv[0] = mxv[1] > mxv[0] ? mxv[1] : mxv[0];
  mxv[2] = mxv[3] > mxv[2] ? mxv[3] : mxv[2];
  mxv[0] = mxv[2] > mxv[0] ? mxv[2] : mxv[0];
  for (int j = 0; j < 16; ++j) {
    mn = mnv[0][j] < mn ? mnv[0][j] : mn;
    mx = mxv[0][j] > mx ? mxv[0][j] : mx;
  }
  return i;
}

// min/max of p[0, n) (NaN ignored; infinities counted), on this thread.
void min_max_serial(const float* p, size_t n, float& mn, float& mx, bool& nan) {
  for (size_t i = min_max_blocks(p, n, mn, mx, nan); i < n; ++i) {
    const float v = p[i];
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
    nan |= v != v;
  }
}
}  // namespace

BatchMinMax finite_min_max(std::span<const float> x) {
  const float* p = x.data();
  const size_t n = x.size();
  float mn = kInf, mx = -kInf;
  bool nan = false;
  if (n < static_cast<size_t>(kParallelMin) || num_threads() < 2) {
    min_max_serial(p, n, mn, mx, nan);
    return finish_min_max(mn, mx, x, nan);
  }
  // Large batches: one chunk per task, combined in order (min/max do not depend on the split).
  const int64_t chunks = std::min<int64_t>(num_threads() * 4, static_cast<int64_t>(n) / (kParallelMin / 4));
  std::vector<float> cmn(static_cast<size_t>(chunks), kInf), cmx(static_cast<size_t>(chunks), -kInf);
  std::vector<char> cnan(static_cast<size_t>(chunks), 0);
  parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const size_t i0 = n * static_cast<size_t>(c) / static_cast<size_t>(chunks);
      const size_t i1 = n * static_cast<size_t>(c + 1) / static_cast<size_t>(chunks);
      bool cn = false;
      min_max_serial(p + i0, i1 - i0, cmn[static_cast<size_t>(c)], cmx[static_cast<size_t>(c)], cn);
      cnan[static_cast<size_t>(c)] = cn;
    }
  });
  for (int64_t c = 0; c < chunks; ++c) {
    mn = cmn[static_cast<size_t>(c)] < mn ? cmn[static_cast<size_t>(c)] : mn;
    mx = cmx[static_cast<size_t>(c)] > mx ? cmx[static_cast<size_t>(c)] : mx;
    nan |= cnan[static_cast<size_t>(c)] != 0;
  }
  return finish_min_max(mn, mx, x, nan);
}

void min_max_into(std::span<const float> x, float& mn, float& mx) {
  bool nan = false;
  min_max_serial(x.data(), x.size(), mn, mx, nan);
}

namespace {
// min |v| over p[0, n - n % 32) into mn; returns the count covered (NaN skipped, as in min_max_blocks).
OQ_TARGET_CLONES size_t abs_min_blocks(const float* p, size_t n, float& mn) {
  typedef int32_t v16i __attribute__((vector_size(64)));
  v16f m0 = v16f{} + kInf, m1 = m0;
  const v16i mask = v16i{} + 0x7fffffff;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    v16i a, b;
    std::memcpy(&a, p + i, sizeof a);
    std::memcpy(&b, p + i + 16, sizeof b);
    a &= mask;
    b &= mask;
    v16f fa, fb;
    std::memcpy(&fa, &a, sizeof fa);
    std::memcpy(&fb, &b, sizeof fb);
    m0 = fa < m0 ? fa : m0;
    m1 = fb < m1 ? fb : m1;
  }
  for (int k = 0; k < 16; ++k) {
    mn = m0[k] < mn ? m0[k] : mn;
    mn = m1[k] < mn ? m1[k] : mn;
  }
  return i;
}
}  // namespace

float abs_min(std::span<const float> x) {
  const float* p = x.data();
  const size_t n = x.size();
  float mn = kInf;
  for (size_t i = abs_min_blocks(p, n, mn); i < n; ++i) {
    const float v = std::fabs(p[i]);
    mn = v < mn ? v : mn;
  }
  return mn;
}

// ---------------------------------------------------------------- BinScratch

BinScratch& scratch() {
  thread_local BinScratch s;
  return s;
}

uint32_t* BinScratch::prepare(int64_t bins, int subs) {
  if (bins_ != 0) discard();  // a batch abandoned by an exception
  const auto need = static_cast<size_t>(subs) * static_cast<size_t>(bins);
  if (sub_.size() < need) sub_.resize(need, 0);  // the used part is always zero here
  bins_ = bins, subs_ = subs;
  return sub_.data();
}

void BinScratch::fold_wide() {
  if (!has_wide_) wide_.assign(static_cast<size_t>(bins_), 0);
  has_wide_ = true;
  const int64_t stride = bins_;
  for (int s = 0; s < subs_; ++s) {
    uint32_t* c = sub_.data() + s * stride;
    for (int64_t k = 0; k < bins_; ++k) wide_[k] += c[k];
    std::fill(c, c + stride, 0u);
  }
}

void BinScratch::commit(std::span<int64_t> counts) {
  OQ_CHECK(static_cast<int64_t>(counts.size()) == bins_, "bin scratch: {} pending bins, {} counts", bins_,
           counts.size());
  const int64_t stride = bins_;
  uint32_t* c = sub_.data();
  int64_t* out = counts.data();
  if (subs_ == 2) {  // read and clear in one pass
    for (int64_t k = 0; k < bins_; ++k) {
      out[k] += int64_t{c[k]} + c[k + stride];
      c[k] = c[k + stride] = 0;
    }
  } else {
    for (int s = 0; s < subs_; ++s)
      for (int64_t k = 0; k < bins_; ++k) out[k] += c[s * stride + k], c[s * stride + k] = 0;
  }
  if (has_wide_)
    for (int64_t k = 0; k < bins_; ++k) out[k] += wide_[k];
  release();
}

void BinScratch::absorb(BinScratch& other) {
  OQ_CHECK(other.bins_ == bins_ && other.subs_ == subs_ && !other.has_wide_ && !has_wide_,
           "bin scratch: absorbing a different histogram");
  const size_t used = static_cast<size_t>(subs_) * static_cast<size_t>(bins_);
  for (size_t k = 0; k < used; ++k) sub_[k] += other.sub_[k];
  other.discard();
}

void BinScratch::discard() {
  std::fill(sub_.begin(), sub_.begin() + subs_ * bins_, 0u);
  release();
}

void BinScratch::release() {
  has_wide_ = false;
  bins_ = 0, subs_ = 0;
  if (sub_.size() > (size_t{1} << 20)) {  // do not keep a huge histogram's scratch (up to 64 MB) around
    std::vector<uint32_t>().swap(sub_);
    std::vector<int64_t>().swap(wide_);
  }
}

namespace {
template <int S>
void count(const int32_t* bins, int64_t n, uint32_t* sub, int64_t stride) {
  int64_t j = 0;
  for (; j + S <= n; j += S)
    for (int s = 0; s < S; ++s) ++sub[s * stride + bins[j + s]];
  for (; j < n; ++j) ++sub[bins[j]];
}
}  // namespace

// ---------------------------------------------------------------- Binner

namespace {
// The smallest float >= v / the largest float <= v.
template <typename E>
float float_at_least(E v) {
  float f = static_cast<float>(v);
  if (static_cast<E>(f) < v) f = std::nextafter(f, kInf);
  return f;
}
template <typename E>
float float_at_most(E v) {
  float f = static_cast<float>(v);
  if (static_cast<E>(f) > v) f = std::nextafter(f, -kInf);
  return f;
}
}  // namespace

template <typename E>
Binner<E>::Binner(std::span<const E> edges) : nb_(static_cast<int64_t>(edges.size()) - 1) {
  OQ_CHECK(nb_ >= 1 && nb_ <= (int64_t{1} << 24), "binner: {} bins", nb_);
  constexpr E inf = std::numeric_limits<E>::infinity();
  pad_.resize(static_cast<size_t>(nb_) + 3);
  pad_[0] = -inf;
  std::copy(edges.begin(), edges.end(), pad_.begin() + 1);
  pad_[nb_ + 2] = inf;
  for (int64_t i = 0; i < nb_; ++i) OQ_CHECK(edges[i] <= edges[i + 1], "binner: decreasing edges");
  BinGrid& g = grid_;
  g.nb = static_cast<int32_t>(nb_);
  g.lo = float_at_least(edges.front());
  g.hi = float_at_most(edges.back());
  // The estimate t = fl(fl(v - lo) * scale) is within nb * 2^-23 of the exact (v - lo) * scale (two
  // roundings, t <= nb (1 + 2^-24)). An edge e_k sits at the exact position s_k = (e_k - lo) * scale, dev
  // bins at most from k. So t in [k + margin, k + 1 - margin] with margin > dev + nb * 2^-23 puts v strictly
  // between e_k and e_k+1: bin k, with no edge consulted. (t in float32 has a resolution of nb * 2^-24.)
  g.scale = 0, g.margin = 1, g.margin_hi = 0;
  const double width = static_cast<double>(g.hi) - static_cast<double>(g.lo);
  if (width > 0) {
    g.scale = static_cast<float>(static_cast<double>(nb_) / width);
    if (std::isfinite(g.scale) && g.scale > 0) {
      double dev = 0;
      for (int64_t k = 0; k <= nb_; ++k) {
        const double s = (static_cast<double>(edges[k]) - static_cast<double>(g.lo)) * static_cast<double>(g.scale);
        dev = std::max(dev, std::fabs(s - static_cast<double>(k)));
      }
      const double m = dev + static_cast<double>(nb_ + 2) * 0x1p-22 + 1e-7;
      if (m < 0.5) g.margin = float_at_least(m), g.margin_hi = float_at_most(1.0 - m);
    }
  }
  lo_bin_ = static_cast<int32_t>(bin_of(g.lo));
  hi_bin_ = static_cast<int32_t>(bin_of(g.hi));
  zero_bin_ = static_cast<int32_t>(bin_of(0.0f));
}

template <typename E>
int64_t Binner<E>::bin_of(float v) const {
  if (!(v >= grid_.lo && v <= grid_.hi)) return -1;
  const E* e = pad_.data() + 1;  // edges[0..nb]
  const int64_t i = (std::upper_bound(e, e + nb_ + 1, static_cast<E>(v)) - e) - 1;  // last edge <= v
  return std::min(i, nb_ - 1);
}

// v is inside the edges; est is an estimate of its bin, usually off by at most one.
template <typename E>
int64_t Binner<E>::settle(float v, int64_t est) const {
  est = std::clamp<int64_t>(est, 0, nb_ - 1);
  const E* p = pad_.data() + est;  // p[0..3] = edges[est-1 .. est+2], -inf / +inf beyond the ends
  const E w = static_cast<E>(v);
  if (w >= p[0] && w < p[3]) {  // the bin is est-1, est or est+1
    const int64_t i = est - 1 + (w >= p[1]) + (w >= p[2]);
    return std::min(i, nb_ - 1);
  }
  return bin_of(v);
}

// Bins x[0..n) into sub (subs sub-histograms of nb_ counters); running raw min / max in mn / mx. With
// fold_into, folds the 32-bit counters into its 64-bit ones before they could wrap.
template <typename E>
void Binner<E>::bin_range(const float* x, int64_t n, bool absolute, uint32_t* sub, int subs, float& mn, float& mx,
                          BinScratch* fold_into) const {
  const int64_t stride = nb_;
  kernels::Block blk;
  int64_t since_fold = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = std::min(kBlock, n - b);
    const float* xb = x + b;
    kernels::classify(grid_, xb, m, absolute, blk, mn, mx);
    for (int64_t k = 0; k < blk.npos; ++k) {
      const float v = xb[blk.pos[k]];
      const float a = absolute ? std::fabs(v) : v;
      const auto est = static_cast<int64_t>(std::min((a - grid_.lo) * grid_.scale, static_cast<float>(nb_)));
      blk.bins[blk.nbins++] = static_cast<int32_t>(settle(a, est));
    }
    switch (subs) {
      case 4: count<4>(blk.bins, blk.nbins, sub, stride); break;
      case 2: count<2>(blk.bins, blk.nbins, sub, stride); break;
      default: count<1>(blk.bins, blk.nbins, sub, stride);
    }
    if (blk.zero) sub[zero_bin_] += static_cast<uint32_t>(blk.zero);  // >= 0 when a zero was counted
    if (blk.hi) sub[hi_bin_] += static_cast<uint32_t>(blk.hi);
    if (blk.lo) sub[lo_bin_] += static_cast<uint32_t>(blk.lo);
    since_fold += m;
    if (fold_into && since_fold + kBlock > fold_into->fold_every()) {
      fold_into->fold_wide();
      since_fold = 0;
    }
  }
}

template <typename E>
BatchMinMax Binner<E>::scan(std::span<const float> x, bool absolute, BinScratch& s) const {
  const auto n = static_cast<int64_t>(x.size());
  // More sub-histograms break more of the dependency chains of repeated bins but cost more to clear and
  // add up (and cache): only where the batch is large against the histogram.
  const int subs = (nb_ <= 8192 && n >= 16 * nb_) ? 4 : (nb_ <= 65536 && n >= 4 * nb_) ? 2 : 1;
  uint32_t* sub = s.prepare(nb_, subs);
  float mn = kInf, mx = -kInf;
  const int threads = num_threads();
  // (adding a thread's counts costs subs * nb: not worth it against a histogram as large as the batch)
  if (n < kParallelMin || threads < 2 || n + kBlock > s.fold_every() ||
      nb_ * subs > n / 4) {
    bin_range(x.data(), n, absolute, sub, subs, mn, mx, &s);
    return finish_min_max(mn, mx, x, false);
  }
  // A large batch: chunks on several threads, each into its own thread's scratch (s on this thread), then
  // added into s. Counts are sums, so the result does not depend on the split.
  std::mutex mu;
  std::vector<BinScratch*> used;  // the thread scratches holding counts of this batch, other than s
  parallel_for(n, kParallelMin / 2, [&](int64_t b, int64_t e) {
    BinScratch& ts = scratch();
    bool again;  // this thread already binned a chunk (when the runtime gave fewer threads than chunks)
    {
      std::lock_guard<std::mutex> lock(mu);
      again = &ts == &s || std::find(used.begin(), used.end(), &ts) != used.end();
      if (!again) used.push_back(&ts);
    }
    uint32_t* tsub = &ts == &s ? sub : again ? ts.sub_.data() : ts.prepare(nb_, subs);
    float a = kInf, z = -kInf;
    bin_range(x.data() + b, e - b, absolute, tsub, subs, a, z, nullptr);
    std::lock_guard<std::mutex> lock(mu);
    mn = std::min(mn, a), mx = std::max(mx, z);
  });
  for (BinScratch* t : used) s.absorb(*t);
  return finish_min_max(mn, mx, x, false);
}

template <typename E>
void Binner<E>::add(std::span<const float> x, bool absolute, std::span<int64_t> counts) const {
  BinScratch& s = scratch();
  scan(x, absolute, s);
  s.commit(counts);
}

template class Binner<float>;
template class Binner<double>;

}  // namespace oq::calib
