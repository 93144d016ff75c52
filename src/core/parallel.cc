#include "core/parallel.h"

#include <omp.h>

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"

namespace oq {

static int g_threads = 0;
thread_local int t_threads = 0;  // ThreadsOnThisThread's override (0: none)

int cpus_of_cgroup_quota(const std::string& cpu_max) {
  std::istringstream in(cpu_max);
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return 0;
  char* end = nullptr;
  const double q = std::strtod(quota.c_str(), &end);
  if (end == quota.c_str() || *end != '\0' || !(q > 0)) return 0;
  return static_cast<int>(std::min(std::ceil(q / period), 1e6));
}

namespace {
std::string read_first_line(const char* path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// The quota of this process's cgroup: v2 (cpu.max of the cgroup /proc/self/cgroup names, as mounted at
// /sys/fs/cgroup) or v1 (cpu.cfs_quota_us / cpu.cfs_period_us). 0: none found.
int cgroup_quota_cpus() {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("0::", 0) == 0) {  // v2: "0::/path"
      // a quota on any ancestor applies too: the smallest one
      int least = 0;
      std::string dir = "/sys/fs/cgroup" + line.substr(3);
      while (!dir.empty() && dir.back() == '/') dir.pop_back();
      for (;;) {
        if (int n = cpus_of_cgroup_quota(read_first_line((dir + "/cpu.max").c_str())); n > 0)
          least = least > 0 ? std::min(least, n) : n;
        if (dir.size() <= 14) break;  // "/sys/fs/cgroup"
        dir.erase(dir.rfind('/'));
      }
      if (least > 0) return least;
    }
  }
  const std::string q = read_first_line("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  const std::string p = read_first_line("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  if (!q.empty() && !p.empty() && q[0] != '-') return cpus_of_cgroup_quota(q + " " + p);
  return 0;
}
}  // namespace

int available_cores() {
  int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) n = CPU_COUNT(&set);
  if (const int quota = cgroup_quota_cpus(); quota > 0) n = std::min(n, quota);
  return std::max(n, 1);
}

void set_num_threads(int n) {
  g_threads = n > 0 ? n : available_cores();
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

void fail_thread_start(const std::string& what, int k, int n, int err) {
  // glibc reports a stack it cannot map (ulimit -v) as EAGAIN too
  std::string why = err == EAGAIN   ? "a limit on processes/threads: ulimit -u, a container pids limit; or on "
                                      "memory for its stack: ulimit -v"
                    : err == ENOMEM ? "not enough memory for its stack: ulimit -v, a container memory limit"
                                    : "";
  if (process_threads() > 1) why += std::string(why.empty() ? "" : "; ") + "try --threads 1";
  fail(ErrorKind::Runtime, "cannot start {} thread {} of {}: {}{}", what, k, n, std::strerror(err),
       why.empty() ? "" : " (" + why + ")");
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  int t = num_threads();
  int64_t chunks = std::min<int64_t>(t, std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  // An exception may not leave an OpenMP region (std::terminate: a std::bad_alloc of a kernel's buffer in a worker
  // aborted the process): the first one thrown is kept and rethrown here, after every chunk has returned.
  std::exception_ptr first;
  std::atomic<bool> failed{false};
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    if (failed.load(std::memory_order_relaxed)) continue;  // the run fails anyway: skip what has not started
    int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    try {
      fn(b, e);
    } catch (...) {
      if (!failed.exchange(true)) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace oq
