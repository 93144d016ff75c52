// GroupNormalization (18, 21), LRN (1, 13), MeanVarianceNormalization (9, 13), LpNormalization (1, 22) and
// Hardmax (1, 11, 13), registered up to kMaxOpset. Every float type of the schemas: float32 and float64 are
// computed in their own type, float16 / bfloat16 in float32 with the result rounded back (what ORT's CPU kernels
// do for float16). Naive references (namespace ref) are declared in norm_extra.h.
//
// Version differences handled here:
//  - GroupNormalization-18 takes scale / bias with one value per group, 21 one per channel (the 18 definition
//    was wrong and is deprecated); 21 adds stash_type, the precision of the normalisation stage (1 = float32,
//    11 = float64 run; other types are refused when the kernel is built). At 18 the stage runs in x's type.
//  - Hardmax before 13 coerces the input to 2-D at `axis` (default 1); from 13 on it works along `axis` only
//    (default -1).
//  - bfloat16 appears at LRN-13, MeanVarianceNormalization-13, Hardmax-13, LpNormalization-22; nothing else
//    changes between the versions of these schemas (doc wording).
#include "exec/kernels/norm_extra.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel.h"
#include "exec/kernels/extra_util.h"

namespace oq::exec {

// ------------------------------------------------------------------------------------------ naive references
namespace ref {
namespace {
int64_t prod(const Shape& s, int b, int e) {
  int64_t p = 1;
  for (int i = b; i < e; ++i) p *= s[i];
  return p;
}
}  // namespace

Tensor group_norm(const Tensor& x, const Tensor& scale, const Tensor& bias, int64_t groups, float epsilon,
                  bool per_group_affine, DType stash) {
  const int64_t N = x.dim(0), C = x.dim(1), inner = prod(x.shape(), 2, x.rank()), cpg = C / groups;
  const std::vector<double> X = x.to_doubles(), S = scale.to_doubles(), B = bias.to_doubles();
  std::vector<double> Y(X.size());
  auto round_stash = [&](double v) { return stash == DType::Float ? static_cast<double>(static_cast<float>(v)) : v; };
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < groups; ++g) {
      double sum = 0, sq = 0;
      const int64_t cnt = cpg * inner;
      for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
        for (int64_t i = 0; i < inner; ++i) sum += X[(n * C + c) * inner + i];
      const double mean = cnt ? sum / cnt : 0;
      for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
        for (int64_t i = 0; i < inner; ++i) {
          const double d = X[(n * C + c) * inner + i] - mean;
          sq += d * d;
        }
      const double var = cnt ? sq / cnt : 0;
      for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
        const int64_t a = per_group_affine ? g : c;
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t f = (n * C + c) * inner + i;
          Y[f] = round_stash((X[f] - mean) / std::sqrt(var + static_cast<double>(epsilon))) * S[a] + B[a];
        }
      }
    }
  Tensor y(DType::Double, x.shape());
  std::copy(Y.begin(), Y.end(), y.data<double>());
  return y.cast(x.dtype());
}

Tensor lrn(const Tensor& x, int64_t size, float alpha, float beta, float bias) {
  const int64_t N = x.dim(0), C = x.dim(1), inner = prod(x.shape(), 2, x.rank());
  const int64_t lo = (size - 1) / 2, hi = size - 1 - lo;  // floor / ceil of (size-1)/2
  const std::vector<double> X = x.to_doubles();
  Tensor y(DType::Double, x.shape());
  double* Y = y.data<double>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        double sq = 0;
        for (int64_t k = std::max<int64_t>(0, c - lo); k <= std::min(C - 1, c + hi); ++k) {
          const double v = X[(n * C + k) * inner + i];
          sq += v * v;
        }
        const int64_t f = (n * C + c) * inner + i;
        Y[f] = X[f] / std::pow(static_cast<double>(bias) + static_cast<double>(alpha) / size * sq, beta);
      }
  return y.cast(x.dtype());
}

Tensor mean_variance_norm(const Tensor& x, const std::vector<int64_t>& axes) {
  const int r = x.rank();
  std::vector<bool> red(r, false);
  for (int64_t a : axes) red[a] = true;
  // Reduced position of flat element f: its index with the reduced axes dropped.
  auto kept = [&](int64_t f) {
    int64_t k = 0, stride = 1;
    for (int d = r - 1; d >= 0; --d) {
      const int64_t idx = f % x.dim(d);
      f /= x.dim(d);
      if (!red[d]) k += idx * stride, stride *= x.dim(d);
    }
    return k;
  };
  int64_t groups = 1, cnt = 1;
  for (int d = 0; d < r; ++d) (red[d] ? cnt : groups) *= x.dim(d);
  const std::vector<double> X = x.to_doubles();
  std::vector<double> sum(groups, 0), sq(groups, 0);
  for (int64_t f = 0; f < x.numel(); ++f) sum[kept(f)] += X[f];
  for (auto& s : sum) s /= static_cast<double>(cnt);
  for (int64_t f = 0; f < x.numel(); ++f) {
    const double d = X[f] - sum[kept(f)];
    sq[kept(f)] += d * d;
  }
  Tensor y(DType::Double, x.shape());
  for (int64_t f = 0; f < x.numel(); ++f) {
    const int64_t k = kept(f);
    y.data<double>()[f] = (X[f] - sum[k]) / (std::sqrt(sq[k] / static_cast<double>(cnt)) + 1e-9);
  }
  return y.cast(x.dtype());
}

Tensor lp_norm(const Tensor& x, int axis, int p) {
  const int64_t outer = prod(x.shape(), 0, axis), len = x.dim(axis), inner = prod(x.shape(), axis + 1, x.rank());
  const std::vector<double> X = x.to_doubles();
  Tensor y(DType::Double, x.shape());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double s = 0;
      for (int64_t l = 0; l < len; ++l) {
        const double v = X[(o * len + l) * inner + i];
        s += p == 1 ? std::abs(v) : v * v;
      }
      const double norm = p == 1 ? s : std::sqrt(s);
      for (int64_t l = 0; l < len; ++l) {
        const int64_t f = (o * len + l) * inner + i;
        y.data<double>()[f] = norm == 0 ? 0.0 : X[f] / norm;
      }
    }
  return y.cast(x.dtype());
}

Tensor hardmax(const Tensor& x, int axis, bool coerce_2d) {
  const int64_t outer = prod(x.shape(), 0, axis);
  const int64_t len = coerce_2d ? prod(x.shape(), axis, x.rank()) : x.dim(axis);
  const int64_t inner = coerce_2d ? 1 : prod(x.shape(), axis + 1, x.rank());
  const std::vector<double> X = x.to_doubles();
  Tensor y(DType::Double, x.shape());  // zeros
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = -1;
      for (int64_t l = 0; l < len && len > 0; ++l) {
        const double v = X[(o * len + l) * inner + i];
        if (best >= 0 && std::isnan(X[(o * len + best) * inner + i])) break;
        if (best < 0 || std::isnan(v) || v > X[(o * len + best) * inner + i]) best = l;
      }
      if (best >= 0) y.data<double>()[(o * len + best) * inner + i] = 1.0;
    }
  return y.cast(x.dtype());
}

}  // namespace ref

namespace {

// ------------------------------------------------------------------------------------------ GroupNormalization
// One (n, group) block of cpg channels x inner elements, contiguous. Stage one in S, the affine part in T.
template <typename T, typename S>
void group_norm_block(const T* x, T* y, int64_t cpg, int64_t inner, const T* scale, const T* bias, float eps) {
  const int64_t cnt = cpg * inner;
  double sum = 0;
  for (int64_t i = 0; i < cnt; ++i) sum += static_cast<double>(static_cast<S>(x[i]));
  const double mean = cnt ? sum / static_cast<double>(cnt) : 0;
  double sq = 0;
  for (int64_t i = 0; i < cnt; ++i) {
    const double d = static_cast<double>(static_cast<S>(x[i])) - mean;
    sq += d * d;
  }
  const S m = static_cast<S>(mean);
  const S inv = static_cast<S>(1.0 / std::sqrt((cnt ? sq / static_cast<double>(cnt) : 0) + static_cast<double>(eps)));
  for (int64_t c = 0; c < cpg; ++c) {
    const T a = scale[c], b = bias[c];
    const T* xr = x + c * inner;
    T* yr = y + c * inner;
    for (int64_t i = 0; i < inner; ++i) yr[i] = static_cast<T>((static_cast<S>(xr[i]) - m) * inv) * a + b;
  }
}

class GroupNormKernel final : public Kernel {
 public:
  explicit GroupNormKernel(const KernelInit& init) : node_(init.node), opset_(init.opset) {
    if (!node_.has_attr("num_groups")) kfail(node_, "attribute num_groups is required");
    groups_ = node_.attr_int("num_groups", 0);
    if (groups_ <= 0) kfail(node_, "num_groups must be positive, got {}", groups_);
    epsilon_ = node_.attr_float("epsilon", 1e-5f);
    if (opset_ >= 21) {
      const int64_t st = node_.attr_int("stash_type", 1);
      if (st == 1) stash_ = DType::Float;
      else if (st == 11) stash_ = DType::Double;
      else kfail(node_, "stash_type={} is not supported (1 = float or 11 = double)", st);
    }
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const Tensor& x = input_at(node_, in, 0);
    const Tensor& sc = input_at(node_, in, 1);
    const Tensor& bi = input_at(node_, in, 2);
    require_float_type(node_, x.dtype(), "X", /*bf16=*/true);
    if (sc.dtype() != x.dtype() || bi.dtype() != x.dtype())
      kfail(node_, "scale ({}) and bias ({}) must have X's type {}", dtype_name(sc.dtype()), dtype_name(bi.dtype()),
            dtype_name(x.dtype()));
    if (x.rank() < 2) kfail(node_, "X must have rank >= 2, got shape {}", shape_str(x.shape()));
    const int64_t C = x.dim(1);
    if (C % groups_ != 0) kfail(node_, "{} channels are not divisible by num_groups={}", C, groups_);
    const bool per_group = opset_ < 21;
    const int64_t want = per_group ? groups_ : C;
    for (const Tensor* t : {&sc, &bi})
      if (t->rank() != 1 || t->dim(0) != want)
        kfail(node_, "scale and bias must have shape [{}] ({} at opset {}), got {} and {}", want,
              per_group ? "one value per group" : "one value per channel", opset_, shape_str(sc.shape()),
              shape_str(bi.shape()));
    const Tensor xc = widen_half(x), sw = widen_half(sc), bw = widen_half(bi);
    // Stage-one precision: stash_type from 21, x's computing type before.
    const DType stash = opset_ >= 21 ? stash_ : xc.dtype();
    Tensor y = Tensor::uninitialized(xc.dtype(), x.shape());
    const int64_t N = x.dim(0), cpg = C / groups_, inner = C ? x.numel() / std::max<int64_t>(N * C, 1) : 0;
    auto go = [&](auto tag, auto stag) {
      using T = decltype(tag);
      using S = decltype(stag);
      const T *X = xc.data<T>(), *Sc = sw.data<T>(), *Bi = bw.data<T>();
      T* Y = y.data<T>();
      // Per-group affine (opset 18): expand to one value per channel.
      std::vector<T> s(C), b(C);
      for (int64_t c = 0; c < C; ++c) s[c] = Sc[per_group ? c / cpg : c], b[c] = Bi[per_group ? c / cpg : c];
      const int64_t blk = cpg * inner;
      parallel_for(N * groups_, std::max<int64_t>(1, 16384 / std::max<int64_t>(blk, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t g = r % groups_;
          group_norm_block<T, S>(X + r * blk, Y + r * blk, cpg, inner, s.data() + g * cpg, b.data() + g * cpg,
                                 epsilon_);
        }
      });
    };
    if (x.numel() > 0) {
      if (xc.dtype() == DType::Float) {
        if (stash == DType::Double) go(float{}, double{});
        else go(float{}, float{});
      } else {
        if (stash == DType::Float) go(double{}, float{});
        else go(double{}, double{});
      }
    }
    out[0] = narrow_to(std::move(y), x.dtype());
  }

 private:
  ir::Node node_;
  int opset_;
  int64_t groups_ = 1;
  float epsilon_ = 1e-5f;
  DType stash_ = DType::Float;
};

// ------------------------------------------------------------------------------------------ LRN
std::unique_ptr<Kernel> make_lrn(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  if (!node.has_attr("size")) kfail(node, "attribute size is required");
  const int64_t size = node.attr_int("size", 0);
  if (size <= 0) kfail(node, "size must be positive, got {}", size);
  const float alpha = node.attr_float("alpha", 1e-4f), beta = node.attr_float("beta", 0.75f),
              bias = node.attr_float("bias", 1.0f);
  const bool bf16 = ki.opset >= 13;
  return fn_kernel([node, size, alpha, beta, bias, bf16](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    require_float_type(node, x.dtype(), "X", bf16);
    if (x.rank() < 3) kfail(node, "X must have rank >= 3 (N, C, spatial...), got shape {}", shape_str(x.shape()));
    out[0] = narrow_to(ref::lrn(widen_half(x), size, alpha, beta, bias), x.dtype());
  });
}

// ------------------------------------------------------------------------------------------ MeanVarianceNormalization
std::unique_ptr<Kernel> make_mvn(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const std::vector<int64_t> axes = node.attr_ints("axes", {0, 2, 3});
  const bool bf16 = ki.opset >= 13;
  return fn_kernel([node, axes, bf16](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    require_float_type(node, x.dtype(), "X", bf16);
    std::vector<int64_t> ax;
    for (int64_t a : axes) {
      const int64_t n = normalize_axis(node, a, x.rank());
      if (std::find(ax.begin(), ax.end(), n) != ax.end()) kfail(node, "axis {} is listed twice in axes", a);
      ax.push_back(n);
    }
    const Tensor xw = widen_half(x);
    out[0] = narrow_to(xw.dtype() == DType::Float ? fast::mean_variance_norm(xw, ax) : ref::mean_variance_norm(xw, ax),
                       x.dtype());
  });
}

// ------------------------------------------------------------------------------------------ LpNormalization
std::unique_ptr<Kernel> make_lp_norm(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const int64_t p = node.attr_int("p", 2), axis = node.attr_int("axis", -1);
  if (p != 1 && p != 2) kfail(node, "p={} is not supported (the operator defines p = 1 or 2)", p);
  const bool bf16 = ki.opset >= 22;
  return fn_kernel([node, p, axis, bf16](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    require_float_type(node, x.dtype(), "input", bf16);
    if (x.rank() < 1) kfail(node, "input must have rank >= 1");
    const int a = normalize_axis(node, axis, x.rank());
    const Tensor xw = widen_half(x);
    const int pi = static_cast<int>(p);
    out[0] = narrow_to(xw.dtype() == DType::Float ? fast::lp_norm(xw, a, pi) : ref::lp_norm(xw, a, pi), x.dtype());
  });
}

// ------------------------------------------------------------------------------------------ Hardmax
std::unique_ptr<Kernel> make_hardmax(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const bool coerce = ki.opset < 13, bf16 = ki.opset >= 13;
  const int64_t axis = node.attr_int("axis", coerce ? 1 : -1);
  if (ki.opset < 11 && axis < 0) kfail(node, "a negative axis ({}) needs Hardmax-11", axis);
  return fn_kernel([node, axis, coerce, bf16](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    require_float_type(node, x.dtype(), "input", bf16);
    if (x.rank() < 1) kfail(node, "input must have rank >= 1");
    const int a = normalize_axis(node, axis, x.rank());
    out[0] = narrow_to(ref::hardmax(widen_half(x), a, coerce), x.dtype());
  });
}

std::unique_ptr<Kernel> make_group_norm(const KernelInit& i) { return std::make_unique<GroupNormKernel>(i); }

}  // namespace

OQ_REGISTER_KERNEL(GroupNormalization, 18, kMaxOpset, make_group_norm);
OQ_REGISTER_KERNEL(LRN, 1, kMaxOpset, make_lrn);
OQ_REGISTER_KERNEL(MeanVarianceNormalization, 9, kMaxOpset, make_mvn);
OQ_REGISTER_KERNEL(LpNormalization, 1, kMaxOpset, make_lp_norm);
OQ_REGISTER_KERNEL(Hardmax, 1, kMaxOpset, make_hardmax);

}  // namespace oq::exec
