#include "exec/layout.h"

#include <algorithm>
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
        if (n.inputs[0] == t && conv_channels(n) > 0)
          return g.find_initializer(n.input(1))->tensor.dim(1) * n.attr_int("group", 1);
      }
    return -1;
  }

  // Output channels of a Conv this pass can run blocked, or -1.
  int64_t conv_channels(const ir::Node& n) const {
    if (n.op_type != "Conv" || !n.is_default_domain() || n.outputs.size() != 1 || n.input(0).empty()) return -1;
    const ir::Initializer* w = g.find_initializer(n.input(1));
    if (!w || w->tensor.dtype() != DType::Float || w->tensor.rank() != 4) return -1;
    if (!n.input(2).empty()) {
      const ir::Initializer* b = g.find_initializer(n.input(2));
      if (!b || b->tensor.dtype() != DType::Float) return -1;
    }
    const int64_t group = n.attr_int("group", 1), cout = w->tensor.dim(0), cin = w->tensor.dim(1) * group;
    const bool depthwise = group > 1 && group == cin && group == cout && w->tensor.dim(1) == 1;
    if ((group != 1 && !depthwise) || cout < block) return -1;
    return cout;
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
    return false;
  }

  bool candidate(const ir::Node& n) const {
    if (!n.is_default_domain() || n.outputs.size() != 1) return false;
    for (const auto& t : n.inputs)
      if (sub.count(t)) return false;
    return n.op_type == "Conv" || (n.op_type == "Add" && n.inputs.size() == 2) ||
           (n.op_type == "Relu" && n.inputs.size() == 1);
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
          const int64_t cin = g.find_initializer(n.input(1))->tensor.dim(1) * n.attr_int("group", 1);
          if (cin > kPlainSrcMaxChannels) {
            to_blocked(x);
            src_blocked = true;
          }
        }
        if (src_blocked) n.inputs[0] = blocked_name(x);
        n.set_attr_int(kBlockAttr, block);
        n.set_attr_int(kBlockedSrcAttr, src_blocked ? 1 : 0);
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
      if (r.in_set[k]) {
        const std::string& y = m.graph.nodes[k].outputs[0];
        (*aliases)[y] = BlockedAlias{y + kBlockedSuffix, c};
      }
  return r.rewrite();
}

}  // namespace oq::exec
