// Gemm (opsets 6-21; C is broadcast whatever the old `broadcast` attribute says) and MatMul (1-21) on
// oneDNN's sgemm (row-major, threaded with the shared OpenMP pool). Batched MatMul folds the batch into M when B has no batch; otherwise it runs one sgemm per
// broadcast batch pair (spread over threads when there are enough of them). sgemm_raw and sgemm_batched
// (sgemm.h) are shared with Einsum's contraction path.
#include <algorithm>

#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/compute_ref.h"
#include "exec/kernels/dnnl_common.h"
#include "exec/kernels/fused_activation.h"
#include "exec/kernels/sgemm.h"

namespace oq::exec {

dnnl_status_t sgemm_raw(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        const float* B, float beta, float* C) {
  if (M == 0 || N == 0) return dnnl_success;
  if (K == 0) {  // oneDNN rejects K == 0; the product is empty
    for (int64_t i = 0; i < M * N; ++i) C[i] = beta == 0.0f ? 0.0f : beta * C[i];
    return dnnl_success;
  }
  return dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, ta ? M : K, B, tb ? K : N, beta, C, N);
}

dnnl_status_t sgemm_batched(bool ta, bool tb, int64_t nbatch, int64_t M, int64_t N, int64_t K, const float* A,
                            int64_t sa, const float* B, int64_t sb, float* C) {
  auto one = [&](int64_t t) { return sgemm_raw(ta, tb, M, N, K, 1.0f, A + t * sa, B + t * sb, 0.0f, C + t * M * N); };
  if (nbatch > 1 && nbatch >= num_threads() && M * N * K < (int64_t{1} << 22)) {
    std::vector<int> status(static_cast<size_t>(nbatch), dnnl_success);
    parallel_for(nbatch, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) status[t] = one(t);
    });
    for (int st : status)
      if (st != dnnl_success) return static_cast<dnnl_status_t>(st);
    return dnnl_success;
  }
  for (int64_t t = 0; t < nbatch; ++t)
    if (dnnl_status_t st = one(t); st != dnnl_success) return st;
  return dnnl_success;
}

namespace {

void sgemm(const ir::Node& node, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           const float* B, float beta, float* C) {
  dnnl_status_t st = sgemm_raw(ta, tb, M, N, K, alpha, A, B, beta, C);
  if (st != dnnl_success) kfail(node, "oneDNN sgemm failed (status {}) for M={} N={} K={}", static_cast<int>(st), M, N, K);
}

class GemmKernel final : public Kernel {
 public:
  explicit GemmKernel(const KernelInit& init)
      : node_(init.node), opset_(init.opset), fq_(FusedFakeQuant::from_node(init.node)) {
    alpha_ = node_.attr_float("alpha", 1.0f);
    beta_ = node_.attr_float("beta", 1.0f);
    ta_ = node_.attr_int("transA", 0) != 0;
    tb_ = node_.attr_int("transB", 0) != 0;
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    compute(in, out);
    fq_.apply(out[0].data<float>(), out[0].numel());  // a fused QuantizeLinear -> DequantizeLinear pair
  }

 private:
  void compute(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    if (in.size() < 2 || !in[0] || !in[1]) kfail(node_, "needs inputs A and B");
    const Tensor& a = *in[0];
    const Tensor& b = *in[1];
    const Tensor* c = in.size() > 2 ? in[2] : nullptr;
    if (!c && opset_ < 11) kfail(node_, "input C is required before opset 11");
    for (const Tensor* t : {&a, &b, c})
      if (t && t->dtype() != DType::Float) kfail(node_, "only float32 is supported, got {}", dtype_name(t->dtype()));
    if (a.rank() != 2 || b.rank() != 2)
      kfail(node_, "A {} and B {} must be 2-D", shape_str(a.shape()), shape_str(b.shape()));
    const int64_t M = ta_ ? a.dim(1) : a.dim(0), K = ta_ ? a.dim(0) : a.dim(1);
    const int64_t Kb = tb_ ? b.dim(1) : b.dim(0), N = tb_ ? b.dim(0) : b.dim(1);
    if (K != Kb) kfail(node_, "inner dimensions differ: A {} B {} (transA {}, transB {})", shape_str(a.shape()),
                       shape_str(b.shape()), ta_, tb_);
    out[0] = Tensor::uninitialized(DType::Float, {M, N});  // C copied in below, or sgemm with beta 0
    float* Y = out[0].data<float>();
    float beta = 0.0f;
    if (c && beta_ != 0.0f && c->numel() > 0) {
      // Unidirectional broadcast of C to [M, N].
      int64_t cr = c->rank() >= 2 ? c->dim(-2) : 1, cc = c->rank() >= 1 ? c->dim(-1) : 1;
      if (c->rank() > 2 || (cr != 1 && cr != M) || (cc != 1 && cc != N))
        kfail(node_, "C shape {} does not broadcast to [{},{}]", shape_str(c->shape()), M, N);
      const float* C = c->data<float>();
      parallel_for(M, 64, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0; i < b1; ++i) {
          const float* row = C + (cr == 1 ? 0 : i) * cc;
          if (cc == 1) std::fill(Y + i * N, Y + (i + 1) * N, row[0]);
          else std::copy(row, row + N, Y + i * N);
        }
      });
      beta = beta_;
    }
    sgemm(node_, ta_, tb_, M, N, K, alpha_, a.data<float>(), b.data<float>(), beta, Y);
  }

  ir::Node node_;
  int opset_;
  FusedFakeQuant fq_;
  float alpha_ = 1, beta_ = 1;
  bool ta_ = false, tb_ = false;
};

class MatMulKernel final : public Kernel {
 public:
  explicit MatMulKernel(const KernelInit& init) : node_(init.node), fq_(FusedFakeQuant::from_node(init.node)) {}

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    compute(in, out);
    fq_.apply(out[0].data<float>(), out[0].numel());  // a fused QuantizeLinear -> DequantizeLinear pair
  }

 private:
  void compute(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    if (in.size() < 2 || !in[0] || !in[1]) kfail(node_, "needs inputs A and B");
    const Tensor& a = *in[0];
    const Tensor& b = *in[1];
    if (a.dtype() != DType::Float || b.dtype() != DType::Float)
      kfail(node_, "only float32 is supported (A {}, B {})", dtype_name(a.dtype()), dtype_name(b.dtype()));
    if (a.rank() == 0 || b.rank() == 0) kfail(node_, "operands must not be scalars");
    Shape as = a.shape(), bs = b.shape();
    const bool a1 = as.size() == 1, b1 = bs.size() == 1;
    if (a1) as.insert(as.begin(), 1);
    if (b1) bs.push_back(1);
    const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
    if (bs[bs.size() - 2] != K)
      kfail(node_, "inner dimensions differ: A {} B {}", shape_str(a.shape()), shape_str(b.shape()));
    const size_t br = std::max(as.size(), bs.size()) - 2;
    Shape ab(br, 1), bb(br, 1), ob(br);
    std::copy(as.begin(), as.end() - 2, ab.begin() + (br - (as.size() - 2)));
    std::copy(bs.begin(), bs.end() - 2, bb.begin() + (br - (bs.size() - 2)));
    for (size_t i = 0; i < br; ++i) {
      if (ab[i] != bb[i] && ab[i] != 1 && bb[i] != 1)
        kfail(node_, "batch dimensions of A {} and B {} do not broadcast", shape_str(a.shape()), shape_str(b.shape()));
      ob[i] = ab[i] == 1 ? bb[i] : ab[i];
    }
    Shape os = ob;
    if (!a1) os.push_back(M);
    if (!b1) os.push_back(N);
    out[0] = Tensor::uninitialized(DType::Float, os);  // every batch written by an sgemm with beta 0
    float* Y = out[0].data<float>();
    const float* A = a.data<float>();
    const float* B = b.data<float>();
    const int64_t nbatch = shape_numel(ob);
    const bool b_single = std::all_of(bb.begin(), bb.end(), [](int64_t d) { return d == 1; });
    const bool a_full = ab == ob;
    if (b_single && a_full) {  // [..., M, K] @ [K, N]: one GEMM with the batch folded into M
      sgemm(node_, false, false, nbatch * M, N, K, 1.0f, A, B, 0.0f, Y);
      return;
    }
    // Offsets of each output batch in A and B (broadcast dims of size 1 stay at 0).
    std::vector<int64_t> aoff(nbatch), boff(nbatch);
    for (int64_t t = 0; t < nbatch; ++t) {
      int64_t rem = t, ao = 0, bo = 0, astride = 1, bstride = 1;
      for (int i = static_cast<int>(br) - 1; i >= 0; --i) {
        int64_t idx = rem % ob[i];
        rem /= ob[i];
        ao += (ab[i] == 1 ? 0 : idx) * astride;
        bo += (bb[i] == 1 ? 0 : idx) * bstride;
        astride *= ab[i];
        bstride *= bb[i];
      }
      aoff[t] = ao * M * K;
      boff[t] = bo * K * N;
    }
    auto one = [&](int64_t t) {
      return sgemm_raw(false, false, M, N, K, 1.0f, A + aoff[t], B + boff[t], 0.0f, Y + t * M * N);
    };
    if (nbatch >= num_threads() && M * N * K < (int64_t{1} << 22)) {
      std::vector<int> status(static_cast<size_t>(nbatch), dnnl_success);
      parallel_for(nbatch, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) status[t] = one(t);
      });
      for (int st : status)
        if (st != dnnl_success) kfail(node_, "oneDNN sgemm failed (status {}) for M={} N={} K={}", st, M, N, K);
    } else {
      for (int64_t t = 0; t < nbatch; ++t) sgemm(node_, false, false, M, N, K, 1.0f, A + aoff[t], B + boff[t], 0.0f, Y + t * M * N);
    }
  }

  ir::Node node_;
  FusedFakeQuant fq_;
};

std::unique_ptr<Kernel> make_gemm(const KernelInit& init) { return std::make_unique<GemmKernel>(init); }
std::unique_ptr<Kernel> make_matmul(const KernelInit& init) { return std::make_unique<MatMulKernel>(init); }

}  // namespace

OQ_REGISTER_KERNEL(Gemm, 6, kMaxOpset, make_gemm);
OQ_REGISTER_KERNEL(MatMul, 1, kMaxOpset, make_matmul);

}  // namespace oq::exec
