#include "analysis/snr.h"

#include <cfloat>
#include <cmath>

#include "core/clones.h"
#include "core/error.h"

namespace oq::analysis {

double snr_db(double signal_sq, double noise_sq) {
  // Exact reproduction (no noise at all) is infinitely good; JSON has no infinity, so it is reported as at least
  // an exact unit signal's 20·log10(1/ε) ≈ 313 dB. Without this an all-zero tensor (a zero bias) would read
  // ε/ε = 0 dB, "noise as strong as the signal", and be flagged.
  double s = std::max(std::sqrt(signal_sq), noise_sq == 0 ? 1.0 : DBL_EPSILON);
  double n = std::max(std::sqrt(noise_sq), DBL_EPSILON);
  return 20.0 * std::log10(s / n);
}

namespace {
// Sums of x^2 and (x - x̂)^2 in double over 8 interleaved partial sums (element i into sum i % 8, then the 8
// added in order): the same result on every CPU and thread count, more accurate than one running sum, and the
// partial sums are independent, so the loop vectorises (one running sum waited 4 cycles per element).
OQ_TARGET_CLONES void sums_of_squares(const float* x, const float* xhat, size_t n, double& sig, double& noise) {
  constexpr size_t kLanes = 8;
  double s[kLanes] = {}, q[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (size_t k = 0; k < kLanes; ++k) {
      const double a = x[i + k], d = a - static_cast<double>(xhat[i + k]);
      s[k] += a * a;
      q[k] += d * d;
    }
  for (size_t k = 0; i + k < n; ++k) {
    const double a = x[i + k], d = a - static_cast<double>(xhat[i + k]);
    s[k] += a * a;
    q[k] += d * d;
  }
  for (size_t k = 0; k < kLanes; ++k) sig += s[k], noise += q[k];
}
}  // namespace

void SnrAccumulator::add(std::span<const float> x, std::span<const float> xhat) {
  OQ_CHECK(x.size() == xhat.size(), "SnrAccumulator::add: size mismatch");
  double s = 0, n = 0;
  sums_of_squares(x.data(), xhat.data(), x.size(), s, n);
  signal_ += s;
  noise_ += n;
  count_ += static_cast<int64_t>(x.size());
}

void SnrAccumulator::add(const Tensor& x, const Tensor& xhat, const std::string& what) {
  // A float16 model's initializers (its execution values are float32 already).
  if (x.dtype() == DType::Float16 || xhat.dtype() == DType::Float16)
    return add(x.dtype() == DType::Float16 ? x.cast(DType::Float) : x,
               xhat.dtype() == DType::Float16 ? xhat.cast(DType::Float) : xhat, what);
  if (x.dtype() != DType::Float || xhat.dtype() != DType::Float)
    fail(ErrorKind::Runtime, "SNR of '{}': expected float tensors, got {} and {}", what, dtype_name(x.dtype()),
         dtype_name(xhat.dtype()));
  if (x.numel() != xhat.numel())
    fail(ErrorKind::Runtime, "SNR of '{}': the float tensor has shape {} but its quantized image has shape {}", what,
         shape_str(x.shape()), shape_str(xhat.shape()));
  add(x.span<float>(), xhat.span<float>());
}

}  // namespace oq::analysis
