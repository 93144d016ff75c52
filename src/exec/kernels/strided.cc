#include "exec/kernels/strided.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"

namespace oq::exec {

const Tensor& input_at(const ir::Node& node, const std::vector<const Tensor*>& in, size_t i) {
  if (i >= in.size() || in[i] == nullptr || in[i]->empty()) kfail(node, "required input {} is missing", i);
  return *in[i];
}

const Tensor* optional_input(const std::vector<const Tensor*>& in, size_t i) {
  if (i >= in.size() || in[i] == nullptr || in[i]->empty() || in[i]->numel() == 0) return nullptr;
  return in[i];
}

int normalize_axis(const ir::Node& node, int64_t axis, int rank) {
  if (axis < -rank || axis >= rank) kfail(node, "axis {} is out of range for rank {}", axis, rank);
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

std::vector<int64_t> int_values(const ir::Node& node, const Tensor& t, const char* what) {
  if (!is_integer(t.dtype())) kfail(node, "{} must be an integer tensor, got {}", what, dtype_name(t.dtype()));
  if (t.rank() > 1) kfail(node, "{} must be 0-d or 1-d, got shape {}", what, shape_str(t.shape()));
  return t.to_int64s();
}

size_t elem_size(const ir::Node& node, const Tensor& t) {
  size_t e = dtype_size(t.dtype());
  if (e == 0) kfail(node, "tensors of type {} are not supported", dtype_name(t.dtype()));
  return e;
}

std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

Tensor scalar_of(DType t, double v) {
  Tensor d(DType::Double, {});
  *d.data<double>() = v;
  return d.cast(t);
}

// ------------------------------------------------------------------------------------------------------
// strided copy

namespace {

template <typename T>
void copy_run(const uint8_t* src, int64_t stride, int64_t n, uint8_t* dst) {
  const T* s = reinterpret_cast<const T*>(src);
  T* d = reinterpret_cast<T*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = s[i * stride];
}

void copy_run_any(size_t esz, const uint8_t* src, int64_t stride, int64_t n, uint8_t* dst) {
  if (stride == 1 && (n * static_cast<int64_t>(esz) >= 64 || (esz != 1 && esz != 2 && esz != 4 && esz != 8))) {
    std::memcpy(dst, src, static_cast<size_t>(n) * esz);
    return;
  }  // short contiguous runs: the typed loop below beats a memcpy call
  switch (esz) {
    case 1: copy_run<uint8_t>(src, stride, n, dst); return;
    case 2: copy_run<uint16_t>(src, stride, n, dst); return;
    case 4: copy_run<uint32_t>(src, stride, n, dst); return;
    case 8: copy_run<uint64_t>(src, stride, n, dst); return;
    default:
      for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * esz, src + i * stride * esz, esz);
  }
}

// Transpose-like copy: the innermost output dim (r-1) is strided in the input while dim p is contiguous
// there. Copies T x T tiles of the (p, r-1) plane so both sides stay in cache; parallel over (other dims,
// tile rows).
template <typename E>
void tiled_copy_t(const std::vector<int64_t>& size, const std::vector<int64_t>& stride, int p, const E* in, E* out) {
  constexpr int64_t T = 16;
  const int r = static_cast<int>(size.size());
  std::vector<int64_t> ostr(static_cast<size_t>(r), 1);
  for (int k = r - 2; k >= 0; --k) ostr[k] = ostr[k + 1] * size[k + 1];
  std::vector<int> others;
  int64_t n_other = 1;
  for (int k = 0; k < r - 1; ++k)
    if (k != p) {
      others.push_back(k);
      n_other *= size[k];
    }
  const int64_t P = size[p], N = size[r - 1], sN = stride[r - 1], oP = ostr[p];
  const int64_t tiles_p = (P + T - 1) / T;
  parallel_for(n_other * tiles_p, 4, [&](int64_t b, int64_t e) {
    for (int64_t job = b; job < e; ++job) {
      int64_t rem = job / tiles_p, a0 = (job % tiles_p) * T;
      int64_t in_off = 0, out_off = 0;
      for (int q = static_cast<int>(others.size()) - 1; q >= 0; --q) {
        int k = others[q];
        int64_t i = rem % size[k];
        rem /= size[k];
        in_off += i * stride[k];
        out_off += i * ostr[k];
      }
      const int64_t a1 = std::min(P, a0 + T);
      for (int64_t b0 = 0; b0 < N; b0 += T) {
        const int64_t b1 = std::min(N, b0 + T);
        for (int64_t a = a0; a < a1; ++a) {
          const E* src = in + in_off + a;
          E* dst = out + out_off + a * oP;
          for (int64_t j = b0; j < b1; ++j) dst[j] = src[j * sN];
        }
      }
    }
  });
}

void tiled_copy(size_t esz, const std::vector<int64_t>& size, const std::vector<int64_t>& stride, int p,
                const uint8_t* in, uint8_t* out) {
  switch (esz) {
    case 1: tiled_copy_t(size, stride, p, in, out); break;
    case 2: tiled_copy_t(size, stride, p, reinterpret_cast<const uint16_t*>(in), reinterpret_cast<uint16_t*>(out)); break;
    case 4: tiled_copy_t(size, stride, p, reinterpret_cast<const uint32_t*>(in), reinterpret_cast<uint32_t*>(out)); break;
    default: tiled_copy_t(size, stride, p, reinterpret_cast<const uint64_t*>(in), reinterpret_cast<uint64_t*>(out)); break;
  }
}

}  // namespace

void strided_copy(size_t esz, const Shape& out_shape, const std::vector<int64_t>& in_strides,
                  const uint8_t* in_base, uint8_t* out) {
  int64_t numel = shape_numel(out_shape);
  if (numel == 0) return;
  // Coalesce: drop size-1 dims, merge neighbours whose strides chain.
  std::vector<int64_t> size, stride;
  for (size_t k = 0; k < out_shape.size(); ++k) {
    if (out_shape[k] == 1) continue;
    if (!size.empty() && stride.back() == in_strides[k] * out_shape[k]) {
      size.back() *= out_shape[k];
      stride.back() = in_strides[k];
    } else {
      size.push_back(out_shape[k]);
      stride.push_back(in_strides[k]);
    }
  }
  if (size.empty()) {
    std::memcpy(out, in_base, esz);
    return;
  }
  const int r = static_cast<int>(size.size());
  const int64_t n = size.back(), s = stride.back();
  const int64_t rows = numel / n;
  if (s != 1 && r >= 2 && n >= 8 && (esz == 1 || esz == 2 || esz == 4 || esz == 8)) {
    for (int p = r - 2; p >= 0; --p)
      if (stride[p] == 1 && size[p] >= 8) {
        tiled_copy(esz, size, stride, p, in_base, out);
        return;
      }
  }
  parallel_for(rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(static_cast<size_t>(r), 0);
    int64_t rem = b, off = 0;
    for (int k = r - 2; k >= 0; --k) {
      idx[k] = rem % size[k];
      rem /= size[k];
      off += idx[k] * stride[k];
    }
    for (int64_t row = b; row < e; ++row) {
      copy_run_any(esz, in_base + off * static_cast<int64_t>(esz), s, n, out + row * n * static_cast<int64_t>(esz));
      for (int k = r - 2; k >= 0; --k) {
        off += stride[k];
        if (++idx[k] < size[k]) break;
        off -= stride[k] * size[k];
        idx[k] = 0;
      }
    }
  });
}

void strided_copy_naive(size_t esz, const Shape& out_shape, const std::vector<int64_t>& in_strides,
                        const uint8_t* in_base, uint8_t* out) {
  int64_t numel = shape_numel(out_shape);
  int r = static_cast<int>(out_shape.size());
  for (int64_t i = 0; i < numel; ++i) {
    int64_t rem = i, off = 0;
    for (int k = r - 1; k >= 0; --k) {
      off += (rem % out_shape[k]) * in_strides[k];
      rem /= out_shape[k];
    }
    std::memcpy(out + i * static_cast<int64_t>(esz), in_base + off * static_cast<int64_t>(esz), esz);
  }
}

static Shape permuted_shape(const Tensor& x, const std::vector<int64_t>& perm) {
  OQ_CHECK(static_cast<int>(perm.size()) == x.rank(), "transpose: perm size");
  Shape s;
  for (int64_t p : perm) s.push_back(x.shape()[p]);
  return s;
}

Tensor transpose(const Tensor& x, const std::vector<int64_t>& perm) {
  Tensor out = Tensor::uninitialized(x.dtype(), permuted_shape(x, perm));
  auto st = contiguous_strides(x.shape());
  std::vector<int64_t> in_strides;
  for (int64_t p : perm) in_strides.push_back(st[p]);
  strided_copy(dtype_size(x.dtype()), out.shape(), in_strides, static_cast<const uint8_t*>(x.raw()),
               static_cast<uint8_t*>(out.raw()));
  return out;
}

Tensor transpose_naive(const Tensor& x, const std::vector<int64_t>& perm) {
  Tensor out(x.dtype(), permuted_shape(x, perm));
  size_t esz = dtype_size(x.dtype());
  auto in_st = contiguous_strides(x.shape());
  const auto* src = static_cast<const uint8_t*>(x.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  std::vector<int64_t> oidx(out.shape().size());
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t rem = i;
    for (int k = out.rank() - 1; k >= 0; --k) {
      oidx[k] = rem % out.shape()[k];
      rem /= out.shape()[k];
    }
    int64_t off = 0;  // input index: in[perm[k]] = oidx[k]
    for (int k = 0; k < out.rank(); ++k) off += oidx[k] * in_st[perm[k]];
    std::memcpy(dst + i * esz, src + off * esz, esz);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------
// gather by maps

void gather_by_maps(size_t esz, const Shape& in_shape, const uint8_t* in,
                    const std::vector<std::vector<int64_t>>& maps, const uint8_t* fill, uint8_t* out) {
  const int r = static_cast<int>(in_shape.size());
  Shape out_shape;
  for (const auto& m : maps) out_shape.push_back(static_cast<int64_t>(m.size()));
  int64_t numel = shape_numel(out_shape);
  if (numel == 0) return;
  if (r == 0) {
    std::memcpy(out, in, esz);
    return;
  }
  auto st = contiguous_strides(in_shape);
  // Last axis as runs: {out_begin, length, in_begin (-1 = fill)}.
  struct Run {
    int64_t ob, len, ib;
  };
  std::vector<Run> runs;
  const auto& last = maps.back();
  for (int64_t j = 0; j < static_cast<int64_t>(last.size()); ++j) {
    bool extend = !runs.empty() &&
                  ((runs.back().ib < 0 && last[j] < 0) ||
                   (runs.back().ib >= 0 && last[j] == runs.back().ib + runs.back().len));
    if (extend)
      runs.back().len++;
    else
      runs.push_back({j, 1, last[j] < 0 ? -1 : last[j]});
  }
  const int64_t n = out_shape.back();
  const int64_t rows = numel / n;
  const int64_t e_sz = static_cast<int64_t>(esz);
  // Short runs (e.g. nearest upsampling) copy element by element through the last-axis map instead.
  const bool by_element = runs.size() * 4 > static_cast<size_t>(n) && (esz == 1 || esz == 2 || esz == 4 || esz == 8);
  auto copy_row = [&](const uint8_t* src, uint8_t* dst) {
    auto typed = [&](auto tag) {
      using T = decltype(tag);
      const T* s = reinterpret_cast<const T*>(src);
      T* d = reinterpret_cast<T*>(dst);
      T f;
      std::memcpy(&f, fill, sizeof(T));
      for (int64_t j = 0; j < n; ++j) d[j] = last[j] < 0 ? f : s[last[j]];
    };
    switch (esz) {
      case 1: typed(uint8_t{}); break;
      case 2: typed(uint16_t{}); break;
      case 4: typed(uint32_t{}); break;
      default: typed(uint64_t{}); break;
    }
  };
  auto fill_n = [&](uint8_t* dst, int64_t cnt) {
    for (int64_t i = 0; i < cnt; ++i) std::memcpy(dst + i * e_sz, fill, esz);
  };
  parallel_for(rows, std::max<int64_t>(1, 16384 / n), [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(static_cast<size_t>(r), 0);
    int64_t rem = b;
    for (int k = r - 2; k >= 0; --k) {
      idx[k] = rem % out_shape[k];
      rem /= out_shape[k];
    }
    for (int64_t row = b; row < e; ++row) {
      uint8_t* dst = out + row * n * e_sz;
      int64_t off = 0;
      bool filled = false;
      for (int k = 0; k < r - 1; ++k) {
        int64_t m = maps[k][idx[k]];
        if (m < 0) {
          filled = true;
          break;
        }
        off += m * st[k];
      }
      if (filled) {
        fill_n(dst, n);
      } else if (by_element) {
        copy_row(in + off * e_sz, dst);
      } else {
        for (const Run& ru : runs) {
          if (ru.ib < 0)
            fill_n(dst + ru.ob * e_sz, ru.len);
          else
            std::memcpy(dst + ru.ob * e_sz, in + (off + ru.ib) * e_sz, static_cast<size_t>(ru.len) * esz);
        }
      }
      for (int k = r - 2; k >= 0; --k) {
        if (++idx[k] < out_shape[k]) break;
        idx[k] = 0;
      }
    }
  });
}

void gather_by_maps_naive(size_t esz, const Shape& in_shape, const uint8_t* in,
                          const std::vector<std::vector<int64_t>>& maps, const uint8_t* fill, uint8_t* out) {
  const int r = static_cast<int>(in_shape.size());
  Shape out_shape;
  for (const auto& m : maps) out_shape.push_back(static_cast<int64_t>(m.size()));
  int64_t numel = shape_numel(out_shape);
  auto st = contiguous_strides(in_shape);
  for (int64_t i = 0; i < numel; ++i) {
    int64_t rem = i, off = 0;
    bool filled = false;
    for (int k = r - 1; k >= 0; --k) {
      int64_t m = maps[k][rem % out_shape[k]];
      rem /= out_shape[k];
      if (m < 0) filled = true;
      off += m * st[k];
    }
    std::memcpy(out + i * esz, filled ? fill : in + off * esz, esz);
  }
}

// ------------------------------------------------------------------------------------------------------
// Gather / Concat

static std::vector<int64_t> checked_indices(const ir::Node& node, const Tensor& indices, int64_t dim) {
  if (indices.dtype() != DType::Int32 && indices.dtype() != DType::Int64)
    kfail(node, "indices must be int32 or int64, got {}", dtype_name(indices.dtype()));
  std::vector<int64_t> idx = indices.to_int64s();
  for (int64_t& v : idx) {
    if (v < -dim || v >= dim) kfail(node, "index {} is out of range for a dimension of size {}", v, dim);
    if (v < 0) v += dim;
  }
  return idx;
}

static Shape gather_shape(const Tensor& data, const Tensor& indices, int axis) {
  Shape s(data.shape().begin(), data.shape().begin() + axis);
  s.insert(s.end(), indices.shape().begin(), indices.shape().end());
  s.insert(s.end(), data.shape().begin() + axis + 1, data.shape().end());
  return s;
}

Tensor gather(const ir::Node& node, const Tensor& data, const Tensor& indices, int axis) {
  size_t esz = elem_size(node, data);
  const int64_t dim = data.shape()[axis];
  std::vector<int64_t> idx = checked_indices(node, indices, dim);
  Tensor out = Tensor::uninitialized(data.dtype(), gather_shape(data, indices, axis));
  int64_t outer = 1, inner = 1;
  for (int k = 0; k < axis; ++k) outer *= data.shape()[k];
  for (int k = axis + 1; k < data.rank(); ++k) inner *= data.shape()[k];
  const int64_t block = inner * static_cast<int64_t>(esz), ni = static_cast<int64_t>(idx.size());
  const auto* src = static_cast<const uint8_t*>(data.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  parallel_for(outer * ni, std::max<int64_t>(1, 65536 / std::max<int64_t>(block, 1)), [&](int64_t b, int64_t e) {
    int64_t o = b / ni, j = b % ni;
    for (int64_t t = b; t < e; ++t) {
      std::memcpy(dst + t * block, src + (o * dim + idx[j]) * block, static_cast<size_t>(block));
      if (++j == ni) {
        j = 0;
        ++o;
      }
    }
  });
  return out;
}

Tensor gather_naive(const ir::Node& node, const Tensor& data, const Tensor& indices, int axis) {
  size_t esz = elem_size(node, data);
  std::vector<int64_t> idx = checked_indices(node, indices, data.shape()[axis]);
  Tensor out(data.dtype(), gather_shape(data, indices, axis));
  auto in_st = contiguous_strides(data.shape());
  const int ir = indices.rank();
  for (int64_t i = 0; i < out.numel(); ++i) {
    // Unravel the output index, then map: dims [0,axis) and (axis+ir, ...) copy, the ir index dims pick.
    std::vector<int64_t> o(out.shape().size());
    int64_t rem = i;
    for (int k = out.rank() - 1; k >= 0; --k) {
      o[k] = rem % out.shape()[k];
      rem /= out.shape()[k];
    }
    int64_t flat_idx = 0;
    for (int k = 0; k < ir; ++k) flat_idx = flat_idx * indices.shape()[k] + o[axis + k];
    int64_t off = 0;
    for (int k = 0; k < axis; ++k) off += o[k] * in_st[k];
    off += idx[flat_idx] * in_st[axis];
    for (int k = axis + 1; k < data.rank(); ++k) off += o[k + ir - 1] * in_st[k];
    std::memcpy(static_cast<uint8_t*>(out.raw()) + i * esz, static_cast<const uint8_t*>(data.raw()) + off * esz,
                esz);
  }
  return out;
}

static Shape concat_shape(const ir::Node& node, const std::vector<const Tensor*>& xs, int axis) {
  if (xs.empty()) kfail(node, "Concat needs at least one input");
  Shape s = xs[0]->shape();
  s[axis] = 0;
  for (const Tensor* x : xs) {
    if (x->dtype() != xs[0]->dtype()) kfail(node, "inputs have different types");
    if (x->rank() != xs[0]->rank()) kfail(node, "inputs have different ranks");
    for (int k = 0; k < x->rank(); ++k)
      if (k != axis && x->shape()[k] != xs[0]->shape()[k])
        kfail(node, "input shapes {} and {} differ outside axis {}", shape_str(xs[0]->shape()),
              shape_str(x->shape()), axis);
    s[axis] += x->shape()[axis];
  }
  return s;
}

Tensor concat(const ir::Node& node, const std::vector<const Tensor*>& xs, int axis) {
  Shape s = concat_shape(node, xs, axis);
  size_t esz = elem_size(node, *xs[0]);
  Tensor out = Tensor::uninitialized(xs[0]->dtype(), s);
  int64_t outer = 1, inner = static_cast<int64_t>(esz);
  for (int k = 0; k < axis; ++k) outer *= s[k];
  for (int k = axis + 1; k < static_cast<int>(s.size()); ++k) inner *= s[k];
  const int64_t row = s[axis] * inner;
  auto* dst = static_cast<uint8_t*>(out.raw());
  parallel_for(outer, std::max<int64_t>(1, 65536 / std::max<int64_t>(row, 1)), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t pos = o * row;
      for (const Tensor* x : xs) {
        int64_t blk = x->shape()[axis] * inner;
        if (blk) std::memcpy(dst + pos, static_cast<const uint8_t*>(x->raw()) + o * blk, static_cast<size_t>(blk));
        pos += blk;
      }
    }
  });
  return out;
}

Tensor concat_naive(const ir::Node& node, const std::vector<const Tensor*>& xs, int axis) {
  Shape s = concat_shape(node, xs, axis);
  size_t esz = elem_size(node, *xs[0]);
  Tensor out(xs[0]->dtype(), s);
  int64_t base = 0;
  for (const Tensor* x : xs) {
    auto ost = contiguous_strides(s);
    for (int64_t i = 0; i < x->numel(); ++i) {
      int64_t rem = i, off = 0;
      for (int k = x->rank() - 1; k >= 0; --k) {
        int64_t c = rem % x->shape()[k];
        rem /= x->shape()[k];
        off += (k == axis ? c + base : c) * ost[k];
      }
      std::memcpy(static_cast<uint8_t*>(out.raw()) + off * esz, static_cast<const uint8_t*>(x->raw()) + i * esz,
                  esz);
    }
    base += x->shape()[axis];
  }
  return out;
}

}  // namespace oq::exec
