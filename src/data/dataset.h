// Calibration / evaluation data sets that stream: a Dataset gives random access to samples, decoding (or
// mapping) one at a time, so a set of 50 000 images never sits in memory. Sources:
//  * an .npy file (single-input models; no labels),
//  * an .npz archive: `x` (inputs) and optional `y` (integer labels), or, for any model, arrays named after
//    its inputs,
//  * an image folder: root/<class>/*.jpg|jpeg|png|bmp|gif (labels from the folder) or a flat folder (unlabelled),
//  * nothing: 10 random uniform [0,1) samples with a fixed seed (is_random() = true; the caller warns).
// Every source goes through the same selection: the list (sorted per class, files sorted by name) is shuffled
// once with a seed by Fisher–Yates over std::mt19937_64 (portable; see shuffled_permutation), and its first
// max(1, floor(N * split)) entries are kept.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/preprocess.h"

namespace oq::ir {
struct Graph;
}

namespace oq::data {

// A model input as the data layer needs it. shape: -1 for unknown dims (the batch dim is ignored);
// nullopt when even the rank is unknown (no shape check then; image data refuses it).
struct InputSpec {
  std::string name;
  DType dtype = DType::Float;
  std::optional<Shape> shape;
};
// The graph's real inputs (not initializers) as InputSpecs.
std::vector<InputSpec> input_specs(const ir::Graph& g);

// Input name -> tensor with a leading batch dim (an input without one, Dataset::unbatched_inputs: as it is fed).
using Sample = std::map<std::string, Tensor>;

// Concatenates samples along axis 0 (all must have the same inputs and trailing shapes).
Sample concat_samples(const std::vector<Sample>& parts);

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual bool has_labels() const = 0;
  // Sample i (0 <= i < size()) with batch dim 1. Thread-safe. Data error naming the file on failure.
  virtual Sample sample(int64_t i) const = 0;
  // Several samples concatenated along axis 0 (indices into this dataset).
  virtual Sample batch(std::span<const int64_t> indices) const;
  // Integer label of sample i; only when has_labels().
  virtual int64_t label(int64_t i) const = 0;
  // Where sample i comes from, for messages: a file path, or "file.npz row 17".
  virtual std::string sample_name(int64_t i) const = 0;
  // Where several samples come from, for messages: "file.npz rows 17, 3, 8" (up to 8 named, then "and N more").
  virtual std::string samples_name(std::span<const int64_t> indices) const;
  // One line: "image folder /data/val (500 of 1000 images, 10 classes, 224x224)".
  virtual std::string describe() const = 0;
  // Class names by label (image folders with classes); empty otherwise.
  virtual const std::vector<std::string>& class_names() const;
  // Selected samples the source left out when it was opened (undecodable images with skip_bad_files): they are
  // not part of size().
  virtual int64_t skipped() const { return 0; }
  // True for the random generator used when no data path is given.
  virtual bool is_random() const { return false; }
  // Model inputs that have no batch axis (a scalar input, or [3,4] fed [N,3,4]): their samples are fed one at a
  // time as they are, so batches hold one sample (check_fixed_batch requires batch size 1).
  virtual std::vector<std::string> unbatched_inputs() const { return {}; }
};

using DatasetPtr = std::shared_ptr<const Dataset>;

struct SelectionOptions {
  double split = 1.0;   // keep the first fraction (0 < split <= 1) of the shuffled list, at least 1 sample
  uint64_t seed = 123;
  bool shuffle = true;  // false: keep the sorted order
};

// Uniform integer in [0, bound) from `rng` by rejection (unbiased, portable): draw r until
// r >= (2^64 mod bound), return r mod bound.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound);
// Permutation of 0..n-1: p = identity; rng = std::mt19937_64(seed);
// for i = n-1 down to 1: j = uniform_below(rng, i + 1); swap(p[i], p[j]).
std::vector<int64_t> shuffled_permutation(int64_t n, uint64_t seed);
// Indices kept by `o` out of n sorted entries (shuffled once, first max(1, floor(n * split)) kept).
// Config error for split outside (0, 1]; Data error for n == 0.
std::vector<int64_t> select_indices(int64_t n, const SelectionOptions& o, const std::string& what);
// The number of samples a split keeps of n: max(1, floor(n * split)), at most n (select_indices' rule).
int64_t split_count(int64_t n, double split);
// A split (the shortest decimal) for which split_count(n, split) == m (1 <= m <= n), for messages that suggest one.
double split_keeping(int64_t n, int64_t m);

struct DataOptions {
  std::string path;  // .npy, .npz, or an image folder; empty = random data
  SelectionOptions selection;
  // Image folders.
  std::vector<std::string> class_names;  // classes to read (labels: their sorted order); empty: every folder
  bool skip_bad_files = false;           // warn and skip undecodable images instead of failing
  PreprocessOptions preprocess;
  // Random data.
  int64_t random_samples = 10;
  uint64_t random_seed = 0;
};

// Opens the data set for a model with these inputs. Errors name the path.
DatasetPtr open_dataset(const DataOptions& o, const std::vector<InputSpec>& inputs);

// Random uniform [0,1) samples for the inputs (unknown batch dim -> 1; other unknown dims are an error naming
// the input). Integer/bool inputs get the uniform values cast (i.e. zeros). Sample i depends only on (seed, i).
DatasetPtr make_random_dataset(const std::vector<InputSpec>& inputs, int64_t count, uint64_t seed);

// The first min(k, size) samples of `ds` (for inspection; at least 1 when ds is not empty).
DatasetPtr first_n(DatasetPtr ds, int64_t k);

// Checks that `shape` (a data array's shape, batch first) fits model input `in`: same rank, every known
// non-batch dim equal. Data error naming `file`, the array and both shapes otherwise.
void check_input_shape(const InputSpec& in, const Shape& shape, const std::string& file, const std::string& array);

}  // namespace oq::data
