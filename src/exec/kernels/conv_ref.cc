// Naive references: Conv, ConvTranspose, Gemm, MatMul (see compute_ref.h).
#include <algorithm>

#include "exec/kernels/compute_ref.h"

namespace oq::exec::ref {

namespace {
// Row-major multi-index of flat offset `f` in `dims`.
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
}  // namespace

void conv(const Tensor& x, const Tensor& w, const Tensor* b, const ConvGeom& g, Tensor& y) {
  const auto in = spatial(x.shape()), out = spatial(y.shape()), k = g.kernel;
  const int64_t N = x.dim(0), C = x.dim(1), M = w.dim(0), Cg = C / g.group, Mg = M / g.group;
  const int64_t in_sz = prod(in), out_sz = prod(out), k_sz = prod(k);
  const size_t nd = in.size();
  const float* X = x.data<float>();
  const float* W = w.data<float>();
  float* Y = y.data<float>();
  std::vector<int64_t> oi, ki;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      int64_t grp = m / Mg;
      for (int64_t o = 0; o < out_sz; ++o) {
        unflatten(o, out, oi);
        double acc = b ? b->data<float>()[m] : 0.0;
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t kk = 0; kk < k_sz; ++kk) {
            unflatten(kk, k, ki);
            int64_t off = 0;
            bool inside = true;
            for (size_t a = 0; a < nd && inside; ++a) {
              int64_t p = oi[a] * g.strides[a] - g.pads_begin[a] + ki[a] * g.dilations[a];
              inside = p >= 0 && p < in[a];
              off = off * in[a] + p;
            }
            if (!inside) continue;
            acc += static_cast<double>(X[(n * C + grp * Cg + c) * in_sz + off]) * W[(m * Cg + c) * k_sz + kk];
          }
        Y[(n * M + m) * out_sz + o] = static_cast<float>(acc);
      }
    }
}

void conv_transpose(const Tensor& x, const Tensor& w, const Tensor* b, const ConvGeom& g, Tensor& y) {
  const auto in = spatial(x.shape()), out = spatial(y.shape()), k = g.kernel;
  const int64_t N = x.dim(0), C = x.dim(1), Mg = w.dim(1), M = Mg * g.group, Cg = C / g.group;
  const int64_t in_sz = prod(in), out_sz = prod(out), k_sz = prod(k);
  const size_t nd = in.size();
  const float* X = x.data<float>();
  const float* W = w.data<float>();
  std::vector<double> acc(static_cast<size_t>(N * M * out_sz), 0.0);
  std::vector<int64_t> ii, ki;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      int64_t grp = c / Cg;
      for (int64_t i = 0; i < in_sz; ++i) {
        unflatten(i, in, ii);
        double xv = X[(n * C + c) * in_sz + i];
        for (int64_t kk = 0; kk < k_sz; ++kk) {
          unflatten(kk, k, ki);
          int64_t off = 0;
          bool inside = true;
          for (size_t a = 0; a < nd && inside; ++a) {
            int64_t p = ii[a] * g.strides[a] - g.pads_begin[a] + ki[a] * g.dilations[a];
            inside = p >= 0 && p < out[a];
            off = off * out[a] + p;
          }
          if (!inside) continue;
          for (int64_t m = 0; m < Mg; ++m)
            acc[(n * M + grp * Mg + m) * out_sz + off] += xv * W[(c * Mg + m) * k_sz + kk];
        }
      }
    }
  float* Y = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t o = 0; o < out_sz; ++o) {
        size_t f = static_cast<size_t>((n * M + m) * out_sz + o);
        Y[f] = static_cast<float>(acc[f] + (b ? b->data<float>()[m] : 0.0f));
      }
}

void gemm(const Tensor& a, const Tensor& b, const Tensor* c, float alpha, float beta, bool trans_a,
          bool trans_b, Tensor& y) {
  const int64_t M = trans_a ? a.dim(1) : a.dim(0), K = trans_a ? a.dim(0) : a.dim(1);
  const int64_t N = trans_b ? b.dim(0) : b.dim(1);
  const float* A = a.data<float>();
  const float* B = b.data<float>();
  float* Y = y.data<float>();
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t kk = 0; kk < K; ++kk) {
        float av = trans_a ? A[kk * M + i] : A[i * K + kk];
        float bv = trans_b ? B[j * K + kk] : B[kk * N + j];
        acc += static_cast<double>(av) * bv;
      }
      double cv = 0;
      if (c && c->numel() > 0) {
        // Unidirectional broadcast of C (rank <= 2) to [M, N].
        int64_t cr = c->rank() >= 2 ? c->dim(-2) : 1, cc = c->rank() >= 1 ? c->dim(-1) : 1;
        cv = c->data<float>()[(cr == 1 ? 0 : i) * cc + (cc == 1 ? 0 : j)];
      }
      Y[i * N + j] = static_cast<float>(alpha * acc + beta * cv);
    }
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  Shape as = a.shape(), bs = b.shape();
  bool a1 = as.size() == 1, b1 = bs.size() == 1;
  if (a1) as.insert(as.begin(), 1);
  if (b1) bs.push_back(1);
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  size_t br = std::max(as.size(), bs.size()) - 2;
  Shape ab(br, 1), bb(br, 1), ob(br);
  std::copy(as.begin(), as.end() - 2, ab.begin() + (br - (as.size() - 2)));
  std::copy(bs.begin(), bs.end() - 2, bb.begin() + (br - (bs.size() - 2)));
  for (size_t i = 0; i < br; ++i) ob[i] = std::max(ab[i], bb[i]);
  Shape out = ob;
  if (!a1) out.push_back(M);
  if (!b1) out.push_back(N);
  Tensor y(DType::Float, out);
  const float* A = a.data<float>();
  const float* B = b.data<float>();
  float* Y = y.data<float>();
  int64_t nb = prod(ob);
  std::vector<int64_t> bi;
  for (int64_t t = 0; t < nb; ++t) {
    unflatten(t, ob, bi);
    int64_t ao = 0, bo = 0;
    for (size_t i = 0; i < br; ++i) {
      ao = ao * ab[i] + (ab[i] == 1 ? 0 : bi[i]);
      bo = bo * bb[i] + (bb[i] == 1 ? 0 : bi[i]);
    }
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t kk = 0; kk < K; ++kk)
          acc += static_cast<double>(A[(ao * M + i) * K + kk]) * B[(bo * K + kk) * N + j];
        Y[(t * M + i) * N + j] = static_cast<float>(acc);
      }
  }
  return y;
}

}  // namespace oq::exec::ref
