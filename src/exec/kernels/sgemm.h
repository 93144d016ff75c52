// oneDNN's row-major sgemm as the Gemm/MatMul kernels call it (gemm.cc), shared with Einsum's contraction path.
#pragma once
#include <oneapi/dnnl/dnnl.h>

#include <cstdint>

namespace oq::exec {

// Row-major C = alpha * op(A) @ op(B) + beta * C; returns oneDNN's status (no throw: may run on a worker).
// K == 0 (which oneDNN rejects) gives beta * C.
dnnl_status_t sgemm_raw(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        const float* B, float beta, float* C);

// nbatch products C[t] = op(A[t]) @ op(B[t]) (beta 0), the operands of batch t at A + t*sa, B + t*sb,
// C + t*M*N, spread like MatMul's batches: one sgemm per thread when there are at least as many batches as
// threads and each product is small, otherwise one threaded sgemm after another. Returns the first failure.
dnnl_status_t sgemm_batched(bool ta, bool tb, int64_t nbatch, int64_t M, int64_t N, int64_t K, const float* A,
                            int64_t sa, const float* B, int64_t sb, float* C);

}  // namespace oq::exec
