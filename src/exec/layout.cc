#include "exec/layout.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "ir/passes/pass_util.h"

namespace oq::exec {

int native_channel_block() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return 16;
  if (__builtin_cpu_supports("avx2")) return 8;
  return 0;
}

namespace {

// Conv inputs with at most this many channels are read as NCHW (oneDNN's first-layer kernels take a plain
// source with a blocked destination); wider ones are converted to blocks.
constexpr int64_t kPlainSrcMaxChannels = 4;

struct Rewriter {
  ir::Model& m;
  ir::Graph& g;
  const int block;
  const ir::GraphIndex idx;
  const std::unordered_set<std::string> sub;
  std::vector<char> in_set;                      // node index -> blocked
  std::unordered_map<size_t, int64_t> channels;  // blocked node index -> output channels

  Rewriter(ir::Model& model, int b)
      : m(model), g(model.graph), block(b), idx(model.graph), sub(ir::passes::detail::subgraph_refs(model.graph)),
        in_set(model.graph.nodes.size(), 0) {}

  const ir::Node* producer(const std::string& t) const {
    auto it = idx.producer.find(t);
    return it == idx.producer.end() ? nullptr : &g.nodes[it->second];
  }
  bool blocked_tensor(const std::string& t) const {
    auto it = idx.producer.find(t);
    return it != idx.producer.end() && in_set[it->second];
  }
  int64_t tensor_channels(const std::string& t) const { return channels.at(idx.producer.at(t)); }

  // Channels of a 4-D NCHW tensor when known: from its declared shape, or as the input of a convertible Conv
  // (input channels of its weight). -1 otherwise.
  int64_t plain_channels(const std::string& t) const {
    if (const ir::ValueInfo* vi = g.find_value_info(t)) {
      auto s = vi->static_shape();
      if (s && s->size() == 4 && (*s)[1] > 0) return (*s)[1];
    }
    auto c = idx.consumers.find(t);
    if (c != idx.consumers.end())
      for (size_t u : c->second) {
        const ir::Node& n = g.nodes[u];
        if (n.inputs[0] == t && conv_channels(n) > 0) return conv_in_channels(n);
      }
    return -1;
  }

  // Shape of a float tensor known before any run: a float initializer, or a DequantizeLinear of initializers
  // (a QDQ model's weights and biases; the executor folds it into a constant when it builds its plan).
  std::optional<Shape> constant_shape(const std::string& t) const {
    if (t.empty()) return std::nullopt;
    if (const ir::Initializer* i = g.find_initializer(t))
      return i->tensor.dtype() == DType::Float ? std::optional<Shape>(i->tensor.shape()) : std::nullopt;
    const ir::Node* p = producer(t);
    if (!p || p->op_type != "DequantizeLinear" || !p->is_default_domain() || p->outputs[0] != t) return std::nullopt;
    for (const auto& in : p->inputs)
      if (!in.empty() && !g.find_initializer(in)) return std::nullopt;
    return g.find_initializer(p->input(0))->tensor.shape();
  }

  // Output channels of a Conv this pass can run blocked, or -1.
  int64_t conv_channels(const ir::Node& n) const {
    if (n.op_type != "Conv" || !n.is_default_domain() || n.outputs.size() != 1 || n.input(0).empty()) return -1;
    const std::optional<Shape> w = constant_shape(n.input(1));
    if (!w || w->size() != 4) return -1;
    if (!n.input(2).empty() && !constant_shape(n.input(2))) return -1;
    const int64_t group = n.attr_int("group", 1), cout = (*w)[0], cin = (*w)[1] * group;
    const bool depthwise = group > 1 && group == cin && group == cout && (*w)[1] == 1;
    if ((group != 1 && !depthwise) || cout < block) return -1;
    return cout;
  }
  int64_t conv_in_channels(const ir::Node& n) const {
    return (*constant_shape(n.input(1)))[1] * n.attr_int("group", 1);
  }

  // A per-tensor QuantizeLinear/DequantizeLinear (one scale and zero point, given as initializers): elementwise,
  // so it runs on blocked tensors as it is. Zero padding stays zero across a Q -> DQ pair (0 quantizes to the
  // zero point, which dequantizes to 0); the quantized tensor between them has the zero point as padding and
  // never leaves the chain.
  bool per_tensor_qdq(const ir::Node& n) const {
    if (n.inputs.size() < 2 || n.outputs.size() != 1) return false;
    for (size_t i = 1; i < n.inputs.size(); ++i) {
      if (n.inputs[i].empty()) continue;
      const ir::Initializer* c = g.find_initializer(n.inputs[i]);
      if (!c || c->tensor.numel() != 1) return false;
    }
    return !n.has_attr("block_size") || n.attr_int("block_size", 0) == 0;
  }

  // Whether node k may stay blocked given the current set.
  bool eligible(size_t k) {
    const ir::Node& n = g.nodes[k];
    if (n.op_type == "Conv") {
      if (blocked_tensor(n.input(0))) return true;
      auto c = idx.consumers.find(n.outputs[0]);
      if (c != idx.consumers.end())
        for (size_t u : c->second)
          if (in_set[u]) return true;
      return false;  // alone: its own kernels (sgemm, depthwise, oneDNN) do as well without two conversions
    }
    if (n.op_type == "Add") {
      // At least one blocked input; a plain one is converted when its channel count is known to be the same
      // (a residual branch that starts outside the chain, e.g. after a MaxPool).
      if (n.inputs.size() != 2 || (!blocked_tensor(n.inputs[0]) && !blocked_tensor(n.inputs[1]))) return false;
      int64_t c[2];
      for (int i = 0; i < 2; ++i) {
        const std::string& t = n.inputs[i];
        c[i] = blocked_tensor(t) ? tensor_channels(t) : plain_channels(t);
      }
      if (c[0] <= 0 || c[0] != c[1]) return false;
      channels[k] = c[0];
      return true;
    }
    if (n.op_type == "Relu") {
      if (!blocked_tensor(n.input(0))) return false;
      channels[k] = tensor_channels(n.input(0));
      return true;
    }
    if (n.op_type == "QuantizeLinear") {  // only when every reader is a DequantizeLinear of the chain
      if (!blocked_tensor(n.input(0)) || g.is_graph_output(n.outputs[0]) || sub.count(n.outputs[0])) return false;
      auto c = idx.consumers.find(n.outputs[0]);
      if (c == idx.consumers.end()) return false;
      for (size_t u : c->second)
        if (!in_set[u] || g.nodes[u].op_type != "DequantizeLinear") return false;
      channels[k] = tensor_channels(n.input(0));
      return true;
    }
    if (n.op_type == "DequantizeLinear") {
      const ir::Node* p = producer(n.input(0));
      if (!p || p->op_type != "QuantizeLinear" || !blocked_tensor(n.input(0))) return false;
      channels[k] = tensor_channels(n.input(0));
      return true;
    }
    return false;
  }

  bool candidate(const ir::Node& n) const {
    if (!n.is_default_domain() || n.outputs.size() != 1) return false;
    for (const auto& t : n.inputs)
      if (sub.count(t)) return false;
    if ((n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear") && !per_tensor_qdq(n)) return false;
    return n.op_type == "Conv" || (n.op_type == "Add" && n.inputs.size() == 2) ||
           (n.op_type == "Relu" && n.inputs.size() == 1) || n.op_type == "QuantizeLinear" ||
           n.op_type == "DequantizeLinear";
  }

  void select() {
    for (size_t k = 0; k < g.nodes.size(); ++k) {
      const ir::Node& n = g.nodes[k];
      if (!candidate(n)) continue;
      if (n.op_type == "Conv") {
        int64_t c = conv_channels(n);
        if (c < 0) continue;
        channels[k] = c;
      }
      in_set[k] = 1;
    }
    // Shrink to a fixed point: membership only ever goes from 1 to 0, so this ends.
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t k : ir::topological_order(g))
        if (in_set[k] && !eligible(k)) {
          in_set[k] = 0;
          changed = true;
        }
    }
  }

  size_t rewrite() {
    std::vector<ir::Node> out;
    std::unordered_set<std::string> to_blocked_done;
    size_t converted = 0;
    auto blocked_name = [](const std::string& t) { return t + kBlockedSuffix; };
    auto to_blocked = [&](const std::string& x) {  // once per plain tensor, before its first blocked reader
      if (!to_blocked_done.insert(x).second) return;
      ir::Node r;
      r.name = x + "_oq_to_blocked";
      r.op_type = kToBlockedOp;
      r.inputs = {x};
      r.outputs = {blocked_name(x)};
      r.set_attr_int(kBlockAttr, block);
      out.push_back(std::move(r));
    };
    for (size_t k : ir::topological_order(g)) {
      ir::Node n = g.nodes[k];
      if (!in_set[k]) {
        out.push_back(std::move(n));
        continue;
      }
      ++converted;
      if (n.op_type == "Conv") {
        const std::string& x = n.inputs[0];
        bool src_blocked = blocked_tensor(x);
        if (!src_blocked) {
          if (conv_in_channels(n) > kPlainSrcMaxChannels) {
            to_blocked(x);
            src_blocked = true;
          }
        }
        if (src_blocked) n.inputs[0] = blocked_name(x);
        n.set_attr_int(kBlockAttr, block);
        n.set_attr_int(kBlockedSrcAttr, src_blocked ? 1 : 0);
      } else if (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear") {
        n.inputs[0] = blocked_name(n.inputs[0]);  // scale and zero point stay as they are
      } else {
        for (auto& t : n.inputs) {
          if (!blocked_tensor(t)) to_blocked(t);  // an Add's plain input (see eligible())
          t = blocked_name(t);
        }
      }
      const std::string y = n.outputs[0];
      n.outputs[0] = blocked_name(y);
      out.push_back(std::move(n));
      // Read outside the chain, or a graph output: convert back under the original name.
      bool outside = g.is_graph_output(y) || sub.count(y);
      auto c = idx.consumers.find(y);
      if (c != idx.consumers.end())
        for (size_t u : c->second) outside = outside || !in_set[u];
      if (outside) {
        ir::Node r;
        r.name = y + "_oq_from_blocked";
        r.op_type = kFromBlockedOp;
        r.inputs = {blocked_name(y)};
        r.outputs = {y};
        r.set_attr_int(kBlockAttr, block);
        r.set_attr_int("channels", channels.at(k));
        out.push_back(std::move(r));
      }
    }
    g.nodes = std::move(out);
    return converted;
  }
};

}  // namespace

size_t to_blocked_layout(ir::Model& m, int block, std::unordered_map<std::string, BlockedAlias>* aliases) {
  if (block != 8 && block != 16) return 0;
  Rewriter r(m, block);
  r.select();
  if (std::none_of(r.in_set.begin(), r.in_set.end(), [](char c) { return c != 0; })) return 0;
  if (aliases)
    for (const auto& [k, c] : r.channels)
      if (r.in_set[k] && m.graph.nodes[k].op_type != "QuantizeLinear") {  // float tensors only
        const std::string& y = m.graph.nodes[k].outputs[0];
        (*aliases)[y] = BlockedAlias{y + kBlockedSuffix, c};
      }
  return r.rewrite();
}

}  // namespace oq::exec
