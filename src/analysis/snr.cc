#include "analysis/snr.h"

#include <cfloat>
#include <cmath>

#include "core/error.h"

namespace oq::analysis {

double snr_db(double signal_sq, double noise_sq) {
  double s = std::max(std::sqrt(signal_sq), DBL_EPSILON);
  double n = std::max(std::sqrt(noise_sq), DBL_EPSILON);
  return 20.0 * std::log10(s / n);
}

void SnrAccumulator::add(std::span<const float> x, std::span<const float> xhat) {
  OQ_CHECK(x.size() == xhat.size(), "SnrAccumulator::add: size mismatch");
  double s = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double a = x[i], d = a - static_cast<double>(xhat[i]);
    s += a * a;
    n += d * d;
  }
  signal_ += s;
  noise_ += n;
  count_ += static_cast<int64_t>(x.size());
}

void SnrAccumulator::add(const Tensor& x, const Tensor& xhat, const std::string& what) {
  if (x.dtype() != DType::Float || xhat.dtype() != DType::Float)
    fail(ErrorKind::Runtime, "SNR of '{}': expected float tensors, got {} and {}", what, dtype_name(x.dtype()),
         dtype_name(xhat.dtype()));
  if (x.numel() != xhat.numel())
    fail(ErrorKind::Runtime, "SNR of '{}': the float tensor has shape {} but its quantized image has shape {}", what,
         shape_str(x.shape()), shape_str(xhat.shape()));
  add(x.span<float>(), xhat.span<float>());
}

}  // namespace oq::analysis
