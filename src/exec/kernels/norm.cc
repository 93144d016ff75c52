// BatchNormalization (inference, opsets 6-21, incl. the spatial=0 form of opsets 6-8; is_test ignored),
// InstanceNormalization (1-24), LayerNormalization (17-24) and RMSNormalization (23-24: LayerNormalization without
// the mean and the bias). Float32; rows are spread over threads and
// inner loops are plain array arithmetic the compiler vectorises (LayerNormalization's output pass:
// rows::norm_affine, row_stats.h). A full-size LayerNormalization scale / bias is read in place, not copied.
#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/compute_ref.h"
#include "exec/kernels/row_stats.h"

namespace oq::exec {
namespace {

void require_float(const ir::Node& node, const std::vector<const Tensor*>& in, size_t n_required) {
  if (in.size() < n_required) kfail(node, "needs {} inputs, got {}", n_required, in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i]) {
      if (i < n_required) kfail(node, "input {} is required", i);
      continue;
    }
    if (in[i]->dtype() != DType::Float) kfail(node, "input {} must be float32, got {}", i, dtype_name(in[i]->dtype()));
  }
}

// Mean and variance of p[0..n) (two passes, eight float lanes each, double combine).
void mean_var(const float* p, int64_t n, double& mean, double& var) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
  double s = 0;
  for (; i < n; ++i) s += p[i];
  for (int j = 0; j < 8; ++j) s += acc[j];
  mean = s / static_cast<double>(n);
  const float m = static_cast<float>(mean);
  float sq[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) sq[j] += (p[i + j] - m) * (p[i + j] - m);
  double v = 0;
  for (; i < n; ++i) v += (p[i] - m) * (p[i] - m);
  for (int j = 0; j < 8; ++j) v += sq[j];
  var = v / static_cast<double>(n);
}

// Mean of p[i]^2 over [0, n) (eight float lanes, double combine).
double mean_square(const float* p, int64_t n) {
  float sq[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) sq[j] += p[i + j] * p[i + j];
  double v = 0;
  for (; i < n; ++i) v += static_cast<double>(p[i]) * p[i];
  for (int j = 0; j < 8; ++j) v += sq[j];
  return v / static_cast<double>(n);
}

// y[i] = x[i] * a + b over one row.
inline void affine_row(const float* x, float* y, int64_t n, float a, float b) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * a + b;
}

class BatchNormKernel final : public Kernel {
 public:
  explicit BatchNormKernel(const KernelInit& init) : node_(init.node) {
    epsilon_ = node_.attr_float("epsilon", 1e-5f);
    if (const std::string why = ir::batchnorm_training_reason(node_, init.opset); !why.empty()) kfail(node_, "{}", why);
    spatial_ = init.opset >= 9 || node_.attr_int("spatial", 1) != 0;
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    require_float(node_, in, 5);
    const Tensor& x = *in[0];
    if (x.rank() < 2) kfail(node_, "X must have rank >= 2, got shape {}", shape_str(x.shape()));
    const int64_t N = x.dim(0), C = x.dim(1), per_sample = x.numel() / std::max<int64_t>(N, 1);
    const int64_t inner = C ? per_sample / C : 0;
    const int64_t stat = in[1]->numel();
    const bool per_channel = stat == C;
    if (!per_channel && (spatial_ || stat != per_sample))
      kfail(node_, "scale has {} values; expected {}{}", stat, C, spatial_ ? "" : fmt::format(" or {}", per_sample));
    for (int i = 2; i < 5; ++i)
      if (in[i]->numel() != stat) kfail(node_, "input {} has {} values, expected {}", i, in[i]->numel(), stat);
    // y = x * a + b with a = scale / sqrt(var + eps), b = bias - mean * a.
    std::vector<float> a(stat), b(stat);
    const float *S = in[1]->data<float>(), *B = in[2]->data<float>(), *Mn = in[3]->data<float>(),
                *V = in[4]->data<float>();
    for (int64_t s = 0; s < stat; ++s) {
      a[s] = static_cast<float>(S[s] / std::sqrt(static_cast<double>(V[s]) + epsilon_));
      b[s] = B[s] - Mn[s] * a[s];
    }
    out[0] = Tensor::uninitialized(DType::Float, x.shape());  // N*C rows (or N samples) cover every element
    const float* X = x.data<float>();
    float* Y = out[0].data<float>();
    if (per_channel) {
      parallel_for(N * C, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) affine_row(X + r * inner, Y + r * inner, inner, a[r % C], b[r % C]);
      });
    } else {
      parallel_for(N, 1, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n) {
          const float* xs = X + n * per_sample;
          float* ys = Y + n * per_sample;
          for (int64_t e = 0; e < per_sample; ++e) ys[e] = xs[e] * a[e] + b[e];
        }
      });
    }
  }

 private:
  ir::Node node_;
  float epsilon_ = 1e-5f;
  bool spatial_ = true;
};

class InstanceNormKernel final : public Kernel {
 public:
  explicit InstanceNormKernel(const KernelInit& init) : node_(init.node) {
    epsilon_ = node_.attr_float("epsilon", 1e-5f);
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    require_float(node_, in, 3);
    const Tensor& x = *in[0];
    if (x.rank() < 3) kfail(node_, "X must have rank >= 3, got shape {}", shape_str(x.shape()));
    const int64_t N = x.dim(0), C = x.dim(1), inner = x.numel() / std::max<int64_t>(N * C, 1);
    if (in[1]->numel() != C || in[2]->numel() != C)
      kfail(node_, "scale {} and B {} must have {} values", shape_str(in[1]->shape()), shape_str(in[2]->shape()), C);
    out[0] = Tensor::uninitialized(DType::Float, x.shape());
    if (x.numel() == 0) return;
    const float* X = x.data<float>();
    const float *S = in[1]->data<float>(), *B = in[2]->data<float>();
    float* Y = out[0].data<float>();
    parallel_for(N * C, std::max<int64_t>(1, 8192 / inner), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        double m, v;
        mean_var(X + r * inner, inner, m, v);
        const float a = static_cast<float>(S[r % C] / std::sqrt(v + epsilon_));
        affine_row(X + r * inner, Y + r * inner, inner, a, static_cast<float>(B[r % C] - m * a));
      }
    });
  }

 private:
  ir::Node node_;
  float epsilon_ = 1e-5f;
};

class LayerNormKernel final : public Kernel {
 public:
  LayerNormKernel(const KernelInit& init, bool rms) : node_(init.node), rms_(rms) {
    axis_ = node_.attr_int("axis", -1);
    epsilon_ = node_.attr_float("epsilon", 1e-5f);
    int64_t stash = node_.attr_int("stash_type", 1);
    if (stash != 1) kfail(node_, "stash_type {} is not supported (only 1 = float)", stash);
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    require_float(node_, in, 2);
    const Tensor& x = *in[0];
    const int r = x.rank();
    const int64_t axis = axis_ < 0 ? axis_ + r : axis_;
    if (axis < 0 || axis >= r) kfail(node_, "axis {} out of range for X shape {}", axis_, shape_str(x.shape()));
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < r; ++i) (i < axis ? outer : inner) *= x.dim(i);
    Shape norm_shape(x.shape().begin() + axis, x.shape().end());
    std::vector<float> scale_buf, bias_buf;
    const float* scale = expand(*in[1], norm_shape, "Scale", scale_buf);
    const Tensor* bt = !rms_ && in.size() > 2 ? in[2] : nullptr;
    const float* bias = bt ? expand(*bt, norm_shape, "B", bias_buf) : nullptr;
    out[0] = Tensor::uninitialized(DType::Float, x.shape());  // Mean/Inv stay zeroed: unwritten when inner == 0
    Shape stat_shape(x.shape().begin(), x.shape().begin() + axis);
    stat_shape.resize(r, 1);
    float* Mean = nullptr;
    float* Inv = nullptr;
    if (out.size() > 1 && !node_.outputs[1].empty()) Mean = (out[1] = Tensor(DType::Float, stat_shape)).data<float>();
    if (out.size() > 2 && !node_.outputs[2].empty()) Inv = (out[2] = Tensor(DType::Float, stat_shape)).data<float>();
    if (inner == 0) return;
    const float* X = x.data<float>();
    float* Y = out[0].data<float>();
    parallel_for(outer, std::max<int64_t>(1, 8192 / inner), [&](int64_t r0, int64_t r1) {
      for (int64_t o = r0; o < r1; ++o) {
        double m = 0, v;
        if (rms_) v = mean_square(X + o * inner, inner);
        else mean_var(X + o * inner, inner, m, v);
        const float inv = static_cast<float>(1.0 / std::sqrt(v + epsilon_)), mf = static_cast<float>(m);
        rows::norm_affine(X + o * inner, Y + o * inner, inner, mf, inv, scale, bias);
        if (Mean) Mean[o] = mf;
        if (Inv) Inv[o] = inv;
      }
    });
  }

 private:
  // `t` broadcast (numpy, towards the trailing axes) to `shape`, flattened: t's own data when it has every
  // value (no copy), else `buf` filled.
  const float* expand(const Tensor& t, const Shape& shape, const char* what, std::vector<float>& buf) const {
    const int64_t n = shape_numel(shape);
    if (t.numel() == n && t.rank() <= static_cast<int>(shape.size())) return t.data<float>();
    const int tr = t.rank(), sr = static_cast<int>(shape.size());
    if (tr > sr) kfail(node_, "{} shape {} does not broadcast to {}", what, shape_str(t.shape()), shape_str(shape));
    for (int i = 0; i < tr; ++i)
      if (t.dim(i) != 1 && t.dim(i) != shape[sr - tr + i])
        kfail(node_, "{} shape {} does not broadcast to {}", what, shape_str(t.shape()), shape_str(shape));
    std::vector<float>& r = buf;
    r.resize(static_cast<size_t>(n));
    for (int64_t f = 0; f < n; ++f) {
      int64_t rem = f, off = 0, stride = 1;
      for (int i = sr - 1; i >= 0; --i) {
        int64_t idx = rem % shape[i];
        rem /= shape[i];
        int ti = i - (sr - tr);
        if (ti >= 0) {
          off += (t.dim(ti) == 1 ? 0 : idx) * stride;
          stride *= t.dim(ti);
        }
      }
      r[f] = t.data<float>()[off];
    }
    return r.data();
  }

  ir::Node node_;
  bool rms_;
  int64_t axis_ = -1;
  float epsilon_ = 1e-5f;
};

std::unique_ptr<Kernel> make_bn(const KernelInit& i) { return std::make_unique<BatchNormKernel>(i); }
std::unique_ptr<Kernel> make_in(const KernelInit& i) { return std::make_unique<InstanceNormKernel>(i); }
std::unique_ptr<Kernel> make_ln(const KernelInit& i) { return std::make_unique<LayerNormKernel>(i, false); }
std::unique_ptr<Kernel> make_rms(const KernelInit& i) { return std::make_unique<LayerNormKernel>(i, true); }

}  // namespace

OQ_REGISTER_KERNEL(BatchNormalization, 6, kMaxOpset, make_bn);
OQ_REGISTER_KERNEL(InstanceNormalization, 1, kMaxOpset, make_in);
OQ_REGISTER_KERNEL(LayerNormalization, 17, kMaxOpset, make_ln);
OQ_REGISTER_KERNEL(RMSNormalization, 23, kMaxOpset, make_rms);

}  // namespace oq::exec
