// onnxquant — post-training quantization of ONNX models.
//   onnxquant [-v] --config FILE [--output-dir DIR] [--threads N] [dotted.key=value ...]   the main job
//   onnxquant [-v] info MODEL [--shapes]
//   onnxquant [-v] run MODEL --input [NAME=]FILE ... --output-dir DIR [--threads N]
//   onnxquant [-v] eval MODEL --data FILE.npz|IMAGE_FOLDER [--metric top1|agreement] [--reference FLOAT.onnx]
// Exit codes: 0 success, 2 usage or config error, 1 any other failure, 128 + signal when interrupted (run_guard.h).
// Errors are one line.
#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <string>
#include <thread>

#include "app.h"
#include "rollback.h"
#include "run_guard.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/run_files.h"

namespace fs = std::filesystem;
using namespace oq;

namespace oq::app {
int cmd_info_main(int argc, char** argv);
}

// quantization.export_dir is created inside the output folder when the model is saved, after calibration: a path
// there that is a file (the log, the lock file of a run, a file of the user's) is refused now, before any work
// and before the folder is made. `fresh`: the folder will be a new one (nothing in it yet but the log and lock).
static void check_export_dir(const std::string& output_dir, const std::string& export_dir, bool fresh) {
  const fs::path rel = fs::path(export_dir).lexically_normal();
  fs::path at(output_dir);
  for (const auto& part : rel) {
    if (part.empty() || part == ".") continue;
    const bool reserved = at == fs::path(output_dir) && (part == app::kLogName || part == app::kLockName);
    at /= part;
    std::error_code ec;
    if (reserved || (!fresh && fs::exists(at, ec) && !fs::is_directory(at, ec)))
      fail(ErrorKind::Config, "quantization.export_dir: {} would be the folder {}, which is {}; choose another "
           "export_dir", quote(export_dir), quote(at.string()),
           reserved ? "the run's own log or lock file" : "a file, not a folder");
  }
}

static int main_job(int argc, char** argv) {
  CLI::App cli{"onnxquant: post-training quantization of ONNX models (QDQ)"};
  std::string config_path, output_dir;
  std::vector<std::string> overrides;
  int threads = 0;
  bool verbose = false;
  cli.add_option("--config", config_path, "ST model-zoo style user_config.yaml")->required();
  cli.add_option("--output-dir", output_dir,
                 "output folder (default: hydra.run.dir, else experiments_outputs/<YYYY_MM_DD_HH_MM_SS>)");
  cli.add_option("--threads", threads, "threads (default: all cores)");
  cli.add_flag("-v,--verbose", verbose, "debug logging");
  cli.add_option("overrides", overrides, "dotted.key=value overrides (values as Hydra's override grammar reads them)");
  cli.footer(
      "Other commands (each with its own --help):\n"
      "  onnxquant [-v] info MODEL [--shapes]\n"
      "  onnxquant [-v] run MODEL --input [NAME=]FILE.npy|.pb ... --output-dir DIR [--threads N]\n"
      "  onnxquant [-v] eval MODEL --data FILE.npz|FILE.npy|IMAGE_FOLDER [--metric top1|agreement] "
      "[--reference FLOAT.onnx] [--batch-size N] [--threads N]");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);  // --help
    spdlog::error("{} (see --help)", escape_controls(e.what()));  // usage errors are one line, like every other
    return 2;
  }
  log::init(verbose);
  std::string threads_note;
  set_num_threads(app::checked_threads(threads, cli.count("--threads") > 0, &threads_note));
  app::Job job;
  job.config_path = config_path;
  job.cfg = config::load_config(config_path, overrides);
  job.output_dir = config::resolve_output_dir(job.cfg, output_dir);
  // The folder onnxquant names itself (experiments_outputs/<second>) is a new one for each run: a run in the same
  // second gets <second>_1, ... (made with mkdir, so two runs at once never share one). A user's folder is used as
  // given.
  const bool fresh = output_dir.empty() && job.cfg.hydra_run_dir.empty();
  check_export_dir(job.output_dir, job.cfg.quantization.export_dir, fresh);
  if (fresh) job.output_dir = run_files::create_unique_dir(job.output_dir);
  std::string log_path = (fs::path(job.output_dir) / app::kLogName).string();
  app::check_log_target(job, log_path);  // before anything is opened for writing: inputs are never written
  std::error_code ec;
  fs::create_directories(job.output_dir, ec);
  if (ec) fail(ErrorKind::Io, "cannot create output folder '{}': {}", job.output_dir, ec.message());
  // One run at a time in a folder: before the log is opened (truncated), so a refused run changes nothing there.
  const bool locked = app::lock_output_folder(job.output_dir);
  if (std::string why; !log::add_file(log_path, &why))
    fail(ErrorKind::Io, "cannot write the log file '{}': {}", log_path, why);
  app::set_output_folder(job.output_dir, app::kLogName);
  OQ_INFO("onnxquant 0.1.0 — config {} — outputs in {}", config_path, job.output_dir);
  if (!overrides.empty()) {  // what changed the file's values, as given (each quoted: one line)
    std::string list;
    for (const auto& ov : overrides) list += (list.empty() ? "" : " ") + quote(ov);
    OQ_INFO("Command-line overrides: {}", list);
  }
  if (!threads_note.empty()) OQ_WARN("{}", threads_note);
  for (const auto& w : job.cfg.warnings) OQ_WARN("{}", w);
  if (locked) {  // no other onnxquant run writes here: temporary files of ours in the folder are left-overs
    app::remove_stale_temporaries(job.output_dir);
    const fs::path exports = fs::path(job.output_dir) / job.cfg.quantization.export_dir;
    if (fs::is_directory(exports, ec) && !fs::equivalent(exports, job.output_dir, ec))
      app::remove_stale_temporaries(exports.string());
  }

  int rc = 0;
  try {
    using config::OperatingMode;
    using config::OperationMode;
    if (job.cfg.operation_mode == OperationMode::Evaluation) return app::run_evaluation(job, job.cfg.model.model_path);
    switch (job.cfg.quantization.operating_mode) {
      case OperatingMode::Default: rc = app::run_default_mode(job); break;
      case OperatingMode::Inspection: rc = app::run_inspection_mode(job); break;
      case OperatingMode::FullAuto: rc = app::run_full_auto_mode(job); break;
    }
    if (rc == 0 && job.cfg.operation_mode == OperationMode::ChainQE && !job.quantized_path.empty())
      rc = app::run_evaluation(job, job.quantized_path);
  } catch (...) {
    app::roll_back("written before the error");  // a failed run leaves no partial models or reports, only the log
    throw;
  }
  OQ_INFO("Outputs are in {}", job.output_dir);
  return rc;
}

// Whether other work runs on this machine now: other runnable tasks at this instant (/proc/loadavg's 4th field
// counts this process too), or a 1-minute load average of at least one task per core.
static bool machine_busy() {
  std::ifstream f("/proc/loadavg");
  double l1 = 0, l5 = 0, l15 = 0;
  std::string tasks;
  if (!(f >> l1 >> l5 >> l15 >> tasks)) return false;
  const long runnable = std::strtol(tasks.c_str(), nullptr, 10);
  const int cores = available_cores();
  return runnable > 1 || l1 >= cores;
}

// libgomp (the OpenMP runtime oneDNN and our kernels share) reads its wait policy when it is loaded, before
// main. Its default spins ~300k iterations at every barrier; even a bounded spin (GOMP_SPINCOUNT=20000, the
// fastest on an idle machine) makes runs that share the cores with other work 10-60x slower: every barrier
// waits for a descheduled thread while the others burn its time slice (docs/benchmarks.md, finding 1: two
// full_auto runs side by side took 50 s each instead of 1.4 s with OMP_WAIT_POLICY=PASSIVE). Unless the user
// chose a policy, re-exec once with the bounded spin on an idle machine and the passive policy on a busy one.
static void choose_openmp_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  if (machine_busy())
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  else
    setenv("GOMP_SPINCOUNT", "20000", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the default policy
}

// glibc's malloc serves blocks above its mmap threshold (128 KiB at first, raised to the size of the largest freed
// one) with fresh mappings and unmaps them when freed, so every large buffer of a run (the parsed model's tensor
// strings, weights reordered for oneDNN, activations of the first inference, the quantized model) is faulted in
// page by page and zeroed by the kernel: ~3 of 4 page faults of a default-mode run were such re-faults. With
// the threshold at its maximum (32 MiB) and trimming off, freed memory stays in the heap and is reused: on
// MobileNetV2 a one-sample default-mode run makes 11.3k page faults instead of 14.4k and takes 10-25 ms less,
// peak RSS within 1 MB (docs/benchmarks.md, sixth session). Settings in the environment (MALLOC_*_, GLIBC_TUNABLES)
// are left alone.
static void tune_malloc() {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") || std::getenv("GLIBC_TUNABLES"))
    return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

static int run_command(int argc, char** argv) {
  try {
    // -v / --verbose: the global flag; before a subcommand (`onnxquant -v info M`), anywhere in the main job's
    // arguments (its own parser takes it).
    int first = 1;
    while (first < argc && (std::string(argv[first]) == "-v" || std::string(argv[first]) == "--verbose")) ++first;
    std::string sub = first < argc ? argv[first] : "";
    if (sub == "info" || sub == "run" || sub == "eval") {
      if (first > 1) log::init(true);
      if (sub == "info") return app::cmd_info_main(argc - first, argv + first);
      if (sub == "run") return app::cmd_run(argc - first, argv + first);
      return app::cmd_eval(argc - first, argv + first);
    }
    return main_job(argc, argv);
  } catch (const Error& e) {
    spdlog::error("{}", e.what());  // one line: oq::Error escapes control characters
    return e.exit_code();
  } catch (const std::exception& e) {  // a bare "std::bad_alloc" names nothing: exception_text says what it is
    spdlog::error("{}", escape_controls(exception_text(e)));
    return 1;
  }
}

int main(int argc, char** argv) {
  choose_openmp_wait_policy(argv);
  tune_malloc();
  log::init(false);
  (void)run_files::new_file_mode();  // the umask, read once before any thread exists (core/run_files.h)
  app::install_run_guard();  // signals, limits, the folder lock (run_guard.h): before any thread starts
  const int rc = run_command(argc, argv);
  app::run_finished();  // the error line, if any, is in the log: the folder lock goes now
  return rc;
}
