// quantization.operating_mode: inspection — quantize as the default mode does, then measure the SNR of every
// quantized tensor (src/analysis) and write the ST-layout log section, inspection.json/.csv/.html.
#include <filesystem>

#include "analysis/inspect.h"
#include "analysis/report.h"
#include "app.h"
#include "baseline.h"
#include "core/log.h"
#include "data/loader.h"
#include "data/npy.h"

namespace fs = std::filesystem;

namespace oq::app {

int run_inspection_mode(Job& job) {
  prepare_model(job);
  const fs::path dir(job.output_dir);
  const std::string json = (dir / "inspection.json").string(), csv = (dir / "inspection.csv").string(),
                    html = (dir / "inspection.html").string();
  check_outputs_replaceable({(fs::path(job.export_dir) / quantized_file_name(job)).string(), json, csv, html});
  const auto& qc = job.cfg.quantization;
  const auto desc = config::describe_quantization(qc);
  for (const auto& l : analysis::st_header_lines(desc)) log::raw(l);
  // The inspected subset: the first max(1, floor(n * inspection_split)) of the n calibration samples (those the
  // run uses: undecodable images skipped by dataset.skip_bad_files are not among them), checked against a fixed
  // batch dimension with the calibration set, before calibration.
  auto calib = calibration_data(job);
  const double split = qc.iterative.inspection_split;
  const int64_t total = calib->size();
  auto subset = data::first_n(calib, data::split_count(total, split));
  data::check_fixed_batch(data::input_specs(job.prepared.graph), *subset, job.cfg.dataset.batch_size,
                          "dataset.batch_size", [&](int64_t b, int64_t) {
                            // total is a multiple of b (the calibration set passed the same check)
                            const int64_t m = std::max(b, subset->size() / b * b);
                            return fmt::format("set quantization.iterative_quant_parameters.inspection_split: {} ({} "
                                               "of the {} calibration samples)", data::split_keeping(total, m), m,
                                               total);
                          });
  Baseline b = quantize_baseline(job, calib);

  auto r = analysis::describe(job.prepared, b.q);
  OQ_INFO("Inspection: SNR of {} quantized tensors; activations on the first {} of {} calibration samples "
          "(inspection_split {})",
          r.tensors.size(), subset->size(), total, split);
  analysis::measure_weights(job.prepared, b.q, r);
  analysis::measure_activations(job.prepared, b.q, subset, job.cfg.dataset.batch_size, r);
  for (const auto& l : analysis::st_snr_lines(r)) log::raw(l);

  analysis::ReportSettings s;
  s.model_path = job.model_path;
  s.quantized_model_path = b.path;
  s.quantization_lines = desc;
  s.snr_threshold = qc.iterative.snr_threshold;
  s.inspection_split = split;
  s.calibration_samples = total;
  s.batch_size = job.cfg.dataset.batch_size;
  s.target_opset = job.prepared.default_opset();
  auto sug = analysis::suggest_overrides(r, s.snr_threshold, job.qopts);
  std::string yaml = analysis::overrides_yaml(sug, job.qopts, s.snr_threshold, s.target_opset);

  for (const auto& f : {json, csv, html}) check_not_an_input(job, f);
  data::write_file_atomic(json, analysis::to_json(r, s));
  data::write_file_atomic(csv, analysis::to_csv(r));
  data::write_file_atomic(html, analysis::to_html(r, s, yaml));

  size_t below = 0;
  for (const auto& t : r.tensors) below += t.snr() < s.snr_threshold;
  OQ_INFO("{} of {} tensors are below {} dB; {} override(s) suggested in {}", below, r.tensors.size(),
          s.snr_threshold, sug.size(), html);
  OQ_INFO("Inspection reports: {}, {}, {}", json, csv, html);
  return 0;
}

}  // namespace oq::app
