// quantization.operating_mode: default — static QDQ quantization with the YAML parameters.
#include <filesystem>

#include "app.h"
#include "baseline.h"
#include "core/log.h"
#include "phase_log.h"
#include "quality.h"
#include "quant/overrides.h"

namespace fs = std::filesystem;

namespace oq::app {

static uint64_t file_size(const std::string& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

Baseline quantize_baseline(Job& job, data::DatasetPtr data) {
  OQ_INFO("QDQ models keep float inputs and outputs (quantization_input_type / quantization_output_type: {} / {})",
          config::to_string(job.cfg.quantization.input_type), config::to_string(job.cfg.quantization.output_type));
  Baseline b;
  PhaseLog phase;
  b.data = std::move(data);
  apply_float_rewrites(job, b.data);  // SmoothQuant (float outputs unchanged)
  quant::WeightParamsFn wfn = make_weight_fn(job, b.data);
  phase.done("calibration data and float rewrites");
  quant::CalibrationRequest req;
  req.options = calib_options(job.cfg);
  req.batch_size = job.cfg.dataset.batch_size;
  auto cal = quant::calibrate(job.prepared, job.qopts, b.data, req);
  b.samples = cal.samples;
  phase.done("calibration");
  OQ_INFO("Calibrated {} tensors on {} samples ({})", cal.ranges.size(), cal.samples,
          calib::calib_method_name(req.options.method));
  b.q = quant::build_qdq(job.prepared, job.qopts, cal, wfn);
  phase.done("building the QDQ model");
  b.q.model.producer_name = "onnxquant";
  b.q.model.producer_version = "0.1.0";
  uint64_t quantized_bytes = 0;  // the model file and its external data file (a model over 2 GiB has one)
  b.path = save_output(job, b.q.model, quantized_file_name(job), &quantized_bytes);
  phase.done("writing it");
  OQ_INFO("Quantized: {} QuantizeLinear and {} DequantizeLinear nodes", b.q.stats.q_nodes, b.q.stats.dq_nodes);
  quant::warn_unused_overrides(job.qopts, b.q.plan, job.prepared.graph, cal.types);
  if (b.q.stats.q_nodes + b.q.stats.dq_nodes == 0)
    OQ_WARN("nothing was quantized: no node of the model passed op_types_to_quantize / nodes_to_quantize / "
            "nodes_to_exclude (the written model is the float model)");
  if (job.qopts.bias_correction) OQ_INFO("Bias correction: {} biases corrected", b.q.corrected_biases);
  for (const auto& [kind, n] : b.q.stats.tensors_per_type) OQ_INFO("  {} tensors: {}", kind, n);
  uint64_t float_bytes = file_size(job.model_path);
  for (const auto& data : job.original.external_data_files) float_bytes += file_size(data);
  OQ_INFO("Model size: {} bytes (float) -> {} bytes (quantized)", float_bytes, quantized_bytes);
  OQ_INFO("Quantized model written to {}", b.path);
  job.quantized_path = b.path;
  return b;
}

int run_default_mode(Job& job) {
  prepare_model(job);
  check_outputs_replaceable({(fs::path(job.export_dir) / quantized_file_name(job)).string()});
  for (const auto& line : config::describe_quantization(job.cfg.quantization)) OQ_INFO("{}", line);
  quantize_baseline(job, calibration_data(job));
  return 0;
}

}  // namespace oq::app
