// full_auto search pieces against hand-computed expectations and mock evaluators.
#include <gtest/gtest.h>

#include "search/bisection.h"
#include "search/ranking.h"

using namespace oq;
using namespace oq::search;

TEST(BisectionSteps, IssueExamples) {
  EXPECT_EQ(bisection_steps(28), (std::vector<int64_t>{14, 7, 4, 2, 1}));
  EXPECT_EQ(bisection_steps(5), (std::vector<int64_t>{2, 1, 1, 1}));
  EXPECT_EQ(bisection_steps(1), (std::vector<int64_t>{1}));
  EXPECT_EQ(bisection_steps(2), (std::vector<int64_t>{1, 1}));
  // N = 100: log2 = 6.64 -> 7 halvings: 50 25 12(.5) 6(.25) 3(.125) 2(1.5625) 1(0.78); sum 99, then one 1.
  EXPECT_EQ(bisection_steps(100), (std::vector<int64_t>{50, 25, 12, 6, 3, 2, 1, 1}));
  EXPECT_TRUE(bisection_steps(0).empty());
}

TEST(BisectionWalk, FindsAMonotoneThreshold) {
  for (int64_t N : {1, 2, 5, 7, 28, 100}) {
    for (int64_t k = 0; k <= N; ++k) {
      int evals = 0;
      auto score = [&](int64_t n) { return n >= k ? 100.0 : 0.0; };
      std::vector<int64_t> written;
      auto w = bisection_walk(N, score(0), 50.0, [&](int64_t n) { ++evals; return score(n); },
                              [&](const Attempt& a) { written.push_back(a.n_int8); });
      ASSERT_TRUE(w.answer.has_value()) << "N=" << N << " k=" << k;
      EXPECT_EQ(w.attempts[*w.answer].n_int8, k) << "N=" << N << " k=" << k;
      EXPECT_TRUE(w.attempts[*w.answer].written);
      EXPECT_LE(evals, static_cast<int>(w.steps.size()));
      for (int64_t n : written) EXPECT_GE(n, k);  // only passing attempts are written
    }
  }
}

TEST(BisectionWalk, NonePassing) {
  auto w = bisection_walk(5, 0.0, 50.0, [](int64_t) { return 10.0; }, nullptr);
  EXPECT_FALSE(w.answer.has_value());
  EXPECT_EQ(w.attempts.size(), 1 + w.steps.size());
}

TEST(BisectionWalk, WalkOnTwentyEight) {
  // k = 10: n goes 14 (pass) -> 7 (fail) -> 11 (pass) -> 9 (fail) -> 10 (pass).
  std::vector<int64_t> seen;
  auto w = bisection_walk(28, 0.0, 1.0, [&](int64_t n) { seen.push_back(n); return n >= 10 ? 2.0 : 0.0; }, nullptr);
  EXPECT_EQ(seen, (std::vector<int64_t>{14, 7, 11, 9, 10}));
  EXPECT_EQ(w.attempts[*w.answer].n_int8, 10);
}

static ir::Node node(const std::string& name, const std::string& op, std::vector<std::string> in) {
  ir::Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = {name + "_out"};
  return n;
}

TEST(Ranking, OrderAndTies) {
  ir::Graph g;
  g.add_initializer("wa", Tensor(DType::Float, {8, 4, 3, 3}));   // 288 weights, 36 per channel
  g.add_initializer("wb", Tensor(DType::Float, {32, 1, 3, 3}));  // 288 weights, 9 per channel (depthwise)
  g.add_initializer("wc", Tensor(DType::Float, {16, 10}));       // Gemm transB: 160, 10 per channel
  g.add_initializer("wd", Tensor(DType::Float, {32, 1, 3, 3}));  // ties wb exactly: later first
  g.add_initializer("we", Tensor(DType::Float, {10, 4}));        // MatMul axis 1: 40 weights, 10 per channel
  g.nodes = {node("a", "Conv", {"x", "wa"}), node("b", "Conv", {"a_out", "wb"}), node("d", "Conv", {"b_out", "wd"}),
             node("c", "Gemm", {"d_out", "wc"}), node("e", "MatMul", {"c_out", "we"}), node("r", "Relu", {"e_out"})};
  g.nodes[3].set_attr_int("transB", 1);
  std::vector<size_t> order = {0, 1, 2, 3, 4, 5};
  auto r = rank_weights(g, order, [](const ir::Node&) { return true; });
  std::vector<std::string> names;
  for (const auto& t : r) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"wd", "wb", "wa", "wc", "we"}));
  EXPECT_EQ(r[2].per_scale, 36);
  EXPECT_EQ(r[4].per_scale, 10);
  EXPECT_EQ(r[4].axis, 1);
}
