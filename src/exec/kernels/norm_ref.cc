// Naive references: pooling, BatchNormalization, InstanceNormalization, LayerNormalization, Softmax
// (see compute_ref.h).
#include <cmath>
#include <limits>

#include "exec/kernels/compute_ref.h"

namespace oq::exec::ref {

namespace {
void unflatten(int64_t f, const std::vector<int64_t>& dims, std::vector<int64_t>& idx) {
  idx.resize(dims.size());
  for (int i = static_cast<int>(dims.size()) - 1; i >= 0; --i) {
    idx[i] = f % dims[i];
    f /= dims[i];
  }
}
int64_t prod(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t d : v) p *= d;
  return p;
}
std::vector<int64_t> spatial(const Shape& s) { return {s.begin() + 2, s.end()}; }

// Visits every window position of output `o` that lies inside the input; `fn(flat input offset,
// multi-index)`. Returns the number of positions inside [-pads_begin, in + pads_end).
template <typename F>
int64_t for_window(const ConvGeom& g, const std::vector<int64_t>& in, const std::vector<int64_t>& oi, F&& fn) {
  std::vector<int64_t> ki, pi(in.size());
  int64_t k_sz = prod(g.kernel), padded = 0;
  for (int64_t kk = 0; kk < k_sz; ++kk) {
    unflatten(kk, g.kernel, ki);
    bool inside = true, in_padded = true;
    int64_t off = 0;
    for (size_t a = 0; a < in.size(); ++a) {
      int64_t p = oi[a] * g.strides[a] - g.pads_begin[a] + ki[a] * g.dilations[a];
      pi[a] = p;
      inside = inside && p >= 0 && p < in[a];
      in_padded = in_padded && p >= -g.pads_begin[a] && p < in[a] + g.pads_end[a];
      off = off * in[a] + p;
    }
    if (in_padded) ++padded;
    if (inside) fn(off, pi);
  }
  return padded;
}
}  // namespace

void max_pool(const Tensor& x, const ConvGeom& g, Tensor& y, Tensor* indices, int storage_order) {
  const auto in = spatial(x.shape()), out = spatial(y.shape());
  const int64_t NC = x.dim(0) * x.dim(1), in_sz = prod(in), out_sz = prod(out);
  const float* X = x.data<float>();
  float* Y = y.data<float>();
  std::vector<int64_t> oi;
  for (int64_t nc = 0; nc < NC; ++nc)
    for (int64_t o = 0; o < out_sz; ++o) {
      unflatten(o, out, oi);
      float best = -std::numeric_limits<float>::infinity();
      int64_t best_idx = -1;
      for_window(g, in, oi, [&](int64_t off, const std::vector<int64_t>& pi) {
        float v = X[nc * in_sz + off];
        if (best_idx < 0 || v > best) {
          best = v;
          if (storage_order == 0) {
            best_idx = off;
          } else {
            int64_t cm = 0;  // column-major offset: first spatial axis fastest
            for (int a = static_cast<int>(in.size()) - 1; a >= 0; --a) cm = cm * in[a] + pi[a];
            best_idx = cm;
          }
        }
      });
      Y[nc * out_sz + o] = best;
      if (indices) indices->data<int64_t>()[nc * out_sz + o] = nc * in_sz + best_idx;
    }
}

void avg_pool(const Tensor& x, const ConvGeom& g, bool count_include_pad, Tensor& y) {
  const auto in = spatial(x.shape()), out = spatial(y.shape());
  const int64_t NC = x.dim(0) * x.dim(1), in_sz = prod(in), out_sz = prod(out);
  const float* X = x.data<float>();
  float* Y = y.data<float>();
  std::vector<int64_t> oi;
  for (int64_t nc = 0; nc < NC; ++nc)
    for (int64_t o = 0; o < out_sz; ++o) {
      unflatten(o, out, oi);
      double sum = 0;
      int64_t cnt = 0;
      int64_t padded = for_window(g, in, oi, [&](int64_t off, const std::vector<int64_t>&) {
        sum += X[nc * in_sz + off];
        ++cnt;
      });
      int64_t div = count_include_pad ? padded : cnt;
      Y[nc * out_sz + o] = div > 0 ? static_cast<float>(sum / div) : 0.0f;
    }
}

void batch_norm(const Tensor& x, const Tensor& scale, const Tensor& bias, const Tensor& mean,
                const Tensor& var, float epsilon, Tensor& y) {
  const int64_t N = x.dim(0), C = x.rank() > 1 ? x.dim(1) : 1;
  const int64_t per_sample = x.numel() / std::max<int64_t>(N, 1), inner = per_sample / std::max<int64_t>(C, 1);
  const bool per_channel = scale.numel() == C;
  const float* X = x.data<float>();
  float* Y = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t e = 0; e < per_sample; ++e) {
      int64_t s = per_channel ? e / inner : e;
      double v = (X[n * per_sample + e] - static_cast<double>(mean.data<float>()[s])) /
                 std::sqrt(static_cast<double>(var.data<float>()[s]) + epsilon);
      Y[n * per_sample + e] = static_cast<float>(v * scale.data<float>()[s] + bias.data<float>()[s]);
    }
}

void instance_norm(const Tensor& x, const Tensor& scale, const Tensor& bias, float epsilon, Tensor& y) {
  const int64_t N = x.dim(0), C = x.dim(1), inner = x.numel() / std::max<int64_t>(N * C, 1);
  const float* X = x.data<float>();
  float* Y = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const float* p = X + (n * C + c) * inner;
      double m = 0, v = 0;
      for (int64_t i = 0; i < inner; ++i) m += p[i];
      m /= inner;
      for (int64_t i = 0; i < inner; ++i) v += (p[i] - m) * (p[i] - m);
      v /= inner;
      double inv = 1.0 / std::sqrt(v + epsilon);
      for (int64_t i = 0; i < inner; ++i)
        Y[(n * C + c) * inner + i] =
            static_cast<float>((p[i] - m) * inv * scale.data<float>()[c] + bias.data<float>()[c]);
    }
}

void layer_norm(const Tensor& x, const Tensor& scale, const Tensor* bias, int axis, float epsilon, Tensor& y,
                Tensor* mean, Tensor* inv_std_dev, bool rms) {
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < x.rank(); ++i) (i < axis ? outer : inner) *= x.dim(i);
  const float* X = x.data<float>();
  float* Y = y.data<float>();
  // scale/bias broadcast (numpy, unidirectional) to the normalized shape x.shape[axis:].
  Shape ns(x.shape().begin() + axis, x.shape().end());
  auto bidx = [&](const Tensor& t, int64_t i) {
    std::vector<int64_t> idx;
    unflatten(i, ns, idx);
    int64_t off = 0, r = t.rank(), lead = static_cast<int64_t>(ns.size()) - r;
    for (int64_t a = 0; a < r; ++a) off = off * t.dim(a) + (t.dim(a) == 1 ? 0 : idx[lead + a]);
    return t.data<float>()[off];
  };
  for (int64_t o = 0; o < outer; ++o) {
    const float* p = X + o * inner;
    double m = 0, v = 0;
    if (!rms) {
      for (int64_t i = 0; i < inner; ++i) m += p[i];
      m /= inner;
    }
    for (int64_t i = 0; i < inner; ++i) v += (p[i] - m) * (p[i] - m);
    v /= inner;
    double inv = 1.0 / std::sqrt(v + epsilon);
    for (int64_t i = 0; i < inner; ++i)
      Y[o * inner + i] = static_cast<float>((p[i] - m) * inv * bidx(scale, i) + (bias ? bidx(*bias, i) : 0.0f));
    if (mean) mean->data<float>()[o] = static_cast<float>(m);
    if (inv_std_dev) inv_std_dev->data<float>()[o] = static_cast<float>(inv);
  }
}

void softmax(const Tensor& x, int axis, int opset, bool log, Tensor& y) {
  int64_t outer = 1, len = 1, inner = 1;
  for (int i = 0; i < x.rank(); ++i) {
    if (i < axis) outer *= x.dim(i);
    else if (i == axis || opset < 13) len *= x.dim(i);
    else inner *= x.dim(i);
  }
  const float* X = x.data<float>();
  float* Y = y.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t l) { return (o * len + l) * inner + in; };
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t l = 0; l < len; ++l) mx = std::max<double>(mx, X[at(l)]);
      double sum = 0;
      for (int64_t l = 0; l < len; ++l) sum += std::exp(X[at(l)] - mx);
      for (int64_t l = 0; l < len; ++l)
        Y[at(l)] = static_cast<float>(log ? X[at(l)] - mx - std::log(sum) : std::exp(X[at(l)] - mx) / sum);
    }
}

}  // namespace oq::exec::ref
