// Helpers of the graph-pass tests (test_passes.cc, test_fusions.cc): hand-built IR models, random tensors,
// running a graph exactly as a pass left it and comparing outputs.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "exec/session.h"
#include "ir/passes/passes.h"
#include "kernel_test_util.h"

namespace oq::test_passes {

inline ir::Node mk(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
            const std::string& name = "") {
  ir::Node n;
  n.op_type = op;
  n.name = name.empty() ? op + "_" + out.at(0) : name;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

inline ir::ValueInfo vi(const std::string& name, std::vector<int64_t> shape, DType dt = DType::Float) {
  ir::ValueInfo v;
  v.name = name;
  v.dtype = dt;
  std::vector<ir::Dim> dims;
  for (int64_t d : shape) dims.push_back(d >= 0 ? ir::Dim{d, ""} : ir::Dim{-1, "N"});
  v.shape = dims;
  return v;
}

// A float value of unknown shape.
inline ir::ValueInfo vi_any(const std::string& name) { return ktest::float_output(name); }

inline ir::Model model(int opset, int64_t ir_version = 7) {
  ir::Model m;
  m.ir_version = ir_version;
  m.opsets = {{"", opset}};
  return m;
}

inline Tensor rnd(const Shape& s, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t(DType::Float, s);
  for (float& v : t.span<float>()) v = d(rng);
  return t;
}

inline Tensor f32(Shape s, std::vector<float> v) { return Tensor::from_vector(DType::Float, std::move(s), v); }
inline Tensor i64(Shape s, std::vector<int64_t> v) { return Tensor::from_vector(DType::Int64, std::move(s), v); }

inline std::vector<Tensor> run(const ir::Model& m, const std::map<std::string, Tensor>& feeds) {
  exec::Session s(m, exec::SessionOptions{false});  // the graph exactly as the pass left it
  return s.run(feeds);
}

// Outputs of `a` and `b` agree within rel * max(1, |ref|max).
inline void expect_same(const std::vector<Tensor>& a, const std::vector<Tensor>& b, double rel = 1e-5) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    ASSERT_EQ(a[k].shape(), b[k].shape()) << "output " << k;
    auto x = a[k].to_doubles(), y = b[k].to_doubles();
    double scale = 1.0;
    for (double v : x) scale = std::max(scale, std::fabs(v));
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], y[i], rel * scale) << "output " << k << " at " << i;
  }
}

// The values of initializer `n` (a test failure, and none, when it is missing).
inline std::vector<double> init_values(const ir::Model& m, const std::string& n) {
  const ir::Initializer* i = m.graph.find_initializer(n);
  EXPECT_NE(i, nullptr) << n;
  return i ? i->tensor.to_doubles() : std::vector<double>{};
}

inline size_t count_op(const ir::Model& m, const std::string& op) {
  size_t c = 0;
  for (const auto& n : m.graph.nodes) c += n.op_type == op;
  return c;
}

inline const ir::Node* find_op(const ir::Model& m, const std::string& op) {
  for (const auto& n : m.graph.nodes)
    if (n.op_type == op) return &n;
  return nullptr;
}

inline void add_bn(ir::Model& m, const std::string& x, const std::string& y, int64_t c, uint32_t seed,
            const std::string& prefix = "bn") {
  m.graph.add_initializer(prefix + "_s", rnd({c}, seed, 0.5f, 1.5f));
  m.graph.add_initializer(prefix + "_b", rnd({c}, seed + 1));
  m.graph.add_initializer(prefix + "_m", rnd({c}, seed + 2));
  m.graph.add_initializer(prefix + "_v", rnd({c}, seed + 3, 0.2f, 2.f));
  auto n = mk("BatchNormalization", {x, prefix + "_s", prefix + "_b", prefix + "_m", prefix + "_v"}, {y});
  n.set_attr_float("epsilon", 1e-3f);
  m.graph.nodes.push_back(n);
}

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace oq::test_passes
