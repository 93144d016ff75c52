// Cast between every numeric dtype (float/double/float16/bfloat16, 8..64-bit integers, bool).
// Semantics (numpy's astype, which the ONNX reference uses): float -> integer truncates toward zero (NaN -> 0,
// beyond int64 saturates, then wraps to the target width); integer -> integer wraps; anything -> bool is
// "nonzero"; float16/bfloat16 round to nearest even. The `saturate` attribute (19+) only concerns float8
// types, which onnxquant does not support.
// BitCast (26): the same bytes read as another type of the same width (numpy's view).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/half_array.h"
#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/elementwise.h"
#include "exec/kernels/strided.h"

namespace oq::exec {

namespace {

struct Half {
  uint16_t bits;
};
struct BF16 {
  uint16_t bits;
};

template <typename F>
bool dispatch_cast_type(DType t, F&& f) {
  switch (t) {
    case DType::Float16: f(Half{}); return true;
    case DType::BFloat16: f(BF16{}); return true;
    case DType::Bool: f(bool{}); return true;
    default: return dispatch_numeric(t, f);
  }
}

template <typename T>
constexpr bool is_int_like = std::is_integral_v<T>;  // includes bool

template <typename S>
double load_f(S v) {
  if constexpr (std::is_same_v<S, Half>) return half_to_float(v.bits);
  else if constexpr (std::is_same_v<S, BF16>) return bfloat16_to_float(v.bits);
  else return static_cast<double>(v);
}

// Float value (as double) -> integer type D with truncation, NaN -> 0, int64 saturation, then wrap.
template <typename D>
D float_to_int(double v) {
  if (std::isnan(v)) return D(0);
  if constexpr (std::is_same_v<D, uint64_t>) {
    if (v >= 18446744073709551616.0) return std::numeric_limits<uint64_t>::max();
    if (v >= 9223372036854775808.0) return static_cast<uint64_t>(v);
  }
  if (v >= 9223372036854775808.0) return static_cast<D>(std::numeric_limits<int64_t>::max());
  if (v < -9223372036854775808.0) return static_cast<D>(std::numeric_limits<int64_t>::min());
  return static_cast<D>(static_cast<int64_t>(v));
}

template <typename S, typename D>
D convert(S s) {
  if constexpr (std::is_same_v<D, bool>) {
    if constexpr (std::is_same_v<S, Half> || std::is_same_v<S, BF16>) return load_f(s) != 0.0;
    else return s != S(0);
  } else if constexpr (is_int_like<S> && is_int_like<D>) {
    return static_cast<D>(s);
  } else if constexpr (std::is_same_v<D, Half>) {
    if constexpr (std::is_same_v<S, BF16>) return Half{float_to_half(bfloat16_to_float(s.bits))};
    else return Half{float_to_half(static_cast<float>(load_f(s)))};
  } else if constexpr (std::is_same_v<D, BF16>) {
    if constexpr (std::is_same_v<S, Half>) return BF16{float_to_bfloat16(half_to_float(s.bits))};
    else return BF16{float_to_bfloat16(static_cast<float>(load_f(s)))};
  } else if constexpr (std::is_floating_point_v<D>) {
    if constexpr (std::is_same_v<S, Half> || std::is_same_v<S, BF16>) return static_cast<D>(load_f(s));
    else return static_cast<D>(s);
  } else {  // float-like -> integer
    return float_to_int<D>(load_f(s));
  }
}

class CastKernel : public Kernel {
 public:
  CastKernel(const ir::Node& n, DType to) : node_(n), to_(to) {}
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.empty() || !in[0]) kfail(node_, "missing input 0");
    out[0] = cast_tensor(node_, *in[0], to_);
  }
  static Tensor cast_tensor(const ir::Node& node, const Tensor& x, DType to) {
    if (x.dtype() == to) return x;  // shares storage; tensors are immutable once produced
    if (to == DType::String) return to_strings(node, x);
    if (x.dtype() == DType::String) return from_strings(node, x, to);
    Tensor y = Tensor::uninitialized(to, x.shape());  // every element converted below
    if (x.dtype() == DType::Float && to == DType::Float16) {  // F16C when the CPU has it (core/half_array.cc)
      const float* s = x.data<float>();
      uint16_t* d = y.data<uint16_t>();
      parallel_for(x.numel(), 16384, [&](int64_t b, int64_t e) { floats_to_halves(s + b, d + b, e - b); });
      return y;
    }
    if (x.dtype() == DType::Float16 && to == DType::Float) {
      const uint16_t* s = x.data<uint16_t>();
      float* d = y.data<float>();
      parallel_for(x.numel(), 16384, [&](int64_t b, int64_t e) { halves_to_floats(s + b, d + b, e - b); });
      return y;
    }
    bool ok_src = false, ok_dst = false;
    ok_src = dispatch_cast_type(x.dtype(), [&](auto stag) {
      using S = decltype(stag);
      ok_dst = dispatch_cast_type(to, [&](auto dtag) {
        using D = decltype(dtag);
        const S* s = static_cast<const S*>(x.raw());
        D* d = static_cast<D*>(y.raw());
        parallel_for(x.numel(), 16384, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) d[i] = convert<S, D>(s[i]);
        });
      });
    });
    if (!ok_src) kfail(node, "unsupported input dtype {}", dtype_name(x.dtype()));
    if (!ok_dst) kfail(node, "unsupported target dtype {}", dtype_name(to));
    return y;
  }

 private:
  // Numbers -> strings as numpy prints them: shortest round-trip digits, "1.0" for integral floats,
  // "nan"/"inf"/"-inf", "True"/"False".
  static Tensor to_strings(const ir::Node& node, const Tensor& x) {
    Tensor y(DType::String, x.shape());
    auto& out = y.strings();
    if (x.dtype() == DType::Bool) {
      for (int64_t i = 0; i < x.numel(); ++i) out[i] = x.data<bool>()[i] ? "True" : "False";
      return y;
    }
    const bool flt = is_float(x.dtype());
    bool ok = dispatch_cast_type(x.dtype(), [&](auto tag) {
      using S = decltype(tag);
      const S* p = static_cast<const S*>(x.raw());
      for (int64_t i = 0; i < x.numel(); ++i) {
        std::string r;
        if constexpr (std::is_same_v<S, Half> || std::is_same_v<S, BF16>) r = fmt::format("{}", static_cast<float>(load_f(p[i])));
        else r = fmt::format("{}", p[i]);
        if (flt && r.find_first_of(".eEni") == std::string::npos) r += ".0";
        out[i] = std::move(r);
      }
    });
    if (!ok) kfail(node, "unsupported input dtype {}", dtype_name(x.dtype()));
    return y;
  }

  // Strings -> numbers: strtod for floats ("NaN", "INF", "+INF" accepted in any case), strtoll/strtoull for
  // integers; a string that does not parse completely is a Model error naming it.
  static Tensor from_strings(const ir::Node& node, const Tensor& x, DType to) {
    const auto& in = x.strings();
    Tensor d(DType::Double, x.shape());
    Tensor i64(is_signed_integer(to) ? DType::Int64 : DType::UInt64, x.shape());
    const bool integral = is_integer(to);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const std::string& s = in[static_cast<size_t>(i)];
      const char* b = s.c_str();
      char* e = nullptr;
      if (integral && is_signed_integer(to)) i64.data<int64_t>()[i] = std::strtoll(b, &e, 10);
      else if (integral) i64.data<uint64_t>()[i] = std::strtoull(b, &e, 10);
      else d.data<double>()[i] = std::strtod(b, &e);
      if (e == b || *e != '\0') kfail(node, "string '{}' is not a number", s);
    }
    return cast_tensor(node, integral ? i64 : d, to);
  }

 public:

 private:
  ir::Node node_;
  DType to_;
};

// Opset 24's `round_mode` only applies to casts to FLOAT8E8M0, a type the executor does not hold: any value the
// spec allows leaves every cast the executor runs unchanged; other values are refused.
void check_round_mode(const KernelInit& k) {
  if (k.opset < 24 || !k.node.has_attr("round_mode")) return;
  const std::string m = k.node.attr_string("round_mode", "up");
  if (m != "up" && m != "down" && m != "nearest")
    kfail(k.node, "attribute round_mode='{}' is not one of 'up', 'down', 'nearest'", m);
}

std::unique_ptr<Kernel> make_cast(const KernelInit& k) {
  check_round_mode(k);
  const ir::Attribute* a = k.node.attr("to");
  if (!a) kfail(k.node, "missing attribute 'to'");
  int64_t code = k.node.attr_int("to", 0);
  if (!dtype_is_known(static_cast<int32_t>(code)))
    kfail(k.node, "attribute to={} is not a supported dtype", code);
  DType to = static_cast<DType>(code);
  if (to == DType::Int4 || to == DType::UInt4 || to == DType::Undefined)
    kfail(k.node, "unsupported target dtype {}", dtype_name(to));
  return std::make_unique<CastKernel>(k.node, to);
}

// CastLike (15+): target dtype is the dtype of input 1.
class CastLikeKernel : public Kernel {
 public:
  explicit CastLikeKernel(const ir::Node& n) : node_(n) {}
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.size() < 2 || !in[0] || !in[1]) kfail(node_, "needs inputs 0 and 1");
    out[0] = CastKernel::cast_tensor(node_, *in[0], in[1]->dtype());
  }

 private:
  ir::Node node_;
};

std::unique_ptr<Kernel> make_cast_like(const KernelInit& k) {
  check_round_mode(k);
  return std::make_unique<CastLikeKernel>(k.node);
}

std::unique_ptr<Kernel> make_bitcast(const KernelInit& k) {
  const ir::Node node = k.node;
  if (!node.attr("to")) kfail(node, "missing attribute 'to'");
  const int64_t code = node.attr_int("to", 0);
  if (!dtype_is_known(static_cast<int32_t>(code))) kfail(node, "attribute to={} is not a supported dtype", code);
  const DType to = static_cast<DType>(code);
  if (to == DType::Int4 || to == DType::UInt4 || to == DType::String || to == DType::Undefined)
    kfail(node, "unsupported target dtype {}", dtype_name(to));
  return fn_kernel([node, to](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const DType from = x.dtype();
    if (from == DType::Int4 || from == DType::UInt4 || from == DType::String)
      kfail(node, "unsupported input dtype {}", dtype_name(from));
    if (dtype_size(from) != dtype_size(to))
      kfail(node, "input type {} ({} bits) and target type {} ({} bits) differ in width", dtype_name(from),
            8 * dtype_size(from), dtype_name(to), 8 * dtype_size(to));
    Tensor y = Tensor::uninitialized(to, x.shape());
    if (x.nbytes()) std::memcpy(y.raw(), x.raw(), x.nbytes());
    out[0] = std::move(y);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(BitCast, 26, kMaxOpset, make_bitcast);
OQ_REGISTER_KERNEL(Cast, 6, kMaxOpset, make_cast);
OQ_REGISTER_KERNEL(CastLike, 15, kMaxOpset, make_cast_like);

double naive_cast_value(double v, DType to) {
  switch (to) {
    case DType::Float: return static_cast<float>(v);
    case DType::Double: return v;
    case DType::Float16: return half_to_float(float_to_half(static_cast<float>(v)));
    case DType::BFloat16: return bfloat16_to_float(float_to_bfloat16(static_cast<float>(v)));
    case DType::Bool: return v != 0 ? 1 : 0;
    default: break;
  }
  OQ_CHECK(is_integer(to), "naive_cast_value: dtype {}", dtype_name(to));
  if (std::isnan(v)) return 0;
  double t = std::trunc(v);
  int bits = dtype_bits(to);
  if (bits == 64) return t;  // in range for the values tests use; 2^64 is not exact in double arithmetic
  double m = std::ldexp(1.0, bits);  // wrap modulo 2^bits
  double r = std::fmod(t, m);
  if (r < 0) r += m;
  if (is_signed_integer(to) && r >= m / 2) r -= m;
  return r;
}

}  // namespace oq::exec
