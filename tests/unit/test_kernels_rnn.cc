// RNN, GRU, LSTM: one hand-computed case per op (values from the spec's equations worked out on scalars), the
// optimised kernel (GEMM path, through the registry) against the naive reference (rnn_ref.cc) on random odd
// shapes with a fixed seed over directions, sequence_lens, layout, clip, activations, input_forget,
// linear_before_reset and peepholes, in float and double; optional outputs; errors naming the node.
// onnxruntime comparisons: tests/python/test_kernels_rnn_ort.py.
#include <cmath>
#include <random>

#include "exec/kernels/rnn.h"
#include "exec/kernels/rnn_gemm.h"
#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;

namespace {

double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }

void set_strings(ir::Node& n, const std::string& name, std::vector<std::string> v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttrType::Strings;
  a.strings = std::move(v);
  n.attrs.push_back(std::move(a));
}
void set_floats(ir::Node& n, const std::string& name, std::vector<float> v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttrType::Floats;
  a.floats = std::move(v);
  n.attrs.push_back(std::move(a));
}

// Node with inputs in0..in{n_in-1} and outputs out0..out{n_out-1}.
ir::Node rnn_node(const std::string& op, size_t n_in, size_t n_out, int64_t hidden) {
  ir::Node n = make_node(op, n_in, n_out);
  n.set_attr_int("hidden_size", hidden);
  return n;
}

}  // namespace

// ------------------------------------------------------------------------------------------ hand computed
TEST(KernelsRnn, RnnHandComputed) {
  // hidden 1, input 1, seq 2, batch 1: h1 = tanh(2*1 + 0.1 + 0.2), h2 = tanh(2*(-1) + 0.5*h1 + 0.3).
  ir::Node n = rnn_node("RNN", 4, 2, 1);
  auto out = run_kernel(n, 14, {ft({2, 1, 1}, {1, -1}), ft({1, 1, 1}, {2}), ft({1, 1, 1}, {0.5}), ft({1, 2}, {0.1f, 0.2f})});
  const double h1 = std::tanh(2.3), h2 = std::tanh(-2 + 0.5 * h1 + 0.3);
  EXPECT_EQ(shape_str(out[0].shape()), "[2,1,1,1]");
  expect_values(out[0], {h1, h2});
  expect_values(out[1], {h2});
  // Reverse: x[1] first, then x[0]; Y keeps the time order.
  n.set_attr_string("direction", "reverse");
  out = run_kernel(n, 14, {ft({2, 1, 1}, {1, -1}), ft({1, 1, 1}, {2}), ft({1, 1, 1}, {0.5}), ft({1, 2}, {0.1f, 0.2f})});
  const double r1 = std::tanh(-2 + 0.3), r0 = std::tanh(2 + 0.5 * r1 + 0.3);
  expect_values(out[0], {r0, r1});
  expect_values(out[1], {r0});
}

TEST(KernelsRnn, GruHandComputed) {
  // hidden 1, input 1, one step, x = 1, h0 = 0.5, W = [z 0.5, r -1, h 2], R = [1, 1, 1], B = [Wb 0.1 0.2 0.3, Rb 0.4 0.5 0.6].
  const Tensor x = ft({1, 1, 1}, {1}), w = ft({1, 3, 1}, {0.5f, -1, 2}), r = ft({1, 3, 1}, {1, 1, 1});
  const Tensor b = ft({1, 6}, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}), h0 = ft({1, 1, 1}, {0.5f});
  const double z = sig(0.5 + 0.5 + 0.1 + 0.4), rr = sig(-1 + 0.5 + 0.2 + 0.5);
  for (int lbr : {0, 1}) {
    ir::Node n = rnn_node("GRU", 6, 2, 1);
    n.set_attr_int("linear_before_reset", lbr);
    auto out = run_kernel(n, 14, {x, w, r, b, Tensor(), h0});
    // lbr 0: tanh(2 + (r*h0)*1 + 0.6 + 0.3); lbr 1: tanh(2 + r*(h0*1 + 0.6) + 0.3)
    const double cand = lbr ? std::tanh(2 + rr * (0.5 + 0.6) + 0.3) : std::tanh(2 + rr * 0.5 + 0.6 + 0.3);
    const double h = (1 - z) * cand + z * 0.5;
    expect_values(out[0], {h});
    expect_values(out[1], {h});
  }
}

TEST(KernelsRnn, LstmHandComputed) {
  // hidden 1, input 1, one step, x = 2, h0 = 0.5, c0 = -1; W (i o f c) = [1, -1, 0.5, 2], R = [0.1, 0.2, 0.3, 0.4],
  // no bias, P (i o f) = [0.5, -0.5, 0.25].
  const Tensor x = ft({1, 1, 1}, {2}), w = ft({1, 4, 1}, {1, -1, 0.5f, 2}), r = ft({1, 4, 1}, {0.1f, 0.2f, 0.3f, 0.4f});
  const Tensor h0 = ft({1, 1, 1}, {0.5f}), c0 = ft({1, 1, 1}, {-1}), p = ft({1, 3}, {0.5f, -0.5f, 0.25f});
  const double i = sig(2 + 0.05 + 0.5 * -1), f = sig(1 + 0.15 + 0.25 * -1), c = std::tanh(4 + 0.2);
  const double C = f * -1 + i * c, o = sig(-2 + 0.1 + -0.5 * C), H = o * std::tanh(C);
  ir::Node n = rnn_node("LSTM", 8, 3, 1);
  auto out = run_kernel(n, 14, {x, w, r, Tensor(), Tensor(), h0, c0, p});
  expect_values(out[0], {H});
  expect_values(out[1], {H});
  expect_values(out[2], {C});
  // input_forget: f = 1 - i.
  n.set_attr_int("input_forget", 1);
  out = run_kernel(n, 14, {x, w, r, Tensor(), Tensor(), h0, c0, p});
  const double C2 = (1 - i) * -1 + i * c, o2 = sig(-2 + 0.1 + -0.5 * C2);
  expect_values(out[2], {C2});
  expect_values(out[1], {o2 * std::tanh(C2)});
  // clip 0.5 bounds every pre-activation (not the cell state).
  ir::Node nc = rnn_node("LSTM", 8, 3, 1);
  nc.set_attr_float("clip", 0.5f);
  out = run_kernel(nc, 14, {x, w, r, Tensor(), Tensor(), h0, c0, p});
  const double ci = sig(0.5), cf = sig(0.5), cg = std::tanh(0.5), CC = cf * -1 + ci * cg;
  const double co = sig(std::max(-0.5, -2 + 0.1 + -0.5 * CC));
  expect_values(out[2], {CC});
  expect_values(out[1], {co * std::tanh(CC)});
}

TEST(KernelsRnn, SequenceLensAndLayout) {
  // RNN with W = 1, R = 0, Affine(alpha 1, beta 0): h_t = x_t. Batch 1 has length 1 of 3.
  ir::Node n = rnn_node("RNN", 5, 2, 1);
  set_strings(n, "activations", {"Affine"});
  set_floats(n, "activation_alpha", {1});
  set_floats(n, "activation_beta", {0});
  n.set_attr_string("direction", "bidirectional");
  const Tensor w = ft({2, 1, 1}, {1, 1}), r = ft({2, 1, 1}, {0, 0});
  const Tensor lens = Tensor::from_vector(DType::Int32, {2}, std::vector<int32_t>{3, 1});
  // X [seq 3, batch 2, 1]: batch 0 = 1 2 3, batch 1 = 4 (5 6 past its length).
  auto out = run_kernel(n, 14, {ft({3, 2, 1}, {1, 4, 2, 5, 3, 6}), w, r, Tensor(), lens});
  // Y [3, 2, 2, 1]: (t, dir, b); both directions give x_t for valid steps, 0 past the length.
  expect_values(out[0], {1, 4, 1, 4, 2, 0, 2, 0, 3, 0, 3, 0});
  // Y_h [2, 2, 1]: forward = last valid x, reverse = x_0.
  expect_values(out[1], {3, 4, 1, 4});
  // layout 1: X [batch, seq, 1], Y [batch, seq, dirs, 1], Y_h [batch, dirs, 1].
  n.set_attr_int("layout", 1);
  out = run_kernel(n, 14, {ft({2, 3, 1}, {1, 2, 3, 4, 5, 6}), w, r, Tensor(), lens});
  EXPECT_EQ(shape_str(out[0].shape()), "[2,3,2,1]");
  expect_values(out[0], {1, 1, 2, 2, 3, 3, 4, 4, 0, 0, 0, 0});
  expect_values(out[1], {3, 1, 4, 4});
  // A length of 0 gives zeros in Y and Y_h, whatever initial_h is (as onnxruntime).
  ir::Node z = rnn_node("RNN", 6, 2, 1);
  auto oz = run_kernel(z, 14, {ft({2, 1, 1}, {1, 2}), ft({1, 1, 1}, {1}), ft({1, 1, 1}, {1}), Tensor(),
                               Tensor::from_vector(DType::Int32, {1}, std::vector<int32_t>{0}), ft({1, 1, 1}, {0.7f})});
  expect_values(oz[0], {0, 0});
  expect_values(oz[1], {0});
}

TEST(KernelsRnn, OptionalOutputs) {
  ir::Node n = rnn_node("LSTM", 3, 3, 2);
  n.outputs = {"", "", "c"};
  std::mt19937 rng(7);
  auto out = run_kernel(n, 14, {random_float({2, 1, 3}, rng), random_float({1, 8, 3}, rng), random_float({1, 8, 2}, rng)});
  EXPECT_TRUE(out[0].empty());
  EXPECT_TRUE(out[1].empty());
  EXPECT_EQ(shape_str(out[2].shape()), "[1,1,2]");
}

TEST(KernelsRnn, Errors) {
  std::mt19937 rng(3);
  const Tensor x = random_float({2, 1, 3}, rng), w = random_float({1, 8, 3}, rng), r = random_float({1, 8, 2}, rng);
  auto err = [](ir::Node n, int opset, const std::vector<Tensor>& in) { return kernel_error(n, opset, in); };
  ir::Node n = rnn_node("LSTM", 3, 1, 2);
  set_strings(n, "activations", {"Sigmoid", "Tanh", "Swish"});
  std::string e = err(n, 14, {x, w, r});
  EXPECT_NE(e.find("unknown activation 'Swish'"), std::string::npos) << e;
  EXPECT_NE(e.find("t_LSTM"), std::string::npos) << e;
  n = rnn_node("LSTM", 3, 1, 2);
  n.set_attr_int("layout", 1);
  EXPECT_NE(err(n, 7, {x, w, r}).find("'layout' needs opset 14"), std::string::npos);
  n = rnn_node("LSTM", 3, 1, 3);
  EXPECT_NE(err(n, 14, {x, w, r}).find("hidden_size 3 does not match"), std::string::npos);
  n = rnn_node("GRU", 3, 1, 2);
  EXPECT_NE(err(n, 14, {x, w, r}).find("R must have shape [1, 3*hidden, hidden]"), std::string::npos);
  n = rnn_node("LSTM", 5, 1, 2);
  e = err(n, 14, {x, w, r, Tensor(), Tensor::from_vector(DType::Int32, {1}, std::vector<int32_t>{3})});
  EXPECT_NE(e.find("sequence_lens[0] = 3 is outside [0, 2]"), std::string::npos) << e;
  n = rnn_node("RNN", 3, 1, 2);
  n.set_attr_string("direction", "sideways");
  EXPECT_NE(err(n, 14, {}).find("'direction' must be forward, reverse or bidirectional"), std::string::npos);
  n = rnn_node("RNN", 3, 1, 2);
  set_floats(n, "activation_alpha", {1, 2});
  EXPECT_NE(err(n, 14, {}).find("activation_alpha/activation_beta list 2/0 values"), std::string::npos);
  n = rnn_node("GRU", 3, 1, 2);
  n.set_attr_int("input_forget", 1);
  EXPECT_NE(err(n, 14, {}).find("'input_forget' is LSTM's"), std::string::npos);
}

// ---------------------------------------------------------------------------- GEMM path vs naive reference
namespace {

struct Case {
  ir::Node node;
  std::vector<Tensor> in;
};

// wide: batch 4-9 and hidden 19 or 37 (the packed recurrence's 4-row blocks, row tails and several column
// panels of 64, the last one partial) with the default activations (unbounded ones such as Affine gates grow
// the state, and float rounding with it, over the steps), else batch 1-3 and hidden 3 or 7.
Case random_case(std::mt19937& rng, const std::string& op, DType dt, bool wide = false) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int G = op == "RNN" ? 1 : op == "GRU" ? 3 : 4, n_act = op == "RNN" ? 1 : op == "GRU" ? 2 : 3;
  const int64_t S = pick(1, 7), N = wide ? pick(4, 9) : pick(1, 3), I = 5;
  const int64_t H = wide ? (pick(0, 1) ? 19 : 37) : pick(0, 1) ? 3 : 7;
  const int dir = pick(0, 2), nd = dir == 2 ? 2 : 1, layout = pick(0, 1);
  const bool lstm = op == "LSTM";
  Case c{make_node(op, lstm ? 8 : 6, lstm ? 3 : 2), {}};
  ir::Node& n = c.node;
  if (pick(0, 1)) n.set_attr_int("hidden_size", H);
  n.set_attr_string("direction", dir == 0 ? "forward" : dir == 1 ? "reverse" : "bidirectional");
  if (layout || pick(0, 1)) n.set_attr_int("layout", layout);
  if (pick(0, 2) == 0) n.set_attr_float("clip", 0.3f + static_cast<float>(pick(0, 10)) / 10.0f);
  if (lstm && pick(0, 2) == 0) n.set_attr_int("input_forget", 1);
  if (op == "GRU") n.set_attr_int("linear_before_reset", pick(0, 1));
  if (!wide && pick(0, 2) == 0) {  // random activations, alpha/beta given for some of them
    static const char* kNames[] = {"Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
                                   "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"};
    std::vector<std::string> names;
    for (int k = 0; k < n_act * nd; ++k) names.push_back(kNames[pick(0, 10)]);
    set_strings(n, "activations", names);
    std::vector<float> al, be;
    for (int k = 0; k < pick(0, 4); ++k) al.push_back(0.1f * static_cast<float>(pick(1, 15)));
    for (int k = 0; k < pick(0, 2); ++k) be.push_back(0.1f * static_cast<float>(pick(-5, 5)));
    // Only as many as the activations take (the kernel refuses extra values).
    int takes_a = 0, takes_b = 0;
    for (const auto& s : names) {
      takes_a += s == "Affine" || s == "LeakyRelu" || s == "ThresholdedRelu" || s == "ScaledTanh" || s == "HardSigmoid" || s == "Elu";
      takes_b += s == "Affine" || s == "ScaledTanh" || s == "HardSigmoid";
    }
    al.resize(std::min<size_t>(al.size(), static_cast<size_t>(takes_a)));
    be.resize(std::min<size_t>(be.size(), static_cast<size_t>(takes_b)));
    if (!al.empty()) set_floats(n, "activation_alpha", al);
    if (!be.empty()) set_floats(n, "activation_beta", be);
  }
  auto rnd = [&](Shape s, float scale) { return random_float(s, rng, -scale, scale).cast(dt); };
  const Shape st = layout ? Shape{N, nd, H} : Shape{nd, N, H};
  c.in = {layout ? rnd({N, S, I}, 1.5f) : rnd({S, N, I}, 1.5f), rnd({nd, G * H, I}, 0.8f), rnd({nd, G * H, H}, 0.8f),
          pick(0, 3) ? rnd({nd, 2 * G * H}, 0.5f) : Tensor(), Tensor(), pick(0, 1) ? rnd(st, 1.0f) : Tensor()};
  if (pick(0, 1)) {
    std::vector<int32_t> lens;
    for (int64_t b = 0; b < N; ++b) lens.push_back(pick(0, 7) == 0 ? 0 : pick(0, 2) ? pick(1, static_cast<int>(S)) : static_cast<int32_t>(S));
    c.in[4] = Tensor::from_vector(DType::Int32, {N}, lens);
  }
  if (lstm) {
    c.in.push_back(pick(0, 1) ? rnd(st, 1.0f) : Tensor());
    c.in.push_back(pick(0, 1) ? rnd({nd, 3 * H}, 0.7f) : Tensor());
  }
  return c;
}

bool all_finite(const Tensor& t) {
  for (double v : t.to_doubles())
    if (!std::isfinite(v)) return false;
  return true;
}

exec::RnnOutputs reference_of(const Case& c, int opset) {
  const std::string& op = c.node.op_type;
  const exec::RnnKind kind = op == "RNN" ? exec::RnnKind::Rnn : op == "GRU" ? exec::RnnKind::Gru : exec::RnnKind::Lstm;
  const exec::RnnAttrs a = exec::parse_rnn_attrs(exec::KernelInit{c.node, opset}, kind);
  exec::RnnInputs in;
  auto p = [&](size_t i) -> const Tensor* { return i < c.in.size() && !c.in[i].empty() ? &c.in[i] : nullptr; };
  in.x = p(0), in.w = p(1), in.r = p(2), in.b = p(3), in.seq_lens = p(4), in.init_h = p(5), in.init_c = p(6), in.p = p(7);
  return exec::rnn_reference(a, exec::check_rnn_inputs(c.node, a, in), in);
}

}  // namespace

TEST(KernelsRnn, GemmPathMatchesReferenceOnRandomOddShapes) {
  ThreadGuard guard;
  std::mt19937 rng(20260714);
  int with_lens = 0, bidir = 0, layout1 = 0;
  for (int it = 0; it < 180; ++it) {
    const std::string op = it % 3 == 0 ? "RNN" : it % 3 == 1 ? "GRU" : "LSTM";
    const DType dt = it % 10 == 9 ? DType::Double : DType::Float;
    const int opset = 14 + it % 8;
    // Unbounded activations (Affine, Relu, Softplus ...) can blow the state up to inf over the steps, where the
    // two paths give inf and nan in different places: such a draw is replaced.
    Case c = random_case(rng, op, dt);
    exec::RnnOutputs want = reference_of(c, opset);
    for (int redraw = 0; redraw < 20 && !all_finite(want.y); ++redraw) {
      c = random_case(rng, op, dt);
      want = reference_of(c, opset);
    }
    ASSERT_TRUE(all_finite(want.y));
    SCOPED_TRACE("case " + std::to_string(it) + " " + op);
    set_num_threads(1 + it % 2);
    const auto got = run_kernel(c.node, opset, c.in);
    const double tol = dt == DType::Double ? 1e-12 : 2e-5;
    expect_close(got[0], want.y, tol);
    expect_close(got[1], want.y_h, tol);
    if (op == "LSTM") expect_close(got[2], want.y_c, tol);
    with_lens += !c.in[4].empty();
    bidir += c.node.attr_string("direction", "") == "bidirectional";
    layout1 += c.node.attr_int("layout", 0) == 1;
  }
  // The draw covers each feature many times.
  EXPECT_GT(with_lens, 40);
  EXPECT_GT(bidir, 30);
  EXPECT_GT(layout1, 40);
}

TEST(KernelsRnn, PackedRecurrenceMatchesReferenceAtWideShapes) {
  ThreadGuard guard;
  std::mt19937 rng(20261129);
  for (int it = 0; it < 60; ++it) {
    const std::string op = it % 3 == 0 ? "RNN" : it % 3 == 1 ? "GRU" : "LSTM";
    Case c = random_case(rng, op, DType::Float, true);
    exec::RnnOutputs want = reference_of(c, 14);
    for (int redraw = 0; redraw < 20 && !all_finite(want.y); ++redraw) {
      c = random_case(rng, op, DType::Float, true);
      want = reference_of(c, 14);
    }
    ASSERT_TRUE(all_finite(want.y));
    SCOPED_TRACE("case " + std::to_string(it) + " " + op + " X " + shape_str(c.in[0].shape()));
    set_num_threads(1 + it % 2);
    const auto got = run_kernel(c.node, 14, c.in);
    expect_close(got[0], want.y, 2e-5);
    expect_close(got[1], want.y_h, 2e-5);
    if (op == "LSTM") expect_close(got[2], want.y_c, 2e-5);
  }
}

// The packed product itself, every version this CPU has, against the per-value double reference.
TEST(KernelsRnn, PackedProductMatchesReference) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  using Isa = exec::PackedRt::Isa;
  std::vector<Isa> isas;
  for (Isa i : {Isa::Avx512, Isa::Avx2, Isa::Baseline})
    if (static_cast<int>(i) >= static_cast<int>(exec::PackedRt::best_isa())) isas.push_back(i);
  for (int64_t K : {1, 3, 37, 128})
    for (int64_t n : {1, 15, 16, 63, 64, 65, 130, 200})
      for (int64_t M : {1, 2, 3, 4, 5, 8, 9}) {
        const int64_t lda = K + 2, ldc = n + 3;  // strided rows
        std::vector<float> A(static_cast<size_t>(M * lda)), R(static_cast<size_t>(n * K));
        for (float& v : A) v = u(rng);
        for (float& v : R) v = u(rng);
        std::vector<float> want(static_cast<size_t>(M * ldc), -7.0f);
        exec::gemm_nt_reference(A.data(), lda, M, R.data(), n, K, want.data(), ldc);
        const exec::PackedRt packed(R.data(), n, K);
        for (Isa isa : isas) {
          std::vector<float> got(static_cast<size_t>(M * ldc), -7.0f);  // the gaps between rows stay untouched
          packed.multiply(A.data(), lda, M, got.data(), ldc, isa);
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_NEAR(got[i], want[i], 1e-5 * (1.0 + static_cast<double>(K)))
                << exec::PackedRt::isa_name(isa) << " M " << M << " n " << n << " K " << K << " at " << i;
        }
      }
  EXPECT_EQ(isas.size(), 3u) << "this CPU runs only the versions from " << exec::PackedRt::isa_name(isas.front());
}

TEST(KernelsRnn, Opset7MatchesReference) {
  std::mt19937 rng(11);
  for (const char* op : {"RNN", "GRU", "LSTM"}) {
    Case c = random_case(rng, op, DType::Float);
    while (c.node.attr_int("layout", 0) != 0) c = random_case(rng, op, DType::Float);  // opset 7 has no layout
    c.node.remove_attr("layout");
    const auto got = run_kernel(c.node, 7, c.in);
    expect_close(got[0], reference_of(c, 7).y, 2e-5);
  }
}
