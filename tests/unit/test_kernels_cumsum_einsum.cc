// CumSum and Einsum: hand-computed values, dtypes, errors naming the node, and Einsum on random odd shapes
// against a plain loop written out per equation. onnxruntime comparisons: tests/python/test_kernels_index_ort.py.
#include <random>

#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;

namespace {

Tensor i32(Shape s, std::vector<int32_t> v) { return Tensor::from_vector(DType::Int32, std::move(s), v); }
ir::Node cumsum_node(int64_t exclusive, int64_t reverse) {
  ir::Node n = make_node("CumSum", 2);
  n.set_attr_int("exclusive", exclusive);
  n.set_attr_int("reverse", reverse);
  return n;
}
ir::Node einsum_node(const std::string& eq, size_t n_in) {
  ir::Node n = make_node("Einsum", n_in);
  n.set_attr_string("equation", eq);
  return n;
}

}  // namespace

// -------------------------------------------------------------------------------------------------- CumSum
TEST(KernelsCumSum, SpecExampleAllModes) {
  Tensor x = ft({3}, {1, 2, 3});
  Tensor axis = it64({}, {0});
  expect_values(run_kernel(cumsum_node(0, 0), 14, {x, axis})[0], {1, 3, 6});
  expect_values(run_kernel(cumsum_node(1, 0), 14, {x, axis})[0], {0, 1, 3});
  expect_values(run_kernel(cumsum_node(0, 1), 14, {x, axis})[0], {6, 5, 3});
  expect_values(run_kernel(cumsum_node(1, 1), 14, {x, axis})[0], {5, 3, 0});
}

TEST(KernelsCumSum, AxesAndDtypes) {
  Tensor x = ft({2, 3}, {1, 2, 3, 4, 5, 6});
  expect_values(run_kernel(cumsum_node(0, 0), 11, {x, i32({}, {0})})[0], {1, 2, 3, 5, 7, 9});
  expect_values(run_kernel(cumsum_node(0, 0), 11, {x, it64({1}, {-1})})[0], {1, 3, 6, 4, 9, 15});
  expect_values(run_kernel(cumsum_node(1, 1), 11, {x, it64({}, {1})})[0], {5, 3, 0, 11, 6, 0});
  // [2, 3, 2] along the middle axis (inner stride 2).
  Tensor x3(DType::Float, {2, 3, 2});
  for (int64_t i = 0; i < 12; ++i) x3.data<float>()[i] = static_cast<float>(i);
  expect_values(run_kernel(cumsum_node(0, 0), 14, {x3, it64({}, {1})})[0],
                {0, 1, 2, 4, 6, 9, 6, 7, 14, 16, 24, 27});
  // int32 wraps; uint64, double; Float16 rounds after every addition (2048 + 1 = 2048 in half).
  auto yi = run_kernel(cumsum_node(0, 0), 14, {i32({2}, {2147483647, 1}), it64({}, {0})})[0];
  EXPECT_EQ(yi.data<int32_t>()[1], -2147483647 - 1);
  auto yu = run_kernel(cumsum_node(0, 0), 14,
                       {Tensor::from_vector(DType::UInt64, {2}, std::vector<uint64_t>{1ull << 63, 5}), it64({}, {0})})[0];
  EXPECT_EQ(yu.data<uint64_t>()[1], (1ull << 63) + 5);
  auto yd = run_kernel(cumsum_node(0, 0), 14, {x.cast(DType::Double), it64({}, {1})})[0];
  EXPECT_EQ(yd.dtype(), DType::Double);
  expect_values(yd, {1, 3, 6, 4, 9, 15});
  auto yh = run_kernel(cumsum_node(0, 0), 14, {ft({3}, {2048, 1, 1}).cast(DType::Float16), it64({}, {0})})[0];
  EXPECT_EQ(yh.dtype(), DType::Float16);
  expect_values(yh, {2048, 2048, 2048});
}

TEST(KernelsCumSum, Errors) {
  Tensor x = ft({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_NE(kernel_error(cumsum_node(0, 0), 14, {x, it64({}, {2})}).find("axis 2 is out of range"), std::string::npos);
  EXPECT_NE(kernel_error(cumsum_node(0, 0), 14, {x, it64({2}, {0, 1})}).find("axis must be a scalar"), std::string::npos);
  EXPECT_NE(kernel_error(cumsum_node(0, 0), 14, {x, ft({}, {0})}).find("int32 or int64"), std::string::npos);
  EXPECT_NE(kernel_error(cumsum_node(2, 0), 14, {}).find("'exclusive' must be 0 or 1"), std::string::npos);
  EXPECT_NE(kernel_error(cumsum_node(0, 0), 14, {x.cast(DType::Int8), it64({}, {0})}).find("unsupported type INT8"),
            std::string::npos);
  std::string e = kernel_error(cumsum_node(0, 0), 13, {x.cast(DType::Float16), it64({}, {0})});
  EXPECT_NE(e.find("needs opset 14"), std::string::npos);
  EXPECT_NE(e.find("t_CumSum"), std::string::npos);
}

// -------------------------------------------------------------------------------------------------- Einsum
TEST(KernelsEinsum, HandComputed) {
  Tensor a = ft({2, 3}, {1, 2, 3, 4, 5, 6}), b = ft({3, 2}, {1, 0, 0, 1, 1, 1});
  expect_values(run_kernel(einsum_node("ij,jk->ik", 2), 12, {a, b})[0], {4, 5, 10, 11});
  expect_values(run_kernel(einsum_node("ij,jk", 2), 12, {a, b})[0], {4, 5, 10, 11});  // implicit: ik
  auto t = run_kernel(einsum_node("ij->ji", 1), 12, {a})[0];
  EXPECT_EQ(shape_str(t.shape()), "[3,2]");
  expect_values(t, {1, 4, 2, 5, 3, 6});
  expect_values(run_kernel(einsum_node("ji", 1), 12, {a})[0], {1, 4, 2, 5, 3, 6});  // implicit: sorted -> ij of ji
  expect_values(run_kernel(einsum_node("ij->", 1), 12, {a})[0], {21});
  expect_values(run_kernel(einsum_node("ij->j", 1), 12, {a})[0], {5, 7, 9});
  Tensor sq = ft({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  expect_values(run_kernel(einsum_node("ii", 1), 12, {sq})[0], {15});      // trace
  expect_values(run_kernel(einsum_node("ii->i", 1), 12, {sq})[0], {1, 5, 9});  // diagonal
  expect_values(run_kernel(einsum_node("i,i", 2), 12, {ft({3}, {1, 2, 3}), ft({3}, {4, 5, 6})})[0], {32});
  auto outer = run_kernel(einsum_node("i,j->ij", 2), 12, {ft({2}, {1, 2}), ft({3}, {1, 10, 100})})[0];
  expect_values(outer, {1, 10, 100, 2, 20, 200});
  // Uppercase sorts before lowercase in implicit mode: "bA" -> output "Ab".
  expect_values(run_kernel(einsum_node("bA", 1), 12, {a})[0], {1, 4, 2, 5, 3, 6});
  // Spaces are allowed; three operands.
  expect_values(run_kernel(einsum_node(" i , i , i -> ", 3), 12,
                           {ft({2}, {1, 2}), ft({2}, {3, 4}), ft({2}, {5, 6})})[0],
                {1 * 3 * 5 + 2 * 4 * 6});
}

TEST(KernelsEinsum, EllipsisBroadcastAndDtypes) {
  // Batched matmul with an ellipsis over [2] batch dims; size-1 label broadcast.
  Tensor a = ft({2, 1, 2}, {1, 2, 3, 4}), b = ft({2, 2, 1}, {1, 1, 2, 0});
  auto y = run_kernel(einsum_node("...ij,...jk->...ik", 2), 12, {a, b})[0];
  EXPECT_EQ(shape_str(y.shape()), "[2,1,1]");
  expect_values(y, {3, 6});
  y = run_kernel(einsum_node("ij,ij->ij", 2), 12, {ft({2, 1}, {1, 2}), ft({2, 3}, {1, 2, 3, 4, 5, 6})})[0];
  expect_values(y, {1, 2, 3, 8, 10, 12});
  // Implicit mode puts ellipsis dims first.
  y = run_kernel(einsum_node("i...", 1), 12, {ft({2, 3}, {1, 2, 3, 4, 5, 6})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[3,2]");
  // int32 wraps like the element type; Float16 in float, result Float16.
  auto yi = run_kernel(einsum_node("i,i->", 2), 12, {i32({2}, {65536, 65536}), i32({2}, {32768, 32768})})[0];
  EXPECT_EQ(yi.dtype(), DType::Int32);
  EXPECT_EQ(yi.data<int32_t>()[0], 0);
  auto yh = run_kernel(einsum_node("i,i->", 2), 12, {ft({2}, {1.5f, 2}).cast(DType::Float16), ft({2}, {2, 2}).cast(DType::Float16)})[0];
  EXPECT_EQ(yh.dtype(), DType::Float16);
  expect_values(yh, {7});
  // Zero-sized summed label: zeros.
  expect_values(run_kernel(einsum_node("ij->i", 1), 12, {Tensor(DType::Float, {2, 0})})[0], {0, 0});
}

TEST(KernelsEinsum, Errors) {
  Tensor a = ft({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_NE(kernel_error(einsum_node("ij,jk->ik", 1), 12, {}).find("2 input terms but the node has 1"), std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("", 1), 12, {}).find("'equation' is required"), std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("i1->i", 1), 12, {}).find("invalid character '1'"), std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("ij->ii", 1), 12, {}).find("output label repeated"), std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("ij->k", 1), 12, {}).find("not in any input"), std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("i..j->ij", 1), 12, {}).find("outside an ellipsis"), std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("ijk->i", 1), 12, {a}).find("does not match equation term"), std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("ij,ij->i", 2), 12, {a, ft({2, 2}, {1, 2, 3, 4})}).find("label 'j'"), std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("...i->i", 1), 12, {a}).find("has no '...'"), std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("...i,...i->...", 2), 12, {a, ft({3}, {1, 2, 3})}).find("ellipsis stands for"),
            std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("ii->i", 1), 12, {a}).find("label 'i'"), std::string::npos);
  EXPECT_NE(kernel_error(einsum_node("ii->i", 1), 12, {ft({1, 3}, {1, 2, 3})}).find("repeated label 'i'"), std::string::npos);
  std::string e = kernel_error(einsum_node("i->i", 1), 12, {Tensor(DType::Bool, {2})});
  EXPECT_NE(e.find("unsupported type BOOL"), std::string::npos);
  EXPECT_NE(e.find("t_Einsum"), std::string::npos);
}

// Random odd shapes: batched matmul with a transposed operand and a diagonal, vs loops written per equation.
TEST(KernelsEinsum, RandomAgainstLoops) {
  std::mt19937 rng(20261128);
  for (int it = 0; it < 12; ++it) {
    const int64_t B = 1 + rng() % 4, I = 1 + rng() % 7, J = 1 + rng() % 7, K = 1 + rng() % 9;
    Tensor a = random_float({B, I, K}, rng), b = random_float({B, J, K}, rng);
    auto y = run_kernel(einsum_node("bik,bjk->bij", 2), 12, {a, b})[0];
    std::vector<double> want;
    for (int64_t bb = 0; bb < B; ++bb)
      for (int64_t i = 0; i < I; ++i)
        for (int64_t j = 0; j < J; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k)
            s += double(a.data<float>()[(bb * I + i) * K + k]) * b.data<float>()[(bb * J + j) * K + k];
          want.push_back(s);
        }
    expect_values(y, want, 1e-5);
    // "kii,ki->k": per batch, sum_i d[k,i,i] * v[k,i].
    Tensor d = random_float({B, I, I}, rng), v = random_float({B, I}, rng);
    auto z = run_kernel(einsum_node("kii,ki->k", 2), 12, {d, v})[0];
    std::vector<double> wz;
    for (int64_t bb = 0; bb < B; ++bb) {
      double s = 0;
      for (int64_t i = 0; i < I; ++i) s += double(d.data<float>()[(bb * I + i) * I + i]) * v.data<float>()[bb * I + i];
      wz.push_back(s);
    }
    expect_values(z, wz, 1e-5);
  }
}
