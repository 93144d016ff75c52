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
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);  // --help
    spdlog::error("{} (see --help)", e.what());       // usage errors are one line, like every other error
    return 2;
  }
  return cmd_info(model);
}

}  // namespace oq::app
