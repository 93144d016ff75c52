// Gemm / MatMul kernels: hand-computed cases and oneDNN sgemm against the naive reference on random odd
// shapes (transposes, every C broadcast form, 1-D operands, broadcast batch dims).
#include "compute_kernel_test_util.h"
#include "exec/kernels/compute_ref.h"

namespace oq {
namespace {

using namespace ctest;
namespace ref = exec::ref;

TEST(GemmKernel, HandAlphaBetaTranspose) {
  Tensor a = ft({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = ft({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor c = ft({2}, {10, 20});
  ir::Node n = node("Gemm", 3);
  n.set_attr_float("alpha", 2.0f);
  n.set_attr_float("beta", 0.5f);
  // A@B = [[4,5],[10,11]] -> 2*AB + 0.5*[10,20]
  expect_values(run(n, 13, {a, b, c})[0], {2, 2}, {13, 20, 25, 32});
  n.set_attr_int("transA", 1);
  n.set_attr_int("transB", 1);
  // A^T (3x2) @ B^T (2x3): A^T = [[1,4],[2,5],[3,6]], B^T = [[1,0,1],[0,1,1]]
  Tensor c3 = ft({3, 1}, {1, 2, 3});
  expect_values(run(n, 13, {a, b, c3})[0], {3, 3}, {2.5, 8.5, 10.5, 5, 11, 15, 7.5, 13.5, 19.5});
}

TEST(GemmKernel, OptionalCFromOpset11) {
  Tensor a = ft({1, 2}, {1, 2});
  Tensor b = ft({2, 1}, {3, 4});
  ir::Node n = node("Gemm", 2);
  expect_values(run(n, 11, {a, b})[0], {1, 1}, {11});
  EXPECT_THROW(run(n, 9, {a, b}), Error);
  Tensor bad = ft({3}, {1, 2, 3});
  ir::Node n3 = node("Gemm", 3);
  EXPECT_THROW(run(n3, 13, {a, b, bad}), Error);
}

TEST(GemmKernel, MatchesReferenceOnRandomShapes) {
  ThreadGuard tg;
  std::mt19937 rng(99);
  const std::vector<Shape> c_shapes = {{}, {1}, {17}, {1, 17}, {13, 1}, {13, 17}};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (size_t ci = 0; ci <= c_shapes.size(); ++ci) {
          const int64_t M = 13, K = 29, N = 17;
          Tensor a = rnd(ta ? Shape{K, M} : Shape{M, K}, rng), b = rnd(tb ? Shape{N, K} : Shape{K, N}, rng);
          Tensor c = ci < c_shapes.size() ? rnd(c_shapes[ci], rng) : Tensor();
          ir::Node n = node("Gemm", c.empty() ? 2 : 3);
          n.set_attr_int("transA", ta);
          n.set_attr_int("transB", tb);
          n.set_attr_float("alpha", 0.75f);
          n.set_attr_float("beta", 1.5f);
          Tensor want(DType::Float, {M, N});
          ref::gemm(a, b, c.empty() ? nullptr : &c, 0.75f, 1.5f, ta, tb, want);
          expect_close(run(n, 13, {a, b, c})[0], want, 1e-4,
                       fmt::format("gemm tA {} tB {} C {} threads {}", ta, tb, ci, threads));
        }
  }
}

TEST(MatMulKernel, HandOneDimensionalOperands) {
  Tensor v = ft({3}, {1, 2, 3});
  Tensor m = ft({3, 2}, {1, 2, 3, 4, 5, 6});
  ir::Node n = node("MatMul", 2);
  expect_values(run(n, 13, {v, m})[0], {2}, {22, 28});
  Tensor mt = ft({2, 3}, {1, 0, 1, 0, 1, 0});
  expect_values(run(n, 13, {mt, v})[0], {2}, {4, 2});
  expect_values(run(n, 13, {v, v})[0], {}, {14});
  Tensor bad = ft({2}, {1, 2});
  EXPECT_THROW(run(n, 13, {v, bad}), Error);
}

TEST(MatMulKernel, MatchesReferenceWithBroadcastBatches) {
  ThreadGuard tg;
  std::mt19937 rng(5);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{7, 5}, {5, 9}},          {{3, 7, 5}, {5, 9}},       {{2, 3, 7, 5}, {5, 9}},  {{7, 5}, {4, 5, 9}},
      {{2, 1, 7, 5}, {3, 5, 9}}, {{3, 7, 5}, {3, 5, 9}},    {{5}, {2, 3, 5, 9}},     {{2, 3, 7, 5}, {5}},
      {{1, 7, 5}, {6, 5, 9}},    {{6, 1, 3, 4}, {1, 5, 4, 2}}, {{11, 33}, {33, 1}}, {{1, 1}, {1, 1}},
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& [as, bs] : cases) {
      Tensor a = rnd(as, rng), b = rnd(bs, rng);
      expect_close(run(node("MatMul", 2), 13, {a, b})[0], ref::matmul(a, b), 1e-4,
                   fmt::format("matmul {} x {} threads {}", shape_str(as), shape_str(bs), threads));
    }
  }
}

TEST(MatMulKernel, ReferenceAgreesWithHandBroadcast) {
  // [2,1,1,2] x [3,2,1]: batch broadcast to [2,3]; checks the reference itself.
  Tensor a = ft({2, 1, 1, 2}, {1, 2, 3, 4});
  Tensor b = ft({3, 2, 1}, {1, 1, 0, 1, 2, 0});
  expect_values(ref::matmul(a, b), {2, 3, 1, 1}, {3, 2, 2, 7, 4, 6});
  expect_values(run(node("MatMul", 2), 9, {a, b})[0], {2, 3, 1, 1}, {3, 2, 2, 7, 4, 6});
}

}  // namespace
}  // namespace oq
