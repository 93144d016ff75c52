#include "core/parallel.h"

#include <omp.h>

#include <algorithm>
#include <thread>

namespace oq {

static int g_threads = 0;
thread_local int t_threads = 0;  // ThreadsOnThisThread's override (0: none)

void set_num_threads(int n) {
  g_threads = n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  omp_set_num_threads(t_threads > 0 ? t_threads : g_threads);
}

int process_threads() {
  if (g_threads == 0) set_num_threads(0);
  return g_threads;
}

int num_threads() { return t_threads > 0 ? t_threads : process_threads(); }

// OpenMP's nthreads-var is per thread (libgomp gives a thread its own copy on the first write), so setting
// it here limits oneDNN's parallel regions started from this thread only.
ThreadsOnThisThread::ThreadsOnThisThread(int n) : saved_(t_threads) {
  t_threads = std::max(n, 1);
  omp_set_num_threads(t_threads);
}

ThreadsOnThisThread::~ThreadsOnThisThread() {
  t_threads = saved_;
  omp_set_num_threads(num_threads());
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  int t = num_threads();
  int64_t chunks = std::min<int64_t>(t, std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    fn(b, e);
  }
}

}  // namespace oq
