// Static QDQ quantization of a float model: calibrate (streamed, through executor observers), annotate,
// compute parameters, write Q/DQ. The float model given here is already pre-processed (src/ir/passes).
#pragma once
#include <memory>

#include "calib/calibrator.h"
#include "data/dataset.h"
#include "quant/bias_correction.h"
#include "ir/graph.h"
#include "quant/annotate.h"
#include "quant/options.h"
#include "quant/params.h"
#include "quant/qdq_writer.h"
#include "quant/weight_cache.h"

namespace oq::quant {

struct Calibration {
  RangeMap ranges;        // calibrated (before ORT's Relu/Clip/Softmax adjustments)
  TypeMap types;          // dtype of every tensor seen in the float run
  int64_t samples = 0;
  // Per-channel max|x| of tensors asked for (SmoothQuant), by tensor name.
  std::map<std::string, std::vector<float>> channel_absmax;
  // Input means of the bias-correction layers (QuantOptions::bias_correction), by weight name.
  InputMeansMap input_means;
};

struct CalibrationRequest {
  calib::CalibOptions options;
  int64_t batch_size = 1;
  // Extra tensors whose per-channel max|x| is wanted: name -> channel axis.
  std::map<std::string, int> channel_absmax;
};

// Runs the float model over the data set and measures the tensors the options will quantize.
Calibration calibrate(const ir::Model& model, const QuantOptions& o, const data::DatasetPtr& data,
                      const CalibrationRequest& req);

struct QuantizedModel {
  ir::Model model;
  QuantPlan plan;
  ParamMap params;
  WriteStats stats;
  ParamNotes notes;
  int corrected_biases = 0;  // QuantOptions::bias_correction
};

// Builds the QDQ model from a pre-processed float model and its calibration. Pure (no I/O). With
// o.bias_correction and c.input_means, the biases are corrected for the weights' final parameters.
QuantizedModel build_qdq(const ir::Model& model, const QuantOptions& o, const Calibration& c,
                         const WeightParamsFn& weight_fn = {}, WeightCache* cache = nullptr);

// Checks option/opset combinations: 4- and 16-bit types need opset 21, per-channel needs opset >= 13.
void check_opset_support(const QuantOptions& o, int opset);

}  // namespace oq::quant
