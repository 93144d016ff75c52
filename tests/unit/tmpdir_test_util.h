// A fresh temporary directory for a test (mkdtemp), removed with everything in it at scope exit.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "core/error.h"

namespace oq::test_util {

struct TmpDir {
  std::string path;
  explicit TmpDir(const std::string& prefix = "oq-test") {
    path = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    OQ_CHECK(mkdtemp(path.data()) != nullptr, "mkdtemp");
  }
  ~TmpDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TmpDir(const TmpDir&) = delete;
  TmpDir& operator=(const TmpDir&) = delete;
  std::string operator/(const std::string& f) const { return (std::filesystem::path(path) / f).string(); }
};

}  // namespace oq::test_util
