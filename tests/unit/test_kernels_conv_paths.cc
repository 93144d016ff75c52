// Which path Conv takes where oneDNN 2.6 used to fall back, silently, to its reference loops (100-3600x slower
// than ONNX Runtime): grouped convolutions whose channels per group are not a multiple of 16, depthwise with a
// channel multiplier, 1-D depthwise, kernel extents above ~60 (the QA's shapes), read from the kernel's debug
// line; oneDNN's jit_dw for narrow 5x5 / 7x7 depthwise; and the hand depthwise kernel's paths (1-D, channel
// multipliers, 5x5 / 7x7 in vector blocks, small and wide planes) against the naive reference on random odd shapes.
#include <spdlog/spdlog.h>

#include "compute_kernel_test_util.h"
#include "conv_test_util.h"
#include "exec/layout.h"
#include "log_capture_test_util.h"

namespace oq {
namespace {

using namespace ctest;

// Runs case c (channel block `block`, 0: NCHW) once and returns the path its debug line names ("oneDNN
// jit:avx512_core", "depthwise on NCHW (conv_depthwise.cc)", "reference (conv_ref.cc)"...), checking the values
// against the naive reference on the way.
std::string conv_path(const ConvCase& c, int64_t block = 0) {
  std::mt19937 rng(77);
  auto [ws, x, w, b, n] = conv_inputs(c, rng);
  Shape os;
  const ref::ConvGeom g = conv_geom(c, os);
  Tensor want(DType::Float, os);
  ref::conv(x, w, c.bias ? &b : nullptr, g, want);
  const std::vector<Tensor> in = c.bias ? std::vector<Tensor>{x, w, b} : std::vector<Tensor>{x, w};
  const std::string what = fmt::format("x{} w{} group {} block {}", shape_str(c.x), shape_str(ws), c.group, block);
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::debug);
  test_util::LogCapture log;
  if (block) {  // a blocked source, as inside a chain
    ir::Node to = node(exec::kToBlockedOp, 1);
    to.set_attr_int(exec::kBlockAttr, block);
    std::vector<Tensor> bin = in;
    bin[0] = run(to, 13, {x})[0];
    n.set_attr_int(exec::kBlockAttr, block);
    n.set_attr_int(exec::kBlockedSrcAttr, 1);
    Tensor yb = run(n, 13, bin)[0];
    ir::Node back = node(exec::kFromBlockedOp, 1);
    back.set_attr_int(exec::kBlockAttr, block);
    back.set_attr_int("channels", c.m);
    expect_close(run(back, 13, {yb})[0], want, 1e-4, what);
  } else {
    expect_close(run(n, 13, in)[0], want, 1e-4, what);
  }
  spdlog::set_level(level);
  const std::string text = log.text();
  const size_t line = text.find("[debug] Conv '");
  if (line == std::string::npos) {
    ADD_FAILURE() << what << ": no Conv debug line in\n" << text;
    return "";
  }
  const std::string l = text.substr(line, text.find('\n', line) - line);
  return l.substr(l.rfind(": ") + 2);
}

bool is_reference(const std::string& path) {
  return path.empty() || path.find("ref:") != std::string::npos || path.find("reference") != std::string::npos;
}

TEST(ConvPaths, QaShapesDoNotRunOneDnnsReference) {
  ThreadGuard tg;
  set_num_threads(1);
  const std::vector<ConvCase> grouped = {
      {{1, 64, 56, 56}, 64, 8, {3, 3}, {}, {}, {1, 1, 1, 1}, "", true},   // conv_g8_3x3_c64_56
      {{1, 64, 56, 56}, 64, 16, {3, 3}, {}, {}, {1, 1, 1, 1}, "", true},  // g16
      {{1, 64, 56, 56}, 64, 32, {3, 3}, {}, {}, {1, 1, 1, 1}, "", true},  // g32
      {{1, 32, 32, 32}, 32, 4, {3, 3}, {}, {}, {1, 1, 1, 1}, "", true},   // conv_g4_3x3_c32_32
      {{1, 48, 14, 14}, 48, 2, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, "", false},  // RegNet-like, 24 per group
      {{1, 64, 101}, 64, 1, {3}, {}, {32}, {32, 32}, "", true},            // conv1d_k3_d32_c64_t101
      {{1, 64, 101}, 64, 1, {3}, {}, {32}, {64, 0}, "", true},             // causal
      {{1, 64, 101}, 64, 1, {33}, {}, {}, {16, 16}, "", true},             // conv1d_k33_c64_t101
      {{1, 64, 40, 101}, 64, 1, {1, 3}, {}, {1, 32}, {0, 32, 0, 32}, "", true},  // conv2d_1x3_d1x32_c64_40x101
      {{1, 64, 28, 28}, 64, 1, {3, 3}, {}, {29, 29}, {29, 29, 29, 29}, "", true},  // 2-D 3x3 dilation 29
  };
  for (const auto& c : grouped) {
    const std::string p = conv_path(c);
    EXPECT_FALSE(is_reference(p)) << shape_str(c.x) << " group " << c.group << ": " << p;
    EXPECT_EQ(p.rfind("oneDNN ", 0), 0u) << shape_str(c.x) << ": " << p;
  }
  const std::vector<ConvCase> depthwise = {
      {{1, 32, 56, 56}, 64, 32, {3, 3}, {}, {}, {1, 1, 1, 1}, "", true},  // conv_dw_chmult2_c32_56
      {{1, 128, 200}, 128, 128, {3}, {}, {}, {1, 1}, "", true},          // conv1d_k3_dw_c128_t200
      {{1, 128, 500}, 128, 128, {9}, {}, {}, {4, 4}, "", true},          // conv1d_dw_k9_c128_t500
      {{1, 144, 100}, 144, 144, {31}, {}, {}, {15, 15}, "", true},       // conformer k31
      {{1, 96, 56, 56}, 96, 96, {7, 7}, {}, {}, {3, 3, 3, 3}, "", true},  // conv_dw_7x7_c96_56 (wide)
  };
  for (const auto& c : depthwise)
    EXPECT_EQ(conv_path(c), "depthwise on NCHW (conv_depthwise.cc)") << shape_str(c.x) << " group " << c.group;
}

// 5x5 / 7x7 depthwise with outputs at most 32 columns wide and 16 channels or more: oneDNN's jit_dw on 16-channel
// blocks, the NCHW tensors reordered around it (depthwise_prefers_blocked), faster there than the hand kernel.
TEST(ConvPaths, NarrowDepthwiseKxKRunsOneDnnsJitDw) {
  ThreadGuard tg;
  set_num_threads(1);
  const std::vector<ConvCase> narrow = {
      {{1, 192, 28, 28}, 192, 192, {7, 7}, {}, {}, {3, 3, 3, 3}, "", true},   // conv_dw_7x7_c192_28
      {{1, 96, 56, 56}, 96, 96, {5, 5}, {2, 2}, {}, {2, 2, 2, 2}, "", true},   // conv_dw_5x5_s2_c96_56
      {{1, 240, 14, 14}, 240, 240, {5, 5}, {}, {}, {2, 2, 2, 2}, "", true},   // MobileNetV3-Large
      {{1, 672, 7, 7}, 672, 672, {5, 5}, {}, {}, {2, 2, 2, 2}, "", true},
      {{2, 20, 13, 11}, 20, 20, {5, 5}, {}, {}, {1, 2, 2, 1}, "", true},      // odd: partial block, pads
      {{1, 33, 9, 15}, 33, 33, {7, 7}, {2, 2}, {}, {3, 1, 2, 3}, "", false},  // stride 2
      {{1, 17, 21, 19}, 17, 17, {5, 5}, {}, {2, 2}, {4, 3, 4, 5}, "", true},  // dilation 2
  };
  for (const auto& c : narrow)
    EXPECT_EQ(conv_path(c).rfind("oneDNN jit_dw", 0), 0u) << shape_str(c.x) << " group " << c.group;
}

// Inside a channel-blocked chain (exec/layout.h) a convolution keeps its blocked input and output; where
// oneDNN has only its reference kernel for the blocked layouts, it runs in oneDNN's own with reorders.
TEST(ConvPaths, BlockedLargeDilationDoesNotRunOneDnnsReference) {
  ThreadGuard tg;
  set_num_threads(1);
  const ConvCase dilated = {{1, 24, 28, 30}, 40, 1, {3, 3}, {}, {29, 29}, {29, 29, 29, 29}, "", true};
  const ConvCase plain = {{1, 24, 14, 15}, 32, 1, {3, 3}, {}, {}, {1, 1, 1, 1}, "", true};
  for (int64_t block : {8, 16}) {
    const std::string p = conv_path(dilated, block);
    EXPECT_FALSE(is_reference(p)) << "block " << block << ": " << p;
    EXPECT_NE(p.find("(reordered)"), std::string::npos) << p;
    // The ordinary case keeps the blocked layouts: no reorder.
    const std::string q = conv_path(plain, block);
    EXPECT_FALSE(is_reference(q)) << q;
    EXPECT_EQ(q.find("(reordered)"), std::string::npos) << q;
  }
}

// The hand depthwise kernel (conv_depthwise.cc) against the naive reference: 1-D (strides, dilations, pads,
// SAME), channel multipliers 2 and 3, 5x5 / 7x7 over the flattened padded plane (stride 1: all taps in vector
// registers, blocks of 4 vectors and single ones; stride 2: the compiler's loop; small and wide planes) and per
// row (dilations, unequal strides: border columns per element), stride 3 (per-tap sweeps), kernels wider than the
// image; 1 and 2 threads.
TEST(ConvPaths, DepthwiseMatchesReferenceOnRandomOddShapes) {
  ThreadGuard tg;
  std::mt19937 rng(20261129);
  const std::vector<ConvCase> cases = {
      {{2, 6, 11, 13}, 12, 6, {5, 5}, {1, 1}, {}, {2, 2, 2, 2}, "", true},     // multiplier 2, 5x5
      {{1, 5, 9, 8}, 15, 5, {3, 3}, {2, 2}, {}, {1, 0, 1, 1}, "", false},      // multiplier 3, stride 2
      {{1, 3, 12, 45}, 6, 3, {7, 7}, {1, 1}, {}, {3, 3, 3, 3}, "", true},      // multiplier 2, 7x7 wide
      {{1, 7, 13, 11}, 7, 7, {7, 7}, {}, {}, {3, 3, 3, 3}, "", true},          // 7x7 small plane
      {{2, 3, 15, 77}, 3, 3, {7, 7}, {2, 2}, {}, {3, 3, 2, 1}, "", true},      // 7x7 stride 2 wide
      {{1, 4, 17, 19}, 4, 4, {5, 5}, {2, 2}, {}, {2, 2, 2, 2}, "", false},     // 5x5 stride 2 small
      {{1, 3, 14, 50}, 3, 3, {5, 5}, {1, 1}, {2, 2}, {4, 4, 4, 4}, "", true},  // 5x5 dilated (row path)
      {{1, 3, 12, 70}, 3, 3, {5, 5}, {2, 1}, {}, {2, 1, 3, 2}, "", true},      // strides 2 x 1
      {{1, 2, 16, 40}, 2, 2, {5, 5}, {3, 3}, {}, {1, 2, 1, 2}, "", true},      // stride 3: per-tap sweeps
      {{1, 3, 4, 5}, 3, 3, {7, 7}, {1, 1}, {}, {3, 3, 3, 3}, "", true},        // kernel wider than the image
      {{1, 2, 6, 40}, 2, 2, {7, 7}, {1, 1}, {}, {3, 1, 3, 5}, "", false},      // wide, few interior columns
      {{1, 2, 6, 20}, 2, 2, {7, 7}, {1, 1}, {2, 2}, {6, 1, 6, 9}, "", true},   // dilated: per row, few interior
      {{1, 3, 10, 41}, 3, 3, {7, 7}, {1, 2}, {}, {3, 3, 3, 3}, "", true},      // strides 1 x 2: per row, stride 2
      {{2, 3, 9, 64}, 6, 3, {5, 5}, {2, 2}, {}, {2, 2, 2, 2}, "", false},      // multiplier 2, stride 2, wide
      {{2, 8, 37}, 8, 8, {9}, {1}, {}, {4, 4}, "", true},                      // 1-D k9
      {{1, 6, 101}, 12, 6, {3}, {1}, {32}, {32, 32}, "", true},                // 1-D multiplier 2, dilation 32
      {{1, 5, 50}, 5, 5, {31}, {2}, {}, {15, 14}, "", true},                   // 1-D k31 stride 2
      {{3, 4, 29}, 4, 4, {5}, {3}, {2}, {}, "SAME_UPPER", false},              // 1-D stride 3, dilated, SAME
      {{1, 5, 23, 41}, 5, 5, {5, 5}, {1, 1}, {}, {2, 1, 1, 3}, "", true},      // 5x5 vector blocks, pads
      {{2, 3, 31, 70}, 3, 3, {7, 7}, {1, 1}, {}, {3, 2, 1, 3}, "", false},     // 7x7: 4-vector blocks + tail
      {{1, 9, 3, 3}, 9, 9, {5, 5}, {1, 1}, {}, {2, 2, 2, 2}, "", true},        // 3x3 image: one vector
      {{1, 3, 7}, 6, 3, {3}, {1}, {}, {}, "VALID", true},                      // 1-D multiplier 2, VALID
  };
  for (int threads : {1, 2})
    for (const auto& c : cases) check_conv_case(c, rng, threads);
}

}  // namespace
}  // namespace oq
