// libFuzzer target: the YAML config loader (yaml-cpp parse, typed reading, ${...} expressions, validation) and
// the output-folder resolution, on arbitrary text. oq::Error is a correct refusal; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    oq::config::Config c = oq::config::load_config_from_string(text, {}, "fuzz.yaml");
    (void)oq::config::resolve_output_dir(c, "");
    if (c.has_quantization) (void)oq::config::describe_quantization(c.quantization);
  } catch (const oq::Error&) {
  }
  return 0;
}
