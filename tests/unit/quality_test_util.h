// Helpers of the quality tests (test_quality.cc, test_bias_cle.cc): hand-built IR models, random tensors,
// running a model with the executor and comparing outputs.
#pragma once
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "exec/session.h"
#include "ir/graph.h"

namespace oq::testq {

inline ir::Node mk(const std::string& op, std::vector<std::string> in, std::vector<std::string> out) {
  ir::Node n;
  n.op_type = op;
  n.name = op + "_" + out.at(0);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

// Float value info; a negative dimension is the symbolic batch "N".
inline ir::ValueInfo vi(const std::string& name, std::vector<int64_t> shape) {
  ir::ValueInfo v;
  v.name = name;
  v.dtype = DType::Float;
  std::vector<ir::Dim> dims;
  for (int64_t d : shape) dims.push_back(d >= 0 ? ir::Dim{d, ""} : ir::Dim{-1, "N"});
  v.shape = dims;
  return v;
}

// Uniform [lo, hi) values; with `spread`, output channel c (axis 0) is additionally scaled by 10^u, u uniform
// in [-1.5, 1.5) (very different per-channel ranges).
inline Tensor rnd(const Shape& s, uint32_t seed, float lo = -1.f, float hi = 1.f, bool spread = false) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi), u(-1.5f, 1.5f);
  Tensor t(DType::Float, s);
  for (float& v : t.span<float>()) v = d(rng);
  if (spread) {
    const int64_t inner = t.numel() / s[0];
    for (int64_t c = 0; c < s[0]; ++c) {
      float f = std::pow(10.f, u(rng));
      for (int64_t i = 0; i < inner; ++i) t.data<float>()[c * inner + i] *= f;
    }
  }
  return t;
}

inline ir::Model base_model() {
  ir::Model m;
  m.ir_version = 8;
  m.opsets = {{"", 21}};
  return m;
}

// Runs a model whose only input is "x".
inline std::vector<Tensor> run(const ir::Model& m, const Tensor& x) {
  exec::Session s(m);
  return s.run({{"x", x}});
}

// max |a − b| / max |a| over all outputs.
inline double max_rel(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t j = 0; j < a[i].numel(); ++j) {
      num = std::max(num, static_cast<double>(std::fabs(a[i].data<float>()[j] - b[i].data<float>()[j])));
      den = std::max(den, static_cast<double>(std::fabs(a[i].data<float>()[j])));
    }
  return num / den;
}

}  // namespace oq::testq
