#include "analysis/precision.h"

#include <fmt/format.h>

#include <set>
#include <utility>

namespace oq::analysis {

namespace {

bool is_qdq(const ir::Node& n, const char* op) {
  return n.op_type == op && (n.is_default_domain() || n.domain == "com.microsoft");
}

// The integer type a QuantizeLinear produces: its zero point's, else output_dtype (opset 21), else uint8 (the
// spec's default).
DType quantize_type(const ir::Graph& g, const ir::Node& n) {
  if (const auto* zp = g.find_initializer(n.input(2))) return zp->tensor.dtype();
  if (const int64_t dt = n.attr_int("output_dtype", 0); dt != 0 && dtype_is_known(static_cast<int32_t>(dt)))
    return static_cast<DType>(dt);
  return DType::UInt8;
}

double percent(int64_t part, int64_t total) {
  return total > 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(total) : 0.0;
}

int64_t sum(const std::map<int, int64_t>& m) {
  int64_t s = 0;
  for (const auto& [bits, n] : m) s += n;
  return s;
}

}  // namespace

int64_t PrecisionCounts::weight_total() const { return sum(weights); }
int64_t PrecisionCounts::activation_total() const { return sum(activations); }
int64_t PrecisionCounts::weights_of(int bits) const {
  auto it = weights.find(bits);
  return it == weights.end() ? 0 : it->second;
}
double PrecisionCounts::weight_percent(int bits) const { return percent(weights_of(bits), weight_total()); }
double PrecisionCounts::activation_percent(int bits) const {
  auto it = activations.find(bits);
  return percent(it == activations.end() ? 0 : it->second, activation_total());
}
bool PrecisionCounts::st_only() const {
  for (const auto& [bits, n] : weights)
    if (n > 0 && bits != 4 && bits != 8) return false;
  for (const auto& [bits, n] : activations)
    if (n > 0 && bits != 8) return false;
  return true;
}

PrecisionCounts count_precision(const ir::Graph& g) {
  PrecisionCounts c;
  std::set<std::string> weights;
  std::set<std::pair<std::string, int>> activations;
  for (const auto& n : g.nodes) {
    const std::string& x = n.input(0);
    if (x.empty()) continue;
    const auto* init = g.find_initializer(x);
    if (is_qdq(n, "DequantizeLinear")) {
      // An integer constant dequantized: a stored weight (int32: a bias, not counted).
      if (!init || !is_quant_type(init->tensor.dtype()) || !weights.insert(x).second) continue;
      c.weights[dtype_bits(init->tensor.dtype())] += init->tensor.numel();
    } else if (is_qdq(n, "QuantizeLinear")) {
      const int bits = dtype_bits(quantize_type(g, n));
      if (init) {  // AddQDQPairToWeight: the float weight is stored, quantized by a QuantizeLinear in the graph
        if (weights.insert(x).second) c.weights[bits] += init->tensor.numel();
      } else if (activations.emplace(x, bits).second) {
        c.activations[bits] += 1;
      }
    }
  }
  return c;
}

std::string precision_name(const PrecisionCounts& c) {
  const double w4 = c.weight_percent(4);
  // ST's spelling (its tools parse it): w8 is the rest, the activations always "a8_100%".
  if (c.st_only()) return fmt::format("_w4_{:.2f}%_w8_{:.2f}%_a8_100%", w4, 100.0 - w4);
  std::string s = fmt::format("_w4_{:.2f}%_w8_{:.2f}%", w4, c.weight_percent(8));
  for (const auto& [bits, n] : c.weights)
    if (n > 0 && bits != 4 && bits != 8) s += fmt::format("_w{}_{:.2f}%", bits, c.weight_percent(bits));
  std::map<int, int64_t> acts = c.activations;
  acts.try_emplace(8, 0);  // a8 always given, as in ST's names
  for (const auto& [bits, n] : acts)
    if (n > 0 || bits == 8) s += fmt::format("_a{}_{:.2f}%", bits, c.activation_percent(bits));
  return s;
}

std::string precision_summary(const PrecisionCounts& c) {
  std::string w, a;
  for (const auto& [bits, n] : c.weights)
    w += fmt::format("{}{} in {} bits ({:.2f}%)", w.empty() ? "" : ", ", n, bits, c.weight_percent(bits));
  for (const auto& [bits, n] : c.activations)
    a += fmt::format("{}{} in {} bits ({:.2f}%)", a.empty() ? "" : ", ", n, bits, c.activation_percent(bits));
  return fmt::format("weight parameters: {} of {}; activation tensors: {} of {}", w.empty() ? "none" : w,
                     c.weight_total(), a.empty() ? "none" : a, c.activation_total());
}

}  // namespace oq::analysis
