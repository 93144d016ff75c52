#include "evaluator_command.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "core/error.h"
#include "run_guard.h"
#include "search/score_line.h"

namespace oq::app {

namespace {

// Runs `sh -c cmd` and returns what it printed on stdout, its wait status in `status`. The child starts with the
// default signal dispositions and an empty signal mask (onnxquant blocks SIGINT/SIGTERM/SIGHUP for its signal
// thread and ignores SIGPIPE/SIGXFSZ, which a child would inherit), in a process group of its own: an interruption
// of onnxquant sends SIGTERM to that group (run_guard.h), so the command does not outlive the run.
std::string run_shell(const std::string& cmd, int& status) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    fail(ErrorKind::Runtime, "iterative_quant_parameters.evaluator_command: cannot run '{}': {}", cmd, std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none, dflt;
  sigemptyset(&none);
  sigemptyset(&dflt);
  for (int sig : {SIGPIPE, SIGXFSZ, SIGINT, SIGTERM, SIGHUP}) sigaddset(&dflt, sig);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dflt);
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::string sh = "sh", dash_c = "-c", command = cmd;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    fail(ErrorKind::Runtime, "iterative_quant_parameters.evaluator_command: cannot run '{}': {}", cmd, std::strerror(rc));
  }
  set_child_process(pid);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  pid_t w;
  while ((w = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  set_child_process(0);
  if (w < 0) fail(ErrorKind::Runtime, "iterative_quant_parameters.evaluator_command: cannot wait for '{}'", cmd);
  return out;
}

// A line repeated in a message: at most 200 characters (an evaluator may print a whole report on its last line).
std::string shown_line(const std::string& line) {
  return quote(line.size() <= 200 ? line : line.substr(0, 200) + "...");
}

}  // namespace

double run_evaluator_command(const std::string& cmd_template, const std::string& model_path) {
  std::string cmd = cmd_template;
  // The path as one shell word: in single quotes, a quote inside written as '\'' (any output directory name works).
  std::string quoted = "'";
  for (char c : model_path) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  quoted += "'";
  for (size_t p = 0; (p = cmd.find("{model}", p)) != std::string::npos; p += quoted.size()) cmd.replace(p, 7, quoted);
  int rc = 0;
  const std::string out = run_shell(cmd, rc);
  if (WIFSIGNALED(rc))
    fail(ErrorKind::Runtime, "iterative_quant_parameters.evaluator_command was killed by signal {}: {}", WTERMSIG(rc), cmd);
  if (WEXITSTATUS(rc) != 0)
    fail(ErrorKind::Runtime, "iterative_quant_parameters.evaluator_command exited with {}: {}", WEXITSTATUS(rc), cmd);
  const std::string last = search::last_output_line(out);
  if (last.empty()) fail(ErrorKind::Runtime, "iterative_quant_parameters.evaluator_command printed nothing: {}", cmd);
  std::string why;
  const std::optional<double> v = search::parse_score_line(last, &why);
  if (!v)
    fail(ErrorKind::Runtime, "iterative_quant_parameters.evaluator_command printed {} as its last line, not a score: "
         "{} (the last line must be the score alone, a plain decimal number such as 97.25; command: {})",
         shown_line(last), why, cmd);
  return *v;
}

}  // namespace oq::app
