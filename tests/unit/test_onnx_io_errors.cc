// ONNX model I/O: typed-field decoding from hand-encoded protobuf bytes, and error cases (each message must
// name the file and the tensor / location concerned).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "onnx/model_io.h"
#include "onnx_io_test_util.h"

using namespace oq;
using namespace oq::testutil;
namespace fs = std::filesystem;

namespace {

// Loads `path` expecting an error of `kind` whose message contains every string of `parts`.
void expect_load_error(const std::string& path, ErrorKind kind, const std::vector<std::string>& parts) {
  try {
    onnx::load_model(path);
    ADD_FAILURE() << "loading " << path << " did not fail";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.kind(), kind) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(msg.rfind("model '" + path + "'", 0), 0u) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

Pb float_tensor(const std::string& name, std::vector<int64_t> dims) {
  Pb t;
  for (int64_t d : dims) t.i(kTDims, d);
  t.i(kTType, 1).bytes(kTName, name);
  return t;
}

Pb external_tensor(const std::string& name, const std::string& location, int64_t n) {
  Pb t = float_tensor(name, {n});
  t.msg(kTExternal, kv("location", location)).i(kTLocation, 1);
  return t;
}

}  // namespace

TEST(OnnxIoDecode, TypedFields) {
  std::vector<Pb> t(11);
  t[0] = float_tensor("f", {2});
  t[0].f32(kTFloat, 1.5f).f32(kTFloat, -2.0f);
  t[1].i(kTDims, 2).i(kTType, 3).bytes(kTName, "i8").i(kTInt32, -3).i(kTInt32, 100);
  t[2].i(kTDims, 1).i(kTType, 10).bytes(kTName, "f16").i(kTInt32, 0x3C00);
  t[3].i(kTDims, 3).i(kTType, 9).bytes(kTName, "b").i(kTInt32, 1).i(kTInt32, 0).i(kTInt32, 1);
  t[4].i(kTDims, 2).i(kTType, 12).bytes(kTName, "u32").u(kTUint64, 4000000000u).u(kTUint64, 7);
  t[5].i(kTDims, 1).i(kTType, 11).bytes(kTName, "f64").f64(kTDouble, 0.125);
  t[6].i(kTDims, 2).i(kTType, 7).bytes(kTName, "i64").i(kTInt64, -5).i(kTInt64, int64_t{1} << 40);
  t[7].i(kTDims, 2).i(kTType, 8).bytes(kTName, "s").bytes(kTString, "ab").bytes(kTString, "");
  // INT4 [3] in int32_data: packed bytes, one per entry: {-8, 7, -1} -> 0x78, 0x0F.
  t[8].i(kTDims, 3).i(kTType, 22).bytes(kTName, "i4").i(kTInt32, 0x78).i(kTInt32, 0x0F);
  // UINT4 [5] in raw_data: {1,2,3,4,5} -> 21 43 05.
  t[9].i(kTDims, 5).i(kTType, 21).bytes(kTName, "u4").bytes(kTRaw, "\x21\x43\x05");
  t[10].i(kTDims, 2).i(kTType, 16).bytes(kTName, "bf16").i(kTInt32, 0x3F80).i(kTInt32, 0xC000);
  ir::Model m = onnx::load_model_from_bytes(model_with_initializers(t), ".", "typed");
  const ir::Graph& g = m.graph;
  ASSERT_EQ(g.initializers.size(), t.size());
  EXPECT_EQ(m.ir_version, 8);
  EXPECT_EQ(m.default_opset(), 13);
  EXPECT_EQ(g.find_initializer("f")->tensor.data<float>()[1], -2.0f);
  EXPECT_EQ(g.find_initializer("i8")->tensor.data<int8_t>()[0], -3);
  EXPECT_EQ(g.find_initializer("i8")->tensor.data<int8_t>()[1], 100);
  EXPECT_EQ(half_to_float(g.find_initializer("f16")->tensor.data<uint16_t>()[0]), 1.0f);
  const Tensor& b = g.find_initializer("b")->tensor;
  EXPECT_EQ(b.dtype(), DType::Bool);
  EXPECT_EQ(b.data<uint8_t>()[0] + 2 * b.data<uint8_t>()[1] + 4 * b.data<uint8_t>()[2], 5);
  EXPECT_EQ(g.find_initializer("u32")->tensor.data<uint32_t>()[0], 4000000000u);
  EXPECT_EQ(g.find_initializer("f64")->tensor.data<double>()[0], 0.125);
  EXPECT_EQ(g.find_initializer("i64")->tensor.data<int64_t>()[1], int64_t{1} << 40);
  EXPECT_EQ(g.find_initializer("s")->tensor.strings()[0], "ab");
  const Tensor& i4 = g.find_initializer("i4")->tensor;
  EXPECT_EQ(i4.data<int8_t>()[0], -8);
  EXPECT_EQ(i4.data<int8_t>()[1], 7);
  EXPECT_EQ(i4.data<int8_t>()[2], -1);
  const Tensor& u4 = g.find_initializer("u4")->tensor;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(u4.data<uint8_t>()[i], i + 1);
  EXPECT_EQ(bfloat16_to_float(g.find_initializer("bf16")->tensor.data<uint16_t>()[1]), -2.0f);
}

TEST(OnnxIoErrors, UnreadableEmptyGarbageTruncated) {
  TempDir d;
  expect_load_error(d / "nope.onnx", ErrorKind::Io, {"nope.onnx"});
  write_file(d / "empty.onnx", "");
  expect_load_error(d / "empty.onnx", ErrorKind::Model, {"empty"});
  write_file(d / "garbage.onnx", std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01junk", 16));
  expect_load_error(d / "garbage.onnx", ErrorKind::Model, {});
  write_file(d / "text.onnx", "hello, this is not a model at all\n");
  expect_load_error(d / "text.onnx", ErrorKind::Model, {});
  std::string full = read_file(std::string(OQ_SHARED_DIR) + "/models/mobilenet_v2_128_0.5.onnx");
  ASSERT_GT(full.size(), 1000u);
  for (size_t cut : {full.size() / 2, full.size() - 1, size_t{5}}) {
    write_file(d / "trunc.onnx", full.substr(0, cut));
    expect_load_error(d / "trunc.onnx", ErrorKind::Model, {});
  }
}

TEST(OnnxIoErrors, ExternalLocations) {
  TempDir d;
  write_file(d / "up.onnx", model_with_initializers({external_tensor("w_up", "../x", 4)}));
  expect_load_error(d / "up.onnx", ErrorKind::Model, {"w_up", "../x"});
  write_file(d / "mid.onnx", model_with_initializers({external_tensor("w_mid", "a/../../x", 4)}));
  expect_load_error(d / "mid.onnx", ErrorKind::Model, {"w_mid", "a/../../x"});
  write_file(d / "abs.onnx", model_with_initializers({external_tensor("w_abs", "/etc/passwd", 4)}));
  expect_load_error(d / "abs.onnx", ErrorKind::Model, {"w_abs", "/etc/passwd"});
  write_file(d / "missing.onnx", model_with_initializers({external_tensor("w_miss", "missing.bin", 4)}));
  expect_load_error(d / "missing.onnx", ErrorKind::Io, {"w_miss", "missing.bin"});
  write_file(d / "short.bin", std::string(8, '\0'));
  write_file(d / "short.onnx", model_with_initializers({external_tensor("w_short", "short.bin", 4)}));
  expect_load_error(d / "short.onnx", ErrorKind::Model, {"w_short", "short.bin"});
  // With offset: 16 bytes at offset 4 of a 16-byte file do not fit.
  write_file(d / "sixteen.bin", std::string(16, '\0'));
  Pb off = external_tensor("w_off", "sixteen.bin", 4);
  off.msg(kTExternal, kv("offset", "4"));
  write_file(d / "off.onnx", model_with_initializers({off}));
  expect_load_error(d / "off.onnx", ErrorKind::Model, {"w_off", "sixteen.bin"});
  // And the same file, read properly.
  float vals[4] = {1, 2, 3, 4};
  std::string bytes(reinterpret_cast<const char*>(vals), 16);
  write_file(d / "sixteen.bin", bytes);
  write_file(d / "ok.onnx", model_with_initializers({external_tensor("w_ok", "sixteen.bin", 4)}));
  ir::Model m = onnx::load_model(d / "ok.onnx");
  EXPECT_EQ(m.graph.initializers[0].tensor.data<float>()[3], 4.0f);
}

TEST(OnnxIoErrors, RawAndTypedSizesChecked) {
  TempDir d;
  Pb t = float_tensor("w_raw", {4});
  t.bytes(kTRaw, std::string(12, '\0'));
  write_file(d / "raw.onnx", model_with_initializers({t}));
  expect_load_error(d / "raw.onnx", ErrorKind::Model, {"w_raw", "raw_data", "12"});
  Pb f = float_tensor("w_typed", {3});
  f.f32(kTFloat, 1).f32(kTFloat, 2);
  write_file(d / "typed.onnx", model_with_initializers({f}));
  expect_load_error(d / "typed.onnx", ErrorKind::Model, {"w_typed", "float_data"});
  // Dims whose product overflows must fail before any allocation.
  Pb huge = float_tensor("w_huge", {int64_t{1} << 40, int64_t{1} << 40});
  huge.bytes(kTRaw, "abcd");
  write_file(d / "huge.onnx", model_with_initializers({huge}));
  expect_load_error(d / "huge.onnx", ErrorKind::Model, {"w_huge"});
  Pb big = float_tensor("w_big", {int64_t{1} << 38});
  big.bytes(kTRaw, "abcd");
  write_file(d / "big.onnx", model_with_initializers({big}));
  expect_load_error(d / "big.onnx", ErrorKind::Model, {"w_big", "raw_data"});
  Pb neg = float_tensor("w_neg", {-2});
  write_file(d / "neg.onnx", model_with_initializers({neg}));
  expect_load_error(d / "neg.onnx", ErrorKind::Model, {"w_neg"});
  Pb odd;
  odd.i(kTDims, 1).i(kTType, 17).bytes(kTName, "w_f8").bytes(kTRaw, "a");
  write_file(d / "f8.onnx", model_with_initializers({odd}));
  expect_load_error(d / "f8.onnx", ErrorKind::Model, {"w_f8", "data type 17"});
}

TEST(OnnxIoErrors, SaveFailuresLeaveNoFiles) {
  TempDir d;
  ir::Model m;
  m.ir_version = 8;
  m.opsets = {{"", 13}};
  m.graph.add_initializer("w", Tensor::scalar_float(1));
  // Target folder missing.
  try {
    onnx::save_model(m, d / "no_such_dir/m.onnx");
    ADD_FAILURE() << "save into a missing folder did not fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(std::string(e.what()).find("no_such_dir/m.onnx"), std::string::npos) << e.what();
  }
  // Target is a non-empty directory: the final rename fails, the temp file is removed.
  fs::create_directory(d / "taken");
  write_file(d / "taken/x", "x");
  EXPECT_THROW(onnx::save_model(m, d / "taken"), Error);
  for (const auto& e : fs::directory_iterator(d.path))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  // External data file name that leaves the folder is refused.
  onnx::SaveOptions o;
  o.external_data = true;
  o.external_file = "../escape.bin";
  EXPECT_THROW(onnx::save_model(m, d / "e.onnx", o), Error);
  EXPECT_FALSE(fs::exists(d / "e.onnx"));
}

TEST(OnnxIoErrors, TensorPbErrorsNameTheFile) {
  TempDir d;
  write_file(d / "bad.pb", std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11));
  try {
    onnx::load_tensor_pb(d / "bad.pb");
    ADD_FAILURE() << "garbage tensor file loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.pb"), std::string::npos) << e.what();
  }
}
