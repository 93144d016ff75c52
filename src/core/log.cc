#include "core/log.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "core/error.h"

namespace oq::log {

namespace {

// Every line of every sink has its control characters escaped (escape_controls, as error messages have): a value a
// line repeats (an output folder named "o\nfake line", a tensor name) can neither split it nor forge another line.
class EscapingSink final : public spdlog::sinks::sink {
 public:
  explicit EscapingSink(std::shared_ptr<spdlog::sinks::sink> inner) : inner_(std::move(inner)) {}
  void log(const spdlog::details::log_msg& msg) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    if (std::none_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
      return inner_->log(msg);
    const std::string escaped = escape_controls(text);
    spdlog::details::log_msg copy = msg;
    copy.payload = escaped;
    inner_->log(copy);
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> f) override { inner_->set_formatter(std::move(f)); }

 private:
  std::shared_ptr<spdlog::sinks::sink> inner_;
};

constexpr const char* kConsolePattern = "%^[%l]%$ %v";
constexpr const char* kFilePattern = "%Y-%m-%d %H:%M:%S [%l] %v";
std::mutex g_mu;
std::map<spdlog::sinks::sink*, std::string> g_patterns;  // each sink's normal pattern (raw() swaps it)
}  // namespace

void init(bool verbose) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto console = std::make_shared<EscapingSink>(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  console->set_pattern(kConsolePattern);
  g_patterns.clear();
  g_patterns[console.get()] = kConsolePattern;
  auto logger = std::make_shared<spdlog::logger>("onnxquant", console);
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  // Every line reaches the log file as it is logged: a run that is killed, interrupted or stopped by a limit
  // leaves the log of what it did (it used to be written at exit only: 0 bytes after a crash or a signal).
  logger->flush_on(spdlog::level::trace);
  // A sink that cannot be written (the log file over `ulimit -f`, a full disk) is said once, not per line; the
  // run goes on (a closed stderr, under `| head`, is not reported: SIGPIPE is ignored and nothing can be said).
  logger->set_error_handler([](const std::string& msg) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true)) std::fprintf(stderr, "[warning] log: %s (later log lines may be missing)\n", msg.c_str());
  });
  spdlog::set_default_logger(logger);
}

bool add_file(const std::string& path, std::string* reason) {
  // Opened once here for the OS's reason of a failure (spdlog's exception wraps it in its own words).
  if (std::FILE* probe = std::fopen(path.c_str(), "w")) {
    std::fclose(probe);
  } else {
    if (reason) *reason = std::strerror(errno);
    return false;
  }
  try {
    auto file = std::make_shared<EscapingSink>(std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, true));
    file->set_pattern(kFilePattern);
    std::lock_guard<std::mutex> lock(g_mu);
    g_patterns[file.get()] = kFilePattern;
    spdlog::default_logger()->sinks().push_back(file);
    return true;
  } catch (const spdlog::spdlog_ex& e) {
    if (reason) *reason = e.what();
    return false;
  }
}

void raw(const std::string& line) {
  // ST-layout report lines are written as they are, without level or time prefix, on every sink.
  std::lock_guard<std::mutex> lock(g_mu);
  auto& sinks = spdlog::default_logger()->sinks();
  for (auto& s : sinks) s->set_pattern("%v");
  spdlog::info("{}", line);
  for (auto& s : sinks) {
    auto it = g_patterns.find(s.get());
    s->set_pattern(it != g_patterns.end() ? it->second : kConsolePattern);
  }
}

}  // namespace oq::log
