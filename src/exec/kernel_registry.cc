#include <algorithm>
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

int first_kernel_opset(const std::string& op) {
  auto it = table().find(op);
  if (it == table().end()) return 0;
  int lo = 0;
  for (const auto& e : it->second) lo = lo == 0 ? e.lo : std::min(lo, e.lo);
  return lo;
}

namespace {
void check_graph_ops(const ir::Graph& g, int opset) {
  for (const auto& n : g.nodes) {
    if (n.is_default_domain()) {
      // Registrations below kMinOpset are clamped to it (the executor runs opsets from 7): only later ones tell.
      const int first = first_kernel_opset(n.op_type);
      if (first > opset && first > kMinOpset)
        kfail(n, "{} does not exist at opset {} (the model's ai.onnx opset); it appears at opset {}", n.op_type, opset,
              first);
      if (const std::string why = ir::batchnorm_training_reason(n, opset); !why.empty()) kfail(n, "{}", why);
    }
    for (const auto& a : n.attrs) {
      if (a.g) check_graph_ops(*a.g, opset);
      for (const auto& sg : a.graphs)
        if (sg) check_graph_ops(*sg, opset);
    }
  }
}
}  // namespace

void check_model_ops(const ir::Model& m) {
  const int64_t opset = m.default_opset();
  if (opset >= 1) check_graph_ops(m.graph, static_cast<int>(opset));
}

}  // namespace oq::exec
