// libFuzzer target: the image path of the data loader — decode (stb_image, via a file as in an image folder),
// then resize + rescale + layout into a model input — on arbitrary bytes. The first byte picks the color mode
// and the interpolation. oq::Error is a correct refusal; anything else is a bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "data/preprocess.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using namespace oq::data;
  static const std::string path = "/tmp/oq_fuzz_img_" + std::to_string(::getpid()) + ".img";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data + 1, 1, size - 1, f);
  std::fclose(f);
  const ColorMode colors[] = {ColorMode::Grayscale, ColorMode::RGB, ColorMode::RGBA, ColorMode::BGR};
  const Interp interps[] = {Interp::Nearest, Interp::Bilinear, Interp::Bicubic, Interp::Area};
  const AspectMode aspects[] = {AspectMode::Fit, AspectMode::Crop, AspectMode::Padding};
  PreprocessOptions o;
  o.color = colors[data[0] & 3];
  o.interpolation = interps[(data[0] >> 2) & 3];
  o.aspect = aspects[((data[0] >> 4) & 3) % 3];
  o.layout = (data[0] & 0x40) ? Layout::NHWC : Layout::NCHW;
  try {
    Image img = decode_image(path, o.color);
    int64_t c = color_channels(o.color);
    oq::Shape shape = o.layout == Layout::NHWC ? oq::Shape{1, 7, 5, c} : oq::Shape{1, c, 7, 5};
    ImageGeometry g = resolve_geometry("input", shape, o);
    (void)preprocess_image(img, g, o, oq::DType::Float);
  } catch (const oq::Error&) {
  }
  return 0;
}
