// Data sets over NumPy arrays: an .npy file (single-input models) or an .npz archive (`x` + optional `y`
// labels, or arrays named after the model's inputs). Arrays are memory-mapped (deflated .npz members are
// inflated to a mapped temporary file); a sample is one row along axis 0, cast to the model input's dtype.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace oq::data {

DatasetPtr open_npy_dataset(const std::string& path, const std::vector<InputSpec>& inputs,
                            const SelectionOptions& sel);
DatasetPtr open_npz_dataset(const std::string& path, const std::vector<InputSpec>& inputs,
                            const SelectionOptions& sel);

}  // namespace oq::data
