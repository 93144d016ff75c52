// "Nothing new is left behind on error": a run that fails, is interrupted (SIGINT, SIGTERM, SIGHUP) or is ended
// by a library's exit() removes what it wrote — its outputs, temporary files and the folders it made, as
// core/run_files.h records them — and keeps only the log. Files that existed before the run are not touched (each
// writer replaces files atomically, so they are either the old or a complete new version), nor files another
// process put in the folder meanwhile: only what this run created, by name and inode.
#pragma once
#include <cstddef>

namespace oq::app {

// Removes what this run wrote (run_files::undo), logging each removal as "Removed PATH <why>"; returns the
// number of files removed. Never throws.
size_t roll_back(const char* why) noexcept;
// Same, with the registry's lock (run_files::hold) already held by the caller.
size_t roll_back_locked(const char* why) noexcept;

}  // namespace oq::app
