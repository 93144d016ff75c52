// Attention, RotaryEmbedding, TensorScatter, CumProd and BitCast: hand-computed values, the version rules and
// errors naming the node. onnxruntime / onnx.reference comparisons on random shapes:
// tests/python/test_kernels_transformer_ort.py; the ONNX node tests: tests/onnx_backend/manifest.txt.
#include <cmath>

#include "kernel_test_util.h"
#include "passes_test_util.h"

using namespace oq;
using namespace oq::ktest;

namespace {

ir::Node attention(size_t n_in, size_t n_out = 1) { return make_node("Attention", n_in, n_out); }

}  // namespace

TEST(KernelsTransformer, AttentionHandValues) {
  // One head, two queries / keys of size 1, scale 1 / sqrt(1): scores q_i * k_j.
  Tensor q = ft({1, 1, 2, 1}, {1, 2}), k = ft({1, 1, 2, 1}, {1, 0}), v = ft({1, 1, 2, 1}, {10, 20});
  const double e = std::exp(1.0), e2 = std::exp(2.0);
  const double y0 = (10 * e + 20) / (e + 1), y1 = (10 * e2 + 20) / (e2 + 1);
  expect_values(run_kernel(attention(3), 23, {q, k, v})[0], {y0, y1}, 1e-5);
  // Causal: query 0 sees key 0 only.
  ir::Node causal = attention(3);
  causal.set_attr_int("is_causal", 1);
  expect_values(run_kernel(causal, 23, {q, k, v})[0], {10, y1}, 1e-5);
  // scale 4: Q and K each scaled by 2, scores 4 q_i k_j.
  ir::Node scaled = attention(3, 4);
  scaled.set_attr_float("scale", 4.f);
  scaled.outputs[1] = scaled.outputs[2] = "";
  auto out = run_kernel(scaled, 23, {q, k, v});
  const double e4 = std::exp(4.0), e8 = std::exp(8.0);
  expect_values(out[0], {(10 * e4 + 20) / (e4 + 1), (10 * e8 + 20) / (e8 + 1)}, 1e-4);
  expect_values(out[3], {4, 0, 8, 0}, 1e-6);  // qk_matmul_output mode 0: the scaled scores
  // A boolean mask that hides every key from query 0: a zero row, not NaN; query 1 sees key 1 only.
  Tensor mask = Tensor::from_vector(DType::Bool, {2, 2}, std::vector<uint8_t>{0, 0, 0, 1});
  expect_values(run_kernel(attention(4), 23, {q, k, v, mask})[0], {0, 20}, 1e-6);
  // An additive float mask shorter than the key sequence is padded with -inf: only key 0 is seen.
  expect_values(run_kernel(attention(4), 23, {q, k, v, ft({1}, {0.f})})[0], {10, 10}, 1e-6);
}

TEST(KernelsTransformer, AttentionHeadsCachesAndLayouts) {
  std::mt19937 rng(5);
  // GQA: two query heads share one key/value head; each equals single-head attention on its own query.
  Tensor q = random_float({1, 2, 3, 4}, rng), k = random_float({1, 1, 5, 4}, rng), v = random_float({1, 1, 5, 2}, rng);
  Tensor y = run_kernel(attention(3), 23, {q, k, v})[0];
  ASSERT_EQ(y.shape(), (Shape{1, 2, 3, 2}));
  for (int h = 0; h < 2; ++h) {
    Tensor qh = ft({1, 1, 3, 4}, std::vector<float>(q.data<float>() + h * 12, q.data<float>() + (h + 1) * 12));
    Tensor yh = run_kernel(attention(3), 23, {qh, k, v})[0];
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(y.data<float>()[h * 6 + i], yh.data<float>()[i], 1e-6);
  }
  // 3-D inputs [B, S, H*D] with q_num_heads / kv_num_heads: the 4-D result with heads moved.
  ir::Node n3 = attention(3);
  n3.set_attr_int("q_num_heads", 2);
  n3.set_attr_int("kv_num_heads", 1);
  std::vector<float> q3(24);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 3; ++s)
      for (int d = 0; d < 4; ++d) q3[s * 8 + h * 4 + d] = q.data<float>()[(h * 3 + s) * 4 + d];
  Tensor y3 = run_kernel(n3, 23, {ft({1, 3, 8}, q3), k.reshaped({1, 5, 4}), v.reshaped({1, 5, 2})})[0];
  ASSERT_EQ(y3.shape(), (Shape{1, 3, 4}));
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 3; ++s)
      for (int d = 0; d < 2; ++d)
        EXPECT_NEAR(y3.data<float>()[s * 4 + h * 2 + d], y.data<float>()[(h * 3 + s) * 2 + d], 1e-6);
  // past_key / past_value: present = concat(past, new); the same as attending the concatenated keys directly.
  ir::Node withpast = attention(6, 3);
  auto out = run_kernel(withpast, 23, {q, k, v, Tensor(), random_float({1, 1, 2, 4}, rng),
                                       random_float({1, 1, 2, 2}, rng)});
  ASSERT_EQ(out[1].shape(), (Shape{1, 1, 7, 4}));
  ASSERT_EQ(out[2].shape(), (Shape{1, 1, 7, 2}));
  Tensor direct = run_kernel(attention(3), 23, {q, out[1], out[2]})[0];
  expect_close(out[0], direct, 1e-6);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(out[1].data<float>()[8 + i], k.data<float>()[i]);
}

TEST(KernelsTransformer, AttentionRulesNameTheNode) {
  std::mt19937 rng(6);
  Tensor q3 = random_float({1, 2, 6}, rng);
  EXPECT_NE(kernel_error(attention(3), 23, {q3, q3, q3}).find("q_num_heads"), std::string::npos);
  Tensor q = random_float({1, 3, 2, 4}, rng), k = random_float({1, 2, 2, 4}, rng);
  std::string err = kernel_error(attention(3), 23, {q, k, k});
  EXPECT_NE(err.find("not a multiple"), std::string::npos) << err;
  EXPECT_NE(err.find("(Attention)"), std::string::npos) << err;
  ir::Node win = attention(3);
  win.set_attr_int("left_window_size", 1);
  EXPECT_NE(kernel_error(win, 24, {q, q, q}).find("Attention-25"), std::string::npos);
  ir::Node heads4d = attention(3);
  heads4d.set_attr_int("q_num_heads", 3);
  heads4d.set_attr_int("kv_num_heads", 3);
  EXPECT_NE(kernel_error(heads4d, 25, {q, q, q}).find("must not be set with 4-D"), std::string::npos);
  ir::Node nopast = attention(5);
  EXPECT_NE(kernel_error(nopast, 23, {q, q, q, Tensor(), q}).find("together"), std::string::npos);
}

TEST(KernelsTransformer, RotaryEmbeddingHandValues) {
  // Head size 4, rotary dim 2 (the last two features pass through); position 1's angle 0.5.
  const double c = std::cos(0.5), s = std::sin(0.5);
  Tensor x = ft({1, 1, 1, 4}, {1, 2, 7, 8});
  Tensor cosc = ft({2, 1}, {1, static_cast<float>(c)}), sinc = ft({2, 1}, {0, static_cast<float>(s)});
  ir::Node n = make_node("RotaryEmbedding", 4);
  n.set_attr_int("rotary_embedding_dim", 2);
  expect_values(run_kernel(n, 23, {x, cosc, sinc, it64({1, 1}, {1})})[0], {c - 2 * s, s + 2 * c, 7, 8}, 1e-6);
  // Whole head, halves (x1 = [1, 2], x2 = [7, 8]) and interleaved pairs ((1, 2), (7, 8)).
  ir::Node whole = make_node("RotaryEmbedding", 4);
  Tensor c2 = ft({1, 2}, {static_cast<float>(c), static_cast<float>(c)}),
         s2 = ft({1, 2}, {static_cast<float>(s), static_cast<float>(s)});
  expect_values(run_kernel(whole, 23, {x, c2, s2, it64({1, 1}, {0})})[0],
                {c - 7 * s, 2 * c - 8 * s, s + 7 * c, 2 * s + 8 * c}, 1e-6);
  whole.set_attr_int("interleaved", 1);
  expect_values(run_kernel(whole, 23, {x, c2, s2, it64({1, 1}, {0})})[0],
                {c - 2 * s, s + 2 * c, 7 * c - 8 * s, 7 * s + 8 * c}, 1e-6);
  EXPECT_NE(kernel_error(whole, 23, {x, c2, s2, it64({1, 1}, {3})}).find("outside the cache"), std::string::npos);
}

TEST(KernelsTransformer, TensorScatterCumProdBitCast) {
  // Cache [1, 4, 1] (axis -2), update of 2 rows at write index 3: linear overflows, circular wraps to row 0.
  Tensor cache = ft({1, 4, 1}, {0, 1, 2, 3}), upd = ft({1, 2, 1}, {8, 9});
  ir::Node ts = make_node("TensorScatter", 3);
  EXPECT_NE(kernel_error(ts, 24, {cache, upd, it64({1}, {3})}).find("outside"), std::string::npos);
  expect_values(run_kernel(ts, 24, {cache, upd, it64({1}, {1})})[0], {0, 8, 9, 3});
  ts.set_attr_string("mode", "circular");
  expect_values(run_kernel(ts, 24, {cache, upd, it64({1}, {3})})[0], {9, 1, 2, 8});

  ir::Node cp = make_node("CumProd", 2);
  Tensor x = ft({4}, {1, 2, 3, 4});
  expect_values(run_kernel(cp, 26, {x, it64({}, {0})})[0], {1, 2, 6, 24});
  cp.set_attr_int("exclusive", 1);
  expect_values(run_kernel(cp, 26, {x, it64({}, {0})})[0], {1, 1, 2, 6});
  cp.set_attr_int("reverse", 1);
  expect_values(run_kernel(cp, 26, {x, it64({}, {0})})[0], {24, 12, 4, 1});
  // Integers wrap: 2^62 * 4 = 0 (mod 2^64).
  ir::Node cpi = make_node("CumProd", 2);
  Tensor xi = it64({2}, {int64_t{1} << 62, 4});
  EXPECT_EQ(run_kernel(cpi, 26, {xi, it64({}, {0})})[0].data<int64_t>()[1], 0);

  ir::Node bc = make_node("BitCast", 1);
  bc.set_attr_int("to", static_cast<int64_t>(DType::Int32));
  Tensor bits = run_kernel(bc, 26, {ft({2}, {1.f, -2.f})})[0];
  ASSERT_EQ(bits.dtype(), DType::Int32);
  EXPECT_EQ(bits.data<int32_t>()[0], 0x3f800000);
  EXPECT_EQ(static_cast<uint32_t>(bits.data<int32_t>()[1]), 0xc0000000u);
  bc.set_attr_int("to", static_cast<int64_t>(DType::Int16));
  EXPECT_NE(kernel_error(bc, 26, {ft({1}, {1.f})}).find("differ in width"), std::string::npos);
}

TEST(KernelsTransformer, AttentionConvertedTo25DropsHeadCountsOn4D) {
  // Attention-23 ignores q_num_heads / kv_num_heads on 4-D inputs; 25 refuses them there: the converter drops
  // them when X's rank is known to be 4, and the converted model computes the same.
  using namespace oq::test_passes;
  namespace P = oq::ir::passes;
  ir::Model m = model(23, 10);
  auto& g = m.graph;
  g.inputs = {vi("q", {1, 2, 3, 4}), vi("k", {1, 2, 5, 4}), vi("v", {1, 2, 5, 3})};
  ir::Node n = mk("Attention", {"q", "k", "v"}, {"y"});
  n.set_attr_int("q_num_heads", 2);
  n.set_attr_int("kv_num_heads", 2);
  n.set_attr_int("is_causal", 1);
  g.nodes.push_back(n);
  g.outputs = {vi_any("y")};
  ir::Model orig = m;
  EXPECT_EQ(P::convert_opset(m, 25), 1u);
  const ir::Node* a = find_op(m, "Attention");
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE(a->has_attr("q_num_heads"));
  EXPECT_FALSE(a->has_attr("kv_num_heads"));
  EXPECT_EQ(a->attr_int("is_causal", 0), 1);
  std::map<std::string, Tensor> in = {{"q", rnd({1, 2, 3, 4}, 1)}, {"k", rnd({1, 2, 5, 4}, 2)}, {"v", rnd({1, 2, 5, 3}, 3)}};
  expect_same(run(orig, in), run(m, in), 1e-6);
}
