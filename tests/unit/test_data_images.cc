// src/data: image folders, preprocessing (hand-computed resize taps and placements), the prefetching loader.
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>  // implementation in Debian's libstb.so
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "data/dataset.h"
#include "log_capture_test_util.h"
#include "tmpdir_test_util.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "data/preprocess.h"

using namespace oq;
using namespace oq::data;
namespace fs = std::filesystem;

namespace {

using oq::test_util::LogCapture;
using oq::test_util::TmpDir;

template <typename F>
void expect_error(F&& f, ErrorKind kind, std::vector<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind)) << e.what();
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

// A w x h RGB PNG whose every pixel is (v, v + 1, v + 2).
void write_png(const std::string& path, int w, int h, uint8_t v) {
  fs::create_directories(fs::path(path).parent_path());
  std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(v + i % 3);
  ASSERT_NE(stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3), 0);
}

InputSpec nchw(int64_t c, int64_t h, int64_t w) { return {"image", DType::Float, Shape{-1, c, h, w}}; }

}  // namespace

// ------------------------------------------------------------------------------------------------ preprocessing

TEST(Preprocess, ResizeTapsByHand) {
  // nearest 4 -> 2: floor((d + 0.5) * 2) = 1, 3.
  auto n = resize_taps(4, 2, Interp::Nearest);
  EXPECT_EQ(n[0][0].first, 1);
  EXPECT_EQ(n[1][0].first, 3);
  // nearest 2 -> 5: floor((d + 0.5) * 0.4) = 0, 0, 1, 1, 1.
  auto n2 = resize_taps(2, 5, Interp::Nearest);
  std::vector<int64_t> src;
  for (auto& t : n2) src.push_back(t[0].first);
  EXPECT_EQ(src, (std::vector<int64_t>{0, 0, 1, 1, 1}));
  // bilinear 4 -> 2: s = 0.5, 2.5 -> halves of (0, 1) and (2, 3).
  auto b = resize_taps(4, 2, Interp::Bilinear);
  EXPECT_EQ(b[1][0].first, 2);
  EXPECT_FLOAT_EQ(b[1][0].second, 0.5f);
  EXPECT_EQ(b[1][1].first, 3);
  // bilinear 2 -> 4: s = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
  auto u = resize_taps(2, 4, Interp::Bilinear);
  EXPECT_FLOAT_EQ(u[0][0].second, 1.0f);
  EXPECT_FLOAT_EQ(u[1][1].second, 0.25f);
  EXPECT_FLOAT_EQ(u[2][1].second, 0.75f);
  EXPECT_EQ(u[3][0].first, 1);
  EXPECT_FLOAT_EQ(u[3][0].second, 1.0f);
  // area 3 -> 2: boxes [0, 1.5) and [1.5, 3): weights 2/3, 1/3 and 1/3, 2/3.
  auto a = resize_taps(3, 2, Interp::Area);
  ASSERT_EQ(a[0].size(), 2u);
  EXPECT_FLOAT_EQ(a[0][0].second, 2.0f / 3.0f);
  EXPECT_FLOAT_EQ(a[0][1].second, 1.0f / 3.0f);
  EXPECT_EQ(a[1][0].first, 1);
  // bicubic: weights sum to 1 and an integer-aligned tap (same size) is the identity.
  auto c = resize_taps(5, 5, Interp::Bicubic);
  EXPECT_NEAR(c[2][1].second, 1.0f, 1e-7);
  EXPECT_NEAR(c[2][0].second, 0.0f, 1e-7);
  for (auto& t : resize_taps(7, 3, Interp::Bicubic)) {
    float s = 0;
    for (auto& [k, w] : t) s += w;
    EXPECT_NEAR(s, 1.0f, 1e-6);
  }
}

TEST(Preprocess, LayoutResolution) {
  PreprocessOptions o;
  auto g = resolve_geometry("in", {1, 3, 224, 200}, o);
  EXPECT_EQ(g.layout, Layout::NCHW);
  EXPECT_EQ(g.h, 224);
  EXPECT_EQ(g.w, 200);
  g = resolve_geometry("in", {-1, 224, 200, 3}, o);
  EXPECT_EQ(g.layout, Layout::NHWC);
  EXPECT_EQ(g.sample_shape(), (Shape{1, 224, 200, 3}));
  expect_error([&] { resolve_geometry("in", {1, 3, 3, 3}, o); }, ErrorKind::Config, {"'in'", "preprocessing.layout"});
  expect_error([&] { resolve_geometry("in", {1, -1, 5, -1}, o); }, ErrorKind::Config, {"'in'", "preprocessing.layout"});
  // color_mode's channel count (rgb: 3) decides where the usual counts 1, 3, 4 are ambiguous.
  EXPECT_EQ(resolve_geometry("in", {1, 3, 4, 4}, o).layout, Layout::NCHW);
  EXPECT_EQ(resolve_geometry("in", {-1, 4, 6, 3}, o).layout, Layout::NHWC);
  PreprocessOptions sized = o;
  sized.height = 5, sized.width = 6;
  EXPECT_EQ(resolve_geometry("in", {1, 3, -1, -1}, sized).layout, Layout::NCHW);
  EXPECT_EQ(resolve_geometry("in", {1, -1, 5, 6}, o).layout, Layout::NCHW);  // the dynamic dim is the channel
  EXPECT_EQ(resolve_geometry("in", {1, -1, 5, 6}, o).c, 3);
  // Neither dim holds 3 channels: a channel-count error naming both keys.
  expect_error([&] { resolve_geometry("in", {1, 8, 8, 8}, o); }, ErrorKind::Data,
               {"'in'", "8 in dim 1", "preprocessing.color_mode", "preprocessing.layout"});
  expect_error([&] { resolve_geometry("in", {1, 4, 8, 8}, o); }, ErrorKind::Data, {"has 4 in layout NCHW"});
  o.layout = Layout::NCHW;
  EXPECT_EQ(resolve_geometry("in", {1, 3, 3, 3}, o).layout, Layout::NCHW);
  o.layout = Layout::Auto;
  o.color = ColorMode::Grayscale;
  expect_error([&] { resolve_geometry("in", {1, 3, 8, 8}, o); }, ErrorKind::Data, {"'in'", "grayscale"});
  EXPECT_EQ(resolve_geometry("in", {1, 1, 8, 8}, o).c, 1);
  EXPECT_EQ(resolve_geometry("in", {1, 4, 4, 1}, o).layout, Layout::NHWC);
  expect_error([&] { resolve_geometry("in", {1, 1, -1, -1}, o); }, ErrorKind::Data, {"height"});
  o.height = 5, o.width = 6;
  EXPECT_EQ(resolve_geometry("in", {1, 1, -1, -1}, o).sample_shape(), (Shape{1, 1, 5, 6}));
  expect_error([&] { resolve_geometry("in", {1, 8, 8}, o); }, ErrorKind::Data, {"rank-4"});
}

TEST(Preprocess, PaddingCropAndRescaleByHand) {
  // A 2 (h) x 4 (w) single-channel image, values 0..7.
  std::vector<uint8_t> px = {0, 1, 2, 3, 4, 5, 6, 7};
  Image img = image_from_u8(px.data(), 2, 4, 1);
  PreprocessOptions o;
  o.color = ColorMode::Grayscale;
  o.interpolation = Interp::Nearest;
  o.scale = 2.0f;
  o.offset = 1.0f;
  o.aspect = AspectMode::Padding;
  o.layout = Layout::NCHW;  // [1,1,4,4] is ambiguous (dims 1 and 3 both look like channels)
  // Letterbox into 4 x 4 as tf.image.resize_with_pad: ratio max(4/4, 2/4) = 1, content 2 x 4 at row
  // floor((4 - 2) / 2) = 1; the padding is black, pixel 0, i.e. the offset 1 after rescaling.
  Tensor t = preprocess_image(img, resolve_geometry("g", {1, 1, 4, 4}, o), o, DType::Float);
  std::vector<float> expect = {1, 1, 1, 1, 1, 3, 5, 7, 9, 11, 13, 15, 1, 1, 1, 1};
  EXPECT_EQ(std::vector<float>(t.data<float>(), t.data<float>() + 16), expect);
  // Center crop to 2 x 2 as Keras' smart_resize: crop width int(2 * 2 / 2) = 2 columns from int((4 - 2) / 2) = 1.
  o.aspect = AspectMode::Crop;
  t = preprocess_image(img, resolve_geometry("g", {1, 1, 2, 2}, o), o, DType::Float);
  EXPECT_EQ(std::vector<float>(t.data<float>(), t.data<float>() + 4), (std::vector<float>{3, 5, 11, 13}));
  // Fit (stretch) to 1 x 2 nearest: row floor(0.5 * 2) = 1, columns 1 and 3.
  o.aspect = AspectMode::Fit;
  t = preprocess_image(img, resolve_geometry("g", {1, 1, 1, 2}, o), o, DType::UInt8);
  EXPECT_EQ(t.dtype(), DType::UInt8);
  EXPECT_EQ(t.data<uint8_t>()[0], 11);
  EXPECT_EQ(t.data<uint8_t>()[1], 15);
}

TEST(Preprocess, NhwcAndBgrChannelOrder) {
  TmpDir d;
  write_png(d / "p.png", 3, 2, 10);  // pixels (10, 11, 12)
  PreprocessOptions o;
  o.scale = 1.0f;
  o.color = ColorMode::BGR;
  Image img = decode_image(d / "p.png", ColorMode::BGR);
  Tensor t = preprocess_image(img, resolve_geometry("g", {1, 2, 3, 3}, o), o, DType::Float);
  EXPECT_EQ(t.shape(), (Shape{1, 2, 3, 3}));
  EXPECT_EQ(t.data<float>()[0], 12.0f);
  EXPECT_EQ(t.data<float>()[2], 10.0f);
  o.color = ColorMode::RGBA;
  o.layout = Layout::NCHW;
  img = decode_image(d / "p.png", ColorMode::RGBA);
  t = preprocess_image(img, resolve_geometry("g", {1, 4, 2, 3}, o), o, DType::Float);
  EXPECT_EQ(t.data<float>()[0], 10.0f);             // R plane first (NCHW)
  EXPECT_EQ(t.data<float>()[3 * 6 + 5], 255.0f);    // opaque alpha
}

// Binary PGM/PPM: exact pixel bytes of a complete file (comment in the header); a file shorter than the pixel data
// its header declares is refused (stb 2.27 would return uninitialised pixels; fuzz finding).
TEST(Preprocess, BinaryPnmCompleteAndTruncated) {
  TmpDir d;
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(d / name, std::ios::binary) << bytes;
  };
  write("g.pgm", std::string("P5\n# c\n3 2\n255\n") + std::string("\x01\x02\x03\x04\x05\xfa", 6));
  Image g = decode_image(d / "g.pgm", ColorMode::Grayscale);
  EXPECT_EQ(g.w, 3);
  EXPECT_EQ(g.h, 2);
  EXPECT_EQ(g.px, (std::vector<float>{1, 2, 3, 4, 5, 250}));
  write("c.ppm", std::string("P6 1 2 255 ") + std::string("\x0a\x0b\x0c\x0d\x0e\x0f", 6));
  Image c = decode_image(d / "c.ppm", ColorMode::RGB);
  EXPECT_EQ(c.px, (std::vector<float>{10, 11, 12, 13, 14, 15}));
  write("t.pgm", std::string("P5\n3 2\n255\n") + std::string("\x01\x02\x03\x04\x05", 5));
  expect_error([&] { decode_image(d / "t.pgm", ColorMode::Grayscale); }, ErrorKind::Data,
               {"t.pgm", "truncated PGM/PPM", "6 bytes"});
}

// TGA (no magic number): a complete run-length encoded file decodes; one whose data cannot hold the declared
// pixels is refused (stb 2.27 would return zero pixels; fuzz finding).
TEST(Preprocess, TgaCompleteAndTruncated) {
  TmpDir d;
  auto tga = [](int w, int h, const std::string& data) {
    std::string hd(18, '\0');
    hd[2] = 10;  // run-length encoded true colour
    hd[12] = static_cast<char>(w & 255), hd[13] = static_cast<char>(w >> 8);
    hd[14] = static_cast<char>(h & 255), hd[15] = static_cast<char>(h >> 8);
    hd[16] = 24;
    return hd + data;
  };
  const std::string run4 = std::string("\x83\x01\x02\x03", 4);  // one packet: 4 pixels of B=1 G=2 R=3
  std::ofstream(d / "ok.tga", std::ios::binary) << tga(2, 2, run4);
  Image img = decode_image(d / "ok.tga", ColorMode::RGB);
  EXPECT_EQ(img.w, 2);
  EXPECT_EQ(img.px, (std::vector<float>{3, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1}));
  std::ofstream(d / "short.tga", std::ios::binary) << tga(300, 300, run4);
  expect_error([&] { decode_image(d / "short.tga", ColorMode::RGB); }, ErrorKind::Data,
               {"short.tga", "truncated TGA", "2816 bytes"});
}

// The fuzz seeds are small valid images in every format stb reads (written by PIL): the format guards above
// must not refuse any of them.
TEST(Preprocess, EveryFormatOfTheFuzzSeedsDecodes) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(std::string(OQ_SOURCE_DIR) + "/fuzz/seeds/image")) {
    Image img = decode_image(e.path().string(), ColorMode::RGB);
    EXPECT_GE(img.w, 8) << e.path();
    EXPECT_GE(img.h, 8) << e.path();
    EXPECT_EQ(img.px.size(), static_cast<size_t>(img.w * img.h * 3)) << e.path();
    ++n;
  }
  EXPECT_GE(n, 10);
}

// ------------------------------------------------------------------------------------------------ image folders

TEST(ImageFolder, ClassesLabelsAndOrder) {
  TmpDir d;
  write_png(d / "root/dog/b.PNG", 4, 4, 30);
  write_png(d / "root/dog/a.jpg.png", 4, 4, 20);
  write_png(d / "root/cat/z.png", 4, 4, 10);
  std::ofstream(d / "root/cat/notes.txt") << "not an image";
  std::vector<std::string> classes;
  auto e = scan_image_folder(d / "root", {}, &classes);
  EXPECT_EQ(classes, (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(fs::path(e[0].path).filename(), "z.png");
  EXPECT_EQ(fs::path(e[1].path).filename(), "a.jpg.png");
  EXPECT_EQ(e[2].label, 1);
  // class_names given: numbered in sorted order, as ST's loader does (get_path_dataset), whatever the order given.
  e = scan_image_folder(d / "root", {"dog", "cat"}, &classes);
  EXPECT_EQ(classes, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(fs::path(e[0].path).filename(), "z.png");
  EXPECT_EQ(e[0].label, 0);
  EXPECT_EQ(e[2].label, 1);
  // A subset: only the listed classes are read (the other sub-folders are ignored with a warning).
  e = scan_image_folder(d / "root", {"dog"}, &classes);
  EXPECT_EQ(classes, (std::vector<std::string>{"dog"}));
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(fs::path(e[0].path).filename(), "a.jpg.png");
  EXPECT_EQ(e[1].label, 0);
  expect_error([&] { scan_image_folder(d / "root", {"dog", "cat", "bird"}, nullptr); }, ErrorKind::Data,
               {"'bird'", "root/bird"});

  DataOptions o;
  o.path = d / "root";
  o.selection.shuffle = false;
  o.preprocess.scale = 1.0f;
  auto ds = open_dataset(o, {nchw(3, 2, 2)});
  ASSERT_EQ(ds->size(), 3);
  EXPECT_TRUE(ds->has_labels());
  EXPECT_EQ(ds->label(0), 0);
  Tensor t = ds->sample(1).at("image");
  EXPECT_EQ(t.shape(), (Shape{1, 3, 2, 2}));
  EXPECT_EQ(t.data<float>()[0], 20.0f);
  EXPECT_EQ(t.data<float>()[11], 22.0f);
  EXPECT_EQ(ds->class_names()[1], "dog");
}

TEST(ImageFolder, FlatEmptyMissingAndBadFiles) {
  TmpDir d;
  write_png(d / "flat/1.png", 5, 3, 0);
  write_png(d / "flat/2.bmp.png", 5, 3, 0);
  DataOptions o;
  o.path = d / "flat";
  auto ds = open_dataset(o, {nchw(3, 3, 5)});
  EXPECT_EQ(ds->size(), 2);
  EXPECT_FALSE(ds->has_labels());
  fs::create_directories(d / "empty");
  o.path = d / "empty";
  expect_error([&] { open_dataset(o, {nchw(3, 3, 5)}); }, ErrorKind::Data, {"empty", "no images"});
  fs::create_directories(d / "withclass/a");
  o.path = d / "withclass";
  expect_error([&] { open_dataset(o, {nchw(3, 3, 5)}); }, ErrorKind::Data, {"withclass", "none of its 1 class folder"});
  o.path = d / "missing";
  expect_error([&] { open_dataset(o, {nchw(3, 3, 5)}); }, ErrorKind::Io, {"missing"});
  // An undecodable file: an error naming it, or a skip with a count.
  std::ofstream(d / "flat/3.jpg") << "garbage";
  o.path = d / "flat";
  o.selection.shuffle = false;
  ds = open_dataset(o, {nchw(3, 3, 5)});
  expect_error([&] { ds->sample(2); }, ErrorKind::Data, {"3.jpg"});
  expect_error([&] {
    Loader l(ds, {});
    Batch b;
    while (l.next(b)) {
    }
  }, ErrorKind::Data, {"3.jpg"});
  o.skip_bad_files = true;
  ds = open_dataset(o, {nchw(3, 3, 5)});
  // The undecodable file is left out when the folder is opened: the data set is what the run uses, so every
  // count (size, describe, a first_n subset) excludes it.
  EXPECT_EQ(ds->size(), 2);
  EXPECT_EQ(ds->skipped(), 1);
  EXPECT_NE(ds->describe().find("(2 of 3 images, 1 undecodable skipped, unlabelled"), std::string::npos)
      << ds->describe();
  EXPECT_EQ(ds->sample_name(1), d / "flat/2.bmp.png");
  EXPECT_EQ(first_n(ds, 5)->size(), 2);
  Loader l(ds, {.batch_size = 2});
  Batch b;
  std::vector<int64_t> seen;
  while (l.next(b)) seen.insert(seen.end(), b.indices.begin(), b.indices.end());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(ds->skipped(), 1);
  // None decodable: an error naming the folder and the file.
  TmpDir d2;
  fs::create_directories(d2 / "bad");
  std::ofstream(d2 / "bad/a.png") << "garbage";
  o.path = d2 / "bad";
  expect_error([&] { open_dataset(o, {nchw(3, 3, 5)}); }, ErrorKind::Data,
               {"none of the 1 selected images can be decoded", "a.png", "skip_bad_files"});
  o.path = d / "flat";
  // Multi-input models cannot take an image folder.
  expect_error([&] { open_dataset(o, {nchw(3, 3, 5), {"b", DType::Float, Shape{1}}}); }, ErrorKind::Data,
               {"flat", "single-input"});
}

// As Keras' image_dataset_from_directory: an empty class folder keeps its label (the next class is 2, not 1);
// images in sub-folders of a class folder are not read (a warning counts them); a symbolic link named like an
// image whose target is gone is listed, and reading it is an I/O error naming the link and its target.
TEST(ImageFolder, EmptyClassNestedFoldersAndDanglingLinks) {
  TmpDir d;
  write_png(d / "root/a/1.png", 2, 2, 10);
  fs::create_directories(d / "root/b");
  write_png(d / "root/c/1.png", 2, 2, 20);
  write_png(d / "root/c/deeper/x.png", 2, 2, 30);
  std::vector<std::string> classes;
  auto e = scan_image_folder(d / "root", {}, &classes);
  EXPECT_EQ(classes, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].label, 0);
  EXPECT_EQ(e[1].label, 2);
  EXPECT_EQ(e[1].path, d / "root/c/1.png");
  fs::create_symlink("/nonexistent/moved.png", d / "root/a/2.png");
  e = scan_image_folder(d / "root", {}, nullptr);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[1].path, d / "root/a/2.png");
  expect_error([&] { decode_image(e[1].path, ColorMode::RGB); }, ErrorKind::Io,
               {"root/a/2.png", "symbolic link to /nonexistent/moved.png"});
  expect_error([&] { scan_image_folder(d / "root", {"a", "c", "a"}, nullptr); }, ErrorKind::Config,
               {"dataset.class_names lists 'a' twice"});
}

// A folder without images is reported as such before the model input is looked at (an MLP's rank-2 input, or a
// channel count color_mode does not give, was the error before, naming the wrong keys); the files it does hold
// are named. A FIFO named like an image is not read (TF blocks on it) and a warning says so.
TEST(ImageFolder, NoImagesBeforeInputShapeAndSpecialFiles) {
  TmpDir d;
  fs::create_directories(d / "npzdir");
  std::ofstream(d / "npzdir/calib.npz") << "PK";
  DataOptions o;
  o.path = d / "npzdir";
  const InputSpec mlp{"input", DType::Float, Shape{-1, 64}};
  expect_error([&] { open_dataset(o, {mlp}); }, ErrorKind::Data,
               {"npzdir holds no images", "calib.npz", "give the array file itself"});
  expect_error([&] { open_dataset(o, {nchw(1, 3, 5)}); }, ErrorKind::Data, {"npzdir holds no images"});
  write_png(d / "flat/1.png", 5, 3, 0);
  ASSERT_EQ(mkfifo((d / "flat/2.png").c_str(), 0600), 0);
  o.path = d / "flat";
  LogCapture log;
  auto ds = open_dataset(o, {nchw(3, 3, 5)});
  EXPECT_EQ(ds->size(), 1);
  EXPECT_NE(log.text().find("1 entry named like an image but not a regular file (a FIFO, socket or device) skipped "
                            "(e.g. " + (d / "flat/2.png") + ")"), std::string::npos) << log.text();
}

// A 24-bit BMP of a 3 x 2 image, bottom-up (height 2) or top-down (height -2, rows stored top first): both decode
// to the same pixels in top-to-bottom order.
TEST(Preprocess, TopDownBmp) {
  TmpDir d;
  const uint8_t rgb[2][3][3] = {{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}, {{11, 12, 13}, {14, 15, 16}, {17, 18, 19}}};
  for (bool top_down : {false, true}) {
    std::string rows;
    for (int k = 0; k < 2; ++k) {
      const int y = top_down ? k : 1 - k;
      for (int x = 0; x < 3; ++x) rows += {char(rgb[y][x][2]), char(rgb[y][x][1]), char(rgb[y][x][0])};
      rows += std::string(3, '\0');  // 9 bytes padded to 12
    }
    auto le = [](uint32_t v) { return std::string{char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; };
    std::string b = "BM" + le(54 + static_cast<uint32_t>(rows.size())) + le(0) + le(54) + le(40) + le(3) +
                    le(top_down ? static_cast<uint32_t>(-2) : 2u) + std::string("\x01\x00\x18\x00", 4) + le(0) +
                    le(static_cast<uint32_t>(rows.size())) + le(2835) + le(2835) + le(0) + le(0) + rows;
    std::ofstream(d / "b.bmp", std::ios::binary) << b;
    Image img = decode_image(d / "b.bmp", ColorMode::RGB);
    EXPECT_EQ(img.h, 2);
    EXPECT_EQ(img.w, 3);
    EXPECT_EQ(img.px, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19})) << top_down;
  }
}

// stb's reason for a PNG cut before its IEND chunk is the empty string: the error gives a reason anyway.
TEST(Preprocess, TruncatedPngHasAReason) {
  TmpDir d;
  write_png(d / "p.png", 4, 4, 50);
  std::ifstream in(d / "p.png", std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(d / "cut.png", std::ios::binary) << b.substr(0, b.size() - 12);  // without the IEND chunk
  expect_error([&] { decode_image(d / "cut.png", ColorMode::RGB); }, ErrorKind::Data,
               {"cut.png: corrupt or truncated image"});
}

// Integer model inputs take the preprocessed values only when each is a whole number the type holds.
TEST(Preprocess, IntegerInputsTakeWholeValuesOnly) {
  PreprocessOptions o;
  Tensor t = Tensor::from_vector<float>(DType::Float, {1, 4}, {0, 127, 128, 255});
  EXPECT_TRUE(image_values_as(t, DType::UInt8, o, "x", "f.png")
                  .equals(Tensor::from_vector<uint8_t>(DType::UInt8, {1, 4}, {0, 127, 128, 255})));
  EXPECT_TRUE(image_values_as(t, DType::Int64, o, "x", "f.png")
                  .equals(Tensor::from_vector<int64_t>(DType::Int64, {1, 4}, {0, 127, 128, 255})));
  expect_error([&] { image_values_as(t, DType::Int8, o, "x", "f.png"); }, ErrorKind::Data,
               {"f.png", "'x'", "int8", "value 128", "[-128, 127]", "preprocessing.rescaling"});
  Tensor f = Tensor::from_vector<float>(DType::Float, {1, 2}, {0.5f, 1.0f});
  expect_error([&] { image_values_as(f, DType::Int32, o, "x", "f.png"); }, ErrorKind::Data, {"value 0.5"});
  expect_error([&] { image_values_as(f, DType::Bool, o, "x", "f.png"); }, ErrorKind::Data, {"'x' is bool"});
  EXPECT_EQ(image_values_as(f, DType::Double, o, "x", "f.png").data<double>()[0], 0.5);
}

// ------------------------------------------------------------------------------------------------ loader

namespace {

// Sample i = [[i]] with label 100 + i; records the highest index requested so far.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n, int64_t fail_at = -1) : n_(n), fail_at_(fail_at) {}
  int64_t size() const override { return n_; }
  bool has_labels() const override { return true; }
  Sample sample(int64_t i) const override {
    int64_t prev = max_seen.load();
    while (i > prev && !max_seen.compare_exchange_weak(prev, i)) {
    }
    if (i == fail_at_) fail(ErrorKind::Data, "bad sample {}", i);
    Sample s;
    s.emplace("x", Tensor::from_vector<int64_t>(DType::Int64, {1, 1}, {i}));
    return s;
  }
  int64_t label(int64_t i) const override { return 100 + i; }
  std::string sample_name(int64_t i) const override { return std::to_string(i); }
  std::string describe() const override { return "counting"; }
  mutable std::atomic<int64_t> max_seen{-1};

 private:
  int64_t n_, fail_at_;
};

}  // namespace

TEST(Loader, DeterministicOrderAnyThreadCount) {
  auto ds = std::make_shared<CountingDataset>(23);
  for (int threads : {1, 2, 5})
    for (int64_t bs : {1, 4, 23, 50}) {
      Loader l(ds, {.batch_size = bs, .threads = threads});
      EXPECT_EQ(l.num_batches(), (23 + bs - 1) / bs);
      Batch b;
      int64_t next = 0, count = 0;
      while (l.next(b)) {
        EXPECT_EQ(b.number, count++);
        const Tensor& x = b.inputs.at("x");
        EXPECT_EQ(x.dim(0), std::min<int64_t>(bs, 23 - next));
        for (int64_t k = 0; k < x.dim(0); ++k) {
          EXPECT_EQ(x.data<int64_t>()[k], next);
          EXPECT_EQ(b.labels[static_cast<size_t>(k)], 100 + next);
          ++next;
        }
      }
      EXPECT_EQ(next, 23) << threads << " threads, batch " << bs;
      EXPECT_FALSE(l.next(b));
    }
}

TEST(Loader, BoundedPrefetch) {
  auto ds = std::make_shared<CountingDataset>(1000);
  Loader l(ds, {.batch_size = 2, .threads = 2, .capacity = 3});
  Batch b;
  ASSERT_TRUE(l.next(b));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Holding batch 0 consumed: workers may build batches 1..3 only (capacity 3) -> samples up to index 7.
  EXPECT_LE(ds->max_seen.load(), 7);
  EXPECT_GE(ds->max_seen.load(), 3);
}

TEST(Loader, ErrorsSurfaceInOrder) {
  auto ds = std::make_shared<CountingDataset>(20, /*fail_at=*/9);
  Loader l(ds, {.batch_size = 4, .threads = 3});
  Batch b;
  int delivered = 0;
  try {
    while (l.next(b)) ++delivered;
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad sample 9"), std::string::npos);
  }
  EXPECT_EQ(delivered, 2);  // batches 0 and 1 (samples 0..7) came out first
}
