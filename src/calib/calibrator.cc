#include "calib/calibrator.h"

#include <algorithm>
#include <cctype>
#include <exception>
#include <variant>

#include "core/log.h"
#include "core/parallel.h"

namespace oq::calib {

std::optional<CalibMethod> parse_calib_method(std::string_view s) {
  std::string k;
  for (char c : s)
    if (c != '_' && c != '-') k += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (k == "minmax") return CalibMethod::MinMax;
  if (k == "entropy") return CalibMethod::Entropy;
  if (k == "percentile") return CalibMethod::Percentile;
  return std::nullopt;
}

std::string_view calib_method_name(CalibMethod m) {
  switch (m) {
    case CalibMethod::MinMax: return "MinMax";
    case CalibMethod::Entropy: return "Entropy";
    case CalibMethod::Percentile: return "Percentile";
  }
  return "?";
}

void CalibOptions::validate() const {
  if (!(minmax.averaging_constant >= 0 && minmax.averaging_constant <= 1))
    fail(ErrorKind::Config, "calibration: averaging_constant {} is not in [0, 1]", minmax.averaging_constant);
  if (minmax.batches_per_chunk < 0)
    fail(ErrorKind::Config, "calibration: batches_per_chunk {} is negative", minmax.batches_per_chunk);
  if (method == CalibMethod::MinMax) return;
  const int64_t nb = num_bins_or_default();
  if (nb < 1 || nb > kMaxHistogramBins)
    fail(ErrorKind::Config, "calibration: num_bins {} is not in [1, {}]", nb, kMaxHistogramBins);
  if (method == CalibMethod::Percentile && !(percentile >= 0 && percentile <= 100))
    fail(ErrorKind::Config, "calibration: percentile {} is not in [0, 100]", percentile);
  if (method == CalibMethod::Entropy) {
    if (num_quantized_bins < 1)
      fail(ErrorKind::Config, "calibration: num_quantized_bins {} must be >= 1", num_quantized_bins);
    if (nb / 2 < num_quantized_bins / 2)
      fail(ErrorKind::Config, "calibration: num_bins {} must be at least num_quantized_bins {} for Entropy", nb,
           num_quantized_bins);
  }
}

struct Calibrator::Entry {
  bool scan_only;  // entropy_is_data_range(): the scan is the whole measurement
  std::unique_ptr<TailCollector> tails;  // percentile_tails, first pass
  bool no_tails = false;                 // too many values to keep: the second pass decides
  bool tails_non_finite = false;         // the tails (released after the first pass) saw NaN / infinity
  // A small tensor's values themselves (all batches, within Calibrator's stash budget): its one histogram is
  // built after the first pass when the tails cannot decide (a whole-number (1 - p) * total).
  std::vector<float> stash;
  int64_t stash_reserved = 0;            // values reserved in the budget; 0: not stashed (or abandoned)
  std::optional<TensorRange> resolved;   // from the tails or the stash: no second pass for this tensor
  std::variant<MinMaxCollector, HistogramCollector> c;
  RangeScanner scan;  // first pass of two_pass_histogram (min |x| only for an |x| histogram)
  bool observed = false, had_values = false;  // a batch was seen; one with at least one element
  explicit Entry(const CalibOptions& o)
      : scan_only(o.entropy_is_data_range()),
        c(o.method == CalibMethod::MinMax
              ? std::variant<MinMaxCollector, HistogramCollector>(MinMaxCollector(o.minmax))
              : std::variant<MinMaxCollector, HistogramCollector>(HistogramCollector(
                    o.method == CalibMethod::Percentile && o.symmetric_or_default() ? HistogramMode::Absolute
                                                                                    : HistogramMode::Value,
                    o.num_bins_or_default()))),
        scan(o.method == CalibMethod::Percentile && o.symmetric_or_default()) {}
  bool empty() const {  // no range from the values (see always_empty())
    if (resolved) return false;
    if (scan_only) return scan.empty();
    return std::visit([](const auto& x) { return x.empty(); }, c);
  }
  int64_t batches() const {
    if (scan_only || resolved) return scan.batches();
    if (const auto* m = std::get_if<MinMaxCollector>(&c)) return m->stats().batches;
    return std::get<HistogramCollector>(c).batches();
  }
  // Every batch had 0 elements: ORT's range [0, 0] (ReduceMin/ReduceMax of an empty tensor give +inf / -inf,
  // which its compute_scale_zp turns into [0, 0]; its histograms take min = max = 0 for an empty array).
  bool always_empty() const { return observed && !had_values; }
  bool saw_non_finite() const {
    return scan.saw_non_finite() || tails_non_finite || (tails && tails->saw_non_finite()) ||
           std::visit([](const auto& x) { return x.saw_non_finite(); }, c);
  }
};

std::vector<std::string> Calibrator::non_finite() const {
  std::vector<std::string> r;
  for (const auto& [name, e] : entries_)
    if (e->saw_non_finite()) r.push_back(name);
  std::sort(r.begin(), r.end());
  return r;
}

Calibrator::Calibrator(const std::vector<std::string>& tensors, CalibOptions opts) : opts_(std::move(opts)) {
  opts_.validate();
  for (const auto& t : tensors)
    if (!entries_.count(t)) entries_.emplace(t, std::make_unique<Entry>(opts_));
}

Calibrator::~Calibrator() = default;

int Calibrator::passes() const {
  return opts_.two_pass_histogram && opts_.method != CalibMethod::MinMax && !opts_.entropy_is_data_range() ? 2 : 1;
}

bool Calibrator::needs_pass(int pass) {
  if (pass <= 0) return true;
  if (pass >= passes()) return false;
  if (!tails_resolved_) {
    tails_resolved_ = true;
    int from_tails = 0, from_stash = 0;
    const auto mode = opts_.symmetric_or_default() ? HistogramMode::Absolute : HistogramMode::Value;
    for (auto& [name, e] : entries_)
      if (e->tails && !e->scan.empty()) {
        bool from_extremes = false;
        try {
          e->resolved =
              percentile_from_tails(e->scan, *e->tails, mode, opts_.num_bins_or_default(), opts_.percentile);
          from_extremes = e->resolved.has_value();
          if (!e->resolved && e->stash_reserved > 0) {  // the histogram of the stashed values, now
            HistogramCollector h(mode, opts_.num_bins_or_default());
            h.preset(e->scan);
            h.add(e->stash);
            e->resolved = percentile_range(h.histogram(), opts_.percentile);
          }
        } catch (const Error& err) {
          throw Error(err.kind(), fmt::format("calibration of tensor '{}': {}", name, err.what()));
        }
        if (e->resolved) ++(e->stash_reserved > 0 && !from_extremes ? from_stash : from_tails);
        e->tails_non_finite = e->tails->saw_non_finite();
        e->tails.reset();
        std::vector<float>().swap(e->stash);
      }
    OQ_DEBUG("calibration: {} ranges decided by the first pass's extreme values, {} by stashed values", from_tails,
             from_stash);
  }
  for (const auto& [name, e] : entries_)
    if (!e->resolved && !e->scan.empty()) return true;
  return false;
}

void Calibrator::begin_pass(int pass) {
  if (pass < 0 || pass >= passes())
    fail(ErrorKind::Runtime, "calibration: pass {} requested, this configuration has {}", pass, passes());
  if (pass < pass_) fail(ErrorKind::Runtime, "calibration: pass {} after pass {}", pass, pass_);
  if (pass == pass_) return;
  pass_ = pass;
  needs_pass(pass);  // resolves what the tails decide
  for (auto& [name, e] : entries_) {
    if (e->resolved) continue;
    try {
      std::get<HistogramCollector>(e->c).preset(e->scan);
    } catch (const Error& err) {
      throw Error(err.kind(), fmt::format("calibration of tensor '{}': {}", name, err.what()));
    }
  }
}

namespace {
[[noreturn]] void rethrow_for(const std::string& name, const Error& e) {
  throw Error(e.kind(), fmt::format("calibration of tensor '{}': {}", name, e.what()));
}
}  // namespace

// Percentile's first pass for one tensor, at its first batch: how many extreme values to keep (enough for the
// rank the percentile needs if every batch has this size; checked at the end), and whether to keep all its
// values too (only where the tails are predicted not to decide, and within the budget).
void Calibrator::start_tails(Entry& e, size_t batch_values) {
  const bool absolute = opts_.symmetric_or_default();
  const double side = absolute ? 1.0 - opts_.percentile / 100.0 : (100.0 - opts_.percentile) / 200.0;
  const double k = std::floor(side * static_cast<double>(expected_batches_) * static_cast<double>(batch_values)) + 65;
  if (k > static_cast<double>(int64_t{1} << 22)) {
    e.no_tails = true;
    return;
  }
  e.tails = std::make_unique<TailCollector>(static_cast<int64_t>(k), absolute, !absolute);
  const int64_t want = expected_batches_ * static_cast<int64_t>(batch_values);
  const auto mode = absolute ? HistogramMode::Absolute : HistogramMode::Value;
  if (percentile_ranks(want, mode, opts_.num_bins_or_default(), opts_.percentile) || want > kStashPerTensor) return;
  if (stash_used_.fetch_add(want) + want <= kStashTotal)
    e.stash_reserved = want;
  else
    stash_used_ -= want;
}

void Calibrator::observe(const std::string& name, const Tensor& value) {
  if (value.dtype() != DType::Float) return;
  auto it = entries_.find(name);
  auto ch = channel_.empty() ? channel_.end() : channel_.find(name);
  if (it == entries_.end() && ch == channel_.end()) return;
  try {
    if (it != entries_.end()) {
      const std::span<const float> x = value.span<float>();
      Entry& e = *it->second;
      e.observed = true;
      e.had_values |= !x.empty();
      if ((passes() == 2 && pass_ == 0) || e.scan_only) {
        const bool tails = passes() == 2 && opts_.method == CalibMethod::Percentile && opts_.percentile_tails &&
                           expected_batches_ > 0 && !e.no_tails;
        if (tails && !e.tails && !x.empty()) start_tails(e, x.size());  // sized by the first batch with values
        if (e.tails)
          e.tails->add(x, &e.scan);  // the range scan in the same pass
        else
          e.scan.add(x);
        if (e.stash_reserved > 0) {
          if (static_cast<int64_t>(e.stash.size() + x.size()) <= e.stash_reserved) {
            e.stash.insert(e.stash.end(), x.begin(), x.end());
          } else {  // more values than planned: give the stash up (the second pass decides, if needed)
            std::vector<float>().swap(e.stash);
            stash_used_ -= e.stash_reserved;
            e.stash_reserved = 0;
          }
        }
      } else if (!e.resolved) {
        std::visit([&](auto& c) { c.add(x); }, e.c);
      }
    }
    if (ch != channel_.end()) ch->second.add(value);
  } catch (const Error& e) {
    rethrow_for(name, e);
  }
}

exec::Observer Calibrator::observer() {
  return [this](const std::string& name, const Tensor& value) { observe(name, value); };
}

void Calibrator::track_channel_absmax(const std::string& name, int axis) {
  channel_.insert_or_assign(name, PerChannelAbsMaxCollector(axis));
}

const std::vector<float>* Calibrator::channel_absmax(const std::string& name) const {
  auto it = channel_.find(name);
  if (it == channel_.end() || it->second.empty()) return nullptr;
  return &it->second.absmax();
}

std::map<std::string, TensorRange> Calibrator::compute() const {
  bool pending_pass = pass_ != passes() - 1;
  if (pending_pass && tails_resolved_) {  // needs_pass(pass_ + 1) said whether the tails decided everything
    pending_pass = false;
    for (const auto& [name, e] : entries_) pending_pass |= !e->resolved && !e->scan.empty();
  }
  if (pending_pass)
    fail(ErrorKind::Runtime, "calibration: ranges requested after pass {} of {}", pass_ + 1, passes());
  std::vector<std::pair<const std::string*, const Entry*>> pending;
  for (const auto& [name, e] : entries_)
    if (!e->empty() && !e->always_empty()) pending.emplace_back(&name, e.get());
  std::sort(pending.begin(), pending.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
  std::vector<TensorRange> out(pending.size());
  std::vector<std::exception_ptr> errs(pending.size());
  const bool sym = opts_.symmetric_or_default();
  // Entropy's threshold search is O(bins^2) per tensor: spread tensors over threads.
  parallel_for(static_cast<int64_t>(pending.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      try {
        const auto& c = pending[i].second->c;
        if (pending[i].second->resolved) {
          out[i] = *pending[i].second->resolved;
        } else if (pending[i].second->scan_only) {
          const RangeScanner& s = pending[i].second->scan;
          out[i] = {s.min(), s.max()};
        } else if (const auto* m = std::get_if<MinMaxCollector>(&c)) {
          out[i] = minmax_range(m->stats(), sym);
        } else {
          const Histogram& h = std::get<HistogramCollector>(c).histogram();
          out[i] = opts_.method == CalibMethod::Entropy ? entropy_range(h, opts_.num_quantized_bins)
                                                        : percentile_range(h, opts_.percentile);
        }
      } catch (...) {
        errs[i] = std::current_exception();
      }
    }
  });
  std::map<std::string, TensorRange> result;
  for (size_t i = 0; i < pending.size(); ++i) {
    if (errs[i]) {
      try {
        std::rethrow_exception(errs[i]);
      } catch (const Error& e) {
        rethrow_for(*pending[i].first, e);
      }
    }
    result.emplace(*pending[i].first, out[i]);
  }
  for (const auto& [name, e] : entries_)
    if (e->always_empty()) result.emplace(name, TensorRange{0.f, 0.f});
  return result;
}

std::vector<std::string> Calibrator::unseen() const {
  std::vector<std::string> v;
  for (const auto& [name, e] : entries_)
    if (e->empty() && !e->always_empty()) v.push_back(name);
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::string> Calibrator::always_empty() const {
  std::vector<std::string> v;
  for (const auto& [name, e] : entries_)
    if (e->always_empty()) v.push_back(name);
  std::sort(v.begin(), v.end());
  return v;
}

int64_t Calibrator::batches(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? 0 : it->second->batches();
}

}  // namespace oq::calib
