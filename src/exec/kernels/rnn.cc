// RNN, GRU, LSTM (opsets 7, 14): attribute parsing, input checks and the optimised kernel (see rnn.h for the
// semantics). Per direction: the input projection X·Wᵀ of every time step is one GEMM ([seq*batch, input] by
// [gates*hidden, input]ᵀ, the rows taken in either layout), then each step is one product H·Rᵀ for the whole
// batch with R packed once (rnn_gemm.h; GRU without linear_before_reset: one for the z/r gates, one for
// (r⊙H)·Rhᵀ) and the gate arithmetic per row.
// The naive reference is rnn_ref.cc.
#include "exec/kernels/rnn.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>
#include <mutex>
#include <utility>

#include "core/log.h"
#include "exec/kernels/rnn_gemm.h"
#include "exec/kernels/sgemm.h"
#include "exec/kernels/strided.h"
#include "exec/kernels/vmath.h"

namespace oq::exec {

// ---------------------------------------------------------------------------------------------- attributes
namespace {

struct ActSpec {
  const char* name;
  RnnActKind kind;
  bool takes_alpha, takes_beta;
  float alpha, beta;  // defaults: those of the ONNX operator of the same name
};
constexpr ActSpec kActs[] = {
    {"relu", RnnActKind::Relu, false, false, 0, 0},
    {"tanh", RnnActKind::Tanh, false, false, 0, 0},
    {"sigmoid", RnnActKind::Sigmoid, false, false, 0, 0},
    {"affine", RnnActKind::Affine, true, true, 1.0f, 0.0f},
    {"leakyrelu", RnnActKind::LeakyRelu, true, false, 0.01f, 0},
    {"thresholdedrelu", RnnActKind::ThresholdedRelu, true, false, 1.0f, 0},
    {"scaledtanh", RnnActKind::ScaledTanh, true, true, 1.0f, 1.0f},
    {"hardsigmoid", RnnActKind::HardSigmoid, true, true, 0.2f, 0.5f},
    {"elu", RnnActKind::Elu, true, false, 1.0f, 0},
    {"softsign", RnnActKind::Softsign, false, false, 0, 0},
    {"softplus", RnnActKind::Softplus, false, false, 0, 0},
};

const char* kind_name(RnnKind k) { return k == RnnKind::Rnn ? "RNN" : k == RnnKind::Gru ? "GRU" : "LSTM"; }

}  // namespace

RnnAttrs parse_rnn_attrs(const KernelInit& ki, RnnKind kind) {
  const ir::Node& node = ki.node;
  RnnAttrs a;
  a.kind = kind;
  const size_t max_in = kind == RnnKind::Lstm ? 8 : 6, max_out = kind == RnnKind::Lstm ? 3 : 2;
  if (node.inputs.size() > max_in) kfail(node, "{} takes at most {} inputs, got {}", kind_name(kind), max_in, node.inputs.size());
  if (node.outputs.size() > max_out)
    kfail(node, "{} has at most {} outputs, got {}", kind_name(kind), max_out, node.outputs.size());

  const std::string dir = node.attr_string("direction", "forward");
  if (dir == "forward" || dir == "reverse") {
    a.num_dirs = 1;
    a.reverse = dir == "reverse";
  } else if (dir == "bidirectional") {
    a.num_dirs = 2;
  } else {
    kfail(node, "attribute 'direction' must be forward, reverse or bidirectional, got '{}'", dir);
  }
  if (node.has_attr("hidden_size")) {
    a.hidden_size = node.attr_int("hidden_size", 0);
    if (a.hidden_size <= 0) kfail(node, "attribute 'hidden_size' must be positive, got {}", a.hidden_size);
  }
  if (node.has_attr("clip")) {
    a.clip = node.attr_float("clip", 0);
    if (!(a.clip > 0)) kfail(node, "attribute 'clip' must be positive, got {}", a.clip);
  }
  if (node.has_attr("layout")) {
    if (ki.opset < 14) kfail(node, "attribute 'layout' needs opset 14 (the model imports opset {})", ki.opset);
    const int64_t l = node.attr_int("layout", 0);
    if (l != 0 && l != 1) kfail(node, "attribute 'layout' must be 0 or 1, got {}", l);
    a.layout = static_cast<int>(l);
  }
  if (node.has_attr("input_forget")) {
    if (kind != RnnKind::Lstm) kfail(node, "attribute 'input_forget' is LSTM's");
    const int64_t v = node.attr_int("input_forget", 0);
    if (v != 0 && v != 1) kfail(node, "attribute 'input_forget' must be 0 or 1, got {}", v);
    a.input_forget = v == 1;
  }
  if (node.has_attr("linear_before_reset")) {
    if (kind != RnnKind::Gru) kfail(node, "attribute 'linear_before_reset' is GRU's");
    const int64_t v = node.attr_int("linear_before_reset", 0);
    if (v != 0 && v != 1) kfail(node, "attribute 'linear_before_reset' must be 0 or 1, got {}", v);
    a.linear_before_reset = v == 1;
  }

  // Activations: n per direction (or n given once for both directions of a bidirectional node).
  const int n = a.acts_per_dir();
  std::vector<std::string> names;
  if (const ir::Attribute* at = node.attr("activations")) {
    if (at->type != ir::AttrType::Strings) kfail(node, "attribute 'activations' must be a list of strings");
    names = at->strings;
    if (names.size() == static_cast<size_t>(n) && a.num_dirs == 2) names.insert(names.end(), at->strings.begin(), at->strings.end());
    if (names.size() != static_cast<size_t>(n * a.num_dirs))
      kfail(node, "attribute 'activations' must list {} functions ({} per direction), got {}", n * a.num_dirs, n,
            at->strings.size());
  } else {
    static const char* const kDefaults[3][3] = {{"Tanh"}, {"Sigmoid", "Tanh"}, {"Sigmoid", "Tanh", "Tanh"}};
    for (int d = 0; d < a.num_dirs; ++d)
      for (int k = 0; k < n; ++k) names.push_back(kDefaults[n - 1][k]);
  }
  const std::vector<float> alphas = node.attr_floats("activation_alpha"), betas = node.attr_floats("activation_beta");
  size_t ia = 0, ib = 0;
  for (const std::string& nm : names) {
    std::string low(nm);
    std::transform(low.begin(), low.end(), low.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const ActSpec* spec = nullptr;
    for (const ActSpec& s : kActs)
      if (low == s.name) spec = &s;
    if (!spec)
      kfail(node, "unknown activation '{}' (Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, "
                  "HardSigmoid, Elu, Softsign, Softplus)", nm);
    RnnAct act{spec->kind, spec->alpha, spec->beta};
    if (spec->takes_alpha && ia < alphas.size()) act.alpha = alphas[ia++];
    if (spec->takes_beta && ib < betas.size()) act.beta = betas[ib++];
    a.acts.push_back(act);
  }
  if (ia < alphas.size() || ib < betas.size())
    kfail(node, "activation_alpha/activation_beta list {}/{} values, the activations take {}/{}", alphas.size(),
          betas.size(), ia, ib);
  return a;
}

// ------------------------------------------------------------------------------------------------- checks
RnnDims check_rnn_inputs(const ir::Node& node, const RnnAttrs& a, const RnnInputs& in) {
  const Tensor& x = *in.x;
  if (x.dtype() != DType::Float && x.dtype() != DType::Double)
    kfail(node, "X must be float or double, got {}", dtype_name(x.dtype()));
  if (x.rank() != 3) kfail(node, "X must have rank 3, got shape {}", shape_str(x.shape()));
  auto same_type = [&](const Tensor* t, const char* what) {
    if (t && t->dtype() != x.dtype())
      kfail(node, "{} must have X's type {}, got {}", what, dtype_name(x.dtype()), dtype_name(t->dtype()));
  };
  using Named = std::pair<const Tensor*, const char*>;
  for (const Named& t : {Named{in.w, "W"}, Named{in.r, "R"}, Named{in.b, "B"}, Named{in.init_h, "initial_h"},
                         Named{in.init_c, "initial_c"}, Named{in.p, "P"}})
    same_type(t.first, t.second);
  RnnDims d;
  d.seq = x.dim(a.layout ? 1 : 0);
  d.batch = x.dim(a.layout ? 0 : 1);
  d.input = x.dim(2);
  const int64_t nd = a.num_dirs, g = a.gates();
  const Tensor &w = *in.w, &r = *in.r;
  if (r.rank() != 3 || r.dim(0) != nd || r.dim(1) != g * r.dim(2))
    kfail(node, "R must have shape [{}, {}*hidden, hidden], got {}", nd, g, shape_str(r.shape()));
  d.hidden = r.dim(2);
  if (a.hidden_size >= 0 && a.hidden_size != d.hidden)
    kfail(node, "attribute hidden_size {} does not match R's shape {}", a.hidden_size, shape_str(r.shape()));
  const int64_t gh = g * d.hidden;
  if (w.rank() != 3 || w.dim(0) != nd || w.dim(1) != gh || w.dim(2) != d.input)
    kfail(node, "W must have shape [{}, {}, {}], got {}", nd, gh, d.input, shape_str(w.shape()));
  if (in.b && in.b->shape() != Shape{nd, 2 * gh})
    kfail(node, "B must have shape [{}, {}], got {}", nd, 2 * gh, shape_str(in.b->shape()));
  const Shape state = a.layout ? Shape{d.batch, nd, d.hidden} : Shape{nd, d.batch, d.hidden};
  if (in.init_h && in.init_h->shape() != state)
    kfail(node, "initial_h must have shape {}, got {}", shape_str(state), shape_str(in.init_h->shape()));
  if (in.init_c && in.init_c->shape() != state)
    kfail(node, "initial_c must have shape {}, got {}", shape_str(state), shape_str(in.init_c->shape()));
  if (in.p && in.p->shape() != Shape{nd, 3 * d.hidden})
    kfail(node, "P must have shape [{}, {}], got {}", nd, 3 * d.hidden, shape_str(in.p->shape()));
  d.lens.assign(static_cast<size_t>(d.batch), d.seq);
  if (in.seq_lens) {
    const Tensor& sl = *in.seq_lens;
    if (sl.dtype() != DType::Int32) kfail(node, "sequence_lens must be int32, got {}", dtype_name(sl.dtype()));
    if (sl.shape() != Shape{d.batch}) kfail(node, "sequence_lens must have shape [{}], got {}", d.batch, shape_str(sl.shape()));
    for (int64_t b = 0; b < d.batch; ++b) {
      const int64_t v = sl.data<int32_t>()[b];
      if (v < 0 || v > d.seq) kfail(node, "sequence_lens[{}] = {} is outside [0, {}]", b, v, d.seq);
      d.lens[static_cast<size_t>(b)] = v;
    }
  }
  return d;
}

// ----------------------------------------------------------------------------------------- optimised path
namespace {

// C[M,N] = A[M,K] · B[N,K]ᵀ.
void gemm_nt(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C) {
  if (sgemm_raw(false, true, M, N, K, 1.0f, A, B, 0.0f, C) != dnnl_success)
    fail(ErrorKind::Runtime, "oneDNN sgemm failed in the RNN/GRU/LSTM kernel (M={} N={} K={})", M, N, K);
}
void gemm_nt(int64_t M, int64_t N, int64_t K, const double* A, const double* B, double* C) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) s += A[m * K + k] * B[n * K + k];
      C[m * N + n] = s;
    }
}

template <typename T>
inline T act_one(const RnnAct& a, T x) {
  switch (a.kind) {
    case RnnActKind::Relu: return x > T(0) ? x : T(0);
    case RnnActKind::Tanh: return std::tanh(x);
    case RnnActKind::Sigmoid: return T(1) / (T(1) + std::exp(-x));
    case RnnActKind::Affine: return T(a.alpha) * x + T(a.beta);
    case RnnActKind::LeakyRelu: return x >= T(0) ? x : T(a.alpha) * x;
    case RnnActKind::ThresholdedRelu: return x > T(a.alpha) ? x : T(0);
    case RnnActKind::ScaledTanh: return T(a.alpha) * std::tanh(T(a.beta) * x);
    case RnnActKind::HardSigmoid: return std::min(T(1), std::max(T(0), T(a.alpha) * x + T(a.beta)));
    case RnnActKind::Elu: return x >= T(0) ? x : T(a.alpha) * (std::exp(x) - T(1));
    case RnnActKind::Softsign: return x / (T(1) + std::abs(x));
    case RnnActKind::Softplus: return x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  }
  return x;
}

// act_one over n values (out may not alias in): float32 Sigmoid and Tanh through the vectorised math
// (exec/kernels/vmath.h), the rest element by element.
template <typename T>
void act_n(const RnnAct& a, const T* in, T* out, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (a.kind == RnnActKind::Sigmoid) return vmath::sigmoid(in, out, n);
    if (a.kind == RnnActKind::Tanh) return vmath::tanh(in, out, n);
  }
  for (int64_t i = 0; i < n; ++i) out[i] = act_one(a, in[i]);
}

template <typename T>
struct Clip {
  T bound;  // 0: no clip
  T cl(T v) const { return bound > T(0) ? std::min(bound, std::max(-bound, v)) : v; }
};

// One batch row of a GRU step: gates z, r, h; hh = (r ⊙ H)·Rhᵀ already computed (without linear_before_reset:
// z then holds the activated z gate) or null (with it: r ⊙ (H·Rhᵀ + Rbh)).
template <typename T>
void gru_row(const RnnAct& f, const RnnAct& g, const Clip<T>& st, const T* xg, const T* rg, const T* hh,
             const T* rbh, T* z, int64_t H, T* pre, T* act, T* hb) {
  if (!hh) {
    for (int64_t k = 0; k < 2 * H; ++k) pre[k] = st.cl(xg[k] + rg[k]);
    act_n(f, pre, act, 2 * H);  // z, r
    for (int64_t j = 0; j < H; ++j) pre[2 * H + j] = st.cl(xg[2 * H + j] + act[H + j] * (rg[2 * H + j] + rbh[j]));
    std::copy_n(act, H, z);
  } else {
    for (int64_t j = 0; j < H; ++j) pre[2 * H + j] = st.cl(xg[2 * H + j] + hh[j]);
  }
  act_n(g, pre + 2 * H, act + 2 * H, H);
  for (int64_t j = 0; j < H; ++j) hb[j] = (T(1) - z[j]) * act[2 * H + j] + z[j] * hb[j];
}

// Clips v[0..n) to [-bound, bound] (no-op when bound is 0, i.e. not given).
template <typename T>
void clip_n(const Clip<T>& st, T* v, int64_t n) {
  if (st.bound > T(0))
    for (int64_t k = 0; k < n; ++k) v[k] = std::min(st.bound, std::max(-st.bound, v[k]));
}

// One batch row of an LSTM step, gates i, o, f, c; peepholes i, o, f. cb: the cell state, updated. Without
// peepholes (and input_forget) the i, o, f pre-activations are final before the cell update and take f in one
// call over 3H values.
template <typename T>
void lstm_row(const RnnAct& f, const RnnAct& g, const RnnAct& h_act, const Clip<T>& st, bool input_forget,
              const T* xg, const T* rg, const T* P, int64_t H, T* pre, T* act, T* cb, T* hb) {
  T *ip = pre, *op = pre + H, *fp = pre + 2 * H, *cp = pre + 3 * H;
  T *ia = act, *oa = act + H, *fa = act + 2 * H, *ca = act + 3 * H;
  for (int64_t k = 0; k < 4 * H; ++k) pre[k] = xg[k] + rg[k];
  if (P)
    for (int64_t j = 0; j < H; ++j) ip[j] += P[j] * cb[j], fp[j] += P[2 * H + j] * cb[j];
  const bool o_ready = !P;  // o's peephole needs the updated cell
  clip_n(st, pre, 4 * H);   // with peepholes, o is computed again after the cell update
  if (o_ready && !input_forget) {
    act_n(f, pre, act, 3 * H);  // i, o, f
  } else {
    act_n(f, ip, ia, H);
    if (input_forget) for (int64_t j = 0; j < H; ++j) fa[j] = T(1) - ia[j];
    else act_n(f, fp, fa, H);
  }
  act_n(g, cp, ca, H);
  for (int64_t j = 0; j < H; ++j) cb[j] = fa[j] * cb[j] + ia[j] * ca[j];
  if (!o_ready) {
    for (int64_t j = 0; j < H; ++j) op[j] = xg[H + j] + rg[H + j] + P[H + j] * cb[j];
    clip_n(st, op, H);
    act_n(f, op, oa, H);
  } else if (input_forget) {
    act_n(f, op, oa, H);
  }
  act_n(h_act, cb, ca, H);
  for (int64_t j = 0; j < H; ++j) hb[j] = oa[j] * ca[j];
}

template <typename T>
void run_direction(const RnnAttrs& a, const RnnDims& d, const RnnInputs& in, int dir, bool rev, const RnnPacks* packs,
                   RnnOutputs& o) {
  const int64_t S = d.seq, N = d.batch, I = d.input, H = d.hidden, G = a.gates(), GH = G * H, nd = a.num_dirs;
  const T* W = in.w->data<T>() + dir * GH * I;
  const T* R = in.r->data<T>() + dir * GH * H;
  const T* Bv = in.b ? in.b->data<T>() + dir * 2 * GH : nullptr;
  const T* P = in.p ? in.p->data<T>() + dir * 3 * H : nullptr;
  const bool gru = a.kind == RnnKind::Gru, lstm = a.kind == RnnKind::Lstm, lbr = a.linear_before_reset;
  const Clip<T> st{static_cast<T>(a.clip)};
  const RnnAct& f = a.act(dir, 0);
  const RnnAct* g = a.acts_per_dir() > 1 ? &a.act(dir, 1) : nullptr;
  const RnnAct* h_act = a.acts_per_dir() > 2 ? &a.act(dir, 2) : nullptr;

  // Biases folded into the projection: Wb + Rb for every gate, except GRU's h gate with linear_before_reset,
  // whose Rbh stays inside r ⊙ (...).
  std::vector<T> bias(static_cast<size_t>(GH), T(0)), rbh(static_cast<size_t>(H), T(0));
  if (Bv)
    for (int64_t k = 0; k < GH; ++k) {
      const bool inside = gru && lbr && k >= 2 * H;
      bias[k] = inside ? Bv[k] : Bv[k] + Bv[GH + k];
      if (inside) rbh[k - 2 * H] = Bv[GH + k];
    }
  // xw[row] = x[row] · Wᵀ + bias for every (step, batch) row, rows in X's own order.
  Tensor xw_t = Tensor::uninitialized(in.x->dtype(), {S * N * GH});  // gemm_nt writes all of it
  T* xw = xw_t.data<T>();
  gemm_nt(S * N, GH, I, in.x->data<T>(), W, xw);
  for (int64_t row = 0; row < S * N; ++row)
    for (int64_t k = 0; k < GH; ++k) xw[row * GH + k] += bias[k];

  auto state_at = [&](int64_t b) { return a.layout ? (b * nd + dir) * H : (dir * N + b) * H; };
  std::vector<T> h(static_cast<size_t>(N * H), T(0)), c;
  if (in.init_h)
    for (int64_t b = 0; b < N; ++b) std::copy_n(in.init_h->data<T>() + state_at(b), H, h.data() + b * H);
  if (lstm) {
    c.assign(static_cast<size_t>(N * H), T(0));
    if (in.init_c)
      for (int64_t b = 0; b < N; ++b) std::copy_n(in.init_c->data<T>() + state_at(b), H, c.data() + b * H);
  }
  const int64_t rec_n = gru && !lbr ? 2 * H : GH;  // columns of the per-step H·Rᵀ
  // The per-step products: H·Rᵀ (rec_n columns), and GRU's (r ⊙ H)·Rhᵀ (which = 1); float through the packed R.
  auto recur = [&](int which, const T* A, T* C) {
    if constexpr (std::is_same_v<T, float>) {
      const PackedRt& p = which ? packs->rec_h[dir] : packs->rec[dir];
      p.multiply(A, H, N, C, p.cols());
    } else {
      gemm_nt(N, which ? H : rec_n, H, A, which ? R + 2 * H * H : R, C);
    }
  };
  std::vector<T> hr(static_cast<size_t>(N * rec_n)), rh, hh, z;
  if (gru && !lbr) {
    rh.assign(static_cast<size_t>(N * H), T(0));
    hh.resize(static_cast<size_t>(N * H));
  }
  if (gru) z.resize(static_cast<size_t>(N * H));
  std::vector<T> pre(static_cast<size_t>(GH)), act(static_cast<size_t>(GH));  // one row's gates
  const int64_t max_len = d.lens.empty() ? 0 : *std::max_element(d.lens.begin(), d.lens.end());
  T* Y = o.y.empty() ? nullptr : o.y.data<T>();
  auto x_row = [&](int64_t t, int64_t b) { return a.layout ? b * S + t : t * N + b; };
  auto y_at = [&](int64_t t, int64_t b) { return a.layout ? ((b * S + t) * nd + dir) * H : ((t * nd + dir) * N + b) * H; };

  for (int64_t s = 0; s < max_len; ++s) {
    recur(0, h.data(), hr.data());
    if (gru && !lbr) {  // z, r, then (r ⊙ H)·Rhᵀ
      for (int64_t b = 0; b < N; ++b) {
        if (s >= d.lens[b]) continue;
        const T* xg = xw + x_row(rev ? d.lens[b] - 1 - s : s, b) * GH;
        for (int64_t k = 0; k < 2 * H; ++k) pre[k] = st.cl(xg[k] + hr[b * rec_n + k]);
        act_n(f, pre.data(), z.data() + b * H, H);
        act_n(f, pre.data() + H, act.data(), H);
        for (int64_t j = 0; j < H; ++j) rh[b * H + j] = act[j] * h[b * H + j];
      }
      recur(1, rh.data(), hh.data());
    }
    for (int64_t b = 0; b < N; ++b) {
      if (s >= d.lens[b]) continue;
      const int64_t t = rev ? d.lens[b] - 1 - s : s;
      const T* xg = xw + x_row(t, b) * GH;
      const T* rg = hr.data() + b * rec_n;
      T* hb = h.data() + b * H;
      if (a.kind == RnnKind::Rnn) {
        for (int64_t j = 0; j < H; ++j) pre[j] = st.cl(xg[j] + rg[j]);
        act_n(f, pre.data(), hb, H);
      } else if (gru) {
        gru_row(f, *g, st, xg, rg, lbr ? nullptr : hh.data() + b * H, rbh.data(), z.data() + b * H, H, pre.data(),
                act.data(), hb);
      } else {
        lstm_row(f, *g, *h_act, st, a.input_forget, xg, rg, P, H, pre.data(), act.data(), c.data() + b * H, hb);
      }
      if (Y) std::copy_n(hb, H, Y + y_at(t, b));
    }
  }
  for (int64_t b = 0; b < N; ++b) {
    const bool none = d.lens[b] == 0;
    std::copy_n(h.data() + b * H, H, o.y_h.data<T>() + state_at(b));
    if (none) std::fill_n(o.y_h.data<T>() + state_at(b), H, T(0));
    if (lstm) {
      std::copy_n(c.data() + b * H, H, o.y_c.data<T>() + state_at(b));
      if (none) std::fill_n(o.y_c.data<T>() + state_at(b), H, T(0));
    }
  }
}

}  // namespace

RnnPacks pack_rnn_weights(const RnnAttrs& a, const Tensor& r) {
  RnnPacks p;
  const int64_t nd = r.dim(0), GH = r.dim(1), H = r.dim(2);
  const bool split = a.kind == RnnKind::Gru && !a.linear_before_reset;  // z, r apart from h
  for (int64_t dir = 0; dir < nd; ++dir) {
    const float* R = r.data<float>() + dir * GH * H;
    p.rec.emplace_back(R, split ? 2 * H : GH, H);
    p.rec_h.emplace_back(R + 2 * H * H, split ? H : 0, H);
  }
  return p;
}

std::shared_ptr<const RnnPacks> RnnPackCache::get(const RnnAttrs& a, const Tensor& r, bool* packed) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool fresh = !packs_ || src_.raw() != r.raw() || src_.shape() != r.shape();
  if (fresh) {
    packs_ = std::make_shared<const RnnPacks>(pack_rnn_weights(a, r));
    src_ = r;
  }
  if (packed) *packed = fresh;
  return packs_;
}

RnnOutputs rnn_compute(const RnnAttrs& a, const RnnDims& d, const RnnInputs& in, const RnnPacks* packs) {
  RnnPacks local;
  if (in.x->dtype() == DType::Float && !packs) {
    local = pack_rnn_weights(a, *in.r);
    packs = &local;
  }
  RnnOutputs o;
  const DType t = in.x->dtype();
  const int64_t nd = a.num_dirs;
  const Shape ys = a.layout ? Shape{d.batch, d.seq, nd, d.hidden} : Shape{d.seq, nd, d.batch, d.hidden};
  // Every step of every batch is written unless some sequence is shorter (Y is 0 past its length).
  const bool full = std::all_of(d.lens.begin(), d.lens.end(), [&](int64_t l) { return l == d.seq; });
  o.y = full ? Tensor::uninitialized(t, ys) : Tensor(t, ys);
  const Shape state = a.layout ? Shape{d.batch, nd, d.hidden} : Shape{nd, d.batch, d.hidden};
  o.y_h = Tensor(t, state);
  if (a.kind == RnnKind::Lstm) o.y_c = Tensor(t, state);
  for (int dir = 0; dir < a.num_dirs; ++dir) {
    const bool rev = a.num_dirs == 2 ? dir == 1 : a.reverse;
    if (t == DType::Float) run_direction<float>(a, d, in, dir, rev, packs, o);
    else run_direction<double>(a, d, in, dir, rev, packs, o);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------- the kernel
namespace {

template <RnnKind K>
std::unique_ptr<Kernel> make_rnn(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  RnnAttrs a = parse_rnn_attrs(ki, K);
  if (node.inputs.size() < 3) kfail(node, "{} needs inputs X, W and R", kind_name(K));
  auto cache = std::make_shared<RnnPackCache>();
  return fn_kernel([node, a, cache](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    RnnInputs ri;
    ri.x = &input_at(node, in, 0);
    ri.w = &input_at(node, in, 1);
    ri.r = &input_at(node, in, 2);
    ri.b = optional_input(in, 3);
    ri.seq_lens = optional_input(in, 4);
    ri.init_h = optional_input(in, 5);
    if (K == RnnKind::Lstm) {
      ri.init_c = optional_input(in, 6);
      ri.p = optional_input(in, 7);
    }
    const RnnDims d = check_rnn_inputs(node, a, ri);
    std::shared_ptr<const RnnPacks> packs;
    bool packed = false;
    if (ri.x->dtype() == DType::Float) packs = cache->get(a, *ri.r, &packed);
    if (packed)
      OQ_DEBUG("{} '{}': X {} hidden {}: recurrence over R packed once ({}, rnn_gemm.cc)", kind_name(K),
               ir::node_label(node), shape_str(ri.x->shape()), d.hidden, PackedRt::isa_name(PackedRt::best_isa()));
    RnnOutputs o = rnn_compute(a, d, ri, packs.get());
    Tensor* results[3] = {&o.y, &o.y_h, &o.y_c};
    for (size_t i = 0; i < out.size() && i < 3; ++i)
      if (!node.outputs[i].empty()) out[i] = std::move(*results[i]);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(RNN, kMinOpset, kMaxOpset, make_rnn<RnnKind::Rnn>);
OQ_REGISTER_KERNEL(GRU, kMinOpset, kMaxOpset, make_rnn<RnnKind::Gru>);
OQ_REGISTER_KERNEL(LSTM, kMinOpset, kMaxOpset, make_rnn<RnnKind::Lstm>);

}  // namespace oq::exec
