// exec/finite.h: the finiteness check, the analysis of which nodes read only values that are finite whenever the
// feeds are (hand-built graphs), and the per-thread scope through which a run tells its kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>

#include "exec/finite.h"
#include "kernel_test_util.h"

namespace oq {
namespace {

using ktest::ft;

TEST(FiniteValues, AllFiniteEveryFloatType) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(exec::all_finite(ft({4}, {0.f, -1.f, 3e38f, -3e38f})));
  EXPECT_TRUE(exec::all_finite(ft({0}, {})));
  EXPECT_FALSE(exec::all_finite(ft({3}, {1.f, nan, 2.f})));
  EXPECT_FALSE(exec::all_finite(ft({3}, {1.f, 2.f, -inf})));
  // long enough to be split over threads; the bad value in the last chunk
  std::vector<float> big(300001, 0.5f);
  EXPECT_TRUE(exec::all_finite(ft({300001}, big)));
  big.back() = inf;
  EXPECT_FALSE(exec::all_finite(ft({300001}, big)));
  big.back() = 0.f;
  big[123457] = -nan;
  EXPECT_FALSE(exec::all_finite(ft({300001}, big)));
  // float16: exponent 0x7c00 all ones (inf 0x7c00, NaN 0x7e00); 0x7bff = 65504 is finite
  EXPECT_TRUE(exec::all_finite(Tensor::from_vector(DType::Float16, {2}, std::vector<uint16_t>{0x7bff, 0xfbff})));
  EXPECT_FALSE(exec::all_finite(Tensor::from_vector(DType::Float16, {2}, std::vector<uint16_t>{0x3c00, 0xfc00})));
  EXPECT_FALSE(exec::all_finite(Tensor::from_vector(DType::Float16, {1}, std::vector<uint16_t>{0x7e00})));
  EXPECT_FALSE(exec::all_finite(Tensor::from_vector(DType::Double, {2}, std::vector<double>{1.0, std::nan("")})));
  EXPECT_TRUE(exec::all_finite(Tensor::from_vector(DType::Double, {1}, std::vector<double>{1e300})));
  EXPECT_TRUE(exec::all_finite(Tensor::from_vector(DType::Int32, {1}, std::vector<int32_t>{-1})));
}

ir::Node nd(const std::string& op, std::vector<std::string> in, std::string out) {
  return ktest::graph_node(op, std::move(in), std::move(out));
}

TEST(FiniteValues, NodesWhoseInputsAreFiniteWhenTheFeedsAre) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  ir::Graph g;
  g.inputs.push_back(ktest::nchw_input("x", 2, 3, 3));
  g.initializers.push_back({"w", ft({2, 2, 1, 1}, {1, 2, 3, 4}), "", {}});
  g.initializers.push_back({"wn", ft({2, 2, 1, 1}, {1, nan, 3, 4}), "", {}});
  g.initializers.push_back({"two", ft({1}, {2.f}), "", {}});
  g.initializers.push_back({"zero", ft({2}, {2.f, 0.f}), "", {}});
  g.initializers.push_back({"var_ok", ft({2}, {0.f, 1.f}), "", {}});
  g.initializers.push_back({"var_bad", ft({2}, {1.f, -1e-5f}), "", {}});
  g.nodes = {nd("Relu", {"x"}, "r"),                 // 0: reads a feed
             nd("Conv", {"r", "w"}, "c"),            // 1: Relu keeps values finite
             nd("Sqrt", {"c"}, "s"),                 // 2: its input is finite ...
             nd("Conv", {"s", "w"}, "c2"),           // 3: ... its output need not be
             nd("Conv", {"x", "wn"}, "c3"),          // 4: a NaN in the weights
             nd("Div", {"x", "two"}, "d2"),          // 5
             nd("Relu", {"d2"}, "r2"),               // 6: Div by a constant without zeros
             nd("Div", {"x", "zero"}, "d0"),         // 7
             nd("Relu", {"d0"}, "r0"),               // 8: Div by a constant with a zero
             nd("BatchNormalization", {"x", "two", "two", "two", "var_ok"}, "b1"),   // 9
             nd("Conv", {"b1", "w"}, "c4"),          // 10: var + epsilon > 0
             nd("BatchNormalization", {"x", "two", "two", "two", "var_bad"}, "b2"),  // 11
             nd("Conv", {"b2", "w"}, "c5"),          // 12: var + epsilon <= 0 somewhere
             nd("Conv", {"outer", "w"}, "c6"),       // 13: a name from outside the graph
             nd("MaxPool", {"x"}, "m1"),             // 14
             nd("Conv", {"m1", "w"}, "c7"),          // 15: pads below the kernel
             nd("AveragePool", {"x"}, "a1"),         // 16
             nd("Conv", {"a1", "w"}, "c8")};         // 17: a window wholly in the padding would be 0 / 0
  g.nodes[14].set_attr_ints("kernel_shape", {2, 2});
  g.nodes[14].set_attr_ints("pads", {1, 1, 1, 1});
  g.nodes[16].set_attr_ints("kernel_shape", {2, 2});
  g.nodes[16].set_attr_ints("pads", {0, 2, 0, 0});
  std::vector<size_t> order(g.nodes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto constant = [&](const std::string& n) -> const Tensor* {
    for (const auto& i : g.initializers)
      if (i.name == n) return &i.tensor;
    return nullptr;
  };
  const std::vector<char> f = exec::finite_when_feeds_are(g, order, constant);
  const std::vector<char> want = {1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0};
  ASSERT_EQ(f.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(f[i], want[i]) << "node " << i << " " << g.nodes[i].op_type;
}

TEST(FiniteValues, ScopeIsPerThreadAndNests) {
  EXPECT_FALSE(exec::feeds_finite());
  {
    exec::FeedsFiniteScope a(true);
    EXPECT_TRUE(exec::feeds_finite());
    bool other = true;
    std::thread([&] { other = exec::feeds_finite(); }).join();
    EXPECT_FALSE(other);
    {
      exec::FeedsFiniteScope b(false);
      EXPECT_FALSE(exec::feeds_finite());
    }
    EXPECT_TRUE(exec::feeds_finite());
  }
  EXPECT_FALSE(exec::feeds_finite());
}

}  // namespace
}  // namespace oq
