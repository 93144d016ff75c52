// libFuzzer target: the .npy header/data reader (from memory) and the .npz archive reader (zip directory,
// stored and deflated members), on arbitrary bytes. The first byte picks the reader. oq::Error is a correct
// refusal; anything else is a bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "core/error.h"
#include "data/npy.h"
#include "data/npz.h"

static void touch_all(const oq::data::NpyArray& a) {
  oq::Tensor t = a.tensor();
  if (a.rows() > 0 && a.rank() > 0) {
    (void)a.row(0);
    (void)a.row(a.rows() - 1);
  }
  // Read every byte so that ASan sees an out-of-bounds view.
  const auto* p = static_cast<const uint8_t*>(t.raw());
  volatile uint8_t acc = 0;
  for (size_t i = 0; i < t.nbytes(); ++i) acc ^= p[i];
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool npz = data[0] & 1;
  try {
    if (!npz) {
      auto owner = std::make_shared<std::string>(reinterpret_cast<const char*>(data + 1), size - 1);
      auto a = oq::data::NpyArray::from_memory(owner, reinterpret_cast<const uint8_t*>(owner->data()), owner->size(),
                                               "fuzz.npy");
      touch_all(a);
    } else {
      static const std::string path = "/tmp/oq_fuzz_npz_" + std::to_string(::getpid()) + ".npz";
      std::FILE* f = std::fopen(path.c_str(), "wb");
      if (!f) return 0;
      std::fwrite(data + 1, 1, size - 1, f);
      std::fclose(f);
      auto z = oq::data::NpzArchive::open(path);
      for (const auto& n : z.names()) touch_all(z.array(n));
    }
  } catch (const oq::Error&) {
  }
  return 0;
}
