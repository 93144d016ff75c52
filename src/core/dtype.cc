#include "core/dtype.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

namespace oq {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::Undefined: return "UNDEFINED";
    case DType::Float: return "FLOAT";
    case DType::UInt8: return "UINT8";
    case DType::Int8: return "INT8";
    case DType::UInt16: return "UINT16";
    case DType::Int16: return "INT16";
    case DType::Int32: return "INT32";
    case DType::Int64: return "INT64";
    case DType::String: return "STRING";
    case DType::Bool: return "BOOL";
    case DType::Float16: return "FLOAT16";
    case DType::Double: return "DOUBLE";
    case DType::UInt32: return "UINT32";
    case DType::UInt64: return "UINT64";
    case DType::BFloat16: return "BFLOAT16";
    case DType::UInt4: return "UINT4";
    case DType::Int4: return "INT4";
  }
  return "UNKNOWN";
}

std::optional<DType> parse_quant_type(std::string_view s) {
  std::string l;
  for (char c : s) l.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (!l.empty() && l[0] == 'q') l.erase(0, 1);
  if (l == "int8") return DType::Int8;
  if (l == "uint8") return DType::UInt8;
  if (l == "int16") return DType::Int16;
  if (l == "uint16") return DType::UInt16;
  if (l == "int4") return DType::Int4;
  if (l == "uint4") return DType::UInt4;
  return std::nullopt;
}

std::string_view quant_type_name(DType t) {
  switch (t) {
    case DType::Int8: return "Int8";
    case DType::UInt8: return "UInt8";
    case DType::Int16: return "Int16";
    case DType::UInt16: return "UInt16";
    case DType::Int4: return "Int4";
    case DType::UInt4: return "UInt4";
    case DType::Int32: return "Int32";
    default: return dtype_name(t);
  }
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float: case DType::Int32: case DType::UInt32: return 4;
    case DType::UInt8: case DType::Int8: case DType::Bool: case DType::UInt4: case DType::Int4: return 1;
    case DType::UInt16: case DType::Int16: case DType::Float16: case DType::BFloat16: return 2;
    case DType::Int64: case DType::Double: case DType::UInt64: return 8;
    default: return 0;
  }
}

bool dtype_is_known(int32_t c) {
  return (c >= 1 && c <= 13) || c == 16 || c == 21 || c == 22;
}
bool is_float(DType t) {
  return t == DType::Float || t == DType::Float16 || t == DType::BFloat16 || t == DType::Double;
}
bool is_signed_integer(DType t) {
  return t == DType::Int8 || t == DType::Int16 || t == DType::Int32 || t == DType::Int64 || t == DType::Int4;
}
bool is_integer(DType t) {
  return is_signed_integer(t) || t == DType::UInt8 || t == DType::UInt16 || t == DType::UInt32 ||
         t == DType::UInt64 || t == DType::UInt4;
}
bool is_quant_type(DType t) {
  return t == DType::Int8 || t == DType::UInt8 || t == DType::Int16 || t == DType::UInt16 ||
         t == DType::Int4 || t == DType::UInt4;
}
int dtype_bits(DType t) {
  if (t == DType::Int4 || t == DType::UInt4) return 4;
  return static_cast<int>(dtype_size(t) * 8);
}

QRange full_range(DType t) {
  switch (t) {
    case DType::Int8: return {-128, 127};
    case DType::UInt8: return {0, 255};
    case DType::Int16: return {-32768, 32767};
    case DType::UInt16: return {0, 65535};
    case DType::Int4: return {-8, 7};
    case DType::UInt4: return {0, 15};
    case DType::Int32: return {INT32_MIN, INT32_MAX};
    default: return {0, 0};
  }
}

// float <-> half, round to nearest even (hand-written: a dozen lines, no library dependency warranted).
uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x7fffffu;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff);
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  int32_t e = exp - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) half++;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;
  return static_cast<uint16_t>(half);
}

float half_to_float(uint16_t h) {
  uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      int e = -1;
      do { e++; mant <<= 1; } while (!(mant & 0x400u));
      x = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

uint16_t double_to_half(double d) {
  const uint16_t h = float_to_half(static_cast<float>(d));
  if (!std::isfinite(d)) return h;
  // The float nearest to a d just under 65520 (half's overflow threshold: halfway from 65504 to 2^16) can be
  // 65520.0f itself, which float_to_half rounds to inf; d itself rounds to 65504.
  if ((h & 0x7fffu) == 0x7c00u)
    return std::fabs(d) < 65520.0 ? static_cast<uint16_t>((h & 0x8000u) | 0x7bffu) : h;
  // float_to_half rounded the float nearest to d; pick among h and its neighbours the one nearest to d itself
  // (ties to the even pattern).
  uint16_t best = h;
  double best_err = std::fabs(static_cast<double>(half_to_float(h)) - d);
  for (int step : {-1, 1}) {
    const uint16_t mag = static_cast<uint16_t>(h & 0x7fffu);
    if ((step < 0 && mag == 0) || (step > 0 && mag >= 0x7bffu)) continue;
    const uint16_t c = static_cast<uint16_t>((h & 0x8000u) | static_cast<uint16_t>(mag + step));
    const double err = std::fabs(static_cast<double>(half_to_float(c)) - d);
    if (err < best_err || (err == best_err && !(c & 1u) && (best & 1u))) {
      best = c;
      best_err = err;
    }
  }
  return best;
}

uint16_t float_to_bfloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  uint32_t lsb = (x >> 16) & 1u;
  x += 0x7fffu + lsb;
  return static_cast<uint16_t>(x >> 16);
}
float bfloat16_to_float(uint16_t b) {
  uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace oq
