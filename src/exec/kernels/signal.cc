// Signal ops of audio front-ends, registered up to kMaxOpset: DFT (17: axis attribute; 20: axis as an optional
// input, default -2), STFT (17), HannWindow / HammingWindow / BlackmanWindow (17) and MelWeightMatrix (17).
// Float16 / bfloat16 signals are computed in float32 and rounded back; every transform runs in double.
//
// The FFT is written here (a radix-2 iterative transform for power-of-two lengths, the direct sum otherwise):
// none of the project's dependencies (oneDNN, ...) offers one, and the ops are small in the models of the field
// (frames of a few hundred samples). DFT-20 only moves `axis` from an attribute to an input (default 1 -> -2);
// both follow the onnx 1.23 text: onesided + inverse is IRFFT (real output of dft_length samples from a one-sided
// spectrum, default dft_length 2 * (dim - 1)). The windows: periodic (default) divides by N, symmetric by N - 1;
// integer output types truncate towards zero as Cast does. MelWeightMatrix follows onnx.reference (triangular
// filters on bins floor((dft_length + 1) * f / sample_rate)).
#include "exec/kernels/signal.h"

#include <cmath>
#include <numbers>

#include "core/parallel.h"
#include "exec/kernels/elementwise.h"
#include "exec/kernels/extra_util.h"
#include "exec/kernels/spatial.h"

namespace oq::exec {

using cd = std::complex<double>;

void dft_line_naive(std::vector<cd>& a, int sign) {
  const size_t n = a.size();
  std::vector<cd> r(n);
  for (size_t k = 0; k < n; ++k) {
    cd s = 0;
    for (size_t t = 0; t < n; ++t) {
      const double ang = sign * 2.0 * std::numbers::pi * static_cast<double>((k * t) % n) / static_cast<double>(n);
      s += a[t] * cd(std::cos(ang), std::sin(ang));
    }
    r[k] = s;
  }
  a = std::move(r);
}

void dft_line(std::vector<cd>& a, int sign) {
  const size_t n = a.size();
  if (n <= 1) return;
  if ((n & (n - 1)) != 0) {  // not a power of two: direct sum with a twiddle table
    std::vector<cd> w(n), r(n);
    for (size_t i = 0; i < n; ++i) {
      const double ang = sign * 2.0 * std::numbers::pi * static_cast<double>(i) / static_cast<double>(n);
      w[i] = cd(std::cos(ang), std::sin(ang));
    }
    for (size_t k = 0; k < n; ++k) {
      cd s = 0;
      size_t idx = 0;
      for (size_t t = 0; t < n; ++t, idx = (idx + k) % n) s += a[t] * w[idx];
      r[k] = s;
    }
    a = std::move(r);
    return;
  }
  for (size_t i = 1, j = 0; i < n; ++i) {  // bit reversal
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const double ang = sign * 2.0 * std::numbers::pi / static_cast<double>(len);
    for (size_t i = 0; i < n; i += len)
      for (size_t j = 0; j < len / 2; ++j) {
        const cd w(std::cos(ang * static_cast<double>(j)), std::sin(ang * static_cast<double>(j)));
        const cd u = a[i + j], v = a[i + j + len / 2] * w;
        a[i + j] = u + v;
        a[i + j + len / 2] = u - v;
      }
  }
}

Tensor dft(const Tensor& x, int axis, int64_t n, bool inverse, bool onesided, bool naive) {
  const int r = x.rank();
  const bool cplx = x.dim(r - 1) == 2, irfft = inverse && onesided;
  const int64_t m = x.dim(axis);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int d = axis + 1; d < r - 1; ++d) inner *= x.dim(d);
  const int64_t out_len = onesided && !inverse ? n / 2 + 1 : n, comps = irfft ? 1 : 2;
  Shape ys = x.shape();
  ys[axis] = out_len;
  ys[r - 1] = comps;
  const std::vector<double> X = x.to_doubles();
  Tensor y(DType::Double, ys);
  double* Y = y.data<double>();
  const int64_t ic = x.dim(r - 1);
  parallel_for(outer * inner, naive ? std::max<int64_t>(1, outer * inner) : 16, [&](int64_t l0, int64_t l1) {
    std::vector<cd> a(static_cast<size_t>(n));
    for (int64_t line = l0; line < l1; ++line) {
      const int64_t o = line / inner, i = line % inner;
      auto in_at = [&](int64_t t) {
        const int64_t f = ((o * m + t) * inner + i) * ic;
        return cd(X[f], cplx ? X[f + 1] : 0.0);
      };
      std::fill(a.begin(), a.end(), cd(0));
      if (irfft) {  // Hermitian full spectrum from the first n/2 + 1 bins
        for (int64_t k = 0; k <= n / 2 && k < m; ++k) {
          a[k] = in_at(k);
          if (k > 0 && n - k != k) a[n - k] = std::conj(a[k]);
        }
      } else {
        for (int64_t t = 0; t < std::min(m, n); ++t) a[t] = in_at(t);
      }
      if (naive) dft_line_naive(a, inverse ? 1 : -1);
      else dft_line(a, inverse ? 1 : -1);
      const double scale = inverse ? 1.0 / static_cast<double>(n) : 1.0;
      for (int64_t k = 0; k < out_len; ++k) {
        const int64_t f = ((o * out_len + k) * inner + i) * comps;
        Y[f] = a[k].real() * scale;
        if (comps == 2) Y[f + 1] = a[k].imag() * scale;
      }
    }
  });
  return y.cast(x.dtype());
}

Tensor stft(const Tensor& signal, int64_t step, const Tensor* window, int64_t fl, bool onesided) {
  const int64_t B = signal.dim(0), len = signal.dim(1), ic = signal.dim(2);
  const int64_t frames = (len - fl) / step + 1, bins = onesided ? fl / 2 + 1 : fl;
  const std::vector<double> X = signal.to_doubles();
  const std::vector<double> W = window ? window->to_doubles() : std::vector<double>(static_cast<size_t>(fl), 1.0);
  Tensor y(DType::Double, {B, frames, bins, 2});
  double* Y = y.data<double>();
  parallel_for(B * frames, 4, [&](int64_t r0, int64_t r1) {
    std::vector<cd> a(static_cast<size_t>(fl));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / frames, f = r % frames;
      for (int64_t t = 0; t < fl; ++t) {
        const int64_t s = ((b * len) + f * step + t) * ic;
        a[t] = cd(X[s], ic == 2 ? X[s + 1] : 0.0) * W[t];
      }
      dft_line(a, -1);
      for (int64_t k = 0; k < bins; ++k) {
        Y[(r * bins + k) * 2] = a[k].real();
        Y[(r * bins + k) * 2 + 1] = a[k].imag();
      }
    }
  });
  return y.cast(signal.dtype());
}

std::vector<double> window_values(WindowKind k, int64_t size, bool periodic) {
  std::vector<double> w(static_cast<size_t>(std::max<int64_t>(size, 0)));
  const double N = static_cast<double>(periodic ? size : size - 1), pi = std::numbers::pi;
  for (int64_t i = 0; i < size; ++i) {
    const double t = static_cast<double>(i);
    switch (k) {
      case WindowKind::Hann: w[i] = std::pow(std::sin(t * pi / N), 2); break;
      case WindowKind::Hamming: w[i] = 25.0 / 46.0 - std::cos(t * pi * 2 / N) * (21.0 / 46.0); break;
      case WindowKind::Blackman:
        w[i] = std::cos(t * pi * 2 / N) * -0.5 + std::cos(t * pi * 4 / N) * 0.08 + 0.42;
        break;
    }
  }
  return w;
}

std::vector<double> mel_weight_matrix(int64_t num_mel_bins, int64_t dft_length, int64_t sample_rate, double lower_hz,
                                      double upper_hz) {
  const int64_t rows = dft_length / 2 + 1;
  const double low_mel = 2595 * std::log1p(lower_hz / 700) / std::log(10.0);
  const double high_mel = 2595 * std::log1p(upper_hz / 700) / std::log(10.0);
  const double step = (high_mel - low_mel) / static_cast<double>(num_mel_bins + 2);
  std::vector<int64_t> bins(static_cast<size_t>(num_mel_bins + 2));
  for (int64_t i = 0; i < num_mel_bins + 2; ++i) {
    const double hz = 700 * std::expm1((static_cast<double>(i) * step + low_mel) / 2595 * std::log(10.0));
    bins[i] = static_cast<int64_t>(std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate)));
    if (bins[i] < 0 || bins[i] >= rows)
      fail(ErrorKind::Model, "mel filter edge {} falls on spectrogram bin {}, outside [0, {}) (upper_edge_hertz {} "
           "above the Nyquist frequency of sample_rate {}?)", i, bins[i], rows, upper_hz, sample_rate);
  }
  std::vector<double> w(static_cast<size_t>(rows * num_mel_bins), 0.0);
  for (int64_t i = 0; i < num_mel_bins; ++i) {
    const int64_t lo = bins[i], c = bins[i + 1], hi = bins[i + 2];
    if (c - lo == 0) w[c * num_mel_bins + i] = 1;
    else
      for (int64_t j = lo; j <= c; ++j) w[j * num_mel_bins + i] = static_cast<double>(j - lo) / static_cast<double>(c - lo);
    if (hi - c > 0)
      for (int64_t j = c; j < hi; ++j) w[j * num_mel_bins + i] = static_cast<double>(hi - j) / static_cast<double>(hi - c);
  }
  return w;
}

namespace {

int64_t scalar_int(const ir::Node& node, const Tensor& t, const char* what) {
  if (t.dtype() != DType::Int32 && t.dtype() != DType::Int64)
    kfail(node, "{} must be int32 or int64, got {}", what, dtype_name(t.dtype()));
  if (t.numel() != 1 || t.rank() > 1) kfail(node, "{} must be a scalar, got shape {}", what, shape_str(t.shape()));
  return t.to_int64s()[0];
}

// A tensor of `to` (an output_datatype) from double values: integers truncated towards zero, as Cast.
Tensor typed_from(const std::vector<double>& v, Shape s, DType to) {
  Tensor d(DType::Double, std::move(s));
  for (size_t i = 0; i < v.size(); ++i) d.data<double>()[i] = to == DType::Double ? v[i] : naive_cast_value(v[i], to);
  return d.cast(to);
}

DType parse_output_datatype(const ir::Node& node) {
  const int64_t t = node.attr_int("output_datatype", 1);
  static const DType ok[] = {DType::UInt8, DType::UInt16, DType::UInt32, DType::UInt64, DType::Int8, DType::Int16,
                             DType::Int32, DType::Int64, DType::Float16, DType::Float, DType::Double, DType::BFloat16};
  for (DType d : ok)
    if (static_cast<int64_t>(d) == t) return d;
  kfail(node, "output_datatype={} is not one of the operator's types", t);
}

std::unique_ptr<Kernel> make_dft(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const int64_t inverse = node.attr_int("inverse", 0), onesided = node.attr_int("onesided", 0);
  if (inverse != 0 && inverse != 1) kfail(node, "inverse must be 0 or 1, got {}", inverse);
  if (onesided != 0 && onesided != 1) kfail(node, "onesided must be 0 or 1, got {}", onesided);
  const bool v20 = ki.opset >= 20;
  if (v20 && node.has_attr("axis")) kfail(node, "DFT-20 takes the axis as input 2, not as an attribute");
  const int64_t attr_axis = node.attr_int("axis", 1);
  return fn_kernel([node, inverse, onesided, v20, attr_axis](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    require_float_type(node, x.dtype(), "input", true);
    const int r = x.rank();
    if (r < 2 || (x.dim(r - 1) != 1 && x.dim(r - 1) != 2))
      kfail(node, "input must be [..., 1] (real) or [..., 2] (complex), got shape {}", shape_str(x.shape()));
    int64_t axis = attr_axis;
    if (v20) {
      const Tensor* at = optional_input(in, 2);
      axis = at ? scalar_int(node, *at, "axis") : -2;
    }
    const int64_t a = axis < 0 ? axis + r : axis;
    if (a < 0 || a > r - 2) kfail(node, "axis {} is outside [-{}, -2] and [0, {}]", axis, r, r - 2);
    if (onesided && inverse && x.dim(r - 1) != 2) kfail(node, "an inverse one-sided DFT (IRFFT) needs complex input");
    const Tensor* lt = optional_input(in, 1);
    const int64_t m = x.dim(static_cast<int>(a));
    const int64_t n = lt ? scalar_int(node, *lt, "dft_length") : (onesided && inverse ? 2 * (m - 1) : m);
    if (n <= 0) kfail(node, "dft_length must be positive, got {}", n);
    out[0] = narrow_to(dft(widen_half(x), static_cast<int>(a), n, inverse != 0, onesided != 0), x.dtype());
  });
}

std::unique_ptr<Kernel> make_stft(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const int64_t onesided = node.attr_int("onesided", 1);
  if (onesided != 0 && onesided != 1) kfail(node, "onesided must be 0 or 1, got {}", onesided);
  return fn_kernel([node, onesided](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& s = input_at(node, in, 0);
    require_float_type(node, s.dtype(), "signal", true);
    if (s.rank() != 3 || (s.dim(2) != 1 && s.dim(2) != 2))
      kfail(node, "signal must be [batch, length, 1 or 2], got shape {}", shape_str(s.shape()));
    const int64_t step = scalar_int(node, input_at(node, in, 1), "frame_step");
    if (step <= 0) kfail(node, "frame_step must be positive, got {}", step);
    const Tensor* w = optional_input(in, 2);
    const Tensor* flt = optional_input(in, 3);
    if (w && (w->rank() != 1 || w->dtype() != s.dtype()))
      kfail(node, "window must be 1-D of the signal's type, got {} {}", dtype_name(w->dtype()), shape_str(w->shape()));
    if (!w && !flt) kfail(node, "needs a window or a frame_length");
    const int64_t fl = flt ? scalar_int(node, *flt, "frame_length") : w->dim(0);
    if (w && w->dim(0) != fl) kfail(node, "window has {} values, frame_length is {}", w->dim(0), fl);
    if (fl <= 0 || fl > s.dim(1)) kfail(node, "frame_length {} is outside [1, {}] (the signal length)", fl, s.dim(1));
    if (onesided && s.dim(2) == 2) kfail(node, "onesided=1 needs a real signal");
    Tensor wc;
    if (w) wc = widen_half(*w);
    out[0] = narrow_to(stft(widen_half(s), step, w ? &wc : nullptr, fl, onesided != 0), s.dtype());
  });
}

std::unique_ptr<Kernel> make_window(const KernelInit& ki, WindowKind kind) {
  const ir::Node node = ki.node;
  const int64_t periodic = node.attr_int("periodic", 1);
  if (periodic != 0 && periodic != 1) kfail(node, "periodic must be 0 or 1, got {}", periodic);
  const DType to = parse_output_datatype(node);
  return fn_kernel([node, periodic, to, kind](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const int64_t size = scalar_int(node, input_at(node, in, 0), "size");
    if (size < 0) kfail(node, "size must be >= 0, got {}", size);
    check_output_size(node, {size});
    out[0] = typed_from(window_values(kind, size, periodic != 0), {size}, to);
  });
}

std::unique_ptr<Kernel> make_mel(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const DType to = parse_output_datatype(node);
  return fn_kernel([node, to](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const int64_t mel = scalar_int(node, input_at(node, in, 0), "num_mel_bins");
    const int64_t len = scalar_int(node, input_at(node, in, 1), "dft_length");
    const int64_t rate = scalar_int(node, input_at(node, in, 2), "sample_rate");
    auto hz = [&](size_t i, const char* what) {
      const Tensor& t = input_at(node, in, i);
      require_float_type(node, t.dtype(), what, true);
      if (t.numel() != 1 || t.rank() > 1) kfail(node, "{} must be a scalar", what);
      return t.to_doubles()[0];
    };
    const double lo = hz(3, "lower_edge_hertz"), hi = hz(4, "upper_edge_hertz");
    if (mel <= 0 || len <= 0 || rate <= 0)
      kfail(node, "num_mel_bins ({}), dft_length ({}) and sample_rate ({}) must be positive", mel, len, rate);
    std::vector<double> w;
    try {
      w = mel_weight_matrix(mel, len, rate, lo, hi);
    } catch (const Error& e) {
      kfail(node, "{}", e.what());
    }
    check_output_size(node, {len / 2 + 1, mel});
    out[0] = typed_from(w, {len / 2 + 1, mel}, to);
  });
}

std::unique_ptr<Kernel> make_hann(const KernelInit& i) { return make_window(i, WindowKind::Hann); }
std::unique_ptr<Kernel> make_hamming(const KernelInit& i) { return make_window(i, WindowKind::Hamming); }
std::unique_ptr<Kernel> make_blackman(const KernelInit& i) { return make_window(i, WindowKind::Blackman); }

}  // namespace

OQ_REGISTER_KERNEL(DFT, 17, kMaxOpset, make_dft);
OQ_REGISTER_KERNEL(STFT, 17, kMaxOpset, make_stft);
OQ_REGISTER_KERNEL(HannWindow, 17, kMaxOpset, make_hann);
OQ_REGISTER_KERNEL(HammingWindow, 17, kMaxOpset, make_hamming);
OQ_REGISTER_KERNEL(BlackmanWindow, 17, kMaxOpset, make_blackman);
OQ_REGISTER_KERNEL(MelWeightMatrix, 17, kMaxOpset, make_mel);

}  // namespace oq::exec
