// Caching allocator for tensor storage: see alloc.h for the why, the size classes and the bound.
#include "core/alloc.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define OQ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OQ_ASAN 1
#endif
#endif
#ifdef OQ_ASAN
#include <sanitizer/asan_interface.h>
#define OQ_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define OQ_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define OQ_POISON(p, n) ((void)(p), (void)(n))
#define OQ_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace oq {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kPage = 4096;
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kLimitFloor = 256 * kMiB;
constexpr size_t kAuto = static_cast<size_t>(-1);

size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

size_t physical_memory() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return size_t{16} << 30;
  return static_cast<size_t>(pages) * static_cast<size_t>(page);
}

// Fixed limit from OQ_TENSOR_CACHE_MB, or kAuto.
size_t env_limit() {
  const char* e = std::getenv("OQ_TENSOR_CACHE_MB");
  if (!e || !*e) return kAuto;
  char* end = nullptr;
  unsigned long long mb = std::strtoull(e, &end, 10);
  if (end == e || *end != '\0') return kAuto;
  return static_cast<size_t>(mb) * kMiB;
}

bool env_poison() {
  const char* e = std::getenv("OQ_POISON_UNINIT");
  return e && *e && std::string_view(e) != "0";
}

class Cache {
 public:
  Cache() : fixed_limit_(env_limit()), ceiling_(physical_memory() / 4) {}

  void* alloc(size_t bytes, size_t* capacity) {
    const size_t cap = tensor_size_class(bytes);
    *capacity = cap;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++tick_;
      // The block of the smallest cached class in [cap, 2 cap] (exact first).
      auto it = free_.lower_bound(cap);
      while (it != free_.end() && it->first <= 2 * cap && it->second.blocks.empty()) ++it;
      if (it != free_.end() && it->first <= 2 * cap) {
        const size_t got = it->first;
        *capacity = got;
        void* p = it->second.blocks.back();
        it->second.blocks.pop_back();
        it->second.last_use = tick_;
        cached_ -= got;
        --cached_blocks_;
        ++hits_;
        note_in_use(got);
        OQ_UNPOISON(p, round_up(std::max<size_t>(bytes, 1), kAlign));
        return p;
      }
      ++system_allocs_;
      note_in_use(cap);
    }
    void* p = std::aligned_alloc(kAlign, cap);
    if (!p) {
      std::lock_guard<std::mutex> lock(mu_);
      in_use_ -= cap;
      fail(ErrorKind::Runtime, "out of memory allocating {} bytes", cap);
    }
    // Same bounds as a plain allocation of the rounded request: the class's slack stays off limits.
    size_t used = round_up(std::max<size_t>(bytes, 1), kAlign);
    if (used < cap) OQ_POISON(static_cast<char*>(p) + used, cap - used);
    return p;
  }

  void free(void* p, size_t cap) noexcept {
    if (!p) return;
    std::vector<std::pair<void*, size_t>> evicted;
    bool keep = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++tick_;
      in_use_ -= cap;
      const size_t limit = limit_locked();
      if (cap <= limit) {
        keep = true;
        evict_locked(limit - cap, evicted);
        FreeList& fl = free_[cap];
        fl.blocks.push_back(p);
        fl.last_use = tick_;
        cached_ += cap;
        ++cached_blocks_;
        OQ_POISON(p, cap);
      } else {
        ++system_frees_;
      }
    }
    if (!keep) release(p, cap);
    for (auto& [q, c] : evicted) release(q, c);
  }

  TensorCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    TensorCacheStats s;
    s.in_use_bytes = in_use_;
    s.peak_in_use_bytes = peak_;
    s.cached_bytes = cached_;
    s.cached_blocks = cached_blocks_;
    s.limit_bytes = limit_locked();
    s.hits = hits_;
    s.system_allocs = system_allocs_;
    s.system_frees = system_frees_;
    return s;
  }

  void set_limit(size_t bytes) {
    std::vector<std::pair<void*, size_t>> evicted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fixed_limit_ = bytes;
      evict_locked(limit_locked(), evicted);
    }
    for (auto& [q, c] : evicted) release(q, c);
  }

  void reset_limit() { set_limit(env_limit()); }

  void trim() {
    std::vector<std::pair<void*, size_t>> evicted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      evict_locked(0, evicted);
    }
    for (auto& [q, c] : evicted) release(q, c);
  }

  std::atomic<bool> poison{env_poison()};

 private:
  struct FreeList {
    std::vector<void*> blocks;
    uint64_t last_use = 0;
  };

  void note_in_use(size_t cap) {
    in_use_ += cap;
    peak_ = std::max(peak_, in_use_);
  }

  size_t limit_locked() const {
    if (fixed_limit_ != kAuto) return fixed_limit_;
    size_t twice = peak_ > ceiling_ ? ceiling_ : 2 * peak_;
    return std::min(ceiling_, std::max(kLimitFloor, twice));
  }

  // Evicts blocks of the least recently used classes until cached_ <= target; collects them for release
  // outside the lock.
  void evict_locked(size_t target, std::vector<std::pair<void*, size_t>>& out) {
    while (cached_ > target) {
      auto victim = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (!it->second.blocks.empty() && (victim == free_.end() || it->second.last_use < victim->second.last_use))
          victim = it;
      if (victim == free_.end()) break;
      const size_t cap = victim->first;
      auto& blocks = victim->second.blocks;
      while (!blocks.empty() && cached_ > target) {
        out.emplace_back(blocks.back(), cap);
        blocks.pop_back();
        cached_ -= cap;
        --cached_blocks_;
        ++system_frees_;
      }
      if (blocks.empty()) free_.erase(victim);
    }
  }

  static void release(void* p, size_t cap) {
    OQ_UNPOISON(p, cap);
    std::free(p);
  }

  std::mutex mu_;
  std::map<size_t, FreeList> free_;  // by class
  size_t fixed_limit_;
  const size_t ceiling_;
  size_t in_use_ = 0, peak_ = 0, cached_ = 0, cached_blocks_ = 0;
  uint64_t tick_ = 0, hits_ = 0, system_allocs_ = 0, system_frees_ = 0;
};

// Never destroyed: tensors in static storage may be freed after every other destructor has run.
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

}  // namespace

size_t tensor_size_class(size_t bytes) {
  if (bytes <= kPage) return round_up(std::max<size_t>(bytes, 1), kAlign);
  if (bytes <= kMiB) return round_up(bytes, kPage);
  // Four classes per power of two: step = 2^(floor(log2(bytes - 1)) - 2), a multiple of 4 KiB here.
  size_t top = size_t{1} << (63 - __builtin_clzll(static_cast<unsigned long long>(bytes - 1)));
  return round_up(bytes, top / 4);
}

void* tensor_alloc(size_t bytes, size_t* capacity) { return cache().alloc(bytes, capacity); }
void tensor_free(void* p, size_t capacity) noexcept { cache().free(p, capacity); }
TensorCacheStats tensor_cache_stats() { return cache().stats(); }
void set_tensor_cache_limit(size_t bytes) { cache().set_limit(bytes); }
void reset_tensor_cache_limit() { cache().reset_limit(); }
void tensor_cache_trim() { cache().trim(); }
void set_poison_uninitialized(bool on) { cache().poison.store(on, std::memory_order_relaxed); }
bool poison_uninitialized() { return cache().poison.load(std::memory_order_relaxed); }

}  // namespace oq
