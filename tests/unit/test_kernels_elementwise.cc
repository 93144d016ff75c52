// Element-wise kernels: hand-computed cases and the fast paths against the naive references.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>

#include "exec/kernels/broadcast.h"
#include "exec/kernels/elementwise.h"
#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;
using exec::BinOp;

TEST(Broadcast, ShapesAndHandValues) {
  Shape out;
  Shape a{2, 1, 3}, b{4, 1}, c{5};
  ASSERT_TRUE(exec::broadcast_shapes({&a, &b}, out));
  EXPECT_EQ(out, (Shape{2, 4, 3}));
  EXPECT_FALSE(exec::broadcast_shapes({&a, &c}, out));
  Tensor x = ft({2, 1, 3}, {1, 2, 3, 4, 5, 6});
  Tensor y = ft({4, 1}, {10, 20, 30, 40});
  auto r = run_kernel(make_node("Add", 2), 14, {x, y});
  EXPECT_EQ(r[0].shape(), (Shape{2, 4, 3}));
  expect_values(r[0], {11, 12, 13, 21, 22, 23, 31, 32, 33, 41, 42, 43,
                       14, 15, 16, 24, 25, 26, 34, 35, 36, 44, 45, 46});
  auto s = run_kernel(make_node("Sub", 2), 7, {y, x});
  expect_values(s[0], {9, 8, 7, 19, 18, 17, 29, 28, 27, 39, 38, 37,
                       6, 5, 4, 16, 15, 14, 26, 25, 24, 36, 35, 34});
  EXPECT_THROW(run_kernel(make_node("Mul", 2), 13, {x, ft({5}, {1, 2, 3, 4, 5})}), Error);
}

TEST(Broadcast, PlanMatchesNaiveOffsets) {
  const std::vector<std::vector<Shape>> cases = {
      {{7, 13, 5}, {7, 13, 5}}, {{3, 5, 17}, {1}},        {{2, 3, 9, 11}, {3, 1, 1}},
      {{5, 1, 7}, {1, 6, 1}},   {{}, {4, 3}},             {{1, 1}, {1}},
      {{3, 1, 5, 1}, {1, 4, 1, 2}, {5, 2}},               {{2, 0, 3}, {3}}};
  for (const auto& ins : cases) {
    std::vector<const Shape*> ptrs;
    for (const Shape& s : ins) ptrs.push_back(&s);
    Shape out;
    ASSERT_TRUE(exec::broadcast_shapes(ptrs, out));
    exec::BroadcastPlan p(ins, out);
    ASSERT_EQ(p.numel(), shape_numel(out));
    std::vector<std::vector<int64_t>> want;
    for (const Shape& s : ins) want.push_back(exec::naive_broadcast_offsets(s, out));
    int64_t checked = 0;
    // Visit rows in two pieces to exercise the odometer start from a non-zero row.
    const int64_t mid = p.rows() / 2;
    for (auto [rb, re] : {std::pair<int64_t, int64_t>{0, mid}, {mid, p.rows()}}) {
      p.for_rows(rb, re, [&](int64_t row, const int64_t* off) {
        std::vector<int64_t> ro(ins.size());
        p.row_offsets(row, ro.data());
        for (size_t k = 0; k < ins.size(); ++k) {
          EXPECT_EQ(ro[k], off[k]);
          for (int64_t i = 0; i < p.inner(); ++i)
            EXPECT_EQ(off[k] + i * p.inner_stride(k), want[k][row * p.inner() + i]) << shape_str(out);
        }
        checked += p.inner();
      });
    }
    EXPECT_EQ(checked, p.numel()) << shape_str(out);
  }
}

TEST(ElementwiseFast, BinaryOpsMatchNaiveOnRandomShapes) {
  ThreadGuard guard;
  std::mt19937 rng(1234);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{7, 13, 5}, {7, 13, 5}}, {{3, 5, 17}, {}},         {{2, 3, 9, 11}, {3, 1, 1}},
      {{5, 1, 7}, {1, 6, 1}},   {{}, {4, 3}},             {{33, 65}, {65}},
      {{1}, {3, 7}},            {{4, 129, 65}, {4, 129, 65}}, {{3, 129, 97}, {129, 1}},
      {{2, 64, 300}, {1}},      {{9, 1}, {9, 4001}}};
  const std::vector<std::pair<const char*, BinOp>> ops = {
      {"Add", BinOp::Add}, {"Sub", BinOp::Sub}, {"Mul", BinOp::Mul}, {"Div", BinOp::Div},
      {"Pow", BinOp::Pow}, {"Max", BinOp::Max}, {"Min", BinOp::Min}, {"PRelu", BinOp::PRelu},
      {"Equal", BinOp::Equal}, {"Greater", BinOp::Greater}, {"Less", BinOp::Less},
      {"GreaterOrEqual", BinOp::GreaterOrEqual}, {"LessOrEqual", BinOp::LessOrEqual}, {"Mod", BinOp::Mod}};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& [sa, sb] : shapes) {
      Tensor a = random_float(sa, rng, 0.5f, 3.f);
      Tensor b = random_float(sb, rng, -2.f, 2.f);
      // Some equal elements so Equal/Max/Min see ties.
      if (a.numel() > 2 && b.numel() > 0) a.data<float>()[1] = b.data<float>()[0];
      for (const auto& [name, op] : ops) {
        if (op == BinOp::PRelu) {
          Shape o;
          if (!exec::broadcast_shapes({&sa, &sb}, o) || o != sa) continue;
        }
        auto got = run_kernel(make_node(name, 2), 16, {a, b});
        Tensor want = exec::naive_binary(op, a, b);
        EXPECT_EQ(got[0].dtype(), want.dtype()) << name;
        expect_close(got[0], want, 1e-5);
      }
    }
  }
}

TEST(ElementwiseFast, IntegerArithmetic) {
  Tensor a = it64({2, 3}, {7, -7, 9, 100, -5, 0});
  Tensor b = it64({3}, {2, 2, -4});
  expect_values(run_kernel(make_node("Div", 2), 14, {a, b})[0], {3, -3, -2, 50, -2, 0});
  expect_values(run_kernel(make_node("Add", 2), 14, {a, b})[0], {9, -5, 5, 102, -3, -4});
  expect_values(run_kernel(make_node("Mul", 2), 14, {a, b})[0], {14, -14, -36, 200, -10, 0});
  expect_values(run_kernel(make_node("Pow", 2), 15, {a, it64({}, {2})})[0], {49, 49, 81, 10000, 25, 0});
  EXPECT_THROW(run_kernel(make_node("Div", 2), 14, {a, it64({1}, {0})}), Error);
  // int32 Max/Min and comparisons.
  Tensor c = Tensor::from_vector<int32_t>(DType::Int32, {4}, {1, -2, 3, 4});
  Tensor d = Tensor::from_vector<int32_t>(DType::Int32, {4}, {0, -1, 3, 5});
  expect_values(run_kernel(make_node("Max", 2), 13, {c, d})[0], {1, -1, 3, 5});
  expect_values(run_kernel(make_node("Min", 2), 13, {c, d})[0], {0, -2, 3, 4});
  auto eq = run_kernel(make_node("Equal", 2), 13, {c, d})[0];
  EXPECT_EQ(eq.dtype(), DType::Bool);
  expect_values(eq, {0, 0, 1, 0});
  expect_values(run_kernel(make_node("Greater", 2), 13, {c, d})[0], {1, 0, 0, 0});
  expect_values(run_kernel(make_node("Less", 2), 13, {c, d})[0], {0, 1, 0, 1});
  // Pow with an integer base and a float exponent keeps the base dtype.
  auto p = run_kernel(make_node("Pow", 2), 15, {c, ft({4}, {2.f, 2.f, 0.5f, 1.5f})})[0];
  EXPECT_EQ(p.dtype(), DType::Int32);
  expect_values(p, {1, 4, 1, 8});
  // Float base, int64 exponent.
  expect_values(run_kernel(make_node("Pow", 2), 15, {ft({3}, {2, 3, 0.5f}), it64({1}, {3})})[0],
                {8, 27, 0.125});
}

TEST(ElementwiseFast, ModAndSpecialValues) {
  Tensor a = it64({4}, {-7, 7, -7, 7});
  Tensor b = it64({4}, {3, -3, -3, 3});
  expect_values(run_kernel(make_node("Mod", 2), 13, {a, b})[0], {2, -2, -1, 1});  // divisor's sign
  ir::Node f = make_node("Mod", 2);
  f.set_attr_int("fmod", 1);
  expect_values(run_kernel(f, 13, {a, b})[0], {-1, 1, -1, 1});  // dividend's sign
  expect_values(run_kernel(f, 13, {ft({3}, {5.5f, -5.5f, 4}), ft({1}, {2})})[0], {1.5, -1.5, 0});
  EXPECT_THROW(run_kernel(f, 13, {a, it64({}, {0})}), Error);
  Tensor s = ft({5}, {NAN, INFINITY, -INFINITY, 0, -2});
  expect_values(run_kernel(make_node("IsNaN", 1), 13, {s})[0], {1, 0, 0, 0, 0});
  expect_values(run_kernel(make_node("IsInf", 1), 10, {s})[0], {0, 1, 1, 0, 0});
  ir::Node pos = make_node("IsInf", 1);
  pos.set_attr_int("detect_negative", 0);
  expect_values(run_kernel(pos, 10, {s})[0], {0, 1, 0, 0, 0});
  expect_values(run_kernel(make_node("Sign", 1), 13, {it64({3}, {-5, 0, 9})})[0], {-1, 0, 1});
  Tensor sa(DType::String, {2}), sb(DType::String, {1});
  sa.strings() = {"ab", "cd"};
  sb.strings() = {"cd"};
  expect_values(run_kernel(make_node("Equal", 2), 19, {sa, sb})[0], {0, 1});
}

TEST(ElementwiseFast, LogicalAndBool) {
  Tensor a = Tensor::from_vector<bool>(DType::Bool, {2, 2}, {true, false, true, false});
  Tensor b = Tensor::from_vector<bool>(DType::Bool, {2}, {true, true});
  expect_values(run_kernel(make_node("And", 2), 7, {a, b})[0], {1, 0, 1, 0});
  expect_values(run_kernel(make_node("Not", 1), 7, {a})[0], {0, 1, 0, 1});
  expect_values(run_kernel(make_node("Equal", 2), 11, {a, b})[0], {1, 0, 1, 0});
  expect_values(run_kernel(make_node("Or", 2), 7, {a, Tensor::from_vector<bool>(DType::Bool, {}, {false})})[0],
                {1, 0, 1, 0});
  expect_values(run_kernel(make_node("Xor", 2), 7, {a, b})[0], {0, 1, 0, 1});
  EXPECT_THROW(run_kernel(make_node("Not", 1), 7, {ft({1}, {1})}), Error);
  EXPECT_THROW(run_kernel(make_node("Add", 2), 14, {a, b}), Error);
}

TEST(ElementwiseFast, Variadic) {
  Tensor a = ft({2, 2}, {1, 2, 3, 4});
  Tensor b = ft({2}, {10, 20});
  Tensor c = ft({}, {100});
  expect_values(run_kernel(make_node("Sum", 3), 13, {a, b, c})[0], {111, 122, 113, 124});
  expect_values(run_kernel(make_node("Mean", 3), 13, {a, b, c})[0], {37, 122.0 / 3, 113.0 / 3, 124.0 / 3});
  expect_values(run_kernel(make_node("Max", 2), 12, {a, ft({2, 1}, {2.5f, NAN})})[0], {2.5, 2.5, NAN, NAN});
  expect_values(run_kernel(make_node("Min", 3), 8, {a, b, ft({1}, {1.5f})})[0], {1, 1.5, 1.5, 1.5});
  auto single = run_kernel(make_node("Sum", 1), 8, {a})[0];
  expect_values(single, {1, 2, 3, 4});
  EXPECT_NE(single.raw(), a.raw());
  EXPECT_THROW(run_kernel(make_node("Mean", 2), 13, {it64({1}, {1}), it64({1}, {2})}), Error);
}

TEST(ElementwiseFast, WhereAndExpand) {
  Tensor cond = Tensor::from_vector<bool>(DType::Bool, {2, 1}, {true, false});
  Tensor x = it64({3}, {1, 2, 3});
  Tensor y = it64({2, 3}, {-1, -2, -3, -4, -5, -6});
  expect_values(run_kernel(make_node("Where", 3), 16, {cond, x, y})[0], {1, 2, 3, -4, -5, -6});
  Tensor xf = ft({}, {7.f});
  Tensor yf = ft({1, 3}, {0.5f, 1.5f, 2.5f});
  auto w = run_kernel(make_node("Where", 3), 9, {cond, xf, yf})[0];
  EXPECT_EQ(w.shape(), (Shape{2, 3}));
  expect_values(w, {7, 7, 7, 0.5, 1.5, 2.5});
  // Expand to a shape of lower rank than the broadcast result: [3,1] with [2,1,6] -> [2,3,6].
  Tensor e = ft({3, 1}, {1, 2, 3});
  auto r = run_kernel(make_node("Expand", 2), 13, {e, it64({3}, {2, 1, 6})})[0];
  EXPECT_EQ(r.shape(), (Shape{2, 3, 6}));
  std::vector<double> want;
  for (int n = 0; n < 2; ++n)
    for (int c = 1; c <= 3; ++c)
      for (int k = 0; k < 6; ++k) want.push_back(c);
  expect_values(r, want);
  auto r2 = run_kernel(make_node("Expand", 2), 8, {ft({1, 4}, {1, 2, 3, 4}), it64({1}, {1})})[0];
  EXPECT_EQ(r2.shape(), (Shape{1, 4}));
  EXPECT_THROW(run_kernel(make_node("Expand", 2), 8, {e, it64({2}, {5, 2})}), Error);
}

// Where's branch-free runs (one per pattern of inner strides) against the naive broadcast offsets, for each element
// size (bool, float16, float, int64) on random odd shapes where each operand is broadcast along random axes.
TEST(ElementwiseFast, WhereRunsMatchNaiveOffsets) {
  std::mt19937 rng(31);
  const Shape full{3, 5, 7};
  for (DType dt : {DType::Bool, DType::Float16, DType::Float, DType::Int64}) {
    for (int trial = 0; trial < 64; ++trial) {
      std::vector<Shape> sh(3);
      for (Shape& s : sh) {
        const int drop = static_cast<int>(rng() % 3);  // a shorter rank (leading dims dropped) now and then
        for (int d = drop == 2 ? 1 : 0; d < 3; ++d) s.push_back(rng() % 2 ? full[d] : 1);
      }
      std::vector<Tensor> in;
      for (int k = 0; k < 3; ++k) {
        Tensor t(k == 0 ? DType::Bool : dt, sh[k]);
        auto* b = static_cast<uint8_t*>(t.raw());
        const size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
        for (size_t i = 0; i < bytes; ++i) b[i] = static_cast<uint8_t>(k == 0 || dt == DType::Bool ? rng() % 2 : rng());
        in.push_back(t);
      }
      Tensor o = run_kernel(make_node("Where", 3), 16, in)[0];
      Shape os;
      ASSERT_TRUE(exec::broadcast_shapes({&sh[0], &sh[1], &sh[2]}, os));
      ASSERT_EQ(o.shape(), os);
      const size_t es = dtype_size(dt);
      auto oc = exec::naive_broadcast_offsets(sh[0], os), ox = exec::naive_broadcast_offsets(sh[1], os),
           oy = exec::naive_broadcast_offsets(sh[2], os);
      const auto* c = in[0].data<bool>();
      for (size_t i = 0; i < oc.size(); ++i) {
        const uint8_t* want = static_cast<const uint8_t*>(c[oc[i]] ? in[1].raw() : in[2].raw()) + (c[oc[i]] ? ox[i] : oy[i]) * es;
        ASSERT_EQ(std::memcmp(static_cast<const uint8_t*>(o.raw()) + i * es, want, es), 0)
            << dtype_name(dt) << " trial " << trial << " element " << i;
      }
    }
  }
}

TEST(Activation, ClipAttributeAndInputForms) {
  Tensor x = ft({5}, {-3, -1, 0, 1, 3});
  ir::Node old = make_node("Clip", 1);
  old.set_attr_float("min", -1.5f);
  old.set_attr_float("max", 2.f);
  expect_values(run_kernel(old, 7, {x})[0], {-1.5, -1, 0, 1, 2});
  ir::Node dflt = make_node("Clip", 1);
  expect_values(run_kernel(dflt, 7, {x})[0], {-3, -1, 0, 1, 3});
  ir::Node n = make_node("Clip", 3);
  expect_values(run_kernel(n, 11, {x, ft({}, {-0.5f}), ft({}, {0.5f})})[0], {-0.5, -0.5, 0, 0.5, 0.5});
  expect_values(run_kernel(n, 13, {x, Tensor(), ft({}, {0.5f})})[0], {-3, -1, 0, 0.5, 0.5});
  expect_values(run_kernel(n, 13, {x, ft({}, {0.f}), Tensor()})[0], {0, 0, 0, 1, 3});
  expect_values(run_kernel(make_node("Clip", 1), 13, {x})[0], {-3, -1, 0, 1, 3});
  Tensor xi = Tensor::from_vector<int32_t>(DType::Int32, {4}, {-100, -5, 5, 100});
  Tensor lo = Tensor::from_vector<int32_t>(DType::Int32, {}, {-10});
  expect_values(run_kernel(n, 12, {xi, lo, Tensor()})[0], {-10, -5, 5, 100});
  EXPECT_THROW(run_kernel(n, 12, {xi, ft({}, {1.f}), Tensor()}), Error);
}

TEST(Activation, RoundHalfToEven) {
  Tensor x = ft({9}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4f, 2.6f, -2.6f});
  expect_values(run_kernel(make_node("Round", 1), 11, {x})[0], {0, 2, 2, -0, -2, -2, 2, 3, -3});
  EXPECT_EQ(exec::find_kernel("Round", 10), nullptr);
}

TEST(Activation, GeluErfAndTanh) {
  Tensor x = ft({3}, {1.f, -1.f, 0.f});
  ir::Node n = make_node("Gelu", 1);
  // 0.5*x*(1+erf(x/sqrt2)) and 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715x^3))).
  expect_values(run_kernel(n, 20, {x})[0], {0.8413447460685429, -0.15865525393145707, 0}, 1e-6);
  n.set_attr_string("approximate", "tanh");
  expect_values(run_kernel(n, 20, {x})[0], {0.8411919906082768, -0.15880800939172324, 0}, 1e-6);
  n.set_attr_string("approximate", "cubic");
  EXPECT_THROW(run_kernel(n, 20, {x}), Error);
  EXPECT_EQ(exec::find_kernel("Gelu", 19), nullptr);
}

TEST(Activation, MatchNaiveOnRandomData) {
  ThreadGuard guard;
  std::mt19937 rng(99);
  struct Case {
    const char* op;
    float alpha, beta;  // attribute values (see naive_activation)
    float lo, hi;       // input range
  };
  const std::vector<Case> cases = {
      {"Sqrt", 0, 0, 0.01f, 8},      {"Exp", 0, 0, -8, 8},         {"Log", 0, 0, 0.01f, 8},
      {"Abs", 0, 0, -8, 8},          {"Neg", 0, 0, -8, 8},         {"Reciprocal", 0, 0, 0.01f, 8},
      {"Floor", 0, 0, -8, 8},        {"Ceil", 0, 0, -8, 8},        {"Round", 0, 0, -8, 8},
      {"Relu", 0, 0, -8, 8},         {"LeakyRelu", 0.1f, 0, -8, 8}, {"Elu", 0.7f, 0, -8, 8},
      {"Sigmoid", 0, 0, -8, 8},      {"HardSigmoid", 0.3f, 0.4f, -8, 8}, {"HardSwish", 0, 0, -8, 8},
      {"Tanh", 0, 0, -8, 8},         {"Erf", 0, 0, -8, 8},         {"Softplus", 0, 0, -8, 8},
      {"Gelu", 0, 0, -8, 8},         {"Sign", 0, 0, -8, 8},        {"Sin", 0, 0, -8, 8},
      {"Cos", 0, 0, -8, 8},          {"Tan", 0, 0, -1.5f, 1.5f},   {"Asin", 0, 0, -0.99f, 0.99f},
      {"Acos", 0, 0, -0.99f, 0.99f}, {"Atan", 0, 0, -8, 8},        {"Sinh", 0, 0, -8, 8},
      {"Cosh", 0, 0, -8, 8},         {"Asinh", 0, 0, -8, 8},       {"Acosh", 0, 0, 1, 8},
      {"Atanh", 0, 0, -0.99f, 0.99f}, {"Selu", 1.5f, 1.2f, -8, 8}, {"ThresholdedRelu", 0.5f, 0, -8, 8},
      {"Softsign", 0, 0, -8, 8},     {"Celu", 0.8f, 0, -8, 8},     {"Shrink", 0.6f, 0.2f, -8, 8},
      {"Mish", 0, 0, -8, 8},         {"Swish", 1.7f, 0, -8, 8}};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (Shape s : {Shape{3, 7, 11}, Shape{5, 4001}, Shape{}}) {
      for (const Case& c : cases) {
        const std::string op = c.op;
        Tensor x = random_float(s, rng, c.lo, c.hi);
        ir::Node n = make_node(c.op, 1);
        if (op == "LeakyRelu" || op == "Elu" || op == "ThresholdedRelu" || op == "Celu" || op == "Swish")
          n.set_attr_float("alpha", c.alpha);
        if (op == "HardSigmoid") {
          n.set_attr_float("alpha", c.alpha);
          n.set_attr_float("beta", c.beta);
        }
        if (op == "Selu") {
          n.set_attr_float("alpha", c.alpha);
          n.set_attr_float("gamma", c.beta);
        }
        if (op == "Shrink") {
          n.set_attr_float("lambd", c.alpha);
          n.set_attr_float("bias", c.beta);
        }
        auto got = run_kernel(n, op == "Swish" ? 24 : 20, {x})[0];
        std::vector<double> want;
        for (float v : x.span<float>()) want.push_back(exec::naive_activation(c.op, v, c.alpha, c.beta));
        SCOPED_TRACE(c.op);
        expect_values(got, want, 4e-6);
      }
    }
  }
  // Default attributes: LeakyRelu alpha 0.01, HardSigmoid 0.2/0.5, Elu 1.
  Tensor x = ft({2}, {-2.f, 1.f});
  expect_values(run_kernel(make_node("LeakyRelu", 1), 16, {x})[0], {-0.02, 1});
  expect_values(run_kernel(make_node("HardSigmoid", 1), 7, {x})[0], {0.1, 0.7});
  expect_values(run_kernel(make_node("Elu", 1), 7, {x})[0], {std::exp(-2.0) - 1, 1});
}

// Shrink takes integers too (Shrink-9: every numeric type), computed as ORT does (float32, converted back):
// the naive double formula on small integers, and ORT's int8 example (tests/python/test_kernels_math_ort.py
// compares every integer type with ORT itself).
TEST(Activation, ShrinkIntegersMatchNaive) {
  std::mt19937 rng(7);
  for (DType dt : {DType::Int8, DType::UInt8, DType::Int16, DType::Int32, DType::Int64, DType::UInt64}) {
    const bool is_unsigned = dt == DType::UInt8 || dt == DType::UInt64;
    std::uniform_int_distribution<int> d(is_unsigned ? 0 : -100, 100);
    std::vector<float> v(257);
    for (float& f : v) f = static_cast<float>(d(rng));
    Tensor x = ft({257}, v).cast(dt);
    ir::Node n = make_node("Shrink", 1);
    n.set_attr_float("lambd", 2.5f);
    n.set_attr_float("bias", 1.0f);
    Tensor got = run_kernel(n, 9, {x})[0];
    ASSERT_EQ(got.dtype(), dt);
    std::vector<double> want;
    for (float f : v) want.push_back(exec::naive_activation("Shrink", f, 2.5, 1.0));
    SCOPED_TRACE(dtype_name(dt));
    expect_values(got.cast(DType::Float), want, 0);
  }
  ir::Node n = make_node("Shrink", 1);
  n.set_attr_float("lambd", 1.5f);
  n.set_attr_float("bias", 1.0f);
  Tensor x = ft({5}, {-100, -2, 0, 2, 100}).cast(DType::Int8);
  expect_values(run_kernel(n, 9, {x})[0].cast(DType::Float), {-99, -1, 0, 1, 99}, 0);
}

// NaN in, NaN out for every float activation (ONNX reference, ORT's kernels): Relu used to give 0 and
// HardSigmoid 1, which a calibration with CalibMovingAverage then counted as a [0, 0] range.
TEST(Activation, NaNPropagates) {
  Tensor x = ft({3}, {NAN, -1.f, 2.f});
  for (const char* op : {"Relu", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh", "Elu", "Clip", "Softplus",
                         "Selu", "Celu", "Softsign", "Mish", "Gelu", "Abs", "Neg", "Exp", "Swish"}) {
    Tensor y = run_kernel(make_node(op, 1), 24, {x})[0];
    EXPECT_TRUE(std::isnan(y.data<float>()[0])) << op << "(NaN) = " << y.data<float>()[0];
    EXPECT_FALSE(std::isnan(y.data<float>()[1])) << op;
  }
  Tensor r = run_kernel(make_node("Relu", 1), 14, {x})[0];
  EXPECT_EQ(r.data<float>()[1], 0.f);
  EXPECT_EQ(r.data<float>()[2], 2.f);
}

TEST(Activation, IntegersHalfAndErrors) {
  Tensor xi = it64({3}, {-4, 0, 5});
  expect_values(run_kernel(make_node("Abs", 1), 13, {xi})[0], {4, 0, 5});
  expect_values(run_kernel(make_node("Neg", 1), 13, {xi})[0], {4, 0, -5});
  expect_values(run_kernel(make_node("Relu", 1), 14, {xi})[0], {0, 0, 5});
  try {
    run_kernel(make_node("Sigmoid", 1), 13, {xi});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t_Sigmoid"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("INT64"), std::string::npos) << e.what();
  }
  Tensor h = ft({3}, {-1.f, 0.5f, 4.f}).cast(DType::Float16);
  auto r = run_kernel(make_node("Relu", 1), 14, {h})[0];
  EXPECT_EQ(r.dtype(), DType::Float16);
  expect_values(r, {0, 0.5, 4});
  auto s = run_kernel(make_node("Add", 2), 14, {h, h})[0];
  EXPECT_EQ(s.dtype(), DType::Float16);
  expect_values(s, {-2, 1, 8});
}

TEST(Activation, PReluBroadcastSlope) {
  Tensor x = ft({1, 2, 2}, {-1, 2, -3, 4});
  Tensor slope = ft({2, 1}, {0.5f, 0.25f});
  expect_values(run_kernel(make_node("PRelu", 2), 16, {x, slope})[0], {-0.5, 2, -0.75, 4});
  EXPECT_THROW(run_kernel(make_node("PRelu", 2), 16, {ft({2}, {1, 2}), ft({3, 1}, {1, 2, 3})}), Error);
}

TEST(Cast, ConversionsBetweenDtypes) {
  Tensor x = ft({7}, {-1.7f, 2.9f, 0.f, 300.5f, -0.2f, 65519.f, 1.f / 3});
  auto cast_to = [&](const Tensor& t, DType to, int opset = 13) {
    ir::Node n = make_node("Cast", 1);
    n.set_attr_int("to", static_cast<int64_t>(to));
    return run_kernel(n, opset, {t})[0];
  };
  auto i32 = cast_to(x, DType::Int32);
  EXPECT_EQ(i32.dtype(), DType::Int32);
  expect_values(i32, {-1, 2, 0, 300, 0, 65519, 0});
  expect_values(cast_to(x, DType::UInt8), {255, 2, 0, 44, 0, 239, 0});  // wraps like numpy
  expect_values(cast_to(x, DType::Bool), {1, 1, 0, 1, 1, 1, 1});
  for (DType t : {DType::Float16, DType::BFloat16, DType::Double, DType::Int8, DType::Int64, DType::UInt16}) {
    auto y = cast_to(x, t, 19);
    EXPECT_EQ(y.dtype(), t);
    std::vector<double> want;
    for (float v : x.span<float>()) want.push_back(exec::naive_cast_value(v, t));
    expect_values(y, want, 0);
  }
  // float16 65519 rounds to 65504 (largest finite), 1/3 to 0.333251953125.
  expect_values(cast_to(x, DType::Float16), {-1.7001953125, 2.900390625, 0, 300.5, -0.199951171875, 65504,
                                            0.333251953125});
  auto back = cast_to(cast_to(x, DType::Float16), DType::Float);
  EXPECT_EQ(back.dtype(), DType::Float);
  expect_values(back, {-1.7001953125, 2.900390625, 0, 300.5, -0.199951171875, 65504, 0.333251953125});
  Tensor big = it64({3}, {int64_t{1} << 40, -129, 255});
  expect_values(cast_to(big, DType::Int8), {0, 127, -1});
  Tensor b = Tensor::from_vector<bool>(DType::Bool, {2}, {true, false});
  expect_values(cast_to(b, DType::Float), {1, 0});
  expect_values(cast_to(cast_to(b, DType::Float16), DType::Int32), {1, 0});
  // Strings as numpy prints / parses them.
  auto str = cast_to(x, DType::String);
  EXPECT_EQ(str.strings(), (std::vector<std::string>{"-1.7", "2.9", "0.0", "300.5", "-0.2", "65519.0",
                                                      "0.33333334"}));
  Tensor sv(DType::String, {4});
  sv.strings() = {"NaN", "+INF", "-1.5", "7"};
  expect_values(cast_to(sv, DType::Float), {NAN, INFINITY, -1.5, 7});
  sv.strings()[3] = "7x";
  EXPECT_THROW(cast_to(sv, DType::Float), Error);
  Tensor si(DType::String, {2});
  si.strings() = {"-12", "40000"};
  expect_values(cast_to(si, DType::Int16), {-12, 40000 - 65536});
  ir::Node bad = make_node("Cast", 1);
  bad.set_attr_int("to", 99);
  EXPECT_THROW(run_kernel(bad, 13, {x}), Error);
}

// Opset 24's `round_mode` applies only to casts to FLOAT8E8M0 (a type the executor does not hold): its three valid
// values leave other casts as they are; anything else is refused when the kernel is built, naming the attribute.
TEST(Cast, Opset24RoundMode) {
  Tensor x = ft({3}, {-1.5f, 2.5f, 0.7f});
  for (const char* op : {"Cast", "CastLike"}) {
    ir::Node n = make_node(op, std::string(op) == "Cast" ? 1 : 2);
    if (std::string(op) == "Cast") n.set_attr_int("to", static_cast<int64_t>(DType::Int32));
    std::vector<Tensor> in = {x};
    if (std::string(op) == "CastLike") in.push_back(Tensor::from_vector<int32_t>(DType::Int32, {1}, {0}));
    for (const char* mode : {"up", "down", "nearest"}) {
      n.set_attr_string("round_mode", mode);
      auto y = run_kernel(n, 24, in)[0];
      EXPECT_EQ(y.dtype(), DType::Int32);
      expect_values(y, {-1, 2, 0});  // truncation towards zero, as without the attribute
    }
    n.set_attr_string("round_mode", "sideways");
    std::string e;
    try {
      run_kernel(n, 24, in);
    } catch (const Error& err) {
      e = err.what();
    }
    EXPECT_NE(e.find("round_mode='sideways'"), std::string::npos) << op << ": " << e;
    EXPECT_NO_THROW(run_kernel(n, 23, in)) << op;  // not an attribute before opset 24
  }
}
