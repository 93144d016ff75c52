// Test-only tool: load a model, run the pre-processing passes and/or the opset conversion, save it.
//   oq_preprocess_model IN.onnx OUT.onnx [--opset N] [--no-preprocess]
// Prints one line: "nodes_before=.. nodes_after=.. batchnorms_folded=.. opset=..".
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "ir/passes/passes.h"
#include "onnx/model_io.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s IN.onnx OUT.onnx [--opset N] [--no-preprocess]\n", argv[0]);
    return 2;
  }
  int opset = 0;
  bool pre = true;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--opset" && i + 1 < argc)
      opset = std::atoi(argv[++i]);
    else if (a == "--no-preprocess")
      pre = false;
    else {
      std::fprintf(stderr, "unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  try {
    oq::ir::Model m = oq::onnx::load_model(argv[1]);
    oq::ir::passes::PreprocessStats st;
    st.nodes_before = st.nodes_after = m.graph.nodes.size();
    if (pre) st = oq::ir::passes::preprocess(m);
    if (opset) oq::ir::passes::convert_opset(m, opset);
    oq::onnx::save_model(m, argv[2]);
    std::printf("nodes_before=%zu nodes_after=%zu batchnorms_folded=%zu opset=%lld\n", st.nodes_before,
                m.graph.nodes.size(), st.folded_batchnorms, static_cast<long long>(m.default_opset()));
  } catch (const oq::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return e.exit_code();
  }
  return 0;
}
