// Caching allocator for tensor storage (every Tensor(dtype, shape) / Tensor::uninitialized goes through it).
//
// Why: a Session frees every intermediate tensor after its last use and allocates it again on the next run.
// Through the system allocator each multi-MB buffer was a fresh mmap (plus a page fault per 4 KiB page on
// first touch) and a munmap at its last use — ~30 % of an inference of a small model went to memset and kernel
// page faults. ONNX Runtime avoids this with its CPU arena (BFCArena: large chunks reserved from the system,
// carved into tensor buffers best-fit, kept for the life of the session, extended by doubling) plus its memory
// pattern planner. This is the simpler equivalent: freed blocks are kept in per-size-class free lists and
// handed out again, so once a Session has run with given input shapes, later runs with the same shapes make
// no system allocations (no mmap/munmap, no page faults).
//
// Size classes (the capacity of a block): requests are rounded up to a multiple of 64 bytes up to 4 KiB, to a
// multiple of 4 KiB up to 1 MiB, and above that to one of four classes per power of two (at most 25 % slack).
// A request is served by a free block of its class, else by one of the smallest cached class up to twice its
// class (no splitting, no coalescing; the block keeps its class). Reusing larger blocks keeps the cache near
// the peak of live tensors: on MobileNetV2 (a different size at nearly every layer) one inference's tensors
// held 20 MB in exact classes, 14 MB with this rule, against ~7 MB live at the peak. Blocks are 64-byte
// aligned.
//
// Bound (memory must not grow with the number of runs — calibration streams thousands of samples): the bytes
// held in free lists never exceed the cache limit. The automatic limit is
//     max(256 MiB, 2 x the peak bytes of live tensor blocks so far), at most 1/4 of physical memory;
// OQ_TENSOR_CACHE_MB=N in the environment or set_tensor_cache_limit() fixes it instead (0 disables caching).
// A freed block that would exceed the limit evicts blocks of the least recently used size classes first (and is
// itself returned to the system when it alone is larger than the limit). With a fixed set of shapes the cache
// stops growing after the first run; with changing shapes it stays under the limit.
//
// Thread-safe (one mutex; allocations are per tensor, not per element). Under AddressSanitizer cached blocks
// are poisoned, so a use after the owning Tensor is gone is still reported.
#pragma once
#include <cstddef>
#include <cstdint>

namespace oq {

// A block of at least `bytes` bytes (64-byte aligned, never null, contents unspecified); *capacity receives the
// block's size class (tensor_size_class(bytes) or up to twice it), to be passed back to tensor_free. Throws a
// Runtime error when out of memory.
void* tensor_alloc(size_t bytes, size_t* capacity);
void tensor_free(void* p, size_t capacity) noexcept;
// The capacity tensor_alloc gives a request of `bytes`.
size_t tensor_size_class(size_t bytes);

struct TensorCacheStats {
  size_t in_use_bytes = 0;       // capacity of the blocks owned by live tensors
  size_t peak_in_use_bytes = 0;  // maximum of in_use_bytes so far
  size_t cached_bytes = 0;       // capacity of the free blocks kept for reuse
  size_t cached_blocks = 0;
  size_t limit_bytes = 0;        // current bound on cached_bytes
  uint64_t hits = 0;             // allocations served from the cache
  uint64_t system_allocs = 0;    // allocations that went to the system allocator
  uint64_t system_frees = 0;     // blocks returned to the system (evicted, over the limit, trimmed)
};
TensorCacheStats tensor_cache_stats();

// Fixes the bound on cached bytes (0: no caching, every free goes back to the system); evicts down to it.
void set_tensor_cache_limit(size_t bytes);
// Back to the automatic rule above (or OQ_TENSOR_CACHE_MB when set).
void reset_tensor_cache_limit();
// Returns every cached block to the system (e.g. between phases of a long job that change shapes).
void tensor_cache_trim();

// Largest tensor Tensor(dtype, shape) / Tensor::uninitialized allocate (default and for bytes <= 0: 1 TiB); a
// larger one is a Model error naming its shape. fuzz/fuzz_session.cc lowers it so that a model asking for a
// huge but valid tensor is refused instead of being reported as the fuzzer's out-of-memory.
void set_max_tensor_bytes(int64_t bytes);
int64_t max_tensor_bytes();

// Debugging aid for uninitialised allocations (Tensor::uninitialized): when on, their bytes are set to 0xFF
// (NaN for floats, -1 / max for integers) so that a kernel that leaves part of such an output unwritten gives
// visibly wrong results in tests. Off by default; on when OQ_POISON_UNINIT=1 is in the environment.
void set_poison_uninitialized(bool on);
bool poison_uninitialized();

}  // namespace oq
