// ConvTranspose kernel tests' shared helper: a case (shapes and attributes), its geometry computed independently
// of the kernel's, run against the naive reference, returning the path the kernel took.
#pragma once
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <string>

#include "compute_kernel_test_util.h"
#include "exec/kernels/compute_ref.h"
#include "log_capture_test_util.h"

namespace oq::ctest {

struct DeconvCase {
  Shape x;
  int64_t m_per_group, group;
  Shape k, s, d, pads, out_pad, out_shape;
  std::string auto_pad;
  bool bias;
};

// Runs case c on `threads` threads against the naive reference (independent geometry) and returns the path
// the kernel's debug line names ("oneDNN jit:avx512_core", "GEMM + col2im (conv_transpose_gemm.cc)"...).
inline std::string check_deconv_case(const DeconvCase& c, std::mt19937& rng, int threads) {
  set_num_threads(threads);
  size_t n = c.k.size();
  Shape ws{c.x[1], c.m_per_group};
  ws.insert(ws.end(), c.k.begin(), c.k.end());
  int64_t M = c.m_per_group * c.group;
  Tensor x = rnd(c.x, rng), w = rnd(ws, rng), b = c.bias ? rnd({M}, rng) : Tensor();
  ir::Node nd = node("ConvTranspose", c.bias ? 3 : 2);
  if (c.group != 1) nd.set_attr_int("group", c.group);
  if (!c.s.empty()) nd.set_attr_ints("strides", c.s);
  if (!c.d.empty()) nd.set_attr_ints("dilations", c.d);
  if (!c.pads.empty()) nd.set_attr_ints("pads", c.pads);
  if (!c.out_pad.empty()) nd.set_attr_ints("output_padding", c.out_pad);
  if (!c.out_shape.empty()) nd.set_attr_ints("output_shape", c.out_shape);
  if (!c.auto_pad.empty()) nd.set_attr_string("auto_pad", c.auto_pad);
  // Independent geometry: explicit pads/output_padding, or SAME (out = in * stride).
  exec::ref::ConvGeom g{c.group, c.k, c.s.empty() ? Shape(n, 1) : c.s, c.d.empty() ? Shape(n, 1) : c.d, Shape(n, 0),
                  Shape(n, 0)};
  Shape os{c.x[0], M};
  for (size_t i = 0; i < n; ++i) {
    int64_t in = c.x[2 + i], ek = (c.k[i] - 1) * g.dilations[i] + 1, op = c.out_pad.empty() ? 0 : c.out_pad[i];
    int64_t full = g.strides[i] * (in - 1) + ek, o;
    if (!c.auto_pad.empty()) {
      o = in * g.strides[i];
      int64_t total = full + op - o;
      g.pads_begin[i] = c.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
    } else if (!c.out_shape.empty()) {
      o = c.out_shape[i];
      g.pads_begin[i] = std::max<int64_t>(0, full + op - o) / 2;
    } else {
      g.pads_begin[i] = c.pads.empty() ? 0 : c.pads[i];
      o = full + op - g.pads_begin[i] - (c.pads.empty() ? 0 : c.pads[n + i]);
    }
    g.pads_end[i] = full - g.pads_begin[i] - o;
    os.push_back(o);
  }
  Tensor want(DType::Float, os);
  exec::ref::conv_transpose(x, w, c.bias ? &b : nullptr, g, want);
  std::string what = fmt::format("convT x{} w{} group {} threads {}", shape_str(c.x), shape_str(ws), c.group, threads);
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::debug);
  test_util::LogCapture log;
  expect_close(run(nd, 11, {x, w, b})[0], want, 1e-4, what);
  spdlog::set_level(level);
  const std::string text = log.text();
  const size_t line = text.find("[debug] ConvTranspose '");
  if (line == std::string::npos) return "";
  const std::string l = text.substr(line, text.find('\n', line) - line);
  return l.substr(l.rfind(": ") + 2);
}

}  // namespace oq::ctest
