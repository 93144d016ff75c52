// Errors: onnxquant reports every failure as an oq::Error carrying a kind (which decides the exit code)
// and a one-line message that names the file, key, node or tensor concerned.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <fmt/format.h>

namespace oq {

// `s` with its control characters written as escapes (\n, \t, \r, \0, \xNN): text that a message repeats (a
// config value, a file or tensor name) can then neither break the one-line message nor cut it short (a NUL ends
// what() early). Other bytes are kept as they are.
std::string escape_controls(std::string_view s);
// `s` between single quotes, with its control characters, backslashes and single quotes escaped: how a message
// repeats a value the user wrote ('per_tensor\n', 'a\0b', 'it\'s').
std::string quote(std::string_view s);

// What onnxquant says of a std::bad_alloc, whose what() ("std::bad_alloc") names nothing (docs/reliability.md).
inline constexpr std::string_view kOutOfMemory =
    "out of memory: an allocation failed (a limit on this process's memory: ulimit -v, a container limit; or the "
    "machine's); try --threads 1, a smaller dataset.batch_size or fewer samples";
// e.what(), or kOutOfMemory for a std::bad_alloc: how a message repeats an exception that is not an oq::Error.
std::string exception_text(const std::exception& e);

enum class ErrorKind {
  Usage,    // bad command line or config: exit code 2
  Config,   // invalid config value/key: exit code 2
  Model,    // broken/unsupported model: exit code 1
  Data,     // bad data set: exit code 1
  Io,       // file system: exit code 1
  Runtime,  // anything else: exit code 1
};

class Error : public std::runtime_error {
 public:
  // The message is made one line here (escape_controls), whatever the values it repeats hold.
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(escape_controls(msg)), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return (kind_ == ErrorKind::Usage || kind_ == ErrorKind::Config) ? 2 : 1; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(kind, fmt::format(f, std::forward<Args>(args)...));
}

// Internal invariant check (a bug in onnxquant, not in the input).
#define OQ_CHECK(cond, ...)                                                              \
  do {                                                                                   \
    if (!(cond)) ::oq::fail(::oq::ErrorKind::Runtime, "internal error: " __VA_ARGS__); \
  } while (0)

}  // namespace oq
