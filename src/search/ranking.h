// Static ranking of weight tensors for the 4-bit search (ST's order): by number of weights, decreasing;
// ties by weights per output channel (per scale), increasing; remaining ties by execution order, later first.
// The lowest-ranked (last) tensors go to 8 bits first.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace oq::search {

struct RankedTensor {
  std::string name;      // weight initializer
  std::string node;      // consuming node
  std::string op_type;   // Conv, ConvTranspose, Gemm, MatMul
  int64_t weights = 0;   // elements
  int64_t per_scale = 0; // weights per output channel
  int axis = 0;          // output-channel axis (per-channel quantization axis); -1: per tensor
  size_t exec_index = 0; // position of the node in execution order
};

// Weight tensors of Conv (depthwise included), ConvTranspose, Gemm and MatMul with a constant float weight,
// among the nodes `is_quantized` accepts, in ranking order.
std::vector<RankedTensor> rank_weights(const ir::Graph& g, const std::vector<size_t>& exec_order,
                                       const std::function<bool(const ir::Node&)>& is_quantized);

// Bisection steps for N tensors: round_half_even(N / 2^(i+1)) for i < round_half_even(log2 N), then 1s
// until the steps sum to at least N (N = 28 -> 14 7 4 2 1; N = 5 -> 2 1 1 1).
std::vector<int64_t> bisection_steps(int64_t n);

}  // namespace oq::search
