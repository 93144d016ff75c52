// Shape, movement and Pad kernels: hand-computed values and optimised-vs-naive checks on random odd shapes.
#include <cstring>
#include <limits>
#include <tuple>

#include "exec/kernels/pad.h"
#include "exec/kernels/strided.h"
#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;

namespace {

ir::Attribute a_int(const std::string& n, int64_t v) {
  ir::Attribute a;
  a.name = n;
  a.type = ir::AttrType::Int;
  a.i = v;
  return a;
}
ir::Attribute a_ints(const std::string& n, std::vector<int64_t> v) {
  ir::Attribute a;
  a.name = n;
  a.type = ir::AttrType::Ints;
  a.ints = std::move(v);
  return a;
}
ir::Attribute a_str(const std::string& n, std::string v) {
  ir::Attribute a;
  a.name = n;
  a.type = ir::AttrType::String;
  a.s = std::move(v);
  return a;
}
ir::Attribute a_float(const std::string& n, float v) {
  ir::Attribute a;
  a.name = n;
  a.type = ir::AttrType::Float;
  a.f = v;
  return a;
}

ir::Node node_with(const std::string& op, size_t n_in, std::vector<ir::Attribute> attrs, size_t n_out = 1) {
  ir::Node n = make_node(op, n_in, n_out);
  n.attrs = std::move(attrs);
  return n;
}

Tensor iota_f(Shape s) {
  Tensor t(DType::Float, s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}

std::vector<double> iota_d(int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return v;
}

Tensor random_bytes(DType dt, const Shape& s, std::mt19937& rng) {
  Tensor t(dt, s);
  auto* p = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(rng());
  return t;
}

Shape random_shape(std::mt19937& rng, int rank, int max_dim = 6) {
  Shape s;
  for (int k = 0; k < rank; ++k) s.push_back(1 + static_cast<int64_t>(rng() % max_dim));
  return s;
}

}  // namespace

// ------------------------------------------------------------------------------------------- shape ops

TEST(KernelsShape, ReshapeZeroAndMinusOne) {
  auto n = make_node("Reshape", 2);
  auto y = run_kernel(n, 13, {iota_f({2, 3, 4}), it64({3}, {0, -1, 2})})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 6, 2}));
  expect_values(y, iota_d(24));
  // allowzero=1: a 0 is a real zero dimension.
  auto z = node_with("Reshape", 2, {a_int("allowzero", 1)});
  auto y0 = run_kernel(z, 14, {Tensor(DType::Float, {0, 3}), it64({2}, {3, 0})})[0];
  EXPECT_EQ(y0.shape(), (Shape{3, 0}));
  EXPECT_THROW(run_kernel(n, 13, {iota_f({2, 3}), it64({2}, {-1, -1})}), Error);
  EXPECT_THROW(run_kernel(n, 13, {iota_f({2, 3}), it64({1}, {5})}), Error);
}

TEST(KernelsShape, FlattenSqueezeUnsqueeze) {
  auto f0 = node_with("Flatten", 1, {a_int("axis", 0)});
  EXPECT_EQ(run_kernel(f0, 13, {iota_f({2, 3, 4})})[0].shape(), (Shape{1, 24}));
  auto fn = node_with("Flatten", 1, {a_int("axis", -1)});
  EXPECT_EQ(run_kernel(fn, 13, {iota_f({2, 3, 4})})[0].shape(), (Shape{6, 4}));
  EXPECT_EQ(run_kernel(make_node("Flatten", 1), 9, {iota_f({2, 3, 4})})[0].shape(), (Shape{2, 12}));

  auto sq11 = node_with("Squeeze", 1, {a_ints("axes", {-1, 0})});
  EXPECT_EQ(run_kernel(sq11, 11, {iota_f({1, 3, 1})})[0].shape(), (Shape{3}));
  EXPECT_EQ(run_kernel(make_node("Squeeze", 1), 13, {iota_f({1, 3, 1, 2})})[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(run_kernel(make_node("Squeeze", 2), 13, {iota_f({1, 3, 1}), it64({1}, {2})})[0].shape(), (Shape{1, 3}));
  EXPECT_THROW(run_kernel(make_node("Squeeze", 2), 13, {iota_f({1, 3}), it64({1}, {1})}), Error);

  auto us11 = node_with("Unsqueeze", 1, {a_ints("axes", {0, 3})});
  EXPECT_EQ(run_kernel(us11, 11, {iota_f({2, 3})})[0].shape(), (Shape{1, 2, 3, 1}));
  auto y = run_kernel(make_node("Unsqueeze", 2), 13, {iota_f({2, 3}), it64({2}, {-1, 1})})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 1, 3, 1}));
  expect_values(y, iota_d(6));
}

TEST(KernelsShape, ShapeSizeStartEnd) {
  auto s = run_kernel(make_node("Shape", 1), 13, {iota_f({2, 3, 4})})[0];
  EXPECT_EQ(s.dtype(), DType::Int64);
  expect_values(s, {2, 3, 4});
  auto s15 = node_with("Shape", 1, {a_int("start", -2), a_int("end", 10)});
  expect_values(run_kernel(s15, 15, {iota_f({2, 3, 4})})[0], {3, 4});
  auto se = node_with("Shape", 1, {a_int("start", 1), a_int("end", -2)});
  EXPECT_EQ(run_kernel(se, 15, {iota_f({2, 3, 4})})[0].numel(), 0);
  auto sz = run_kernel(make_node("Size", 1), 13, {iota_f({2, 3, 4})})[0];
  EXPECT_EQ(sz.rank(), 0);
  expect_values(sz, {24});
}

TEST(KernelsShape, ConstantForms) {
  auto c1 = node_with("Constant", 0, {a_ints("value_ints", {4, -5})});
  auto y = run_kernel(c1, 13, {})[0];
  EXPECT_EQ(y.dtype(), DType::Int64);
  expect_values(y, {4, -5});
  auto c2 = node_with("Constant", 0, {a_float("value_float", 2.5f)});
  expect_values(run_kernel(c2, 13, {})[0], {2.5});
  ir::Attribute t;
  t.name = "value";
  t.type = ir::AttrType::Tensor;
  t.t = ft({2}, {1.5f, -1.f});
  expect_values(run_kernel(node_with("Constant", 0, {t}), 9, {})[0], {1.5, -1});
  EXPECT_THROW(run_kernel(node_with("Constant", 0, {}), 13, {}), Error);

  ir::Attribute v;
  v.name = "value";
  v.type = ir::AttrType::Tensor;
  v.t = Tensor::from_vector(DType::Int32, {1}, std::vector<int32_t>{7});
  auto cs = run_kernel(node_with("ConstantOfShape", 1, {v}), 9, {it64({2}, {2, 3})})[0];
  EXPECT_EQ(cs.dtype(), DType::Int32);
  expect_values(cs, std::vector<double>(6, 7.0));
  auto cz = run_kernel(make_node("ConstantOfShape", 1), 9, {it64({1}, {3})})[0];
  EXPECT_EQ(cz.dtype(), DType::Float);
  expect_values(cz, {0, 0, 0});
}

TEST(KernelsShape, Range) {
  auto n = make_node("Range", 3);
  auto y = run_kernel(n, 11, {Tensor::scalar_float(1.f), Tensor::scalar_float(2.f), Tensor::scalar_float(0.3f)})[0];
  EXPECT_EQ(y.shape(), (Shape{4}));
  expect_values(y, {1.0, 1.3, 1.6, 1.9}, 1e-6);
  auto i32 = [](int32_t v) { return Tensor::from_vector(DType::Int32, {}, std::vector<int32_t>{v}); };
  auto yi = run_kernel(n, 11, {i32(10), i32(4), i32(-3)})[0];
  EXPECT_EQ(yi.dtype(), DType::Int32);
  expect_values(yi, {10, 7});
  EXPECT_EQ(run_kernel(n, 11, {i32(1), i32(5), i32(-1)})[0].numel(), 0);
  // Opset 27's stash_type: 1 (float, the default) runs; float16 accumulation is refused, naming the attribute.
  n.set_attr_int("stash_type", 1);
  expect_values(run_kernel(n, 27, {i32(10), i32(4), i32(-3)})[0], {10, 7});
  n.set_attr_int("stash_type", 10);
  std::string e;
  try {
    run_kernel(n, 27, {i32(10), i32(4), i32(-3)});
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("stash_type=10"), std::string::npos) << e;
  EXPECT_NO_THROW(run_kernel(n, 26, {i32(10), i32(4), i32(-3)}));  // no such attribute before 27
  // Scalars, or a one-element [1] vector at run time (ONNX Runtime's kernel takes it: ONNX's AffineGrid function
  // body feeds one); [1, 1] is refused naming the input, as ORT's kernel refuses it. (Constant [1] inputs are
  // refused by constant folding: tests/python/test_shape_fold_parity.py.)
  auto r = make_node("Range", 3);
  const Tensor lim = Tensor::from_vector(DType::Int32, {1}, std::vector<int32_t>{3});
  expect_values(run_kernel(r, 11, {i32(0), lim, i32(1)})[0], {0, 1, 2});
  e.clear();
  try {
    run_kernel(r, 11, {i32(0), Tensor::from_vector(DType::Int32, {1, 1}, std::vector<int32_t>{4}), i32(1)});
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("(Range): input limit 'in1' has shape [1,1]: start, limit and delta must be scalars"),
            std::string::npos) << e;
}

TEST(KernelsShape, DropoutInference) {
  auto d12 = make_node("Dropout", 3, 2);
  auto o = run_kernel(d12, 13, {ft({3}, {1, -2, 3}), Tensor::scalar_float(0.7f), Tensor()});
  expect_values(o[0], {1, -2, 3});
  EXPECT_EQ(o[1].dtype(), DType::Bool);
  expect_values(o[1], {1, 1, 1});
  Tensor train = Tensor::from_vector(DType::Bool, {}, std::vector<uint8_t>{1});
  EXPECT_THROW(run_kernel(d12, 13, {ft({1}, {1}), Tensor::scalar_float(0.5f), train}), Error);
  auto ok = run_kernel(d12, 13, {ft({1}, {4}), Tensor::scalar_float(0.f), train});
  expect_values(ok[0], {4});
  auto d7 = make_node("Dropout", 1, 2);
  auto o7 = run_kernel(d7, 7, {ft({2}, {5, 6})});
  EXPECT_EQ(o7[1].dtype(), DType::Float);
  expect_values(o7[1], {1, 1});
  expect_values(run_kernel(make_node("Identity", 1), 16, {ft({2}, {5, 6})})[0], {5, 6});
}

// ------------------------------------------------------------------------------------------- movement

TEST(KernelsMovement, TransposeHandValues) {
  auto y = run_kernel(make_node("Transpose", 1), 13, {iota_f({2, 3})})[0];
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  expect_values(y, {0, 3, 1, 4, 2, 5});
  auto p = node_with("Transpose", 1, {a_ints("perm", {1, 2, 0})});
  auto z = run_kernel(p, 13, {iota_f({2, 2, 3})})[0];  // z[j,k,i] = x[i,j,k] = 6i + 3j + k
  EXPECT_EQ(z.shape(), (Shape{2, 3, 2}));
  expect_values(z, {0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11});
  EXPECT_THROW(run_kernel(node_with("Transpose", 1, {a_ints("perm", {0, 0})}), 13, {iota_f({2, 2})}), Error);
}

TEST(KernelsMovement, TransposeMatchesNaiveRandom) {
  ThreadGuard g;
  std::mt19937 rng(1234);
  const DType types[] = {DType::UInt8, DType::Float16, DType::Float, DType::Int64};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int it = 0; it < 60; ++it) {
      int rank = 1 + static_cast<int>(rng() % 5);
      Shape s = random_shape(rng, rank, 7);
      if (it % 10 == 0) s = {33, 1, 257};  // large enough to go parallel
      if (it % 10 == 5) s = {3, 17, 2, 21};  // tiled path (two dims >= 8)
      if (it % 10 == 7) s = {9, 130, 11};
      rank = static_cast<int>(s.size());
      std::vector<int64_t> perm(static_cast<size_t>(rank));
      for (int k = 0; k < rank; ++k) perm[k] = k;
      std::shuffle(perm.begin(), perm.end(), rng);
      Tensor x = random_bytes(types[it % 4], s, rng);
      EXPECT_TRUE(exec::transpose(x, perm).equals(exec::transpose_naive(x, perm))) << shape_str(s);
    }
  }
}

TEST(KernelsMovement, StridedCopyMatchesNaive) {
  ThreadGuard g;
  std::mt19937 rng(77);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int it = 0; it < 40; ++it) {
      Shape in_s = random_shape(rng, 4, 5);
      // A random strided view: per axis a step in {-2,-1,1,2,0 (broadcast)} and a fitting count.
      Shape out_s;
      std::vector<int64_t> strides;
      auto st = exec::contiguous_strides(in_s);
      int64_t base = 0;
      for (int k = 0; k < 4; ++k) {
        int64_t step = std::vector<int64_t>{-2, -1, 1, 2, 0}[rng() % 5];
        int64_t cnt = step == 0 ? 3 : (in_s[k] - 1) / std::abs(step) + 1;
        if (step < 0) base += (in_s[k] - 1) * st[k];
        out_s.push_back(cnt);
        strides.push_back(step * st[k]);
      }
      Tensor x = random_bytes(DType::Int32, in_s, rng);
      Tensor a(DType::Int32, out_s), b(DType::Int32, out_s);
      const auto* src = static_cast<const uint8_t*>(x.raw()) + base * 4;
      exec::strided_copy(4, out_s, strides, src, static_cast<uint8_t*>(a.raw()));
      exec::strided_copy_naive(4, out_s, strides, src, static_cast<uint8_t*>(b.raw()));
      EXPECT_TRUE(a.equals(b));
    }
  }
}

TEST(KernelsMovement, ConcatAndSplit) {
  auto c = node_with("Concat", 2, {a_int("axis", -1)});
  auto y = run_kernel(c, 13, {iota_f({2, 1}), ft({2, 2}, {10, 11, 12, 13})})[0];
  expect_values(y, {0, 10, 11, 1, 12, 13});
  std::mt19937 rng(5);
  ThreadGuard g;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int it = 0; it < 20; ++it) {
      Shape s = random_shape(rng, 3, 5);
      int axis = static_cast<int>(rng() % 3);
      std::vector<Tensor> xs;
      std::vector<const Tensor*> ps;
      for (int i = 0; i < 3; ++i) {
        Shape si = s;
        si[axis] = static_cast<int64_t>(rng() % 4);
        xs.push_back(random_bytes(DType::Int16, si, rng));
      }
      for (auto& t : xs) ps.push_back(&t);
      ir::Node n = make_node("Concat", 3);
      EXPECT_TRUE(exec::concat(n, ps, axis).equals(exec::concat_naive(n, ps, axis)));
    }
  }
  // Split: attribute (11), input (13), num_outputs with a smaller last chunk (18), equal default.
  auto s11 = node_with("Split", 1, {a_int("axis", 1), a_ints("split", {1, 2})}, 2);
  auto o = run_kernel(s11, 11, {iota_f({2, 3})});
  expect_values(o[0], {0, 3});
  expect_values(o[1], {1, 2, 4, 5});
  auto o13 = run_kernel(make_node("Split", 2, 2), 13, {iota_f({5}), it64({2}, {4, 1})});
  expect_values(o13[0], {0, 1, 2, 3});
  expect_values(o13[1], {4});
  auto s18 = node_with("Split", 1, {a_int("num_outputs", 3)}, 3);
  auto o18 = run_kernel(s18, 18, {iota_f({5})});
  expect_values(o18[0], {0, 1});
  expect_values(o18[1], {2, 3});
  expect_values(o18[2], {4});
  auto eq = run_kernel(make_node("Split", 1, 2), 13, {iota_f({4})});
  expect_values(eq[1], {2, 3});
  EXPECT_THROW(run_kernel(make_node("Split", 1, 2), 13, {iota_f({5})}), Error);
}

TEST(KernelsMovement, SliceForms) {
  const int64_t big = std::numeric_limits<int64_t>::max();
  // Attribute form (opset 9): x[1:, 0:2].
  auto s9 = node_with("Slice", 1, {a_ints("starts", {1, 0}), a_ints("ends", {big, 2})});
  expect_values(run_kernel(s9, 9, {iota_f({3, 4})})[0], {4, 5, 8, 9});
  auto n = make_node("Slice", 5);
  // Negative step with clamping: x[::-2] on axis 1, x[-1:-10:-1] on axis 0 (clamped to -1 -> whole axis).
  auto y = run_kernel(n, 13, {iota_f({3, 4}), it64({2}, {big, -1}), it64({2}, {-big - 1, -10}), it64({2}, {1, 0}),
                              it64({2}, {-2, -1})})[0];
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  expect_values(y, {11, 9, 7, 5, 3, 1});
  // Default axes/steps, out-of-range start gives an empty axis.
  auto e = run_kernel(n, 13, {iota_f({3, 4}), it64({1}, {5}), it64({1}, {7}), Tensor(), Tensor()})[0];
  EXPECT_EQ(e.shape(), (Shape{0, 4}));
  EXPECT_THROW(run_kernel(n, 13, {iota_f({3}), it64({1}, {0}), it64({1}, {2}), it64({1}, {0}), it64({1}, {0})}),
               Error);
}

TEST(KernelsMovement, GatherAndGatherElements) {
  auto g1 = node_with("Gather", 2, {a_int("axis", 1)});
  auto y = run_kernel(g1, 13, {iota_f({2, 3}), it64({2}, {-1, 0})})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  expect_values(y, {2, 0, 5, 3});
  auto s = run_kernel(make_node("Gather", 2), 13, {iota_f({3, 2}), Tensor::scalar_int64(2)})[0];
  EXPECT_EQ(s.shape(), (Shape{2}));
  expect_values(s, {4, 5});
  EXPECT_THROW(run_kernel(g1, 13, {iota_f({2, 3}), it64({1}, {3})}), Error);
  std::mt19937 rng(9);
  ThreadGuard guard;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int it = 0; it < 20; ++it) {
      Shape ds = random_shape(rng, 3, 6);
      int axis = static_cast<int>(rng() % 3);
      Shape is = random_shape(rng, static_cast<int>(rng() % 3), 4);
      Tensor idx(DType::Int32, is);
      for (auto& v : idx.span<int32_t>()) v = static_cast<int32_t>(rng() % (2 * ds[axis])) - static_cast<int32_t>(ds[axis]);
      Tensor x = random_bytes(DType::Float, ds, rng);
      EXPECT_TRUE(exec::gather(g1, x, idx, axis).equals(exec::gather_naive(g1, x, idx, axis)));
    }
  }
  // GatherElements spec example: axis 1, data [[1,2],[3,4]], indices [[0,0],[1,0]] -> [[1,1],[4,3]].
  auto ge = node_with("GatherElements", 2, {a_int("axis", 1)});
  expect_values(run_kernel(ge, 13, {ft({2, 2}, {1, 2, 3, 4}), it64({2, 2}, {0, 0, 1, 0})})[0], {1, 1, 4, 3});
  auto ge0 = node_with("GatherElements", 2, {a_int("axis", 0)});
  expect_values(run_kernel(ge0, 13, {ft({3, 2}, {1, 2, 3, 4, 5, 6}), it64({1, 2}, {-1, 1})})[0], {5, 4});
}

TEST(KernelsMovement, TileDepthSpace) {
  auto t = run_kernel(make_node("Tile", 2), 13, {iota_f({2, 2}), it64({2}, {2, 3})})[0];
  EXPECT_EQ(t.shape(), (Shape{4, 6}));
  expect_values(t, {0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3});
  // ONNX spec example: x = arange(48).reshape(1, 8, 2, 3), blocksize 2.
  auto dcr = node_with("DepthToSpace", 1, {a_int("blocksize", 2), a_str("mode", "DCR")});
  auto y = run_kernel(dcr, 13, {iota_f({1, 8, 2, 3})})[0];
  EXPECT_EQ(y.shape(), (Shape{1, 2, 4, 6}));
  std::vector<double> want_dcr = {0,  12, 1,  13, 2,  14, 24, 36, 25, 37, 26, 38, 3,  15, 4,  16,
                                  5,  17, 27, 39, 28, 40, 29, 41, 6,  18, 7,  19, 8,  20, 30, 42,
                                  31, 43, 32, 44, 9,  21, 10, 22, 11, 23, 33, 45, 34, 46, 35, 47};
  expect_values(y, want_dcr);
  auto crd = node_with("DepthToSpace", 1, {a_int("blocksize", 2), a_str("mode", "CRD")});
  std::vector<double> want_crd = {0,  6,  1,  7,  2,  8,  12, 18, 13, 19, 14, 20, 3,  9,  4,  10,
                                  5,  11, 15, 21, 16, 22, 17, 23, 24, 30, 25, 31, 26, 32, 36, 42,
                                  37, 43, 38, 44, 27, 33, 28, 34, 29, 35, 39, 45, 40, 46, 41, 47};
  expect_values(run_kernel(crd, 13, {iota_f({1, 8, 2, 3})})[0], want_crd);
  // SpaceToDepth inverts DCR DepthToSpace.
  auto s2d = node_with("SpaceToDepth", 1, {a_int("blocksize", 2)});
  auto back = run_kernel(s2d, 13, {y})[0];
  EXPECT_EQ(back.shape(), (Shape{1, 8, 2, 3}));
  expect_values(back, iota_d(48));
}

// ------------------------------------------------------------------------------------------------ Pad

TEST(KernelsPad, ModesHandValues) {
  using exec::PadMode;
  // x = [1, 2, 3], pads 2 / 3.
  EXPECT_EQ(exec::pad_axis_map(3, 2, 3, PadMode::Reflect), (std::vector<int64_t>{2, 1, 0, 1, 2, 1, 0, 1}));
  EXPECT_EQ(exec::pad_axis_map(3, 2, 3, PadMode::Edge), (std::vector<int64_t>{0, 0, 0, 1, 2, 2, 2, 2}));
  EXPECT_EQ(exec::pad_axis_map(3, 2, 3, PadMode::Wrap), (std::vector<int64_t>{1, 2, 0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(exec::pad_axis_map(3, 2, 3, PadMode::Constant), (std::vector<int64_t>{-1, -1, 0, 1, 2, -1, -1, -1}));
  EXPECT_EQ(exec::pad_axis_map(4, -1, 1, PadMode::Constant), (std::vector<int64_t>{1, 2, 3, -1}));

  // Opset 7 attribute form, constant 1.5 on a 2x2.
  auto p2 = node_with("Pad", 1, {a_ints("pads", {0, 1, 1, 0}), a_float("value", 1.5f)});
  auto y = run_kernel(p2, 7, {ft({2, 2}, {1, 2, 3, 4})})[0];
  EXPECT_EQ(y.shape(), (Shape{3, 3}));
  expect_values(y, {1.5, 1, 2, 1.5, 3, 4, 1.5, 1.5, 1.5});
  // Opset 11 reflect on a 3x3 (ONNX docs example, pads [0,2,0,0]).
  auto r = node_with("Pad", 2, {a_str("mode", "reflect")});
  auto yr = run_kernel(r, 11, {ft({3, 2}, {1, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f}), it64({4}, {0, 2, 0, 0})})[0];
  expect_values(yr, {1, 1.2, 1, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7, 4.5, 5.7}, 1e-6);
  // Opset 18 axes input + constant value input; int32 data.
  auto a = make_node("Pad", 4);
  Tensor xi = Tensor::from_vector(DType::Int32, {2, 2}, std::vector<int32_t>{1, 2, 3, 4});
  Tensor cv = Tensor::from_vector(DType::Int32, {}, std::vector<int32_t>{9});
  auto ya = run_kernel(a, 18, {xi, it64({2}, {1, 0}), cv, it64({1}, {-1})})[0];
  EXPECT_EQ(ya.dtype(), DType::Int32);
  expect_values(ya, {9, 1, 2, 9, 3, 4});
  // Wrap needs opset 19.
  auto w = node_with("Pad", 2, {a_str("mode", "wrap")});
  expect_values(run_kernel(w, 19, {ft({3}, {1, 2, 3}), it64({2}, {1, 2})})[0], {3, 1, 2, 3, 1, 2});
  EXPECT_THROW(run_kernel(w, 18, {ft({3}, {1, 2, 3}), it64({2}, {1, 2})}), Error);
}

TEST(KernelsPad, NegativePadsCropFirst) {
  using exec::PadMode;
  // x = [1 2 3 4 5] (indices 0..4). ORT crops first, then pads the cropped axis (values checked against ORT 1.32).
  EXPECT_EQ(exec::pad_axis_map(5, -1, 1, PadMode::Wrap), (std::vector<int64_t>{1, 2, 3, 4, 1}));        // 2 3 4 5 2
  EXPECT_EQ(exec::pad_axis_map(5, 2, -2, PadMode::Wrap), (std::vector<int64_t>{1, 2, 0, 1, 2}));        // 2 3 1 2 3
  EXPECT_EQ(exec::pad_axis_map(5, -2, 3, PadMode::Wrap), (std::vector<int64_t>{2, 3, 4, 2, 3, 4}));     // 3 4 5 3 4 5
  EXPECT_EQ(exec::pad_axis_map(5, -1, 2, PadMode::Reflect), (std::vector<int64_t>{1, 2, 3, 4, 3, 2}));  // 2 3 4 5 4 3
  EXPECT_EQ(exec::pad_axis_map(5, 2, -2, PadMode::Reflect), (std::vector<int64_t>{2, 1, 0, 1, 2}));     // 3 2 1 2 3
  EXPECT_EQ(exec::pad_axis_map(5, -4, 2, PadMode::Edge), (std::vector<int64_t>{4, 4, 4}));              // 5 5 5
  EXPECT_EQ(exec::pad_axis_map(5, 3, -4, PadMode::Edge), (std::vector<int64_t>{0, 0, 0, 0}));           // 1 1 1 1
  EXPECT_EQ(exec::pad_axis_map(5, -6, 2, PadMode::Constant), (std::vector<int64_t>{-1}));
  auto pad = [](const char* mode, std::vector<int64_t> pads) {
    ir::Node n = node_with("Pad", 2, {a_str("mode", mode)});
    n.name = "pd";
    return run_kernel(n, 19, {ft({5}, {1, 2, 3, 4, 5}), it64({2}, pads)});
  };
  expect_values(pad("wrap", {-2, 3})[0], {3, 4, 5, 3, 4, 5});
  expect_values(pad("reflect", {-1, 2})[0], {2, 3, 4, 5, 4, 3});
  expect_values(pad("edge", {-2, 3})[0], {3, 4, 5, 5, 5, 5});
  // ORT refuses these: reflect reaching past the cropped axis, and non-constant pads of an axis cropped away.
  for (auto [mode, pads, msg] : std::vector<std::tuple<const char*, std::vector<int64_t>, const char*>>{
           {"reflect", {-2, 3}, "a pad of 3 needs at least 4 elements after cropping, the axis has 3"},
           {"reflect", {-4, 1}, "a pad of 1 needs at least 2 elements after cropping, the axis has 1"},
           {"edge", {-5, 1}, "cannot pad axis 0 in edge mode: pads [-5,1] leave none of its 5 elements"},
           {"wrap", {2, -6}, "cannot pad axis 0 in wrap mode"}}) {
    try {
      pad(mode, pads);
      ADD_FAILURE() << mode << " " << shape_str(pads) << " ran";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'pd'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(msg), std::string::npos) << e.what();
    }
  }
  expect_values(pad("reflect", {-4, 0})[0], {5});  // nothing to pad: fine with one element left
  // Uncropped, a reflect pad beyond size - 1 reflects again (the spec's example, numpy, onnx.reference; ORT
  // refuses it): [1 2 3 4 5] with [0, 5] -> [1 2 3 4 5 4 3 2 1 2].
  expect_values(pad("reflect", {0, 5})[0], {1, 2, 3, 4, 5, 4, 3, 2, 1, 2});
}

TEST(KernelsPad, GatherByMapsMatchesNaive) {
  ThreadGuard g;
  std::mt19937 rng(31);
  const exec::PadMode modes[] = {exec::PadMode::Constant, exec::PadMode::Reflect, exec::PadMode::Edge,
                                 exec::PadMode::Wrap};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int it = 0; it < 40; ++it) {
      Shape s = random_shape(rng, 1 + static_cast<int>(rng() % 4), 6);
      if (it == 0) s = {3, 129, 67};
      std::vector<std::vector<int64_t>> maps;
      for (int64_t d : s) {
        int64_t pb = static_cast<int64_t>(rng() % 4) - 1, pe = static_cast<int64_t>(rng() % 4) - 1;
        maps.push_back(exec::pad_axis_map(d, pb, pe, modes[rng() % 4]));
      }
      Tensor x = random_bytes(DType::Float16, s, rng);
      Shape os;
      for (auto& m : maps) os.push_back(static_cast<int64_t>(m.size()));
      Tensor a(DType::Float16, os), b(DType::Float16, os);
      uint16_t fill = 0x3C00;
      exec::gather_by_maps(2, s, static_cast<const uint8_t*>(x.raw()), maps, reinterpret_cast<uint8_t*>(&fill),
                           static_cast<uint8_t*>(a.raw()));
      exec::gather_by_maps_naive(2, s, static_cast<const uint8_t*>(x.raw()), maps,
                                 reinterpret_cast<uint8_t*>(&fill), static_cast<uint8_t*>(b.raw()));
      EXPECT_TRUE(a.equals(b)) << shape_str(s);
    }
  }
}

// Constant mode's row-copy path against the general gather path (the reference), on random odd shapes with
// begin/end pads from -2 (crop) to 3, zero and non-zero fill values, 1-8 byte elements, 1 and 2 threads; plus the
// NCHW / NHWC spatial padding of CNN activations the fast path is for.
TEST(KernelsPad, ConstantFastPathMatchesGeneral) {
  ThreadGuard g;
  std::mt19937 rng(2024);
  const DType types[] = {DType::UInt8, DType::Float16, DType::Float, DType::Int64, DType::Bool};
  auto node = make_node("Pad", 2);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int it = 0; it < 150; ++it) {
      const int rank = static_cast<int>(rng() % 6);
      Shape s = random_shape(rng, rank, 7);
      if (it % 10 == 3 && rank > 0) s[0] = 0;  // empty input: all fill (or empty output)
      std::vector<int64_t> pads(static_cast<size_t>(2 * rank), 0);
      for (int k = 0; k < rank; ++k) {
        if (rng() % 3 == 0) continue;  // unpadded axes (merged / folded by the fast path)
        pads[k] = static_cast<int64_t>(rng() % 6) - 2;
        pads[k + rank] = static_cast<int64_t>(rng() % 6) - 2;
        pads[k] = std::max(pads[k], -s[k]);
        pads[k + rank] = std::max(pads[k + rank], -(s[k] + pads[k]));
      }
      if (it == 1) {  // NCHW, spatial pads only
        s = {1, 16, 65, 63};
        pads = {0, 0, 1, 1, 0, 0, 1, 1};
      }
      if (it == 2) {  // NHWC, spatial pads only, asymmetric
        s = {2, 33, 31, 8};
        pads = {0, 0, 1, 0, 0, 2, 1, 0};
      }
      const DType dt = types[it % 5];
      Tensor x = random_bytes(dt, s, rng);
      if (dt == DType::Bool)
        for (int64_t i = 0; i < x.numel(); ++i) static_cast<uint8_t*>(x.raw())[i] &= 1;
      Tensor fill = random_bytes(dt, {}, rng);
      if (dt == DType::Bool) *static_cast<uint8_t*>(fill.raw()) = 1;
      if (it % 4 == 0) std::memset(fill.raw(), 0, fill.nbytes());
      Tensor fast = exec::pad_tensor(node, x, pads, exec::PadMode::Constant, fill);
      Tensor ref = exec::pad_tensor_general(node, x, pads, exec::PadMode::Constant, fill);
      EXPECT_TRUE(fast.equals(ref)) << shape_str(s) << " pads " << shape_str(pads) << " " << dtype_name(dt);
    }
  }
  // Same errors as the general path.
  Tensor x = iota_f({2, 3});
  EXPECT_THROW(exec::pad_tensor(node, x, {0, -4, 0, 0}, exec::PadMode::Constant, Tensor::scalar_float(0)), Error);
  EXPECT_THROW(exec::pad_tensor(node, x, {0, 1}, exec::PadMode::Constant, Tensor::scalar_float(0)), Error);
}
