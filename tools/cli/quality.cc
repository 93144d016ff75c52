#include "quality.h"

#include "core/log.h"
#include "data/loader.h"
#include "quant/annotate.h"
#include "quant/bias_correction.h"
#include "quant/cross_layer_eq.h"
#include "quant/overrides.h"
#include "quant/qparams.h"
#include "quant/smooth_quant.h"
#include "quant/weight_quantizers.h"
#include "search/sensitivity.h"

namespace oq::app {

std::string apply_float_rewrites(Job& job, const data::DatasetPtr& calib) {
  const auto& x = job.cfg.quantization.extra;
  if (x.cross_layer_equalization) {
    quant::CleOptions co;
    co.replace_relu6 = x.cross_layer_equalization_replace_relu6;
    auto r = quant::cross_layer_equalize(job.prepared, co);
    OQ_INFO("Cross-layer equalization: {} Conv pairs equalized in {} sweeps{}; {} Conv -> Clip -> Conv pairs left "
            "alone (Clip is not positive homogeneous){}", r.pairs, r.sweeps, r.converged ? "" : " (not converged)",
            r.clip_pairs,
            r.relu6_replaced ? fmt::format("; {} Clip(0, 6) replaced by Relu (CrossLayerEqualizationReplaceRelu6: "
                                           "the model now differs wherever those activations exceeded 6)",
                                           r.relu6_replaced)
                             : "");
  }
  if (x.bias_correction) {
    // The bias is corrected per built model (quant::build_qdq) from input means measured during calibration.
    int n = quant::add_zero_biases(job.prepared.graph);
    OQ_INFO("Bias correction: on; {} zero biases added to Conv/Gemm layers without one (or to a Gemm with beta 0)", n);
  }
  if (!x.smooth_quant) return "";
  quant::SmoothQuantOptions so;
  so.alpha = x.smooth_quant_alpha;
  so.folding = x.smooth_quant_folding;
  switch (x.smooth_quant_unfolded) {
    case config::SmoothQuantUnfolded::Mul: so.unfolded = quant::Unfolded::Mul; break;
    case config::SmoothQuantUnfolded::Conv: so.unfolded = quant::Unfolded::Conv; break;
    case config::SmoothQuantUnfolded::Skip: so.unfolded = quant::Unfolded::Skip; break;
  }
  // Only the layers quantization quantizes: one the user keeps in float (nodes_to_exclude, nodes_to_quantize,
  // op_types_to_quantize) is neither smoothed nor given a division.
  so.selected = [&job](const ir::Node& n) { return quant::should_quantize_node(n, job.qopts); };
  auto rep = quant::apply_smooth_quant(job.prepared, calib, std::max<int64_t>(job.cfg.dataset.batch_size, 1), so);
  job.qopts.channel_constants.insert(rep.inv_scales.begin(), rep.inv_scales.end());
  // The overrides of tensors SmoothQuant creates (prepare_model let them through): checked now, before calibration.
  quant::validate_overrides(job.prepared.graph, job.qopts);
  return fmt::format("_squant{}", x.smooth_quant_alpha);
}

quant::WeightParamsFn make_weight_fn(const Job& job, const data::DatasetPtr& calib) {
  quant::WeightQuantizerOptions o;
  switch (job.cfg.quantization.extra.weight_quantizer) {
    case config::WeightQuantizer::MinMax: return {};
    case config::WeightQuantizer::Mse: o.kind = quant::WeightQuantizerKind::Mse; break;
    case config::WeightQuantizer::Gptq: o.kind = quant::WeightQuantizerKind::Gptq; break;
  }
  std::shared_ptr<quant::HessianSource> hs;
  if (o.kind == quant::WeightQuantizerKind::Gptq)
    hs = std::make_shared<quant::HessianSource>(
        job.prepared, calib, std::max<int64_t>(job.cfg.dataset.batch_size, 1),
        static_cast<size_t>(job.cfg.quantization.extra.gptq_hessian_budget_mib * (1 << 20)));
  OQ_INFO("Weight quantizer: {}", config::to_string(job.cfg.quantization.extra.weight_quantizer));
  return quant::make_weight_quantizer(o, hs);
}

std::vector<search::RankedTensor> sensitivity_ranking(const Job& job, const std::vector<search::RankedTensor>& ranked,
                                                      const quant::WeightParamsFn& wfn,
                                                      const data::DatasetPtr& calib,
                                                      analysis::SensitivityReport* info, int64_t max_samples) {
  // Exactly the first max_samples samples, whatever the batch size (the last batch is cut short); with a fixed
  // batch dimension b, the largest multiple of b up to max_samples (at least one batch: the calibration set is a
  // whole number of batches).
  int64_t k = std::min(max_samples, calib->size());
  if (const auto fixed = data::fixed_batch_dim(data::input_specs(job.prepared.graph)); fixed && *fixed > 1)
    k = std::min(calib->size(), std::max(*fixed, k / *fixed * *fixed));
  const data::DatasetPtr subset = data::first_n(calib, k);
  std::vector<search::Feeds> feeds;
  std::vector<int64_t> used;
  data::Loader loader(subset, data::LoaderOptions{std::max<int64_t>(job.cfg.dataset.batch_size, 1), 0, 0});
  data::Batch b;
  int64_t n = 0;
  while (loader.next(b)) {
    feeds.push_back(b.inputs);
    used.insert(used.end(), b.indices.begin(), b.indices.end());
    n += static_cast<int64_t>(b.indices.size());
  }
  auto w4 = [&](const search::RankedTensor& t) {
    const Tensor& w = job.prepared.graph.find_initializer(t.name)->tensor;
    int axis = job.qopts.per_channel ? t.axis : -1;
    bool sym = axis >= 0 || job.qopts.weight_symmetric;
    exec::QuantParams p = quant::weight_params(w, DType::Int4, sym, axis, false, job.qopts.min_real_range);
    if (!wfn) return quant::weight_fake_quant(w, p);
    quant::WeightChoice c = wfn(t.name, w, {p, sym, false, job.qopts.min_real_range});
    return c.values.dtype() != DType::Undefined ? c.values : quant::weight_fake_quant(w, c.params);
  };
  auto snr = search::weight_sensitivity(job.prepared, ranked, w4, feeds);
  auto out = search::rank_by_sensitivity(ranked, snr);
  OQ_INFO("Sensitivity ranking on the first {} calibration samples in dataset.seed order ({}); output SNR with only "
          "that weight in Int4:", n, calib->samples_name(used));
  for (size_t i = 0; i < ranked.size(); ++i) OQ_INFO("  {}: {:.2f} dB ({} weights)", ranked[i].name, snr[i], ranked[i].weights);
  if (info) {
    info->samples.clear();
    for (int64_t i : used) info->samples.push_back(calib->sample_name(i));
    info->snr_db.clear();
    for (size_t i = 0; i < ranked.size(); ++i) info->snr_db.emplace_back(ranked[i].name, snr[i]);
  }
  return out;
}

}  // namespace oq::app
