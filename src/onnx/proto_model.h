// ModelProto <-> ir::Model (internal to src/onnx/).
//
// Model-local functions are parsed (ir::Function) and their FunctionProto bytes kept for writing back.
// Sparse initializers and Constant's sparse_value are made dense (onnx/proto_sparse.h) and written dense.
// Kept as opaque serialized bytes: training_info, quantization annotations, the IR 11 multi-device
// configurations (ModelProto.configuration, NodeProto.device_configurations),
// sparse-tensor / type-proto attributes (and attributes of undefined type), and every TypeProto that the IR's
// (dtype, shape) does not represent exactly (non-tensor types, denotations, unknown element types). On save a
// kept TypeProto is written back verbatim unless the IR's dtype/shape were edited since loading.
// Names of tensors held in Tensor/Tensors attributes are kept in Attribute::s / Attribute::strings (otherwise
// unused for those types).
#pragma once
#include <string>

#include "ir/graph.h"
#include "onnx/proto_tensor.h"
#include "onnxproto/onnx.pb.h"

namespace oq::onnx::detail {

// Moves data out of `pb` as it goes (raw_data of initializers is released once converted). Every external data
// file the model names is noted in `ext`: those read, and those of the parts kept unread (training_info,
// sparse-tensor attributes).
ir::Model model_from_proto(::onnx::ModelProto& pb, const ExternalDir& ext);
void model_to_proto(const ir::Model& m, ::onnx::ModelProto* pb);

}  // namespace oq::onnx::detail
