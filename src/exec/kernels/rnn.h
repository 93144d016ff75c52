// Recurrent kernels RNN, GRU and LSTM (opsets 7, 14; opset 22 only widens the types): attributes parsed once
// into RnnAttrs, the inputs checked into RnnDims, then either the optimised path (rnn.cc: the input projection
// of every time step as one GEMM, one product per step with R packed once for the recurrence) or the naive reference (rnn_ref.cc:
// every gate value as its own dot product, in double), which the optimised path is tested against.
//
// Semantics beyond onnx.reference (which ignores them) follow the spec text and onnxruntime's CPU kernels:
//  - clip bounds the pre-activation of every gate (after biases and peepholes are added), not the cell state;
//  - input_forget (LSTM) couples the gates: f = 1 - i;
//  - sequence_lens[b] < seq_length: batch b stops after its own length (reverse: starts at its last valid
//    step), Y is 0 past it, Y_h/Y_c hold the state after its last valid step; a length of 0 gives zeros;
//  - activation_alpha/beta are consumed in order by the activations that take them (Affine, LeakyRelu,
//    ThresholdedRelu, ScaledTanh, HardSigmoid, Elu); when they run out, the defaults of the ONNX operators
//    of the same name (LeakyRelu 0.01, ThresholdedRelu 1, HardSigmoid 0.2/0.5, Elu 1, Affine 1/0,
//    ScaledTanh 1/1). Activation names are matched case-insensitively (as onnxruntime does).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "exec/kernel.h"
#include "exec/kernels/rnn_gemm.h"

namespace oq::exec {

enum class RnnKind { Rnn, Gru, Lstm };
enum class RnnActKind { Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu,
                        Softsign, Softplus };

struct RnnAct {
  RnnActKind kind = RnnActKind::Tanh;
  float alpha = 0, beta = 0;
};

struct RnnAttrs {
  RnnKind kind = RnnKind::Rnn;
  int num_dirs = 1;
  bool reverse = false;              // direction "reverse" (bidirectional: direction 1 is the reverse one)
  int64_t hidden_size = -1;          // -1: not given, taken from R
  std::vector<RnnAct> acts;          // acts_per_dir() per direction, forward direction first
  float clip = 0;                    // > 0 when given
  bool input_forget = false;         // LSTM
  bool linear_before_reset = false;  // GRU
  int layout = 0;                    // 1: X [batch, seq, input], Y [batch, seq, dirs, hidden], Y_h [batch, dirs, hidden]

  int gates() const { return kind == RnnKind::Rnn ? 1 : kind == RnnKind::Gru ? 3 : 4; }
  int acts_per_dir() const { return kind == RnnKind::Rnn ? 1 : kind == RnnKind::Gru ? 2 : 3; }
  const RnnAct& act(int dir, int k) const { return acts[static_cast<size_t>(dir * acts_per_dir() + k)]; }
};

// Parses and validates the node's attributes (errors name the node).
RnnAttrs parse_rnn_attrs(const KernelInit& ki, RnnKind kind);

// Inputs in schema order: X, W, R, B, sequence_lens, initial_h, initial_c (LSTM), P (LSTM); null when omitted.
struct RnnInputs {
  const Tensor *x = nullptr, *w = nullptr, *r = nullptr, *b = nullptr, *seq_lens = nullptr, *init_h = nullptr,
               *init_c = nullptr, *p = nullptr;
};

struct RnnDims {
  int64_t seq = 0, batch = 0, input = 0, hidden = 0;
  std::vector<int64_t> lens;  // per batch, all seq when sequence_lens is omitted
};

// Checks dtypes and shapes of every input against each other and the attributes (errors name the node).
RnnDims check_rnn_inputs(const ir::Node& node, const RnnAttrs& a, const RnnInputs& in);

// Y [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]); Y_h, Y_c [dirs, batch, hidden]
// (layout 1: [batch, dirs, hidden]). Y_c is left empty for RNN and GRU.
struct RnnOutputs {
  Tensor y, y_h, y_c;
};

// One activation of one value (double), as the spec defines it.
double rnn_activation(const RnnAct& a, double x);

// R of every direction packed for the per-step products (rnn_gemm.h): all gates, or for GRU without
// linear_before_reset z and r in rec and h in rec_h. Float R only.
struct RnnPacks {
  std::vector<PackedRt> rec, rec_h;
};
RnnPacks pack_rnn_weights(const RnnAttrs& a, const Tensor& r);

// A node's packed R, kept while R is the same tensor: holding it keeps its storage alive, so a new data pointer
// means new weights (as dnnl_util::ReorderedWeights). Safe to call from several threads at once.
class RnnPackCache {
 public:
  // packed (optional): set to whether R was packed by this call.
  std::shared_ptr<const RnnPacks> get(const RnnAttrs& a, const Tensor& r, bool* packed = nullptr);

 private:
  std::mutex mu_;
  Tensor src_;
  std::shared_ptr<const RnnPacks> packs_;
};

// The optimised kernel (float: the input projection by oneDNN sgemm, the recurrence over `packs`, packed here
// when null; double: plain loops).
RnnOutputs rnn_compute(const RnnAttrs& a, const RnnDims& d, const RnnInputs& in, const RnnPacks* packs = nullptr);
// The naive reference: per batch, step and hidden unit, each gate's dot products written out, in double.
RnnOutputs rnn_reference(const RnnAttrs& a, const RnnDims& d, const RnnInputs& in);

}  // namespace oq::exec
