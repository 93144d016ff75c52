#include "rollback.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "core/log.h"

namespace fs = std::filesystem;

namespace oq::app {

static std::set<std::string> snapshot(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec))
    out.insert(it->path().lexically_normal().string());
  return out;
}

OutputRollback::OutputRollback(std::string dir, std::string keep)
    : dir_(std::move(dir)), keep_(fs::path(std::move(keep)).lexically_normal().string()), before_(snapshot(dir_)) {
  std::error_code ec;
  fs::path norm = fs::path(dir_).lexically_normal();
  if (!norm.has_filename()) norm = norm.parent_path();  // "out/" names the folder "out"
  for (fs::path p = norm; !p.empty() && p != p.root_path() && !fs::exists(p, ec) && !ec;
       p = p.parent_path())
    missing_.push_back(p.string());
}

size_t OutputRollback::undo() noexcept {
  size_t removed = 0;
  try {
    std::vector<std::string> added;
    for (const auto& p : snapshot(dir_))
      if (!before_.count(p) && p != keep_) added.push_back(p);
    // Deepest first: files inside a new folder go before the folder.
    std::sort(added.begin(), added.end(), [](const std::string& a, const std::string& b) { return a > b; });
    for (const auto& p : added) {
      std::error_code ec;
      bool dir = fs::is_directory(fs::symlink_status(p, ec));
      if (dir ? fs::is_empty(p, ec) && fs::remove(p, ec) : fs::remove(p, ec)) {
        ++removed;
        OQ_INFO("Removed {} written before the error", p);
      }
    }
    for (const auto& p : missing_) {
      std::error_code ec;
      if (fs::is_directory(fs::symlink_status(p, ec)) && fs::is_empty(p, ec) && fs::remove(p, ec)) ++removed;
    }
  } catch (...) {
  }
  return removed;
}

}  // namespace oq::app
