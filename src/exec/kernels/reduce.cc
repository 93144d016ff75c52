// Reductions (ReduceSum/Mean/Max/Min/Prod/L2/L1/SumSquare/LogSum/LogSumExp), ArgMax/ArgMin, TopK.
//
// Reduce: the shape is collapsed into alternating runs of kept and reduced dims (size-1 dims dropped), then
// each reduced run is removed by one pass over a [outer, R, inner] view whose inner loop is contiguous.
// Sums accumulate in double (floats) or 64-bit integers; the final value is converted to the input dtype.
// Float32 reduced over the innermost axes only (the last axis, (2, 3) of NCHW, ...) takes the row path instead
// (reduce_rows_float): whole contiguous rows through the vectorised passes of row_stats.h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/broadcast.h"
#include "exec/kernels/elementwise.h"
#include "exec/kernels/reduce.h"
#include "exec/kernels/row_stats.h"
#include "exec/kernels/vmath.h"

namespace oq::exec {

namespace {

constexpr int64_t kGrain = 16384;

const Tensor& need(const ir::Node& node, const std::vector<const Tensor*>& in, size_t i) {
  if (i >= in.size() || !in[i]) kfail(node, "missing input {}", i);
  return *in[i];
}

int64_t norm_axis(const ir::Node& node, int64_t a, int rank) {
  if (a < -rank || a >= rank) kfail(node, "axis {} out of range for rank {}", a, rank);
  return a < 0 ? a + rank : a;
}

template <typename T>
using AccOf = std::conditional_t<std::is_floating_point_v<T>, double,
                                 std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

// One pass: y[o, i] = comb over r of pre(x[o, r, i]), starting from init.
template <typename In, typename Acc, typename Pre, typename Comb>
void reduce_pass(const In* x, Acc* y, int64_t O, int64_t R, int64_t I, Acc init, Pre pre, Comb comb) {
  const int64_t total = O * I;
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(R, 1));
  parallel_for(total, grain, [&](int64_t b, int64_t e) {
    if (I == 1) {
      for (int64_t o = b; o < e; ++o) {
        const In* p = x + o * R;
        Acc a = init;
        for (int64_t r = 0; r < R; ++r) a = comb(a, pre(p[r]));
        y[o] = a;
      }
      return;
    }
    for (int64_t f = b; f < e;) {  // segment [f, f + n) lies inside one o
      const int64_t o = f / I, i0 = f % I;
      const int64_t n = std::min(e - f, I - i0);
      Acc* yy = y + f;
      std::fill(yy, yy + n, init);
      for (int64_t r = 0; r < R; ++r) {
        const In* p = x + (o * R + r) * I + i0;
        for (int64_t i = 0; i < n; ++i) yy[i] = comb(yy[i], pre(p[i]));
      }
      f += n;
    }
  });
}

template <typename T>
T max_nan(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return (b > a || std::isnan(b)) ? b : a;
  else return b > a ? b : a;
}
template <typename T>
T min_nan(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return (b < a || std::isnan(b)) ? b : a;
  else return b < a ? b : a;
}

struct Group {
  int64_t size;
  bool reduced;
};

// Runs alternate, so [R] or [K, R]: only the innermost axes are reduced.
bool innermost_only(const std::vector<Group>& g) { return (g.size() == 1 || g.size() == 2) && g.back().reduced; }

template <typename T, typename Acc>
void reduce_typed(ReduceOp op, const T* x, const std::vector<Group>& groups, int64_t count, T* out) {
  // Float32 reduced over the innermost axes only: whole contiguous rows.
  if constexpr (std::is_same_v<T, float>) {
    if (innermost_only(groups) &&
        reduce_rows_float(op, x, groups.size() == 2 ? groups[0].size : 1, groups.back().size, out))
      return;
  }
  // Runs of the current (partially reduced) shape.
  std::vector<Group> g = groups;
  std::vector<Acc> buf, next;
  bool first = true;
  auto pass = [&](auto init, auto pre, auto comb) {
    using A = decltype(init);
    // Reduce the innermost remaining reduced run.
    int idx = -1;
    for (int k = static_cast<int>(g.size()) - 1; k >= 0; --k)
      if (g[k].reduced) { idx = k; break; }
    int64_t O = 1, I = 1;
    for (int k = 0; k < idx; ++k) O *= g[k].size;
    for (size_t k = idx + 1; k < g.size(); ++k) I *= g[k].size;
    next.assign(static_cast<size_t>(O * I), A{});
    if (first)
      reduce_pass<T, A>(x, next.data(), O, g[idx].size, I, init, pre, comb);
    else
      reduce_pass<A, A>(buf.data(), next.data(), O, g[idx].size, I, init, [](A v) { return v; }, comb);
    buf.swap(next);
    g.erase(g.begin() + idx);
    first = false;
  };
  auto has_reduced = [&] { return std::any_of(g.begin(), g.end(), [](const Group& q) { return q.reduced; }); };
  auto id = [](T v) { return static_cast<Acc>(v); };
  auto sum = [](Acc a, Acc b) { return wrap_add(a, b); };
  // Always at least one pass so `buf` holds the result (a run of size 1 when nothing is reduced).
  if (!has_reduced()) g.push_back({1, true});
  while (has_reduced()) {
    switch (op) {
      case ReduceOp::Sum: case ReduceOp::Mean: case ReduceOp::LogSum: pass(Acc(0), id, sum); break;
      case ReduceOp::LogSumExp:  // unshifted, exp in double; the kernel shifts by the max (log_sum_exp_shifted)
        if (first) pass(Acc(0), [](T v) { return static_cast<Acc>(std::exp(static_cast<double>(v))); }, sum);
        else pass(Acc(0), id, sum);
        break;
      case ReduceOp::Prod: pass(Acc(1), id, [](Acc a, Acc b) { return wrap_mul(a, b); }); break;
      case ReduceOp::L2: case ReduceOp::SumSquare:
        if (first) pass(Acc(0), [](T v) { return wrap_mul(static_cast<Acc>(v), static_cast<Acc>(v)); }, sum);
        else pass(Acc(0), id, sum);
        break;
      case ReduceOp::L1:
        if (first)
          pass(Acc(0), [](T v) {
            if constexpr (std::is_unsigned_v<T>) return static_cast<Acc>(v);
            else return static_cast<Acc>(v < T(0) ? wrap_sub(T(0), v) : v);
          }, sum);
        else pass(Acc(0), id, sum);
        break;
      case ReduceOp::Max: {
        T init = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                      : std::numeric_limits<T>::lowest();
        // Max/Min keep T (no accumulator widening needed); buf is reinterpreted through Acc -> T below.
        pass(Acc(init), id, [](Acc a, Acc b) { return max_nan(a, b); });
        break;
      }
      case ReduceOp::Min: {
        T init = std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity()
                                                      : std::numeric_limits<T>::max();
        pass(Acc(init), id, [](Acc a, Acc b) { return min_nan(a, b); });
        break;
      }
    }
  }
  const int64_t n = static_cast<int64_t>(buf.size());
  for (int64_t i = 0; i < n; ++i) {
    Acc v = buf[i];
    if (op == ReduceOp::Mean) {
      if constexpr (std::is_floating_point_v<Acc>) v = v / static_cast<Acc>(count);
      else v = count ? static_cast<Acc>(v / static_cast<Acc>(count)) : Acc(0);
    } else if (op == ReduceOp::LogSum || op == ReduceOp::LogSumExp) {
      v = static_cast<Acc>(std::log(static_cast<double>(v)));
    } else if (op == ReduceOp::L2) {
      if constexpr (std::is_floating_point_v<Acc>) v = std::sqrt(v);
      else v = static_cast<Acc>(std::sqrt(static_cast<double>(v)));
    }
    out[i] = static_cast<T>(v);
  }
}

// LogSumExp of one row as ORT computes it, max + log(sum(exp(x - max))) (no overflow for any finite x), with
// the exponentials from vmath (<= 1 ulp) summed in double; tmp holds n floats.
float log_sum_exp_row(const float* x, int64_t n, float* tmp) {
  const float m = rows::max(x, n);
  if (!std::isfinite(m)) return m;  // NaN; +inf; -inf: every element -inf (or n == 0), log(0)
  vmath::exp_shifted_sum(x, tmp, n, m);
  return static_cast<float>(static_cast<double>(m) + std::log(rows::sum(tmp, n)));
}

}  // namespace

bool reduce_rows_float(ReduceOp op, const float* x, int64_t rows, int64_t len, float* y) {
  if (op == ReduceOp::Prod || op == ReduceOp::LogSum) return false;
  const double n = static_cast<double>(len);
  parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(len, 1)), [&](int64_t r0, int64_t r1) {
    const float* p = x + r0 * len;
    const int64_t k = r1 - r0;
    if (op == ReduceOp::Max || op == ReduceOp::Min) {
      (op == ReduceOp::Max ? rows::max_rows : rows::min_rows)(p, k, len, y + r0);
      return;
    }
    std::vector<float> tmp(op == ReduceOp::LogSumExp ? static_cast<size_t>(len) : 0);
    std::vector<double> s(static_cast<size_t>(k));
    if (op == ReduceOp::Sum || op == ReduceOp::Mean) rows::sum_rows(p, k, len, s.data());
    else if (op == ReduceOp::L1) rows::sum_abs_rows(p, k, len, s.data());
    else if (op != ReduceOp::LogSumExp) rows::sum_sq_rows(p, k, len, s.data());
    for (int64_t r = 0; r < k; ++r) {
      if (op == ReduceOp::LogSumExp) y[r0 + r] = log_sum_exp_row(p + r * len, len, tmp.data());
      else if (op == ReduceOp::Mean) y[r0 + r] = static_cast<float>(s[r] / n);
      else if (op == ReduceOp::L2) y[r0 + r] = static_cast<float>(std::sqrt(s[r]));
      else y[r0 + r] = static_cast<float>(s[r]);  // Sum, SumSquare, L1
    }
  });
  return true;
}

namespace {

// ReduceLogSumExp off the row path, as ORT computes it: m = max, then m + log(sum(exp(x - m))) (summed in
// double); `keep` is x's shape with the reduced axes set to 1. A non-finite m (NaN, +-inf) shifts by 0, which
// gives NaN, +inf, or log(0) = -inf as the unshifted formula does.
template <typename T>
void log_sum_exp_shifted(const Tensor& x, const std::vector<Group>& groups, int64_t count, const Shape& keep,
                         T* out) {
  std::vector<T> m(static_cast<size_t>(shape_numel(keep)));
  reduce_typed<T, T>(ReduceOp::Max, x.data<T>(), groups, count, m.data());
  for (T& v : m) v = std::isfinite(v) ? v : T(0);
  Tensor z = Tensor::uninitialized(DType::Double, x.shape());
  const T* X = x.data<T>();
  double* Z = z.data<double>();
  BroadcastPlan plan({x.shape(), keep}, x.shape());
  const int64_t inner = plan.inner(), sm = plan.inner_stride(1);
  plan.for_rows(0, plan.rows(), [&](int64_t row, const int64_t* off) {
    for (int64_t i = 0; i < inner; ++i)
      Z[row * inner + i] = std::exp(static_cast<double>(X[off[0] + i]) - static_cast<double>(m[off[1] + i * sm]));
  });
  std::vector<double> sum(m.size());
  reduce_typed<double, double>(ReduceOp::Sum, Z, groups, count, sum.data());
  for (size_t i = 0; i < m.size(); ++i) out[i] = static_cast<T>(static_cast<double>(m[i]) + std::log(sum[i]));
}

class ReduceKernel : public Kernel {
 public:
  ReduceKernel(const ir::Node& n, ReduceOp op, int opset) : node_(n), op_(op) {
    axes_input_ = op == ReduceOp::Sum ? opset >= 13 : opset >= 18;
    keepdims_ = n.attr_int("keepdims", 1) != 0;
    noop_ = axes_input_ && n.attr_int("noop_with_empty_axes", 0) != 0;
    if (!axes_input_) attr_axes_ = n.attr_ints("axes");
    // ReduceLogSum-28 / ReduceLogSumExp-28 drop the integer types (int32, int64, uint32, uint64) of version 18.
    float_only_ = opset >= 28 && (op == ReduceOp::LogSum || op == ReduceOp::LogSumExp);
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const Tensor& x = need(node_, in, 0);
    if (float_only_ && !is_float(x.dtype()))
      kfail(node_, "unsupported type {} (float types only since opset 28)", dtype_name(x.dtype()));
    std::vector<int64_t> axes = attr_axes_;
    if (axes_input_ && in.size() > 1 && in[1]) {
      if (in[1]->dtype() != DType::Int64) kfail(node_, "axes input dtype {} is not INT64", dtype_name(in[1]->dtype()));
      axes.assign(in[1]->data<int64_t>(), in[1]->data<int64_t>() + in[1]->numel());
    }
    const int rank = x.rank();
    // No axes with noop_with_empty_axes: nothing is reduced, but the per-element part still applies
    // (ReduceSumSquare gives x², ReduceL1 |x|, ReduceLogSum log x), as ONNX's reference and ORT compute it.
    std::vector<bool> red(rank, axes.empty() && !noop_);
    for (int64_t a : axes) red[norm_axis(node_, a, rank)] = true;
    Shape os;
    std::vector<Group> groups;
    int64_t count = 1;
    for (int d = 0; d < rank; ++d) {
      const int64_t s = x.dim(d);
      if (red[d]) count *= s;
      if (!red[d] || keepdims_) os.push_back(red[d] ? 1 : s);
      if (s == 1) continue;
      if (!groups.empty() && groups.back().reduced == red[d]) groups.back().size *= s;
      else groups.push_back({s, red[d]});
    }
    Shape keep = x.shape();
    for (int d = 0; d < rank; ++d)
      if (red[d]) keep[d] = 1;
    out[0] = compute(x, groups, count, os, keep);
  }

 private:
  Tensor compute(const Tensor& x, const std::vector<Group>& groups, int64_t count, const Shape& os,
                 const Shape& keep) {
    if (is_half(x.dtype())) return compute(x.cast(DType::Float), groups, count, os, keep).cast(x.dtype());
    const bool minmax = op_ == ReduceOp::Max || op_ == ReduceOp::Min;
    DType t = x.dtype();
    if (t == DType::Bool && minmax) t = DType::UInt8;  // same bytes, same order for 0/1
    const bool logs = op_ == ReduceOp::LogSum || op_ == ReduceOp::LogSumExp;
    if ((x.dtype() == DType::Bool && !minmax) || (logs && !is_float(x.dtype())))
      kfail(node_, "unsupported dtype {}", dtype_name(x.dtype()));
    Tensor y = Tensor::uninitialized(x.dtype(), os);  // reduce_typed writes one value per output element
    if (op_ == ReduceOp::LogSumExp && !(x.dtype() == DType::Float && innermost_only(groups))) {
      dispatch_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        log_sum_exp_shifted<T>(x, groups, count, keep, y.data<T>());
      });
      return y;
    }
    bool ok = dispatch_numeric(t, [&](auto tag) {
      using T = decltype(tag);
      if (minmax) reduce_typed<T, T>(op_, static_cast<const T*>(x.raw()), groups, count, static_cast<T*>(y.raw()));
      else reduce_typed<T, AccOf<T>>(op_, x.data<T>(), groups, count, y.data<T>());
    });
    if (!ok) kfail(node_, "unsupported dtype {}", dtype_name(x.dtype()));
    return y;
  }

  ir::Node node_;
  ReduceOp op_;
  bool axes_input_ = false, keepdims_ = true, noop_ = false, float_only_ = false;
  std::vector<int64_t> attr_axes_;
};

template <ReduceOp op>
std::unique_ptr<Kernel> make_reduce(const KernelInit& k) {
  return std::make_unique<ReduceKernel>(k.node, op, k.opset);
}

// ArgMax / ArgMin over a [O, R, I] view; INT64 output [O, I] (with a kept 1 when keepdims).
class ArgKernel : public Kernel {
 public:
  ArgKernel(const ir::Node& n, bool is_max) : node_(n), is_max_(is_max) {
    axis_ = n.attr_int("axis", 0);
    keepdims_ = n.attr_int("keepdims", 1) != 0;
    last_ = n.attr_int("select_last_index", 0) != 0;
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const Tensor& x0 = need(node_, in, 0);
    Tensor x = is_half(x0.dtype()) ? x0.cast(DType::Float) : x0;
    const int rank = x.rank();
    const int64_t ax = norm_axis(node_, axis_, rank);
    int64_t O = 1, I = 1, R = x.dim(static_cast<int>(ax));
    for (int d = 0; d < ax; ++d) O *= x.dim(d);
    for (int d = static_cast<int>(ax) + 1; d < rank; ++d) I *= x.dim(d);
    if (R == 0) kfail(node_, "cannot take the arg of an empty axis {}", ax);
    Shape os;
    for (int d = 0; d < rank; ++d)
      if (d != ax) os.push_back(x.dim(d));
      else if (keepdims_) os.push_back(1);
    Tensor y = Tensor::uninitialized(DType::Int64, os);
    int64_t* py = y.data<int64_t>();
    bool ok = dispatch_numeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = x.data<T>();
      const bool mx = is_max_, last = last_;
      parallel_for(O, std::max<int64_t>(1, kGrain / std::max<int64_t>(R * I, 1)), [&](int64_t b, int64_t e) {
        std::vector<T> best(static_cast<size_t>(I));
        for (int64_t o = b; o < e; ++o) {
          const T* p = px + o * R * I;
          int64_t* q = py + o * I;
          std::copy(p, p + I, best.begin());
          std::fill(q, q + I, 0);
          for (int64_t r = 1; r < R; ++r) {
            const T* pr = p + r * I;
            for (int64_t i = 0; i < I; ++i) {
              T v = pr[i];
              bool better = mx ? v > best[i] : v < best[i];
              if (better || (last && v == best[i])) {
                best[i] = v;
                q[i] = r;
              }
            }
          }
        }
      });
    });
    if (!ok) kfail(node_, "unsupported dtype {}", dtype_name(x0.dtype()));
    out[0] = y;
  }

 private:
  ir::Node node_;
  bool is_max_;
  int64_t axis_;
  bool keepdims_, last_;
};

template <bool is_max>
std::unique_ptr<Kernel> make_arg(const KernelInit& k) {
  return std::make_unique<ArgKernel>(k.node, is_max);
}

// Strict "a ranks before b" for TopK: by value (NaN counts as the largest), ties by lower index.
template <typename T>
bool greater_val(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  return a > b;
}

class TopKKernel : public Kernel {
 public:
  TopKKernel(const ir::Node& n, int opset) : node_(n), k_input_(opset >= 10) {
    axis_ = n.attr_int("axis", -1);
    largest_ = n.attr_int("largest", 1) != 0;
    if (!k_input_) {
      if (!n.has_attr("k")) kfail(n, "missing attribute 'k'");
      k_attr_ = n.attr_int("k", 0);
    }
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const Tensor& x0 = need(node_, in, 0);
    int64_t k = k_attr_;
    if (k_input_) {
      const Tensor& kt = need(node_, in, 1);
      if (kt.numel() != 1 || !is_integer(kt.dtype()))
        kfail(node_, "K must be a 1-element integer tensor, got {} {}", dtype_name(kt.dtype()), shape_str(kt.shape()));
      k = kt.to_int64s()[0];
    }
    Tensor x = is_half(x0.dtype()) ? x0.cast(DType::Float) : x0;
    const int rank = x.rank();
    if (rank == 0) kfail(node_, "input must have rank >= 1");
    const int ax = static_cast<int>(norm_axis(node_, axis_, rank));
    const int64_t R = x.dim(ax);
    if (k < 0 || k > R) kfail(node_, "k={} out of range for axis {} of size {}", k, ax, R);
    int64_t O = 1, I = 1;
    for (int d = 0; d < ax; ++d) O *= x.dim(d);
    for (int d = ax + 1; d < rank; ++d) I *= x.dim(d);
    Shape os = x.shape();
    os[ax] = k;
    Tensor vals = Tensor::uninitialized(x.dtype(), os), idx = Tensor::uninitialized(DType::Int64, os);
    bool ok = dispatch_numeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = x.data<T>();
      T* pv = vals.data<T>();
      int64_t* pi = idx.data<int64_t>();
      const bool largest = largest_;
      parallel_for(O * I, std::max<int64_t>(1, kGrain / std::max<int64_t>(R, 1)), [&](int64_t b, int64_t e) {
        std::vector<int64_t> order(static_cast<size_t>(R));
        for (int64_t s = b; s < e; ++s) {
          const int64_t o = s / I, i = s % I;
          const T* p = px + o * R * I + i;
          std::iota(order.begin(), order.end(), int64_t{0});
          auto cmp = [&](int64_t u, int64_t v) {
            T a = p[u * I], c = p[v * I];
            if (largest ? greater_val(a, c) : greater_val(c, a)) return true;
            if (largest ? greater_val(c, a) : greater_val(a, c)) return false;
            return u < v;
          };
          std::partial_sort(order.begin(), order.begin() + k, order.end(), cmp);
          for (int64_t j = 0; j < k; ++j) {
            const int64_t off = (o * k + j) * I + i;
            pv[off] = p[order[j] * I];
            pi[off] = order[j];
          }
        }
      });
    });
    if (!ok) kfail(node_, "unsupported dtype {}", dtype_name(x0.dtype()));
    out[0] = is_half(x0.dtype()) ? vals.cast(x0.dtype()) : vals;
    if (out.size() > 1) out[1] = idx;
  }

 private:
  ir::Node node_;
  bool k_input_;
  int64_t axis_ = -1, k_attr_ = 0;
  bool largest_ = true;
};

std::unique_ptr<Kernel> make_topk(const KernelInit& k) { return std::make_unique<TopKKernel>(k.node, k.opset); }

}  // namespace

OQ_REGISTER_KERNEL(ReduceSum, 1, kMaxOpset, make_reduce<ReduceOp::Sum>);
OQ_REGISTER_KERNEL(ReduceMean, 1, kMaxOpset, make_reduce<ReduceOp::Mean>);
OQ_REGISTER_KERNEL(ReduceMax, 1, kMaxOpset, make_reduce<ReduceOp::Max>);
OQ_REGISTER_KERNEL(ReduceMin, 1, kMaxOpset, make_reduce<ReduceOp::Min>);
OQ_REGISTER_KERNEL(ReduceProd, 1, kMaxOpset, make_reduce<ReduceOp::Prod>);
OQ_REGISTER_KERNEL(ReduceL2, 1, kMaxOpset, make_reduce<ReduceOp::L2>);
OQ_REGISTER_KERNEL(ReduceL1, 1, kMaxOpset, make_reduce<ReduceOp::L1>);
OQ_REGISTER_KERNEL(ReduceSumSquare, 1, kMaxOpset, make_reduce<ReduceOp::SumSquare>);
OQ_REGISTER_KERNEL(ReduceLogSum, 1, kMaxOpset, make_reduce<ReduceOp::LogSum>);
OQ_REGISTER_KERNEL(ReduceLogSumExp, 1, kMaxOpset, make_reduce<ReduceOp::LogSumExp>);
OQ_REGISTER_KERNEL(ArgMax, 1, kMaxOpset, make_arg<true>);
OQ_REGISTER_KERNEL(ArgMin, 1, kMaxOpset, make_arg<false>);
OQ_REGISTER_KERNEL(TopK, 1, kMaxOpset, make_topk);

}  // namespace oq::exec
