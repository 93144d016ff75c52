// ORT optimizer rewrites of quant_pre_process reproduced by the pre-processing: fuse_conv_mul_add (ConvMulFusion /
// ConvAddFusion: hand-computed weights, biases and outputs, ORT's initializer names, the cases left alone, the order
// against BatchNormalization folding in preprocess()) and eliminate_noops (NoopElimination, CastElimination,
// ExpandElimination).
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "ir/passes/passes.h"
#include "passes_test_util.h"

using namespace oq;
using namespace oq::test_passes;
namespace P = oq::ir::passes;

namespace {

// x [1,1,2,2] -> Conv 1x1 with W = {2, 3} (2 output channels), B = {1, -1} (optional) -> c.
ir::Model conv_model(bool bias) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 1, 2, 2})};
  g.add_initializer("W", f32({2, 1, 1, 1}, {2, 3}));
  std::vector<std::string> ins = {"x", "W"};
  if (bias) {
    g.add_initializer("B", f32({2}, {1, -1}));
    ins.push_back("B");
  }
  g.nodes = {mk("Conv", ins, {"c"}, "conv")};
  return m;
}

// Rounds of the pass until nothing changes, as preprocess() runs it.
size_t fuse_all(ir::Model& m) {
  size_t total = 0;
  for (size_t f; (f = P::fuse_conv_mul_add(m)) > 0;) total += f;
  return total;
}

}  // namespace

TEST(FuseConvMulAdd, MulThenAddHandValues) {
  ir::Model m = conv_model(true);
  auto& g = m.graph;
  g.add_initializer("k", f32({2, 1, 1}, {10, 0.5f}));
  g.add_initializer("b", f32({1, 2, 1, 1}, {100, 200}));
  g.nodes.push_back(mk("Mul", {"c", "k"}, {"m"}));
  g.nodes.push_back(mk("Add", {"m", "b"}, {"y"}));
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  // One round is one visit of ORT's rule loop: ConvAddFusion is tried before ConvMulFusion, so the Add after the
  // Mul waits for the next round.
  EXPECT_EQ(P::fuse_conv_mul_add(m), 1u);
  EXPECT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(fuse_all(m), 1u);
  ASSERT_EQ(g.nodes.size(), 1u);
  const ir::Node& conv = g.nodes[0];
  EXPECT_EQ(conv.name, "conv");
  EXPECT_EQ(conv.outputs[0], "y");
  ASSERT_EQ(conv.inputs.size(), 3u);
  // ORT 1.32 (quant_pre_process): Mul first, then the Add on the new bias.
  EXPECT_EQ(conv.inputs[1], "ConvMulFusion_W_W");
  EXPECT_EQ(conv.inputs[2], "ConvAddFusion_B_ConvMulFusion_Mul_B_k");
  EXPECT_EQ(init_values(m, "ConvMulFusion_W_W"), (std::vector<double>{20, 1.5}));
  EXPECT_EQ(init_values(m, "ConvAddFusion_B_ConvMulFusion_Mul_B_k"), (std::vector<double>{110, 199.5}));
  EXPECT_EQ(g.find_initializer("ConvMulFusion_W_W")->tensor.shape(), (Shape{2, 1, 1, 1}));
  EXPECT_EQ(g.find_initializer("ConvAddFusion_B_ConvMulFusion_Mul_B_k")->tensor.shape(), (Shape{2}));
  // Old weight, bias, Mul / Add constants and the intermediate bias: nothing reads them, dropped.
  for (const char* n : {"W", "B", "k", "b", "ConvMulFusion_Mul_B_k"}) EXPECT_EQ(g.find_initializer(n), nullptr) << n;
  auto x = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  auto r = run(m, {{"x", x}});
  // channel 0: 20 x + 110; channel 1: 1.5 x + 199.5
  EXPECT_EQ(r[0].to_doubles(), (std::vector<double>{130, 150, 170, 190, 201, 202.5, 204, 205.5}));
  expect_same(run(orig, {{"x", x}}), r);
}

TEST(FuseConvMulAdd, NoBiasScalarMulAndAddNames) {
  {
    ir::Model m = conv_model(false);
    m.graph.add_initializer("half", f32({}, {0.5f}));
    m.graph.nodes.push_back(mk("Mul", {"c", "half"}, {"y"}));
    m.graph.outputs = {vi_any("y")};
    EXPECT_EQ(P::fuse_conv_mul_add(m), 1u);
    ASSERT_EQ(m.graph.nodes.size(), 1u);
    EXPECT_EQ(m.graph.nodes[0].inputs, (std::vector<std::string>{"x", "ConvMulFusion_W_W"}));  // no bias made
    EXPECT_EQ(init_values(m, "ConvMulFusion_W_W"), (std::vector<double>{1, 1.5}));
  }
  {
    ir::Model m = conv_model(false);
    m.graph.add_initializer("sh", f32({2, 1, 1}, {0.25f, -4}));
    m.graph.nodes.push_back(mk("Add", {"c", "sh"}, {"y"}));
    m.graph.outputs = {vi_any("y")};
    EXPECT_EQ(P::fuse_conv_mul_add(m), 1u);
    ASSERT_EQ(m.graph.nodes.size(), 1u);
    EXPECT_EQ(m.graph.nodes[0].inputs, (std::vector<std::string>{"x", "W", "ConvAddFusion_Add_B_sh"}));
    EXPECT_EQ(init_values(m, "ConvAddFusion_Add_B_sh"), (std::vector<double>{0.25, -4}));
    EXPECT_EQ(m.graph.find_initializer("ConvAddFusion_Add_B_sh")->tensor.shape(), (Shape{2}));
    auto r = run(m, {{"x", f32({1, 1, 2, 2}, {1, 2, 3, 4})}});
    EXPECT_EQ(r[0].to_doubles(), (std::vector<double>{2.25, 4.25, 6.25, 8.25, -1, 2, 5, 8}));
  }
}

// The same constant on two Muls of one chain: the second bias name collides with the first (still read by the
// Conv when it is made) and gets ORT's "_token_0".
TEST(FuseConvMulAdd, RepeatedMulNamesAndTokens) {
  ir::Model m = conv_model(true);
  auto& g = m.graph;
  g.add_initializer("k", f32({2, 1, 1}, {2, 4}));
  g.nodes.push_back(mk("Mul", {"c", "k"}, {"m"}));
  g.nodes.push_back(mk("Mul", {"m", "k"}, {"y"}));
  g.outputs = {vi_any("y")};
  EXPECT_EQ(fuse_all(m), 2u);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].inputs,
            (std::vector<std::string>{"x", "ConvMulFusion_W_ConvMulFusion_W_W", "ConvMulFusion_Mul_B_k_token_0"}));
  EXPECT_EQ(init_values(m, "ConvMulFusion_W_ConvMulFusion_W_W"), (std::vector<double>{8, 48}));
  EXPECT_EQ(init_values(m, "ConvMulFusion_Mul_B_k_token_0"), (std::vector<double>{4, -16}));
}

TEST(FuseConvMulAdd, LeftAloneWhenPatternDoesNotApply) {
  struct Case {
    const char* what;
    std::function<void(ir::Model&)> build;
  };
  auto chain = [](ir::Model& m, const std::string& op, const Tensor& k, bool left = false) {
    m.graph.add_initializer("k", k);
    m.graph.nodes.push_back(left ? mk(op, {"k", "c"}, {"y"}) : mk(op, {"c", "k"}, {"y"}));
    m.graph.outputs = {vi_any("y")};
  };
  const std::vector<Case> cases = {
      {"scalar Add", [&](ir::Model& m) { chain(m, "Add", f32({}, {1})); }},
      {"[1] Mul", [&](ir::Model& m) { chain(m, "Mul", f32({1}, {2})); }},
      {"[C] Mul", [&](ir::Model& m) { chain(m, "Mul", f32({2}, {2, 3})); }},
      {"[1,1,1] Mul", [&](ir::Model& m) { chain(m, "Mul", f32({1, 1, 1}, {2})); }},
      {"[1,C,2,2] Add", [&](ir::Model& m) { chain(m, "Add", rnd({1, 2, 2, 2}, 1)); }},
      {"constant on the left", [&](ir::Model& m) { chain(m, "Mul", f32({2, 1, 1}, {2, 3}), true); }},
      {"Sub", [&](ir::Model& m) { chain(m, "Sub", f32({2, 1, 1}, {2, 3})); }},
      {"Conv output also a graph output",
       [&](ir::Model& m) {
         chain(m, "Mul", f32({2, 1, 1}, {2, 3}));
         m.graph.outputs.push_back(vi_any("c"));
       }},
      {"Conv output read twice",
       [&](ir::Model& m) {
         chain(m, "Mul", f32({2, 1, 1}, {2, 3}));
         m.graph.nodes.push_back(mk("Relu", {"c"}, {"r"}));
         m.graph.outputs.push_back(vi_any("r"));
       }},
      {"non-constant operand",
       [&](ir::Model& m) {
         m.graph.inputs.push_back(vi("k", {2, 1, 1}));
         m.graph.nodes.push_back(mk("Mul", {"c", "k"}, {"y"}));
         m.graph.outputs = {vi_any("y")};
       }},
      {"overridable initializer (IR 7, also a graph input)",
       [&](ir::Model& m) {
         chain(m, "Mul", f32({2, 1, 1}, {2, 3}));
         m.graph.inputs.push_back(vi("k", {2, 1, 1}));
       }},
      {"ConvTranspose",
       [&](ir::Model& m) {
         m.graph.nodes[0].op_type = "ConvTranspose";
         m.graph.find_initializer("W")->tensor = f32({1, 2, 1, 1}, {2, 3});
         chain(m, "Mul", f32({2, 1, 1}, {2, 3}));
       }},
      {"float64 constant (types differ from the weight's)",
       [&](ir::Model& m) {
         m.graph.add_initializer("k", Tensor::from_vector(DType::Double, {2, 1, 1}, std::vector<double>{2, 3}));
         m.graph.nodes.push_back(mk("Mul", {"c", "k"}, {"y"}));
         m.graph.outputs = {vi_any("y")};
       }},
  };
  for (const auto& cs : cases) {
    ir::Model m = conv_model(true);
    cs.build(m);
    const size_t nodes = m.graph.nodes.size();
    EXPECT_EQ(P::fuse_conv_mul_add(m), 0u) << cs.what;
    EXPECT_EQ(m.graph.nodes.size(), nodes) << cs.what;
    EXPECT_EQ(m.graph.nodes[0].inputs[1], "W") << cs.what;
  }
}

// Sibling Convs sharing the weight and the Mul constant: ORT visits them in reverse file order (its topological
// sort pops a stack) and names the weight before the bias, so the last Conv of the file gets the plain names
// (quant_pre_process on this graph: tests/python/test_ort_basic_rewrites.py).
TEST(FuseConvMulAdd, SiblingsNamedInOrtOrder) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 1, 2, 2})};
  g.add_initializer("W", f32({2, 1, 1, 1}, {2, 3}));
  g.add_initializer("k", f32({2, 1, 1}, {10, 0.5f}));
  for (int i = 0; i < 3; ++i) {
    const std::string s = std::to_string(i);
    g.add_initializer("B" + s, f32({2}, {float(i), 1}));
    g.nodes.push_back(mk("Conv", {"x", "W", "B" + s}, {"c" + s}, "conv" + s));
    g.nodes.push_back(mk("Mul", {"c" + s, "k"}, {"m" + s}));
  }
  g.nodes.push_back(mk("Sum", {"m0", "m1", "m2"}, {"y"}));
  g.outputs = {vi_any("y")};
  EXPECT_EQ(fuse_all(m), 3u);
  std::map<std::string, std::vector<std::string>> ins;
  for (const auto& n : g.nodes) ins[n.name] = n.inputs;
  EXPECT_EQ(ins["conv2"], (std::vector<std::string>{"x", "ConvMulFusion_W_W", "ConvMulFusion_Mul_B_k"}));
  EXPECT_EQ(ins["conv1"], (std::vector<std::string>{"x", "ConvMulFusion_W_W_token_0", "ConvMulFusion_Mul_B_k_token_1"}));
  EXPECT_EQ(ins["conv0"], (std::vector<std::string>{"x", "ConvMulFusion_W_W_token_2", "ConvMulFusion_Mul_B_k_token_3"}));
  EXPECT_EQ(init_values(m, "ConvMulFusion_Mul_B_k_token_3"), (std::vector<double>{0, 0.5}));
}

// The Conv output read by an If body (an outer-scope reference): not fused, the name stays.
TEST(FuseConvMulAdd, KeepsNamesABodyReads) {
  ir::Model m = conv_model(true);
  auto& g = m.graph;
  g.inputs.push_back(vi("cond", {}, DType::Bool));
  g.add_initializer("k", f32({2, 1, 1}, {2, 3}));
  auto then_g = std::make_shared<ir::Graph>();
  then_g->nodes = {mk("Neg", {"c"}, {"t_out"})};
  then_g->outputs = {vi_any("t_out")};
  auto else_g = std::make_shared<ir::Graph>();
  else_g->nodes = {mk("Relu", {"x"}, {"e_out"})};
  else_g->outputs = {vi_any("e_out")};
  ir::Node iff = mk("If", {"cond"}, {"z"});
  for (auto [name, sg] : {std::pair{"then_branch", then_g}, std::pair{"else_branch", else_g}}) {
    ir::Attribute a;
    a.name = name;
    a.type = ir::AttrType::Graph;
    a.g = sg;
    iff.attrs.push_back(a);
  }
  g.nodes.push_back(mk("Mul", {"c", "k"}, {"y"}));
  g.nodes.push_back(iff);
  g.outputs = {vi_any("y"), vi_any("z")};
  EXPECT_EQ(P::fuse_conv_mul_add(m), 0u);
  EXPECT_EQ(g.nodes[0].outputs[0], "c");
}

// preprocess(): Conv -> Mul -> BatchNormalization -> Add folds in chain order, as ORT's rule loop does
// (names checked against quant_pre_process in tests/python/test_conv_mul_add_fusion.py).
TEST(FuseConvMulAdd, PreprocessInterleavesWithBatchNormFolding) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 3, 5, 5})};
  g.add_initializer("W", rnd({4, 3, 3, 3}, 1));
  g.add_initializer("k", rnd({1, 4, 1, 1}, 2, 0.5f, 2.f));
  g.add_initializer("b", rnd({4, 1, 1}, 3));
  g.nodes = {mk("Conv", {"x", "W"}, {"c"}, "conv"), mk("Mul", {"c", "k"}, {"m"})};
  add_bn(m, "m", "n", 4, 10);
  g.nodes.push_back(mk("Add", {"n", "b"}, {"y"}));
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  auto st = P::preprocess(m);
  EXPECT_EQ(st.fused_conv_mul_adds, 2u);
  EXPECT_EQ(st.folded_batchnorms, 1u);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].inputs,
            (std::vector<std::string>{"x", "ConvBnFusion_W_ConvMulFusion_W_W", "ConvAddFusion_B_ConvBnFusion_BN_B_bn_b"}));
  EXPECT_EQ(g.nodes[0].outputs[0], "y");
  auto x = rnd({1, 3, 5, 5}, 4);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
}

// ------------------------------------------------------------------------------------------- eliminate_noops
// x -> Relu -> r -> <op> -> q -> Neg -> y: the op goes when it changes nothing; Neg then reads r.
TEST(EliminateNoops, RemovedHandValues) {
  struct Case {
    const char* what;
    std::string op;
    Tensor k;
    bool k_left;
  };
  const std::vector<Case> cases = {
      {"Add 0", "Add", f32({}, {0}), false},          {"0 + x", "Add", f32({}, {0}), true},
      {"Add -0.0 [1]", "Add", f32({1}, {-0.0f}), false}, {"Sub 0", "Sub", f32({}, {0}), false},
      {"Mul 1", "Mul", f32({}, {1}), false},          {"1 * x", "Mul", f32({1, 1}, {1}), true},
      {"Div 1", "Div", f32({1}, {1}), false},
  };
  for (const auto& cs : cases) {
    ir::Model m = model(13);
    auto& g = m.graph;
    g.inputs = {vi("x", {2, 2})};
    g.add_initializer("k", cs.k);
    g.nodes = {mk("Relu", {"x"}, {"r"}), mk(cs.op, cs.k_left ? std::vector<std::string>{"k", "r"}
                                                              : std::vector<std::string>{"r", "k"}, {"q"}),
               mk("Neg", {"q"}, {"y"})};
    g.value_info = {vi("r", {2, 2}), vi("q", {2, 2})};
    g.outputs = {vi_any("y")};
    EXPECT_EQ(P::eliminate_noops(m), 1u) << cs.what;
    ASSERT_EQ(g.nodes.size(), 2u) << cs.what;
    EXPECT_EQ(g.nodes[1].inputs[0], "r") << cs.what;
    EXPECT_EQ(g.find_initializer("k"), nullptr) << cs.what;
    EXPECT_EQ(g.find_value_info("q"), nullptr) << cs.what;
    auto r = run(m, {{"x", f32({2, 2}, {-1, 2, -3, 4})}});
    EXPECT_EQ(r[0].to_doubles(), (std::vector<double>{0, -2, 0, -4})) << cs.what;
  }
}

TEST(EliminateNoops, KeptWhenSomethingChanges) {
  struct Case {
    const char* what;
    std::string op;
    Tensor k;
    bool k_left;
    bool r_graph_input = false;  // the op reads the graph input x itself
    bool q_graph_output = false;
  };
  const std::vector<Case> cases = {
      {"Add 1", "Add", f32({}, {1}), false},
      {"Mul 0", "Mul", f32({}, {0}), false},
      {"0 - x", "Sub", f32({}, {0}), true},
      {"1 / x", "Div", f32({}, {1}), true},
      {"Add zeros [2,1] (not one element)", "Add", f32({2, 1}, {0, 0}), false},
      {"Mul [1,1,1] ones on a 2-D tensor (output rank 3)", "Mul", f32({1, 1, 1}, {1}), false},
      {"on a graph input", "Add", f32({}, {0}), false, true},
      {"writes a graph output", "Mul", f32({}, {1}), false, false, true},
  };
  for (const auto& cs : cases) {
    ir::Model m = model(13);
    auto& g = m.graph;
    g.inputs = {vi("x", {2, 2})};
    g.add_initializer("k", cs.k);
    const std::string d = cs.r_graph_input ? "x" : "r";
    g.nodes = {mk("Relu", {"x"}, {"r"}), mk(cs.op, cs.k_left ? std::vector<std::string>{"k", d}
                                                              : std::vector<std::string>{d, "k"}, {"q"}),
               mk("Neg", {"q"}, {"y"})};
    g.value_info = {vi("r", {2, 2})};
    g.outputs = {vi_any("y"), vi_any("r")};
    if (cs.q_graph_output) g.outputs.push_back(vi_any("q"));
    EXPECT_EQ(P::eliminate_noops(m), 0u) << cs.what;
    EXPECT_EQ(g.nodes.size(), 3u) << cs.what;
  }
}

TEST(EliminateNoops, CastAndExpand) {
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 3, 2})};
  g.add_initializer("same", i64({2}, {3, 1}));   // broadcasts to [1,3,2]: the input's shape
  g.add_initializer("ones", i64({3}, {1, 1, 1}));
  g.add_initializer("up", i64({3}, {2, 3, 2}));  // [2,3,2]: a real Expand
  auto cast = [](const std::string& in, const std::string& out, int64_t to) {
    auto n = mk("Cast", {in}, {out});
    n.set_attr_int("to", to);
    return n;
  };
  g.nodes = {cast("x", "xc", 1) /* a graph input's Cast to its own type goes too (ORT) */,
             mk("Relu", {"xc"}, {"r"}), cast("r", "c1", 1) /* float -> float: goes */,
             cast("c1", "h", 10) /* -> float16: stays */, cast("h", "c2", 1) /* stays */,
             mk("Expand", {"c2", "same"}, {"e1"}), mk("Expand", {"e1", "ones"}, {"e2"}),
             mk("Expand", {"e2", "up"}, {"y"})};
  g.value_info = {vi("r", {1, 3, 2}), vi("c2", {1, 3, 2}), vi("e1", {1, 3, 2})};
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  EXPECT_EQ(P::eliminate_noops(m), 4u);
  EXPECT_EQ(g.nodes[0].inputs[0], "x");
  std::vector<std::string> ops;
  for (const auto& n : g.nodes) ops.push_back(n.op_type);
  EXPECT_EQ(ops, (std::vector<std::string>{"Relu", "Cast", "Cast", "Expand"}));
  EXPECT_EQ(g.nodes[1].inputs[0], "r");
  EXPECT_EQ(g.nodes[3].inputs, (std::vector<std::string>{"c2", "up"}));
  auto x = rnd({1, 3, 2}, 5);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 0);
}

// Transpose pairs: [0,2,3,1] then [0,3,1,2] cancel (both go, or only the second when the first has another reader);
// [0,2,3,1] twice does not; absent perms (reversals) cancel each other.
TEST(EliminateNoops, TransposePairs) {
  auto tr = [](const std::string& in, const std::string& out, std::vector<int64_t> perm) {
    auto n = mk("Transpose", {in}, {out});
    if (!perm.empty()) n.set_attr_ints("perm", perm);
    return n;
  };
  ir::Model m = model(13);
  auto& g = m.graph;
  g.inputs = {vi("x", {1, 2, 3, 4})};
  g.nodes = {tr("x", "a1", {0, 2, 3, 1}), tr("a1", "a2", {0, 3, 1, 2}), mk("Relu", {"a2"}, {"r"}),  // cancels
             tr("r", "b1", {0, 2, 3, 1}), tr("b1", "b2", {0, 3, 1, 2}), mk("Neg", {"b1"}, {"nb"}),  // b1 read twice
             mk("Relu", {"b2"}, {"s"}), tr("s", "c1", {0, 2, 3, 1}), tr("c1", "c2", {0, 2, 3, 1}),  // no
             tr("s", "d1", {}), tr("d1", "d2", {}), mk("Sigmoid", {"d2"}, {"ds"}),                   // reversals
             tr("s", "e1", {0, 2, 3, 1}), tr("e1", "e2", {0, 3, 1, 2})};  // e2 a graph output: kept
  g.outputs = {vi_any("nb"), vi_any("c2"), vi_any("ds"), vi_any("e2")};
  ir::Model orig = m;
  EXPECT_EQ(P::eliminate_noops(m), 5u);  // a1 a2, b2, d1 d2
  std::vector<std::string> left;
  for (const auto& n : g.nodes)
    if (n.op_type == "Transpose") left.push_back(n.outputs[0]);
  EXPECT_EQ(left, (std::vector<std::string>{"b1", "c1", "c2", "e1", "e2"}));
  EXPECT_EQ(g.nodes[0].op_type, "Relu");
  EXPECT_EQ(g.nodes[0].inputs[0], "x");
  for (const auto& n : g.nodes) {
    if (n.outputs[0] == "s") {
      EXPECT_EQ(n.inputs[0], "r");
    }
    if (n.outputs[0] == "ds") {
      EXPECT_EQ(n.inputs[0], "s");
    }
  }
  auto x = rnd({1, 2, 3, 4}, 8);
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 0);
}

// preprocess(): Conv -> Mul by k where k is also a graph input: from IR 4 the Mul stays (k may be overridden; ORT's
// quant_pre_process keeps it, tests/python/test_overridable_initializers.py), then k is a constant (no longer an
// input); at IR 3 (every initializer an input, none overridable) the Mul folds into the Conv: W' = W x k.
TEST(FuseConvMulAdd, GraphInputInitializersNotFoldedFromIr4) {
  for (int64_t ir_version : {7, 3}) {
    ir::Model m = model(13, ir_version);
    auto& g = m.graph;
    g.inputs = {vi("x", {1, 1, 2, 2}), vi("k", {2, 1, 1})};
    g.add_initializer("W", f32({2, 1, 1, 1}, {2, 3}));
    g.add_initializer("k", f32({2, 1, 1}, {10, 0.5f}));
    g.nodes = {mk("Conv", {"x", "W"}, {"c"}, "conv"), mk("Mul", {"c", "k"}, {"y"}, "mul")};
    g.outputs = {vi_any("y")};
    const auto st = P::preprocess(m);
    EXPECT_EQ(st.initializer_inputs, 1u);
    ASSERT_EQ(g.inputs.size(), 1u);
    EXPECT_EQ(g.inputs[0].name, "x");
    if (ir_version >= 4) {
      EXPECT_EQ(st.fused_conv_mul_adds, 0u);
      EXPECT_EQ(count_op(m, "Mul"), 1u);
      EXPECT_EQ(init_values(m, "k"), (std::vector<double>{10, 0.5}));
    } else {
      EXPECT_EQ(st.fused_conv_mul_adds, 1u);
      EXPECT_EQ(count_op(m, "Mul"), 0u);
      EXPECT_EQ(init_values(m, g.nodes[0].inputs[1]), (std::vector<double>{20, 1.5}));
    }
  }
}
