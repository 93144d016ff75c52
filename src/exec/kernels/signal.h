// DFT (17, 20), STFT (17), HannWindow / HammingWindow / BlackmanWindow (17) and MelWeightMatrix (17) — signal.cc.
// Complex values are the trailing axis of size 2 (real, imaginary); real ones a trailing axis of size 1.
#pragma once
#include <complex>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace oq::exec {

// In-place transform of one complex line of length a.size(): sign -1 forward, +1 inverse (unscaled).
// Radix-2 iterative FFT when the length is a power of two, else the direct O(n^2) sum (twiddles from a table).
void dft_line(std::vector<std::complex<double>>& a, int sign);
// The direct O(n^2) sum (the reference dft_line is tested against).
void dft_line_naive(std::vector<std::complex<double>>& a, int sign);

// ONNX DFT of x [..., 1 or 2] along `axis` (normalised, < rank - 1) with length n: forward (onesided: the first
// n/2 + 1 bins), inverse (scaled by 1/n), or IRFFT (inverse + onesided: real output of length n from the
// one-sided spectrum). Result in x's type (float32 / float64). `naive` uses dft_line_naive.
Tensor dft(const Tensor& x, int axis, int64_t n, bool inverse, bool onesided, bool naive = false);

// ONNX STFT of signal [batch, length, 1 or 2]: frames of frame_length every frame_step, times `window`
// (null: ones), each transformed; [batch, frames, onesided ? fl/2 + 1 : fl, 2].
Tensor stft(const Tensor& signal, int64_t frame_step, const Tensor* window, int64_t frame_length, bool onesided);

enum class WindowKind { Hann, Hamming, Blackman };
// The window of `size` values in double (periodic: denominator size, else size - 1).
std::vector<double> window_values(WindowKind k, int64_t size, bool periodic);

// MelWeightMatrix [dft_length / 2 + 1, num_mel_bins] in double, as onnx.reference computes it; throws (Model
// error, message without the node) when a filter edge falls outside the spectrogram bins.
std::vector<double> mel_weight_matrix(int64_t num_mel_bins, int64_t dft_length, int64_t sample_rate, double lower_hz,
                                      double upper_hz);

}  // namespace oq::exec
