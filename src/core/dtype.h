// Element types. Enum values are ONNX TensorProto.DataType codes, so they convert 1:1 at the edges.
// In memory, INT4/UINT4 tensors hold ONE element per byte (int8_t / uint8_t); they are packed two per
// byte (low nibble first) only when serialized (see int4.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace oq {

enum class DType : int32_t {
  Undefined = 0,
  Float = 1,
  UInt8 = 2,
  Int8 = 3,
  UInt16 = 4,
  Int16 = 5,
  Int32 = 6,
  Int64 = 7,
  String = 8,
  Bool = 9,
  Float16 = 10,
  Double = 11,
  UInt32 = 12,
  UInt64 = 13,
  BFloat16 = 16,
  UInt4 = 21,
  Int4 = 22,
};

// Name as ONNX spells it in TensorProto (FLOAT, UINT8, INT4, ...).
std::string_view dtype_name(DType t);
// Parse a user spelling of a quantized type: Int8, QInt8, int8, UINT4... (leading Q optional, any case).
std::optional<DType> parse_quant_type(std::string_view s);
// Short user-facing name: Int8, UInt8, Int16, UInt16, Int4, UInt4, Int32.
std::string_view quant_type_name(DType t);

// Bytes used in memory by one element (INT4/UINT4: 1; String: 0 — strings live elsewhere).
size_t dtype_size(DType t);
bool dtype_is_known(int32_t code);  // one of the enumerators above
bool is_float(DType t);            // Float, Float16, BFloat16, Double
bool is_integer(DType t);          // signed or unsigned integers, including 4-bit
bool is_signed_integer(DType t);
bool is_quant_type(DType t);       // Int4/UInt4/Int8/UInt8/Int16/UInt16
int dtype_bits(DType t);           // 4 for INT4/UINT4, 8*size otherwise

// Integer range of a quantized type.
struct QRange {
  int64_t qmin, qmax;
};
QRange full_range(DType t);

// Half / bfloat16 conversions (round to nearest even).
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);
// double -> half rounded once (numpy's float64.astype(float16)); via float32 a tie could round twice.
uint16_t double_to_half(double d);
// The float16 value nearest to d, as a float (exact): what a float16 scale holds.
inline float round_to_half(double d) { return half_to_float(double_to_half(d)); }
uint16_t float_to_bfloat16(float f);
float bfloat16_to_float(uint16_t b);

}  // namespace oq
