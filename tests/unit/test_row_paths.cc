// The vectorised row passes (exec/kernels/row_stats.h) and the kernel paths built on them, against naive
// references on random odd shapes (fixed seeds): rows:: functions vs plain long-double loops;
// MeanVarianceNormalization / LpNormalization's float paths (fast::) vs ref:: within one float ulp, and the
// kernels giving the fast path's bits; the Reduce row path (reduce_rows_float) vs naive_reduce, NaN and
// ReduceLogSumExp on large values; GlobalMaxPool; NonZero vs a full unravelling. onnxruntime comparisons at the
// shapes of the executor QA: tests/python/test_kernels_rows_ort.py.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "exec/kernels/norm_extra.h"
#include "exec/kernels/reduce.h"
#include "exec/kernels/row_stats.h"
#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;
using namespace oq::exec;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN(), kInf = std::numeric_limits<float>::infinity();

// Distance in float ulps (0 for two NaNs).
int64_t ulps(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : INT64_MAX;
  auto ordered = [](float f) {
    int32_t i;
    std::memcpy(&i, &f, sizeof i);
    return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) : static_cast<int64_t>(i);
  };
  return std::llabs(ordered(a) - ordered(b));
}

void expect_ulps(const Tensor& got, const Tensor& want, int64_t max_ulps, const std::string& what) {
  ASSERT_EQ(shape_str(got.shape()), shape_str(want.shape())) << what;
  const float *g = got.data<float>(), *w = want.data<float>();
  int64_t worst = 0, at = 0;
  for (int64_t i = 0; i < got.numel(); ++i)
    if (const int64_t u = ulps(g[i], w[i]); u > worst) worst = u, at = i;
  EXPECT_LE(worst, max_ulps) << what << ": at " << at << " got " << g[at] << " want " << w[at];
}

void expect_same_bits(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.numel(), b.numel()) << what;
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.numel() * sizeof(float)), 0) << what;
}

std::vector<float> random_row(std::mt19937& rng, int64_t n, float scale) {
  std::normal_distribution<float> d(0.5f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& e : v) e = d(rng);
  return v;
}

// body() with 1, then 2 threads (the thread count restored after).
template <typename F>
void with_1_and_2_threads(F body) {
  ThreadGuard guard;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    body(" threads " + std::to_string(threads));
  }
}

const std::vector<int64_t> kLengths = {0, 1, 2, 7, 8, 9, 15, 16, 17, 28, 31, 33, 98, 192, 1000, 4099};

}  // namespace

// ------------------------------------------------------------------------------------------ rows::
TEST(RowStats, SumsMatchLongDouble) {
  std::mt19937 rng(181);
  for (int64_t n : kLengths)
    for (float scale : {1.0f, 1e4f}) {
      const std::vector<float> x = random_row(rng, n, scale);
      long double s = 0, a = 0, q = 0;
      for (float v : x) s += v, a += std::fabs(v), q += static_cast<long double>(v) * v;
      const double m = n ? static_cast<double>(s / n) : 0.0;
      long double dev = 0;
      for (float v : x) dev += (v - static_cast<long double>(m)) * (v - static_cast<long double>(m));
      // Double lanes: within (n + 8) 2^-53 of the sum of magnitudes (the bound of recursive summation).
      const double eps = (n + 8) * 0x1p-53, tol = eps * static_cast<double>(a) + 1e-300;
      SCOPED_TRACE("n " + std::to_string(n));
      EXPECT_NEAR(rows::sum(x.data(), n), static_cast<double>(s), tol);
      EXPECT_NEAR(rows::sum_abs(x.data(), n), static_cast<double>(a), tol);
      EXPECT_NEAR(rows::sum_sq(x.data(), n), static_cast<double>(q), 2 * eps * static_cast<double>(q) + 1e-300);
      EXPECT_NEAR(rows::sum_sq_dev(x.data(), n, m), static_cast<double>(dev), 4 * eps * static_cast<double>(q) + 1e-300);
      // Batched rows: the same values row by row.
      if (n > 0 && n < 200) {
        const int64_t rows_n = 3;
        std::vector<float> many;
        for (int64_t r = 0; r < rows_n; ++r) many.insert(many.end(), x.begin(), x.end());
        std::vector<double> y(rows_n);
        rows::sum_rows(many.data(), rows_n, n, y.data());
        for (double v : y) EXPECT_EQ(v, rows::sum(x.data(), n));
      }
    }
}

TEST(RowStats, MaxMinPropagateNaN) {
  std::mt19937 rng(182);
  for (int64_t n : kLengths) {
    std::vector<float> x = random_row(rng, n, 3.0f);
    float mx = -kInf, mn = kInf;
    for (float v : x) mx = std::max(mx, v), mn = std::min(mn, v);
    SCOPED_TRACE("n " + std::to_string(n));
    EXPECT_EQ(rows::max(x.data(), n), mx);
    EXPECT_EQ(rows::min(x.data(), n), mn);
    if (n == 0) continue;
    for (int64_t at : {int64_t{0}, n / 2, n - 1}) {  // a NaN anywhere (vector body or tail) gives NaN
      std::vector<float> y = x;
      y[at] = kNaN;
      EXPECT_TRUE(std::isnan(rows::max(y.data(), n))) << at;
      EXPECT_TRUE(std::isnan(rows::min(y.data(), n))) << at;
      y[at] = kInf;  // infinities are values, not NaN
      EXPECT_EQ(rows::max(y.data(), n), kInf);
      y[at] = -kInf;
      EXPECT_EQ(rows::min(y.data(), n), -kInf);
    }
    std::vector<float> all(static_cast<size_t>(n), -kInf);
    EXPECT_EQ(rows::max(all.data(), n), -kInf);
  }
}

TEST(RowStats, ElementPassesMatchFormula) {
  std::mt19937 rng(183);
  for (int64_t n : kLengths) {
    const std::vector<float> x = random_row(rng, n, 2.0f), s = random_row(rng, n, 1.0f), b = random_row(rng, n, 1.0f);
    std::vector<double> m(static_cast<size_t>(n)), k(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) m[i] = 0.25 * i - 1, k[i] = 1.0 / (1 + i);
    std::vector<double> acc(static_cast<size_t>(n), 1.0), acc2 = acc, acc3 = acc, acc4 = acc;
    rows::add(acc.data(), x.data(), n);
    rows::add_sq(acc2.data(), x.data(), n);
    rows::add_abs(acc3.data(), x.data(), n);
    rows::add_sq_dev(acc4.data(), x.data(), m.data(), n);
    std::vector<float> y1(static_cast<size_t>(n)), y2 = y1, y3 = y1, y4 = y1, y5 = y1;
    rows::shift_scale(x.data(), y1.data(), n, 0.3, 1.7);
    rows::shift_scale_each(x.data(), y2.data(), n, m.data(), k.data());
    rows::scale_each(x.data(), y3.data(), n, k.data());
    rows::norm_affine(x.data(), y4.data(), n, 0.3f, 1.7f, s.data(), b.data());
    rows::norm_affine(x.data(), y5.data(), n, 0.3f, 1.7f, s.data(), nullptr);
    for (int64_t i = 0; i < n; ++i) {  // one rounding each, the same operations: equal bits
      const double v = x[i];
      EXPECT_EQ(acc[i], 1.0 + v);
      EXPECT_EQ(acc2[i], 1.0 + v * v);
      EXPECT_EQ(acc3[i], 1.0 + std::fabs(v));
      EXPECT_EQ(acc4[i], 1.0 + (v - m[i]) * (v - m[i]));
      EXPECT_EQ(y1[i], static_cast<float>((v - 0.3) * 1.7));
      EXPECT_EQ(y2[i], static_cast<float>((v - m[i]) * k[i]));
      EXPECT_EQ(y3[i], static_cast<float>(v * k[i]));
      EXPECT_EQ(y4[i], (x[i] - 0.3f) * 1.7f * s[i] + b[i]);
      EXPECT_EQ(y5[i], (x[i] - 0.3f) * 1.7f * s[i] + 0.0f);
    }
  }
}

// ------------------------------------------------------------------------------------------ MVN / LpNorm
TEST(NormFast, MeanVarianceNormMatchesReference) {
  std::mt19937 rng(184);
  ir::Node node = make_node("MeanVarianceNormalization", 1);
  with_1_and_2_threads([&](const std::string& threads) {
    for (const Shape& s : {Shape{3, 5, 7, 9}, Shape{2, 1, 5, 3}, Shape{1, 64, 7, 5}, Shape{2, 3, 1, 1}, Shape{4099},
                           Shape{5, 3001}})
      for (int mask = 1; mask < (1 << s.size()); ++mask) {
        std::vector<int64_t> axes;
        for (size_t d = 0; d < s.size(); ++d)
          if (mask & (1 << d)) axes.push_back(static_cast<int64_t>(d));
        Tensor x = random_float(s, rng, -3.f, 5.f);
        const std::string what = shape_str(s) + " mask " + std::to_string(mask) + threads;
        const Tensor got = fast::mean_variance_norm(x, axes);
        expect_ulps(got, ref::mean_variance_norm(x, axes), 1, what);
        node.set_attr_ints("axes", axes);
        expect_same_bits(run_kernel(node, 13, {x})[0], got, what + " (kernel takes the fast path)");
      }
  });
  // A constant slice gives 0 (the 1e-9 of the function body).
  Tensor c = ft({2, 3}, {4, 4, 4, 1, 2, 3});
  expect_values(fast::mean_variance_norm(c, {1}), {0, 0, 0, -std::sqrt(1.5), 0, std::sqrt(1.5)}, 1e-6);
}

TEST(NormFast, LpNormMatchesReference) {
  std::mt19937 rng(185);
  ir::Node node = make_node("LpNormalization", 1);
  with_1_and_2_threads([&](const std::string& threads) {
    for (const Shape& s : {Shape{3, 5, 7, 9}, Shape{8, 19, 33}, Shape{4099}, Shape{2, 1, 3001}})
      for (int axis = 0; axis < static_cast<int>(s.size()); ++axis)
        for (int p : {1, 2}) {
          Tensor x = random_float(s, rng, -3.f, 3.f);
          for (int64_t i = 0; i < s[axis] && x.numel() > 0; ++i) {  // a zero slice along the axis
            int64_t inner = 1;
            for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
            x.data<float>()[i * inner] = 0.0f;
          }
          const std::string what = shape_str(s) + " axis " + std::to_string(axis) + " p " + std::to_string(p) + threads;
          const Tensor got = fast::lp_norm(x, axis, p);
          expect_ulps(got, ref::lp_norm(x, axis, p), 1, what);
          node.set_attr_int("axis", axis);
          node.set_attr_int("p", p);
          expect_same_bits(run_kernel(node, 22, {x})[0], got, what + " (kernel takes the fast path)");
        }
  });
}

// ------------------------------------------------------------------------------------------ Reduce rows
TEST(ReduceRows, MatchesNaiveOnOddRows) {
  std::mt19937 rng(186);
  const std::vector<ReduceOp> ops = {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max,       ReduceOp::Min,
                                     ReduceOp::L2,  ReduceOp::L1,   ReduceOp::SumSquare, ReduceOp::LogSumExp};
  with_1_and_2_threads([&](const std::string& threads) {
    for (int64_t len : {1, 7, 17, 28, 98, 192, 4099})
      for (ReduceOp op : ops) {
        const int64_t rows_n = 37;
        Tensor x = random_float({rows_n, len}, rng, -4.f, 4.f);
        Tensor y(DType::Float, {rows_n});
        ASSERT_TRUE(reduce_rows_float(op, x.data<float>(), rows_n, len, y.data<float>()));
        SCOPED_TRACE("op " + std::to_string(static_cast<int>(op)) + " len " + std::to_string(len) + threads);
        expect_ulps(y, naive_reduce(op, x, {1}, false), op == ReduceOp::LogSumExp ? 2 : 1, "row path");
      }
  });
  Tensor x = ft({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor y(DType::Float, {2});
  EXPECT_FALSE(reduce_rows_float(ReduceOp::Prod, x.data<float>(), 2, 3, y.data<float>()));
  EXPECT_FALSE(reduce_rows_float(ReduceOp::LogSum, x.data<float>(), 2, 3, y.data<float>()));
}

// LogSumExp as max + log(sum(exp(x - max))): finite where exp(x) overflows (the general path's double exp
// overflows above 709; x ~ 1e30 is a float). Reference: the same shift, in long double.
TEST(ReduceRows, LogSumExpLargeValuesAndSpecials) {
  const std::vector<std::vector<float>> rows_in = {
      {1000.f, 999.f, 998.5f}, {1e30f, 1e30f, -1e30f}, {-1000.f, -1001.f}, {kNaN, 1.f}, {kInf, 1.f}, {-kInf, -kInf}};
  for (const auto& r : rows_in) {
    Tensor x = ft({1, static_cast<int64_t>(r.size())}, r);
    float got;
    ASSERT_TRUE(reduce_rows_float(ReduceOp::LogSumExp, x.data<float>(), 1, x.dim(1), &got));
    long double m = -INFINITY;
    bool nan = false;
    for (float v : r) m = std::max<long double>(m, v), nan = nan || std::isnan(v);
    long double s = 0;
    for (float v : r) s += std::exp(static_cast<long double>(v) - m);
    const float want = nan ? kNaN : std::isinf(m) ? static_cast<float>(m) : static_cast<float>(m + std::log(s));
    EXPECT_LE(ulps(got, want), 1) << r[0] << ": got " << got << " want " << want;
  }
  // Through the kernel: the last axis of [2, 3] takes the row path.
  ir::Node n = make_node("ReduceLogSumExp", 1);
  n.set_attr_ints("axes", {1});
  n.set_attr_int("keepdims", 0);
  Tensor y = run_kernel(n, 13, {ft({2, 3}, {1000.f, 999.f, 998.5f, 1e30f, 1e30f, -1e30f})})[0];
  EXPECT_NEAR(y.data<float>()[0], 1000.0 + std::log(1 + std::exp(-1.0) + std::exp(-1.5)), 1e-4);
  EXPECT_EQ(y.data<float>()[1], static_cast<float>(1e30 + std::log(2.0)));
}

// Off the row path (outer or middle axes, float64, float16) the kernel shifts by the max as well.
TEST(ReduceRows, LogSumExpShiftedOnOtherAxes) {
  std::mt19937 rng(190);
  Tensor x = random_float({3, 4, 5}, rng, -4.f, 4.f);
  for (float& v : x.span<float>()) v += 1000.f;  // exp overflows double beyond ~709
  x.data<float>()[7] = -kInf;
  for (const std::vector<int64_t>& axes : {std::vector<int64_t>{0}, {1}, {0, 2}, {0, 1}})
    for (DType dt : {DType::Float, DType::Double, DType::Float16}) {
      ir::Node n = make_node("ReduceLogSumExp", 1);
      n.set_attr_ints("axes", axes);
      const Tensor xin = x.cast(dt);
      const Tensor y = run_kernel(n, 13, {xin})[0];
      // Reference: long double, shifted, over the same axes of the (rounded) input.
      const Tensor mx = naive_reduce(ReduceOp::Max, xin, axes, true);
      const std::vector<double> xv = xin.to_doubles(), mv = mx.to_doubles();
      std::vector<long double> s(mv.size(), 0);
      for (size_t f = 0; f < xv.size(); ++f) {
        int64_t rem = static_cast<int64_t>(f), k = 0, stride = 1;
        for (int d = 2; d >= 0; --d) {
          const int64_t idx = rem % x.dim(d);
          rem /= x.dim(d);
          if (std::find(axes.begin(), axes.end(), d) == axes.end()) k += idx * stride;
          if (std::find(axes.begin(), axes.end(), d) == axes.end()) stride *= x.dim(d);
        }
        s[k] += std::exp(static_cast<long double>(xv[f]) - mv[k]);
      }
      std::vector<double> want(mv.size());
      for (size_t k = 0; k < mv.size(); ++k) want[k] = static_cast<double>(mv[k] + std::log(s[k]));
      SCOPED_TRACE(std::string(dtype_name(dt)) + " axes " + std::to_string(axes.size()) + "," + std::to_string(axes[0]));
      expect_values(y, want, dt == DType::Float16 ? 1e-3 : dt == DType::Float ? 2e-7 : 1e-14);
    }
}

TEST(ReduceRows, KernelNaNAndInnermostAxes) {
  // ReduceMax / ReduceMin over (2, 3) of NCHW and the last axis: the row path, NaN propagating as numpy.
  std::mt19937 rng(187);
  Tensor x = random_float({2, 3, 5, 7}, rng);
  x.data<float>()[40] = kNaN;  // plane (0, 1)
  for (const auto& [op, rop] : {std::pair{"ReduceMax", ReduceOp::Max}, std::pair{"ReduceMin", ReduceOp::Min}}) {
    ir::Node n = make_node(op, 1);
    n.set_attr_ints("axes", {2, 3});
    Tensor y = run_kernel(n, 13, {x})[0];
    EXPECT_EQ(shape_str(y.shape()), "[2,3,1,1]");
    expect_close(y, naive_reduce(rop, x, {2, 3}, true), 0);
    EXPECT_TRUE(std::isnan(y.data<float>()[1])) << op;
    EXPECT_FALSE(std::isnan(y.data<float>()[0])) << op;
  }
}

// ------------------------------------------------------------------------------------------ GlobalMaxPool
TEST(GlobalMaxPoolRows, MatchesLoopAndPropagatesNaN) {
  std::mt19937 rng(188);
  Tensor x = random_float({2, 5, 7, 9}, rng);
  x.data<float>()[63 * 3 + 5] = kNaN;  // plane 3
  Tensor y = run_kernel(make_node("GlobalMaxPool", 1), 13, {x})[0];
  EXPECT_EQ(shape_str(y.shape()), "[2,5,1,1]");
  for (int64_t c = 0; c < 10; ++c) {
    const float* p = x.data<float>() + c * 63;
    float m = -kInf;
    bool nan = false;
    for (int i = 0; i < 63; ++i) m = std::max(m, p[i]), nan = nan || std::isnan(p[i]);
    if (nan) EXPECT_TRUE(std::isnan(y.data<float>()[c])) << c;
    else EXPECT_EQ(y.data<float>()[c], m) << c;
  }
}

// ------------------------------------------------------------------------------------------ NonZero
TEST(NonZeroRows, MatchesUnravelOnRandomShapes) {
  std::mt19937 rng(189);
  for (const Shape& s : {Shape{1, 6, 8, 8}, Shape{3, 5, 7}, Shape{4099}, Shape{2, 0, 3}, Shape{5, 1, 1}})
    for (DType dt : {DType::Float, DType::Double, DType::Int64, DType::Int32, DType::UInt8, DType::Float16,
                     DType::Bool}) {
      Tensor xf(DType::Float, s);
      std::uniform_int_distribution<int> pick(0, 9);
      for (float& v : xf.span<float>()) {
        const int k = pick(rng);
        v = k < 6 ? 0.0f : k == 6 ? -0.0f : k == 7 ? kNaN : static_cast<float>(k);
      }
      if (dt != DType::Float && dt != DType::Double && dt != DType::Float16)
        for (float& v : xf.span<float>()) v = std::isnan(v) ? 1.0f : v;  // integers: no NaN
      Tensor x = xf.cast(dt);
      std::vector<int64_t> want_flat;
      const std::vector<double> v = xf.to_doubles();
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] != 0 || std::isnan(v[i])) want_flat.push_back(static_cast<int64_t>(i));
      Tensor y = run_kernel(make_node("NonZero", 1), 13, {x})[0];
      const int64_t n = static_cast<int64_t>(want_flat.size()), r = static_cast<int64_t>(s.size());
      ASSERT_EQ(shape_str(y.shape()), shape_str(Shape{r, n})) << dtype_name(dt);
      for (int64_t j = 0; j < n; ++j) {
        int64_t rem = want_flat[j];
        for (int64_t d = r - 1; d >= 0; --d) {
          EXPECT_EQ(y.data<int64_t>()[d * n + j], rem % s[d]) << dtype_name(dt) << " hit " << j << " dim " << d;
          rem /= s[d];
        }
      }
    }
}
