#include "onnx/proto_sparse.h"

#include <cstring>
#include <optional>

#include "onnx/proto_tensor.h"

namespace oq::onnx::detail {
namespace {

// Index i of an integer tensor of INT8 / INT16 / INT32 / INT64 as int64.
int64_t index_at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::Int8: return t.data<int8_t>()[i];
    case DType::Int16: return t.data<int16_t>()[i];
    case DType::Int32: return t.data<int32_t>()[i];
    default: return t.data<int64_t>()[i];
  }
}

// The position in the row-major dense tensor of the k-th entry: indices [NNZ] hold it, [NNZ, rank] its coordinates.
// Empty when out of range (`why` says which).
std::optional<int64_t> position(const Tensor& idx, int64_t k, const Shape& dims, int64_t numel, std::string* why) {
  if (idx.shape().size() == 1) {
    const int64_t p = index_at(idx, k);
    if (p >= 0 && p < numel) return p;
    *why = fmt::format("index {} (entry {}) is outside the {} elements of shape {}", p, k, numel, shape_str(dims));
    return std::nullopt;
  }
  const int64_t rank = static_cast<int64_t>(dims.size());
  int64_t p = 0;
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t c = index_at(idx, k * rank + d);
    if (c < 0 || c >= dims[d]) {
      *why = fmt::format("index {} of dimension {} (entry {}) is outside shape {}", c, d, k, shape_str(dims));
      return std::nullopt;
    }
    p = p * dims[d] + c;
  }
  return p;
}

Tensor densify(const Tensor& values, const Tensor& idx, const Shape& dims) {
  const int64_t nnz = values.numel();
  const auto& is = idx.shape();
  if (is.size() != 1 && is.size() != 2)
    fail(ErrorKind::Model, "indices have shape {}: they must be [NNZ] (positions) or [NNZ, rank] (coordinates)",
         shape_str(is));
  if (is[0] != nnz)
    fail(ErrorKind::Model, "{} indices for {} values (indices of shape {})", is[0], nnz, shape_str(is));
  if (is.size() == 2 && is[1] != static_cast<int64_t>(dims.size()))
    fail(ErrorKind::Model, "indices of shape {} give {} coordinates, the tensor has rank {} (shape {})", shape_str(is),
         is[1], dims.size(), shape_str(dims));
  if (idx.dtype() != DType::Int64 && idx.dtype() != DType::Int32 && idx.dtype() != DType::Int16 &&
      idx.dtype() != DType::Int8)
    fail(ErrorKind::Model, "indices are {}; they must be INT64 (or INT8 / INT16 / INT32)", dtype_name(idx.dtype()));
  Tensor dense(values.dtype(), dims);  // zeros ("" for strings)
  const int64_t numel = dense.numel();
  const size_t esz = dtype_size(values.dtype());
  for (int64_t k = 0; k < nnz; ++k) {
    std::string why;
    const auto p = position(idx, k, dims, numel, &why);
    if (!p) fail(ErrorKind::Model, "{}", why);
    if (values.dtype() == DType::String)
      dense.strings()[static_cast<size_t>(*p)] = values.strings()[static_cast<size_t>(k)];
    else
      std::memcpy(static_cast<char*>(dense.raw()) + *p * esz, static_cast<const char*>(values.raw()) + k * esz, esz);
  }
  return dense;
}

}  // namespace

Tensor sparse_to_dense(const ::onnx::SparseTensorProto& p, const ExternalDir& ext) {
  const std::string& name = p.values().name();
  if (name.empty()) fail(ErrorKind::Model, "a sparse tensor without a name (its values.name is empty)");
  try {
    const Shape dims(p.dims().begin(), p.dims().end());
    (void)shape_numel(dims);  // negative or overflowing dims: refused before anything is read
    const Tensor values = tensor_from_proto(p.values(), ext);
    if (values.shape().size() != 1)
      fail(ErrorKind::Model, "values have shape {}; they must be of rank 1 ([NNZ])", shape_str(values.shape()));
    if (!p.has_indices()) {
      if (values.numel() != 0) fail(ErrorKind::Model, "{} values and no indices", values.numel());
      return Tensor(values.dtype(), dims);
    }
    Tensor idx;
    try {
      idx = tensor_from_proto(p.indices(), ext);
    } catch (const Error& e) {
      fail(e.kind(), "indices: {}", e.what());
    }
    return densify(values, idx, dims);
  } catch (const Error& e) {
    fail(e.kind(), "sparse tensor '{}': {}", name, e.what());
  }
}

}  // namespace oq::onnx::detail
