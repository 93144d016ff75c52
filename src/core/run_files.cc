#include "core/run_files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "core/error.h"

namespace fs = std::filesystem;

namespace oq::run_files {

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, int> temps;                          // name -> a descriptor holding its flock
  std::map<std::string, std::pair<dev_t, ino_t>> outputs;  // path -> the file this run put there
  std::map<std::string, int> held;                           // outputs kept locked (commit_temp's keep_locked)
  std::vector<std::string> folders;                          // in creation order (parents first)
};

// Never destroyed: the signal thread and an exit() during the run use it while static destructors run.
Registry& reg() {
  static auto* r = new Registry;
  return *r;
}

void close_fd(int fd) {
  if (fd >= 0) ::close(fd);
}

// Closes the descriptor registered for `path` in `m` (its lock goes with it) and forgets it.
void forget(std::map<std::string, int>& m, const std::string& path) {
  if (auto it = m.find(path); it != m.end()) {
    close_fd(it->second);
    m.erase(it);
  }
}

// Takes flock(LOCK_EX) on `fd`, a file just created at `path`, then checks that `path` still names it: another
// run's remove_if_abandoned may have locked and unlinked it in between (it holds the lock for microseconds). True:
// the file is ours, locked (or the file system has no flock: nothing can be held); false: gone, make another.
bool lock_new_file(int fd, const std::string& path) {
  int rc = 0;
  while ((rc = ::flock(fd, LOCK_EX)) != 0 && errno == EINTR) {
  }
  if (rc != 0) return true;
  struct stat a {}, b {};
  return ::fstat(fd, &a) == 0 && ::lstat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

mode_t read_umask() {
  std::ifstream f("/proc/self/status");  // "Umask:\t0022" (Linux 4.7 on): reading it changes nothing
  for (std::string line; std::getline(f, line);)
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8) & 0777);
  const mode_t m = ::umask(022);  // no /proc: set and restore (main calls new_file_mode() before any thread exists)
  ::umask(m);
  return m;
}

}  // namespace

std::unique_lock<std::mutex> hold() { return std::unique_lock<std::mutex>(reg().mu); }

mode_t new_file_mode() {
  static const mode_t mode = 0666 & ~read_umask();
  return mode;
}

void check_replaceable(const std::string& path, const char* what) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || ::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) == 0) return;
  const int e = errno;
  if (e != EACCES && e != EPERM && e != EROFS && e != ETXTBSY) return;  // a dangling link (ENOENT): nothing to keep
  fail(ErrorKind::Io, "{} '{}' exists and this user may not write it ({}): onnxquant does not replace a file that is "
       "protected so; make it writable (chmod u+w), remove it, or choose another output folder", what, path,
       std::strerror(e));
}

int create_temp_beside(const std::string& target, std::string* tmp) {
  check_replaceable(target);
  // Named after the target unless that would make the name too long for the file system (NAME_MAX 255).
  const fs::path t(target);
  const std::string base =
      t.filename().string().size() + 11 <= 255 ? target : (t.parent_path() / ".onnxquant").string();
  auto lock = hold();
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string tmpl = base + ".tmp-XXXXXX";
    const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd < 0) return -1;
    const int held = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);  // the lock's own descriptor: the writer closes `fd`
    if (held < 0) {
      const int e = errno;
      ::close(fd);
      ::unlink(tmpl.c_str());
      errno = e;
      return -1;
    }
    if (!lock_new_file(held, tmpl)) {
      ::close(held);
      ::close(fd);
      continue;
    }
    reg().temps[tmpl] = held;
    *tmp = tmpl;
    return fd;
  }
  errno = EEXIST;
  return -1;
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

int commit_temp(const std::string& tmp, const std::string& target, bool keep_locked) {
  auto lock = hold();
  auto& r = reg();
  struct stat t {}, old {};
  const bool have = ::lstat(tmp.c_str(), &t) == 0;
  const bool existed = ::lstat(target.c_str(), &old) == 0;
  // As open(2) would: a file replaced keeps its permission bits (O_TRUNC), a new one gets 0666 & ~umask (mkstemp
  // made it 0600).
  const mode_t mode = existed && S_ISREG(old.st_mode) ? (old.st_mode & 0777) : new_file_mode();
  const auto it = r.temps.find(tmp);
  const int held = it != r.temps.end() ? it->second : -1;
  if (have && (held >= 0 ? ::fchmod(held, mode) : ::chmod(tmp.c_str(), mode)) != 0) {
    // best effort: a file system without modes (vfat) keeps its own
  }
  if (std::rename(tmp.c_str(), target.c_str()) != 0) return -1;
  if (it != r.temps.end()) r.temps.erase(it);
  if (have && (!existed || r.outputs.count(target))) r.outputs[target] = {t.st_dev, t.st_ino};
  forget(r.held, target);
  if (keep_locked && held >= 0)
    r.held[target] = held;
  else
    close_fd(held);
  return 0;
}

void remove_temp(const std::string& tmp) {
  auto lock = hold();
  ::unlink(tmp.c_str());
  forget(reg().temps, tmp);
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
  forget(reg().held, path);
}

bool remove_if_abandoned(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {}, now {};
  // The lock is held until close: a run creating a file at this name meanwhile finds it gone (lock_new_file).
  const bool removed = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() &&
                       ::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::lstat(path.c_str(), &now) == 0 &&
                       now.st_dev == st.st_dev && now.st_ino == st.st_ino && ::unlink(path.c_str()) == 0;
  ::close(fd);
  return removed;
}

std::string create_unique_dir(const std::string& base) {
  const fs::path parent = fs::path(base).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) fail(ErrorKind::Io, "cannot create output folder '{}': {}", parent.string(), ec.message());
  constexpr int kMax = 10000;
  for (int k = 0; k < kMax; ++k) {
    const std::string dir = k == 0 ? base : base + "_" + std::to_string(k);
    if (::mkdir(dir.c_str(), 0777) == 0) return dir;
    if (errno != EEXIST) fail(ErrorKind::Io, "cannot create output folder '{}': {}", dir, std::strerror(errno));
  }
  fail(ErrorKind::Io, "cannot create output folder '{}': it and '{}_1' to '{}_{}' all exist", base, base, base,
       kMax - 1);
}

Undone undo(const std::function<void(const std::string&)>& removed) {
  auto lock = hold();
  return undo_locked(removed);
}

Undone undo_locked(const std::function<void(const std::string&)>& removed) {
  Undone u;
  auto& r = reg();
  try {
    for (const auto& [t, fd] : r.temps) {
      u.temps += ::unlink(t.c_str()) == 0;
      close_fd(fd);
    }
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
    for (const auto& [path, fd] : r.held) close_fd(fd);
    r.held.clear();
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
