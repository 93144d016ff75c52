// Compress (9, 11), ReverseSequence (10), CenterCropPad (18) and Unique (11), registered up to kMaxOpset, on every
// dtype the Tensor class holds (strings included; 4-bit types refused): elements move as raw bytes or std::string
// objects through the helpers of indexing.h. Pure data movement, so one plain implementation each (what an
// optimised path would do too: contiguous runs copied at once); Unique sorts slice indices.
//
// Version differences: Compress-11 allows a negative axis (refused at 9). The others have one version.
// Semantics where the spec is loose, as ORT 1.32 and onnx.reference do:
//  - Compress: `condition` may be shorter than the axis (the rest is dropped); entries past the axis are ignored
//    (as ORT; numpy and onnx.reference fail on a true one); no axis: the flattened input.
//  - ReverseSequence: a sequence length outside [0, max_time] is an error.
//  - CenterCropPad: crop starts at floor((dim - size) / 2), padding puts floor((size - dim) / 2) zeros first.
//  - Unique: sorted=1 orders by value (slices lexicographically; floats by value, NaN after every number and
//    all NaNs equal, as numpy.unique and onnx.reference; ORT 1.32's comparator merges a NaN into some number);
//    strings by bytes; sorted=0 keeps first-occurrence order. indices = first occurrence. -0.0 equals 0.0.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>
#include <type_traits>

#include "core/dtype.h"
#include "exec/kernels/elementwise.h"
#include "exec/kernels/extra_util.h"
#include "exec/kernels/indexing.h"
#include "exec/kernels/select_extra.h"
#include "exec/kernels/spatial.h"

namespace oq::exec {

namespace {

void require_movable(const ir::Node& node, const Tensor& t, const char* what) {
  if (t.dtype() == DType::Int4 || t.dtype() == DType::UInt4 || t.dtype() == DType::Undefined)
    kfail(node, "{}: unsupported type {}", what, dtype_name(t.dtype()));
}

int64_t prod(const Shape& s, int b, int e) {
  int64_t p = 1;
  for (int i = b; i < e; ++i) p *= s[i];
  return p;
}

}  // namespace

// ------------------------------------------------------------------------------------------ Compress
Tensor compress(const ir::Node& node, const Tensor& x, const std::vector<bool>& cond, std::optional<int> axis) {
  const Tensor flat = axis ? x : x.reshaped({x.numel()});
  const int a = axis ? *axis : 0;
  const int64_t outer = prod(flat.shape(), 0, a), len = flat.dim(a), inner = prod(flat.shape(), a + 1, flat.rank());
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < std::min<int64_t>(len, static_cast<int64_t>(cond.size())); ++i)
    if (cond[i]) keep.push_back(i);
  Shape os = flat.shape();
  os[a] = static_cast<int64_t>(keep.size());
  Tensor y(x.dtype(), os);
  const CombineFn copy = combine_fn(node, x.dtype(), ScatterReduction::None);
  const ElemPtr src = elems(flat), dst = elems(y);
  const int64_t k = static_cast<int64_t>(keep.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < k; ++j) copy(dst.at((o * k + j) * inner), src.at((o * len + keep[j]) * inner), inner);
  return y;
}

// ------------------------------------------------------------------------------------------ ReverseSequence
Tensor reverse_sequence(const ir::Node& node, const Tensor& x, const std::vector<int64_t>& lens, int batch_axis,
                        int time_axis) {
  const int64_t B = x.dim(batch_axis), T = x.dim(time_axis), inner = prod(x.shape(), 2, x.rank());
  Tensor y(x.dtype(), x.shape());
  const CombineFn copy = combine_fn(node, x.dtype(), ScatterReduction::None);
  const ElemPtr src = elems(x), dst = elems(y);
  // Row (b, t) of inner elements: index b * T + t when batch is axis 0, t * B + b when time is.
  auto row = [&](int64_t b, int64_t t) { return (batch_axis == 0 ? b * T + t : t * B + b) * inner; };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t from = t < lens[b] ? lens[b] - 1 - t : t;
      copy(dst.at(row(b, t)), src.at(row(b, from)), inner);
    }
  return y;
}

// ------------------------------------------------------------------------------------------ CenterCropPad
Tensor center_crop_pad(const ir::Node& node, const Tensor& x, const Shape& target) {
  const int r = x.rank();
  // Per axis: output index -> input index or -1 (padding).
  std::vector<std::vector<int64_t>> maps(r);
  for (int a = 0; a < r; ++a) {
    const int64_t dim = x.dim(a), sz = target[a];
    maps[a].resize(sz);
    const int64_t shift = sz <= dim ? (dim - sz) / 2 : -((sz - dim) / 2);  // input index of output 0
    for (int64_t o = 0; o < sz; ++o) {
      const int64_t i = o + shift;
      maps[a][o] = i >= 0 && i < dim ? i : -1;
    }
  }
  Tensor y(x.dtype(), target);  // zeros / empty strings where padded
  if (y.numel() == 0) return y;
  const CombineFn copy = combine_fn(node, x.dtype(), ScatterReduction::None);
  const ElemPtr src = elems(x), dst = elems(y);
  const std::vector<int64_t> xs = contiguous_strides(x.shape());
  std::vector<int64_t> idx(r, 0);
  for (int64_t f = 0; f < y.numel(); ++f) {
    int64_t off = 0;
    bool inside = true;
    for (int a = 0; a < r && inside; ++a) {
      const int64_t i = maps[a][idx[a]];
      inside = i >= 0;
      off += i * xs[a];
    }
    if (inside) copy(dst.at(f), src.at(off), 1);
    for (int a = r - 1; a >= 0; --a) {  // odometer
      if (++idx[a] < target[a]) break;
      idx[a] = 0;
    }
  }
  return y;
}

// ------------------------------------------------------------------------------------------ Unique
namespace {

// Three-way comparison of elements i and j of one type (floats: NaN after numbers, NaNs equal).
template <typename T>
int cmp_num(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    const bool na = std::isnan(a), nb = std::isnan(b);
    if (na || nb) return na == nb ? 0 : (na ? 1 : -1);
  }
  return a < b ? -1 : (b < a ? 1 : 0);
}

using ElemCmp = std::function<int(int64_t, int64_t)>;

ElemCmp element_comparator(const ir::Node& node, const Tensor& x) {
  switch (x.dtype()) {
    case DType::String: {
      const std::string* s = x.strings().data();
      return [s](int64_t i, int64_t j) { return s[i].compare(s[j]) < 0 ? -1 : (s[i] == s[j] ? 0 : 1); };
    }
    case DType::Float16:
    case DType::BFloat16: {
      const uint16_t* p = x.data<uint16_t>();
      const bool h = x.dtype() == DType::Float16;
      return [p, h](int64_t i, int64_t j) {
        const float a = h ? half_to_float(p[i]) : bfloat16_to_float(p[i]), b = h ? half_to_float(p[j]) : bfloat16_to_float(p[j]);
        return cmp_num(a, b);
      };
    }
    case DType::Bool: {
      const uint8_t* p = x.data<uint8_t>();
      return [p](int64_t i, int64_t j) { return cmp_num<int>(p[i] != 0, p[j] != 0); };
    }
    default: break;
  }
  ElemCmp f;
  const bool ok = dispatch_numeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data<T>();
    f = [p](int64_t i, int64_t j) { return cmp_num(p[i], p[j]); };
  });
  if (!ok) kfail(node, "unsupported type {}", dtype_name(x.dtype()));
  return f;
}

}  // namespace

std::vector<Tensor> unique(const ir::Node& node, const Tensor& x, std::optional<int> axis, bool sorted) {
  const Tensor flat = axis ? x : x.reshaped({x.numel()});
  const int a = axis ? *axis : 0;
  const int64_t outer = prod(flat.shape(), 0, a), len = flat.dim(a), inner = prod(flat.shape(), a + 1, flat.rank());
  const ElemCmp ec = element_comparator(node, flat);
  // Slice s = flat[..., s, ...]: compare element by element in row-major order.
  auto cmp = [&](int64_t s, int64_t t) {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const int c = ec((o * len + s) * inner + i, (o * len + t) * inner + i);
        if (c) return c;
      }
    return 0;
  };
  std::vector<int64_t> order(static_cast<size_t>(len));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t s, int64_t t) { return cmp(s, t) < 0; });
  // Groups of equal slices in sorted order; each group's first element is its first occurrence (stable sort).
  std::vector<int64_t> group_of(static_cast<size_t>(len)), firsts, counts;
  for (size_t k = 0; k < order.size(); ++k) {
    if (k == 0 || cmp(order[k - 1], order[k]) != 0) firsts.push_back(order[k]), counts.push_back(0);
    group_of[order[k]] = static_cast<int64_t>(firsts.size()) - 1;
    ++counts.back();
  }
  const int64_t U = static_cast<int64_t>(firsts.size());
  std::vector<int64_t> rank(U);  // output position of each group
  std::iota(rank.begin(), rank.end(), 0);
  if (!sorted) {
    std::vector<int64_t> by_first(U);
    std::iota(by_first.begin(), by_first.end(), 0);
    std::sort(by_first.begin(), by_first.end(), [&](int64_t g, int64_t h) { return firsts[g] < firsts[h]; });
    for (int64_t p = 0; p < U; ++p) rank[by_first[p]] = p;
  }
  Shape ys = flat.shape();
  ys[a] = U;
  Tensor y(x.dtype(), ys), idx(DType::Int64, {U}), inv(DType::Int64, {len}), cnt(DType::Int64, {U});
  const CombineFn copy = combine_fn(node, x.dtype(), ScatterReduction::None);
  const ElemPtr src = elems(flat), dst = elems(y);
  for (int64_t g = 0; g < U; ++g) {
    const int64_t p = rank[g];
    idx.data<int64_t>()[p] = firsts[g];
    cnt.data<int64_t>()[p] = counts[g];
    for (int64_t o = 0; o < outer; ++o) copy(dst.at((o * U + p) * inner), src.at((o * len + firsts[g]) * inner), inner);
  }
  for (int64_t s = 0; s < len; ++s) inv.data<int64_t>()[s] = rank[group_of[s]];
  return {y, idx, inv, cnt};
}

namespace {

std::unique_ptr<Kernel> make_compress(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const bool has_axis = node.has_attr("axis");
  const int64_t axis = node.attr_int("axis", 0);
  if (has_axis && axis < 0 && ki.opset < 11) kfail(node, "a negative axis ({}) needs Compress-11", axis);
  return fn_kernel([node, has_axis, axis](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const Tensor& c = input_at(node, in, 1);
    require_movable(node, x, "input");
    if (c.dtype() != DType::Bool) kfail(node, "condition must be bool, got {}", dtype_name(c.dtype()));
    if (c.rank() != 1) kfail(node, "condition must be 1-D, got shape {}", shape_str(c.shape()));
    std::vector<bool> cond(static_cast<size_t>(c.numel()));
    for (int64_t i = 0; i < c.numel(); ++i) cond[i] = c.data<uint8_t>()[i] != 0;
    std::optional<int> a;
    if (has_axis) {
      if (x.rank() < 1) kfail(node, "axis given for a scalar input");
      a = normalize_axis(node, axis, x.rank());
    }
    out[0] = compress(node, x, cond, a);
  });
}

std::unique_ptr<Kernel> make_reverse_sequence(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const int64_t ba = node.attr_int("batch_axis", 1), ta = node.attr_int("time_axis", 0);
  if (!((ba == 0 && ta == 1) || (ba == 1 && ta == 0)))
    kfail(node, "batch_axis / time_axis must be 0 and 1 in either order, got {} / {}", ba, ta);
  return fn_kernel([node, ba, ta](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    require_movable(node, x, "input");
    if (x.rank() < 2) kfail(node, "input must have rank >= 2, got shape {}", shape_str(x.shape()));
    const Tensor& l = input_at(node, in, 1);
    const std::vector<int64_t> lens = index_values(node, l, "sequence_lens", false);
    const int64_t B = x.dim(static_cast<int>(ba)), T = x.dim(static_cast<int>(ta));
    if (l.rank() != 1 || l.numel() != B)
      kfail(node, "sequence_lens must have shape [{}] (the batch size), got {}", B, shape_str(l.shape()));
    for (int64_t v : lens)
      if (v < 0 || v > T) kfail(node, "sequence length {} is outside [0, {}]", v, T);
    out[0] = reverse_sequence(node, x, lens, static_cast<int>(ba), static_cast<int>(ta));
  });
}

std::unique_ptr<Kernel> make_center_crop_pad(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const bool has_axes = node.has_attr("axes");
  const std::vector<int64_t> axes = node.attr_ints("axes");
  return fn_kernel([node, has_axes, axes](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    require_movable(node, x, "input_data");
    const std::vector<int64_t> sh = index_values(node, input_at(node, in, 1), "shape", true);
    Shape target = x.shape();
    std::vector<int> ax;
    if (has_axes) {
      for (int64_t a : axes) {
        const int n = normalize_axis(node, a, x.rank());
        if (std::find(ax.begin(), ax.end(), n) != ax.end()) kfail(node, "axis {} is listed twice in axes", a);
        ax.push_back(n);
      }
    } else {
      for (int a = 0; a < x.rank(); ++a) ax.push_back(a);
    }
    if (sh.size() != ax.size())
      kfail(node, "shape has {} values for {} axes", sh.size(), ax.size());
    for (size_t i = 0; i < ax.size(); ++i) {
      if (sh[i] < 0) kfail(node, "shape value {} is negative", sh[i]);
      target[ax[i]] = sh[i];
    }
    check_output_size(node, target);
    out[0] = center_crop_pad(node, x, target);
  });
}

std::unique_ptr<Kernel> make_unique_op(const KernelInit& ki) {
  const ir::Node node = ki.node;
  const bool has_axis = node.has_attr("axis");
  const int64_t axis = node.attr_int("axis", 0), sorted = node.attr_int("sorted", 1);
  if (sorted != 0 && sorted != 1) kfail(node, "sorted must be 0 or 1, got {}", sorted);
  return fn_kernel([node, has_axis, axis, sorted](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    require_movable(node, x, "X");
    std::optional<int> a;
    if (has_axis) {
      if (x.rank() < 1) kfail(node, "axis given for a scalar input");
      a = normalize_axis(node, axis, x.rank());
    }
    std::vector<Tensor> r = unique(node, x, a, sorted != 0);
    for (size_t i = 0; i < out.size() && i < r.size(); ++i)
      if (!node.outputs[i].empty()) out[i] = std::move(r[i]);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(Compress, 9, kMaxOpset, make_compress);
OQ_REGISTER_KERNEL(ReverseSequence, 10, kMaxOpset, make_reverse_sequence);
OQ_REGISTER_KERNEL(CenterCropPad, 18, kMaxOpset, make_center_crop_pad);
OQ_REGISTER_KERNEL(Unique, 11, kMaxOpset, make_unique_op);

}  // namespace oq::exec
