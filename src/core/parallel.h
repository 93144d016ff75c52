// Threading: OpenMP (the runtime oneDNN from Debian already uses, so there is one pool, not two).
#pragma once
#include <cerrno>
#include <cstdint>
#include <new>
#include <system_error>
#include <functional>
#include <string>
#include <thread>
#include <utility>

namespace oq {

// The cores this process may use: the CPUs of its affinity mask (taskset, numactl, a container's cpuset),
// fewer when a cgroup CPU quota (docker --cpus, Kubernetes limits) allows less time than that (rounded up).
// std::thread::hardware_concurrency() counts every CPU of the machine, whatever the process may run on.
int available_cores();
// The whole CPUs a cgroup quota allows, from the text of cgroup v2's cpu.max ("200000 100000" -> 2,
// "150000 100000" -> 2, "max 100000" -> 0: no limit); 0 also for text that is not a quota.
int cpus_of_cgroup_quota(const std::string& cpu_max);

// Threads used by onnxquant's own kernels and oneDNN (default, n <= 0: available_cores()).
void set_num_threads(int n);
// The threads this thread's parallel work may use: the ThreadsOnThisThread override when one is active,
// else set_num_threads()'s value.
int num_threads();
// The process-wide value of set_num_threads(), whatever override this thread has.
int process_threads();

// While alive, parallel work started on THIS thread (parallel_for, oneDNN primitives) uses `n` threads; the
// other threads are not affected. exec::run_ordered's workers each run with one.
class ThreadsOnThisThread {
 public:
  explicit ThreadsOnThisThread(int n);
  ~ThreadsOnThisThread();
  ThreadsOnThisThread(const ThreadsOnThisThread&) = delete;
  ThreadsOnThisThread& operator=(const ThreadsOnThisThread&) = delete;

 private:
  int saved_;
};

// std::thread(fn), or a Runtime error naming the thread when the system refuses one (a limit on processes /
// threads, memory for its stack): "cannot start data loading thread 2 of 2: Resource temporarily unavailable (a
// limit on processes/threads: ulimit -u, a container pids limit; or on memory for its stack: ulimit -v; try
// --threads 1)". `what` names the thread's
// work, k its number (1-based) among n. Callers stop and join the threads they started before rethrowing: a
// joinable std::thread destroyed by the unwinding would end the process (std::terminate).
[[noreturn]] void fail_thread_start(const std::string& what, int k, int n, int err);
template <typename F>
std::thread start_thread(const std::string& what, int k, int n, F&& fn) {
  try {
    return std::thread(std::forward<F>(fn));
  } catch (const std::system_error& e) {
    fail_thread_start(what, k, n, e.code().value());
  } catch (const std::bad_alloc&) {
    fail_thread_start(what, k, n, ENOMEM);
  }
}

// Calls fn(begin, end) on disjoint chunks covering [0, n). Serial when n is small or one thread is set.
// `grain` is the minimum chunk size worth a thread. An exception fn throws on any thread (an oq::Error, a
// std::bad_alloc) is rethrown on the calling thread once the other chunks have returned (the first one thrown;
// chunks not yet started are skipped).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace oq
