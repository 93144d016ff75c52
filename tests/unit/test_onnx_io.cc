// ONNX model I/O: load -> save -> load keeps the IR; saving is deterministic; external data; INT4 packing.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <sys/stat.h>

#include "onnx/model_io.h"
#include "onnx_io_test_util.h"

using namespace oq;
using namespace oq::testutil;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> model_files() {
  std::vector<std::string> r;
  for (const std::string& dir : {std::string(OQ_SOURCE_DIR) + "/testdata", std::string(OQ_SHARED_DIR) + "/models"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".onnx") r.push_back(e.path().string());
  }
  std::sort(r.begin(), r.end());
  return r;
}

template <typename T>
Tensor random_tensor(DType dt, Shape shape, std::mt19937& rng, int lo, int hi) {
  Tensor t(dt, std::move(shape));
  std::uniform_int_distribution<int> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<T>()[i] = static_cast<T>(d(rng));
  return t;
}

std::shared_ptr<ir::Graph> branch(const std::string& name, float value) {
  auto g = std::make_shared<ir::Graph>();
  g->name = name;
  g->doc = name + " doc";
  g->add_initializer(name + "_c", Tensor::scalar_float(value));
  ir::Node n;
  n.op_type = "Identity";
  n.name = name + "_id";
  n.inputs = {name + "_c"};
  n.outputs = {name + "_out"};
  g->nodes.push_back(n);
  g->outputs.push_back({name + "_out", DType::Float, std::vector<ir::Dim>{}, "", ""});
  return g;
}

// A model that uses every part of the IR.
ir::Model feature_model() {
  std::mt19937 rng(7);
  ir::Model m;
  m.ir_version = 9;
  m.opsets = {{"", 17}, {"com.example", 1}, {"ai.onnx.ml", 3}};
  m.producer_name = "oq-test";
  m.producer_version = "1.2.3";
  m.domain = "org.example";
  m.model_version = 7;
  m.doc = "model doc";
  m.metadata_props = {{"author", "me"}, {"license", "MIT"}};
  // FunctionProto {name "MyFn", input "x", output "y", node Identity, domain "com.example"}.
  Pb fnode;
  fnode.bytes(1, "x").bytes(2, "y").bytes(4, "Identity");
  Pb fn;
  fn.bytes(1, "MyFn").bytes(4, "x").bytes(5, "y").msg(7, fnode).bytes(10, "com.example");
  ir::Function f;
  f.name = "MyFn";
  f.domain = "com.example";
  f.serialized = fn.b;
  m.functions = {f};
  Pb tgraph;
  tgraph.bytes(2, "train");
  Pb tinfo;
  tinfo.msg(2, tgraph);
  m.opaque_training_info = {tinfo.b};

  ir::Graph& g = m.graph;
  g.name = "main";
  g.doc = "graph doc";
  g.metadata = {{"gk", "gv"}, {"gk2", ""}};
  g.inputs.push_back({"X", DType::Float, std::vector<ir::Dim>{{-1, "N"}, {3, ""}, {}}, "input doc", "", {{"ik", "iv"}}});
  g.inputs.push_back({"cond", DType::Bool, std::vector<ir::Dim>{}, "", ""});
  g.inputs.push_back({"any", DType::Float, std::nullopt, "", ""});
  g.outputs.push_back({"Y", DType::Float, std::nullopt, "out doc", "", {{"ok", "ov"}}});
  g.outputs.push_back({"Z", DType::Float, std::vector<ir::Dim>{}, "", ""});
  // Sequence(tensor(float)) as an opaque TypeProto.
  Pb elem_tt;
  elem_tt.i(1, 1);
  Pb elem;
  elem.msg(1, elem_tt);
  Pb seq;
  seq.msg(1, elem);
  Pb seq_type;
  seq_type.msg(4, seq);
  g.value_info.push_back({"S", DType::Undefined, std::nullopt, "seq doc", seq_type.b, {{"vk", "vv"}}});
  g.value_info.push_back({"untyped", DType::Undefined, std::nullopt, "", ""});

  ir::Node custom;
  custom.name = "custom0";
  custom.op_type = "MyFn";
  custom.domain = "com.example";
  custom.doc = "node doc";
  custom.overload = "v2";
  custom.metadata = {{"pkg.torch.onnx.stack_trace", "x.py:1"}, {"nk", "nv"}};
  custom.inputs = {"X", "", "W_f32"};
  custom.outputs = {"Y", ""};
  custom.set_attr_float("alpha", 0.25f);
  custom.set_attr_int("k", -3);
  custom.set_attr_string("mode", "fancy");
  ir::Attribute afs;
  afs.name = "fs";
  afs.type = ir::AttrType::Floats;
  afs.floats = {1.5f, -2.0f};
  custom.attrs.push_back(afs);
  custom.set_attr_ints("is", {1, 2, 3});
  ir::Attribute at;
  at.name = "value";
  at.type = ir::AttrType::Tensor;
  at.t = random_tensor<int32_t>(DType::Int32, {2, 2}, rng, -100, 100);
  at.s = "const_tensor_name";
  at.doc = "attr doc";
  custom.attrs.push_back(at);
  ir::Attribute ats;
  ats.name = "ts";
  ats.type = ir::AttrType::Tensors;
  ats.tensors = {Tensor::scalar_float(1), random_tensor<int8_t>(DType::Int4, {3}, rng, -8, 7)};
  ats.strings = {"a", ""};
  custom.attrs.push_back(ats);
  ir::Attribute astr;
  astr.name = "names";
  astr.type = ir::AttrType::Strings;
  astr.strings = {"p", "q"};
  custom.attrs.push_back(astr);
  ir::Attribute aref;
  aref.name = "ref";
  aref.type = ir::AttrType::Float;
  aref.ref_attr_name = "outer_alpha";
  custom.attrs.push_back(aref);
  // AttributeProto {name "sp", type SPARSE_TENSOR, sparse_tensor {values {dims 1, FLOAT, raw}, dims 4}}.
  Pb spv;
  spv.i(kTDims, 1).i(kTType, 1).bytes(kTRaw, std::string("\0\0\x80\x3f", 4));
  Pb spi;
  spi.i(kTDims, 1).i(kTType, 7).bytes(kTInt64, "\x02");  // packed, as protobuf writes it
  Pb sp;
  sp.msg(1, spv).msg(2, spi).i(3, 4);
  Pb spattr;
  spattr.bytes(1, "sp").i(20, 11).msg(22, sp);
  ir::Attribute asp;
  asp.name = "sp";
  asp.type = ir::AttrType::SparseTensor;
  asp.opaque = spattr.b;
  custom.attrs.push_back(asp);
  g.nodes.push_back(custom);

  ir::Node iff;
  iff.name = "if0";
  iff.op_type = "If";
  iff.inputs = {"cond"};
  iff.outputs = {"Z"};
  ir::Attribute then_a, else_a;
  then_a.name = "then_branch";
  then_a.type = ir::AttrType::Graph;
  then_a.g = branch("then", 1.0f);
  else_a.name = "else_branch";
  else_a.type = ir::AttrType::Graph;
  else_a.g = branch("else", 2.0f);
  iff.attrs = {then_a, else_a};
  ir::Attribute gs;
  gs.name = "bodies";
  gs.type = ir::AttrType::Graphs;
  gs.graphs = {branch("b0", 3.0f), branch("b1", 4.0f)};
  iff.attrs.push_back(gs);
  g.nodes.push_back(iff);

  g.add_initializer("W_f32", random_tensor<float>(DType::Float, {3, 5}, rng, -9, 9));
  g.initializers.back().doc = "weights doc";
  g.add_initializer("u8", random_tensor<uint8_t>(DType::UInt8, {7}, rng, 0, 255));
  g.add_initializer("i8", random_tensor<int8_t>(DType::Int8, {2, 3}, rng, -128, 127));
  g.add_initializer("u16", random_tensor<uint16_t>(DType::UInt16, {3}, rng, 0, 65535));
  g.add_initializer("i16", random_tensor<int16_t>(DType::Int16, {3}, rng, -30000, 30000));
  g.add_initializer("i32", random_tensor<int32_t>(DType::Int32, {4}, rng, -100000, 100000));
  g.add_initializer("i64", random_tensor<int64_t>(DType::Int64, {2, 2}, rng, -100000, 100000));
  g.add_initializer("b", random_tensor<uint8_t>(DType::Bool, {5}, rng, 0, 1));
  g.add_initializer("f16", random_tensor<uint16_t>(DType::Float16, {3}, rng, 0, 0x7bff));
  g.add_initializer("bf16", random_tensor<uint16_t>(DType::BFloat16, {3}, rng, 0, 0x7f00));
  g.add_initializer("f64", random_tensor<double>(DType::Double, {2}, rng, -5, 5));
  g.add_initializer("u32", random_tensor<uint32_t>(DType::UInt32, {2}, rng, 0, 1 << 30));
  g.add_initializer("u64", random_tensor<uint64_t>(DType::UInt64, {2}, rng, 0, 1 << 30));
  g.add_initializer("i4", random_tensor<int8_t>(DType::Int4, {7}, rng, -8, 7));
  g.add_initializer("u4", random_tensor<uint8_t>(DType::UInt4, {5}, rng, 0, 15));
  g.add_initializer("empty", Tensor(DType::Float, {0, 4}));
  Tensor str(DType::String, {2});
  str.strings() = {"hello", std::string("bin\0ary", 7)};
  g.add_initializer("str", str);
  Pb qa;
  qa.bytes(1, "X").msg(2, kv("SCALE_TENSOR", "s"));
  g.opaque_quantization_annotation = {qa.b};
  return m;
}

}  // namespace

TEST(OnnxIo, FeatureModelRoundTrip) {
  TempDir d;
  ir::Model m = feature_model();
  onnx::save_model(m, d / "f.onnx");
  ir::Model back = onnx::load_model(d / "f.onnx");
  EXPECT_EQ(diff_model(m, back), "");
  std::string s1 = onnx::serialize_model(back);
  EXPECT_EQ(s1, read_file(d / "f.onnx"));
  ir::Model again = onnx::load_model_from_bytes(s1, d.path, "mem");
  EXPECT_EQ(diff_model(m, again), "");
  EXPECT_EQ(onnx::serialize_model(again), s1);
  // No temp files left beside the model.
  for (const auto& e : fs::directory_iterator(d.path))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

// A model file is parsed from a mapping of the file; one that cannot be mapped (a pipe, e.g. bash's <(...)) is
// read from the descriptor already open, to its end: the same model either way, and a truncated stream is the
// loader's usual one-line error naming the path.
TEST(OnnxIo, LoadsFromAPipeAsFromTheFile) {
  std::signal(SIGPIPE, SIG_IGN);  // a loader that stops reading early fails the test instead of killing it
  TempDir d;
  ir::Model m = feature_model();
  onnx::save_model(m, d / "f.onnx");
  const std::string bytes = read_file(d / "f.onnx");
  for (size_t cut : {bytes.size(), bytes.size() / 2}) {
    SCOPED_TRACE(cut);
    const std::string fifo = d / ("pipe" + std::to_string(cut) + ".onnx");
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    std::string error;
    ir::Model back;
    {
      std::jthread writer([&] {  // opening a FIFO for writing blocks until the loader opens it for reading
        std::FILE* f = std::fopen(fifo.c_str(), "wb");
        if (!f) return;
        std::fwrite(bytes.data(), 1, cut, f);
        std::fclose(f);
      });
      try {
        back = onnx::load_model(fifo);
      } catch (const Error& e) {
        error = e.what();
        EXPECT_EQ(e.kind(), ErrorKind::Model) << error;
      }
    }  // the writer has finished
    if (cut == bytes.size()) {
      EXPECT_EQ(error, "");
      EXPECT_EQ(diff_model(m, back), "");
    } else {
      EXPECT_NE(error.find("model '" + fifo + "': not a valid ONNX protobuf"), std::string::npos) << error;
    }
  }
}

TEST(OnnxIo, EqualityHelperSeesDifferences) {
  ir::Model a = feature_model();
  ir::Model b = feature_model();
  ASSERT_EQ(diff_model(a, b), "");
  b.graph.initializers[0].tensor.data<float>()[4] += 1.0f;
  EXPECT_NE(diff_model(a, b), "");
  b = feature_model();
  b.graph.nodes[1].attrs[0].g->nodes[0].inputs[0] = "other";
  EXPECT_NE(diff_model(a, b), "");
  b = feature_model();
  (*b.graph.inputs[0].shape)[0].param = "M";
  EXPECT_NE(diff_model(a, b), "");
  b = feature_model();
  b.metadata_props[1].second = "GPL";
  EXPECT_NE(diff_model(a, b), "");
}

TEST(OnnxIo, RoundTripEveryTestModel) {
  auto files = model_files();
  ASSERT_FALSE(files.empty()) << "no models under testdata/ or shared/models";
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    ir::Model m = onnx::load_model(f);
    EXPECT_GT(m.graph.nodes.size(), 0u);
    std::string s1 = onnx::serialize_model(m);
    ir::Model m2 = onnx::load_model_from_bytes(s1, fs::path(f).parent_path().string(), f);
    EXPECT_EQ(diff_model(m, m2), "");
    std::string s2 = onnx::serialize_model(m2);
    EXPECT_TRUE(s1 == s2) << "save(load(x)) differs from save(load(save(load(x))))";
  }
}

TEST(OnnxIo, ExternalDataRoundTrip) {
  std::string src = std::string(OQ_SHARED_DIR) + "/models/mobilenet_v2_128_0.5.onnx";
  ASSERT_TRUE(fs::exists(src));
  ir::Model m = onnx::load_model(src);
  TempDir d;
  onnx::SaveOptions o;
  o.external_data = true;
  onnx::save_model(m, d / "m.onnx", o);
  ASSERT_TRUE(fs::exists(d / "m.onnx.data"));
  uint64_t data_size = fs::file_size(d / "m.onnx.data");
  size_t big_bytes = 0;
  for (const auto& i : m.graph.initializers)
    if (i.tensor.nbytes() >= 1024) big_bytes += i.tensor.nbytes();
  EXPECT_GE(data_size, big_bytes);
  EXPECT_LT(fs::file_size(d / "m.onnx"), fs::file_size(src) - big_bytes + 4096);
  ir::Model back = onnx::load_model(d / "m.onnx");
  EXPECT_EQ(diff_model(m, back), "");

  // Custom data file name, loaded from another working directory (locations are relative to the model).
  o.external_file = "weights.bin";
  o.external_threshold = 16;
  onnx::save_model(m, d / "n.onnx", o);
  ASSERT_TRUE(fs::exists(d / "weights.bin"));
  fs::path cwd = fs::current_path();
  fs::current_path("/");
  ir::Model back2 = onnx::load_model(d / "n.onnx");
  fs::current_path(cwd);
  EXPECT_EQ(diff_model(m, back2), "");
}

// What save_model reports having written: the external data file when there is one, and the size of both (the
// "Model size" log line: a model over 2 GiB is mostly its .data file).
TEST(OnnxIo, SaveModelReportsItsExternalDataFile) {
  std::string src = std::string(OQ_SHARED_DIR) + "/models/mobilenet_v2_128_0.5.onnx";
  ir::Model m = onnx::load_model(src);
  TempDir d;
  const onnx::SavedModel inline_ = onnx::save_model(m, d / "i.onnx");
  EXPECT_EQ(inline_.path, d / "i.onnx");
  EXPECT_EQ(inline_.data_path, "");
  EXPECT_EQ(inline_.bytes(), fs::file_size(d / "i.onnx"));
  onnx::SaveOptions o;
  o.external_data = true;
  const onnx::SavedModel ext = onnx::save_model(m, d / "e.onnx", o);
  ASSERT_EQ(ext.data_path, d / "e.onnx.data");
  const uint64_t model_bytes = fs::file_size(d / "e.onnx"), data_bytes = fs::file_size(d / "e.onnx.data");
  EXPECT_GT(data_bytes, model_bytes);
  EXPECT_EQ(ext.bytes(), model_bytes + data_bytes);
}

// The external data file a save would write (a model over 2 GiB writes <out>.data) never replaces an input: an
// error naming the file, the input untouched, nothing written.
TEST(OnnxIo, ExternalDataNeverReplacesAProtectedFile) {
  std::string src = std::string(OQ_SHARED_DIR) + "/models/mobilenet_v2_128_0.5.onnx";
  ir::Model m = onnx::load_model(src);
  TempDir d;
  {
    std::ofstream f(d / "q.onnx.data", std::ios::binary);
    f << "input data";
  }
  onnx::SaveOptions o;
  o.external_data = true;
  o.protected_files = {d / "q.onnx.data"};
  try {
    onnx::save_model(m, d / "q.onnx", o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("which is an input file"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::file_size(d / "q.onnx.data"), 10u);
  EXPECT_FALSE(fs::exists(d / "q.onnx"));
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(d.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);  // no temporary left
  o.protected_files = {src};  // another file: saved
  onnx::save_model(m, d / "q.onnx", o);
  EXPECT_GT(fs::file_size(d / "q.onnx.data"), 10u);
}

// An external data file reached through a symbolic link that leads out of the model's folder is refused (as
// onnxruntime refuses it); a link that stays inside is followed.
TEST(OnnxIo, ExternalDataSymlinkOutOfTheFolderRefused) {
  std::string src = std::string(OQ_SHARED_DIR) + "/models/mobilenet_v2_128_0.5.onnx";
  ir::Model m = onnx::load_model(src);
  TempDir tmp;
  const fs::path d(tmp.path);
  fs::create_directories(d / "m" / "inside");
  onnx::SaveOptions o;
  o.external_data = true;
  onnx::save_model(m, (d / "m" / "inside" / "a.onnx").string(), o);  // a.onnx + a.onnx.data in m/inside
  fs::rename(d / "m" / "inside" / "a.onnx", d / "m" / "a.onnx");
  fs::create_symlink(d / "m" / "inside" / "a.onnx.data", d / "m" / "a.onnx.data");
  EXPECT_EQ(diff_model(m, onnx::load_model((d / "m" / "a.onnx").string())), "");  // inside the folder: followed
  fs::rename(d / "m" / "inside" / "a.onnx.data", d / "outside.data");
  fs::remove(d / "m" / "a.onnx.data");
  fs::create_symlink(d / "outside.data", d / "m" / "a.onnx.data");
  try {
    onnx::load_model((d / "m" / "a.onnx").string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("leads out of the model's folder through a symbolic link"),
              std::string::npos) << e.what();
  }
}

TEST(OnnxIo, Int4OddLengthsPackLowNibbleFirst) {
  struct Case {
    DType dt;
    std::vector<int> vals;
    std::vector<uint8_t> packed;
  };
  std::vector<Case> cases = {
      {DType::Int4, {-8, 7, -1}, {0x78, 0x0F}},
      {DType::Int4, {1, -2, 3, -4, 5}, {0xE1, 0xC3, 0x05}},
      {DType::Int4, {0, -1, 2, -3, 4, -5, 6}, {0xF0, 0xD2, 0xB4, 0x06}},
      {DType::UInt4, {15, 0, 9}, {0x0F, 0x09}},
      {DType::UInt4, {1, 2, 3, 4, 5}, {0x21, 0x43, 0x05}},
      {DType::UInt4, {15, 14, 13, 12, 11, 10, 9}, {0xEF, 0xCD, 0xAB, 0x09}},
  };
  ir::Model m;
  m.ir_version = 10;
  m.opsets = {{"", 21}};
  for (size_t c = 0; c < cases.size(); ++c) {
    Tensor t(cases[c].dt, {static_cast<int64_t>(cases[c].vals.size())});
    for (size_t i = 0; i < cases[c].vals.size(); ++i) t.data<uint8_t>()[i] = static_cast<uint8_t>(cases[c].vals[i]);
    m.graph.add_initializer("t" + std::to_string(c), t);
  }
  TempDir d;
  onnx::SaveOptions o;
  o.external_data = true;
  o.external_threshold = 1;  // every tensor goes to the data file: its bytes are exactly the packed form
  onnx::save_model(m, d / "q.onnx", o);
  std::string data = read_file(d / "q.onnx.data");
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE(c);
    ASSERT_GE(data.size(), c * 64 + cases[c].packed.size());  // tensors are 64-byte aligned
    for (size_t k = 0; k < cases[c].packed.size(); ++k)
      EXPECT_EQ(static_cast<uint8_t>(data[c * 64 + k]), cases[c].packed[k]) << "byte " << k;
  }
  ir::Model back = onnx::load_model(d / "q.onnx");
  ASSERT_EQ(back.graph.initializers.size(), cases.size());
  for (size_t c = 0; c < cases.size(); ++c) {
    const Tensor& t = back.graph.initializers[c].tensor;
    ASSERT_EQ(t.dtype(), cases[c].dt);
    for (size_t i = 0; i < cases[c].vals.size(); ++i) {
      int v = cases[c].dt == DType::Int4 ? t.data<int8_t>()[i] : t.data<uint8_t>()[i];
      EXPECT_EQ(v, cases[c].vals[i]) << "case " << c << " element " << i;
    }
  }
  // In-memory save (raw_data) round-trips the same values.
  ir::Model mem = onnx::load_model_from_bytes(onnx::serialize_model(m), ".", "mem");
  EXPECT_EQ(diff_model(m, mem), "");
}

TEST(OnnxIo, EditedTypeReplacesKeptTypeProto) {
  // graph input with a denotation: TypeProto{tensor_type{elem FLOAT, shape{dim{value 3, denotation}}}, denotation}
  Pb dim;
  dim.i(1, 3).bytes(3, "DATA_BATCH");
  Pb shp;
  shp.msg(1, dim);
  Pb tt;
  tt.i(1, 1).msg(2, shp);
  Pb type;
  type.msg(1, tt).bytes(6, "IMAGE");
  Pb vi;
  vi.bytes(1, "X").msg(2, type);
  Pb g;
  g.bytes(2, "g").msg(11, vi);
  Pb opset;
  opset.i(2, 13);
  Pb mp;
  mp.i(1, 8).msg(7, g).msg(8, opset);
  ir::Model m = onnx::load_model_from_bytes(mp.b, ".", "denot");
  ASSERT_EQ(m.graph.inputs.size(), 1u);
  EXPECT_EQ(m.graph.inputs[0].dtype, DType::Float);
  ASSERT_TRUE(m.graph.inputs[0].shape.has_value());
  EXPECT_EQ((*m.graph.inputs[0].shape)[0].value, 3);
  EXPECT_FALSE(m.graph.inputs[0].opaque_type.empty());
  // Unedited: the denotations survive byte for byte.
  EXPECT_NE(onnx::serialize_model(m).find("DATA_BATCH"), std::string::npos);
  ir::Model m2 = onnx::load_model_from_bytes(onnx::serialize_model(m), ".", "again");
  EXPECT_EQ(diff_model(m, m2), "");
  // Edited dtype: the IR wins.
  m.graph.inputs[0].dtype = DType::Float16;
  ir::Model m3 = onnx::load_model_from_bytes(onnx::serialize_model(m), ".", "edited");
  EXPECT_EQ(m3.graph.inputs[0].dtype, DType::Float16);
  EXPECT_EQ((*m3.graph.inputs[0].shape)[0].value, 3);
}

TEST(OnnxIo, TensorPbRoundTrip) {
  TempDir d;
  Tensor t(DType::Int4, {5});
  std::vector<int8_t> v = {-8, -1, 0, 3, 7};
  for (int i = 0; i < 5; ++i) t.data<int8_t>()[i] = v[i];
  onnx::save_tensor_pb(t, "my_tensor", d / "t.pb");
  std::string name;
  Tensor back = onnx::load_tensor_pb(d / "t.pb", &name);
  EXPECT_EQ(name, "my_tensor");
  EXPECT_EQ(diff_tensor(t, back, "t"), "");
  Tensor s(DType::String, {3});
  s.strings() = {"a", "", "ccc"};
  onnx::save_tensor_pb(s, "s", d / "s.pb");
  EXPECT_EQ(diff_tensor(s, onnx::load_tensor_pb(d / "s.pb"), "s"), "");
}

// Models near and past protobuf's 2 GiB limit (several GiB of memory and disk: runs when OQ_LARGE_TESTS=1).
TEST(OnnxIoLarge, TwoGigabyteLimit) {
  if (!std::getenv("OQ_LARGE_TESTS")) GTEST_SKIP() << "set OQ_LARGE_TESTS=1 to run";
  TempDir d;
  auto model_of = [](int64_t floats) {
    ir::Model m;
    m.ir_version = 8;
    m.opsets = {{"", 13}};
    Tensor t(DType::Float, {floats});
    for (int64_t i = 0; i < floats; i += 4096) t.data<float>()[i] = static_cast<float>(i % 1000);
    t.data<float>()[floats - 1] = 42.0f;
    m.graph.add_initializer("big", t);
    return m;
  };
  {  // 1.8 GB in one file: loads with the raised CodedInputStream limit.
    ir::Model m = model_of(int64_t{450} << 20);
    onnx::save_model(m, d / "inline.onnx");
    EXPECT_FALSE(fs::exists(d / "inline.onnx.data"));
    EXPECT_GT(fs::file_size(d / "inline.onnx"), uint64_t{1800} << 20);
    ir::Model back = onnx::load_model(d / "inline.onnx");
    EXPECT_EQ(diff_model(m, back), "");
  }
  fs::remove(d / "inline.onnx");
  {  // 2.4 GB: external data is forced on.
    ir::Model m = model_of(int64_t{600} << 20);
    onnx::save_model(m, d / "big.onnx");
    ASSERT_TRUE(fs::exists(d / "big.onnx.data"));
    EXPECT_LT(fs::file_size(d / "big.onnx"), 4096u);
    ir::Model back = onnx::load_model(d / "big.onnx");
    EXPECT_EQ(diff_model(m, back), "");
  }
}
