// Bit widths of a written QDQ model, counted from its graph (what the file holds, whatever options, overrides or
// search choices produced it): the shares full_auto gives in its file names, log and reports.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "ir/graph.h"

namespace oq::analysis {

struct PrecisionCounts {
  // bits -> parameters of the quantized constants (each initializer once: the integer input of a
  // DequantizeLinear, or the float input of a QuantizeLinear with AddQDQPairToWeight), int32 biases excepted.
  std::map<int, int64_t> weights;
  // bits -> quantized activation tensors (each non-constant tensor a QuantizeLinear reads, once per type: a
  // tensor converted by a TensorQuantOverrides `convert` counts under both of its types).
  std::map<int, int64_t> activations;

  int64_t weight_total() const;
  int64_t activation_total() const;
  int64_t weights_of(int bits) const;
  double weight_percent(int bits) const;      // 0 when there are no quantized constants
  double activation_percent(int bits) const;  // 0 when there are no quantized activations
  // Only 4- and 8-bit constants and 8-bit activations (or none): the case of ST's file names.
  bool st_only() const;
};

// Counts the main graph of a QDQ model (Q / DQ in the default domain or com.microsoft).
PrecisionCounts count_precision(const ir::Graph& g);

// The precision part of full_auto's file names. ST's exact spelling when st_only():
// "_w4_<w4>%_w8_<100 - w4>%_a8_100%"; otherwise every weight width present after w4 and w8 (always given) and
// every activation width, each rounded to 2 decimals, in increasing bits:
// "_w4_83.36%_w8_2.22%_w16_14.42%_a8_96.30%_a16_3.70%".
std::string precision_name(const PrecisionCounts& c);

// Every width for the log: "weight parameters: 35520 in 4 bits (83.36%), 944 in 8 bits (2.22%), 6144 in 16 bits
// (14.42%) of 42608; activation tensors: 26 in 8 bits (96.30%), 1 in 16 bits (3.70%) of 27".
std::string precision_summary(const PrecisionCounts& c);

}  // namespace oq::analysis
