// BitwiseAnd, BitwiseOr, BitwiseXor, BitwiseNot (opset 18; int8..int64, uint8..uint64) and BitShift (opset 11;
// uint8..uint64, direction LEFT / RIGHT; opset 28 adds int8..int64), registered up to kMaxOpset; numpy
// broadcasting for the binary ones. A shift by the element width or more (or, signed, by a negative count) gives
// the sign fill alone: -1 for a right shift of a negative value, else 0 (BitShift-28's rule; numpy's result too).
// Signed right shifts are arithmetic; a signed left shift drops the bits shifted past the sign bit.
#include "exec/kernels/bitwise.h"

#include <type_traits>

#include "core/parallel.h"
#include "exec/kernels/broadcast.h"
#include "exec/kernels/elementwise.h"
#include "exec/kernels/extra_util.h"

namespace oq::exec {

namespace {

template <typename T>
inline T apply(BitOp op, T a, T b) {
  using U = std::make_unsigned_t<T>;
  constexpr int kBits = static_cast<int>(sizeof(T) * 8);
  switch (op) {
    case BitOp::And: return static_cast<T>(a & b);
    case BitOp::Or: return static_cast<T>(a | b);
    case BitOp::Xor: return static_cast<T>(a ^ b);
    case BitOp::Not: return static_cast<T>(~a);
    // A negative count reads as a huge unsigned one: both give the sign fill alone (opset 28).
    case BitOp::ShiftLeft:
      return static_cast<uint64_t>(static_cast<U>(b)) >= kBits ? T(0) : static_cast<T>(static_cast<U>(a) << static_cast<U>(b));
    case BitOp::ShiftRight:
      if (static_cast<uint64_t>(static_cast<U>(b)) >= kBits) return (std::is_signed_v<T> && a < T(0)) ? T(-1) : T(0);
      return static_cast<T>(a >> static_cast<U>(b));  // arithmetic (sign-extending) for a signed T (C++20)
  }
  return T(0);
}

// Calls f(T{}) for the integer types of the op (unsigned only for the shifts).
template <typename F>
bool dispatch_int(DType t, bool unsigned_only, F&& f) {
  switch (t) {
    case DType::UInt8: f(uint8_t{}); return true;
    case DType::UInt16: f(uint16_t{}); return true;
    case DType::UInt32: f(uint32_t{}); return true;
    case DType::UInt64: f(uint64_t{}); return true;
    default: break;
  }
  if (unsigned_only) return false;
  switch (t) {
    case DType::Int8: f(int8_t{}); return true;
    case DType::Int16: f(int16_t{}); return true;
    case DType::Int32: f(int32_t{}); return true;
    case DType::Int64: f(int64_t{}); return true;
    default: return false;
  }
}

bool is_shift(BitOp op) { return op == BitOp::ShiftLeft || op == BitOp::ShiftRight; }

}  // namespace

Tensor bitwise_naive(BitOp op, const Tensor& a, const Tensor* b) {
  Shape os = a.shape();
  if (b) OQ_CHECK(broadcast_shapes({&a.shape(), &b->shape()}, os), "bitwise_naive: shapes do not broadcast");
  Tensor y(a.dtype(), os);
  const std::vector<int64_t> ia = naive_broadcast_offsets(a.shape(), os);
  const std::vector<int64_t> ib = b ? naive_broadcast_offsets(b->shape(), os) : std::vector<int64_t>{};
  const bool ok = dispatch_int(a.dtype(), false, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < y.numel(); ++i)
      y.data<T>()[i] = apply<T>(op, a.data<T>()[ia[i]], b ? b->data<T>()[ib[i]] : T(0));
  });
  OQ_CHECK(ok, "bitwise_naive: not an integer type");
  return y;
}

namespace {

std::unique_ptr<Kernel> make_bitwise(const KernelInit& ki, BitOp op) {
  const ir::Node node = ki.node;
  if (op == BitOp::ShiftLeft) {  // the direction attribute picks the shift
    if (!node.has_attr("direction")) kfail(node, "attribute direction is required");
    const std::string d = node.attr_string("direction", "");
    if (d == "RIGHT") op = BitOp::ShiftRight;
    else if (d != "LEFT") kfail(node, "direction must be LEFT or RIGHT, got '{}'", d);
  }
  const bool signed_shift = ki.opset >= 28;  // BitShift-28 adds int8..int64
  return fn_kernel([node, op, signed_shift](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& a = input_at(node, in, 0);
    if (op == BitOp::Not) {
      Tensor y = Tensor::uninitialized(a.dtype(), a.shape());
      const bool ok = dispatch_int(a.dtype(), false, [&](auto tag) {
        using T = decltype(tag);
        const T* A = a.data<T>();
        T* Y = y.data<T>();
        parallel_for(a.numel(), 65536, [&](int64_t b0, int64_t e0) {
          for (int64_t i = b0; i < e0; ++i) Y[i] = static_cast<T>(~A[i]);
        });
      });
      if (!ok) kfail(node, "unsupported type {} (integers only)", dtype_name(a.dtype()));
      out[0] = std::move(y);
      return;
    }
    const Tensor& b = input_at(node, in, 1);
    if (a.dtype() != b.dtype())
      kfail(node, "inputs have different types {} and {}", dtype_name(a.dtype()), dtype_name(b.dtype()));
    Shape os;
    if (!broadcast_shapes({&a.shape(), &b.shape()}, os))
      kfail(node, "shapes {} and {} do not broadcast", shape_str(a.shape()), shape_str(b.shape()));
    Tensor y = Tensor::uninitialized(a.dtype(), os);
    BroadcastPlan plan({a.shape(), b.shape()}, os);
    const bool ok = dispatch_int(a.dtype(), is_shift(op) && !signed_shift, [&](auto tag) {
      using T = decltype(tag);
      const T *A = a.data<T>(), *B = b.data<T>();
      T* Y = y.data<T>();
      const int64_t inner = plan.inner(), sa = plan.inner_stride(0), sb = plan.inner_stride(1);
      parallel_for(plan.rows(), std::max<int64_t>(1, 65536 / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
        plan.for_rows(r0, r1, [&](int64_t row, const int64_t* off) {
          const T* pa = A + off[0];
          const T* pb = B + off[1];
          T* py = Y + row * inner;
          for (int64_t i = 0; i < inner; ++i) py[i] = apply<T>(op, pa[i * sa], pb[i * sb]);
        });
      });
    });
    if (!ok)
      kfail(node, "unsupported type {} ({})", dtype_name(a.dtype()),
            is_shift(op) && !signed_shift ? "uint8, uint16, uint32, uint64 before opset 28" : "8- to 64-bit integers");
    out[0] = std::move(y);
  });
}

std::unique_ptr<Kernel> make_and(const KernelInit& i) { return make_bitwise(i, BitOp::And); }
std::unique_ptr<Kernel> make_or(const KernelInit& i) { return make_bitwise(i, BitOp::Or); }
std::unique_ptr<Kernel> make_xor(const KernelInit& i) { return make_bitwise(i, BitOp::Xor); }
std::unique_ptr<Kernel> make_not(const KernelInit& i) { return make_bitwise(i, BitOp::Not); }
std::unique_ptr<Kernel> make_shift(const KernelInit& i) { return make_bitwise(i, BitOp::ShiftLeft); }

}  // namespace

OQ_REGISTER_KERNEL(BitwiseAnd, 18, kMaxOpset, make_and);
OQ_REGISTER_KERNEL(BitwiseOr, 18, kMaxOpset, make_or);
OQ_REGISTER_KERNEL(BitwiseXor, 18, kMaxOpset, make_xor);
OQ_REGISTER_KERNEL(BitwiseNot, 18, kMaxOpset, make_not);
OQ_REGISTER_KERNEL(BitShift, 11, kMaxOpset, make_shift);

}  // namespace oq::exec
