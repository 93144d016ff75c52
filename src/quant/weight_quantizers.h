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
// neither the relative dampening nor the updates see). A weight read by several layers of the same layout gets
// the sum of their Hessians, H = Σᵢ 2·XᵢᵀXᵢ (the error GPTQ minimises is the sum of their output errors; an input
// column is dead only if dead for every reader). An im2col row holding a NaN or an infinite value is left out
// (as the calibrator's ranges ignore non-finite values) and counted in `non_finite_rows`.
struct LayerHessian {
  LayerView view;             // the first reader (node order)
  std::vector<double> h;      // groups × k × k
  int64_t rows = 0;           // im2col rows accumulated (over all groups and readers)
  std::vector<LayerView> readers;  // every reader of the weight (empty: `view` only)
  int64_t non_finite_rows = 0;     // im2col rows left out (over all groups and readers)
  std::vector<int64_t> group_rows;  // `rows` per group (a group can have none: all its rows non-finite)
};

// Calls f(col, P, group) for each sample (Conv) or batch (Gemm/MatMul) of the layer input x and each group:
// col holds the group's k im2col columns of P rows each, column-major (col[j·P + p]; zero padding included).
using Im2colFn = std::function<void(const std::vector<float>& col, int64_t P, int64_t group)>;
void for_each_im2col(const LayerView& v, const Tensor& x, const Im2colFn& f);

// Adds one batch of the input of `reader` (default: h.view) to h; `reader` must have h.view's layout.
void accumulate_hessian(LayerHessian& h, const Tensor& x);
void accumulate_hessian(LayerHessian& h, const LayerView& reader, const Tensor& x);

// The layers GPTQ can handle among the weights named (empty = all), in node order, without their Hessians: one
// entry per weight with every reader in `readers`. A weight also read by a node GPTQ does not handle, or by
// layers of different layouts (e.g. a Gemm with transB 1 and a MatMul), is left out (an info line each: it
// falls back to mse).
std::vector<LayerHessian> gptq_layers(const ir::Graph& g, const std::vector<std::string>& weights = {});

// Fills the Hessians of `layers` (as gptq_layers returns them) from one streamed pass of the float model over the
// data; warns once per layer with non-finite input rows (unless `warned` already names its weight; the weight is
// added to it).
void measure_hessians(const ir::Model& m, std::vector<LayerHessian>& layers, const data::DatasetPtr& data,
                      int64_t batch_size, std::set<std::string>* warned = nullptr);

// Hessians of every layer GPTQ can handle among the weights named (empty = all), from one streamed pass of
// the float model over the data (gptq_layers + measure_hessians; layers never reached are left out).
std::map<std::string, LayerHessian> collect_hessians(const ir::Model& m, const std::vector<std::string>& weights,
                                                     const data::DatasetPtr& data, int64_t batch_size);

// GPTQ on one layer with fixed parameters q (scale/zero point per output channel or per tensor): returns the
// dequantized weight in the stored layout. Integers are clipped to `range` (default: the type's full range; the
// weight quantizer passes the range q was computed for, e.g. ±127 for symmetric Int8).
Tensor gptq_quantize(const Tensor& w, const LayerHessian& h, const exec::QuantParams& q,
                     const WeightQuantizerOptions& o = {}, std::optional<QRange> range = std::nullopt);

// Layer Hessians measured on demand, one group of layers per streamed pass of the float model: a request for a
// layer not held drops the group held and measures that layer and the next ones in node order while their
// Hessians fit `budget_bytes` together (at least the one requested). Hessians held at once: at most
// max(budget, the largest layer's H); during a pass, one partial H more per extra reader of a shared weight.
// The numbers do not depend on the budget (each H is the same sum, measured in the same order).
class HessianSource {
 public:
  HessianSource(const ir::Model& m, data::DatasetPtr data, int64_t batch_size, size_t budget_bytes);
  // The layer's Hessian; nullptr when GPTQ does not handle the weight or the data never reach its layer.
  const LayerHessian* find(const std::string& weight);
  size_t layers() const { return layers_.size(); }
  int passes() const { return passes_; }

 private:
  void load(size_t first);
  ir::Model model_;
  data::DatasetPtr data_;
  int64_t batch_size_;
  size_t budget_;
  std::vector<LayerHessian> layers_;  // node order; `h` filled for the held group only
  std::map<std::string, size_t> index_;
  std::vector<char> unreached_;       // measured with no rows
  size_t held_begin_ = 0, held_end_ = 0;
  std::set<std::string> warned_;
  int passes_ = 0;
};

// The WeightParamsFn of a quantizer (cached per weight, type, axis and symmetry: full_auto rebuilds models many
// times). MinMax returns an empty function. `hessians` is needed for gptq only; weights without one fall back to
// mse. Integers stay in the range the proposal's scales are computed for (±127 / ±32767 for symmetric Int8 /
// Int16, as min/max and ORT; 4-bit types keep their full range).
WeightParamsFn make_weight_quantizer(const WeightQuantizerOptions& o, std::shared_ptr<HessianSource> hessians = nullptr);

}  // namespace oq::quant
