// Unary math and activations (Sqrt Exp Log Abs Neg Reciprocal Floor Ceil Round Relu LeakyRelu Elu Sigmoid
// HardSigmoid HardSwish Tanh Erf Gelu Softplus Swish ...) and Clip: contiguous loops split over threads.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/elementwise.h"
#include "exec/kernels/vmath.h"

namespace oq::exec {

namespace {

constexpr int64_t kGrain = 8192;

enum class Act {
  Sqrt, Exp, Log, Abs, Neg, Reciprocal, Floor, Ceil, Round, Relu, LeakyRelu, Elu, Sigmoid, HardSigmoid,
  HardSwish, Tanh, Erf, Gelu, GeluTanh, Softplus, Sign, Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Asinh,
  Acosh, Atanh, Selu, ThresholdedRelu, Softsign, Celu, Shrink, Mish, Swish
};

enum class Types { Float, Signed, Numeric };  // which dtypes an op accepts (besides float16/bfloat16)

struct ActInfo {
  Act act;
  Types types;
};

// float32 ops with a vectorised implementation (exec/kernels/vmath.h); false for the others. float_loop keeps
// the libm formulas: the reference they are tested against, and the double path.
bool vector_loop(Act act, const float* x, float* y, int64_t n, float alpha) {
  switch (act) {
    case Act::Exp: vmath::exp(x, y, n); return true;
    case Act::Log: vmath::log(x, y, n); return true;
    case Act::Sqrt: vmath::sqrt(x, y, n); return true;
    case Act::Sin: vmath::sin(x, y, n); return true;
    case Act::Cos: vmath::cos(x, y, n); return true;
    case Act::LeakyRelu: vmath::leaky_relu(x, y, n, alpha); return true;
    case Act::Elu: vmath::elu(x, y, n, alpha); return true;
    case Act::Sigmoid: vmath::sigmoid(x, y, n); return true;
    case Act::Swish: vmath::swish(x, y, n, alpha); return true;
    case Act::Tanh: vmath::tanh(x, y, n); return true;
    case Act::Erf: vmath::erf(x, y, n); return true;
    case Act::Gelu: vmath::gelu(x, y, n); return true;
    case Act::GeluTanh: vmath::gelu_tanh(x, y, n); return true;
    case Act::Softplus: vmath::softplus(x, y, n); return true;
    case Act::Mish: vmath::mish(x, y, n); return true;
    default: return false;
  }
}

// Float ops: each case is one contiguous loop over [0, n).
template <typename T>
void float_loop(Act act, const T* x, T* y, int64_t n, T alpha, T beta) {
  const T zero = 0, one = 1, half = T(0.5);
  if constexpr (std::is_same_v<T, float>)
    if (vector_loop(act, x, y, n, alpha)) return;
  switch (act) {
    case Act::Sqrt: for (int64_t i = 0; i < n; ++i) y[i] = std::sqrt(x[i]); break;
    case Act::Exp: for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]); break;
    case Act::Log: for (int64_t i = 0; i < n; ++i) y[i] = std::log(x[i]); break;
    case Act::Reciprocal: for (int64_t i = 0; i < n; ++i) y[i] = one / x[i]; break;
    case Act::Floor: for (int64_t i = 0; i < n; ++i) y[i] = std::floor(x[i]); break;
    case Act::Ceil: for (int64_t i = 0; i < n; ++i) y[i] = std::ceil(x[i]); break;
    case Act::Round: for (int64_t i = 0; i < n; ++i) y[i] = std::nearbyint(x[i]); break;  // half to even
    case Act::LeakyRelu:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] < zero ? alpha * x[i] : x[i];
      break;
    case Act::Elu:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] < zero ? alpha * (std::exp(x[i]) - one) : x[i];
      break;
    case Act::Sigmoid:
      for (int64_t i = 0; i < n; ++i) {
        // Stable for both signs: never exponentiates a large positive number.
        T e = std::exp(-std::abs(x[i]));
        y[i] = x[i] >= zero ? one / (one + e) : e / (one + e);
      }
      break;
    case Act::Swish:  // x * Sigmoid(alpha x) (opset 24)
      for (int64_t i = 0; i < n; ++i) {
        const T a = alpha * x[i];
        T e = std::exp(-std::abs(a));
        y[i] = x[i] * (a >= zero ? one / (one + e) : e / (one + e));
      }
      break;
    case Act::HardSigmoid:
      for (int64_t i = 0; i < n; ++i) {  // clamped by comparisons that keep NaN (ORT, ONNX)
        const T v = alpha * x[i] + beta;
        y[i] = v < zero ? zero : v > one ? one : v;
      }
      break;
    case Act::HardSwish:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] * std::max(zero, std::min(one, x[i] / T(6) + half));
      break;
    case Act::Tanh: for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]); break;
    case Act::Erf: for (int64_t i = 0; i < n; ++i) y[i] = std::erf(x[i]); break;
    case Act::Gelu: {
      const T r = T(0.70710678118654752440);  // 1/sqrt(2)
      for (int64_t i = 0; i < n; ++i) y[i] = half * x[i] * (one + std::erf(x[i] * r));
      break;
    }
    case Act::GeluTanh: {
      const T c = T(0.79788456080286535588);  // sqrt(2/pi)
      const T k = T(0.044715);
      for (int64_t i = 0; i < n; ++i) {
        T v = x[i];
        y[i] = half * v * (one + std::tanh(c * (v + k * v * v * v)));
      }
      break;
    }
    case Act::Softplus:
      for (int64_t i = 0; i < n; ++i) {
        T v = x[i];
        y[i] = v > zero ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
      }
      break;
    case Act::Sign:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] > zero ? one : x[i] < zero ? -one : x[i];
      break;
    case Act::Sin: for (int64_t i = 0; i < n; ++i) y[i] = std::sin(x[i]); break;
    case Act::Cos: for (int64_t i = 0; i < n; ++i) y[i] = std::cos(x[i]); break;
    case Act::Tan: for (int64_t i = 0; i < n; ++i) y[i] = std::tan(x[i]); break;
    case Act::Asin: for (int64_t i = 0; i < n; ++i) y[i] = std::asin(x[i]); break;
    case Act::Acos: for (int64_t i = 0; i < n; ++i) y[i] = std::acos(x[i]); break;
    case Act::Atan: for (int64_t i = 0; i < n; ++i) y[i] = std::atan(x[i]); break;
    case Act::Sinh: for (int64_t i = 0; i < n; ++i) y[i] = std::sinh(x[i]); break;
    case Act::Cosh: for (int64_t i = 0; i < n; ++i) y[i] = std::cosh(x[i]); break;
    case Act::Asinh: for (int64_t i = 0; i < n; ++i) y[i] = std::asinh(x[i]); break;
    case Act::Acosh: for (int64_t i = 0; i < n; ++i) y[i] = std::acosh(x[i]); break;
    case Act::Atanh: for (int64_t i = 0; i < n; ++i) y[i] = std::atanh(x[i]); break;
    case Act::Selu:  // alpha, gamma (in beta)
      for (int64_t i = 0; i < n; ++i) y[i] = beta * (x[i] > zero ? x[i] : alpha * (std::exp(x[i]) - one));
      break;
    case Act::ThresholdedRelu: for (int64_t i = 0; i < n; ++i) y[i] = x[i] > alpha ? x[i] : zero; break;
    case Act::Softsign: for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (one + std::abs(x[i])); break;
    case Act::Celu:
      for (int64_t i = 0; i < n; ++i)
        y[i] = (x[i] < zero ? zero : x[i]) + std::min(zero, alpha * (std::exp(x[i] / alpha) - one));  // NaN kept
      break;
    case Act::Shrink:  // lambd in alpha, bias in beta
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] < -alpha ? x[i] + beta : x[i] > alpha ? x[i] - beta : zero;
      break;
    case Act::Mish:
      for (int64_t i = 0; i < n; ++i) {
        T v = x[i];
        T sp = v > zero ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
        y[i] = v * std::tanh(sp);
      }
      break;
    default: OQ_CHECK(false, "float_loop: act {}", static_cast<int>(act));
  }
}

// Shrink of an integer: ONNX Runtime's arithmetic (shrink.cc), the value compared with and shifted by the float
// attributes in float32, the result converted back. Out-of-range results (the spec leaves them undefined) wrap
// modulo 2^bits from int64, where ORT's cast is undefined behaviour.
template <typename T>
T int_shrink(T v, float lambd, float bias) {
  const float f = static_cast<float>(v);
  const float r = f < -lambd ? f + bias : f > lambd ? f - bias : 0.0f;
  if (!(r > -0x1p63f)) return static_cast<T>(std::numeric_limits<int64_t>::min());
  if (!(r < 0x1p63f)) return static_cast<T>(r < 0x1p64f ? static_cast<uint64_t>(r) : ~uint64_t{0});
  return static_cast<T>(static_cast<int64_t>(r));
}

// Ops defined for integers too (Abs Neg Relu Sign Shrink).
template <typename T>
void int_loop(Act act, const T* x, T* y, int64_t n, float alpha, float beta) {
  switch (act) {
    case Act::Abs:
      if constexpr (std::is_unsigned_v<T>) std::copy(x, x + n, y);
      else for (int64_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? wrap_sub(T(0), x[i]) : x[i];
      break;
    case Act::Neg: for (int64_t i = 0; i < n; ++i) y[i] = wrap_sub(T(0), x[i]); break;
    case Act::Relu: for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0); break;
    case Act::Sign: for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? T(1) : x[i] == T(0) ? T(0) : T(-1); break;
    case Act::Shrink: for (int64_t i = 0; i < n; ++i) y[i] = int_shrink(x[i], alpha, beta); break;
    default: OQ_CHECK(false, "int_loop: act {}", static_cast<int>(act));
  }
}

bool is_int_act(Act a) {
  return a == Act::Abs || a == Act::Neg || a == Act::Relu || a == Act::Sign || a == Act::Shrink;
}

template <typename T>
void run_act(Act act, const T* x, T* y, int64_t n, float alpha, float beta) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if constexpr (std::is_floating_point_v<T>) {
      if (act == Act::Abs) {
        for (int64_t i = b; i < e; ++i) y[i] = std::abs(x[i]);
      } else if (act == Act::Neg) {
        for (int64_t i = b; i < e; ++i) y[i] = -x[i];
      } else if (act == Act::Relu) {
        for (int64_t i = b; i < e; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];  // NaN stays NaN (ORT, ONNX)
      } else {
        float_loop<T>(act, x + b, y + b, e - b, static_cast<T>(alpha), static_cast<T>(beta));
      }
    } else {
      int_loop<T>(act, x + b, y + b, e - b, alpha, beta);
    }
  });
}

class UnaryKernel : public Kernel {
 public:
  UnaryKernel(const ir::Node& n, ActInfo info, float alpha, float beta)
      : node_(n), info_(info), alpha_(alpha), beta_(beta) {}
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.empty() || !in[0]) kfail(node_, "missing input 0");
    out[0] = apply(*in[0]);
  }

 private:
  Tensor apply(const Tensor& x) {
    if (is_half(x.dtype())) return apply(x.cast(DType::Float)).cast(x.dtype());
    Tensor y = Tensor::uninitialized(x.dtype(), x.shape());  // run_act writes all of it
    auto body = [&](auto tag) {
      using T = decltype(tag);
      if constexpr (!std::is_floating_point_v<T>)
        if (!is_int_act(info_.act)) return false;
      run_act<T>(info_.act, x.data<T>(), y.data<T>(), x.numel(), alpha_, beta_);
      return true;
    };
    bool ok = false;
    auto f = [&](auto tag) { ok = body(tag); };
    switch (info_.types) {
      case Types::Float: dispatch_float(x.dtype(), f); break;
      case Types::Signed: dispatch_signed(x.dtype(), f); break;
      case Types::Numeric: dispatch_numeric(x.dtype(), f); break;
    }
    if (!ok) kfail(node_, "unsupported dtype {}", dtype_name(x.dtype()));
    return y;
  }

  ir::Node node_;
  ActInfo info_;
  float alpha_, beta_;
};

template <Act A, Types TS>
std::unique_ptr<Kernel> make_unary(const KernelInit& k) {
  float alpha = 0, beta = 0;
  Act act = A;
  switch (A) {
    case Act::LeakyRelu: alpha = k.node.attr_float("alpha", 0.01f); break;
    case Act::Elu: alpha = k.node.attr_float("alpha", 1.0f); break;
    case Act::HardSigmoid:
      alpha = k.node.attr_float("alpha", 0.2f);
      beta = k.node.attr_float("beta", 0.5f);
      break;
    case Act::Selu:
      alpha = k.node.attr_float("alpha", 1.67326319217681884765625f);
      beta = k.node.attr_float("gamma", 1.05070102214813232421875f);
      break;
    case Act::ThresholdedRelu: alpha = k.node.attr_float("alpha", 1.0f); break;
    case Act::Celu: alpha = k.node.attr_float("alpha", 1.0f); break;
    case Act::Swish: alpha = k.node.attr_float("alpha", 1.0f); break;
    case Act::Shrink:
      alpha = k.node.attr_float("lambd", 0.5f);
      beta = k.node.attr_float("bias", 0.0f);
      break;
    case Act::Gelu: {
      std::string ap = k.node.attr_string("approximate", "none");
      if (ap == "tanh") act = Act::GeluTanh;
      else if (ap != "none") kfail(k.node, "attribute approximate='{}' is not 'none' or 'tanh'", ap);
      break;
    }
    default: break;
  }
  return std::make_unique<UnaryKernel>(k.node, ActInfo{act, TS}, alpha, beta);
}

// IsNaN / IsInf (detect_negative, detect_positive): BOOL output.
class IsKernel : public Kernel {
 public:
  IsKernel(const ir::Node& n, bool inf) : node_(n), inf_(inf) {
    neg_ = n.attr_int("detect_negative", 1) != 0;
    pos_ = n.attr_int("detect_positive", 1) != 0;
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.empty() || !in[0]) kfail(node_, "missing input 0");
    const Tensor x = is_half(in[0]->dtype()) ? in[0]->cast(DType::Float) : *in[0];
    Tensor y = Tensor::uninitialized(DType::Bool, x.shape());  // every element written below
    bool* py = y.data<bool>();
    bool ok = dispatch_float(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = x.data<T>();
      for (int64_t i = 0; i < x.numel(); ++i)
        py[i] = inf_ ? (std::isinf(px[i]) && (px[i] > 0 ? pos_ : neg_)) : std::isnan(px[i]);
    });
    if (!ok) kfail(node_, "unsupported dtype {}", dtype_name(in[0]->dtype()));
    out[0] = y;
  }

 private:
  ir::Node node_;
  bool inf_, neg_ = true, pos_ = true;
};

template <bool inf>
std::unique_ptr<Kernel> make_is(const KernelInit& k) {
  return std::make_unique<IsKernel>(k.node, inf);
}

// Clip: bounds from attributes min/max (opset < 11) or optional scalar inputs 1 and 2 (opset >= 11).
class ClipKernel : public Kernel {
 public:
  ClipKernel(const ir::Node& n, int opset) : node_(n), attr_form_(opset < 11) {
    if (attr_form_) {
      lo_ = n.attr_float("min", std::numeric_limits<float>::lowest());
      hi_ = n.attr_float("max", std::numeric_limits<float>::max());
    }
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.empty() || !in[0]) kfail(node_, "missing input 0");
    const Tensor& x = *in[0];
    const Tensor* mn = (!attr_form_ && in.size() > 1) ? in[1] : nullptr;
    const Tensor* mx = (!attr_form_ && in.size() > 2) ? in[2] : nullptr;
    for (const Tensor* b : {mn, mx}) {
      if (!b) continue;
      if (b->dtype() != x.dtype())
        kfail(node_, "bound dtype {} differs from input dtype {}", dtype_name(b->dtype()), dtype_name(x.dtype()));
      if (b->numel() != 1) kfail(node_, "bound must be a scalar, got shape {}", shape_str(b->shape()));
    }
    if (is_half(x.dtype())) {
      Tensor xf = x.cast(DType::Float);
      Tensor mnf = mn ? mn->cast(DType::Float) : Tensor(), mxf = mx ? mx->cast(DType::Float) : Tensor();
      out[0] = clip(xf, mn ? &mnf : nullptr, mx ? &mxf : nullptr).cast(x.dtype());
      return;
    }
    out[0] = clip(x, mn, mx);
  }

 private:
  Tensor clip(const Tensor& x, const Tensor* mn, const Tensor* mx) {
    Tensor y = Tensor::uninitialized(x.dtype(), x.shape());  // every element written below
    bool ok = dispatch_numeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
      if (attr_form_) {
        if constexpr (std::is_floating_point_v<T>) {
          lo = static_cast<T>(lo_);
          hi = static_cast<T>(hi_);
        }
      }
      if (mn) lo = *mn->data<T>();
      if (mx) hi = *mx->data<T>();
      const T* px = x.data<T>();
      T* py = y.data<T>();
      parallel_for(x.numel(), kGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          T v = px[i];
          v = v < lo ? lo : v;
          py[i] = v > hi ? hi : v;
        }
      });
    });
    if (!ok || (attr_form_ && !is_float(x.dtype())))
      kfail(node_, "unsupported dtype {}", dtype_name(x.dtype()));
    return y;
  }

  ir::Node node_;
  bool attr_form_;
  float lo_ = 0, hi_ = 0;
};

std::unique_ptr<Kernel> make_clip(const KernelInit& k) { return std::make_unique<ClipKernel>(k.node, k.opset); }

// SwiGLU (opset 28): Y = Swish_alpha(A) * B, A and B of one shape (no broadcasting) and one float type.
class SwiGluKernel : public Kernel {
 public:
  explicit SwiGluKernel(const ir::Node& n) : node_(n), alpha_(n.attr_float("alpha", 1.0f)) {}
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.size() < 2 || !in[0] || !in[1]) kfail(node_, "needs inputs A and B");
    out[0] = apply(*in[0], *in[1]);
  }

 private:
  Tensor apply(const Tensor& a, const Tensor& b) {
    if (a.dtype() != b.dtype())
      kfail(node_, "A and B have different types {} and {}", dtype_name(a.dtype()), dtype_name(b.dtype()));
    if (a.shape() != b.shape())
      kfail(node_, "A {} and B {} must have the same shape (no broadcasting)", shape_str(a.shape()),
            shape_str(b.shape()));
    if (is_half(a.dtype())) return apply(a.cast(DType::Float), b.cast(DType::Float)).cast(a.dtype());
    Tensor y = Tensor::uninitialized(a.dtype(), a.shape());
    const bool ok = dispatch_float(a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      run_act<T>(Act::Swish, a.data<T>(), y.data<T>(), a.numel(), alpha_, 0.0f);
      T* py = y.data<T>();
      const T* pb = b.data<T>();
      parallel_for(a.numel(), 65536, [&](int64_t b0, int64_t e0) {
        for (int64_t i = b0; i < e0; ++i) py[i] *= pb[i];
      });
    });
    if (!ok) kfail(node_, "unsupported dtype {}", dtype_name(a.dtype()));
    return y;
  }

  ir::Node node_;
  float alpha_;
};

std::unique_ptr<Kernel> make_swiglu(const KernelInit& k) { return std::make_unique<SwiGluKernel>(k.node); }

}  // namespace

OQ_REGISTER_KERNEL(Sqrt, 6, kMaxOpset, (make_unary<Act::Sqrt, Types::Float>));
OQ_REGISTER_KERNEL(Exp, 6, kMaxOpset, (make_unary<Act::Exp, Types::Float>));
OQ_REGISTER_KERNEL(Log, 6, kMaxOpset, (make_unary<Act::Log, Types::Float>));
OQ_REGISTER_KERNEL(Abs, 6, kMaxOpset, (make_unary<Act::Abs, Types::Numeric>));
OQ_REGISTER_KERNEL(Neg, 6, kMaxOpset, (make_unary<Act::Neg, Types::Signed>));
OQ_REGISTER_KERNEL(Reciprocal, 6, kMaxOpset, (make_unary<Act::Reciprocal, Types::Float>));
OQ_REGISTER_KERNEL(Floor, 6, kMaxOpset, (make_unary<Act::Floor, Types::Float>));
OQ_REGISTER_KERNEL(Ceil, 6, kMaxOpset, (make_unary<Act::Ceil, Types::Float>));
OQ_REGISTER_KERNEL(Round, 11, kMaxOpset, (make_unary<Act::Round, Types::Float>));
OQ_REGISTER_KERNEL(Relu, 6, kMaxOpset, (make_unary<Act::Relu, Types::Signed>));
OQ_REGISTER_KERNEL(LeakyRelu, 6, kMaxOpset, (make_unary<Act::LeakyRelu, Types::Float>));
OQ_REGISTER_KERNEL(Elu, 6, kMaxOpset, (make_unary<Act::Elu, Types::Float>));
OQ_REGISTER_KERNEL(Sigmoid, 6, kMaxOpset, (make_unary<Act::Sigmoid, Types::Float>));
OQ_REGISTER_KERNEL(HardSigmoid, 6, kMaxOpset, (make_unary<Act::HardSigmoid, Types::Float>));
OQ_REGISTER_KERNEL(HardSwish, 14, kMaxOpset, (make_unary<Act::HardSwish, Types::Float>));
OQ_REGISTER_KERNEL(Tanh, 6, kMaxOpset, (make_unary<Act::Tanh, Types::Float>));
OQ_REGISTER_KERNEL(Erf, 9, kMaxOpset, (make_unary<Act::Erf, Types::Float>));
OQ_REGISTER_KERNEL(Gelu, 20, kMaxOpset, (make_unary<Act::Gelu, Types::Float>));
OQ_REGISTER_KERNEL(Softplus, 1, kMaxOpset, (make_unary<Act::Softplus, Types::Float>));
OQ_REGISTER_KERNEL(Clip, 6, kMaxOpset, make_clip);
OQ_REGISTER_KERNEL(Sign, 9, kMaxOpset, (make_unary<Act::Sign, Types::Numeric>));
OQ_REGISTER_KERNEL(Sin, 7, kMaxOpset, (make_unary<Act::Sin, Types::Float>));
OQ_REGISTER_KERNEL(Cos, 7, kMaxOpset, (make_unary<Act::Cos, Types::Float>));
OQ_REGISTER_KERNEL(Tan, 7, kMaxOpset, (make_unary<Act::Tan, Types::Float>));
OQ_REGISTER_KERNEL(Asin, 7, kMaxOpset, (make_unary<Act::Asin, Types::Float>));
OQ_REGISTER_KERNEL(Acos, 7, kMaxOpset, (make_unary<Act::Acos, Types::Float>));
OQ_REGISTER_KERNEL(Atan, 7, kMaxOpset, (make_unary<Act::Atan, Types::Float>));
OQ_REGISTER_KERNEL(Sinh, 9, kMaxOpset, (make_unary<Act::Sinh, Types::Float>));
OQ_REGISTER_KERNEL(Cosh, 9, kMaxOpset, (make_unary<Act::Cosh, Types::Float>));
OQ_REGISTER_KERNEL(Asinh, 9, kMaxOpset, (make_unary<Act::Asinh, Types::Float>));
OQ_REGISTER_KERNEL(Acosh, 9, kMaxOpset, (make_unary<Act::Acosh, Types::Float>));
OQ_REGISTER_KERNEL(Atanh, 9, kMaxOpset, (make_unary<Act::Atanh, Types::Float>));
OQ_REGISTER_KERNEL(Selu, 6, kMaxOpset, (make_unary<Act::Selu, Types::Float>));
OQ_REGISTER_KERNEL(ThresholdedRelu, 10, kMaxOpset, (make_unary<Act::ThresholdedRelu, Types::Float>));
OQ_REGISTER_KERNEL(Softsign, 1, kMaxOpset, (make_unary<Act::Softsign, Types::Float>));
OQ_REGISTER_KERNEL(Celu, 12, kMaxOpset, (make_unary<Act::Celu, Types::Float>));
OQ_REGISTER_KERNEL(Shrink, 9, kMaxOpset, (make_unary<Act::Shrink, Types::Numeric>));
OQ_REGISTER_KERNEL(Mish, 18, kMaxOpset, (make_unary<Act::Mish, Types::Float>));
OQ_REGISTER_KERNEL(Swish, 24, kMaxOpset, (make_unary<Act::Swish, Types::Float>));
OQ_REGISTER_KERNEL(SwiGLU, 28, kMaxOpset, make_swiglu);
OQ_REGISTER_KERNEL(IsNaN, 9, kMaxOpset, make_is<false>);
OQ_REGISTER_KERNEL(IsInf, 10, kMaxOpset, make_is<true>);

// Opsets below 7 (before kMinOpset) are registered where the op's semantics are already the current ones.

// ---- naive reference ----

double naive_activation(const std::string& op, double x, double alpha, double beta, const std::string& approx) {
  if (op == "Sqrt") return std::sqrt(x);
  if (op == "Exp") return std::exp(x);
  if (op == "Log") return std::log(x);
  if (op == "Abs") return std::fabs(x);
  if (op == "Neg") return -x;
  if (op == "Reciprocal") return 1.0 / x;
  if (op == "Floor") return std::floor(x);
  if (op == "Ceil") return std::ceil(x);
  if (op == "Round") {
    double f = std::floor(x), d = x - f;
    if (d > 0.5) return f + 1;
    if (d < 0.5) return f;
    return std::fmod(f, 2.0) == 0 ? f : f + 1;
  }
  if (op == "Relu") return x < 0 ? 0 : x;
  if (op == "LeakyRelu") return x < 0 ? alpha * x : x;
  if (op == "Elu") return x < 0 ? alpha * (std::exp(x) - 1) : x;
  if (op == "Sigmoid") return 1.0 / (1.0 + std::exp(-x));
  if (op == "HardSigmoid") return std::isnan(x) ? x : std::max(0.0, std::min(1.0, alpha * x + beta));
  if (op == "HardSwish") return x * std::max(0.0, std::min(1.0, x / 6 + 0.5));
  if (op == "Tanh") return std::tanh(x);
  if (op == "Erf") return std::erf(x);
  if (op == "Gelu") {
    if (approx == "tanh") return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  }
  if (op == "Softplus") return std::log(1 + std::exp(x));
  if (op == "Sign") return x > 0 ? 1 : x < 0 ? -1 : x;
  if (op == "Sin") return std::sin(x);
  if (op == "Cos") return std::cos(x);
  if (op == "Tan") return std::tan(x);
  if (op == "Asin") return std::asin(x);
  if (op == "Acos") return std::acos(x);
  if (op == "Atan") return std::atan(x);
  if (op == "Sinh") return std::sinh(x);
  if (op == "Cosh") return std::cosh(x);
  if (op == "Asinh") return std::asinh(x);
  if (op == "Acosh") return std::acosh(x);
  if (op == "Atanh") return std::atanh(x);
  if (op == "Selu") return beta * (x > 0 ? x : alpha * (std::exp(x) - 1));  // beta = gamma
  if (op == "ThresholdedRelu") return x > alpha ? x : 0;
  if (op == "Softsign") return x / (1 + std::fabs(x));
  if (op == "Celu") return (x < 0 ? 0.0 : x) + std::min(0.0, alpha * (std::exp(x / alpha) - 1));
  if (op == "Shrink") return x < -alpha ? x + beta : x > alpha ? x - beta : 0;  // alpha = lambd, beta = bias
  if (op == "Mish") return x * std::tanh(std::log(1 + std::exp(x)));
  if (op == "Swish") return x / (1 + std::exp(-alpha * x));
  if (op == "SwiGLU") return x / (1 + std::exp(-alpha * x)) * beta;  // beta: the element of B
  OQ_CHECK(false, "naive_activation: unknown op {}", op);
  return 0;
}

}  // namespace oq::exec
