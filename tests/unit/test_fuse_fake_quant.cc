// QuantizeLinear -> DequantizeLinear pairs fused after a Conv by the executor's optimizer
// (ir::passes::fuse_fake_quant, exec::FusedFakeQuant): which pairs fuse (and which must not), and that the
// fused Session computes bit for bit what the model as given computes with the separate QuantizeLinear and
// DequantizeLinear kernels (the reference: the same Session with optimize off), plain and channel-blocked.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "exec/kernels/fused_activation.h"
#include "exec/optimize.h"
#include "exec/session.h"
#include "ir/passes/passes.h"
#include "kernel_test_util.h"

using namespace oq;
using oq::ktest::random_float;

namespace {

ir::Node node(const std::string& op, std::vector<std::string> in, std::string out) {
  return ktest::graph_node(op, std::move(in), std::move(out));
}

template <typename T>
Tensor scalar(DType t, T v) {
  return Tensor::from_vector(t, {}, std::vector<T>{v});
}

// X[N,6,9,11] -> Conv 3x3 -> `act` (Relu, Clip(0, 2) or LeakyRelu) -> Q/DQ int8 -> depthwise Conv 3x3 -> Q/DQ uint8 (small scale: saturates)
// -> 1x1 Conv -> Q/DQ int16 -> Y: three pairs that fuse. Beside them, pairs that must not: d1 -> Conv -> Q/DQ
// whose DequantizeLinear has another scale (D4); a Conv -> Q whose quantized tensor is a graph output (Q5, with
// its DQ D5); a per-axis pair (D6); a Conv -> Q -> two DequantizeLinear (D7a, D7b).
ir::Model make_model(std::mt19937& rng, const std::string& act = "Relu", int64_t cin = 6) {
  ir::Model m;
  m.ir_version = 10;
  m.opsets = {{"", 21}};
  ir::Graph& g = m.graph;
  g.inputs.push_back(ktest::nchw_input("X", cin, 9, 11));
  g.add_initializer("W1", random_float({16, cin, 3, 3}, rng, -0.4f, 0.4f));
  g.add_initializer("B1", random_float({16}, rng));
  g.add_initializer("W2", random_float({16, 1, 3, 3}, rng, -0.5f, 0.5f));
  g.add_initializer("W3", random_float({20, 16, 1, 1}, rng, -0.5f, 0.5f));
  g.add_initializer("W4", random_float({5, 16, 1, 1}, rng, -0.5f, 0.5f));
  g.add_initializer("s1", Tensor::scalar_float(0.0371f));
  g.add_initializer("z1", scalar<int8_t>(DType::Int8, -7));
  g.add_initializer("s2", Tensor::scalar_float(0.0123f));
  g.add_initializer("z2", scalar<uint8_t>(DType::UInt8, 131));
  g.add_initializer("s3", Tensor::scalar_float(0.000731f));
  g.add_initializer("z3", scalar<int16_t>(DType::Int16, 1000));
  g.add_initializer("s4b", Tensor::scalar_float(0.0372f));
  g.add_initializer("sv", Tensor::from_vector(DType::Float, {5}, std::vector<float>{0.01f, 0.02f, 0.03f, 0.04f, 0.05f}));
  g.add_initializer("zv", Tensor::from_vector(DType::Int8, {5}, std::vector<int8_t>{0, 1, 2, 3, 4}));
  g.nodes.push_back(node("Conv", {"X", "W1", "B1"}, "c1"));
  ir::Node* n = &g.nodes.back();
  n->set_attr_ints("pads", {1, 1, 1, 1});
  if (act == "Clip") {  // oneDNN 2.6 took the fused pair's clip bounds from this one (both eltwise_clip)
    g.add_initializer("lo", Tensor::scalar_float(0.f));
    g.add_initializer("hi", Tensor::scalar_float(2.f));
    g.nodes.push_back(node("Clip", {"c1", "lo", "hi"}, "a1"));
  } else {
    g.nodes.push_back(node(act, {"c1"}, "a1"));
  }
  g.nodes.push_back(node("QuantizeLinear", {"a1", "s1", "z1"}, "q1"));
  g.nodes.push_back(node("DequantizeLinear", {"q1", "s1", "z1"}, "d1"));
  g.nodes.push_back(node("Conv", {"d1", "W2"}, "c2"));
  n = &g.nodes.back();
  n->set_attr_int("group", 16);
  n->set_attr_ints("pads", {1, 1, 1, 1});
  g.nodes.push_back(node("QuantizeLinear", {"c2", "s2", "z2"}, "q2"));
  g.nodes.push_back(node("DequantizeLinear", {"q2", "s2", "z2"}, "d2"));
  g.nodes.push_back(node("Conv", {"d2", "W3"}, "c3"));
  g.nodes.push_back(node("QuantizeLinear", {"c3", "s3", "z3"}, "q3"));
  g.nodes.push_back(node("DequantizeLinear", {"q3", "s3", "z3"}, "Y"));
  g.nodes.push_back(node("Conv", {"d1", "W4"}, "c4"));
  g.nodes.push_back(node("QuantizeLinear", {"c4", "s1", "z1"}, "q4"));
  g.nodes.push_back(node("DequantizeLinear", {"q4", "s4b", "z1"}, "D4"));
  g.nodes.push_back(node("Conv", {"d1", "W4"}, "c5"));
  g.nodes.push_back(node("QuantizeLinear", {"c5", "s1", "z1"}, "Q5"));
  g.nodes.push_back(node("DequantizeLinear", {"Q5", "s1", "z1"}, "D5"));
  g.nodes.push_back(node("Conv", {"d1", "W4"}, "c6"));
  g.nodes.push_back(node("QuantizeLinear", {"c6", "sv", "zv"}, "q6"));
  g.nodes.push_back(node("DequantizeLinear", {"q6", "sv", "zv"}, "D6"));
  g.nodes.push_back(node("Conv", {"d1", "W4"}, "c7"));
  g.nodes.push_back(node("QuantizeLinear", {"c7", "s1", "z1"}, "q7"));
  g.nodes.push_back(node("DequantizeLinear", {"q7", "s1", "z1"}, "D7a"));
  g.nodes.push_back(node("DequantizeLinear", {"q7", "s1", "z1"}, "D7b"));
  for (const char* o : {"Y", "D4", "Q5", "D5", "D6", "D7a", "D7b"}) {
    ir::ValueInfo v = ktest::float_output(o);
    if (std::string(o) == "Q5") v.dtype = DType::Int8;
    g.outputs.push_back(v);
  }
  return m;
}

}  // namespace

TEST(FuseFakeQuant, WhichPairsFuse) {
  std::mt19937 rng(11);
  ir::Model m = make_model(rng);
  EXPECT_EQ(ir::passes::fuse_conv_activation(m), 1u);
  EXPECT_EQ(ir::passes::fuse_fake_quant(m), 6u);  // three pairs, two nodes each
  EXPECT_EQ(ktest::count_ops(m, "QuantizeLinear"), 4u);             // q4, Q5, q6, q7
  EXPECT_EQ(ktest::count_ops(m, "DequantizeLinear"), 5u);           // D4, D5, D6, D7a, D7b
  const std::string a = ir::passes::kFusedFakeQuantAttr;
  int fused = 0;
  for (const auto& n : m.graph.nodes) {
    if (n.op_type != "Conv" || n.attr_int(a, 0) == 0) continue;
    ++fused;
    if (n.outputs[0] == "d1") {  // int8, zero point -7: [-128 + 7, 127 + 7]
      EXPECT_EQ(n.attr_string(ir::passes::kFusedActivationAttr, ""), "Relu");
      EXPECT_EQ(n.attr_float(a + "_scale", 0), 0.0371f);
      EXPECT_EQ(n.attr_float(a + "_lo", 0), -121.f);
      EXPECT_EQ(n.attr_float(a + "_hi", 0), 134.f);
    } else if (n.outputs[0] == "d2") {  // uint8, zero point 131
      EXPECT_EQ(n.attr_float(a + "_lo", 0), -131.f);
      EXPECT_EQ(n.attr_float(a + "_hi", 0), 124.f);
    } else {
      EXPECT_EQ(n.outputs[0], "Y");  // int16, zero point 1000
      EXPECT_EQ(n.attr_float(a + "_lo", 0), -33768.f);
      EXPECT_EQ(n.attr_float(a + "_hi", 0), 31767.f);
    }
  }
  EXPECT_EQ(fused, 3);
}

TEST(FuseFakeQuant, BitIdenticalToSeparateKernels) {
  for (uint32_t seed : {1u, 2u, 3u, 4u}) {
    std::mt19937 rng(seed);
    const std::string act = seed == 1 ? "Relu" : seed == 3 ? "LeakyRelu" : "Clip";
    const int64_t cin = seed == 4 ? 1 : 6;  // one input channel: another oneDNN kernel for the first Conv
    ir::Model m = make_model(rng, act, cin);
    exec::Session plain(m, exec::SessionOptions{false});
    for (int block : {0, 8, 16}) {
      exec::Session fast(m, exec::SessionOptions{true, block});
      for (int64_t batch : {1, 3}) {
        Tensor x = random_float({batch, cin, 9, 11}, rng, -4.f, 4.f);
        x.data<float>()[5] = 1e6f;  // saturates every pair downstream of it
        std::map<std::string, Tensor> feeds{{"X", x}};
        auto a = fast.run(feeds), b = plain.run(feeds);
        ASSERT_EQ(a.size(), 7u);
        for (size_t k = 0; k < a.size(); ++k)
          EXPECT_TRUE(a[k].equals(b[k])) << "output " << m.graph.outputs[k].name << " block " << block << " " << act;
      }
    }
  }
}

// The fused pass against exec::fake_quantize (itself bit-identical to the QuantizeLinear -> DequantizeLinear
// kernel pair, test_kernels_qdq.cc) on ties, saturation, infinities, NaN and signed zeros, for every type.
TEST(FuseFakeQuant, ApplyMatchesKernelPair) {
  std::mt19937 rng(5);
  const DType types[] = {DType::Int8, DType::UInt8, DType::Int16, DType::UInt16, DType::Int4, DType::UInt4};
  for (DType qt : types) {
    const QRange r = full_range(qt);
    for (int it = 0; it < 8; ++it) {
      const float s = std::ldexp(1.0f + static_cast<float>(rng() % 997) / 997.f, -static_cast<int>(rng() % 9));
      const int64_t z = r.qmin + static_cast<int64_t>(rng() % static_cast<uint64_t>(r.qmax - r.qmin + 1));
      std::vector<float> v;
      for (int k = -300; k <= 300; ++k) v.push_back((static_cast<float>(k) + 0.5f) * s);  // ties
      for (int k = 0; k < 3000; ++k) v.push_back(static_cast<float>(static_cast<int64_t>(rng() % 200001) - 100000) * s * 0.01f);
      for (float e : {0.f, -0.f, -0.3f * s, 1e30f, -1e30f, std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity(), std::nanf("")})
        v.push_back(e);
      Tensor x = Tensor::from_vector(DType::Float, {static_cast<int64_t>(v.size())}, v);
      Tensor want = exec::fake_quantize(x, exec::QuantParams{qt, {s}, {z}, -1});
      exec::FusedFakeQuant f;
      f.on = true;
      f.scale = s;
      f.lo = static_cast<float>(r.qmin - z);
      f.hi = static_cast<float>(r.qmax - z);
      Tensor got = x.clone();
      f.apply(got.data<float>(), got.numel());
      ASSERT_TRUE(got.equals(want)) << dtype_name(qt) << " scale " << s << " zero point " << z;
    }
  }
}

// A QuantizeLinear whose output_dtype contradicts its zero point's type is not fused: the kernel reports it,
// optimized or not.
TEST(FuseFakeQuant, ContradictoryQuantizeIsLeftToTheKernel) {
  std::mt19937 rng(3);
  ir::Model m;
  m.ir_version = 10;
  m.opsets = {{"", 21}};
  ir::Graph& g = m.graph;
  g.inputs.push_back(ktest::nchw_input("X", 2, 5, 5));
  g.add_initializer("W", random_float({4, 2, 1, 1}, rng));
  g.add_initializer("s", Tensor::scalar_float(0.1f));
  g.add_initializer("z", scalar<int8_t>(DType::Int8, 0));
  g.nodes.push_back(node("Conv", {"X", "W"}, "c"));
  g.nodes.push_back(node("QuantizeLinear", {"c", "s", "z"}, "q"));
  g.nodes.back().set_attr_int("output_dtype", static_cast<int64_t>(DType::UInt8));
  g.nodes.push_back(node("DequantizeLinear", {"q", "s", "z"}, "Y"));
  g.outputs.push_back(ktest::float_output("Y"));
  ir::Model copy = m;
  EXPECT_EQ(ir::passes::fuse_fake_quant(copy), 0u);
  exec::Session s(m);
  std::map<std::string, Tensor> feeds{{"X", random_float({1, 2, 5, 5}, rng)}};
  try {
    s.run(feeds);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("output_dtype"), std::string::npos) << e.what();
  }
}

// Gemm and MatMul: X[N,10] -> Gemm (+C) -> Q/DQ int8 -> MatMul -> Q/DQ uint8 -> Y, fused and bit-identical.
TEST(FuseFakeQuant, GemmAndMatMul) {
  std::mt19937 rng(9);
  ir::Model m;
  m.ir_version = 10;
  m.opsets = {{"", 21}};
  ir::Graph& g = m.graph;
  ir::ValueInfo x;
  x.name = "X";
  x.dtype = DType::Float;
  x.shape = std::vector<ir::Dim>{{-1, "N"}, {10, ""}};
  g.inputs.push_back(x);
  g.add_initializer("W1", random_float({7, 10}, rng, -0.5f, 0.5f));
  g.add_initializer("C1", random_float({7}, rng));
  g.add_initializer("W2", random_float({7, 5}, rng, -0.5f, 0.5f));
  g.add_initializer("s1", Tensor::scalar_float(0.0213f));
  g.add_initializer("z1", scalar<int8_t>(DType::Int8, 5));
  g.add_initializer("s2", Tensor::scalar_float(0.0077f));
  g.add_initializer("z2", scalar<uint8_t>(DType::UInt8, 120));
  g.nodes.push_back(node("Gemm", {"X", "W1", "C1"}, "g1"));
  g.nodes.back().set_attr_int("transB", 1);
  g.nodes.push_back(node("QuantizeLinear", {"g1", "s1", "z1"}, "q1"));
  g.nodes.push_back(node("DequantizeLinear", {"q1", "s1", "z1"}, "d1"));
  g.nodes.push_back(node("MatMul", {"d1", "W2"}, "m2"));
  g.nodes.push_back(node("QuantizeLinear", {"m2", "s2", "z2"}, "q2"));
  g.nodes.push_back(node("DequantizeLinear", {"q2", "s2", "z2"}, "Y"));
  g.outputs.push_back(ktest::float_output("Y"));
  ir::Model fused = m;
  EXPECT_EQ(ir::passes::fuse_fake_quant(fused), 4u);
  EXPECT_EQ(ktest::count_ops(fused, "QuantizeLinear") + ktest::count_ops(fused, "DequantizeLinear"), 0u);
  exec::Session fast(m), plain(m, exec::SessionOptions{false});
  for (int64_t batch : {1, 4, 33}) {
    Tensor in = random_float({batch, 10}, rng, -6.f, 6.f);
    std::map<std::string, Tensor> feeds{{"X", in}};
    EXPECT_TRUE(fast.run(feeds)[0].equals(plain.run(feeds)[0])) << batch;
  }
}
