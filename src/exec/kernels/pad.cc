// Pad: attribute form (opset < 11), input form (11+), axes input (18+), modes constant / reflect / edge /
// wrap (19+). Negative pads crop, first (as ONNX Runtime: the other modes pad the cropped axis). Constant mode
// (the spatial padding of CNN activations) copies input rows with memcpy between runs of the fill value
// (pad_constant); the other modes, and the reference the constant path is tested against, gather through
// per-axis index maps (strided.cc).
#include <algorithm>
#include <cstring>

#include "core/parallel.h"
#include "exec/kernels/pad.h"
#include "exec/kernels/strided.h"

namespace oq::exec {

std::vector<int64_t> pad_axis_map(int64_t d, int64_t pb, int64_t pe, PadMode mode) {
  // ONNX Runtime's order (pad.cc: slice, then pad): negative pads crop first, and reflect / edge / wrap read the
  // cropped extent [cb, cb + dc). For constant and edge this is the same as padding first then cropping; for
  // wrap (and reflect with pads the kernel refuses) it is not: x = [1 2 3 4 5], wrap, pads [-1, 1] gives
  // [2 3 4 5 2] (ORT), not [2 3 4 5 1].
  const int64_t n = d + pb + pe;
  const int64_t cb = std::max<int64_t>(0, -pb), dc = d - cb - std::max<int64_t>(0, -pe);
  const int64_t before = std::max<int64_t>(0, pb);
  std::vector<int64_t> m(static_cast<size_t>(n > 0 ? n : 0));
  for (int64_t j = 0; j < n; ++j) {
    const int64_t s = j - before;  // position in the cropped extent
    if (dc <= 0) {  // nothing left to read: fill (the kernel refuses this in the non-constant modes)
      m[j] = -1;
      continue;
    }
    switch (mode) {
      case PadMode::Constant: m[j] = (s >= 0 && s < dc) ? cb + s : -1; break;
      case PadMode::Edge: m[j] = cb + std::clamp<int64_t>(s, 0, dc - 1); break;
      case PadMode::Wrap: m[j] = cb + ((s % dc) + dc) % dc; break;
      case PadMode::Reflect: {
        if (dc == 1) {
          m[j] = cb;
          break;
        }
        const int64_t p = 2 * (dc - 1);
        int64_t r = ((s % p) + p) % p;
        m[j] = cb + (r < dc ? r : p - r);
        break;
      }
    }
  }
  return m;
}

namespace {

const char* mode_name(PadMode m) {
  switch (m) {
    case PadMode::Constant: return "constant";
    case PadMode::Reflect: return "reflect";
    case PadMode::Edge: return "edge";
    case PadMode::Wrap: return "wrap";
  }
  return "?";
}

// Checks pads / fill against x (same errors whatever the path); returns the output shape.
Shape padded_shape(const ir::Node& node, const Tensor& x, const std::vector<int64_t>& pads, PadMode mode,
                   const Tensor& fill) {
  elem_size(node, x);
  const int r = x.rank();
  if (static_cast<int>(pads.size()) != 2 * r)
    kfail(node, "pads has {} entries for an input of rank {}", pads.size(), r);
  if (fill.dtype() != x.dtype() || fill.numel() != 1) kfail(node, "constant value must be one element of the input type");
  Shape os;
  for (int k = 0; k < r; ++k) {
    const int64_t d = x.shape()[k], pb = pads[k], pe = pads[k + r];
    int64_t n = 0;
    if (__builtin_add_overflow(d, pb, &n) || __builtin_add_overflow(n, pe, &n))
      kfail(node, "pads {} overflow axis {} of size {}", shape_str(pads), k, d);
    if (d + pb + pe < 0) kfail(node, "pads {} make axis {} of size {} negative", shape_str(pads), k, d);
    // The non-constant modes read the axis after its negative pads crop it (pad_axis_map), as ONNX Runtime.
    const int64_t dc = d - std::max<int64_t>(0, -pb) - std::max<int64_t>(0, -pe);
    if (mode != PadMode::Constant && dc <= 0 && d + pb + pe > 0)
      kfail(node, "cannot pad axis {} in {} mode: pads {} leave none of its {} elements", k, mode_name(mode),
            shape_str(pads), d);
    // Reflect with a pad that reaches past the far end of an axis that is also cropped: ONNX Runtime refuses it
    // (it refuses any reflect pad beyond size - 1) and onnx.reference cannot crop; refused here as well. On an
    // uncropped axis such pads reflect again, as the spec's own example (pads [0, 2, 0, 0] on a [3, 2] input),
    // numpy and onnx.reference do (docs/conformance.md).
    const int64_t reach = std::max<int64_t>({pb, pe, 0});
    if (mode == PadMode::Reflect && (pb < 0 || pe < 0) && reach > 0 && reach > dc - 1)
      kfail(node, "reflect pads {} on axis {}: a pad of {} needs at least {} elements after cropping, the axis has {}",
            shape_str(pads), k, reach, reach + 1, std::max<int64_t>(dc, 0));
    os.push_back(d + pb + pe);
  }
  return os;
}

// memcpy for n <= 32 bytes without a library call: two overlapping fixed-size copies (the borders of spatial
// padding are one or two elements, so the calls would cost more than the copies).
inline void copy_small(uint8_t* d, const uint8_t* s, size_t n) {
  if (n >= 16) {
    std::memcpy(d, s, 16);
    std::memcpy(d + n - 16, s + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(d, s, 8);
    std::memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(d, s, 4);
    std::memcpy(d + n - 4, s + n - 4, 4);
  } else if (n >= 2) {
    std::memcpy(d, s, 2);
    std::memcpy(d + n - 2, s + n - 2, 2);
  } else if (n == 1) {
    *d = *s;
  }
}

inline void copy_bytes(uint8_t* d, const uint8_t* s, int64_t n) {
  if (n <= 32) copy_small(d, s, static_cast<size_t>(n));
  else std::memcpy(d, s, static_cast<size_t>(n));
}

}  // namespace

void pad_constant(size_t esz, const Shape& in_shape, const uint8_t* in, const std::vector<int64_t>& pads,
                  const uint8_t* fill, uint8_t* out) {
  const int r = static_cast<int>(in_shape.size());
  struct Axis {
    int64_t d, n, pb;  // input extent, output extent, begin pad (negative: crop)
    bool unpadded() const { return pb == 0 && n == d; }
  };
  std::vector<Axis> axes;
  for (int k = 0; k < r; ++k) axes.push_back({in_shape[k], in_shape[k] + pads[k] + pads[k + r], pads[k]});
  int64_t out_numel = 1;
  for (const Axis& a : axes) out_numel *= a.n;
  if (out_numel == 0) return;
  // Trailing unpadded axes become part of the element (e.g. C of NHWC); adjacent unpadded axes merge (N, C of NCHW).
  int64_t elem = static_cast<int64_t>(esz);
  while (!axes.empty() && axes.back().unpadded()) {
    elem *= axes.back().d;
    axes.pop_back();
  }
  std::vector<Axis> m;
  for (const Axis& a : axes) {
    if (!m.empty() && a.unpadded() && m.back().unpadded()) {
      m.back().d *= a.d;
      m.back().n *= a.n;
    } else {
      m.push_back(a);
    }
  }
  if (m.empty()) {  // nothing padded: a copy
    std::memcpy(out, in, static_cast<size_t>(elem));
    return;
  }
  const int q = static_cast<int>(m.size());
  const Axis& last = m.back();
  const int64_t n = last.n, row_bytes = n * elem;
  // Output positions [lo, hi) of the last axis come from input positions lo - pb ...
  const int64_t lo = std::clamp<int64_t>(last.pb, 0, n), hi = std::clamp<int64_t>(last.pb + last.d, lo, n);
  const int64_t src0 = lo - last.pb;
  std::vector<int64_t> in_stride(static_cast<size_t>(q), 1);  // in elements of `elem` bytes
  for (int k = q - 2; k >= 0; --k) in_stride[k] = in_stride[k + 1] * m[k + 1].d;
  int64_t rows = 1;
  for (int k = 0; k + 1 < q; ++k) rows *= m[k].n;
  // ... everything else is the fill value: memset when its bytes are zero, else copied from one row of it.
  bool zero_fill = true;
  for (size_t b = 0; b < esz; ++b) zero_fill = zero_fill && fill[b] == 0;
  std::vector<uint8_t> fill_row(zero_fill ? 32 : static_cast<size_t>(std::max<int64_t>(row_bytes, 32)), 0);
  if (!zero_fill)
    for (size_t b = 0; b + esz <= fill_row.size(); b += esz) std::memcpy(&fill_row[b], fill, esz);
  auto fill_bytes = [&](uint8_t* dst, int64_t bytes) {
    if (bytes <= 32) copy_small(dst, fill_row.data(), static_cast<size_t>(std::max<int64_t>(bytes, 0)));
    else if (zero_fill) std::memset(dst, 0, static_cast<size_t>(bytes));
    else std::memcpy(dst, fill_row.data(), static_cast<size_t>(bytes));
  };
  parallel_for(rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(row_bytes, 1)), [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(static_cast<size_t>(q), 0);
    int64_t rem = b;
    for (int k = q - 2; k >= 0; --k) {
      idx[k] = rem % m[k].n;
      rem /= m[k].n;
    }
    for (int64_t row = b; row < e; ++row) {
      uint8_t* dst = out + row * row_bytes;
      bool inside = hi > lo;
      int64_t off = 0;
      for (int k = 0; k + 1 < q && inside; ++k) {
        const int64_t j = idx[k] - m[k].pb;
        inside = j >= 0 && j < m[k].d;
        off += j * in_stride[k];
      }
      if (!inside) {
        fill_bytes(dst, row_bytes);
      } else {
        fill_bytes(dst, lo * elem);
        copy_bytes(dst + lo * elem, in + (off + src0) * elem, (hi - lo) * elem);
        fill_bytes(dst + hi * elem, (n - hi) * elem);
      }
      for (int k = q - 2; k >= 0; --k) {
        if (++idx[k] < m[k].n) break;
        idx[k] = 0;
      }
    }
  });
}

Tensor pad_tensor(const ir::Node& node, const Tensor& x, const std::vector<int64_t>& pads, PadMode mode,
                  const Tensor& fill) {
  if (mode != PadMode::Constant) return pad_tensor_general(node, x, pads, mode, fill);
  Shape os = padded_shape(node, x, pads, mode, fill);
  Tensor out = Tensor::uninitialized(x.dtype(), os);  // pad_constant writes every element
  pad_constant(elem_size(node, x), x.shape(), static_cast<const uint8_t*>(x.raw()), pads,
               static_cast<const uint8_t*>(fill.raw()), static_cast<uint8_t*>(out.raw()));
  return out;
}

Tensor pad_tensor_general(const ir::Node& node, const Tensor& x, const std::vector<int64_t>& pads, PadMode mode,
                          const Tensor& fill) {
  Shape os = padded_shape(node, x, pads, mode, fill);
  const int r = x.rank();
  std::vector<std::vector<int64_t>> maps;
  for (int k = 0; k < r; ++k) maps.push_back(pad_axis_map(x.shape()[k], pads[k], pads[k + r], mode));
  Tensor out = Tensor::uninitialized(x.dtype(), os);  // gather_by_maps writes every element
  gather_by_maps(elem_size(node, x), x.shape(), static_cast<const uint8_t*>(x.raw()), maps,
                 static_cast<const uint8_t*>(fill.raw()), static_cast<uint8_t*>(out.raw()));
  return out;
}

namespace {

PadMode parse_mode(const ir::Node& node, const std::string& s, int opset) {
  if (s == "constant") return PadMode::Constant;
  if (s == "reflect") return PadMode::Reflect;
  if (s == "edge") return PadMode::Edge;
  if (s == "wrap" && opset >= 19) return PadMode::Wrap;
  kfail(node, "unsupported mode '{}' at opset {}", s, opset);
}

std::unique_ptr<Kernel> make_pad(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  PadMode mode = parse_mode(node, node.attr_string("mode", "constant"), ki.opset);
  if (ki.opset < 11) {
    if (!node.has_attr("pads")) kfail(node, "attribute 'pads' is required");
    std::vector<int64_t> pads = node.attr_ints("pads");
    float value = node.attr_float("value", 0.0f);
    return fn_kernel([node, mode, pads, value](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
      const Tensor& x = input_at(node, in, 0);
      out[0] = pad_tensor(node, x, pads, mode, scalar_of(x.dtype(), value));
    });
  }
  const bool has_axes = ki.opset >= 18;
  return fn_kernel([node, mode, has_axes](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    std::vector<int64_t> raw = int_values(node, input_at(node, in, 1), "pads");
    Tensor fill = scalar_of(x.dtype(), 0.0);
    if (const Tensor* c = optional_input(in, 2)) {
      if (c->dtype() != x.dtype()) kfail(node, "constant_value type differs from the input type");
      fill = c->reshaped({});
    }
    std::vector<int64_t> pads = raw;
    const Tensor* axes_t = has_axes ? optional_input(in, 3) : nullptr;
    if (axes_t) {
      auto axes = int_values(node, *axes_t, "axes");
      if (raw.size() != 2 * axes.size()) kfail(node, "pads has {} entries for {} axes", raw.size(), axes.size());
      const int r = x.rank();
      pads.assign(static_cast<size_t>(2 * r), 0);
      for (size_t i = 0; i < axes.size(); ++i) {
        int a = normalize_axis(node, axes[i], r);
        pads[a] = raw[i];
        pads[a + r] = raw[i + axes.size()];
      }
    }
    out[0] = pad_tensor(node, x, pads, mode, fill);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(Pad, kMinOpset, kMaxOpset, make_pad);

}  // namespace oq::exec
