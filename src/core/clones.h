// Function multi-versioning: OQ_TARGET_CLONES before a function compiles it for AVX-512F, AVX2 and baseline
// x86-64 (GCC target_clones; an ifunc resolver picks one when the program is loaded), since the project builds
// for baseline x86-64. ThreadSanitizer builds get the baseline copy only: the resolvers run during relocation,
// before TSan's runtime is initialised, and crash there when instrumented.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define OQ_TARGET_CLONES
#else
#define OQ_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
