// Quality options of issue 8 on top of any quantization mode: float rewrites before calibration
// (cross-layer equalization, SmoothQuant), the weight quantizer (minmax / mse / gptq) and the
// measured-sensitivity ranking. Bias correction itself happens in quant::build_qdq (QuantOptions).
#pragma once
#include <string>
#include <vector>

#include "analysis/full_auto_report.h"
#include "app.h"
#include "quant/params.h"
#include "search/ranking.h"

namespace oq::app {

// Float rewrites on job.prepared (the float outputs do not change): cross-layer equalization
// (CrossLayerEqualization), zero biases where bias correction needs one (BiasCorrection), then SmoothQuant.
// Logs what it did; returns a tag for file names ("" or "_squant<alpha>").
std::string apply_float_rewrites(Job& job, const data::DatasetPtr& calib);

// The WeightParamsFn of onnx_extra_options.WeightQuantizer for job.prepared (empty for minmax; gptq streams the
// calibration data once for the Hessians).
quant::WeightParamsFn make_weight_fn(const Job& job, const data::DatasetPtr& calib);

// Re-ranks `ranked` by measured sensitivity (4-bit values from `wfn`, minmax when empty) of job.prepared (after
// the float rewrites) on the first `max_samples` samples of the calibration selection (dataset.seed's shuffled
// order, as calibration reads it; in batches of dataset.batch_size, the last one cut short; a fixed batch
// dimension b takes the largest multiple of b up to max_samples); logs each tensor's SNR and which samples, and
// fills `info`.
std::vector<search::RankedTensor> sensitivity_ranking(const Job& job, const std::vector<search::RankedTensor>& ranked,
                                                      const quant::WeightParamsFn& wfn,
                                                      const data::DatasetPtr& calib,
                                                      analysis::SensitivityReport* info = nullptr,
                                                      int64_t max_samples = 64);

}  // namespace oq::app
