// The channel-blocked layout for convolution chains (exec/layout.h): which nodes the pass converts, and that
// the optimized Session computes what the model as given computes (reference: the same model with
// optimizations off, i.e. the NCHW kernels) for both block sizes, odd shapes, channel counts that are not
// multiples of the block, batch 1 and 3, one and two threads, with uninitialised memory poisoned (a padding
// channel that is read but not zeroed would turn the outputs into NaN).
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "core/alloc.h"
#include "core/parallel.h"
#include "exec/layout.h"
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

struct Builder {
  ir::Model m;
  std::mt19937& rng;
  explicit Builder(std::mt19937& r) : rng(r) {
    m.ir_version = 8;
    m.opsets = {{"", 13}};
  }
  // Conv cout x (cin/group) x k x k named `out`, with bias; stride, pads k/2, optional Clip(0, 6) after it.
  std::string conv(const std::string& x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t group,
                   const std::string& out, bool clip, bool bias = true) {
    const float r = 1.5f / std::sqrt(static_cast<float>(cin / group * k * k));
    m.graph.add_initializer("W_" + out, random_float({cout, cin / group, k, k}, rng, -r, r));
    std::vector<std::string> in = {x, "W_" + out};
    if (bias) {
      m.graph.add_initializer("B_" + out, random_float({cout}, rng, -0.5f, 0.5f));
      in.push_back("B_" + out);
    }
    ir::Node c = node("Conv", in, clip ? out + "_pre" : out);
    c.set_attr_ints("strides", {stride, stride});
    c.set_attr_ints("pads", {k / 2, k / 2, k / 2, k / 2});
    if (group != 1) c.set_attr_int("group", group);
    m.graph.nodes.push_back(c);
    if (clip) m.graph.nodes.push_back(node("Clip", {out + "_pre", "lo", "hi"}, out));
    return out;
  }
  void output(const std::string& name) { m.graph.outputs.push_back(ktest::float_output(name)); }
};

// X[N,3,17,19] -> Conv 3x3 s2 (24, ReLU6) -> depthwise 3x3 (24, ReLU6) -> 1x1 (20) = a
// a -> 1x1 expand (44, ReLU6) -> depthwise 3x3 (44, dilation 2, asymmetric pads) -> 1x1 project (20, no bias)
// = p;  s = Add(a, p) (a graph output too); r = Relu(s) -> Conv 3x3 s2 SAME_UPPER (17) = c -> GlobalAveragePool
// -> Y;  Sigmoid(s) -> Z (read outside the chain)
// plus a side input V[N,16,9,10] -> Conv 1x1 (16) alone -> W (not converted: alone), and Vr = Relu(V) (plain) ->
// Conv 3x3 (16) -> Conv 1x1 (16) = U; Q = Add(U, Vr): a chain fed by a plain tensor, converted once on the way
// in for both the Conv and the residual Add.
ir::Model make_model(std::mt19937& rng) {
  Builder b(rng);
  ir::Graph& g = b.m.graph;
  g.inputs.push_back(ktest::nchw_input("X", 3, 17, 19));
  g.inputs.push_back(ktest::nchw_input("V", 16, 9, 10));
  g.add_initializer("lo", Tensor::scalar_float(0.f));
  g.add_initializer("hi", Tensor::scalar_float(6.f));
  std::string t = b.conv("X", 3, 24, 3, 2, 1, "c0", true);
  t = b.conv(t, 24, 24, 3, 1, 24, "d0", true);
  std::string a = b.conv(t, 24, 20, 1, 1, 1, "a", false);
  t = b.conv(a, 20, 44, 1, 1, 1, "e1", true);
  t = b.conv(t, 44, 44, 3, 1, 44, "d1", false);
  std::string p = b.conv(t, 44, 20, 1, 1, 1, "p", false, /*bias=*/false);
  g.nodes.push_back(node("Add", {a, p}, "s"));
  g.nodes.push_back(node("Relu", {"s"}, "r"));
  b.conv("r", 20, 17, 3, 2, 1, "c", false);
  // Geometry variants inside the chain: d1 dilated (2) with asymmetric pads, c with auto_pad SAME_UPPER.
  for (auto& n : g.nodes) {
    if (n.outputs[0] == "d1") {
      n.set_attr_ints("dilations", {2, 2});
      n.set_attr_ints("pads", {2, 1, 2, 3});
    } else if (n.outputs[0] == "c") {
      n.remove_attr("pads");
      n.set_attr_string("auto_pad", "SAME_UPPER");
    }
  }
  g.nodes.push_back(node("GlobalAveragePool", {"c"}, "Y"));
  g.nodes.push_back(node("Sigmoid", {"s"}, "Z"));
  b.conv("V", 16, 16, 1, 1, 1, "W", false);
  g.nodes.push_back(node("Relu", {"V"}, "Vr"));
  t = b.conv("Vr", 16, 16, 3, 1, 1, "u0", true);
  b.conv(t, 16, 16, 1, 1, 1, "U", false);
  g.nodes.push_back(node("Add", {"U", "Vr"}, "Q"));
  for (const char* o : {"Y", "Z", "s", "W", "U", "Q"}) b.output(o);
  return b.m;
}

std::map<std::string, Tensor> make_feeds(std::mt19937& rng, int64_t batch) {
  return {{"X", random_float({batch, 3, 17, 19}, rng, -2.f, 2.f)},
          {"V", random_float({batch, 16, 9, 10}, rng, -2.f, 2.f)}};
}

// Every tensor the observer of one run sees (copies), with `observed` / `any_order` as given.
std::map<std::string, Tensor> observe(exec::Session& s, const std::map<std::string, Tensor>& feeds,
                                      const std::unordered_set<std::string>* observed = nullptr,
                                      const std::unordered_set<std::string>* any_order = nullptr) {
  std::map<std::string, Tensor> seen;
  exec::RunOptions o;
  o.observed = observed;
  o.any_order = any_order;
  o.observer = [&](const std::string& n, const Tensor& v) { seen[n] = v.clone(); };
  s.run(feeds, o);
  return seen;
}

const ir::Node* producer_of(const ir::Model& m, const std::string& t) {
  for (const auto& n : m.graph.nodes)
    for (const auto& o : n.outputs)
      if (o == t) return &n;
  return nullptr;
}

}  // namespace

TEST(ExecLayout, ConvertsChainsOnly) {
  std::mt19937 rng(11);
  ir::Model m = make_model(rng);
  for (int block : {8, 16}) {
    auto og = exec::optimize_for_inference(m, block);
    ASSERT_TRUE(og);
    const ir::Model& o = og->model;
    size_t blocked_convs = 0;
    for (const auto& n : o.graph.nodes)
      if (n.op_type == "Conv" && n.has_attr(exec::kBlockAttr)) {
        ++blocked_convs;
        EXPECT_EQ(n.attr_int(exec::kBlockAttr, 0), block);
      }
    // c0 d0 a e1 d1 p c (main chain) + u0 U; not W (alone); with block 16, c (17 channels) still qualifies.
    EXPECT_EQ(blocked_convs, 9u) << block;
    const ir::Node* c0 = producer_of(o, std::string("c0") + exec::kBlockedSuffix);
    ASSERT_TRUE(c0);
    EXPECT_EQ(c0->attr_int(exec::kBlockedSrcAttr, -1), 0);  // 3 input channels: read as NCHW
    const ir::Node* u0 = producer_of(o, std::string("u0") + exec::kBlockedSuffix);
    ASSERT_TRUE(u0);
    EXPECT_EQ(u0->attr_int(exec::kBlockedSrcAttr, -1), 1);  // 16 channels: converted on the way in
    EXPECT_EQ(ktest::count_ops(o, exec::kToBlockedOp), 1u);            // Vr, for u0 and the Add
    EXPECT_TRUE(producer_of(o, std::string("Q") + exec::kBlockedSuffix));  // Add(blocked U, converted Vr)
    EXPECT_TRUE(producer_of(o, std::string("s") + exec::kBlockedSuffix));  // the Add runs blocked
    EXPECT_TRUE(producer_of(o, std::string("r") + exec::kBlockedSuffix));  // and the Relu
    // Back to NCHW: s (graph output and read by Sigmoid), c (read by GlobalAveragePool), U and Q (graph outputs).
    EXPECT_EQ(ktest::count_ops(o, exec::kFromBlockedOp), 4u);
    for (const char* t : {"s", "c", "U", "Q", "W", "Y", "Z", "Vr"}) EXPECT_TRUE(producer_of(o, t)) << t;
    // Chain tensors held only blocked are listed as such (observable, not fake-quantizable); the ones converted
    // back keep their names; neither is touched. Pre-activation tensors fused away are.
    for (const char* t : {"c0", "d0", "a", "e1", "d1", "p", "r", "u0"}) {
      EXPECT_FALSE(og->touched.count(t)) << t;
      ASSERT_TRUE(og->blocked.count(t)) << t;
      EXPECT_EQ(og->blocked.at(t).blocked, std::string(t) + exec::kBlockedSuffix);
    }
    EXPECT_EQ(og->blocked.at("p").channels, 20);
    for (const char* t : {"s", "c", "U", "W"}) EXPECT_FALSE(og->touched.count(t) || og->blocked.count(t)) << t;
    for (const char* t : {"c0_pre", "e1_pre", "u0_pre"}) EXPECT_TRUE(og->touched.count(t)) << t;
  }
  EXPECT_EQ(exec::to_blocked_layout(m, 0), 0u);
}

TEST(ExecLayout, SameOutputsAsNchw) {
  ktest::ThreadGuard tg;
  const bool poison = poison_uninitialized();
  set_poison_uninitialized(true);
  for (uint32_t seed : {1u, 2u}) {
    std::mt19937 rng(seed);
    ir::Model m = make_model(rng);
    exec::Session plain(m, exec::SessionOptions{false});
    for (int block : {8, 16}) {
      exec::SessionOptions so;
      so.channel_block = block;
      exec::Session blocked(m, so);
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (int64_t batch : {1, 3}) {
          std::map<std::string, Tensor> feeds = make_feeds(rng, batch);
          auto a = blocked.run(feeds), b = plain.run(feeds);
          ASSERT_EQ(a.size(), 6u);
          for (size_t k = 0; k < a.size(); ++k) {
            SCOPED_TRACE(testing::Message() << "block " << block << " threads " << threads << " batch " << batch
                                            << " output " << k);
            expect_close(a[k], b[k], 1e-4);
          }
        }
      }
    }
  }
  set_poison_uninitialized(poison);
}

// The test model run blocked (block 16) and as given (no optimization), with batch-2 feeds.
struct BlockedAndPlain {
  std::mt19937 rng;
  ir::Model m;
  exec::Session blocked, plain;
  std::map<std::string, Tensor> feeds;
  explicit BlockedAndPlain(unsigned seed)
      : rng(seed), m(make_model(rng)), blocked(m, exec::SessionOptions{true, 16}),
        plain(m, exec::SessionOptions{false}), feeds(make_feeds(rng, 2)) {}
};

TEST(ExecLayout, ObserversSeeBlockedTensorsInNchw) {
  BlockedAndPlain t(5);
  auto& [rng, m, blocked, plain, feeds] = t;
  // a, e1 and r exist only blocked in the optimized graph; s is converted back by a node there.
  std::unordered_set<std::string> want{"a", "e1", "r", "s"};
  std::map<std::string, Tensor> got = observe(blocked, feeds, &want), ref = observe(plain, feeds);
  EXPECT_FALSE(got.count("c0_pre"));  // the optimized graph ran: c0's pre-activation tensor is fused away
  for (const auto& [n, v] : got) EXPECT_FALSE(n.ends_with(exec::kBlockedSuffix)) << n;
  for (const auto& n : want) {
    ASSERT_TRUE(got.count(n)) << n;
    SCOPED_TRACE(n);
    expect_close(got[n], ref.at(n), 1e-4);
  }
  // Fake quantization of a tensor held blocked: the model as given runs, bit-identical to the plain session.
  std::unordered_map<std::string, exec::QuantParams> fq;
  fq["a"] = exec::QuantParams{DType::Int8, {0.02f}, {-3}, -1};
  exec::RunOptions f;
  f.fake_quant = &fq;
  auto a = blocked.run(feeds, f), b = plain.run(feeds, f);
  for (size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(a[k].equals(b[k])) << "output " << k;
}

// s is converted back to NCHW by a node (it is a graph output and Sigmoid reads it) but the chain's Relu reads
// its blocked form: fake-quantizing s must reach that Relu too, so the run takes the model as given (the
// optimized graph used to fake-quantize only the NCHW copy: Y, computed from the blocked s, kept s's float values).
TEST(ExecLayout, FakeQuantOfATensorConvertedBackReachesTheChain) {
  BlockedAndPlain t(7);
  auto& [rng, m, blocked, plain, feeds] = t;
  std::unordered_map<std::string, exec::QuantParams> fq;
  fq["s"] = exec::QuantParams{DType::UInt8, {0.25f}, {128}, -1};
  exec::RunOptions f;
  f.fake_quant = &fq;
  auto a = blocked.run(feeds, f), b = plain.run(feeds, f);
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    SCOPED_TRACE("output " + std::to_string(k));
    expect_close(a[k], b[k], 1e-5);
  }
}

TEST(ExecLayout, AnyOrderObserversGetBlockedValuesAsTheyAre) {
  BlockedAndPlain t(6);
  auto& [rng, m, blocked, plain, feeds] = t;
  // e1 has 44 channels and a 20 (padding with blocks of 16: their real values copied, not in NCHW order), u0 16
  // (no padding: shown as it is).
  std::unordered_set<std::string> want{"a", "e1", "u0"};
  std::map<std::string, Tensor> got = observe(blocked, feeds, &want, &want), ref = observe(plain, feeds);
  EXPECT_EQ(got.at("u0").rank(), 5);
  EXPECT_EQ(got.at("e1").rank(), 4);
  EXPECT_EQ(got.at("a").rank(), 4);
  for (const auto& n : want) {
    SCOPED_TRACE(n);
    std::vector<double> a = got.at(n).to_doubles(), b = ref.at(n).to_doubles();
    ASSERT_EQ(a.size(), b.size());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4 * std::max(1.0, std::fabs(b[i]))) << i;
  }
}

// A QDQ model as onnxquant writes it: uint8 activations (zero point 128: blocked padding becomes the zero point
// between Q and DQ), int8 per-channel weights and int32 biases behind DequantizeLinear, a residual Add.
// The per-tensor Q -> DQ pairs join the blocked chain; the results may differ from the NCHW kernels only where
// a value lands on a rounding boundary (different summation order in the convolutions): at most one output
// quantization step, and rarely.
TEST(ExecLayout, QdqChains) {
  std::mt19937 rng(21);
  ir::Model m;
  m.ir_version = 8;
  m.opsets = {{"", 13}};
  ir::Graph& g = m.graph;
  g.inputs.push_back(ktest::nchw_input("X", 3, 15, 13));
  int k = 0;
  auto qdq = [&](const std::string& t, float scale) {
    const std::string s = "s" + std::to_string(k), z = "z" + std::to_string(k), q = t + "_q", d = t + "_dq";
    ++k;
    g.add_initializer(s, Tensor::scalar_float(scale));
    g.add_initializer(z, Tensor::from_vector(DType::UInt8, {}, std::vector<uint8_t>{128}));
    g.nodes.push_back(node("QuantizeLinear", {t, s, z}, q));
    g.nodes.push_back(node("DequantizeLinear", {q, s, z}, d));
    return d;
  };
  auto conv = [&](const std::string& in, int64_t cin, int64_t cout, int64_t kk, int64_t group, const std::string& out) {
    const int64_t fan = cin / group * kk * kk;
    std::vector<int8_t> wq(static_cast<size_t>(cout * fan));
    for (auto& v : wq) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    std::vector<float> ws(static_cast<size_t>(cout));
    for (auto& v : ws) v = 1.5f / 127.f / std::sqrt(static_cast<float>(fan));
    std::vector<int32_t> bq(static_cast<size_t>(cout));
    for (auto& v : bq) v = static_cast<int32_t>(rng() % 2001) - 1000;
    g.add_initializer("Wq_" + out, Tensor::from_vector(DType::Int8, {cout, cin / group, kk, kk}, wq));
    g.add_initializer("Ws_" + out, Tensor::from_vector(DType::Float, {cout}, ws));
    g.add_initializer("Wz_" + out, Tensor::from_vector(DType::Int8, {cout}, std::vector<int8_t>(cout, 0)));
    g.add_initializer("Bq_" + out, Tensor::from_vector(DType::Int32, {cout}, bq));
    g.add_initializer("Bs_" + out, Tensor::from_vector(DType::Float, {cout}, std::vector<float>(cout, 1e-3f)));
    ir::Node wd = node("DequantizeLinear", {"Wq_" + out, "Ws_" + out, "Wz_" + out}, "W_" + out);
    wd.set_attr_int("axis", 0);
    g.nodes.push_back(wd);
    ir::Node bd = node("DequantizeLinear", {"Bq_" + out, "Bs_" + out}, "B_" + out);
    bd.set_attr_int("axis", 0);
    g.nodes.push_back(bd);
    ir::Node c = node("Conv", {in, "W_" + out, "B_" + out}, out);
    c.set_attr_ints("pads", {kk / 2, kk / 2, kk / 2, kk / 2});
    if (group != 1) c.set_attr_int("group", group);
    g.nodes.push_back(c);
    return qdq(out, 0.05f);
  };
  std::string t = conv(qdq("X", 0.02f), 3, 20, 3, 1, "c0");
  std::string a = conv(t, 20, 20, 3, 20, "d0");
  t = conv(a, 20, 32, 1, 1, "e1");
  t = conv(t, 32, 20, 1, 1, "p1");
  g.nodes.push_back(node("Add", {a, t}, "s"));
  std::string y = qdq("s", 0.08f);
  g.nodes.push_back(node("GlobalAveragePool", {y}, "Y"));
  g.outputs.push_back(ktest::float_output("Y"));

  exec::Session plain(m, exec::SessionOptions{false});
  for (int block : {8, 16}) {
    auto og = exec::optimize_for_inference(m, block);
    ASSERT_TRUE(og);
    size_t blocked_q = 0, fused = 0;
    for (const auto& n : og->model.graph.nodes) {
      blocked_q += (n.op_type == "QuantizeLinear" && n.inputs[0].ends_with(exec::kBlockedSuffix));
      fused += n.op_type == "Conv" && n.attr_int(ir::passes::kFusedFakeQuantAttr, 0) != 0;
    }
    // The four Convs' pairs are fused into them (test_fuse_fake_quant.cc); the Add's pair runs blocked.
    EXPECT_EQ(fused, 4u) << block;
    EXPECT_EQ(blocked_q, 1u) << block;
    exec::SessionOptions so;
    so.channel_block = block;
    exec::Session blocked(m, so);
    for (int64_t batch : {1, 3}) {
      std::map<std::string, Tensor> feeds{{"X", random_float({batch, 3, 15, 13}, rng, -2.f, 2.f)}};
      Tensor a1 = blocked.run(feeds)[0], b1 = plain.run(feeds)[0];
      ASSERT_EQ(shape_str(a1.shape()), shape_str(b1.shape()));
      // Y is a mean over 15x13 positions of values on the 0.08 grid: a flipped value moves it by 0.08/195.
      for (int64_t i = 0; i < a1.numel(); ++i)
        EXPECT_NEAR(a1.data<float>()[i], b1.data<float>()[i], 3 * 0.08 / 195 + 1e-6) << block << " " << i;
    }
  }
}
