// libFuzzer target: the executor on arbitrary models. Model bytes are loaded as fuzz_onnx_loader does; a model
// that loads goes through what the quantizer does before it runs a model (ir::passes::preprocess, and for inputs
// of odd length the main job's opset conversion, to 17 or 21), then an exec::Session is
// built (kernels, inference rewrites of exec/optimize.cc, the blocked layout of exec/layout.cc) and run once on
// small deterministic inputs. Any oq::Error is a correct refusal; a crash, a sanitizer report, a hang, an abort or
// another exception type is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <string>

#include <spdlog/spdlog.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/session.h"
#include "ir/graph.h"
#include "ir/passes/passes.h"
#include "onnx/model_io.h"

namespace {

constexpr int64_t kSymbolicDim = 2;                  // value of symbolic / unknown input dims
constexpr size_t kMaxInputBytes = size_t{4} << 20;   // models whose inputs need more are skipped

// Fills t with small values derived from the fuzz bytes (cyclically, from the end: the start is the protobuf
// header and much the same for every model). Floats in [-4, 4), integers in [-128, 127] (or [0, 255]).
void fill(oq::Tensor& t, const uint8_t* data, size_t size) {
  using oq::DType;
  if (size == 0 || t.numel() == 0) return;
  auto byte = [&](int64_t i) { return data[size - 1 - static_cast<size_t>(i) % size]; };
  int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::Float:
      for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = (static_cast<int>(byte(i)) - 128) / 32.0f;
      break;
    case DType::Double:
      for (int64_t i = 0; i < n; ++i) t.data<double>()[i] = (static_cast<int>(byte(i)) - 128) / 32.0;
      break;
    case DType::Float16:
      for (int64_t i = 0; i < n; ++i)
        t.data<uint16_t>()[i] = oq::float_to_half((static_cast<int>(byte(i)) - 128) / 32.0f);
      break;
    case DType::BFloat16:
      for (int64_t i = 0; i < n; ++i)
        t.data<uint16_t>()[i] = oq::float_to_bfloat16((static_cast<int>(byte(i)) - 128) / 32.0f);
      break;
    case DType::Bool:
      for (int64_t i = 0; i < n; ++i) t.data<uint8_t>()[i] = byte(i) & 1;
      break;
    case DType::Int4:
      for (int64_t i = 0; i < n; ++i) t.data<int8_t>()[i] = static_cast<int8_t>((byte(i) & 15) - 8);
      break;
    case DType::UInt4:
      for (int64_t i = 0; i < n; ++i) t.data<uint8_t>()[i] = byte(i) & 15;
      break;
    case DType::Int8: case DType::Int16: case DType::Int32: case DType::Int64:
    case DType::UInt8: case DType::UInt16: case DType::UInt32: case DType::UInt64: {
      size_t es = oq::dtype_size(t.dtype());
      bool sign = oq::is_signed_integer(t.dtype());
      auto* p = static_cast<uint8_t*>(t.raw());
      for (int64_t i = 0; i < n; ++i) {
        int64_t v = sign ? static_cast<int8_t>(byte(i)) : byte(i);
        std::memcpy(p + static_cast<size_t>(i) * es, &v, es);  // little endian: the low bytes
      }
      break;
    }
    default:
      break;  // strings, undefined: left as constructed
  }
}

bool verbose = false;  // OQ_FUZZ_VERBOSE=1: print each input's outcome (when replaying a corpus by hand)

bool init() {
  verbose = std::getenv("OQ_FUZZ_VERBOSE") != nullptr;
  oq::set_num_threads(1);          // one process at a time on a shared machine; deterministic runs
  oq::set_tensor_cache_limit(0);   // every tensor goes back to malloc, so ASan sees use-after-free
  // A tiny model can validly ask for a huge tensor (Pad, Expand, Tile, Resize, ConstantOfShape of large
  // constants, a batch padded to 65536): refused above 16 MiB here (a Model error naming the node), which bounds
  // each run's memory and time (the largest tensor of the seed models with batch 2 is 3 MB), so that the 2 GiB
  // RSS / malloc limits and the timeout of scripts/fuzz.sh report only memory the code takes outside tensors or
  // without checking a size, and real hangs. With 256 MiB, such valid inputs took 54 s and 1 GB each.
  oq::set_max_tensor_bytes(int64_t{16} << 20);
  spdlog::set_level(spdlog::level::err);  // preprocess logs a summary per model
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool once = init();
  (void)once;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    oq::ir::Model m = oq::onnx::load_model_from_bytes(bytes, "/nonexistent-oq-fuzz", "fuzz.onnx");
    if (m.default_opset() > oq::exec::kMaxOpset) return 0;  // the main job refuses these before preprocessing
    oq::ir::passes::preprocess(m);
    // Odd sizes also get the opset conversion of the main job (target_opset 17 by default, or 21).
    int target = size % 4 == 1 ? 17 : 21;
    if ((size & 1) && m.default_opset() < target) oq::ir::passes::convert_opset(m, target);
    std::map<std::string, oq::Tensor> feeds;
    size_t total = 0;
    for (const auto* in : m.graph.real_inputs()) {
      oq::Shape shape;
      if (in->shape)
        for (const auto& d : *in->shape) shape.push_back(d.known() ? d.value : kSymbolicDim);
      oq::DType dt = in->dtype == oq::DType::Undefined ? oq::DType::Float : in->dtype;
      // Element count, overflow-safe, against the input budget.
      size_t n = 1, es = std::max<size_t>(oq::dtype_size(dt), 1);
      for (int64_t d : shape) {
        if (d != 0 && n > kMaxInputBytes / static_cast<size_t>(d)) return 0;
        n *= static_cast<size_t>(d);
      }
      total += n * es;
      if (n * es > kMaxInputBytes || total > kMaxInputBytes) return 0;
      oq::Tensor t(dt, shape);
      fill(t, data, size);
      feeds[in->name] = std::move(t);
    }
    oq::exec::Session s(m);
    (void)s.run(feeds);
  } catch (const oq::Error& e) {
    if (verbose) std::fprintf(stderr, "oq::Error: %s\n", e.what());
    return 0;
  }
  if (verbose) std::fprintf(stderr, "ran\n");
  return 0;
}
