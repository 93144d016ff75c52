// GroupNormalization, LRN, MeanVarianceNormalization, LpNormalization, Hardmax, LpPool, MaxUnpool and the bitwise
// ops: hand-computed values, dtypes, version differences, errors naming the node; the threaded GroupNormalization,
// LpPool and broadcast bitwise paths against their naive references on random odd shapes (fixed seed).
// onnxruntime comparisons: tests/python/test_kernels_extra_ort.py.
#include <cmath>
#include <complex>
#include <random>

#include "exec/kernels/bitwise.h"
#include "exec/kernels/geometry_extra.h"
#include "exec/kernels/signal.h"
#include "exec/kernels/norm_extra.h"
#include "kernel_test_util.h"
#include "passes_test_util.h"

using namespace oq;
using namespace oq::ktest;
using namespace oq::exec;

namespace {

Tensor dt(Shape s, std::vector<double> v) { return Tensor::from_vector(DType::Double, std::move(s), v); }
Tensor u8(Shape s, std::vector<uint8_t> v) { return Tensor::from_vector(DType::UInt8, std::move(s), v); }

ir::Node gn_node(int64_t groups) {
  ir::Node n = make_node("GroupNormalization", 3);
  n.set_attr_int("num_groups", groups);
  n.set_attr_float("epsilon", 0.0f);
  return n;
}

}  // namespace

// ---------------------------------------------------------------------------------------- GroupNormalization
TEST(KernelsExtra, GroupNormHandValues) {
  // N=1, C=4, 2 values each; 2 groups: group 0 = {1,3,5,7} (mean 4, var 5), group 1 = {0,0,2,2} (mean 1, var 1).
  Tensor x = ft({1, 4, 2}, {1, 3, 5, 7, 0, 0, 2, 2});
  const double a = 1 / std::sqrt(5.0);
  // Opset 21: per-channel scale / bias.
  Tensor s21 = ft({4}, {1, 2, 1, -1}), b21 = ft({4}, {0, 0, 10, 0});
  expect_values(run_kernel(gn_node(2), 21, {x, s21, b21})[0],
                {-3 * a, -1 * a, 2 * 1 * a, 2 * 3 * a, 9, 9, -1, -1}, 1e-6);
  // Opset 18: one scale / bias per group.
  Tensor s18 = ft({2}, {2, 1}), b18 = ft({2}, {1, 0});
  expect_values(run_kernel(gn_node(2), 18, {x, s18, b18})[0],
                {-6 * a + 1, -2 * a + 1, 2 * a + 1, 6 * a + 1, -1, -1, 1, 1}, 1e-6);
  // The other version's shapes are refused, naming the node and the rule.
  std::string e = kernel_error(gn_node(2), 18, {x, s21, b21});
  EXPECT_NE(e.find("t_GroupNormalization"), std::string::npos) << e;
  EXPECT_NE(e.find("one value per group"), std::string::npos) << e;
  EXPECT_NE(kernel_error(gn_node(2), 21, {x, s18, b18}).find("one value per channel"), std::string::npos);
  EXPECT_NE(kernel_error(gn_node(3), 21, {x, s21, b21}).find("not divisible"), std::string::npos);
  // float64: at 18 computed in double; at 21 the default stash_type 1 normalises in float.
  Tensor xd = x.cast(DType::Double);
  expect_values(run_kernel(gn_node(2), 18, {xd, s18.cast(DType::Double), b18.cast(DType::Double)})[0],
                {-6 * a + 1, -2 * a + 1, 2 * a + 1, 6 * a + 1, -1, -1, 1, 1}, 1e-12);
  expect_values(run_kernel(gn_node(2), 21, {xd, s21.cast(DType::Double), b21.cast(DType::Double)})[0],
                {-3 * a, -1 * a, 2 * a, 6 * a, 9, 9, -1, -1}, 1e-6);
  // float16 (computed in float, rounded back).
  Tensor yh = run_kernel(gn_node(2), 21, {x.cast(DType::Float16), s21.cast(DType::Float16), b21.cast(DType::Float16)})[0];
  EXPECT_EQ(yh.dtype(), DType::Float16);
  expect_values(yh, {-3 * a, -1 * a, 2 * a, 6 * a, 9, 9, -1, -1}, 2e-3);
}

TEST(KernelsExtra, GroupNormStashType) {
  ir::Node n = gn_node(1);
  n.set_attr_int("stash_type", 10);
  EXPECT_NE(kernel_error(n, 21, {ft({1, 1, 2}, {1, 2}), ft({1}, {1}), ft({1}, {0})}).find("stash_type=10"),
            std::string::npos);
  // Double input, stage one in float (stash 1) vs double (stash 11): the float result is the double one rounded.
  n.set_attr_int("stash_type", 1);
  Tensor x = dt({1, 1, 3}, {0.1, 0.2, 0.7}), s = dt({1}, {1}), b = dt({1}, {0});
  Tensor y1 = run_kernel(n, 21, {x, s, b})[0];
  n.set_attr_int("stash_type", 11);
  Tensor y11 = run_kernel(n, 21, {x, s, b})[0];
  for (int i = 0; i < 3; ++i) {
    const double v11 = y11.data<double>()[i], v1 = y1.data<double>()[i];
    EXPECT_EQ(v1, static_cast<double>(static_cast<float>(v1))) << i;  // a float value
    EXPECT_NEAR(v1, v11, 1e-6) << i;
  }
  EXPECT_NE(y11.data<double>()[0], static_cast<double>(static_cast<float>(y11.data<double>()[0])));
}

TEST(KernelsExtra, GroupNormThreadedMatchesNaive) {
  std::mt19937 rng(20261128);
  ThreadGuard tg;
  for (int it = 0; it < 24; ++it) {
    set_num_threads(1 + it % 3);
    const int64_t g = 1 + it % 4, cpg = 1 + (it * 7) % 5, n = 1 + it % 3;
    Shape xs{n, g * cpg};
    for (int r = 0; r < it % 4; ++r) xs.push_back(1 + (it * 13 + r * 5) % 9);
    const bool v18 = it % 2;
    Tensor x = random_float(xs, rng, -4, 6), s = random_float({v18 ? g : g * cpg}, rng), b = random_float({v18 ? g : g * cpg}, rng);
    ir::Node node = gn_node(g);
    node.set_attr_float("epsilon", 1e-3f);
    Tensor got = run_kernel(node, v18 ? 18 : 21, {x, s, b})[0];
    Tensor want = ref::group_norm(x, s, b, g, 1e-3f, v18, DType::Float);
    expect_close(got, want, 1e-5);
  }
}

// ---------------------------------------------------------------------------------------- LRN / MVN / LpNorm
TEST(KernelsExtra, LrnHandValues) {
  ir::Node n = make_node("LRN", 1);
  n.set_attr_int("size", 2);  // even: channels [c, c+1] (floor(1/2) = 0 before, ceil(1/2) = 1 after)
  n.set_attr_float("alpha", 2.0f);
  n.set_attr_float("beta", 0.5f);
  n.set_attr_float("bias", 1.0f);
  Tensor x = ft({1, 3, 1}, {1, 2, 3});
  // c0: 1 / sqrt(1 + 1*(1+4)) ; c1: 2 / sqrt(1 + 4+9) ; c2: 3 / sqrt(1 + 9)
  expect_values(run_kernel(n, 13, {x})[0], {1 / std::sqrt(6.0), 2 / std::sqrt(14.0), 3 / std::sqrt(10.0)});
  n.set_attr_int("size", 3);  // [c-1, c+1]
  expect_values(run_kernel(n, 13, {x})[0],
                {1 / std::pow(1 + 2.0 / 3 * 5, 0.5), 2 / std::pow(1 + 2.0 / 3 * 14, 0.5), 3 / std::pow(1 + 2.0 / 3 * 13, 0.5)});
  EXPECT_NE(kernel_error(n, 12, {x.cast(DType::BFloat16)}).find("bfloat16 needs"), std::string::npos);
  EXPECT_EQ(run_kernel(n, 13, {x.cast(DType::BFloat16)})[0].dtype(), DType::BFloat16);
  n.set_attr_int("size", 0);
  EXPECT_THROW(run_kernel(n, 13, {x}), Error);
}

TEST(KernelsExtra, MvnHandValues) {
  ir::Node n = make_node("MeanVarianceNormalization", 1);
  n.set_attr_ints("axes", {1});
  // Rows {1, 3} (mean 2, std 1) and {5, 5} (std 0: 0 / 1e-9 = 0).
  expect_values(run_kernel(n, 13, {ft({2, 2}, {1, 3, 5, 5})})[0], {-1, 1, 0, 0}, 1e-6);
  // Default axes {0, 2, 3}: per channel over N, H, W.
  ir::Node d = make_node("MeanVarianceNormalization", 1);
  Tensor x = dt({2, 2, 1, 1}, {0, 10, 2, 30});  // channel 0 {0, 2}, channel 1 {10, 30}
  expect_values(run_kernel(d, 9, {x})[0], {-1, -1, 1, 1}, 1e-8);
  n.set_attr_ints("axes", {1, -1});
  EXPECT_NE(kernel_error(n, 13, {ft({2, 2}, {1, 2, 3, 4})}).find("listed twice"), std::string::npos);
}

TEST(KernelsExtra, LpNormHandValues) {
  ir::Node n = make_node("LpNormalization", 1);
  n.set_attr_int("axis", 0);
  Tensor x = ft({2, 3}, {3, 0, 1, -4, 0, 1});
  expect_values(run_kernel(n, 13, {x})[0], {0.6, 0, 1 / std::sqrt(2.0), -0.8, 0, 1 / std::sqrt(2.0)});  // 0 norm -> 0
  n.set_attr_int("p", 1);
  n.set_attr_int("axis", -1);
  expect_values(run_kernel(n, 22, {x})[0], {0.75, 0, 0.25, -0.8, 0, 0.2});
  n.set_attr_int("p", 3);
  EXPECT_NE(kernel_error(n, 22, {x}).find("p=3"), std::string::npos);
}

// ---------------------------------------------------------------------------------------- Hardmax
TEST(KernelsExtra, HardmaxVersions) {
  ir::Node n = make_node("Hardmax", 1);
  n.set_attr_int("axis", 1);
  Tensor x = ft({2, 2, 2}, {1, 5, 5, 2, 7, 0, 3, 9});
  // Opset 13: along axis 1 only (per [n, :, w]); first maximum wins on ties.
  expect_values(run_kernel(n, 13, {x})[0], {0, 1, 1, 0, 1, 0, 0, 1});
  // Opset 11: coerced to [2, 4] at axis 1: one 1 per batch row (the first 5 of {1,5,5,2}; 9 in {7,0,3,9}).
  expect_values(run_kernel(n, 11, {x})[0], {0, 1, 0, 0, 0, 0, 0, 1});
  // Default axis: 1 before 13, -1 from 13.
  ir::Node d = make_node("Hardmax", 1);
  expect_values(run_kernel(d, 13, {x})[0], {0, 1, 1, 0, 1, 0, 0, 1});
  expect_values(run_kernel(d, 7, {x})[0], {0, 1, 0, 0, 0, 0, 0, 1});
  // NaN: the first NaN is the maximum (numpy.argmax).
  expect_values(run_kernel(d, 13, {ft({1, 3}, {1, NAN, 2})})[0], {0, 1, 0});
  EXPECT_EQ(run_kernel(d, 13, {x.cast(DType::Float16)})[0].dtype(), DType::Float16);
  n.set_attr_int("axis", 3);
  EXPECT_NE(kernel_error(n, 13, {x}).find("t_Hardmax"), std::string::npos);
}

// ---------------------------------------------------------------------------------------- LpPool / MaxUnpool
TEST(KernelsExtra, LpPoolHandValues) {
  ir::Node n = make_node("LpPool", 1);
  n.set_attr_ints("kernel_shape", {2});
  n.set_attr_ints("pads", {1, 0});
  Tensor x = ft({1, 1, 3}, {3, -4, 12});
  // windows {pad, 3}, {3, -4}, {-4, 12}
  expect_values(run_kernel(n, 11, {x})[0], {3, 5, std::sqrt(160.0)});
  n.set_attr_int("p", 1);
  expect_values(run_kernel(n, 11, {x})[0], {3, 7, 16});
  // Dilations / ceil_mode only from 18; with ceil_mode the last window past the input reads only what is inside.
  ir::Node c = make_node("LpPool", 1);
  c.set_attr_ints("kernel_shape", {2});
  c.set_attr_ints("strides", {2});
  c.set_attr_int("ceil_mode", 1);
  EXPECT_NE(kernel_error(c, 11, {x}).find("ceil_mode needs LpPool-18"), std::string::npos);
  expect_values(run_kernel(c, 18, {x})[0], {5, 12});
  c.set_attr_ints("dilations", {2});
  c.set_attr_int("ceil_mode", 0);
  expect_values(run_kernel(c, 18, {ft({1, 1, 5}, {1, 0, 2, 0, 2})})[0], {std::sqrt(5.0), std::sqrt(8.0)});
}

TEST(KernelsExtra, LpPoolThreadedMatchesNaive) {
  std::mt19937 rng(7);
  ThreadGuard tg;
  for (int it = 0; it < 30; ++it) {
    set_num_threads(1 + it % 2);
    const int sp = 1 + it % 4;  // 4 spatial axes go through the reference itself
    Shape xs{1 + it % 2, 1 + it % 3};
    ref::ConvGeom g;
    std::vector<int64_t> pads(2 * sp);
    for (int a = 0; a < sp; ++a) {
      xs.push_back(3 + (it * 7 + a * 3) % 6);
      g.kernel.push_back(1 + (it + a) % 3);
      g.strides.push_back(1 + (it + 2 * a) % 2);
      g.dilations.push_back(1 + (it * a) % 2);
      pads[a] = (it + a) % 2;
      pads[a + sp] = (it / 2 + a) % 2;
    }
    ir::Node n = make_node("LpPool", 1);
    n.set_attr_ints("kernel_shape", g.kernel);
    n.set_attr_ints("strides", g.strides);
    n.set_attr_ints("dilations", g.dilations);
    n.set_attr_ints("pads", pads);
    n.set_attr_int("p", 1 + it % 3);
    n.set_attr_int("ceil_mode", it % 5 == 0);
    Tensor x = random_float(xs, rng);
    Tensor got = run_kernel(n, 18, {x})[0];
    g.pads_begin.assign(pads.begin(), pads.begin() + sp);
    g.pads_end.assign(pads.begin() + sp, pads.end());
    std::vector<int64_t> os(got.shape().begin() + 2, got.shape().end());
    expect_close(got, ref::lp_pool(x, g, os, 1 + it % 3), 1e-5);
  }
}

TEST(KernelsExtra, MaxUnpool) {
  ir::Node n = make_node("MaxUnpool", 3);
  n.set_attr_ints("kernel_shape", {2, 2});
  n.set_attr_ints("strides", {2, 2});
  Tensor x = ft({1, 1, 2, 2}, {5, 6, 7, 8}), idx = it64({1, 1, 2, 2}, {5, 7, 13, 15});
  Tensor y = run_kernel(n, 11, {x, idx, Tensor()})[0];
  EXPECT_EQ(shape_str(y.shape()), "[1,1,4,4]");
  expect_values(y, {0, 0, 0, 0, 0, 5, 0, 6, 0, 0, 0, 0, 0, 7, 0, 8});
  // output_shape (5 x 5: the same flat indices now land elsewhere) and a duplicate index (the later wins).
  Tensor y2 = run_kernel(n, 22, {x, it64({1, 1, 2, 2}, {0, 24, 24, 3}), it64({4}, {1, 1, 5, 5})})[0];
  EXPECT_EQ(shape_str(y2.shape()), "[1,1,5,5]");
  EXPECT_EQ(y2.data<float>()[24], 7);
  EXPECT_EQ(y2.data<float>()[3], 8);
  EXPECT_EQ(y2.data<float>()[0], 5);
  EXPECT_NE(kernel_error(n, 11, {x, it64({1, 1, 2, 2}, {0, 1, 2, 16}), Tensor()}).find("outside the output"),
            std::string::npos);
  EXPECT_EQ(run_kernel(n, 11, {x.cast(DType::Double), idx, Tensor()})[0].dtype(), DType::Double);
}

// ---------------------------------------------------------------------------------------- bitwise
TEST(KernelsExtra, BitwiseHandValues) {
  Tensor a = u8({3}, {0b1100, 0xFF, 1}), b = u8({3}, {0b1010, 0x0F, 7});
  auto bits = [&](const char* op) { return run_kernel(make_node(op, 2), 18, {a, b})[0].to_int64s(); };
  EXPECT_EQ(bits("BitwiseAnd"), (std::vector<int64_t>{0b1000, 0x0F, 1}));
  EXPECT_EQ(bits("BitwiseOr"), (std::vector<int64_t>{0b1110, 0xFF, 7}));
  EXPECT_EQ(bits("BitwiseXor"), (std::vector<int64_t>{0b0110, 0xF0, 6}));
  EXPECT_EQ(run_kernel(make_node("BitwiseNot", 1), 18, {a})[0].to_int64s(), (std::vector<int64_t>{0xF3, 0, 0xFE}));
  Tensor i8 = Tensor::from_vector(DType::Int8, {2}, std::vector<int8_t>{-1, 5});
  EXPECT_EQ(run_kernel(make_node("BitwiseNot", 1), 18, {i8})[0].to_int64s(), (std::vector<int64_t>{0, -6}));
  ir::Node sh = make_node("BitShift", 2);
  sh.set_attr_string("direction", "LEFT");
  EXPECT_EQ(run_kernel(sh, 11, {u8({4}, {1, 3, 0x81, 1}), u8({4}, {3, 1, 1, 8})})[0].to_int64s(),
            (std::vector<int64_t>{8, 6, 2, 0}));  // shifts wrap to the type; a shift by 8 gives 0
  sh.set_attr_string("direction", "RIGHT");
  EXPECT_EQ(run_kernel(sh, 11, {u8({3}, {8, 255, 255}), u8({1}, {2})})[0].to_int64s(), (std::vector<int64_t>{2, 63, 63}));
  EXPECT_NE(kernel_error(sh, 11, {i8, i8}).find("uint8, uint16"), std::string::npos);
  sh.set_attr_string("direction", "UP");
  EXPECT_THROW(run_kernel(sh, 11, {a, b}), Error);
  EXPECT_NE(kernel_error(make_node("BitwiseAnd", 2), 18, {ft({1}, {1}), ft({1}, {1})}).find("integers"), std::string::npos);
}

TEST(KernelsExtra, BitwiseBroadcastMatchesNaive) {
  std::mt19937 rng(11);
  ThreadGuard tg;
  const DType types[] = {DType::Int8, DType::UInt16, DType::Int32, DType::UInt64, DType::Int64, DType::UInt8};
  const char* ops[] = {"BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitShift", "BitShift"};
  const BitOp bops[] = {BitOp::And, BitOp::Or, BitOp::Xor, BitOp::ShiftLeft, BitOp::ShiftRight};
  for (int it = 0; it < 40; ++it) {
    set_num_threads(1 + it % 2);
    const int o = it % 5;
    DType t = types[it % 6];
    if (o >= 3) t = it % 2 ? DType::UInt32 : DType::UInt8;
    Shape sa, sb;
    const int r = 1 + it % 4;
    for (int d = 0; d < r; ++d) {
      const int64_t e = 1 + (it * 5 + d * 3) % 7;
      sa.push_back((it + d) % 3 == 0 ? 1 : e);
      sb.push_back((it + d) % 4 == 1 ? 1 : e);
    }
    if (it % 3 == 0) sb.erase(sb.begin());  // lower rank
    Tensor a(DType::Int64, sa), b(DType::Int64, sb);
    std::uniform_int_distribution<int64_t> big(-1000000, 1000000), small(0, 40);
    for (auto& v : a.span<int64_t>()) v = big(rng);
    for (auto& v : b.span<int64_t>()) v = o >= 3 ? small(rng) : big(rng);
    a = a.cast(t), b = b.cast(t);
    ir::Node n = make_node(ops[o], 2);
    if (o >= 3) n.set_attr_string("direction", o == 3 ? "LEFT" : "RIGHT");
    Tensor got = run_kernel(n, 18, {a, b})[0];
    Tensor want = bitwise_naive(bops[o], a, &b);
    EXPECT_TRUE(got.equals(want)) << ops[o] << " it " << it;
  }
}

// ---------------------------------------------------------------------------------------- opset conversion

TEST(KernelsExtra, GroupNormConvertedTo21RepeatsScaleAndBias) {
  using namespace oq::test_passes;
  namespace P = oq::ir::passes;
  ir::Model m = model(18, 8);
  auto& g = m.graph;
  g.inputs = {vi("x", {-1, 6, 3, 5})};
  g.add_initializer("s", rnd({2}, 3, 0.5f, 2.f));
  g.add_initializer("b", rnd({2}, 4));
  ir::Node n = mk("GroupNormalization", {"x", "s", "b"}, {"y"});
  n.set_attr_int("num_groups", 2);
  g.nodes.push_back(n);
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  EXPECT_EQ(P::convert_opset(m, 21), 1u);
  const ir::Node* gn = find_op(m, "GroupNormalization");
  ASSERT_NE(gn, nullptr);
  const Tensor& s21 = g.find_initializer(gn->inputs[1])->tensor;
  ASSERT_EQ(s21.numel(), 6);
  EXPECT_EQ(s21.data<float>()[2], orig.graph.find_initializer("s")->tensor.data<float>()[0]);
  EXPECT_EQ(s21.data<float>()[3], orig.graph.find_initializer("s")->tensor.data<float>()[1]);
  auto x = rnd({2, 6, 3, 5}, 5);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 1e-6);
  // X's channel count unknown: refused, naming the node.
  ir::Model u = orig;
  u.graph.inputs = {vi_any("x")};
  EXPECT_NE(error_of([&] { P::convert_opset(u, 21); }).find("channel count of X is unknown"), std::string::npos);
}

// ---------------------------------------------------------------------------------------- Compress / ReverseSequence / CenterCropPad / Unique
namespace {
Tensor strs(Shape s, std::vector<std::string> v) {
  Tensor t(DType::String, std::move(s));
  t.strings() = std::move(v);
  return t;
}
Tensor bools(std::vector<uint8_t> v) { return Tensor::from_vector(DType::Bool, {static_cast<int64_t>(v.size())}, v); }
}  // namespace

TEST(KernelsExtra, CompressHandValues) {
  Tensor x = ft({2, 3}, {0, 1, 2, 3, 4, 5});
  ir::Node n = make_node("Compress", 2);
  n.set_attr_int("axis", 1);
  Tensor y = run_kernel(n, 11, {x, bools({1, 0, 1})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[2,2]");
  expect_values(y, {0, 2, 3, 5});
  expect_values(run_kernel(n, 11, {x, bools({0, 1})})[0], {1, 4});           // shorter: the rest dropped
  expect_values(run_kernel(n, 11, {x, bools({0, 0, 1, 1})})[0], {2, 5});     // longer: extra entries ignored
  n.set_attr_int("axis", -2);
  EXPECT_NE(kernel_error(n, 9, {x, bools({1})}).find("needs Compress-11"), std::string::npos);
  expect_values(run_kernel(n, 11, {x, bools({0, 1})})[0], {3, 4, 5});
  ir::Node flat = make_node("Compress", 2);
  expect_values(run_kernel(flat, 9, {x, bools({0, 1, 0, 0, 1})})[0], {1, 4});
  Tensor s = run_kernel(flat, 11, {strs({3}, {"a", "b", "c"}), bools({1, 0, 1})})[0];
  EXPECT_EQ(s.strings(), (std::vector<std::string>{"a", "c"}));
}

TEST(KernelsExtra, ReverseSequenceHandValues) {
  ir::Node n = make_node("ReverseSequence", 2);
  n.set_attr_int("batch_axis", 0);
  n.set_attr_int("time_axis", 1);
  Tensor x = ft({3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  expect_values(run_kernel(n, 10, {x, it64({3}, {1, 4, 2})})[0], {0, 1, 2, 3, 7, 6, 5, 4, 9, 8, 10, 11});
  EXPECT_NE(kernel_error(n, 10, {x, it64({3}, {1, 5, 0})}).find("outside [0, 4]"), std::string::npos);
  // Default: time axis 0, batch axis 1; strings.
  Tensor y = run_kernel(make_node("ReverseSequence", 2), 10, {strs({2, 2}, {"a", "b", "c", "d"}), it64({2}, {2, 1})})[0];
  EXPECT_EQ(y.strings(), (std::vector<std::string>{"c", "b", "a", "d"}));
  n.set_attr_int("time_axis", 0);
  EXPECT_THROW(run_kernel(n, 10, {x, it64({3}, {1, 1, 1})}), Error);
}

TEST(KernelsExtra, CenterCropPadHandValues) {
  Tensor x(DType::Float, {3, 5});
  for (int i = 0; i < 15; ++i) x.data<float>()[i] = static_cast<float>(i);
  ir::Node n = make_node("CenterCropPad", 2);
  // rows 3 -> 6: one zero row before, two after; cols 5 -> 2: start at (5 - 2) / 2 = 1.
  Tensor y = run_kernel(n, 18, {x, it64({2}, {6, 2})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[6,2]");
  expect_values(y, {0, 0, 1, 2, 6, 7, 11, 12, 0, 0, 0, 0});
  n.set_attr_ints("axes", {-1});
  Tensor z = run_kernel(n, 18, {x.cast(DType::Int32), Tensor::from_vector(DType::Int32, {1}, std::vector<int32_t>{8})})[0];
  EXPECT_EQ(shape_str(z.shape()), "[3,8]");
  // one zero column before ((8 - 5) / 2 = 1), two after: row 0 = [0, 0, 1, 2, 3, 4, 0, 0]
  const std::vector<int64_t> zv = z.to_int64s();
  EXPECT_EQ(std::vector<int64_t>(zv.begin(), zv.begin() + 8), (std::vector<int64_t>{0, 0, 1, 2, 3, 4, 0, 0}));
  EXPECT_EQ(zv[9], 5);
  EXPECT_NE(kernel_error(n, 18, {x, it64({2}, {1, 1})}).find("2 values for 1 axes"), std::string::npos);
}

TEST(KernelsExtra, UniqueHandValues) {
  ir::Node n = make_node("Unique", 1, 4);
  auto r = run_kernel(n, 11, {ft({6}, {2, 1, 1, 3, 4, 3})});
  expect_values(r[0], {1, 2, 3, 4});
  EXPECT_EQ(r[1].to_int64s(), (std::vector<int64_t>{1, 0, 3, 4}));
  EXPECT_EQ(r[2].to_int64s(), (std::vector<int64_t>{1, 0, 0, 2, 3, 2}));
  EXPECT_EQ(r[3].to_int64s(), (std::vector<int64_t>{2, 1, 2, 1}));
  n.set_attr_int("sorted", 0);
  r = run_kernel(n, 11, {it64({6}, {2, 1, 1, 3, 4, 3})});
  EXPECT_EQ(r[0].to_int64s(), (std::vector<int64_t>{2, 1, 3, 4}));
  EXPECT_EQ(r[2].to_int64s(), (std::vector<int64_t>{0, 1, 1, 2, 3, 2}));
  // Along axis 1 (columns), NaN equal to NaN and sorted last.
  ir::Node a = make_node("Unique", 1, 4);
  a.set_attr_int("axis", 1);
  r = run_kernel(a, 11, {ft({2, 3}, {1, 0, 1, 2, 3, 2})});
  expect_values(r[0], {0, 1, 3, 2});
  EXPECT_EQ(r[2].to_int64s(), (std::vector<int64_t>{1, 0, 1}));
  r = run_kernel(make_node("Unique", 1, 4), 11, {ft({4}, {NAN, 1, NAN, -0.0f})});
  EXPECT_EQ(r[0].numel(), 3);
  EXPECT_EQ(r[3].to_int64s(), (std::vector<int64_t>{1, 1, 2}));
  r = run_kernel(make_node("Unique", 1, 4), 11, {strs({3}, {"b", "a", "b"})});
  EXPECT_EQ(r[0].strings(), (std::vector<std::string>{"a", "b"}));
}

// ---------------------------------------------------------------------------------------- Det / Col2Im / AffineGrid

TEST(KernelsExtra, DetHandValues) {
  ir::Node n = make_node("Det", 1);
  expect_values(run_kernel(n, 11, {ft({2, 2, 2}, {1, 2, 3, 4, 2, 0, 0, 3})})[0], {-2, 6}, 1e-6);
  // 3x3 needing a row swap (zero pivot), singular matrix, double.
  expect_values(run_kernel(n, 22, {dt({3, 3}, {0, 1, 2, 1, 0, 3, 4, -3, 8})})[0], {-2}, 1e-12);
  expect_values(run_kernel(n, 22, {dt({3, 3}, {1, 2, 3, 2, 4, 6, 1, 1, 1})})[0], {0}, 1e-12);
  EXPECT_NE(kernel_error(n, 11, {ft({2, 3}, {1, 2, 3, 4, 5, 6})}).find("square"), std::string::npos);
  EXPECT_NE(kernel_error(n, 11, {ft({2, 2}, {1, 2, 3, 4}).cast(DType::BFloat16)}).find("bfloat16 needs"), std::string::npos);
}

TEST(KernelsExtra, Col2ImHandValues) {
  // 1 channel, image 2x3, block 2x2, stride 1: 1 x 2 blocks; every tap of every block is 1 -> overlap counts.
  ir::Node n = make_node("Col2Im", 3);
  Tensor x(DType::Float, {1, 4, 2});
  for (float& v : x.span<float>()) v = 1;
  expect_values(run_kernel(n, 18, {x, it64({2}, {2, 3}), it64({2}, {2, 2})})[0], {1, 2, 1, 1, 2, 1});
  // int32 sums in int32; block count mismatch refused.
  Tensor xi = x.cast(DType::Int32);
  EXPECT_EQ(run_kernel(n, 18, {xi, it64({2}, {2, 3}), it64({2}, {2, 2})})[0].dtype(), DType::Int32);
  EXPECT_NE(kernel_error(n, 18, {x, it64({2}, {3, 3}), it64({2}, {2, 2})}).find("the geometry gives 4"), std::string::npos);
}

TEST(KernelsExtra, AffineGridHandValues) {
  ir::Node n = make_node("AffineGrid", 2);
  Tensor theta = ft({1, 2, 3}, {1, 0, 0.5f, 0, 2, 0});  // x + 0.5, 2y
  // align_corners = 0, H = 1, W = 2: x in {-0.5, 0.5}, y = 0.
  expect_values(run_kernel(n, 20, {theta, it64({4}, {1, 1, 1, 2})})[0], {0, 0, 1, 0});
  n.set_attr_int("align_corners", 1);  // x in {-1, 1}, y = -1 (one row)
  expect_values(run_kernel(n, 20, {theta, it64({4}, {1, 1, 1, 2})})[0], {-0.5, -2, 1.5, -2});
  EXPECT_NE(kernel_error(n, 20, {theta, it64({5}, {1, 1, 1, 1, 2})}).find("theta must be [1, 3, 4]"), std::string::npos);
}

// ---------------------------------------------------------------------------------------- signal
TEST(KernelsExtra, FftMatchesNaiveDft) {
  std::mt19937 rng(3);
  std::normal_distribution<double> d;
  for (size_t n : {1, 2, 4, 8, 64, 256, 3, 5, 12, 100}) {
    std::vector<std::complex<double>> a(n), b;
    for (auto& v : a) v = {d(rng), d(rng)};
    b = a;
    dft_line(a, -1);
    dft_line_naive(b, -1);
    for (size_t k = 0; k < n; ++k) EXPECT_NEAR(std::abs(a[k] - b[k]), 0.0, 1e-9 * n) << n << " " << k;
  }
  // The DFT op on random odd shapes, both paths (forward / inverse / one-sided / IRFFT, power-of-two or not).
  for (int it = 0; it < 16; ++it) {
    const int64_t len = std::vector<int64_t>{8, 7, 16, 5}[it % 4];
    Tensor x = random_float({1 + it % 2, len, 2 + it % 3, 2}, rng);
    const bool inv = it % 3 == 1, one = it % 4 == 2 || (inv && it % 2);
    const int64_t n = inv && one ? 2 * (len - 1) : len + (it % 5 == 0 ? 3 : 0);
    expect_close(dft(x, 1, n, inv, one), dft(x, 1, n, inv, one, /*naive=*/true), 1e-5);
  }
}

TEST(KernelsExtra, DftHandValues) {
  // x = [1, 2, 3, 4] (real): X = [10, -2+2i, -2, -2-2i]; onesided keeps 3 bins.
  ir::Node n = make_node("DFT", 1);
  Tensor x = ft({1, 4, 1}, {1, 2, 3, 4});
  expect_values(run_kernel(n, 17, {x})[0], {10, 0, -2, 2, -2, 0, -2, -2});
  n.set_attr_int("onesided", 1);
  expect_values(run_kernel(n, 17, {x})[0], {10, 0, -2, 2, -2, 0});
  // IRFFT of that one-sided spectrum gives x back (real, last dim 1; default length 2 * (3 - 1)).
  n.set_attr_int("inverse", 1);
  Tensor y = run_kernel(n, 17, {ft({1, 3, 2}, {10, 0, -2, 2, -2, 0})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[1,4,1]");
  expect_values(y, {1, 2, 3, 4}, 1e-6);
  // DFT-20: the axis attribute is refused; the axis input defaults to -2.
  ir::Node d20 = make_node("DFT", 3);
  d20.set_attr_int("axis", 1);
  EXPECT_THROW(run_kernel(d20, 20, {x, Tensor(), Tensor()}), Error);
  ir::Node e20 = make_node("DFT", 3);
  expect_values(run_kernel(e20, 20, {x, Tensor(), Tensor()})[0], {10, 0, -2, 2, -2, 0, -2, -2});
  EXPECT_NE(kernel_error(e20, 20, {x, Tensor(), it64({}, {2})}).find("axis 2 is outside"), std::string::npos);
}

TEST(KernelsExtra, WindowsAndMel) {
  // Hann periodic N=4: sin^2(pi n / 4) = {0, 0.5, 1, 0.5}; symmetric N=3: {0, 1, 0}.
  ir::Node h = make_node("HannWindow", 1);
  expect_values(run_kernel(h, 17, {it64({}, {4})})[0], {0, 0.5, 1, 0.5}, 1e-7);
  h.set_attr_int("periodic", 0);
  expect_values(run_kernel(h, 17, {it64({}, {3})})[0], {0, 1, 0}, 1e-7);
  // Hamming symmetric N=3: 25/46 - 21/46 cos(pi n) = {4/46, 1, 4/46}; Blackman periodic N=2: {0, 1}.
  ir::Node hm = make_node("HammingWindow", 1);
  hm.set_attr_int("periodic", 0);
  hm.set_attr_int("output_datatype", 11);
  Tensor w = run_kernel(hm, 17, {it64({}, {3})})[0];
  EXPECT_EQ(w.dtype(), DType::Double);
  expect_values(w, {4.0 / 46, 1, 4.0 / 46}, 1e-12);
  ir::Node b = make_node("BlackmanWindow", 1);
  b.set_attr_int("output_datatype", 7);  // int64: truncated towards zero
  EXPECT_EQ(run_kernel(b, 17, {it64({}, {2})})[0].to_int64s(), (std::vector<int64_t>{0, 1}));
  b.set_attr_int("output_datatype", 8);
  EXPECT_THROW(run_kernel(b, 17, {it64({}, {2})}), Error);
  // Mel: rows dft_length/2 + 1; every column a triangle peaking at 1.
  ir::Node m = make_node("MelWeightMatrix", 5);
  Tensor mel = run_kernel(m, 17, {it64({}, {8}), it64({}, {64}), it64({}, {8000}), ft({}, {0}), ft({}, {4000})})[0];
  EXPECT_EQ(shape_str(mel.shape()), "[33,8]");
  for (int c = 0; c < 8; ++c) {
    double mx = 0;
    for (int r = 0; r < 33; ++r) mx = std::max(mx, static_cast<double>(mel.data<float>()[r * 8 + c]));
    EXPECT_EQ(mx, 1.0) << c;
  }
  EXPECT_NE(kernel_error(m, 17, {it64({}, {8}), it64({}, {64}), it64({}, {8000}), ft({}, {0}), ft({}, {9000})})
                .find("outside [0, 33)"),
            std::string::npos);
}

TEST(KernelsExtra, DftConvertedTo20TakesTheAxisAsInput) {
  using namespace oq::test_passes;
  namespace P = oq::ir::passes;
  ir::Model m = model(17, 8);
  auto& g = m.graph;
  g.inputs = {vi("x", {2, 6, 3, 2})};
  ir::Node n = mk("DFT", {"x"}, {"y"});
  n.set_attr_int("axis", 2);
  g.nodes.push_back(n);
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  EXPECT_EQ(P::convert_opset(m, 21), 1u);
  const ir::Node* d = find_op(m, "DFT");
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE(d->has_attr("axis"));
  ASSERT_EQ(d->inputs.size(), 3u);
  EXPECT_EQ(d->inputs[1], "");
  EXPECT_EQ(g.find_initializer(d->inputs[2])->tensor.to_int64s(), (std::vector<int64_t>{2}));
  auto x = rnd({2, 6, 3, 2}, 9);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 1e-6);
}

TEST(KernelsExtra, HalfWindowInFloat32ExecutionCopy) {
  // A window asked as float16 times a float16 signal: the float32 execution copy computes the window in float
  // (output_datatype rewritten) so the Mul sees two float tensors, with the float16 model's values.
  using namespace oq::test_passes;
  namespace P = oq::ir::passes;
  ir::Model m = model(17, 8);
  auto& g = m.graph;
  g.inputs = {vi("x", {8}, DType::Float16)};
  g.add_initializer("n", Tensor::scalar_int64(8));
  ir::Node w = mk("HannWindow", {"n"}, {"w"});
  w.set_attr_int("output_datatype", static_cast<int64_t>(DType::Float16));
  g.nodes.push_back(w);
  g.nodes.push_back(mk("Mul", {"x", "w"}, {"y"}));
  g.outputs = {vi("y", {8}, DType::Float16)};
  EXPECT_TRUE(P::has_float16(m));
  P::upcast_float16(m);
  EXPECT_FALSE(P::has_float16(m));
  EXPECT_EQ(find_op(m, "HannWindow")->attr_int("output_datatype", 0), static_cast<int64_t>(DType::Float));
  Tensor x(DType::Float, {8});
  for (float& v : x.span<float>()) v = 2;
  std::vector<Tensor> y = run(m, {{"x", x}});
  expect_values(y[0], {0, 2 * 0.14644660940672624, 1, 2 * 0.8535533905932737, 2, 2 * 0.8535533905932737, 1,
                       2 * 0.14644660940672624}, 1e-6);
}

TEST(KernelsExtra, GroupNormExpandedBodyComputesTheKernel) {
  // inline_functions expands GroupNormalization (as ORT's quant_pre_process): the body at 18 (per-group scale)
  // and 21 (per-channel, stash type) computes what the kernel computes.
  using namespace oq::test_passes;
  namespace P = oq::ir::passes;
  for (int opset : {18, 21}) {
    ir::Model m = model(opset, opset >= 21 ? 10 : 8);
    auto& g = m.graph;
    g.inputs = {vi("x", {2, 6, 3, 5})};
    const int64_t na = opset >= 21 ? 6 : 3;
    g.add_initializer("s", rnd({na}, 3, 0.5f, 2.f));
    g.add_initializer("b", rnd({na}, 4));
    ir::Node n = mk("GroupNormalization", {"x", "s", "b"}, {"y"});
    n.set_attr_int("num_groups", 3);
    n.set_attr_float("epsilon", 1e-3f);
    g.nodes.push_back(n);
    g.outputs = {vi_any("y")};
    ir::Model orig = m;
    EXPECT_EQ(P::inline_functions(m), 1u);
    EXPECT_EQ(count_op(m, "GroupNormalization"), 0u);
    EXPECT_EQ(count_op(m, "ReduceMean"), 2u);
    EXPECT_EQ(count_op(m, "Cast"), opset >= 21 ? 5u : 3u);
    auto x = rnd({2, 6, 3, 5}, 5, -3.f, 4.f);
    expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 1e-5);
  }
}
