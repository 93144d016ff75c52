#include "core/int4.h"

namespace oq {

std::vector<uint8_t> pack_int4(const uint8_t* src, size_t n) {
  std::vector<uint8_t> out(int4_packed_bytes(n), 0);
  for (size_t i = 0; i < n; ++i) {
    uint8_t nib = src[i] & 0x0f;
    out[i / 2] |= (i % 2 == 0) ? nib : static_cast<uint8_t>(nib << 4);
  }
  return out;
}

void unpack_int4(const uint8_t* packed, size_t n, bool is_signed, uint8_t* dst) {
  for (size_t i = 0; i < n; ++i) {
    uint8_t nib = (i % 2 == 0) ? (packed[i / 2] & 0x0f) : (packed[i / 2] >> 4);
    if (is_signed && (nib & 0x08)) nib |= 0xf0;  // sign-extend into int8_t
    dst[i] = nib;
  }
}

}  // namespace oq
