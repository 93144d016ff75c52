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
// Clip (ReLU6) pairs: Clip(x, 0, 6)/s = Clip(x/s, 0, 6/s), so scaling would need a per-channel clip threshold.
// By default they are left alone (counted and reported), so the model's function never changes. With
// replace_relu6 (CrossLayerEqualizationReplaceRelu6), a Clip(0, 6) between two Convs of a pair becomes a Relu
// and the pair is equalized, as the paper and AIMET do: the model then differs from the original wherever
// that activation exceeded 6 (calibration measures the new ranges).
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"

namespace oq::quant {

struct CleOptions {
  int max_iterations = 100;
  double tolerance = 1e-4;  // stop when every s_i of a sweep is within 1 ± tolerance
  bool replace_relu6 = false;  // Clip(0, 6) between the two Convs of a pair -> Relu, and equalize the pair
};

struct ClePair {
  size_t first = 0, second = 0;  // node indices of Conv1 and Conv2
  std::string activation;        // "" (none), "Relu", "LeakyRelu" or "Clip" (a Clip(0, 6), with relu6 pairs)
  size_t act = 0;                // node index of the activation, when there is one
};

// The pairs of `g` (in node order). Conv → Clip → Conv pairs are included when `relu6` is set and the Clip is
// Clip(0, 6) with constant bounds; `clip_pairs` (optional) counts the Conv → Clip → Conv pairs not included.
std::vector<ClePair> cle_pairs(const ir::Graph& g, int* clip_pairs = nullptr, bool relu6 = false);

// Per-channel ranges of a pair: r1_i over output channel i of W1, r2_i over input channel i of W2.
void cle_ranges(const ir::Graph& g, const ClePair& p, std::vector<double>& r1, std::vector<double>& r2);

struct CleReport {
  int pairs = 0, clip_pairs = 0, sweeps = 0;
  int relu6_replaced = 0;  // Clip(0, 6) nodes turned into Relu (replace_relu6)
  bool converged = true;
};

CleReport cross_layer_equalize(ir::Model& m, const CleOptions& o = {});

}  // namespace oq::quant
