// The ai.onnx schema validator (src/ir/validate_schema.{h,cc}): each check on one node, against what the ONNX
// operator spec (docs/Operators.md, docs/Changelog.md) says of that op version, and If bodies. The end-to-end
// cases, with onnx.checker and onnxruntime as the reference, are tests/python/test_model_validation.py.
#include <gtest/gtest.h>

#include "core/error.h"
#include "ir/validate_schema.h"

using namespace oq;

namespace {

ir::Node node(std::string op, std::vector<std::string> ins, std::vector<std::string> outs, std::string name = "n") {
  ir::Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.inputs = std::move(ins);
  n.outputs = std::move(outs);
  return n;
}

ir::Attribute int_attr(std::string name, int64_t v) {
  ir::Attribute a;
  a.name = std::move(name);
  a.type = ir::AttrType::Int;
  a.i = v;
  return a;
}

ir::Attribute float_attr(std::string name, float v) {
  ir::Attribute a;
  a.name = std::move(name);
  a.type = ir::AttrType::Float;
  a.f = v;
  return a;
}

ir::Attribute ints_attr(std::string name, std::vector<int64_t> v) {
  ir::Attribute a;
  a.name = std::move(name);
  a.type = ir::AttrType::Ints;
  a.ints = std::move(v);
  return a;
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(ValidateSchema, VersionsInForce) {
  EXPECT_EQ(ir::schema_version("Clip", 12), 12);
  EXPECT_EQ(ir::schema_version("Clip", 10), 6);
  EXPECT_EQ(ir::schema_version("Squeeze", 12), 11);
  EXPECT_EQ(ir::schema_version("Resize", 9), 0);  // Resize appears at opset 10
  EXPECT_EQ(ir::schema_version("Relu", 28), 14);
  EXPECT_EQ(ir::schema_version("NoSuchOp", 17), 0);
}

TEST(ValidateSchema, ValidNodesPass) {
  EXPECT_EQ(ir::schema_problem(node("Relu", {"x"}, {"y"}), 13), "");
  auto conv = node("Conv", {"x", "w", ""}, {"y"});  // an omitted optional input
  conv.attrs = {ints_attr("pads", {0, 0, 0, 0}), int_attr("group", 1)};
  EXPECT_EQ(ir::schema_problem(conv, 17), "");
  EXPECT_EQ(ir::schema_problem(node("Dropout", {"x"}, {"y", ""}), 13), "");  // an omitted optional output
  EXPECT_EQ(ir::schema_problem(node("Dropout", {"x"}, {"y"}), 13), "");      // trailing optional output left out
  EXPECT_EQ(ir::schema_problem(node("Clip", {"x", "", "hi"}, {"y"}), 13), "");
  auto clip6 = node("Clip", {"x"}, {"y"});
  clip6.attrs = {float_attr("min", 0.f), float_attr("max", 1.f)};
  EXPECT_EQ(ir::schema_problem(clip6, 6), "");
  auto other = node("Relu", {"a", "b"}, {"y"});
  other.domain = "com.microsoft";  // other domains are not checked
  EXPECT_EQ(ir::schema_problem(other, 13), "");
}

TEST(ValidateSchema, InputAndOutputCounts) {
  const std::string two = ir::schema_problem(node("Relu", {"x", "z"}, {"y"}), 13);
  EXPECT_TRUE(has(two, "Relu-13 takes 1 input(s), the node has 2")) << two;
  const std::string outs = ir::schema_problem(node("Relu", {"x"}, {"y", "z"}), 13);
  EXPECT_TRUE(has(outs, "Relu-13 has 1 output(s), the node declares 2")) << outs;
  const std::string none = ir::schema_problem(node("Add", {"x"}, {"y"}), 14);
  EXPECT_TRUE(has(none, "Add-14 takes 2 input(s)")) << none;
  const std::string empty_w = ir::schema_problem(node("Conv", {"x", "", "b"}, {"y"}), 17);
  EXPECT_TRUE(has(empty_w, "input 2 ('W') is required but has an empty name")) << empty_w;
  const std::string empty_y = ir::schema_problem(node("Dropout", {"x"}, {"", "mask"}), 13);
  EXPECT_TRUE(has(empty_y, "output 1 ('output') is required")) << empty_y;
  // Squeeze-11 has an `axes` attribute; Squeeze-13 takes axes as its second input.
  const std::string sq = ir::schema_problem(node("Squeeze", {"x", "axes"}, {"y"}), 11);
  EXPECT_TRUE(has(sq, "Squeeze-11 takes 1 input(s), the node has 2")) << sq;
  EXPECT_TRUE(has(sq, "Squeeze-13 takes 'axes' as an input")) << sq;
}

TEST(ValidateSchema, Attributes) {
  auto dup = node("Conv", {"x", "w"}, {"y"});
  dup.attrs = {ints_attr("pads", {0, 0, 0, 0}), ints_attr("pads", {1, 1, 1, 1})};
  EXPECT_EQ(ir::schema_problem(dup, 17), "attribute 'pads' is given twice");

  auto unknown = node("Relu", {"x"}, {"y"});
  unknown.attrs = {int_attr("frobnicate", 1)};
  const std::string u = ir::schema_problem(unknown, 14);
  EXPECT_EQ(u, "Relu-14 (the version at opset 14) has no attribute 'frobnicate'");

  // Clip-6 had min / max attributes; from Clip-11 they are inputs.
  auto clip = node("Clip", {"x"}, {"y"});
  clip.attrs = {float_attr("min", 0.f), float_attr("max", 1.f)};
  const std::string c = ir::schema_problem(clip, 13);
  EXPECT_TRUE(has(c, "Clip-13 (the version at opset 13) has no attribute 'min' (Clip-6 had it")) << c;
  EXPECT_TRUE(has(c, "give 'min' as the input of that name")) << c;

  auto missing = node("Cast", {"x"}, {"y"});  // Cast's `to` is required
  EXPECT_EQ(ir::schema_problem(missing, 13), "required attribute 'to' of Cast-13 is missing");
  EXPECT_EQ(ir::schema_problem(node("Concat", {"a", "b", "c"}, {"y"}), 13),
            "required attribute 'axis' of Concat-13 is missing");

  auto typed = node("Conv", {"x", "w"}, {"y"});
  typed.attrs = {float_attr("group", 1.f)};
  EXPECT_EQ(ir::schema_problem(typed, 11), "attribute 'group' is FLOAT, Conv-11 wants INT");

  // Gelu appears at opset 20.
  EXPECT_TRUE(has(ir::schema_problem(node("Gelu", {"x"}, {"y"}), 19), "Gelu does not exist at opset 19"));
  auto pad = node("Pad", {"x", "p"}, {"y"});  // Pad-2 had `pads`/`value` attributes; Pad-11 takes inputs
  pad.attrs = {float_attr("value", 0.f)};
  EXPECT_TRUE(has(ir::schema_problem(pad, 13), "Pad-13 (the version at opset 13) has no attribute 'value' (Pad-2"));
  EXPECT_TRUE(has(ir::schema_problem(node("conv", {"x", "w"}, {"y"}), 17), "'conv' is not an ai.onnx operator"));
  // Deprecated versions are accepted (onnxruntime runs them): GroupNormalization-18 with its required num_groups.
  auto gn = node("GroupNormalization", {"x", "s", "b"}, {"y"});
  gn.attrs = {int_attr("num_groups", 2)};
  EXPECT_EQ(ir::schema_problem(gn, 18), "");
}

TEST(ValidateSchema, BodiesAreChecked) {
  auto body = std::make_shared<ir::Graph>();
  body->nodes.push_back(node("Relu", {"x", "x"}, {"r"}, "inner_relu"));
  ir::Attribute then_b;
  then_b.name = "then_branch";
  then_b.type = ir::AttrType::Graph;
  then_b.g = body;
  ir::Attribute else_b = then_b;
  else_b.name = "else_branch";
  else_b.g = std::make_shared<ir::Graph>();
  auto iff = node("If", {"c"}, {"o"}, "the_if");
  iff.attrs = {then_b, else_b};
  ir::Graph g;
  g.nodes.push_back(iff);
  EXPECT_EQ(ir::schema_problem(iff, 13), "");
  try {
    ir::check_graph_schemas(g, 13);
    FAIL() << "the body's Relu with two inputs was accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "node 'inner_relu' (Relu): Relu-13 takes 1 input(s)")) << e.what();
  }
}
