// The -v log of where a run's time and memory go: one debug line per phase,
// `time: calibration 312.4 ms (peak RSS 74120 KB so far)`. For a user asking why a run is slow or large, and for
// finding a fixed cost to cut (docs/benchmarks.md); never a benchmark by itself.
#pragma once
#include <sys/resource.h>

#include <chrono>
#include <string_view>

#include "core/log.h"

namespace oq::app {

inline long peak_rss_kb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

class PhaseLog {
 public:
  PhaseLog() : start_(Clock::now()) {}
  // Logs the time since construction or the previous call, then restarts the clock.
  void done(std::string_view phase) {
    const auto now = Clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - start_).count();
    OQ_DEBUG("time: {} {:.1f} ms (peak RSS {} KB so far)", phase, ms, peak_rss_kb());
    start_ = now;
  }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_;
};

}  // namespace oq::app
