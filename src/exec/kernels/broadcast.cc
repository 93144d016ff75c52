#include "exec/kernels/broadcast.h"

#include <algorithm>

namespace oq::exec {

bool broadcast_shapes(const std::vector<const Shape*>& shapes, Shape& out) {
  size_t rank = 0;
  for (const Shape* s : shapes) rank = std::max(rank, s->size());
  out.assign(rank, 1);
  for (const Shape* s : shapes) {
    size_t off = rank - s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      int64_t d = (*s)[i];
      int64_t& o = out[off + i];
      if (d == o) continue;
      if (o == 1) {
        o = d;
      } else if (d != 1) {
        return false;
      }
    }
  }
  return true;
}

BroadcastPlan::BroadcastPlan(const std::vector<Shape>& inputs, const Shape& out) {
  const size_t n = inputs.size();
  const size_t rank = out.size();
  numel_ = shape_numel(out);
  inner_stride_.assign(n, 1);
  // Right-align every input to the output rank.
  std::vector<std::vector<int64_t>> in(n, std::vector<int64_t>(rank, 1));
  for (size_t k = 0; k < n; ++k) {
    OQ_CHECK(inputs[k].size() <= rank, "broadcast input rank {} > output rank {}", inputs[k].size(), rank);
    size_t off = rank - inputs[k].size();
    for (size_t i = 0; i < inputs[k].size(); ++i) {
      OQ_CHECK(inputs[k][i] == out[off + i] || inputs[k][i] == 1, "shape {} does not broadcast to {}",
               shape_str(inputs[k]), shape_str(out));
      in[k][off + i] = inputs[k][i];
    }
  }
  // Collapse: drop size-1 output dims; merge neighbours with the same broadcast pattern.
  std::vector<int64_t> dims;
  std::vector<std::vector<bool>> bcast;  // per collapsed dim, per input
  for (size_t d = 0; d < rank; ++d) {
    if (out[d] == 1) continue;
    std::vector<bool> b(n);
    for (size_t k = 0; k < n; ++k) b[k] = in[k][d] != out[d];
    if (!dims.empty() && bcast.back() == b) {
      dims.back() *= out[d];
    } else {
      dims.push_back(out[d]);
      bcast.push_back(std::move(b));
    }
  }
  if (dims.empty()) {  // scalar output (or all dims 1)
    dims.push_back(1);
    bcast.push_back(std::vector<bool>(n, false));
  }
  const size_t nd = dims.size();
  // Element strides of each input along the collapsed dims (0 where broadcast).
  std::vector<std::vector<int64_t>> strides(n, std::vector<int64_t>(nd, 0));
  for (size_t k = 0; k < n; ++k) {
    int64_t s = 1;
    for (size_t d = nd; d-- > 0;) {
      if (bcast[d][k]) continue;
      strides[k][d] = s;
      s *= dims[d];
    }
  }
  inner_ = dims.back();
  for (size_t k = 0; k < n; ++k) inner_stride_[k] = strides[k][nd - 1] ? 1 : 0;
  outer_dims_.assign(dims.begin(), dims.end() - 1);
  outer_strides_.assign(n * outer_dims_.size(), 0);
  for (size_t k = 0; k < n; ++k)
    for (size_t d = 0; d + 1 < nd; ++d) outer_strides_[k * outer_dims_.size() + d] = strides[k][d];
  rows_ = numel_ == 0 ? 0 : numel_ / inner_;
}

void BroadcastPlan::row_offsets(int64_t row, int64_t* off) const {
  const size_t n = inner_stride_.size();
  const size_t nd = outer_dims_.size();
  for (size_t k = 0; k < n; ++k) off[k] = 0;
  for (size_t d = nd; d-- > 0;) {
    int64_t i = row % outer_dims_[d];
    row /= outer_dims_[d];
    for (size_t k = 0; k < n; ++k) off[k] += i * outer_strides_[k * nd + d];
  }
}

std::vector<int64_t> naive_broadcast_offsets(const Shape& in, const Shape& out) {
  const int64_t total = shape_numel(out);
  const size_t rank = out.size();
  const size_t shift = rank - in.size();
  std::vector<int64_t> r(static_cast<size_t>(total));
  std::vector<int64_t> idx(rank);
  for (int64_t i = 0; i < total; ++i) {
    int64_t rem = i;
    for (size_t d = rank; d-- > 0;) {
      idx[d] = rem % out[d];
      rem /= out[d];
    }
    int64_t o = 0;
    for (size_t d = 0; d < in.size(); ++d) {
      int64_t id = in[d] == 1 ? 0 : idx[shift + d];
      o = o * in[d] + id;
    }
    r[static_cast<size_t>(i)] = o;
  }
  return r;
}

}  // namespace oq::exec
