// libFuzzer target: the ONNX loader (protobuf parse, tensor decoding, graph checks) on arbitrary bytes.
// Any oq::Error is a correct refusal; a crash, a sanitizer report, a hang or another exception type is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "ir/graph.h"
#include "onnx/model_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    // base_dir does not exist: external data must be refused or reported missing, never read from elsewhere.
    oq::ir::Model m = oq::onnx::load_model_from_bytes(bytes, "/nonexistent-oq-fuzz", "fuzz.onnx");
    oq::ir::topological_order(m.graph);
    (void)oq::onnx::serialize_model(m);
  } catch (const oq::Error&) {
  }
  return 0;
}
