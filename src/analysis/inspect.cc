#include "analysis/inspect.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "analysis/snr.h"
#include "core/progress.h"
#include "data/loader.h"
#include "exec/ordered_runs.h"
#include "exec/session.h"
#include "quant/annotate.h"
#include "quant/qparams.h"

namespace oq::analysis {

std::string_view to_string(TensorKind k) {
  switch (k) {
    case TensorKind::Weight: return "weight";
    case TensorKind::Bias: return "bias";
    case TensorKind::Activation: return "activation";
  }
  return "?";
}

namespace {

float scalar_bound(const ir::Graph& g, const ir::Node& n, size_t input, float def) {
  const std::string& name = n.input(input);
  if (name.empty()) return def;
  const auto* init = g.find_initializer(name);
  if (!init || init->tensor.numel() != 1)
    fail(ErrorKind::Model, "node '{}' ({}): bound '{}' is not a constant scalar; cannot inspect its folded output",
         n.name, n.op_type, name);
  return static_cast<float>(init->tensor.to_doubles()[0]);
}

// Relu/Clip nodes folded into their producer, keyed by the tensor that finally carries their output.
std::unordered_map<std::string, std::vector<FoldedOp>> folded_ops(const ir::Model& prepared,
                                                                   const quant::QuantPlan& plan) {
  std::unordered_map<std::string, std::vector<FoldedOp>> r;
  const auto& g = prepared.graph;
  for (size_t idx : plan.removed_nodes) {
    if (idx >= g.nodes.size()) fail(ErrorKind::Runtime, "quantization plan names node {} of a {}-node model", idx, g.nodes.size());
    const ir::Node& n = g.nodes[idx];
    FoldedOp f;
    f.op_type = n.op_type;
    if (n.op_type == "Relu") {
      f.lo = 0.f;
    } else if (n.op_type == "Clip") {
      if (prepared.default_opset() >= 11) {
        f.lo = scalar_bound(g, n, 1, f.lo);
        f.hi = scalar_bound(g, n, 2, f.hi);
      } else {
        f.lo = n.attr_float("min", -std::numeric_limits<float>::max());
        f.hi = n.attr_float("max", std::numeric_limits<float>::max());
      }
    } else {
      fail(ErrorKind::Runtime, "quantization plan folds node '{}' of type {} (only Relu and Clip fold)", n.name,
           n.op_type);
    }
    std::string t = n.outputs.at(0);
    for (int hops = 0; hops < 100000; ++hops) {
      auto it = plan.renamed.find(t);
      if (it == plan.renamed.end()) break;
      t = it->second;
    }
    r[t].push_back(f);
  }
  return r;
}

std::string share_root(const quant::QuantPlan& plan, const std::string& name) {
  std::string src = plan.tensors.at(name).share_from;
  if (src.empty()) return {};
  for (int hops = 0; hops < 100000; ++hops) {
    auto it = plan.tensors.find(src);
    if (it == plan.tensors.end() || it->second.share_from.empty()) break;
    src = it->second.share_from;
  }
  return src;
}

NodeRef node_ref(const ir::Node& n) { return NodeRef{n.name, n.op_type}; }

}  // namespace

void apply_folded(const std::vector<FoldedOp>& ops, Tensor& t) {
  if (ops.empty()) return;
  float* p = t.data<float>();
  for (const auto& f : ops)
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::min(std::max(p[i], f.lo), f.hi);
}

InspectionResult describe(const ir::Model& prepared, const quant::QuantizedModel& q) {
  const auto& g = prepared.graph;
  ir::GraphIndex idx(g);
  auto order = ir::topological_order(g);
  std::vector<int64_t> rank(g.nodes.size(), 0);
  for (size_t i = 0; i < order.size(); ++i) rank[order[i]] = static_cast<int64_t>(i);
  auto folded = folded_ops(prepared, q.plan);

  struct Keyed {
    int64_t key;
    size_t marked;
    TensorInspection t;
  };
  std::vector<Keyed> items;
  for (size_t m = 0; m < q.plan.marked_order.size(); ++m) {
    const std::string& name = q.plan.marked_order[m];
    const quant::TensorSpec& s = q.plan.tensors.at(name);
    auto pit = q.params.find(name);
    if (pit == q.params.end()) continue;  // left in float (e.g. a bias whose input is not quantized)
    const exec::QuantParams& p = pit->second;
    TensorInspection t;
    t.name = name;
    t.initializer = s.is_initializer;
    t.kind = s.role == quant::TensorRole::Bias ? TensorKind::Bias
             : s.is_initializer                ? TensorKind::Weight
                                               : TensorKind::Activation;
    t.activation_override = s.role == quant::TensorRole::Activation;
    t.qtype = p.qtype;
    t.axis = p.axis;
    if (!p.scale.empty()) {
      auto [lo, hi] = std::minmax_element(p.scale.begin(), p.scale.end());
      t.scale_min = *lo, t.scale_max = *hi;
    }
    if (!p.zero_point.empty()) {
      auto [lo, hi] = std::minmax_element(p.zero_point.begin(), p.zero_point.end());
      t.zero_point_min = *lo, t.zero_point_max = *hi;
    }
    t.shares_params_with = share_root(q.plan, name);
    if (auto f = folded.find(name); f != folded.end()) t.folded = f->second;
    int64_t key = -1;
    // A bias copied for a second consumer (`<bias>0`) is the float model's original, read by that consumer only.
    // The original keeps its first consumer only: both are read from the quantized model's graph.
    const auto dup = q.plan.duplicated.find(name);
    const std::string& float_name = dup == q.plan.duplicated.end() ? name : dup->second;
    const bool copied = dup != q.plan.duplicated.end() ||
                        std::any_of(q.plan.duplicated.begin(), q.plan.duplicated.end(),
                                    [&](const auto& d) { return d.second == name; });
    if (copied) {
      for (const auto& n : q.model.graph.nodes)
        if (n.op_type != "DequantizeLinear" && std::find(n.inputs.begin(), n.inputs.end(), name) != n.inputs.end()) {
          t.consumers.push_back(node_ref(n));
          for (size_t ni = 0; ni < g.nodes.size(); ++ni)  // its place in the float model's order
            if (g.nodes[ni].name == n.name && n.op_type == g.nodes[ni].op_type)
              key = key < 0 ? 2 * rank[ni] : std::min(key, 2 * rank[ni]);
        }
    } else if (auto c = idx.consumers.find(name); c != idx.consumers.end()) {
      for (size_t ni : c->second) t.consumers.push_back(node_ref(g.nodes[ni]));
      if (t.initializer) {
        key = INT64_MAX;
        for (size_t ni : c->second) key = std::min(key, 2 * rank[ni]);
      }
    }
    if (t.initializer) {
      const auto* init = g.find_initializer(float_name);
      if (!init) fail(ErrorKind::Runtime, "quantized initializer '{}' is not in the float model", name);
      t.shape = init->tensor.shape();
      if (t.kind == TensorKind::Weight && !t.activation_override && !t.consumers.empty()) {
        const ir::Node& c = g.nodes[idx.consumers.at(name).front()];
        int a = quant::default_weight_axis(c);
        int r = init->tensor.rank();
        if (a < 0) a += r;
        t.channel_axis = (a >= 0 && a < r) ? a : -1;
      }
      if (key == INT64_MAX) key = -1;
    } else if (auto pr = idx.producer.find(name); pr != idx.producer.end()) {
      t.producer = node_ref(g.nodes[pr->second]);
      key = 2 * rank[pr->second] + 1;
    }
    items.push_back(Keyed{key, m, std::move(t)});
  }
  std::stable_sort(items.begin(), items.end(), [](const Keyed& a, const Keyed& b) {
    return a.key != b.key ? a.key < b.key : a.marked < b.marked;
  });
  InspectionResult r;
  for (auto& it : items) {
    it.t.exec_index = r.tensors.size();
    r.tensors.push_back(std::move(it.t));
  }
  return r;
}

Tensor dequantize(const Tensor& q, const Tensor& scale, const Tensor& zero_point, int axis) {
  std::vector<int64_t> qv = q.to_int64s();
  std::vector<double> sv = scale.to_doubles();
  std::vector<int64_t> zv = zero_point.empty() ? std::vector<int64_t>(sv.size(), 0) : zero_point.to_int64s();
  if (sv.empty() || zv.size() != sv.size())
    fail(ErrorKind::Model, "dequantize: {} scale(s) and {} zero point(s)", sv.size(), zv.size());
  Tensor out(DType::Float, q.shape());
  float* o = out.data<float>();
  if (sv.size() == 1) {
    const float s = static_cast<float>(sv[0]);
    for (size_t i = 0; i < qv.size(); ++i) o[i] = static_cast<float>(qv[i] - zv[0]) * s;
    return out;
  }
  int a = axis < 0 ? axis + q.rank() : axis;
  if (a < 0 || a >= q.rank() || q.dim(a) != static_cast<int64_t>(sv.size()))
    fail(ErrorKind::Model, "dequantize: {} scales do not match axis {} of shape {}", sv.size(), axis,
         shape_str(q.shape()));
  int64_t inner = 1;
  for (int d = a + 1; d < q.rank(); ++d) inner *= q.dim(d);
  const int64_t channels = q.dim(a);
  for (size_t i = 0; i < qv.size(); ++i) {
    size_t c = static_cast<size_t>((static_cast<int64_t>(i) / inner) % channels);
    o[i] = static_cast<float>(qv[i] - zv[c]) * static_cast<float>(sv[c]);
  }
  return out;
}

void measure_weights(const ir::Model& prepared, const quant::QuantizedModel& q, InspectionResult& r) {
  const auto& qg = q.model.graph;
  std::unordered_map<std::string, const ir::Node*> by_output;  // DequantizeLinear / QuantizeLinear by output
  for (const auto& n : qg.nodes)
    if ((n.op_type == "DequantizeLinear" || n.op_type == "QuantizeLinear") && !n.outputs.empty())
      by_output[n.outputs[0]] = &n;
  auto init_of = [&](const std::string& name, const std::string& what) -> const Tensor& {
    const auto* i = qg.find_initializer(name);
    if (!i) fail(ErrorKind::Runtime, "quantized model: {} initializer '{}' is missing", what, name);
    return i->tensor;
  };
  for (auto& t : r.tensors) {
    if (!t.initializer) continue;
    auto written = q.stats.dq_output.find(t.name);
    auto it = written == q.stats.dq_output.end() ? by_output.end() : by_output.find(written->second);
    if (it == by_output.end() || it->second->op_type != "DequantizeLinear")
      fail(ErrorKind::Runtime, "quantized model: no DequantizeLinear for initializer '{}'", t.name);
    const ir::Node& dq = *it->second;
    // The integer values: an initializer (`<w>_quantized`), or with AddQDQPairToWeight the QuantizeLinear of the
    // float constant, computed here as the executor's QuantizeLinear does.
    Tensor qt;
    if (qg.find_initializer(dq.input(0))) {
      qt = init_of(dq.input(0), "quantized");
    } else {
      auto qn = by_output.find(dq.input(0));
      auto params = q.params.find(t.name);
      if (qn == by_output.end() || qn->second->op_type != "QuantizeLinear" || params == q.params.end())
        fail(ErrorKind::Runtime, "quantized model: '{}' is neither an initializer nor a QuantizeLinear output",
             dq.input(0));
      qt = quant::quantize_tensor(init_of(qn->second->input(0), "float"), params->second);
    }
    const Tensor& sc = init_of(dq.input(1), "scale");
    Tensor zp = dq.input(2).empty() ? Tensor() : init_of(dq.input(2), "zero point");
    Tensor xhat = dequantize(qt, sc, zp, static_cast<int>(dq.attr_int("axis", 1)));
    const auto dup = q.plan.duplicated.find(t.name);
    const auto* f = prepared.graph.find_initializer(dup == q.plan.duplicated.end() ? t.name : dup->second);
    if (!f) fail(ErrorKind::Runtime, "float model: initializer '{}' is missing", t.name);
    SnrAccumulator acc;
    // A Gemm's beta went into its int32 bias (quant::quantize_bias): the DequantizeLinear gives beta x C.
    const auto spec = q.plan.tensors.find(t.name);
    const double beta = spec == q.plan.tensors.end() ? 1.0 : spec->second.bias_beta;
    if (beta != 1.0 && (f->tensor.dtype() == DType::Float || f->tensor.dtype() == DType::Float16)) {
      // A float16 bias too (compared in float32, as SnrAccumulator::add does).
      Tensor ref = f->tensor.dtype() == DType::Float ? f->tensor.clone() : f->tensor.cast(DType::Float);
      for (float& v : std::span<float>(ref.data<float>(), static_cast<size_t>(ref.numel())))
        v = static_cast<float>(v * beta);
      acc.add(ref, xhat, t.name);
    } else {
      acc.add(f->tensor, xhat, t.name);
    }
    t.snr_db = acc.db();
  }
}

void measure_activations(const ir::Model& prepared, const quant::QuantizedModel& q, const data::DatasetPtr& data,
                         int64_t batch_size, InspectionResult& r) {
  const auto& qg = q.model.graph;
  std::unordered_set<std::string> produced;
  for (const auto& in : qg.inputs) produced.insert(in.name);
  for (const auto& n : qg.nodes)
    for (const auto& o : n.outputs) produced.insert(o);

  std::vector<size_t> acts;  // indices into r.tensors
  std::unordered_map<std::string, size_t> float_want, pre_map, dq_map;  // name -> position in acts
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    const auto& t = r.tensors[i];
    if (t.initializer) continue;
    auto qi = q.stats.q_input.find(t.name), dqo = q.stats.dq_output.find(t.name);
    if (qi == q.stats.q_input.end() || dqo == q.stats.dq_output.end())
      fail(ErrorKind::Runtime, "quantized model: activation '{}' has no QuantizeLinear", t.name);
    const std::string pre = qi->second, dq = dqo->second;
    for (const auto& n : {pre, dq})
      if (!produced.count(n))
        fail(ErrorKind::Runtime, "quantized model: tensor '{}' (for activation '{}') is not produced", n, t.name);
    size_t k = acts.size();
    acts.push_back(i);
    float_want[t.name] = k;
    pre_map[pre] = k;
    dq_map[dq] = k;
  }
  if (acts.empty()) return;

  exec::Session fs(prepared), qs(q.model);
  const size_t n = acts.size();
  std::vector<SnrAccumulator> xacc(n), lacc(n);
  std::vector<int64_t> nonzero(n, 0), zeroed(n, 0);
  // Batches run on exec::run_ordered's workers. What one batch needs (the float model's values, the values
  // before each QuantizeLinear) is the worker's own; the accumulators of activation k are touched only when the
  // quantized model's DequantizeLinear output of k is observed, which run_ordered does in batch order, one
  // batch at a time, so the sums (and the SNRs) do not depend on the number of workers.
  struct BatchValues {
    std::vector<Tensor> fvals, pvals;
    std::vector<char> seen;
  };
  static thread_local BatchValues* cur = nullptr;  // this worker's batch (set by before_run)
  std::mutex workers_mu;
  std::map<std::thread::id, std::unique_ptr<BatchValues>> per_worker;

  exec::RunOptions fro, qro;
  // The float run names what it observes, so it runs the executor's optimized graph (fused activations,
  // channel-blocked chains) unless a rewrite removed one of them. The quantized run observes the values before
  // each QuantizeLinear, which the QDQ fusion removes: it runs the model as given.
  std::unordered_set<std::string> float_names;
  for (const auto& [name, k] : float_want) float_names.insert(name);
  fro.observed = &float_names;
  fro.observer = [&](const std::string& name, const Tensor& v) {
    auto it = float_want.find(name);
    if (it != float_want.end()) cur->fvals[it->second] = v;  // shares the storage: tensors are immutable
  };
  qro.observer = [&](const std::string& name, const Tensor& v) {
    BatchValues& b = *cur;
    if (auto it = pre_map.find(name); it != pre_map.end()) {
      Tensor c = v.clone();
      apply_folded(r.tensors[acts[it->second]].folded, c);
      b.pvals[it->second] = std::move(c);
    }
    if (auto it = dq_map.find(name); it != dq_map.end()) {
      size_t k = it->second;
      auto& t = r.tensors[acts[k]];
      if (b.fvals[k].empty()) fail(ErrorKind::Runtime, "inspection: the float model did not produce '{}'", t.name);
      if (b.pvals[k].empty())
        fail(ErrorKind::Runtime, "inspection: the quantized model did not produce '{}' before its QuantizeLinear",
             t.name);
      if (t.shape.empty()) t.shape = b.fvals[k].shape();
      xacc[k].add(b.fvals[k], v, t.name);
      lacc[k].add(b.pvals[k], v, t.name);
      if (v.dtype() == DType::Float && b.pvals[k].dtype() == DType::Float && v.numel() == b.pvals[k].numel()) {
        const float* pre = b.pvals[k].data<float>();
        const float* deq = v.data<float>();
        int64_t nz = 0, z = 0;
        for (int64_t i = 0; i < v.numel(); ++i) {
          const bool is_nz = pre[i] != 0.f;
          nz += is_nz;
          z += is_nz && deq[i] == 0.f;
        }
        nonzero[k] += nz;
        zeroed[k] += z;
      }
      b.fvals[k] = Tensor();
      b.pvals[k] = Tensor();
      b.seen[k] = 1;
    }
  };

  data::Loader loader(data, data::LoaderOptions{std::max<int64_t>(1, batch_size), 0, 0});
  Progress bar("Inspection", data->size());
  exec::OrderedRunOptions run;  // max_deferred_bytes stays 0: k's DequantizeLinear output needs its pre value first
  run.role = "inspection worker";
  run.before_run = [&](int64_t, const exec::Feed& f) {
    {
      std::lock_guard<std::mutex> lock(workers_mu);
      auto& slot = per_worker[std::this_thread::get_id()];
      if (!slot) slot = std::make_unique<BatchValues>();
      cur = slot.get();
    }
    cur->fvals.assign(n, Tensor());
    cur->pvals.assign(n, Tensor());
    cur->seen.assign(n, 0);
    fs.run(f.inputs, fro);
  };
  run.on_done = [&](int64_t, const exec::Feed& f, std::vector<Tensor>&) {  // on the worker's thread
    if (!f.inputs.empty()) {
      for (size_t k = 0; k < n; ++k)
        if (!cur->seen[k])
          fail(ErrorKind::Runtime, "inspection: activation '{}' was not observed in the quantized model",
               r.tensors[acts[k]].name);
      cur->fvals.assign(n, Tensor());  // release this batch's values now
      cur->pvals.assign(n, Tensor());
    }
    r.samples += f.samples;
    bar.tick(f.samples);
  };
  exec::run_ordered(qs, exec::feed_from<data::Batch>(loader), qro, run);
  bar.done();
  for (size_t k = 0; k < n; ++k) {
    auto& t = r.tensors[acts[k]];
    t.snr_xmodel_db = xacc[k].db();
    t.snr_local_db = lacc[k].db();
    if (nonzero[k] > 0) t.zeroed_fraction = static_cast<double>(zeroed[k]) / static_cast<double>(nonzero[k]);
  }
}

}  // namespace oq::analysis
