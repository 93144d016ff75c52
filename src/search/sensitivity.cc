#include "search/sensitivity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/progress.h"
#include "exec/session.h"

namespace oq::search {

namespace {

void accumulate(const std::vector<Tensor>& ref, const std::vector<Tensor>& out, double& sig, double& noise) {
  for (size_t i = 0; i < ref.size() && i < out.size(); ++i) {
    Tensor r = ref[i].dtype() == DType::Float ? ref[i] : ref[i].cast(DType::Float);
    Tensor o = out[i].dtype() == DType::Float ? out[i] : out[i].cast(DType::Float);
    for (int64_t j = 0; j < r.numel() && j < o.numel(); ++j) {
      double a = r.data<float>()[j], d = a - o.data<float>()[j];
      sig += a * a;
      noise += d * d;
    }
  }
}

}  // namespace

double output_snr_with_weight(const ir::Model& m, const std::string& name, const Tensor& values,
                              const std::vector<Feeds>& feeds, const std::vector<std::vector<Tensor>>& ref) {
  ir::Model c = m;
  ir::Initializer* init = c.graph.find_initializer(name);
  if (!init) fail(ErrorKind::Runtime, "sensitivity: weight '{}' is not an initializer", name);
  init->tensor = values;
  exec::Session s(c);
  double sig = 0, noise = 0;
  for (size_t b = 0; b < feeds.size(); ++b) accumulate(ref[b], s.run(feeds[b]), sig, noise);
  if (noise <= 0) return 200.0;
  if (sig <= 0) return -200.0;
  return 10.0 * std::log10(sig / noise);
}

std::vector<double> weight_sensitivity(const ir::Model& m, const std::vector<RankedTensor>& cands,
                                       const std::function<Tensor(const RankedTensor&)>& w4_values,
                                       const std::vector<Feeds>& feeds) {
  std::vector<std::vector<Tensor>> ref;
  {
    exec::Session s(m);
    for (const auto& f : feeds) ref.push_back(s.run(f));
  }
  std::vector<double> snr;
  Progress bar("Sensitivity", static_cast<int64_t>(cands.size()));
  for (const auto& t : cands) {
    snr.push_back(output_snr_with_weight(m, t.name, w4_values(t), feeds, ref));
    bar.tick(1);
  }
  bar.done();
  return snr;
}

std::vector<RankedTensor> rank_by_sensitivity(const std::vector<RankedTensor>& cands, const std::vector<double>& snr_db) {
  if (cands.size() != snr_db.size()) fail(ErrorKind::Runtime, "sensitivity: {} tensors but {} SNRs", cands.size(), snr_db.size());
  std::vector<size_t> idx(cands.size());
  std::iota(idx.begin(), idx.end(), 0);
  // A NaN SNR (the weight's 4-bit image makes an output NaN) is the worst: lowest key, Int8 first. Left NaN, it
  // compared neither above nor below any key, and stable_sort left the other tensors out of order.
  auto key = [&](size_t i) {
    if (std::isnan(snr_db[i])) return -std::numeric_limits<double>::infinity();
    return static_cast<double>(cands[i].weights) * std::pow(10.0, snr_db[i] / 10.0);
  };
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return key(a) > key(b); });
  std::vector<RankedTensor> out;
  for (size_t i : idx) out.push_back(cands[i]);
  return out;
}

}  // namespace oq::search
