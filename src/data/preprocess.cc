#include "data/preprocess.h"

#include <libdeflate.h>
#include <stb/stb_image.h>  // implementation provided by Debian's libstb.so

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "core/log.h"
#include "data/array_dataset.h"  // numpy_name

namespace oq::data {

namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& ch : r) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return r;
}

// Keys' cubic convolution kernel with a = -0.5.
double cubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x <= 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

}  // namespace

std::optional<Interp> parse_interp(std::string_view s) {
  std::string l = lower(s);
  if (l == "nearest") return Interp::Nearest;
  if (l == "bilinear" || l == "linear") return Interp::Bilinear;
  if (l == "bicubic" || l == "cubic") return Interp::Bicubic;
  if (l == "area") return Interp::Area;
  return std::nullopt;
}
std::optional<AspectMode> parse_aspect(std::string_view s) {
  std::string l = lower(s);
  if (l == "fit" || l == "stretch") return AspectMode::Fit;
  if (l == "crop") return AspectMode::Crop;
  if (l == "padding" || l == "pad" || l == "letterbox") return AspectMode::Padding;
  return std::nullopt;
}
std::optional<ColorMode> parse_color(std::string_view s) {
  std::string l = lower(s);
  if (l == "grayscale" || l == "gray" || l == "grey") return ColorMode::Grayscale;
  if (l == "rgb") return ColorMode::RGB;
  if (l == "rgba") return ColorMode::RGBA;
  if (l == "bgr") return ColorMode::BGR;
  return std::nullopt;
}
std::optional<Layout> parse_layout(std::string_view s) {
  std::string l = lower(s);
  if (l == "auto" || l.empty()) return Layout::Auto;
  if (l == "nchw") return Layout::NCHW;
  if (l == "nhwc") return Layout::NHWC;
  return std::nullopt;
}
int color_channels(ColorMode c) {
  switch (c) {
    case ColorMode::Grayscale: return 1;
    case ColorMode::RGBA: return 4;
    default: return 3;
  }
}

static const char* color_name(ColorMode c) {
  switch (c) {
    case ColorMode::Grayscale: return "grayscale";
    case ColorMode::RGB: return "rgb";
    case ColorMode::RGBA: return "rgba";
    case ColorMode::BGR: return "bgr";
  }
  return "?";
}

// What to change when the settings do not fit the model: `keys` (the config's) or what the caller said instead.
static std::string settings(const PreprocessOptions& o, const std::string& keys) {
  return o.fixed_by.empty() ? keys : o.fixed_by;
}
static const char* const kChannelKeys = "preprocessing.color_mode / preprocessing.layout";

Shape ImageGeometry::sample_shape() const {
  return layout == Layout::NCHW ? Shape{1, c, h, w} : Shape{1, h, w, c};
}

ImageGeometry resolve_geometry(const std::string& input_name, const Shape& s, const PreprocessOptions& o) {
  if (s.size() != 4)
    fail(ErrorKind::Data, "model input '{}' has shape {}: image data needs a rank-4 input (NCHW or NHWC)",
         input_name, shape_str(s));
  ImageGeometry g;
  g.layout = o.layout;
  const int want = color_channels(o.color);
  if (g.layout == Layout::Auto) {
    // The dim (1 or 3) that equals color_mode's channel count is the channel dim: [N,3,4,4] is NCHW and
    // [N,4,6,3] NHWC for rgb. When neither does, the usual channel counts (1, 3, 4) pick the layout, whose
    // channel-count error below says what is wrong ([N,3,224,224] with grayscale: 3 channels in NCHW); else a
    // single dynamic dim is the channel dim ([N,-1,5,6]).
    const bool a = s[1] == want, b = s[3] == want;
    auto is_ch = [](int64_t d) { return d == 1 || d == 3 || d == 4; };
    if (a != b) {
      g.layout = a ? Layout::NCHW : Layout::NHWC;
    } else if (a || (s[1] < 0 && s[3] < 0)) {
      fail(ErrorKind::Config, "{}cannot tell whether model input '{}' of shape {} is NCHW or NHWC ({}); {}",
           o.fixed_by.empty() ? "preprocessing.layout: " : "", input_name, shape_str(s),
           a ? fmt::format("dims 1 and 3 both equal the {} channel(s) of color mode {}", want, color_name(o.color))
             : std::string("dims 1 and 3 are both dynamic"),
           settings(o, "set preprocessing.layout to NCHW or NHWC"));
    } else if (is_ch(s[1]) != is_ch(s[3])) {
      g.layout = is_ch(s[1]) ? Layout::NCHW : Layout::NHWC;
    } else if (s[1] < 0 || s[3] < 0) {
      g.layout = s[1] < 0 ? Layout::NCHW : Layout::NHWC;
    } else {
      fail(ErrorKind::Data,
           "color mode {} gives {} channel(s) but model input '{}' of shape {} has {} in dim 1 (NCHW) and {} in dim 3 "
           "(NHWC) ({})",
           color_name(o.color), want, input_name, shape_str(s), s[1], s[3], settings(o, kChannelKeys));
    }
  }
  if (g.layout == Layout::NCHW) {
    g.c = s[1], g.h = s[2], g.w = s[3];
  } else {
    g.h = s[1], g.w = s[2], g.c = s[3];
  }
  if (g.c >= 0 && g.c != want)
    fail(ErrorKind::Data,
         "color mode {} gives {} channel(s) but model input '{}' of shape {} has {} in layout {}{} ({})",
         color_name(o.color), want, input_name, shape_str(s), g.c, g.layout == Layout::NCHW ? "NCHW" : "NHWC",
         o.layout == Layout::Auto ? " (inferred)" : "", settings(o, kChannelKeys));
  g.c = want;
  if (o.height > 0 && ((g.h >= 0 && g.h != o.height) || (g.w >= 0 && g.w != o.width)))
    OQ_WARN("model.input_shape gives {}x{} images but model input '{}' has shape {}: the model's size is used",
            o.height, o.width, input_name, shape_str(s));
  if (g.h < 0) g.h = o.height;
  if (g.w < 0) g.w = o.width;
  if (g.h <= 0 || g.w <= 0)
    fail(ErrorKind::Data, "model input '{}' of shape {} has no fixed height/width; {}", input_name, shape_str(s),
         settings(o, "give the image size as model.input_shape (e.g. (128, 128, 3))"));
  return g;
}

Image image_from_u8(const uint8_t* px, int64_t h, int64_t w, int64_t c) {
  Image img;
  img.h = h, img.w = w, img.c = c;
  img.px.resize(static_cast<size_t>(h * w * c));
  for (size_t i = 0; i < img.px.size(); ++i) img.px[i] = px[i];
  return img;
}

// stb_image 2.27 (Debian 12) writes past a Huffman table when a JPEG DHT segment declares more than 256 codes
// (fixed in stb 2.28; found by fuzz/fuzz_image). Every FF C4 in the file is checked the way stb would read it
// (stb skips junk between markers, so it can meet a DHT anywhere); such files are refused before stb sees them.
static void check_jpeg_huffman_tables(const std::string& path, const std::vector<uint8_t>& b) {
  // stb takes a file as JPEG when it opens with FF, any number of fill FFs, then D8 (SOI).
  size_t soi = 0;
  while (soi < b.size() && b[soi] == 0xFF) ++soi;
  if (soi == 0 || soi >= b.size() || b[soi] != 0xD8) return;
  auto at = [&](size_t i) -> unsigned { return i < b.size() ? b[i] : 0u; };  // stb reads 0 past the end
  for (size_t m = 0; m + 1 < b.size(); ++m) {
    if (b[m] != 0xFF || b[m + 1] != 0xC4) continue;
    int64_t left = static_cast<int64_t>(at(m + 2) << 8 | at(m + 3)) - 2;
    size_t i = m + 4;
    while (left > 0 && i < b.size()) {
      unsigned q = at(i++);
      if ((q >> 4) > 1 || (q & 15) > 3) break;  // stb refuses the table itself
      unsigned n = 0;
      for (int k = 0; k < 16; ++k) n += at(i++);
      if (n > 256)
        fail(ErrorKind::Data, "cannot decode image {}: corrupt JPEG (Huffman table declares {} codes, at most 256)",
             path, n);
      i += n;
      left -= 17 + static_cast<int64_t>(n);
    }
  }
}

// stb_image 2.27 overreads its buffer when converting a 16-bit PNM (maxval > 255) to fewer channels (fixed in
// stb 2.28; found by fuzz/fuzz_image). Binary PGM/PPM headers are read as stb reads them; 16-bit ones,
// dimensions that would overflow stb's int parsing, and files shorter than their pixel data, are refused.
static void check_pnm_depth(const std::string& path, const std::vector<uint8_t>& b) {
  if (b.size() < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6')) return;
  size_t i = 2;
  int64_t v[3] = {0, 0, 0};
  for (int64_t& x : v) {
    for (;;) {  // whitespace and # comments, as stbi__pnm_skip_whitespace
      while (i < b.size() && std::isspace(b[i])) ++i;
      if (i >= b.size() || b[i] != '#') break;
      while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
    }
    while (i < b.size() && std::isdigit(b[i]) && x < (int64_t{1} << 40)) x = x * 10 + (b[i++] - '0');
  }
  if (v[2] > 255)
    fail(ErrorKind::Data, "cannot decode image {}: 16-bit PGM/PPM (maxval {}) is not supported", path, v[2]);
  // stb parses these numbers into an int with no overflow check (UB; found by fuzz/fuzz_image): refuse
  // dimensions beyond what onnxquant decodes anyway (2^26 pixels) before stb reads them.
  if (v[0] > (int64_t{1} << 26) || v[1] > (int64_t{1} << 26))
    fail(ErrorKind::Data, "cannot decode image {}: PGM/PPM of {} x {} pixels is too large", path, v[0], v[1]);
  // stb 2.27 ignores a short read of the pixel data and returns an image of uninitialised pixels (found by
  // fuzz/fuzz_image: 25 bytes declaring 5 x 952525 pixels). The data starts after one whitespace byte.
  const int64_t need = v[0] * v[1] * (b[1] == '5' ? 1 : 3), have = static_cast<int64_t>(b.size()) - static_cast<int64_t>(i) - 1;
  if (need > 0 && have < need)
    fail(ErrorKind::Data, "cannot decode image {}: truncated PGM/PPM ({} x {} pixels need {} bytes of pixel data, the file has {})",
         path, v[0], v[1], need, std::max<int64_t>(have, 0));
}

// stb_image 2.27 also ignores short reads in TGA pixel data (raw or run-length encoded) and returns an image of
// zero pixels (found by fuzz/fuzz_image: 125 bytes declaring 1416 x 45312 RLE pixels, decoded for a minute under
// ASan). TGA has no magic number: stb tries it last, so the check applies when no other format's signature
// matches and the header passes stb's own TGA test. A run-length packet holds at most 128 pixels, so a file
// smaller than ceil(w*h/128) packets (or w*h pixels when raw) is truncated.
static void check_tga_length(const std::string& path, const std::vector<uint8_t>& b) {
  if (b.size() < 18) return;
  auto starts = [&](const char* sig, size_t n) { return b.size() >= n && std::memcmp(b.data(), sig, n) == 0; };
  if (starts("\x89PNG", 4) || b[0] == 0xFF || starts("GIF8", 4) || starts("BM", 2) || b[0] == 'P' ||
      starts("8BPS", 4) || starts("#?", 2) || starts("\x53\x80\xF6\x34", 4))
    return;
  const unsigned cmap = b[1], type = b[2], bpp = b[16];
  const bool indexed = type == 1 || type == 9;
  if (cmap > 1 || (cmap == 1 && !indexed) || (cmap == 0 && type != 2 && type != 3 && type != 10 && type != 11))
    return;
  const int64_t w = b[12] | b[13] << 8, h = b[14] | b[15] << 8;
  if (w < 1 || h < 1 || (bpp != 8 && bpp != 15 && bpp != 16 && bpp != 24 && bpp != 32)) return;
  const int64_t cmap_len = b[5] | b[6] << 8, cmap_bits = b[7];
  const int64_t offset = 18 + b[0] + (cmap ? cmap_len * ((cmap_bits + 7) / 8) : 0);
  const int64_t px = (bpp + 7) / 8, pixels = w * h;
  const int64_t need = type >= 9 ? (pixels + 127) / 128 * (1 + px) : pixels * px;
  const int64_t have = static_cast<int64_t>(b.size()) - offset;
  if (have < need)
    fail(ErrorKind::Data,
         "cannot decode image {}: truncated TGA ({} x {} pixels need at least {} bytes of pixel data, the file has {})",
         path, w, h, need, std::max<int64_t>(have, 0));
}

// stb_image 2.27 checks no chunk CRC-32: a PNG whose IDAT bytes were corrupted (the chunk's CRC left stale) decoded
// to wrong pixels, which libpng (TensorFlow's decode_png) and Pillow refuse. The CRC of every critical chunk (IHDR,
// PLTE, IDAT, IEND; stb refuses other critical chunks) up to IEND is checked as libpng does (libdeflate's
// crc32 over the type and data); a mismatch is a Data error, so dataset.skip_bad_files drops the file. A chunk that
// runs past the end of the file is left to stb, which reports the truncation. stb also calls memcpy with a null
// destination when the first IDAT chunk is empty (zero bytes, so harmless in practice, but undefined behaviour that
// UBSan reports; found by fuzz/fuzz_image): encoders do not write such files, they are refused.
static void check_png_chunks(const std::string& path, const std::vector<uint8_t>& b) {
  if (b.size() < 8 || std::memcmp(b.data(), "\x89PNG\r\n\x1a\n", 8) != 0) return;
  bool seen_idat = false;
  for (size_t i = 8; i + 8 <= b.size();) {
    const uint8_t* c = b.data() + i;
    const uint64_t len = uint64_t{c[0]} << 24 | uint64_t{c[1]} << 16 | uint64_t{c[2]} << 8 | c[3];
    const std::string type(reinterpret_cast<const char*>(c + 4), 4);
    if (type == "IDAT" && !seen_idat && len == 0)
      fail(ErrorKind::Data, "cannot decode image {}: corrupt PNG (empty first IDAT chunk)", path);
    seen_idat = seen_idat || type == "IDAT";
    if (len > b.size() - i - 8 || b.size() - i - 8 - len < 4) return;  // truncated: stb says so
    const uint8_t* q = c + 8 + len;
    const uint32_t stored = uint32_t{q[0]} << 24 | uint32_t{q[1]} << 16 | uint32_t{q[2]} << 8 | q[3];
    const bool critical = type == "IHDR" || type == "PLTE" || type == "IDAT" || type == "IEND";
    if (critical && libdeflate_crc32(0, c + 4, static_cast<size_t>(len) + 4) != stored)
      fail(ErrorKind::Data, "cannot decode image {}: corrupt PNG (CRC mismatch in {} chunk at byte {})", path, type, i);
    if (type == "IEND") return;
    i += 12 + static_cast<size_t>(len);
  }
}

// stb's failure string, or a generic reason when it is empty or not printable: for an unknown critical PNG chunk
// stb formats the chunk's type bytes into a static buffer ("XXXX PNG chunk not known"), which is the empty string
// when the type starts with a zero byte (a PNG cut before its IEND chunk) and garbage for other bytes.
static std::string failure_reason(const char* why) {
  std::string r = why ? why : "";
  bool printable = !r.empty();
  for (char ch : r) printable = printable && ch >= 0x20 && ch < 0x7f;
  return printable ? r : "corrupt or truncated image";
}

// A PNG of colour type 2, 3 or 6 (RGB, palette, RGBA: bit 2 of the IHDR's colour type byte).
static bool colour_png(const std::vector<uint8_t>& b) {
  return b.size() >= 26 && std::memcmp(b.data(), "\x89PNG\r\n\x1a\n", 8) == 0 &&
         std::memcmp(b.data() + 12, "IHDR", 4) == 0 && (b[25] & 2) != 0;
}

// Grayscale from a colour PNG as TensorFlow's decode_png gives it: libpng's rgb_to_gray as png_io.cc sets it up
// (png_set_rgb_to_gray(png, 1, 0.299, 0.587): coefficients 9797, 19234 and 3737 of 32768), R = G = B kept as it
// is, else (9797 R + 19234 G + 3737 B) >> 15 for 8-bit pixels (truncated) and (... + 16384) >> 15 for 16-bit ones,
// whose high byte is then kept (png_set_strip_16 comes after the conversion). Both measured against libpng 1.6.39
// (every 8-bit colour; random 16-bit ones). stb's (77 R + 150 G + 29 B) >> 8, of the 8-bit pixels, was 1 level off
// on 13.5 % of the colours and on half of the 16-bit pixels. A PNG with a gAMA or sRGB chunk is converted by libpng
// in linear light instead, which this does not reproduce (docs/conformance.md).
static Image png_gray(const std::vector<uint8_t>& bytes, const std::string& path) {
  const int len = static_cast<int>(bytes.size());
  const bool deep = stbi_is_16_bit_from_memory(bytes.data(), len);
  int w = 0, h = 0, n = 0;
  void* px = deep ? static_cast<void*>(stbi_load_16_from_memory(bytes.data(), len, &w, &h, &n, 3))
                  : static_cast<void*>(stbi_load_from_memory(bytes.data(), len, &w, &h, &n, 3));
  if (!px) fail(ErrorKind::Data, "cannot decode image {}: {}", path, failure_reason(stbi_failure_reason()));
  Image img;
  img.h = h, img.w = w, img.c = 1;
  img.px.resize(static_cast<size_t>(h) * static_cast<size_t>(w));
  auto convert = [&](const auto* p, uint32_t round, int shift) {
    for (size_t i = 0; i < img.px.size(); ++i, p += 3) {
      const uint32_t r = p[0], g = p[1], b = p[2];
      const uint32_t y = r == g && g == b ? r : (9797 * r + 19234 * g + 3737 * b + round) >> 15;
      img.px[i] = static_cast<float>(y >> shift);
    }
  };
  if (deep)
    convert(static_cast<const uint16_t*>(px), 16384, 8);
  else
    convert(static_cast<const uint8_t*>(px), 0, 0);
  stbi_image_free(px);
  return img;
}

Image decode_image(const std::string& path, ColorMode color) {
  std::vector<uint8_t> bytes;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      const int err = errno;
      std::error_code ec;
      const std::filesystem::path target = std::filesystem::read_symlink(path, ec);
      if (!ec)  // a dangling link (a data set whose link targets were moved), or a loop
        fail(ErrorKind::Io, "cannot open image {}: it is a symbolic link to {}: {}", path, target.string(),
             std::strerror(err));
      fail(ErrorKind::Io, "cannot open image {}: {}", path, std::strerror(err));
    }
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) fail(ErrorKind::Io, "cannot read image {}", path);
  }
  if (bytes.size() > static_cast<size_t>(INT_MAX)) fail(ErrorKind::Data, "image {} is larger than 2 GiB", path);
  check_jpeg_huffman_tables(path, bytes);
  check_pnm_depth(path, bytes);
  check_tga_length(path, bytes);
  check_png_chunks(path, bytes);
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, n = 0;
  int want = color_channels(color);
  // Memory is bounded by what the file declares: check the header's size before stb allocates the pixels.
  constexpr int64_t kMaxPixels = int64_t{1} << 26;  // 67 Mpx (8192 x 8192): 1 GiB as float RGBA
  if (stbi_info_from_memory(bytes.data(), len, &w, &h, &n)) {
    // stb's BMP info returns the header's height as it is: negative for a top-down BMP (rows stored top row
    // first, as the BMP spec allows), which stbi_load decodes top row first like any BMP.
    const bool bmp = bytes.size() >= 2 && bytes[0] == 'B' && bytes[1] == 'M';
    const int64_t ih = bmp && h < 0 ? -int64_t{h} : int64_t{h};
    if (w <= 0 || ih <= 0 || int64_t{w} * ih > kMaxPixels)
      fail(ErrorKind::Data, "cannot decode image {}: {} x {} pixels is more than the {} allowed", path, w, ih,
           kMaxPixels);
  }
  if (color == ColorMode::Grayscale && colour_png(bytes)) return png_gray(bytes, path);
  uint8_t* px = stbi_load_from_memory(bytes.data(), len, &w, &h, &n, want);
  if (!px) fail(ErrorKind::Data, "cannot decode image {}: {}", path, failure_reason(stbi_failure_reason()));
  Image img;
  try {
    img = image_from_u8(px, h, w, want);
  } catch (...) {
    stbi_image_free(px);
    throw;
  }
  stbi_image_free(px);
  if (color == ColorMode::BGR)
    for (size_t i = 0; i + 2 < img.px.size(); i += 3) std::swap(img.px[i], img.px[i + 2]);
  return img;
}

std::vector<std::vector<std::pair<int64_t, float>>> resize_taps(int64_t in, int64_t out, Interp interp) {
  OQ_CHECK(in > 0 && out > 0, "resize {} -> {}", in, out);
  std::vector<std::vector<std::pair<int64_t, float>>> taps(static_cast<size_t>(out));
  const double din = static_cast<double>(in), dout = static_cast<double>(out);
  for (int64_t d = 0; d < out; ++d) {
    auto& t = taps[static_cast<size_t>(d)];
    const double center = (static_cast<double>(d) + 0.5) * din / dout;
    switch (interp) {
      case Interp::Nearest: {
        // In float32, as TensorFlow's resize_nearest_neighbor (half-pixel centres): where (d + 0.5) * in / out
        // is a whole number in exact arithmetic, its float32 product can fall just below it (96 -> 76, row 47).
        const float scale = static_cast<float>(in) / static_cast<float>(out);
        const float cf = (static_cast<float>(d) + 0.5f) * scale;
        int64_t s = std::min<int64_t>(static_cast<int64_t>(std::floor(cf)), in - 1);
        t.emplace_back(s, 1.0f);
        break;
      }
      case Interp::Bilinear: {
        double s = std::clamp(center - 0.5, 0.0, din - 1.0);
        int64_t i = static_cast<int64_t>(std::floor(s));
        double f = s - static_cast<double>(i);
        t.emplace_back(i, static_cast<float>(1.0 - f));
        t.emplace_back(std::min(i + 1, in - 1), static_cast<float>(f));
        break;
      }
      case Interp::Bicubic: {
        // As TensorFlow's resize_bicubic with half-pixel centres (what tf.image.resize runs): taps outside the
        // image get weight 0 and the others are renormalised (not clamped to the edge pixel).
        double s = center - 0.5;
        int64_t i = static_cast<int64_t>(std::floor(s));
        double f = s - static_cast<double>(i), sum = 0;
        for (int k = -1; k <= 2; ++k)
          if (i + k >= 0 && i + k < in) sum += cubic(f - k);
        for (int k = -1; k <= 2; ++k)
          if (i + k >= 0 && i + k < in) t.emplace_back(i + k, static_cast<float>(cubic(f - k) / sum));
        break;
      }
      case Interp::Area: {
        double b = static_cast<double>(d) * din / dout, e = static_cast<double>(d + 1) * din / dout;
        int64_t k0 = static_cast<int64_t>(std::floor(b));
        for (int64_t k = k0; k < in && static_cast<double>(k) < e; ++k) {
          double ov = std::min(e, static_cast<double>(k + 1)) - std::max(b, static_cast<double>(k));
          if (ov > 0) t.emplace_back(k, static_cast<float>(ov * dout / din));
        }
        break;
      }
    }
  }
  return taps;
}

Image resize(const Image& in, int64_t out_h, int64_t out_w, Interp interp) {
  if (in.h == out_h && in.w == out_w) return in;
  const int64_t c = in.c;
  auto tx = resize_taps(in.w, out_w, interp);
  auto ty = resize_taps(in.h, out_h, interp);
  // Pass 1: along W (rows), in.h x out_w.
  std::vector<float> mid(static_cast<size_t>(in.h * out_w * c), 0.0f);
  for (int64_t y = 0; y < in.h; ++y) {
    const float* src = in.px.data() + y * in.w * c;
    float* dst = mid.data() + y * out_w * c;
    for (int64_t x = 0; x < out_w; ++x)
      for (const auto& [k, wt] : tx[static_cast<size_t>(x)])
        for (int64_t ch = 0; ch < c; ++ch) dst[x * c + ch] += wt * src[k * c + ch];
  }
  // Pass 2: along H (columns).
  Image out;
  out.h = out_h, out.w = out_w, out.c = c;
  out.px.assign(static_cast<size_t>(out_h * out_w * c), 0.0f);
  const int64_t row = out_w * c;
  for (int64_t y = 0; y < out_h; ++y) {
    float* dst = out.px.data() + y * row;
    for (const auto& [k, wt] : ty[static_cast<size_t>(y)]) {
      const float* src = mid.data() + k * row;
      for (int64_t i = 0; i < row; ++i) dst[i] += wt * src[i];
    }
  }
  return out;
}

namespace {

Image crop(const Image& in, int64_t y0, int64_t x0, int64_t h, int64_t w) {
  Image r;
  r.h = h, r.w = w, r.c = in.c;
  r.px.resize(static_cast<size_t>(h * w * in.c));
  for (int64_t y = 0; y < h; ++y)
    std::memcpy(r.px.data() + y * w * in.c, in.px.data() + ((y0 + y) * in.w + x0) * in.c,
                static_cast<size_t>(w * in.c) * sizeof(float));
  return r;
}

}  // namespace

Tensor preprocess_image(const Image& img, const ImageGeometry& g, const PreprocessOptions& o, DType dtype,
                        const std::string& input, const std::string& file) {
  OQ_CHECK(img.c == g.c, "image has {} channels, geometry {}", img.c, g.c);
  const int64_t H = g.h, W = g.w;
  Image content;
  int64_t oy = 0, ox = 0;  // where the content goes (padding mode)
  switch (o.aspect) {
    case AspectMode::Fit:
      content = resize(img, H, W, o.interpolation);
      break;
    case AspectMode::Crop: {
      // The centred window of the target's aspect ratio, as Keras' smart_resize (crop_to_aspect_ratio) computes
      // it: sizes and offsets in float32, truncated.
      int64_t ch = static_cast<int64_t>(static_cast<float>(img.w * H) / static_cast<float>(W));
      int64_t cw = static_cast<int64_t>(static_cast<float>(img.h * W) / static_cast<float>(H));
      ch = std::clamp<int64_t>(ch, 1, img.h);
      cw = std::clamp<int64_t>(cw, 1, img.w);
      const auto y0 = static_cast<int64_t>(static_cast<float>(img.h - ch) / 2.0f);
      const auto x0 = static_cast<int64_t>(static_cast<float>(img.w - cw) / 2.0f);
      content = resize(ch == img.h && cw == img.w ? img : crop(img, y0, x0, ch, cw), H, W, o.interpolation);
      break;
    }
    case AspectMode::Padding: {
      // Letterbox as TensorFlow's resize_with_pad (Keras' pad_to_aspect_ratio): the resized size floored, the
      // offset floor((target - unrounded size) / 2), in float32.
      const float ratio = std::max(static_cast<float>(img.w) / static_cast<float>(W),
                                   static_cast<float>(img.h) / static_cast<float>(H));
      const float fh = static_cast<float>(img.h) / ratio, fw = static_cast<float>(img.w) / ratio;
      const int64_t nh = std::clamp<int64_t>(static_cast<int64_t>(std::floor(fh)), 1, H);
      const int64_t nw = std::clamp<int64_t>(static_cast<int64_t>(std::floor(fw)), 1, W);
      content = resize(img, nh, nw, o.interpolation);
      oy = std::clamp<int64_t>(static_cast<int64_t>(std::floor((static_cast<float>(H) - fh) / 2.0f)), 0, H - nh);
      ox = std::clamp<int64_t>(static_cast<int64_t>(std::floor((static_cast<float>(W) - fw) / 2.0f)), 0, W - nw);
      break;
    }
  }
  // Padding is black: pixel value 0, i.e. `offset` after rescaling (as TF pads before the model's rescaling).
  Tensor t = Tensor::uninitialized(DType::Float, g.sample_shape());
  float* out = t.data<float>();
  std::fill(out, out + t.numel(), o.offset);
  const int64_t C = g.c;
  for (int64_t y = 0; y < content.h; ++y)
    for (int64_t x = 0; x < content.w; ++x)
      for (int64_t ch = 0; ch < C; ++ch) {
        float v = content.at(y, x, ch) * o.scale + o.offset;
        int64_t Y = y + oy, X = x + ox;
        size_t idx = g.layout == Layout::NCHW ? static_cast<size_t>((ch * H + Y) * W + X)
                                              : static_cast<size_t>((Y * W + X) * C + ch);
        out[idx] = v;
      }
  return image_values_as(t, dtype, o, input, file);
}

bool image_input_type(DType t) {
  switch (t) {
    case DType::Float: case DType::Double: case DType::Float16: case DType::UInt8: case DType::Int8:
    case DType::Int16: case DType::UInt16: case DType::Int32: case DType::UInt32: case DType::Int64:
    case DType::UInt64:
      return true;
    default:
      return false;
  }
}

void check_image_input_type(const std::string& input, DType dtype) {
  if (dtype != DType::Undefined && !image_input_type(dtype))
    fail(ErrorKind::Data, "model input '{}' is {}: image data cannot feed it (preprocessing gives numbers{})", input,
         numpy_name(dtype), dtype == DType::Bool ? ", not true / false values" : "");
}

Tensor image_values_as(const Tensor& t, DType dtype, const PreprocessOptions& o, const std::string& input,
                       const std::string& file) {
  if (dtype == DType::Float || dtype == DType::Undefined) return t;
  check_image_input_type(input, dtype);
  if (is_float(dtype)) return t.cast(dtype);
  // Integer inputs: the values go in only when each is a whole number the type holds (scale 1 and offset 0 feed
  // the pixels as they are), never rounded or saturated.
  const bool sgn = is_signed_integer(dtype);
  const int bits = dtype_bits(dtype);
  const double lo = sgn ? -std::ldexp(1.0, bits - 1) : 0.0, hi = std::ldexp(1.0, sgn ? bits - 1 : bits);  // [lo, hi)
  const float* v = t.data<float>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) {
    const double x = v[i];
    if (std::floor(x) == x && x >= lo && x < hi) continue;
    const std::string range = sgn ? fmt::format("[{}, {}]", bits >= 64 ? INT64_MIN : -(int64_t{1} << (bits - 1)),
                                                bits >= 64 ? INT64_MAX : (int64_t{1} << (bits - 1)) - 1)
                                  : fmt::format("[0, {}]", bits >= 64 ? UINT64_MAX : (uint64_t{1} << bits) - 1);
    fail(ErrorKind::Data,
         "image {} gives model input '{}' of type {} the value {} (pixel * {} {} {}{}, after resizing): an integer "
         "input takes whole numbers in {} only, never rounded ({})",
         file, input, numpy_name(dtype), v[i], o.scale, o.offset < 0 ? '-' : '+', std::fabs(o.offset),
         o.fixed_by.empty() ? ": preprocessing.rescaling" : "", range,
         settings(o, "scale 1 and offset 0 feed the pixels as they are"));
  }
  return t.cast(dtype);
}

}  // namespace oq::data
