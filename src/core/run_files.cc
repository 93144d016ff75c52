#include "core/run_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

namespace fs = std::filesystem;

namespace oq::run_files {

namespace {

struct Registry {
  std::mutex mu;
  std::set<std::string> temps;
  std::map<std::string, std::pair<dev_t, ino_t>> outputs;  // path -> the file this run put there
  std::vector<std::string> folders;                          // in creation order (parents first)
};

// Never destroyed: the signal thread and an exit() during the run use it while static destructors run.
Registry& reg() {
  static auto* r = new Registry;
  return *r;
}

}  // namespace

std::unique_lock<std::mutex> hold() { return std::unique_lock<std::mutex>(reg().mu); }

int create_temp(std::string& tmpl) {
  auto lock = hold();
  const int fd = ::mkstemp(tmpl.data());
  if (fd >= 0) reg().temps.insert(tmpl);
  return fd;
}

int create_unlinked_temp(const std::string& dir) {
#ifdef O_TMPFILE
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return -1;  // else: no O_TMPFILE here
#endif
  std::string tmpl = dir + "/oq-npy-XXXXXX";
  auto lock = hold();
  const int fd2 = ::mkstemp(tmpl.data());
  if (fd2 >= 0) ::unlink(tmpl.c_str());
  return fd2;
}

int commit_temp(const std::string& tmp, const std::string& target) {
  auto lock = hold();
  struct stat t {}, old {};
  const bool have = ::lstat(tmp.c_str(), &t) == 0;
  const bool existed = ::lstat(target.c_str(), &old) == 0;
  if (std::rename(tmp.c_str(), target.c_str()) != 0) return -1;
  reg().temps.erase(tmp);
  auto& outs = reg().outputs;
  if (have && (!existed || outs.count(target))) outs[target] = {t.st_dev, t.st_ino};
  return 0;
}

void remove_temp(const std::string& tmp) {
  auto lock = hold();
  ::unlink(tmp.c_str());
  reg().temps.erase(tmp);
}

void create_dirs(const std::string& dir, std::error_code& ec) {
  auto lock = hold();
  std::vector<fs::path> missing;  // the folders create_directories is about to make, deepest first
  std::error_code e;
  for (fs::path p = fs::path(dir).lexically_normal(); !p.empty() && !fs::exists(fs::symlink_status(p, e));
       p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  fs::create_directories(dir, ec);
  for (auto it = missing.rbegin(); it != missing.rend(); ++it)
    if (fs::is_directory(fs::symlink_status(*it, e))) reg().folders.push_back(it->string());
}

void remove_output(const std::string& path) {
  auto lock = hold();
  ::unlink(path.c_str());
  reg().outputs.erase(path);
}

Undone undo(const std::function<void(const std::string&)>& removed) {
  auto lock = hold();
  return undo_locked(removed);
}

Undone undo_locked(const std::function<void(const std::string&)>& removed) {
  Undone u;
  auto& r = reg();
  try {
    for (const auto& t : r.temps) u.temps += ::unlink(t.c_str()) == 0;
    r.temps.clear();
    for (const auto& [path, id] : r.outputs) {
      struct stat st {};
      // Only the file this run wrote: another process may have put its own file at that name since.
      if (::lstat(path.c_str(), &st) != 0 || st.st_dev != id.first || st.st_ino != id.second) continue;
      if (::unlink(path.c_str()) == 0) {
        ++u.files;
        if (removed) removed(path);
      }
    }
    r.outputs.clear();
    for (auto it = r.folders.rbegin(); it != r.folders.rend(); ++it)  // deepest first; only when left empty
      if (::rmdir(it->c_str()) == 0) {
        ++u.folders;
        if (removed) removed(*it);
      }
    r.folders.clear();
  } catch (...) {
  }
  return u;
}

}  // namespace oq::run_files
