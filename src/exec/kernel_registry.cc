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
// ONNX Runtime's com.microsoft QuantizeLinear / DequantizeLinear, which the Session runs as ONNX's (session.cc).
bool is_contrib_qdq(const ir::Node& n) {
  return n.domain == "com.microsoft" && (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear");
}

void check_graph_ops(const ir::Graph& g, int opset, std::vector<const ir::Node*>& foreign) {
  for (const auto& n : g.nodes) {
    if (!n.is_default_domain() && !is_contrib_qdq(n)) foreign.push_back(&n);
    if (n.is_default_domain()) {
      // Registrations below kMinOpset are clamped to it (the executor runs opsets from 7): only later ones tell.
      const int first = first_kernel_opset(n.op_type);
      if (first > opset && first > kMinOpset)
        kfail(n, "{} does not exist at opset {} (the model's ai.onnx opset); it appears at opset {}", n.op_type, opset,
              first);
      if (const std::string why = ir::batchnorm_training_reason(n, opset); !why.empty()) kfail(n, "{}", why);
    }
    for (const auto& a : n.attrs) {
      if (a.g) check_graph_ops(*a.g, opset, foreign);
      for (const auto& sg : a.graphs)
        if (sg) check_graph_ops(*sg, opset, foreign);
    }
  }
}

// One line for the nodes of other domains than ai.onnx: the first named with its op type and domain, the count of
// the others, why and what to do.
[[noreturn]] void refuse_foreign(const std::vector<const ir::Node*>& foreign) {
  const ir::Node& n = *foreign.front();
  bool contrib = false;
  for (const auto* f : foreign) contrib = contrib || f->domain == "com.microsoft";
  const std::string more =
      foreign.size() > 1 ? fmt::format(" (and {} more node(s) of domains other than ai.onnx)", foreign.size() - 1) : "";
  const std::string hint =
      contrib ? "quantize the model as exported, before onnxruntime's EXTENDED (or ALL) graph optimisations, which "
                "fuse ai.onnx ops into com.microsoft contrib ops, or export it without contrib ops"
              : "export the model with ai.onnx ops only";
  fail(ErrorKind::Model, "node '{}' ({}, domain '{}'){}: onnxquant's executor runs only ai.onnx (default-domain) ops; {}",
       ir::node_label(n), n.op_type, n.domain, more, hint);
}
}  // namespace

void check_model_ops(const ir::Model& m) {
  const int64_t opset = m.default_opset();
  if (opset < 1) return;
  std::vector<const ir::Node*> foreign;
  check_graph_ops(m.graph, static_cast<int>(opset), foreign);
  if (!foreign.empty()) refuse_foreign(foreign);
}

}  // namespace oq::exec
