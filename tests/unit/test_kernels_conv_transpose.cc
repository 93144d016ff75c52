// ConvTranspose's GEMM paths (conv_transpose_gemm.cc) against the naive reference on random odd shapes, with
// the path each case takes read from the kernel's debug line: kernel == stride (each input pixel owns a disjoint
// block of the output: T stored; one channel per group: T as an outer product, no sgemm), everything else with
// 1-2 spatial axes and few channels per group (col2im adds), and the cases left to oneDNN (many channels per
// group, 3-D).
#include "deconv_test_util.h"

namespace oq {
namespace {

using namespace ctest;

const char* const kExact = "GEMM, kernel == stride (conv_transpose_gemm.cc)";
const char* const kCol2im = "GEMM + col2im (conv_transpose_gemm.cc)";

void expect_path(const std::vector<DeconvCase>& cases, const std::string& want, uint32_t seed) {
  ThreadGuard tg;
  std::mt19937 rng(seed);
  for (int threads : {1, 2})
    for (const DeconvCase& c : cases) {
      const std::string path = check_deconv_case(c, rng, threads);
      EXPECT_EQ(path, want) << "x " << shape_str(c.x) << " k " << shape_str(c.k) << " group " << c.group
                            << " threads " << threads;
    }
}

TEST(ConvTransposeGemm, KernelEqualsStrideStoresEachBlock) {
  expect_path({
                  {{1, 16, 13, 11}, 8, 1, {2, 2}, {2, 2}, {}, {}, {}, {}, "", true},  // k2s2 upsampling, few channels
                  {{2, 6, 5, 7}, 3, 2, {3, 2}, {3, 2}, {}, {}, {}, {}, "", false},    // groups, kh != kw, no bias
                  {{1, 5, 7, 6}, 4, 1, {2, 2}, {2, 2}, {}, {0, 0, 1, 1}, {}, {}, "", true},  // end pads crop
                  {{1, 5, 7, 6}, 4, 1, {2, 3}, {2, 3}, {}, {0, 0, 1, 2}, {}, {}, "", true},  // odd crop, kw 3
                  {{3, 7, 19}, 5, 1, {4}, {4}, {}, {}, {}, {}, "", true},                      // 1-D
                  {{1, 4, 9, 10}, 3, 1, {3, 3}, {3, 3}, {}, {}, {}, {}, "", true},
                  {{1, 3, 70, 301}, 2, 1, {2, 2}, {2, 2}, {}, {}, {}, {}, "", true},  // several row blocks
                  {{1, 9, 11, 3}, 150, 1, {2, 2}, {2, 2}, {}, {}, {}, {}, "", true},  // narrow rows, wide T
                  {{1, 128, 4, 5}, 64, 1, {2, 2}, {2, 2}, {}, {}, {}, {}, "", true},  // many channels: still GEMM
                  {{2, 5, 6, 7}, 2, 5, {2, 2}, {2, 2}, {}, {}, {}, {}, "", true},     // depthwise x2: outer product
                  {{1, 1, 9, 8}, 4, 1, {2, 2}, {2, 2}, {}, {}, {}, {}, "", false},    // one input channel
              },
              kExact, 2026);
}

TEST(ConvTransposeGemm, OverlapsAndPadsAddThroughCol2im) {
  expect_path({
                  {{1, 5, 6, 7}, 3, 1, {2, 2}, {2, 2}, {}, {}, {1, 1}, {}, "", true},        // output_padding
                  {{1, 4, 6, 5}, 3, 1, {2, 2}, {2, 2}, {}, {1, 0, 0, 1}, {}, {}, "", true},  // begin pads
                  {{2, 6, 9, 8}, 5, 1, {4, 4}, {2, 2}, {}, {1, 1, 1, 1}, {}, {}, "", true},  // k4s2p1
                  {{1, 4, 7, 6}, 3, 2, {3, 3}, {2, 1}, {2, 2}, {1, 2, 0, 1}, {1, 0}, {}, "", false},  // dilation
                  {{1, 6, 8, 9}, 1, 6, {4, 4}, {2, 2}, {}, {1, 1, 1, 1}, {}, {}, "", true},  // depthwise
                  {{1, 12, 23}, 7, 1, {16}, {8}, {}, {4, 4}, {}, {}, "", true},              // 1-D k16s8p4
                  {{2, 6, 31}, 4, 2, {4}, {2}, {}, {1, 2}, {1}, {}, "", false},              // 1-D groups
                  {{1, 5, 4, 6}, 3, 1, {3, 3}, {2, 2}, {}, {}, {}, {}, "SAME_UPPER", true},
                  {{1, 3, 5, 4}, 2, 1, {3, 3}, {2, 2}, {}, {}, {}, {12, 9}, "", true},  // output_shape
                  {{1, 3, 5, 5}, 2, 1, {3, 3}, {}, {}, {}, {}, {}, "", true},           // stride 1
                  {{1, 3, 5, 4}, 2, 1, {2, 2}, {3, 3}, {}, {}, {}, {}, "", true},       // kernel < stride: gaps
              },
              kCol2im, 77);
}

TEST(ConvTransposeGemm, ManyChannelsAndThreeAxesStayWithOneDnn) {
  ThreadGuard tg;
  std::mt19937 rng(5);
  for (const DeconvCase& c : std::vector<DeconvCase>{
           {{1, 128, 5, 6}, 64, 1, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, {}, {}, "", true},
           {{1, 4, 3, 4, 5}, 3, 1, {2, 2, 2}, {2, 2, 2}, {}, {}, {}, {}, "", true},
       }) {
    const std::string path = check_deconv_case(c, rng, 1);
    EXPECT_EQ(path.rfind("oneDNN ", 0), 0u) << shape_str(c.x) << ": " << path;
    EXPECT_EQ(path.find("ref:"), std::string::npos) << shape_str(c.x) << ": " << path;
  }
}

}  // namespace
}  // namespace oq
