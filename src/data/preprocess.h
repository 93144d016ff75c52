// Image preprocessing: decode (stb_image) -> color conversion -> aspect handling + resize -> rescale -> layout.
//
// Exact definitions (tests/python/test_data_preprocessing.py re-implements them in numpy; docs/config.md says the same):
//  * Decoding: stb_image, 8 bits per channel, after checks of what stb 2.27 does not check (PNG chunk CRC-32s, JPEG
//    Huffman tables, PNM / TGA lengths). Grayscale of a colour PNG is libpng's as TensorFlow's decode_png sets it up
//    (gray kept, else (9797 R + 19234 G + 3737 B) >> 15; 16-bit: + 16384, then the high byte); of other formats
//    stb's (77 R + 150 G + 29 B) >> 8 (JPEG: its Y). BGR = RGB decoded then channels 0 and 2 swapped. RGBA: a
//    missing alpha channel is 255.
//  * Resizing works on float pixel values (0..255), separably: rows first (along W), then columns (along H),
//    each output index d of an axis of input length `in` and output length `out` reading source taps:
//     - nearest:  s = min(floor((d + 0.5) * (in / out)), in - 1), in float32 as TensorFlow (half-pixel centres)
//     - bilinear: s = clamp((d + 0.5) * in / out - 0.5, 0, in - 1); i = floor(s); f = s - i;
//                 out = (1 - f) * p[i] + f * p[min(i + 1, in - 1)]              (half-pixel centers, clamped)
//     - bicubic:  s = (d + 0.5) * in / out - 0.5; i = floor(s); t = s - i; taps i-1..i+2 with Keys' cubic kernel,
//                 a = -0.5; taps outside the image dropped and the rest renormalised (TF's resize_bicubic); no
//                 antialiasing.
//     - area:     box filter: source pixel k gets weight |[k, k+1) ∩ [d*in/out, (d+1)*in/out)| * out / in.
//    (bilinear, bicubic and area compute (d + 0.5) * in / out in double, multiplication first.)
//  * Aspect ratio, for a W_in x H_in image and a W x H target (float32 arithmetic, as Keras / TF):
//     - fit:     stretch to W x H.
//     - crop:    the centred window of the target's aspect ratio, as Keras' smart_resize: ch = trunc(W_in * H / W),
//                cw = trunc(H_in * W / H), each clamped to [1, the image's], at trunc((H_in - ch) / 2),
//                trunc((W_in - cw) / 2); the window is then resized to W x H.
//     - padding: as tf.image.resize_with_pad: ratio = max(W_in / W, H_in / H); the image is resized to
//                floor(W_in / ratio) x floor(H_in / ratio) (at least 1) and placed at floor((W - W_in / ratio) / 2),
//                floor((H - H_in / ratio) / 2). Padded elements are black pixels: `offset` after rescaling.
//  * Rescaling: value * scale + offset (in float32), then converted to the model input's dtype: float16/double by a
//    cast; an integer type only when every value is a whole number the type holds (no rounding, no saturation);
//    bool inputs are refused.
//  * Layout: NCHW or NHWC from the model input shape — the layout whose channel dim (1 or 3) equals color_mode's
//    channel count when only one does ([N,3,4,4] is NCHW and [N,4,6,3] NHWC for rgb); both (or both dims dynamic):
//    a config error asking for preprocessing.layout; neither: the layout whose channel dim is 1, 3 or 4 (then a
//    channel-count error) or else is dynamic, and a channel-count error when both are fixed.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace oq::data {

enum class Interp { Nearest, Bilinear, Bicubic, Area };
enum class AspectMode { Fit, Crop, Padding };
enum class ColorMode { Grayscale, RGB, RGBA, BGR };
enum class Layout { Auto, NCHW, NHWC };

// Parsers for user spellings (case-insensitive): nearest|bilinear|bicubic|area, fit|crop|padding,
// grayscale|rgb|rgba|bgr, auto|nchw|nhwc. nullopt when unknown.
std::optional<Interp> parse_interp(std::string_view s);
std::optional<AspectMode> parse_aspect(std::string_view s);
std::optional<ColorMode> parse_color(std::string_view s);
std::optional<Layout> parse_layout(std::string_view s);
int color_channels(ColorMode c);  // 1, 3, 4, 3

struct PreprocessOptions {
  float scale = 1.0f / 255.0f;
  float offset = 0.0f;
  Interp interpolation = Interp::Bilinear;
  AspectMode aspect = AspectMode::Fit;
  ColorMode color = ColorMode::RGB;
  Layout layout = Layout::Auto;
  // Target size used only when the model input's H/W are dynamic (0 = not given).
  int64_t height = 0, width = 0;
  // How errors tell the user to change these settings: empty, the config keys (preprocessing.color_mode, ...,
  // model.input_shape); else this text instead, for a caller that has no such keys (`onnxquant eval`).
  std::string fixed_by;
};

// An image as H x W x C interleaved float pixel values.
struct Image {
  int64_t h = 0, w = 0, c = 0;
  std::vector<float> px;
  float at(int64_t y, int64_t x, int64_t ch) const { return px[static_cast<size_t>((y * w + x) * c + ch)]; }
};

// Where the image goes in a model input: its layout and C/H/W.
struct ImageGeometry {
  Layout layout = Layout::NCHW;
  int64_t c = 0, h = 0, w = 0;
  Shape sample_shape() const;  // [1,C,H,W] or [1,H,W,C]
};

// Layout and size for model input `input_name` of shape `model_shape` (-1 = unknown dim). Config error when
// the layout is ambiguous and not given; Data error when the shape cannot hold an image of `o.color`.
ImageGeometry resolve_geometry(const std::string& input_name, const Shape& model_shape, const PreprocessOptions& o);

// Decodes an image file with stb_image into `color` channels. Data error naming the file when it fails.
Image decode_image(const std::string& path, ColorMode color);
// Wraps 8-bit interleaved pixels (h x w x c) as an Image (c = 1, 3 or 4; color conversion as documented).
Image image_from_u8(const uint8_t* px, int64_t h, int64_t w, int64_t c);

// Resizes to out_h x out_w with `interp` (definitions above).
Image resize(const Image& in, int64_t out_h, int64_t out_w, Interp interp);
// Per-axis taps used by resize (exposed for tests): for each output index, (source index, weight) pairs.
std::vector<std::vector<std::pair<int64_t, float>>> resize_taps(int64_t in, int64_t out, Interp interp);

// The whole pipeline after decoding: aspect handling, resize, rescale, layout, then image_values_as(dtype).
// Returns a tensor of shape g.sample_shape(). `input` and `file` name the model input and the image in errors.
Tensor preprocess_image(const Image& img, const ImageGeometry& g, const PreprocessOptions& o, DType dtype,
                        const std::string& input = "input", const std::string& file = "(image)");

// Model input types image data can feed: float32/64/16 and the 8..64-bit integers (not bool, strings, ...).
bool image_input_type(DType t);
// Data error naming `input` when image data cannot feed its type (bool, string, ...; Undefined = float32 is fine).
void check_image_input_type(const std::string& input, DType t);
// Preprocessed (float32) values as model input type `dtype`: float types by a cast (float16 rounds); an integer
// type only when every value is a whole number inside the type's range (e.g. scale 1, offset 0: the pixels),
// else a Data error naming `file`, `input`, the value and preprocessing.rescaling; other types (bool) a Data error.
Tensor image_values_as(const Tensor& values, DType dtype, const PreprocessOptions& o, const std::string& input,
                       const std::string& file);

}  // namespace oq::data
