// "Nothing new is left behind on error": a snapshot of the output folder taken when the job starts; if the job
// then fails, every file and folder created since is removed again (the log excepted), so a failed run never
// leaves a partial set of models or reports. Files that existed before are not touched (each writer replaces
// files atomically, so they are either the old or a complete new version). Used by the main job (main.cc) and
// `onnxquant run` (cmd_tools.cc), which also stages its outputs so that no old file is replaced by a failed run.
#pragma once
#include <set>
#include <string>
#include <vector>

namespace oq::app {

class OutputRollback {
 public:
  // Snapshots `dir` (recursively); `keep` (the log file; empty: none) is never removed. When `dir` (and maybe
  // some of its parents) does not exist yet, the folders missing now are removed too by undo() once empty.
  OutputRollback(std::string dir, std::string keep);
  // Removes what appeared in `dir` since the snapshot (files first, then the folders left empty, then the folders
  // that were missing) and returns how many entries it removed. Never throws.
  size_t undo() noexcept;

 private:
  std::string dir_, keep_;
  std::set<std::string> before_;
  std::vector<std::string> missing_;  // `dir` and its parents that did not exist at the snapshot, deepest first
};

}  // namespace oq::app
