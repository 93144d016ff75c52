// The files a run creates, kept in one registry so that a failed or interrupted run removes exactly those
// (docs/reliability.md, "Outputs" and "Signals, limits, concurrent runs"):
// - temporary files (NAME.tmp-XXXXXX beside an output, unlinked temporaries in $TMPDIR) are created and
//   registered under the registry's lock, and forgotten when renamed into place or removed;
// - an output renamed into place where no file was is recorded with its device and inode, and so is each folder
//   created for outputs.
// undo() removes the temporaries, the recorded outputs that still hold what this run wrote (never a file another
// process has put at that name since, nor a file that was there before the run: a replaced file stays replaced,
// and is complete) and the recorded folders left empty. The signal thread calls undo() holding the lock for good
// (hold() then _exit): once it has the lock, no file of the run is created or renamed into place any more.
#pragma once
#include <functional>
#include <mutex>
#include <string>
#include <system_error>

namespace oq::run_files {

// The registry's lock (every function below takes it; hold it to call the *_locked ones).
std::unique_lock<std::mutex> hold();

// mkstemp(tmpl) with the new file registered as a temporary; -1 with errno on failure.
int create_temp(std::string& tmpl);
// An unlinked temporary file open for reading and writing in `dir` (O_TMPFILE, else mkstemp and unlink under the
// lock, so that no name is ever left behind); -1 with errno on failure.
int create_unlinked_temp(const std::string& dir);
// rename(tmp, target); target becomes an output of this run when no file was there. 0, or -1 with errno.
int commit_temp(const std::string& tmp, const std::string& target);
// Removes a temporary file and forgets it.
void remove_temp(const std::string& tmp);
// std::filesystem::create_directories, recording each folder it creates.
void create_dirs(const std::string& dir, std::error_code& ec);
// Removes an output of this run (e.g. a candidate model scored by an external command) and forgets it.
void remove_output(const std::string& path);

// What undo() did.
struct Undone {
  size_t files = 0;    // outputs removed
  size_t folders = 0;  // folders removed
  size_t temps = 0;    // temporary files removed
};
// Removes what the registry holds, as described above, and empties it; `removed` is called for each output and
// folder removed. Never throws.
Undone undo(const std::function<void(const std::string&)>& removed);
Undone undo_locked(const std::function<void(const std::string&)>& removed);

}  // namespace oq::run_files
