// Einsum's two paths (einsum.cc), exposed so that tests and benchmarks can run either on the same inputs.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::exec {

enum class EinsumPath {
  Loop,  // the direct strided sum: every equation and type (the naive reference)
  Gemm,  // two float32 operands contracted by a batched sgemm
};

// The path the Einsum kernel of `node` takes on these inputs (errors as the kernel's).
EinsumPath einsum_path(const ir::Node& node, const std::vector<const Tensor*>& in);

// The Einsum of `node` on `in` by `path`, whatever the kernel would choose; Gemm throws where it does not
// apply (see einsum_gemm_applies in einsum.cc), but ignores the kernel's "too small to be worth it" limit.
Tensor einsum_by(EinsumPath path, const ir::Node& node, const std::vector<const Tensor*>& in);

}  // namespace oq::exec
