// Per-batch calibration kernels (see binning.h).
#include "calib/binning.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "core/error.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace oq::calib {

namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int64_t kBlock = 1024;             // values classified, settled and counted at a time

// Slow path of finite_min_max when an infinity was seen: min/max over finite values only.
BatchMinMax finite_min_max_slow(std::span<const float> x) {
  float mn = kInf, mx = -kInf;
  for (float v : x) {
    if (!std::isfinite(v)) continue;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  return {mn, mx, mn <= mx};
}

BatchMinMax finish_min_max(float mn, float mx, std::span<const float> x) {
  if (mn == -kInf || mx == kInf) return finite_min_max_slow(x);
  return {mn, mx, mn <= mx};
}
}  // namespace

BatchMinMax finite_min_max(std::span<const float> x) {
  const float* p = x.data();
  const size_t n = x.size();
  size_t i = 0;
  float mn = kInf, mx = -kInf;
#if defined(__SSE2__)
  // _mm_min_ps(v, m) is (v < m ? v : m): a NaN in v leaves m unchanged.
  __m128 mn0 = _mm_set1_ps(kInf), mn1 = mn0, mn2 = mn0, mn3 = mn0;
  __m128 mx0 = _mm_set1_ps(-kInf), mx1 = mx0, mx2 = mx0, mx3 = mx0;
  for (; i + 16 <= n; i += 16) {
    const __m128 a = _mm_loadu_ps(p + i), b = _mm_loadu_ps(p + i + 4);
    const __m128 c = _mm_loadu_ps(p + i + 8), d = _mm_loadu_ps(p + i + 12);
    mn0 = _mm_min_ps(a, mn0);
    mn1 = _mm_min_ps(b, mn1);
    mn2 = _mm_min_ps(c, mn2);
    mn3 = _mm_min_ps(d, mn3);
    mx0 = _mm_max_ps(a, mx0);
    mx1 = _mm_max_ps(b, mx1);
    mx2 = _mm_max_ps(c, mx2);
    mx3 = _mm_max_ps(d, mx3);
  }
  alignas(16) float tn[4], tx[4];
  _mm_store_ps(tn, _mm_min_ps(_mm_min_ps(mn0, mn1), _mm_min_ps(mn2, mn3)));
  _mm_store_ps(tx, _mm_max_ps(_mm_max_ps(mx0, mx1), _mm_max_ps(mx2, mx3)));
  for (int k = 0; k < 4; ++k) {
    mn = tn[k] < mn ? tn[k] : mn;
    mx = tx[k] > mx ? tx[k] : mx;
  }
#endif
  for (; i < n; ++i) {
    const float v = p[i];
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  return finish_min_max(mn, mx, x);
}

float abs_min(std::span<const float> x) {
  const float* p = x.data();
  const size_t n = x.size();
  size_t i = 0;
  float mn = kInf;
#if defined(__SSE2__)
  const __m128 sign = _mm_set1_ps(-0.0f);
  __m128 m0 = _mm_set1_ps(kInf), m1 = m0;
  for (; i + 8 <= n; i += 8) {
    m0 = _mm_min_ps(_mm_andnot_ps(sign, _mm_loadu_ps(p + i)), m0);  // NaN lanes keep m0
    m1 = _mm_min_ps(_mm_andnot_ps(sign, _mm_loadu_ps(p + i + 4)), m1);
  }
  alignas(16) float t[4];
  _mm_store_ps(t, _mm_min_ps(m0, m1));
  for (float v : t) mn = v < mn ? v : mn;
#endif
  for (; i < n; ++i) {
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

// ---------------------------------------------------------------- classification kernels

namespace {
// One block of values, classified. bins[0..nbins): the exact bins of the values the estimate decides, in any
// order; pos[0..npos): the positions (in the block) of the values to settle on the edges; zero / hi / lo:
// how many values equal 0, grid.hi, grid.lo (checked in that order; typically the bulk of a ReLU's output,
// which would otherwise hammer one counter). Everything else is not counted. Vector kernels store whole
// vectors at bins + nbins: hence the slack.
struct Block {
  int32_t bins[kBlock + 16];
  int32_t pos[kBlock + 16];
  int64_t nbins = 0, npos = 0, zero = 0, hi = 0, lo = 0;
};

// The reference decisions, one value at a time (the vector kernels make the same ones).
void classify_scalar(const BinGrid& g, const float* x, int64_t from, int64_t n, bool absolute, Block& b,
                     float& mn, float& mx) {
  const auto nbf = static_cast<float>(g.nb);  // exact: nb <= 2^24
  for (int64_t j = from; j < n; ++j) {
    const float raw = x[j];
    mn = raw < mn ? raw : mn;
    mx = raw > mx ? raw : mx;
    const float v = absolute ? std::fabs(raw) : raw;
    if (!(v >= g.lo && v <= g.hi)) continue;
    if (v == 0) {
      ++b.zero;
    } else if (v == g.hi) {
      ++b.hi;
    } else if (v == g.lo) {
      ++b.lo;
    } else {
      const float t = (v - g.lo) * g.scale;
      const auto est = static_cast<int32_t>(std::min(t, nbf));
      const float frac = t - static_cast<float>(est);
      if (frac >= g.margin && frac <= g.margin_hi && t < nbf)
        b.bins[b.nbins++] = est;
      else
        b.pos[b.npos++] = static_cast<int32_t>(j);
    }
  }
}

#if defined(__SSE2__)
int64_t hsum(__m128i c) {
  alignas(16) int32_t t[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(t), c);
  return int64_t{t[0]} + t[1] + t[2] + t[3];
}

void fold_lanes(const float* tn, const float* tx, int lanes, float& mn, float& mx) {
  for (int k = 0; k < lanes; ++k) {
    mn = tn[k] < mn ? tn[k] : mn;
    mx = tx[k] > mx ? tx[k] : mx;
  }
}

// 4 lanes, SSE2 only (the baseline of x86-64).
int64_t classify_sse2(const BinGrid& g, const float* x, int64_t n, bool absolute, Block& b, float& mn,
                      float& mx) {
  const __m128 sign = _mm_set1_ps(absolute ? -0.0f : 0.0f);
  const __m128 lo = _mm_set1_ps(g.lo), hi = _mm_set1_ps(g.hi), sc = _mm_set1_ps(g.scale);
  const __m128 zero = _mm_setzero_ps(), top = _mm_set1_ps(static_cast<float>(g.nb));
  const __m128 m_lo = _mm_set1_ps(g.margin), m_hi = _mm_set1_ps(g.margin_hi);
  __m128 vmn = _mm_set1_ps(kInf), vmx = _mm_set1_ps(-kInf);
  __m128i cz = _mm_setzero_si128(), ch = cz, cl = cz;
  int64_t j = 0, u = b.nbins, w = b.npos;
  alignas(16) int32_t e[4];
  for (; j + 4 <= n; j += 4) {
    const __m128 raw = _mm_loadu_ps(x + j);
    vmn = _mm_min_ps(raw, vmn);
    vmx = _mm_max_ps(raw, vmx);
    const __m128 v = _mm_andnot_ps(sign, raw);
    const __m128 valid = _mm_and_ps(_mm_cmpge_ps(v, lo), _mm_cmple_ps(v, hi));  // false for NaN
    const __m128 t = _mm_mul_ps(_mm_sub_ps(v, lo), sc);  // garbage outside the edges: not used there
    const __m128i est = _mm_cvttps_epi32(t);
    const __m128 frac = _mm_sub_ps(t, _mm_cvtepi32_ps(est));
    const __m128 safe =
        _mm_and_ps(_mm_and_ps(_mm_cmpge_ps(frac, m_lo), _mm_cmple_ps(frac, m_hi)), _mm_cmplt_ps(t, top));
    const __m128 isz = _mm_and_ps(_mm_cmpeq_ps(v, zero), valid);
    const __m128 ish = _mm_andnot_ps(isz, _mm_and_ps(_mm_cmpeq_ps(v, hi), valid));
    const __m128 isl = _mm_andnot_ps(_mm_or_ps(isz, ish), _mm_and_ps(_mm_cmpeq_ps(v, lo), valid));
    const __m128 keep = _mm_andnot_ps(_mm_or_ps(_mm_or_ps(isz, ish), isl), valid);
    cz = _mm_sub_epi32(cz, _mm_castps_si128(isz));
    ch = _mm_sub_epi32(ch, _mm_castps_si128(ish));
    cl = _mm_sub_epi32(cl, _mm_castps_si128(isl));
    const int ks = _mm_movemask_ps(_mm_and_ps(safe, keep));
    _mm_store_si128(reinterpret_cast<__m128i*>(e), est);
    for (int l = 0; l < 4; ++l) {  // branch-free append
      b.bins[u] = e[l];
      u += (ks >> l) & 1;
    }
    for (int fm = _mm_movemask_ps(_mm_andnot_ps(safe, keep)); fm; fm &= fm - 1)
      b.pos[w++] = static_cast<int32_t>(j + __builtin_ctz(static_cast<unsigned>(fm)));
  }
  b.nbins = u, b.npos = w;
  b.zero += hsum(cz), b.hi += hsum(ch), b.lo += hsum(cl);
  alignas(16) float tn[4], tx[4];
  _mm_store_ps(tn, vmn);
  _mm_store_ps(tx, vmx);
  fold_lanes(tn, tx, 4, mn, mx);
  return j;
}
#endif

#if defined(__GNUC__) && defined(__x86_64__) && defined(__SSE2__)
#define OQ_HAVE_WIDE_KERNELS 1
// Left-packing permutations for 8 lanes: kPack[m] moves the lanes set in m to the front.
struct PackTable {
  alignas(32) int32_t p[256][8];
  PackTable() {
    for (int m = 0; m < 256; ++m) {
      int k = 0;
      for (int l = 0; l < 8; ++l)
        if (m >> l & 1) p[m][k++] = l;
      for (; k < 8; ++k) p[m][k] = 0;
    }
  }
};
const PackTable kPack;

// 8 lanes, the same operations as classify_sse2 (so the same decisions), compiled for AVX2 and used only on
// CPUs that have it.
__attribute__((target("avx2"))) int64_t classify_avx2(const BinGrid& g, const float* x, int64_t n,
                                                       bool absolute, Block& b, float& mn, float& mx) {
  const __m256 sign = _mm256_set1_ps(absolute ? -0.0f : 0.0f);
  const __m256 lo = _mm256_set1_ps(g.lo), hi = _mm256_set1_ps(g.hi), sc = _mm256_set1_ps(g.scale);
  const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(static_cast<float>(g.nb));
  const __m256 m_lo = _mm256_set1_ps(g.margin), m_hi = _mm256_set1_ps(g.margin_hi);
  __m256 vmn = _mm256_set1_ps(kInf), vmx = _mm256_set1_ps(-kInf);
  __m256i cz = _mm256_setzero_si256(), ch = cz, cl = cz;
  int64_t j = 0, u = b.nbins, w = b.npos;
  for (; j + 8 <= n; j += 8) {
    const __m256 raw = _mm256_loadu_ps(x + j);
    vmn = _mm256_min_ps(raw, vmn);
    vmx = _mm256_max_ps(raw, vmx);
    const __m256 v = _mm256_andnot_ps(sign, raw);
    const __m256 valid = _mm256_and_ps(_mm256_cmp_ps(v, lo, _CMP_GE_OQ), _mm256_cmp_ps(v, hi, _CMP_LE_OQ));
    const __m256 t = _mm256_mul_ps(_mm256_sub_ps(v, lo), sc);
    const __m256i est = _mm256_cvttps_epi32(t);
    const __m256 frac = _mm256_sub_ps(t, _mm256_cvtepi32_ps(est));
    const __m256 safe = _mm256_and_ps(
        _mm256_and_ps(_mm256_cmp_ps(frac, m_lo, _CMP_GE_OQ), _mm256_cmp_ps(frac, m_hi, _CMP_LE_OQ)),
        _mm256_cmp_ps(t, top, _CMP_LT_OQ));
    const __m256 isz = _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_EQ_OQ), valid);
    const __m256 ish = _mm256_andnot_ps(isz, _mm256_and_ps(_mm256_cmp_ps(v, hi, _CMP_EQ_OQ), valid));
    const __m256 isl =
        _mm256_andnot_ps(_mm256_or_ps(isz, ish), _mm256_and_ps(_mm256_cmp_ps(v, lo, _CMP_EQ_OQ), valid));
    const __m256 keep = _mm256_andnot_ps(_mm256_or_ps(_mm256_or_ps(isz, ish), isl), valid);
    cz = _mm256_sub_epi32(cz, _mm256_castps_si256(isz));
    ch = _mm256_sub_epi32(ch, _mm256_castps_si256(ish));
    cl = _mm256_sub_epi32(cl, _mm256_castps_si256(isl));
    const int ks = _mm256_movemask_ps(_mm256_and_ps(safe, keep));
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.p[ks]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.bins + u), _mm256_permutevar8x32_epi32(est, perm));
    u += __builtin_popcount(static_cast<unsigned>(ks));
    for (int fm = _mm256_movemask_ps(_mm256_andnot_ps(safe, keep)); fm; fm &= fm - 1)
      b.pos[w++] = static_cast<int32_t>(j + __builtin_ctz(static_cast<unsigned>(fm)));
  }
  b.nbins = u, b.npos = w;
  alignas(32) int32_t c[3][8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(c[0]), cz);
  _mm256_store_si256(reinterpret_cast<__m256i*>(c[1]), ch);
  _mm256_store_si256(reinterpret_cast<__m256i*>(c[2]), cl);
  for (int k = 0; k < 8; ++k) b.zero += c[0][k], b.hi += c[1][k], b.lo += c[2][k];
  alignas(32) float tn[8], tx[8];
  _mm256_store_ps(tn, vmn);
  _mm256_store_ps(tx, vmx);
  fold_lanes(tn, tx, 8, mn, mx);
  return j;
}

// 16 lanes with AVX-512F: masks instead of blends, compression instead of the packing table. (GCC 12 warns
// that _mm512_min_ps's unused pass-through operand is uninitialised.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) int64_t classify_avx512(const BinGrid& g, const float* x, int64_t n,
                                                            bool absolute, Block& b, float& mn, float& mx) {
  const __m512i keep_bits = _mm512_set1_epi32(absolute ? 0x7fffffff : -1);
  const __m512 lo = _mm512_set1_ps(g.lo), hi = _mm512_set1_ps(g.hi), sc = _mm512_set1_ps(g.scale);
  const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps(static_cast<float>(g.nb));
  const __m512 m_lo = _mm512_set1_ps(g.margin), m_hi = _mm512_set1_ps(g.margin_hi);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i one = _mm512_set1_epi32(1);
  __m512 vmn = _mm512_set1_ps(kInf), vmx = _mm512_set1_ps(-kInf);
  __m512i cz = _mm512_setzero_si512(), ch = cz, cl = cz;
  int64_t j = 0, u = b.nbins, w = b.npos;
  for (; j + 16 <= n; j += 16) {
    const __m512 raw = _mm512_loadu_ps(x + j);
    vmn = _mm512_min_ps(raw, vmn);
    vmx = _mm512_max_ps(raw, vmx);
    const __m512 v = _mm512_castsi512_ps(_mm512_and_epi32(_mm512_castps_si512(raw), keep_bits));
    const __mmask16 valid = _mm512_cmp_ps_mask(v, lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(v, hi, _CMP_LE_OQ);
    const __m512 t = _mm512_mul_ps(_mm512_sub_ps(v, lo), sc);
    const __m512i est = _mm512_cvttps_epi32(t);
    const __m512 frac = _mm512_sub_ps(t, _mm512_cvtepi32_ps(est));
    const __mmask16 safe = _mm512_cmp_ps_mask(frac, m_lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(frac, m_hi, _CMP_LE_OQ) &
                           _mm512_cmp_ps_mask(t, top, _CMP_LT_OQ);
    const __mmask16 isz = _mm512_cmp_ps_mask(v, zero, _CMP_EQ_OQ) & valid;
    const __mmask16 ish = _mm512_cmp_ps_mask(v, hi, _CMP_EQ_OQ) & valid & ~isz;
    const __mmask16 isl = _mm512_cmp_ps_mask(v, lo, _CMP_EQ_OQ) & valid & ~(isz | ish);
    const auto keep = static_cast<__mmask16>(valid & ~(isz | ish | isl));
    const auto ks = static_cast<__mmask16>(keep & safe), kf = static_cast<__mmask16>(keep & ~safe);
    cz = _mm512_mask_add_epi32(cz, isz, cz, one);
    ch = _mm512_mask_add_epi32(ch, ish, ch, one);
    cl = _mm512_mask_add_epi32(cl, isl, cl, one);
    // compress in a register, store the whole vector (compress-to-memory is slow on many cores)
    _mm512_storeu_si512(b.bins + u, _mm512_maskz_compress_epi32(ks, est));
    u += __builtin_popcount(ks);
    if (kf) {
      const __m512i at = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(j)));
      _mm512_storeu_si512(b.pos + w, _mm512_maskz_compress_epi32(kf, at));
      w += __builtin_popcount(kf);
    }
  }
  b.nbins = u, b.npos = w;
  alignas(64) int32_t c[3][16];
  _mm512_store_si512(c[0], cz);
  _mm512_store_si512(c[1], ch);
  _mm512_store_si512(c[2], cl);
  for (int k = 0; k < 16; ++k) b.zero += c[0][k], b.hi += c[1][k], b.lo += c[2][k];
  alignas(64) float tn[16], tx[16];
  _mm512_store_ps(tn, vmn);
  _mm512_store_ps(tx, vmx);
  fold_lanes(tn, tx, 16, mn, mx);
  return j;
}
#pragma GCC diagnostic pop
#endif

int detect_lanes() {
#if defined(OQ_HAVE_WIDE_KERNELS)
  if (__builtin_cpu_supports("avx512f")) return 16;
  if (__builtin_cpu_supports("avx2")) return 8;
#endif
#if defined(__SSE2__)
  return 4;
#else
  return 1;
#endif
}

std::atomic<int> g_max_lanes{0};  // 0: no limit (set_binning_lanes)

int lanes() {
  static const int best = detect_lanes();
  const int l = g_max_lanes.load(std::memory_order_relaxed);
  return l > 0 ? std::min(best, l) : best;
}

void classify(const BinGrid& g, const float* x, int64_t n, bool absolute, Block& b, float& mn, float& mx) {
  b.nbins = b.npos = b.zero = b.hi = b.lo = 0;
  int64_t j = 0;
  const int l = lanes();
#if defined(OQ_HAVE_WIDE_KERNELS)
  if (l >= 16)
    j = classify_avx512(g, x, n, absolute, b, mn, mx);
  else if (l >= 8)
    j = classify_avx2(g, x, n, absolute, b, mn, mx);
#endif
#if defined(__SSE2__)
  if (l == 4) j = classify_sse2(g, x, n, absolute, b, mn, mx);
#endif
  classify_scalar(g, x, j, n, absolute, b, mn, mx);
}

template <int S>
void count(const int32_t* bins, int64_t n, uint32_t* sub, int64_t stride) {
  int64_t j = 0;
  for (; j + S <= n; j += S)
    for (int s = 0; s < S; ++s) ++sub[s * stride + bins[j + s]];
  for (; j < n; ++j) ++sub[bins[j]];
}
}  // namespace

void set_binning_lanes(int l) { g_max_lanes.store(l, std::memory_order_relaxed); }

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

template <typename E>
BatchMinMax Binner<E>::scan(std::span<const float> x, bool absolute, BinScratch& s) const {
  const auto n = static_cast<int64_t>(x.size());
  // More sub-histograms break more of the dependency chains of repeated bins but cost more to clear and
  // add up (and cache): only where the batch is large against the histogram.
  const int subs = (nb_ <= 8192 && n >= 16 * nb_) ? 4 : (nb_ <= 65536 && n >= 4 * nb_) ? 2 : 1;
  uint32_t* sub = s.prepare(nb_, subs);
  const int64_t stride = nb_;
  float mn = kInf, mx = -kInf;
  Block blk;
  int64_t since_fold = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = std::min(kBlock, n - b);
    const float* xb = x.data() + b;
    classify(grid_, xb, m, absolute, blk, mn, mx);
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
    if (since_fold + kBlock > s.fold_every()) {
      s.fold_wide();
      since_fold = 0;
    }
  }
  return finish_min_max(mn, mx, x);
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
