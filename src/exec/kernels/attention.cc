// Attention (opsets 23, 24, 25): scaled dot-product attention with MHA / GQA / MQA heads, 3-D or 4-D inputs,
// boolean or additive masks (a mask shorter than the key sequence padded with -inf / false), causal masking
// aligned bottom-right on the cache offset, past / present key-value caches (23+), `nonpad_kv_seqlen` (24+),
// sliding windows (25), softcap, softmax_precision and the four qk_matmul_output modes.
//
// Written by hand: no library in Debian computes ONNX's Attention semantics. The computation follows the
// operator's definition step by step as onnx.reference (op_attention.py) writes it, which is also this
// kernel's naive reference: Q and K are each scaled by sqrt(scale) in the input type, QK^T, softcap, + bias,
// softmax (a row whose max is -inf gives zeros, never NaN), the fully-masked-row guard decided on the bias,
// then P V. Rows of one (batch, head) pair are computed together; pairs are spread over threads.
//
// RotaryEmbedding (opset 23): rotates the first rotary_embedding_dim features of every head by the cos / sin
// cache rows of its position (halves, or interleaved pairs), as onnx.reference's op_rotary_embedding.py.
//
// TensorScatter (opset 24): writes an update into a key/value cache along its sequence axis at a per-batch
// position (linear, or circular: modulo the cache length), as onnx.reference's op_tensor_scatter.py.
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "core/parallel.h"
#include "exec/kernels/extra_util.h"

namespace oq::exec {
namespace {

struct AttnAttrs {
  int version = 23;
  bool causal = false;
  std::optional<float> scale;
  int64_t q_heads = 0, kv_heads = 0;  // 0: attribute absent
  float softcap = 0.f;
  int64_t qk_mode = 0;
  int64_t softmax_precision = 0;  // 0: attribute absent (the input type)
  int64_t left = -1, right = -1;
};

AttnAttrs parse_attrs(const ir::Node& n, int version) {
  AttnAttrs a;
  a.version = version;
  const int64_t c = n.attr_int("is_causal", 0);
  if (c != 0 && c != 1) kfail(n, "attribute 'is_causal' must be 0 or 1, got {}", c);
  a.causal = c == 1;
  if (n.has_attr("scale")) a.scale = n.attr_float("scale", 0.f);
  a.q_heads = n.attr_int("q_num_heads", 0);
  a.kv_heads = n.attr_int("kv_num_heads", 0);
  if (a.q_heads < 0 || a.kv_heads < 0) kfail(n, "q_num_heads / kv_num_heads must be positive");
  a.softcap = n.attr_float("softcap", 0.f);
  if (a.softcap < 0.f) kfail(n, "attribute 'softcap' must be >= 0, got {}", a.softcap);
  a.qk_mode = n.attr_int("qk_matmul_output_mode", 0);
  if (a.qk_mode < 0 || a.qk_mode > 3) kfail(n, "attribute 'qk_matmul_output_mode' must be 0 to 3, got {}", a.qk_mode);
  a.softmax_precision = n.attr_int("softmax_precision", 0);
  if (a.softmax_precision != 0 && a.softmax_precision != 1 && a.softmax_precision != 10 &&
      a.softmax_precision != 11 && a.softmax_precision != 16)
    kfail(n, "attribute 'softmax_precision' must be 1 (float), 10 (float16), 11 (double) or 16 (bfloat16), got {}",
          a.softmax_precision);
  if (version >= 25) {
    a.left = n.attr_int("left_window_size", -1);
    a.right = n.attr_int("right_window_size", -1);
    if (a.left < -1 || a.right < -1) kfail(n, "left_window_size / right_window_size must be -1 or >= 0");
  } else if (n.has_attr("left_window_size") || n.has_attr("right_window_size")) {
    kfail(n, "left_window_size / right_window_size need Attention-25 (the model imports opset {})", version);
  }
  return a;
}

// A [B, H, S, D] float/double copy of Q, K or V (3-D [B, S, H*D] inputs split into `heads` heads).
template <typename T>
std::vector<T> to_bhsd(const ir::Node& n, const Tensor& x, int64_t heads, const char* what, int64_t& H, int64_t& S,
                       int64_t& D) {
  const int64_t B = x.dim(0);
  if (x.rank() == 4) {
    H = x.dim(1), S = x.dim(2), D = x.dim(3);
    return std::vector<T>(x.data<T>(), x.data<T>() + x.numel());
  }
  if (heads <= 0) kfail(n, "3-D inputs need the q_num_heads and kv_num_heads attributes");
  if (x.dim(2) % heads != 0)
    kfail(n, "{} hidden size {} is not a multiple of {} heads", what, x.dim(2), heads);
  H = heads, S = x.dim(1), D = x.dim(2) / heads;
  std::vector<T> y(static_cast<size_t>(x.numel()));
  const T* p = x.data<T>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t d = 0; d < D; ++d) y[((b * H + h) * S + s) * D + d] = p[((b * S + s) * H + h) * D + d];
  return y;
}

// Concatenates past [B, H, P, D] and new [B, H, S, D] along the sequence axis.
template <typename T>
std::vector<T> concat_seq(const T* past, int64_t P, const std::vector<T>& cur, int64_t S, int64_t BH, int64_t D) {
  std::vector<T> y(static_cast<size_t>(BH * (P + S) * D));
  for (int64_t i = 0; i < BH; ++i) {
    std::copy(past + i * P * D, past + (i + 1) * P * D, y.begin() + i * (P + S) * D);
    std::copy(cur.begin() + i * S * D, cur.begin() + (i + 1) * S * D, y.begin() + i * (P + S) * D + P * D);
  }
  return y;
}

// The additive bias [B, Hq, Sq, T] (mask, causal frontier, window, padding), as -inf / 0 / the mask's values.
template <typename T>
std::vector<T> make_bias(const ir::Node& n, const AttnAttrs& a, const Tensor* mask, const std::vector<int64_t>& off,
                         const Tensor* nonpad, int64_t B, int64_t Hq, int64_t Sq, int64_t Tk) {
  const T ninf = -std::numeric_limits<T>::infinity();
  std::vector<T> bias(static_cast<size_t>(B * Hq * Sq * Tk), T(0));
  if (mask) {
    const int r = mask->rank();
    if (r < 1 || r > 4) kfail(n, "attn_mask must have rank 1 to 4, got shape {}", shape_str(mask->shape()));
    const int64_t full[4] = {B, Hq, Sq, Tk};
    int64_t md[4] = {1, 1, 1, 1};
    for (int i = 0; i < r; ++i) md[4 - r + i] = mask->dim(i);
    if (md[3] > Tk)
      kfail(n, "attn_mask's last dimension {} is longer than the total sequence length {}", md[3], Tk);
    for (int i = 0; i < 3; ++i)
      if (md[i] != 1 && md[i] != full[i])
        kfail(n, "attn_mask shape {} does not broadcast to [{}, {}, {}, {}]", shape_str(mask->shape()), B, Hq, Sq, Tk);
    const Tensor mf = mask->dtype() == DType::Bool ? Tensor() : mask->cast(DType::Double);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < Sq; ++i)
          for (int64_t j = 0; j < Tk; ++j) {
            T v;
            if (j >= md[3]) {
              v = ninf;  // a short mask is padded with -inf / false
            } else {
              const int64_t idx = (((md[0] == 1 ? 0 : b) * md[1] + (md[1] == 1 ? 0 : h)) * md[2] +
                                   (md[2] == 1 ? 0 : i)) * md[3] + j;
              if (mask->dtype() == DType::Bool) v = mask->data<bool>()[idx] ? T(0) : ninf;
              else v = static_cast<T>(static_cast<T>(mf.data<double>()[idx]));
            }
            bias[((b * Hq + h) * Sq + i) * Tk + j] = v;
          }
  }
  const bool window = a.left >= 0 || a.right >= 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Sq; ++i)
        for (int64_t j = 0; j < Tk; ++j) {
          T& v = bias[((b * Hq + h) * Sq + i) * Tk + j];
          const int64_t diff = i + off[b] - j;  // query's absolute position minus the key's
          if (a.causal && diff < 0) v += ninf;
          if (window && ((a.left >= 0 && diff > a.left) || (a.right >= 0 && -diff > a.right))) v += ninf;
          if (nonpad && j >= nonpad->data<int64_t>()[b]) v += ninf;
        }
  return bias;
}

// Rounds to the softmax_precision type when it is narrower than T (float16 / bfloat16).
template <typename T>
T round_prec(T v, int64_t prec) {
  if (prec == 10) return static_cast<T>(half_to_float(float_to_half(static_cast<float>(v))));
  if (prec == 16) return static_cast<T>(bfloat16_to_float(float_to_bfloat16(static_cast<float>(v))));
  if (prec == 1) return static_cast<T>(static_cast<float>(v));
  return v;
}

// Softmax of one row in precision P (the guard for a row whose max is -inf: zeros), written into p.
template <typename T, typename P>
void softmax_row(const T* x, T* p, int64_t n, int64_t prec) {
  P m = -std::numeric_limits<P>::infinity();
  bool nan = false;
  for (int64_t j = 0; j < n; ++j) {
    const P v = static_cast<P>(round_prec(x[j], prec));
    if (std::isnan(v)) nan = true;
    else if (v > m) m = v;
  }
  if (nan) m = std::numeric_limits<P>::quiet_NaN();  // numpy's max propagates NaN
  const P safe = std::isinf(m) && m < 0 ? P(0) : m;
  P s = 0;
  std::vector<P> e(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    e[j] = static_cast<P>(round_prec(static_cast<T>(std::exp(static_cast<P>(round_prec(x[j], prec)) - safe)), prec));
    s += e[j];
  }
  s = static_cast<P>(round_prec(static_cast<T>(s), prec));
  if (s == P(0)) s = P(1);
  for (int64_t j = 0; j < n; ++j) p[j] = round_prec(static_cast<T>(e[j] / s), prec);
}

template <typename T>
void attention_typed(const ir::Node& n, const AttnAttrs& a, const std::vector<const Tensor*>& in,
                     std::vector<Tensor>& out, DType out_t) {
  const Tensor &q = input_at(n, in, 0), &k = input_at(n, in, 1), &v = input_at(n, in, 2);
  const Tensor* mask = optional_input(in, 3);
  const Tensor* past_k = optional_input(in, 4);
  const Tensor* past_v = optional_input(in, 5);
  const Tensor* nonpad = a.version >= 24 ? optional_input(in, 6) : nullptr;
  if (q.rank() != k.rank() || q.rank() != v.rank() || (q.rank() != 3 && q.rank() != 4))
    kfail(n, "Q, K and V must all be 3-D or all 4-D, got {}, {}, {}", shape_str(q.shape()), shape_str(k.shape()),
          shape_str(v.shape()));
  if (q.rank() == 4 && a.version >= 25 && (a.q_heads || a.kv_heads))
    kfail(n, "q_num_heads and kv_num_heads must not be set with 4-D inputs (Attention-25)");
  if (!past_k != !past_v) kfail(n, "past_key and past_value must be given together");
  if (nonpad && past_k) kfail(n, "nonpad_kv_seqlen cannot be combined with past_key / past_value");
  const int64_t B = q.dim(0);
  if (k.dim(0) != B || v.dim(0) != B) kfail(n, "Q, K and V batch sizes differ");
  int64_t Hq, Sq, D, Hk, Sk, Dk, Hv, Sv, Dv;
  std::vector<T> Q = to_bhsd<T>(n, q, a.q_heads, "Q", Hq, Sq, D);
  std::vector<T> K = to_bhsd<T>(n, k, a.kv_heads, "K", Hk, Sk, Dk);
  std::vector<T> V = to_bhsd<T>(n, v, a.kv_heads, "V", Hv, Sv, Dv);
  if (Dk != D) kfail(n, "Q head size {} differs from K head size {}", D, Dk);
  if (Hk != Hv || Sk != Sv) kfail(n, "K and V differ in heads or sequence length");
  if (Hq % Hk != 0) kfail(n, "{} query heads are not a multiple of {} key/value heads", Hq, Hk);
  int64_t P = 0;
  if (past_k) {
    if (past_k->rank() != 4 || past_v->rank() != 4 || past_k->dim(0) != B || past_k->dim(1) != Hk ||
        past_k->dim(3) != D || past_v->dim(0) != B || past_v->dim(1) != Hk || past_v->dim(2) != past_k->dim(2) ||
        past_v->dim(3) != Dv)
      kfail(n, "past_key {} / past_value {} do not match K and V", shape_str(past_k->shape()),
            shape_str(past_v->shape()));
    P = past_k->dim(2);
    K = concat_seq(past_k->data<T>(), P, K, Sk, B * Hk, D);
    V = concat_seq(past_v->data<T>(), P, V, Sk, B * Hk, Dv);
  }
  const int64_t Tk = P + Sk;
  std::vector<int64_t> off(static_cast<size_t>(B), P);
  if (nonpad) {
    if (nonpad->dtype() != DType::Int64 || nonpad->numel() != B)
      kfail(n, "nonpad_kv_seqlen must be int64 of shape [{}], got {} {}", B, dtype_name(nonpad->dtype()),
            shape_str(nonpad->shape()));
    for (int64_t b = 0; b < B; ++b) off[b] = nonpad->data<int64_t>()[b] - Sq;
  }
  const std::vector<T> bias = make_bias<T>(n, a, mask, off, nonpad, B, Hq, Sq, Tk);
  // Q and K each scaled by sqrt(scale) in the input type (the definition's overflow guard); the caches keep K.
  const T s = static_cast<T>(std::sqrt(a.scale ? static_cast<double>(*a.scale) : 1.0 / std::sqrt(double(D))));
  for (auto& x : Q) x *= s;
  std::vector<T> Ks(K);
  for (auto& x : Ks) x *= s;

  const bool want_qk = out.size() > 3;
  std::vector<T> qk_out(want_qk ? static_cast<size_t>(B * Hq * Sq * Tk) : 0);
  std::vector<T> Y(static_cast<size_t>(B * Hq * Sq * Dv));
  const int64_t reps = Hq / Hk;
  parallel_for(B * Hq, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> logits(static_cast<size_t>(Tk)), prob(static_cast<size_t>(Tk));
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t b = bh / Hq, h = bh % Hq, kvh = b * Hk + h / reps;
      for (int64_t i = 0; i < Sq; ++i) {
        const T* qi = &Q[(bh * Sq + i) * D];
        const T* bi = &bias[(bh * Sq + i) * Tk];
        T* qko = want_qk ? &qk_out[(bh * Sq + i) * Tk] : nullptr;
        for (int64_t j = 0; j < Tk; ++j) {
          const T* kj = &Ks[(kvh * Tk + j) * D];
          T acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += qi[d] * kj[d];
          if (a.softcap > 0.f) acc = static_cast<T>(a.softcap) * std::tanh(acc / static_cast<T>(a.softcap));
          logits[j] = acc + bi[j];
          if (qko && a.qk_mode <= 1) qko[j] = acc;  // raw (after softcap, as the reference)
          if (qko && a.qk_mode == 2) qko[j] = logits[j];
        }
        if (a.softmax_precision == 11) softmax_row<T, double>(logits.data(), prob.data(), Tk, 0);
        else softmax_row<T, T>(logits.data(), prob.data(), Tk, a.softmax_precision);
        T bmax = -std::numeric_limits<T>::infinity();
        bool bnan = false;
        for (int64_t j = 0; j < Tk; ++j) {
          if (std::isnan(bi[j])) bnan = true;
          else if (bi[j] > bmax) bmax = bi[j];
        }
        if (!bnan && std::isinf(bmax) && bmax < 0) std::fill(prob.begin(), prob.end(), T(0));  // fully masked
        if (qko && a.qk_mode == 3) std::copy(prob.begin(), prob.end(), qko);
        T* yi = &Y[(bh * Sq + i) * Dv];
        std::fill(yi, yi + Dv, T(0));
        for (int64_t j = 0; j < Tk; ++j) {
          const T* vj = &V[(kvh * Tk + j) * Dv];
          for (int64_t d = 0; d < Dv; ++d) yi[d] += prob[j] * vj[d];
        }
      }
    }
  });
  // Y in the output layout and type.
  const DType ct = sizeof(T) == 8 ? DType::Double : DType::Float;
  Tensor yt = Tensor::uninitialized(ct, q.rank() == 4 ? Shape{B, Hq, Sq, Dv} : Shape{B, Sq, Hq * Dv});
  T* py = yt.data<T>();
  if (q.rank() == 4) std::copy(Y.begin(), Y.end(), py);
  else
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < Sq; ++i)
          std::copy_n(&Y[((b * Hq + h) * Sq + i) * Dv], Dv, py + ((b * Sq + i) * Hq + h) * Dv);
  out[0] = narrow_to(std::move(yt), out_t);
  auto emit = [&](size_t idx, const std::vector<T>& data, Shape shape) {
    if (out.size() <= idx || n.outputs[idx].empty()) return;
    Tensor t = Tensor::uninitialized(ct, std::move(shape));
    std::copy(data.begin(), data.end(), t.data<T>());
    out[idx] = narrow_to(std::move(t), out_t);
  };
  emit(1, K, Shape{B, Hk, Tk, D});  // present_key / present_value: past and new, in [B, H, S, D]
  emit(2, V, Shape{B, Hk, Tk, Dv});
  if (want_qk) emit(3, qk_out, Shape{B, Hq, Sq, Tk});
}

std::unique_ptr<Kernel> make_attention(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const AttnAttrs a = parse_attrs(node, ki.opset >= 25 ? 25 : ki.opset >= 24 ? 24 : 23);
  return fn_kernel([node, a](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& q = input_at(node, in, 0);
    const DType t = q.dtype();
    require_float_type(node, t, "Q", true);
    for (size_t i = 1; i < 6 && i < in.size(); ++i)
      if (in[i] && i != 3 && in[i]->dtype() != t)
        kfail(node, "input {} has type {}, Q has {}", i, dtype_name(in[i]->dtype()), dtype_name(t));
    if (t == DType::Double) return attention_typed<double>(node, a, in, out, t);
    // float16 / bfloat16 computed in float32 (rounded back once at the end).
    std::vector<Tensor> wide;
    std::vector<const Tensor*> win(in.size());
    wide.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i] && i != 3 && i != 6 && (in[i]->dtype() == DType::Float16 || in[i]->dtype() == DType::BFloat16)) {
        wide.push_back(widen_half(*in[i]));
        win[i] = &wide.back();
      } else {
        win[i] = in[i];
      }
    }
    attention_typed<float>(node, a, win, out, t);
  });
}


// RotaryEmbedding: X [B, H, S, D] or [B, S, H*D] (num_heads), caches [max_pos, R/2] indexed by position_ids
// [B, S], or [B, S, R/2] without position_ids. Computed in float32 (float16 / bfloat16 rounded back once).
std::unique_ptr<Kernel> make_rotary(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const int64_t interleaved = node.attr_int("interleaved", 0), rdim = node.attr_int("rotary_embedding_dim", 0),
                heads = node.attr_int("num_heads", 0);
  if (interleaved != 0 && interleaved != 1) kfail(node, "attribute 'interleaved' must be 0 or 1, got {}", interleaved);
  if (rdim < 0 || heads < 0) kfail(node, "rotary_embedding_dim and num_heads must be >= 0");
  return fn_kernel([node, interleaved, rdim, heads](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x0 = input_at(node, in, 0);
    const DType t = x0.dtype();
    if (t != DType::Float && t != DType::Float16 && t != DType::BFloat16)
      kfail(node, "X must be float, float16 or bfloat16, got {}", dtype_name(t));
    const Tensor x = widen_half(x0), cosc = widen_half(input_at(node, in, 1)), sinc = widen_half(input_at(node, in, 2));
    const Tensor* pos = optional_input(in, 3);
    if (x.rank() != 3 && x.rank() != 4) kfail(node, "X must be 3-D or 4-D, got {}", shape_str(x.shape()));
    const int64_t B = x.dim(0);
    int64_t H, S, D;
    if (x.rank() == 4) {
      H = x.dim(1), S = x.dim(2), D = x.dim(3);
    } else {
      if (heads <= 0) kfail(node, "3-D X needs the num_heads attribute");
      if (x.dim(2) % heads != 0) kfail(node, "hidden size {} is not a multiple of num_heads {}", x.dim(2), heads);
      H = heads, S = x.dim(1), D = x.dim(2) / heads;
    }
    const int64_t R = rdim == 0 ? D : rdim, half = R / 2;
    if (R > D || R % 2 != 0) kfail(node, "rotary_embedding_dim {} must be even and at most the head size {}", R, D);
    if (cosc.shape() != sinc.shape()) kfail(node, "cos_cache and sin_cache shapes differ");
    if (cosc.dim(-1) != half)
      kfail(node, "last dimension of cos_cache ({}) does not match rotary_embedding_dim / 2 ({})", cosc.dim(-1), half);
    if (pos) {
      if (pos->dtype() != DType::Int64 || pos->rank() != 2 || pos->dim(0) != B || pos->dim(1) != S)
        kfail(node, "position_ids must be int64 [{}, {}], got {} {}", B, S, dtype_name(pos->dtype()),
              shape_str(pos->shape()));
      if (cosc.rank() != 2) kfail(node, "with position_ids the caches must be 2-D, got {}", shape_str(cosc.shape()));
      for (int64_t i = 0; i < pos->numel(); ++i)
        if (pos->data<int64_t>()[i] < 0 || pos->data<int64_t>()[i] >= cosc.dim(0))
          kfail(node, "position id {} is outside the cache's {} rows", pos->data<int64_t>()[i], cosc.dim(0));
    } else if (cosc.rank() != 3 || cosc.dim(0) != B || cosc.dim(1) != S) {
      kfail(node, "without position_ids the caches must be [{}, {}, {}], got {}", B, S, half, shape_str(cosc.shape()));
    }
    Tensor y = Tensor::uninitialized(DType::Float, x.shape());
    const float *px = x.data<float>(), *pc = cosc.data<float>(), *ps = sinc.data<float>();
    float* py = y.data<float>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t row = pos ? pos->data<int64_t>()[b * S + s] : b * S + s;
        const float *c = pc + row * half, *sn = ps + row * half;
        for (int64_t h = 0; h < H; ++h) {
          const int64_t base = x.rank() == 4 ? ((b * H + h) * S + s) * D : ((b * S + s) * H + h) * D;
          const float* xi = px + base;
          float* yi = py + base;
          for (int64_t k = 0; k < half; ++k) {
            const int64_t i1 = interleaved ? 2 * k : k, i2 = interleaved ? 2 * k + 1 : k + half;
            yi[i1] = c[k] * xi[i1] - sn[k] * xi[i2];
            yi[i2] = sn[k] * xi[i1] + c[k] * xi[i2];
          }
          std::copy(xi + R, xi + D, yi + R);
        }
      }
    out[0] = narrow_to(std::move(y), t);
  });
}


std::unique_ptr<Kernel> make_tensor_scatter(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const std::string mode = node.attr_string("mode", "linear");
  if (mode != "linear" && mode != "circular") kfail(node, "attribute mode='{}' is not 'linear' or 'circular'", mode);
  const int64_t axis_attr = node.attr_int("axis", -2);
  const bool circular = mode == "circular";
  return fn_kernel([node, axis_attr, circular](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor &cache = input_at(node, in, 0), &upd = input_at(node, in, 1);
    const Tensor* wi = optional_input(in, 2);
    if (upd.dtype() != cache.dtype()) kfail(node, "update type differs from past_cache's");
    const int r = cache.rank();
    if (r < 2 || upd.rank() != r) kfail(node, "past_cache {} and update {} must have one rank >= 2",
                                        shape_str(cache.shape()), shape_str(upd.shape()));
    const int axis = normalize_axis(node, axis_attr, r);
    if (axis == 0) kfail(node, "axis must not be the batch axis 0");
    for (int d = 0; d < r; ++d)
      if (d == axis ? upd.dim(d) > cache.dim(d) : upd.dim(d) != cache.dim(d))
        kfail(node, "update {} does not fit past_cache {} (axis {})", shape_str(upd.shape()),
              shape_str(cache.shape()), axis);
    const int64_t B = cache.dim(0);
    if (wi && (wi->dtype() != DType::Int64 || wi->numel() != B))
      kfail(node, "write_indices must be int64 of shape [{}], got {} {}", B, dtype_name(wi->dtype()),
            shape_str(wi->shape()));
    const size_t esz = elem_size(node, cache);
    int64_t prefix = 1, slab = 1;
    for (int d = 1; d < axis; ++d) prefix *= cache.dim(d);  // dims between batch and axis
    for (int d = axis + 1; d < r; ++d) slab *= cache.dim(d);
    const int64_t maxs = cache.dim(axis), seq = upd.dim(axis);
    Tensor y = cache.clone();
    auto* py = static_cast<uint8_t*>(y.raw());
    const auto* pu = static_cast<const uint8_t*>(upd.raw());
    for (int64_t b = 0; b < B; ++b) {
      const int64_t w = wi ? wi->data<int64_t>()[b] : 0;
      if (w < 0 || (!circular && w + seq > maxs))
        kfail(node, "write index {} of batch {} puts {} rows outside the cache's {}", w, b, seq, maxs);
      for (int64_t p = 0; p < prefix; ++p)
        for (int64_t s = 0; s < seq; ++s) {
          const int64_t c = circular ? (w + s) % maxs : w + s;
          std::memcpy(py + (((b * prefix + p) * maxs + c) * slab) * esz, pu + (((b * prefix + p) * seq + s) * slab) * esz,
                      static_cast<size_t>(slab) * esz);
        }
    }
    out[0] = std::move(y);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(TensorScatter, 24, kMaxOpset, make_tensor_scatter);
OQ_REGISTER_KERNEL(RotaryEmbedding, 23, kMaxOpset, make_rotary);
OQ_REGISTER_KERNEL(Attention, 23, kMaxOpset, make_attention);

}  // namespace oq::exec
