// Sub-commands implemented outside main.cc.
#pragma once
#include <string>

namespace oq::app {

// `onnxquant info MODEL`: inputs/outputs (dtype, shape with symbolic dims by name), opset imports, IR version,
// producer, op-type histogram (by count), parameter count (elements of float initializers) and initializer
// bytes. Prints to stdout; returns the exit code (errors are thrown as oq::Error).
int cmd_info(const std::string& model_path, bool shapes = false);

}  // namespace oq::app
