#include "quant/bias_correction.h"

#include <algorithm>
#include <cmath>

#include "core/log.h"
#include "exec/session.h"
#include "quant/graph_util.h"

namespace oq::quant {

namespace {

// Index of the weight element of output channel o and input column j in the stored layout.
int64_t weight_index(const LayerView& v, int64_t o, int64_t j) {
  if (v.op_type == "ConvTranspose") {  // [C, rows, kernel]: column j = (input channel of the group, tap)
    const int64_t kk = v.kernel[0] * v.kernel[1], grp = o / v.rows, r = o % v.rows, cg = v.k / kk;
    return ((grp * cg + j / kk) * v.rows + r) * kk + j % kk;
  }
  const int64_t R = v.rows * v.groups;
  return v.transposed ? j * R + o : o * v.k + j;
}

// ConvTranspose: output position o = i·stride − pad_begin + tap·dilation; the column of (channel, tap) sums
// the inputs whose o falls inside the output (a non-finite one is left out and counted in m.skipped). Returns the
// output size (positions per sample).
int64_t accumulate_transposed(InputMeans& m, const Tensor& xin) {
  const LayerView& v = m.view;
  Tensor x = xin.dtype() == DType::Float ? xin : xin.cast(DType::Float);
  if (x.rank() != 3 && x.rank() != 4)
    fail(ErrorKind::Runtime, "input of ConvTranspose '{}' has rank {}", v.node, x.rank());
  const int64_t N = x.dim(0), C = x.dim(1), IH = x.rank() == 4 ? x.dim(2) : 1, IW = x.dim(x.rank() - 1);
  const int64_t KH = v.kernel[0], KW = v.kernel[1], cg = v.k / (KH * KW);
  if (cg * v.groups != C) fail(ErrorKind::Runtime, "ConvTranspose '{}': input channels {} do not match its weight", v.node, C);
  const int64_t OH = v.strides[0] * (IH - 1) + v.output_padding[0] + (KH - 1) * v.dilations[0] + 1 - v.pads[0] - v.pads[2];
  const int64_t OW = v.strides[1] * (IW - 1) + v.output_padding[1] + (KW - 1) * v.dilations[1] + 1 - v.pads[1] - v.pads[3];
  const float* xd = x.data<float>();
  std::vector<double> rows(static_cast<size_t>(IH));
  std::vector<int64_t> bad(static_cast<size_t>(IH));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const float* src = xd + (n * C + c) * IH * IW;
      const int64_t col = (c / cg) * v.k + (c % cg) * KH * KW;
      double* s = m.sum.data() + col;
      int64_t* sk = m.skipped.data() + col;
      for (int64_t b = 0; b < KW; ++b) {
        for (int64_t ih = 0; ih < IH; ++ih) {  // per input row: the inputs whose column lands inside
          double a = 0.0;
          int64_t nb = 0;
          for (int64_t iw = 0; iw < IW; ++iw) {
            int64_t ow = iw * v.strides[1] - v.pads[1] + b * v.dilations[1];
            if (ow < 0 || ow >= OW) continue;
            const float xv = src[ih * IW + iw];
            if (std::isfinite(xv))
              a += xv;
            else
              ++nb;
          }
          rows[static_cast<size_t>(ih)] = a;
          bad[static_cast<size_t>(ih)] = nb;
        }
        for (int64_t a = 0; a < KH; ++a)
          for (int64_t ih = 0; ih < IH; ++ih) {
            int64_t oh = ih * v.strides[0] - v.pads[0] + a * v.dilations[0];
            if (oh < 0 || oh >= OH) continue;
            s[a * KW + b] += rows[static_cast<size_t>(ih)];
            sk[a * KW + b] += bad[static_cast<size_t>(ih)];
          }
      }
    }
  return N * OH * OW;
}

}  // namespace

std::optional<LayerView> conv_transpose_view(const ir::Graph& g, const ir::Node& n) {
  if (n.op_type != "ConvTranspose" || !n.is_default_domain() || n.inputs.size() < 2) return std::nullopt;
  const ir::Initializer* wi = g.find_initializer(n.input(1));
  if (!wi || wi->tensor.dtype() != DType::Float || g.find_initializer(n.input(0))) return std::nullopt;
  const Tensor& w = wi->tensor;
  if ((w.rank() != 3 && w.rank() != 4) || n.attr_string("auto_pad", "NOTSET") != "NOTSET" ||
      n.has_attr("output_shape"))
    return std::nullopt;
  const int sp = static_cast<int>(w.rank()) - 2;
  LayerView v;
  v.weight = wi->name;
  v.input = n.input(0);
  v.node = n.name;
  v.op_type = n.op_type;
  v.groups = n.attr_int("group", 1);
  if (v.groups <= 0 || w.dim(0) % v.groups) return std::nullopt;
  v.rows = w.dim(1);
  v.k = w.dim(0) / v.groups * (w.numel() / (w.dim(0) * w.dim(1)));
  v.out_axis = 1;
  auto strides = n.attr_ints("strides", std::vector<int64_t>(sp, 1));
  auto dil = n.attr_ints("dilations", std::vector<int64_t>(sp, 1));
  auto pads = n.attr_ints("pads", std::vector<int64_t>(2 * sp, 0));
  auto opad = n.attr_ints("output_padding", std::vector<int64_t>(sp, 0));
  if (sp == 2) {
    v.kernel = {w.dim(2), w.dim(3)};
    v.strides = strides, v.dilations = dil, v.pads = pads, v.output_padding = opad;
  } else {
    v.kernel = {1, w.dim(2)};
    v.strides = {1, strides[0]}, v.dilations = {1, dil[0]}, v.pads = {0, pads[0], 0, pads[1]};
    v.output_padding = {0, opad[0]};
  }
  return v;
}

std::vector<BiasTarget> bias_targets(const ir::Graph& g) {
  std::vector<BiasTarget> out;
  ir::GraphIndex idx(g);
  for (const auto& n : g.nodes) {
    auto v = n.op_type == "ConvTranspose" ? conv_transpose_view(g, n) : layer_view(g, n);
    if (!v || tensor_uses(g, v->weight) != 1) continue;  // a shared weight sees several inputs
    BiasTarget t{*v, "", 1.0, 1.0};
    if (n.op_type == "Conv" || n.op_type == "ConvTranspose" || n.op_type == "Gemm") {
      t.bias = n.input(2);
      if (n.op_type == "Gemm") t.alpha = n.attr_float("alpha", 1.0f), t.beta = n.attr_float("beta", 1.0f);
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
    // A Gemm with beta 0 ignores its C: a zero C with beta 1 computes the same and can carry the correction.
    const bool gemm_beta0 = t.view.op_type == "Gemm" && !t.bias.empty() && t.beta == 0.0;
    if ((!t.bias.empty() && !gemm_beta0) || t.view.op_type == "MatMul") continue;
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
    if (gemm_beta0) {
      n->set_attr_float("beta", 1.0f);
      if (tensor_uses(g, t.bias) == 0) g.remove_initializer(t.bias);
    }
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
    if (m.sum.empty()) {
      m.sum.assign(static_cast<size_t>(m.view.groups * k), 0.0);
      m.skipped.assign(static_cast<size_t>(m.view.groups * k), 0);
    }
    if (m.view.op_type == "ConvTranspose") {
      m.rows += accumulate_transposed(m, x);
      continue;
    }
    for_each_im2col(m.view, x, [&](const std::vector<float>& col, int64_t P, int64_t grp) {
      double* s = m.sum.data() + grp * k;
      int64_t* sk = m.skipped.data() + grp * k;
      for (int64_t j = 0; j < k; ++j) {
        const float* c = col.data() + j * P;
        double a = 0.0;
        for (int64_t p = 0; p < P; ++p) a += c[p];
        if (!std::isfinite(a)) {  // a NaN or an infinity in the column: sum the finite values only
          a = 0.0;
          for (int64_t p = 0; p < P; ++p)
            if (std::isfinite(c[p]))
              a += c[p];
            else
              ++sk[j];
        }
        s[j] += a;
      }
      if (grp == 0) m.rows += P;
    });
  }
}

InputMeansMap InputMeansCollector::take() {
  InputMeansMap out = std::move(means_);
  std::erase_if(out, [](const auto& kv) { return kv.second.rows == 0; });
  for (const auto& [w, m] : out) {
    const auto empty = std::count(m.skipped.begin(), m.skipped.end(), m.rows);
    if (empty)
      OQ_WARN("Bias correction: {} '{}' (weight '{}'): {} of its {} input columns have no finite value on the "
              "calibration data; the output channels that read them keep their bias", m.view.op_type, m.view.node, w,
              empty, m.skipped.size());
  }
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
  const double rows = static_cast<double>(m.rows);
  for (int64_t o = 0; o < R * v.groups; ++o) {
    const double* s = m.sum.data() + (o / R) * k;
    const int64_t* sk = m.skipped.data() + (o / R) * k;
    double acc = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t i = weight_index(v, o, j);
      // rows × the column's mean over its finite values (NaN when it has none)
      const double col = sk[j] == 0 ? s[j]
                         : sk[j] < m.rows ? s[j] * rows / static_cast<double>(m.rows - sk[j])
                                          : std::nan("");
      acc += (static_cast<double>(a[i]) - static_cast<double>(q[i])) * col;
    }
    shift[static_cast<size_t>(o)] = acc / rows;
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
    // Gemm: Y = alpha·A·B + beta·C, so the output shift is alpha·shift and C moves by alpha/beta × shift.
    const double f = t.alpha / t.beta;
    for (int64_t o = 0; o < C; ++o) {
      const float c = static_cast<float>(d[o] + shift[static_cast<size_t>(o)] * f);
      if (std::isfinite(c)) d[o] = c;  // never a NaN or infinite bias (a column without a finite value: no shift)
    }
    b->tensor = std::move(nb);
    ++done;
  }
  return done;
}

}  // namespace oq::quant
