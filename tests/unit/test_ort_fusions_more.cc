// More ORT level-1 rewrites of quant_pre_process reproduced by the pre-processing: fuse_reshape (ReshapeFusion),
// fuse_matmul_bn (MatmulBNFusion), fuse_pad_into_avgpool (PadFusion into an AveragePool) and ConvBNFusion's names on
// a ConvTranspose: hand-computed values, ORT's names, the rewritten graph computing the original's outputs in the
// executor, and the cases left alone. The conditions were found against ORT 1.32: tests/python/test_ort_fusions_more.py.
#include <gtest/gtest.h>

#include <map>

#include "ir/passes/passes.h"
#include "passes_test_util.h"

using namespace oq;
using namespace oq::test_passes;
namespace P = oq::ir::passes;

namespace {

// x [N,2,2,2] -> Relu -> p; Shape(shape_of) -> Gather(idx) -> Unsqueeze([0]) -> Concat(u, tail) -> Reshape(p) -> y.
ir::Model view_model(int64_t idx, const std::vector<int64_t>& tail, const std::string& shape_of = "p") {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {-1, 2, 2, 2})};
  g.add_initializer("idx", i64({}, {idx}));
  g.add_initializer("ax", i64({1}, {0}));
  g.add_initializer("tail", i64({static_cast<int64_t>(tail.size())}, tail));
  g.nodes = {mk("Relu", {"x"}, {"p"}), mk("Relu", {"x"}, {"q"}), mk("Shape", {shape_of}, {"s"}),
             mk("Gather", {"s", "idx"}, {"d"}), mk("Unsqueeze", {"d", "ax"}, {"u"}), mk("Concat", {"u", "tail"}, {"ns"}),
             mk("Reshape", {"p", "ns"}, {"y"})};
  g.nodes[5].set_attr_int("axis", 0);
  g.outputs = {vi_any("y"), vi_any("q")};
  return m;
}

}  // namespace

TEST(FuseReshape, TorchFlattenSymbolicBatch) {
  ir::Model m = view_model(0, {-1});
  ir::Model orig = m;
  EXPECT_EQ(P::fuse_reshape(m), 1u);
  // Shape, Gather, Unsqueeze, Concat gone; the new shape under the Concat's output name.
  ASSERT_EQ(m.graph.nodes.size(), 3u);
  EXPECT_EQ(count_op(m, "Reshape"), 1u);
  EXPECT_EQ(find_op(m, "Reshape")->inputs, (std::vector<std::string>{"p", "ns"}));
  EXPECT_EQ(init_values(m, "ns"), (std::vector<double>{0, -1}));
  for (const char* n : {"idx", "ax", "tail"}) EXPECT_EQ(m.graph.find_initializer(n), nullptr) << n;
  for (int64_t batch : {1, 3}) {
    auto x = rnd({batch, 2, 2, 2}, 7);
    auto r = run(m, {{"x", x}});
    EXPECT_EQ(r[0].shape(), (Shape{batch, 8}));
    expect_same(run(orig, {{"x", x}}), r);
  }
}

TEST(FuseReshape, ConstantsAndOneElementPiece) {
  // [N, 2, -1] from Gather(0), a constant 2 and a one-element C*H piece (Gather(1) * Gather(2)) -> [0, 2, -1].
  ir::Model m = view_model(0, {2});
  auto& g = m.graph;
  g.add_initializer("i1", i64({}, {1}));
  g.add_initializer("i2", i64({}, {2}));
  g.nodes.insert(g.nodes.begin() + 5, {mk("Gather", {"s", "i1"}, {"a"}), mk("Gather", {"s", "i2"}, {"b"}),
                                        mk("Mul", {"a", "b"}, {"ab"}), mk("Unsqueeze", {"ab", "ax"}, {"u2"})});
  g.nodes[9].inputs = {"u", "tail", "u2"};
  ir::Model orig = m;
  EXPECT_EQ(P::fuse_reshape(m), 1u);
  EXPECT_EQ(init_values(m, "ns"), (std::vector<double>{0, 2, -1}));
  EXPECT_EQ(count_op(m, "Shape") + count_op(m, "Gather") + count_op(m, "Mul") + count_op(m, "Concat"), 0u);
  auto x = rnd({3, 2, 2, 2}, 8);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
}

TEST(FuseReshape, LeftAlone) {
  // Gather(1) at position 0 is a one-element piece (-1), with the constant -1: two -1.
  ir::Model a = view_model(1, {-1});
  EXPECT_EQ(P::fuse_reshape(a), 0u);
  // The Shape of another tensor whose dim 0 is not the data's (Flatten axis 0: [1, N*8]; ORT compares the gathered
  // inferred dim): a -1 piece, with the constant -1 two. With axis 1 ([N, 8]) dim 0 is N in both: fused, [0, -1].
  ir::Model b = view_model(0, {-1}, "q");
  b.graph.nodes[1] = mk("Flatten", {"x"}, {"q"});
  b.graph.nodes[1].set_attr_int("axis", 0);
  EXPECT_EQ(P::fuse_reshape(b), 0u);
  ir::Model b1 = view_model(0, {-1}, "q");
  b1.graph.nodes[1] = mk("Flatten", {"x"}, {"q"});
  EXPECT_EQ(P::fuse_reshape(b1), 1u);
  EXPECT_EQ(init_values(b1, "ns"), (std::vector<double>{0, -1}));
  // allowzero = 1: a 0 would mean a zero dim.
  ir::Model c = view_model(0, {-1});
  c.opsets = {{"", 14}};
  c.graph.nodes.back().set_attr_int("allowzero", 1);
  EXPECT_EQ(P::fuse_reshape(c), 0u);
  // The Concat's output also a graph output.
  ir::Model d = view_model(0, {-1});
  d.graph.outputs.push_back(vi("ns", {2}, DType::Int64));
  EXPECT_EQ(P::fuse_reshape(d), 0u);
  // A Shape with start = 1 (opset 15): not the data's dims.
  ir::Model e = view_model(0, {-1});
  e.opsets = {{"", 15}};
  e.graph.nodes[2].set_attr_int("start", 1);
  EXPECT_EQ(P::fuse_reshape(e), 0u);
  for (ir::Model* mm : {&a, &b, &c, &d, &e}) EXPECT_EQ(count_op(*mm, "Concat"), 1u);
}

TEST(FuseReshape, ShapeOfATensorOfTheSameShape) {
  // Shape(q) with q = Relu(x) and p = Relu(x): both [N,2,2,2] by shape inference, as ORT's CompareShape sees them.
  ir::Model m = view_model(0, {-1}, "q");
  ir::Model orig = m;
  EXPECT_EQ(P::fuse_reshape(m), 1u);
  EXPECT_EQ(init_values(m, "ns"), (std::vector<double>{0, -1}));
  auto x = rnd({2, 2, 2, 2}, 12);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
}

// x [N,2,4] -> Reshape([0, d1, d2, d3]) -> Relu -> p (rank 4); Shape(q = Relu(x)) (rank 3) -> Gather(0), Gather(1)
// -> Concat(u0, u1, [4]) -> Reshape(p) -> y: timm's `B, N, C = x.shape; ... .reshape(B, N, C)`.
ir::Model other_rank_model(const std::vector<int64_t>& mid) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {-1, 2, 4})};
  g.add_initializer("mid", i64({4}, mid));
  g.add_initializer("i0", i64({}, {0}));
  g.add_initializer("i1", i64({}, {1}));
  g.add_initializer("ax", i64({1}, {0}));
  g.add_initializer("tail", i64({1}, {4}));
  g.nodes = {mk("Reshape", {"x", "mid"}, {"t"}), mk("Relu", {"t"}, {"p"}), mk("Relu", {"x"}, {"q"}),
             mk("Shape", {"q"}, {"s"}), mk("Gather", {"s", "i0"}, {"g0"}), mk("Unsqueeze", {"g0", "ax"}, {"u0"}),
             mk("Gather", {"s", "i1"}, {"g1"}), mk("Unsqueeze", {"g1", "ax"}, {"u1"}),
             mk("Concat", {"u0", "u1", "tail"}, {"ns"}), mk("Reshape", {"p", "ns"}, {"y"})};
  g.nodes[8].set_attr_int("axis", 0);
  g.outputs = {vi_any("y"), vi_any("q")};
  return m;
}

TEST(FuseReshape, ShapeOfATensorOfAnotherRank) {
  // ORT 1.32 compares only the gathered dim of the two tensors: the same size or symbol -> 0, else -1.
  for (const auto& [mid, want] : {std::pair{std::vector<int64_t>{0, 2, 2, 2}, std::vector<double>{0, 0, 4}},
                                  std::pair{std::vector<int64_t>{0, 1, 2, 4}, std::vector<double>{0, -1, 4}}}) {
    ir::Model m = other_rank_model(mid);
    ir::Model orig = m;
    EXPECT_EQ(P::fuse_reshape(m), 1u);
    EXPECT_EQ(init_values(m, "ns"), want);
    EXPECT_EQ(count_op(m, "Shape") + count_op(m, "Gather") + count_op(m, "Concat"), 0u);
    auto x = rnd({3, 2, 4}, 13);
    expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
  }
}

TEST(FuseReshape, SharedShapeStays) {
  ir::Model m = view_model(0, {-1});
  m.graph.nodes.push_back(mk("Cast", {"s"}, {"sf"}));
  m.graph.nodes.back().set_attr_int("to", 1);
  m.graph.outputs.push_back(vi_any("sf"));
  EXPECT_EQ(P::fuse_reshape(m), 1u);
  EXPECT_EQ(count_op(m, "Shape"), 1u);  // the Cast still reads it
  EXPECT_EQ(count_op(m, "Gather") + count_op(m, "Unsqueeze"), 0u);
}

namespace {

// a [N,2] -> MatMul(W [2,2]) -> [Reshape [-1,2]] -> BN -> y.
ir::Model dense_bn(bool reshape) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("a", {-1, 2})};
  g.add_initializer("W", f32({2, 2}, {1, 2, 3, 4}));
  g.add_initializer("bn_s", f32({2}, {2, 4}));
  g.add_initializer("bn_b", f32({2}, {0, 1}));
  g.add_initializer("bn_m", f32({2}, {1, 0.5f}));
  g.add_initializer("bn_v", f32({2}, {3, 3}));
  g.nodes = {mk("MatMul", {"a", "W"}, {"mm"}, "dense/MatMul")};
  std::string x = "mm";
  if (reshape) {
    g.add_initializer("rs", i64({2}, {-1, 2}));
    g.nodes.push_back(mk("Reshape", {"mm", "rs"}, {"r"}));
    x = "r";
  }
  g.nodes.push_back(mk("BatchNormalization", {x, "bn_s", "bn_b", "bn_m", "bn_v"}, {"y"}, "bn"));
  g.nodes.back().set_attr_float("epsilon", 1.0f);
  g.outputs = {vi_any("y")};
  return m;
}

}  // namespace

TEST(FuseMatMulBn, HandValuesAndNames) {
  ir::Model m = dense_bn(false);
  ir::Model orig = m;
  EXPECT_EQ(P::fuse_matmul_bn(m), 1u);
  ASSERT_EQ(m.graph.nodes.size(), 1u);
  const ir::Node& gemm = m.graph.nodes[0];
  EXPECT_EQ(gemm.op_type, "Gemm");
  EXPECT_EQ(gemm.name, "MatMulBnFusion_Gemm");
  EXPECT_EQ(gemm.inputs, (std::vector<std::string>{"a", "MatMulBnFusion_GemmB_W", "MatMulBnFusion_GemmBias"}));
  EXPECT_EQ(gemm.outputs, (std::vector<std::string>{"y"}));
  // s = scale / sqrt(var + eps) = {1, 2}; W' = W * s per column; C = bias - mean * s = {-1, 0}.
  EXPECT_EQ(init_values(m, "MatMulBnFusion_GemmB_W"), (std::vector<double>{1, 4, 3, 8}));
  EXPECT_EQ(init_values(m, "MatMulBnFusion_GemmBias"), (std::vector<double>{-1, 0}));
  for (const char* n : {"W", "bn_s", "bn_b", "bn_m", "bn_v"}) EXPECT_EQ(m.graph.find_initializer(n), nullptr) << n;
  auto a = f32({1, 2}, {1, 1});
  EXPECT_EQ(run(m, {{"a", a}})[0].to_doubles(), (std::vector<double>{3, 12}));
  auto a3 = rnd({3, 2}, 9);
  expect_same(run(orig, {{"a", a3}}), run(m, {{"a", a3}}));
}

TEST(FuseMatMulBn, ReshapeBetween) {
  ir::Model m = dense_bn(true);
  ir::Model orig = m;
  EXPECT_EQ(P::fuse_matmul_bn(m), 1u);
  ASSERT_EQ(m.graph.nodes.size(), 2u);
  EXPECT_EQ(m.graph.nodes[0].outputs[0], "mm");  // the Gemm writes the MatMul's output
  EXPECT_EQ(m.graph.nodes[1].op_type, "Reshape");
  EXPECT_EQ(m.graph.nodes[1].outputs[0], "y");  // the Reshape the BN's
  auto a = rnd({4, 2}, 10);
  expect_same(run(orig, {{"a", a}}), run(m, {{"a", a}}));
}

TEST(FuseMatMulBn, LeftAlone) {
  ir::Model rank3 = dense_bn(false);  // A [N,2,2]: no Gemm
  rank3.graph.inputs = {vi("a", {-1, 2, 2})};
  ir::Model out = dense_bn(false);  // MatMul output also a graph output
  out.graph.outputs.push_back(vi_any("mm"));
  ir::Model unknown = dense_bn(false);  // rank of A not known
  unknown.graph.inputs = {vi_any("a")};
  ir::Model transpose = dense_bn(false);  // Transpose between
  transpose.graph.nodes.insert(transpose.graph.nodes.begin() + 1, mk("Transpose", {"mm"}, {"t"}));
  transpose.graph.nodes[2].inputs[0] = "t";
  ir::Model regroup = dense_bn(true);  // Reshape [1, 2, -1]: the BN's channels are not the MatMul's columns
  regroup.graph.find_initializer("rs")->tensor = i64({3}, {1, 2, -1});
  for (ir::Model* mm : {&rank3, &out, &unknown, &transpose, &regroup}) {
    EXPECT_EQ(P::fuse_matmul_bn(*mm), 0u);
    EXPECT_EQ(count_op(*mm, "BatchNormalization"), 1u);
  }
}

namespace {

// x [1,1,3,3] -> Pad (pads) -> pool (kernel 2x2, stride 1) -> y.
ir::Model pad_pool(const std::string& pool, std::vector<int64_t> pads, float value = 0.f) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 1, 3, 3})};
  g.add_initializer("pads", i64({8}, pads));
  g.add_initializer("cv", f32({}, {value}));
  g.nodes = {mk("Relu", {"x"}, {"r"}), mk("Pad", {"r", "pads", "cv"}, {"pd"}, "pad"), mk(pool, {"pd"}, {"y"}, "pool")};
  g.nodes[2].set_attr_ints("kernel_shape", {2, 2});
  g.outputs = {vi_any("y")};
  return m;
}

}  // namespace

TEST(FusePadAvgPool, CountIncludePadSet) {
  ir::Model m = pad_pool("AveragePool", {0, 0, 1, 0, 0, 0, 0, 1});
  m.graph.nodes[2].set_attr_int("count_include_pad", 0);
  ir::Model orig = m;
  EXPECT_EQ(P::fuse_pad_into_avgpool(m), 1u);
  ASSERT_EQ(m.graph.nodes.size(), 2u);
  const ir::Node& pool = m.graph.nodes[1];
  EXPECT_EQ(pool.inputs[0], "r");
  EXPECT_EQ(pool.attr_ints("pads"), (std::vector<int64_t>{1, 0, 0, 1}));
  EXPECT_EQ(pool.attr_int("count_include_pad", 0), 1);
  auto x = f32({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto r = run(m, {{"x", x}});
  // First window: the zero row above (counted) and x[0][0..1]: (0 + 0 + 1 + 2) / 4.
  EXPECT_DOUBLE_EQ(r[0].to_doubles()[0], 0.75);
  expect_same(run(orig, {{"x", x}}), r);
}

TEST(FusePadAvgPool, LeftAlone) {
  std::vector<int64_t> pads = {0, 0, 1, 1, 0, 0, 1, 1};
  ir::Model maxpool = pad_pool("MaxPool", pads);  // zeros are not MaxPool's padding
  ir::Model ceil = pad_pool("AveragePool", pads);
  ceil.graph.nodes[2].set_attr_int("ceil_mode", 1);
  ir::Model own = pad_pool("AveragePool", pads);  // own pads averaged without the zeros
  own.graph.nodes[2].set_attr_ints("pads", {1, 0, 0, 0});
  ir::Model big = pad_pool("AveragePool", {0, 0, 2, 0, 0, 0, 0, 0});  // a pad not below the kernel
  ir::Model negzero = pad_pool("AveragePool", pads, -0.0f);  // ORT compares the bytes
  ir::Model half = pad_pool("AveragePool", pads, 0.5f);
  for (ir::Model* mm : {&maxpool, &ceil, &own, &big, &negzero, &half}) {
    EXPECT_EQ(P::fuse_pad_into_avgpool(*mm), 0u);
    EXPECT_EQ(count_op(*mm, "Pad"), 1u);
  }
  // -0.0 before a Conv stays too.
  ir::Model conv = pad_pool("Conv", pads, -0.0f);
  conv.graph.nodes[2].inputs.push_back("w");
  conv.graph.nodes[2].attrs.clear();
  conv.graph.add_initializer("w", rnd({1, 1, 2, 2}, 3));
  EXPECT_EQ(P::fuse_pad_into_conv(conv), 0u);
  // constant_value given as "" (ORT: present and not a constant), or a 4th input (even ""): not fused.
  for (const std::vector<std::string>& ins :
       {std::vector<std::string>{"r", "pads", ""}, std::vector<std::string>{"r", "pads", "", ""},
        std::vector<std::string>{"r", "pads", "cv", ""}}) {
    ir::Model pool = pad_pool("AveragePool", pads), cv = pad_pool("Conv", pads);
    pool.graph.nodes[1].inputs = ins;
    cv.graph.nodes[1].inputs = ins;
    cv.graph.nodes[2].inputs.push_back("w");
    cv.graph.nodes[2].attrs.clear();
    cv.graph.add_initializer("w", rnd({1, 1, 2, 2}, 3));
    EXPECT_EQ(P::fuse_pad_into_avgpool(pool), 0u) << ins.size();
    EXPECT_EQ(P::fuse_pad_into_conv(cv), 0u) << ins.size();
  }
  // Without the constant_value input it is.
  ir::Model plain = pad_pool("AveragePool", pads);
  plain.graph.nodes[1].inputs = {"r", "pads"};
  EXPECT_EQ(P::fuse_pad_into_avgpool(plain), 1u);
}

TEST(FoldBatchNorm, ConvTransposeOrtNames) {
  for (bool bias : {false, true}) {
    ir::Model m = model(13);
    auto& g = m.graph;
    g.inputs = {vi("x", {1, 4, 3, 3})};
    g.add_initializer("w", rnd({4, 3, 2, 2}, 5));
    std::vector<std::string> ins = {"x", "w"};
    if (bias) {
      g.add_initializer("b", rnd({3}, 6));
      ins.push_back("b");
    }
    g.nodes = {mk("ConvTranspose", ins, {"c"})};
    add_bn(m, "c", "y", 3, 30);
    g.outputs = {vi_any("y")};
    ir::Model orig = m;
    EXPECT_EQ(P::fold_batchnorm(m), 1u);
    // ORT's ConvBNFusion names, as on a Conv (the ConvTranspose's own bias name is not kept).
    EXPECT_EQ(g.nodes[0].inputs, (std::vector<std::string>{"x", "ConvBnFusion_W_w", "ConvBnFusion_BN_B_bn_b"}));
    EXPECT_EQ(g.find_initializer("w"), nullptr);
    auto x = rnd({1, 4, 3, 3}, 4);
    expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
  }
}

TEST(FoldBatchNorm, SharedWeightOrtOrderAndTokens) {
  // Two Convs (or ConvTransposes) on x sharing w, each before a BN: ORT visits the second first (its topological
  // sort pops a stack), which gets ConvBnFusion_W_w; the first gets ConvBnFusion_W_w_token_0.
  for (const char* op : {"Conv", "ConvTranspose"}) {
    ir::Model m = model(13);
    auto& g = m.graph;
    g.inputs = {vi("x", {1, 3, 3, 3})};
    g.add_initializer("w", rnd({3, 3, 2, 2}, 5));
    g.nodes = {mk(op, {"x", "w"}, {"c1"}, "c1")};
    add_bn(m, "c1", "b1", 3, 30, "bna");
    g.nodes.push_back(mk(op, {"x", "w"}, {"c2"}, "c2"));
    add_bn(m, "c2", "b2", 3, 40, "bnb");
    g.nodes.push_back(mk("Add", {"b1", "b2"}, {"y"}, "add"));
    g.outputs = {vi_any("y")};
    ir::Model orig = m;
    EXPECT_EQ(P::fold_batchnorm(m), 2u);
    EXPECT_EQ(g.nodes[0].inputs, (std::vector<std::string>{"x", "ConvBnFusion_W_w_token_0", "ConvBnFusion_BN_B_bna_b"}))
        << op;
    EXPECT_EQ(g.nodes[1].inputs, (std::vector<std::string>{"x", "ConvBnFusion_W_w", "ConvBnFusion_BN_B_bnb_b"})) << op;
    auto x = rnd({1, 3, 3, 3}, 4);
    expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
  }
}

TEST(Preprocess, MatMulAddBnKeepsBn) {
  // MatMul -> Add -> BN: ORT's MatmulBNFusion needs the BN right after the MatMul (or Reshapes); MatMulAddFusion then
  // makes a Gemm and ConvBNFusion does not take Gemms: the BN stays, in both tools.
  ir::Model m = dense_bn(false);
  auto& g = m.graph;
  g.add_initializer("bias", f32({2}, {0.5f, -0.5f}));
  g.nodes.insert(g.nodes.begin() + 1, mk("Add", {"mm", "bias"}, {"mb"}));
  g.nodes[2].inputs[0] = "mb";
  P::preprocess(m);
  EXPECT_EQ(count_op(m, "Gemm"), 1u);
  EXPECT_EQ(count_op(m, "BatchNormalization"), 1u);
}
