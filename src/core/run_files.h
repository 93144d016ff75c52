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
//
// Every file a run writes also goes through here for its mode and for the rules shared by all writers
// (docs/reliability.md, "Outputs"): a new output gets 0666 & ~umask, as open(2) (onnx.save, np.save) gives it; a
// file it replaces keeps its permission bits, as open(2) with O_TRUNC would; an existing output this user may not
// write is refused, never replaced behind the user's back; a temporary file is held under flock() while it exists,
// so that another run's clean-up of a killed run's left-overs (remove_if_abandoned) never takes a live one.
#pragma once
#include <sys/types.h>

#include <functional>
#include <mutex>
#include <string>
#include <system_error>

namespace oq::run_files {

// The registry's lock (every function below takes it; hold it to call the *_locked ones).
std::unique_lock<std::mutex> hold();

// The permission bits of a new file: 0666 & ~umask. The umask is read once, at the first call (from
// /proc/self/status, which changes nothing; without /proc by setting it back and forth, so main calls this before
// any thread starts).
mode_t new_file_mode();
// An Io error naming `path` when a file exists there that this user may not write (faccessat(W_OK) with the
// effective ids fails, as open(2) would): an output the user protected with chmod a-w is refused, not replaced by
// a rename. `what` names it in the message ("output", "the log").
void check_replaceable(const std::string& path, const char* what = "output");
// The temporary file of `target`: `target`.tmp-XXXXXX beside it (.onnxquant.tmp-XXXXXX when that name would be too
// long for the file system), created, locked (flock) and registered; *tmp is set to its name. Refuses a target
// check_replaceable refuses (the Io error); -1 with errno when the file cannot be created.
int create_temp_beside(const std::string& target, std::string* tmp);
// An unlinked temporary file open for reading and writing in `dir` (O_TMPFILE, else mkstemp and unlink under the
// lock, so that no name is ever left behind); -1 with errno on failure.
int create_unlinked_temp(const std::string& dir);
// rename(tmp, target), the file given the mode of the file it replaces, else new_file_mode(); target becomes an
// output of this run when no file was there. `keep_locked`: the output stays locked until remove_output() (a
// file of the run that looks like a temporary one, such as full_auto's .candidate_*.onnx). 0, or -1 with errno.
int commit_temp(const std::string& tmp, const std::string& target, bool keep_locked = false);
// Removes a temporary file and forgets it.
void remove_temp(const std::string& tmp);
// std::filesystem::create_directories, recording each folder it creates.
void create_dirs(const std::string& dir, std::error_code& ec);
// Removes an output of this run (e.g. a candidate model scored by an external command) and forgets it.
void remove_output(const std::string& path);
// Removes `path`, a file named as a temporary of onnxquant's, when it is a regular file of this user that no live
// process holds (its flock can be taken: the run that made it was killed); true when removed. A file that cannot
// be opened or locked (a file system without flock) is left alone.
bool remove_if_abandoned(const std::string& path);
// Makes a new folder `base`, or `base`_1, `base`_2, ... when that name is taken (mkdir: two processes never get
// the same one), after creating base's parents; returns its name. Io error when none can be made.
std::string create_unique_dir(const std::string& base);

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
