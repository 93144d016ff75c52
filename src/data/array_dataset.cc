#include "data/array_dataset.h"

#include <cctype>
#include <climits>
#include <utility>

#include "core/log.h"
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

// Value range of an integer (or bool) dtype, clamped to int64 (UInt64's top half is handled where it matters).
std::pair<int64_t, int64_t> int_range(DType t) {
  if (t == DType::Bool) return {0, 1};
  const int bits = dtype_bits(t);
  if (is_signed_integer(t)) return {bits >= 64 ? INT64_MIN : -(int64_t{1} << (bits - 1)),
                                    bits >= 64 ? INT64_MAX : (int64_t{1} << (bits - 1)) - 1};
  return {0, bits >= 63 ? INT64_MAX : (int64_t{1} << bits) - 1};
}

// Bits of magnitude an integer dtype can hold, and of exact integers a float dtype can hold (its precision).
int magnitude_bits(DType t) { return dtype_bits(t) - (is_signed_integer(t) ? 1 : 0); }
int float_precision(DType t) { return t == DType::Float16 ? 11 : t == DType::Float ? 24 : 53; }

class ArrayDataset : public Dataset {
 public:
  struct Bound {
    InputSpec input;
    NpyArray array;
    bool unbatched = false;  // the input has no batch axis: each row is fed with axis 0 removed
  };

  ArrayDataset(std::string path, std::vector<Bound> arrays, std::optional<NpyArray> labels,
               const SelectionOptions& sel)
      : path_(std::move(path)), arrays_(std::move(arrays)) {
    OQ_CHECK(!arrays_.empty(), "no arrays for {}", path_);
    rows_ = arrays_[0].array.rows();
    for (auto& b : arrays_) {
      if (b.array.rank() == 0)
        fail(ErrorKind::Data, "{}: array '{}' is a scalar; data arrays need a leading sample axis{}", path_,
             name_of(b.array), b.input.shape && b.input.shape->empty()
                 ? fmt::format(" (model input '{}' is a scalar: save one value per sample, shape [N])", b.input.name)
                 : "");
      b.unbatched = without_batch_axis(b);
      if (!b.unbatched) check_input_shape(b.input, b.array.shape(), path_, name_of(b.array));
      if (b.array.rows() != rows_)
        fail(ErrorKind::Data, "{}: array '{}' has {} rows but '{}' has {}", path_, name_of(b.array),
             b.array.rows(), name_of(arrays_[0].array), rows_);
      check_conversion(b.array.dtype(), b.input.dtype, path_, name_of(b.array), b.input.name);
    }
    if (labels) {
      const NpyArray& y = *labels;
      // One class index per row: integers of shape [N], or [N, 1] as Keras writes them (read as [N]). A bool,
      // float or one-hot [N, K] array is refused: read as class indices it would score against the wrong labels.
      bool shape_ok = y.rank() == 1 || (y.rank() == 2 && y.shape()[1] == 1);
      if (!shape_ok || !is_integer(y.dtype()))
        fail(ErrorKind::Data, "{}: labels 'y' must be an integer array of shape [N] or [N,1] (one class index per "
             "row), got {} of shape {}", path_, numpy_name(y.dtype()), shape_str(y.shape()));
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

  std::string samples_name(std::span<const int64_t> indices) const override {
    std::string rows;
    for (size_t k = 0; k < indices.size() && k < 8; ++k) rows += fmt::format("{}{}", k ? ", " : "", row(indices[k]));
    if (indices.size() > 8) rows += fmt::format(" and {} more", indices.size() - 8);
    return fmt::format("{} row{} {}", path_, indices.size() == 1 ? "" : "s", rows);
  }

  Sample sample(int64_t i) const override {
    int64_t r = row(i);
    Sample s;
    for (const auto& b : arrays_) {
      Tensor t = b.array.row(r);
      if (b.unbatched) t = t.reshaped(Shape(t.shape().begin() + 1, t.shape().end()));
      t = convert_for_input(t, b.input.dtype, path_, name_of(b.array), r, b.input.name);
      s.emplace(b.input.name, std::move(t));
    }
    return s;
  }

  std::vector<std::string> unbatched_inputs() const override {
    std::vector<std::string> r;
    for (const auto& b : arrays_)
      if (b.unbatched) r.push_back(b.input.name);
    return r;
  }

 private:
  // A model input with no batch axis (a scalar, or a shape whose first dim is fixed, e.g. [3,4]) fed an array of
  // one more axis whose trailing dims match ([N] for a scalar, [N,3,4]): its N rows are the samples, each fed as it
  // is, axis 0 removed, as ONNX Runtime's quantize_static takes them from a data reader.
  bool without_batch_axis(const Bound& b) const {
    if (!b.input.shape) return false;
    const Shape& m = *b.input.shape;
    const Shape& a = b.array.shape();
    if (a.size() != m.size() + 1 || (!m.empty() && m[0] < 0)) return false;
    for (size_t d = 0; d < m.size(); ++d)
      if (m[d] >= 0 && m[d] != a[d + 1]) return false;
    OQ_INFO("{}: model input '{}' of shape {} has no batch axis: the {} rows of array '{}' {} are fed one by one "
            "(batch size 1)", path_, b.input.name, shape_str(m), a[0], name_of(b.array), shape_str(a));
    return true;
  }
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

std::string numpy_name(DType t) {
  switch (t) {
    case DType::Float: return "float32";
    case DType::Double: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Bool: return "bool";
    case DType::Int8: return "int8";
    case DType::UInt8: return "uint8";
    case DType::Int16: return "int16";
    case DType::UInt16: return "uint16";
    case DType::Int32: return "int32";
    case DType::UInt32: return "uint32";
    case DType::Int64: return "int64";
    case DType::UInt64: return "uint64";
    default: {
      std::string n(dtype_name(t));
      for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return n;
    }
  }
}

Conversion conversion_of(DType from, DType to) {
  if (from == to) return Conversion::None;
  if (!castable(from) || !castable(to)) return Conversion::Refused;
  const bool float_from = is_float(from), float_to = is_float(to);
  if (float_from && !float_to) return Conversion::Refused;
  if (float_from) return dtype_size(to) > dtype_size(from) ? Conversion::Exact : Conversion::Lossy;
  if (from == DType::Bool) return Conversion::Exact;
  if (float_to) return magnitude_bits(from) <= float_precision(to) ? Conversion::Exact : Conversion::Lossy;
  if (to == DType::Bool) return Conversion::Checked;
  const auto [flo, fhi] = int_range(from);
  const auto [tlo, thi] = int_range(to);
  const bool fits = flo >= tlo && (from == DType::UInt64 ? to == DType::UInt64 : fhi <= thi);
  return fits ? Conversion::Exact : Conversion::Checked;
}

void check_conversion(DType from, DType to, const std::string& file, const std::string& array,
                      const std::string& input) {
  if (to == DType::Undefined) return;
  const std::string f = numpy_name(from), t = numpy_name(to);
  switch (conversion_of(from, to)) {
    case Conversion::None: return;
    case Conversion::Exact:
      OQ_INFO("{}: array '{}' ({}) is converted to {} for model input '{}' (exactly)", file, array, f, t, input);
      return;
    case Conversion::Checked:
      OQ_INFO("{}: array '{}' ({}) is converted to {} for model input '{}'; every value is checked to fit", file,
              array, f, t, input);
      return;
    case Conversion::Lossy:
      OQ_WARN("{}: array '{}' ({}) is converted to {} for model input '{}', which rounds the values {} cannot "
              "hold exactly (save the array as {} to feed it as it is)", file, array, f, t, input, t, t);
      return;
    case Conversion::Refused:
      if (is_float(from) && castable(from) && castable(to))
        fail(ErrorKind::Data, "{}: array '{}' is {} but model input '{}' is {}: floating-point data is not "
             "converted to {} (ONNX Runtime refuses such a feed too); save the array as {} (numpy: "
             "a.astype(np.{}) once it holds whole numbers)", file, array, f, input, t, t, t, t);
      fail(ErrorKind::Data, "{}: array '{}' of dtype {} cannot be converted to model input '{}' of dtype {}", file,
           array, f, input, t);
  }
}

Tensor convert_for_input(const Tensor& t, DType to, const std::string& file, const std::string& array, int64_t row,
                         const std::string& input) {
  if (to == DType::Undefined || t.dtype() == to) return t;
  if (conversion_of(t.dtype(), to) != Conversion::Checked) return t.cast(to);
  const auto [lo, hi] = int_range(to);
  auto refuse = [&](const std::string& v) {
    fail(ErrorKind::Data, "{}: array '{}'{} holds the value {}, which model input '{}' of type {} cannot hold{}", file,
         array, row >= 0 ? fmt::format(" row {}", row) : "", v, input, numpy_name(to),
         to == DType::Bool ? " (a bool input takes 0 or 1)" : "");
  };
  if (t.dtype() == DType::UInt64) {
    for (uint64_t v : t.span<uint64_t>())
      if (v > static_cast<uint64_t>(hi)) refuse(std::to_string(v));
  }
  std::vector<int64_t> v = t.to_int64s();
  if (t.dtype() != DType::UInt64)
    for (int64_t x : v)
      if (x < lo || x > hi) refuse(std::to_string(x));
  if (to != DType::Bool) return t.cast(to);
  Tensor out(DType::Bool, t.shape());
  auto* d = static_cast<uint8_t*>(out.raw());
  for (size_t i = 0; i < v.size(); ++i) d[i] = v[i] != 0;
  return out;
}

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
  // Members that feed nothing: say so once, so that a misspelt or extra array is not silently dropped.
  std::string ignored;
  bool x_ignored = false;
  for (const auto& name : z.names()) {
    if (name == "y") continue;
    bool used = false;
    for (const auto& b : arrays) used = used || (all_named ? b.input.name == name : name == "x");
    if (used) continue;
    ignored += (ignored.empty() ? "'" : ", '") + name + "'";
    x_ignored = x_ignored || name == "x";
  }
  if (!ignored.empty())
    OQ_WARN("{}: ignoring array(s) {}: they match no model input (the model's inputs: {}){}", path, ignored,
            input_names(inputs),
            x_ignored ? "; 'x' is used only when the inputs do not all have arrays of their own name" : "");
  std::optional<NpyArray> labels;
  if (z.has("y")) labels = z.array("y");
  return std::make_shared<ArrayDataset>(path, std::move(arrays), std::move(labels), sel);
}

}  // namespace oq::data
