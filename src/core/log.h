// Logging: spdlog with a console sink and (once the output dir is known) a file sink
// `<output_dir>/onnxquant.log` that receives everything the console shows.
#pragma once
#include <string>
#include <spdlog/spdlog.h>

namespace oq::log {

void init(bool verbose = false);
// Adds the file sink; the file is truncated. Returns false if it cannot be opened, with the OS's reason
// ("Permission denied") in *reason when given.
bool add_file(const std::string& path, std::string* reason = nullptr);
// Plain text lines (no prefix) — used for ST-layout report sections in the log.
void raw(const std::string& line);

}  // namespace oq::log
#define OQ_INFO(...) spdlog::info(__VA_ARGS__)
#define OQ_WARN(...) spdlog::warn(__VA_ARGS__)
#define OQ_DEBUG(...) spdlog::debug(__VA_ARGS__)
