// Data-movement kernels: Transpose, Concat, Split, Slice, Gather, GatherElements, Tile, DepthToSpace,
// SpaceToDepth. All dtype-agnostic (elements moved by size); the heavy lifting is in strided.cc.
#include <algorithm>
#include <cstring>
#include <limits>

#include "exec/kernels/strided.h"

namespace oq::exec {
namespace {

const uint8_t* bytes(const Tensor& t) { return static_cast<const uint8_t*>(t.raw()); }
uint8_t* bytes(Tensor& t) { return static_cast<uint8_t*>(t.raw()); }

// ---------------------------------------------------------------------------------------------- Transpose
std::unique_ptr<Kernel> make_transpose(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  std::vector<int64_t> perm_attr = node.attr_ints("perm");
  bool has_perm = node.has_attr("perm");
  return fn_kernel([node, perm_attr, has_perm](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    elem_size(node, x);
    std::vector<int64_t> perm = perm_attr;
    if (!has_perm) {
      perm.resize(static_cast<size_t>(x.rank()));
      for (int k = 0; k < x.rank(); ++k) perm[k] = x.rank() - 1 - k;
    }
    if (static_cast<int>(perm.size()) != x.rank())
      kfail(node, "perm has {} entries for an input of rank {}", perm.size(), x.rank());
    std::vector<bool> seen(perm.size(), false);
    for (int64_t& p : perm) {
      p = normalize_axis(node, p, x.rank());
      if (seen[p]) kfail(node, "perm repeats axis {}", p);
      seen[p] = true;
    }
    out[0] = transpose(x, perm);
  });
}

// ------------------------------------------------------------------------------------------------- Concat
std::unique_ptr<Kernel> make_concat(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  if (!node.has_attr("axis")) kfail(node, "attribute 'axis' is required");
  int64_t axis = node.attr_int("axis", 0);
  return fn_kernel([node, axis](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    std::vector<const Tensor*> xs;
    for (size_t i = 0; i < in.size(); ++i) xs.push_back(&input_at(node, in, i));
    if (xs.empty()) kfail(node, "Concat needs at least one input");
    out[0] = concat(node, xs, normalize_axis(node, axis, xs[0]->rank()));
  });
}

// -------------------------------------------------------------------------------------------------- Split
std::unique_ptr<Kernel> make_split(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  int64_t axis = node.attr_int("axis", 0);
  std::vector<int64_t> split_attr = ki.opset < 13 ? node.attr_ints("split") : std::vector<int64_t>{};
  int64_t num_outputs = ki.opset >= 18 ? node.attr_int("num_outputs", 0) : 0;
  int opset = ki.opset;
  return fn_kernel([node, axis, split_attr, num_outputs, opset](const std::vector<const Tensor*>& in,
                                                                  std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    size_t esz = elem_size(node, x);
    int a = normalize_axis(node, axis, x.rank());
    const int64_t d = x.shape()[a];
    const int64_t n_out = static_cast<int64_t>(out.size());
    std::vector<int64_t> split = split_attr;
    if (opset >= 13)
      if (const Tensor* s = optional_input(in, 1)) split = int_values(node, *s, "split");
    if (split.empty()) {
      if (num_outputs > 0) {
        if (num_outputs != n_out) kfail(node, "num_outputs {} but the node has {} outputs", num_outputs, n_out);
        int64_t chunk = (d + n_out - 1) / n_out;
        for (int64_t i = 0; i < n_out; ++i) split.push_back(std::max<int64_t>(0, std::min(chunk, d - i * chunk)));
      } else {
        if (d % n_out != 0) kfail(node, "dimension {} does not split evenly into {} outputs", d, n_out);
        split.assign(static_cast<size_t>(n_out), d / n_out);
      }
    }
    if (static_cast<int64_t>(split.size()) != n_out)
      kfail(node, "split has {} entries but the node has {} outputs", split.size(), n_out);
    int64_t total = 0;
    for (int64_t s : split) {
      if (s < 0) kfail(node, "negative split size {}", s);
      total += s;
    }
    if (total != d) kfail(node, "split sizes sum to {} but the dimension is {}", total, d);
    int64_t outer = 1, inner = static_cast<int64_t>(esz);
    for (int k = 0; k < a; ++k) outer *= x.shape()[k];
    for (int k = a + 1; k < x.rank(); ++k) inner *= x.shape()[k];
    int64_t pos = 0;
    for (int64_t i = 0; i < n_out; ++i) {
      Shape s = x.shape();
      s[a] = split[i];
      Tensor t = Tensor::uninitialized(x.dtype(), s);
      int64_t blk = split[i] * inner;
      for (int64_t o = 0; o < outer && blk > 0; ++o)
        std::memcpy(bytes(t) + o * blk, bytes(x) + o * d * inner + pos, static_cast<size_t>(blk));
      pos += blk;
      out[i] = std::move(t);
    }
  });
}

// -------------------------------------------------------------------------------------------------- Slice
// Output of slicing `x` along `axes` (normalised) with ONNX clamping rules.
Tensor slice_tensor(const ir::Node& node, const Tensor& x, const std::vector<int64_t>& starts,
                    const std::vector<int64_t>& ends, std::vector<int64_t> axes, std::vector<int64_t> steps) {
  size_t esz = elem_size(node, x);
  const size_t n = starts.size();
  if (ends.size() != n) kfail(node, "starts has {} entries but ends has {}", n, ends.size());
  if (axes.empty())
    for (size_t i = 0; i < n; ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(n, 1);
  if (axes.size() != n || steps.size() != n) kfail(node, "starts/ends/axes/steps lengths differ");
  const int r = x.rank();
  std::vector<int64_t> start(r, 0), step(r, 1);
  Shape oshape = x.shape();
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < n; ++i) {
    int a = normalize_axis(node, axes[i], r);
    if (seen[a]) kfail(node, "axis {} appears twice", a);
    seen[a] = true;
    const int64_t d = x.shape()[a], st = steps[i];
    if (st == 0) kfail(node, "step must not be 0");
    int64_t b = starts[i], e = ends[i];
    if (b < 0) b += d;
    if (e < 0) e += d;
    int64_t cnt;
    if (st > 0) {
      b = std::clamp<int64_t>(b, 0, d);
      e = std::clamp<int64_t>(e, 0, d);
      cnt = e > b ? (e - b - 1) / st + 1 : 0;
    } else {
      b = std::clamp<int64_t>(b, 0, d - 1);
      e = std::clamp<int64_t>(e, -1, d - 1);
      cnt = b > e ? (b - e - 1) / (-st) + 1 : 0;
    }
    start[a] = cnt > 0 ? b : 0;
    step[a] = st;
    oshape[a] = cnt;
  }
  Tensor out = Tensor::uninitialized(x.dtype(), oshape);
  if (out.numel() == 0) return out;
  auto xs = contiguous_strides(x.shape());
  std::vector<int64_t> in_strides(r);
  int64_t base = 0;
  for (int k = 0; k < r; ++k) {
    in_strides[k] = xs[k] * step[k];
    base += start[k] * xs[k];
  }
  strided_copy(esz, oshape, in_strides, bytes(x) + base * static_cast<int64_t>(esz), bytes(out));
  return out;
}

std::unique_ptr<Kernel> make_slice(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  if (ki.opset < 10) {
    auto starts = node.attr_ints("starts"), ends = node.attr_ints("ends"), axes = node.attr_ints("axes");
    if (!node.has_attr("starts") || !node.has_attr("ends")) kfail(node, "attributes 'starts' and 'ends' are required");
    return fn_kernel([node, starts, ends, axes](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
      out[0] = slice_tensor(node, input_at(node, in, 0), starts, ends, axes, {});
    });
  }
  return fn_kernel([node](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    auto starts = int_values(node, input_at(node, in, 1), "starts");
    auto ends = int_values(node, input_at(node, in, 2), "ends");
    std::vector<int64_t> axes, steps;
    if (const Tensor* t = optional_input(in, 3)) axes = int_values(node, *t, "axes");
    if (const Tensor* t = optional_input(in, 4)) steps = int_values(node, *t, "steps");
    out[0] = slice_tensor(node, x, starts, ends, axes, steps);
  });
}

// ------------------------------------------------------------------------------------------------- Gather
std::unique_ptr<Kernel> make_gather(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  int64_t axis = node.attr_int("axis", 0);
  return fn_kernel([node, axis](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    out[0] = gather(node, x, input_at(node, in, 1), normalize_axis(node, axis, x.rank()));
  });
}

std::unique_ptr<Kernel> make_gather_elements(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  int64_t axis_attr = node.attr_int("axis", 0);
  return fn_kernel([node, axis_attr](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const Tensor& ind = input_at(node, in, 1);
    size_t esz = elem_size(node, x);
    int a = normalize_axis(node, axis_attr, x.rank());
    if (ind.rank() != x.rank()) kfail(node, "indices rank {} differs from data rank {}", ind.rank(), x.rank());
    if (ind.dtype() != DType::Int32 && ind.dtype() != DType::Int64)
      kfail(node, "indices must be int32 or int64");
    for (int k = 0; k < x.rank(); ++k)
      if (k != a && ind.shape()[k] > x.shape()[k])
        kfail(node, "indices shape {} exceeds data shape {}", shape_str(ind.shape()), shape_str(x.shape()));
    std::vector<int64_t> idx = ind.to_int64s();
    Tensor o = Tensor::uninitialized(x.dtype(), ind.shape());
    auto xs = contiguous_strides(x.shape());
    const int64_t d = x.shape()[a];
    std::vector<int64_t> c(static_cast<size_t>(x.rank()), 0);
    for (int64_t i = 0; i < o.numel(); ++i) {
      int64_t v = idx[i];
      if (v < -d || v >= d) kfail(node, "index {} is out of range for a dimension of size {}", v, d);
      if (v < 0) v += d;
      int64_t off = 0;
      for (int k = 0; k < x.rank(); ++k) off += (k == a ? v : c[k]) * xs[k];
      std::memcpy(bytes(o) + i * static_cast<int64_t>(esz), bytes(x) + off * static_cast<int64_t>(esz), esz);
      for (int k = x.rank() - 1; k >= 0; --k) {
        if (++c[k] < ind.shape()[k]) break;
        c[k] = 0;
      }
    }
    out[0] = std::move(o);
  });
}

// --------------------------------------------------------------------------------------------------- Tile
std::unique_ptr<Kernel> make_tile(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  return fn_kernel([node](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    size_t esz = elem_size(node, x);
    auto reps = int_values(node, input_at(node, in, 1), "repeats");
    if (static_cast<int>(reps.size()) != x.rank())
      kfail(node, "repeats has {} entries for an input of rank {}", reps.size(), x.rank());
    auto xs = contiguous_strides(x.shape());
    Shape oshape, view_shape;
    std::vector<int64_t> view_strides;
    for (int k = 0; k < x.rank(); ++k) {
      if (reps[k] < 0) kfail(node, "negative repeat {}", reps[k]);
      int64_t n = 0;
      if (__builtin_mul_overflow(x.shape()[k], reps[k], &n))
        kfail(node, "repeat {} of axis {} of size {} overflows int64", reps[k], k, x.shape()[k]);
      oshape.push_back(n);
      view_shape.insert(view_shape.end(), {reps[k], x.shape()[k]});
      view_strides.insert(view_strides.end(), {0, xs[k]});
    }
    Tensor o = Tensor::uninitialized(x.dtype(), oshape);
    strided_copy(esz, view_shape, view_strides, bytes(x), bytes(o));
    out[0] = std::move(o);
  });
}

// ------------------------------------------------------------------------------ DepthToSpace / SpaceToDepth
// blocksize must be positive and bs * bs must fit (a blocksize of 2^32 made bs * bs 0: SIGFPE on c % 0).
static void check_blocksize(const ir::Node& node, int64_t bs) {
  if (bs <= 0) kfail(node, "attribute 'blocksize' must be positive");
  if (bs > 3037000499) kfail(node, "attribute 'blocksize' {} is too large", bs);  // floor(sqrt(INT64_MAX))
}
// a * b, failing on an overflow (an empty input with a huge blocksize).
static int64_t dim_mul(const ir::Node& node, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) kfail(node, "output dim {} * {} overflows", a, b);
  return r;
}

std::unique_ptr<Kernel> make_depth_to_space(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  int64_t bs = node.attr_int("blocksize", 0);
  std::string mode = ki.opset >= 11 ? node.attr_string("mode", "DCR") : "DCR";
  check_blocksize(node, bs);
  if (mode != "DCR" && mode != "CRD") kfail(node, "unknown mode '{}'", mode);
  return fn_kernel([node, bs, mode](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    elem_size(node, x);
    if (x.rank() != 4) kfail(node, "input must be 4-D, got {}", shape_str(x.shape()));
    int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    if (c % (bs * bs) != 0) kfail(node, "channels {} not divisible by blocksize^2 {}", c, bs * bs);
    int64_t oc = c / (bs * bs);
    Tensor t;
    if (mode == "DCR")
      t = transpose(x.reshaped({n, bs, bs, oc, h, w}), {0, 3, 4, 1, 5, 2});
    else
      t = transpose(x.reshaped({n, oc, bs, bs, h, w}), {0, 1, 4, 2, 5, 3});
    out[0] = t.reshaped({n, oc, dim_mul(node, h, bs), dim_mul(node, w, bs)});
  });
}

std::unique_ptr<Kernel> make_space_to_depth(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  int64_t bs = node.attr_int("blocksize", 0);
  check_blocksize(node, bs);
  // Opset 28 adds `mode` (DCR, the only order before, or CRD: the inverse of DepthToSpace's CRD).
  if (ki.opset < 28 && node.has_attr("mode")) kfail(node, "attribute 'mode' needs opset 28 (model: {})", ki.opset);
  const std::string mode = node.attr_string("mode", "DCR");
  if (mode != "DCR" && mode != "CRD") kfail(node, "unknown mode '{}'", mode);
  const bool crd = mode == "CRD";
  return fn_kernel([node, bs, crd](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    elem_size(node, x);
    if (x.rank() != 4) kfail(node, "input must be 4-D, got {}", shape_str(x.shape()));
    int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    if (h % bs || w % bs) kfail(node, "spatial dims {}x{} not divisible by blocksize {}", h, w, bs);
    // (n, c, h/bs, b1, w/bs, b2) -> DCR (n, b1, b2, c, ...) or CRD (n, c, b1, b2, ...)
    Tensor t = transpose(x.reshaped({n, c, h / bs, bs, w / bs, bs}),
                         crd ? std::vector<int64_t>{0, 1, 3, 5, 2, 4} : std::vector<int64_t>{0, 3, 5, 1, 2, 4});
    out[0] = t.reshaped({n, dim_mul(node, c, bs * bs), h / bs, w / bs});
  });
}

}  // namespace

OQ_REGISTER_KERNEL(Transpose, kMinOpset, kMaxOpset, make_transpose);
OQ_REGISTER_KERNEL(Concat, kMinOpset, kMaxOpset, make_concat);
OQ_REGISTER_KERNEL(Split, kMinOpset, kMaxOpset, make_split);
OQ_REGISTER_KERNEL(Slice, kMinOpset, kMaxOpset, make_slice);
OQ_REGISTER_KERNEL(Gather, kMinOpset, kMaxOpset, make_gather);
OQ_REGISTER_KERNEL(GatherElements, 11, kMaxOpset, make_gather_elements);
OQ_REGISTER_KERNEL(Tile, kMinOpset, kMaxOpset, make_tile);
OQ_REGISTER_KERNEL(DepthToSpace, kMinOpset, kMaxOpset, make_depth_to_space);
OQ_REGISTER_KERNEL(SpaceToDepth, kMinOpset, kMaxOpset, make_space_to_depth);

}  // namespace oq::exec
