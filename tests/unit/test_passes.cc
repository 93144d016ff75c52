// Graph passes on hand-built IR graphs: structure of each rewrite (incl. the cases that must NOT be rewritten)
// and numerical equality of the rewritten graph with the original, both run through exec::Session.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "core/error.h"
#include "exec/session.h"
#include "ir/passes/passes.h"
#include "passes_test_util.h"

using namespace oq;
using namespace oq::test_passes;
namespace P = oq::ir::passes;


// ------------------------------------------------------------------------------------------- fold_constants
TEST(FoldConstants, ConstantNodeFormsBecomeInitializers) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {3})};
  auto c1 = mk("Constant", {}, {"c_tensor"});
  c1.attrs.push_back({});
  c1.attrs.back().name = "value";
  c1.attrs.back().type = ir::AttrType::Tensor;
  c1.attrs.back().t = f32({3}, {1, 2, 3});
  auto c2 = mk("Constant", {}, {"c_float"});
  c2.set_attr_float("value_float", 0.5f);
  auto c3 = mk("Constant", {}, {"c_ints"});
  c3.set_attr_ints("value_ints", {4, 5});
  auto c4 = mk("Constant", {}, {"c_int"});
  c4.set_attr_int("value_int", 7);
  auto c5 = mk("Constant", {}, {"c_out"});  // a graph output: an initializer of its name, as ORT's folding
  c5.set_attr_float("value_float", 2.f);
  g.nodes = {c1, c2, c3, c4, c5, mk("Mul", {"c_tensor", "c_float"}, {"half"}), mk("Add", {"x", "half"}, {"y"}),
             mk("Cast", {"c_int"}, {"c_int_f"}), mk("Add", {"y", "c_int_f"}, {"z"}),
             mk("Concat", {"c_ints", "c_ints"}, {"ints2"})};
  g.nodes.back().set_attr_int("axis", 0);
  g.nodes.push_back(mk("Cast", {"ints2"}, {"ints2_f"}));
  g.nodes.back().set_attr_int("to", 1);
  g.nodes[7].set_attr_int("to", 1);
  g.nodes.push_back(mk("ReduceSum", {"ints2_f"}, {"sum"}));
  g.nodes.back().set_attr_int("keepdims", 0);
  g.nodes.push_back(mk("Add", {"z", "sum"}, {"out"}));
  g.outputs = {vi_any("out"), vi_any("c_out")};
  ir::Model orig = m;
  auto st = P::fold_constants(m);
  EXPECT_EQ(st.constants, 5u);
  EXPECT_EQ(st.evaluated, 5u);  // Mul, Cast, Concat, Cast, ReduceSum
  // Left: Add(x, half), Add(y, c_int_f), Add(z, sum).
  ASSERT_EQ(g.nodes.size(), 3u);
  EXPECT_EQ(count_op(m, "Constant"), 0u);
  EXPECT_EQ(init_values(m, "c_out"), (std::vector<double>{2.0}));
  const ir::Initializer* half = g.find_initializer("half");
  ASSERT_NE(half, nullptr);
  EXPECT_EQ(half->tensor.to_doubles(), (std::vector<double>{0.5, 1.0, 1.5}));
  EXPECT_EQ(g.find_initializer("sum")->tensor.to_doubles(), (std::vector<double>{18.0}));
  EXPECT_EQ(g.find_initializer("c_tensor"), nullptr);  // consumed by folding, no longer used
  auto x = f32({3}, {10, 20, 30});
  auto r = run(m, {{"x", x}});
  // Hand computation: x + [0.5,1,1.5] + 7 + 18.
  EXPECT_EQ(r[0].to_doubles(), (std::vector<double>{35.5, 46, 56.5}));
  expect_same(run(orig, {{"x", x}}), r, 0);
}

TEST(FoldConstants, StaticShapeSubgraphFolds) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {2, 3, 4})};
  g.add_initializer("idx", i64({1}, {0}));
  g.add_initializer("minus1", i64({1}, {-1}));
  g.nodes = {mk("Shape", {"x"}, {"shp"}), mk("Gather", {"shp", "idx"}, {"batch"}),
             mk("Concat", {"batch", "minus1"}, {"newshape"}), mk("Reshape", {"x", "newshape"}, {"y"}),
             mk("Size", {"x"}, {"n"}), mk("Cast", {"n"}, {"nf"})};
  g.nodes[2].set_attr_int("axis", 0);
  g.nodes[5].set_attr_int("to", 1);
  g.nodes.push_back(mk("Mul", {"y", "nf"}, {"out"}));
  g.outputs = {vi_any("out")};
  ir::Model orig = m;
  auto st = P::fold_constants(m);
  EXPECT_EQ(st.shapes, 2u);
  ASSERT_EQ(g.nodes.size(), 2u);  // Reshape + Mul
  EXPECT_EQ(g.find_initializer("newshape")->tensor.to_int64s(), (std::vector<int64_t>{2, -1}));
  EXPECT_EQ(g.find_initializer("nf")->tensor.to_doubles(), (std::vector<double>{24}));
  auto x = rnd({2, 3, 4}, 1);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 0);
}

TEST(FoldConstants, SymbolicShapeIsNotFolded) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {-1, 3})};
  g.nodes = {mk("Shape", {"x"}, {"shp"}), mk("Reshape", {"x", "shp"}, {"y"})};
  g.outputs = {vi_any("y")};
  auto st = P::fold_constants(m);
  EXPECT_EQ(st.total(), 0u);
  EXPECT_EQ(g.nodes.size(), 2u);
}

TEST(FoldConstants, SizeLimitAndOverridableInitializers) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {4}), vi("w", {4})};  // w is an initializer that is also an input: overridable
  g.add_initializer("w", f32({4}, {1, 2, 3, 4}));
  g.add_initializer("shape", i64({1}, {1000}));
  g.nodes = {mk("Relu", {"w"}, {"wr"}), mk("ConstantOfShape", {"shape"}, {"big"}), mk("ReduceSum", {"big"}, {"s"}),
             mk("Add", {"x", "wr"}, {"a"}), mk("Add", {"a", "s"}, {"y"})};
  g.outputs = {vi_any("y")};
  P::FoldOptions o;
  o.max_folded_bytes = 1000;  // ConstantOfShape gives 1000 floats = 4000 bytes
  auto st = P::fold_constants(m, o);
  EXPECT_EQ(st.evaluated, 0u);
  EXPECT_EQ(g.nodes.size(), 5u);
  // IR 3: initializers listed among the inputs are constants.
  m.ir_version = 3;
  st = P::fold_constants(m, o);
  EXPECT_EQ(st.evaluated, 1u);  // Relu(w); ConstantOfShape still too big
  EXPECT_EQ(g.nodes.size(), 4u);
  EXPECT_NE(g.find_initializer("w"), nullptr);  // graph inputs are never removed
  EXPECT_TRUE(g.is_graph_input("w"));
}

// Constant expressions writing graph outputs (detection priors, grids) fold into initializers of the outputs'
// names, as ORT's constant folding in quant_pre_process: they stay exact float instead of getting Q/DQ.
TEST(FoldConstants, GraphOutputsOfConstantsFold) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {2})};
  g.add_initializer("pri", f32({2}, {1.5f, -3.f}));
  g.add_initializer("stride", f32({}, {8.f}));
  g.add_initializer("w", f32({2}, {-1.f, 2.f}));
  g.nodes = {mk("Mul", {"pri", "stride"}, {"priors"}), mk("Abs", {"w"}, {"wabs"}), mk("Add", {"x", "w"}, {"y"}),
             mk("Shape", {"x"}, {"xs"})};
  g.outputs = {vi_any("y"), vi_any("priors"), vi_any("wabs"), vi("xs", {1}, DType::Int64)};
  auto st = P::fold_constants(m);
  EXPECT_EQ(st.evaluated, 2u);
  EXPECT_EQ(st.shapes, 1u);
  ASSERT_EQ(g.nodes.size(), 1u);  // Add(x, w)
  EXPECT_EQ(init_values(m, "priors"), (std::vector<double>{12, -24}));
  EXPECT_EQ(init_values(m, "wabs"), (std::vector<double>{1, 2}));
  EXPECT_EQ(init_values(m, "xs"), (std::vector<double>{2}));
  EXPECT_NE(g.find_initializer("w"), nullptr);
  auto r = run(m, {{"x", f32({2}, {1, 1})}});
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[1].to_doubles(), (std::vector<double>{12, -24}));
}

// ------------------------------------------------------------------------------------------ remove_identity
TEST(RemoveIdentity, RewiresConsumersAndRenamesForGraphOutputs) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {2, 3})};
  g.add_initializer("t", Tensor::from_vector(DType::Bool, {}, std::vector<uint8_t>{1}));
  g.add_initializer("zero", Tensor::scalar_float(0.f));
  g.nodes = {mk("Relu", {"x"}, {"r1"}), mk("Identity", {"r1"}, {"i1"}), mk("Neg", {"i1"}, {"n1"}),
             mk("Dropout", {"n1"}, {"d1"}), mk("Abs", {"d1"}, {"a1"}), mk("Identity", {"a1"}, {"y"}),
             mk("Identity", {"x"}, {"y2"}),               // graph input -> graph output: kept
             mk("Dropout", {"r1", "zero", "t"}, {"d_train"}),  // training_mode true: kept
             mk("Dropout", {"r1"}, {"d_m", "mask"})};      // mask used: kept
  g.nodes.push_back(mk("Cast", {"mask"}, {"mask_f"}));
  g.nodes.back().set_attr_int("to", 1);
  g.nodes.push_back(mk("Add", {"d_train", "d_m"}, {"dd"}));
  g.nodes.push_back(mk("Add", {"dd", "mask_f"}, {"y3"}));
  g.outputs = {vi_any("y"), vi_any("y2"), vi_any("y3")};
  EXPECT_EQ(P::remove_identity(m), 3u);
  EXPECT_EQ(count_op(m, "Identity"), 1u);
  EXPECT_EQ(count_op(m, "Dropout"), 2u);
  const ir::Node* neg = find_op(m, "Neg");
  EXPECT_EQ(neg->inputs[0], "r1");
  const ir::Node* abs = find_op(m, "Abs");
  EXPECT_EQ(abs->inputs[0], "n1");
  EXPECT_EQ(abs->outputs[0], "y");  // renamed to the graph output
  EXPECT_NO_THROW(ir::topological_order(g));
  auto x = f32({2, 3}, {-1, 2, -3, 4, -5, 6});
  auto r = run(m, {{"x", x}});
  EXPECT_EQ(r[0].to_doubles(), (std::vector<double>{0, 2, 0, 4, 0, 6}));  // |-(relu x)|
  EXPECT_EQ(r[1].to_doubles(), x.to_doubles());
}

// ------------------------------------------------------------------------------------------- fold_batchnorm
TEST(FoldBatchNorm, ConvGroupedWithBias) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {2, 4, 5, 5})};
  g.add_initializer("w", rnd({6, 2, 3, 3}, 11));
  g.add_initializer("b", rnd({6}, 12));
  g.nodes = {mk("Conv", {"x", "w", "b"}, {"c"}, "conv")};
  g.nodes[0].set_attr_int("group", 2);
  g.nodes[0].set_attr_ints("pads", {1, 1, 1, 1});
  add_bn(m, "c", "y", 6, 20);
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  EXPECT_EQ(P::fold_batchnorm(m), 1u);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].name, "conv");
  EXPECT_EQ(g.nodes[0].outputs[0], "y");
  EXPECT_EQ(g.find_initializer("bn_s"), nullptr);  // BN parameters removed
  auto x = rnd({2, 4, 5, 5}, 3);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
}

TEST(FoldBatchNorm, ConvTransposeGroupsNoBias) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 4, 3, 3})};
  g.add_initializer("w", rnd({4, 3, 2, 2}, 5));  // [Cin, Cout/g, k, k], g = 2 -> Cout = 6
  g.nodes = {mk("ConvTranspose", {"x", "w"}, {"c"})};
  g.nodes[0].set_attr_int("group", 2);
  g.nodes[0].set_attr_ints("strides", {2, 2});
  add_bn(m, "c", "y", 6, 30);
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  EXPECT_EQ(P::fold_batchnorm(m), 1u);
  EXPECT_EQ(count_op(m, "BatchNormalization"), 0u);
  EXPECT_EQ(g.nodes[0].inputs.size(), 3u);  // a bias was added
  auto x = rnd({1, 4, 3, 3}, 4);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
}

TEST(FoldBatchNorm, GemmBothLayoutsAndBiasShapes) {
  struct Case {
    bool trans_b;
    Shape c_shape;  // empty rank-0 marker handled by has_c
    bool has_c;
  };
  for (const Case& cs : {Case{false, {5}, true}, Case{true, {3, 5}, true}, Case{true, {}, false},
                         Case{false, {1, 1}, true}}) {
    ir::Model m = model(13);
    auto& g = m.graph;
    g.inputs = {vi("a", {3, 4})};
    g.add_initializer("B", cs.trans_b ? rnd({5, 4}, 7) : rnd({4, 5}, 7));
    std::vector<std::string> ins = {"a", "B"};
    if (cs.has_c) {
      g.add_initializer("C", rnd(cs.c_shape, 8));
      ins.push_back("C");
    }
    g.nodes = {mk("Gemm", ins, {"g"})};
    g.nodes[0].set_attr_int("transB", cs.trans_b);
    g.nodes[0].set_attr_float("alpha", 0.7f);
    g.nodes[0].set_attr_float("beta", 1.3f);
    add_bn(m, "g", "y", 5, 40);
    g.outputs = {vi_any("y")};
    ir::Model orig = m;
    EXPECT_EQ(P::fold_batchnorm(m), 1u) << cs.trans_b;
    auto a = rnd({3, 4}, 9);
    expect_same(run(orig, {{"a", a}}), run(m, {{"a", a}}));
  }
}

TEST(FoldBatchNorm, NotFoldedWhenPatternDoesNotApply) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 2, 4, 4}), vi("scale_in", {3})};
  g.add_initializer("w", rnd({3, 2, 1, 1}, 1));
  g.nodes = {mk("Conv", {"x", "w"}, {"c1"}), mk("Relu", {"c1"}, {"r1"})};  // c1 has two consumers
  add_bn(m, "c1", "y1", 3, 50, "bn1");
  g.nodes.push_back(mk("Conv", {"x", "w"}, {"c2"}));  // c2 is a graph output
  add_bn(m, "c2", "y2", 3, 60, "bn2");
  g.nodes.push_back(mk("Conv", {"x", "w"}, {"c3"}));  // BN scale not constant
  add_bn(m, "c3", "y3", 3, 70, "bn3");
  g.nodes.back().inputs[1] = "scale_in";
  g.nodes.push_back(mk("Relu", {"x"}, {"r4"}));  // producer is not Conv/ConvTranspose/Gemm
  add_bn(m, "r4", "y4", 2, 80, "bn4");
  g.outputs = {vi_any("y1"), vi_any("r1"), vi_any("y2"), vi_any("c2"), vi_any("y3"), vi_any("y4")};
  EXPECT_EQ(P::fold_batchnorm(m), 0u);
  EXPECT_EQ(count_op(m, "BatchNormalization"), 4u);
}

TEST(FoldBatchNorm, SharedWeightGetsCopies) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 2, 3, 3})};
  g.add_initializer("w", rnd({3, 2, 3, 3}, 2));
  g.nodes = {mk("Conv", {"x", "w"}, {"c1"}), mk("Conv", {"x", "w"}, {"c2"})};
  add_bn(m, "c1", "y1", 3, 90, "bn1");
  g.outputs = {vi_any("y1"), vi_any("c2")};
  ir::Model orig = m;
  EXPECT_EQ(P::fold_batchnorm(m), 1u);
  EXPECT_TRUE(g.find_initializer("w")->tensor.equals(orig.graph.find_initializer("w")->tensor));
  auto x = rnd({1, 2, 3, 3}, 6);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
}

// ----------------------------------------------------------------------------------------------- preprocess
TEST(PreprocessPasses, AllPassesTogether) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 3, 4, 4})};
  g.add_initializer("w", rnd({4, 3, 3, 3}, 1));
  auto cw = mk("Constant", {}, {"two"});
  cw.set_attr_float("value_float", 2.f);
  g.nodes = {cw, mk("Mul", {"x", "two"}, {"x2"}), mk("Identity", {"x2"}, {"xi"}), mk("Conv", {"xi", "w"}, {"c"})};
  add_bn(m, "c", "bn", 4, 5);
  g.nodes.push_back(mk("Dropout", {"bn"}, {"y"}));
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  auto st = P::preprocess(m);
  EXPECT_EQ(st.nodes_before, 6u);
  EXPECT_EQ(st.nodes_after, 2u);  // Mul, Conv
  EXPECT_EQ(st.folded_batchnorms, 1u);
  EXPECT_EQ(st.removed_identities, 2u);
  EXPECT_EQ(g.nodes.back().outputs[0], "y");
  auto x = rnd({1, 3, 4, 4}, 7);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
}

// Identity of a constant (QA 15): ORT's EliminateIdentity runs before its constant folding, so the consumer reads
// the constant under its own name (k1, the Constant node's c, the folded Neg's n); an Identity of a constant that
// is a graph output becomes an initializer of the output's name. The old passes folded every one into `t*`.
TEST(PreprocessPasses, IdentityOfConstantKeepsItsName) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {2, 3})};
  g.add_initializer("k1", rnd({2, 3}, 1));
  auto c = mk("Constant", {}, {"c"});
  c.set_attr_float("value_float", 2.f);
  g.nodes = {mk("Identity", {"k1"}, {"t1"}), mk("Add", {"x", "t1"}, {"a"}),
             c, mk("Identity", {"c"}, {"t2"}), mk("Mul", {"a", "t2"}, {"b"}),
             mk("Neg", {"k1"}, {"n"}), mk("Identity", {"n"}, {"t3"}), mk("Sub", {"b", "t3"}, {"y"}),
             mk("Identity", {"k1"}, {"t4"})};  // graph output
  g.outputs = {vi_any("y"), vi_any("t4")};
  ir::Model orig = m;
  P::preprocess(m);
  EXPECT_EQ(count_op(m, "Identity"), 0u);
  EXPECT_EQ(find_op(m, "Add")->inputs[1], "k1");
  EXPECT_EQ(find_op(m, "Mul")->inputs[1], "c");
  EXPECT_EQ(find_op(m, "Sub")->inputs[1], "n");
  for (const char* t : {"t1", "t2", "t3"}) EXPECT_EQ(g.find_initializer(t), nullptr) << t;
  ASSERT_NE(g.find_initializer("t4"), nullptr);
  EXPECT_EQ(init_values(m, "t4"), init_values(orig, "k1"));
  auto x = rnd({2, 3}, 7);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
}

// ---------------------------------------------------------------------------------------------- convert_opset
TEST(ConvertOpset, IrVersionTable) {
  std::vector<std::pair<int, int>> want = {{7, 3}, {8, 3}, {9, 4}, {10, 5}, {11, 6}, {12, 7}, {13, 7}, {14, 7},
                                           {15, 8}, {18, 8}, {19, 9}, {20, 9}, {21, 10}, {22, 10},
                                           {23, 11}, {24, 12}, {25, 13}, {26, 13}, {27, 13}, {28, 14}};
  for (auto [op, ir] : want) EXPECT_EQ(P::ir_version_for_opset(op), ir) << op;
}

TEST(ConvertOpset, AttributeInputsOpset9To21SameResults) {
  ir::Model m = model(9, 4);
  auto& g = m.graph;
  g.inputs = {vi("x", {2, 3, 4, 5})};
  auto add = [&](ir::Node n) { g.nodes.push_back(std::move(n)); return &g.nodes.back(); };
  add(mk("Clip", {"x"}, {"cl"}))->set_attr_float("min", -0.4f);
  g.nodes.back().set_attr_float("max", 0.6f);
  add(mk("Pad", {"cl"}, {"pd"}))->set_attr_ints("pads", {0, 0, 1, 2, 0, 1, 0, 0});
  g.nodes.back().set_attr_float("value", 0.3f);
  add(mk("Softmax", {"pd"}, {"sm"}));  // default axis 1 on rank 4: the coerced 2-D form
  add(mk("Slice", {"sm"}, {"sl"}))->set_attr_ints("starts", {1, -4});
  g.nodes.back().set_attr_ints("ends", {100, -1});
  g.nodes.back().set_attr_ints("axes", {1, 3});
  add(mk("ReduceMean", {"sl"}, {"rm"}))->set_attr_ints("axes", {1});
  add(mk("Squeeze", {"rm"}, {"sq"}))->set_attr_ints("axes", {1});
  add(mk("Unsqueeze", {"sq"}, {"us"}))->set_attr_ints("axes", {0, 3});
  add(mk("ReduceSum", {"us"}, {"rs"}))->set_attr_ints("axes", {0});
  g.nodes.back().set_attr_int("keepdims", 0);
  add(mk("Split", {"rs", }, {"s1", "s2"}))->set_attr_ints("split", {1, 4});
  g.nodes.back().set_attr_int("axis", 1);
  add(mk("TopK", {"s2"}, {"tv", "ti"}))->set_attr_int("k", 2);
  g.outputs = {vi_any("s1"), vi_any("tv"), vi("ti", {-1, -1, -1}, DType::Int64)};
  ir::Model orig = m;
  size_t changed = P::convert_opset(m, 21);
  EXPECT_EQ(changed, 10u);
  EXPECT_EQ(m.default_opset(), 21);
  EXPECT_EQ(m.ir_version, 10);
  for (const auto& n : g.nodes)
    for (const char* a : {"min", "max", "pads", "value", "starts", "axes", "split", "k"})
      EXPECT_FALSE(n.has_attr(a)) << n.op_type << " keeps " << a;
  EXPECT_EQ(count_op(m, "Flatten"), 1u);
  EXPECT_EQ(count_op(m, "CastLike"), 0u);  // types are known from the graph input
  EXPECT_EQ(find_op(m, "Split")->inputs.size(), 2u);
  auto x = rnd({2, 3, 4, 5}, 1);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 1e-6);
  // 21 -> 24 -> 27 rewrites nothing (the schemas only gain types and defaulted attributes); the IR version
  // follows, and the executor runs the result at 27 with the same outputs.
  ir::Model at21 = m;
  EXPECT_EQ(P::convert_opset(m, 24), 0u);
  EXPECT_EQ(m.default_opset(), 24);
  EXPECT_EQ(m.ir_version, 12);
  EXPECT_EQ(P::convert_opset(m, 27), 0u);
  EXPECT_EQ(m.default_opset(), 27);
  EXPECT_EQ(m.ir_version, 13);
  ASSERT_EQ(m.graph.nodes.size(), at21.graph.nodes.size());
  for (size_t i = 0; i < m.graph.nodes.size(); ++i) EXPECT_EQ(m.graph.nodes[i].op_type, at21.graph.nodes[i].op_type);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 1e-6);
}

TEST(ConvertOpset, ClipAfterACastKnowsItsType) {
  // An opset-9 Clip (min/max attributes) reading a Cast of an int input, no value_info (as old exporters
  // write): the Cast's `to` gives the type of the typed min/max inputs; no CastLike is needed.
  ir::Model m = model(9);
  auto& g = m.graph;
  g.inputs = {vi("x", {2, 3}, DType::Int32)};
  g.nodes = {mk("Cast", {"x"}, {"c"}), mk("Clip", {"c"}, {"y"})};
  g.nodes[0].set_attr_int("to", static_cast<int64_t>(DType::Float));
  g.nodes[1].set_attr_float("min", 0.0f);
  g.nodes[1].set_attr_float("max", 6.0f);
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  P::convert_opset(m, 13);
  EXPECT_EQ(count_op(m, "CastLike"), 0u);
  const ir::Node* clip = find_op(m, "Clip");
  ASSERT_TRUE(clip && clip->inputs.size() == 3);
  const ir::Initializer* lo = g.find_initializer(clip->input(1));
  ASSERT_TRUE(lo);
  EXPECT_EQ(lo->tensor.dtype(), DType::Float);
  Tensor x(DType::Int32, {2, 3});
  for (int i = 0; i < 6; ++i) x.data<int32_t>()[i] = 3 * i - 4;
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 0);
}

TEST(ConvertOpset, SoftmaxOnLastAxisKeepsOneNode) {
  ir::Model m = model(11);
  auto& g = m.graph;
  g.inputs = {vi("x", {2, 3, 4})};
  g.nodes = {mk("LogSoftmax", {"x"}, {"y"})};
  g.nodes[0].set_attr_int("axis", 2);
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  P::convert_opset(m, 13);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].attr_int("axis", 0), -1);
  EXPECT_EQ(m.ir_version, 7);
  auto x = rnd({2, 3, 4}, 2);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 1e-6);
}

TEST(ConvertOpset, UpsampleAndBatchNormOpset7) {
  ir::Model m = model(7, 3);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 2, 3, 3})};
  add_bn(m, "x", "b", 2, 3);
  g.nodes[0].set_attr_int("spatial", 1);
  g.nodes.push_back(mk("Upsample", {"b"}, {"u"}));
  ir::Attribute sc;
  sc.name = "scales";
  sc.type = ir::AttrType::Floats;
  sc.floats = {1, 1, 2, 3};
  g.nodes.back().attrs.push_back(sc);
  g.nodes.push_back(mk("Dropout", {"u"}, {"y", "mask"}));
  g.nodes.back().set_attr_float("ratio", 0.2f);
  g.outputs = {vi_any("y")};
  for (const auto& i : g.initializers) g.inputs.push_back(vi(i.name, i.tensor.shape()));  // IR 3 layout
  ir::Model orig = m;
  P::convert_opset(m, 21);
  EXPECT_EQ(count_op(m, "Upsample"), 0u);
  const ir::Node* r = find_op(m, "Resize");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->attr_string("coordinate_transformation_mode", ""), "asymmetric");
  EXPECT_EQ(r->attr_string("nearest_mode", ""), "floor");
  EXPECT_FALSE(find_op(m, "BatchNormalization")->has_attr("spatial"));
  EXPECT_EQ(find_op(m, "Dropout")->inputs.size(), 2u);
  EXPECT_EQ(g.inputs.size(), 1u);  // initializers no longer listed as inputs (IR 10)
  auto x = rnd({1, 2, 3, 3}, 9);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 1e-6);
}

TEST(ConvertOpset, Refusals) {
  {
    ir::Model m = model(13);
    m.graph.inputs = {vi("x", {1})};
    m.graph.nodes = {mk("Relu", {"x"}, {"y"})};
    m.graph.outputs = {vi_any("y")};
    EXPECT_NE(error_of([&] { P::convert_opset(m, 12); }).find("not supported"), std::string::npos);
    EXPECT_NE(error_of([&] { P::convert_opset(m, 29); }).find("outside [7, 28]"), std::string::npos);
  }
  {
    // spatial=0 takes statistics of shape X.shape[1:]: rank-1 ones fit only a 2-D X (onnxruntime refuses the
    // others). X of unknown rank: 2-D, the node stays; X 4-D: refused.
    ir::Model m = model(8);
    m.graph.inputs = {vi_any("x")};
    add_bn(m, "x", "y", 3, 1);
    m.graph.nodes[0].name = "bn_spatial0";
    m.graph.nodes[0].set_attr_int("spatial", 0);
    m.graph.outputs = {vi_any("y")};
    ir::Model unknown = m;
    EXPECT_EQ(error_of([&] { P::convert_opset(unknown, 21); }), "");
    EXPECT_FALSE(find_op(unknown, "BatchNormalization")->has_attr("spatial"));
    m.graph.inputs = {vi("x", {1, 3, 2, 2})};
    std::string e = error_of([&] { P::convert_opset(m, 21); });
    EXPECT_NE(e.find("'bn_spatial0'"), std::string::npos) << e;
    EXPECT_NE(e.find("spatial=0 takes statistics of shape X.shape[1:] (rank 3); they have rank 1"), std::string::npos)
        << e;
  }
  {
    ir::Model m = model(10);
    m.graph.inputs = {vi("x", {2, 3})};
    m.graph.nodes = {mk("Unsqueeze", {"x"}, {"y"}, "unsq")};
    m.graph.outputs = {vi_any("y")};
    EXPECT_NE(error_of([&] { P::convert_opset(m, 13); }).find("'unsq'"), std::string::npos);
  }
}

// Tensors read from inside a sub-graph (outer-scope references) are never renamed or removed.
TEST(RemoveIdentity, KeepsOuterScopeReferences) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {2}), vi("cond", {}, DType::Bool)};
  g.add_initializer("only_in_branch", f32({2}, {1, 2}));
  auto body = std::make_shared<ir::Graph>();
  body->nodes = {mk("Add", {"t", "only_in_branch"}, {"b_out"})};
  body->outputs = {vi_any("b_out")};
  auto other = std::make_shared<ir::Graph>();
  other->nodes = {mk("Neg", {"t"}, {"o_out"})};
  other->outputs = {vi_any("o_out")};
  ir::Node iff = mk("If", {"cond"}, {"y"});
  for (auto [name, sg] : {std::pair{"then_branch", body}, std::pair{"else_branch", other}}) {
    ir::Attribute a;
    a.name = name;
    a.type = ir::AttrType::Graph;
    a.g = sg;
    iff.attrs.push_back(a);
  }
  g.nodes = {mk("Identity", {"x"}, {"t"}), iff};
  g.outputs = {vi_any("y")};
  // Removed as ORT removes it: both branches then read x (neither had a value named x). The initializer only a
  // branch reads survives constant folding.
  ir::Model keep = m;
  EXPECT_EQ(P::remove_identity(m), 1u);
  P::fold_constants(m);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].attr("then_branch")->g->nodes[0].inputs[0], "x");
  EXPECT_EQ(g.nodes[0].attr("else_branch")->g->nodes[0].inputs[0], "x");
  EXPECT_NE(g.find_initializer("only_in_branch"), nullptr);
  // A branch that already reads x: ORT cannot rename (CanUpdateImplicitInputNameInSubgraphs) and keeps the node.
  keep.graph.nodes[1].attrs[1].g->nodes.push_back(mk("Abs", {"x"}, {"unused"}));
  EXPECT_EQ(P::remove_identity(keep), 0u);
  EXPECT_EQ(keep.graph.nodes.size(), 2u);
  EXPECT_EQ(keep.graph.nodes[1].attr("then_branch")->g->nodes[0].inputs[0], "t");
}

// Graph's initializer lookup: found through the index, through add_initializer's update of it, and after direct
// edits of the vector (erase, rename, push_back) that leave the index stale; names that are not initializers
// are not found.
TEST(GraphInitializers, LookupStaysRightAfterDirectEdits) {
  ir::Graph g;
  for (int i = 0; i < 50; ++i) g.add_initializer("w" + std::to_string(i), Tensor(DType::Float, {1}));
  for (int i = 0; i < 50; ++i) {
    const ir::Initializer* p = g.find_initializer("w" + std::to_string(i));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->name, "w" + std::to_string(i));
  }
  EXPECT_EQ(g.find_initializer("activation"), nullptr);
  g.initializers.erase(g.initializers.begin() + 3);  // shifts every later position
  g.initializers[10].name = "renamed";              // was w11
  g.initializers.push_back({"late", Tensor(DType::Int8, {2}), {}});
  EXPECT_EQ(g.find_initializer("w3"), nullptr);
  EXPECT_EQ(g.find_initializer("w11"), nullptr);
  ASSERT_NE(g.find_initializer("renamed"), nullptr);
  EXPECT_EQ(g.find_initializer("renamed"), &g.initializers[10]);
  ASSERT_NE(g.find_initializer("late"), nullptr);
  EXPECT_EQ(g.find_initializer("late")->tensor.dtype(), DType::Int8);
  for (int i : {0, 4, 12, 49}) EXPECT_EQ(g.find_initializer("w" + std::to_string(i))->name, "w" + std::to_string(i));
  EXPECT_TRUE(g.remove_initializer("w4"));
  EXPECT_EQ(g.find_initializer("w4"), nullptr);
  EXPECT_EQ(g.find_initializer("w5")->name, "w5");
}
