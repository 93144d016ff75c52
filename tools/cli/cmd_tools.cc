// Sub-commands `run` and `eval`, and the `evaluation` operation mode.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>

#include "app.h"
#include "rollback.h"
#include "core/log.h"
#include "core/names.h"
#include "core/parallel.h"
#include "core/run_files.h"
#include "data/array_dataset.h"
#include "data/loader.h"
#include "data/npy.h"
#include "onnx/model_io.h"
#include "rollback.h"
#include "run_guard.h"
#include "search/evaluator.h"

namespace fs = std::filesystem;

namespace oq::app {

int parse_cli(CLI::App& cli, int argc, char** argv) {
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);  // --help
    spdlog::error("{} (see --help)", escape_controls(e.what()));  // usage errors are one line, like every other
    return 2;
  }
  return -1;
}

static std::string safe_name(const std::string& n) {
  std::string r = n;
  for (char& c : r)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  return r;
}

// An --input file's tensor; `name`: the name it is given in messages (a .pb file's tensor name, else the file).
static Tensor read_input_file(const std::string& file, std::string* name) {
  std::string ext = fs::path(file).extension().string();
  *name = file;
  if (ext == ".pb") {
    Tensor t = onnx::load_tensor_pb(file, name);
    if (name->empty()) *name = file;
    return t;
  }
  if (ext == ".npy") return data::NpyArray::open(file).tensor();
  fail(ErrorKind::Usage, "--input '{}': expected a .npy or .pb file", file);
}

// All or nothing (docs/reliability.md): every output is written to a registered temporary file beside it
// (NAME.tmp-XXXXXX) and renamed into place only once all are written, so a failed write replaces no file that was
// there; on any error (or a signal) the rollback removes what the run created (temporaries, outputs already
// renamed into place where no file was, `dir` if the run made it).
static void write_outputs(const std::string& dir, const std::vector<std::string>& paths,
                          const std::vector<Tensor>& outs) {
  set_output_folder(dir, "");
  try {
    std::error_code ec;
    run_files::create_dirs(dir, ec);
    if (ec) fail(ErrorKind::Io, "cannot create output folder '{}': {}", dir, ec.message());
    std::vector<std::string> staged;  // registered temporaries: a failure or a signal removes them
    for (size_t i = 0; i < outs.size(); ++i) {
      try {
        staged.push_back(data::write_temp_beside(paths[i], data::npy_bytes(outs[i])));
      } catch (const Error& e) {
        fail(e.kind(), "cannot write output '{}': {}", paths[i], e.what());
      }
    }
    for (size_t i = 0; i < outs.size(); ++i) data::commit_beside(staged[i], paths[i]);
  } catch (...) {
    roll_back("written before the error");
    throw;
  }
}

int cmd_run(int argc, char** argv) {
  CLI::App cli{"onnxquant run: run a model on inputs and write its outputs as .npy"};
  std::string model, out_dir;
  std::vector<std::string> inputs;
  int threads = 0;
  cli.add_option("model", model, "ONNX model")->required();
  cli.add_option("--input", inputs, "[NAME=]FILE (.npy or .pb), once per input")->required();
  cli.add_option("--output-dir", out_dir, "where to write <output>.npy")->required();
  cli.add_option("--threads", threads, "threads (default: all cores)");
  if (int rc = parse_cli(cli, argc, argv); rc >= 0) return rc;
  std::string note;
  set_num_threads(checked_threads(threads, cli.count("--threads") > 0, &note));
  if (!note.empty()) OQ_WARN("{}", note);
  ir::Model m = load_runnable_model(model);
  exec::Session s(m);
  auto real = m.graph.real_inputs();
  struct Feed {
    std::string spec, name, file;
  };
  std::vector<Feed> specs;
  std::map<std::string, std::string> given_by;  // input name -> the --input that feeds it
  for (size_t i = 0; i < inputs.size(); ++i) {
    Feed f{inputs[i], "", inputs[i]};
    if (auto eq = f.spec.find('='); eq != std::string::npos) {
      f.name = f.spec.substr(0, eq);
      f.file = f.spec.substr(eq + 1);
      std::vector<std::string> names;
      for (const auto* r : real) names.push_back(r->name);
      if (std::find(names.begin(), names.end(), f.name) == names.end())
        fail(ErrorKind::Usage, "--input '{}': the model has no input named '{}'{}", f.spec, f.name,
             did_you_mean(f.name, names));
    } else {
      if (i >= real.size()) fail(ErrorKind::Usage, "--input '{}': the model has only {} inputs", f.spec, real.size());
      f.name = real[i]->name;  // unnamed: the i-th input
    }
    // Two files for one input (by name, or unnamed by position): which one counts would be a guess.
    if (auto [it, fresh] = given_by.emplace(f.name, f.spec); !fresh)
      fail(ErrorKind::Usage, "--input '{}': input '{}' is already given by --input '{}'; give each input once", f.spec,
           f.name, it->second);
    specs.push_back(std::move(f));
  }
  // The outputs' files, decided before anything runs: none may be the model, one of its external data files or an
  // input file (inputs are never written; write_npy would replace it).
  const auto names = s.output_names();
  std::vector<std::string> out_paths;
  std::set<std::string> used;  // two names may clean up to one file name ('a/b', 'a_b'): the later gets _1, ...
  for (const auto& n : names) {
    std::string file = safe_name(n);
    for (int k = 1; !used.insert(file).second; ++k) file = safe_name(n) + "_" + std::to_string(k);
    const std::string path = (fs::path(out_dir) / (file + ".npy")).string();
    auto same = [&](const std::string& p) {
      std::error_code ec;
      return fs::exists(path, ec) && fs::exists(p, ec) && fs::equivalent(path, p, ec) && !ec;
    };
    if (same(model)) fail(ErrorKind::Usage, "output '{}' is the model; choose another --output-dir", path);
    for (const auto& data : m.external_data_files)
      if (same(data))
        fail(ErrorKind::Usage, "output '{}' is an external data file of the model; choose another --output-dir", path);
    if (std::error_code ec; fs::is_directory(fs::symlink_status(path, ec)))
      fail(ErrorKind::Usage, "output '{}' is a folder; choose another --output-dir", path);
    for (const auto& f : specs)
      if (same(f.file))
        fail(ErrorKind::Usage, "output '{}' is the file of --input '{}'; choose another --output-dir", path, f.spec);
    run_files::check_replaceable(path);  // a read-only earlier output: refused before the model runs
    out_paths.push_back(path);
  }
  // The type rules of the data sets (docs/config.md): faithful conversions are made and said, lossy ones warned
  // about, floating point for an integer input refused, values that a narrower integer type cannot hold refused.
  std::map<std::string, Tensor> feeds;
  for (const auto& f : specs) {
    std::string array;
    Tensor t = read_input_file(f.file, &array);
    const auto* vi = m.graph.find_value_info(f.name);
    const DType to = vi ? vi->dtype : DType::Undefined;
    const std::string where = fmt::format("--input '{}'", f.spec);
    data::check_conversion(t.dtype(), to, where, array, f.name);
    feeds[f.name] = data::convert_for_input(t, to, where, array, -1, f.name);
    OQ_DEBUG("run: model input '{}' gets {} {} from {}", f.name, data::numpy_name(feeds[f.name].dtype()),
             shape_str(feeds[f.name].shape()), f.file);
  }
  auto outs = s.run(feeds);
  write_outputs(out_dir, out_paths, outs);
  for (size_t i = 0; i < outs.size(); ++i)
    std::cout << names[i] << " " << shape_str(outs[i].shape()) << " -> " << out_paths[i] << "\n";
  return 0;
}

int cmd_eval(int argc, char** argv) {
  CLI::App cli{"onnxquant eval: score a model on an .npz data set (or .npy, or an image folder read with the "
               "default preprocessing)"};
  std::string model, data_path, metric, reference;
  int threads = 0;
  int64_t batch = 1;
  cli.add_option("model", model, "ONNX model")->required();
  cli.add_option("--data", data_path, ".npz with x (and y labels), .npy, or an image folder (default preprocessing: "
                 "rgb, scale 1, nearest; see README)")->required();
  cli.add_option("--metric", metric, "top1 | agreement (default: agreement with --reference, else top1)")
      ->transform(CLI::IsMember({"top1", "agreement"}, CLI::ignore_case));
  cli.add_option("--reference", reference, "float model for the agreement metric (implies --metric agreement)");
  cli.add_option("--batch-size", batch, "samples per batch (default: 1)");
  cli.add_option("--threads", threads, "threads (default: all cores)");
  if (int rc = parse_cli(cli, argc, argv); rc >= 0) return rc;
  std::string note;
  set_num_threads(checked_threads(threads, cli.count("--threads") > 0, &note));
  if (!note.empty()) OQ_WARN("{}", note);
  // A reference is only used by the agreement metric: giving one asks for it (as the config's `metric: auto` takes
  // agreement when there are no labels; here the reference is the user's explicit choice, labels or not).
  if (metric.empty()) metric = reference.empty() ? "top1" : "agreement";
  if (metric == "agreement" && reference.empty()) fail(ErrorKind::Usage, "--metric agreement needs --reference FLOAT.onnx");
  if (metric == "top1" && !reference.empty())
    fail(ErrorKind::Usage, "--metric top1 scores against the labels and uses no reference, but --reference '{}' is "
         "given: drop --metric for the agreement with it, or drop --reference", reference);
  ir::Model m = load_runnable_model(model);
  exec::Session s(m);
  // An image folder is read as the main job reads it with no preprocessing keys (docs/config.md's defaults: rgb,
  // layout auto, scale 1 offset 0, nearest resize to the model's size, fit); eval has no options to change that.
  data::DataOptions d = data_options(config::Config{}, data_path, 1.0);
  d.selection.shuffle = false;
  d.preprocess.fixed_by = "eval reads an image folder with the main job's default preprocessing (color_mode rgb, "
      "layout auto, rescaling scale 1 offset 0, nearest resize to the model input's size) and cannot change it: give "
      "--data an .npz of preprocessed samples, or evaluate with `onnxquant --config` (operation_mode: evaluation) "
      "and the preprocessing keys that fit the model";
  auto ds = data::open_dataset(d, data::input_specs(m.graph));
  search::EvalOptions o;
  o.batch_size = batch;
  data::check_fixed_batch(data::input_specs(m.graph), *ds, batch, "--batch-size");
  o.metric = metric == "top1" ? search::MetricKind::Top1 : search::MetricKind::Agreement;
  double score;
  if (o.metric == search::MetricKind::Agreement) {
    ir::Model fm = load_runnable_model(reference);
    exec::Session fs_(fm);
    search::Reference ref;
    try {
      ref = search::compute_reference(fs_, ds, o);
    } catch (const Error& e) {  // the data was checked against MODEL's inputs: say which model failed
      fail(e.kind(), "--reference '{}': {}", reference, e.what());
    }
    o.warn_non_finite = false;  // the reference's pass named them
    score = search::evaluate(s, ds, o, &ref);
  } else {
    score = search::evaluate(s, ds, o);
  }
  std::cout << fmt::format("{}: {:.2f}", metric, score) << std::endl;
  return 0;
}

int run_evaluation(Job& job, const std::string& model_path) {
  ir::Model m = load_runnable_model(model_path);
  exec::Session s(m);
  auto ds = evaluation_data(job, m, true);  // chain_qe: opened and checked before calibration
  search::EvalOptions eo;
  eo.batch_size = evaluation_batch_size(job.cfg, m);
  double acc = search::evaluate(s, ds, eo);
  OQ_INFO("Evaluation of {} on {}: top1: {:.2f}", model_path, ds->describe(), acc);
  return 0;
}

}  // namespace oq::app
