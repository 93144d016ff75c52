#include <map>
#include <mutex>

#include "exec/kernel.h"

namespace oq::exec {

namespace {
struct Entry {
  int lo, hi;
  KernelFactory f;
};
std::map<std::string, std::vector<Entry>>& table() {
  static std::map<std::string, std::vector<Entry>> t;
  return t;
}
}  // namespace

KernelRegistration::KernelRegistration(const char* op, int lo, int hi, KernelFactory f) {
  table()[op].push_back({lo, hi, f});
}

KernelFactory find_kernel(const std::string& op, int opset) {
  auto it = table().find(op);
  if (it == table().end()) return nullptr;
  for (const auto& e : it->second)
    if (opset >= e.lo && opset <= e.hi) return e.f;
  return nullptr;
}

std::vector<std::string> registered_ops() {
  std::vector<std::string> r;
  for (const auto& [k, v] : table())
    if (!k.starts_with("_Oq")) r.push_back(k);  // the executor's internal ops (exec/layout.h)
  return r;
}

}  // namespace oq::exec
