// Test-only tool for tests/python/test_data_preprocessing.py: runs src/data (dataset + loader + preprocessing)
// and dumps what it produces as .npy files, so numpy can check it against an independent implementation.
//
//   oq_preprocess_dump dump --data PATH --out DIR [--input name:dtype:d0,d1,...]... [--interp nearest|bilinear|
//       bicubic|area] [--aspect fit|crop|padding] [--color grayscale|rgb|rgba|bgr] [--layout auto|nchw|nhwc]
//       [--scale S] [--offset O] [--split F] [--seed N] [--no-shuffle] [--batch B] [--threads T]
//       [--class-names a,b,c] [--skip-bad] [--first-n K]
//     -> DIR/<input>_<batch>.npy per batch and input, DIR/labels.npy (int64, when labelled), DIR/names.txt
//        (one sample name per line, in order), DIR/info.txt (describe(), skipped count, class names).
//   oq_preprocess_dump perm N SEED          -> prints the selection permutation
//   oq_preprocess_dump decode IMAGE COLOR OUT.npy    -> stb-decoded uint8 [H, W, C]
//   oq_preprocess_dump write-jpg IN.npy OUT.jpg Q    -> JPEG from a uint8 [H, W, C] array (stb_image_write)
#include <stb/stb_image_write.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/npy.h"
#include "data/preprocess.h"

using namespace oq;
using namespace oq::data;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> r;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) r.push_back(item);
  return r;
}

DType parse_dtype(const std::string& s) {
  if (s == "float") return DType::Float;
  if (s == "double") return DType::Double;
  if (s == "float16") return DType::Float16;
  if (s == "uint8") return DType::UInt8;
  if (s == "int8") return DType::Int8;
  if (s == "int16") return DType::Int16;
  if (s == "int32") return DType::Int32;
  if (s == "int64") return DType::Int64;
  fail(ErrorKind::Usage, "unknown dtype {}", s);
}

InputSpec parse_input(const std::string& s) {
  auto parts = split(s, ':');
  if (parts.size() != 3) fail(ErrorKind::Usage, "--input wants name:dtype:dims, got {}", s);
  InputSpec in{parts[0], parse_dtype(parts[1]), Shape{}};
  for (const auto& d : split(parts[2], ',')) in.shape->push_back(std::stoll(d));
  return in;
}

template <typename T>
T need(std::optional<T> v, const std::string& what) {
  if (!v) fail(ErrorKind::Usage, "bad value for {}", what);
  return *v;
}

int dump(int argc, char** argv) {
  DataOptions o;
  std::vector<InputSpec> inputs;
  std::string out;
  LoaderOptions lo;
  int64_t first = 0;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) fail(ErrorKind::Usage, "{} needs a value", a);
      return argv[++i];
    };
    if (a == "--data") o.path = val();
    else if (a == "--out") out = val();
    else if (a == "--input") inputs.push_back(parse_input(val()));
    else if (a == "--interp") o.preprocess.interpolation = need(parse_interp(val()), a);
    else if (a == "--aspect") o.preprocess.aspect = need(parse_aspect(val()), a);
    else if (a == "--color") o.preprocess.color = need(parse_color(val()), a);
    else if (a == "--layout") o.preprocess.layout = need(parse_layout(val()), a);
    else if (a == "--scale") o.preprocess.scale = std::stof(val());
    else if (a == "--offset") o.preprocess.offset = std::stof(val());
    else if (a == "--split") o.selection.split = std::stod(val());
    else if (a == "--seed") o.selection.seed = std::stoull(val());
    else if (a == "--no-shuffle") o.selection.shuffle = false;
    else if (a == "--batch") lo.batch_size = std::stoll(val());
    else if (a == "--threads") lo.threads = std::stoi(val());
    else if (a == "--class-names") o.class_names = split(val(), ',');
    else if (a == "--skip-bad") o.skip_bad_files = true;
    else if (a == "--first-n") first = std::stoll(val());
    else fail(ErrorKind::Usage, "unknown option {}", a);
  }
  if (out.empty() || inputs.empty()) fail(ErrorKind::Usage, "dump needs --out and --input");
  DatasetPtr ds = open_dataset(o, inputs);
  if (first > 0) ds = first_n(ds, first);
  Loader loader(ds, lo);
  Batch b;
  std::vector<int64_t> labels;
  std::ofstream names(out + "/names.txt");
  while (loader.next(b)) {
    for (const auto& [name, t] : b.inputs) write_npy(fmt::format("{}/{}_{}.npy", out, name, b.number), t);
    labels.insert(labels.end(), b.labels.begin(), b.labels.end());
    for (int64_t i : b.indices) names << ds->sample_name(i) << "\n";
  }
  if (ds->has_labels())
    write_npy(out + "/labels.npy",
              Tensor::from_vector<int64_t>(DType::Int64, {static_cast<int64_t>(labels.size())}, labels));
  std::ofstream info(out + "/info.txt");
  info << "describe " << ds->describe() << "\nsize " << ds->size() << "\nskipped " << ds->skipped()
       << "\nrandom " << ds->is_random() << "\nclasses";
  for (const auto& c : ds->class_names()) info << " " << c;
  info << "\n";
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 2) fail(ErrorKind::Usage, "usage: oq_preprocess_dump dump|perm|decode|write-jpg ...");
  std::string cmd = argv[1];
  if (cmd == "dump") return dump(argc, argv);
  if (cmd == "perm" && argc == 4) {
    auto p = shuffled_permutation(std::stoll(argv[2]), std::stoull(argv[3]));
    for (size_t i = 0; i < p.size(); ++i) std::cout << (i ? " " : "") << p[i];
    std::cout << "\n";
    return 0;
  }
  if (cmd == "decode" && argc == 5) {
    ColorMode c = need(parse_color(argv[3]), "color");
    Image img = decode_image(argv[2], c);
    Tensor t(DType::UInt8, {img.h, img.w, img.c});
    for (int64_t i = 0; i < t.numel(); ++i) t.data<uint8_t>()[i] = static_cast<uint8_t>(img.px[static_cast<size_t>(i)]);
    write_npy(argv[4], t);
    return 0;
  }
  if (cmd == "write-jpg" && argc == 5) {
    NpyArray a = NpyArray::open(argv[2]);
    if (a.dtype() != DType::UInt8 || a.rank() != 3) fail(ErrorKind::Usage, "write-jpg wants uint8 [H,W,C]");
    Tensor t = a.tensor().clone();
    int ok = stbi_write_jpg(argv[3], static_cast<int>(t.dim(1)), static_cast<int>(t.dim(0)),
                            static_cast<int>(t.dim(2)), t.raw(), std::atoi(argv[4]));
    if (!ok) fail(ErrorKind::Io, "cannot write {}", argv[3]);
    return 0;
  }
  fail(ErrorKind::Usage, "bad command line for {}", cmd);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
