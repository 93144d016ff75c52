// The executor: runs a float or QDQ graph on the CPU.
//
//   Session s(model);                       // builds one kernel per node; unsupported ops -> one Model error
//   auto outs = s.run({{"input", x}});      // outputs in graph-output order
//
// Observers see every tensor produced (name + data, valid only during the callback) — the only way
// calibration and inspection look inside a graph. Fake quantization replaces chosen tensors by their
// quantize->dequantize image right after they are produced (or, for initializers/inputs, when first read),
// bit-identical to an explicit QuantizeLinear->DequantizeLinear pair.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/tensor.h"
#include "exec/kernel.h"
#include "ir/graph.h"

namespace oq::exec {

// Quantization parameters of one tensor (per-tensor: one scale/zero point; per-axis: one per slice).
struct QuantParams {
  DType qtype = DType::Int8;
  std::vector<float> scale;
  std::vector<int64_t> zero_point;
  int axis = -1;  // -1 with a single scale = per tensor
  // Type the scales are written in: the quantized tensor's float type (Float16 for a float16 model's tensors;
  // the values are then float16 values, exact in float).
  DType scale_type = DType::Float;
  bool per_axis() const { return scale.size() > 1 || axis >= 0; }
};

using Observer = std::function<void(const std::string& name, const Tensor& value)>;

struct RunOptions {
  // Called for every tensor produced by a node (after fake quantization, if any, is applied), and for the
  // graph inputs; the outputs of nodes precomputed at build time (all inputs constant) only when `observed`
  // names them. Keep it cheap: it runs on the executor thread.
  Observer observer;
  // The names the observer needs (null: every tensor of the model as given). With a set, the run may use the
  // optimized graph (see SessionOptions) when none of these names is touched by its rewrites; the observer
  // then also sees tensors of that graph that are not in the set (ignore them).
  const std::unordered_set<std::string>* observed = nullptr;
  // Names whose observer needs only the values, not their order (min/max, histograms). The optimized graph
  // holds some tensors in a channel-blocked layout (exec/layout.h); one of these is then shown as it is when
  // it has no padding channels (shape [N, C/B, H, W, B]), else as a copy of its real channels' values (shape
  // [N, C, H, W], not in NCHW order), instead of being converted back to NCHW for the observer.
  const std::unordered_set<std::string>* any_order = nullptr;
  // Called with the value BEFORE fake quantization for tensors in fake_quant (may be empty).
  Observer pre_fake_quant_observer;
  // Tensors to fake-quantize: node outputs, graph inputs or initializers.
  const std::unordered_map<std::string, QuantParams>* fake_quant = nullptr;
};

struct SessionOptions {
  // Run an optimized copy of the model (exec/optimize.h: BatchNormalization folding, Pad and Relu/Clip fusion
  // into Conv, ...) whenever a run does not look at or fake-quantize a tensor those rewrites remove or change;
  // such runs execute the model as given. Results agree to float rounding (folded weights).
  bool optimize = true;
  // Channel block of the blocked layout for convolution chains (exec/layout.h): 8 or 16, 0 = off, -1 = the
  // CPU's native block (16 with AVX-512, 8 with AVX2).
  int channel_block = -1;
  // A model with float16 values runs in float32 (ir::passes::upcast_float16: tensor names unchanged, so
  // observers and fake quantization see float32 tensors under the model's names): a float16 input takes
  // float16 data (widened exactly) or float data (rounded to float16 first, as a float16 feed would be), and a
  // float16 output is returned in float16. Off: float16 tensors go to the kernels as they are (the kernels'
  // own float16 support: the ONNX backend node tests).
  bool upcast_float16 = true;
};

class Session {
 public:
  explicit Session(const ir::Model& model, SessionOptions options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // feeds: name -> tensor for every real graph input. Outputs in graph-output order.
  std::vector<Tensor> run(const std::map<std::string, Tensor>& feeds, const RunOptions& opts = {});

  const ir::Graph& graph() const;
  // Node indices in execution order.
  const std::vector<size_t>& order() const;
  std::vector<std::string> output_names() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Quantize→dequantize image of x under q (round half to even, saturate), bit-identical to the
// QuantizeLinear/DequantizeLinear kernels.
Tensor fake_quantize(const Tensor& x, const QuantParams& q);

}  // namespace oq::exec
