// fuse_layer_norm_gelu (ORT's LayerNormFusion / GeluFusion of quant_pre_process): the rewritten graph has the
// fused node with ORT's name, inputs, output and epsilon, computes what the decomposed graph computes (executor)
// and hand-computed values; the patterns ORT leaves alone (and those onnxquant deliberately leaves) stay.
// Against onnxruntime itself: tests/python/test_ort_fusions_ln_gelu.py.
#include <gtest/gtest.h>

#include <cmath>

#include "ir/passes/passes.h"
#include "passes_test_util.h"

using namespace oq;
using namespace oq::test_passes;
namespace P = oq::ir::passes;

namespace {

struct LnOpts {
  int opset = 17;
  std::vector<int64_t> axes = {-1};
  float pow_exp = 2.f;
  bool eps_constant = true;
  std::string extra_output;  // an intermediate also made a graph output
};

// x [N,3,4] -> decomposed LayerNorm (gamma g [4], beta b [4], eps 0.01) -> y.
ir::Model ln_model(const LnOpts& o = {}) {
  ir::Model m = model(o.opset, 8);
  auto& g = m.graph;
  g.inputs = {vi("x", {-1, 3, 4})};
  g.add_initializer("g", f32({4}, {1.f, 2.f, 0.5f, -1.f}));
  g.add_initializer("b", f32({4}, {0.f, 1.f, -1.f, 0.25f}));
  g.add_initializer("two", f32({}, {o.pow_exp}));
  if (o.eps_constant)
    g.add_initializer("eps", f32({}, {0.01f}));
  else
    g.inputs.push_back(vi("eps", {}));
  auto rmean = [&](const std::string& in, const std::string& out, const std::string& name) {
    ir::Node r = mk("ReduceMean", {in}, {out}, name);
    r.set_attr_ints("axes", o.axes);
    return r;
  };
  g.nodes = {rmean("x", "mu", "rm1"),
             mk("Sub", {"x", "mu"}, {"d"}, "sub"),
             mk("Pow", {"d", "two"}, {"sq"}, "pow"),
             rmean("sq", "var", "rm2"),
             mk("Add", {"var", "eps"}, {"ve"}, "addeps"),
             mk("Sqrt", {"ve"}, {"sd"}, "sqrt"),
             mk("Div", {"d", "sd"}, {"n"}, "div"),
             mk("Mul", {"n", "g"}, {"ng"}, "mulg"),
             mk("Add", {"ng", "b"}, {"y"}, "addb")};
  g.outputs = {vi_any("y")};
  if (!o.extra_output.empty()) g.outputs.push_back(vi_any(o.extra_output));
  return m;
}

// x [N,5] -> erf GELU -> y. pattern 1: (x * 0.5) * (1 + erf(x / sqrt 2)); 2: (x * (1 + erf)) * 0.5.
ir::Model gelu_model(int opset, int pattern, float k = 1.41421356f, const char* div_op = "Div") {
  ir::Model m = model(opset, 9);
  auto& g = m.graph;
  g.inputs = {vi("x", {-1, 5})};
  g.add_initializer("k", f32({}, {k}));
  g.add_initializer("one", f32({1}, {1.f}));
  g.add_initializer("half", f32({}, {0.5f}));
  g.nodes = {mk(div_op, {"x", "k"}, {"xd"}, "div"), mk("Erf", {"xd"}, {"e"}, "erf"),
             mk("Add", {"one", "e"}, {"e1"}, "add")};
  if (pattern == 1) {
    g.nodes.push_back(mk("Mul", {"half", "x"}, {"xh"}, "mulhalf"));
    g.nodes.push_back(mk("Mul", {"e1", "xh"}, {"y"}, "mul"));
  } else {
    g.nodes.push_back(mk("Mul", {"x", "e1"}, {"m"}, "mul"));
    g.nodes.push_back(mk("Mul", {"m", "half"}, {"y"}, "mulhalf"));
  }
  g.outputs = {vi_any("y")};
  return m;
}

Tensor ln_input() {
  return f32({2, 3, 4}, {1, 2, 3, 4, -1, 0, 1, 5, 2, 2, 2, 2, 0.5f, -3, 7, 1, 9, 8, 7, 6, -2, -2, 4, 4});
}

}  // namespace

TEST(FuseLayerNorm, FusedNodeNamesAndValues) {
  ir::Model m = ln_model();
  const ir::Model orig = m;
  const auto st = P::fuse_layer_norm_gelu(m);
  EXPECT_EQ(st.layer_norms, 1u);
  EXPECT_EQ(st.gelus, 0u);
  const auto& g = m.graph;
  ASSERT_EQ(g.nodes.size(), 1u);
  const ir::Node& ln = g.nodes[0];
  EXPECT_EQ(ln.op_type, "LayerNormalization");
  EXPECT_EQ(ln.name, "mulg/LayerNormFusion/");  // ORT 1.32's name
  EXPECT_EQ(ln.inputs, (std::vector<std::string>{"x", "g", "b"}));
  EXPECT_EQ(ln.outputs, (std::vector<std::string>{"y"}));
  EXPECT_EQ(ln.attr_int("axis", 0), -1);
  EXPECT_FLOAT_EQ(ln.attr_float("epsilon", 0), 0.01f);
  // The exponent and eps constants are dropped; gamma and beta stay.
  EXPECT_EQ(g.find_initializer("two"), nullptr);
  EXPECT_EQ(g.find_initializer("eps"), nullptr);
  EXPECT_NE(g.find_initializer("g"), nullptr);
  const Tensor x = ln_input();
  const auto want = run(orig, {{"x", x}}), got = run(m, {{"x", x}});
  expect_same(want, got, 1e-5);
  // Hand value, row [1, 2, 3, 4]: mean 2.5, variance 1.25; (x - 2.5) / sqrt(1.26) * g + b.
  const double s = std::sqrt(1.26);
  const auto y = got[0].to_doubles();
  EXPECT_NEAR(y[0], -1.5 / s * 1 + 0, 1e-5);
  EXPECT_NEAR(y[1], -0.5 / s * 2 + 1, 1e-5);
  EXPECT_NEAR(y[2], 0.5 / s * 0.5 - 1, 1e-5);
  EXPECT_NEAR(y[3], 1.5 / s * -1 + 0.25, 1e-5);
}

TEST(FuseLayerNorm, PositiveAxisAndTwoSubs) {
  // axes [2] on a rank-3 input is the last axis; an older PyTorch export's second Sub(x, mean) feeding the Div.
  LnOpts o;
  o.axes = {2};
  ir::Model m = ln_model(o);
  auto& g = m.graph;
  g.nodes.insert(g.nodes.begin() + 2, mk("Sub", {"x", "mu"}, {"d2"}, "sub2"));
  for (auto& n : g.nodes)
    if (n.name == "div") n.inputs[0] = "d2";
  const ir::Model orig = m;
  EXPECT_EQ(P::fuse_layer_norm_gelu(m).layer_norms, 1u);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].attr_int("axis", 0), -1);
  expect_same(run(orig, {{"x", ln_input()}}), run(m, {{"x", ln_input()}}), 1e-5);
}

TEST(FuseLayerNorm, ExponentOfAnotherFloatType) {
  // Pow's exponent type may differ from X's: a double or float16 2 is fused as ORT fuses it; an int64 2 is not.
  for (DType t : {DType::Double, DType::Float16, DType::Int64}) {
    ir::Model m = ln_model();
    m.graph.find_initializer("two")->tensor = f32({}, {2.f}).cast(t);
    ir::Model orig = m;
    EXPECT_EQ(P::fuse_layer_norm_gelu(m).layer_norms, t == DType::Int64 ? 0u : 1u) << dtype_name(t);
    if (t == DType::Int64) continue;
    EXPECT_EQ(count_op(m, "LayerNormalization"), 1u);
    EXPECT_EQ(m.graph.find_initializer("two"), nullptr);
    expect_same(run(orig, {{"x", ln_input()}}), run(m, {{"x", ln_input()}}), 1e-4);
  }
  // A double 3 stays (ORT fuses any value; not a LayerNorm).
  ir::Model m = ln_model();
  m.graph.find_initializer("two")->tensor = f32({}, {3.f}).cast(DType::Double);
  EXPECT_EQ(P::fuse_layer_norm_gelu(m).layer_norms, 0u);
}

TEST(FuseLayerNorm, Float16ConstantDoesNotMakeAFloat16Model) {
  // A float32 model whose only float16 tensor is the Pow exponent: ORT's quantize_static decides per tensor, and
  // quant_pre_process runs its optimizer on it: a float32 model, pre-processed as one (the LayerNorm fused).
  ir::Model m = ln_model();
  m.graph.find_initializer("two")->tensor = f32({}, {2.f}).cast(DType::Float16);
  EXPECT_TRUE(P::has_float16(m));
  EXPECT_FALSE(P::computes_in_float16(m));
  P::preprocess(m);
  EXPECT_EQ(count_op(m, "LayerNormalization"), 1u);
  // A float16 value computed from it (Identity of the float16 constant, a graph output) makes one.
  ir::Model h = ln_model();
  h.graph.find_initializer("two")->tensor = f32({}, {2.f}).cast(DType::Float16);
  h.graph.nodes.push_back(mk("Identity", {"two"}, {"two_out"}));
  h.graph.outputs.push_back(vi("two_out", {}, DType::Float16));
  EXPECT_TRUE(P::computes_in_float16(h));
}

TEST(FuseLayerNorm, LeftAlone) {
  auto unchanged = [](ir::Model m, const char* what) {
    const size_t n = m.graph.nodes.size();
    EXPECT_EQ(P::fuse_layer_norm_gelu(m).layer_norms, 0u) << what;
    EXPECT_EQ(m.graph.nodes.size(), n) << what;
  };
  LnOpts o;
  o.opset = 16;
  unchanged(ln_model(o), "opset 16: no ONNX LayerNormalization");
  o = {};
  o.axes = {-2};
  unchanged(ln_model(o), "not the last axis");
  o = {};
  o.axes = {-2, -1};
  unchanged(ln_model(o), "two axes");
  o = {};
  o.pow_exp = 3.f;
  unchanged(ln_model(o), "Pow 3 (ORT fuses it; not a LayerNorm)");
  o = {};
  o.eps_constant = false;
  unchanged(ln_model(o), "eps a graph input");
  for (const char* t : {"mu", "sq", "var", "sd", "n", "ng"}) {
    o = {};
    o.extra_output = t;
    unchanged(ln_model(o), t);
  }
  ir::Model m = ln_model();
  for (auto& n : m.graph.nodes)
    if (n.name == "sub") n.inputs = {"mu", "x"};
  unchanged(m, "Sub(mean, x) (ORT fuses it; the sign differs)");
}

TEST(FuseGelu, BothPatternsNamesAndValues) {
  for (int pattern : {1, 2}) {
    ir::Model m = gelu_model(20, pattern);
    const ir::Model orig = m;
    const auto st = P::fuse_layer_norm_gelu(m);
    EXPECT_EQ(st.gelus, 1u) << pattern;
    ASSERT_EQ(m.graph.nodes.size(), 1u) << pattern;
    const ir::Node& n = m.graph.nodes[0];
    EXPECT_EQ(n.op_type, "Gelu");
    EXPECT_EQ(n.name, "Gelu");
    EXPECT_EQ(n.inputs, (std::vector<std::string>{"x"}));
    EXPECT_EQ(n.outputs, (std::vector<std::string>{"y"}));
    EXPECT_EQ(n.attr_string("approximate", ""), "none");
    EXPECT_TRUE(m.graph.initializers.empty());
    const Tensor x = f32({2, 5}, {-3, -1, -0.5f, 0, 0.25f, 0.5f, 1, 2, 3, 10});
    const auto got = run(m, {{"x", x}});
    expect_same(run(orig, {{"x", x}}), got, 1e-5);
    const auto xv = x.to_doubles(), yv = got[0].to_doubles();
    for (size_t i = 0; i < xv.size(); ++i)
      EXPECT_NEAR(yv[i], 0.5 * xv[i] * (1 + std::erf(xv[i] / std::sqrt(2.0))), 1e-5) << i;
  }
}

TEST(FuseGelu, TwoGelusTakeOrtTokenNames) {
  ir::Model m = gelu_model(21, 1);
  auto& g = m.graph;
  // A second GELU on y (pattern 2), writing z.
  g.nodes.push_back(mk("Div", {"y", "k"}, {"yd"}, "div2"));
  g.nodes.push_back(mk("Erf", {"yd"}, {"ye"}, "erf2"));
  g.nodes.push_back(mk("Add", {"ye", "one"}, {"ye1"}, "add2"));
  g.nodes.push_back(mk("Mul", {"ye1", "y"}, {"ym"}, "mul2"));
  g.nodes.push_back(mk("Mul", {"half", "ym"}, {"z"}, "Gelu"));  // a node already named Gelu
  g.outputs = {vi_any("z")};
  const ir::Model orig = m;
  EXPECT_EQ(P::fuse_layer_norm_gelu(m).gelus, 2u);
  ASSERT_EQ(g.nodes.size(), 2u);
  // ORT 1.32: "Gelu" is taken by the Mul when the first is named, so both get tokens.
  EXPECT_EQ(g.nodes[0].name, "Gelu_token_0");
  EXPECT_EQ(g.nodes[1].name, "Gelu_token_1");
  const Tensor x = f32({1, 5}, {-2, -0.3f, 0, 0.7f, 4});
  expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}), 1e-5);
}

TEST(FuseGelu, LeftAlone) {
  auto unchanged = [](ir::Model m, const char* what) {
    const size_t n = m.graph.nodes.size();
    EXPECT_EQ(P::fuse_layer_norm_gelu(m).gelus, 0u) << what;
    EXPECT_EQ(m.graph.nodes.size(), n) << what;
  };
  unchanged(gelu_model(19, 1), "opset 19: no ONNX Gelu");
  unchanged(gelu_model(20, 1, 0.70710678f, "Mul"), "Mul by 1/sqrt 2 (not at ORT's basic level)");
  unchanged(gelu_model(20, 2, 1.414f), "sqrt 2 outside ORT's tolerance");
  ir::Model m = gelu_model(20, 2);
  m.graph.outputs.push_back(vi_any("e1"));
  unchanged(m, "an intermediate is a graph output");
  // Pattern 2 on an x made by a Mul: ORT takes that Mul as the x * 0.5 branch and gives up.
  m = gelu_model(20, 2);
  m.graph.inputs = {vi("x0", {-1, 5})};
  m.graph.nodes.insert(m.graph.nodes.begin(), mk("Mul", {"x0", "x0"}, {"x"}, "square"));
  unchanged(m, "pattern 2 on a Mul output");
}

TEST(FuseLayerNormGelu, PreprocessRunsThem) {
  LnOpts o;
  o.opset = 20;
  ir::Model m = ln_model(o);
  const auto st = P::preprocess(m);
  EXPECT_EQ(st.fused_layer_norms, 1u);
  EXPECT_EQ(count_op(m, "LayerNormalization"), 1u);
  ir::Model q = gelu_model(20, 2);
  EXPECT_EQ(P::preprocess(q).fused_gelus, 1u);
  EXPECT_EQ(count_op(q, "Gelu"), 1u);
}
