// Signal-to-noise ratio of a float tensor x and its quantized image x̂, in dB:
//   SNR = 20·log10(max(‖x‖₂, ε) / max(‖x − x̂‖₂, ε)),  ε = DBL_EPSILON,
// the norms taken over every element of every sample seen; when x̂ = x exactly, max(‖x‖₂, 1) / ε (≥ 313 dB:
// an all-zero tensor reproduced exactly is not "0 dB"). The accumulator keeps two sums in double, so
// memory does not depend on how many samples are added.
#pragma once
#include <cstdint>
#include <span>

#include "core/tensor.h"

namespace oq::analysis {

// SNR in dB from the two sums of squares (Σx², Σ(x − x̂)²).
double snr_db(double signal_sq, double noise_sq);

class SnrAccumulator {
 public:
  // Adds n element pairs (x, x̂).
  void add(std::span<const float> x, std::span<const float> xhat);
  // Float tensors of equal element count (shapes may differ, e.g. a flattened image). Runtime error naming
  // `what` when the counts or the dtypes do not fit.
  void add(const Tensor& x, const Tensor& xhat, const std::string& what);
  double signal_sq() const { return signal_; }
  double noise_sq() const { return noise_; }
  int64_t count() const { return count_; }
  double db() const { return snr_db(signal_, noise_); }

 private:
  double signal_ = 0, noise_ = 0;
  int64_t count_ = 0;
};

}  // namespace oq::analysis
