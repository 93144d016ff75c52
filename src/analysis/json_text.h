// The JSON text of the reports (inspection.json, full_auto.json).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace oq::analysis {

// 2-space indent and a final newline. Paths and tensor names are bytes (a Linux file name in Latin-1, an ONNX
// name of any bytes): a sequence that is not UTF-8 is written as U+FFFD (the replacement character) so the JSON
// stays valid; nlohmann's default threw at the very end of the run, which then removed every output.
inline std::string dump_json(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace oq::analysis
