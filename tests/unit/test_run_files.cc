// core/run_files: what a failed or interrupted run removes (only what it created, by name and inode).
#include <gtest/gtest.h>
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
  std::string tmpl = d / "pending.bin.tmp-XXXXXX";
  const int fd = run_files::create_temp(tmpl);
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
