// quantization.operating_mode: default — static QDQ quantization with the YAML parameters.
#include <filesystem>

#include "app.h"
#include "core/log.h"
#include "quant/quantizer.h"

namespace fs = std::filesystem;

namespace oq::app {

static uint64_t file_size(const std::string& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

int run_default_mode(Job& job) {
  prepare_model(job);
  for (const auto& line : config::describe_quantization(job.cfg.quantization)) OQ_INFO("{}", line);
  OQ_INFO("QDQ models keep float inputs and outputs (quantization_input_type / quantization_output_type: {} / {})",
          config::to_string(job.cfg.quantization.input_type), config::to_string(job.cfg.quantization.output_type));
  auto data = calibration_data(job);
  quant::CalibrationRequest req;
  req.options = calib_options(job.cfg);
  req.batch_size = job.cfg.dataset.batch_size;
  auto cal = quant::calibrate(job.prepared, job.qopts, data, req);
  OQ_INFO("Calibrated {} tensors on {} samples ({})", cal.ranges.size(), cal.samples,
          calib::calib_method_name(req.options.method));
  auto q = quant::build_qdq(job.prepared, job.qopts, cal);
  q.model.producer_name = "onnxquant";
  q.model.producer_version = "0.1.0";
  std::string suffix = job.qopts.per_channel ? "_quant_qdq_pc.onnx" : "_quant_qdq_pt.onnx";
  std::string out = save_output(job, q.model, job.model_base + suffix);
  OQ_INFO("Quantized: {} QuantizeLinear and {} DequantizeLinear nodes", q.stats.q_nodes, q.stats.dq_nodes);
  for (const auto& [kind, n] : q.stats.tensors_per_type) OQ_INFO("  {} tensors: {}", kind, n);
  OQ_INFO("Model size: {} bytes (float) -> {} bytes (quantized)", file_size(job.model_path), file_size(out));
  OQ_INFO("Quantized model written to {}", out);
  job.quantized_path = out;
  return 0;
}

}  // namespace oq::app
