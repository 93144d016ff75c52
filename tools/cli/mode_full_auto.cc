// quantization.operating_mode: full_auto — as many weight tensors as possible in Int4, the rest in Int8,
// within accuracy_tolerance of the all-8-bit model (ST's algorithm: static ranking + bisection).
#include <filesystem>

#include "analysis/full_auto_report.h"
#include "analysis/precision.h"
#include "app.h"
#include "core/log.h"
#include "core/run_files.h"
#include "data/loader.h"
#include "data/npy.h"
#include "evaluator_command.h"
#include "onnx/model_io.h"
#include "quality.h"
#include "quant/quantizer.h"
#include "run_guard.h"
#include "search/bisection.h"
#include "search/evaluator.h"
#include "search/greedy.h"
#include "search/passes.h"
#include "search/ranking.h"

namespace fs = std::filesystem;

namespace oq::app {

namespace {

std::string metric_name(config::Metric m, bool labels) {
  switch (m) {
    case config::Metric::Auto: return labels ? "top1" : "agreement";
    case config::Metric::Top1: return "top1";
    case config::Metric::Agreement: return "agreement";
    case config::Metric::OutputSnr: return "output_snr";
    case config::Metric::EvaluatorCommand: return "evaluator_command";
  }
  return "top1";
}

std::string pct2(double v) { return fmt::format("{:.2f}", v); }

}  // namespace

int run_full_auto_mode(Job& job) {
  const auto& cfg = job.cfg;
  const auto& it = cfg.quantization.iterative;
  // Int8 weights and activations, target_opset 21 and an evaluation set are checked at load (config/rules.cc).

  // 1. The folded float model.
  prepare_model(job);
  std::string tag = job.model_base + "_qdq";
  if (cfg.quantization.extra.smooth_quant) tag += fmt::format("_squant{}", cfg.quantization.extra.smooth_quant_alpha);
  const std::string folded = (fs::path(job.output_dir) / (job.model_base + "_folded.onnx")).string();
  check_outputs_replaceable({folded, (fs::path(job.export_dir) / (tag + ".onnx")).string(),
                             (fs::path(job.output_dir) / "full_auto.json").string(),
                             (fs::path(job.output_dir) / "full_auto.html").string()});
  // Every data set the run uses is opened and checked before anything runs: the evaluation set (metric, labels,
  // fixed batch), then the calibration set.
  auto eval_ds = evaluation_data(job, job.prepared, false);
  std::string metric = metric_name(it.metric, eval_ds->has_labels());
  if (metric == "top1" && !eval_ds->has_labels())
    fail(ErrorKind::Config, "iterative_quant_parameters.metric: top1 needs labels, but {} has none (use agreement)",
         eval_ds->describe());
  auto calib = calibration_data(job);
  check_output_name(job, job.output_dir, job.model_base + "_folded.onnx");
  check_not_an_input(job, folded);
  onnx::save_model(job.prepared, folded);
  OQ_INFO("Step 1: BatchNormalization folded; float model saved as {}", folded);
  // Float rewrites (SmoothQuant) and the weight quantizer, from the calibration data.
  // The float reference (step 2) is the model before the float rewrites: SmoothQuant and CLE keep its function,
  // but CrossLayerEqualizationReplaceRelu6 does not, and the scores must say how far the user's model moved.
  const ir::Model float_model = job.prepared;
  apply_float_rewrites(job, calib);
  quant::WeightParamsFn wfn = make_weight_fn(job, calib);
  quant::WeightCache wcache;  // each weight is quantized at most once per bit width across all attempts

  search::EvalOptions ev;
  ev.batch_size = std::max<int64_t>(cfg.dataset.batch_size, 1);
  ev.metric = metric == "agreement" ? search::MetricKind::Agreement
              : metric == "output_snr" ? search::MetricKind::OutputSnr : search::MetricKind::Top1;
  OQ_INFO("Evaluation data: {} — metric {}", eval_ds->describe(), metric);

  // 2. Float model.
  exec::Session float_session(float_model);
  search::Reference ref;
  bool need_ref = metric == "agreement" || metric == "output_snr";
  if (need_ref) {
    ref = search::compute_reference(float_session, eval_ds, ev);
    ev.warn_non_finite = false;  // NaN / infinite inputs are named once, by the first pass over the data
  }
  auto score_model = [&](const ir::Model& m, const std::string& label) {
    if (metric == "evaluator_command") {
      std::string tmp = (fs::path(job.output_dir) / (".candidate_" + label + ".onnx")).string();
      onnx::SaveOptions transient;
      transient.transient = true;  // locked while it exists: another run's clean-up of left-overs skips it
      onnx::save_model(m, tmp, transient);
      double s = run_evaluator_command(it.evaluator_command, tmp);
      run_files::remove_output(tmp);
      return s;
    }
    exec::Session s(m);
    ev.progress_label = label;
    return search::evaluate(s, eval_ds, ev, need_ref ? &ref : nullptr);
  };
  std::optional<double> float_score;  // none for output_snr: the float model is the reference itself
  if (metric == "evaluator_command")
    float_score = score_model(float_model, "float");
  else if (metric != "output_snr")
    float_score = search::evaluate(float_session, eval_ds, ev, need_ref ? &ref : nullptr);
  ev.warn_non_finite = false;
  if (float_score)
    OQ_INFO("Step 2: float model {}: {:.2f}", metric, *float_score);
  else
    OQ_INFO("Step 2: float model outputs on {} samples computed: the reference of output_snr", ref.samples);

  // 3. The 8-bit reference (calibrated once: activation ranges do not change between attempts).
  quant::CalibrationRequest req;
  req.options = calib_options(cfg);
  req.batch_size = cfg.dataset.batch_size;
  auto cal = quant::calibrate(job.prepared, job.qopts, calib, req);
  {
    // Attempt files of an earlier run into the same folder would read as this run's answers.
    size_t stale = 0;
    std::error_code ec;
    for (fs::directory_iterator it(job.export_dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string f = it->path().filename().string();
      stale += f.starts_with(tag + "_w4_") && f.ends_with(".onnx");
    }
    if (stale)
      OQ_WARN("{} holds {} attempt file(s) {}_w4_*.onnx from an earlier run; they are kept, and may not pass this "
              "run's tolerance (use a fresh output directory)", job.export_dir, stale, tag);
  }
  auto q8 = quant::build_qdq(job.prepared, job.qopts, cal, wfn, &wcache);
  // Bit widths are counted from each model built (what its file holds): user overrides to 16 bits (or
  // activations to 4 / 16) are named as such, not as 8-bit.
  const analysis::PrecisionCounts q8_bits = analysis::count_precision(q8.model.graph);
  double ref_score = score_model(q8.model, "int8");
  std::string int8_file = save_output(job, q8.model, tag + ".onnx");
  OQ_INFO("Step 3: 8-bit reference {}: {:.2f} — {}", metric, ref_score, int8_file);
  if (!q8_bits.st_only()) OQ_INFO("8-bit reference bit widths: {}", analysis::precision_summary(q8_bits));
  if (job.qopts.bias_correction)
    OQ_INFO("Bias correction: {} biases corrected in each model built (for its weights' final parameters)",
            q8.corrected_biases);
  double tol = it.accuracy_tolerance;
  const bool relative = it.tolerance_mode == config::ToleranceMode::Relative;
  double threshold = relative ? ref_score - std::abs(ref_score) * tol / 100.0 : ref_score - tol;
  // What the log says of it: the threshold used, and how it came from the tolerance.
  const std::string tolerance_text =
      relative ? fmt::format("tolerance {:.2f} % of |{:.2f}|: threshold {:.2f}", tol, ref_score, threshold)
               : fmt::format("tolerance {:.2f}: threshold {:.2f}", tol, threshold);

  // 5. Ranking (done before step 4 since the all-Int4 model is built from it).
  auto ranked = search::rank_weights(job.prepared.graph, ir::topological_order(job.prepared.graph),
                                     [&](const ir::Node& n) { return quant::should_quantize_node(n, job.qopts); });
  std::erase_if(ranked, [&](const search::RankedTensor& t) { return job.qopts.weight_overrides.count(t.name) > 0; });
  // A candidate's 4-bit image (attempts and sensitivity) takes the axis of its 8-bit image: per tensor when that is
  // (granularity per_tensor, a 1-D MatMul weight), QDQOpTypePerChannelSupportToAxis's axis for a MatMul. The axis
  // rank_weights derives from the op type gave a 1-D weight one 4-bit scale per element.
  for (auto& t : ranked) {
    const auto p = q8.params.find(t.name);
    t.axis = p != q8.params.end() ? p->second.axis : -1;
  }
  std::optional<analysis::SensitivityReport> sens;
  if (it.ranking == config::Ranking::Sensitivity) ranked = sensitivity_ranking(job, ranked, wfn, calib, &sens.emplace());
  const int64_t N = static_cast<int64_t>(ranked.size());
  // The shares (file names, log, reports) are over every constant the model stores quantized (not only the
  // candidates: embedding tables, normalization scales and Add constants count too), int32 biases excepted,
  // counted in each model built (analysis/precision.h); weights the user put in 4 or 16 bits count as such in every
  // attempt. Constants of nodes left in float (nodes_to_quantize, nodes_to_exclude, op_types_to_quantize) are in
  // no share.
  const int64_t total = q8_bits.weight_total();
  // A configuration: per ranked tensor, kept in Int8 (bisection: the n lowest-ranked).
  using Flags = std::vector<bool>;
  auto prefix = [&](int64_t n_int8) {
    Flags f(static_cast<size_t>(N), false);
    for (int64_t i = N - n_int8; i < N; ++i) f[static_cast<size_t>(i)] = true;
    return f;
  };
  auto options_for_set = [&](const Flags& f) {
    quant::QuantOptions o = job.qopts;
    for (int64_t i = 0; i < N; ++i) {
      if (f[static_cast<size_t>(i)]) continue;
      quant::TensorOverride ov;
      ov.qtype = DType::Int4;
      ov.source = quant::OverrideSource::FullAuto;  // not the user's weights_tensor_override
      if (ranked[i].axis >= 0) ov.axis = ranked[i].axis;  // none: per tensor
      o.weight_overrides[ranked[i].name] = ov;
    }
    return o;
  };
  auto options_for = [&](int64_t n_int8) { return options_for_set(prefix(n_int8)); };
  // The log lines of an attempt's widths: ST's 8-bit ratio line, then every width when there are others.
  auto log_widths = [&](const analysis::PrecisionCounts& c) {
    log::raw(fmt::format("In this quantization attempt we have {} weights in QInt8 over a total of {} weights so a "
                         "ratio of {:.2f} %", c.weights_of(8), c.weight_total(), c.weight_percent(8)));
    if (!c.st_only()) log::raw("In this quantization attempt, by bit width: " + analysis::precision_summary(c));
  };
  auto file_name = [&](const analysis::PrecisionCounts& c, double score) {
    return fmt::format("{}{}_acc_{}.onnx", tag, analysis::precision_name(c), pct2(score));
  };

  // 4. Every ranked weight in Int4.
  auto q4 = quant::build_qdq(job.prepared, options_for(0), cal, wfn, &wcache);
  std::map<int64_t, analysis::PrecisionCounts> widths;  // per bisection n
  widths[0] = analysis::count_precision(q4.model.graph);
  double int4_score = score_model(q4.model, "int4");
  OQ_INFO("Step 4: all {} weight tensors in Int4: {} {:.2f}", N, metric, int4_score);

  log::raw("Model layers scores (layer name, layer type, number of weights, number of weights per output scale):");
  for (const auto& t : ranked) log::raw(fmt::format("{}: {}, {}, {}", t.name, t.op_type, t.weights, t.per_scale));

  // 6. Bisection.
  analysis::FullAutoReport rep;
  rep.model = job.model_path;
  rep.metric = metric;
  rep.unit = metric == "output_snr" ? " dB" : (metric == "evaluator_command" ? "" : "%");
  rep.tolerance = tol;
  rep.tolerance_mode = std::string(config::to_string(it.tolerance_mode));
  rep.threshold = threshold;
  rep.float_score = float_score;
  rep.int8_score = ref_score;
  rep.int4_score = int4_score;
  rep.int8_file = int8_file;
  rep.int8_bits = q8_bits;
  rep.n_tensors = N;
  rep.quantized_weights = total;
  for (const auto& t : ranked) rep.ranked_weights += t.weights;
  for (const auto& t : ranked) rep.ranking.push_back(t.name);
  rep.sensitivity = std::move(sens);
  std::map<int64_t, ir::Model> models;  // attempts kept until the walk decides to write them
  models[0] = std::move(q4.model);
  auto int8_names = [&](int64_t n) {
    std::vector<std::string> v;
    for (int64_t i = N - n; i < N; ++i) v.push_back(ranked[i].name);
    return v;
  };
  std::map<int64_t, std::string> written;
  auto evaluate_n = [&](int64_t n) {
    auto names = int8_names(n);
    std::string list;
    for (const auto& s : names) list += (list.empty() ? "" : ", ") + s;
    log::raw(fmt::format("New quantization with updated bit-widths for {} / {} selected weights in QInt8: {}", n, N, list));
    auto q = quant::build_qdq(job.prepared, options_for(n), cal, wfn, &wcache);
    // The same denominator as the file name's shares: every quantized constant, the ranked ones and those outside
    // the ranking (e.g. SmoothQuant's 1/s).
    const auto& c = widths[n] = analysis::count_precision(q.model.graph);
    log_widths(c);
    double s = score_model(q.model, fmt::format("n={}", n));
    OQ_INFO("Attempt with {} / {} tensors in Int8 ({:.2f}% of weights in 4 bits): {} {:.2f} — {}", n, N,
            c.weight_percent(4), metric, s, search::passes(s, threshold) ? "passed" : "failed");
    models[n] = std::move(q.model);
    return s;
  };
  auto on_write = [&](const search::Attempt& a) {
    const std::string name = file_name(widths.at(a.n_int8), a.score);
    // ST's names round the shares to 2 decimals: two attempts with the same score can share one when the tensors
    // between them hold < 0.005 % of the parameters. The one with fewer Int8 tensors keeps the file (the answer's
    // file is always the answer), the other's `file` stays empty.
    for (auto w = written.begin(); w != written.end(); ++w) {
      if (fs::path(w->second).filename() != name) continue;
      const int64_t keep = std::min(w->first, a.n_int8), drop = std::max(w->first, a.n_int8);
      OQ_WARN("Attempts with {} and {} tensors in Int8 have the same file name {}: it holds the one with {}", keep,
              drop, name, keep);
      if (w->first < a.n_int8) return;
      written.erase(w);
      break;
    }
    written[a.n_int8] = save_output(job, models.at(a.n_int8), name);
    OQ_INFO("Written {}", written[a.n_int8]);
  };
  if (it.search == config::SearchStrategy::Greedy) {
    // Greedy: the answer is always the last passing attempt, so only its model is kept. The all-Int8 set is the
    // 8-bit reference: greedy_walk takes its score, never rebuilds nor answers it (as the bisection).
    ir::Model best = models.at(0);
    std::map<Flags, std::pair<uint64_t, analysis::PrecisionCounts>> measured;  // model bytes and widths per set
    measured[prefix(0)] = {onnx::serialize_model(models.at(0)).size(), widths.at(0)};
    measured[prefix(N)] = {onnx::serialize_model(q8.model).size(), q8_bits};
    size_t k = 0;
    auto evaluate_set = [&](const Flags& f) {
      auto q = quant::build_qdq(job.prepared, options_for_set(f), cal, wfn, &wcache);
      const auto c = analysis::count_precision(q.model.graph);
      double s = score_model(q.model, fmt::format("greedy {}", ++k));
      measured[f] = {onnx::serialize_model(q.model).size(), c};
      const bool passed = search::passes(s, threshold);
      OQ_INFO("Greedy attempt {}: {} / {} tensors in Int8 ({:.2f}% of weights in 4 bits): {} {:.2f} — {}", k,
              std::count(f.begin(), f.end(), true), N, c.weight_percent(4), metric, s, passed ? "passed" : "failed");
      if (passed) best = std::move(q.model);
      return s;
    };
    auto g = search::greedy_walk(N, int4_score, threshold, evaluate_set, ref_score);
    for (const auto& a : g.attempts) {
      analysis::FullAutoAttempt fa;
      for (int64_t i = 0; i < N; ++i)
        if (a.int8[static_cast<size_t>(i)]) fa.int8_tensors.push_back(ranked[i].name);
      fa.n_int8 = static_cast<int64_t>(fa.int8_tensors.size());
      const auto& [bytes, c] = measured.at(a.int8);
      fa.bits = c;
      fa.w4_percent = c.weight_percent(4);
      fa.model_bytes = bytes;
      fa.score = a.score;
      fa.passed = a.passed;
      rep.attempts.push_back(std::move(fa));
    }
    if (g.answer) {
      auto& a = rep.attempts[*g.answer];
      a.file = save_output(job, best, file_name(a.bits, a.score));
      OQ_INFO("Written {}", a.file);
    }
    rep.answer = g.answer;
  } else {
    models[N] = q8.model;  // n = N is the 8-bit reference: never re-evaluated nor written as an attempt
    widths[N] = q8_bits;
    auto walk = search::bisection_walk(N, int4_score, threshold, evaluate_n, on_write, ref_score);
    for (const auto& a : walk.attempts) {
      analysis::FullAutoAttempt fa;
      fa.n_int8 = a.n_int8;
      fa.int8_tensors = int8_names(a.n_int8);
      fa.bits = widths.at(a.n_int8);
      fa.w4_percent = fa.bits.weight_percent(4);
      fa.model_bytes = onnx::serialize_model(models.at(a.n_int8)).size();
      fa.score = a.score;
      fa.passed = a.passed;
      if (written.count(a.n_int8)) fa.file = written[a.n_int8];
      rep.attempts.push_back(std::move(fa));
    }
    rep.answer = walk.answer;
  }
  const std::string json = (fs::path(job.output_dir) / "full_auto.json").string(),
                    html = (fs::path(job.output_dir) / "full_auto.html").string();
  check_not_an_input(job, json);
  check_not_an_input(job, html);
  data::write_file_atomic(json, analysis::full_auto_json(rep));
  data::write_file_atomic(html, analysis::full_auto_html(rep));
  if (rep.answer) {
    const auto& a = rep.attempts[*rep.answer];
    job.quantized_path = a.file;
    OQ_INFO("Answer: {} / {} weight tensors in Int8, {:.2f}% of weight parameters in 4 bits, {} {:.2f} (8-bit {:.2f}, "
            "{}) — {}", a.n_int8, N, a.w4_percent, metric, a.score, ref_score, tolerance_text, a.file);
    if (!a.bits.st_only()) OQ_INFO("Answer bit widths: {}", analysis::precision_summary(a.bits));
  } else {
    job.quantized_path = int8_file;
    OQ_WARN("No mixed-precision attempt stayed within the tolerance (8-bit {:.2f}, {}): the answer is the 8-bit "
            "reference {}", ref_score, tolerance_text, int8_file);
  }
  OQ_INFO("Reports: {} and {}", (fs::path(job.output_dir) / "full_auto.json").string(),
          (fs::path(job.output_dir) / "full_auto.html").string());
  return 0;
}

}  // namespace oq::app
