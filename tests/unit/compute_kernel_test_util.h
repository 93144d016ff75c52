// Helpers for the compute-kernel tests (Conv, Gemm, pooling, normalization): build a node, run its
// registered kernel, compare with a naive reference.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "exec/kernel.h"
#include "ir/graph.h"
#include "kernel_test_util.h"

namespace oq::ctest {

// The shared kernel-test helpers (kernel_test_util.h) under this file's names.
inline ir::Node node(const std::string& op, size_t n_in, size_t n_out = 1) { return ktest::make_node(op, n_in, n_out); }
inline std::vector<Tensor> run(const ir::Node& n, int opset, const std::vector<Tensor>& in) {
  return ktest::run_kernel(n, opset, in);
}
using ktest::ft;

inline Tensor rnd(const Shape& s, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t(DType::Float, s);
  std::uniform_real_distribution<float> d(lo, hi);
  for (float& v : t.span<float>()) v = d(rng);
  return t;
}

inline std::vector<float> iota(int64_t n, float start = 0.f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return v;
}

// Same shape and |got - want| <= tol * max(1, |want|) everywhere.
inline void expect_close(const Tensor& got, const Tensor& want, double tol = 1e-4, const std::string& what = "") {
  ASSERT_EQ(shape_str(got.shape()), shape_str(want.shape())) << what;
  std::vector<double> g = got.to_doubles(), w = want.to_doubles();
  int bad = 0;
  for (size_t i = 0; i < w.size() && bad < 5; ++i)
    if (!(std::fabs(g[i] - w[i]) <= tol * std::max(1.0, std::fabs(w[i])))) {
      ADD_FAILURE() << what << " at " << i << ": got " << g[i] << " want " << w[i];
      ++bad;
    }
}

inline void expect_values(const Tensor& got, Shape shape, const std::vector<double>& want, double tol = 1e-5) {
  ASSERT_EQ(shape_str(got.shape()), shape_str(shape));
  std::vector<double> g = got.to_doubles();
  ASSERT_EQ(g.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(g[i], want[i], tol * std::max(1.0, std::fabs(want[i]))) << "at " << i;
}

// Restores the thread count when a test is done.
struct ThreadGuard {
  int saved = num_threads();
  ~ThreadGuard() { set_num_threads(saved); }
};

}  // namespace oq::ctest
