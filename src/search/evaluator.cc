#include "search/evaluator.h"

#include <cmath>
#include <limits>

#include "core/progress.h"
#include "data/loader.h"

namespace oq::search {

std::vector<int64_t> argmax_rows(const Tensor& out) {
  if (out.rank() < 1) fail(ErrorKind::Data, "model output has no batch dimension; cannot take a top-1 class");
  int64_t n = out.dim(0), per = n ? out.numel() / n : 0;
  Tensor f = out.dtype() == DType::Float ? out : out.cast(DType::Float);
  std::vector<int64_t> r(n);
  for (int64_t i = 0; i < n; ++i) {
    const float* p = f.data<float>() + i * per;
    int64_t best = 0;
    for (int64_t k = 1; k < per; ++k)
      if (p[k] > p[best]) best = k;
    r[i] = best;
  }
  return r;
}

static std::map<std::string, Tensor> feeds_of(const data::Batch& b) { return b.inputs; }

Reference compute_reference(exec::Session& s, const data::DatasetPtr& data, const EvalOptions& o) {
  Reference ref;
  data::Loader loader(data, data::LoaderOptions{o.batch_size, 0, 0});
  Progress bar("Float reference", data->size());
  data::Batch b;
  while (loader.next(b)) {
    auto outs = s.run(feeds_of(b));
    for (int64_t a : argmax_rows(outs.at(0))) ref.argmax.push_back(a);
    if (o.metric == MetricKind::OutputSnr) {
      for (auto& t : outs) t = t.clone();
      ref.outputs.push_back(std::move(outs));
    }
    bar.tick(static_cast<int64_t>(b.indices.size()));
  }
  return ref;
}

double evaluate(exec::Session& s, const data::DatasetPtr& data, const EvalOptions& o, const Reference* ref,
                const exec::RunOptions& ro) {
  if (o.metric == MetricKind::Top1 && !data->has_labels())
    fail(ErrorKind::Data, "metric top1 needs labels, but {} has none (use the agreement metric)", data->describe());
  if (o.metric != MetricKind::Top1 && !ref) fail(ErrorKind::Runtime, "internal error: metric needs a reference");
  data::Loader loader(data, data::LoaderOptions{o.batch_size, 0, 0});
  Progress bar(o.progress_label, data->size());
  int64_t seen = 0, hits = 0;
  double sig = 0, noise = 0;
  data::Batch b;
  while (loader.next(b)) {
    auto outs = s.run(feeds_of(b), ro);
    if (o.metric == MetricKind::OutputSnr) {
      const auto& r = ref->outputs.at(static_cast<size_t>(b.number));
      for (size_t k = 0; k < outs.size() && k < r.size(); ++k) {
        Tensor x = r[k].dtype() == DType::Float ? r[k] : r[k].cast(DType::Float);
        Tensor y = outs[k].dtype() == DType::Float ? outs[k] : outs[k].cast(DType::Float);
        for (int64_t i = 0; i < x.numel() && i < y.numel(); ++i) {
          double a = x.data<float>()[i], d = a - y.data<float>()[i];
          sig += a * a;
          noise += d * d;
        }
      }
    } else {
      auto am = argmax_rows(outs.at(0));
      for (size_t i = 0; i < am.size(); ++i) {
        int64_t want = o.metric == MetricKind::Top1 ? b.labels.at(i) : ref->argmax.at(static_cast<size_t>(seen + i));
        hits += am[i] == want;
      }
    }
    seen += static_cast<int64_t>(b.indices.size());
    bar.tick(static_cast<int64_t>(b.indices.size()));
  }
  if (o.metric == MetricKind::OutputSnr) {
    const double eps = std::numeric_limits<double>::epsilon();
    return 20.0 * std::log10(std::max(std::sqrt(sig), eps) / std::max(std::sqrt(noise), eps));
  }
  return seen ? 100.0 * static_cast<double>(hits) / static_cast<double>(seen) : 0.0;
}

}  // namespace oq::search
