#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "commands.h"
#include "ir/passes/infer_shapes.h"
#include "onnx/model_io.h"

namespace oq::app {
namespace {

std::string dims_str(const ir::ValueInfo& v) {
  if (!v.opaque_type.empty() && v.dtype == DType::Undefined) return "(non-tensor type)";
  if (!v.shape) return "[rank unknown]";
  std::string r = "[";
  for (size_t i = 0; i < v.shape->size(); ++i) {
    const ir::Dim& d = (*v.shape)[i];
    r += i ? "," : "";
    r += d.known() ? std::to_string(d.value) : (d.param.empty() ? "?" : d.param);
  }
  return r + "]";
}

// Thousands separators: 1234567 -> 1,234,567.
std::string grouped(uint64_t n) {
  std::string s = std::to_string(n), r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) r += ',';
    r += s[i];
  }
  return r;
}

struct Totals {
  std::map<std::string, uint64_t> ops;
  uint64_t nodes = 0, params = 0, bytes = 0, initializers = 0;
};

void count(const ir::Graph& g, Totals& t) {
  for (const auto& n : g.nodes) {
    ++t.nodes;
    ++t.ops[n.is_default_domain() ? n.op_type : n.domain + ":" + n.op_type];
    for (const auto& a : n.attrs) {
      if (a.g) count(*a.g, t);
      for (const auto& sg : a.graphs)
        if (sg) count(*sg, t);
    }
  }
  for (const auto& i : g.initializers) {
    ++t.initializers;
    const Tensor& x = i.tensor;
    if (is_float(x.dtype())) t.params += static_cast<uint64_t>(x.numel());
    if (x.dtype() == DType::Int4 || x.dtype() == DType::UInt4) t.bytes += (static_cast<uint64_t>(x.numel()) + 1) / 2;
    else if (x.dtype() == DType::String)
      for (const auto& s : x.strings()) t.bytes += s.size();
    else t.bytes += x.nbytes();
  }
}

void print_values(const char* title, const std::vector<const ir::ValueInfo*>& vs) {
  std::printf("%s (%zu):\n", title, vs.size());
  size_t w = 0;
  for (const auto* v : vs) w = std::max(w, v->name.size());
  for (const auto* v : vs)
    std::printf("  %-*s  %-8s %s\n", static_cast<int>(w), v->name.c_str(), std::string(dtype_name(v->dtype)).c_str(),
                dims_str(*v).c_str());
}

}  // namespace

int cmd_info(const std::string& model_path, bool shapes) {
  ir::Model m = onnx::load_model(model_path);
  std::printf("model: %s\n", model_path.c_str());
  std::printf("IR version: %lld\n", static_cast<long long>(m.ir_version));
  std::string producer = m.producer_name.empty() ? "(none)" : m.producer_name;
  if (!m.producer_version.empty()) producer += " " + m.producer_version;
  std::printf("producer: %s\n", producer.c_str());
  std::string opsets;
  for (const auto& o : m.opsets)
    opsets += (opsets.empty() ? "" : ", ") + (o.domain.empty() ? std::string("ai.onnx") : o.domain) + " " +
              std::to_string(o.version);
  std::printf("opset imports: %s\n", opsets.empty() ? "(none)" : opsets.c_str());

  std::vector<const ir::ValueInfo*> outs;
  for (const auto& v : m.graph.outputs) outs.push_back(&v);
  print_values("inputs", m.graph.real_inputs());
  print_values("outputs", outs);

  Totals t;
  count(m.graph, t);
  std::vector<std::pair<std::string, uint64_t>> hist(t.ops.begin(), t.ops.end());
  std::stable_sort(hist.begin(), hist.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::printf("op types (%s nodes, %zu types):\n", grouped(t.nodes).c_str(), hist.size());
  size_t w = 0;
  for (const auto& [op, n] : hist) w = std::max(w, op.size());
  for (const auto& [op, n] : hist)
    std::printf("  %-*s  %s\n", static_cast<int>(w), op.c_str(), grouped(n).c_str());
  std::printf("parameters: %s (elements of float initializers)\n", grouped(t.params).c_str());
  std::printf("initializer bytes: %s (%s initializers)\n", grouped(t.bytes).c_str(), grouped(t.initializers).c_str());
  if (shapes) {  // one line per node output of the main graph: name, element type, inferred shape (tab-separated)
    const ir::passes::ShapeInfo info = ir::passes::infer_shapes(m);
    size_t n = 0;
    for (const auto& node : m.graph.nodes) n += node.outputs.size();
    std::printf("inferred shapes (%zu):\n", n);
    for (const auto& node : m.graph.nodes)
      for (const auto& o : node.outputs) {
        if (o.empty()) continue;
        ir::ValueInfo v;
        v.name = o;
        if (const auto* t = info.find(o)) {
          v.dtype = t->dtype;
          v.shape = t->shape;
        }
        std::printf("  %s\t%s\t%s\n", o.c_str(), std::string(dtype_name(v.dtype)).c_str(), dims_str(v).c_str());
      }
  }
  return 0;
}

}  // namespace oq::app
