// A one-line progress bar on stderr, drawn only when stderr is a terminal (logs stay clean).
#pragma once
#include <cstdint>
#include <string>

namespace oq {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  void tick(int64_t n = 1);
  void done();

 private:
  std::string label_;
  int64_t total_, current_ = 0;
  int last_pct_ = -1;
  bool tty_, finished_ = false;
};

}  // namespace oq
