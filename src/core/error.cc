#include "core/error.h"

#include <new>

namespace oq {

namespace {
void append_escaped(std::string& out, char c, bool quote_marks) {
  const unsigned char u = static_cast<unsigned char>(c);
  switch (c) {
    case '\n': out += "\\n"; return;
    case '\t': out += "\\t"; return;
    case '\r': out += "\\r"; return;
    case '\0': out += "\\0"; return;
    default: break;
  }
  if (u < 0x20 || u == 0x7f) {
    out += fmt::format("\\x{:02x}", u);
    return;
  }
  if (quote_marks && (c == '\\' || c == '\'')) out += '\\';
  out += c;
}
}  // namespace

std::string escape_controls(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) append_escaped(out, c, false);
  return out;
}

std::string exception_text(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e)) return std::string(kOutOfMemory);
  return e.what();
}

std::string quote(std::string_view s) {
  std::string out = "'";
  out.reserve(s.size() + 2);
  for (char c : s) append_escaped(out, c, true);
  out += '\'';
  return out;
}

}  // namespace oq
