// Helpers for kernel unit tests: build a node, find its kernel through the registry, run it.
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

namespace oq::ktest {

// Graph node `op` reading `in`, writing `out`, named op_out.
inline ir::Node graph_node(const std::string& op, std::vector<std::string> in, std::string out) {
  ir::Node n;
  n.op_type = op;
  n.name = op + "_" + out;
  n.inputs = std::move(in);
  n.outputs = {std::move(out)};
  return n;
}

// Float graph input [N, c, h, w] with a symbolic batch N, and a float graph output of unknown shape.
inline ir::ValueInfo nchw_input(const std::string& name, int64_t c, int64_t h, int64_t w) {
  ir::ValueInfo x;
  x.name = name;
  x.dtype = DType::Float;
  x.shape = std::vector<ir::Dim>{{-1, "N"}, {c, ""}, {h, ""}, {w, ""}};
  return x;
}
inline ir::ValueInfo float_output(const std::string& name) {
  ir::ValueInfo v;
  v.name = name;
  v.dtype = DType::Float;
  return v;
}

// Node with inputs named in0.. (an empty Tensor passed to run_kernel marks an omitted input) and outputs.
inline ir::Node make_node(const std::string& op, size_t n_in, size_t n_out = 1) {
  ir::Node n;
  n.name = "t_" + op;
  n.op_type = op;
  for (size_t i = 0; i < n_in; ++i) n.inputs.push_back("in" + std::to_string(i));
  for (size_t i = 0; i < n_out; ++i) n.outputs.push_back("out" + std::to_string(i));
  return n;
}

// Runs `node` at `opset`; inputs given as Tensors, empty ones passed as null.
inline std::vector<Tensor> run_kernel(const ir::Node& node, int opset, const std::vector<Tensor>& in) {
  exec::KernelFactory f = exec::find_kernel(node.op_type, opset);
  if (!f) fail(ErrorKind::Model, "no kernel for {} at opset {}", node.op_type, opset);
  std::unique_ptr<exec::Kernel> k = f(exec::KernelInit{node, opset});
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : in) ptrs.push_back(t.empty() ? nullptr : &t);
  std::vector<Tensor> out(node.outputs.size());
  k->run(ptrs, out);
  return out;
}

// The error message of running `node`, "" when it does not throw.
inline std::string kernel_error(const ir::Node& node, int opset, const std::vector<Tensor>& in) {
  try {
    run_kernel(node, opset, in);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline Tensor ft(Shape s, std::vector<float> v) { return Tensor::from_vector(DType::Float, std::move(s), v); }
inline Tensor it64(Shape s, std::vector<int64_t> v) { return Tensor::from_vector(DType::Int64, std::move(s), v); }

inline Tensor random_float(const Shape& s, std::mt19937& rng, float lo = -3.f, float hi = 3.f) {
  Tensor t(DType::Float, s);
  std::uniform_real_distribution<float> d(lo, hi);
  for (float& v : t.span<float>()) v = d(rng);
  return t;
}

inline void expect_values(const Tensor& t, const std::vector<double>& want, double tol = 1e-6) {
  std::vector<double> got = t.to_doubles();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "at " << i;
      continue;
    }
    if (got[i] == want[i]) continue;  // also equal infinities
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::fabs(want[i]))) << "at " << i;
  }
}

// Element-wise closeness of two tensors of the same shape (relative tolerance), dtypes may differ.
inline void expect_close(const Tensor& got, const Tensor& want, double tol = 1e-5) {
  ASSERT_EQ(shape_str(got.shape()), shape_str(want.shape()));
  expect_values(got, want.to_doubles(), tol);
}

// Restores the thread count at scope exit.
struct ThreadGuard {
  int saved = num_threads();
  ~ThreadGuard() { set_num_threads(saved); }
};

// Nodes of type `op` in m's main graph.
inline size_t count_ops(const ir::Model& m, const std::string& op) {
  size_t c = 0;
  for (const auto& n : m.graph.nodes) c += n.op_type == op;
  return c;
}

}  // namespace oq::ktest
