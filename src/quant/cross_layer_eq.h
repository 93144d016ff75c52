// Cross-layer equalization (onnx_extra_options.CrossLayerEqualization; Nagel et al. 2019, "Data-Free
// Quantization", section 4.1) as an IR rewrite of the float model, before calibration. For a pair
// Conv1 → (Relu | LeakyRelu | nothing) → Conv2, per channel i between them (output channel i of Conv1, input
// channel i of Conv2): r1_i = max|W1[i, ...]|, r2_i = max|W2[:, i, ...]|, s_i = (1/r2_i)·sqrt(r1_i·r2_i);
// W1[i] /= s_i, b1[i] /= s_i, W2[:, i] *= s_i. Afterwards both ranges are sqrt(r1_i·r2_i). Since
// Relu(x/s) = Relu(x)/s for s > 0 (positive homogeneity), the model computes the same function. Either Conv
// may be grouped or depthwise; chains (Conv → depthwise Conv → Conv) share a layer between two pairs, so the
// pairs are equalized in sweeps until no scale moves by more than `tolerance` (or `max_iterations`).
// Conditions: each tensor on the way has one consumer and is no graph output; weights (and Conv1's bias) are
// float constants used by that node only.
// Clip (ReLU6) pairs are NOT equalized: Clip(x, 0, 6)/s = Clip(x/s, 0, 6/s), so scaling would need a
// per-channel clip threshold; ONNX Runtime / AIMET replace ReLU6 by ReLU for CLE, which changes the model's
// function — onnxquant does not, it counts and reports those pairs.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"

namespace oq::quant {

struct CleOptions {
  int max_iterations = 100;
  double tolerance = 1e-4;  // stop when every s_i of a sweep is within 1 ± tolerance
};

struct ClePair {
  size_t first = 0, second = 0;  // node indices of Conv1 and Conv2
  std::string activation;        // "" (none), "Relu" or "LeakyRelu"
};

// The pairs of `g` (in node order); `clip_pairs` (optional) counts Conv → Clip → Conv pairs left alone.
std::vector<ClePair> cle_pairs(const ir::Graph& g, int* clip_pairs = nullptr);

// Per-channel ranges of a pair: r1_i over output channel i of W1, r2_i over input channel i of W2.
void cle_ranges(const ir::Graph& g, const ClePair& p, std::vector<double>& r1, std::vector<double>& r2);

struct CleReport {
  int pairs = 0, clip_pairs = 0, sweeps = 0;
  bool converged = true;
};

CleReport cross_layer_equalize(ir::Model& m, const CleOptions& o = {});

}  // namespace oq::quant
