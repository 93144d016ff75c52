// Phase one of QDQ insertion: annotators mark tensors with a quant spec; nothing is written yet.
// Phase two (qdq_writer) turns a plan plus computed parameters into Q/DQ nodes.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "exec/session.h"
#include "ir/graph.h"

namespace oq::quant {

enum class TensorRole { Activation, Weight, Bias };

struct TensorSpec {
  TensorRole role = TensorRole::Activation;
  bool is_initializer = false;
  int axis = -1;              // per-channel axis for weights; -1 = per tensor
  bool weight_type = false;   // quantized with the weight type (else the activation type)
  // Activation sharing the parameters of another tensor (Reshape/Transpose/MaxPool/... outputs).
  std::string share_from;
  // Bias: the node's activation input and weight, and Gemm's beta.
  std::string bias_input, bias_weight;
  double bias_beta = 1.0;
  // The node that reads `share_from` (shared tensors) or the bias: the parameters it sees of a converted
  // activation (TensorQuantOverrides' convert) are the converted ones when it is a receiving node.
  std::string node;
  size_t node_index = SIZE_MAX;  // biases: index of that node in the annotated graph
  size_t order = 0;  // marking order (ORT's dict insertion order)
  // The tensor's float type (Float or Float16): its scale is computed and written in it, as ORT does.
  DType float_type = DType::Float;
};

struct QuantPlan {
  std::map<std::string, TensorSpec> tensors;
  std::vector<std::string> marked_order;       // tensor names in marking order
  // ORT keeps biases apart (bias_to_quantize, in this order) from the other tensors (tensors_to_quantize). A name
  // in both is written once, as an ordinary constant that every reader, the bias's node included, reads; its bias
  // entry (in `shadowed_biases`, not in `tensors`) only still enlarges the weight's scale, as ORT's does.
  std::vector<std::string> bias_order;
  std::set<std::string> bias_names;  // bias_order's names
  std::map<std::string, TensorSpec> shadowed_biases;
  std::vector<size_t> removed_nodes;           // Relu/Clip folded into their producer's output range
  // Output renames applied by node removal: upstream tensor -> removed node's output.
  std::unordered_map<std::string, std::string> renamed;
  // Biases copied for a second consumer (ORT's `<bias><n>`): copy -> the model's original initializer.
  std::unordered_map<std::string, std::string> duplicated;
  std::set<size_t> quantized_nodes;            // nodes whose op type is quantized

  bool is_marked(const std::string& t) const { return tensors.count(t) > 0; }
  // ORT's tensors_to_quantize: a new entry, or (`replace`: a per-channel weight, quantize_weight_tensor_per_channel;
  // an output sharing an input's parameters) one that overwrites an earlier entry in place. Returns the bias entry
  // this one shadows, if any.
  std::optional<TensorSpec> mark(const std::string& t, TensorSpec s, bool replace = false);
  // ORT's bias_to_quantize (quantize_bias_tensor, `t` already copied when it was a bias of another node).
  void mark_bias(const std::string& t, TensorSpec s);
  // Whether ORT's bias_to_quantize has `t` (a second node's bias is then copied).
  bool is_bias(const std::string& t) const { return bias_names.count(t) > 0; }
};

// Final parameters of every quantized tensor (activations from ranges, weights from data, biases from
// input × weight scales).
using ParamMap = std::unordered_map<std::string, exec::QuantParams>;

}  // namespace oq::quant
