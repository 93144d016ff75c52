// CumSum (opset 11, 14) and CumProd (opset 26): running sum / product along one axis, optionally exclusive
// (starting from 0 / 1) and/or reversed. The accumulator is kept in the element type like the reference
// (numpy.cumsum / cumprod with dtype=x.dtype): float in float, Float16/BFloat16 rounded back after every step,
// integers wrapping.
#include <algorithm>
#include <type_traits>

#include "core/parallel.h"
#include "exec/kernels/elementwise.h"
#include "exec/kernels/strided.h"

namespace oq::exec {
namespace {

// [outer, n, inner] view; y[o, j, i] = sum over the prefix (or suffix with reverse) of x[o, ., i].
template <bool kProd, typename T, typename Load, typename Store>
void cumulate_typed(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                    Load load, Store store) {
  using Acc = decltype(load(T{}));
  parallel_for(outer * inner, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t f = lo; f < hi; ++f) {
      const int64_t o = f / inner, i = f % inner;
      const T* px = x + o * n * inner + i;
      T* py = y + o * n * inner + i;
      T acc = store(Acc(kProd ? 1 : 0));
      for (int64_t s = 0; s < n; ++s) {
        const int64_t j = reverse ? n - 1 - s : s;
        if (exclusive) py[j * inner] = acc;
        if constexpr (std::is_integral_v<Acc>) acc = kProd ? wrap_mul(acc, px[j * inner]) : wrap_add(acc, px[j * inner]);
        else acc = store(kProd ? load(acc) * load(px[j * inner]) : load(acc) + load(px[j * inner]));
        if (!exclusive) py[j * inner] = acc;
      }
    }
  });
}

template <bool kProd>
std::unique_ptr<Kernel> make_cumulate(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const int64_t exclusive = node.attr_int("exclusive", 0), reverse = node.attr_int("reverse", 0);
  if (exclusive != 0 && exclusive != 1) kfail(node, "attribute 'exclusive' must be 0 or 1, got {}", exclusive);
  if (reverse != 0 && reverse != 1) kfail(node, "attribute 'reverse' must be 0 or 1, got {}", reverse);
  const bool halves = ki.opset >= 14;  // Float16 / BFloat16 from opset 14
  return fn_kernel([node, exclusive, reverse, halves](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const Tensor& ax = input_at(node, in, 1);
    if (ax.dtype() != DType::Int32 && ax.dtype() != DType::Int64)
      kfail(node, "axis must be int32 or int64, got {}", dtype_name(ax.dtype()));
    if (ax.numel() != 1 || ax.rank() > 1) kfail(node, "axis must be a scalar, got shape {}", shape_str(ax.shape()));
    if (x.rank() < 1) kfail(node, "input must have rank >= 1");
    const int a = normalize_axis(node, ax.to_int64s()[0], x.rank());
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < a; ++d) outer *= x.dim(d);
    for (int d = a + 1; d < x.rank(); ++d) inner *= x.dim(d);
    const int64_t n = x.dim(a);
    Tensor y = Tensor::uninitialized(x.dtype(), x.shape());
    const DType t = x.dtype();
    auto run = [&](auto tag, auto load, auto store) {
      using T = decltype(tag);
      cumulate_typed<kProd, T>(x.data<T>(), y.data<T>(), outer, n, inner, exclusive, reverse, load, store);
    };
    auto same = [](auto v) { return v; };
    switch (t) {
      case DType::Float: run(float{}, same, same); break;
      case DType::Double: run(double{}, same, same); break;
      case DType::Int32: run(int32_t{}, same, same); break;
      case DType::Int64: run(int64_t{}, same, same); break;
      case DType::UInt32: run(uint32_t{}, same, same); break;
      case DType::UInt64: run(uint64_t{}, same, same); break;
      case DType::Float16:
      case DType::BFloat16: {
        if (!halves) kfail(node, "type {} needs opset 14", dtype_name(t));
        if (t == DType::Float16)
          run(uint16_t{}, [](uint16_t v) { return half_to_float(v); }, [](float v) { return float_to_half(v); });
        else
          run(uint16_t{}, [](uint16_t v) { return bfloat16_to_float(v); },
              [](float v) { return float_to_bfloat16(v); });
        break;
      }
      default: kfail(node, "unsupported type {}", dtype_name(t));
    }
    out[0] = std::move(y);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(CumSum, 11, kMaxOpset, make_cumulate<false>);
OQ_REGISTER_KERNEL(CumProd, 26, kMaxOpset, make_cumulate<true>);

}  // namespace oq::exec
