// The executor's inference optimizations (exec/optimize.h): which rewrites apply (and which must not), that the
// optimized Session computes what the model as given computes (reference: the same Session with optimize
// off, i.e. the unfused kernels), and that runs which look at or fake-quantize a removed tensor fall back.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "exec/optimize.h"
#include "exec/session.h"
#include "ir/passes/passes.h"
#include "kernel_test_util.h"

using namespace oq;
using oq::ktest::expect_close;
using oq::ktest::random_float;

namespace {

ir::Node node(const std::string& op, std::vector<std::string> in, std::string out) {
  return ktest::graph_node(op, std::move(in), std::move(out));
}

// X[N,5,11,13] -> Pad(spatial 1,2 / 2,1) -> Conv 3x3 (16, bias) -> Clip(0,6) -> depthwise Conv 3x3 (stride 2)
// -> BatchNormalization -> Relu -> 1x1 Conv (7, no bias) -> LeakyRelu -> Y
// plus a Conv whose output has two consumers (Relu and the graph output Z): not fused.
ir::Model make_model(std::mt19937& rng, bool nonzero_pad = false) {
  ir::Model m;
  m.ir_version = 8;
  m.opsets = {{"", 13}};
  ir::Graph& g = m.graph;
  g.inputs.push_back(ktest::nchw_input("X", 5, 11, 13));
  g.add_initializer("pads", Tensor::from_vector(DType::Int64, {8}, std::vector<int64_t>{0, 0, 1, 2, 0, 0, 2, 1}));
  g.add_initializer("padv", Tensor::scalar_float(nonzero_pad ? 0.5f : 0.f));
  g.add_initializer("W1", random_float({16, 5, 3, 3}, rng, -0.5f, 0.5f));
  g.add_initializer("B1", random_float({16}, rng));
  g.add_initializer("lo", Tensor::scalar_float(0.f));
  g.add_initializer("hi", Tensor::scalar_float(6.f));
  g.add_initializer("W2", random_float({16, 1, 3, 3}, rng, -0.5f, 0.5f));
  g.add_initializer("B2", random_float({16}, rng));
  g.add_initializer("bn_s", random_float({16}, rng, 0.5f, 1.5f));
  g.add_initializer("bn_b", random_float({16}, rng));
  g.add_initializer("bn_m", random_float({16}, rng));
  g.add_initializer("bn_v", random_float({16}, rng, 0.5f, 2.f));
  g.add_initializer("W3", random_float({7, 16, 1, 1}, rng, -0.5f, 0.5f));
  g.add_initializer("W4", random_float({3, 7, 1, 1}, rng, -0.5f, 0.5f));
  g.nodes.push_back(node("Pad", {"X", "pads", "padv"}, "xp"));
  g.nodes.push_back(node("Conv", {"xp", "W1", "B1"}, "c1"));
  g.nodes.push_back(node("Clip", {"c1", "lo", "hi"}, "a1"));
  ir::Node dw = node("Conv", {"a1", "W2", "B2"}, "c2");
  dw.set_attr_int("group", 16);
  dw.set_attr_ints("strides", {2, 2});
  dw.set_attr_ints("pads", {1, 1, 1, 1});
  g.nodes.push_back(dw);
  g.nodes.push_back(node("BatchNormalization", {"c2", "bn_s", "bn_b", "bn_m", "bn_v"}, "b2"));
  g.nodes.push_back(node("Relu", {"b2"}, "a2"));
  g.nodes.push_back(node("Conv", {"a2", "W3"}, "c3"));
  ir::Node lr = node("LeakyRelu", {"c3"}, "Y");
  lr.set_attr_float("alpha", 0.2f);
  g.nodes.push_back(lr);
  g.nodes.push_back(node("Conv", {"c3", "W4"}, "Z"));  // c3 has two consumers
  g.nodes.push_back(node("Relu", {"Z"}, "R"));
  for (const char* o : {"Y", "Z", "R"}) {
    g.outputs.push_back(ktest::float_output(o));
  }
  return m;
}

}  // namespace

TEST(ExecOptimize, RewritesAndTouchedNames) {
  std::mt19937 rng(7);
  ir::Model m = make_model(rng);
  auto og = exec::optimize_for_inference(m, /*channel_block=*/0);
  ASSERT_TRUE(og);
  // Pad -> Conv pads; Clip and the first Relu fused; BN folded into the depthwise Conv, whose Relu is then fused;
  // LeakyRelu not fused (c3 has two consumers), nor the last Relu (Z is a graph output).
  EXPECT_EQ(ktest::count_ops(og->model, "Pad"), 0u);
  EXPECT_EQ(ktest::count_ops(og->model, "Clip"), 0u);
  EXPECT_EQ(ktest::count_ops(og->model, "BatchNormalization"), 0u);
  EXPECT_EQ(ktest::count_ops(og->model, "Relu"), 1u);
  EXPECT_EQ(ktest::count_ops(og->model, "LeakyRelu"), 1u);
  const ir::Node& c1 = og->model.graph.nodes[0];
  EXPECT_EQ(c1.op_type, "Conv");
  EXPECT_EQ(c1.attr_ints("pads"), (std::vector<int64_t>{1, 2, 2, 1}));
  EXPECT_EQ(c1.attr_string(ir::passes::kFusedActivationAttr, ""), "Clip");
  EXPECT_EQ(c1.outputs[0], "a1");
  for (const char* t : {"xp", "c1", "c2", "b2", "W2", "B2"}) EXPECT_TRUE(og->touched.count(t)) << t;
  for (const char* t : {"a1", "a2", "c3", "Y", "Z", "W1", "B1", "W3"}) EXPECT_FALSE(og->touched.count(t)) << t;
}

TEST(ExecOptimize, NotRewritten) {
  std::mt19937 rng(8);
  ir::Model m = make_model(rng, /*nonzero_pad=*/true);
  m.graph.nodes[2].inputs[1] = "X";  // Clip min not a constant
  auto og = exec::optimize_for_inference(m, /*channel_block=*/0);
  ASSERT_TRUE(og);  // BN and the Relu after it still apply
  EXPECT_EQ(ktest::count_ops(og->model, "Pad"), 1u);
  EXPECT_EQ(ktest::count_ops(og->model, "Clip"), 1u);
}

TEST(ExecOptimize, SameOutputsAsModelAsGiven) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    std::mt19937 rng(seed);
    ir::Model m = make_model(rng, seed == 3);
    exec::Session fast(m, exec::SessionOptions{true, 0}), plain(m, exec::SessionOptions{false});
    for (int64_t batch : {1, 3}) {
      std::map<std::string, Tensor> feeds{{"X", random_float({batch, 5, 11, 13}, rng, -4.f, 4.f)}};
      auto a = fast.run(feeds), b = plain.run(feeds);
      ASSERT_EQ(a.size(), 3u);
      for (size_t k = 0; k < a.size(); ++k) expect_close(a[k], b[k], 1e-5);
    }
  }
}

TEST(ExecOptimize, ObserversAndFakeQuantFallBack) {
  std::mt19937 rng(4);
  ir::Model m = make_model(rng);
  exec::Session s(m, exec::SessionOptions{true, 0});  // the fusions alone (test_layout.cc: blocked chains)
  std::map<std::string, Tensor> feeds{{"X", random_float({2, 5, 11, 13}, rng, -4.f, 4.f)}};
  std::set<std::string> seen;
  exec::RunOptions o;
  o.observer = [&](const std::string& n, const Tensor&) { seen.insert(n); };
  s.run(feeds, o);  // no `observed` set: every tensor of the model as given
  for (const char* t : {"xp", "c1", "a1", "c2", "b2", "a2", "c3", "Y"}) EXPECT_TRUE(seen.count(t)) << t;

  std::unordered_set<std::string> want{"a1", "c3"};
  o.observed = &want;
  seen.clear();
  s.run(feeds, o);  // untouched names only: the optimized graph runs
  EXPECT_TRUE(seen.count("a1") && seen.count("c3"));
  EXPECT_FALSE(seen.count("c1") || seen.count("xp"));
  want.insert("c1");
  seen.clear();
  s.run(feeds, o);
  EXPECT_TRUE(seen.count("c1") && seen.count("xp"));

  // Fake quantization of a tensor the rewrites remove (c1, before the fused Clip) or change (W2, folded BN).
  exec::Session plain(m, exec::SessionOptions{false});
  for (const char* t : {"c1", "W2"}) {
    std::unordered_map<std::string, exec::QuantParams> fq;
    fq[t] = exec::QuantParams{DType::Int8, {0.05f}, {3}, -1};
    exec::RunOptions f;
    f.fake_quant = &fq;
    auto a = s.run(feeds, f), b = plain.run(feeds, f);
    for (size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(a[k].equals(b[k])) << t << " output " << k;
  }
}
