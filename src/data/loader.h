// Loader: iterates a Dataset in batches, decoding/preprocessing on worker threads ahead of the consumer
// through a bounded queue. At most `capacity` batches are alive at once (being built or waiting), plus the
// one the consumer holds. Batches come out in dataset order whatever the thread count: batch b holds samples
// [b * batch_size, min((b + 1) * batch_size, size)) concatenated along axis 0 (the last one may be smaller).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"

namespace oq::data {

struct LoaderOptions {
  int64_t batch_size = 1;
  int threads = 0;   // worker threads; 0 = oq::num_threads()
  int capacity = 0;  // batches alive at once; 0 = 2 x threads
};

struct Batch {
  int64_t number = 0;            // 0-based position in the iteration
  std::vector<int64_t> indices;  // dataset indices of the samples held
  Sample inputs;                 // input name -> [n, ...]
  std::vector<int64_t> labels;   // one per sample when the dataset has labels
};

// The batch dimension the model inputs fix (nullopt: none does). Model error when two inputs fix different
// ones or one fixes 0.
std::optional<int64_t> fixed_batch_dim(const std::vector<InputSpec>& inputs);

// What makes a count of `n` samples fit a fixed batch of `b` (n % b != 0), for check_fixed_batch's message, e.g.
// "set quantization.iterative_quant_parameters.inspection_split: 0.32 (64 samples)".
using CountFix = std::function<std::string(int64_t b, int64_t n)>;

// Checks, before anything runs, that batches of `batch_size` samples of `ds` fit the model inputs whose batch
// dimension is fixed (every batch must hold exactly that many samples, the last one too). Config error naming
// the data, `batch_key` (the setting that chose batch_size, e.g. "dataset.batch_size") and what would work; for
// a sample count that is not a multiple of the batch, `count_fix` says what would work (default: "use a multiple
// of b samples (e.g. lo or hi)"). Inputs `ds` feeds without a batch axis (Dataset::unbatched_inputs) fix no batch
// dimension but need batch_size 1 (Config error naming the input and `batch_key` otherwise).
void check_fixed_batch(const std::vector<InputSpec>& inputs, const Dataset& ds, int64_t batch_size,
                       const std::string& batch_key, const CountFix& count_fix = {});

class Loader {
 public:
  Loader(DatasetPtr ds, LoaderOptions o);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t num_batches() const { return num_batches_; }
  const Dataset& dataset() const { return *ds_; }
  // The next batch in order; false when the data set is exhausted.
  // A batch that failed to build rethrows its error here, in order.
  bool next(Batch& out);

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };
  void work();
  void stop_workers();
  Batch build(int64_t b) const;

  DatasetPtr ds_;
  LoaderOptions opts_;
  int64_t num_batches_ = 0;
  std::mutex mu_;
  std::condition_variable room_, ready_cv_;
  int64_t next_claim_ = 0, next_consume_ = 0;
  bool stop_ = false;
  std::map<int64_t, Slot> ready_;
  std::vector<std::thread> workers_;
};

}  // namespace oq::data
