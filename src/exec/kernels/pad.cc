// Pad: attribute form (opset < 11), input form (11+), axes input (18+), modes constant / reflect / edge /
// wrap (19+). Negative pads crop. Implemented as a gather through per-axis index maps (strided.cc).
#include <cstring>

#include "exec/kernels/pad.h"
#include "exec/kernels/strided.h"

namespace oq::exec {

std::vector<int64_t> pad_axis_map(int64_t d, int64_t pb, int64_t pe, PadMode mode) {
  const int64_t n = d + pb + pe;
  std::vector<int64_t> m(static_cast<size_t>(n > 0 ? n : 0));
  for (int64_t j = 0; j < n; ++j) {
    int64_t s = j - pb;
    switch (mode) {
      case PadMode::Constant: m[j] = (s >= 0 && s < d) ? s : -1; break;
      case PadMode::Edge: m[j] = s < 0 ? 0 : (s >= d ? d - 1 : s); break;
      case PadMode::Wrap: m[j] = ((s % d) + d) % d; break;
      case PadMode::Reflect: {
        if (d == 1) {
          m[j] = 0;
          break;
        }
        const int64_t p = 2 * (d - 1);
        int64_t r = ((s % p) + p) % p;
        m[j] = r < d ? r : p - r;
        break;
      }
    }
  }
  return m;
}

Tensor pad_tensor(const ir::Node& node, const Tensor& x, const std::vector<int64_t>& pads, PadMode mode,
                  const Tensor& fill) {
  size_t esz = elem_size(node, x);
  const int r = x.rank();
  if (static_cast<int>(pads.size()) != 2 * r)
    kfail(node, "pads has {} entries for an input of rank {}", pads.size(), r);
  if (fill.dtype() != x.dtype() || fill.numel() != 1) kfail(node, "constant value must be one element of the input type");
  std::vector<std::vector<int64_t>> maps;
  for (int k = 0; k < r; ++k) {
    const int64_t d = x.shape()[k], pb = pads[k], pe = pads[k + r];
    if (d + pb + pe < 0) kfail(node, "pads {} make axis {} of size {} negative", shape_str(pads), k, d);
    if (mode != PadMode::Constant && d == 0 && d + pb + pe > 0)
      kfail(node, "cannot pad an empty axis {} in a non-constant mode", k);
    maps.push_back(pad_axis_map(d, pb, pe, mode));
  }
  Shape os;
  for (const auto& m : maps) os.push_back(static_cast<int64_t>(m.size()));
  Tensor out(x.dtype(), os);
  gather_by_maps(esz, x.shape(), static_cast<const uint8_t*>(x.raw()), maps,
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
