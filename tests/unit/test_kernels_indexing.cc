// Index kernels (GatherND, ScatterND, ScatterElements, OneHot, NonZero, Trilu): hand-computed values (the
// spec's examples among them), dtypes (strings, bool, Float16), opset rules and errors naming the node.
// Random odd shapes are compared with onnxruntime in tests/python/test_kernels_index_ort.py.
#include <limits>

#include "core/dtype.h"
#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;

namespace {

Tensor i32(Shape s, std::vector<int32_t> v) { return Tensor::from_vector(DType::Int32, std::move(s), v); }
Tensor strs(Shape s, std::vector<std::string> v) {
  Tensor t(DType::String, std::move(s));
  t.strings() = std::move(v);
  return t;
}
Tensor iota(Shape s) {
  Tensor t(DType::Float, s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}
ir::Node node_attr(const std::string& op, size_t n_in, const std::string& attr = "", int64_t v = 0) {
  ir::Node n = make_node(op, n_in);
  if (!attr.empty()) n.set_attr_int(attr, v);
  return n;
}
ir::Node scatter_node(const std::string& op, const std::string& red, int64_t axis = 0) {
  ir::Node n = make_node(op, 3);
  if (!red.empty()) n.set_attr_string("reduction", red);
  if (op == "ScatterElements") n.set_attr_int("axis", axis);
  return n;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ GatherND
TEST(KernelsIndexing, GatherNDSpecExamples) {
  auto n = make_node("GatherND", 2);
  Tensor d2 = ft({2, 2}, {0, 1, 2, 3}), d3 = iota({2, 2, 2});
  auto y = run_kernel(n, 13, {d2, it64({2, 2}, {0, 0, 1, 1})})[0];  // example 1
  EXPECT_EQ(shape_str(y.shape()), "[2]");
  expect_values(y, {0, 3});
  y = run_kernel(n, 13, {d2, it64({2, 1}, {1, 0})})[0];  // example 2
  EXPECT_EQ(shape_str(y.shape()), "[2,2]");
  expect_values(y, {2, 3, 0, 1});
  y = run_kernel(n, 13, {d3, it64({2, 2}, {0, 1, 1, 0})})[0];  // example 3
  expect_values(y, {2, 3, 4, 5});
  y = run_kernel(n, 13, {d3, it64({2, 1, 2}, {0, 1, 1, 0})})[0];  // example 4
  EXPECT_EQ(shape_str(y.shape()), "[2,1,2]");
  expect_values(y, {2, 3, 4, 5});
  y = run_kernel(node_attr("GatherND", 2, "batch_dims", 1), 13, {d3, it64({2, 1}, {1, 0})})[0];  // example 5
  EXPECT_EQ(shape_str(y.shape()), "[2,2]");
  expect_values(y, {2, 3, 4, 5});
}

TEST(KernelsIndexing, GatherNDBatchDimsNegativeIndicesAndStrings) {
  // data [2,3,4], batch_dims 1, tuples of 2 -> scalars per tuple; negative indices count from the end.
  auto n = node_attr("GatherND", 2, "batch_dims", 1);
  auto y = run_kernel(n, 13, {iota({2, 3, 4}), it64({2, 2, 2}, {0, 0, -1, -1, 2, 1, 0, 3})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[2,2]");
  expect_values(y, {0, 11, 12 + 9, 12 + 3});
  auto s = run_kernel(make_node("GatherND", 2), 13, {strs({2, 2}, {"a", "b", "c", "d"}), it64({2, 1}, {1, 0})})[0];
  EXPECT_EQ(s.dtype(), DType::String);
  EXPECT_EQ(s.strings(), (std::vector<std::string>{"c", "d", "a", "b"}));
}

TEST(KernelsIndexing, GatherNDErrors) {
  auto n = make_node("GatherND", 2);
  EXPECT_NE(kernel_error(n, 13, {iota({2, 2}), it64({1, 2}, {0, 2})}).find("out of range"), std::string::npos);
  EXPECT_NE(kernel_error(n, 13, {iota({2, 2}), it64({1, 3}, {0, 0, 0})}).find("must be in [1, 2]"), std::string::npos);
  EXPECT_NE(kernel_error(n, 13, {iota({2, 2}), i32({1, 2}, {0, 0})}).find("must be int64"), std::string::npos);
  EXPECT_NE(kernel_error(node_attr("GatherND", 2, "batch_dims", 2), 13, {iota({2, 2}), it64({2, 1}, {0, 0})})
                .find("batch_dims 2"),
            std::string::npos);
  EXPECT_NE(kernel_error(node_attr("GatherND", 2, "batch_dims", 1), 13, {iota({2, 2}), it64({3, 1}, {0, 0, 0})})
                .find("batch dim 0 differs"),
            std::string::npos);
  // batch_dims arrives with opset 12; errors name the node.
  std::string e = kernel_error(node_attr("GatherND", 2, "batch_dims", 0), 11, {iota({2}), it64({1, 1}, {0})});
  EXPECT_NE(e.find("needs opset 12"), std::string::npos);
  EXPECT_NE(e.find("t_GatherND"), std::string::npos);
}

// ----------------------------------------------------------------------------------------------- ScatterND
TEST(KernelsIndexing, ScatterNDSpecExamples) {
  auto y = run_kernel(scatter_node("ScatterND", ""), 13,
                      {ft({8}, {1, 2, 3, 4, 5, 6, 7, 8}), it64({4, 1}, {4, 3, 1, 7}), ft({4}, {9, 10, 11, 12})})[0];
  expect_values(y, {1, 11, 3, 10, 9, 6, 7, 12});
  // Example 2 shape: slices of [4, 4] into [4, 4, 4] at rows 0 and 2.
  Tensor data = iota({4, 4, 4}), upd(DType::Float, {2, 4, 4});
  for (int64_t i = 0; i < 32; ++i) upd.data<float>()[i] = 100.f + static_cast<float>(i);
  y = run_kernel(scatter_node("ScatterND", ""), 13, {data, it64({2, 1}, {0, -2}), upd})[0];
  std::vector<double> want = data.to_doubles();
  for (int64_t i = 0; i < 16; ++i) want[i] = 100 + i, want[32 + i] = 116 + i;
  expect_values(y, want);
  EXPECT_EQ(data.data<float>()[0], 0.f);  // the input is not modified
}

TEST(KernelsIndexing, ScatterNDReductionsInOrder) {
  Tensor data = ft({2, 2}, {1, 2, 3, 4});
  Tensor ind = it64({3, 2}, {0, 1, 0, 1, 1, 0});
  Tensor upd = ft({3}, {5, -7, 0.5f});
  expect_values(run_kernel(scatter_node("ScatterND", "add"), 16, {data, ind, upd})[0], {1, 0, 3.5, 4});
  expect_values(run_kernel(scatter_node("ScatterND", "mul"), 16, {data, ind, upd})[0], {1, -70, 1.5, 4});
  expect_values(run_kernel(scatter_node("ScatterND", "max"), 18, {data, ind, upd})[0], {1, 5, 3, 4});
  expect_values(run_kernel(scatter_node("ScatterND", "min"), 18, {data, ind, upd})[0], {1, -7, 0.5, 4});
  expect_values(run_kernel(scatter_node("ScatterND", "none"), 16, {data, ind, upd})[0], {1, -7, 0.5, 4});
  // Integers wrap; bool add is logical or; Float16 is computed in float.
  auto yi = run_kernel(scatter_node("ScatterND", "add"), 16,
                       {i32({2}, {2147483647, 0}), it64({1, 1}, {0}), i32({1}, {1})})[0];
  EXPECT_EQ(yi.data<int32_t>()[0], -2147483647 - 1);
  Tensor b = Tensor::from_vector(DType::Bool, {3}, std::vector<uint8_t>{0, 1, 0});
  auto yb = run_kernel(scatter_node("ScatterND", "add"), 16,
                       {b, it64({2, 1}, {0, 1}), Tensor::from_vector(DType::Bool, {2}, std::vector<uint8_t>{1, 1})})[0];
  expect_values(yb, {1, 1, 0});
  Tensor h = ft({2}, {1.5f, 2}).cast(DType::Float16);
  auto yh = run_kernel(scatter_node("ScatterND", "mul"), 16, {h, it64({1, 1}, {1}), ft({1}, {3}).cast(DType::Float16)})[0];
  EXPECT_EQ(yh.dtype(), DType::Float16);
  expect_values(yh, {1.5, 6});
}

TEST(KernelsIndexing, ScatterNDStringsAndErrors) {
  auto y = run_kernel(scatter_node("ScatterND", ""), 13, {strs({3}, {"a", "b", "c"}), it64({1, 1}, {2}), strs({1}, {"z"})})[0];
  EXPECT_EQ(y.strings(), (std::vector<std::string>{"a", "b", "z"}));
  EXPECT_NE(kernel_error(scatter_node("ScatterND", "add"), 16, {strs({1}, {"a"}), it64({1, 1}, {0}), strs({1}, {"z"})})
                .find("not defined for type STRING"),
            std::string::npos);
  EXPECT_NE(kernel_error(scatter_node("ScatterND", "max"), 16, {}).find("needs opset 18"), std::string::npos);
  EXPECT_NE(kernel_error(scatter_node("ScatterND", "add"), 13, {}).find("needs opset 16"), std::string::npos);
  EXPECT_NE(kernel_error(scatter_node("ScatterND", "sum"), 18, {}).find("unknown reduction 'sum'"), std::string::npos);
  EXPECT_NE(kernel_error(scatter_node("ScatterND", ""), 13, {iota({2, 2}), it64({1, 1}, {0}), iota({1, 3})})
                .find("updates shape [1,3] must be [1,2]"),
            std::string::npos);
  EXPECT_NE(kernel_error(scatter_node("ScatterND", ""), 13, {iota({2, 2}), it64({1, 1}, {-3}), iota({1, 2})})
                .find("out of range"),
            std::string::npos);
}

// ----------------------------------------------------------------------------------------- ScatterElements
TEST(KernelsIndexing, ScatterElementsValues) {
  // Spec example 1 (axis 0) and 2 (axis 1).
  auto y = run_kernel(scatter_node("ScatterElements", "", 0), 13,
                      {ft({3, 3}, std::vector<float>(9, 0.f)), it64({2, 3}, {1, 0, 2, 0, 2, 1}),
                       ft({2, 3}, {1, 1.1f, 1.2f, 2, 2.1f, 2.2f})})[0];
  expect_values(y, {2, 1.1, 0, 1, 0, 2.2, 0, 2.1, 1.2});
  y = run_kernel(scatter_node("ScatterElements", "", 1), 13,
                 {ft({1, 5}, {1, 2, 3, 4, 5}), i32({1, 2}, {1, 3}), ft({1, 2}, {1.1f, 2.1f})})[0];
  expect_values(y, {1, 1.1, 3, 2.1, 5});
  // Negative axis and index; duplicate indices with add accumulate.
  y = run_kernel(scatter_node("ScatterElements", "add", -1), 16,
                 {ft({1, 5}, {1, 2, 3, 4, 5}), it64({1, 2}, {1, 1}), ft({1, 2}, {1.1f, 2.1f})})[0];
  expect_values(y, {1, 5.2, 3, 4, 5});
  y = run_kernel(scatter_node("ScatterElements", "max", 1), 18,
                 {ft({1, 3}, {1, 5, 3}), it64({1, 3}, {-1, 1, -1}), ft({1, 3}, {4, 2, 2})})[0];
  expect_values(y, {1, 5, 4});
  y = run_kernel(scatter_node("ScatterElements", "min", 0), 18,
                 {i32({3}, {1, 5, 3}), it64({2}, {1, 1}), i32({2}, {4, 2})})[0];
  expect_values(y, {1, 2, 3});
  auto s = run_kernel(scatter_node("ScatterElements", "", 0), 13, {strs({2}, {"x", "y"}), it64({1}, {1}), strs({1}, {"q"})})[0];
  EXPECT_EQ(s.strings(), (std::vector<std::string>{"x", "q"}));
}

TEST(KernelsIndexing, ScatterElementsErrors) {
  auto n = scatter_node("ScatterElements", "", 0);
  EXPECT_NE(kernel_error(n, 13, {iota({2, 2}), it64({1, 2}, {0, 2}), iota({1, 2})}).find("out of range"), std::string::npos);
  EXPECT_NE(kernel_error(n, 13, {iota({2, 2}), it64({2}, {0, 1}), iota({2})}).find("rank"), std::string::npos);
  EXPECT_NE(kernel_error(n, 13, {iota({2, 2}), it64({1, 3}, {0, 0, 0}), iota({1, 3})}).find("exceeds data shape"),
            std::string::npos);
  EXPECT_NE(kernel_error(n, 13, {iota({2, 2}), it64({1, 2}, {0, 0}), iota({2, 1})}).find("updates shape"), std::string::npos);
  EXPECT_NE(kernel_error(scatter_node("ScatterElements", "", 2), 13, {iota({2, 2}), it64({1, 2}, {0, 0}), iota({1, 2})})
                .find("axis 2 is out of range"),
            std::string::npos);
}

// -------------------------------------------------------------------------------------------------- OneHot
TEST(KernelsIndexing, OneHotAxesAndValues) {
  // Default axis -1, negative and out-of-range indices (all off), float indices truncated.
  auto n = make_node("OneHot", 3);
  auto y = run_kernel(n, 11, {it64({4}, {1, -1, 3, 0}), it64({}, {3}), ft({2}, {-2, 5})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[4,3]");
  expect_values(y, {-2, 5, -2, -2, -2, 5, -2, -2, -2, 5, -2, -2});
  y = run_kernel(n, 11, {ft({2}, {1.9f, -0.5f}), ft({1}, {2.7f}), ft({2}, {0, 1})})[0];  // depth 2; -0.5 -> 0
  expect_values(y, {0, 1, 1, 0});
  // axis 0 on [2, 2] indices -> [depth, 2, 2]; int32 values.
  y = run_kernel(node_attr("OneHot", 3, "axis", 0), 11,
                 {it64({2, 2}, {0, 2, 1, 5}), i32({}, {3}), i32({2}, {0, 7})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[3,2,2]");
  EXPECT_EQ(y.dtype(), DType::Int32);
  expect_values(y, {7, 0, 0, 0, 0, 0, 7, 0, 0, 7, 0, 0});
  y = run_kernel(node_attr("OneHot", 3, "axis", -2), 9, {it64({2}, {1, 0}), it64({}, {2}), strs({2}, {"off", "on"})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[2,2]");
  EXPECT_EQ(y.strings(), (std::vector<std::string>{"off", "on", "on", "off"}));
}

TEST(KernelsIndexing, OneHotErrors) {
  EXPECT_NE(kernel_error(node_attr("OneHot", 3, "axis", 2), 11, {it64({2}, {0, 1}), it64({}, {2}), ft({2}, {0, 1})})
                .find("axis 2 is out of range [-2, 1]"),
            std::string::npos);
  EXPECT_NE(kernel_error(make_node("OneHot", 3), 11, {it64({2}, {0, 1}), it64({}, {2}), ft({3}, {0, 1, 2})}).find("values"),
            std::string::npos);
  EXPECT_NE(kernel_error(make_node("OneHot", 3), 11, {it64({2}, {0, 1}), it64({}, {-2}), ft({2}, {0, 1})}).find("depth"),
            std::string::npos);
  EXPECT_NE(kernel_error(make_node("OneHot", 3), 11, {it64({}, {0}), it64({}, {2}), ft({2}, {0, 1})}).find("rank >= 1"),
            std::string::npos);
}

// ------------------------------------------------------------------------------------------------- NonZero
TEST(KernelsIndexing, NonZeroDtypes) {
  auto n = make_node("NonZero", 1);
  auto y = run_kernel(n, 13, {ft({2, 3}, {0, 1, 0, -0.f, NAN, 2})})[0];
  EXPECT_EQ(y.dtype(), DType::Int64);
  EXPECT_EQ(shape_str(y.shape()), "[2,3]");
  expect_values(y, {0, 1, 1, 1, 1, 2});
  y = run_kernel(n, 13, {ft({3}, {0, -0.f, 1}).cast(DType::Float16)})[0];
  expect_values(y, {2});
  y = run_kernel(n, 13, {strs({2, 2}, {"", "a", "b", ""})})[0];
  expect_values(y, {0, 1, 1, 0});
  y = run_kernel(n, 13, {Tensor::from_vector(DType::Bool, {4}, std::vector<uint8_t>{0, 0, 0, 0})})[0];
  EXPECT_EQ(shape_str(y.shape()), "[1,0]");
  y = run_kernel(n, 9, {Tensor::scalar_int64(4)})[0];  // scalar: [0, count] per the spec
  EXPECT_EQ(shape_str(y.shape()), "[0,1]");
}

// --------------------------------------------------------------------------------------------------- Trilu
TEST(KernelsIndexing, TriluUpperLowerK) {
  Tensor x = iota({3, 4});
  auto up = node_attr("Trilu", 2), lo = node_attr("Trilu", 2, "upper", 0);
  expect_values(run_kernel(up, 14, {x, Tensor()})[0], {0, 1, 2, 3, 0, 5, 6, 7, 0, 0, 10, 11});
  expect_values(run_kernel(up, 14, {x, it64({}, {1})})[0], {0, 1, 2, 3, 0, 0, 6, 7, 0, 0, 0, 11});
  expect_values(run_kernel(up, 14, {x, it64({}, {-1})})[0], {0, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11});
  expect_values(run_kernel(lo, 14, {x, Tensor()})[0], {0, 0, 0, 0, 4, 5, 0, 0, 8, 9, 10, 0});
  expect_values(run_kernel(lo, 14, {x, it64({}, {-2})})[0], {0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0});
  expect_values(run_kernel(lo, 14, {x, it64({}, {2})})[0], {0, 1, 2, 0, 4, 5, 6, 7, 8, 9, 10, 11});
  // k far outside the matrix (no overflow): everything kept or zeroed.
  const int64_t big = std::numeric_limits<int64_t>::max(), small = std::numeric_limits<int64_t>::min();
  expect_values(run_kernel(up, 14, {x, it64({}, {big})})[0], std::vector<double>(12, 0));
  expect_values(run_kernel(up, 14, {x, it64({}, {small})})[0], x.to_doubles());
  expect_values(run_kernel(lo, 14, {x, it64({}, {small})})[0], std::vector<double>(12, 0));
  expect_values(run_kernel(lo, 14, {x, it64({}, {big})})[0], x.to_doubles());
}

TEST(KernelsIndexing, TriluBatchesAndDtypes) {
  auto y = run_kernel(node_attr("Trilu", 1, "upper", 0), 14, {iota({2, 2, 2})})[0];
  expect_values(y, {0, 0, 2, 3, 4, 0, 6, 7});
  auto s = run_kernel(node_attr("Trilu", 1), 14, {strs({2, 2}, {"a", "b", "c", "d"})})[0];
  EXPECT_EQ(s.strings(), (std::vector<std::string>{"a", "b", "", "d"}));
  auto h = run_kernel(node_attr("Trilu", 1), 14, {ft({2, 2}, {1, 2, 3, 4}).cast(DType::BFloat16)})[0];
  EXPECT_EQ(h.dtype(), DType::BFloat16);
  expect_values(h, {1, 2, 0, 4});
  EXPECT_NE(kernel_error(node_attr("Trilu", 1), 14, {iota({3})}).find("rank >= 2"), std::string::npos);
  EXPECT_NE(kernel_error(node_attr("Trilu", 2), 14, {iota({2, 2}), i32({}, {1})}).find("k must be int64"), std::string::npos);
  EXPECT_EQ(exec::find_kernel("Trilu", 13), nullptr);  // Trilu arrives with opset 14
}
