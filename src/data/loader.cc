#include "data/loader.h"

#include <algorithm>

#include "core/parallel.h"

namespace oq::data {

std::optional<int64_t> fixed_batch_dim(const std::vector<InputSpec>& inputs) {
  const InputSpec* fixed = nullptr;
  for (const auto& in : inputs) {
    if (!in.shape || in.shape->empty() || (*in.shape)[0] < 0) continue;
    if (fixed && (*fixed->shape)[0] != (*in.shape)[0])
      fail(ErrorKind::Model, "model inputs '{}' and '{}' have different fixed batch dimensions ({} and {}): no batch "
           "fits both", fixed->name, in.name, (*fixed->shape)[0], (*in.shape)[0]);
    fixed = &in;
  }
  if (!fixed) return std::nullopt;
  if ((*fixed->shape)[0] == 0)
    fail(ErrorKind::Model, "model input '{}' has a batch dimension of 0: no data fits it", fixed->name);
  return (*fixed->shape)[0];
}

void check_fixed_batch(const std::vector<InputSpec>& all_inputs, const Dataset& ds, int64_t batch_size,
                       const std::string& batch_key, const CountFix& count_fix) {
  const std::vector<std::string> unbatched = ds.unbatched_inputs();
  if (!unbatched.empty() && batch_size > 1)
    fail(ErrorKind::Config, "{}: model input '{}' has no batch axis (its samples are fed one at a time), but {} is {}: "
         "set {}: 1", ds.describe(), unbatched[0], batch_key, batch_size, batch_key);
  std::vector<InputSpec> inputs;  // those with a batch axis
  for (const auto& in : all_inputs)
    if (std::find(unbatched.begin(), unbatched.end(), in.name) == unbatched.end()) inputs.push_back(in);
  std::optional<int64_t> fixed;
  try {
    fixed = fixed_batch_dim(inputs);
  } catch (const Error& e) {
    fail(e.kind(), "{}: {}", ds.describe(), e.what());
  }
  if (!fixed) return;
  std::string input;
  for (const auto& in : inputs)
    if (in.shape && !in.shape->empty() && (*in.shape)[0] >= 0) input = in.name;
  const int64_t b = *fixed, n = ds.size(), bs = std::max<int64_t>(batch_size, 1);
  const std::string whole = n % b == 0 ? "" : fmt::format(
      ", with a number of samples that is a multiple of {} (the data gives {}; the last batch would hold {})", b, n,
      n % b);
  if (bs != b)
    fail(ErrorKind::Config, "{}: model input '{}' has a fixed batch dimension of {}, but {} is {}: set {}: {}{} or "
         "give the model a dynamic batch dimension", ds.describe(), input, b, batch_key, bs, batch_key, b, whole);
  if (n % b == 0) return;
  std::string fix;
  if (count_fix) {
    fix = count_fix(b, n);
  } else {
    const int64_t lo = n - n % b, hi = lo + b;
    fix = lo > 0 ? fmt::format("use a multiple of {} samples (e.g. {} or {})", b, lo, hi)
                 : fmt::format("use a multiple of {} samples (e.g. {})", b, hi);
  }
  fail(ErrorKind::Config, "{}: model input '{}' has a fixed batch dimension of {} ({} is {}), but the data gives {} "
       "samples, so the last batch would hold {}: {} or give the model a dynamic batch dimension", ds.describe(),
       input, b, batch_key, bs, n, n % b, fix);
}

Loader::Loader(DatasetPtr ds, LoaderOptions o) : ds_(std::move(ds)), opts_(o) {
  if (opts_.batch_size < 1) fail(ErrorKind::Config, "batch size must be at least 1, got {}", opts_.batch_size);
  if (opts_.batch_size > 1 && !ds_->unbatched_inputs().empty())  // samples without a batch axis do not concatenate
    fail(ErrorKind::Config, "{}: model input '{}' has no batch axis: batches hold one sample (batch size {} given)",
         ds_->describe(), ds_->unbatched_inputs()[0], opts_.batch_size);
  int64_t n = ds_->size();
  num_batches_ = (n + opts_.batch_size - 1) / opts_.batch_size;
  int threads = opts_.threads > 0 ? opts_.threads : num_threads();
  threads = static_cast<int>(std::clamp<int64_t>(num_batches_, 1, std::max(threads, 1)));
  if (opts_.capacity <= 0) opts_.capacity = 2 * threads;
  opts_.capacity = std::max(opts_.capacity, 1);
  if (num_batches_ == 0) return;
  workers_.reserve(static_cast<size_t>(threads));
  try {
    for (int t = 0; t < threads; ++t)
      workers_.push_back(start_thread("data loading", t + 1, threads, [this] { work(); }));
  } catch (...) {  // the destructor does not run for a constructor that throws: stop the started ones here
    stop_workers();
    throw;
  }
}

Loader::~Loader() { stop_workers(); }

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  room_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

Batch Loader::build(int64_t b) const {
  Batch out;
  out.number = b;
  int64_t begin = b * opts_.batch_size, end = std::min(begin + opts_.batch_size, ds_->size());
  std::vector<Sample> parts;
  for (int64_t i = begin; i < end; ++i) {
    parts.push_back(ds_->sample(i));
    out.indices.push_back(i);
    if (ds_->has_labels()) out.labels.push_back(ds_->label(i));
  }
  if (!parts.empty()) out.inputs = concat_samples(parts);
  return out;
}

void Loader::work() {
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      room_.wait(lock, [&] {
        return stop_ || next_claim_ >= num_batches_ || next_claim_ < next_consume_ + opts_.capacity;
      });
      if (stop_ || next_claim_ >= num_batches_) return;
      b = next_claim_++;
    }
    Slot slot;
    try {
      slot.batch = build(b);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.emplace(b, std::move(slot));
    }
    ready_cv_.notify_all();
  }
}

bool Loader::next(Batch& out) {
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (next_consume_ >= num_batches_) return false;
    ready_cv_.wait(lock, [&] { return ready_.count(next_consume_) > 0; });
    auto it = ready_.find(next_consume_);
    slot = std::move(it->second);
    ready_.erase(it);
    ++next_consume_;
  }
  room_.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  out = std::move(slot.batch);
  return true;
}

}  // namespace oq::data
