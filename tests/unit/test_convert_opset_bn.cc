// Opset conversion and load checks of the fourteenth session: BatchNormalization-7 spatial=0 (per-element
// statistics) against the spec's formula computed here, training-mode BatchNormalization refused, ops used below
// the opset where they appear refused, Pad-2's constant_value and the Softmax family's constant shape.
// (tests/python/test_opset_convert_fixes.py compares the same against onnxruntime and onnx.)
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "exec/kernel.h"
#include "exec/session.h"
#include "ir/passes/passes.h"
#include "passes_test_util.h"

using namespace oq;
using namespace oq::test_passes;
namespace P = oq::ir::passes;

namespace {

// BN-7 spatial=0 on X [2, 3, 4, 5] with statistics [3, 4, 5] (constants, or Abs of constants).
ir::Model spatial0_model(bool constant_stats) {
  ir::Model m = model(7, 3);
  auto& g = m.graph;
  g.inputs = {vi("x", {2, 3, 4, 5})};
  const char* names[] = {"s", "b", "m", "v"};
  const float lo[] = {0.5f, -1.f, -0.5f, 0.2f}, hi[] = {1.5f, 1.f, 0.5f, 2.f};
  for (int i = 0; i < 4; ++i) {
    const std::string n = names[i];
    g.add_initializer(constant_stats ? n : n + "0", rnd({3, 4, 5}, 40 + i, lo[i], hi[i]));
    if (!constant_stats) g.nodes.push_back(mk("Abs", {n + "0"}, {n}));
  }
  auto bn = mk("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"});
  bn.name = "bn0";
  bn.set_attr_int("spatial", 0);
  bn.set_attr_float("epsilon", 1e-3f);
  g.nodes.push_back(bn);
  g.outputs = {vi_any("y")};
  return m;
}

}  // namespace

TEST(ConvertOpsetBn, Spatial0BecomesMulAddWithTheSpecsValues) {
  for (bool constant_stats : {true, false}) {
    ir::Model m = spatial0_model(constant_stats);
    auto stat = [&](const char* n) {
      const ir::Initializer* i = m.graph.find_initializer(constant_stats ? std::string(n) : std::string(n) + "0");
      std::vector<double> v = i->tensor.to_doubles();
      if (!constant_stats)
        for (double& e : v) e = std::fabs(e);
      return v;
    };
    const auto s = stat("s"), b = stat("b"), mean = stat("m"), var = stat("v");
    ir::Model conv = m;
    P::convert_opset(conv, 13);
    EXPECT_EQ(count_op(conv, "BatchNormalization"), 0u);
    EXPECT_EQ(count_op(conv, "Mul"), constant_stats ? 1u : 2u);
    const Tensor x = rnd({2, 3, 4, 5}, 7, -2.f, 2.f);
    const Tensor y = run(conv, {{"x", x}})[0];
    ASSERT_EQ(y.shape(), x.shape());
    const auto xv = x.to_doubles(), yv = y.to_doubles();
    for (size_t i = 0; i < xv.size(); ++i) {
      const size_t e = i % 60;  // element of X.shape[1:]
      const double want = (xv[i] - mean[e]) / std::sqrt(var[e] + 1e-3) * s[e] + b[e];
      ASSERT_NEAR(yv[i], want, 1e-5 * std::max(1.0, std::fabs(want))) << i;
    }
  }
}

TEST(ConvertOpsetBn, Spatial0StatisticsOfTheWrongRankRefused) {
  ir::Model m = model(7, 3);
  m.graph.inputs = {vi("x", {1, 3, 2, 2})};
  add_bn(m, "x", "y", 3, 1, "bn0");
  m.graph.nodes.back().name = "bn0";
  m.graph.nodes.back().set_attr_int("spatial", 0);
  m.graph.outputs = {vi_any("y")};
  const std::string err = error_of([&] { P::convert_opset(m, 21); });
  EXPECT_NE(err.find("'bn0'"), std::string::npos) << err;
  EXPECT_NE(err.find("spatial=0"), std::string::npos) << err;
  EXPECT_NE(err.find("rank 1"), std::string::npos) << err;
}

TEST(ConvertOpsetBn, TrainingModeRefusedUnnamedExtraOutputsAreInference) {
  for (int opset : {7, 9}) {
    ir::Model m = model(opset, 4);
    m.graph.inputs = {vi("x", {1, 3, 4, 4})};
    add_bn(m, "x", "y", 3, 2);
    m.graph.nodes.back().name = "bn";
    m.graph.nodes.back().outputs = {"y", "rm", "rv", "sm", "sv"};
    m.graph.outputs = {vi_any("y")};
    for (const std::string& err : {error_of([&] { exec::check_model_ops(m); }),
                                   error_of([&] { ir::Model c = m; P::convert_opset(c, 21); }),
                                   error_of([&] { exec::Session s(m); })}) {
      EXPECT_NE(err.find("'bn'"), std::string::npos) << err;
      EXPECT_NE(err.find("training mode"), std::string::npos) << err;
    }
    ir::Model f = m;  // BN folding leaves it alone (it is refused, never folded as inference)
    EXPECT_EQ(P::fold_batchnorm(f), 0u);
    m.graph.nodes.back().outputs = {"y", "", "", "", ""};
    EXPECT_EQ(error_of([&] { exec::check_model_ops(m); }), "");
    P::convert_opset(m, 21);
    EXPECT_EQ(find_op(m, "BatchNormalization")->outputs.size(), 1u);
  }
  ir::Model t = model(15);
  t.graph.inputs = {vi("x", {1, 3, 4, 4})};
  add_bn(t, "x", "y", 3, 3);
  t.graph.nodes.back().set_attr_int("training_mode", 1);
  t.graph.outputs = {vi_any("y")};
  EXPECT_NE(error_of([&] { exec::check_model_ops(t); }).find("training_mode=1"), std::string::npos);
}

TEST(ConvertOpsetBn, OpBeforeItsOpsetRefusedOnLoad) {
  EXPECT_EQ(exec::first_kernel_opset("Resize"), 10);
  EXPECT_EQ(exec::first_kernel_opset("LayerNormalization"), 17);
  EXPECT_EQ(exec::first_kernel_opset("NoSuchOp"), 0);
  ir::Model m = model(9, 4);
  m.graph.inputs = {vi("x", {1, 1, 2, 2})};
  m.graph.add_initializer("sc", f32({4}, {1, 1, 2, 2}));
  m.graph.nodes = {mk("Resize", {"x", "sc"}, {"y"})};
  m.graph.nodes[0].name = "rs";
  m.graph.outputs = {vi_any("y")};
  const std::string err = error_of([&] { exec::check_model_ops(m); });
  EXPECT_NE(err.find("node 'rs' (Resize): Resize does not exist at opset 9"), std::string::npos) << err;
  EXPECT_NE(err.find("appears at opset 10"), std::string::npos) << err;
  m.opsets = {{"", 10}};
  EXPECT_EQ(error_of([&] { exec::check_model_ops(m); }), "");
}

TEST(ConvertOpsetBn, PadConstantValueAsOnnxConverter) {
  // onnx's Pad_10_11: constant mode always gets constant_value (0 when `value` is absent); reflect / edge never.
  for (const char* mode : {"", "constant", "reflect", "edge"}) {
    ir::Model m = model(9, 4);
    m.graph.inputs = {vi("x", {1, 2, 3, 3})};
    m.graph.nodes = {mk("Pad", {"x"}, {"y"})};
    m.graph.nodes[0].set_attr_ints("pads", {0, 0, 1, 1, 0, 0, 1, 1});
    if (*mode) m.graph.nodes[0].set_attr_string("mode", mode);
    m.graph.outputs = {vi_any("y")};
    ir::Model orig = m;
    P::convert_opset(m, 13);
    const ir::Node* pad = find_op(m, "Pad");
    const bool constant = std::string(mode).empty() || std::string(mode) == "constant";
    ASSERT_EQ(pad->inputs.size(), constant ? 3u : 2u) << mode;
    if (constant) {
      EXPECT_EQ(init_values(m, pad->input(2)), std::vector<double>{0.0});
    }
    const Tensor x = rnd({1, 2, 3, 3}, 5);
    expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
  }
}

TEST(ConvertOpsetBn, SoftmaxReshapeShapeConstantWhenStatic) {
  for (bool fixed : {true, false}) {
    ir::Model m = model(9, 4);
    m.graph.inputs = {vi("x", {fixed ? 2 : -1, 3, 4})};
    m.graph.nodes = {mk("Softmax", {"x"}, {"y"})};
    m.graph.nodes[0].set_attr_int("axis", 1);
    m.graph.outputs = {vi_any("y")};
    ir::Model orig = m;
    P::convert_opset(m, 13);
    EXPECT_EQ(count_op(m, "Shape"), fixed ? 0u : 1u);
    if (fixed) {
      EXPECT_EQ(init_values(m, find_op(m, "Reshape")->input(1)), (std::vector<double>{2, 3, 4}));
    }
    const Tensor x = rnd({2, 3, 4}, 6, -3.f, 3.f);
    expect_same(run(orig, {{"x", x}}), run(m, {{"x", x}}));
  }
}
