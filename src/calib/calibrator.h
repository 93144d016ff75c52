// Calibrator: the front that turns the tensors seen while running calibration samples into ranges.
//
//   calib::Calibrator cal({"conv1_out", "relu2_out"}, opts);
//   exec::RunOptions ro;  ro.observer = cal.observer();
//   for (each sample) session.run(feeds, ro);      // every observed float32 tensor = one batch
//   std::map<std::string, calib::TensorRange> ranges = cal.compute();
//
// Tensors not asked for and non-float32 tensors are ignored. Defaults follow ONNX Runtime's
// quantize_static/create_calibrator; the results are those of ORT's calibrators fed the same batches one
// collect_data() call each (see collectors.h for the exact equivalence and the non-finite-value rule).
// observe() may run for different tensors at the same time on different threads (each tensor's collectors are
// its own, as exec::run_ordered needs); calls for one tensor must not overlap.
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "calib/collectors.h"
#include "calib/strategies.h"
#include "exec/session.h"

namespace oq::calib {

enum class CalibMethod { MinMax, Entropy, Percentile };

// "minmax", "entropy", "percentile" (any case; "min_max" too). nullopt otherwise.
std::optional<CalibMethod> parse_calib_method(std::string_view s);
std::string_view calib_method_name(CalibMethod m);  // MinMax, Entropy, Percentile

struct CalibOptions {
  CalibMethod method = CalibMethod::MinMax;
  // Symmetric range (-a, a). Default as ORT: false for MinMax, true for Percentile (|x| histogram); Entropy
  // ignores it, as ORT's compute_entropy does.
  std::optional<bool> symmetric;
  MinMaxOptions minmax;              // moving average (MinMax only)
  std::optional<int64_t> num_bins;   // first histogram's bins; default 128 (Entropy), 2048 (Percentile)
  int64_t num_quantized_bins = 128;  // Entropy
  double percentile = 99.999;        // Percentile, in [0, 100]
  // Entropy/Percentile only. false: one pass, each tensor's histogram grows batch by batch (ORT fed one
  // batch per collect_data(), i.e. quantize_static with CalibStridedMinMax=1). true: two passes over the
  // samples, the first finding each tensor's overall range, the second binning every batch into one
  // histogram over it: exactly ORT quantize_static's default single collect_data() call.
  bool two_pass_histogram = false;
  // Percentile with two_pass_histogram: the first pass also keeps each tensor's few most extreme values, which
  // decide the percentile of the one histogram exactly (strategies.h, percentile_from_tails): the second pass
  // only runs for the tensors where they do not. Needs Calibrator::expect_batches. false: always two passes.
  bool percentile_tails = true;

  bool symmetric_or_default() const { return symmetric.value_or(method == CalibMethod::Percentile); }
  // Entropy whose threshold search has a single window (num_bins / 2 == num_quantized_bins / 2, e.g. ORT's
  // default 128 / 128) over a histogram that does not grow (two_pass_histogram): the window is the whole
  // histogram, [-max|x|, max|x|], clamped to the data's [min, max] — the range is (min, max), whatever the
  // counts. One pass finding it is then all that is needed (no histogram is built).
  bool entropy_is_data_range() const {
    return method == CalibMethod::Entropy && two_pass_histogram &&
           num_bins_or_default() / 2 == num_quantized_bins / 2;
  }
  int64_t num_bins_or_default() const { return num_bins.value_or(method == CalibMethod::Entropy ? 128 : 2048); }
  // Config error naming the offending option.
  void validate() const;
};

class Calibrator {
 public:
  Calibrator(const std::vector<std::string>& tensors, CalibOptions opts);
  ~Calibrator();
  Calibrator(const Calibrator&) = delete;
  Calibrator& operator=(const Calibrator&) = delete;

  // Passes over the calibration samples this configuration may need: 2 for two_pass_histogram with a
  // histogram method (except entropy_is_data_range()), else 1. Run the samples once per pass for which
  // needs_pass(p) is true, calling begin_pass(p) before pass p (p = 0 may be omitted).
  int passes() const;
  // After pass p - 1: whether pass p is still needed (with percentile_tails, not when every tensor's range
  // follows from its first-pass tails).
  bool needs_pass(int pass);
  void begin_pass(int pass);
  // The number of batches each tensor will see per pass (for percentile_tails: how many extreme values to
  // keep). Without it, Percentile takes the second pass.
  void expect_batches(int64_t n) { expected_batches_ = n; }

  // Feeds one batch of `name` (ignored unless it was asked for and is float32). Errors name the tensor.
  void observe(const std::string& name, const Tensor& value);
  // An observer that calls observe() on this Calibrator (which must outlive the runs using it).
  exec::Observer observer();

  // Also track the per-channel max|x| of `name` along `axis` (for SmoothQuant); independent of the method.
  void track_channel_absmax(const std::string& name, int axis);
  // nullptr when the tensor was not tracked or never seen.
  const std::vector<float>* channel_absmax(const std::string& name) const;

  // One range per requested tensor that had at least one batch with a finite value (computed in parallel
  // over tensors), and [0, 0] for each tensor of always_empty() (ORT's range for it). Data error naming the
  // tensor when its histogram cannot give a range; Runtime error when called before the last pass.
  std::map<std::string, TensorRange> compute() const;
  // Requested tensors in which a NaN or an infinity was seen (and ignored), sorted.
  std::vector<std::string> non_finite() const;
  // Requested tensors that never received a usable batch: never seen, or values but none finite (sorted).
  std::vector<std::string> unseen() const;
  // Requested tensors seen only with 0 elements (e.g. a Compress that keeps nothing on any sample), sorted.
  std::vector<std::string> always_empty() const;
  // Batches of `name` that contributed (0 when unknown).
  int64_t batches(const std::string& name) const;
  const CalibOptions& options() const { return opts_; }

 private:
  struct Entry;
  void start_tails(Entry& e, size_t batch_values);
  CalibOptions opts_;
  int pass_ = 0;
  int64_t expected_batches_ = 0;
  // Percentile: values of small tensors kept in the first pass (see Entry::stash), per tensor and in all.
  static constexpr int64_t kStashPerTensor = int64_t{1} << 20, kStashTotal = int64_t{4} << 20;
  std::atomic<int64_t> stash_used_{0};
  bool tails_resolved_ = false;  // needs_pass(1) ran: percentile_tails ranges in the entries
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
  std::unordered_map<std::string, PerChannelAbsMaxCollector> channel_;
};

}  // namespace oq::calib
