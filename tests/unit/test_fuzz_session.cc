// Regressions of the fuzz_session target (fuzz/fuzz_session.cc, docs/reliability.md): each finding as the kernel
// call or Session run it came down to. The minimised models are in tests/bad_inputs/fuzz_session_*.onnx.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>

#include "core/alloc.h"
#include "data/npy.h"
#include "exec/session.h"
#include "onnx/model_io.h"
#include "kernel_test_util.h"

namespace oq {
namespace {

using ktest::ft;
using ktest::it64;
using ktest::make_node;
using ktest::run_kernel;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Finding 1 (docs/reliability.md: 11): a Reshape shape whose product overflows int64 (UBSan: signed overflow in
// the product of the known entries). Now a Model error naming the node and the shape.
TEST(FuzzSession, ReshapeShapeProductOverflow) {
  auto n = make_node("Reshape", 2);
  Tensor x = ft({2, 8}, std::vector<float>(16));
  std::string e = error_of([&] { run_kernel(n, 13, {x, it64({2}, {648518346341351423, 16})}); });
  EXPECT_NE(e.find("node 't_Reshape' (Reshape)"), std::string::npos) << e;
  EXPECT_NE(e.find("[648518346341351423,16] has more elements than fit in 64 bits"), std::string::npos) << e;
  // With -1: the product of the other entries overflows before the division.
  e = error_of([&] { run_kernel(n, 13, {x, it64({3}, {-1, int64_t{1} << 40, int64_t{1} << 40})}); });
  EXPECT_NE(e.find("more elements than fit in 64 bits"), std::string::npos) << e;
}

// Pad whose pads overflow int64 when added to the axis size (same class as finding 1, found reading the Pad
// kernel after it).
TEST(FuzzSession, PadOverflow) {
  auto n = make_node("Pad", 2);
  const int64_t big = std::numeric_limits<int64_t>::max();
  std::string e = error_of([&] { run_kernel(n, 13, {ft({1, 2}, {1, 2}), it64({4}, {0, big, 0, 1})}); });
  EXPECT_NE(e.find("node 't_Pad' (Pad): pads [0,9223372036854775807,0,1] overflow axis 1 of size 2"),
            std::string::npos) << e;
}

// Finding 2 (12): Resize with a scale of 1.7e38 (UBSan: the output extent 6.8e38 converted to int64). Now a Model error
// naming the node, the scale and the axis.
TEST(FuzzSession, ResizeHugeScale) {
  auto n = make_node("Resize", 3);
  Tensor x = ft({1, 4}, {1, 2, 3, 4});
  std::string e = error_of([&] { run_kernel(n, 13, {x, Tensor(), ft({2}, {1.0f, 1.7014118e38f})}); });
  EXPECT_NE(e.find("node 't_Resize' (Resize): scale 1.70141"), std::string::npos) << e;
  EXPECT_NE(e.find("makes axis 1"), std::string::npos) << e;
}

// Found reading the Resize kernel after finding 2: a NaN or infinite roi (tf_crop_and_resize) was converted to an
// index (undefined behaviour) and a model with one quantized without complaint; an antialiased Resize to 0
// elements with a scale of 1e-30 computed -1/scale taps. Now: an error for the roi, an empty output for the other.
TEST(FuzzSession, ResizeRoiNotFiniteAndAntialiasToZero) {
  auto n = make_node("Resize", 3);
  n.set_attr_string("coordinate_transformation_mode", "tf_crop_and_resize");
  Tensor x = ft({1, 4}, {1, 2, 3, 4});
  float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::string e = error_of([&] { run_kernel(n, 13, {x, ft({4}, {0, nan, 1, 1}), ft({2}, {1, 2})}); });
  EXPECT_NE(e.find("node 't_Resize' (Resize): roi entry 1 is nan"), std::string::npos) << e;
  e = error_of([&] { run_kernel(n, 13, {x, ft({4}, {0, 0, 1, inf}), ft({2}, {1, 2})}); });
  EXPECT_NE(e.find("roi entry 3 is inf"), std::string::npos) << e;
  // Finite but far outside: the nearest index saturates to the edge (as before, without undefined behaviour).
  auto y = run_kernel(n, 13, {x, ft({4}, {0, -1e30f, 1, 1e30f}), ft({2}, {1, 2})})[0];
  EXPECT_EQ(y.shape(), (Shape{1, 8}));
  auto aa = make_node("Resize", 3);
  aa.set_attr_int("antialias", 1);
  aa.set_attr_string("mode", "linear");
  auto z = run_kernel(aa, 18, {x, Tensor(), ft({2}, {1, 1e-30f})})[0];
  EXPECT_EQ(z.shape(), (Shape{1, 0}));
}

// Found reading the shape kernels after finding 1: Tile repeats whose product with the axis overflows int64, and
// a Range whose element count is infinite (UB converting it). Both now name the node.
TEST(FuzzSession, TileAndRangeOverflow) {
  auto t = make_node("Tile", 2);
  std::string e = error_of([&] { run_kernel(t, 13, {ft({1, 4}, {1, 2, 3, 4}), it64({2}, {1, int64_t{1} << 62})}); });
  EXPECT_NE(e.find("node 't_Tile' (Tile): repeat 4611686018427387904 of axis 1 of size 4 overflows int64"),
            std::string::npos) << e;
  auto r = make_node("Range", 3);
  float inf = std::numeric_limits<float>::infinity();
  e = error_of([&] {
    run_kernel(r, 13, {Tensor::scalar_float(0), Tensor::scalar_float(inf), Tensor::scalar_float(1)});
  });
  EXPECT_NE(e.find("node 't_Range' (Range): start 0, limit inf and delta 1 give inf elements"), std::string::npos) << e;
}

// Finding 3 (13): a BOOL initializer whose raw_data holds a byte other than 0 or 1 (UBSan in the Where kernel: "load of
// value 7, which is not a valid value for type 'const bool'"). The loader refuses it now, naming the tensor.
TEST(FuzzSession, BoolRawDataNotZeroOrOne) {
  std::string path = std::string(OQ_SOURCE_DIR) + "/tests/bad_inputs/fuzz_onnx_bool_raw_data_byte_7.onnx";
  std::string e = error_of([&] { onnx::load_model(path); });
  EXPECT_NE(e.find("tensor 'cond': BOOL raw_data has byte 7 at element 3 (must be 0 or 1)"), std::string::npos) << e;
}

// Found reading the data path after finding 3: a .npy bool array (calibration data, `run --input`) had the same
// problem; its bytes are checked when a tensor or row is handed out.
TEST(FuzzSession, NpyBoolByteNotZeroOrOne) {
  Tensor b(DType::Bool, {2, 3});
  std::string bytes = data::npy_bytes(b);
  bytes[bytes.size() - 2] = 7;  // element 4, row 1
  auto mem = std::make_shared<std::string>(bytes);
  auto a = data::NpyArray::from_memory(mem, reinterpret_cast<const uint8_t*>(mem->data()), mem->size(), "x.npy");
  EXPECT_NO_THROW(a.row(0));
  std::string e = error_of([&] { a.row(1); });
  EXPECT_NE(e.find("x.npy: bool array holds byte 7 at element 4 of [2,3] (must be 0 or 1)"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { a.tensor(); }).find("byte 7 at element 4"), std::string::npos);
}

// Finding 4 (14): a Pad widening a 6x6 image by 100 663 297 columns, fused into the Conv by the optimizer: oneDNN
// spent minutes creating a convolution primitive for the 100-million-column output before the output tensor
// was refused. The Conv kernels (plain, blocked, transposed) check the output size before building a primitive.
TEST(FuzzSession, ConvOutputCheckedBeforeThePrimitive) {
  ir::Node n = make_node("Conv", 2);
  ir::Attribute pads;
  pads.name = "pads";
  pads.type = ir::AttrType::Ints;
  pads.ints = {0, 0, 0, 1 << 20};
  n.attrs.push_back(pads);
  set_max_tensor_bytes(int64_t{1} << 20);
  std::string e = error_of([&] {
    run_kernel(n, 13, {Tensor(DType::Float, {1, 1, 2, 2}), ft({1, 1, 1, 1}, {1})});
  });
  set_max_tensor_bytes(0);
  EXPECT_NE(e.find("node 't_Conv' (Conv): output of shape [1,1,2,1048578] is too large to allocate"),
            std::string::npos) << e;
}

// A tensor over max_tensor_bytes() (the fuzzer sets 256 MiB) is refused by a Session with the node's name.
TEST(FuzzSession, TooLargeTensorNamesTheNode) {
  ir::Model m;
  m.opsets = {{"", 13}};
  ir::ValueInfo x;
  x.name = "x";
  x.dtype = DType::Float;
  x.shape = std::vector<ir::Dim>{{1, ""}, {4, ""}};
  m.graph.inputs.push_back(x);
  m.graph.outputs.push_back(ktest::float_output("y"));
  ir::Node pad = ktest::graph_node("Pad", {"x", "pads"}, "y");
  m.graph.nodes.push_back(pad);
  m.graph.add_initializer("pads", it64({4}, {0, 0, 0, 1 << 20}));
  set_max_tensor_bytes(int64_t{1} << 20);
  std::string e = error_of([&] {
    exec::Session s(m);
    s.run({{"x", ft({1, 4}, {1, 2, 3, 4})}});
  });
  set_max_tensor_bytes(0);
  EXPECT_EQ(max_tensor_bytes(), int64_t{1} << 40);
  EXPECT_NE(e.find("node 'Pad_y' (Pad): tensor of shape [1,1048580] (FLOAT) is too large to allocate"),
            std::string::npos) << e;
}

}  // namespace
}  // namespace oq
