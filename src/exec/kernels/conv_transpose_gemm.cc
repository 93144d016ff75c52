// ConvTranspose as GEMM + col2im (conv_transpose_gemm.h).
#include "exec/kernels/conv_transpose_gemm.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <vector>

#include "core/parallel.h"

namespace oq::exec {
namespace {

// Floats of T per row block: a quarter of a typical L2, so T stays in cache between the sgemm and col2im.
constexpr int64_t kBlockFloats = 64 * 1024;
// Fewer columns than this make the sgemm inefficient (a large mkk then takes T beyond kBlockFloats).
constexpr int64_t kMinColumns = 256;

// yrow[i * sw + off] += t[i] for the i in [0, n) whose position lies in [0, ow).
void add_strided(float* yrow, const float* t, int64_t n, int64_t sw, int64_t off, int64_t ow) {
  const int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
  const int64_t hi = ow - off <= 0 ? 0 : std::min(n, (ow - off - 1) / sw + 1);
  if (sw == 1) {
    float* y = yrow + off;
    for (int64_t i = lo; i < hi; ++i) y[i] += t[i];
    return;
  }
  for (int64_t i = lo; i < hi; ++i) yrow[i * sw + off] += t[i];
}

// t[r * n + j] = w[r] * x[j] for r < m, j < n.
void outer(const float* __restrict w, int64_t m, const float* __restrict x, int64_t n, float* __restrict t) {
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) t[r * n + j] = w[r] * x[j];
}

// One output row of the exact case: yrow[i * kw + k] = t[k * ldt + i] + bias for ow positions (ow <= n * kw).
void store_interleaved(float* __restrict yrow, const float* __restrict t, int64_t ldt, int64_t n, int64_t kw,
                       int64_t ow, float bias) {
  const int64_t full = std::min(n, ow / kw);
  if (kw == 1) {
    for (int64_t i = 0; i < full; ++i) yrow[i] = t[i] + bias;
  } else if (kw == 2) {
    const float *t0 = t, *t1 = t + ldt;
    for (int64_t i = 0; i < full; ++i) {
      yrow[2 * i] = t0[i] + bias;
      yrow[2 * i + 1] = t1[i] + bias;
    }
  } else {
    for (int64_t i = 0; i < full; ++i)
      for (int64_t k = 0; k < kw; ++k) yrow[i * kw + k] = t[k * ldt + i] + bias;
  }
  for (int64_t o = full * kw; o < ow; ++o) yrow[o] = t[(o % kw) * ldt + o / kw] + bias;
}

// The rows [r0, r1) of input block T (rows (m, kh, kw) of ldt values: nr input rows of s.iw) into the output
// channels of one (batch, group): y_g [m_per_group, oh, ow].
void col2im_block(const DeconvGemmShape& s, bool exact, const float* T, int64_t ldt, int64_t ih0, int64_t nr,
                  const float* bias_g, float* y_g) {
  parallel_for(s.m_per_group, 1, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float bias = bias_g ? bias_g[m] : 0.0f;
      float* ym = y_g + m * s.oh * s.ow;
      for (int64_t kh = 0; kh < s.kh; ++kh) {
        const float* trow = T + (m * s.kh + kh) * s.kw * ldt;  // kw = 0 row of (m, kh)
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t oh = (ih0 + r) * s.sh + kh * s.dh - s.ph;
          if (oh < 0 || oh >= s.oh) continue;
          float* yrow = ym + oh * s.ow;
          const float* t = trow + r * s.iw;
          if (exact) {
            store_interleaved(yrow, t, ldt, s.iw, s.kw, s.ow, bias);
          } else {
            for (int64_t kw = 0; kw < s.kw; ++kw) add_strided(yrow, t + kw * ldt, s.iw, s.sw, kw * s.dw - s.pw, s.ow);
          }
        }
      }
    }
  });
}

}  // namespace

bool deconv_gemm_is_exact(const DeconvGemmShape& s) {
  return s.kh == s.sh && s.kw == s.sw && s.dh == 1 && s.dw == 1 && s.ph == 0 && s.pw == 0 && s.oh <= s.ih * s.sh &&
         s.ow <= s.iw * s.sw;
}

int deconv_gemm(const DeconvGemmShape& s, const float* x, const float* w, const float* b, float* y) {
  const int64_t cg = s.channels / s.group, mg = s.m_per_group, mkk = mg * s.kh * s.kw, M = s.group * mg;
  const int64_t in_plane = s.ih * s.iw, out_plane = s.oh * s.ow;
  const bool exact = deconv_gemm_is_exact(s);
  if (!exact) {  // the output starts as the bias; col2im adds
    parallel_for(s.batch * M, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) std::fill_n(y + c * out_plane, out_plane, b ? b[c % M] : 0.0f);
    });
  }
  // Rows per block: T within kBlockFloats, but at least kMinColumns columns for the sgemm.
  const int64_t nr = std::clamp<int64_t>(std::max(kBlockFloats / std::max<int64_t>(1, mkk * s.iw),
                                                  (kMinColumns + s.iw - 1) / s.iw), 1, s.ih);
  std::vector<float> T(static_cast<size_t>(mkk * nr * s.iw));
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t g = 0; g < s.group; ++g) {
      const float* xg = x + (n * s.channels + g * cg) * in_plane;
      const float* wg = w + g * cg * mkk;
      float* yg = y + (n * M + g * mg) * out_plane;
      for (int64_t ih0 = 0; ih0 < s.ih; ih0 += nr) {
        const int64_t rows = std::min(nr, s.ih - ih0), ldt = rows * s.iw;
        // T [mkk, rows * iw] = W_gᵀ [mkk, cg] · X_g[:, ih0 : ih0 + rows, :] [cg, rows * iw]
        if (cg == 1) {  // depthwise: an outer product (a sgemm call per group costs more than the product)
          outer(wg, mkk, xg + ih0 * s.iw, ldt, T.data());
        } else if (const dnnl_status_t st = dnnl_sgemm('T', 'N', mkk, ldt, cg, 1.0f, wg, mkk, xg + ih0 * s.iw,
                                                       in_plane, 0.0f, T.data(), ldt);
                   st != dnnl_success) {
          return static_cast<int>(st);
        }
        col2im_block(s, exact, T.data(), ldt, ih0, rows, b ? b + g * mg : nullptr, yg);
      }
    }
  return 0;
}

}  // namespace oq::exec
