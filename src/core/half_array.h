// float32 <-> float16 over arrays (core/half_array.cc).
#pragma once
#include <cstdint>

namespace oq {

// float_to_half (core/dtype.h) of n values, with F16C when the CPU has it: the same bits; float_to_half per value
// is the reference.
void floats_to_halves(const float* x, uint16_t* y, int64_t n);
// half_to_float of n values, likewise (exact; NaN payloads kept as half_to_float keeps them).
void halves_to_floats(const uint16_t* x, float* y, int64_t n);

}  // namespace oq
