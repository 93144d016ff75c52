// The edge between ONNX files and the IR. This directory is the only code that includes protobuf headers.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::onnx {

// Loads a .onnx file (external data resolved relative to the model's folder; `location` with `..` or an
// absolute path is refused). Errors are one line naming the file: ErrorKind::Model or Io.
ir::Model load_model(const std::string& path);
// Same from bytes; `label` names the source in errors, `base_dir` resolves external data.
ir::Model load_model_from_bytes(std::string_view bytes, const std::string& base_dir, const std::string& label);

struct SaveOptions {
  // Write initializers of at least `external_threshold` bytes to one external data file
  // (`<model file name>.data` unless `external_file` is set). Forced on when the model exceeds 2 GiB.
  bool external_data = false;
  size_t external_threshold = 1024;
  std::string external_file;
  // Files the save must not replace (the input model and its external data): an error naming the file if the
  // external data file it would write is one of them.
  std::vector<std::string> protected_files;
  // A file the run removes again (full_auto's .candidate_*.onnx, named like a left-over of a killed run): kept
  // locked until run_files::remove_output, so that another run's clean-up of left-overs leaves it alone.
  bool transient = false;
};
// The files save_model wrote: the model and, when the tensors went to one, its external data file.
struct SavedModel {
  std::string path;
  std::string data_path;  // "" when none was written
  uint64_t bytes() const;  // the size of both on disk: what the written model takes
};
// Saves atomically: writes `<path>.tmp-XXXX` in the target folder, then renames. Never leaves partial files.
SavedModel save_model(const ir::Model& m, const std::string& path, const SaveOptions& opts = {});
std::string serialize_model(const ir::Model& m);  // in-memory protobuf bytes (no external data)

// A serialized TensorProto (.pb, as in ONNX backend test data).
Tensor load_tensor_pb(const std::string& path, std::string* name = nullptr);
void save_tensor_pb(const Tensor& t, const std::string& name, const std::string& path);

}  // namespace oq::onnx
