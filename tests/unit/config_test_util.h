// Shared by the config unit tests: the message of the Config error (exit code 2) that loading a YAML text (and
// command-line overrides) throws; fails the calling test if none is thrown.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"

namespace oq::config::test_util {

inline std::string config_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    load_config_from_string(yaml, overrides, "cfg.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config) << e.what();
    EXPECT_EQ(e.exit_code(), 2);
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << yaml;
  return "";
}

}  // namespace oq::config::test_util
