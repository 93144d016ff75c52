// Test-only tool: runs one calibration method over .npy batches (one file = one batch of one tensor) and
// prints the resulting range, for tests/python/test_calib_vs_ort.py.
//
//   oq_calib_dump --method minmax|entropy|percentile [--symmetric 0|1] [--moving-average]
//                 [--averaging-constant C] [--chunk K] [--num-bins N] [--num-quantized-bins N]
//                 [--percentile P] [--two-pass] [--hist] batch0.npy batch1.npy ...
// Output: "range <rmin> <rmax>" (%.9g, exact for float32); with --hist also "hist <bins> <total>" and the
// histogram edges/counts on two lines.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "calib/calibrator.h"
#include "data/npy.h"

using namespace oq;

int main(int argc, char** argv) {
  try {
    calib::CalibOptions o;
    bool hist = false;
    std::vector<std::string> files;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) fail(ErrorKind::Usage, "oq_calib_dump: {} needs a value", a);
        return argv[++i];
      };
      if (a == "--method") {
        const auto m = calib::parse_calib_method(next());
        if (!m) fail(ErrorKind::Usage, "oq_calib_dump: unknown method '{}'", argv[i]);
        o.method = *m;
      } else if (a == "--symmetric") {
        o.symmetric = next() == "1";
      } else if (a == "--moving-average") {
        o.minmax.moving_average = true;
      } else if (a == "--averaging-constant") {
        o.minmax.averaging_constant = std::stof(next());
      } else if (a == "--chunk") {
        o.minmax.batches_per_chunk = std::stoll(next());
      } else if (a == "--num-bins") {
        o.num_bins = std::stoll(next());
      } else if (a == "--num-quantized-bins") {
        o.num_quantized_bins = std::stoll(next());
      } else if (a == "--percentile") {
        o.percentile = std::stod(next());
      } else if (a == "--two-pass") {
        o.two_pass_histogram = true;
      } else if (a == "--no-tails") {
        o.percentile_tails = false;
      } else if (a == "--hist") {
        hist = true;
      } else if (a.rfind("--", 0) == 0) {
        fail(ErrorKind::Usage, "oq_calib_dump: unknown option {}", a);
      } else {
        files.push_back(a);
      }
    }
    if (files.empty()) fail(ErrorKind::Usage, "oq_calib_dump: no .npy batches given");
    calib::Calibrator cal({"x"}, o);
    cal.expect_batches(static_cast<int64_t>(files.size()));
    int passes_run = 0;
    for (int pass = 0; pass < cal.passes(); ++pass) {
      if (!cal.needs_pass(pass)) break;
      ++passes_run;
      cal.begin_pass(pass);
      for (const auto& f : files) {
        const Tensor t = data::NpyArray::open(f).tensor();
        if (t.dtype() != DType::Float) fail(ErrorKind::Data, "{}: expected float32 data", f);
        cal.observe("x", t);
      }
    }
    const auto r = cal.compute();
    if (!r.count("x")) fail(ErrorKind::Data, "oq_calib_dump: no finite data");
    std::printf("range %.9g %.9g\n", r.at("x").rmin, r.at("x").rmax);
    std::printf("passes %d\n", passes_run);
    if (hist && o.method != calib::CalibMethod::MinMax) {
      // Rebuild the histogram the same way (the Calibrator does not expose its collectors).
      calib::HistogramCollector hc(o.method == calib::CalibMethod::Percentile && o.symmetric_or_default()
                                       ? calib::HistogramMode::Absolute
                                       : calib::HistogramMode::Value,
                                   o.num_bins_or_default());
      if (o.two_pass_histogram) {
        calib::RangeScanner scan;
        for (const auto& f : files) scan.add(data::NpyArray::open(f).tensor().span<float>());
        hc.preset(scan);
      }
      for (const auto& f : files) hc.add(data::NpyArray::open(f).tensor().span<float>());
      const auto& h = hc.histogram();
      std::printf("hist %zu %lld\n", h.counts.size(), static_cast<long long>(h.total()));
      for (float e : h.edges) std::printf("%.9g ", e);
      std::printf("\n");
      for (int64_t c : h.counts) std::printf("%lld ", static_cast<long long>(c));
      std::printf("\n");
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return e.exit_code();
  }
}
