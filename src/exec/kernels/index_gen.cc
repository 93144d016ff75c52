// Kernels that make or apply index patterns: OneHot, NonZero, Trilu. Every dtype the Tensor class holds,
// strings included (see indexing.h).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/parallel.h"
#include "exec/kernels/indexing.h"
#include "exec/kernels/strided.h"

namespace oq::exec {
namespace {

// --------------------------------------------------------------------------------------------------- OneHot
// output = off_value everywhere, on_value at [..., idx, ...] (the new axis); indices outside [-depth, depth-1]
// (and NaN) leave their row all off. Non-integer indices and depth are truncated to integers (cast to int64).
std::unique_ptr<Kernel> make_one_hot(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const int64_t axis = node.attr_int("axis", -1);
  return fn_kernel([node, axis](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& ind = input_at(node, in, 0);
    const Tensor& dep = input_at(node, in, 1);
    const Tensor& val = input_at(node, in, 2);
    for (const Tensor* t : {&ind, &dep})
      if (!is_integer(t->dtype()) && !is_float(t->dtype()))
        kfail(node, "indices and depth must be numeric, got {}", dtype_name(t->dtype()));
    if (dep.numel() != 1 || dep.rank() > 1) kfail(node, "depth must be a scalar, got shape {}", shape_str(dep.shape()));
    if (val.rank() != 1 || val.numel() != 2)
      kfail(node, "values must be a 1-D tensor [off_value, on_value], got shape {}", shape_str(val.shape()));
    const double dd = dep.to_doubles()[0];
    if (!(dd >= 0) || dd >= 0x1p62) kfail(node, "depth {} must be a non-negative number", dd);
    const int64_t depth = is_integer(dep.dtype()) ? dep.to_int64s()[0] : static_cast<int64_t>(dd);
    const int r = ind.rank();
    if (r < 1) kfail(node, "indices must have rank >= 1, got a scalar");  // the schema's shape inference rule
    if (axis < -r - 1 || axis > r) kfail(node, "axis {} is out of range [{}, {}]", axis, -r - 1, r);
    const int a = static_cast<int>(axis < 0 ? axis + r + 1 : axis);
    Shape os = ind.shape();
    os.insert(os.begin() + a, depth);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < a; ++d) outer *= ind.dim(d);
    for (int d = a; d < r; ++d) inner *= ind.dim(d);
    // Position along the new axis for each index (-1: none).
    std::vector<int64_t> pos(static_cast<size_t>(ind.numel()), -1);
    if (is_integer(ind.dtype())) {
      std::vector<int64_t> v = ind.to_int64s();
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] >= -depth && v[i] < depth) pos[i] = v[i] < 0 ? v[i] + depth : v[i];
    } else {
      std::vector<double> v = ind.to_doubles();
      for (size_t i = 0; i < v.size(); ++i) {
        const double t = std::trunc(v[i]);  // NaN fails both comparisons
        if (t >= static_cast<double>(-depth) && t < static_cast<double>(depth))
          pos[i] = t < 0 ? static_cast<int64_t>(t) + depth : static_cast<int64_t>(t);
      }
    }
    Tensor o = Tensor::uninitialized(val.dtype(), os);
    CombineFn copy = combine_fn(node, val.dtype(), ScatterReduction::None);
    ElemPtr src = elems(val), dst = elems(o);
    for (int64_t i = 0; i < o.numel(); ++i) copy(dst.at(i), src.at(0), 1);
    for (int64_t p = 0; p < outer; ++p)
      for (int64_t q = 0; q < inner; ++q)
        if (const int64_t d = pos[p * inner + q]; d >= 0) copy(dst.at((p * depth + d) * inner + q), src.at(1), 1);
    out[0] = std::move(o);
  });
}

// -------------------------------------------------------------------------------------------------- NonZero
// NonZero's output [rank, count] int64 for `shape`, given nz(i) (element i is non-zero, flat row-major index)
// and the count: the coordinates of the non-zero elements in row-major order, from an odometer over the outer
// axes and the position in each innermost row.
template <typename Nz>
Tensor nonzero_coords(const Shape& shape, int64_t count, Nz nz) {
  const int r = static_cast<int>(shape.size());
  Tensor o = Tensor::uninitialized(DType::Int64, {r, count});
  if (count == 0 || r == 0) return o;  // a scalar gives shape [0, count] (the spec's rule, unlike numpy's [1, count])
  int64_t* y = o.data<int64_t>();
  const int64_t last = shape[r - 1], total = shape_numel(shape);
  std::vector<int64_t> idx(static_cast<size_t>(r), 0), hit(static_cast<size_t>(last) + 1);
  int64_t j = 0;
  for (int64_t base = 0; base < total; base += last) {
    int64_t m = 0;  // the row's non-zero positions, gathered without a branch per element
    for (int64_t k = 0; k < last; ++k) hit[m] = k, m += nz(base + k);
    for (int d = 0; d < r - 1; ++d) std::fill(y + d * count + j, y + d * count + j + m, idx[d]);
    std::copy(hit.begin(), hit.begin() + m, y + (r - 1) * count + j);
    j += m;
    for (int d = r - 2; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return o;
}

// Count, then coordinates, with the predicate inlined for element type U (compared to 0 after `mask`).
template <typename U>
Tensor nonzero_typed(const Tensor& x, U mask) {
  const U* p = static_cast<const U*>(x.raw());
  int64_t count = 0;
  for (int64_t i = 0; i < x.numel(); ++i) count += (p[i] & mask) != 0;
  return nonzero_coords(x.shape(), count, [p, mask](int64_t i) { return (p[i] & mask) != 0; });
}

// Non-zero: numbers != 0 (NaN counts, -0.0 does not), non-empty strings.
Tensor nonzero(const Tensor& x) {
  switch (x.dtype()) {
    case DType::Float: return nonzero_typed<uint32_t>(x, 0x7fffffffu);  // bits without the sign
    case DType::Double: return nonzero_typed<uint64_t>(x, 0x7fffffffffffffffull);
    case DType::Float16:
    case DType::BFloat16: return nonzero_typed<uint16_t>(x, 0x7fff);
    case DType::String: {
      const auto& v = x.strings();
      const int64_t count = std::count_if(v.begin(), v.end(), [](const std::string& e) { return !e.empty(); });
      return nonzero_coords(x.shape(), count, [&v](int64_t i) { return !v[i].empty(); });
    }
    default:  // integers and bool: any bit set
      switch (dtype_size(x.dtype())) {
        case 1: return nonzero_typed<uint8_t>(x, 0xff);
        case 2: return nonzero_typed<uint16_t>(x, 0xffff);
        case 4: return nonzero_typed<uint32_t>(x, 0xffffffffu);
        default: return nonzero_typed<uint64_t>(x, ~0ull);
      }
  }
}

std::unique_ptr<Kernel> make_non_zero(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  return fn_kernel([node](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    if (x.dtype() != DType::String) elem_size(node, x);
    out[0] = nonzero(x);
  });
}

// ---------------------------------------------------------------------------------------------------- Trilu
// Keeps the upper (j - i >= k) or lower (j - i <= k) triangle of every [N, M] matrix of the last two dims and
// zeroes the rest.
std::unique_ptr<Kernel> make_trilu(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const bool upper = node.attr_int("upper", 1) != 0;
  return fn_kernel([node, upper](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    if (x.rank() < 2) kfail(node, "input must have rank >= 2, got shape {}", shape_str(x.shape()));
    if (x.dtype() != DType::String) elem_size(node, x);
    int64_t k = 0;
    if (in.size() > 1 && in[1] && !in[1]->empty()) {
      const Tensor& kt = *in[1];
      if (kt.dtype() != DType::Int64) kfail(node, "k must be int64, got {}", dtype_name(kt.dtype()));
      if (kt.numel() != 1 || kt.rank() > 1) kfail(node, "k must be a scalar, got shape {}", shape_str(kt.shape()));
      k = kt.to_int64s()[0];
    }
    const int64_t rows = x.dim(-2), cols = x.dim(-1);
    const int64_t mats = rows > 0 && cols > 0 ? x.numel() / (rows * cols) : 0;
    Tensor o = x.clone();
    ElemPtr p = elems(o);
    const DType t = o.dtype();
    parallel_for(mats * rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t f = lo; f < hi; ++f) {
        const int64_t i = f % rows;
        // Columns to zero: upper [0, i + k), lower (i + k, cols); k clamped first (it may be huge; a k
        // beyond [-rows, cols] keeps or zeroes everything, like the clamped one).
        const int64_t kc = std::clamp<int64_t>(k, -rows, cols);
        const int64_t b = upper ? 0 : std::clamp<int64_t>(i + kc + 1, 0, cols);
        const int64_t e = upper ? std::clamp<int64_t>(i + kc, 0, cols) : cols;
        if (e > b) zero_elems(t, p.at(f * cols + b), e - b);
      }
    });
    out[0] = std::move(o);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(OneHot, 9, kMaxOpset, make_one_hot);
OQ_REGISTER_KERNEL(NonZero, 9, kMaxOpset, make_non_zero);
OQ_REGISTER_KERNEL(Trilu, 14, kMaxOpset, make_trilu);

}  // namespace oq::exec
