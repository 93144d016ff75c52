// The float32 paths of MeanVarianceNormalization and LpNormalization (declared in norm_extra.h, namespace fast).
// Same formulas as the naive references (ref::mean_variance_norm, ref::lp_norm): statistics in double, the
// output computed in double and rounded once; only the order of the additions differs (eight lanes per row,
// row sums combined per group), which moves the double statistics by ~n 2^-53 relative — the float results
// agree with the references to within an ulp (tests/unit/test_norm_fast.cc).
#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "exec/kernels/norm_extra.h"
#include "exec/kernels/row_stats.h"

namespace oq::exec::fast {
namespace {

constexpr int64_t kGrain = 16384;  // elements worth a thread

// x viewed as rows of the innermost run of equal kind (reduced or kept axes, size-1 axes dropped, neighbours
// of the same kind merged); key[r] is the flat index, among the kept positions, of row r's first element.
struct RowView {
  int64_t len = 1, rows = 0, groups = 1, count = 1;
  bool inner_reduced = true;
  std::vector<int64_t> key;
};

RowView row_view(const Shape& shape, const std::vector<int64_t>& axes) {
  const int rank = static_cast<int>(shape.size());
  std::vector<bool> red(rank, false);
  for (int64_t a : axes) red[a] = true;
  struct Run {
    int64_t size;
    bool reduced;
  };
  std::vector<Run> runs;
  RowView v;
  for (int d = 0; d < rank; ++d) {
    (red[d] ? v.count : v.groups) *= shape[d];
    if (shape[d] == 1) continue;
    if (!runs.empty() && runs.back().reduced == red[d]) runs.back().size *= shape[d];
    else runs.push_back({shape[d], red[d]});
  }
  if (runs.empty()) runs.push_back({1, true});
  v.len = runs.back().size;
  v.inner_reduced = runs.back().reduced;
  runs.pop_back();
  // Kept-index stride of each outer run (0 for reduced runs), then an odometer over them.
  std::vector<int64_t> stride(runs.size(), 0);
  int64_t s = v.inner_reduced ? 1 : v.len;
  for (size_t k = runs.size(); k-- > 0;)
    if (!runs[k].reduced) stride[k] = s, s *= runs[k].size;
  v.rows = shape_numel(shape) / v.len;
  v.key.resize(static_cast<size_t>(v.rows));
  std::vector<int64_t> idx(runs.size(), 0);
  int64_t key = 0;
  for (int64_t r = 0; r < v.rows; ++r) {
    v.key[r] = key;
    for (size_t k = runs.size(); k-- > 0;) {
      key += stride[k];
      if (++idx[k] < runs[k].size) break;
      key -= stride[k] * runs[k].size;
      idx[k] = 0;
    }
  }
  return v;
}

// Per group: sum over the rows of `v` of fn_row(row, key) (reduced inner run: one double per row, rows in
// parallel) or add_row(acc, row, key) adding the row into acc[key, key + len) (kept inner run: serial).
template <typename RowFn, typename AddFn>
std::vector<double> group_sums(const RowView& v, const float* x, RowFn fn_row, AddFn add_row) {
  std::vector<double> acc(static_cast<size_t>(v.groups), 0.0);
  if (v.inner_reduced) {
    std::vector<double> per_row(static_cast<size_t>(v.rows));
    parallel_for(v.rows, std::max<int64_t>(1, kGrain / v.len), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) per_row[r] = fn_row(x + r * v.len, v.key[r]);
    });
    for (int64_t r = 0; r < v.rows; ++r) acc[v.key[r]] += per_row[r];
  } else {
    for (int64_t r = 0; r < v.rows; ++r) add_row(acc.data(), x + r * v.len, v.key[r]);
  }
  return acc;
}

}  // namespace

Tensor mean_variance_norm(const Tensor& x, const std::vector<int64_t>& axes) {
  Tensor y = Tensor::uninitialized(DType::Float, x.shape());
  if (x.numel() == 0) return y;
  const RowView v = row_view(x.shape(), axes);
  const float* X = x.data<float>();
  float* Y = y.data<float>();
  const int64_t L = v.len;
  std::vector<double> mean = group_sums(
      v, X, [L](const float* p, int64_t) { return rows::sum(p, L); },
      [L](double* a, const float* p, int64_t k) { rows::add(a + k, p, L); });
  for (double& m : mean) m /= static_cast<double>(v.count);
  std::vector<double> inv = group_sums(
      v, X, [&](const float* p, int64_t k) { return rows::sum_sq_dev(p, L, mean[k]); },
      [&](double* a, const float* p, int64_t k) { rows::add_sq_dev(a + k, p, mean.data() + k, L); });
  for (double& s : inv) s = 1.0 / (std::sqrt(s / static_cast<double>(v.count)) + 1e-9);
  parallel_for(v.rows, std::max<int64_t>(1, kGrain / L), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t k = v.key[r];
      if (v.inner_reduced) rows::shift_scale(X + r * L, Y + r * L, L, mean[k], inv[k]);
      else rows::shift_scale_each(X + r * L, Y + r * L, L, mean.data() + k, inv.data() + k);
    }
  });
  return y;
}

Tensor lp_norm(const Tensor& x, int axis, int p) {
  Tensor y = Tensor::uninitialized(DType::Float, x.shape());
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  const int64_t len = x.dim(axis);
  if (x.numel() == 0) return y;
  const float* X = x.data<float>();
  float* Y = y.data<float>();
  auto inv_norm = [p](double s) {
    const double norm = p == 1 ? s : std::sqrt(s);
    return norm == 0 ? 0.0 : 1.0 / norm;
  };
  const int64_t blk = len * inner;
  parallel_for(outer, std::max<int64_t>(1, kGrain / blk), [&](int64_t o0, int64_t o1) {
    std::vector<double> acc(inner > 1 ? static_cast<size_t>(inner) : 0);
    for (int64_t o = o0; o < o1; ++o) {
      const float* xo = X + o * blk;
      float* yo = Y + o * blk;
      if (inner == 1) {
        rows::shift_scale(xo, yo, len, 0.0, inv_norm(p == 1 ? rows::sum_abs(xo, len) : rows::sum_sq(xo, len)));
        continue;
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t l = 0; l < len; ++l)
        (p == 1 ? rows::add_abs : rows::add_sq)(acc.data(), xo + l * inner, inner);
      for (double& s : acc) s = inv_norm(s);
      for (int64_t l = 0; l < len; ++l) rows::scale_each(xo + l * inner, yo + l * inner, inner, acc.data());
    }
  });
  return y;
}

}  // namespace oq::exec::fast
