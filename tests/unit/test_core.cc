#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <new>
#include <set>
#include <thread>

#include "core/dtype.h"
#include "core/int4.h"
#include "core/log.h"
#include "core/names.h"
#include "core/parallel.h"
#include "ir/graph.h"
#include "core/tensor.h"
#include "tmpdir_test_util.h"

using namespace oq;

TEST(Int4, PackOddCountLowNibbleFirst) {
  // Spec example: values [1, -2, 3] as INT4 -> bytes 0xE1, 0x03 (low nibble first, last high nibble zero).
  std::vector<uint8_t> v = {1, static_cast<uint8_t>(-2), 3};
  auto p = pack_int4(v.data(), 3);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0], 0xE1);
  EXPECT_EQ(p[1], 0x03);
  std::vector<uint8_t> back(3);
  unpack_int4(p.data(), 3, true, back.data());
  EXPECT_EQ(static_cast<int8_t>(back[1]), -2);
  EXPECT_EQ(back[0], 1);
  EXPECT_EQ(back[2], 3);
}

TEST(Int4, UnsignedUnpack) {
  std::vector<uint8_t> p = {0xF0, 0x0A};
  std::vector<uint8_t> out(3);
  unpack_int4(p.data(), 3, false, out.data());
  EXPECT_EQ(out[0], 0);
  EXPECT_EQ(out[1], 15);
  EXPECT_EQ(out[2], 10);
}

TEST(DType, ParseQuantType) {
  EXPECT_EQ(parse_quant_type("QInt8"), DType::Int8);
  EXPECT_EQ(parse_quant_type("uint16"), DType::UInt16);
  EXPECT_EQ(parse_quant_type("INT4"), DType::Int4);
  EXPECT_FALSE(parse_quant_type("Int32").has_value());
}

TEST(DType, HalfRoundTrip) {
  // Hand values: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 2^-24 = 0x0001.
  EXPECT_EQ(float_to_half(1.0f), 0x3C00);
  EXPECT_EQ(float_to_half(-2.0f), 0xC000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_half(5.9604645e-08f), 0x0001);
  EXPECT_FLOAT_EQ(half_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(float_to_bfloat16(1.0f), 0x3F80);
}

TEST(Tensor, CastRoundsHalfToEvenAndSaturates) {
  auto t = Tensor::from_vector<float>(DType::Float, {5}, {0.5f, 1.5f, 2.5f, 300.f, -300.f});
  auto q = t.cast(DType::Int8);
  EXPECT_EQ(q.data<int8_t>()[0], 0);
  EXPECT_EQ(q.data<int8_t>()[1], 2);
  EXPECT_EQ(q.data<int8_t>()[2], 2);
  EXPECT_EQ(q.data<int8_t>()[3], 127);
  EXPECT_EQ(q.data<int8_t>()[4], -128);
}

// Int4 / UInt4 (held one per byte): floating-point values round half to even and saturate to the 4-bit range,
// integers keep their low 4 bits as ONNX Cast says of fixed point to fixed point ("discard higher bits and
// reinterpret"; numpy with onnx's ml_dtypes 0.6.0 in .venv: np.array([9, 300, -1, 16, -9], np.int32)
// .astype(ml_dtypes.int4) == [-7, -4, -1, 0, 7], .astype(ml_dtypes.uint4) == [9, 12, 15, 0, 7]). The values used to
// keep the 8-bit range (9.0 -> 9, which pack_int4 then stored as -7).
TEST(Tensor, CastToFourBitsStaysInRange) {
  auto f = Tensor::from_vector<float>(DType::Float, {7}, {9.f, -9.f, 100.f, 7.6f, 6.5f, -8.5f, 2.5f});
  auto i4 = f.cast(DType::Int4);
  EXPECT_EQ(std::vector<int8_t>(i4.data<int8_t>(), i4.data<int8_t>() + 7),
            (std::vector<int8_t>{7, -8, 7, 7, 6, -8, 2}));
  auto u4 = f.cast(DType::UInt4);
  EXPECT_EQ(std::vector<uint8_t>(u4.data<uint8_t>(), u4.data<uint8_t>() + 7),
            (std::vector<uint8_t>{9, 0, 15, 8, 6, 0, 2}));
  auto n = Tensor::from_vector<int32_t>(DType::Int32, {5}, {9, 300, -1, 16, -9});
  auto ni4 = n.cast(DType::Int4);
  EXPECT_EQ(std::vector<int8_t>(ni4.data<int8_t>(), ni4.data<int8_t>() + 5), (std::vector<int8_t>{-7, -4, -1, 0, 7}));
  auto nu4 = n.cast(DType::UInt4);
  EXPECT_EQ(std::vector<uint8_t>(nu4.data<uint8_t>(), nu4.data<uint8_t>() + 5), (std::vector<uint8_t>{9, 12, 15, 0, 7}));
}

TEST(Tensor, ShapeOverflowIsAnError) {
  EXPECT_THROW(shape_numel({int64_t{1} << 40, int64_t{1} << 40}), Error);
}

TEST(Names, ClosestNameForTypos) {
  EXPECT_EQ(name_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(name_distance("Conv", "conv"), 0u);  // letter case is free
  EXPECT_EQ(name_distance("sacle", "scale"), 1u);  // a swapped pair counts as one edit
  EXPECT_EQ(name_distance("hyrda", "hydra"), 1u);
  EXPECT_EQ(name_distance("ca", "abc"), 3u);  // optimal string alignment: no edit of a swapped pair
  EXPECT_EQ(name_distance("sede", "seed"), 1u);
  const std::vector<std::string> ops = {"Conv", "ConvTranspose", "Gemm", "MatMul"};
  EXPECT_EQ(closest_name("conv", ops), "Conv");
  EXPECT_EQ(closest_name("Gem", ops), "Gemm");
  EXPECT_EQ(closest_name("Frobnicate", ops), "");
  EXPECT_EQ(closest_name("Conv", ops), "");  // an exact name is not a typo of itself
  EXPECT_EQ(closest_name("", ops), "");
  EXPECT_EQ(closest_name("granularty", {"granularity", "target_opset"}, 2), "granularity");
  EXPECT_EQ(closest_name("postprocessing", {"preprocessing"}, 2), "");  // ST's other section stays unknown
  EXPECT_EQ(did_you_mean("Matmul", ops), ", did you mean 'MatMul'?");
  EXPECT_EQ(did_you_mean("xyz", ops), "");
}

TEST(Names, ErrorsNameUnnamedNodesByTheirOutput) {
  ir::Node n;
  n.op_type = "If";
  n.outputs = {"branch_out"};
  EXPECT_EQ(ir::node_label(n), "(unnamed) -> branch_out");
  n.name = "cond";
  EXPECT_EQ(ir::node_label(n), "cond");
}

// cgroup v2 cpu.max: "<quota> <period>" in microseconds, or "max <period>" for no limit (the kernel's
// Documentation/admin-guide/cgroup-v2.rst); whole CPUs rounded up, as docker --cpus=1.5 allows two at once.
TEST(Threads, CgroupQuotaInWholeCpus) {
  EXPECT_EQ(oq::cpus_of_cgroup_quota("200000 100000"), 2);
  EXPECT_EQ(oq::cpus_of_cgroup_quota("150000 100000"), 2);
  EXPECT_EQ(oq::cpus_of_cgroup_quota("50000 100000"), 1);
  EXPECT_EQ(oq::cpus_of_cgroup_quota("100000 100000\n"), 1);
  EXPECT_EQ(oq::cpus_of_cgroup_quota("max 100000"), 0);
  EXPECT_EQ(oq::cpus_of_cgroup_quota(""), 0);
  EXPECT_EQ(oq::cpus_of_cgroup_quota("garbage"), 0);
  EXPECT_EQ(oq::cpus_of_cgroup_quota("-1 100000"), 0);
  EXPECT_EQ(oq::cpus_of_cgroup_quota("12x 100000"), 0);
  EXPECT_GE(oq::available_cores(), 1);
}

// An exception may not leave an OpenMP region: one thrown by a chunk on a worker thread used to end the process
// (std::terminate, SIGABRT). parallel_for rethrows it on the calling thread after the region.
TEST(Threads, ParallelForRethrowsAWorkersExceptionOnTheCaller) {
  ThreadsOnThisThread four(4);
  const auto caller = std::this_thread::get_id();
  std::mutex mu;
  std::set<std::thread::id> throwers;
  auto throw_from_chunks_after_the_first = [&](auto make) {
    return [&, make](int64_t b, int64_t) {
      if (b == 0) return;
      {
        std::lock_guard<std::mutex> lock(mu);
        throwers.insert(std::this_thread::get_id());
      }
      make();
    };
  };
  EXPECT_THROW(parallel_for(100, 1, throw_from_chunks_after_the_first([] { throw std::bad_alloc(); })),
               std::bad_alloc);
  try {
    parallel_for(100, 1, throw_from_chunks_after_the_first([] { fail(ErrorKind::Model, "node 'n' (Softmax): bad"); }));
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "node 'n' (Softmax): bad");
    EXPECT_EQ(e.exit_code(), 1);
  }
  // the chunks that threw ran on OpenMP workers (chunk c on thread c), not on this thread
  EXPECT_FALSE(throwers.empty());
  EXPECT_FALSE(throwers.count(caller));
  // the pool still works afterwards, every index once
  std::atomic<int64_t> sum{0};
  parallel_for(100, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 4950);
}

TEST(Errors, BadAllocIsNamedOutOfMemory) {
  EXPECT_EQ(exception_text(std::bad_alloc()), std::string(kOutOfMemory));
  EXPECT_TRUE(exception_text(std::bad_alloc()).starts_with("out of memory: an allocation failed ("));
  EXPECT_EQ(exception_text(std::runtime_error("x")), "x");
}

// Every log line has its control characters escaped as error lines have (QA: an output folder named "o\nfake
// line" split onnxquant.log into lines without a timestamp).
TEST(Log, ControlCharactersAreEscapedInEveryLine) {
  test_util::TmpDir d("oq-log");
  log::init(false);
  ASSERT_TRUE(log::add_file(d / "onnxquant.log"));
  spdlog::info("outputs in {}", "o\nfake line\tand\x01");
  spdlog::warn("plain line");
  log::raw("raw\rline");
  log::init(false);  // drops the file sink
  std::ifstream f(d / "onnxquant.log");
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(lines[0].ends_with("[info] outputs in o\\nfake line\\tand\\x01")) << lines[0];
  EXPECT_TRUE(lines[1].ends_with("[warning] plain line")) << lines[1];
  EXPECT_EQ(lines[2], "raw\\rline");
}
