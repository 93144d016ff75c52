// The onnxquant command: the application layer that maps the typed config onto the core's options and runs
// the modes. Only this layer knows both config and core types.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "calib/calibrator.h"
#include "config/config.h"
#include "data/dataset.h"
#include "ir/graph.h"
#include "quant/options.h"

namespace oq::app {

// Config -> core options.
quant::QuantOptions quant_options(const config::Config& cfg);
// quantization.onnx_extra_options.TensorQuantOverrides as core overrides (quant::place_tensor_quant_overrides puts
// them in weight_overrides / activation_overrides once the model is loaded); nullopt: listed with an empty list.
std::map<std::string, std::optional<quant::TensorOverride>> tensor_quant_overrides(const config::Config& cfg);
calib::CalibOptions calib_options(const config::Config& cfg);
data::PreprocessOptions preprocess_options(const config::Config& cfg);
// Data set options for a path (quantization/test/...), with the config's selection and preprocessing.
data::DataOptions data_options(const config::Config& cfg, const std::string& path, double split);

// Everything a mode needs, prepared once: output folders, the float model (pre-processed, at target opset).
struct Job {
  config::Config cfg;
  std::string config_path;  // the config file (--config)
  std::string output_dir;
  std::string export_dir;  // <output_dir>/<export_dir>
  std::string model_path;
  std::string model_base;  // file name without .onnx
  ir::Model original;      // as loaded
  ir::Model prepared;      // pre-processed, converted to the target opset
  quant::QuantOptions qopts;
  std::string quantized_path;  // the model a quantization mode chose as its answer (for chain_qe)
  data::DatasetPtr eval_data;  // the evaluation set, once evaluation_data opened it
};

// Loads and prepares the model for quantization (pre-processing, opset conversion, checks).
void prepare_model(Job& job);

// onnx::load_model, then a Model error naming the file when the model imports an ai.onnx opset newer than the
// executor's (exec::kMaxOpset).
ir::Model load_runnable_model(const std::string& path);
// The calibration data set (quantization_path, else training_path, else 10 random samples with a warning),
// checked against a fixed batch dimension.
data::DatasetPtr calibration_data(const Job& job);
// The evaluation set (dataset.test_path, else validation_path) for model `m`, opened once per job and checked
// before anything runs: labels when `need_labels`, whole batches for a fixed batch dimension. prepare_model calls
// it for chain_qe, so that the test set is checked before calibration.
data::DatasetPtr evaluation_data(Job& job, const ir::Model& m, bool need_labels);
// Batch size for evaluation: dataset.batch_size when set above 1; otherwise 32 when every model input has a
// dynamic batch dimension (faster, same scores), else 1.
int64_t evaluation_batch_size(const config::Config& cfg, const ir::Model& m);
// Io error naming the path when `file_name` is longer than the file system allows in `dir` (NAME_MAX).
void check_output_name(const Job& job, const std::string& dir, const std::string& file_name);
// Saves a model atomically into the export dir; refuses to overwrite the input model. `bytes`, when given, gets
// what the written model takes on disk (the model file and its external data file, if one was written).
std::string save_output(const Job& job, const ir::Model& m, const std::string& file_name, uint64_t* bytes = nullptr);

// The run's input files that exist, each with what it is: the config file, model.model_path and (once the model is
// loaded) its external data files, the dataset paths that are files.
std::vector<std::pair<std::string, std::string>> input_files(const Job& job);
// A usage error when `out` (an output about to be written) is one of input_files(): inputs are never written.
void check_not_an_input(const Job& job, const std::string& out);
// Before the log `<output dir>/onnxquant.log` is opened (and truncated): refuses a file there that is an input
// (check_not_an_input), or any other file that is not an onnxquant log (the model's external data file, a
// user's file: nothing onnxquant did not write is overwritten).
// A log this user may not write (chmod a-w) is refused too (run_files::check_replaceable), naming it.
void check_log_target(const Job& job, const std::string& log_path);
// Before a mode writes anything: an Io error naming the first of `paths` (the outputs whose names are known then)
// that exists and this user may not write. Outputs named later (full_auto's attempts) are checked as they are
// written (run_files::create_temp_beside).
void check_outputs_replaceable(const std::vector<std::string>& paths);
// The default mode's model: <model base>_quant_qdq_pc.onnx (_pt per tensor), in the export folder.
std::string quantized_file_name(const Job& job);

// --threads N of a command (given: whether the option was on the command line): below 1 is a usage error naming
// --threads; above the machine's cores it is lowered to the cores (more workers cannot run at once, they would
// only hold more batches in memory), with a warning line in *note. Returns the value for set_num_threads.
int checked_threads(int threads, bool given, std::string* note);

int run_default_mode(Job& job);
int run_inspection_mode(Job& job);
int run_full_auto_mode(Job& job);
int run_evaluation(Job& job, const std::string& model_path);

// Parses a CLI11 app; returns -1 to go on, else the exit code (0 for --help, 2 for usage errors).
int parse_cli(CLI::App& cli, int argc, char** argv);

// Sub-commands.
int cmd_run(int argc, char** argv);
int cmd_eval(int argc, char** argv);

}  // namespace oq::app
