#include "quant/bias_correction.h"

#include "core/log.h"
#include "exec/session.h"
#include "quant/graph_util.h"

namespace oq::quant {

namespace {

// Index of the weight element of output channel o and input column j in the stored layout.
int64_t weight_index(const LayerView& v, int64_t o, int64_t j) {
  const int64_t R = v.rows * v.groups;
  return v.transposed ? j * R + o : o * v.k + j;
}

}  // namespace

std::vector<BiasTarget> bias_targets(const ir::Graph& g) {
  std::vector<BiasTarget> out;
  ir::GraphIndex idx(g);
  for (const auto& n : g.nodes) {
    auto v = layer_view(g, n);
    if (!v) continue;
    BiasTarget t{*v, "", 1.0};
    if (n.op_type == "Conv" || n.op_type == "Gemm") {
      t.bias = n.input(2);
      if (n.op_type == "Gemm") t.beta = n.attr_float("beta", 1.0f);
    } else {  // MatMul: the constant of an Add consuming its output, if that Add is the only consumer
      const std::string& y = n.outputs.at(0);
      auto c = idx.consumers.find(y);
      if (c == idx.consumers.end() || c->second.size() != 1 || g.is_graph_output(y)) continue;
      const ir::Node& add = g.nodes[c->second[0]];
      if (add.op_type != "Add" || !add.is_default_domain() || add.inputs.size() != 2) continue;
      const std::string& other = add.input(0) == y ? add.input(1) : add.input(0);
      const ir::Initializer* b = g.find_initializer(other);
      if (!b || b->tensor.rank() < 1 || b->tensor.dim(b->tensor.rank() - 1) != v->rows) continue;
      t.bias = other;
    }
    out.push_back(std::move(t));
  }
  return out;
}

int add_zero_biases(ir::Graph& g) {
  int added = 0;
  for (auto& t : bias_targets(g)) {
    if (!t.bias.empty() || t.view.op_type == "MatMul") continue;
    ir::Node* n = nullptr;
    for (auto& node : g.nodes)
      if (node.name == t.view.node && node.input(1) == t.view.weight && node.op_type == t.view.op_type) n = &node;
    if (!n) continue;
    std::string name = t.view.weight + "_bias";
    for (int i = 1; g.find_initializer(name) || tensor_uses(g, name) > 0; ++i)
      name = fmt::format("{}_bias{}", t.view.weight, i);
    Tensor z(DType::Float, {t.view.rows * t.view.groups});
    for (float& x : z.span<float>()) x = 0.f;
    g.add_initializer(name, std::move(z));
    n->inputs.resize(3);
    n->inputs[2] = name;
    ++added;
  }
  return added;
}

InputMeansCollector::InputMeansCollector(const std::vector<LayerView>& layers) {
  for (const auto& v : layers) {
    if (means_.count(v.weight)) continue;
    by_input_[v.input].push_back(v.weight);
    means_[v.weight].view = v;
  }
}

void InputMeansCollector::observe(const std::string& name, const Tensor& x) {
  auto it = by_input_.find(name);
  if (it == by_input_.end()) return;
  for (const auto& w : it->second) {
    InputMeans& m = means_[w];
    const int64_t k = m.view.k;
    if (m.sum.empty()) m.sum.assign(static_cast<size_t>(m.view.groups * k), 0.0);
    for_each_im2col(m.view, x, [&](const std::vector<float>& col, int64_t P, int64_t grp) {
      double* s = m.sum.data() + grp * k;
      for (int64_t j = 0; j < k; ++j) {
        double a = 0.0;
        for (int64_t p = 0; p < P; ++p) a += col[static_cast<size_t>(j * P + p)];
        s[j] += a;
      }
      if (grp == 0) m.rows += P;
    });
  }
}

InputMeansMap InputMeansCollector::take() {
  InputMeansMap out = std::move(means_);
  std::erase_if(out, [](const auto& kv) { return kv.second.rows == 0; });
  return out;
}

InputMeansMap collect_input_means(const ir::Model& m, const data::DatasetPtr& data, int64_t batch_size) {
  std::vector<LayerView> layers;
  for (const auto& t : bias_targets(m.graph)) layers.push_back(t.view);
  InputMeansCollector col(layers);
  if (col.empty()) return {};
  stream_observed(m, data, batch_size, "Bias correction statistics",
                  [&](const std::string& name, const Tensor& v) { col.observe(name, v); });
  return col.take();
}

std::vector<double> expected_shift(const Tensor& w, const Tensor& wq, const InputMeans& m) {
  const LayerView& v = m.view;
  const int64_t R = v.rows, k = v.k;
  std::vector<double> shift(static_cast<size_t>(R * v.groups), 0.0);
  if (m.rows == 0) return shift;
  const float* a = w.data<float>();
  const float* q = wq.data<float>();
  for (int64_t o = 0; o < R * v.groups; ++o) {
    const double* s = m.sum.data() + (o / R) * k;
    double acc = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t i = weight_index(v, o, j);
      acc += (static_cast<double>(a[i]) - static_cast<double>(q[i])) * s[j];
    }
    shift[static_cast<size_t>(o)] = acc / static_cast<double>(m.rows);
  }
  return shift;
}

int correct_biases(ir::Graph& g, const ir::Graph& original, const std::vector<BiasTarget>& targets,
                   const ParamMap& params, const std::map<std::string, Tensor>& weight_values,
                   const InputMeansMap& means) {
  int done = 0;
  for (const auto& t : targets) {
    const LayerView& v = t.view;
    auto p = params.find(v.weight);
    auto m = means.find(v.weight);
    const ir::Initializer* ob = t.bias.empty() ? nullptr : original.find_initializer(t.bias);
    const ir::Initializer* w = original.find_initializer(v.weight);
    ir::Initializer* b = t.bias.empty() ? nullptr : g.find_initializer(t.bias);
    const int64_t C = v.rows * v.groups;
    if (p == params.end() || m == means.end() || !ob || !w || !b || t.beta == 0.0) continue;
    if (ob->tensor.dtype() != DType::Float || ob->tensor.numel() != C || tensor_uses(original, t.bias) != 1) continue;
    auto vals = weight_values.find(v.weight);
    const Tensor& src = vals != weight_values.end() ? vals->second : w->tensor;
    std::vector<double> shift = expected_shift(w->tensor, weight_fake_quant(src, p->second), m->second);
    Tensor nb = ob->tensor.clone();
    float* d = nb.data<float>();
    for (int64_t o = 0; o < C; ++o) d[o] = static_cast<float>(d[o] + shift[static_cast<size_t>(o)] / t.beta);
    b->tensor = std::move(nb);
    ++done;
  }
  return done;
}

}  // namespace oq::quant
