// Micro-benchmark: MobileNetV2-1.0's 1×1 convolutions (batch 1, one thread, ReLU6 post-op where the model has
// one), four ways: oneDNN's convolution on 16-channel blocked tensors (what the executor runs), oneDNN's
// convolution on NHWC tensors (its brgemm kernels), and the product as one sgemm [HW, C] × [C, K] through
// oneDNN (dnnl_sgemm) and OpenBLAS. Question answered: is a faster kernel for these shapes on the shelf?
// (docs/benchmarks.md, seventh session). Between iterations an 8 MB buffer is walked (timing paused), so the
// weights come from L3 as in a calibration run, where the whole model's 14 MB of weights pass per sample.
//
//   build-bench/bench/oq_bench_conv1x1 [--benchmark_filter=...]
//
// Arguments: (variant, ic, oc, hw); variant 0 blocked, 1 nhwc, 2 dnnl_sgemm, 3 OpenBLAS sgemm, 4 bf16 source and
// weights with f32 output (oneDNN picks its layouts: AMX on this CPU), 5 the same with 6x the input channels — the
// cost of emulating an FP32 convolution by six bf16 products (x = x_hi + x_mid + x_lo, the "bf16x6" split), the
// only way bf16 hardware could compute the FP32 ranges ORT's scales need (docs/benchmarks.md, fifteenth session).
#include <benchmark/benchmark.h>
#if OQ_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <unordered_map>
#include <vector>

#include "core/parallel.h"

namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

std::vector<float> random_values(size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

void walk_cache(std::vector<float>& junk) {
  for (size_t i = 0; i < junk.size(); i += 16) junk[i] += 1.f;
  benchmark::DoNotOptimize(junk.data());
}

void conv_onednn(benchmark::State& st, tag layout, int64_t ic, int64_t oc, int64_t hw, dt src_type = dt::f32) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  const dnnl::memory::dims src{1, ic, hw, hw}, wei{oc, ic, 1, 1}, dst{1, oc, hw, hw}, bia{oc};
  const dnnl::memory::desc sd(src, src_type, layout), dd(dst, dt::f32, layout), bd(bia, dt::f32, tag::a);
  const dnnl::memory::desc wd(wei, src_type, tag::any);
  const dnnl::convolution_forward::desc cd(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                           sd, wd, bd, dd, {1, 1}, {0, 0}, {0, 0});
  dnnl::primitive_attr attr;
  dnnl::post_ops po;
  po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, 0.f, 6.f);
  attr.set_post_ops(po);
  const dnnl::convolution_forward::primitive_desc pd(cd, attr, eng);
  dnnl::memory sm(pd.src_desc(), eng), dm(pd.dst_desc(), eng), wm(pd.weights_desc(), eng), bm(bd, eng);
  auto x = random_values(static_cast<size_t>(ic * hw * hw), 0.f, 6.f, 1);
  dnnl::memory plain_x({src, dt::f32, tag::nchw}, eng, x.data());
  dnnl::reorder(plain_x, sm).execute(s, plain_x, sm);
  auto w = random_values(static_cast<size_t>(oc * ic), -0.1f, 0.1f, 2);
  dnnl::memory plain_w({wei, dt::f32, tag::oihw}, eng, w.data());
  dnnl::reorder(plain_w, wm).execute(s, plain_w, wm);
  const auto b = random_values(static_cast<size_t>(oc), -0.1f, 0.1f, 3);
  std::copy(b.begin(), b.end(), static_cast<float*>(bm.get_data_handle()));
  s.wait();
  dnnl::convolution_forward conv(pd);
  const std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_BIAS, bm}, {DNNL_ARG_DST, dm}};
  std::vector<float> junk(size_t{2} << 20, 0.f);
  for (auto _ : st) {
    st.PauseTiming();
    walk_cache(junk);
    st.ResumeTiming();
    conv.execute(s, args);
    s.wait();
  }
  st.SetLabel(pd.impl_info_str());
}

void sgemm(benchmark::State& st, bool onednn, int64_t ic, int64_t oc, int64_t hw) {
  const int64_t m = hw * hw;
  const auto a = random_values(static_cast<size_t>(m * ic), 0.f, 6.f, 1);
  const auto w = random_values(static_cast<size_t>(ic * oc), -0.1f, 0.1f, 2);
  std::vector<float> c(static_cast<size_t>(m * oc));
  std::vector<float> junk(size_t{2} << 20, 0.f);
  for (auto _ : st) {
    st.PauseTiming();
    walk_cache(junk);
    st.ResumeTiming();
    if (onednn) {
      dnnl_sgemm('N', 'N', m, oc, ic, 1.f, a.data(), ic, w.data(), oc, 0.f, c.data(), oc);
    } else {
#if OQ_HAVE_OPENBLAS
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(oc),
                  static_cast<int>(ic), 1.f, a.data(), static_cast<int>(ic), w.data(), static_cast<int>(oc), 0.f,
                  c.data(), static_cast<int>(oc));
#else
      st.SkipWithError("built without OpenBLAS");
      break;
#endif
    }
    benchmark::DoNotOptimize(c.data());
  }
}

void BM_Conv1x1(benchmark::State& st) {
  const int64_t variant = st.range(0), ic = st.range(1), oc = st.range(2), hw = st.range(3);
  switch (variant) {
    case 0: conv_onednn(st, tag::nChw16c, ic, oc, hw); break;
    case 1: conv_onednn(st, tag::nhwc, ic, oc, hw); break;
    case 4: conv_onednn(st, tag::any, ic, oc, hw, dt::bf16); break;
    case 5: conv_onednn(st, tag::any, 6 * ic, oc, hw, dt::bf16); break;
    default: sgemm(st, variant == 2, ic, oc, hw);
  }
  // Variant 5 counts the FP32 convolution's MACs (the work it stands for), not the six products.
  st.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(ic * oc * hw * hw) * 1e-9 *
                                                 static_cast<double>(st.iterations()),
                                             benchmark::Counter::kIsRate);
}

// The 1×1 layers of MobileNetV2-1.0 224 that take most of its convolution time (ONEDNN_VERBOSE profile).
BENCHMARK(BM_Conv1x1)
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {16}, {96}, {112}})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {24}, {144}, {56}})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {144}, {24}, {56}})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {96}, {576}, {14}})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {576}, {96}, {14}})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {160}, {960}, {7}})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {960}, {320}, {7}})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {320}, {1280}, {7}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  oq::set_num_threads(1);  // one thread: calibration runs one sample per thread (exec::run_ordered)
#if OQ_HAVE_OPENBLAS
  openblas_set_num_threads(1);
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
