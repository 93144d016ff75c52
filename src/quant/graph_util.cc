#include "quant/graph_util.h"

#include "core/progress.h"
#include "data/loader.h"
#include "exec/ordered_runs.h"

namespace oq::quant {

int tensor_uses(const ir::Graph& g, const std::string& name) {
  int n = 0;
  for (const auto& node : g.nodes) {
    for (const auto& in : node.inputs) n += in == name;
    if (ir::has_subgraphs(node))  // an If / Loop / Scan body reading it by name: one more use
      for (const auto& in : ir::implicit_inputs(node)) n += in == name;
  }
  return n + (g.is_graph_output(name) ? 1 : 0);
}

const ir::Initializer* private_constant(const ir::Graph& g, const std::string& name) {
  if (name.empty()) return nullptr;
  const ir::Initializer* i = g.find_initializer(name);
  if (!i || i->tensor.dtype() != DType::Float || g.is_graph_input(name) || tensor_uses(g, name) != 1) return nullptr;
  return i;
}

ir::Initializer* private_constant(ir::Graph& g, const std::string& name) {
  return const_cast<ir::Initializer*>(private_constant(static_cast<const ir::Graph&>(g), name));
}

void scale_along(Tensor& t, int axis, const std::vector<double>& f, bool divide) {
  t = t.clone();
  int64_t outer = 1, inner = 1, ch = t.dim(axis);
  for (int i = 0; i < axis; ++i) outer *= t.dim(i);
  for (int i = axis + 1; i < t.rank(); ++i) inner *= t.dim(i);
  float* d = t.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < ch; ++c) {
      double m = divide ? 1.0 / f[static_cast<size_t>(c)] : f[static_cast<size_t>(c)];
      for (int64_t i = 0, base = (o * ch + c) * inner; i < inner; ++i)
        d[base + i] = static_cast<float>(d[base + i] * m);
    }
}

void stream_observed(const ir::Model& m, const data::DatasetPtr& data, int64_t batch_size, const char* label,
                     const exec::Observer& observer) {
  exec::Session session(m);
  exec::RunOptions ro;
  ro.observer = observer;
  data::Loader loader(data, data::LoaderOptions{std::max<int64_t>(batch_size, 1), 0, 0});
  Progress bar(label, data->size());
  exec::OrderedRunOptions run;
  run.role = "statistics worker";
  run.on_done = [&bar](int64_t, const exec::Feed& f, std::vector<Tensor>&) { bar.tick(f.samples); };
  exec::run_ordered(session, exec::feed_from<data::Batch>(loader), ro, run);
  bar.done();
}

}  // namespace oq::quant
