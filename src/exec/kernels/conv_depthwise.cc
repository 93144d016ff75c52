// Depthwise 2-D convolution on NCHW tensors, written here by hand: oneDNN 2.6 only has depthwise kernels for
// blocked (nChw16c) or NHWC tensors, and converting every activation to and from those layouts around each
// depthwise layer cost twice the convolution itself on MobileNetV2 (measured with ONEDNN_VERBOSE: 9.7 ms of
// reorders against 5.1 ms of depthwise convolution per inference). A depthwise layer is a per-channel 2-D
// stencil, so on NCHW each output row is KH*KW multiply-adds over contiguous input rows, which the compiler
// vectorises; bias and the fused activation are applied while the row is in L1. The naive reference is
// ref::conv (compute_ref.h), against which tests/unit/test_kernels_conv.cc checks this path.
#include "exec/kernels/conv_depthwise.h"

#include <algorithm>

#include "core/clones.h"
#include "core/parallel.h"

namespace oq::exec {

bool depthwise_nchw_applies(const Tensor& x, const Tensor& w, int64_t group, const Geometry& g) {
  return x.rank() == 4 && group > 1 && x.dim(1) == group && w.dim(0) == group && w.dim(1) == 1 &&
         g.kernel.size() == 2 && x.numel() > 0;
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

// One channel plane. The project builds for baseline x86-64 (SSE2); this loop is the one place where wider
// vectors matter enough to compile it for AVX-512 and AVX2 as well, picked at run time by GCC's target_clones.
OQ_TARGET_CLONES void dw_plane(const Plane& g, const float* in, const float* k, float bias, float* out,
                               const FusedActivation& act) {
  const bool fast3 = g.KH == 3 && g.KW == 3 && (g.SW == 1 || g.SW == 2);
  const FusedActivation::Linear f = act.linear();
  if (fast3 && g.SH == g.SW && g.DH == 1 && g.DW == 1 && g.OW < 32) {
    const int64_t S = g.SW, hp = (g.OH - 1) * S + 3, wp = (g.OW - 1) * S + 3, n = (g.OH - 1) * wp + g.OW;
    std::vector<float>& buf = scratch();
    buf.resize(static_cast<size_t>(hp * wp + g.OH * wp + 16));
    float* pad = buf.data();
    float* acc = pad + hp * wp;
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
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t KH = g.kernel[0], KW = g.kernel[1], SH = g.strides[0], SW = g.strides[1];
  const int64_t DH = g.dilations[0], DW = g.dilations[1], PT = g.pads_begin[0], PL = g.pads_begin[1];
  const int64_t OH = g.out[0], OW = g.out[1];
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
  parallel_for(N * C, std::max<int64_t>(1, 16384 / std::max<int64_t>(work, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c = p % C;
      dw_plane(plane, X + p * H * W, K + c * KH * KW, B ? B[c] : 0.f, Y + p * OH * OW, act);
    }
  });
}

}  // namespace oq::exec
