// CumSum and Einsum: hand-computed values, dtypes, errors naming the node, Einsum on random odd shapes
// against a plain loop written out per equation, and Einsum's sgemm path against its direct loop (the naive
// reference) on random contraction equations. onnxruntime comparisons: tests/python/test_kernels_index_ort.py.
#include <algorithm>
#include <map>
#include <random>

#include "exec/kernels/einsum.h"
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
std::vector<const Tensor*> ptrs(const std::vector<Tensor>& xs) {
  std::vector<const Tensor*> p;
  for (const Tensor& x : xs) p.push_back(&x);
  return p;
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

// ------------------------------------------------------------------------- Einsum: sgemm path vs direct loop
namespace {

struct RandomContraction {
  std::string eq;
  std::vector<Tensor> xs;
};

// Two operands, every label batch, free or contracted (0-2 of each kind), in random orders and random letters
// (both cases); sometimes an ellipsis (0-2 dims) as batch dims or as free dims of one operand, sometimes the
// implicit output. Odd sizes 1-13, values in [-1, 1].
RandomContraction random_contraction(std::mt19937& rng) {
  std::string letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::shuffle(letters.begin(), letters.end(), rng);
  size_t next = 0;
  std::map<char, int64_t> size;
  auto take = [&](int n) {
    const std::string s = letters.substr(next, static_cast<size_t>(n));
    next += static_cast<size_t>(n);
    return s;
  };
  const std::string batch = take(rng() % 3), m = take(rng() % 3), n = take(rng() % 3), k = take(rng() % 3);
  const int ell = rng() % 4;  // 0 none, 1 batch, 2 free in A, 3 free in B
  Shape ell_dims(rng() % 3);
  // Sizes, drawn again from a shorter list while the loop would take over 30000 multiply-adds.
  for (int choices = 8;; --choices) {
    const int64_t sizes[] = {1, 2, 3, 5, 7, 9, 11, 13};
    int64_t work = 1;
    for (char c : batch + m + n + k) work *= size[c] = sizes[rng() % choices];
    for (int64_t& d : ell_dims) work *= d = 1 + rng() % std::min(choices, 5);
    if (work <= 30000) break;
  }
  auto term = [&](std::string labels, bool with_ell) {
    std::shuffle(labels.begin(), labels.end(), rng);
    if (with_ell) labels.insert(rng() % (labels.size() + 1), "...");
    return labels;
  };
  const std::string ta = term(batch + m + k, ell == 1 || ell == 2), tb = term(batch + k + n, ell == 1 || ell == 3);
  RandomContraction r;
  r.eq = ta + "," + tb;
  if (rng() % 5) r.eq += "->" + term(batch + m + n, ell != 0);  // else implicit (batch letters become contracted)
  for (const std::string& t : {ta, tb}) {
    Shape s;
    for (size_t i = 0; i < t.size(); ++i) {
      if (t[i] == '.') {
        s.insert(s.end(), ell_dims.begin(), ell_dims.end());
        i += 2;
      } else {
        s.push_back(size[t[i]]);
      }
    }
    r.xs.push_back(random_float(s, rng, -1.f, 1.f));
  }
  return r;
}

}  // namespace

TEST(KernelsEinsum, GemmPathMatchesLoopOnRandomContractions) {
  ThreadGuard guard;
  std::mt19937 rng(20260611);
  int gemm_runs = 0;
  for (int it = 0; it < 400; ++it) {
    const RandomContraction c = random_contraction(rng);
    SCOPED_TRACE(c.eq);
    const ir::Node node = einsum_node(c.eq, 2);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const Tensor want = exec::einsum_by(exec::EinsumPath::Loop, node, ptrs(c.xs));
      expect_close(exec::einsum_by(exec::EinsumPath::Gemm, node, ptrs(c.xs)), want, 1e-4);
      expect_close(run_kernel(node, 12 + it % 10, c.xs)[0], want, 1e-4);  // whichever path the kernel takes
      gemm_runs += exec::einsum_path(node, ptrs(c.xs)) == exec::EinsumPath::Gemm;
    }
  }
  EXPECT_GT(gemm_runs, 400);  // of 800; the others are below the kernel's minimum product size
}

TEST(KernelsEinsum, GemmPathOnlyForFloatContractions) {
  std::mt19937 rng(7);
  auto path = [](const std::string& eq, const std::vector<Tensor>& xs) {
    return exec::einsum_path(einsum_node(eq, xs.size()), ptrs(xs));
  };
  using exec::EinsumPath;
  const Tensor q = random_float({2, 3, 17, 8}, rng), kk = random_float({2, 3, 19, 8}, rng);
  EXPECT_EQ(path("bhqd,bhkd->bhqk", {q, kk}), EinsumPath::Gemm);
  EXPECT_EQ(path("bhqd,bhkd->bqhk", {q, kk}), EinsumPath::Gemm);  // output permuted
  EXPECT_EQ(path("...qd,...kd->...qk", {q, kk}), EinsumPath::Gemm);
  EXPECT_EQ(path("bnd,dh->bnh", {random_float({3, 9, 11}, rng), random_float({11, 7}, rng)}), EinsumPath::Gemm);
  // Not float32, too small, broadcast size-1 label, diagonal, label summed out of one input, 1 or 3 operands.
  EXPECT_EQ(path("bhqd,bhkd->bhqk", {q.cast(DType::Double), kk.cast(DType::Double)}), EinsumPath::Loop);
  EXPECT_EQ(path("bhqd,bhkd->bhqk", {q.cast(DType::Float16), kk.cast(DType::Float16)}), EinsumPath::Loop);
  EXPECT_EQ(path("ij,jk->ik", {random_float({2, 3}, rng), random_float({3, 2}, rng)}), EinsumPath::Loop);
  const Tensor b1 = random_float({1, 9, 9}, rng), b4 = random_float({4, 9, 9}, rng);
  EXPECT_EQ(path("bij,bjk->bik", {b1, b4}), EinsumPath::Loop);
  expect_close(run_kernel(einsum_node("bij,bjk->bik", 2), 12, {b4, b4})[0],
               exec::einsum_by(EinsumPath::Loop, einsum_node("bij,bjk->bik", 2), ptrs({b4, b4})), 1e-4);
  EXPECT_EQ(path("bii,bij->bj", {b4, b4}), EinsumPath::Loop);
  EXPECT_EQ(path("bij,bjk->bk", {b4, b4}), EinsumPath::Loop);
  EXPECT_EQ(path("bij->bji", {b4}), EinsumPath::Loop);
  EXPECT_EQ(path("bij,bjk,bkl->bil", {b4, b4, b4}), EinsumPath::Loop);
  try {
    exec::einsum_by(EinsumPath::Gemm, einsum_node("bii,bij->bj", 2), ptrs({b4, b4}));
    ADD_FAILURE() << "Gemm path accepted a diagonal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an sgemm contraction"), std::string::npos);
  }
}

TEST(KernelsEinsum, GemmPathEmptyAndEllipsisOfNoDims) {
  using exec::EinsumPath;
  const ir::Node mm = einsum_node("...ij,...jk->...ik", 2);
  // Contracted label of size 0: zeros; free label of size 0: empty output.
  Tensor y = exec::einsum_by(EinsumPath::Gemm, mm, ptrs({Tensor(DType::Float, {2, 3, 0}), Tensor(DType::Float, {2, 0, 4})}));
  EXPECT_EQ(shape_str(y.shape()), "[2,3,4]");
  expect_values(y, std::vector<double>(24, 0.0));
  y = exec::einsum_by(EinsumPath::Gemm, mm, ptrs({Tensor(DType::Float, {2, 0, 5}), Tensor(DType::Float, {2, 5, 4})}));
  EXPECT_EQ(shape_str(y.shape()), "[2,0,4]");
  // The ellipsis standing for no dims.
  Tensor a = ft({2, 3}, {1, 2, 3, 4, 5, 6}), b = ft({3, 2}, {1, 0, 0, 1, 1, 1});
  expect_values(exec::einsum_by(EinsumPath::Gemm, mm, ptrs({a, b})), {4, 5, 10, 11});
}
