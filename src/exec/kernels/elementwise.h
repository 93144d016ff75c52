// Element-wise kernels (elementwise.cc, activation.cc, cast.cc): dtype dispatch helpers shared by them,
// and the naive references the optimised paths are tested against.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>

#include "core/tensor.h"

namespace oq::exec {

// Calls f(T{}) for the C++ type holding `t` when it is in the set; returns false otherwise.
// Float types: float, double.
template <typename F>
bool dispatch_float(DType t, F&& f) {
  switch (t) {
    case DType::Float: f(float{}); return true;
    case DType::Double: f(double{}); return true;
    default: return false;
  }
}
// Signed numbers: float types + int8/16/32/64.
template <typename F>
bool dispatch_signed(DType t, F&& f) {
  switch (t) {
    case DType::Int8: f(int8_t{}); return true;
    case DType::Int16: f(int16_t{}); return true;
    case DType::Int32: f(int32_t{}); return true;
    case DType::Int64: f(int64_t{}); return true;
    default: return dispatch_float(t, f);
  }
}
// All numbers (no bool, no 16-bit floats, no 4-bit).
template <typename F>
bool dispatch_numeric(DType t, F&& f) {
  switch (t) {
    case DType::UInt8: f(uint8_t{}); return true;
    case DType::UInt16: f(uint16_t{}); return true;
    case DType::UInt32: f(uint32_t{}); return true;
    case DType::UInt64: f(uint64_t{}); return true;
    default: return dispatch_signed(t, f);
  }
}

// Float16/BFloat16 are computed in float: widen inputs, narrow results.
inline bool is_half(DType t) { return t == DType::Float16 || t == DType::BFloat16; }

// Wrapping integer arithmetic (no signed-overflow UB), plain arithmetic for floats.
template <typename T>
inline T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  else return a + b;
}
template <typename T>
inline T wrap_sub(T a, T b) {
  if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
  else return a - b;
}
template <typename T>
inline T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
  else return a * b;
}

// ---- naive references (tests) ----

enum class BinOp {
  Add, Sub, Mul, Div, Pow, Max, Min, Equal, Greater, Less, GreaterOrEqual, LessOrEqual, And, Or, Xor, PRelu,
  Mod,   // Mod with fmod=0: result has the divisor's sign (Python %)
  FMod,  // Mod with fmod=1: result has the dividend's sign (C fmod / %)
};

// Broadcasting binary op computed element by element in double through full index unravelling.
// Output dtype: Bool for comparisons and logical ops, else a's dtype.
Tensor naive_binary(BinOp op, const Tensor& a, const Tensor& b);

// Unary activation of one value (op = ONNX op type; alpha/beta = the op's attributes: Selu alpha/gamma, Shrink
// lambd/bias, SwiGLU alpha and the element of B as beta, else alpha/beta; `approx` for Gelu).
double naive_activation(const std::string& op, double x, double alpha = 0, double beta = 0,
                        const std::string& approx = "none");

// Cast of one value given as double to `to`, returned as double (float16/bfloat16 rounded to their grid,
// integers truncated toward zero and wrapped, bool = nonzero).
double naive_cast_value(double v, DType to);

}  // namespace oq::exec
