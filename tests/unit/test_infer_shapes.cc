// Shape inference (src/ir/passes/infer_shapes*.cc) on hand-built graphs, against shapes worked out by hand, and
// the folding it enables (fold_constants on a Shape chain, fuse_matmul_add after a Flatten-like Reshape).
#include <gtest/gtest.h>

#include "ir/passes/infer_shapes.h"
#include "passes_test_util.h"

namespace oq {
namespace {
using namespace test_passes;
using ir::passes::infer_shapes;

std::vector<ir::Dim> dims(std::vector<int64_t> v) {  // -1: the symbol "N"; -2: unknown
  std::vector<ir::Dim> r;
  for (int64_t d : v) r.push_back(d >= 0 ? ir::Dim{d, ""} : d == -1 ? ir::Dim{-1, "N"} : ir::Dim{});
  return r;
}

TEST(InferShapes, ConvPoolByHand) {
  ir::Model m = model(13);
  m.graph.inputs = {vi("x", {1, 3, 17, 23})};
  m.graph.add_initializer("w", rnd({8, 3, 3, 3}, 1));
  ir::Node c = mk("Conv", {"x", "w"}, {"c"});
  c.set_attr_ints("strides", {2, 2});
  c.set_attr_string("auto_pad", "SAME_LOWER");  // ceil(17 / 2) = 9, ceil(23 / 2) = 12
  ir::Node p = mk("MaxPool", {"c"}, {"p"});
  p.set_attr_ints("kernel_shape", {3, 3});
  p.set_attr_ints("strides", {2, 2});
  p.set_attr_int("ceil_mode", 1);  // ceil((9 - 3) / 2) + 1 = 4, ceil((12 - 3) / 2) + 1 = 6
  ir::Node g = mk("GlobalAveragePool", {"p"}, {"g"});
  m.graph.nodes = {c, p, g};
  m.graph.outputs = {vi_any("g")};
  const auto s = infer_shapes(m);
  EXPECT_EQ(s.static_shape("c"), (Shape{1, 8, 9, 12}));
  EXPECT_EQ(s.static_shape("p"), (Shape{1, 8, 4, 6}));
  EXPECT_EQ(s.static_shape("g"), (Shape{1, 8, 1, 1}));
  EXPECT_EQ(s.channels("p"), 8);
  EXPECT_EQ(s.dtype("g"), DType::Float);
}

TEST(InferShapes, SymbolicBatchThroughShapeChain) {
  // x [N, 4, 3, 5] -> Reshape(x, Concat(Unsqueeze(Shape(x)[0]), [-1])) = [N, 60]; MatMul by [60, 7] = [N, 7]
  ir::Model m = model(13);
  m.graph.inputs = {vi("x", {-1, 4, 3, 5})};
  m.graph.add_initializer("zero", Tensor::scalar_int64(0));
  m.graph.add_initializer("ax", i64({1}, {0}));
  m.graph.add_initializer("m1", i64({1}, {-1}));
  m.graph.add_initializer("w", rnd({60, 7}, 2));
  ir::Node cat = mk("Concat", {"bu", "m1"}, {"ns"});
  cat.set_attr_int("axis", 0);
  m.graph.nodes = {mk("Shape", {"x"}, {"s"}), mk("Gather", {"s", "zero"}, {"b"}), mk("Unsqueeze", {"b", "ax"}, {"bu"}),
                   cat, mk("Reshape", {"x", "ns"}, {"flat"}), mk("MatMul", {"flat", "w"}, {"y"})};
  m.graph.outputs = {vi_any("y")};
  const auto s = infer_shapes(m);
  EXPECT_EQ(s.find("flat")->shape, dims({-1, 60}));
  EXPECT_EQ(s.find("y")->shape, dims({-1, 7}));
  EXPECT_EQ(s.rank("ns"), 1);
  EXPECT_FALSE(s.static_shape("y"));  // the batch is a symbol: not static
}

TEST(InferShapes, UnknownWhenInDoubt) {
  ir::Model m = model(13);
  m.graph.inputs = {vi("x", {2, 6}), vi("shape", {2}, DType::Int64)};
  ir::Node sq = mk("Squeeze", {"nz"}, {"sq"});  // no axes, dims unknown: which ones are 1 is not known
  m.graph.nodes = {mk("Reshape", {"x", "shape"}, {"r"}), mk("NonZero", {"x"}, {"nz"}), sq};
  m.graph.outputs = {vi_any("r"), vi_any("sq")};
  const auto s = infer_shapes(m);
  EXPECT_EQ(s.find("r")->shape, dims({-2, -2}));  // rank from the shape input's length, sizes unknown
  EXPECT_EQ(s.find("nz")->shape, dims({2, -2}));
  EXPECT_FALSE(s.rank("sq"));
}

TEST(InferShapes, SliceAndSplitByHand) {
  ir::Model m = model(18);
  m.graph.inputs = {vi("x", {10, 7})};
  for (auto [n, v] : std::vector<std::pair<const char*, std::vector<int64_t>>>{
           {"st", {-1, 100}}, {"en", {-100, 0}}, {"ax", {0, 1}}, {"sp", {-2, -1}}})
    m.graph.add_initializer(n, i64({2}, v));
  ir::Node split = mk("Split", {"x"}, {"a", "b", "c"});
  split.set_attr_int("axis", 1);
  split.set_attr_int("num_outputs", 3);  // 7 in 3: ceil = 3, 3, 1
  // rows from 9 down by 2 to the start: 9,7,5,3,1 (5); columns from 6 (clamped) down by 1 to 1: 6..1 (6)
  m.graph.nodes = {mk("Slice", {"x", "st", "en", "ax", "sp"}, {"y"}), split};
  m.graph.outputs = {vi_any("y")};
  const auto s = infer_shapes(m);
  EXPECT_EQ(s.static_shape("y"), (Shape{5, 6}));
  EXPECT_EQ(s.static_shape("a"), (Shape{10, 3}));
  EXPECT_EQ(s.static_shape("c"), (Shape{10, 1}));
}

TEST(InferShapes, FoldsShapeChainOfInferredShape) {
  // No value_info for the Conv output: the chain folds only through inference; the Reshape gets a constant shape.
  ir::Model m = model(13);
  m.graph.inputs = {vi("x", {1, 3, 4, 4})};
  m.graph.add_initializer("w", rnd({2, 3, 1, 1}, 3));
  m.graph.add_initializer("zero", Tensor::scalar_int64(0));
  m.graph.add_initializer("ax", i64({1}, {0}));
  m.graph.add_initializer("m1", i64({1}, {-1}));
  ir::Node cat = mk("Concat", {"bu", "m1"}, {"ns"});
  cat.set_attr_int("axis", 0);
  m.graph.nodes = {mk("Conv", {"x", "w"}, {"c"}), mk("Shape", {"c"}, {"s"}), mk("Gather", {"s", "zero"}, {"b"}),
                   mk("Unsqueeze", {"b", "ax"}, {"bu"}), cat, mk("Reshape", {"c", "ns"}, {"y"})};
  m.graph.outputs = {vi_any("y")};
  ir::passes::fold_constants(m);
  ASSERT_EQ(m.graph.nodes.size(), 2u);
  EXPECT_EQ(m.graph.nodes[1].op_type, "Reshape");
  const Tensor* ns = m.graph.find_initializer("ns") ? &m.graph.find_initializer("ns")->tensor : nullptr;
  ASSERT_TRUE(ns);
  EXPECT_EQ(ns->to_int64s(), (std::vector<int64_t>{1, -1}));
}

}  // namespace
}  // namespace oq
