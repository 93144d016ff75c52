// core/run_files: what a failed or interrupted run removes (only what it created, by name and inode).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/run_files.h"
#include "data/npy.h"
#include "tmpdir_test_util.h"

namespace fs = std::filesystem;
using namespace oq;

namespace {
void put(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
std::string read(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
std::set<std::string> listing(const std::string& root) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) out.insert(fs::relative(e.path(), root).string());
  return out;
}
}  // namespace

TEST(RunFiles, UndoRemovesOnlyWhatTheRunCreated) {
  run_files::undo(nullptr);  // files of earlier tests in this process: not this test's business
  test_util::TmpDir d("oq-runfiles");
  put(d / "before.txt", "the user's");
  put(d / "replaced.bin", "old");
  data::write_file_atomic(d / "replaced.bin", "new");  // existed before the run: a complete new version stays
  data::write_file_atomic(d / "ours.bin", "ours");
  data::write_file_atomic(d / "taken.bin", "ours");
  put(d / "taken.bin.other", "theirs");  // another process puts its own file at that name since
  fs::rename(d / "taken.bin.other", d / "taken.bin");
  std::error_code ec;
  run_files::create_dirs(d / "a/b", ec);
  ASSERT_FALSE(ec);
  data::write_file_atomic(d / "a/b/x.bin", "x");
  run_files::create_dirs(d / "c", ec);
  put(d / "c/theirs.txt", "theirs");  // a folder of ours someone else wrote into: kept
  std::string tmpl;
  const int fd = run_files::create_temp_beside(d / "pending.bin", &tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::vector<std::string> removed;
  const auto u = run_files::undo([&](const std::string& p) { removed.push_back(p); });
  EXPECT_EQ(u.files, 2u);    // ours.bin, a/b/x.bin
  EXPECT_EQ(u.folders, 2u);  // a/b, a
  EXPECT_EQ(u.temps, 1u);
  EXPECT_EQ(removed.size(), 4u);
  EXPECT_EQ(listing(d.path), (std::set<std::string>{"before.txt", "replaced.bin", "taken.bin", "c", "c/theirs.txt"}));
  EXPECT_EQ(read(d / "replaced.bin"), "new");
  EXPECT_EQ(read(d / "taken.bin"), "theirs");
  EXPECT_EQ(run_files::undo(nullptr).files, 0u);  // emptied
}

TEST(RunFiles, RemovedOutputIsForgottenAndUnlinkedTempsHaveNoName) {
  run_files::undo(nullptr);
  test_util::TmpDir d("oq-runfiles");
  data::write_file_atomic(d / "candidate.onnx", "m");
  run_files::remove_output(d / "candidate.onnx");
  put(d / "candidate.onnx", "someone else's, later");
  const int fd = run_files::create_unlinked_temp(d.path);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::write(fd, "abc", 3), 3);
  ::close(fd);
  EXPECT_EQ(run_files::undo(nullptr).files, 0u);
  EXPECT_EQ(listing(d.path), (std::set<std::string>{"candidate.onnx"}));
}

// Another run's clean-up of left-overs (remove_if_abandoned) never takes a live temporary file: it stays locked
// from its creation until it is renamed into place or removed; a file nobody holds (a killed run's) goes. The QA
// report's case: run B, writing into run A's export folder, removed A's NAME.tmp-XXXXXX and A failed.
TEST(RunFiles, LiveTemporariesAreLockedAgainstTheCleanUp) {
  run_files::undo(nullptr);
  test_util::TmpDir d("oq-runfiles");
  std::string tmp;
  const int fd = run_files::create_temp_beside(d / "m.onnx", &tmp);
  ASSERT_GE(fd, 0);
  ::close(fd);  // the writer's descriptor: the lock is held by the registry's own
  EXPECT_TRUE(tmp.starts_with(d / "m.onnx.tmp-")) << tmp;
  EXPECT_FALSE(run_files::remove_if_abandoned(tmp));
  EXPECT_TRUE(fs::exists(tmp));
  put(d / "k.onnx.tmp-AbCdEf", "a killed run's");  // nobody holds it
  EXPECT_TRUE(run_files::remove_if_abandoned(d / "k.onnx.tmp-AbCdEf"));
  EXPECT_FALSE(fs::exists(d / "k.onnx.tmp-AbCdEf"));
  // A committed file kept locked (full_auto's .candidate_*.onnx) until it is removed.
  ASSERT_EQ(run_files::commit_temp(tmp, d / ".candidate_int8.onnx", true), 0);
  EXPECT_FALSE(run_files::remove_if_abandoned(d / ".candidate_int8.onnx"));
  run_files::remove_output(d / ".candidate_int8.onnx");
  put(d / ".candidate_int8.onnx", "left by a killed run");
  EXPECT_TRUE(run_files::remove_if_abandoned(d / ".candidate_int8.onnx"));
  // A name longer than the file system takes gets the short template beside it.
  const std::string long_name = std::string(250, 'x') + ".onnx";
  const int fd2 = run_files::create_temp_beside(d / long_name, &tmp);
  ASSERT_GE(fd2, 0);
  ::close(fd2);
  EXPECT_TRUE(tmp.starts_with(d / ".onnxquant.tmp-")) << tmp;
  EXPECT_FALSE(run_files::remove_if_abandoned(tmp));
  run_files::remove_temp(tmp);
  EXPECT_EQ(listing(d.path), (std::set<std::string>{}));
}

// Modes as open(2) gives them (onnx.save, np.save): 0666 & ~umask for a new file, the old mode for a file replaced.
TEST(RunFiles, ModesFollowTheUmaskAndReplacedFilesKeepTheirs) {
  run_files::undo(nullptr);
  test_util::TmpDir d("oq-runfiles");
  const mode_t mask = ::umask(022);  // the test process's umask, read as a shell's `umask` prints it
  ::umask(mask);
  EXPECT_EQ(run_files::new_file_mode(), 0666 & ~mask);
  data::write_file_atomic(d / "new.json", "{}");
  EXPECT_EQ(fs::status(d / "new.json").permissions(), static_cast<fs::perms>(0666 & ~mask));
  put(d / "mine.npy", "old");
  fs::permissions(d / "mine.npy", fs::perms::owner_read | fs::perms::owner_write);
  data::write_file_atomic(d / "mine.npy", "new");
  EXPECT_EQ(fs::status(d / "mine.npy").permissions(), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(read(d / "mine.npy"), "new");
}

// The folder onnxquant names itself is new for every run: base, base_1, ... (a file at a name counts as taken).
TEST(RunFiles, UniqueFolders) {
  test_util::TmpDir d("oq-runfiles");
  const std::string base = d / "experiments_outputs/2026_01_01_00_00_00";
  EXPECT_EQ(run_files::create_unique_dir(base), base);
  EXPECT_EQ(run_files::create_unique_dir(base), base + "_1");
  put(base + "_2", "a file");
  EXPECT_EQ(run_files::create_unique_dir(base), base + "_3");
  EXPECT_TRUE(fs::is_directory(base + "_3"));
}
