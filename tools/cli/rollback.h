// "Nothing new is left behind on error": a snapshot of the output folder taken when the job starts; if the job
// then fails, every file and folder created since is removed again (the log excepted), so a failed run never
// leaves a partial set of models or reports. Files that existed before are not touched (each writer replaces
// files atomically, so they are either the old or a complete new version).
#pragma once
#include <set>
#include <string>

namespace oq::app {

class OutputRollback {
 public:
  // Snapshots `dir` (recursively); `keep` (the log file) is never removed.
  OutputRollback(std::string dir, std::string keep);
  // Removes what appeared in `dir` since the snapshot (files first, then the folders left empty) and returns
  // how many entries it removed. Never throws.
  size_t undo() noexcept;

 private:
  std::string dir_, keep_;
  std::set<std::string> before_;
};

}  // namespace oq::app
