#include "quant/quantizer.h"

#include <atomic>
#include <cmath>
#include <mutex>
#include <map>
#include <unordered_set>

#include "calib/binning.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/loader.h"
#include "exec/ordered_runs.h"
#include "exec/session.h"
#include "ir/graph.h"
#include "ir/passes/passes.h"
#include "quant/overrides.h"

namespace oq::quant {

// "'a', 'b', ... and N more": the first five names of a warning's list.
static std::string first_names(const std::vector<std::string>& names) {
  std::string list;
  for (size_t i = 0; i < names.size() && i < 5; ++i) list += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 5) list += fmt::format(" and {} more", names.size() - 5);
  return list;
}

static bool needs_opset21(DType t) {
  return t == DType::Int4 || t == DType::UInt4 || t == DType::Int16 || t == DType::UInt16;
}

void check_opset_support(const QuantOptions& o, int opset) {
  std::vector<DType> used = {o.weight_type, o.activation_type};
  for (const auto* m : {&o.weight_overrides, &o.activation_overrides})
    for (const auto& [n, ov] : *m)
      for (auto t : {ov.qtype, ov.convert ? std::optional<DType>(ov.convert->qtype) : std::nullopt})
        if (t) used.push_back(*t);
  for (DType t : used)
    if (needs_opset21(t) && opset < 21) {
      // ORT's com.microsoft Q/DQ (UseQDQContribOps) take 16-bit types at any opset; 4-bit tensors need IR 10.
      const bool four_bit = t == DType::Int4 || t == DType::UInt4;
      if (o.use_qdq_contrib_ops && !four_bit) continue;
      fail(ErrorKind::Config,
           "quantization.target_opset: {} quantization needs QuantizeLinear/DequantizeLinear from opset 21; set "
           "target_opset: 21 (it is {}){}",
           quant_type_name(t), opset, four_bit ? "" : ", or UseQDQContribOps: True for ONNX Runtime's own operators");
    }
  if (opset < 13 && o.per_channel)
    fail(ErrorKind::Config, "quantization.target_opset: per-channel quantization needs opset 13 or newer (it is {})",
         opset);
  if (opset < 10) fail(ErrorKind::Config, "quantization.target_opset: QDQ models need opset 10 or newer");
}

Calibration calibrate(const ir::Model& model, const QuantOptions& o, const data::DatasetPtr& data,
                      const CalibrationRequest& req) {
  exec::Session session(model);
  Calibration c;
  for (const auto& init : model.graph.initializers) c.types[init.name] = init.tensor.dtype();
  for (const auto& in : model.graph.inputs)
    if (in.dtype != DType::Undefined) c.types[in.name] = in.dtype;
  // A float16 model runs in float32 (the observers see float tensors): its float16 values keep their type here,
  // which decides the type of their scales.
  for (const auto& name : ir::passes::float16_values(model.graph)) c.types[name] = DType::Float16;

  // Every non-initializer input/output of a quantized node; non-float ones are ignored by the calibrator.
  std::vector<std::string> wanted;
  for (const auto& n : model.graph.nodes) {
    if (!should_quantize_node(n, o)) continue;
    for (const auto* l : {&n.inputs, &n.outputs})
      for (const auto& t : *l)
        if (!t.empty() && !model.graph.find_initializer(t)) wanted.push_back(t);
  }
  // Pre-activation tensors whose range adjust_ranges() replaces by the output range of their quantized
  // Relu/Clip are not measured: they take that range after compute(), which is what adjust_ranges() does with
  // a measured one (chains of such activations excepted). Without them the executor can run its optimized
  // graph (activations fused into convolutions, channel-blocked chains), where they do not exist.
  std::map<std::string, std::string> range_of;  // skipped tensor -> the activation output whose range it takes
  {
    ir::GraphIndex idx(model.graph);
    std::map<std::string, std::string> cand;
    std::unordered_set<std::string> outs;
    for (const auto& n : model.graph.nodes) {
      if (!input_takes_activation_range(model.graph, idx, n, o)) continue;
      cand[n.input(0)] = n.outputs[0];
      outs.insert(n.outputs[0]);
    }
    for (const auto& [in, out] : cand)
      if (!cand.count(out) && !outs.count(in)) range_of[in] = out;
  }
  std::unordered_set<std::string> observed;
  for (const auto& in : model.graph.inputs) observed.insert(in.name);
  for (const auto& n : model.graph.nodes)
    for (const auto& t : n.outputs)
      if (!t.empty() && !range_of.count(t)) observed.insert(t);

  std::erase_if(wanted, [&](const std::string& t) { return range_of.count(t) > 0; });
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  calib::Calibrator cal(wanted, req.options);
  std::vector<LayerView> bc_layers;
  if (o.bias_correction)
    for (const auto& t : bias_targets(model.graph))
      for (const auto& n : model.graph.nodes)
        if (n.name == t.view.node && n.input(1) == t.view.weight && should_quantize_node(n, o)) {
          bc_layers.push_back(t.view);
          break;
        }
  InputMeansCollector means(bc_layers);
  for (const auto& [name, axis] : req.channel_absmax) cal.track_channel_absmax(name, axis);

  // The calibrator's statistics do not depend on element order; the per-channel ones (SmoothQuant's max|x|,
  // bias correction's input means) do.
  std::unordered_set<std::string> any_order(wanted.begin(), wanted.end());
  for (const auto& [name, axis] : req.channel_absmax) any_order.erase(name);
  for (const auto& l : bc_layers) any_order.erase(l.input);

  // One pass, or two for histograms over each tensor's overall range (ORT's single collect_data() call):
  // the first finds the ranges (and, for Percentile, usually decides everything: Calibrator::needs_pass), the
  // second bins. The samples, the input means and the non-finite inputs are counted in the first.
  std::unordered_set<std::string> graph_inputs;
  for (const auto& in : model.graph.inputs) graph_inputs.insert(in.name);
  std::map<std::string, int64_t> non_finite_inputs;  // graph input -> NaN / infinite values seen
  std::mutex non_finite_mu;
  const int passes = cal.passes();
  const int64_t bs = std::max<int64_t>(req.batch_size, 1);
  cal.expect_batches((data->size() + bs - 1) / bs);
  for (int pass = 0; pass < passes; ++pass) {
    if (!cal.needs_pass(pass)) break;  // Percentile: every range followed from the first pass's extremes
    cal.begin_pass(pass);
    const bool first = pass == 0;
    // the pass that bins histograms (Entropy / Percentile in one pass, or the second of two)
    const bool binning = req.options.method != calib::CalibMethod::MinMax && !req.options.entropy_is_data_range() &&
                         (passes == 1 || pass == 1);
    exec::RunOptions ro;
    ro.observed = &observed;
    ro.any_order = &any_order;
    std::mutex types_mu;  // observers of different tensors may run at once (exec::run_ordered)
    ro.observer = [&](const std::string& name, const Tensor& v) {
      {
        std::lock_guard<std::mutex> lock(types_mu);
        c.types.try_emplace(name, v.dtype());
      }
      cal.observe(name, v);
      if (first && !means.empty()) means.observe(name, v);
      if (first && v.dtype() == DType::Float && graph_inputs.count(name)) {
        // The vectorised scan says whether anything is non-finite; the values are counted only then.
        int64_t bad = 0;
        if (calib::finite_min_max(v.span<float>()).non_finite)
          for (float x : v.span<float>()) bad += !std::isfinite(x);
        if (bad) {
          std::lock_guard<std::mutex> lock(non_finite_mu);
          non_finite_inputs[name] += bad;
        }
      }
    };
    data::Loader loader(data, data::LoaderOptions{req.batch_size, 0, 0});
    Progress bar(pass == 0 ? "Calibration" : "Calibration, second pass (histograms)", data->size());
    exec::OrderedRunOptions run;
    run.role = "calibration worker";
    // Histogram binning is the slow observer (~1 ns per value): hold a few tensors rather than wait for it.
    if (binning) run.max_deferred_bytes = size_t{8} << 20;
    run.on_done = [&](int64_t, const exec::Feed& f, std::vector<Tensor>&) {
      if (first) c.samples += f.samples;
      bar.tick(f.samples);
    };
    exec::run_ordered(session, exec::feed_from<data::Batch>(loader), ro, run);
    bar.done();
  }
  if (c.samples == 0)
    fail(ErrorKind::Data, "calibration: no sample could be read from {}", data->describe());
  // A float tensor that held values, but never a finite one, cannot get a range.
  for (const auto& name : cal.unseen())
    if (auto t = c.types.find(name); t != c.types.end() && (t->second == DType::Float || t->second == DType::Float16))
      fail(ErrorKind::Data,
           "calibration: tensor '{}' has no finite value on any of the {} calibration samples ({}): check the "
           "data for NaN / infinite values",
           name, c.samples, data->describe());
  {
    // Empty (0 elements) on every sample (a Compress, a NonZero-driven Gather or a Loop that keeps nothing on this
    // data): ORT's range [0, 0], hence scale 1 and zero point 0.
    const std::vector<std::string> empty = cal.always_empty();  // seen, so float tensors
    if (!empty.empty()) {
      const std::string list = first_names(empty);
      OQ_WARN("Calibration ({}): {} tensor(s) are empty (0 elements) on all {} calibration samples: {}; they get "
              "the range [0, 0] (scale 1, zero point 0, as ONNX Runtime gives them)",
              data->describe(), empty.size(), c.samples, list);
    }
  }
  for (const auto& [name, n] : non_finite_inputs)
    OQ_WARN("Calibration data ({}): input '{}' has {} NaN or infinite values; the range statistics ignore them",
            data->describe(), name, n);
  {
    // Tensors the float model itself makes non-finite (a division by zero, an overflow): ORT's quantize_static
    // would write an infinite scale (MinMax) or stop (Entropy / Percentile); here the ranges ignore those values,
    // and the user is told where they are.
    std::vector<std::string> inner;
    for (const auto& name : cal.non_finite())
      if (!graph_inputs.count(name)) inner.push_back(name);
    if (!inner.empty()) {
      const std::string list = first_names(inner);
      OQ_WARN("Calibration ({}): the float model produces NaN or infinite values in {} tensor(s): {}{}; their "
              "ranges ignore those values (check the model and the data)",
              data->describe(), inner.size(), list,
              non_finite_inputs.empty() ? "" : " (the inputs already hold some)");
    }
  }
  for (const auto& [name, r] : cal.compute()) c.ranges[name] = Range{r.rmin, r.rmax};
  // The activation blocks the workers cached go back to malloc, where the QDQ model and its serialization
  // can reuse them instead of adding to the peak.
  tensor_cache_trim();
  for (const auto& [in, out] : range_of) {
    if (auto t = c.types.find(out); t != c.types.end()) c.types.try_emplace(in, t->second);
    if (auto r = c.ranges.find(out); r != c.ranges.end()) c.ranges.try_emplace(in, r->second);
  }
  for (const auto& [name, axis] : req.channel_absmax)
    if (const auto* v = cal.channel_absmax(name)) c.channel_absmax[name] = *v;
  c.input_means = means.take();
  return c;
}

QuantizedModel build_qdq(const ir::Model& model, const QuantOptions& o, const Calibration& c,
                         const WeightParamsFn& weight_fn, WeightCache* cache) {
  validate_overrides(model.graph, o);
  QuantizedModel q;
  q.model = model;
  RangeMap ranges = c.ranges;
  adjust_ranges(q.model.graph, o, ranges);
  std::vector<BiasTarget> bc_targets;
  if (o.bias_correction && !c.input_means.empty()) bc_targets = bias_targets(model.graph);  // before annotate
  q.plan = annotate(q.model.graph, static_cast<int>(q.model.default_opset()), o, c.types, ranges);
  q.params = compute_params(q.model.graph, q.plan, o, ranges, &q.notes, weight_fn, cache);
  if (!bc_targets.empty()) {
    // Correct with the weights' parameters, then recompute the parameters (an Add constant's come from its
    // values; an int32 bias may enlarge its weight's scale); correct again where a weight's changed.
    auto correct = [&] {
      return correct_biases(q.model.graph, model.graph, bc_targets, q.params, q.notes.weight_values, c.input_means);
    };
    q.corrected_biases = correct();
    ParamMap first = q.params;
    q.notes = {};
    q.params = compute_params(q.model.graph, q.plan, o, ranges, &q.notes, weight_fn, cache);
    bool changed = false;
    for (const auto& t : bc_targets) {
      auto a = first.find(t.view.weight), b = q.params.find(t.view.weight);
      changed |= a != first.end() && b != q.params.end() && !same_quant_params(a->second, b->second);
    }
    if (changed) correct();
  }
  q.stats = write_qdq(q.model.graph, q.plan, q.params, &q.notes.weight_values, cache,
                      QdqLayout{o.add_qdq_pair_to_weight, o.dedicated_qdq_pair, o.use_qdq_contrib_ops},
                      &q.notes.converted);
  if (o.use_qdq_contrib_ops && q.model.opset_of("com.microsoft") == 0) q.model.opsets.push_back({"com.microsoft", 1});
  return q;
}

}  // namespace oq::quant
