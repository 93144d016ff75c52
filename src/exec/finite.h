// Which values of a run are known to be finite, for the Conv kernels' fused Relu / Clip (exec/kernels/
// fused_activation.h): oneDNN applies them as post-ops computing max(x, lo) / min(x, hi) with x as the first
// operand of vmaxps / vminps, which returns the bound for a NaN x — Relu(NaN) = 0 where ONNX Runtime's Relu and
// Clip keep the NaN. A Conv's result can be NaN only when one of its inputs holds a NaN or an infinity (or when
// finite products overflow to both +inf and -inf, whose NaN depends on the summation order in any library), so
// the kernels keep the post-ops, free, when their inputs are known finite, and otherwise apply the activation
// themselves after a primitive without it (an extra pass over the output).
//
// Knowing it costs nothing per Conv: Plan::build marks the nodes whose every float input is finite whenever the
// run's feeds are (finite_when_feeds_are: initializers checked once, every node on the way in a list of ops that
// cannot turn finite values into NaN or infinities), and Plan::run checks the feeds once per run (a pass over the
// graph inputs only) and says so to the kernels of that run through FeedsFiniteScope. A kernel not so marked, or
// run without that assurance (outside a Session, in a control-flow body), checks its own inputs.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::exec {

// False when a float tensor (float, float16, bfloat16, double) holds a NaN or an infinity; true for other types.
bool all_finite(const Tensor& t);
bool all_finite(const float* p, int64_t n);

// For each node of `g` (by index): whether every float input it reads is finite whenever the graph inputs are.
// `order`: the nodes in execution order; `constant(name)`: an initializer's value, or null.
std::vector<char> finite_when_feeds_are(const ir::Graph& g, const std::vector<size_t>& order,
                                        const std::function<const Tensor*(const std::string&)>& constant);

// While alive, on this thread: `feeds_finite()` returns `finite` (false outside any scope). Plan::run holds one
// around its kernels.
class FeedsFiniteScope {
 public:
  explicit FeedsFiniteScope(bool finite);
  ~FeedsFiniteScope();
  FeedsFiniteScope(const FeedsFiniteScope&) = delete;
  FeedsFiniteScope& operator=(const FeedsFiniteScope&) = delete;

 private:
  bool prev_;
};
bool feeds_finite();

}  // namespace oq::exec
