// inline_local_functions on the IR: the shapes of the result and its refusals (one line naming the node and the
// function). The comparison with onnxruntime's inlining (names, quantization, outputs) is
// tests/python/test_local_functions.py.
#include <gtest/gtest.h>

#include "core/error.h"
#include "ir/passes/passes.h"

using namespace oq;

namespace {

ir::Node node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
              const std::string& name = "", const std::string& domain = "") {
  ir::Node n;
  n.op_type = op;
  n.name = name;
  n.domain = domain;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

// Graph: x -> F(call) -> y; F(a) = LeakyRelu(a, alpha=@alpha) named "lk", then Neg unnamed.
ir::Model model_with(ir::Function f, ir::Node call) {
  ir::Model m;
  m.ir_version = 8;
  m.opsets = {{"", 17}, {"d", 1}};
  m.graph.inputs.push_back({"x", DType::Float, std::vector<ir::Dim>{{2, ""}}, "", ""});
  m.graph.outputs.push_back({"y", DType::Float, std::vector<ir::Dim>{{2, ""}}, "", ""});
  m.graph.nodes.push_back(std::move(call));
  m.functions.push_back(std::move(f));
  return m;
}

ir::Function leaky() {
  ir::Function f;
  f.name = "F";
  f.domain = "d";
  f.inputs = {"a"};
  f.outputs = {"b"};
  f.attributes = {"alpha"};
  f.opsets = {{"", 17}};
  ir::Node lk = node("LeakyRelu", {"a"}, {"l"}, "lk");
  ir::Attribute ref;
  ref.name = "alpha";
  ref.type = ir::AttrType::Float;
  ref.ref_attr_name = "alpha";
  lk.attrs.push_back(ref);
  f.nodes = {lk, node("Neg", {"l"}, {"b"})};
  return f;
}

std::string error_of(ir::Model& m) {
  try {
    ir::passes::inline_local_functions(m);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(LocalFunctions, InlinedWithOrtNamesAndAttributes) {
  ir::Node call = node("F", {"x"}, {"y"}, "call", "d");
  call.set_attr_float("alpha", 0.5f);
  ir::Model m = model_with(leaky(), call);
  EXPECT_EQ(ir::passes::inline_local_functions(m), 1u);
  ASSERT_EQ(m.graph.nodes.size(), 2u);
  EXPECT_EQ(m.graph.nodes[0].name, "_inlfunc_F_lk");
  EXPECT_EQ(m.graph.nodes[0].inputs, std::vector<std::string>{"x"});
  EXPECT_EQ(m.graph.nodes[0].outputs, std::vector<std::string>{"_inlfunc_F_l"});
  EXPECT_FLOAT_EQ(m.graph.nodes[0].attr_float("alpha", 0), 0.5f);
  EXPECT_TRUE(m.graph.nodes[0].attr("alpha")->ref_attr_name.empty());
  EXPECT_EQ(m.graph.nodes[1].name, "");
  EXPECT_EQ(m.graph.nodes[1].outputs, std::vector<std::string>{"y"});
  EXPECT_TRUE(m.functions.empty());
}

TEST(LocalFunctions, AbsentAttributeWithoutDefaultIsDropped) {
  ir::Model m = model_with(leaky(), node("F", {"x"}, {"y"}, "call", "d"));
  ir::passes::inline_local_functions(m);
  EXPECT_FALSE(m.graph.nodes[0].has_attr("alpha"));
}

TEST(LocalFunctions, OmittedOutputsGetFreshNames) {
  // F(a) = (b, l): LeakyRelu writes l, Neg writes b. A call giving "" for l, or leaving it off the end, binds l to
  // "<prefix>_l" (ORT's Inliner::bind), never to "" (which left LeakyRelu without its required output). An omitted
  // input stays "".
  for (std::vector<std::string> outs : {std::vector<std::string>{"y", ""}, std::vector<std::string>{"y"}}) {
    ir::Function f = leaky();
    f.outputs = {"b", "l"};
    ir::Model m = model_with(f, node("F", {"x"}, outs, "call", "d"));
    EXPECT_EQ(ir::passes::inline_local_functions(m), 1u);
    ASSERT_EQ(m.graph.nodes.size(), 2u);
    EXPECT_EQ(m.graph.nodes[0].outputs, std::vector<std::string>{"_inlfunc_F_l"});
    EXPECT_EQ(m.graph.nodes[1].inputs, std::vector<std::string>{"_inlfunc_F_l"});
    EXPECT_EQ(m.graph.nodes[1].outputs, std::vector<std::string>{"y"});
  }
}

TEST(LocalFunctions, DuplicateNodeNamesAfterInliningRefused) {
  // Two body nodes named "n" both become "_inlfunc_F_n": onnxruntime refuses the inlined graph.
  ir::Function f = leaky();
  f.nodes[0].name = "n";
  f.nodes[1].name = "n";
  ir::Model m = model_with(f, node("F", {"x"}, {"y"}, "call", "d"));
  std::string e = error_of(m);
  EXPECT_NE(e.find("after inlining the model-local functions: two nodes are named '_inlfunc_F_n'"), std::string::npos)
      << e;
}

TEST(LocalFunctions, OlderOpsetBodyConverted) {
  // ReduceSum-11 (axes attribute) in a function at opset 11, model at 17: the body is converted (ReduceSum-13 takes
  // the axes as an input, here from a Constant node of the body), not inlined as it is.
  ir::Function f;
  f.name = "S";
  f.domain = "d";
  f.inputs = {"a"};
  f.outputs = {"b"};
  f.opsets = {{"", 11}};
  ir::Node rs = node("ReduceSum", {"a"}, {"b"}, "rs");
  rs.set_attr_ints("axes", {0});
  f.nodes = {rs};
  ir::Model m = model_with(f, node("S", {"x"}, {"y"}, "call", "d"));
  EXPECT_EQ(ir::passes::inline_local_functions(m), 1u);
  ASSERT_EQ(m.graph.nodes.size(), 2u);
  EXPECT_EQ(m.graph.nodes[0].op_type, "Constant");
  const ir::Node& r = m.graph.nodes[1];
  EXPECT_EQ(r.op_type, "ReduceSum");
  EXPECT_FALSE(r.has_attr("axes"));
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_EQ(r.inputs[0], "x");
  EXPECT_EQ(r.inputs[1], m.graph.nodes[0].outputs[0]);
  EXPECT_EQ(r.inputs[1].rfind("_inlfunc_S_", 0), 0u) << r.inputs[1];
  EXPECT_EQ(r.outputs, std::vector<std::string>{"y"});
}

TEST(LocalFunctions, Refusals) {
  {  // a newer opset of the default domain
    ir::Function f = leaky();
    f.opsets = {{"", 21}};
    ir::Model m = model_with(f, node("F", {"x"}, {"y"}, "call", "d"));
    std::string e = error_of(m);
    EXPECT_NE(e.find("node 'call' (d.F)"), std::string::npos) << e;
    EXPECT_NE(e.find("function 'd.F' imports opset 21 of domain 'ai.onnx', the model opset 17: its body cannot be converted to an older opset"), std::string::npos) << e;
  }
  {  // a reference to an attribute the function does not declare
    ir::Function f = leaky();
    f.attributes.clear();
    ir::Model m = model_with(f, node("F", {"x"}, {"y"}, "call", "d"));
    std::string e = error_of(m);
    EXPECT_NE(e.find("refers to attribute 'alpha', which the function does not declare"), std::string::npos) << e;
  }
  {  // recursion
    ir::Function f = leaky();
    f.nodes = {node("F", {"a"}, {"b"}, "self", "d")};
    ir::Model m = model_with(f, node("F", {"x"}, {"y"}, "call", "d"));
    std::string e = error_of(m);
    EXPECT_NE(e.find("more than 64 levels deep"), std::string::npos) << e;
  }
}

TEST(LocalFunctions, CallsInsideBodiesInlined) {
  // An If whose then-branch calls F: the branch's call is inlined (with the branch's own prefixes), as onnxruntime
  // inlines the functions of every graph of the model.
  auto branch = std::make_shared<ir::Graph>();
  branch->nodes.push_back(node("F", {"x"}, {"t"}, "inner_call", "d"));
  branch->outputs.push_back({"t", DType::Float, std::nullopt, "", ""});
  auto other = std::make_shared<ir::Graph>();
  other->nodes.push_back(node("Identity", {"x"}, {"e"}, "id"));
  other->outputs.push_back({"e", DType::Float, std::nullopt, "", ""});
  ir::Node iff = node("If", {"cond"}, {"y"}, "if");
  ir::Attribute then_a, else_a;
  then_a.name = "then_branch";
  then_a.type = ir::AttrType::Graph;
  then_a.g = branch;
  else_a.name = "else_branch";
  else_a.type = ir::AttrType::Graph;
  else_a.g = other;
  iff.attrs = {then_a, else_a};
  ir::Model m = model_with(leaky(), iff);
  m.graph.inputs.push_back({"cond", DType::Bool, std::vector<ir::Dim>{}, "", ""});
  EXPECT_EQ(ir::passes::inline_local_functions(m), 1u);
  const ir::Graph& b = *m.graph.nodes[0].attr("then_branch")->g;
  ASSERT_EQ(b.nodes.size(), 2u);
  EXPECT_EQ(b.nodes[0].name, "_inlfunc_F_lk");
  EXPECT_EQ(b.nodes[0].inputs, std::vector<std::string>{"x"});
  EXPECT_EQ(b.nodes[1].outputs, std::vector<std::string>{"t"});
  EXPECT_TRUE(m.functions.empty());
}
