// Shape inference (src/ir/passes/infer_shapes*.cc) on hand-built graphs, against shapes worked out by hand, and
// the folding it enables (fold_constants on a Shape chain, fuse_matmul_add after a Flatten-like Reshape).
#include <gtest/gtest.h>

#include <array>
#include <climits>

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

// x -> Conv (2 channels) -> c -> Reshape(c, Concat(Unsqueeze(Shape(c)[0]), [-1])) -> y: x.view(x.size(0), -1).
ir::Model flatten_chain(int64_t batch) {
  ir::Model m = model(13);
  m.graph.inputs = {vi("x", {batch, 3, 4, 4})};
  m.graph.add_initializer("w", rnd({2, 3, 1, 1}, 3));
  m.graph.add_initializer("zero", Tensor::scalar_int64(0));
  m.graph.add_initializer("ax", i64({1}, {0}));
  m.graph.add_initializer("m1", i64({1}, {-1}));
  ir::Node cat = mk("Concat", {"bu", "m1"}, {"ns"});
  cat.set_attr_int("axis", 0);
  m.graph.nodes = {mk("Conv", {"x", "w"}, {"c"}), mk("Shape", {"c"}, {"s"}), mk("Gather", {"s", "zero"}, {"b"}),
                   mk("Unsqueeze", {"b", "ax"}, {"bu"}), cat, mk("Reshape", {"c", "ns"}, {"y"})};
  m.graph.outputs = {vi_any("y")};  // declared without a shape
  return m;
}

TEST(InferShapes, FoldsShapeChainOfInferredShape) {
  // No value_info for the Conv output: the chain folds only through inference; the Reshape gets a constant shape.
  ir::Model m = flatten_chain(1);
  ir::passes::fold_constants(m);
  ASSERT_EQ(m.graph.nodes.size(), 2u);
  EXPECT_EQ(m.graph.nodes[1].op_type, "Reshape");
  const Tensor* ns = m.graph.find_initializer("ns") ? &m.graph.find_initializer("ns")->tensor : nullptr;
  ASSERT_TRUE(ns);
  EXPECT_EQ(ns->to_int64s(), (std::vector<int64_t>{1, -1}));
}

// The "make the batch dynamic" recipe: value_info of a batch-1 export (c: [1, 2, 4, 4]) with the graph input's batch
// set to N. The inferred N stays (quant_pre_process ignores value_info), so the Shape does not fold into [1, -1];
// a declared dim only gives the rank of an output inference knows nothing of (a custom op's), symbols kept and
// sizes unknown; written value_info and an output declared without a shape then say what was inferred.
TEST(InferShapes, DeclaredIntermediateDimsDoNotOverrideInferred) {
  ir::Model m = flatten_chain(-1);
  m.graph.value_info = {vi("c", {1, 2, 4, 4}), vi("s", {4}, DType::Int64)};
  const auto s = infer_shapes(m);
  EXPECT_EQ(s.find("c")->shape, dims({-1, 2, 4, 4}));
  EXPECT_EQ(s.find("y")->shape, dims({-1, 32}));
  EXPECT_EQ(ir::passes::fold_constants(m).shapes, 0u);
  EXPECT_EQ(m.graph.find_initializer("ns"), nullptr);
  ir::passes::declare_inferred_shapes(m);
  EXPECT_EQ(m.graph.find_value_info("c")->shape, dims({-1, 2, 4, 4}));
  EXPECT_EQ(m.graph.outputs[0].shape, dims({-1, 32}));
  // Through the executor: a batch of 3 runs (a folded [1, -1] would give a [1, 96] output).
  auto r = run(m, {{"x", rnd({3, 3, 4, 4}, 4)}});
  EXPECT_EQ(r[0].shape(), (Shape{3, 32}));

  // A custom op's output, declared [1, N, 7]: rank 3, the symbol kept, the sizes unknown.
  ir::Model c = model(13);
  c.graph.inputs = {vi("x", {-1, 3})};
  ir::Node custom = mk("Mystery", {"x"}, {"u"});
  custom.domain = "example.custom";
  c.graph.nodes = {custom, mk("Relu", {"u"}, {"v"})};
  c.graph.value_info = {vi("u", {1, -1, 7})};
  c.graph.outputs = {vi_any("v")};
  const auto t = infer_shapes(c);
  EXPECT_EQ(t.find("u")->shape, dims({-2, -1, -2}));
  EXPECT_EQ(t.dtype("u"), DType::Float);
  EXPECT_EQ(t.find("v")->shape, dims({-2, -1, -2}));
  ir::passes::declare_inferred_shapes(c);
  EXPECT_EQ(c.graph.find_value_info("u")->shape, dims({-2, -1, -2}));
}

TEST(InferShapes, SliceStartsUnknown) {
  // starts a graph input, no axes: the axes are the first len(starts) ones, their sizes unknown (was: x's shape)
  ir::Model m = model(18);
  m.graph.inputs = {vi("x", {10, 6}), vi("st2", {2}, DType::Int64), vi("st1", {1}, DType::Int64),
                    vi("stn", {-1}, DType::Int64)};
  m.graph.add_initializer("e2", i64({2}, {100, 100}));
  m.graph.add_initializer("e1", i64({1}, {100}));
  m.graph.nodes = {mk("Slice", {"x", "st2", "e2"}, {"a"}), mk("Slice", {"x", "st1", "e1"}, {"b"}),
                   mk("Slice", {"x", "stn", "stn"}, {"c"}), mk("Slice", {"x", "e1", "st1"}, {"d"})};
  m.graph.outputs = {vi_any("a"), vi_any("b"), vi_any("c"), vi_any("d")};
  const auto s = infer_shapes(m);
  EXPECT_EQ(s.find("a")->shape, dims({-2, -2}));
  EXPECT_EQ(s.find("b")->shape, dims({-2, 6}));
  EXPECT_EQ(s.find("c")->shape, dims({-2, -2}));  // how many axes is not known
  EXPECT_EQ(s.find("d")->shape, dims({-2, 6}));   // ends unknown: the count from starts
}

TEST(InferShapes, SliceHugeStepNoOverflow) {
  // (end - start + step - 1) / step overflowed for |step| near INT64_MAX: each of these takes one element
  constexpr int64_t kMax = INT64_MAX, kMin = INT64_MIN;
  ir::Model m = model(18);
  m.graph.inputs = {vi("x", {7, 9})};
  const std::vector<std::array<int64_t, 3>> cases = {{1, 9, kMax}, {5, -kMax, -kMax}, {8, kMin, kMin},
                                                     {0, kMax, kMax}, {-1, kMin, kMin}};
  m.graph.add_initializer("ax", i64({1}, {1}));
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string i = std::to_string(k);
    m.graph.add_initializer("s" + i, i64({1}, {cases[k][0]}));
    m.graph.add_initializer("e" + i, i64({1}, {cases[k][1]}));
    m.graph.add_initializer("p" + i, i64({1}, {cases[k][2]}));
    m.graph.nodes.push_back(mk("Slice", {"x", "s" + i, "e" + i, "ax", "p" + i}, {"y" + i}));
    m.graph.outputs.push_back(vi_any("y" + i));
  }
  // the value of a Shape chain sliced the same way: [7, 9, 4][2::-INT64_MAX] = [4]; [0::INT64_MAX] = [7]
  m.graph.inputs.push_back(vi("z", {7, 9, 4}));
  m.graph.add_initializer("zero", i64({1}, {0}));
  m.graph.add_initializer("two", i64({1}, {2}));
  m.graph.add_initializer("big", i64({1}, {kMax}));
  m.graph.add_initializer("nbig", i64({1}, {-kMax}));
  m.graph.nodes.push_back(mk("Shape", {"z"}, {"zs"}));
  m.graph.nodes.push_back(mk("Slice", {"zs", "two", "nbig", "zero", "nbig"}, {"v1"}));
  m.graph.nodes.push_back(mk("Slice", {"zs", "zero", "big", "zero", "big"}, {"v2"}));
  const auto s = infer_shapes(m);
  for (size_t k = 0; k < cases.size(); ++k) EXPECT_EQ(s.static_shape("y" + std::to_string(k)), (Shape{7, 1})) << k;
  EXPECT_EQ(s.find("v1")->value, dims({4}));
  EXPECT_EQ(s.find("v2")->value, dims({7}));
}

TEST(InferShapes, CastValueAsCastComputes) {
  ir::Model m = model(13);
  m.graph.add_initializer("v", i64({3}, {4294967295, 300, -1}));
  auto cast = [](const std::string& out, DType t) {
    ir::Node n = mk("Cast", {"v"}, {out});
    n.set_attr_int("to", static_cast<int64_t>(t));
    return n;
  };
  m.graph.nodes = {cast("i32", DType::Int32), cast("i8", DType::Int8), cast("u8", DType::UInt8),
                   cast("u64", DType::UInt64), cast("f", DType::Float), cast("b", DType::Bool)};
  // int32 arithmetic wraps: 2^31 - 1 + 1 is not 2^31
  m.graph.add_initializer("i32max", Tensor::from_vector(DType::Int32, {1}, std::vector<int32_t>{INT32_MAX}));
  m.graph.add_initializer("i32one", Tensor::from_vector(DType::Int32, {1}, std::vector<int32_t>{1}));
  m.graph.nodes.push_back(mk("Add", {"i32max", "i32one"}, {"sum"}));
  m.graph.outputs = {vi_any("i32")};
  const auto s = infer_shapes(m);
  auto vals = [](std::vector<int64_t> v) {
    std::vector<ir::Dim> r;
    for (int64_t x : v) r.push_back(ir::Dim{x, ""});
    return r;
  };
  EXPECT_EQ(s.find("i32")->value, vals({-1, 300, -1}));
  EXPECT_EQ(s.find("i8")->value, vals({-1, 44, -1}));
  EXPECT_EQ(s.find("u8")->value, vals({255, 44, 255}));
  EXPECT_FALSE(s.find("u64")->value);  // -1 is 2^64 - 1 there
  EXPECT_FALSE(s.find("f")->value);
  EXPECT_FALSE(s.find("b")->value);
  ASSERT_TRUE(s.find("sum")->value);
  EXPECT_EQ(s.find("sum")->value->at(0).value, INT64_MIN);  // unknown
}

TEST(InferShapes, PReluBroadcastsBothWays) {
  ir::Model m = model(16);
  m.graph.inputs = {vi("x", {3, 1})};
  m.graph.add_initializer("sl", rnd({3, 4}, 5));
  m.graph.nodes = {mk("PRelu", {"x", "sl"}, {"y"})};
  m.graph.outputs = {vi_any("y")};
  EXPECT_EQ(infer_shapes(m).static_shape("y"), (Shape{3, 4}));
}

TEST(InferShapes, MalformedAttributesNoCrash) {
  // Negative / huge attribute values and overflowing dim products: the output is unknown, never a crash or a
  // wrapped size.
  constexpr int64_t kBig = int64_t{1} << 32, kMax = INT64_MAX;
  ir::Model m = model(18);
  m.graph.inputs = {vi("x", {3, 4}), vi("x4", {1, 4, 2, 2}), vi("big", {kMax / 2, 4}),
                    vi("len", {int64_t{1} << 40}, DType::Int64)};
  m.graph.add_initializer("gi", i64({2, 1}, {0, 0}));
  m.graph.add_initializer("rep", i64({2}, {kMax, 3}));
  m.graph.add_initializer("pads", i64({4}, {kMax, 0, kMax, 0}));
  m.graph.add_initializer("r0", i64({}, {INT64_MIN}));
  m.graph.add_initializer("r1", i64({}, {kMax}));
  m.graph.add_initializer("r2", i64({}, {1}));
  m.graph.add_initializer("w", rnd({2, 4, 1, 1}, 6));
  auto with = [](ir::Node n, const std::string& a, int64_t v) {
    n.set_attr_int(a, v);
    return n;
  };
  ir::Node conv = mk("Conv", {"x4", "w"}, {"cv"});
  conv.set_attr_ints("dilations", {kMax, 1});
  conv.set_attr_ints("kernel_shape", {3, 1});
  ir::Node tr = mk("Transpose", {"x"}, {"tr"});
  tr.set_attr_ints("perm", {0, 0});
  ir::Node split0 = mk("Split", {"x"}, {}, "split_none");
  ir::Node einsum = mk("Einsum", {"x"}, {"es"});
  einsum.set_attr_string("equation", "..");  // not an ellipsis: invalid, was inferred as a scalar
  m.graph.add_initializer("dup", i64({2}, {0, 0}));
  m.graph.add_initializer("one2", i64({2}, {1, 2}));
  m.graph.nodes = {with(mk("GatherND", {"x", "gi"}, {"gnd"}), "batch_dims", -5),
                   with(mk("GatherND", {"x", "gi"}, {"gnd2"}), "batch_dims", kMax),
                   with(mk("DepthToSpace", {"x4"}, {"d2s"}), "blocksize", kBig),
                   with(mk("SpaceToDepth", {"x4"}, {"s2d"}), "blocksize", kBig),
                   with(mk("SpaceToDepth", {"x4"}, {"s2d2"}), "blocksize", -2),
                   mk("Tile", {"x", "rep"}, {"tl"}), mk("Pad", {"x", "pads"}, {"pd"}),
                   mk("Reshape", {"x", "len"}, {"rs"}), mk("ConstantOfShape", {"len"}, {"cs"}),
                   with(mk("Concat", {"big", "big", "big"}, {"cc"}), "axis", 0), mk("Range", {"r0", "r1", "r2"}, {"rg"}),
                   conv, tr, split0, with(mk("EyeLike", {"x"}, {"ey"}), "dtype", 12345),
                   with(mk("RoiAlign", {"x4", "gi", "gi"}, {"ra"}), "output_height", -3),
                   with(mk("Split", {"x"}, {"sp1"}), "num_outputs", 0), einsum,
                   mk("Slice", {"x", "dup", "one2", "dup"}, {"sld"})};
  m.graph.outputs = {vi_any("gnd")};
  const auto s = infer_shapes(m);
  EXPECT_FALSE(s.rank("gnd"));
  EXPECT_FALSE(s.rank("gnd2"));
  EXPECT_EQ(s.find("d2s")->shape, dims({-2, -2, -2, -2}));
  EXPECT_EQ(s.find("s2d")->shape, dims({-2, -2, -2, -2}));
  EXPECT_EQ(s.find("s2d2")->shape, dims({-2, -2, -2, -2}));
  EXPECT_EQ(s.find("tl")->shape, dims({-2, 12}));
  EXPECT_EQ(s.find("pd")->shape, dims({-2, 4}));
  EXPECT_FALSE(s.rank("rs"));
  EXPECT_FALSE(s.rank("cs"));
  EXPECT_EQ(s.find("cc")->shape, dims({-2, 4}));
  EXPECT_EQ(s.find("rg")->shape, dims({-2}));  // 2^64 - 1 elements: not an int64
  EXPECT_EQ(s.find("cv")->shape, dims({1, 2, -2, -2}));
  EXPECT_FALSE(s.rank("tr"));
  EXPECT_EQ(s.dtype("ey"), DType::Undefined);
  EXPECT_EQ(s.find("ra")->shape, dims({2, 4, -2, 1}));
  EXPECT_FALSE(s.rank("sp1"));  // num_outputs 0 with one output
  EXPECT_FALSE(s.rank("es"));
  EXPECT_FALSE(s.rank("sld"));  // axes [0, 0]
}

TEST(InferShapes, KernelsRefuseMalformedBlocksizeAndBatchDims) {
  // The nodes inference leaves unknown fail with an error naming the node when the model runs (no SIGFPE)
  for (const char* op : {"DepthToSpace", "SpaceToDepth"}) {
    ir::Model m = model(13);
    m.graph.inputs = {vi("x", {1, 4, 2, 2})};
    ir::Node n = mk(op, {"x"}, {"y"}, "blocky");
    n.set_attr_int("blocksize", int64_t{1} << 32);
    m.graph.nodes = {n};
    m.graph.outputs = {vi_any("y")};
    const std::string e = error_of([&] { run(m, {{"x", rnd({1, 4, 2, 2}, 7)}}); });
    EXPECT_NE(e.find("blocky"), std::string::npos) << e;
    EXPECT_NE(e.find("blocksize"), std::string::npos) << e;
  }
  ir::Model m = model(13);
  m.graph.inputs = {vi("x", {3, 4})};
  m.graph.add_initializer("gi", i64({2, 1}, {0, 0}));
  ir::Node n = mk("GatherND", {"x", "gi"}, {"y"}, "gnd");
  n.set_attr_int("batch_dims", -5);
  m.graph.nodes = {n};
  m.graph.outputs = {vi_any("y")};
  const std::string e = error_of([&] { run(m, {{"x", rnd({3, 4}, 8)}}); });
  EXPECT_NE(e.find("gnd"), std::string::npos) << e;
  EXPECT_NE(e.find("batch_dims"), std::string::npos) << e;
}

}  // namespace
}  // namespace oq
