// `onnxquant info MODEL`.
#include <CLI/CLI.hpp>

#include "app.h"
#include "commands.h"
#include "core/log.h"

namespace oq::app {

int cmd_info_main(int argc, char** argv) {
  CLI::App cli{"onnxquant info: inputs, outputs, opsets, op types and parameters of a model"};
  std::string model;
  cli.add_option("model", model, "ONNX model")->required();
  bool shapes = false;
  cli.add_flag("--shapes", shapes, "also list every node output with its inferred element type and shape");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);  // --help
    spdlog::error("{} (see --help)", e.what());       // usage errors are one line, like every other error
    return 2;
  }
  return cmd_info(model, shapes);
}

}  // namespace oq::app
