// Bias correction (onnx_extra_options.BiasCorrection; Nagel et al. 2019, "Data-Free Quantization", in its
// empirical form): quantizing a layer's weight W to Q(W) shifts the layer's expected output, per output
// channel o, by E[W·x]_o − E[Q(W)·x]_o = Σ_j (W − Q(W))[o, j] · E[col_j], where col is the layer's im2col input
// row (for Conv: one entry per input channel and kernel tap, zero padding included). Measuring E[col_j] (not
// only the per-channel mean E[x_c]) makes the correction exact for any pads, strides and dilations. Adding the
// shift to the bias makes every output channel's mean over the calibration data equal the float layer's (with
// float inputs). Q(W) is the image under the parameters the weight actually gets (its final type, per-channel
// choice, and the values of a weight quantizer such as GPTQ), so build_qdq applies the correction after the
// weight parameters are known, for every model it builds (full_auto: Int4 and Int8 alike).
// Layers: Conv (1-D/2-D, explicit pads or VALID), Gemm (transA 0) and MatMul with a constant 2-D weight — the
// layers of LayerView — and ConvTranspose (1-D/2-D, explicit pads, no output_shape), whose column means are
// those of the input positions each kernel tap maps inside the output. The bias is the Conv/ConvTranspose/Gemm
// bias input (add_zero_biases creates a zero one first where it is missing), or for MatMul the constant of an
// Add that is the MatMul output's only consumer.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "ir/graph.h"
#include "quant/plan.h"
#include "quant/weight_quantizers.h"

namespace oq::quant {

// Sum of each im2col column of a layer's input over the data (per group), and the number of rows summed. A NaN
// or infinite value is left out of its column's sum and counted in `skipped` (as the calibrator's ranges ignore
// such values): column j's mean is sum[j] / (rows − skipped[j]).
struct InputMeans {
  LayerView view;
  std::vector<double> sum;       // groups × k
  std::vector<int64_t> skipped;  // groups × k: non-finite values left out of the column
  int64_t rows = 0;              // im2col rows per group
};
using InputMeansMap = std::map<std::string, InputMeans>;  // by weight name

// A layer whose bias can be corrected: Conv/ConvTranspose/Gemm (bias input 2, possibly absent), or MatMul
// followed by an Add of a constant (the bias); the weight is used by that node only. `alpha`, `beta`: Gemm's
// (Y = alpha·A·B + beta·C: the weight's output shift is multiplied by alpha, the bias by beta).
struct BiasTarget {
  LayerView view;
  std::string bias;  // "" when the Conv/Gemm has no bias (yet)
  double alpha = 1.0, beta = 1.0;
};
std::vector<BiasTarget> bias_targets(const ir::Graph& g);

// The view of a ConvTranspose with a constant weight [C, O/group, k...]: groups × rows (O/group) × k
// (C/group × kernel size); nullopt for auto_pad, output_shape or 3-D.
std::optional<LayerView> conv_transpose_view(const ir::Graph& g, const ir::Node& n);

// Adds a zero float bias (named "<weight>_bias", made unique) to every Conv, ConvTranspose and Gemm target
// without one, and to every Gemm target with beta 0 (its C, which it ignores, is replaced and beta set to 1);
// the model computes the same function. Returns the number added.
int add_zero_biases(ir::Graph& g);

// Watches the inputs of the given layers during a float run (call observe() from an executor observer).
class InputMeansCollector {
 public:
  explicit InputMeansCollector(const std::vector<LayerView>& layers);
  void observe(const std::string& name, const Tensor& v);
  bool empty() const { return by_input_.empty(); }
  // The means; warns once per layer that has a column without any finite value (its channels keep their bias).
  InputMeansMap take();

 private:
  std::map<std::string, std::vector<std::string>> by_input_;  // input tensor -> weights
  InputMeansMap means_;
};

// One streamed pass of the float model over the data: input means of every target layer.
InputMeansMap collect_input_means(const ir::Model& m, const data::DatasetPtr& data, int64_t batch_size);

// Σ_j (W − Wq)[o, j] · E[col_j] per output channel o (the layer's output order); w and wq in the stored layout.
// NaN for a channel that reads a column without a finite value (its expectation is unknown).
std::vector<double> expected_shift(const Tensor& w, const Tensor& wq, const InputMeans& m);

// Sets each target's bias initializer in `g` to original + shift · alpha / beta, where original is the bias in
// `original` (the float graph) and the shift uses Q(W) = weight_fake_quant(values or W, params[weight]).
// Targets without a bias, an unquantized weight, input means, a private float bias of one value per output
// channel, or with beta 0 are left alone; so is each channel whose corrected value would not be finite (a shift
// of NaN: see expected_shift). Returns the number of biases corrected.
int correct_biases(ir::Graph& g, const ir::Graph& original, const std::vector<BiasTarget>& targets,
                   const ParamMap& params, const std::map<std::string, Tensor>& weight_values,
                   const InputMeansMap& means);

}  // namespace oq::quant
