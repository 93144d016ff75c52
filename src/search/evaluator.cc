#include "search/evaluator.h"

#include <cmath>
#include <limits>
#include <set>

#include "calib/binning.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/loader.h"
#include "exec/ordered_runs.h"

namespace oq::search {

int64_t values_per_row(const Tensor& out, int64_t samples, const std::string& name) {
  const int64_t n = out.numel();
  if (samples < 1 || n < samples || n % samples != 0)
    fail(ErrorKind::Data,
         "model output '{}' has shape {} ({} values) for a batch of {} samples: the top-1 class needs the same "
         "number of values for each sample (the first output is the one scored)",
         name, shape_str(out.shape()), n, samples);
  return n / samples;
}

std::vector<int64_t> argmax_rows(const Tensor& out, int64_t samples, const std::string& name) {
  const int64_t per = values_per_row(out, samples, name);
  Tensor f = out.dtype() == DType::Float ? out : out.cast(DType::Float);
  std::vector<int64_t> r(static_cast<size_t>(samples));
  for (int64_t i = 0; i < samples; ++i) {
    const float* p = f.data<float>() + i * per;
    int64_t best = 0;
    for (int64_t k = 1; k < per && !std::isnan(p[best]); ++k)
      if (std::isnan(p[k]) || p[k] > p[best]) best = k;
    r[static_cast<size_t>(i)] = best;
  }
  return r;
}

namespace {

// Samples whose float inputs hold NaN or infinite values, found as the batches are fed (one call at a time, under
// the runner's lock), named in one warning after the run.
class NonFiniteRows {
 public:
  void scan(const data::Batch& b) {
    const auto rows = static_cast<int64_t>(b.indices.size());
    for (const auto& [name, t] : b.inputs) {
      if (!rows || !(t.dtype() == DType::Float || t.dtype() == DType::Double || t.dtype() == DType::Float16)) continue;
      const Tensor f = t.dtype() == DType::Float16 ? t.cast(DType::Float) : t;
      if (f.dtype() == DType::Float && !calib::finite_min_max(f.span<float>()).non_finite) continue;  // the usual case
      const int64_t per = f.numel() / rows;
      for (int64_t r = 0; r < rows; ++r) {
        bool bad = false;
        for (int64_t e = r * per; e < (r + 1) * per && !bad; ++e)
          bad = f.dtype() == DType::Double ? !std::isfinite(f.data<double>()[e]) : !std::isfinite(f.data<float>()[e]);
        if (!bad) continue;
        rows_.insert(b.indices[static_cast<size_t>(r)]);
        inputs_.insert(name);
      }
    }
  }

  void warn(const data::Dataset& ds) const {
    if (rows_.empty()) return;
    const std::vector<int64_t> rows(rows_.begin(), rows_.end());
    std::string inputs;
    for (const auto& n : inputs_) inputs += (inputs.empty() ? "'" : ", '") + n + "'";
    OQ_WARN("Evaluation data: {} ({} of {} samples) {} NaN or infinite values in input {}; they are scored like "
            "the others, from the outputs the model gives them (a NaN output's top-1 class is its first NaN, as "
            "numpy's argmax takes it)",
            ds.samples_name(rows), rows.size(), ds.size(), rows.size() == 1 ? "holds" : "hold", inputs);
  }

 private:
  std::set<int64_t> rows_;
  std::set<std::string> inputs_;
};

// exec::feed_from, scanning each batch for non-finite inputs first (when `rows` is given).
exec::FeedSource scanned_feed(data::Loader& loader, NonFiniteRows* rows) {
  return [&loader, rows](exec::Feed& f) {
    data::Batch b;
    if (!loader.next(b)) return false;
    if (rows) rows->scan(b);
    f.inputs = std::move(b.inputs);
    f.samples = static_cast<int64_t>(b.indices.size());
    f.labels = std::move(b.labels);
    f.origin = [&loader, idx = std::move(b.indices)] { return loader.dataset().samples_name(idx); };
    return true;
  };
}

}  // namespace

// Batches run on exec::run_ordered's workers; per-batch results are kept by batch index and combined in batch
// order at the end, so the score does not depend on the number of workers (sums of floats included).

Reference compute_reference(exec::Session& s, const data::DatasetPtr& data, const EvalOptions& o) {
  data::Loader loader(data, data::LoaderOptions{o.batch_size, 0, 0});
  Progress bar("Float reference", data->size());
  std::vector<std::vector<int64_t>> argmax;
  std::vector<std::vector<Tensor>> outputs;
  const std::vector<std::string> out_names = s.output_names();
  int64_t samples = 0;
  exec::OrderedRunOptions run;
  run.role = "evaluation worker";
  run.on_done = [&](int64_t i, const exec::Feed& f, std::vector<Tensor>& outs) {
    const auto k = static_cast<size_t>(i);
    if (argmax.size() <= k) argmax.resize(k + 1);
    samples += f.samples;
    if (!outs.empty() && o.metric == MetricKind::Agreement)  // output_snr needs no classes
      argmax[k] = argmax_rows(outs[0], f.samples, out_names.at(0));
    if (o.metric == MetricKind::OutputSnr) {
      if (outputs.size() <= k) outputs.resize(k + 1);
      for (auto& t : outs) t = t.clone();
      outputs[k] = std::move(outs);
    }
    bar.tick(f.samples);
  };
  NonFiniteRows non_finite;
  exec::run_ordered(s, scanned_feed(loader, o.warn_non_finite ? &non_finite : nullptr), {}, run);
  non_finite.warn(*data);
  Reference ref;
  for (const auto& a : argmax) ref.argmax.insert(ref.argmax.end(), a.begin(), a.end());
  ref.outputs = std::move(outputs);
  ref.samples = samples;
  return ref;
}

double evaluate(exec::Session& s, const data::DatasetPtr& data, const EvalOptions& o, const Reference* ref,
                const exec::RunOptions& ro) {
  if (o.metric == MetricKind::Top1 && !data->has_labels())
    fail(ErrorKind::Data, "metric top1 needs labels, but {} has none (use the agreement metric)", data->describe());
  if (o.metric != MetricKind::Top1 && !ref) fail(ErrorKind::Runtime, "internal error: metric needs a reference");
  data::Loader loader(data, data::LoaderOptions{o.batch_size, 0, 0});
  Progress bar(o.progress_label, data->size());
  struct BatchScore {
    std::vector<int64_t> argmax, labels;
    int64_t classes = 0;  // scores per row of the first output
    double sig = 0, noise = 0;
  };
  std::vector<BatchScore> per;  // by batch index
  const std::vector<std::string> out_names = s.output_names();
  exec::OrderedRunOptions run;
  run.role = "evaluation worker";
  run.on_done = [&](int64_t i, const exec::Feed& f, std::vector<Tensor>& outs) {
    const auto k = static_cast<size_t>(i);
    if (per.size() <= k) per.resize(k + 1);
    BatchScore& b = per[k];
    bar.tick(f.samples);
    if (outs.empty()) return;
    if (o.metric == MetricKind::OutputSnr) {
      const auto& r = ref->outputs.at(k);
      for (size_t j = 0; j < outs.size() && j < r.size(); ++j) {
        Tensor x = r[j].dtype() == DType::Float ? r[j] : r[j].cast(DType::Float);
        Tensor y = outs[j].dtype() == DType::Float ? outs[j] : outs[j].cast(DType::Float);
        for (int64_t e = 0; e < x.numel() && e < y.numel(); ++e) {
          double a = x.data<float>()[e], d = a - y.data<float>()[e];
          b.sig += a * a;
          b.noise += d * d;
        }
      }
    } else {
      b.argmax = argmax_rows(outs[0], f.samples, out_names.at(0));
      b.classes = values_per_row(outs[0], f.samples, out_names.at(0));  // what the argmax runs over
      b.labels = f.labels;
    }
  };
  NonFiniteRows non_finite;
  exec::run_ordered(s, scanned_feed(loader, o.warn_non_finite ? &non_finite : nullptr), ro, run);
  non_finite.warn(*data);
  int64_t seen = 0, hits = 0;
  double sig = 0, noise = 0;
  if (o.metric == MetricKind::Top1)  // a label the model cannot predict would silently count as a miss
    for (const BatchScore& b : per)
      for (int64_t l : b.labels)
        if (l < 0 || l >= b.classes) {
          const auto& cn = data->class_names();
          const std::string cls =
              l >= 0 && static_cast<size_t>(l) < cn.size() ? " (class '" + cn[static_cast<size_t>(l)] + "')" : "";
          fail(ErrorKind::Data,
               "{}: label {}{} is outside the {} classes of the model's first output '{}' (its values per "
               "sample); check the class folders / dataset.class_names against the model",
               data->describe(), l, cls, b.classes, out_names.at(0));
        }
  for (const BatchScore& b : per) {
    sig += b.sig;
    noise += b.noise;
    for (size_t i = 0; i < b.argmax.size(); ++i) {
      int64_t want = o.metric == MetricKind::Top1 ? b.labels.at(i) : ref->argmax.at(static_cast<size_t>(seen) + i);
      hits += b.argmax[i] == want;
    }
    seen += static_cast<int64_t>(b.argmax.size());
  }
  if (o.metric == MetricKind::OutputSnr) {
    const double eps = std::numeric_limits<double>::epsilon();
    return 20.0 * std::log10(std::max(std::sqrt(sig), eps) / std::max(std::sqrt(noise), eps));
  }
  return seen ? 100.0 * static_cast<double>(hits) / static_cast<double>(seen) : 0.0;
}

}  // namespace oq::search
