// Threading: OpenMP (the runtime oneDNN from Debian already uses, so there is one pool, not two).
#pragma once
#include <cstdint>
#include <functional>

namespace oq {

// Threads used by onnxquant's own kernels and oneDNN (default: number of cores).
void set_num_threads(int n);
int num_threads();

// Calls fn(begin, end) on disjoint chunks covering [0, n). Serial when n is small or one thread is set.
// `grain` is the minimum chunk size worth a thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace oq
