// Classification kernels of the calibration histogram binning (binning_kernels.h).
#include "calib/binning_kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace oq::calib::kernels {

namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();

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

// 16 lanes with AVX-512F: masks instead of blends, compression instead of the packing table. Mask compares
// all go to one execution port, so this kernel makes two fewer per vector than the others, with the same
// counts: no t < nb test (t >= nb only happens within nb * 3 * 2^-24 of nb, where frac < margin already marks
// the value unsafe: see Binner's constructor), and values equal to grid.lo are not special-cased (rare: the
// low edge is the smallest value seen, or 0 in the zero count) but settled on the edges. (GCC 12 warns that
// _mm512_min_ps's unused pass-through operand is uninitialised.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) int64_t classify_avx512(const BinGrid& g, const float* x, int64_t n,
                                                            bool absolute, Block& b, float& mn, float& mx) {
  const __m512i keep_bits = _mm512_set1_epi32(absolute ? 0x7fffffff : -1);
  const __m512 lo = _mm512_set1_ps(g.lo), hi = _mm512_set1_ps(g.hi), sc = _mm512_set1_ps(g.scale);
  const __m512 zero = _mm512_setzero_ps();
  const __m512 m_lo = _mm512_set1_ps(g.margin), m_hi = _mm512_set1_ps(g.margin_hi);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i one = _mm512_set1_epi32(1);
  __m512 vmn = _mm512_set1_ps(kInf), vmx = _mm512_set1_ps(-kInf);
  __m512i cz = _mm512_setzero_si512(), ch = cz;
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
    const __mmask16 safe =
        _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(frac, m_lo, _CMP_GE_OQ), frac, m_hi, _CMP_LE_OQ);
    const __mmask16 isz = _mm512_mask_cmp_ps_mask(valid, v, zero, _CMP_EQ_OQ);
    const __mmask16 ish = _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(valid & ~isz), v, hi, _CMP_EQ_OQ);
    const auto keep = static_cast<__mmask16>(valid & ~(isz | ish));
    const auto ks = static_cast<__mmask16>(keep & safe), kf = static_cast<__mmask16>(keep & ~safe);
    cz = _mm512_mask_add_epi32(cz, isz, cz, one);
    ch = _mm512_mask_add_epi32(ch, ish, ch, one);
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
  alignas(64) int32_t c[2][16];
  _mm512_store_si512(c[0], cz);
  _mm512_store_si512(c[1], ch);
  for (int k = 0; k < 16; ++k) b.zero += c[0][k], b.hi += c[1][k];
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

}  // namespace

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

void set_max_lanes(int l) { g_max_lanes.store(l, std::memory_order_relaxed); }

}  // namespace oq::calib::kernels

namespace oq::calib {
void set_binning_lanes(int l) { kernels::set_max_lanes(l); }
}  // namespace oq::calib
