// The default mode's quantization, shared by the modes that start from it (default, inspection): calibrate
// job.prepared on the quantization set with the config's parameters, build the QDQ model, save it.
#pragma once
#include <string>

#include "app.h"
#include "quant/quantizer.h"

namespace oq::app {

struct Baseline {
  quant::QuantizedModel q;
  std::string path;        // the saved QDQ model
  data::DatasetPtr data;   // the calibration set
  int64_t samples = 0;     // calibration samples used
};

// prepare_model must have run; `data` is calibration_data(job) (opened and checked by the caller, before
// anything runs). Logs the calibration and the written model; sets job.quantized_path.
Baseline quantize_baseline(Job& job, data::DatasetPtr data);

}  // namespace oq::app
