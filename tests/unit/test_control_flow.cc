// Control flow in the executor (exec/kernels/control_flow.cc, exec/subgraph.h) and the IR helpers it relies on:
// implicit inputs of nested bodies, topological order over them, bodies built once (not per iteration), values
// computed by hand, bodies reading the float value of a fake-quantized main-graph tensor, errors naming the node
// and the body.
#include <gtest/gtest.h>

#include <atomic>
#include <map>

#include "exec/session.h"
#include "ir/passes/passes.h"
#include "kernel_test_util.h"

using namespace oq;
using oq::ktest::ft;
using oq::ktest::graph_node;

namespace {

std::atomic<int> g_builds{0};

// A test-only op: y = x + 1, counting how many kernels are built.
class PlusOne : public exec::Kernel {
 public:
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    Tensor y(DType::Float, in[0]->shape());
    for (int64_t i = 0; i < y.numel(); ++i) y.data<float>()[i] = in[0]->data<float>()[i] + 1.f;
    out[0] = std::move(y);
  }
};
std::unique_ptr<exec::Kernel> make_plus_one(const exec::KernelInit&) {
  ++g_builds;
  return std::make_unique<PlusOne>();
}
OQ_REGISTER_KERNEL(_OqTestPlusOne, 1, 27, make_plus_one);

ir::ValueInfo value(const std::string& n, DType t = DType::Float) {
  ir::ValueInfo v;
  v.name = n;
  v.dtype = t;
  return v;
}

ir::Attribute graph_attr(const std::string& name, ir::Graph g) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttrType::Graph;
  a.g = std::make_shared<ir::Graph>(std::move(g));
  return a;
}

// Loop(M, "", x0) with body: x' = PlusOne(x) * G (G: main-graph tensor), scan output x'.
ir::Model loop_model() {
  ir::Graph body;
  body.inputs = {value("i", DType::Int64), value("c", DType::Bool), value("x")};
  body.nodes = {graph_node("_OqTestPlusOne", {"x"}, "x1"), graph_node("Mul", {"x1", "G"}, "x2"),
                graph_node("Identity", {"c"}, "c2"), graph_node("Identity", {"x2"}, "s")};
  body.outputs = {value("c2", DType::Bool), value("x2"), value("s")};
  ir::Model m;
  m.ir_version = 8;
  m.opsets = {{"", 13}};
  ir::Node loop = graph_node("Loop", {"M", "", "X"}, "xf");
  loop.name = "the_loop";
  loop.outputs.push_back("scan");
  loop.attrs.push_back(graph_attr("body", body));
  // File order puts the Loop before the producer of G: the topological order must move it after.
  m.graph.nodes = {loop, graph_node("Abs", {"X"}, "G")};
  m.graph.inputs = {value("X"), value("M", DType::Int64)};
  m.graph.outputs = {value("xf"), value("scan")};
  return m;
}

TEST(ControlFlow, ImplicitInputsAndOrder) {
  ir::Model m = loop_model();
  EXPECT_EQ(ir::implicit_inputs(m.graph.nodes[0]), std::vector<std::string>{"G"});
  auto order = ir::topological_order(m.graph);
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], 1u);  // Abs (produces G) first
  EXPECT_EQ(order[1], 0u);
  // A nested If inside the body reading the loop's own x and the main graph's X: only X is implicit for the Loop.
  ir::Graph then_g, else_g;
  then_g.nodes = {graph_node("Add", {"x", "X"}, "t")};
  then_g.outputs = {value("t")};
  else_g.nodes = {graph_node("Neg", {"x"}, "e")};
  else_g.outputs = {value("e")};
  ir::Node iff = graph_node("If", {"c"}, "y");
  iff.attrs = {graph_attr("then_branch", then_g), graph_attr("else_branch", else_g)};
  EXPECT_EQ(ir::implicit_inputs(iff), (std::vector<std::string>{"x", "X"}));
  m.graph.nodes[0].attrs[0].g->nodes.push_back(iff);
  EXPECT_EQ(ir::implicit_inputs(m.graph.nodes[0]), (std::vector<std::string>{"G", "X"}));
}

TEST(ControlFlow, CopiesOwnTheirBodies) {
  // A copy of a model (the executor's float16 copy, a pass on a copy) must not share its bodies with the original.
  ir::Model m = loop_model();
  ir::Model copy = m;
  copy.graph.nodes[0].attrs[0].g->outputs[1].dtype = DType::Float16;
  copy.graph.nodes[0].attrs[0].g->nodes.clear();
  EXPECT_EQ(m.graph.nodes[0].attrs[0].g->outputs[1].dtype, DType::Float);
  EXPECT_EQ(m.graph.nodes[0].attrs[0].g->nodes.size(), 4u);
  ir::Model assigned;
  assigned = m;
  assigned.graph.nodes[0].attrs[0].g->nodes.pop_back();
  EXPECT_EQ(m.graph.nodes[0].attrs[0].g->nodes.size(), 4u);
}

TEST(ControlFlow, LoopValuesAndBodyBuiltOnce) {
  ir::Model m = loop_model();
  const int before = g_builds;
  exec::Session s(m, exec::SessionOptions{false});
  EXPECT_EQ(g_builds - before, 1);  // the body's kernels are built with the Loop's kernel
  Tensor x = ft({2}, {1.f, -2.f});
  auto out = s.run({{"X", x}, {"M", Tensor::scalar_int64(3)}});
  EXPECT_EQ(g_builds - before, 1);  // not once per iteration
  // G = |X| = [1, 2]; x -> (x + 1) * G three times: [1,-2] -> [2,-2] -> [3,-2] -> [4,-2]
  ktest::expect_values(out[0], {4, -2});
  ASSERT_EQ(shape_str(out[1].shape()), "[3,2]");
  ktest::expect_values(out[1], {2, -2, 3, -2, 4, -2});
  auto zero = s.run({{"X", x}, {"M", Tensor::scalar_int64(0)}});
  ktest::expect_values(zero[0], {1, -2});
  EXPECT_EQ(zero[1].numel(), 0);
}

TEST(ControlFlow, BodiesReadTheFloatValueOfFakeQuantizedTensors) {
  ir::Model m = loop_model();
  m.graph.nodes.push_back(graph_node("Add", {"G", "G"}, "G2"));  // a main-graph reader of G
  m.graph.outputs.push_back(value("G2"));
  exec::Session s(m, exec::SessionOptions{false});
  std::unordered_map<std::string, exec::QuantParams> fq;
  fq["G"] = exec::QuantParams{DType::Int8, {0.5f}, {0}, -1};  // 1.3 -> 1.5 for main readers
  exec::RunOptions ro;
  ro.fake_quant = &fq;
  auto out = s.run({{"X", ft({1}, {1.3f})}, {"M", Tensor::scalar_int64(1)}}, ro);
  ktest::expect_values(out[2], {3.0});                // main reader: the fake-quantized 1.5, twice
  ktest::expect_values(out[0], {(1.3 + 1) * 1.3});    // body: the float 1.3
}

TEST(ControlFlow, ErrorsNameTheNodeAndTheBody) {
  ir::Model m = loop_model();
  m.graph.nodes[0].attrs[0].g->nodes[1].inputs[1] = "nowhere";
  try {
    (void)ir::topological_order(m.graph);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("the_loop"), std::string::npos) << msg;
    EXPECT_NE(msg.find("body 'body'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nowhere"), std::string::npos) << msg;
  }
  // A run-time error inside the body: x [2] times a main-graph [3] does not broadcast.
  ir::Model m2 = loop_model();
  m2.graph.nodes[1] = graph_node("Concat", {"X", "X1"}, "G");  // G: [3]
  m2.graph.nodes[1].set_attr_int("axis", 0);
  m2.graph.add_initializer("X1", ft({1}, {1.f}));
  exec::Session s2(m2, exec::SessionOptions{false});
  try {
    (void)s2.run({{"X", ft({2}, {1.f, 2.f})}, {"M", Tensor::scalar_int64(2)}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find("node 'the_loop' (Loop): body 'body': node 'Mul_x2' (Mul)"), 0u) << msg;
  }
  ir::Graph t, el;
  t.nodes = {graph_node("Neg", {"X"}, "a")};
  t.outputs = {value("a")};
  el.nodes = {graph_node("Neg", {"X"}, "b"), graph_node("Abs", {"X"}, "b2")};
  el.outputs = {value("b"), value("b2")};
  ir::Model m3;
  m3.ir_version = 8;
  m3.opsets = {{"", 13}};
  ir::Node iff = graph_node("If", {"C"}, "Y");
  iff.name = "uneven";
  iff.attrs = {graph_attr("then_branch", t), graph_attr("else_branch", el)};
  m3.graph.nodes = {iff};
  m3.graph.inputs = {value("X"), value("C", DType::Bool)};
  m3.graph.outputs = {value("Y")};
  try {
    exec::Session s(m3, exec::SessionOptions{false});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("node 'uneven' (If)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("else_branch"), std::string::npos) << msg;
  }
}

TEST(ControlFlow, ConstantIfsInlinedWithOrtNames) {
  // Three Ifs on one constant condition, each then-branch Mul(X, k) -> Relu; ORT 1.32's quant_pre_process names the
  // last one `_if_then_branch_*`, then `_token_0`, `_token_1` going backwards (tests/python checks against ORT).
  ir::Model m;
  m.ir_version = 8;
  m.opsets = {{"", 13}};
  m.graph.inputs = {value("X")};
  m.graph.add_initializer("c", Tensor::from_vector(DType::Bool, {}, std::vector<uint8_t>{1}));
  for (int i = 1; i <= 3; ++i) {
    ir::Graph t, e;
    t.add_initializer("k", ft({1}, {2.f}));
    t.nodes = {graph_node("Mul", {"X", "k"}, "u"), graph_node("Relu", {"u"}, "o")};
    t.outputs = {value("o")};
    e.nodes = {graph_node("Neg", {"X"}, "o2")};
    e.outputs = {value("o2")};
    ir::Node iff = graph_node("If", {"c"}, "Y" + std::to_string(i));
    iff.attrs = {graph_attr("then_branch", t), graph_attr("else_branch", e)};
    m.graph.nodes.push_back(iff);
  }
  m.graph.nodes.push_back(graph_node("Sum", {"Y1", "Y2", "Y3"}, "Z"));
  m.graph.outputs = {value("Z")};
  EXPECT_EQ(ir::passes::inline_constant_ifs(m), 3u);
  std::map<std::string, std::pair<std::string, std::vector<std::string>>> by_output;
  for (const auto& n : m.graph.nodes) by_output[n.outputs[0]] = {n.name, n.inputs};
  EXPECT_EQ(by_output["Y3"].first, "_if_then_branch_Relu");
  EXPECT_EQ(by_output["Y2"].first, "_if_then_branch_token_0_Relu");
  EXPECT_EQ(by_output["Y1"].first, "_if_then_branch_token_1_Relu");
  EXPECT_EQ(by_output["_if_then_branch_token_1_u"].second,
            (std::vector<std::string>{"X", "_if_then_branch_token_1_k"}));
  EXPECT_NE(m.graph.find_initializer("_if_then_branch_token_0_k"), nullptr);
  // The inlined model computes what the If model computed: Relu(2X) three times.
  exec::Session s(m, exec::SessionOptions{false});
  auto out = s.run({{"X", ft({2}, {1.f, -1.f})}});
  ktest::expect_values(out[0], {6, 0});
}

}  // namespace
