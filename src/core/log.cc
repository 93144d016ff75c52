#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace oq::log {

void init(bool verbose) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("onnxquant", console);
  logger->set_pattern("%^[%l]%$ %v");
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

bool add_file(const std::string& path) {
  try {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, true);
    file->set_pattern("%Y-%m-%d %H:%M:%S [%l] %v");
    spdlog::default_logger()->sinks().push_back(file);
    return true;
  } catch (const spdlog::spdlog_ex&) {
    return false;
  }
}

void raw(const std::string& line) {
  // Sinks keep their own patterns; the message itself is the line.
  spdlog::info("{}", line);
}

}  // namespace oq::log
