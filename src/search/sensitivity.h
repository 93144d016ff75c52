// Measured-sensitivity ranking (iterative_quant_parameters.ranking: sensitivity): for each candidate weight,
// the output SNR of the float model with only that weight replaced by its 4-bit fake-quantized values (from
// the chosen weight quantizer), on a small calibration split; one pass per tensor. Tensors are then ordered
// by 4-bit parameters gained per unit of output noise (weights / 10^(−SNR/10)), decreasing: the ranking that
// maximises the 4-bit parameter share when noise adds up. The last tensors go to Int8 first.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "search/ranking.h"

namespace oq::search {

using Feeds = std::map<std::string, Tensor>;

// Output SNR in dB (all outputs of all batches together) of `m` with weight `name` replaced by `values`,
// against the float outputs `ref` (one vector of outputs per batch in `feeds`).
double output_snr_with_weight(const ir::Model& m, const std::string& name, const Tensor& values,
                              const std::vector<Feeds>& feeds, const std::vector<std::vector<Tensor>>& ref);

// SNR per candidate (same order as `cands`); `w4_values(t)` gives the candidate's fake-quantized 4-bit values.
std::vector<double> weight_sensitivity(const ir::Model& m, const std::vector<RankedTensor>& cands,
                                       const std::function<Tensor(const RankedTensor&)>& w4_values,
                                       const std::vector<Feeds>& feeds);

// Orders candidates by weights / noise power decreasing (noise = 10^(−SNR/10)); ties keep the given order.
std::vector<RankedTensor> rank_by_sensitivity(const std::vector<RankedTensor>& cands, const std::vector<double>& snr_db);

}  // namespace oq::search
