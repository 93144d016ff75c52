// Multidirectional (numpy-style) broadcasting shared by the element-wise kernels.
//
//   Shape out;
//   if (!broadcast_shapes({&a.shape(), &b.shape()}, out)) kfail(node, ...);
//   BroadcastPlan p({a.shape(), b.shape()}, out);
//   p.for_rows(0, p.rows(), [&](int64_t row, const int64_t* off) {
//     // output elements [row * p.inner(), (row + 1) * p.inner()) read input k from off[k] on,
//     // stepping by p.inner_stride(k) (1, or 0 when input k is broadcast along the inner run).
//   });
//
// The plan drops size-1 output dims and merges adjacent dims along which every input is either
// broadcast on both or on neither, so same-shape operands become one contiguous run, a scalar operand
// becomes stride 0, and channel broadcasting ([N,C,H,W] with [C,1,1]) becomes rows of length H*W with
// a constant per-row value. Inner runs are contiguous, so loops over them vectorise.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace oq::exec {

// Broadcast shape of all `shapes`; false if some pair of dims is neither equal nor 1.
bool broadcast_shapes(const std::vector<const Shape*>& shapes, Shape& out);

class BroadcastPlan {
 public:
  // `out` must be the broadcast shape of `inputs` (broadcast_shapes).
  BroadcastPlan(const std::vector<Shape>& inputs, const Shape& out);

  int64_t numel() const { return numel_; }
  int64_t inner() const { return inner_; }  // length of one contiguous output run
  int64_t rows() const { return rows_; }    // numel() / inner() (0 when numel() is 0)
  int64_t inner_stride(size_t k) const { return inner_stride_[k]; }
  size_t num_inputs() const { return inner_stride_.size(); }

  // Element offsets, one per input, of the first element of output row `row`.
  void row_offsets(int64_t row, int64_t* off) const;

  // Calls f(row, off) for rows [rb, re) where off[k] is input k's offset at the start of the row.
  template <typename F>
  void for_rows(int64_t rb, int64_t re, F&& f) const {
    if (rb >= re) return;
    const size_t n = inner_stride_.size();
    const int nd = static_cast<int>(outer_dims_.size());
    std::vector<int64_t> off(n, 0), idx(static_cast<size_t>(nd), 0);
    // Unravel rb into the outer odometer.
    int64_t r = rb;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = r % outer_dims_[d];
      r /= outer_dims_[d];
    }
    for (size_t k = 0; k < n; ++k) {
      for (int d = 0; d < nd; ++d) off[k] += idx[d] * outer_strides_[k * nd + d];
    }
    for (int64_t row = rb; row < re; ++row) {
      f(row, static_cast<const int64_t*>(off.data()));
      // Advance the odometer.
      for (int d = nd - 1; d >= 0; --d) {
        if (++idx[d] < outer_dims_[d]) {
          for (size_t k = 0; k < n; ++k) off[k] += outer_strides_[k * nd + d];
          break;
        }
        for (size_t k = 0; k < n; ++k) off[k] -= (outer_dims_[d] - 1) * outer_strides_[k * nd + d];
        idx[d] = 0;
      }
    }
  }

 private:
  int64_t numel_ = 0, inner_ = 1, rows_ = 0;
  std::vector<int64_t> inner_stride_;   // per input: 1 or 0
  std::vector<int64_t> outer_dims_;     // collapsed dims except the innermost
  std::vector<int64_t> outer_strides_;  // [input][outer dim] element strides (0 = broadcast)
};

// Output offset -> per-input offset by full unravelling (the naive reference the plan is tested against).
std::vector<int64_t> naive_broadcast_offsets(const Shape& in, const Shape& out);

}  // namespace oq::exec
