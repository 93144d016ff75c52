// Preparing a quantization job: the model (loaded once, pre-processed, converted), the data, the outputs.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "app.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/run_files.h"
#include "data/loader.h"
#include "exec/kernel.h"
#include "ir/passes/ort_graph_order.h"
#include "ir/passes/passes.h"
#include "ir/validate_schema.h"
#include "onnx/model_io.h"
#include "phase_log.h"
#include "quant/overrides.h"
#include "quant/quantizer.h"

namespace fs = std::filesystem;

namespace oq::app {

// Node filters name nodes of the model as given; pre-processing fuses or removes some. A MatMul or Add fused
// into a Gemm (named "<MatMul>/MatMulAddFusion", as ORT names it) stands for that Gemm; a node removed without
// a successor of its own (Identity, Dropout, a BatchNormalization or Pad folded into its Conv) is warned about:
// filtering it changes nothing.
static void remap_node_filters(const ir::Graph& original, const ir::Graph& prepared, quant::QuantOptions& o) {
  std::set<std::string> now;
  for (const auto& n : prepared.nodes) now.insert(n.name);
  std::map<std::string, const ir::Node*> by_name, producer;
  for (const auto& n : original.nodes) {
    by_name[n.name] = &n;
    for (const auto& t : n.outputs) producer[t] = &n;
  }
  auto fused_into = [&](const std::string& name) -> std::string {
    auto it = by_name.find(name);
    if (it == by_name.end()) return {};
    std::vector<std::string> matmuls;
    if (it->second->op_type == "MatMul") matmuls.push_back(name);
    if (it->second->op_type == "Add")
      for (const auto& in : it->second->inputs)
        if (auto p = producer.find(in); p != producer.end() && p->second->op_type == "MatMul")
          matmuls.push_back(p->second->name);
    for (const auto& m : matmuls)
      if (const std::string f = m + ir::passes::kMatMulAddFusionSuffix; now.count(f)) return f;
    return {};
  };
  for (auto [set, key] : {std::pair{&o.nodes_to_quantize, "nodes_to_quantize"},
                          std::pair{&o.nodes_to_exclude, "nodes_to_exclude"}}) {
    std::set<std::string> mapped;
    for (const auto& name : *set) {
      if (now.count(name)) {
        mapped.insert(name);
      } else if (std::string f = fused_into(name); !f.empty()) {
        OQ_INFO("quantization.onnx_quant_parameters.{}: '{}' was fused into '{}' by pre-processing; the filter "
                "applies to it", key, name, f);
        mapped.insert(f);
      } else {
        OQ_WARN("quantization.onnx_quant_parameters.{}: node '{}' is removed by pre-processing (folded into its "
                "neighbour, or a HardSwish / Mish / Swish expanded into unnamed nodes as ORT's quant_pre_process "
                "does); the filter has no effect on it", key, name);
      }
    }
    // nodes_to_quantize left empty by the removals would mean "every node": keep it non-empty with a name no
    // node has (unnamed nodes have the empty name).
    if (mapped.empty() && !set->empty()) mapped.insert(std::string("\0onnxquant:no-node", 18));
    *set = std::move(mapped);
  }
}

// The executor computes in float32 (and float64 / integers); a float16 model runs on a float32 copy
// (exec::SessionOptions::upcast_float16) and is quantized with float16 scales. A model whose compute runs in
// bfloat16 is refused before anything runs, with the first tensor that shows it. Bfloat16 constants that are
// only Cast (to float) are fine.
static void refuse_bfloat16(const ir::Model& m, const std::string& path) {
  std::set<std::string> half;
  for (const auto& in : m.graph.inputs)
    if (in.dtype == DType::BFloat16) half.insert(in.name);
  for (const auto& init : m.graph.initializers)
    if (init.tensor.dtype() == DType::BFloat16) half.insert(init.name);
  for (const auto& n : m.graph.nodes)
    if (n.is_default_domain() && n.op_type == "Cast" && !n.outputs.empty() &&
        n.attr_int("to", 1) == static_cast<int64_t>(DType::BFloat16))
      half.insert(n.outputs[0]);
  if (half.empty()) return;
  for (const auto& n : m.graph.nodes) {
    if (n.op_type == "Cast" || n.op_type == "Shape" || n.op_type == "Size") continue;
    for (const auto& t : n.inputs)
      if (half.count(t))
        fail(ErrorKind::Model,
             "model '{}': tensor '{}' is bfloat16 and feeds node '{}' ({}): onnxquant quantizes float32 and float16 "
             "models; convert the model to float32 first",
             path, t, ir::node_label(n), n.op_type);
  }
}

// A float16 model is quantized with float16 scales (Q/DQ take them from opset 19). The options that rewrite
// float weights work on float32 initializers only: each is refused rather than silently skipping the weights.
static void check_float16_model(const Job& job) {
  if (!ir::passes::computes_in_float16(job.prepared)) return;
  const auto& e = job.cfg.quantization.extra;
  auto refuse = [&](const char* key) {
    fail(ErrorKind::Config, "quantization.onnx_extra_options.{}: not supported for float16 models ('{}' is float16); "
         "turn it off or convert the model to float32", key, job.model_path);
  };
  if (e.smooth_quant) refuse("SmoothQuant");
  if (e.cross_layer_equalization) refuse("CrossLayerEqualization");
  if (e.bias_correction) refuse("BiasCorrection");
  if (e.weight_quantizer != config::WeightQuantizer::MinMax) refuse("WeightQuantizer");
  const int64_t opset = job.prepared.default_opset();
  if (opset < 19)
    fail(ErrorKind::Config, "quantization.target_opset: the float16 model '{}' needs float16 scales, which "
         "QuantizeLinear/DequantizeLinear take from opset 19; set target_opset: 19 or higher (the model is at {})",
         job.model_path, opset);
  OQ_INFO("Model '{}' computes in float16: calibration, inspection and evaluation run it in float32; its Q/DQ "
          "scales are written in float16", job.model_path);
}

// Whether `name` is one SmoothQuant may create in front of a tensor t of g: `<t>_smooth<N>_out` (the divided input)
// or `<t>_smooth<N>_inv_scale` (its 1/s constant), the names inspection reports and suggests overrides for.
static bool smooth_quant_name(const ir::Graph& g, const std::string& name) {
  const size_t at = name.rfind("_smooth");
  if (at == std::string::npos || at == 0) return false;
  size_t i = at + 7, digits = 0;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i, ++digits;
  const std::string rest = name.substr(i);
  if (digits == 0 || (rest != "_out" && rest != "_inv_scale")) return false;
  const std::string t = name.substr(0, at);
  if (g.is_graph_input(t)) return true;
  for (const auto& n : g.nodes)
    if (std::find(n.outputs.begin(), n.outputs.end(), t) != n.outputs.end()) return true;
  return false;
}

// The overrides checked before calibration (a wrong name fails at once). With SmoothQuant, the names it may create
// are let through here and checked once it has run (apply_float_rewrites), against the rewritten graph.
static void validate_overrides_early(const Job& job) {
  if (!job.cfg.quantization.extra.smooth_quant) return quant::validate_overrides(job.prepared.graph, job.qopts);
  quant::QuantOptions o = job.qopts;
  for (auto* m : {&o.weight_overrides, &o.activation_overrides})
    std::erase_if(*m, [&](const auto& kv) {
      return kv.second.source != quant::OverrideSource::TensorQuantOverrides &&
             smooth_quant_name(job.prepared.graph, kv.first);
    });
  quant::validate_overrides(job.prepared.graph, o);
}

ir::Model load_runnable_model(const std::string& path) {
  ir::Model m = onnx::load_model(path);
  // The file's nodes numbered before the inliner creates the bodies' nodes, as ORT's Graph numbers them
  // (the pre-processing writes the nodes in ORT's order: src/ir/passes/ort_graph_order.h).
  ir::passes::number_nodes(m.graph);
  try {  // model-local functions: inlined at load, as onnxruntime does, so that every command runs their bodies
    ir::passes::inline_local_functions(m);
  } catch (const Error& e) {
    fail(e.kind(), "model '{}': {}", path, e.what());
  }
  if (m.default_opset() > exec::kMaxOpset)
    fail(ErrorKind::Model, "model '{}': imports ai.onnx opset {}, newer than the newest supported ({})", path,
         m.default_opset(), exec::kMaxOpset);
  if (const int64_t newest = ir::passes::ir_version_for_opset(exec::kMaxOpset); m.ir_version > newest)
    fail(ErrorKind::Model, "model '{}': IR version {} is newer than the newest supported ({}, that of opset {})", path,
         m.ir_version, newest, exec::kMaxOpset);
  try {
    exec::check_model_ops(m);  // an op newer than the model's opset, a training BatchNormalization: before any work
    ir::check_model_schemas(m);  // each ai.onnx node against its schema at the model's opset, as onnx.checker
  } catch (const Error& e) {
    fail(e.kind(), "model '{}': {}", path, e.what());
  }
  return m;
}

void prepare_model(Job& job) {
  const auto& cfg = job.cfg;
  if (cfg.model.model_path.empty()) fail(ErrorKind::Config, "model.model_path: missing (the float ONNX model to quantize)");
  job.model_path = cfg.model.model_path;
  job.model_base = fs::path(job.model_path).stem().string();
  PhaseLog phase;
  job.original = load_runnable_model(job.model_path);
  phase.done("model load");
  size_t q_nodes = 0, dq_nodes = 0;
  for (const auto& n : job.original.graph.nodes) {
    q_nodes += n.is_default_domain() && n.op_type == "QuantizeLinear";
    dq_nodes += n.is_default_domain() && n.op_type == "DequantizeLinear";
  }
  if (q_nodes + dq_nodes > 0)
    fail(ErrorKind::Model,
         "model '{}' is already quantized ({} QuantizeLinear / {} DequantizeLinear nodes): give the float model",
         job.model_path, q_nodes, dq_nodes);
  job.qopts = quant_options(cfg);
  job.prepared = job.original;
  auto st = ir::passes::preprocess(job.prepared);
  phase.done("pre-processing");
  refuse_bfloat16(job.prepared, job.model_path);
  // TensorQuantOverrides names tensors of the pre-processed model, as ORT's after quant_pre_process (a folded
  // BatchNormalization's Conv weight is ConvBnFusion_W_<w>).
  quant::place_tensor_quant_overrides(job.prepared.graph, tensor_quant_overrides(cfg), job.qopts);
  OQ_INFO("Pre-processing: {} -> {} nodes ({} constants folded, {} Identity/Dropout removed, {} BatchNormalization "
          "folded, {} Mul/Add by a constant folded into Conv, {} no-op Add/Sub/Mul/Div/Cast/Expand or Transpose "
          "pair removed, {} Pad folded into Conv/AveragePool, {} MatMul+Add fused into Gemm, {} HardSwish/Mish/Swish inlined as quant_pre_process "
          "does)",
          st.nodes_before, st.nodes_after, st.folded_constants, st.removed_identities, st.folded_batchnorms,
          st.fused_conv_mul_adds, st.removed_noops, st.fused_pads, st.fused_matmul_adds, st.inlined_functions);
  quant::validate_node_filters(job.original.graph, job.qopts, &job.prepared.graph);
  if (st.fused_reshapes)
    OQ_INFO("Pre-processing: {} Reshape(s) whose shape a Shape/Gather/Concat chain computed now read a constant shape "
            "(ORT's ReshapeFusion, as quant_pre_process does)", st.fused_reshapes);
  if (st.inlined_ifs)
    OQ_INFO("Pre-processing: {} If node(s) with a constant condition replaced by the branch they take (as "
            "quant_pre_process does; their nodes are then quantized like the others)", st.inlined_ifs);
  if (st.initializer_inputs)
    OQ_INFO("Pre-processing: {} initializers listed as graph inputs are constants from here on (from IR 4 on the "
            "pre-processing left them unfolded, as ORT's optimizer does with inputs a caller may override)", st.initializer_inputs);
  remap_node_filters(job.original.graph, job.prepared.graph, job.qopts);
  int64_t opset = job.prepared.default_opset();
  int target = job.qopts.target_opset;
  if (opset < target) {
    size_t n = 0;
    try {
      n = ir::passes::convert_opset(job.prepared, target);
    } catch (const Error& e) {
      fail(e.kind(), "model '{}': {}", job.model_path, e.what());
    }
    OQ_INFO("Converted the model from opset {} to opset {} ({} nodes rewritten)", opset, target, n);
  } else if (opset > target) {
    OQ_WARN("quantization.target_opset {} is lower than the model's opset {}: keeping opset {}", target, opset, opset);
  }
  job.prepared.ir_version =
      std::max(job.prepared.ir_version, ir::passes::ir_version_for_opset(job.prepared.default_opset()));
  if (job.prepared.default_opset() >= 28 && !job.qopts.use_qdq_contrib_ops)
    OQ_WARN("The quantized model will import opset {}: onnxruntime (1.32 at least) has no QuantizeLinear / "
            "DequantizeLinear kernels at opset 28 yet, so it may not run there; onnxquant runs it (a model exported "
            "at opset 27 or lower, with quantization.target_opset 27 or lower, stays runnable in onnxruntime)",
            job.prepared.default_opset());
  quant::check_opset_support(job.qopts, static_cast<int>(job.prepared.default_opset()));
  validate_overrides_early(job);  // before calibration: a wrong override fails at once
  check_float16_model(job);
  phase.done("opset conversion and checks");
  job.export_dir = (fs::path(job.output_dir) / cfg.quantization.export_dir).string();
  // chain_qe evaluates the quantized model, whose inputs are the prepared model's: its test set is checked now,
  // before calibration, not after the quantized model and the reports are written.
  if (cfg.operation_mode == config::OperationMode::ChainQE) evaluation_data(job, job.prepared, true);
}

data::DatasetPtr calibration_data(const Job& job) {
  const auto& d = job.cfg.dataset;
  std::string path = !d.quantization_path.empty() ? d.quantization_path : d.training_path;
  auto inputs = data::input_specs(job.prepared.graph);
  if (path.empty()) {
    OQ_WARN("dataset.quantization_path and dataset.training_path are not set: calibrating on 10 random uniform [0, 1) "
            "samples (quantization will be poor; give real data)");
    auto ds = data::make_random_dataset(inputs, 10, static_cast<uint64_t>(d.seed));
    data::check_fixed_batch(inputs, *ds, d.batch_size, "dataset.batch_size");
    return ds;
  }
  auto ds = data::open_dataset(data_options(job.cfg, path, d.quantization_split), inputs);
  OQ_INFO("Calibration data: {}", ds->describe());
  data::check_fixed_batch(inputs, *ds, d.batch_size, "dataset.batch_size");
  return ds;
}

data::DatasetPtr evaluation_data(Job& job, const ir::Model& m, bool need_labels) {
  const auto& d = job.cfg.dataset;
  const bool test = !d.test_path.empty();
  const std::string path = test ? d.test_path : d.validation_path;
  const std::string key = test ? "dataset.test_path" : "dataset.validation_path";
  OQ_CHECK(!path.empty(), "no evaluation set (the config's load requires dataset.test_path or validation_path)");
  if (!job.eval_data) {
    data::DataOptions o = data_options(job.cfg, path, 1.0);
    o.selection.shuffle = false;
    const auto inputs = data::input_specs(m.graph);
    auto ds = data::open_dataset(o, inputs);
    data::check_fixed_batch(inputs, *ds, evaluation_batch_size(job.cfg, m), "dataset.batch_size",
                            [&](int64_t b, int64_t n) {
                              const int64_t lo = n - n % b;
                              return fmt::format("{} needs a multiple of {} samples ({}{})", key, b,
                                                 lo > 0 ? fmt::format("{} or ", lo) : "", lo + b);
                            });
    job.eval_data = std::move(ds);
  }
  if (need_labels && !job.eval_data->has_labels())
    fail(ErrorKind::Data, "evaluation needs labels, but {} has none ({})", job.eval_data->describe(), key);
  return job.eval_data;
}

int64_t evaluation_batch_size(const config::Config& cfg, const ir::Model& m) {
  int64_t b = std::max<int64_t>(cfg.dataset.batch_size, 1);
  if (b > 1) return b;
  for (const auto* in : m.graph.real_inputs())
    if (!in->shape || in->shape->empty() || (*in->shape)[0].known()) return 1;
  return 32;
}

void check_output_name(const Job& job, const std::string& dir, const std::string& file_name) {
  long max = ::pathconf(dir.c_str(), _PC_NAME_MAX);
  if (max <= 0) max = 255;
  if (file_name.size() > static_cast<size_t>(max))
    fail(ErrorKind::Io, "cannot write '{}': its file name is {} bytes long, over the {} bytes the file system allows "
         "(the name comes from the model file '{}': give the model a shorter name)",
         (fs::path(dir) / file_name).string(), file_name.size(), max, job.model_path);
}

// Whether a and b are the same existing file (never throws: a path that cannot be examined is not the same).
static bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::exists(a, ec) && fs::exists(b, ec) && fs::equivalent(a, b, ec) && !ec;
}

std::string save_output(const Job& job, const ir::Model& m, const std::string& file_name, uint64_t* bytes) {
  fs::path dir(job.export_dir);
  std::error_code ec;
  run_files::create_dirs(dir.string(), ec);  // recorded: a failed run removes the folder again when it made it
  if (ec) fail(ErrorKind::Io, "cannot create output folder '{}': {}", dir.string(), ec.message());
  check_output_name(job, dir.string(), file_name);
  fs::path out = dir / file_name;
  if (same_file(out, job.model_path))
    fail(ErrorKind::Usage, "output '{}' is the input model itself; choose another output folder", out.string());
  for (const auto& data : job.original.external_data_files)
    if (same_file(out, data))
      fail(ErrorKind::Usage, "output '{}' is the external data file of the input model; choose another output folder",
           out.string());
  check_not_an_input(job, out.string());
  try {  // what onnxquant writes (QDQ nodes, converted opsets) must pass the check it applies to what it reads
    ir::check_model_schemas(m);
  } catch (const Error& e) {
    fail(ErrorKind::Runtime, "internal error: the model for '{}' breaks an operator schema: {}", out.string(), e.what());
  }
  onnx::SaveOptions opts;  // a model over 2 GiB also writes <out>.data: never onto an input
  opts.protected_files = job.original.external_data_files;
  opts.protected_files.push_back(job.model_path);
  const onnx::SavedModel saved = onnx::save_model(m, out.string(), opts);
  if (bytes) *bytes = saved.bytes();
  return out.string();
}

}  // namespace oq::app

namespace oq::app {

std::vector<std::pair<std::string, std::string>> input_files(const Job& job) {
  std::vector<std::pair<std::string, std::string>> out;
  auto add = [&](const std::string& path, const std::string& what) {
    std::error_code ec;
    if (!path.empty() && fs::is_regular_file(path, ec)) out.emplace_back(path, what);
  };
  add(job.config_path, "the config file");
  const auto& c = job.cfg;
  add(c.model.model_path, "the model (model.model_path)");
  for (const auto& f : job.original.external_data_files) add(f, "an external data file of the model");
  add(c.dataset.quantization_path, "a data file (dataset.quantization_path)");
  add(c.dataset.training_path, "a data file (dataset.training_path)");
  add(c.dataset.test_path, "a data file (dataset.test_path)");
  add(c.dataset.validation_path, "a data file (dataset.validation_path)");
  return out;
}

// "the model (model.model_path)" (and its path when spelt otherwise) when `out` is an input of the run, else "".
static std::string input_at(const Job& job, const std::string& out) {
  for (const auto& [path, what] : input_files(job))
    if (same_file(out, path)) return what + (path == out ? "" : " '" + path + "'");
  return "";
}

void check_not_an_input(const Job& job, const std::string& out) {
  if (const std::string what = input_at(job, out); !what.empty())
    fail(ErrorKind::Usage, "output '{}' is {}, an input of this run; choose another output folder", out, what);
}

// Whether `path` starts as onnxquant's log does: "YYYY-MM-DD HH:MM:SS [" (log.cc's file pattern); an empty file
// passes (nothing to lose).
static bool looks_like_our_log(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char buf[21] = {};
  f.read(buf, sizeof buf);
  const std::streamsize n = f.gcount();
  if (n == 0) return true;
  if (n < static_cast<std::streamsize>(sizeof buf)) return false;
  const char* pattern = "dddd-dd-dd dd:dd:dd [";
  for (size_t i = 0; i < sizeof buf; ++i)
    if (pattern[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(buf[i])) : buf[i] != pattern[i]) return false;
  return true;
}

void check_log_target(const Job& job, const std::string& log_path) {
  std::error_code ec;
  if (!fs::exists(log_path, ec)) return;
  if (const std::string what = input_at(job, log_path); !what.empty())
    fail(ErrorKind::Usage, "the log '{}' would overwrite {}, an input of this run; choose another output folder",
         log_path, what);
  if (fs::is_regular_file(log_path, ec) && !looks_like_our_log(log_path))
    fail(ErrorKind::Usage, "the log '{}' would overwrite a file that is not an onnxquant log (an input of this run, or "
         "another file of yours); move it or choose another output folder", log_path);
  run_files::check_replaceable(log_path, "the log");  // read-only: refused as every other output is
}

void check_outputs_replaceable(const std::vector<std::string>& paths) {
  for (const auto& p : paths) run_files::check_replaceable(p);
}

std::string quantized_file_name(const Job& job) {
  return job.model_base + (job.qopts.per_channel ? "_quant_qdq_pc.onnx" : "_quant_qdq_pt.onnx");
}

int checked_threads(int threads, bool given, std::string* note) {
  if (!given) return 0;  // all cores
  if (threads < 1) fail(ErrorKind::Usage, "--threads: must be at least 1, got {}", threads);
  const int cores = available_cores();
  if (threads > cores) {
    if (note)
      *note = fmt::format("--threads {}: more than the {} core{} this process may use (CPU affinity, cgroup quota); "
                          "using {} (more workers cannot run at "
                          "once, they would only hold more batches in memory)", threads, cores, cores == 1 ? "" : "s", cores);
    return cores;
  }
  return threads;
}

}  // namespace oq::app
