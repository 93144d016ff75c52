// Better weight quantizers than min/max (onnx_extra_options.WeightQuantizer): `mse` picks, per channel, the
// clipping ratio of the min/max range that minimises ‖W − Q(W)‖²; `gptq` (Frantar et al. 2022) quantizes a
// layer's weight column by column on the mse grid, compensating each column's rounding error on the columns
// not yet quantized with the inverse Hessian H = 2·XᵀX of the layer's input (im2col rows for Conv), measured
// on the calibration data. Both plug into compute_params through a WeightParamsFn; gptq also returns the
// modified float values (exactly on the grid) that the writer then quantizes.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "ir/graph.h"
#include "quant/params.h"

namespace oq::quant {

enum class WeightQuantizerKind { MinMax, Mse, Gptq };

struct WeightQuantizerOptions {
  WeightQuantizerKind kind = WeightQuantizerKind::MinMax;
  int grid = 95;             // mse: ratios 1, 1 − (1 − min_ratio)/grid, ..., min_ratio (steps of 0.01)
  double min_ratio = 0.05;
  double damp = 0.01;        // gptq: dampening, a fraction of the mean diagonal of H
  int64_t block = 128;       // gptq: columns per lazy block update
};

// Dequantized Q(W) with the writer's own quantize_tensor (saturating to the full integer range).
Tensor weight_fake_quant(const Tensor& w, const exec::QuantParams& q);
// ‖W − Q(W)‖² (sum of squares).
double quant_error(const Tensor& w, const exec::QuantParams& q);

// Clipping ratio per channel (per tensor when proposal.params.axis < 0) minimising ‖W − Q(W)‖²; the scale and
// zero point of each ratio come from compute_scale_zp (THE function) on the scaled min/max range with the
// proposal's symmetric / reduce_range / min_real_range, so ratio 1 reproduces the min/max proposal exactly and
// the result is never worse than it.
exec::QuantParams mse_params(const Tensor& w, const WeightProposal& proposal, const WeightQuantizerOptions& o = {});

// The matrix view GPTQ works on: `groups` blocks of `rows` × `k`; row r of group g holds the weights of
// output channel g·rows + r against the k input columns of that group.
struct LayerView {
  std::string weight, input, node, op_type;
  int64_t groups = 1, rows = 0, k = 0;
  bool transposed = false;   // weight stored [k, rows] (Gemm transB = 0, MatMul)
  int out_axis = 0;          // output-channel axis of the stored weight
  // Conv geometry (spatial rank 1 or 2).
  std::vector<int64_t> kernel, strides, pads, dilations;
  std::vector<int64_t> output_padding;  // ConvTranspose (bias correction only; GPTQ does not take it)
};

// The view of a Conv (2-D or 1-D, explicit pads), Gemm (transA = 0) or MatMul (2-D weight) with a constant
// weight; nullopt for anything GPTQ does not handle (ConvTranspose, auto_pad, 3-D conv, ...).
std::optional<LayerView> layer_view(const ir::Graph& g, const ir::Node& n);

// Streaming H = 2·XᵀX per group, summed over im2col rows (GPTQ's running mean differs by a factor, which
// neither the relative dampening nor the updates see).
struct LayerHessian {
  LayerView view;
  std::vector<double> h;  // groups × k × k
  int64_t rows = 0;       // im2col rows accumulated (per group)
};

// Calls f(col, P, group) for each sample (Conv) or batch (Gemm/MatMul) of the layer input x and each group:
// col holds the group's k im2col columns of P rows each, column-major (col[j·P + p]; zero padding included).
using Im2colFn = std::function<void(const std::vector<float>& col, int64_t P, int64_t group)>;
void for_each_im2col(const LayerView& v, const Tensor& x, const Im2colFn& f);

// Adds one batch of the layer's input to its Hessian.
void accumulate_hessian(LayerHessian& h, const Tensor& x);

// Hessians of every layer GPTQ can handle among the weights named (empty = all), from one streamed pass of
// the float model over the data.
std::map<std::string, LayerHessian> collect_hessians(const ir::Model& m, const std::vector<std::string>& weights,
                                                     const data::DatasetPtr& data, int64_t batch_size);

// GPTQ on one layer with fixed parameters q (scale/zero point per output channel or per tensor): returns the
// dequantized weight in the stored layout.
Tensor gptq_quantize(const Tensor& w, const LayerHessian& h, const exec::QuantParams& q,
                     const WeightQuantizerOptions& o = {});

// The WeightParamsFn of a quantizer (cached per weight, type, axis and symmetry: full_auto rebuilds models many
// times). MinMax returns an empty function. `hessians` is needed for gptq only; weights without one fall back to
// mse.
WeightParamsFn make_weight_quantizer(const WeightQuantizerOptions& o,
                                     std::shared_ptr<const std::map<std::string, LayerHessian>> hessians = nullptr);

}  // namespace oq::quant
