// Index kernels: GatherND, ScatterND, ScatterElements (every dtype, strings included; see indexing.h).
// Indices are checked in full before anything is written; scatters apply their updates in the reference
// order (row-major over the update index), so duplicate indices give the same result as onnx.reference.
#include "exec/kernels/indexing.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/parallel.h"
#include "exec/kernels/elementwise.h"
#include "exec/kernels/strided.h"

namespace oq::exec {

// ------------------------------------------------------------------------------------------- shared helpers
ScatterReduction parse_scatter_reduction(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  if (!node.has_attr("reduction")) return ScatterReduction::None;
  if (ki.opset < 16) kfail(node, "attribute 'reduction' needs opset 16 (the model imports opset {})", ki.opset);
  const std::string r = node.attr_string("reduction", "none");
  if (r == "none") return ScatterReduction::None;
  if (r == "add") return ScatterReduction::Add;
  if (r == "mul") return ScatterReduction::Mul;
  if (r == "max" || r == "min") {
    if (ki.opset < 18) kfail(node, "reduction '{}' needs opset 18 (the model imports opset {})", r, ki.opset);
    return r == "max" ? ScatterReduction::Max : ScatterReduction::Min;
  }
  kfail(node, "unknown reduction '{}' (none, add, mul, max, min)", r);
}

const char* scatter_reduction_name(ScatterReduction r) {
  switch (r) {
    case ScatterReduction::None: return "none";
    case ScatterReduction::Add: return "add";
    case ScatterReduction::Mul: return "mul";
    case ScatterReduction::Max: return "max";
    case ScatterReduction::Min: return "min";
  }
  return "?";
}

ElemPtr elems(Tensor& t) {
  if (t.dtype() == DType::String) return {reinterpret_cast<uint8_t*>(t.strings().data()), sizeof(std::string)};
  return {static_cast<uint8_t*>(t.raw()), dtype_size(t.dtype())};
}
ElemPtr elems(const Tensor& t) { return elems(const_cast<Tensor&>(t)); }

namespace {

void copy_strings(void* dst, const void* src, int64_t n) {
  std::copy_n(static_cast<const std::string*>(src), n, static_cast<std::string*>(dst));
}
template <size_t Size>
void copy_bytes(void* dst, const void* src, int64_t n) {
  if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * Size);
}

// max / min propagating NaN (numpy.maximum / numpy.minimum, as the reference implementation).
template <typename T>
T max_of(T a, T b) {
  if constexpr (std::is_floating_point_v<T>)
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) ? a : b;
  return b > a ? b : a;
}
template <typename T>
T min_of(T a, T b) {
  if constexpr (std::is_floating_point_v<T>)
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) ? a : b;
  return b < a ? b : a;
}

template <typename T, ScatterReduction R>
T combine_one(T a, T b) {
  if constexpr (R == ScatterReduction::Add) return wrap_add(a, b);
  else if constexpr (R == ScatterReduction::Mul) return wrap_mul(a, b);
  else if constexpr (R == ScatterReduction::Max) return max_of(a, b);
  else return min_of(a, b);
}

template <typename T, ScatterReduction R>
void combine_typed(void* dst, const void* src, int64_t n) {
  T* d = static_cast<T*>(dst);
  const T* s = static_cast<const T*>(src);
  for (int64_t i = 0; i < n; ++i) d[i] = combine_one<T, R>(d[i], s[i]);
}

// Float16 (Half = true) / BFloat16: widen, combine in float, round back.
template <bool Half, ScatterReduction R>
void combine_half(void* dst, const void* src, int64_t n) {
  auto* d = static_cast<uint16_t*>(dst);
  const auto* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    float a = Half ? half_to_float(d[i]) : bfloat16_to_float(d[i]);
    float b = Half ? half_to_float(s[i]) : bfloat16_to_float(s[i]);
    float r = combine_one<float, R>(a, b);
    d[i] = Half ? float_to_half(r) : float_to_bfloat16(r);
  }
}

// Bool as numpy: + is or, * is and, max is or, min is and.
template <ScatterReduction R>
void combine_bool(void* dst, const void* src, int64_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  const auto* s = static_cast<const uint8_t*>(src);
  constexpr bool is_or = R == ScatterReduction::Add || R == ScatterReduction::Max;
  for (int64_t i = 0; i < n; ++i) d[i] = is_or ? (d[i] | s[i]) != 0 : (d[i] & s[i]) != 0;
}

template <ScatterReduction R>
CombineFn combine_for(DType t) {
  CombineFn f = nullptr;
  if (t == DType::Float16) return combine_half<true, R>;
  if (t == DType::BFloat16) return combine_half<false, R>;
  if (t == DType::Bool) return combine_bool<R>;
  dispatch_numeric(t, [&](auto tag) { f = combine_typed<decltype(tag), R>; });
  return f;
}

}  // namespace

CombineFn combine_fn(const ir::Node& node, DType t, ScatterReduction r) {
  CombineFn f = nullptr;
  if (r == ScatterReduction::None) {
    switch (t == DType::String ? 0 : dtype_size(t)) {
      case 0: f = t == DType::String ? copy_strings : nullptr; break;
      case 1: f = copy_bytes<1>; break;
      case 2: f = copy_bytes<2>; break;
      case 4: f = copy_bytes<4>; break;
      case 8: f = copy_bytes<8>; break;
      default: break;
    }
  } else if (t != DType::String && t != DType::Int4 && t != DType::UInt4) {
    switch (r) {
      case ScatterReduction::Add: f = combine_for<ScatterReduction::Add>(t); break;
      case ScatterReduction::Mul: f = combine_for<ScatterReduction::Mul>(t); break;
      case ScatterReduction::Max: f = combine_for<ScatterReduction::Max>(t); break;
      case ScatterReduction::Min: f = combine_for<ScatterReduction::Min>(t); break;
      case ScatterReduction::None: break;
    }
  }
  if (!f) {
    if (r == ScatterReduction::None) kfail(node, "tensors of type {} are not supported", dtype_name(t));
    kfail(node, "reduction '{}' is not defined for type {}", scatter_reduction_name(r), dtype_name(t));
  }
  return f;
}

void zero_elems(DType t, void* dst, int64_t n) {
  if (t == DType::String) {
    std::fill_n(static_cast<std::string*>(dst), n, std::string());
  } else if (n > 0) {
    std::memset(dst, 0, static_cast<size_t>(n) * dtype_size(t));  // all-zero bytes: 0, 0.0, false
  }
}

std::vector<int64_t> index_values(const ir::Node& node, const Tensor& t, const char* what, bool allow_int32) {
  if (t.dtype() != DType::Int64 && !(allow_int32 && t.dtype() == DType::Int32))
    kfail(node, "{} must be {}, got {}", what, allow_int32 ? "int32 or int64" : "int64", dtype_name(t.dtype()));
  return t.to_int64s();
}

namespace {

// Offsets (in elements of data) of the slices addressed by the k-tuples of `idx` ([n, k] row-major) within
// one block of data dims [first, first + k); tuples are checked against the dims ([-s, s-1]).
std::vector<int64_t> tuple_offsets(const ir::Node& node, const std::vector<int64_t>& idx, int64_t n, int64_t k,
                                   const Shape& data_shape, int first) {
  const auto strides = contiguous_strides(data_shape);
  std::vector<int64_t> off(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t o = 0;
    for (int64_t m = 0; m < k; ++m) {
      const int64_t s = data_shape[first + m];
      int64_t v = idx[i * k + m];
      if (v < -s || v >= s)
        kfail(node, "index {} is out of range for axis {} of size {} (data shape {})", v, first + m, s,
              shape_str(data_shape));
      if (v < 0) v += s;
      o += v * strides[first + m];
    }
    off[i] = o;
  }
  return off;
}

// ------------------------------------------------------------------------------------------------ GatherND
std::unique_ptr<Kernel> make_gather_nd(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  if (ki.opset < 12 && node.has_attr("batch_dims"))
    kfail(node, "attribute 'batch_dims' needs opset 12 (the model imports opset {})", ki.opset);
  const int64_t b = node.attr_int("batch_dims", 0);
  if (b < 0) kfail(node, "batch_dims must be >= 0, got {}", b);
  return fn_kernel([node, b](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& data = input_at(node, in, 0);
    const Tensor& ind = input_at(node, in, 1);
    const int r = data.rank(), q = ind.rank();
    if (r < 1 || q < 1) kfail(node, "data and indices must have rank >= 1, got {} and {}", r, q);
    if (b >= std::min(r, q)) kfail(node, "batch_dims {} must be less than the ranks of data ({}) and indices ({})", b, r, q);
    for (int d = 0; d < b; ++d)
      if (data.dim(d) != ind.dim(d))
        kfail(node, "batch dim {} differs: data {} vs indices {}", d, shape_str(data.shape()), shape_str(ind.shape()));
    const int64_t k = ind.dim(-1);
    if (k < 1 || k > r - b) kfail(node, "indices.shape[-1] = {} must be in [1, {}] (data rank - batch_dims)", k, r - b);
    std::vector<int64_t> idx = index_values(node, ind, "indices", false);
    CombineFn copy = combine_fn(node, data.dtype(), ScatterReduction::None);

    Shape os(ind.shape().begin(), ind.shape().end() - 1);
    os.insert(os.end(), data.shape().begin() + b + k, data.shape().end());
    int64_t batches = 1, slice = 1;
    for (int d = 0; d < b; ++d) batches *= data.dim(d);
    for (int d = static_cast<int>(b + k); d < r; ++d) slice *= data.dim(d);
    const int64_t per_batch = batches ? static_cast<int64_t>(idx.size()) / k / batches : 0;
    const int64_t data_batch = batches ? data.numel() / batches : 0;
    std::vector<int64_t> off = tuple_offsets(node, idx, static_cast<int64_t>(idx.size()) / k, k, data.shape(),
                                             static_cast<int>(b));
    Tensor o = Tensor::uninitialized(data.dtype(), os);
    ElemPtr src = elems(data), dst = elems(o);
    const int64_t n = static_cast<int64_t>(off.size());
    parallel_for(n, std::max<int64_t>(1, 16384 / std::max<int64_t>(slice, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) copy(dst.at(i * slice), src.at((i / per_batch) * data_batch + off[i]), slice);
    });
    out[0] = std::move(o);
  });
}

// ----------------------------------------------------------------------------------------------- ScatterND
std::unique_ptr<Kernel> make_scatter_nd(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const ScatterReduction red = parse_scatter_reduction(ki);
  return fn_kernel([node, red](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& data = input_at(node, in, 0);
    const Tensor& ind = input_at(node, in, 1);
    const Tensor& upd = input_at(node, in, 2);
    const int r = data.rank(), q = ind.rank();
    if (r < 1 || q < 1) kfail(node, "data and indices must have rank >= 1, got {} and {}", r, q);
    if (upd.dtype() != data.dtype())
      kfail(node, "updates type {} differs from data type {}", dtype_name(upd.dtype()), dtype_name(data.dtype()));
    const int64_t k = ind.dim(-1);
    if (k > r) kfail(node, "indices.shape[-1] = {} exceeds the data rank {}", k, r);
    Shape want(ind.shape().begin(), ind.shape().end() - 1);
    want.insert(want.end(), data.shape().begin() + k, data.shape().end());
    if (upd.shape() != want)
      kfail(node, "updates shape {} must be {} (indices {}, data {})", shape_str(upd.shape()), shape_str(want),
            shape_str(ind.shape()), shape_str(data.shape()));
    std::vector<int64_t> idx = index_values(node, ind, "indices", false);
    CombineFn f = combine_fn(node, data.dtype(), red);
    int64_t slice = 1;
    for (int d = static_cast<int>(k); d < r; ++d) slice *= data.dim(d);
    const int64_t n = shape_numel(Shape(ind.shape().begin(), ind.shape().end() - 1));
    std::vector<int64_t> off = k > 0 ? tuple_offsets(node, idx, n, k, data.shape(), 0)
                                     : std::vector<int64_t>(static_cast<size_t>(n), 0);
    Tensor o = data.clone();
    ElemPtr dst = elems(o), src = elems(upd);
    for (int64_t i = 0; i < n; ++i) f(dst.at(off[i]), src.at(i * slice), slice);
    out[0] = std::move(o);
  });
}

// ----------------------------------------------------------------------------------------- ScatterElements
std::unique_ptr<Kernel> make_scatter_elements(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const ScatterReduction red = parse_scatter_reduction(ki);
  const int64_t axis = node.attr_int("axis", 0);
  return fn_kernel([node, red, axis](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& data = input_at(node, in, 0);
    const Tensor& ind = input_at(node, in, 1);
    const Tensor& upd = input_at(node, in, 2);
    const int r = data.rank();
    if (r < 1) kfail(node, "data must have rank >= 1");
    const int a = normalize_axis(node, axis, r);
    if (ind.rank() != r) kfail(node, "indices rank {} differs from data rank {}", ind.rank(), r);
    if (upd.shape() != ind.shape())
      kfail(node, "updates shape {} differs from indices shape {}", shape_str(upd.shape()), shape_str(ind.shape()));
    if (upd.dtype() != data.dtype())
      kfail(node, "updates type {} differs from data type {}", dtype_name(upd.dtype()), dtype_name(data.dtype()));
    for (int d = 0; d < r; ++d)
      if (d != a && ind.dim(d) > data.dim(d))
        kfail(node, "indices shape {} exceeds data shape {} on axis {}", shape_str(ind.shape()),
              shape_str(data.shape()), d);
    std::vector<int64_t> idx = index_values(node, ind, "indices", true);
    const int64_t s = data.dim(a);
    for (int64_t& v : idx) {
      if (v < -s || v >= s) kfail(node, "index {} is out of range for axis {} of size {}", v, a, s);
      if (v < 0) v += s;
    }
    CombineFn f = combine_fn(node, data.dtype(), red);
    const auto st = contiguous_strides(data.shape());
    Tensor o = data.clone();
    ElemPtr dst = elems(o), src = elems(upd);
    std::vector<int64_t> c(static_cast<size_t>(r), 0);
    for (int64_t i = 0; i < ind.numel(); ++i) {
      int64_t off = 0;
      for (int d = 0; d < r; ++d) off += (d == a ? idx[i] : c[d]) * st[d];
      f(dst.at(off), src.at(i), 1);
      for (int d = r - 1; d >= 0; --d) {
        if (++c[d] < ind.dim(d)) break;
        c[d] = 0;
      }
    }
    out[0] = std::move(o);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(GatherND, 11, kMaxOpset, make_gather_nd);
OQ_REGISTER_KERNEL(ScatterND, 11, kMaxOpset, make_scatter_nd);
OQ_REGISTER_KERNEL(ScatterElements, 11, kMaxOpset, make_scatter_elements);

}  // namespace oq::exec
