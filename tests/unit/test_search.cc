// full_auto search pieces against hand-computed expectations and mock evaluators.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <string>

#include "analysis/precision.h"
#include "search/bisection.h"
#include "search/greedy.h"
#include "search/passes.h"
#include "search/ranking.h"
#include "search/score_line.h"

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

TEST(BisectionWalk, TheEightBitReferenceIsNeitherReevaluatedNorTheAnswer) {
  // Only n = N (all Int8) would pass: with the reference's score given, the walk reaches n = N without
  // evaluating it, writes nothing and has no answer (the caller's answer is then the 8-bit reference).
  for (int64_t N : {1, 5, 21}) {
    std::vector<int64_t> seen, written;
    auto w = bisection_walk(N, 0.0, 50.0, [&](int64_t n) { seen.push_back(n); return n == N ? 100.0 : 0.0; },
                            [&](const Attempt& a) { written.push_back(a.n_int8); }, 100.0);
    EXPECT_EQ(std::count(seen.begin(), seen.end(), N), 0) << N;
    EXPECT_TRUE(written.empty()) << N;
    EXPECT_FALSE(w.answer.has_value()) << N;
    EXPECT_EQ(w.attempts.back().n_int8, N) << N;  // the walk still ends there, with the reference's score
    EXPECT_EQ(w.attempts.back().score, 100.0) << N;
  }
}

TEST(Passes, AScoreExactlyAtTheToleranceEdgePasses) {
  // 988 / 1000 against an 8-bit 989 / 1000 with tolerance 0.1: 98.9 - 0.1 = 98.80000000000001 > 98.8.
  const double ref = 100.0 * 989 / 1000, score = 100.0 * 988 / 1000, threshold = ref - 0.1;
  ASSERT_LT(score, threshold);  // the float arithmetic this rule is for
  EXPECT_TRUE(passes(score, threshold));
  EXPECT_FALSE(passes(100.0 * 987 / 1000, threshold));  // one sample fewer fails
  EXPECT_FALSE(passes(score - 1e-6, threshold));
  auto w = bisection_walk(3, score, threshold, [](int64_t) { return 0.0; }, nullptr);
  EXPECT_TRUE(w.attempts[0].passed);
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

// An evaluator for the walks: score 100 minus the penalty of each tensor left in Int4; records every set asked for.
static std::function<double(const std::vector<bool>&)> penalty_score(const std::vector<double>& pen,
                                                                     std::vector<std::vector<bool>>& seen) {
  return [&pen, &seen](const std::vector<bool>& int8) {
    seen.push_back(int8);
    double s = 100;
    for (size_t i = 0; i < pen.size(); ++i) s -= int8[i] ? 0 : pen[i];
    return s;
  };
}

// Greedy with the 8-bit reference's score: the all-Int8 set is neither evaluated nor the answer (as bisection).
TEST(GreedyWalk, TheEightBitReferenceIsNeitherReevaluatedNorTheAnswer) {
  // Score = 100 - penalties of the Int4 tensors; threshold 99.5: only every tensor in Int8 passes.
  std::vector<double> pen = {1, 1, 1};
  std::vector<std::vector<bool>> seen;
  auto eval = penalty_score(pen, seen);
  auto r = greedy_walk(3, 97, 99.5, eval, 100.0);
  EXPECT_FALSE(r.answer);
  // Phase 1 reaches {1,1,1} with the reference's score (not evaluated); phase 2 tries each tensor back.
  ASSERT_EQ(r.attempts.size(), 1u + 3u + 3u);
  EXPECT_EQ(r.attempts[3].int8, (std::vector<bool>{true, true, true}));
  EXPECT_DOUBLE_EQ(r.attempts[3].score, 100.0);
  EXPECT_TRUE(r.attempts[3].passed);
  EXPECT_TRUE(std::none_of(seen.begin(), seen.end(), [](const std::vector<bool>& f) {
    return std::all_of(f.begin(), f.end(), [](bool b) { return b; });
  }));
  // Without the reference (the old call) the all-Int8 set is evaluated and answered.
  seen.clear();
  auto old = greedy_walk(3, 97, 99.5, eval);
  ASSERT_TRUE(old.answer);
  EXPECT_EQ(old.attempts[*old.answer].int8, (std::vector<bool>{true, true, true}));
  // Phase 2 moving a tensor back to Int4 from the all-Int8 set gives an answer again: tensor 0 costs nothing.
  pen = {0, 1, 1};
  auto r2 = greedy_walk(3, 98, 99.5, eval, 100.0);
  ASSERT_TRUE(r2.answer);
  EXPECT_EQ(r2.attempts[*r2.answer].int8, (std::vector<bool>{false, true, true}));
  // No tensors: the all-Int4 attempt is the only one (and the answer when it passes), as in bisection_walk.
  auto r0 = greedy_walk(0, 100, 99.5, eval, 100.0);
  ASSERT_TRUE(r0.answer);
  EXPECT_EQ(*r0.answer, 0u);
}

// Phase 2's first trial is always a set the walk measured (phase 1's previous step, or the all-Int4 set when phase 1
// passed at once): its attempt reuses that score; evaluate() sees every set once.
TEST(GreedyWalk, NoSetIsEvaluatedTwice) {
  std::vector<double> pen;
  std::vector<std::vector<bool>> seen;
  auto eval = penalty_score(pen, seen);
  auto unique = [&] {
    auto v = seen;
    std::sort(v.begin(), v.end());
    return std::adjacent_find(v.begin(), v.end()) == v.end();
  };
  // Phase 1: {3} 96.5 fails, {2,3} 97.5 passes; phase 2: {3} again (reused), then {2} 94.5 fails.
  pen = {0.5, 2, 1, 3};
  auto r = greedy_walk(4, 93.5, 97, eval, 100.0);
  ASSERT_EQ(r.attempts.size(), 5u);
  EXPECT_EQ(r.attempts[3].int8, r.attempts[1].int8);
  EXPECT_DOUBLE_EQ(r.attempts[3].score, 96.5);
  EXPECT_FALSE(r.attempts[3].passed);
  ASSERT_TRUE(r.answer);
  EXPECT_EQ(*r.answer, 2u);
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_TRUE(unique());
  // Phase 1 passes at its first step ({3}): phase 2's first trial is the all-Int4 set, never evaluated.
  seen.clear();
  pen = {0.5, 0.5, 0.5, 3};
  auto r1 = greedy_walk(4, 95.5, 98, eval, 100.0);
  ASSERT_EQ(r1.attempts.size(), 3u);
  EXPECT_EQ(r1.attempts[2].int8, std::vector<bool>(4, false));
  EXPECT_DOUBLE_EQ(r1.attempts[2].score, 95.5);
  ASSERT_TRUE(r1.answer);
  EXPECT_EQ(*r1.answer, 1u);
  EXPECT_EQ(seen, (std::vector<std::vector<bool>>{{false, false, false, true}}));
}

// Bit widths counted from a hand-built QDQ graph (hand-computed counts and name).
TEST(Precision, CountsAndNames) {
  ir::Graph g;
  auto q = [&](const std::string& x, const std::string& zp) {
    ir::Node n;
    n.op_type = "QuantizeLinear";
    n.inputs = {x, "s", zp};
    n.outputs = {x + "_q"};
    g.nodes.push_back(n);
  };
  auto dq = [&](const std::string& x) {
    ir::Node n;
    n.op_type = "DequantizeLinear";
    n.inputs = {x, "s"};
    n.outputs = {x + "_dq"};
    g.nodes.push_back(n);
  };
  g.add_initializer("s", Tensor::scalar_float(0.1f));
  g.add_initializer("zp8", Tensor::from_vector<int8_t>(DType::Int8, {}, {0}));
  g.add_initializer("zp16", Tensor::from_vector<int16_t>(DType::Int16, {}, {0}));
  g.add_initializer("zp4", Tensor::from_vector<int8_t>(DType::Int4, {}, {0}));
  g.add_initializer("w4", Tensor::from_vector<int8_t>(DType::Int4, {60}, std::vector<int8_t>(60, 1)));
  g.add_initializer("w8", Tensor::from_vector<uint8_t>(DType::UInt8, {30}, std::vector<uint8_t>(30, 1)));
  g.add_initializer("w16", Tensor::from_vector<int16_t>(DType::Int16, {10}, std::vector<int16_t>(10, 1)));
  g.add_initializer("b", Tensor::from_vector<int32_t>(DType::Int32, {5}, std::vector<int32_t>(5, 1)));
  g.add_initializer("wf", Tensor::from_vector<float>(DType::Float, {4}, std::vector<float>(4, 1.f)));
  dq("w4");
  dq("w4");  // a shared weight counts once
  dq("w8");
  dq("b");   // int32 bias: not counted
  q("wf", "zp8");  // AddQDQPairToWeight: a float weight quantized in the graph, 8 bits
  q("x", "zp8");
  q("x", "zp8");   // DedicatedQDQPair: the same tensor once
  q("y", "zp8");
  q("y_q_dq", "zp16");  // a converted tensor counts under its second type too
  analysis::PrecisionCounts st = analysis::count_precision(g);
  EXPECT_EQ(st.weights, (std::map<int, int64_t>{{4, 60}, {8, 34}}));
  EXPECT_EQ(st.activations, (std::map<int, int64_t>{{8, 2}, {16, 1}}));
  EXPECT_FALSE(st.st_only());
  // 60 / 94 = 63.83 %, 34 / 94 = 36.17 %; activations 2 / 3 and 1 / 3.
  EXPECT_EQ(analysis::precision_name(st), "_w4_63.83%_w8_36.17%_a8_66.67%_a16_33.33%");
  dq("w16");
  q("z", "zp4");
  analysis::PrecisionCounts c = analysis::count_precision(g);
  EXPECT_EQ(c.weights_of(16), 10);
  EXPECT_EQ(analysis::precision_name(c), "_w4_57.69%_w8_32.69%_w16_9.62%_a4_25.00%_a8_50.00%_a16_25.00%");
  // Only 4/8-bit weights and 8-bit activations: ST's name, w8 = 100 - w4.
  ir::Graph h;
  h.add_initializer("s", Tensor::scalar_float(0.1f));
  h.add_initializer("zp8", Tensor::from_vector<int8_t>(DType::Int8, {}, {0}));
  h.add_initializer("w4", Tensor::from_vector<int8_t>(DType::Int4, {1}, {1}));
  h.add_initializer("w8", Tensor::from_vector<int8_t>(DType::Int8, {2}, {1, 1}));
  for (const char* w : {"w4", "w8"}) {
    ir::Node n;
    n.op_type = "DequantizeLinear";
    n.inputs = {w, "s"};
    n.outputs = {std::string(w) + "_dq"};
    h.nodes.push_back(n);
  }
  ir::Node qa;
  qa.op_type = "QuantizeLinear";
  qa.inputs = {"x", "s", "zp8"};
  qa.outputs = {"x_q"};
  h.nodes.push_back(qa);
  analysis::PrecisionCounts s2 = analysis::count_precision(h);
  EXPECT_TRUE(s2.st_only());
  EXPECT_EQ(analysis::precision_name(s2), "_w4_33.33%_w8_66.67%_a8_100%");
  EXPECT_EQ(analysis::precision_name(analysis::PrecisionCounts{}), "_w4_0.00%_w8_100.00%_a8_100%");
}

TEST(ScoreLine, LastNonBlankLineTrimmed) {
  EXPECT_EQ(last_output_line("loading\n  97.5\t\n\n  \n"), "97.5");
  EXPECT_EQ(last_output_line("42"), "42");
  EXPECT_EQ(last_output_line(" \n\t\n"), "");
  EXPECT_EQ(last_output_line("a\r\nb c\r\n"), "b c");
}

TEST(ScoreLine, PlainDecimalsOnly) {
  // Hand-computed values of plain decimals, surrounding white space allowed.
  EXPECT_EQ(*parse_score_line("97.25"), 97.25);
  EXPECT_EQ(*parse_score_line(" +9.75e1 "), 97.5);
  EXPECT_EQ(*parse_score_line("-.5"), -0.5);
  EXPECT_EQ(*parse_score_line("96."), 96.0);
  EXPECT_EQ(*parse_score_line("1E-2"), 0.01);
  std::string why;
  EXPECT_FALSE(parse_score_line("99,44", &why));
  EXPECT_NE(why.find("decimal comma"), std::string::npos) << why;
  EXPECT_NE(why.find("LC_NUMERIC=C"), std::string::npos) << why;
  for (const char* bad : {"12abc", "0x1A", "nan", "NaN", "-inf", "inf", "infinity", "99.44%", "", ".", "-", "1e",
                          "1e+", "1 2", "97.5 (top1)", "1,234.5", "e5", "--1", "+-1"}) {
    why.clear();
    EXPECT_FALSE(parse_score_line(bad, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
  EXPECT_FALSE(parse_score_line("1e999", &why));
  EXPECT_EQ(why, "not a finite number");
}
