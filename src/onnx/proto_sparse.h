// SparseTensorProto -> dense Tensor (internal to src/onnx/): sparse initializers and Constant's sparse_value are
// made dense at load, as onnxruntime's Graph does (SparseTensorProtoToDenseTensorProto), so that every later part of
// onnxquant sees ordinary constants.
#pragma once
#include <string>

#include "core/tensor.h"
#include "onnx/proto_tensor.h"
#include "onnxproto/onnx.pb.h"

namespace oq::onnx::detail {

// The dense tensor of shape `dims`: zeros, with values[k] at the k-th index. Indices are [NNZ] (positions in the
// row-major dense tensor) or [NNZ, rank] (coordinates), of INT64 (ONNX) or INT8 / INT16 / INT32 (onnxruntime takes
// those too); values are [NNZ] of any data type; both may be raw, typed or external data (`ext`). As ORT,
// indices need not be sorted and a repeated one keeps the last value. Refused, naming the tensor (values.name, the
// sparse tensor's name): a missing name, values not of rank 1, indices of another rank or type, a count that is not
// NNZ, an index outside dims.
Tensor sparse_to_dense(const ::onnx::SparseTensorProto& p, const ExternalDir& ext);

}  // namespace oq::onnx::detail
