// ONNX backend node-test runner: for each test directory (model.onnx + test_data_set_*/input_*.pb,
// output_*.pb) load the model, run exec::Session on every data set and compare with the expected outputs
// (rtol 1e-3, atol 1e-7 as ONNX's backend test does; exact for integers, bools and strings).
// Prints one line per test: `PASS name`, `FAIL name: reason` or `UNSUPPORTED name: reason`.
// Each test runs in a forked child, so a crash or a hang (timeout) fails that test only.
//
//   oq_backend_runner [--source NAME=DIR]... [--manifest FILE | --all | TEST_DIR...] [--timeout SECONDS]
//   oq_backend_runner --list-ops
// --manifest: run the `source/test_name` lines of FILE (# comments ignored); exit 1 unless all pass.
// --all: run every test directory under every source.  TEST_DIRs are named source/basename when they lie
// directly under a source's DIR, else by their basename.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <fmt/ranges.h>
#include <vector>

#include "exec/kernel.h"
#include "exec/session.h"
#include "ir/validate_schema.h"
#include "onnx/model_io.h"

namespace fs = std::filesystem;
using namespace oq;

namespace {

constexpr double kRtol = 1e-3, kAtol = 1e-7;

struct Result {
  std::string status;  // PASS, FAIL, UNSUPPORTED
  std::string reason;
};

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  if (s.size() > 400) s = s.substr(0, 400) + "...";
  return s;
}

bool is_4bit(DType t) { return t == DType::Int4 || t == DType::UInt4; }

// Element i as double (numeric dtypes).
double value_at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::Float: return t.data<float>()[i];
    case DType::Double: return t.data<double>()[i];
    case DType::Float16: return half_to_float(t.data<uint16_t>()[i]);
    case DType::BFloat16: return bfloat16_to_float(t.data<uint16_t>()[i]);
    default: return 0;
  }
}

// "" when `got` matches `want`, else why not.
std::string compare(const Tensor& got, const Tensor& want) {
  if (got.dtype() != want.dtype())
    return fmt::format("dtype {} instead of {}", dtype_name(got.dtype()), dtype_name(want.dtype()));
  if (got.shape() != want.shape())
    return fmt::format("shape {} instead of {}", shape_str(got.shape()), shape_str(want.shape()));
  if (got.dtype() == DType::String) return got.strings() == want.strings() ? "" : "strings differ";
  if (is_float(got.dtype())) {
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < got.numel(); ++i) {
      double g = value_at(got, i), w = value_at(want, i);
      bool ok = (std::isnan(g) && std::isnan(w)) || g == w || std::fabs(g - w) <= kAtol + kRtol * std::fabs(w);
      if (!ok && bad++ == 0) first = i;
    }
    if (bad)
      return fmt::format("{} of {} values off (first at {}: {} vs expected {})", bad, got.numel(), first,
                         value_at(got, first), value_at(want, first));
    return "";
  }
  size_t bytes = is_4bit(got.dtype()) ? static_cast<size_t>(got.numel()) : got.nbytes();
  if (bytes && std::memcmp(got.raw(), want.raw(), bytes) != 0) {
    std::vector<int64_t> g = got.to_int64s(), w = want.to_int64s();
    for (size_t i = 0; i < g.size(); ++i)
      if (g[i] != w[i]) return fmt::format("integer values differ (first at {}: {} vs expected {})", i, g[i], w[i]);
    return "values differ";
  }
  return "";
}

std::vector<fs::path> sorted_entries(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> r;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) r.push_back(e.path());
  // input_10 after input_9: order by the number after the prefix.
  auto num = [&](const fs::path& p) {
    std::string s = p.stem().string().substr(prefix.size());
    return s.empty() ? 0L : std::strtol(s.c_str(), nullptr, 10);
  };
  std::sort(r.begin(), r.end(), [&](const fs::path& a, const fs::path& b) { return num(a) < num(b); });
  return r;
}

// onnx 1.12's test data stores BFLOAT16 values as UINT16 tensors (same bits): read them as what the model
// declares.
Tensor as_declared(const Tensor& t, DType declared) {
  if (t.dtype() != DType::UInt16 || declared != DType::BFloat16) return t;
  auto keep = std::make_shared<Tensor>(t);
  return Tensor::view(DType::BFloat16, t.shape(), keep->raw(), keep);
}

// Op types of the graph and its subgraphs ("domain:Op" outside the default domain), in first-use order.
void collect_ops(const ir::Graph& g, std::vector<std::string>& out) {
  for (const auto& n : g.nodes) {
    std::string op = n.is_default_domain() ? n.op_type : n.domain + ":" + n.op_type;
    if (std::find(out.begin(), out.end(), op) == out.end()) out.push_back(op);
    for (const auto& a : n.attrs) {
      if (a.g) collect_ops(*a.g, out);
      for (const auto& sg : a.graphs)
        if (sg) collect_ops(*sg, out);
    }
  }
}

Result run_test(const fs::path& dir) {
  if (!fs::exists(dir / "model.onnx")) return {"FAIL", "test not found: " + dir.string()};
  ir::Model model;
  try {
    model = onnx::load_model((dir / "model.onnx").string());
  } catch (const Error& e) {
    return {"UNSUPPORTED", "load: " + one_line(e.what())};
  }
  int opset = static_cast<int>(model.default_opset());
  try {  // every node test is a valid model: the schema validator must accept it
    ir::check_model_schemas(model);
  } catch (const Error& e) {
    return {"FAIL", "schema: " + one_line(e.what())};
  }
  std::vector<std::string> ops, missing;
  collect_ops(model.graph, ops);
  if (opset > exec::kMaxOpset || opset < 1)
    return {"UNSUPPORTED", fmt::format("no kernel: model imports opset {}, the executor supports up to {} (ops: {})",
                                       opset, exec::kMaxOpset, fmt::join(ops, ", "))};
  for (const auto& op : ops)
    if (op.find(':') != std::string::npos || !exec::find_kernel(op, opset)) missing.push_back(op);
  if (!missing.empty())
    return {"UNSUPPORTED", fmt::format("no kernel for {} at opset {}", fmt::join(missing, ", "), opset)};
  for (const auto* lists : {&model.graph.inputs, &model.graph.outputs})
    for (const auto& v : *lists)
      if (!v.opaque_type.empty() && v.dtype == DType::Undefined)
        return {"UNSUPPORTED", fmt::format("non-tensor graph input/output '{}'", v.name)};

  std::unique_ptr<exec::Session> session;
  try {
    exec::SessionOptions so;
    so.upcast_float16 = false;  // the kernels' own float16 support is what these tests check
    session = std::make_unique<exec::Session>(model, so);
  } catch (const Error& e) {
    return {"FAIL", "session: " + one_line(e.what())};
  }
  auto sets = sorted_entries(dir, "test_data_set_");
  if (sets.empty()) return {"FAIL", "no test_data_set_* folder"};
  for (const auto& set : sets) {
    std::string ds = set.filename().string();
    std::map<std::string, Tensor> feeds;
    auto inputs = sorted_entries(set, "input_");
    if (inputs.size() > model.graph.inputs.size())
      return {"FAIL", fmt::format("{}: {} input files for {} graph inputs", ds, inputs.size(), model.graph.inputs.size())};
    std::vector<Tensor> expected;
    try {
      for (size_t i = 0; i < inputs.size(); ++i)
        feeds[model.graph.inputs[i].name] =
            as_declared(onnx::load_tensor_pb(inputs[i].string()), model.graph.inputs[i].dtype);
      for (const auto& o : sorted_entries(set, "output_")) {
        size_t k = expected.size();
        DType declared = k < model.graph.outputs.size() ? model.graph.outputs[k].dtype : DType::Undefined;
        expected.push_back(as_declared(onnx::load_tensor_pb(o.string()), declared));
      }
    } catch (const Error& e) {
      return {"UNSUPPORTED", "data: " + one_line(e.what())};
    }
    std::vector<Tensor> got;
    try {
      got = session->run(feeds);
    } catch (const Error& e) {
      return {"FAIL", ds + ": run: " + one_line(e.what())};
    } catch (const std::exception& e) {
      return {"FAIL", ds + ": run: " + one_line(e.what())};
    }
    if (got.size() != expected.size())
      return {"FAIL", fmt::format("{}: {} outputs, expected {}", ds, got.size(), expected.size())};
    for (size_t i = 0; i < got.size(); ++i) {
      std::string why = compare(got[i], expected[i]);
      if (!why.empty())
        return {"FAIL", fmt::format("{}: output {} ('{}'): {}", ds, i, model.graph.outputs[i].name, why)};
    }
  }
  return {"PASS", ""};
}

// Runs run_test in a child process; a crash, an exception or a timeout is a FAIL.
Result run_isolated(const fs::path& dir, int timeout_s) {
  int fds[2];
  if (pipe(fds) != 0) return {"FAIL", "pipe failed"};
  pid_t pid = fork();
  if (pid < 0) return {"FAIL", "fork failed"};
  if (pid == 0) {
    close(fds[0]);
    Result r;
    try {
      r = run_test(dir);
    } catch (const std::exception& e) {
      r = {"FAIL", "exception: " + one_line(e.what())};
    }
    std::string msg = r.status + "\n" + r.reason;
    ssize_t ignored = write(fds[1], msg.data(), msg.size());
    (void)ignored;
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  bool done = false, timed_out = false;
  std::string msg;
  while (!done) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) done = true;
    else if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      done = timed_out = true;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  if (timed_out) return {"FAIL", fmt::format("timeout after {} s", timeout_s)};
  if (WIFSIGNALED(status)) return {"FAIL", fmt::format("crashed with signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)))};
  size_t nl = msg.find('\n');
  if (nl == std::string::npos) return {"FAIL", "child exited without a result"};
  return {msg.substr(0, nl), msg.substr(nl + 1)};
}

int usage() {
  std::fprintf(stderr,
               "usage: oq_backend_runner [--source NAME=DIR]... [--manifest FILE | --all | TEST_DIR...] "
               "[--timeout SECONDS]\n       oq_backend_runner --list-ops\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, fs::path>> sources;
  std::string manifest;
  bool all = false;
  int timeout_s = 60;
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--list-ops") {
      for (const auto& op : exec::registered_ops()) std::printf("%s\n", op.c_str());
      return 0;
    } else if (a == "--source" && i + 1 < argc) {
      std::string s = argv[++i];
      size_t eq = s.find('=');
      if (eq == std::string::npos) return usage();
      sources.emplace_back(s.substr(0, eq), fs::path(s.substr(eq + 1)));
    } else if (a == "--manifest" && i + 1 < argc) {
      manifest = argv[++i];
    } else if (a == "--timeout" && i + 1 < argc) {
      timeout_s = std::atoi(argv[++i]);
    } else if (a == "--all") {
      all = true;
    } else if (!a.empty() && a[0] == '-') {
      return usage();
    } else {
      dirs.push_back(a);
    }
  }
  // (name, directory) of every test to run.
  std::vector<std::pair<std::string, fs::path>> tests;
  if (!manifest.empty()) {
    std::ifstream in(manifest);
    if (!in) {
      std::fprintf(stderr, "cannot read manifest '%s'\n", manifest.c_str());
      return 2;
    }
    std::string line;
    while (std::getline(in, line)) {
      line.erase(0, line.find_first_not_of(" \t"));
      line.erase(line.find_last_not_of(" \t\r") + 1);
      if (line.empty() || line[0] == '#') continue;
      size_t slash = line.find('/');
      fs::path dir;
      for (const auto& [name, root] : sources)
        if (slash != std::string::npos && line.compare(0, slash, name) == 0 && slash == name.size())
          dir = root / line.substr(slash + 1);
      if (dir.empty()) dir = fs::path("/nonexistent-source") / line;
      tests.emplace_back(line, dir);
    }
  }
  if (all)
    for (const auto& [name, root] : sources) {
      std::vector<fs::path> ds;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(root, ec))
        if (e.is_directory()) ds.push_back(e.path());
      if (ec) std::fprintf(stderr, "warning: source %s: cannot list %s\n", name.c_str(), root.c_str());
      std::sort(ds.begin(), ds.end());
      for (const auto& d : ds) tests.emplace_back(name + "/" + d.filename().string(), d);
    }
  for (const auto& d : dirs) {
    fs::path p = fs::absolute(d).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    std::string name = p.filename().string();
    for (const auto& [sname, root] : sources)
      if (fs::absolute(root).lexically_normal() == p.parent_path()) name = sname + "/" + name;
    tests.emplace_back(name, p);
  }
  if (tests.empty()) return usage();

  int pass = 0, failed = 0, unsupported = 0;
  for (const auto& [name, dir] : tests) {
    Result r = run_isolated(dir, timeout_s);
    if (r.status == "PASS") {
      ++pass;
      std::printf("PASS %s\n", name.c_str());
    } else {
      (r.status == "UNSUPPORTED" ? unsupported : failed)++;
      std::printf("%s %s: %s\n", r.status.c_str(), name.c_str(), r.reason.c_str());
    }
    std::fflush(stdout);
  }
  std::printf("backend tests: %d passed, %d failed, %d unsupported\n", pass, failed, unsupported);
  if (!manifest.empty()) return (failed || unsupported) ? 1 : 0;
  return 0;
}
