#include "run_guard.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "core/log.h"
#include "core/run_files.h"
#include "rollback.h"

namespace fs = std::filesystem;

namespace oq::app {

namespace {

constexpr int kGuarded[] = {SIGINT, SIGTERM, SIGHUP};

// Read and written under run_files::hold(). Never destroyed: the signal thread and the atexit hook use it while
// static destructors run.
struct GuardState {
  bool finished = false;
  std::string out_dir, log_name;
  std::string lock_path;
  int lock_fd = -1;
};
GuardState& state() {
  static auto* s = new GuardState;
  return *s;
}
std::atomic<pid_t> g_child{0};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
  }
}

// The lock file goes first, while the lock is still held (see lock_output_folder).
void release_folder_lock_locked() {
  auto& g = state();
  if (g.lock_fd < 0) return;
  ::unlink(g.lock_path.c_str());
  ::close(g.lock_fd);
  g.lock_fd = -1;
}

// What is left of the run after its rollback, for the one error line.
std::string outcome(size_t removed) {
  const auto& g = state();
  if (g.out_dir.empty()) return "nothing written";
  const std::string kept = g.log_name.empty() ? "" : fmt::format("; its log {} is kept", g.log_name);
  if (removed == 0) return fmt::format("nothing written to '{}'{}", g.out_dir, kept);
  return fmt::format("nothing written: the {} file{} it had written in '{}' removed{}", removed,
                     removed == 1 ? "" : "s", g.out_dir, kept);
}

void* signal_thread(void*) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kGuarded) sigaddset(&set, s);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    auto lock = run_files::hold();  // for good: _exit below, with it held
    if (state().finished) continue;  // the command is over; its exit is under way
    // SIGTERM whatever the signal: a shell catches SIGINT and acts on it only once its foreground command ends.
    if (const pid_t c = g_child.load(); c > 0) ::kill(-c, SIGTERM);
    if (::isatty(STDERR_FILENO)) std::fputc('\n', stderr);  // after a progress bar or the terminal's ^C
    const size_t removed = roll_back_locked("(the run was interrupted)");
    spdlog::error("interrupted by {}: {}", signal_name(sig), outcome(removed));
    release_folder_lock_locked();
    ::_exit(128 + sig);
  }
  return nullptr;
}

// exit() before run_finished(): a library ended the process (libgomp when it cannot start a thread).
void at_exit() {
  auto lock = run_files::hold();
  auto& g = state();
  if (g.finished) return;
  g.finished = true;
  const size_t removed = roll_back_locked("(the process was ended before the run finished)");
  spdlog::error("the process was ended by a library before the run finished (its message is above; libgomp's "
                "'Thread creation failed' means a limit on processes/threads or memory refused OpenMP's threads: "
                "ulimit -u, a container pids limit, ulimit -v; try --threads 1): {}", outcome(removed));
  release_folder_lock_locked();
}

}  // namespace

void install_run_guard() {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  for (int s : kGuarded) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A small stack: the thread only rolls back and logs one line (a default 8 MiB reservation can fail under
  // `ulimit -v` where the run itself would not).
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, size_t{256} << 10);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  const int rc = pthread_create(&t, &attr, signal_thread, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) {  // the run can still go on; the signals then end it as they would without this thread
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    OQ_WARN("cannot start the thread that handles SIGINT/SIGTERM/SIGHUP ({}): an interrupted run may leave its "
            "files behind", std::strerror(rc));
  }
  std::atexit(at_exit);
}

void set_output_folder(const std::string& dir, const std::string& log_name) {
  auto lock = run_files::hold();
  state().out_dir = dir;
  state().log_name = log_name;
}

bool lock_output_folder(const std::string& dir) {
  const std::string path = (fs::path(dir) / kLockName).string();
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return false;  // a folder this process cannot write to: opening the log names it next
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      char buf[32] = {};
      const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      if (e != EWOULDBLOCK) {
        OQ_WARN("cannot lock the output folder '{}' ({}): another run into it at the same time would not be "
                "refused", dir, std::strerror(e));
        return false;
      }
      std::string pid(buf, n > 0 ? static_cast<size_t>(n) : 0);
      pid.erase(pid.find_last_not_of(" \n") + 1);
      fail(ErrorKind::Io, "output folder '{}' is in use by another onnxquant run{}: wait for it to finish or "
           "choose another output folder", dir, pid.empty() ? "" : " (pid " + pid + ")");
    }
    struct stat held {}, now {};
    if (::fstat(fd, &held) != 0 || ::stat(path.c_str(), &now) != 0 || held.st_dev != now.st_dev ||
        held.st_ino != now.st_ino) {
      ::close(fd);  // the run that held it removed it meanwhile: lock the file now at that name
      continue;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
      // the pid is only for the message of a refused run
    }
    auto lock = run_files::hold();
    state().lock_path = path;
    state().lock_fd = fd;
    return true;
  }
  return false;
}

void remove_stale_temporaries(const std::string& dir) {
  static const std::regex ours(
      R"((.+\.(onnx|data|json|csv|html|npy|pb)|\.onnxquant)\.tmp-[A-Za-z0-9]{6}|\.candidate_.*\.onnx)");
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    // Only files no live process holds: a run writing into this folder as its export folder (or through a
    // symbolic link) keeps its temporary files locked while they exist.
    if (std::regex_match(it->path().filename().string(), ours) && run_files::remove_if_abandoned(it->path().string()))
      OQ_INFO("Removed {}, a temporary file left by an earlier onnxquant run that was killed", it->path().string());
  }
}

void set_child_process(pid_t pgid) { g_child.store(pgid); }

void run_finished() {
  auto lock = run_files::hold();
  state().finished = true;
  release_folder_lock_locked();
}

}  // namespace oq::app
