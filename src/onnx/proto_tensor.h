// TensorProto <-> Tensor (internal to src/onnx/: the only code that includes the protobuf headers).
#pragma once
#include <string>

#include "core/tensor.h"
#include "onnxproto/onnx.pb.h"

namespace oq::onnx::detail {

// Decodes a TensorProto: raw_data, the typed fields (float_data, int32_data, int64_data, double_data,
// uint64_data, string_data, as the ONNX spec assigns them per data type) or external data resolved relative
// to `base_dir`. Sizes are checked before anything is allocated. Errors name the tensor (no file prefix).
Tensor tensor_from_proto(const ::onnx::TensorProto& p, const std::string& base_dir);
// Same, but a raw_data buffer that needs no conversion (not 4-bit, not BOOL) is taken over from `p` instead of
// copied: the tensor views the released string (no second copy of a model's weights, no page faults for it).
Tensor tensor_from_proto_taking(::onnx::TensorProto& p, const std::string& base_dir);

// Encodes data type, dims and data: raw_data (INT4/UINT4 packed two per byte, low nibble first), or
// string_data for STRING tensors. Name and doc string are left to the caller.
void tensor_to_proto(const Tensor& t, ::onnx::TensorProto* p);

// Bytes the tensor takes in raw_data (INT4/UINT4 packed). 0 for strings.
size_t serialized_bytes(const Tensor& t);

// Checks an external data `location` (relative, no `..` component) and returns base_dir/location.
std::string resolve_external_location(const std::string& base_dir, const std::string& location,
                                      const std::string& tensor_name);

}  // namespace oq::onnx::detail
