// Reduce*, ArgMax/ArgMin and TopK kernels: hand-computed cases and the kernels against the naive references.
#include <gtest/gtest.h>

#include <limits>

#include "exec/kernels/reduce.h"
#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;
using exec::ReduceOp;

namespace {

ir::Node reduce_node(const std::string& op, std::vector<int64_t> axes, int keepdims, size_t n_in = 1) {
  ir::Node n = make_node(op, n_in);
  if (!axes.empty()) n.set_attr_ints("axes", std::move(axes));
  if (keepdims >= 0) n.set_attr_int("keepdims", keepdims);
  return n;
}

Tensor x23() { return ft({2, 3}, {1, 2, 3, 4, 5, 6}); }

}  // namespace

TEST(Reduce, AttributeFormKeepdims) {
  auto r = run_kernel(reduce_node("ReduceSum", {1}, -1), 11, {x23()})[0];
  EXPECT_EQ(r.shape(), (Shape{2, 1}));
  expect_values(r, {6, 15});
  r = run_kernel(reduce_node("ReduceSum", {1}, 0), 11, {x23()})[0];
  EXPECT_EQ(r.shape(), (Shape{2}));
  expect_values(r, {6, 15});
  r = run_kernel(reduce_node("ReduceSum", {-2}, 0), 11, {x23()})[0];
  expect_values(r, {5, 7, 9});
  r = run_kernel(reduce_node("ReduceSum", {}, 1), 11, {x23()})[0];
  EXPECT_EQ(r.shape(), (Shape{1, 1}));
  expect_values(r, {21});
  r = run_kernel(reduce_node("ReduceSum", {}, 0), 11, {x23()})[0];
  EXPECT_EQ(r.shape(), (Shape{}));
  expect_values(r, {21});
  expect_values(run_kernel(reduce_node("ReduceMean", {0}, 0), 13, {x23()})[0], {2.5, 3.5, 4.5});
  expect_values(run_kernel(reduce_node("ReduceMax", {1}, 0), 13, {x23()})[0], {3, 6});
  expect_values(run_kernel(reduce_node("ReduceMin", {1}, 0), 13, {x23()})[0], {1, 4});
  expect_values(run_kernel(reduce_node("ReduceProd", {1}, 0), 13, {x23()})[0], {6, 120});
  expect_values(run_kernel(reduce_node("ReduceL2", {1}, 0), 13, {x23()})[0],
                {3.7416573867739413, 8.774964387392123});
  expect_values(run_kernel(reduce_node("ReduceLogSumExp", {1}, 0), 13, {x23()})[0],
                {3.4076059644443806, 6.4076059644443806});
  expect_values(run_kernel(reduce_node("ReduceLogSum", {1}, 0), 13, {x23()})[0],
                {1.791759469228055, 2.70805020110221});
  EXPECT_THROW(run_kernel(reduce_node("ReduceSum", {2}, 0), 11, {x23()}), Error);
}

TEST(Reduce, AxesInputFormAndNoop) {
  ir::Node n = reduce_node("ReduceSum", {}, 0, 2);
  expect_values(run_kernel(n, 13, {x23(), it64({1}, {-1})})[0], {6, 15});
  // Omitted axes: reduce everything unless noop_with_empty_axes.
  auto all = run_kernel(n, 13, {x23(), Tensor()})[0];
  EXPECT_EQ(all.shape(), (Shape{}));
  expect_values(all, {21});
  expect_values(run_kernel(n, 13, {x23(), it64({0}, {})})[0], {21});
  n.set_attr_int("noop_with_empty_axes", 1);
  auto same = run_kernel(n, 13, {x23(), Tensor()})[0];
  EXPECT_EQ(same.shape(), (Shape{2, 3}));
  expect_values(same, {1, 2, 3, 4, 5, 6});
  expect_values(run_kernel(n, 13, {x23(), it64({0}, {})})[0], {1, 2, 3, 4, 5, 6});
  expect_values(run_kernel(n, 13, {x23(), it64({1}, {0})})[0], {5, 7, 9});
  // ReduceMean: attribute until 17, input from 18.
  ir::Node m = reduce_node("ReduceMean", {}, 1, 2);
  auto r = run_kernel(m, 18, {x23(), it64({1}, {0})})[0];
  EXPECT_EQ(r.shape(), (Shape{1, 3}));
  expect_values(r, {2.5, 3.5, 4.5});
  ir::Node ma = reduce_node("ReduceMean", {1}, 1, 1);
  expect_values(run_kernel(ma, 17, {x23()})[0], {2, 5});
  ir::Node mx = reduce_node("ReduceMax", {}, 0, 2);
  mx.set_attr_int("noop_with_empty_axes", 1);
  expect_values(run_kernel(mx, 18, {x23(), Tensor()})[0], {1, 2, 3, 4, 5, 6});
  // No reduction, but the per-element part applies (ONNX's reference and ORT): x², |x|, log x.
  ir::Node sq = reduce_node("ReduceSumSquare", {}, 0, 2);
  sq.set_attr_int("noop_with_empty_axes", 1);
  expect_values(run_kernel(sq, 18, {x23(), Tensor()})[0], {1, 4, 9, 16, 25, 36});
  ir::Node l1 = reduce_node("ReduceL1", {}, 0, 2);
  l1.set_attr_int("noop_with_empty_axes", 1);
  Tensor neg = x23();
  for (int64_t i = 0; i < neg.numel(); ++i) neg.data<float>()[i] = -neg.data<float>()[i];
  expect_values(run_kernel(l1, 18, {neg, Tensor()})[0], {1, 2, 3, 4, 5, 6});
  ir::Node ls = reduce_node("ReduceLogSum", {}, 0, 2);
  ls.set_attr_int("noop_with_empty_axes", 1);
  expect_values(run_kernel(ls, 18, {x23(), Tensor()})[0],
                {0, std::log(2.0), std::log(3.0), std::log(4.0), std::log(5.0), std::log(6.0)});
  expect_values(run_kernel(mx, 18, {x23(), it64({2}, {0, 1})})[0], {6});
}

TEST(Reduce, IntegerBoolAndEmpty) {
  Tensor xi = it64({2, 2}, {1, 2, -3, 8});
  expect_values(run_kernel(reduce_node("ReduceMean", {1}, 0), 13, {xi})[0], {1, 2});  // truncated
  expect_values(run_kernel(reduce_node("ReduceSum", {0}, 0), 11, {xi})[0], {-2, 10});
  expect_values(run_kernel(reduce_node("ReduceProd", {}, 0), 13, {xi})[0], {-48});
  Tensor b = Tensor::from_vector<bool>(DType::Bool, {2, 2}, {false, true, false, false});
  auto bm = run_kernel(reduce_node("ReduceMax", {1}, 0, 2), 20, {b, it64({1}, {1})})[0];
  EXPECT_EQ(bm.dtype(), DType::Bool);
  expect_values(bm, {1, 0});
  EXPECT_THROW(run_kernel(reduce_node("ReduceSum", {1}, 0), 11, {b}), Error);
  Tensor e(DType::Float, {2, 0});
  expect_values(run_kernel(reduce_node("ReduceSum", {1}, 0), 12, {e})[0], {0, 0});
  expect_values(run_kernel(reduce_node("ReduceProd", {1}, 0), 13, {e})[0], {1, 1});
  auto mx = run_kernel(reduce_node("ReduceMax", {1}, 0), 13, {e})[0].to_doubles();
  EXPECT_TRUE(std::isinf(mx[0]) && mx[0] < 0);
}

TEST(Reduce, MatchesNaiveOnRandomShapes) {
  ThreadGuard guard;
  std::mt19937 rng(7);
  const std::vector<std::pair<const char*, ReduceOp>> ops = {
      {"ReduceSum", ReduceOp::Sum}, {"ReduceMean", ReduceOp::Mean}, {"ReduceMax", ReduceOp::Max},
      {"ReduceMin", ReduceOp::Min}, {"ReduceProd", ReduceOp::Prod}, {"ReduceL2", ReduceOp::L2},
      {"ReduceL1", ReduceOp::L1},   {"ReduceSumSquare", ReduceOp::SumSquare},
      {"ReduceLogSum", ReduceOp::LogSum}, {"ReduceLogSumExp", ReduceOp::LogSumExp}};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    const Shape s{3, 5, 1, 7, 2};
    Tensor x = random_float(s, rng, 0.5f, 1.5f);
    x.data<float>()[3] = -x.data<float>()[3];
    for (int mask = 0; mask < 32; ++mask) {
      std::vector<int64_t> axes;
      for (int d = 0; d < 5; ++d)
        if (mask & (1 << d)) axes.push_back(d);
      for (int keep : {0, 1})
        for (const auto& [name, op] : ops) {
          ir::Node n = reduce_node(name, {}, keep, 2);
          auto got = run_kernel(n, 18, {x, axes.empty() ? Tensor() : it64({(int64_t)axes.size()}, axes)})[0];
          SCOPED_TRACE(std::string(name) + " mask " + std::to_string(mask));
          expect_close(got, exec::naive_reduce(op, x, axes, keep), 1e-5);
        }
    }
    // Large enough for the threaded paths: contiguous (I == 1) and strided (I > 1) passes.
    Tensor big = random_float({4, 3001, 5}, rng, -1.f, 1.f);
    for (std::vector<int64_t> axes : {std::vector<int64_t>{1}, {0, 2}, {2}, {0}})
      for (const auto& [name, op] : ops) {
        if (op == ReduceOp::Prod) continue;
        auto got = run_kernel(reduce_node(name, axes, 0), 12, {big})[0];
        SCOPED_TRACE(std::string(name) + " big");
        expect_close(got, exec::naive_reduce(op, big, axes, false), 1e-5);
      }
    Tensor bi(DType::Int32, {6, 7, 3});
    for (int32_t& v : bi.span<int32_t>()) v = static_cast<int32_t>(rng() % 19) - 9;
    for (const auto& [name, op] : ops) {
      // L2 (integer sqrt) is checked by hand; Prod overflows int32 and wraps, unlike the double reference;
      // the log reductions are float-only.
      if (op == ReduceOp::L2 || op == ReduceOp::Prod || op == ReduceOp::LogSum || op == ReduceOp::LogSumExp)
        continue;
      auto got = run_kernel(reduce_node(name, {0, 2}, 1), 12, {bi})[0];
      EXPECT_EQ(got.dtype(), DType::Int32);
      SCOPED_TRACE(std::string(name) + " int32");
      expect_close(got, exec::naive_reduce(op, bi, {0, 2}, true), 0);
    }
  }
}

TEST(ArgReduce, TiesKeepdimsSelectLast) {
  Tensor x = ft({2, 3}, {2, 1, 2, 0, 5, 5});
  ir::Node n = make_node("ArgMax", 1);
  n.set_attr_int("axis", 1);
  auto r = run_kernel(n, 13, {x})[0];
  EXPECT_EQ(r.dtype(), DType::Int64);
  EXPECT_EQ(r.shape(), (Shape{2, 1}));
  expect_values(r, {0, 1});
  n.set_attr_int("select_last_index", 1);
  expect_values(run_kernel(n, 12, {x})[0], {2, 2});
  ir::Node m = make_node("ArgMin", 1);
  m.set_attr_int("keepdims", 0);
  auto q = run_kernel(m, 11, {x})[0];
  EXPECT_EQ(q.shape(), (Shape{3}));
  expect_values(q, {1, 0, 0});
  m.set_attr_int("axis", -1);
  expect_values(run_kernel(m, 13, {x})[0], {1, 0});
  m.set_attr_int("axis", 2);
  EXPECT_THROW(run_kernel(m, 13, {x}), Error);
}

TEST(ArgReduce, MatchesNaive) {
  ThreadGuard guard;
  std::mt19937 rng(11);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (Shape s : {Shape{5, 7, 3}, Shape{9, 2001, 3}}) {
      Tensor x(DType::Float, s);
      for (float& v : x.span<float>()) v = static_cast<float>(rng() % 5);  // many ties
      Tensor xi = x.cast(DType::Int64);
      for (int axis = 0; axis < 3; ++axis)
        for (bool is_max : {true, false})
          for (int last : {0, 1})
            for (int keep : {0, 1}) {
              ir::Node n = make_node(is_max ? "ArgMax" : "ArgMin", 1);
              n.set_attr_int("axis", axis);
              n.set_attr_int("keepdims", keep);
              n.set_attr_int("select_last_index", last);
              Tensor want = exec::naive_arg_reduce(is_max, x, axis, keep, last);
              EXPECT_TRUE(run_kernel(n, 13, {x})[0].equals(want)) << axis << is_max << last << keep;
              EXPECT_TRUE(run_kernel(n, 13, {xi})[0].equals(want)) << axis << is_max << last << keep;
            }
    }
  }
}

TEST(TopK, TiesByLowerIndex) {
  Tensor x = ft({5}, {3, 1, 3, 2, 3});
  ir::Node n = make_node("TopK", 2, 2);
  auto r = run_kernel(n, 11, {x, it64({1}, {2})});
  expect_values(r[0], {3, 3});
  expect_values(r[1], {0, 2});
  EXPECT_EQ(r[1].dtype(), DType::Int64);
  n.set_attr_int("largest", 0);
  r = run_kernel(n, 11, {x, it64({1}, {3})});
  expect_values(r[0], {1, 2, 3});
  expect_values(r[1], {1, 3, 0});
  // Opset < 10: k is an attribute.
  ir::Node old = make_node("TopK", 1, 2);
  old.set_attr_int("k", 2);
  r = run_kernel(old, 9, {x});
  expect_values(r[0], {3, 3});
  expect_values(r[1], {0, 2});
  // Axis 0 of a matrix.
  ir::Node a0 = make_node("TopK", 2, 2);
  a0.set_attr_int("axis", 0);
  r = run_kernel(a0, 10, {ft({3, 2}, {1, 4, 3, 2, 3, 5}), it64({1}, {2})});
  EXPECT_EQ(r[0].shape(), (Shape{2, 2}));
  expect_values(r[0], {3, 5, 3, 4});
  expect_values(r[1], {1, 2, 2, 0});
  EXPECT_THROW(run_kernel(n, 11, {x, it64({1}, {6})}), Error);
  // k = 0 gives empty outputs.
  r = run_kernel(make_node("TopK", 2, 2), 11, {x, it64({1}, {0})});
  EXPECT_EQ(r[0].shape(), (Shape{0}));
}

TEST(TopK, MatchesNaive) {
  ThreadGuard guard;
  std::mt19937 rng(5);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (Shape s : {Shape{4, 9, 5}, Shape{3, 700, 11}}) {
      Tensor x(DType::Float, s);
      for (float& v : x.span<float>()) v = static_cast<float>(rng() % 7) - 3.f;
      for (int axis = 0; axis < 3; ++axis)
        for (int largest : {0, 1}) {
          const int64_t k = std::min<int64_t>(4, s[axis]);
          ir::Node n = make_node("TopK", 2, 2);
          n.set_attr_int("axis", axis - 3);  // negative axis
          n.set_attr_int("largest", largest);
          auto r = run_kernel(n, 11, {x, it64({1}, {k})});
          Tensor wv, wi;
          exec::naive_topk(x, k, axis, largest, wv, wi);
          EXPECT_TRUE(r[0].equals(wv)) << axis << largest;
          EXPECT_TRUE(r[1].equals(wi)) << axis << largest;
        }
    }
  }
}
