// Conv kernel tests' shared helpers: a case (shapes and attributes), its geometry computed independently of the
// kernel's, random inputs and the node, the naive reference with a fused activation, one case run against it.
#pragma once
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "compute_kernel_test_util.h"
#include "exec/kernels/compute_ref.h"

namespace oq::ctest {

namespace ref = exec::ref;

struct ConvCase {
  Shape x;
  int64_t m, group;
  Shape k, s, d;
  std::vector<int64_t> pads;  // begin..., end... (NOTSET)
  std::string auto_pad;
  bool bias;
};

// Pads and output size computed independently of the kernel's geometry code.
inline ref::ConvGeom conv_geom(const ConvCase& c, Shape& out) {
  size_t n = c.k.size();
  ref::ConvGeom g{c.group, c.k, c.s.empty() ? Shape(n, 1) : c.s, c.d.empty() ? Shape(n, 1) : c.d, Shape(n, 0),
                  Shape(n, 0)};
  out = {c.x[0], c.m};
  for (size_t i = 0; i < n; ++i) {
    int64_t in = c.x[2 + i], ek = (c.k[i] - 1) * g.dilations[i] + 1, o;
    if (c.auto_pad == "SAME_UPPER" || c.auto_pad == "SAME_LOWER") {
      o = (in + g.strides[i] - 1) / g.strides[i];
      int64_t total = std::max<int64_t>(0, (o - 1) * g.strides[i] + ek - in);
      g.pads_begin[i] = c.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pads_end[i] = total - g.pads_begin[i];
    } else {
      if (!c.pads.empty() && c.auto_pad.empty()) g.pads_begin[i] = c.pads[i], g.pads_end[i] = c.pads[n + i];
      o = (in + g.pads_begin[i] + g.pads_end[i] - ek) / g.strides[i] + 1;
    }
    out.push_back(o);
  }
  return g;
}

// Random X, W (and B) for a case, and its Conv node.
struct ConvInputs {
  Shape ws;
  Tensor x, w, b;
  ir::Node n;
};
inline ConvInputs conv_inputs(const ConvCase& c, std::mt19937& rng) {
  ConvInputs r;
  r.ws = {c.m, c.x[1] / c.group};
  r.ws.insert(r.ws.end(), c.k.begin(), c.k.end());
  r.x = rnd(c.x, rng), r.w = rnd(r.ws, rng), r.b = c.bias ? rnd({c.m}, rng) : Tensor();
  r.n = node("Conv", c.bias ? 3 : 2);
  if (c.group != 1) r.n.set_attr_int("group", c.group);
  if (!c.s.empty()) r.n.set_attr_ints("strides", c.s);
  if (!c.d.empty()) r.n.set_attr_ints("dilations", c.d);
  if (!c.pads.empty()) r.n.set_attr_ints("pads", c.pads);
  if (!c.auto_pad.empty()) r.n.set_attr_string("auto_pad", c.auto_pad);
  return r;
}

// A fused activation (the executor's Conv + Relu / LeakyRelu / Clip fusion) as node attributes.
struct Act {
  const char* kind;
  float alpha, beta;
};

// Marks `n` with the fused activation `a` and returns the naive reference of the fused node: the convolution, then
// the activation as ONNX defines it (Relu max(0, x), LeakyRelu, Clip min(max(x, lo), hi)); NaN stays NaN.
inline Tensor fused_reference(const ConvCase& c, const Act& a, ir::Node& n, const Tensor& x, const Tensor& w,
                       const Tensor& b) {
  n.set_attr_string("_oq_fused_activation", a.kind);
  n.set_attr_float("_oq_fused_activation_alpha", a.alpha);
  n.set_attr_float("_oq_fused_activation_beta", a.beta);
  Shape os;
  ref::ConvGeom g = conv_geom(c, os);
  Tensor want(DType::Float, os);
  ref::conv(x, w, c.bias ? &b : nullptr, g, want);
  const std::string kind = a.kind;
  for (float& v : want.span<float>()) {
    if (std::isnan(v)) continue;
    if (kind == "Relu") v = v < 0.f ? 0.f : v;
    if (kind == "LeakyRelu") v = v < 0.f ? a.alpha * v : v;  // 0 * -inf = NaN
    if (kind == "Clip") v = std::min(std::max(v, a.alpha), a.beta);
  }
  return want;
}

inline void check_conv_case(const ConvCase& c, std::mt19937& rng, int threads) {
  set_num_threads(threads);
  auto [ws, x, w, b, n] = conv_inputs(c, rng);
  if (rng() % 2) n.set_attr_ints("kernel_shape", c.k);
  Shape os;
  ref::ConvGeom g = conv_geom(c, os);
  Tensor want(DType::Float, os);
  ref::conv(x, w, c.bias ? &b : nullptr, g, want);
  std::string what = fmt::format("conv x{} w{} group {} threads {}", shape_str(c.x), shape_str(ws), c.group, threads);
  expect_close(run(n, 11, {x, w, b})[0], want, 1e-4, what);
  expect_close(run(n, 7, {x, w, b})[0], want, 1e-4, what + " opset 7");
}

}  // namespace oq::ctest
