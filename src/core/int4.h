// INT4/UINT4 packing as the ONNX spec defines it: two elements per byte, element 2i in the low nibble,
// element 2i+1 in the high nibble; an odd count leaves the last high nibble zero.
#pragma once
#include <cstdint>
#include <cstddef>
#include <vector>

namespace oq {

inline size_t int4_packed_bytes(size_t n) { return (n + 1) / 2; }
// src holds n unpacked values (int8_t in -8..7 or uint8_t in 0..15, one per byte).
std::vector<uint8_t> pack_int4(const uint8_t* src, size_t n);
// Unpack n elements; sign-extends when is_signed.
void unpack_int4(const uint8_t* packed, size_t n, bool is_signed, uint8_t* dst);

}  // namespace oq
