// Captures what onnxquant logs (spdlog's default logger) while it lives, as "[level] message" lines.
#pragma once
#include <algorithm>
#include <memory>
#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

namespace oq::test_util {

struct LogCapture {
  std::ostringstream out;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  LogCapture() {
    sink->set_pattern("[%l] %v");
    spdlog::default_logger()->sinks().push_back(sink);
  }
  ~LogCapture() {
    auto& s = spdlog::default_logger()->sinks();
    s.erase(std::remove(s.begin(), s.end(), sink), s.end());
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::string text() const { return out.str(); }
};

}  // namespace oq::test_util
