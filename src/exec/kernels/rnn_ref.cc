// Naive references of RNN, GRU and LSTM (rnn.h): every gate value of every (direction, batch, step, unit) is
// its own dot products over W and R, written as the spec's equations read, in double; no GEMM, no folding of
// biases. The optimised kernel (rnn.cc) is tested against these.
#include <algorithm>
#include <cmath>

#include "exec/kernels/rnn.h"

namespace oq::exec {

double rnn_activation(const RnnAct& a, double x) {
  const double al = a.alpha, be = a.beta;
  switch (a.kind) {
    case RnnActKind::Relu: return std::max(0.0, x);
    case RnnActKind::Tanh: return std::tanh(x);
    case RnnActKind::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case RnnActKind::Affine: return al * x + be;
    case RnnActKind::LeakyRelu: return x >= 0 ? x : al * x;
    case RnnActKind::ThresholdedRelu: return x > al ? x : 0.0;
    case RnnActKind::ScaledTanh: return al * std::tanh(be * x);
    case RnnActKind::HardSigmoid: return std::min(1.0, std::max(0.0, al * x + be));
    case RnnActKind::Elu: return x >= 0 ? x : al * (std::exp(x) - 1.0);
    case RnnActKind::Softsign: return x / (1.0 + std::fabs(x));
    case RnnActKind::Softplus: return std::log(1.0 + std::exp(x));
  }
  return x;
}

namespace {

// Element access in double, whatever the tensor's float type.
double at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::Double ? t.data<double>()[i] : static_cast<double>(t.data<float>()[i]);
}
void put(Tensor& t, int64_t i, double v) {
  if (t.dtype() == DType::Double) t.data<double>()[i] = v;
  else t.data<float>()[i] = static_cast<float>(v);
}

}  // namespace

RnnOutputs rnn_reference(const RnnAttrs& a, const RnnDims& d, const RnnInputs& in) {
  const int64_t S = d.seq, N = d.batch, I = d.input, H = d.hidden, nd = a.num_dirs, G = a.gates();
  const DType t = in.x->dtype();
  RnnOutputs o;
  // Zero-filled: Y past a batch's length stays 0.
  o.y = Tensor(t, a.layout ? Shape{N, S, nd, H} : Shape{S, nd, N, H});
  const Shape state = a.layout ? Shape{N, nd, H} : Shape{nd, N, H};
  o.y_h = Tensor(t, state);
  if (a.kind == RnnKind::Lstm) o.y_c = Tensor(t, state);
  auto x_at = [&](int64_t step, int64_t b, int64_t k) {
    return at(*in.x, a.layout ? (b * S + step) * I + k : (step * N + b) * I + k);
  };
  auto state_at = [&](int dir, int64_t b, int64_t j) { return a.layout ? (b * nd + dir) * H + j : (dir * N + b) * H + j; };
  auto clip = [&](double v) { return a.clip > 0 ? std::min<double>(a.clip, std::max<double>(-a.clip, v)) : v; };

  for (int dir = 0; dir < nd; ++dir) {
    const bool rev = nd == 2 ? dir == 1 : a.reverse;
    // Gate q's pre-activation parts for unit j: x·W_q[j], h·R_q[j], Wb_q[j], Rb_q[j].
    auto xw = [&](int64_t step, int64_t b, int q, int64_t j) {
      double s = 0;
      for (int64_t k = 0; k < I; ++k) s += x_at(step, b, k) * at(*in.w, ((dir * G + q) * H + j) * I + k);
      return s;
    };
    auto hr = [&](const std::vector<double>& hv, int q, int64_t j) {
      double s = 0;
      for (int64_t k = 0; k < H; ++k) s += hv[k] * at(*in.r, ((dir * G + q) * H + j) * H + k);
      return s;
    };
    auto wb = [&](int q, int64_t j) { return in.b ? at(*in.b, dir * 2 * G * H + q * H + j) : 0.0; };
    auto rb = [&](int q, int64_t j) { return in.b ? at(*in.b, dir * 2 * G * H + (G + q) * H + j) : 0.0; };
    auto peep = [&](int q, int64_t j) { return in.p ? at(*in.p, dir * 3 * H + q * H + j) : 0.0; };

    for (int64_t b = 0; b < N; ++b) {
      std::vector<double> h(H, 0.0), c(H, 0.0), hn(H), cn(H);
      for (int64_t j = 0; j < H; ++j) {
        if (in.init_h) h[j] = at(*in.init_h, state_at(dir, b, j));
        if (in.init_c) c[j] = at(*in.init_c, state_at(dir, b, j));
      }
      const int64_t len = d.lens[b];
      for (int64_t s = 0; s < len; ++s) {
        const int64_t step = rev ? len - 1 - s : s;
        for (int64_t j = 0; j < H; ++j) {
          if (a.kind == RnnKind::Rnn) {
            // Ht = f(Xt·Wiᵀ + Ht-1·Riᵀ + Wbi + Rbi)
            hn[j] = rnn_activation(a.act(dir, 0), clip(xw(step, b, 0, j) + hr(h, 0, j) + wb(0, j) + rb(0, j)));
          } else if (a.kind == RnnKind::Gru) {
            // gates z, r, h
            const RnnAct &f = a.act(dir, 0), &g = a.act(dir, 1);
            const double z = rnn_activation(f, clip(xw(step, b, 0, j) + hr(h, 0, j) + wb(0, j) + rb(0, j)));
            double cand;
            if (a.linear_before_reset) {
              // ht = g(Xt·Whᵀ + rt ⊙ (Ht-1·Rhᵀ + Rbh) + Wbh)
              const double r = rnn_activation(f, clip(xw(step, b, 1, j) + hr(h, 1, j) + wb(1, j) + rb(1, j)));
              cand = rnn_activation(g, clip(xw(step, b, 2, j) + r * (hr(h, 2, j) + rb(2, j)) + wb(2, j)));
            } else {
              // ht = g(Xt·Whᵀ + (rt ⊙ Ht-1)·Rhᵀ + Rbh + Wbh): needs r of every unit k
              std::vector<double> rh(H);
              for (int64_t k = 0; k < H; ++k)
                rh[k] = h[k] * rnn_activation(f, clip(xw(step, b, 1, k) + hr(h, 1, k) + wb(1, k) + rb(1, k)));
              cand = rnn_activation(g, clip(xw(step, b, 2, j) + hr(rh, 2, j) + rb(2, j) + wb(2, j)));
            }
            hn[j] = (1 - z) * cand + z * h[j];
          } else {
            // gates i, o, f, c; peepholes i, o, f
            const RnnAct &f = a.act(dir, 0), &g = a.act(dir, 1), &hh = a.act(dir, 2);
            const double i = rnn_activation(f, clip(xw(step, b, 0, j) + hr(h, 0, j) + peep(0, j) * c[j] + wb(0, j) + rb(0, j)));
            const double fg = a.input_forget
                                  ? 1 - i
                                  : rnn_activation(f, clip(xw(step, b, 2, j) + hr(h, 2, j) + peep(2, j) * c[j] + wb(2, j) + rb(2, j)));
            const double ct = rnn_activation(g, clip(xw(step, b, 3, j) + hr(h, 3, j) + wb(3, j) + rb(3, j)));
            cn[j] = fg * c[j] + i * ct;
            const double og = rnn_activation(f, clip(xw(step, b, 1, j) + hr(h, 1, j) + peep(1, j) * cn[j] + wb(1, j) + rb(1, j)));
            hn[j] = og * rnn_activation(hh, cn[j]);
          }
        }
        h = hn;
        c = cn;
        for (int64_t j = 0; j < H; ++j)
          put(o.y, a.layout ? ((b * S + step) * nd + dir) * H + j : ((step * nd + dir) * N + b) * H + j, h[j]);
      }
      for (int64_t j = 0; j < H; ++j) {
        put(o.y_h, state_at(dir, b, j), len == 0 ? 0.0 : h[j]);
        if (a.kind == RnnKind::Lstm) put(o.y_c, state_at(dir, b, j), len == 0 ? 0.0 : c[j]);
      }
    }
  }
  return o;
}

}  // namespace oq::exec
