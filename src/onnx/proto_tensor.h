// TensorProto <-> Tensor (internal to src/onnx/: the only code that includes the protobuf headers).
#pragma once
#include <set>
#include <string>

#include "core/tensor.h"
#include "onnxproto/onnx.pb.h"

namespace oq::onnx::detail {

// Where external data is read from: the folder locations are relative to, and (when set) the set that records
// every file a tensor's external data was read from (resolved as base_dir/location), so that a run can protect
// all of them from its outputs, whichever part of the model (initializer, Constant, attribute, subgraph,
// function) held the tensor.
struct ExternalDir {
  ExternalDir(std::string dir, std::set<std::string>* files_read = nullptr)  // implicit: a folder alone
      : base_dir(std::move(dir)), read(files_read) {}
  std::string base_dir;
  std::set<std::string>* read;
  void note(const std::string& path) const {
    if (read) read->insert(path);
  }
};

// Decodes a TensorProto: raw_data, the typed fields (float_data, int32_data, int64_data, double_data,
// uint64_data, string_data, as the ONNX spec assigns them per data type) or external data resolved relative
// to `ext.base_dir` (the file noted in `ext`). Sizes are checked before anything is allocated. Errors name the
// tensor (no file prefix).
Tensor tensor_from_proto(const ::onnx::TensorProto& p, const ExternalDir& ext);
// Same, but a raw_data buffer that needs no conversion (not 4-bit, not BOOL) is taken over from `p` instead of
// copied: the tensor views the released string (no second copy of a model's weights, no page faults for it).
Tensor tensor_from_proto_taking(::onnx::TensorProto& p, const ExternalDir& ext);

// Encodes data type, dims and data: raw_data (INT4/UINT4 packed two per byte, low nibble first), or
// string_data for STRING tensors. Name and doc string are left to the caller.
void tensor_to_proto(const Tensor& t, ::onnx::TensorProto* p);

// Bytes the tensor takes in raw_data (INT4/UINT4 packed). 0 for strings.
size_t serialized_bytes(const Tensor& t);

// Checks an external data `location` (relative, no `..` component) and returns base_dir/location.
std::string resolve_external_location(const std::string& base_dir, const std::string& location,
                                      const std::string& tensor_name);

}  // namespace oq::onnx::detail
