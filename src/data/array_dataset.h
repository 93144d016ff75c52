// Data sets over NumPy arrays: an .npy file (single-input models) or an .npz archive (`x` + optional `y`
// labels, or arrays named after the model's inputs). Arrays are memory-mapped (deflated .npz members are
// inflated to a mapped temporary file); a sample is one row along axis 0, converted to the model input's dtype
// by the rules of conversion_of (docs/config.md, "Which arrays are used, and their types").
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace oq::data {

DatasetPtr open_npy_dataset(const std::string& path, const std::vector<InputSpec>& inputs,
                            const SelectionOptions& sel);
// Arrays used: those named after the model inputs when every input has one (`x` and any other array is then
// ignored, with a warning); else `x` for a single-input model; else an error. `y`: integer labels.
DatasetPtr open_npz_dataset(const std::string& path, const std::vector<InputSpec>& inputs,
                            const SelectionOptions& sel);

// How an array of dtype `array` reaches a model input of dtype `input` (ONNX Runtime accepts only the exact
// type; onnxquant converts what it can convert faithfully and says so once per array).
enum class Conversion {
  None,     // same dtype
  Exact,    // every value converts exactly (wider integer or float, bool, small integers to float): info
  Checked,  // integer to a narrower integer type or to bool: each value is checked to fit when read: info
  Lossy,    // values may be rounded (float64 -> float32/float16, wide integers -> float): warning
  Refused,  // floating point -> integer or bool, or a dtype with no conversion (complex, string): error
};
Conversion conversion_of(DType array, DType input);
// The one check of that table, for every array fed to a model (data sets, `onnxquant run`'s --input files):
// says once how an array of dtype `from` reaches model input `input` of dtype `to` (info line; warning when values
// may be rounded), or fails (Data error naming `file`, `array`, the input and both types) when it is Refused.
// `to` Undefined (the model does not say): fed as it is.
void check_conversion(DType from, DType to, const std::string& file, const std::string& array,
                      const std::string& input);
// `t` as `to`, after check_conversion allowed it: a Checked conversion checks every value (Data error naming `file`,
// `array`, `row` (< 0: the whole array), the value and the input when one does not fit).
Tensor convert_for_input(const Tensor& t, DType to, const std::string& file, const std::string& array, int64_t row,
                         const std::string& input);
// NumPy's spelling of a dtype (float32, int64, bool, ...), as users save their arrays.
std::string numpy_name(DType t);

}  // namespace oq::data
