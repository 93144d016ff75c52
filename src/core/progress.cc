#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace oq {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), tty_(isatty(STDERR_FILENO) != 0) {}

Progress::~Progress() { done(); }

void Progress::tick(int64_t n) {
  current_ += n;
  if (!tty_ || total_ <= 0) return;
  int pct = static_cast<int>(100 * current_ / total_);
  if (pct == last_pct_) return;
  last_pct_ = pct;
  int filled = pct * 30 / 100;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%% (%lld/%lld)", label_.c_str(), filled,
               "##############################", 30 - filled, "", pct, static_cast<long long>(current_),
               static_cast<long long>(total_));
  std::fflush(stderr);
}

void Progress::done() {
  if (finished_) return;
  finished_ = true;
  if (tty_ && last_pct_ >= 0) std::fprintf(stderr, "\n");
}

}  // namespace oq
