// QuantizeLinear / DequantizeLinear / fake_quantize: hand-computed values (ties, saturation, int4, int16,
// per axis, blocked), a naive reference, and bit-identity of fake_quantize with the kernel pair.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "exec/kernels/qdq.h"
#include "exec/session.h"
#include "kernel_test_util.h"

using namespace oq;
using namespace oq::ktest;

namespace {

template <typename T>
Tensor tv(DType dt, Shape s, std::vector<T> v) {
  return Tensor::from_vector(dt, std::move(s), v);
}
Tensor i8(Shape s, std::vector<int8_t> v, DType dt = DType::Int8) { return tv(dt, std::move(s), std::move(v)); }
Tensor u8(Shape s, std::vector<uint8_t> v, DType dt = DType::UInt8) { return tv(dt, std::move(s), std::move(v)); }

ir::Node qnode(const std::string& op, size_t n_in, int64_t axis = 1, int64_t block = 0) {
  ir::Node n = make_node(op, n_in);
  n.set_attr_int("axis", axis);
  if (block) n.set_attr_int("block_size", block);
  return n;
}

Tensor quantize(const Tensor& x, const Tensor& scale, const Tensor& zp, int opset = 21, int64_t axis = 1,
                int64_t block = 0) {
  return run_kernel(qnode("QuantizeLinear", 3, axis, block), opset, {x, scale, zp})[0];
}
Tensor dequantize(const Tensor& q, const Tensor& scale, const Tensor& zp, int opset = 21, int64_t axis = 1,
                  int64_t block = 0) {
  return run_kernel(qnode("DequantizeLinear", 3, axis, block), opset, {q, scale, zp})[0];
}

const DType kQTypes[] = {DType::Int8, DType::UInt8, DType::Int16, DType::UInt16, DType::Int4, DType::UInt4};

// A zero-point tensor of type qt holding the given values.
Tensor zp_tensor(DType qt, Shape s, const std::vector<int64_t>& v) {
  Tensor t(qt, std::move(s));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (qt) {
      case DType::Int8: case DType::Int4: t.data<int8_t>()[i] = static_cast<int8_t>(v[i]); break;
      case DType::UInt8: case DType::UInt4: t.data<uint8_t>()[i] = static_cast<uint8_t>(v[i]); break;
      case DType::Int16: t.data<int16_t>()[i] = static_cast<int16_t>(v[i]); break;
      case DType::UInt16: t.data<uint16_t>()[i] = static_cast<uint16_t>(v[i]); break;
      default: ADD_FAILURE() << "bad type";
    }
  }
  return t;
}

}  // namespace

TEST(KernelsQdq, QuantizeUint8SpecExample) {
  // ONNX docs: x = [0, 2, 3, 1000, -254, -1000], scale 2, zp 128 -> [128, 129, 130, 255, 1, 0].
  auto y = quantize(ft({6}, {0, 2, 3, 1000, -254, -1000}), Tensor::scalar_float(2), u8({}, {128}), 10);
  EXPECT_EQ(y.dtype(), DType::UInt8);
  expect_values(y, {128, 129, 130, 255, 1, 0});
  // No zero point: uint8 output, zero point 0.
  auto d = run_kernel(make_node("QuantizeLinear", 2), 13, {ft({3}, {-1, 3.4f, 300}), Tensor::scalar_float(1)})[0];
  EXPECT_EQ(d.dtype(), DType::UInt8);
  expect_values(d, {0, 3, 255});
}

TEST(KernelsQdq, RoundHalfToEvenAndSaturation) {
  auto y = quantize(ft({8}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, -1000, 1000}), Tensor::scalar_float(1),
                    i8({}, {0}));
  expect_values(y, {0, 2, 2, 0, -2, -2, -128, 127});
  // x / scale is computed in float: 0.3f / 0.1f -> 3, 0.25f / 0.1f = 2.5 -> 2 (tie to even).
  expect_values(quantize(ft({2}, {0.3f, 0.25f}), Tensor::scalar_float(0.1f), i8({}, {0})), {3, 2});
  expect_values(quantize(ft({2}, {0.25f, 0.75f}), Tensor::scalar_float(0.5f), i8({}, {0})), {0, 2});
  // NaN saturates to qmin (ONNX Runtime's MLAS behaviour).
  expect_values(quantize(ft({1}, {std::nanf("")}), Tensor::scalar_float(1), i8({}, {3})), {-128});
}

TEST(KernelsQdq, Int4AndInt16Ranges) {
  auto q4 = quantize(ft({5}, {-9, -8.5f, 7.5f, 8, 0.5f}), Tensor::scalar_float(1), i8({}, {0}, DType::Int4));
  EXPECT_EQ(q4.dtype(), DType::Int4);
  expect_values(q4, {-8, -8, 7, 7, 0});
  auto u4 = quantize(ft({4}, {-4, 12.5f, 13, 1}), Tensor::scalar_float(1), u8({}, {3}, DType::UInt4));
  EXPECT_EQ(u4.dtype(), DType::UInt4);
  expect_values(u4, {0, 15, 15, 4});
  expect_values(dequantize(u4, Tensor::scalar_float(0.5f), u8({}, {3}, DType::UInt4)), {-1.5, 6, 6, 0.5});
  expect_values(dequantize(i8({2}, {-8, 7}, DType::Int4), Tensor::scalar_float(2), Tensor()), {-16, 14});

  auto q16 = quantize(ft({3}, {16383.75f, -16384.25f, 1}), Tensor::scalar_float(0.5f),
                      tv<int16_t>(DType::Int16, {}, {0}));
  expect_values(q16, {32767, -32768, 2});
  auto qu16 = quantize(ft({3}, {1.5f, -40000, 40000}), Tensor::scalar_float(1),
                       tv<uint16_t>(DType::UInt16, {}, {32768}));
  EXPECT_EQ(qu16.dtype(), DType::UInt16);
  expect_values(qu16, {32770, 0, 65535});
  expect_values(dequantize(qu16, Tensor::scalar_float(0.5f), tv<uint16_t>(DType::UInt16, {}, {32768})),
                {1, -16384, 16383.5});
}

TEST(KernelsQdq, DequantizeValuesInt8Int32) {
  expect_values(dequantize(i8({3}, {-128, 0, 127}), Tensor::scalar_float(0.5f), i8({}, {-1})), {-63.5, 0.5, 64});
  auto d32 = dequantize(tv<int32_t>(DType::Int32, {2}, {100000, -7}), Tensor::scalar_float(0.25f), Tensor(), 10);
  EXPECT_EQ(d32.dtype(), DType::Float);
  expect_values(d32, {25000, -1.75});
  // Float16 scale (opset 19+) gives a float16 output.
  Tensor h = Tensor::from_vector(DType::Float16, {}, std::vector<uint16_t>{float_to_half(0.5f)});
  auto dh = dequantize(u8({2}, {10, 20}), h, u8({}, {10}), 19);
  EXPECT_EQ(dh.dtype(), DType::Float16);
  expect_values(dh, {0, 5});
  EXPECT_THROW(dequantize(u8({1}, {1}), Tensor::scalar_float(1), i8({}, {0})), Error);  // zp type mismatch
}

TEST(KernelsQdq, PerAxisAndBlocked) {
  // axis 1, scale [1, 2, 4], zp [0, 1, 2].
  auto x = ft({2, 3}, {1, 2, 4, -3, 5, 10});
  auto sc = ft({3}, {1, 2, 4});
  auto q = quantize(x, sc, i8({3}, {0, 1, 2}), 13);
  expect_values(q, {1, 2, 3, -3, 3, 4});  // 5/2 = 2.5 -> 2 (+1), 10/4 = 2.5 -> 2 (+2)
  expect_values(dequantize(q, sc, i8({3}, {0, 1, 2}), 13), {1, 2, 4, -3, 4, 8});
  // axis 0 (negative axis spelling), scale per row.
  auto q0 = quantize(x, ft({2}, {1, 10}), u8({2}, {0, 100}), 13, -2);
  expect_values(q0, {1, 2, 4, 100, 100, 101});
  EXPECT_THROW(quantize(x, ft({2}, {1, 2}), u8({2}, {0, 0}), 13, 1), Error);
  // Blocked along axis 1 with block 2 (opset 21): scale [[1, 2], [4, 8]].
  auto xb = ft({2, 4}, {1, 1, 2, 3, 4, 4, 8, 8});
  auto sb = ft({2, 2}, {1, 2, 4, 8});
  auto qb = quantize(xb, sb, i8({2, 2}, {0, 0, 1, -1}), 21, 1, 2);
  expect_values(qb, {1, 1, 1, 2, 2, 2, 0, 0});  // 3/2 = 1.5 -> 2; 4/4 + 1; 8/8 - 1
  expect_values(dequantize(qb, sb, i8({2, 2}, {0, 0, 1, -1}), 21, 1, 2), {1, 1, 2, 4, 4, 4, 8, 8});
  // Uneven last block: D = 3, block 2 -> 2 blocks.
  auto q3 = quantize(ft({1, 3}, {2, 2, 2}), ft({1, 2}, {1, 2}), i8({1, 2}, {0, 0}), 21, 1, 2);
  expect_values(q3, {2, 2, 1});
  // output_dtype without a zero point (opset 21).
  ir::Node n = make_node("QuantizeLinear", 2);
  n.set_attr_int("output_dtype", static_cast<int64_t>(DType::Int4));
  auto od = run_kernel(n, 21, {ft({2}, {-20, 3}), Tensor::scalar_float(1)})[0];
  EXPECT_EQ(od.dtype(), DType::Int4);
  expect_values(od, {-8, 3});
}

TEST(KernelsQdq, KernelMatchesNaiveReference) {
  ThreadGuard g;
  std::mt19937 rng(2024);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int it = 0; it < 24; ++it) {
      DType qt = kQTypes[it % 6];
      QRange r = full_range(qt);
      Shape s = {3, 1 + static_cast<int64_t>(rng() % 7), 2 + static_cast<int64_t>(rng() % 5)};
      if (it % 8 == 0) s = {2, 5, 4001};  // parallel path
      int mode = it % 3;                  // 0 tensor, 1 axis, 2 blocked
      int axis = mode == 0 ? -1 : 1 + static_cast<int>(rng() % 2);
      int64_t block = mode == 2 ? 1 + static_cast<int64_t>(rng() % 3) : 0;
      Shape ss;
      if (mode == 1) ss = {s[axis]};
      if (mode == 2) {
        ss = s;
        ss[axis] = (s[axis] + block - 1) / block;
      }
      int64_t np = shape_numel(ss);
      std::vector<float> sc(static_cast<size_t>(np));
      std::vector<int64_t> zp(static_cast<size_t>(np));
      std::uniform_real_distribution<float> ds(0.01f, 0.5f);
      for (auto& v : sc) v = ds(rng);
      for (auto& v : zp) v = r.qmin + static_cast<int64_t>(rng() % static_cast<uint64_t>(r.qmax - r.qmin + 1));
      float span = static_cast<float>(r.qmax - r.qmin) * 0.3f;
      Tensor x = random_float(s, rng, -span, span);
      Tensor scale = Tensor::from_vector(DType::Float, ss, sc);
      Tensor want = exec::quantize_naive(x, axis, block, sc, std::vector<int32_t>(zp.begin(), zp.end()), qt);
      Tensor got = quantize(x, scale, zp_tensor(qt, ss, zp), 21, axis < 0 ? 1 : axis, block);
      EXPECT_TRUE(got.equals(want)) << "type " << dtype_name(qt) << " mode " << mode;
    }
  }
}

TEST(KernelsQdq, FakeQuantizeBitIdenticalToKernelPair) {
  ThreadGuard g;
  std::mt19937 rng(99);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (DType qt : kQTypes) {
      for (bool per_axis : {false, true}) {
        QRange r = full_range(qt);
        Shape s = per_axis ? Shape{4, 7, 1001} : Shape{5, 3, 2001};
        const int axis = 1;
        exec::QuantParams qp;
        qp.qtype = qt;
        int64_t np = per_axis ? s[axis] : 1;
        std::uniform_real_distribution<float> ds(0.001f, 0.3f);
        for (int64_t i = 0; i < np; ++i) {
          qp.scale.push_back(ds(rng));
          qp.zero_point.push_back(r.qmin + static_cast<int64_t>(rng() % static_cast<uint64_t>(r.qmax - r.qmin + 1)));
        }
        qp.axis = per_axis ? axis : -1;
        // Values spanning beyond the range (saturation) plus exact ties.
        float span = static_cast<float>(r.qmax - r.qmin) * qp.scale[0];
        Tensor x = random_float(s, rng, -span, span);
        for (int64_t i = 0; i < 50; ++i) x.data<float>()[i * 13] = (static_cast<float>(i) - 25.5f) * qp.scale[0];
        Shape ss = per_axis ? Shape{np} : Shape{};
        Tensor scale = Tensor::from_vector(DType::Float, ss, qp.scale);
        Tensor zp = zp_tensor(qt, ss, qp.zero_point);
        Tensor want = dequantize(quantize(x, scale, zp, 21, axis), scale, zp, 21, axis);
        Tensor got = exec::fake_quantize(x, qp);
        EXPECT_TRUE(got.equals(want)) << dtype_name(qt) << (per_axis ? " per axis" : " per tensor");
      }
    }
  }
  exec::QuantParams bad;
  bad.scale = {1.f, 2.f};
  bad.axis = 0;
  EXPECT_THROW(exec::fake_quantize(ft({3}, {1, 2, 3}), bad), Error);
}

TEST(KernelsQdq, RoundHalfEvenMatchesNearbyint) {
  std::mt19937 rng(7);
  std::vector<float> v = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 4194303.5f, 4194304.5f, -4194303.5f, 8388607.f,
                          8388608.f, 16777217.f, 1e30f, -1e30f, 0.49999997f, -0.49999997f};
  std::uniform_real_distribution<float> d(-1e7f, 1e7f);
  for (int i = 0; i < 200000; ++i) v.push_back(i % 2 ? d(rng) : d(rng) * 1e-6f);
  for (int i = -300; i <= 300; ++i) v.push_back(static_cast<float>(i) * 0.5f);
  for (float f : v) EXPECT_EQ(exec::round_half_even(f), std::nearbyint(f)) << f;
  // quantize_value (branch-free rounding) equals clamp(nearbyint(x / s) + zp) everywhere, incl. inf / NaN.
  v.insert(v.end(), {INFINITY, -INFINITY, std::nanf(""), 8388609.f, -16777215.f, 3e9f, -3e9f});
  for (DType qt : kQTypes) {
    QRange r = full_range(qt);
    for (int64_t zp : {r.qmin, (r.qmin + r.qmax) / 2, r.qmax}) {
      for (float f : v) {
        for (float sc : {1.0f, 0.37f}) {
          float t = std::nearbyint(f / sc);
          int64_t want = std::isnan(t) ? r.qmin
                                       : static_cast<int64_t>(std::clamp<double>(static_cast<double>(t) + zp, r.qmin, r.qmax));
          ASSERT_EQ(exec::quantize_value(f, sc, static_cast<int32_t>(zp), static_cast<int32_t>(r.qmin),
                                         static_cast<int32_t>(r.qmax)), want)
              << f << " / " << sc << " zp " << zp << " " << dtype_name(qt);
        }
      }
    }
  }
}

// The vectorised runs (every target clone) against the naive reference on long runs of quotients on or a few
// ulps beside a tie, saturation, infinities and NaN, for scales that are not powers of two: the values where
// a kernel that rounds differently from round_half_even(x / scale) in float would show.
TEST(KernelsQdq, VectorRunsMatchReferenceNearTies) {
  ThreadGuard g;
  set_num_threads(1);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> ds(-12.f, 4.f);
  for (DType qt : kQTypes) {
    QRange r = full_range(qt);
    for (int it = 0; it < 60; ++it) {
      const float s = std::ldexp(1.0f + static_cast<float>(rng() % 1000003) / 1000003.f, static_cast<int>(ds(rng)));
      const int64_t z = r.qmin + static_cast<int64_t>(rng() % static_cast<uint64_t>(r.qmax - r.qmin + 1));
      std::vector<float> xs;
      for (int k = 0; k < 300; ++k) {
        const float q = static_cast<float>(static_cast<int64_t>(rng() % 2000) - 1000) +
                        (k % 3 == 0 ? 0.5f : static_cast<float>(rng() % 1000) / 1000.f);
        float x = q * s;  // on or next to a tie for k % 3 == 0
        for (int u = 0; u < 4; ++u) x = std::nextafter(x, (u + k) % 2 ? 1e30f : -1e30f);
        xs.push_back(x);
        float y = q * s;
        for (int u = -3; u <= 3; ++u) xs.push_back(y), y = std::nextafter(y, 1e30f);
      }
      for (float v : {0.f, -0.f, 1e30f, -1e30f, std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity(), std::nanf(""), s * 262144.f, -s * 262144.f,
                      s * 131071.5f})
        xs.push_back(v);
      xs.resize(xs.size() + 5, 0.3f);  // not a multiple of 16: the scalar tail too
      const Shape sh{static_cast<int64_t>(xs.size())};
      Tensor x = Tensor::from_vector(DType::Float, sh, xs);
      Tensor want = exec::quantize_naive(x, -1, 0, {s}, {static_cast<int32_t>(z)}, qt);
      Tensor got = quantize(x, Tensor::scalar_float(s), zp_tensor(qt, {}, {z}), 21, 1, 0);
      ASSERT_TRUE(got.equals(want)) << dtype_name(qt) << " scale " << s << " zero point " << z;
    }
  }
}

// Opset 23: QuantizeLinear's `precision` (FLOAT is the float32 division the kernel does; FLOAT16 / BFLOAT16 are
// refused when the kernel is built) and DequantizeLinear's `output_dtype` (the output type, else x_scale's).
TEST(KernelsQdq, Opset23PrecisionAndOutputDtype) {
  ir::Node q = make_node("QuantizeLinear", 3);
  q.set_attr_int("precision", static_cast<int64_t>(DType::Float));
  Tensor x = ft({4}, {-1.f, 0.25f, 0.5f, 9.f});
  auto qv = run_kernel(q, 23, {x, Tensor::scalar_float(0.5f), i8({}, {1})})[0];
  expect_values(qv, {-1, 1, 2, 19});  // -2 + 1; 0.5 -> 0 (half to even) + 1; 1 + 1; 18 + 1
  q.set_attr_int("precision", static_cast<int64_t>(DType::Float16));
  EXPECT_THROW(run_kernel(q, 23, {x, Tensor::scalar_float(0.5f), i8({}, {1})}), Error);
  // Before opset 23 the attribute does not exist and is not read.
  EXPECT_NO_THROW(run_kernel(q, 21, {x, Tensor::scalar_float(0.5f), i8({}, {1})}));

  Tensor s16 = Tensor::scalar_float(0.25f).cast(DType::Float16);
  ir::Node dq = make_node("DequantizeLinear", 3);
  auto d16 = run_kernel(dq, 23, {qv, s16, i8({}, {1})})[0];
  EXPECT_EQ(d16.dtype(), DType::Float16);  // x_scale's type
  dq.set_attr_int("output_dtype", static_cast<int64_t>(DType::Float));
  auto d32 = run_kernel(dq, 23, {qv, s16, i8({}, {1})})[0];
  EXPECT_EQ(d32.dtype(), DType::Float);
  expect_values(d32, {-0.5, 0, 0.25, 4.5});
  dq.set_attr_int("output_dtype", static_cast<int64_t>(DType::Int32));
  std::string e;
  try {
    run_kernel(dq, 23, {qv, s16, i8({}, {1})});
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("output_dtype=6"), std::string::npos) << e;
}
