// float32 <-> float16 over arrays: F16C (8 values per instruction, round to nearest even) when the CPU has it,
// else float_to_half / half_to_float per value. Bit-identical to float_to_half (tests/unit/test_vmath.cc sweeps the float bit
// patterns): F16C keeps the top payload bits of a NaN where float_to_half gives its one quiet NaN (0x7e00 with
// the sign), so NaN lanes are redone by float_to_half.
#include "core/half_array.h"

#include "core/dtype.h"

#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#include <cpuid.h>
#include <immintrin.h>
#define OQ_HAVE_F16C_PATH 1
#endif

namespace oq {

namespace {

void floats_to_halves_scalar(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = float_to_half(x[i]);
}

#ifdef OQ_HAVE_F16C_PATH
__attribute__((target("avx,f16c"))) void floats_to_halves_f16c(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0) floats_to_halves_scalar(x + i, y + i, 8);
  }
  floats_to_halves_scalar(x + i, y + i, n - i);
}

// F16C turns a signalling NaN into a quiet one where half_to_float keeps its bits: NaN lanes redone.
__attribute__((target("avx,f16c"))) void halves_to_floats_f16c(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_ps(y + i, v);
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0)
      for (int k = 0; k < 8; ++k) y[i + k] = half_to_float(x[i + k]);
  }
  for (; i < n; ++i) y[i] = half_to_float(x[i]);
}

bool cpu_has_f16c() {
  // F16C from CPUID leaf 1 (ECX bit 29): clang 14 (the fuzz build) has no "f16c" for __builtin_cpu_supports;
  // "avx" also checks that the OS saves the YMM registers.
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0;
  }();
  return has;
}
#endif

}  // namespace

void floats_to_halves(const float* x, uint16_t* y, int64_t n) {
#ifdef OQ_HAVE_F16C_PATH
  if (cpu_has_f16c()) return floats_to_halves_f16c(x, y, n);
#endif
  floats_to_halves_scalar(x, y, n);
}

void halves_to_floats(const uint16_t* x, float* y, int64_t n) {
#ifdef OQ_HAVE_F16C_PATH
  if (cpu_has_f16c()) return halves_to_floats_f16c(x, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = half_to_float(x[i]);
}

}  // namespace oq
