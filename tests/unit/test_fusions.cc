// Pre-processing fusions on hand-built IR graphs, as ONNX Runtime's quant_pre_process does them: a zero Pad
// folded into the Conv after it, MatMul + Add of a constant bias fused into one Gemm; the structure of each
// rewrite (and of the cases that must NOT be rewritten) and the numerical equality of the rewritten graph with
// the original, both run through exec::Session.
#include <gtest/gtest.h>

#include <set>

#include "ir/passes/passes.h"
#include "passes_test_util.h"

using namespace oq;
using namespace oq::test_passes;
namespace P = oq::ir::passes;

// -------------------------------------------------------------------------- fuse_pad_into_conv, fuse_matmul_add
namespace {
// x [1,2,5,5] -> Pad(pads) -> p -> Conv(w, pads {1,0,0,1}) -> y; pads/constant_value as inputs from opset 11.
ir::Model pad_conv_model(int opset, std::vector<int64_t> pads) {
  ir::Model m = model(opset);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 2, 5, 5})};
  g.add_initializer("w", rnd({3, 2, 3, 3}, 21));
  ir::Node pad = mk("Pad", {"x"}, {"p"}, "pad");
  if (opset >= 11) {
    g.add_initializer("pads", i64({static_cast<int64_t>(pads.size())}, pads));
    pad.inputs.push_back("pads");
  } else {
    pad.set_attr_ints("pads", pads);
  }
  g.nodes = {pad, mk("Conv", {"p", "w"}, {"y"}, "conv")};
  g.nodes[1].set_attr_ints("pads", {1, 0, 0, 1});
  g.outputs = {vi_any("y")};
  return m;
}

// a [N,4] -> MatMul(B [4,3]) -> mm -> Add(mm, c) -> y
ir::Model matmul_add_model(const Shape& c_shape, bool c_first = false) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("a", {-1, 4})};
  g.add_initializer("B", rnd({4, 3}, 31));
  g.add_initializer("c", rnd(c_shape, 32));
  g.nodes = {mk("MatMul", {"a", "B"}, {"mm"}, "dense/MatMul"),
             mk("Add", c_first ? std::vector<std::string>{"c", "mm"} : std::vector<std::string>{"mm", "c"}, {"y"},
                "dense/BiasAdd")};
  g.outputs = {vi_any("y")};
  return m;
}
}  // namespace

// opset 7 (pads attribute, value 0), 13 (constant_value input 0), 18 (no constant_value): the Pad's spatial pads
// are added to the Conv's, which stays a standard Conv; same results as Pad + Conv.
TEST(FusePadIntoConv, FoldsZeroPadIntoConvPads) {
  for (int opset : {7, 13, 18}) {
    ir::Model m = pad_conv_model(opset, {0, 0, 1, 2, 0, 0, 3, 0});
    if (opset == 7) m.graph.nodes[0].set_attr_float("value", 0.f);
    if (opset == 13) {
      m.graph.add_initializer("cv", f32({}, {0.f}));
      m.graph.nodes[0].inputs.push_back("cv");
    }
    ir::Model orig = m;
    EXPECT_EQ(P::fuse_pad_into_conv(m), 1u) << opset;
    ASSERT_EQ(m.graph.nodes.size(), 1u);
    const ir::Node& conv = m.graph.nodes[0];
    EXPECT_EQ(conv.inputs[0], "x");
    EXPECT_EQ(conv.attr_ints("pads"), (std::vector<int64_t>{2, 2, 3, 1}));  // {1,0,0,1} + {1,2,3,0}
    ASSERT_EQ(conv.attrs.size(), 1u) << "only the standard pads attribute";
    EXPECT_EQ(m.graph.find_initializer("pads"), nullptr);
    auto x = rnd({1, 2, 5, 5}, 22);
    expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
  }
  ir::Model m = pad_conv_model(13, {0, 0, 1, 1, 0, 0, 1, 1});  // Conv without pads: they are created
  m.graph.nodes[1].attrs.clear();
  EXPECT_EQ(P::fuse_pad_into_conv(m), 1u);
  EXPECT_EQ(m.graph.nodes[0].attr_ints("pads"), (std::vector<int64_t>{1, 1, 1, 1}));
}

TEST(FusePadIntoConv, LeavesOtherPadsAlone) {
  const std::vector<int64_t> ok = {0, 0, 1, 1, 0, 0, 1, 1};
  std::vector<std::pair<std::string, std::function<ir::Model()>>> cases = {
      {"non-zero constant_value", [&] {
         auto m = pad_conv_model(13, ok);
         m.graph.add_initializer("cv", f32({}, {0.5f}));
         m.graph.nodes[0].inputs.push_back("cv");
         return m;
       }},
      {"non-zero value attribute", [&] {
         auto m = pad_conv_model(7, ok);
         m.graph.nodes[0].set_attr_float("value", 0.5f);
         return m;
       }},
      {"pad on N", [&] { return pad_conv_model(13, {1, 0, 1, 1, 0, 0, 1, 1}); }},
      {"pad on C", [&] { return pad_conv_model(13, {0, 0, 1, 1, 0, 1, 1, 1}); }},
      {"negative pad", [&] { return pad_conv_model(13, {0, 0, 1, -1, 0, 0, 1, 1}); }},
      {"reflect mode", [&] {
         auto m = pad_conv_model(13, ok);
         m.graph.nodes[0].set_attr_string("mode", "reflect");
         return m;
       }},
      {"two consumers", [&] {
         auto m = pad_conv_model(13, ok);
         m.graph.nodes.push_back(mk("Relu", {"p"}, {"r"}));
         m.graph.outputs.push_back(vi_any("r"));
         return m;
       }},
      {"graph output", [&] {
         auto m = pad_conv_model(13, ok);
         m.graph.outputs.push_back(vi_any("p"));
         return m;
       }},
      {"opset 18 axes input", [&] {
         auto m = pad_conv_model(18, ok);  // axes listing every axis: only the axes input itself refuses
         m.graph.add_initializer("axes", i64({4}, {0, 1, 2, 3}));
         m.graph.nodes[0].inputs = {"x", "pads", "", "axes"};
         return m;
       }},
      {"auto_pad SAME_UPPER", [&] {
         auto m = pad_conv_model(13, ok);
         m.graph.nodes[1].attrs.clear();
         m.graph.nodes[1].set_attr_string("auto_pad", "SAME_UPPER");
         return m;
       }},
  };
  for (auto& [what, make] : cases) {
    ir::Model m = make();
    EXPECT_EQ(P::fuse_pad_into_conv(m), 0u) << what;
    EXPECT_EQ(count_op(m, "Pad"), 1u) << what;
  }
}

// Bias [N], [1, N], bias as Add's first input; A with a symbolic batch dim. The Gemm is named and attributed as
// ONNX Runtime 1.32's MatMulAddFusion names it and writes the Add's output.
TEST(FuseMatMulAdd, FusesDenseLayer) {
  for (auto [c_shape, c_first] : {std::pair{Shape{3}, false}, std::pair{Shape{1, 3}, false},
                                  std::pair{Shape{3}, true}}) {
    ir::Model m = matmul_add_model(c_shape, c_first);
    ir::Model orig = m;
    EXPECT_EQ(P::fuse_matmul_add(m), 1u);
    ASSERT_EQ(m.graph.nodes.size(), 1u);
    const ir::Node& gemm = m.graph.nodes[0];
    EXPECT_EQ(gemm.op_type, "Gemm");
    EXPECT_EQ(gemm.name, "dense/MatMul/MatMulAddFusion");
    EXPECT_EQ(gemm.inputs, (std::vector<std::string>{"a", "B", "c"}));
    EXPECT_EQ(gemm.outputs, (std::vector<std::string>{"y"}));
    EXPECT_EQ(gemm.attr_float("alpha", 0), 1.f);
    EXPECT_EQ(gemm.attr_float("beta", 0), 1.f);
    EXPECT_EQ(gemm.attr_int("transA", 1), 0);
    EXPECT_EQ(gemm.attr_int("transB", 1), 0);
    auto a = rnd({2, 4}, 33);
    expect_same(run(orig, {{"a", a}}), run(m, {{"a", a}}));
  }
}

// tf2onnx exports carry no value_info: A's rank 2 follows from its producers (GlobalAveragePool -> Squeeze with
// an axes input; MatMul -> Add -> Relu for the second layer of an MLP).
TEST(FuseMatMulAdd, RankOfADeducedFromProducers) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {-1, 4, 3, 3})};
  g.add_initializer("axes", i64({2}, {2, 3}));
  g.add_initializer("B1", rnd({4, 5}, 41));
  g.add_initializer("c1", rnd({5}, 42));
  g.add_initializer("B2", rnd({5, 2}, 43));
  g.add_initializer("c2", rnd({1, 2}, 44));
  g.nodes = {mk("GlobalAveragePool", {"x"}, {"gap"}), mk("Squeeze", {"gap", "axes"}, {"sq"}),
             mk("MatMul", {"sq", "B1"}, {"m1"}, "mm1"), mk("Add", {"m1", "c1"}, {"a1"}),
             mk("Relu", {"a1"}, {"r1"}), mk("MatMul", {"r1", "B2"}, {"m2"}, "mm2"), mk("Add", {"c2", "m2"}, {"y"})};
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  EXPECT_EQ(P::fuse_matmul_add(m), 2u);
  EXPECT_EQ(count_op(m, "Gemm"), 2u);
  EXPECT_EQ(count_op(m, "MatMul") + count_op(m, "Add"), 0u);
  EXPECT_NO_THROW(ir::topological_order(g));
  auto x = rnd({2, 4, 3, 3}, 45);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
}

TEST(FuseMatMulAdd, LeavesOtherPatternsAlone) {
  std::vector<std::pair<std::string, std::function<ir::Model()>>> cases = {
      {"A 3-D", [] {
         auto m = matmul_add_model({3});
         m.graph.inputs = {vi("a", {2, 5, 4})};
         return m;
       }},
      {"A of unknown rank", [] {
         auto m = matmul_add_model({3});
         m.graph.inputs = {vi_any("a")};
         return m;
       }},
      {"Add of a non-constant", [] {
         auto m = matmul_add_model({3});
         m.graph.remove_initializer("c");
         m.graph.inputs.push_back(vi("c", {3}));
         return m;
       }},
      {"bias [M, N]", [] {
         auto m = matmul_add_model({2, 3});
         m.graph.inputs = {vi("a", {2, 4})};
         return m;
       }},
      {"MatMul output read twice", [] {
         auto m = matmul_add_model({3});
         m.graph.nodes.push_back(mk("Relu", {"mm"}, {"r"}));
         m.graph.outputs.push_back(vi_any("r"));
         return m;
       }},
      {"MatMul output a graph output", [] {
         auto m = matmul_add_model({3});
         m.graph.outputs.push_back(vi_any("mm"));
         return m;
       }},
  };
  for (auto& [what, make] : cases) {
    ir::Model m = make();
    EXPECT_EQ(P::fuse_matmul_add(m), 0u) << what;
    EXPECT_EQ(count_op(m, "MatMul"), 1u) << what;
    EXPECT_EQ(count_op(m, "Gemm"), 0u) << what;
  }
}

// B or C an initializer also listed as a graph input (IR >= 4: a caller may override it): fused all the same, as
// ORT's MatMulAddFusion fuses a non-constant B or C (quant_pre_process, tests/python/test_overridable_initializers.py).
TEST(FuseMatMulAdd, OverridableInitializersFusedAsOrt) {
  for (const char* t : {"B", "c"}) {
    auto m = matmul_add_model({3});
    const Tensor* v = &m.graph.find_initializer(t)->tensor;
    m.graph.inputs.push_back(vi(t, v->shape()));
    EXPECT_EQ(P::fuse_matmul_add(m), 1u) << t;
    EXPECT_EQ(count_op(m, "Gemm"), 1u) << t;
    EXPECT_EQ(count_op(m, "Add"), 0u) << t;
  }
}

// Both fusions run in preprocess (after constant folding: the pads come from a Constant node) and are counted.
TEST(PreprocessPasses, PadAndMatMulAddFusionsCounted) {
  ir::Model m = pad_conv_model(13, {0, 0, 1, 1, 0, 0, 1, 1});
  auto& g = m.graph;
  g.remove_initializer("pads");
  auto pc = mk("Constant", {}, {"pads"});
  pc.set_attr_ints("value_ints", {0, 0, 1, 1, 0, 0, 1, 1});
  g.nodes.insert(g.nodes.begin(), pc);
  g.nodes.back().outputs = {"c"};
  g.add_initializer("B", rnd({3, 2}, 51));
  g.add_initializer("bias", rnd({2}, 52));
  for (auto n : {mk("GlobalAveragePool", {"c"}, {"gap"}), mk("Flatten", {"gap"}, {"f"}),
                 mk("MatMul", {"f", "B"}, {"mm"}), mk("Add", {"mm", "bias"}, {"y"})})
    g.nodes.push_back(n);
  ir::Model orig = m;
  auto st = P::preprocess(m);
  EXPECT_EQ(st.fused_pads, 1u);
  EXPECT_EQ(st.fused_matmul_adds, 1u);
  EXPECT_EQ(st.nodes_after, 4u);  // Conv, GlobalAveragePool, Flatten, Gemm
  EXPECT_EQ(count_op(m, "Pad") + count_op(m, "MatMul") + count_op(m, "Add"), 0u);
  auto x = rnd({1, 2, 5, 5}, 53);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
}


// ------------------------------------------------------------------------------------------ inline_functions
// HardSwish / Mish / Swish expanded as quant_pre_process returns them (ORT's inliner names), computing the same
// values as the ops' own kernels; a sub-graph's outer reference is left alone.
TEST(InlineFunctions, ExpandsWithOrtNamesAndSameValues) {
  ir::Model m = model(24, 12);
  auto& g = m.graph;
  g.inputs = {vi("x", {2, 3, 7})};
  ir::Node swish = mk("Swish", {"m1"}, {"s"}, "swish");
  swish.set_attr_float("alpha", 1.5f);
  g.nodes = {mk("HardSwish", {"x"}, {"h1"}, "hs1"), mk("Mish", {"h1"}, {"m1"}, "mish1"), swish,
             mk("HardSwish", {"s"}, {"h2"}, "hs2"), mk("Mish", {"h2"}, {"y"}, "mish2")};
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  EXPECT_EQ(P::inline_functions(m), 5u);
  EXPECT_EQ(count_op(m, "HardSwish") + count_op(m, "Mish") + count_op(m, "Swish"), 0u);
  EXPECT_EQ(count_op(m, "HardSigmoid"), 2u);
  EXPECT_EQ(count_op(m, "Mul"), 6u);  // 1 + 1 + 2 + 1 + 1
  std::set<std::string> outs;
  for (const auto& n : m.graph.nodes) outs.insert(n.outputs[0]);
  for (const char* t : {"_inlfunc_HardSwish_HS_X", "_inlfunc_Mish_Softplus_X", "_inlfunc_Mish_TanHSoftplusX",
                        "_inlfunc_Swish_AlphaCast", "_inlfunc_Swish_AlphaMulX", "_inlfunc_Swish_SigmoidAlphaMulX",
                        "_inlfunc_HardSwish_token_0_HS_X", "_inlfunc_Mish_token_1_Softplus_X", "y"})
    EXPECT_TRUE(outs.count(t)) << t;
  const auto* alpha = m.graph.find_initializer("_inlfunc_Swish_Alpha");
  ASSERT_NE(alpha, nullptr);
  EXPECT_EQ(alpha->tensor.data<float>()[0], 1.5f);
  auto x = rnd({2, 3, 7}, 41, -6.f, 6.f);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 1e-5);
}
