#include "search/ranking.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "quant/annotate.h"

namespace oq::search {

std::vector<RankedTensor> rank_weights(const ir::Graph& g, const std::vector<size_t>& exec_order,
                                       const std::function<bool(const ir::Node&)>& is_quantized) {
  std::vector<RankedTensor> r;
  std::set<std::string> seen;
  for (size_t pos = 0; pos < exec_order.size(); ++pos) {
    const ir::Node& n = g.nodes[exec_order[pos]];
    if (n.op_type != "Conv" && n.op_type != "ConvTranspose" && n.op_type != "Gemm" && n.op_type != "MatMul") continue;
    if (!is_quantized(n)) continue;
    const std::string& w = n.input(1);
    const auto* init = g.find_initializer(w);
    if (!init || (init->tensor.dtype() != DType::Float && init->tensor.dtype() != DType::Float16) ||
        init->tensor.rank() < 1 || !seen.insert(w).second) continue;
    RankedTensor t;
    t.name = w;
    t.node = n.name;
    t.op_type = n.op_type;
    t.weights = init->tensor.numel();
    int rank = init->tensor.rank();
    int axis = quant::default_weight_axis(n);
    // No such axis (a 1-D MatMul weight): per tensor, one scale for all its weights, as the quantizer does.
    if (axis >= rank) axis = -1;
    t.axis = axis;
    int64_t ch = axis >= 0 ? init->tensor.dim(axis) : 1;
    t.per_scale = ch > 0 ? t.weights / ch : t.weights;
    t.exec_index = pos;
    r.push_back(std::move(t));
  }
  std::stable_sort(r.begin(), r.end(), [](const RankedTensor& a, const RankedTensor& b) {
    if (a.weights != b.weights) return a.weights > b.weights;
    if (a.per_scale != b.per_scale) return a.per_scale < b.per_scale;
    return a.exec_index > b.exec_index;
  });
  return r;
}

std::vector<int64_t> bisection_steps(int64_t n) {
  std::vector<int64_t> steps;
  if (n <= 0) return steps;
  auto rhe = [](double v) { return static_cast<int64_t>(std::nearbyint(v)); };  // half to even
  int64_t count = rhe(std::log2(static_cast<double>(n)));
  int64_t sum = 0;
  for (int64_t i = 0; i < count; ++i) {
    int64_t s = rhe(static_cast<double>(n) / std::ldexp(1.0, static_cast<int>(i + 1)));
    steps.push_back(s);
    sum += s;
  }
  while (sum < n) {
    steps.push_back(1);
    sum += 1;
  }
  return steps;
}

}  // namespace oq::search
