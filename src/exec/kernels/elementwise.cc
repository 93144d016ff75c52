// Binary arithmetic (Add Sub Mul Div Pow), comparisons (Equal Greater Less), logical (Not And),
// variadic (Max Min Sum Mean), Where and Expand — all with multidirectional broadcasting.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/broadcast.h"
#include "exec/kernels/elementwise.h"

namespace oq::exec {

namespace {

constexpr int64_t kGrain = 16384;  // elements per thread worth the fork

// out[i] = op(a[ia], b[ib]) over a broadcast plan. Inner runs have stride 1 or 0 per operand, split
// into four loops the compiler vectorises (same shape / scalar right / scalar left / both constant).
template <typename T, typename R, typename Op>
void binary_loop(const BroadcastPlan& p, const T* a, const T* b, R* o, Op op) {
  const int64_t inner = p.inner();
  const bool sa = p.inner_stride(0) != 0, sb = p.inner_stride(1) != 0;
  auto span = [&](const T* x, const T* y, R* z, int64_t n) {
    if (sa && sb) {
      for (int64_t i = 0; i < n; ++i) z[i] = op(x[i], y[i]);
    } else if (sa) {
      const T yv = *y;
      for (int64_t i = 0; i < n; ++i) z[i] = op(x[i], yv);
    } else if (sb) {
      const T xv = *x;
      for (int64_t i = 0; i < n; ++i) z[i] = op(xv, y[i]);
    } else {
      std::fill(z, z + n, static_cast<R>(op(*x, *y)));
    }
  };
  if (p.rows() == 1) {
    parallel_for(inner, kGrain, [&](int64_t b0, int64_t e0) {
      span(a + (sa ? b0 : 0), b + (sb ? b0 : 0), o + b0, e0 - b0);
    });
  } else if (p.rows() > 1) {
    parallel_for(p.rows(), std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
                 [&](int64_t rb, int64_t re) {
                   p.for_rows(rb, re, [&](int64_t row, const int64_t* off) {
                     span(a + off[0], b + off[1], o + row * inner, inner);
                   });
                 });
  }
}

Shape broadcast_or_fail(const ir::Node& node, const Shape& a, const Shape& b) {
  Shape out;
  if (!broadcast_shapes({&a, &b}, out))
    kfail(node, "shapes {} and {} do not broadcast", shape_str(a), shape_str(b));
  return out;
}

template <typename T>
T max_op(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return (b > a || std::isnan(b)) ? b : a;
  else return b > a ? b : a;
}
template <typename T>
T min_op(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return (b < a || std::isnan(b)) ? b : a;
  else return b < a ? b : a;
}

template <typename T>
T int_pow(T base, T exp) {  // exact integer power (exp < 0 -> 0 unless |base| == 1, as C++ truncation)
  if (exp < 0) {
    if (base == 1) return 1;
    if constexpr (std::is_signed_v<T>)
      if (base == -1) return (exp % 2) ? -1 : 1;
    return 0;
  }
  T r = 1;
  while (exp > 0) {
    if (exp & 1) r = wrap_mul(r, base);
    base = wrap_mul(base, base);
    exp >>= 1;
  }
  return r;
}

// Remainder with the dividend's sign (c_style) or the divisor's sign (Python's %). v != 0 for integers.
template <typename T>
T mod_op(T u, T v, bool c_style) {
  T r;
  if constexpr (std::is_floating_point_v<T>) {
    r = std::fmod(u, v);
  } else if constexpr (std::is_signed_v<T>) {
    if (v == T(-1)) return T(0);  // avoids INT_MIN % -1
    r = static_cast<T>(u % v);
  } else {
    return static_cast<T>(u % v);
  }
  if (!c_style && r != T(0) && ((r < T(0)) != (v < T(0)))) r = static_cast<T>(r + v);
  if constexpr (std::is_floating_point_v<T>)  // opset 28: a zero remainder of fmod = 0 takes the divisor's sign
    if (!c_style && r == T(0)) r = std::copysign(T(0), v);
  return r;
}

// Computes a op b into a fresh tensor of dtype `rt` (a.dtype() when Undefined). Same-dtype operands.
Tensor compute_binary(const ir::Node& node, BinOp op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    kfail(node, "input dtypes differ: {} and {}", dtype_name(a.dtype()), dtype_name(b.dtype()));
  if (is_half(a.dtype())) {
    Tensor r = compute_binary(node, op, a.cast(DType::Float), b.cast(DType::Float));
    return r.dtype() == DType::Float ? r.cast(a.dtype()) : r;
  }
  Shape os = broadcast_or_fail(node, a.shape(), b.shape());
  BroadcastPlan plan({a.shape(), b.shape()}, os);
  const bool logical = op == BinOp::And || op == BinOp::Or || op == BinOp::Xor;
  const bool cmp = op == BinOp::Equal || op == BinOp::Greater || op == BinOp::Less ||
                   op == BinOp::GreaterOrEqual || op == BinOp::LessOrEqual;
  if (logical) {
    if (a.dtype() != DType::Bool) kfail(node, "unsupported dtype {}", dtype_name(a.dtype()));
    Tensor out = Tensor::uninitialized(DType::Bool, os);
    const bool *x = a.data<bool>(), *y = b.data<bool>();
    bool* o = out.data<bool>();
    if (op == BinOp::And) binary_loop(plan, x, y, o, [](bool u, bool v) { return u && v; });
    else if (op == BinOp::Or) binary_loop(plan, x, y, o, [](bool u, bool v) { return u || v; });
    else binary_loop(plan, x, y, o, [](bool u, bool v) { return u != v; });
    return out;
  }
  if (cmp) {
    Tensor out = Tensor::uninitialized(DType::Bool, os);
    bool* o = out.data<bool>();
    if (a.dtype() == DType::String && op == BinOp::Equal) {  // opset 19+
      auto oa = naive_broadcast_offsets(a.shape(), os), ob = naive_broadcast_offsets(b.shape(), os);
      for (size_t i = 0; i < oa.size(); ++i) o[i] = a.strings()[oa[i]] == b.strings()[ob[i]];
      return out;
    }
    if (a.dtype() == DType::Bool && op == BinOp::Equal) {
      binary_loop(plan, a.data<bool>(), b.data<bool>(), o, [](bool x, bool y) { return x == y; });
      return out;
    }
    bool ok = dispatch_numeric(a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* x = a.data<T>();
      const T* y = b.data<T>();
      if (op == BinOp::Equal) binary_loop(plan, x, y, o, [](T u, T v) { return u == v; });
      else if (op == BinOp::Greater) binary_loop(plan, x, y, o, [](T u, T v) { return u > v; });
      else if (op == BinOp::Less) binary_loop(plan, x, y, o, [](T u, T v) { return u < v; });
      else if (op == BinOp::GreaterOrEqual) binary_loop(plan, x, y, o, [](T u, T v) { return u >= v; });
      else binary_loop(plan, x, y, o, [](T u, T v) { return u <= v; });
    });
    if (!ok) kfail(node, "unsupported dtype {}", dtype_name(a.dtype()));
    return out;
  }
  Tensor out = Tensor::uninitialized(a.dtype(), os);
  bool ok = dispatch_numeric(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    const T* y = b.data<T>();
    T* o = out.data<T>();
    switch (op) {
      case BinOp::Add: binary_loop(plan, x, y, o, [](T u, T v) { return wrap_add(u, v); }); break;
      case BinOp::Sub: binary_loop(plan, x, y, o, [](T u, T v) { return wrap_sub(u, v); }); break;
      case BinOp::Mul: binary_loop(plan, x, y, o, [](T u, T v) { return wrap_mul(u, v); }); break;
      case BinOp::Div:
        if constexpr (std::is_integral_v<T>) {
          for (int64_t i = 0; i < b.numel(); ++i)
            if (y[i] == 0) kfail(node, "integer division by zero");
          binary_loop(plan, x, y, o, [](T u, T v) {
            if constexpr (std::is_signed_v<T>)
              if (v == -1) return wrap_sub(T{0}, u);  // avoids INT_MIN / -1 overflow
            return static_cast<T>(u / v);
          });
        } else {
          binary_loop(plan, x, y, o, [](T u, T v) { return u / v; });
        }
        break;
      case BinOp::Pow:
        if constexpr (std::is_integral_v<T>) binary_loop(plan, x, y, o, [](T u, T v) { return int_pow(u, v); });
        else binary_loop(plan, x, y, o, [](T u, T v) { return static_cast<T>(std::pow(u, v)); });
        break;
      case BinOp::Max: binary_loop(plan, x, y, o, [](T u, T v) { return max_op(u, v); }); break;
      case BinOp::Min: binary_loop(plan, x, y, o, [](T u, T v) { return min_op(u, v); }); break;
      case BinOp::Mod:
      case BinOp::FMod:
        if constexpr (std::is_integral_v<T>) {
          for (int64_t i = 0; i < b.numel(); ++i)
            if (y[i] == 0) kfail(node, "integer modulo by zero");
        }
        if (op == BinOp::FMod) binary_loop(plan, x, y, o, [](T u, T v) { return mod_op<T>(u, v, true); });
        else binary_loop(plan, x, y, o, [](T u, T v) { return mod_op<T>(u, v, false); });
        break;
      case BinOp::PRelu:
        binary_loop(plan, x, y, o, [](T u, T v) { return u < T(0) ? wrap_mul(u, v) : u; });
        break;
      default: OQ_CHECK(false, "binary op {}", static_cast<int>(op));
    }
  });
  if (!ok) kfail(node, "unsupported dtype {}", dtype_name(a.dtype()));
  return out;
}

const Tensor& need(const ir::Node& node, const std::vector<const Tensor*>& in, size_t i) {
  if (i >= in.size() || !in[i]) kfail(node, "missing input {}", i);
  return *in[i];
}

// Pow by one exponent 1, 2, 3, 0.5 or -1 (a float or double base, an exponent of one element that does not
// widen the result): plain loops. 2 and 3: x * x and x * x * x, what onnxruntime computes (its own fast path;
// std::pow rounds x^3 differently). 0.5: sqrt with pow's +0 for -0 and +inf for -inf; -1: 1 / x; both correctly
// rounded where std::pow and onnxruntime are 1 ulp off on a few inputs (docs/conformance.md).
template <typename T>
void pow_by_constant(const T* x, T* y, int64_t n, double e) {
  const T inf = std::numeric_limits<T>::infinity();
  parallel_for(n, 16384, [&](int64_t b, int64_t end) {
    if (e == 2) for (int64_t i = b; i < end; ++i) y[i] = x[i] * x[i];
    else if (e == 3) for (int64_t i = b; i < end; ++i) y[i] = x[i] * x[i] * x[i];
    else if (e == 1) std::copy(x + b, x + end, y + b);
    else if (e == -1) for (int64_t i = b; i < end; ++i) y[i] = T(1) / x[i];
    else
      for (int64_t i = b; i < end; ++i) {
        const T r = std::sqrt(x[i]);
        y[i] = x[i] == T(0) ? T(0) : x[i] == -inf ? inf : r;
      }
  });
}

// False when the fast path does not apply.
bool pow_fast_path(const Tensor& a, const Tensor& b, Tensor& out) {
  if ((a.dtype() != DType::Float && a.dtype() != DType::Double) || b.numel() != 1 || b.rank() > a.rank() ||
      !(is_float(b.dtype()) || is_integer(b.dtype())))
    return false;
  const double e = b.cast(DType::Double).data<double>()[0];
  if (e != 2 && e != 3 && e != 1 && e != -1 && e != 0.5) return false;
  out = Tensor::uninitialized(a.dtype(), a.shape());
  if (a.dtype() == DType::Float) pow_by_constant(a.data<float>(), out.data<float>(), a.numel(), e);
  else pow_by_constant(a.data<double>(), out.data<double>(), a.numel(), e);
  return true;
}

class BinaryKernel : public Kernel {
 public:
  BinaryKernel(const ir::Node& n, BinOp op) : node_(n), op_(op) {}
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const Tensor& a = need(node_, in, 0);
    const Tensor& b = need(node_, in, 1);
    if (op_ == BinOp::Pow && pow_fast_path(a, b, out[0])) return;
    if (op_ == BinOp::Pow && a.dtype() != b.dtype()) {
      // Pow (12+) allows any numeric exponent type: compute in double, result in the base's dtype.
      if (!dispatch_numeric(b.dtype(), [](auto) {}) && !is_half(b.dtype()))
        kfail(node_, "unsupported exponent dtype {}", dtype_name(b.dtype()));
      if (is_integer(a.dtype()) && is_float(b.dtype())) {
        Tensor r = compute_binary(node_, op_, a.cast(DType::Double), b.cast(DType::Double));
        // Truncate toward zero like a C++ cast of std::pow's result.
        for (double& v : r.span<double>()) v = std::trunc(v);
        out[0] = r.cast(a.dtype());
      } else {
        out[0] = compute_binary(node_, op_, a, b.cast(a.dtype()));
      }
      return;
    }
    if (op_ == BinOp::PRelu) {
      Shape os;
      if (!broadcast_shapes({&a.shape(), &b.shape()}, os) || os != a.shape())
        kfail(node_, "slope shape {} does not broadcast to input shape {}", shape_str(b.shape()),
              shape_str(a.shape()));
    }
    out[0] = compute_binary(node_, op_, a, b);
  }

 private:
  ir::Node node_;
  BinOp op_;
};

// Max/Min/Sum/Mean: left fold of the broadcasting binary op over all inputs.
class VariadicKernel : public Kernel {
 public:
  VariadicKernel(const ir::Node& n, BinOp op, bool mean) : node_(n), op_(op), mean_(mean) {}
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.empty()) kfail(node_, "needs at least one input");
    Tensor acc = need(node_, in, 0);
    if (in.size() == 1) acc = acc.clone();
    for (size_t i = 1; i < in.size(); ++i) acc = compute_binary(node_, op_, acc, need(node_, in, i));
    if (mean_) {
      if (!is_float(acc.dtype())) kfail(node_, "unsupported dtype {}", dtype_name(acc.dtype()));
      Tensor n = Tensor::scalar_float(static_cast<float>(in.size())).cast(acc.dtype());
      acc = compute_binary(node_, BinOp::Div, acc, n);
    } else if (!dispatch_numeric(acc.dtype(), [](auto) {}) && !is_half(acc.dtype())) {
      kfail(node_, "unsupported dtype {}", dtype_name(acc.dtype()));
    }
    out[0] = acc;
  }

 private:
  ir::Node node_;
  BinOp op_;
  bool mean_;
};

class NotKernel : public Kernel {
 public:
  explicit NotKernel(const ir::Node& n) : node_(n) {}
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const Tensor& x = need(node_, in, 0);
    if (x.dtype() != DType::Bool) kfail(node_, "unsupported dtype {}", dtype_name(x.dtype()));
    Tensor o = Tensor::uninitialized(DType::Bool, x.shape());
    const bool* s = x.data<bool>();
    bool* d = o.data<bool>();
    for (int64_t i = 0; i < x.numel(); ++i) d[i] = !s[i];
    out[0] = o;
  }

 private:
  ir::Node node_;
};

// Copies by element size: Where and Expand work for every fixed-size dtype.
template <typename F>
bool dispatch_bytes(size_t size, F&& f) {
  switch (size) {
    case 1: f(uint8_t{}); return true;
    case 2: f(uint16_t{}); return true;
    case 4: f(uint32_t{}); return true;
    case 8: f(uint64_t{}); return true;
    default: return false;
  }
}

// One output run of Where with each operand's stride (0 or 1) known at compile time, the select done with a
// mask (T is an unsigned type of the element's size): branch-free, so the compiler vectorises it. (A branch per
// element, with runtime strides, was mispredicted on half of a random mask.)
template <typename T, int SC, int SX, int SY>
void where_run(const bool* c, const T* x, const T* y, T* o, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T m = static_cast<T>(-static_cast<int>(c[i * SC]));  // all ones where the condition holds
    o[i] = static_cast<T>((x[i * SX] & m) | (y[i * SY] & static_cast<T>(~m)));
  }
}

template <typename T>
using WhereRun = void (*)(const bool*, const T*, const T*, T*, int64_t);

template <typename T>
WhereRun<T> where_run_for(int64_t sc, int64_t sx, int64_t sy) {
  static constexpr WhereRun<T> runs[8] = {where_run<T, 0, 0, 0>, where_run<T, 0, 0, 1>, where_run<T, 0, 1, 0>,
                                          where_run<T, 0, 1, 1>, where_run<T, 1, 0, 0>, where_run<T, 1, 0, 1>,
                                          where_run<T, 1, 1, 0>, where_run<T, 1, 1, 1>};
  return runs[(sc != 0) * 4 + (sx != 0) * 2 + (sy != 0)];
}

class WhereKernel : public Kernel {
 public:
  explicit WhereKernel(const ir::Node& n) : node_(n) {}
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const Tensor& c = need(node_, in, 0);
    const Tensor& x = need(node_, in, 1);
    const Tensor& y = need(node_, in, 2);
    if (c.dtype() != DType::Bool) kfail(node_, "condition dtype {} is not BOOL", dtype_name(c.dtype()));
    if (x.dtype() != y.dtype())
      kfail(node_, "input dtypes differ: {} and {}", dtype_name(x.dtype()), dtype_name(y.dtype()));
    Shape os;
    if (!broadcast_shapes({&c.shape(), &x.shape(), &y.shape()}, os))
      kfail(node_, "shapes {}, {} and {} do not broadcast", shape_str(c.shape()), shape_str(x.shape()),
            shape_str(y.shape()));
    Tensor o = Tensor::uninitialized(x.dtype(), os);
    if (x.dtype() == DType::String) {
      auto offc = naive_broadcast_offsets(c.shape(), os), offx = naive_broadcast_offsets(x.shape(), os),
           offy = naive_broadcast_offsets(y.shape(), os);
      for (size_t i = 0; i < offc.size(); ++i)
        o.strings()[i] = c.data<bool>()[offc[i]] ? x.strings()[offx[i]] : y.strings()[offy[i]];
      out[0] = o;
      return;
    }
    BroadcastPlan p({c.shape(), x.shape(), y.shape()}, os);
    bool ok = dispatch_bytes(dtype_size(x.dtype()), [&](auto tag) {
      using T = decltype(tag);
      const bool* pc = c.data<bool>();
      const T* px = static_cast<const T*>(x.raw());
      const T* py = static_cast<const T*>(y.raw());
      T* po = static_cast<T*>(o.raw());
      const int64_t inner = p.inner();
      const WhereRun<T> run = where_run_for<T>(p.inner_stride(0), p.inner_stride(1), p.inner_stride(2));
      parallel_for(p.rows(), std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
                   [&](int64_t rb, int64_t re) {
                     p.for_rows(rb, re, [&](int64_t row, const int64_t* off) {
                       run(pc + off[0], px + off[1], py + off[2], po + row * inner, inner);
                     });
                   });
    });
    if (!ok) kfail(node_, "unsupported dtype {}", dtype_name(x.dtype()));
    out[0] = o;
  }

 private:
  ir::Node node_;
};

class ExpandKernel : public Kernel {
 public:
  explicit ExpandKernel(const ir::Node& n) : node_(n) {}
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const Tensor& x = need(node_, in, 0);
    const Tensor& s = need(node_, in, 1);
    if (s.dtype() != DType::Int64 || s.rank() != 1)
      kfail(node_, "shape input must be a 1-D INT64 tensor, got {} {}", dtype_name(s.dtype()),
            shape_str(s.shape()));
    Shape target(s.data<int64_t>(), s.data<int64_t>() + s.numel());
    Shape os;
    if (!broadcast_shapes({&x.shape(), &target}, os))
      kfail(node_, "input shape {} does not broadcast with shape {}", shape_str(x.shape()), shape_str(target));
    Tensor o = Tensor::uninitialized(x.dtype(), os);
    if (x.dtype() == DType::String) {
      auto off = naive_broadcast_offsets(x.shape(), os);
      for (size_t i = 0; i < off.size(); ++i) o.strings()[i] = x.strings()[off[i]];
      out[0] = o;
      return;
    }
    BroadcastPlan p({x.shape()}, os);
    bool ok = dispatch_bytes(dtype_size(x.dtype()), [&](auto tag) {
      using T = decltype(tag);
      const T* px = static_cast<const T*>(x.raw());
      T* po = static_cast<T*>(o.raw());
      const int64_t inner = p.inner();
      const bool contiguous = p.inner_stride(0) != 0;
      parallel_for(p.rows(), std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
                   [&](int64_t rb, int64_t re) {
                     p.for_rows(rb, re, [&](int64_t row, const int64_t* off) {
                       T* oo = po + row * inner;
                       if (contiguous) std::memcpy(oo, px + off[0], sizeof(T) * inner);
                       else std::fill(oo, oo + inner, px[off[0]]);
                     });
                   });
    });
    if (!ok) kfail(node_, "unsupported dtype {}", dtype_name(x.dtype()));
    out[0] = o;
  }

 private:
  ir::Node node_;
};

template <BinOp op>
std::unique_ptr<Kernel> make_binary(const KernelInit& k) {
  return std::make_unique<BinaryKernel>(k.node, op);
}
std::unique_ptr<Kernel> make_mod(const KernelInit& k) {
  return std::make_unique<BinaryKernel>(k.node, k.node.attr_int("fmod", 0) ? BinOp::FMod : BinOp::Mod);
}
template <BinOp op, bool mean>
std::unique_ptr<Kernel> make_variadic(const KernelInit& k) {
  return std::make_unique<VariadicKernel>(k.node, op, mean);
}
template <typename K>
std::unique_ptr<Kernel> make_plain(const KernelInit& k) {
  return std::make_unique<K>(k.node);
}

}  // namespace

OQ_REGISTER_KERNEL(Add, 7, kMaxOpset, make_binary<BinOp::Add>);
OQ_REGISTER_KERNEL(Sub, 7, kMaxOpset, make_binary<BinOp::Sub>);
OQ_REGISTER_KERNEL(Mul, 7, kMaxOpset, make_binary<BinOp::Mul>);
OQ_REGISTER_KERNEL(Div, 7, kMaxOpset, make_binary<BinOp::Div>);
OQ_REGISTER_KERNEL(Pow, 7, kMaxOpset, make_binary<BinOp::Pow>);
OQ_REGISTER_KERNEL(Equal, 7, kMaxOpset, make_binary<BinOp::Equal>);
OQ_REGISTER_KERNEL(Greater, 7, kMaxOpset, make_binary<BinOp::Greater>);
OQ_REGISTER_KERNEL(Less, 7, kMaxOpset, make_binary<BinOp::Less>);
OQ_REGISTER_KERNEL(PRelu, 7, kMaxOpset, make_binary<BinOp::PRelu>);
OQ_REGISTER_KERNEL(And, 7, kMaxOpset, make_binary<BinOp::And>);
OQ_REGISTER_KERNEL(Or, 7, kMaxOpset, make_binary<BinOp::Or>);
OQ_REGISTER_KERNEL(Xor, 7, kMaxOpset, make_binary<BinOp::Xor>);
OQ_REGISTER_KERNEL(GreaterOrEqual, 12, kMaxOpset, make_binary<BinOp::GreaterOrEqual>);
OQ_REGISTER_KERNEL(LessOrEqual, 12, kMaxOpset, make_binary<BinOp::LessOrEqual>);
OQ_REGISTER_KERNEL(Mod, 10, kMaxOpset, make_mod);
OQ_REGISTER_KERNEL(Max, 6, kMaxOpset, (make_variadic<BinOp::Max, false>));
OQ_REGISTER_KERNEL(Min, 6, kMaxOpset, (make_variadic<BinOp::Min, false>));
OQ_REGISTER_KERNEL(Sum, 6, kMaxOpset, (make_variadic<BinOp::Add, false>));
OQ_REGISTER_KERNEL(Mean, 6, kMaxOpset, (make_variadic<BinOp::Add, true>));
OQ_REGISTER_KERNEL(Not, 1, kMaxOpset, make_plain<NotKernel>);
OQ_REGISTER_KERNEL(Where, 9, kMaxOpset, make_plain<WhereKernel>);
OQ_REGISTER_KERNEL(Expand, 8, kMaxOpset, make_plain<ExpandKernel>);

// ---- naive reference ----

Tensor naive_binary(BinOp op, const Tensor& a, const Tensor& b) {
  Shape os;
  OQ_CHECK(broadcast_shapes({&a.shape(), &b.shape()}, os), "naive_binary: shapes do not broadcast");
  auto oa = naive_broadcast_offsets(a.shape(), os), ob = naive_broadcast_offsets(b.shape(), os);
  std::vector<double> va = a.to_doubles(), vb = b.to_doubles();
  const bool to_bool = op == BinOp::Equal || op == BinOp::Greater || op == BinOp::Less || op == BinOp::And ||
                       op == BinOp::Or || op == BinOp::Xor || op == BinOp::GreaterOrEqual ||
                       op == BinOp::LessOrEqual;
  std::vector<double> r(oa.size());
  for (size_t i = 0; i < oa.size(); ++i) {
    double x = va[oa[i]], y = vb[ob[i]], v = 0;
    switch (op) {
      case BinOp::Add: v = x + y; break;
      case BinOp::Sub: v = x - y; break;
      case BinOp::Mul: v = x * y; break;
      case BinOp::Div: v = is_integer(a.dtype()) ? std::trunc(x / y) : x / y; break;
      case BinOp::Pow: v = std::pow(x, y); break;
      case BinOp::Max: v = (std::isnan(x) || std::isnan(y)) ? NAN : std::max(x, y); break;
      case BinOp::Min: v = (std::isnan(x) || std::isnan(y)) ? NAN : std::min(x, y); break;
      case BinOp::Equal: v = x == y; break;
      case BinOp::Greater: v = x > y; break;
      case BinOp::Less: v = x < y; break;
      case BinOp::And: v = (x != 0) && (y != 0); break;
      case BinOp::GreaterOrEqual: v = x >= y; break;
      case BinOp::LessOrEqual: v = x <= y; break;
      case BinOp::Or: v = (x != 0) || (y != 0); break;
      case BinOp::Xor: v = (x != 0) != (y != 0); break;
      case BinOp::PRelu: v = x < 0 ? x * y : x; break;
      case BinOp::FMod: v = std::fmod(x, y); break;
      case BinOp::Mod:  // x - floor(x / y) y (opset 28's definition) with its special cases
        if (std::isnan(x) || std::isnan(y) || std::isinf(x) || y == 0) v = NAN;
        else if (std::isinf(y)) v = (x == 0 || (x < 0) == (y < 0)) ? (x == 0 ? std::copysign(0.0, y) : x) : y;
        else v = x - std::floor(x / y) * y;
        if (v == 0) v = std::copysign(0.0, y);
        break;
    }
    r[i] = v;
  }
  Tensor d = Tensor::from_vector(DType::Double, os, r);
  return d.cast(to_bool ? DType::Bool : a.dtype());
}

}  // namespace oq::exec
