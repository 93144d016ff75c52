// Signals, limits and concurrent runs (docs/reliability.md, "Signals, limits, concurrent runs").
//
// - SIGINT, SIGTERM, SIGHUP: blocked in every thread from the start of main (threads inherit the mask) and taken
//   by one thread with sigwait(). It takes the lock of the registry of the run's files (core/run_files.h) for
//   good, removes what the run wrote exactly as a failed run does (rollback.h), logs one error line
//   ("interrupted by SIGINT: ...") and ends the process with _exit(128 + signal). Holding the lock, it cannot
//   race the other threads: a file they are about to create or rename into place waits for the lock, and the
//   process is gone before it is released.
// - SIGPIPE and SIGXFSZ are ignored: a closed stdout/stderr (`onnxquant ... 2>&1 | head -1`) does not kill the
//   run, and a write over `ulimit -f` fails with EFBIG through the ordinary error path (one line, rollback).
// - An exit() during the run (libgomp ends the process when it cannot start a thread) rolls back too (atexit).
// - The main job locks its output folder (flock on `.onnxquant.lock` inside it): a second run into the same folder
//   is refused with one line naming the folder and the other run's pid.
#pragma once
#include <sys/types.h>

#include <string>

namespace oq::app {

// The two files a run keeps in its output folder besides the outputs (an export_dir may not be named like them).
inline constexpr const char* kLogName = "onnxquant.log";
inline constexpr const char* kLockName = ".onnxquant.lock";

// First thing in main, before any thread is started.
void install_run_guard();
// The command writes into `dir`: the interruption's message names it, and says that `log_name` (the log, never
// removed; empty: none) stays.
void set_output_folder(const std::string& dir, const std::string& log_name);
// Takes the folder lock of the main job: flock(LOCK_EX | LOCK_NB) on `<dir>/.onnxquant.lock`, holding our pid. Io
// error when another onnxquant run holds it. Held until run_finished() or the end of the process; the lock file is
// removed then (by the holder, before it lets go: a run that opened the old file finds it unlinked and retries).
// False when the folder could not be locked (it cannot be written to; a file system without flock: a warning).
bool lock_output_folder(const std::string& dir);
// With the folder lock held: removes from `dir` (not its sub-folders) the temporary files a killed earlier run
// (SIGKILL, a crash, power loss) left: `NAME.tmp-XXXXXX` of onnxquant's outputs and `.candidate_*.onnx`, regular
// files owned by this user that no live process holds locked (run_files::remove_if_abandoned), each logged.
void remove_stale_temporaries(const std::string& dir);
// A child process running in a process group of its own (evaluator_command); 0: none. An interruption sends
// SIGTERM to that group before rolling back.
void set_child_process(pid_t pgid);
// The command is over (success, or its error printed): signals from now on are left to the exit under way; the
// folder lock is released and its file removed.
void run_finished();

}  // namespace oq::app
