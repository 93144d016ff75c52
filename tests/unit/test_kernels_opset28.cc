// Kernels whose schema changed at opset 28 (docs/conformance.md "Opsets 22 to 28"): hand-computed values at 28,
// the old behaviour or refusal at 27, and the opset converter's ReduceLogSum refusal. onnxruntime / onnx.reference
// comparisons: tests/python/test_opset_28.py.
#include <cmath>
#include <limits>
#include <random>

#include "exec/kernels/bitwise.h"
#include "exec/kernels/elementwise.h"
#include "ir/passes/passes.h"
#include "kernel_test_util.h"
#include "passes_test_util.h"

using namespace oq;
using namespace oq::ktest;
using namespace oq::exec;

namespace {

template <typename T>
Tensor tv(DType t, Shape s, std::vector<T> v) {
  return Tensor::from_vector(t, std::move(s), v);
}
ir::Node shift(const char* dir) {
  ir::Node n = make_node("BitShift", 2);
  n.set_attr_string("direction", dir);
  return n;
}

}  // namespace

TEST(Opset28, KMaxOpsetAndRegistrations) {
  EXPECT_EQ(kMaxOpset, 28);
  for (const char* op : {"Mod", "BitShift", "SpaceToDepth", "DepthToSpace", "Celu", "Compress", "Unique", "Einsum",
                         "OneHot", "ReduceLogSum", "ReduceLogSumExp", "ReverseSequence", "Cast", "QuantizeLinear",
                         "DequantizeLinear", "If", "Loop", "Scan", "SwiGLU", "Conv", "Relu"})
    EXPECT_NE(find_kernel(op, 28), nullptr) << op;
  EXPECT_EQ(find_kernel("Relu", 29), nullptr);
  EXPECT_EQ(find_kernel("SwiGLU", 27), nullptr);
  EXPECT_EQ(find_kernel("OptionalHasElement", 28), nullptr);
}

TEST(Opset28, ModFloatFmod0) {
  const float inf = std::numeric_limits<float>::infinity();
  // x - floor(x / y) * y; a zero result has the divisor's sign; x = ±inf or y = 0 -> NaN; y = ±inf: x when the
  // signs agree (or x is zero, then zero with y's sign), else y.
  Tensor a = ft({10}, {-4, -3.5f, -0.0f, 0.0f, 3.5f, inf, 1, -1, 5, 7.25f});
  Tensor b = ft({10}, {2, 2, 3, -3, -2, 2, inf, inf, 0, -0.5f});
  Tensor y = run_kernel(make_node("Mod", 2), 28, {a, b})[0];
  const float* p = y.data<float>();
  const std::vector<float> want = {0, 0.5f, 0, -0.0f, -0.5f, NAN, 1, inf, NAN, -0.25f};
  const std::vector<bool> neg_zero = {false, false, false, true, false, false, false, false, false, false};
  for (int i = 0; i < 10; ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(p[i])) << i;
      continue;
    }
    EXPECT_EQ(p[i], want[i]) << i;
    if (p[i] == 0) {
      EXPECT_EQ(std::signbit(p[i]), neg_zero[i]) << i;
    }
  }
  // -4 % 2 (floor) is +0, with fmod = 1 (trunc) -0.
  EXPECT_FALSE(std::signbit(p[0]));
  ir::Node f = make_node("Mod", 2);
  f.set_attr_int("fmod", 1);
  Tensor yf = run_kernel(f, 28, {a, b})[0];
  EXPECT_TRUE(std::signbit(yf.data<float>()[0]));
  EXPECT_EQ(yf.data<float>()[1], -1.5f);
  EXPECT_EQ(yf.data<float>()[7], -1.0f);  // fmod(-1, inf) = -1
  // double and float16 the same way; the naive reference agrees on the finite, nonzero-divisor cases.
  Tensor yd = run_kernel(make_node("Mod", 2), 28, {a.cast(DType::Double), b.cast(DType::Double)})[0];
  EXPECT_EQ(yd.data<double>()[1], 0.5);
  EXPECT_TRUE(std::signbit(yd.data<double>()[3]));
  EXPECT_EQ(yd.data<double>()[7], static_cast<double>(inf));
  Tensor yh = run_kernel(make_node("Mod", 2), 28, {a.cast(DType::Float16), b.cast(DType::Float16)})[0];
  EXPECT_EQ(yh.dtype(), DType::Float16);
  EXPECT_EQ(yh.cast(DType::Float).data<float>()[9], -0.25f);
  Tensor n = naive_binary(BinOp::Mod, a, b);
  for (int i : {0, 1, 2, 3, 4, 6, 7, 9}) {
    EXPECT_EQ(n.data<float>()[i], p[i]) << i;
    EXPECT_EQ(std::signbit(n.data<float>()[i]), std::signbit(p[i])) << i;
  }
}

TEST(Opset28, ModIntegersBothModes) {
  Tensor a = tv<int32_t>(DType::Int32, {4}, {-7, 7, -7, 7}), b = tv<int32_t>(DType::Int32, {4}, {2, -2, -2, 3});
  EXPECT_EQ(run_kernel(make_node("Mod", 2), 28, {a, b})[0].to_int64s(), (std::vector<int64_t>{1, -1, -1, 1}));
  ir::Node f = make_node("Mod", 2);
  f.set_attr_int("fmod", 1);  // trunc: the dividend's sign (integers allowed with fmod = 1 from 28)
  EXPECT_EQ(run_kernel(f, 28, {a, b})[0].to_int64s(), (std::vector<int64_t>{-1, 1, -1, 1}));
}

TEST(Opset28, BitShiftSignedHandValues) {
  Tensor x = tv<int8_t>(DType::Int8, {8}, {-8, 8, -1, 5, -128, 127, -128, -7});
  Tensor s = tv<int8_t>(DType::Int8, {8}, {1, 1, 8, 9, -1, 7, 7, 2});
  // Right: arithmetic; a count >= 8 or negative gives -1 for a negative x, else 0.
  EXPECT_EQ(run_kernel(shift("RIGHT"), 28, {x, s})[0].to_int64s(),
            (std::vector<int64_t>{-4, 4, -1, 0, -1, 0, -1, -2}));
  // Left: bits past the sign bit dropped (127 << 7 = 0x3F80 -> 0x80 = -128); count >= 8 or negative -> 0.
  EXPECT_EQ(run_kernel(shift("LEFT"), 28, {x, s})[0].to_int64s(),
            (std::vector<int64_t>{-16, 16, 0, 0, 0, -128, 0, -28}));
  Tensor x64 = tv<int64_t>(DType::Int64, {4}, {-5, 5, std::numeric_limits<int64_t>::min(), -1});
  Tensor s64 = tv<int64_t>(DType::Int64, {4}, {64, -3, 63, 0});
  EXPECT_EQ(run_kernel(shift("RIGHT"), 28, {x64, s64})[0].to_int64s(), (std::vector<int64_t>{-1, 0, -1, -1}));
  EXPECT_EQ(run_kernel(shift("LEFT"), 28, {x64, s64})[0].to_int64s(),
            (std::vector<int64_t>{0, 0, 0, -1}));
  // Unsigned unchanged: a count >= the width gives 0.
  Tensor u = tv<uint16_t>(DType::UInt16, {3}, {0x8001, 0xFFFF, 3}), us = tv<uint16_t>(DType::UInt16, {3}, {15, 16, 1});
  EXPECT_EQ(run_kernel(shift("RIGHT"), 28, {u, us})[0].to_int64s(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(run_kernel(shift("LEFT"), 28, {u, us})[0].to_int64s(), (std::vector<int64_t>{0x8000, 0, 6}));
  // Signed types before 28: refused as before.
  EXPECT_NE(kernel_error(shift("LEFT"), 27, {x, s}).find("before opset 28"), std::string::npos);
}

TEST(Opset28, BitShiftSignedBroadcastMatchesNaive) {
  std::mt19937 rng(28);
  ThreadGuard tg;
  const DType types[] = {DType::Int8, DType::Int16, DType::Int32, DType::Int64};
  for (int it = 0; it < 24; ++it) {
    set_num_threads(1 + it % 2);
    const DType t = types[it % 4];
    const int bits = dtype_bits(t);
    Shape sa = {1 + it % 3, 5, 1 + it % 4}, sb = {5, 1};
    Tensor a(DType::Int64, sa), b(DType::Int64, sb);
    std::uniform_int_distribution<int64_t> big(-100000, 100000), cnt(-3, bits + 3);
    for (auto& v : a.span<int64_t>()) v = big(rng);
    for (auto& v : b.span<int64_t>()) v = cnt(rng);
    a = a.cast(t), b = b.cast(t);
    const bool left = it % 2 == 0;
    Tensor got = run_kernel(shift(left ? "LEFT" : "RIGHT"), 28, {a, b})[0];
    Tensor want = bitwise_naive(left ? BitOp::ShiftLeft : BitOp::ShiftRight, a, &b);
    EXPECT_TRUE(got.equals(want)) << "it " << it;
    // Right shift by 0 <= c < width is floor division by 2^c.
    if (!left) {
      auto av = a.to_int64s(), gv = got.to_int64s();
      for (size_t i = 0; i < av.size(); ++i) {
        const int64_t c = b.to_int64s()[(i / sa[2]) % 5];
        if (c >= 0 && c < bits && c < 62) {
          EXPECT_EQ(gv[i], static_cast<int64_t>(std::floor(static_cast<double>(av[i]) / std::ldexp(1.0, c))));
        }
      }
    }
  }
}

TEST(Opset28, SpaceToDepthMode) {
  // x [1, 2, 2, 2]: channel 0 = {0,1,2,3}, channel 1 = {4,5,6,7}; one 2x2 block each.
  Tensor x = ft({1, 2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  ir::Node n = make_node("SpaceToDepth", 1);
  n.set_attr_int("blocksize", 2);
  // DCR (default): output channel = (b1 * 2 + b2) * C + c.
  expect_values(run_kernel(n, 28, {x})[0], {0, 4, 1, 5, 2, 6, 3, 7});
  n.set_attr_string("mode", "CRD");  // CRD: output channel = c * 4 + b1 * 2 + b2.
  Tensor y = run_kernel(n, 28, {x})[0];
  EXPECT_EQ(y.shape(), (Shape{1, 8, 1, 1}));
  expect_values(y, {0, 1, 2, 3, 4, 5, 6, 7});
  // CRD SpaceToDepth then CRD DepthToSpace is the identity on a larger input.
  std::mt19937 rng(5);
  Tensor big = random_float({2, 3, 6, 4}, rng);
  n.set_attr_int("blocksize", 2);
  ir::Node d = make_node("DepthToSpace", 1);
  d.set_attr_int("blocksize", 2);
  d.set_attr_string("mode", "CRD");
  EXPECT_TRUE(run_kernel(d, 28, {run_kernel(n, 28, {big})[0]})[0].equals(big));
  n.set_attr_string("mode", "XYZ");
  EXPECT_NE(kernel_error(n, 28, {x}).find("unknown mode 'XYZ'"), std::string::npos);
  n.set_attr_string("mode", "CRD");
  EXPECT_NE(kernel_error(n, 27, {x}).find("'mode' needs opset 28"), std::string::npos);
}

TEST(Opset28, ReduceLogSumFloatOnly) {
  Tensor i = tv<int32_t>(DType::Int32, {2}, {1, 2});
  for (const char* op : {"ReduceLogSum", "ReduceLogSumExp"}) {
    ir::Node n = make_node(op, 1);
    EXPECT_NE(kernel_error(n, 28, {i}).find("float types only since opset 28"), std::string::npos) << op;
    // Version 18 allowed integers; the kernel never computed them (refused at run time as before).
    EXPECT_NE(kernel_error(n, 18, {i}).find("unsupported dtype INT32"), std::string::npos) << op;
  }
  expect_values(run_kernel(make_node("ReduceLogSum", 1), 28, {ft({2}, {1, 2})})[0], {std::log(3.0)});
  expect_values(run_kernel(make_node("ReduceLogSumExp", 1), 28, {ft({2}, {0, 0})})[0], {std::log(2.0)});
}

TEST(Opset28, EinsumBFloat16) {
  Tensor a = ft({2, 2}, {1, 2, 3, 4}), b = ft({2, 2}, {0.5f, 1, -1, 2});
  ir::Node n = make_node("Einsum", 2);
  n.set_attr_string("equation", "ij,jk->ik");
  Tensor y = run_kernel(n, 28, {a.cast(DType::BFloat16), b.cast(DType::BFloat16)})[0];
  EXPECT_EQ(y.dtype(), DType::BFloat16);
  expect_values(y.cast(DType::Float), {-1.5, 5, -2.5, 11});
  EXPECT_NE(kernel_error(n, 27, {a.cast(DType::BFloat16), b.cast(DType::BFloat16)}).find("needs opset 28"),
            std::string::npos);
}

TEST(Opset28, CeluDouble) {
  ir::Node n = make_node("Celu", 1);
  n.set_attr_float("alpha", 2.0f);
  Tensor y = run_kernel(n, 28, {Tensor::from_vector(DType::Double, {2}, std::vector<double>{-2, 3})})[0];
  EXPECT_EQ(y.dtype(), DType::Double);
  EXPECT_NEAR(y.data<double>()[0], 2.0 * (std::exp(-1.0) - 1.0), 1e-7);
  EXPECT_EQ(y.data<double>()[1], 3.0);
}

TEST(Opset28, SwiGLU) {
  ir::Node n = make_node("SwiGLU", 2);
  Tensor a = ft({2, 2}, {0, 1, -2, 3}), b = ft({2, 2}, {5, 2, 1, -1});
  // alpha 1: a * sigmoid(a) * b.
  auto sg = [](double x, double al) { return x / (1 + std::exp(-al * x)); };
  expect_values(run_kernel(n, 28, {a, b})[0], {0, sg(1, 1) * 2, sg(-2, 1), -sg(3, 1)});
  n.set_attr_float("alpha", 1.702f);
  Tensor y = run_kernel(n, 28, {a, b})[0];
  expect_values(y, {0, sg(1, 1.702f) * 2, sg(-2, 1.702f), -sg(3, 1.702f)});
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(y.data<float>()[i],
                naive_activation("SwiGLU", a.data<float>()[i], 1.702f, b.data<float>()[i]), 1e-6);
  Tensor yh = run_kernel(n, 28, {a.cast(DType::Float16), b.cast(DType::Float16)})[0];
  EXPECT_EQ(yh.dtype(), DType::Float16);
  expect_close(yh.cast(DType::Float), y, 2e-3);
  EXPECT_NE(kernel_error(n, 28, {a, ft({2}, {1, 2})}).find("same shape"), std::string::npos);
  EXPECT_NE(kernel_error(n, 28, {a, a.cast(DType::Double)}).find("different types"), std::string::npos);
}

TEST(Opset28, ConvertReduceLogSumIntegerRefused) {
  using namespace oq::test_passes;
  namespace P = oq::ir::passes;
  ir::Model m = model(18, 8);
  m.graph.inputs = {vi("x", {2, 3}, DType::Int32)};
  m.graph.nodes = {mk("ReduceLogSum", {"x"}, {"y"})};
  m.graph.outputs = {vi_any("y")};
  ir::Model f = m;
  EXPECT_EQ(P::convert_opset(m, 27), 0u);
  EXPECT_NE(error_of([&] { ir::Model c = f; P::convert_opset(c, 28); }).find("version 28 takes float types only"),
            std::string::npos);
  f.graph.inputs = {vi("x", {2, 3})};  // float: converts, IR version 14
  EXPECT_EQ(P::convert_opset(f, 28), 0u);
  EXPECT_EQ(f.default_opset(), 28);
  EXPECT_EQ(f.ir_version, 14);
}
