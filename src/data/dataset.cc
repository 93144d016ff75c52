#include "data/dataset.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "data/array_dataset.h"
#include "data/image_folder.h"
#include "ir/graph.h"

namespace oq::data {

std::vector<InputSpec> input_specs(const ir::Graph& g) {
  std::vector<InputSpec> r;
  for (const ir::ValueInfo* v : g.real_inputs()) r.push_back({v->name, v->dtype, v->static_shape()});
  return r;
}

Sample concat_samples(const std::vector<Sample>& parts) {
  OQ_CHECK(!parts.empty(), "concat of no samples");
  if (parts.size() == 1) return parts[0];
  Sample out;
  for (const auto& [name, first] : parts[0]) {
    Shape s = first.shape();
    OQ_CHECK(!s.empty(), "sample '{}' has no batch dim", name);
    int64_t rows = 0;
    for (const auto& p : parts) {
      auto it = p.find(name);
      OQ_CHECK(it != p.end(), "sample lacks input '{}'", name);
      const Tensor& t = it->second;
      OQ_CHECK(t.dtype() == first.dtype() && t.rank() == first.rank() &&
                   std::equal(t.shape().begin() + 1, t.shape().end(), s.begin() + 1),
               "samples of '{}' differ: {} vs {}", name, shape_str(t.shape()), shape_str(s));
      rows += t.dim(0);
    }
    s[0] = rows;
    Tensor cat(first.dtype(), s);
    auto* dst = static_cast<uint8_t*>(cat.raw());
    for (const auto& p : parts) {
      const Tensor& t = p.at(name);
      if (t.nbytes()) std::memcpy(dst, t.raw(), t.nbytes());
      dst += t.nbytes();
    }
    out.emplace(name, std::move(cat));
  }
  return out;
}

Sample Dataset::batch(std::span<const int64_t> indices) const {
  std::vector<Sample> parts;
  parts.reserve(indices.size());
  for (int64_t i : indices) parts.push_back(sample(i));
  return concat_samples(parts);
}

std::string Dataset::samples_name(std::span<const int64_t> indices) const {
  std::string r;
  for (size_t k = 0; k < indices.size() && k < 8; ++k) r += (k ? ", " : "") + sample_name(indices[k]);
  if (indices.size() > 8) r += fmt::format(" and {} more", indices.size() - 8);
  return r;
}

const std::vector<std::string>& Dataset::class_names() const {
  static const std::vector<std::string> kNone;
  return kNone;
}

// ---------------------------------------------------------------------------------------------- selection

uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  OQ_CHECK(bound > 0, "uniform_below(0)");
  const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

std::vector<int64_t> shuffled_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i >= 1; --i) {
    auto j = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(i) + 1));
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(j)]);
  }
  return p;
}

std::vector<int64_t> select_indices(int64_t n, const SelectionOptions& o, const std::string& what) {
  if (!(o.split > 0.0 && o.split <= 1.0))
    fail(ErrorKind::Config, "split must be in (0, 1], got {} (data: {})", o.split, what);
  if (n <= 0) fail(ErrorKind::Data, "{} holds no samples", what);
  std::vector<int64_t> p;
  if (o.shuffle) {
    p = shuffled_permutation(n, o.seed);
  } else {
    p.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  }
  p.resize(static_cast<size_t>(split_count(n, o.split)));
  return p;
}

int64_t split_count(int64_t n, double split) {
  auto keep = static_cast<int64_t>(std::floor(static_cast<double>(n) * split));
  return std::clamp<int64_t>(keep, 1, std::max<int64_t>(n, 1));
}

double split_keeping(int64_t n, int64_t m) {
  OQ_CHECK(n >= 1 && m >= 1 && m <= n, "split_keeping({}, {})", n, m);
  // m / n itself, or a value just above it, rounded to as few significant digits as still keep m.
  for (double target : {static_cast<double>(m) / static_cast<double>(n),
                        (static_cast<double>(m) + 0.5) / static_cast<double>(n)}) {
    for (int digits = 1; digits <= 17; ++digits) {
      const double s = std::stod(fmt::format("{:.{}g}", target, digits));
      if (s > 0.0 && s <= 1.0 && split_count(n, s) == m) return s;
    }
  }
  return (static_cast<double>(m) + 0.5) / static_cast<double>(n);
}

void check_input_shape(const InputSpec& in, const Shape& shape, const std::string& file, const std::string& array) {
  if (!in.shape) return;
  const Shape& m = *in.shape;
  bool ok = m.size() == shape.size();
  for (size_t d = 1; ok && d < m.size(); ++d) ok = m[d] < 0 || m[d] == shape[d];
  if (!ok) {
    std::string ms = "[";
    for (size_t d = 0; d < m.size(); ++d) ms += fmt::format("{}{}", d ? "," : "", m[d] < 0 ? "?" : std::to_string(m[d]));
    ms += "]";
    fail(ErrorKind::Data, "{}: array '{}' has shape {} but model input '{}' expects {} (batch dim aside)", file,
         array, shape_str(shape), in.name, ms);
  }
}

// ---------------------------------------------------------------------------------------------- random

namespace {

class RandomDataset : public Dataset {
 public:
  RandomDataset(std::vector<InputSpec> inputs, int64_t count, uint64_t seed)
      : inputs_(std::move(inputs)), count_(count), seed_(seed) {
    for (auto& in : inputs_) {
      if (!in.shape) fail(ErrorKind::Data, "model input '{}' has no known shape; random data needs one", in.name);
      Shape s = *in.shape;
      for (size_t d = 0; d < s.size(); ++d) {
        if (s[d] >= 0) continue;
        if (d == 0)
          s[d] = 1;
        else
          fail(ErrorKind::Data, "model input '{}' of shape {} has a dynamic dim {}; give a data path", in.name,
               shape_str(*in.shape), d);
      }
      if (!s.empty()) s[0] = 1;
      shapes_.push_back(s);
    }
  }
  int64_t size() const override { return count_; }
  bool has_labels() const override { return false; }
  int64_t label(int64_t) const override { fail(ErrorKind::Runtime, "internal error: random data has no labels"); }
  std::string sample_name(int64_t i) const override { return "random sample " + std::to_string(i); }
  std::string describe() const override {
    return fmt::format("{} random uniform [0,1) samples (seed {})", count_, seed_);
  }
  bool is_random() const override { return true; }

  Sample sample(int64_t i) const override {
    OQ_CHECK(i >= 0 && i < count_, "random sample {} of {}", i, count_);
    std::mt19937_64 rng(seed_ ^ (static_cast<uint64_t>(i + 1) * 0x9E3779B97F4A7C15ull));
    Sample s;
    for (size_t k = 0; k < inputs_.size(); ++k) {
      Tensor t(inputs_[k].dtype == DType::Double ? DType::Double : DType::Float, shapes_[k]);
      if (t.dtype() == DType::Double) {
        for (double& v : t.span<double>()) v = static_cast<double>(rng() >> 11) * 0x1.0p-53;
      } else {
        for (float& v : t.span<float>()) v = static_cast<float>(rng() >> 40) * 0x1.0p-24f;
      }
      s.emplace(inputs_[k].name, t.dtype() == inputs_[k].dtype ? t : t.cast(inputs_[k].dtype));
    }
    return s;
  }

 private:
  std::vector<InputSpec> inputs_;
  std::vector<Shape> shapes_;
  int64_t count_;
  uint64_t seed_;
};

class FirstN : public Dataset {
 public:
  FirstN(DatasetPtr base, int64_t n) : base_(std::move(base)), n_(n) {}
  int64_t size() const override { return n_; }
  bool has_labels() const override { return base_->has_labels(); }
  Sample sample(int64_t i) const override { return base_->sample(check(i)); }
  Sample batch(std::span<const int64_t> idx) const override {
    for (int64_t i : idx) check(i);
    return base_->batch(idx);
  }
  int64_t label(int64_t i) const override { return base_->label(check(i)); }
  std::string sample_name(int64_t i) const override { return base_->sample_name(check(i)); }
  std::string samples_name(std::span<const int64_t> idx) const override {
    for (int64_t i : idx) check(i);
    return base_->samples_name(idx);
  }
  std::string describe() const override { return fmt::format("first {} of {}", n_, base_->describe()); }
  const std::vector<std::string>& class_names() const override { return base_->class_names(); }
  int64_t skipped() const override { return base_->skipped(); }
  bool is_random() const override { return base_->is_random(); }
  std::vector<std::string> unbatched_inputs() const override { return base_->unbatched_inputs(); }

 private:
  int64_t check(int64_t i) const {
    OQ_CHECK(i >= 0 && i < n_, "sample {} of {}", i, n_);
    return i;
  }
  DatasetPtr base_;
  int64_t n_;
};

bool ends_with_ci(const std::string& s, const std::string& suf) {
  if (s.size() < suf.size()) return false;
  for (size_t i = 0; i < suf.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - suf.size() + i])) != suf[i]) return false;
  return true;
}

}  // namespace

DatasetPtr make_random_dataset(const std::vector<InputSpec>& inputs, int64_t count, uint64_t seed) {
  if (count <= 0) fail(ErrorKind::Config, "random data needs at least 1 sample, got {}", count);
  return std::make_shared<RandomDataset>(inputs, count, seed);
}

DatasetPtr first_n(DatasetPtr ds, int64_t k) {
  int64_t n = std::min(k, ds->size());
  if (ds->size() > 0) n = std::max<int64_t>(n, 1);
  return std::make_shared<FirstN>(std::move(ds), n);
}

DatasetPtr open_dataset(const DataOptions& o, const std::vector<InputSpec>& inputs) {
  if (inputs.empty()) fail(ErrorKind::Model, "the model has no inputs to feed data to");
  if (o.path.empty()) return make_random_dataset(inputs, o.random_samples, o.random_seed);
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(o.path, ec)) fail(ErrorKind::Io, "data path not found: {}", o.path);
  if (fs::is_directory(o.path, ec)) return open_image_folder(o, inputs);
  if (ends_with_ci(o.path, ".npz")) return open_npz_dataset(o.path, inputs, o.selection);
  if (ends_with_ci(o.path, ".npy")) return open_npy_dataset(o.path, inputs, o.selection);
  fail(ErrorKind::Data, "data path {} is neither an .npy/.npz file nor an image folder", o.path);
}

}  // namespace oq::data
