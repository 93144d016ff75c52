// Naive references for reduce.cc: full index unravelling, double arithmetic, no threading.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "exec/kernels/reduce.h"

namespace oq::exec {

namespace {

// For every element of x (row-major), the flat index of its output element after removing `red` dims.
std::vector<int64_t> out_index(const Shape& s, const std::vector<bool>& red, int64_t& out_numel) {
  const int64_t n = shape_numel(s);
  const size_t rank = s.size();
  out_numel = 1;
  for (size_t d = 0; d < rank; ++d)
    if (!red[d]) out_numel *= s[d];
  std::vector<int64_t> r(static_cast<size_t>(n));
  std::vector<int64_t> idx(rank);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i;
    for (size_t d = rank; d-- > 0;) {
      idx[d] = rem % s[d];
      rem /= s[d];
    }
    int64_t o = 0;
    for (size_t d = 0; d < rank; ++d)
      if (!red[d]) o = o * s[d] + idx[d];
    r[static_cast<size_t>(i)] = o;
  }
  return r;
}

Shape reduced_shape(const Shape& s, const std::vector<bool>& red, bool keepdims) {
  Shape os;
  for (size_t d = 0; d < s.size(); ++d)
    if (!red[d]) os.push_back(s[d]);
    else if (keepdims) os.push_back(1);
  return os;
}

}  // namespace

Tensor naive_reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, bool keepdims) {
  const Shape& s = x.shape();
  std::vector<bool> red(s.size(), axes.empty());
  for (int64_t a : axes) red[static_cast<size_t>(a)] = true;
  int64_t on = 0;
  std::vector<int64_t> oi = out_index(s, red, on);
  std::vector<double> v = x.to_doubles();
  const double inf = std::numeric_limits<double>::infinity();
  double init = op == ReduceOp::Prod ? 1 : op == ReduceOp::Max ? -inf : op == ReduceOp::Min ? inf : 0;
  std::vector<double> acc(static_cast<size_t>(on), init);
  for (size_t i = 0; i < v.size(); ++i) {
    double& a = acc[static_cast<size_t>(oi[i])];
    double e = v[i];
    switch (op) {
      case ReduceOp::Sum: case ReduceOp::Mean: a += e; break;
      case ReduceOp::Prod: a *= e; break;
      case ReduceOp::Max: a = (std::isnan(e) || e > a) ? e : a; break;
      case ReduceOp::Min: a = (std::isnan(e) || e < a) ? e : a; break;
      case ReduceOp::L2: case ReduceOp::SumSquare: a += e * e; break;
      case ReduceOp::L1: a += std::fabs(e); break;
      case ReduceOp::LogSum: a += e; break;
      case ReduceOp::LogSumExp: a += std::exp(e); break;
    }
  }
  const double count = on ? static_cast<double>(v.size()) / static_cast<double>(on) : 0;
  for (double& a : acc) {
    if (op == ReduceOp::Mean) a = is_integer(x.dtype()) ? std::trunc(a / count) : a / count;
    if (op == ReduceOp::LogSum || op == ReduceOp::LogSumExp) a = std::log(a);
    if (op == ReduceOp::L2) a = is_integer(x.dtype()) ? std::trunc(std::sqrt(a)) : std::sqrt(a);
  }
  return Tensor::from_vector(DType::Double, reduced_shape(s, red, keepdims), acc).cast(x.dtype());
}

Tensor naive_arg_reduce(bool is_max, const Tensor& x, int64_t axis, bool keepdims, bool select_last) {
  const Shape& s = x.shape();
  std::vector<bool> red(s.size(), false);
  red[static_cast<size_t>(axis)] = true;
  int64_t on = 0;
  std::vector<int64_t> oi = out_index(s, red, on);
  std::vector<double> v = x.to_doubles();
  std::vector<double> best(static_cast<size_t>(on));
  std::vector<int64_t> arg(static_cast<size_t>(on), -1);
  // Position along the axis of flat element i.
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis) + 1; d < s.size(); ++d) inner *= s[d];
  for (size_t i = 0; i < v.size(); ++i) {
    const size_t o = static_cast<size_t>(oi[i]);
    const int64_t r = (static_cast<int64_t>(i) / inner) % s[static_cast<size_t>(axis)];
    bool take = arg[o] < 0 || (is_max ? v[i] > best[o] : v[i] < best[o]) || (select_last && v[i] == best[o]);
    if (take) {
      best[o] = v[i];
      arg[o] = r;
    }
  }
  return Tensor::from_vector(DType::Int64, reduced_shape(s, red, keepdims), arg);
}

void naive_topk(const Tensor& x, int64_t k, int64_t axis, bool largest, Tensor& values, Tensor& indices) {
  const Shape& s = x.shape();
  const size_t ax = static_cast<size_t>(axis);
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < ax; ++d) outer *= s[d];
  for (size_t d = ax + 1; d < s.size(); ++d) inner *= s[d];
  const int64_t R = s[ax];
  Shape os = s;
  os[ax] = k;
  std::vector<double> v = x.to_doubles();
  std::vector<double> ov(static_cast<size_t>(shape_numel(os)));
  std::vector<int64_t> oi(ov.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      std::vector<std::pair<double, int64_t>> slice;
      for (int64_t r = 0; r < R; ++r) slice.push_back({v[static_cast<size_t>((o * R + r) * inner + i)], r});
      std::stable_sort(slice.begin(), slice.end(), [&](const auto& a, const auto& b) {
        return largest ? a.first > b.first : a.first < b.first;
      });
      for (int64_t j = 0; j < k; ++j) {
        const size_t off = static_cast<size_t>((o * k + j) * inner + i);
        ov[off] = slice[static_cast<size_t>(j)].first;
        oi[off] = slice[static_cast<size_t>(j)].second;
      }
    }
  values = Tensor::from_vector(DType::Double, os, ov).cast(x.dtype());
  indices = Tensor::from_vector(DType::Int64, os, oi);
}

}  // namespace oq::exec
