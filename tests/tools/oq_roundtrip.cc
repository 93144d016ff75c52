// Test-only tool: load an ONNX model with onnxquant's I/O layer and save it again.
//   oq_roundtrip IN.onnx OUT.onnx [--external THRESHOLD_BYTES]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "onnx/model_io.h"

int main(int argc, char** argv) {
  if (argc != 3 && !(argc == 5 && std::string(argv[3]) == "--external")) {
    std::fprintf(stderr, "usage: oq_roundtrip IN.onnx OUT.onnx [--external THRESHOLD_BYTES]\n");
    return 2;
  }
  try {
    oq::onnx::SaveOptions opts;
    if (argc == 5) {
      opts.external_data = true;
      opts.external_threshold = std::strtoull(argv[4], nullptr, 10);
    }
    oq::ir::Model m = oq::onnx::load_model(argv[1]);
    oq::onnx::save_model(m, argv[2], opts);
  } catch (const oq::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return e.exit_code();
  }
  return 0;
}
