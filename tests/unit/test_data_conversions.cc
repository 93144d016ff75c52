// src/data: which .npz arrays feed which input, the dtype conversion rules (docs/config.md, "Which arrays are
// used, and their types"), where a batch comes from, and the fixed-batch check.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/array_dataset.h"
#include "data/dataset.h"
#include "log_capture_test_util.h"
#include "tmpdir_test_util.h"
#include "data/loader.h"
#include "data/npy.h"

using namespace oq;
using namespace oq::data;
namespace fs = std::filesystem;

namespace {

using oq::test_util::TmpDir;

using oq::test_util::LogCapture;

template <typename F>
std::string error_of(F&& f, ErrorKind kind) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind)) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return {};
}

void expect_has(const std::string& text, std::initializer_list<const char*> parts) {
  for (const char* p : parts) EXPECT_NE(text.find(p), std::string::npos) << "'" << text << "' lacks '" << p << "'";
}

Tensor ramp(DType t, Shape s, double start = 0) {
  Tensor f(DType::Double, s);
  for (int64_t i = 0; i < f.numel(); ++i) f.data<double>()[i] = start + static_cast<double>(i % 40);
  return f.cast(t);
}

// An .npz written with np.savez's layout (stored members), from named tensors.
std::string write_npz(const TmpDir& d, const std::string& name, const std::vector<std::pair<std::string, Tensor>>& a) {
  std::string z, cd;
  auto put16 = [](std::string& s, uint32_t v) { s += char(v & 0xff), s += char((v >> 8) & 0xff); };
  auto put32 = [&](std::string& s, uint32_t v) { put16(s, v & 0xffff), put16(s, v >> 16); };
  for (const auto& [n, t] : a) {
    std::string data = npy_bytes(t), member = n + ".npy";
    uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(data.data()), data.size()));
    uint32_t off = static_cast<uint32_t>(z.size());
    put32(z, 0x04034b50), put16(z, 20), put16(z, 0), put16(z, 0), put16(z, 0), put16(z, 0x21), put32(z, crc);
    put32(z, uint32_t(data.size())), put32(z, uint32_t(data.size())), put16(z, uint32_t(member.size())), put16(z, 0);
    z += member + data;
    put32(cd, 0x02014b50), put16(cd, 20), put16(cd, 20), put16(cd, 0), put16(cd, 0), put16(cd, 0), put16(cd, 0x21);
    put32(cd, crc), put32(cd, uint32_t(data.size())), put32(cd, uint32_t(data.size()));
    put16(cd, uint32_t(member.size())), put16(cd, 0), put16(cd, 0), put16(cd, 0), put16(cd, 0), put32(cd, 0);
    put32(cd, off);
    cd += member;
  }
  uint32_t cd_off = static_cast<uint32_t>(z.size());
  z += cd;
  put32(z, 0x06054b50), put16(z, 0), put16(z, 0), put16(z, uint32_t(a.size())), put16(z, uint32_t(a.size()));
  put32(z, uint32_t(cd.size())), put32(z, cd_off), put16(z, 0);
  std::string p = d / name;
  std::ofstream(p, std::ios::binary).write(z.data(), static_cast<std::streamsize>(z.size()));
  return p;
}

DatasetPtr open_unshuffled(const std::string& path, const std::vector<InputSpec>& inputs) {
  DataOptions o;
  o.path = path;
  o.selection.shuffle = false;
  return open_dataset(o, inputs);
}

}  // namespace

TEST(Conversion, RulesTable) {
  using enum Conversion;
  EXPECT_EQ(conversion_of(DType::Int64, DType::Int64), None);
  // Exact: wider of the same kind, bool to anything, integers a float holds exactly.
  EXPECT_EQ(conversion_of(DType::Int32, DType::Int64), Exact);
  EXPECT_EQ(conversion_of(DType::UInt8, DType::Int16), Exact);
  EXPECT_EQ(conversion_of(DType::UInt32, DType::Int64), Exact);
  EXPECT_EQ(conversion_of(DType::Float16, DType::Float), Exact);
  EXPECT_EQ(conversion_of(DType::Float, DType::Double), Exact);
  EXPECT_EQ(conversion_of(DType::Bool, DType::Float), Exact);
  EXPECT_EQ(conversion_of(DType::Bool, DType::Int64), Exact);
  EXPECT_EQ(conversion_of(DType::UInt8, DType::Float16), Exact);
  EXPECT_EQ(conversion_of(DType::UInt16, DType::Float), Exact);
  EXPECT_EQ(conversion_of(DType::Int32, DType::Double), Exact);
  // Checked: narrower integers, integers to bool, signed to unsigned.
  EXPECT_EQ(conversion_of(DType::Int64, DType::Int32), Checked);
  EXPECT_EQ(conversion_of(DType::Int8, DType::UInt8), Checked);
  EXPECT_EQ(conversion_of(DType::UInt64, DType::Int64), Checked);
  EXPECT_EQ(conversion_of(DType::Int64, DType::UInt64), Checked);
  EXPECT_EQ(conversion_of(DType::Int64, DType::Bool), Checked);
  // Lossy: narrower floats, wide integers to float.
  EXPECT_EQ(conversion_of(DType::Double, DType::Float), Lossy);
  EXPECT_EQ(conversion_of(DType::Float, DType::Float16), Lossy);
  EXPECT_EQ(conversion_of(DType::Int32, DType::Float), Lossy);
  EXPECT_EQ(conversion_of(DType::Int64, DType::Double), Lossy);
  EXPECT_EQ(conversion_of(DType::Int16, DType::Float16), Lossy);
  // Refused: floating point to integer / bool, types with no conversion.
  EXPECT_EQ(conversion_of(DType::Float, DType::Int64), Refused);
  EXPECT_EQ(conversion_of(DType::Double, DType::Bool), Refused);
  EXPECT_EQ(conversion_of(DType::Float16, DType::UInt8), Refused);
  EXPECT_EQ(conversion_of(DType::String, DType::Float), Refused);
  EXPECT_EQ(numpy_name(DType::Double), "float64");
  EXPECT_EQ(numpy_name(DType::Int64), "int64");
}

TEST(Conversion, FloatIdsForAnIntegerInputAreRefused) {
  TmpDir d;
  std::string p = write_npz(d, "tok.npz", {{"ids", ramp(DType::Float, {4, 7}, 0.3)}});
  std::string e = error_of([&] { open_unshuffled(p, {{"ids", DType::Int64, Shape{-1, 7}}}); }, ErrorKind::Data);
  expect_has(e, {"tok.npz", "array 'ids'", "float32", "model input 'ids'", "int64", "astype"});
  // Whole-number floats too: ONNX Runtime refuses the feed whatever the values.
  p = write_npz(d, "whole.npz", {{"x", ramp(DType::Double, {4, 7})}});
  e = error_of([&] { open_unshuffled(p, {{"mask", DType::Bool, Shape{-1, 7}}}); }, ErrorKind::Data);
  expect_has(e, {"whole.npz", "'x'", "float64", "'mask'", "bool"});
}

TEST(Conversion, ExactAndLossyConversionsAreAnnouncedOncePerArray) {
  TmpDir d;
  std::string p = write_npz(d, "m.npz", {{"ids", ramp(DType::Int32, {5, 3})}, {"vec", ramp(DType::Double, {5, 2}, 0.1)},
                                         {"same", ramp(DType::Float, {5, 2})}});
  LogCapture log;
  auto ds = open_unshuffled(p, {{"ids", DType::Int64, Shape{-1, 3}}, {"vec", DType::Float, Shape{-1, 2}},
                                {"same", DType::Float, Shape{-1, 2}}});
  Sample s = ds->sample(2);
  EXPECT_EQ(s.at("ids").dtype(), DType::Int64);
  EXPECT_EQ(s.at("ids").data<int64_t>()[1], 7);
  EXPECT_EQ(s.at("vec").dtype(), DType::Float);
  EXPECT_FLOAT_EQ(s.at("vec").data<float>()[0], 4.1f);
  std::string t = log.text();
  expect_has(t, {"[info] ", "m.npz: array 'ids' (int32) is converted to int64 for model input 'ids'"});
  expect_has(t, {"[warning] ", "m.npz: array 'vec' (float64) is converted to float32 for model input 'vec'", "round"});
  EXPECT_EQ(t.find("'same'"), std::string::npos) << t;
  ds->sample(3);
  EXPECT_EQ(log.text(), t) << "conversions are announced when the data set is opened, not per sample";
}

TEST(Conversion, NarrowingIntegersAreCheckedPerValue) {
  TmpDir d;
  Tensor ids = ramp(DType::Int64, {4, 3});
  ids.data<int64_t>()[7] = int64_t{3} << 33;  // row 2
  std::string p = write_npz(d, "big.npz", {{"ids", ids}});
  auto ds = open_unshuffled(p, {{"ids", DType::Int32, Shape{-1, 3}}});
  EXPECT_EQ(ds->sample(1).at("ids").dtype(), DType::Int32);
  EXPECT_EQ(ds->sample(1).at("ids").data<int32_t>()[2], 5);
  std::string e = error_of([&] { ds->sample(2); }, ErrorKind::Data);
  expect_has(e, {"big.npz", "array 'ids'", "row 2", "25769803776", "model input 'ids'", "int32"});
  // Integers to bool: 0 and 1 only.
  Tensor m(DType::Int64, {2, 2});
  for (int64_t i = 0; i < 4; ++i) m.data<int64_t>()[i] = i < 3 ? i % 2 : 2;
  p = write_npz(d, "mask.npz", {{"mask", m}});
  ds = open_unshuffled(p, {{"mask", DType::Bool, Shape{-1, 2}}});
  EXPECT_EQ(ds->sample(0).at("mask").dtype(), DType::Bool);
  e = error_of([&] { ds->sample(1); }, ErrorKind::Data);
  expect_has(e, {"mask.npz", "row 1", "value 2", "bool", "0 or 1"});
}

TEST(ArraySelection, IgnoredArraysAreNamedInOneWarning) {
  TmpDir d;
  std::string p = write_npz(d, "three.npz", {{"a", ramp(DType::Float, {3, 2})}, {"x", ramp(DType::Float, {3, 2})},
                                             {"b", ramp(DType::Float, {3, 2})}, {"unused", ramp(DType::Float, {3, 1})},
                                             {"y", ramp(DType::Int64, {3})}});
  {
    LogCapture log;
    auto ds = open_unshuffled(p, {{"a", DType::Float, Shape{-1, 2}}, {"b", DType::Float, Shape{-1, 2}}});
    EXPECT_TRUE(ds->has_labels());
    std::string t = log.text();
    expect_has(t, {"[warning] ", "three.npz: ignoring array(s) 'x', 'unused'", "inputs: a, b", "'x' is used only"});
    EXPECT_EQ(t.find("'y'"), std::string::npos) << t;
  }
  {
    // A single-input model whose input is named after an array: that array wins over `x`.
    LogCapture log;
    auto ds = open_unshuffled(p, {{"b", DType::Float, Shape{-1, 2}}});
    expect_has(log.text(), {"ignoring array(s) 'a', 'x', 'unused'"});
  }
  {
    // No array named after the input: `x` feeds it, the others are ignored.
    LogCapture log;
    auto ds = open_unshuffled(p, {{"input", DType::Float, Shape{-1, 2}}});
    std::string t = log.text();
    expect_has(t, {"ignoring array(s) 'a', 'b', 'unused'"});
    EXPECT_EQ(t.find("'x' is used only"), std::string::npos) << t;
  }
  {
    // Nothing ignored: no warning.
    std::string q = write_npz(d, "xy.npz", {{"x", ramp(DType::Float, {3, 2})}, {"y", ramp(DType::Int64, {3})}});
    LogCapture log;
    open_unshuffled(q, {{"input", DType::Float, Shape{-1, 2}}});
    EXPECT_EQ(log.text().find("ignoring"), std::string::npos) << log.text();
  }
}

TEST(ArrayLabels, IntegersOfShapeNOrNBy1) {
  TmpDir d;
  const Tensor x = ramp(DType::Float, {3, 2});
  Tensor y(DType::Int32, {3, 1});
  for (int64_t i = 0; i < 3; ++i) y.data<int32_t>()[i] = static_cast<int32_t>(2 - i);
  auto ds = open_unshuffled(write_npz(d, "n1.npz", {{"x", x}, {"y", y}}), {{"x", DType::Float, Shape{-1, 2}}});
  ASSERT_TRUE(ds->has_labels());  // [N, 1] (as Keras writes labels) is read as [N]
  EXPECT_EQ((std::vector<int64_t>{ds->label(0), ds->label(1), ds->label(2)}), (std::vector<int64_t>{2, 1, 0}));
  // Bool, float, one-hot [N, K], [N, 1, 1]: refused naming the file, 'y', the type and the shape.
  for (auto [name, t] : {std::pair{"b.npz", Tensor(DType::Bool, {3})}, std::pair{"f.npz", Tensor(DType::Float, {3})},
                         std::pair{"k.npz", Tensor(DType::Int64, {3, 10})},
                         std::pair{"r3.npz", Tensor(DType::Int64, {3, 1, 1})}}) {
    const std::string p = write_npz(d, name, {{"x", x}, {"y", t}});
    std::string e = error_of([&] { open_unshuffled(p, {{"x", DType::Float, Shape{-1, 2}}}); }, ErrorKind::Data);
    const std::string want = p + ": labels 'y' must be an integer array of shape [N] or [N,1] (one class index per "
                             "row), got " + numpy_name(t.dtype()) + " of shape " + shape_str(t.shape());
    expect_has(e, {want.c_str()});
  }
}

TEST(SamplesName, NamesTheFileAndRows) {
  TmpDir d;
  std::string p = write_npz(d, "r.npz", {{"x", ramp(DType::Float, {20, 2})}});
  auto ds = open_unshuffled(p, {{"x", DType::Float, Shape{-1, 2}}});
  EXPECT_EQ(ds->samples_name(std::vector<int64_t>{3}), p + " row 3");
  EXPECT_EQ(ds->samples_name(std::vector<int64_t>{4, 5}), p + " rows 4, 5");
  std::vector<int64_t> many{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(ds->samples_name(many), p + " rows 0, 1, 2, 3, 4, 5, 6, 7 and 2 more");
  EXPECT_EQ(first_n(ds, 4)->samples_name(std::vector<int64_t>{1, 2}), p + " rows 1, 2");
}

TEST(FixedBatch, ErrorsNameTheDataTheKeyAndWhatWorks) {
  TmpDir d;
  std::string p = write_npz(d, "b.npz", {{"x", ramp(DType::Float, {12, 3})}});
  auto ds = open_unshuffled(p, {{"x", DType::Float, Shape{-1, 3}}});
  // Dynamic batch: anything goes.
  check_fixed_batch({{"x", DType::Float, Shape{-1, 3}}}, *ds, 5, "dataset.batch_size");
  check_fixed_batch({{"x", DType::Float, std::nullopt}}, *ds, 5, "dataset.batch_size");
  // Fixed batch, equal batch size, whole batches: fine.
  check_fixed_batch({{"x", DType::Float, Shape{2, 3}}}, *ds, 2, "dataset.batch_size");
  check_fixed_batch({{"x", DType::Float, Shape{1, 3}}}, *ds, 1, "dataset.batch_size");
  std::string e = error_of([&] { check_fixed_batch({{"x", DType::Float, Shape{1, 3}}}, *ds, 4, "dataset.batch_size"); },
                           ErrorKind::Config);
  expect_has(e, {"b.npz", "model input 'x'", "fixed batch dimension of 1", "dataset.batch_size is 4",
                 "set dataset.batch_size: 1"});
  e = error_of([&] { check_fixed_batch({{"x", DType::Float, Shape{2, 3}}}, *ds, 1, "dataset.batch_size"); },
               ErrorKind::Config);
  expect_has(e, {"b.npz", "fixed batch dimension of 2", "set dataset.batch_size: 2"});
  EXPECT_EQ(e.find("multiple"), std::string::npos) << e;  // 12 samples: whole batches of 2
  auto eleven = first_n(ds, 11);
  e = error_of([&] { check_fixed_batch({{"x", DType::Float, Shape{2, 3}}}, *eleven, 1, "--batch-size"); },
               ErrorKind::Config);
  expect_has(e, {"set --batch-size: 2", "multiple of 2", "gives 11"});
  e = error_of([&] { check_fixed_batch({{"x", DType::Float, Shape{2, 3}}}, *eleven, 2, "dataset.batch_size"); },
               ErrorKind::Config);
  expect_has(e, {"b.npz", "fixed batch dimension of 2", "11 samples", "last batch would hold 1",
                 "use a multiple of 2 samples (e.g. 10 or 12)"});
  // A caller that knows which key chose the count says what works instead.
  e = error_of([&] {
    check_fixed_batch({{"x", DType::Float, Shape{2, 3}}}, *eleven, 2, "dataset.batch_size",
                      [](int64_t b, int64_t n) { return fmt::format("fix b={} n={}", b, n); });
  }, ErrorKind::Config);
  expect_has(e, {"11 samples", "fix b=2 n=11 or give the model a dynamic batch dimension"});
  EXPECT_EQ(e.find("use a multiple"), std::string::npos) << e;
  e = error_of([&] {
    check_fixed_batch({{"a", DType::Float, Shape{1, 3}}, {"b", DType::Float, Shape{2, 3}}}, *ds, 1, "dataset.batch_size");
  }, ErrorKind::Model);
  expect_has(e, {"'a'", "'b'", "different fixed batch dimensions"});
}
