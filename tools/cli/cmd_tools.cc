// Sub-commands `run` and `eval`, and the `evaluation` operation mode.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>

#include "app.h"
#include "core/log.h"
#include "core/names.h"
#include "core/parallel.h"
#include "core/run_files.h"
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

static Tensor read_input_file(const std::string& file) {
  std::string ext = fs::path(file).extension().string();
  if (ext == ".pb") return onnx::load_tensor_pb(file);
  if (ext == ".npy") return data::NpyArray::open(file).tensor();
  fail(ErrorKind::Usage, "--input '{}': expected a .npy or .pb file", file);
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
  // The outputs' files, decided before anything runs: none may be the model or an input file (inputs are never
  // written; write_npy would replace it).
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
    for (const auto& f : specs)
      if (same(f.file))
        fail(ErrorKind::Usage, "output '{}' is the file of --input '{}'; choose another --output-dir", path, f.spec);
    out_paths.push_back(path);
  }
  std::map<std::string, Tensor> feeds;
  for (const auto& f : specs) {
    Tensor t = read_input_file(f.file);
    if (const auto* vi = m.graph.find_value_info(f.name); vi && vi->dtype != DType::Undefined && vi->dtype != t.dtype())
      t = t.cast(vi->dtype);
    feeds[f.name] = t;
  }
  auto outs = s.run(feeds);
  set_output_folder(out_dir, "");
  try {  // all outputs or none: a failed or interrupted write removes the ones written (and a folder it made)
    std::error_code ec;
    run_files::create_dirs(out_dir, ec);
    if (ec) fail(ErrorKind::Io, "cannot create output folder '{}': {}", out_dir, ec.message());
    for (size_t i = 0; i < outs.size(); ++i) data::write_npy(out_paths[i], outs[i]);
  } catch (...) {
    roll_back("written before the error");
    throw;
  }
  for (size_t i = 0; i < outs.size(); ++i)
    std::cout << names[i] << " " << shape_str(outs[i].shape()) << " -> " << out_paths[i] << "\n";
  return 0;
}

int cmd_eval(int argc, char** argv) {
  CLI::App cli{"onnxquant eval: score a model on an .npz data set"};
  std::string model, data_path, metric, reference;
  int threads = 0;
  int64_t batch = 1;
  cli.add_option("model", model, "ONNX model")->required();
  cli.add_option("--data", data_path, ".npz with x (and y labels), .npy, or an image folder")->required();
  cli.add_option("--metric", metric, "top1 | agreement (default: agreement with --reference, else top1)")
      ->transform(CLI::IsMember({"top1", "agreement"}, CLI::ignore_case));
  cli.add_option("--reference", reference, "float model for the agreement metric (implies --metric agreement)");
  cli.add_option("--batch-size", batch, "batch size");
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
  data::DataOptions d;
  d.path = data_path;
  d.selection.shuffle = false;
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
