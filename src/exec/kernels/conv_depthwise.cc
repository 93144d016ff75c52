// Depthwise 1-D and 2-D convolution on NCHW tensors (channel multipliers included), written here by hand:
// oneDNN 2.6 only has depthwise kernels for blocked (nChw16c) or NHWC tensors, and converting every activation to
// and from those layouts around each depthwise layer cost twice the convolution itself on MobileNetV2 (measured
// with ONEDNN_VERBOSE: 9.7 ms of reorders against 5.1 ms of depthwise convolution per inference). A depthwise
// layer is a per-channel 2-D stencil, so on NCHW each output row is KH*KW multiply-adds over contiguous input
// rows, which the compiler vectorises; bias and the fused activation are applied while the row is in L1. 3x3
// kernels (strides 1 and 2) accumulate all nine taps in registers instead; 5x5 and 7x7 ones all K*K taps too,
// over the flattened padded plane (stride 1 in explicit 16-float vectors, four at a time). Narrow 5x5 / 7x7
// planes (output rows of at most 32 columns, where most of a vector along a row is padding) run in oneDNN's
// jit_dw on 16-channel blocks instead, the activations reordered around it: depthwise_prefers_blocked.
// oneDNN 2.6 has no fast kernel for 1-D depthwise or channel multipliers above 1 in the layouts it is given
// here (its reference loops ran them, 150-500x slower than ONNX Runtime): a 1-D convolution is a plane of one
// row, and output channel m reads input channel m / multiplier. The naive reference is ref::conv
// (compute_ref.h), against which tests/unit/test_kernels_conv.cc and test_kernels_conv_paths.cc check this path.
#include "exec/kernels/conv_depthwise.h"

#include <algorithm>

#include "core/clones.h"
#include "core/parallel.h"

namespace oq::exec {

// depthwise_prefers_blocked: output rows up to this many columns.
constexpr int64_t kBlockedMaxWidth = 32;

bool depthwise_nchw_applies(const Tensor& x, const Tensor& w, int64_t group, const Geometry& g) {
  return (x.rank() == 4 || x.rank() == 3) && g.kernel.size() + 2 == static_cast<size_t>(x.rank()) && group > 1 &&
         x.dim(1) == group && w.dim(1) == 1 && w.dim(0) % group == 0 && x.numel() > 0;
}

bool depthwise_prefers_blocked(const Tensor& x, const Tensor& w, const Geometry& g) {
  if (x.rank() != 4 || w.dim(0) != x.dim(1) || x.dim(1) < 16 || g.kernel[0] != g.kernel[1]) return false;
  const int64_t k = g.kernel[0];
  return (k == 5 || k == 7) && g.out[1] <= kBlockedMaxWidth;
}

namespace {

// out[ox] += wk * in[ox*stride + off] for ox in [lo, hi).
inline __attribute__((always_inline)) void row_fma(float* __restrict out, const float* __restrict in, float wk,
                                                   int64_t lo, int64_t hi, int64_t stride, int64_t off) {
  if (stride == 1) {
    const float* p = in + off;
    for (int64_t ox = lo; ox < hi; ++ox) out[ox] += wk * p[ox];
  } else if (stride == 2) {
    const float* p = in + off;
    for (int64_t ox = lo; ox < hi; ++ox) out[ox] += wk * p[2 * ox];
  } else {
    for (int64_t ox = lo; ox < hi; ++ox) out[ox] += wk * in[ox * stride + off];
  }
}

struct Plane {
  int64_t H, W, KH, KW, SH, SW, DH, DW, PT, PL, OH, OW;
  const int64_t *lo, *hi;
  const float* zeros;  // W zeros: stands for the rows above and below the image
};

// Scratch for the small-plane path (per thread; grows to the largest plane seen).
std::vector<float>& scratch() {
  thread_local std::vector<float> buf;
  return buf;
}

// The plane copied into a zero-padded buffer of width wp = (OW-1)*S + K and (OH-1)*S + K rows (the per-thread
// scratch), followed by kSlack zeros (vector reads past the last row) and room for (OH-1)*wp + OW outputs
// rounded up to whole vectors: the small-plane paths below.
constexpr int64_t kSlack = 64;
float* padded_plane(const Plane& g, const float* in, int64_t K, int64_t S) {
  const int64_t hp = (g.OH - 1) * S + K, wp = (g.OW - 1) * S + K;
  std::vector<float>& buf = scratch();
  buf.resize(static_cast<size_t>(hp * wp + kSlack + g.OH * wp + 64));
  float* pad = buf.data();
  std::fill(pad + hp * wp, pad + hp * wp + kSlack, 0.f);
  for (int64_t y = 0; y < hp; ++y) {
    const int64_t iy = y - g.PT;
    float* prow = pad + y * wp;
    if (iy < 0 || iy >= g.H) {
      std::fill(prow, prow + wp, 0.f);
      continue;
    }
    // prow[x] = in[iy][x - PL] inside the image, 0 outside.
    const int64_t a = std::min(g.PL, wp), b = std::max(a, std::min(wp, g.PL + g.W));
    std::fill(prow, prow + a, 0.f);
    std::copy(in + iy * g.W + (a - g.PL), in + iy * g.W + (b - g.PL), prow + a);
    std::fill(prow + b, prow + wp, 0.f);
  }
  return pad;
}

// The common 3x3 case, stride S: all nine taps accumulated in registers for 16 output columns at a time
// (inputs read from three rows, the output written once), for the columns [x0, x1) whose taps all fall
// inside the row.
// Small planes (rows narrower than a few vectors, where a per-row loop would run mostly in its scalar
// remainder): the plane is copied into a zero-padded buffer `pad` of width wp, and the output computed over
// the flattened index j = oy*wp + ox, where tap (ky, kx) reads pad[S*j + ky*wp + kx]: one long vector loop;
// the columns ox >= ow of each row are computed and dropped.
template <int S>
inline __attribute__((always_inline)) void plane3x3_flat(const float* __restrict pad, int64_t wp, const float* k,
                                                         float bias, float* __restrict acc, int64_t n,
                                                         FusedActivation::Linear f) {
  const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
  const float* __restrict r0 = pad;
  const float* __restrict r1 = pad + wp;
  const float* __restrict r2 = pad + 2 * wp;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t i = S * j;
    float a = bias;
    a += k0 * r0[i] + k1 * r0[i + 1] + k2 * r0[i + 2];
    a += k3 * r1[i] + k4 * r1[i + 1] + k5 * r1[i + 2];
    a += k6 * r2[i] + k7 * r2[i + 1] + k8 * r2[i + 2];
    acc[j] = f(a);
  }
}

template <int S>
inline __attribute__((always_inline)) void row3x3(const float* __restrict r0, const float* __restrict r1,
                                                  const float* __restrict r2, const float* k, float bias,
                                                  float* __restrict out, int64_t x0, int64_t x1, int64_t dw,
                                                  int64_t pl, FusedActivation::Linear f) {
  const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
  const int64_t o0 = -pl, o1 = dw - pl, o2 = 2 * dw - pl;
  for (int64_t ox = x0; ox < x1; ++ox) {
    const int64_t i = ox * S;
    float acc = bias;
    acc += k0 * r0[i + o0] + k1 * r0[i + o1] + k2 * r0[i + o2];
    acc += k3 * r1[i + o0] + k4 * r1[i + o1] + k5 * r1[i + o2];
    acc += k6 * r2[i + o0] + k7 * r2[i + o1] + k8 * r2[i + o2];
    out[ox] = f(acc);
  }
}

// 5x5 and 7x7, stride S: one sweep per kernel row adds its K taps, out[ox] += sum_kx w[kx] * in[ox*S + kx*dw + off]
// for ox in [x0, x1) (all inside the row), so each output is loaded and stored K times instead of K*K.
template <int K, int S>
inline __attribute__((always_inline)) void row_taps(float* __restrict out, const float* __restrict in,
                                                    const float* w, int64_t x0, int64_t x1, int64_t dw, int64_t off) {
  float kw[K];
  for (int t = 0; t < K; ++t) kw[t] = w[t];
  for (int64_t ox = x0; ox < x1; ++ox) {
    const float* p = in + ox * S + off;
    float s = out[ox];
    for (int kx = 0; kx < K; ++kx) s += kw[kx] * p[kx * dw];
    out[ox] = s;
  }
}

// All K*K taps of output j of the flattened padded plane (as plane3x3_flat) accumulated in registers, bias and
// activation included: one sweep over j. Stride 2: the compiler's vector loop (strided reads).
template <int K, int S>
inline __attribute__((always_inline)) void plane_kxk_flat(const float* __restrict pad, int64_t wp, const float* k,
                                                          float bias, float* __restrict acc, int64_t n,
                                                          FusedActivation::Linear f) {
  float w[K * K];
  for (int t = 0; t < K * K; ++t) w[t] = k[t];
  for (int64_t j = 0; j < n; ++j) {
    const float* p = pad + S * j;
    float a = bias;
    for (int ky = 0; ky < K; ++ky)
      for (int kx = 0; kx < K; ++kx) a += w[ky * K + kx] * p[ky * wp + kx];
    acc[j] = f(a);
  }
}

// The vector helpers below are always inlined into dw_plane's clones: the AVX-512 ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
// 16 floats (GCC vector extension: one zmm with AVX-512, two ymm with AVX2, four xmm otherwise); V16u for
// unaligned loads and stores.
typedef float V16 __attribute__((vector_size(64)));
typedef float V16u __attribute__((vector_size(64), aligned(4)));

// FusedActivation::Linear on 16 lanes, the same comparisons (NaN kept).
inline __attribute__((always_inline)) V16 linear16(V16 x, FusedActivation::Linear f) {
  const V16 zero = {};
  const V16 pos = x < zero ? zero : x, neg = zero < x ? zero : x;
  V16 v = pos + f.slope * neg;
  v = v < f.lo ? zero + f.lo : v;
  return f.hi < v ? zero + f.hi : v;
}

// Stride 1 with explicit vectors: J blocks of 16 outputs accumulated in registers, each tap's weight read once
// for the J blocks (one broadcast, J multiply-adds reading shifted inputs). pad must have 16*J - 1 readable
// floats past index n - 1 + (K-1)*(wp+1), acc room for n rounded up to 16.
template <int K, int J>
inline __attribute__((always_inline)) void taps_v16(const float* pad, int64_t wp, const float* w, float bias,
                                                    float* acc, FusedActivation::Linear f) {
  V16 a[J];
  for (int b = 0; b < J; ++b) a[b] = V16{} + bias;
  for (int ky = 0; ky < K; ++ky)
    for (int kx = 0; kx < K; ++kx) {
      const float wk = w[ky * K + kx];
      const float* p = pad + ky * wp + kx;
      for (int b = 0; b < J; ++b) a[b] += wk * *reinterpret_cast<const V16u*>(p + 16 * b);
    }
  for (int b = 0; b < J; ++b) *reinterpret_cast<V16u*>(acc + 16 * b) = linear16(a[b], f);
}

template <int K>
inline __attribute__((always_inline)) void plane_kxk_flat_s1(const float* pad, int64_t wp, const float* k,
                                                             float bias, float* acc, int64_t n,
                                                             FusedActivation::Linear f) {
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) taps_v16<K, 4>(pad + j, wp, k, bias, acc + j, f);
  for (; j < n; j += 16) taps_v16<K, 1>(pad + j, wp, k, bias, acc + j, f);
}

template <int K, int S>
inline __attribute__((always_inline)) void plane_kxk(const Plane& g, const float* in, const float* k, float bias,
                                                     float* out, const FusedActivation& act) {
  if (g.SH == S && g.DH == 1 && g.DW == 1) {
    // As plane3x3_flat, for planes of any width (the copy costs little next to K*K taps).
    const int64_t wp = (g.OW - 1) * S + K, n = (g.OH - 1) * wp + g.OW;
    float* pad = padded_plane(g, in, K, S);
    float* acc = pad + ((g.OH - 1) * S + K) * wp + kSlack;
    if (S == 1)
      plane_kxk_flat_s1<K>(pad, wp, k, bias, acc, n, act.linear());
    else
      plane_kxk_flat<K, S>(pad, wp, k, bias, acc, n, act.linear());
    for (int64_t oy = 0; oy < g.OH; ++oy) std::copy(acc + oy * wp, acc + oy * wp + g.OW, out + oy * g.OW);
    return;
  }
  int64_t x0 = 0, x1 = g.OW;  // output columns whose taps are all inside the row
  for (int64_t kx = 0; kx < K; ++kx) x0 = std::max(x0, g.lo[kx]), x1 = std::min(x1, g.hi[kx]);
  for (int64_t oy = 0; oy < g.OH; ++oy) {
    float* orow = out + oy * g.OW;
    for (int64_t ox = 0; ox < g.OW; ++ox) orow[ox] = bias;
    for (int64_t ky = 0; ky < K; ++ky) {
      const int64_t iy = oy * g.SH - g.PT + ky * g.DH;
      if (iy < 0 || iy >= g.H) continue;
      const float* irow = in + iy * g.W;
      const float* w = k + ky * K;
      if (x0 < x1) row_taps<K, S>(orow, irow, w, x0, x1, g.DW, -g.PL);
      // The border columns: per element, skipping taps outside the row.
      auto border = [&](int64_t ox) {
        for (int64_t kx = 0; kx < K; ++kx) {
          const int64_t ix = ox * S - g.PL + kx * g.DW;
          if (ix >= 0 && ix < g.W) orow[ox] += w[kx] * irow[ix];
        }
      };
      for (int64_t ox = 0; ox < std::min(x0, g.OW); ++ox) border(ox);
      for (int64_t ox = std::max(x1, x0); ox < g.OW; ++ox) border(ox);
    }
    act.apply(orow, g.OW);
  }
}

template <int K>
inline __attribute__((always_inline)) void plane_kxk(const Plane& g, const float* in, const float* k, float bias,
                                                     float* out, const FusedActivation& act) {
  if (g.SW == 1)
    plane_kxk<K, 1>(g, in, k, bias, out, act);
  else
    plane_kxk<K, 2>(g, in, k, bias, out, act);
}

// One channel plane. The project builds for baseline x86-64 (SSE2); this loop is the one place where wider
// vectors matter enough to compile it for AVX-512 and AVX2 as well, picked at run time by GCC's target_clones.
OQ_TARGET_CLONES void dw_plane(const Plane& g, const float* in, const float* k, float bias, float* out,
                               const FusedActivation& act) {
  const bool fast3 = g.KH == 3 && g.KW == 3 && (g.SW == 1 || g.SW == 2);
  if (g.KH == g.KW && (g.KH == 5 || g.KH == 7) && (g.SW == 1 || g.SW == 2))
    return g.KH == 5 ? plane_kxk<5>(g, in, k, bias, out, act) : plane_kxk<7>(g, in, k, bias, out, act);
  const FusedActivation::Linear f = act.linear();
  if (fast3 && g.SH == g.SW && g.DH == 1 && g.DW == 1 && g.OW < 32) {
    const int64_t S = g.SW, wp = (g.OW - 1) * S + 3, n = (g.OH - 1) * wp + g.OW;
    float* pad = padded_plane(g, in, 3, S);
    float* acc = pad + ((g.OH - 1) * S + 3) * wp + kSlack;
    if (S == 1)
      plane3x3_flat<1>(pad, wp, k, bias, acc, n, f);
    else
      plane3x3_flat<2>(pad, wp, k, bias, acc, n, f);
    for (int64_t oy = 0; oy < g.OH; ++oy) std::copy(acc + oy * wp, acc + oy * wp + g.OW, out + oy * g.OW);
    return;
  }
  int64_t x0 = 0, x1 = g.OW;  // output columns whose taps are all inside the row
  for (int64_t kx = 0; kx < g.KW; ++kx) x0 = std::max(x0, g.lo[kx]), x1 = std::min(x1, g.hi[kx]);
  for (int64_t oy = 0; oy < g.OH; ++oy) {
    float* orow = out + oy * g.OW;
    if (fast3 && x0 < x1) {
      const float* r[3];
      for (int64_t ky = 0; ky < 3; ++ky) {
        const int64_t iy = oy * g.SH - g.PT + ky * g.DH;
        r[ky] = iy < 0 || iy >= g.H ? g.zeros : in + iy * g.W;
      }
      if (g.SW == 1)
        row3x3<1>(r[0], r[1], r[2], k, bias, orow, x0, x1, g.DW, g.PL, f);
      else
        row3x3<2>(r[0], r[1], r[2], k, bias, orow, x0, x1, g.DW, g.PL, f);
      // The border columns: per element, skipping taps outside the row.
      auto border = [&](int64_t ox) {
        float acc = bias;
        for (int64_t ky = 0; ky < 3; ++ky)
          for (int64_t kx = 0; kx < 3; ++kx) {
            const int64_t ix = ox * g.SW - g.PL + kx * g.DW;
            if (ix >= 0 && ix < g.W) acc += k[ky * 3 + kx] * r[ky][ix];
          }
        orow[ox] = act(acc);
      };
      for (int64_t ox = 0; ox < x0; ++ox) border(ox);
      for (int64_t ox = x1; ox < g.OW; ++ox) border(ox);
      continue;
    }
    for (int64_t ox = 0; ox < g.OW; ++ox) orow[ox] = bias;
    for (int64_t ky = 0; ky < g.KH; ++ky) {
      const int64_t iy = oy * g.SH - g.PT + ky * g.DH;
      if (iy < 0 || iy >= g.H) continue;
      const float* irow = in + iy * g.W;
      for (int64_t kx = 0; kx < g.KW; ++kx)
        row_fma(orow, irow, k[ky * g.KW + kx], g.lo[kx], g.hi[kx], g.SW, kx * g.DW - g.PL);
    }
    act.apply(orow, g.OW);
  }
}

}  // namespace

void depthwise_nchw(const Tensor& x, const Tensor& w, const Tensor* b, const Geometry& g, const FusedActivation& act,
                    Tensor& y) {
  // A 1-D convolution is a plane of one row (the axis of H has extent 1, kernel 1, stride 1, no padding).
  const bool one_d = x.rank() == 3;
  auto h_or = [one_d](const Shape& v, int64_t one) { return one_d ? one : v[0]; };
  const int64_t N = x.dim(0), C = x.dim(1), H = one_d ? 1 : x.dim(2), W = x.shape().back();
  const int64_t M = w.dim(0), mult = M / C;
  const int64_t KH = h_or(g.kernel, 1), KW = g.kernel.back(), SH = h_or(g.strides, 1), SW = g.strides.back();
  const int64_t DH = h_or(g.dilations, 1), DW = g.dilations.back(), PT = h_or(g.pads_begin, 0);
  const int64_t PL = g.pads_begin.back(), OH = h_or(g.out, 1), OW = g.out.back();
  const float* X = x.data<float>();
  const float* K = w.data<float>();
  const float* B = b ? b->data<float>() : nullptr;
  float* Y = y.data<float>();
  // Per kernel column kx: the output columns whose input column ox*SW - PL + kx*DW lies inside [0, W).
  std::vector<int64_t> lo(KW), hi(KW);
  for (int64_t kx = 0; kx < KW; ++kx) {
    const int64_t off = kx * DW - PL;
    int64_t l = off >= 0 ? 0 : (-off + SW - 1) / SW;
    int64_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / SW + 1;
    lo[kx] = std::min(l, OW);
    hi[kx] = std::max(lo[kx], std::min(h, OW));
  }
  const std::vector<float> zeros(static_cast<size_t>(W), 0.f);
  const Plane plane{H, W, KH, KW, SH, SW, DH, DW, PT, PL, OH, OW, lo.data(), hi.data(), zeros.data()};
  const int64_t work = OH * OW * KH * KW;
  // Output plane p = (sample n, channel m) reads input channel m / mult.
  parallel_for(N * M, std::max<int64_t>(1, 16384 / std::max<int64_t>(work, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n = p / M, m = p % M;
      dw_plane(plane, X + (n * C + m / mult) * H * W, K + m * KH * KW, B ? B[m] : 0.f, Y + p * OH * OW, act);
    }
  });
}

}  // namespace oq::exec
