// Inspection of a quantized model: how well every quantized tensor survived quantization, as SNR in dB.
//
//   auto r = analysis::describe(prepared, q);          // every quantized tensor, in execution order
//   analysis::measure_weights(prepared, q, r);          // initializers: float vs (q − zp)·scale
//   analysis::measure_activations(prepared, q, data, batch, r);   // one streaming pass, two sessions
//
// `prepared` is the float model given to quant::build_qdq (its node indices are the plan's), `q` the result.
// Activations: per sample, the float model and the QDQ model run side by side; observers give
//   xmodel = float tensor t  vs  the QDQ model's t after its DequantizeLinear (error from everything upstream),
//   local  = the QDQ model's t before its QuantizeLinear vs after its DequantizeLinear (own quantization error).
// Relu/Clip nodes folded into their producer (quant::QuantPlan::renamed) are applied to the "before" value, so
// `local` measures rounding and saturation only. Sums are accumulated, never stored: memory is independent of
// the number of samples.
#pragma once
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/dataset.h"
#include "ir/graph.h"
#include "quant/quantizer.h"

namespace oq::analysis {

enum class TensorKind { Weight, Bias, Activation };
std::string_view to_string(TensorKind k);  // weight | bias | activation

struct NodeRef {
  std::string name, op_type;
};

// A Relu or Clip folded into the producer of a tensor: y = min(max(x, lo), hi).
struct FoldedOp {
  std::string op_type;
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
};

struct TensorInspection {
  std::string name;
  TensorKind kind = TensorKind::Activation;
  bool initializer = false;        // weights, biases and constant activation inputs
  bool activation_override = false;  // overridden through activations_tensor_override (else weights_...)
  NodeRef producer;                // float model; empty for initializers and graph inputs
  std::vector<NodeRef> consumers;  // float model
  Shape shape;                     // initializers: their shape; activations: as first observed
  DType qtype = DType::Int8;
  int axis = -1;                   // per-channel axis, -1 = per tensor
  int channel_axis = -1;           // weights: the consuming op's per-channel axis (for suggestions), else -1
  float scale_min = 0, scale_max = 0;
  int64_t zero_point_min = 0, zero_point_max = 0;
  std::string shares_params_with;  // activations reusing another tensor's parameters (root of the chain)
  std::vector<FoldedOp> folded;    // Relu/Clip folded into the producer
  double snr_db = std::nan("");         // initializers
  double snr_xmodel_db = std::nan("");  // activations
  double snr_local_db = std::nan("");   // activations
  // Activations: the share of the nonzero values (before QuantizeLinear) that dequantize to exactly 0 — a
  // scale set by a few huge values (an attention mask of -10 000) rounds the ordinary ones away while the
  // tensor's own SNR stays high.
  double zeroed_fraction = std::nan("");
  size_t exec_index = 0;           // position in execution order (0-based, over the listed tensors)

  // The number the log and the charts show: snr_db for initializers, snr_xmodel_db for activations.
  double snr() const { return initializer ? snr_db : snr_xmodel_db; }
  const char* granularity() const { return axis >= 0 ? "per_channel" : "per_tensor"; }
};

struct InspectionResult {
  std::vector<TensorInspection> tensors;  // execution order
  int64_t samples = 0;                    // samples the activations were measured on
};

// Lists every quantized tensor of `q` with its metadata (no SNR yet), in execution order of `prepared`:
// an initializer just before the first node reading it, an activation just after the node producing it.
InspectionResult describe(const ir::Model& prepared, const quant::QuantizedModel& q);

// Dequantized image (q − zp)·scale of a quantized tensor, computed in float as DequantizeLinear does;
// per tensor when scale has one element, else per slice along `axis` (negative counts from the end).
Tensor dequantize(const Tensor& q, const Tensor& scale, const Tensor& zero_point, int axis);

// SNR of every initializer of `r`, from the quantized initializers and DequantizeLinear nodes written into
// q.model, against the float initializer of the same name in `prepared`.
void measure_weights(const ir::Model& prepared, const quant::QuantizedModel& q, InspectionResult& r);

// xmodel and local SNR of every activation of `r` over all samples of `data` (batches of `batch_size`),
// with a progress bar.
void measure_activations(const ir::Model& prepared, const quant::QuantizedModel& q, const data::DatasetPtr& data,
                         int64_t batch_size, InspectionResult& r);

// Applies the folded ops in order, in place.
void apply_folded(const std::vector<FoldedOp>& ops, Tensor& t);

}  // namespace oq::analysis
