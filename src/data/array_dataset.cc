#include "data/array_dataset.h"

#include "data/npy.h"
#include "data/npz.h"

namespace oq::data {

namespace {

bool castable(DType t) {
  switch (t) {
    case DType::Float: case DType::Double: case DType::Float16: case DType::UInt8: case DType::Int8:
    case DType::Int16: case DType::UInt16: case DType::Int32: case DType::UInt32: case DType::Int64:
    case DType::UInt64: case DType::Bool:
      return true;
    default:
      return false;
  }
}

class ArrayDataset : public Dataset {
 public:
  struct Bound {
    InputSpec input;
    NpyArray array;
  };

  ArrayDataset(std::string path, std::vector<Bound> arrays, std::optional<NpyArray> labels,
               const SelectionOptions& sel)
      : path_(std::move(path)), arrays_(std::move(arrays)) {
    OQ_CHECK(!arrays_.empty(), "no arrays for {}", path_);
    rows_ = arrays_[0].array.rows();
    for (const auto& b : arrays_) {
      if (b.array.rank() == 0)
        fail(ErrorKind::Data, "{}: array '{}' is a scalar; data arrays need a leading sample axis", path_,
             b.array.label());
      check_input_shape(b.input, b.array.shape(), path_, name_of(b.array));
      if (b.array.rows() != rows_)
        fail(ErrorKind::Data, "{}: array '{}' has {} rows but '{}' has {}", path_, name_of(b.array),
             b.array.rows(), name_of(arrays_[0].array), rows_);
      if (b.input.dtype != DType::Undefined && b.input.dtype != b.array.dtype() &&
          (!castable(b.array.dtype()) || !castable(b.input.dtype)))
        fail(ErrorKind::Data, "{}: array '{}' of dtype {} cannot be converted to model input '{}' of dtype {}",
             path_, name_of(b.array), dtype_name(b.array.dtype()), b.input.name, dtype_name(b.input.dtype));
    }
    if (labels) {
      const NpyArray& y = *labels;
      bool shape_ok = y.rank() == 1 || (y.rank() == 2 && y.shape()[1] == 1);
      if (!shape_ok || !(is_integer(y.dtype()) || y.dtype() == DType::Bool))
        fail(ErrorKind::Data, "{}: labels 'y' must be a 1-D integer array, got {} of shape {}", path_,
             dtype_name(y.dtype()), shape_str(y.shape()));
      if (y.rows() != rows_)
        fail(ErrorKind::Data, "{}: labels 'y' have {} entries but '{}' has {} rows", path_, y.rows(),
             name_of(arrays_[0].array), rows_);
      labels_ = y.tensor().to_int64s();
      has_labels_ = true;
    }
    sel_ = select_indices(rows_, sel, path_);
  }

  int64_t size() const override { return static_cast<int64_t>(sel_.size()); }
  bool has_labels() const override { return has_labels_; }
  int64_t label(int64_t i) const override {
    OQ_CHECK(has_labels_, "{} has no labels", path_);
    return labels_[static_cast<size_t>(row(i))];
  }
  std::string sample_name(int64_t i) const override { return fmt::format("{} row {}", path_, row(i)); }
  std::string describe() const override {
    return fmt::format("{} ({} of {} rows{})", path_, sel_.size(), rows_, has_labels_ ? ", labelled" : "");
  }

  Sample sample(int64_t i) const override {
    int64_t r = row(i);
    Sample s;
    for (const auto& b : arrays_) {
      Tensor t = b.array.row(r);
      if (b.input.dtype != DType::Undefined && t.dtype() != b.input.dtype) t = t.cast(b.input.dtype);
      s.emplace(b.input.name, std::move(t));
    }
    return s;
  }

 private:
  static std::string name_of(const NpyArray& a) {
    const std::string& l = a.label();
    auto c = l.rfind(':');
    return c == std::string::npos ? l : l.substr(c + 1);
  }
  int64_t row(int64_t i) const {
    OQ_CHECK(i >= 0 && i < size(), "sample {} of {} in {}", i, size(), path_);
    return sel_[static_cast<size_t>(i)];
  }

  std::string path_;
  std::vector<Bound> arrays_;
  int64_t rows_ = 0;
  bool has_labels_ = false;
  std::vector<int64_t> labels_;
  std::vector<int64_t> sel_;
};

std::string input_names(const std::vector<InputSpec>& inputs) {
  std::string r;
  for (const auto& in : inputs) r += (r.empty() ? "" : ", ") + in.name;
  return r;
}

}  // namespace

DatasetPtr open_npy_dataset(const std::string& path, const std::vector<InputSpec>& inputs,
                            const SelectionOptions& sel) {
  if (inputs.size() != 1)
    fail(ErrorKind::Data, "{}: an .npy file feeds a single-input model, but the model has {} inputs ({}); use an "
         ".npz with arrays named after the inputs", path, inputs.size(), input_names(inputs));
  std::vector<ArrayDataset::Bound> arrays{{inputs[0], NpyArray::open(path)}};
  return std::make_shared<ArrayDataset>(path, std::move(arrays), std::nullopt, sel);
}

DatasetPtr open_npz_dataset(const std::string& path, const std::vector<InputSpec>& inputs,
                            const SelectionOptions& sel) {
  NpzArchive z = NpzArchive::open(path);
  std::vector<ArrayDataset::Bound> arrays;
  bool all_named = true;
  for (const auto& in : inputs) all_named = all_named && in.name != "y" && z.has(in.name);
  if (all_named) {
    for (const auto& in : inputs) arrays.push_back({in, z.array(in.name)});
  } else if (inputs.size() == 1 && z.has("x")) {
    arrays.push_back({inputs[0], z.array("x")});
  } else if (inputs.size() == 1) {
    fail(ErrorKind::Data, "{} has no array 'x' (nor '{}', the model input's name); its members are: {}", path,
         inputs[0].name, z.names_str());
  } else {
    std::string missing;
    for (const auto& in : inputs)
      if (!z.has(in.name)) missing += (missing.empty() ? "" : ", ") + in.name;
    fail(ErrorKind::Data, "{} lacks arrays named after the model inputs ({} missing); its members are: {}", path,
         missing, z.names_str());
  }
  std::optional<NpyArray> labels;
  if (z.has("y")) labels = z.array("y");
  return std::make_shared<ArrayDataset>(path, std::move(arrays), std::move(labels), sel);
}

}  // namespace oq::data
