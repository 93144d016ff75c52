// Inspection reports: the ST-layout log section, inspection.json / .csv, tensor-override suggestions as YAML,
// and the self-contained HTML page (report_html.cc).
#pragma once
#include <string>
#include <vector>

#include "analysis/inspect.h"
#include "quant/options.h"

namespace oq::analysis {

// The run's settings, echoed in every report.
struct ReportSettings {
  std::string model_path;            // the float model given by the user
  std::string quantized_model_path;  // the QDQ model written
  std::vector<std::string> quantization_lines;  // config::describe_quantization
  double snr_threshold = 20.0;       // dB
  double inspection_split = 1.0;
  int64_t calibration_samples = 0;   // size of the quantization set
  int64_t batch_size = 1;
  int64_t target_opset = 21;
};

// ST's header, logged before quantization: "", "Baseline quantization with parameters specified in config
// file:", then the three describe_quantization lines.
std::vector<std::string> st_header_lines(const std::vector<std::string>& quantization_lines);
// ST's SNR section: "", "Baseline quantized model (config file parameters), SNR analysis (dB):",
// "Weights tensors SNR:", "<name>: <snr 3 decimals>" (initializers, worst first), "Activations tensors SNR:",
// the activations (xmodel SNR, worst first).
std::vector<std::string> st_snr_lines(const InspectionResult& r);

// Every tensor, worst first (ascending snr(), ties by name).
std::vector<const TensorInspection*> worst_first(const InspectionResult& r);

std::string to_json(const InspectionResult& r, const ReportSettings& s);
std::string to_csv(const InspectionResult& r);

// One suggested override: tensor name, which list it goes to, the suggested type and axis.
struct Suggestion {
  std::string tensor;
  bool activations = false;  // activations_tensor_override (else weights_tensor_override)
  DType qtype = DType::Int16;
  int axis = -1;             // weights: per-channel axis; -1 = none
  double snr = 0;            // the SNR that triggered it
};

// For every tensor below `threshold` dB (biases excepted): activations (and constant activation inputs)
// -> Int16 (nothing if already 16-bit); weights quantized per tensor or below 8 bits -> per-channel Int8 along
// the op's channel axis; per-channel 8-bit weights -> per-channel Int16. Activations sharing another tensor's
// parameters are suggested on that tensor (the one whose parameters are computed). Tensors already overridden
// in `o` are left to the existing entry.
// An activation whose nonzero values dequantize to 0 at least this often, and whose consumers' outputs are below
// the threshold, is suggested (16 bits) whatever its own SNR, ahead of the flagged tensors: its scale is set by
// a few huge values (an attention mask), the tensors after it are the ones flagged, and 16 bits on it is the
// repair.
inline constexpr double kZeroedSuggest = 0.5;
std::vector<Suggestion> suggest_overrides(const InspectionResult& r, double threshold, const quant::QuantOptions& o);

// YAML to paste under quantization.onnx_extra_options: the existing overrides of `o` followed by the
// suggestions, in ST's block list style (- ['name', {quant_type: Int8, axis: 0}]).
std::string overrides_yaml(const std::vector<Suggestion>& sug, const quant::QuantOptions& o, double threshold,
                           int64_t target_opset);

// The HTML page (bar chart in execution order, worst-20 table, the YAML snippet in <pre id="overrides-yaml">).
std::string to_html(const InspectionResult& r, const ReportSettings& s, const std::string& yaml);

}  // namespace oq::analysis
