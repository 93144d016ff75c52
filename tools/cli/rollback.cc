#include "rollback.h"

#include "core/log.h"
#include "core/run_files.h"

namespace oq::app {

size_t roll_back_locked(const char* why) noexcept {
  try {
    const auto u = run_files::undo_locked([why](const std::string& p) { OQ_INFO("Removed {} {}", p, why); });
    return u.files;
  } catch (...) {
    return 0;
  }
}

size_t roll_back(const char* why) noexcept {
  try {
    auto lock = run_files::hold();
    return roll_back_locked(why);
  } catch (...) {
    return 0;
  }
}

}  // namespace oq::app
