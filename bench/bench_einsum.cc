// Micro-benchmark: Einsum on attention-sized equations, one thread, three ways: the Einsum kernel (its sgemm
// path), the kernel's direct loop (the naive reference, EinsumPath::Loop) and the MatMul kernel on the same
// product with its operands already laid out for it (what the block costs written with MatMul). Question
// answered: how much the sgemm path saves, and what it costs over MatMul (docs/benchmarks.md, "Einsum").
//
//   build/bench/oq_bench_einsum [--benchmark_filter=...]     (bench/bench_einsum.py adds ORT's time)
//
// Arguments: (case, variant); variant 0 Einsum kernel, 1 loop, 2 MatMul.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "exec/kernel.h"
#include "exec/kernels/einsum.h"

namespace {

using oq::Shape;
using oq::Tensor;

struct Case {
  const char* eq;
  Shape a, b;           // Einsum operands
  Shape ma, mb;         // the same product as MatMul operands
};
// b=4 sequences of T=256, 4 heads of 64 (attention scores and context), and a 256 -> 256 projection.
const Case kCases[] = {
    {"bhqd,bhkd->bhqk", {4, 4, 256, 64}, {4, 4, 256, 64}, {4, 4, 256, 64}, {4, 4, 64, 256}},
    {"bhqk,bhkd->bhqd", {4, 4, 256, 256}, {4, 4, 256, 64}, {4, 4, 256, 256}, {4, 4, 256, 64}},
    {"bnd,dh->bnh", {4, 256, 256}, {256, 256}, {4, 256, 256}, {256, 256}},
};

Tensor random_tensor(const Shape& s, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Tensor t(oq::DType::Float, s);
  for (float& v : t.span<float>()) v = u(rng);
  return t;
}

oq::ir::Node node(const std::string& op, const std::string& eq) {
  oq::ir::Node n;
  n.name = "bench_" + op;
  n.op_type = op;
  n.inputs = {"a", "b"};
  n.outputs = {"y"};
  if (!eq.empty()) n.set_attr_string("equation", eq);
  return n;
}

void BM_Einsum(benchmark::State& st) {
  const Case& c = kCases[st.range(0)];
  const int variant = static_cast<int>(st.range(1));
  const bool matmul = variant == 2;
  const Tensor a = random_tensor(matmul ? c.ma : c.a, 1), b = random_tensor(matmul ? c.mb : c.b, 2);
  const oq::ir::Node n = node(matmul ? "MatMul" : "Einsum", matmul ? "" : c.eq);
  const std::vector<const Tensor*> in{&a, &b};
  if (variant == 0 && oq::exec::einsum_path(n, in) != oq::exec::EinsumPath::Gemm) {
    st.SkipWithError("the kernel does not take the sgemm path");
    return;
  }
  auto kernel = oq::exec::find_kernel(n.op_type, 13)(oq::exec::KernelInit{n, 13});
  std::vector<Tensor> out(1);
  for (auto _ : st) {
    if (variant == 1) out[0] = oq::exec::einsum_by(oq::exec::EinsumPath::Loop, n, in);
    else kernel->run(in, out);
    benchmark::DoNotOptimize(out[0].data<float>());
  }
  st.SetLabel(std::string(c.eq) + (variant == 0 ? " einsum" : variant == 1 ? " loop" : " matmul"));
  int64_t macs = 1;
  for (int64_t d : c.ma) macs *= d;
  macs *= c.mb.back();
  st.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(macs) * 1e-9 * static_cast<double>(st.iterations()),
                                             benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Einsum)->ArgsProduct({{0, 1, 2}, {0, 1, 2}})->Unit(benchmark::kMillisecond)->UseRealTime();

// Small products (the kGemmMinWork threshold of einsum.cc): "ij,jk->ik" with i = j = k = s, both paths forced.
// Arguments: (s, path); path 0 sgemm, 1 loop.
void BM_EinsumSmall(benchmark::State& st) {
  const int64_t s = st.range(0);
  const auto path = st.range(1) == 0 ? oq::exec::EinsumPath::Gemm : oq::exec::EinsumPath::Loop;
  const Tensor a = random_tensor({s, s}, 1), b = random_tensor({s, s}, 2);
  const oq::ir::Node n = node("Einsum", "ij,jk->ik");
  const std::vector<const Tensor*> in{&a, &b};
  for (auto _ : st) {
    Tensor y = oq::exec::einsum_by(path, n, in);
    benchmark::DoNotOptimize(y.data<float>());
  }
  st.SetLabel("M*N*K=" + std::to_string(s * s * s) + (st.range(1) == 0 ? " sgemm" : " loop"));
}

BENCHMARK(BM_EinsumSmall)->ArgsProduct({{2, 3, 4, 5, 6, 8, 12, 16}, {0, 1}})->Unit(benchmark::kNanosecond);

}  // namespace

int main(int argc, char** argv) {
  oq::set_num_threads(1);  // one thread: calibration runs one sample per thread (exec::run_ordered)
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
