// Softmax and LogSoftmax, opsets 1-21. Before opset 13 the input is coerced to 2-D at `axis` (default 1) and
// normalized over the whole second part; from 13 on only along `axis` (default -1).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/vmath.h"

namespace oq::exec {
namespace {

class SoftmaxKernel final : public Kernel {
 public:
  SoftmaxKernel(const KernelInit& init, bool log) : node_(init.node), opset_(init.opset), log_(log) {
    axis_ = node_.attr_int("axis", opset_ < 13 ? 1 : -1);
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (in.empty() || !in[0]) kfail(node_, "needs input");
    const Tensor& x = *in[0];
    if (x.dtype() != DType::Float) kfail(node_, "only float32 is supported, got {}", dtype_name(x.dtype()));
    const int r = x.rank();
    const int64_t axis = axis_ < 0 ? axis_ + r : axis_;
    if (r == 0 ? axis_ != 0 && axis_ != -1 : (axis < 0 || axis >= r))
      kfail(node_, "axis {} out of range for input shape {}", axis_, shape_str(x.shape()));
    int64_t outer = 1, len = 1, inner = 1;
    for (int i = 0; i < r; ++i) {
      if (i < axis) outer *= x.dim(i);
      else if (i == axis || opset_ < 13) len *= x.dim(i);
      else inner *= x.dim(i);
    }
    out[0] = Tensor::uninitialized(DType::Float, x.shape());
    if (x.numel() == 0) return;
    const float* X = x.data<float>();
    float* Y = out[0].data<float>();
    if (inner == 1) {
      parallel_for(outer, std::max<int64_t>(1, 4096 / len), [&](int64_t o0, int64_t o1) {
        vmath::softmax_rows(X + o0 * len, Y + o0 * len, o1 - o0, len, log_);
      });
    } else {
      parallel_for(outer, 1, [&](int64_t o0, int64_t o1) {
        std::vector<float> mx(inner), sum(inner);
        for (int64_t o = o0; o < o1; ++o) strided(X + o * len * inner, Y + o * len * inner, len, inner, mx, sum);
      });
    }
  }

 private:
  // Both paths are vectorised (exec/kernels/vmath.h); ref::softmax (compute_ref.h) is the reference they are
  // tested against. Softmax along a strided axis: the inner dimension is contiguous, so each step works on a
  // whole row of `inner` values.
  void strided(const float* x, float* y, int64_t len, int64_t inner, std::vector<float>& mx,
               std::vector<float>& sum) const {
    std::fill(mx.begin(), mx.end(), -std::numeric_limits<float>::infinity());
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (int64_t l = 0; l < len; ++l) vmath::max_into(x + l * inner, mx.data(), inner);
    for (int64_t l = 0; l < len; ++l) vmath::exp_sub_acc(x + l * inner, mx.data(), y + l * inner, sum.data(), inner);
    if (log_) {
      for (int64_t i = 0; i < inner; ++i) sum[i] = std::log(sum[i]);
      for (int64_t l = 0; l < len; ++l)
        for (int64_t i = 0; i < inner; ++i) y[l * inner + i] = x[l * inner + i] - mx[i] - sum[i];
    } else {
      for (int64_t i = 0; i < inner; ++i) sum[i] = 1.0f / sum[i];
      for (int64_t l = 0; l < len; ++l)
        for (int64_t i = 0; i < inner; ++i) y[l * inner + i] *= sum[i];
    }
  }

  ir::Node node_;
  int opset_;
  bool log_;
  int64_t axis_ = -1;
};

std::unique_ptr<Kernel> make_softmax(const KernelInit& i) { return std::make_unique<SoftmaxKernel>(i, false); }
std::unique_ptr<Kernel> make_log_softmax(const KernelInit& i) { return std::make_unique<SoftmaxKernel>(i, true); }

}  // namespace

OQ_REGISTER_KERNEL(Softmax, 1, kMaxOpset, make_softmax);
OQ_REGISTER_KERNEL(LogSoftmax, 1, kMaxOpset, make_log_softmax);

}  // namespace oq::exec
