#include "exec/optimize.h"

#include <unordered_map>

#include "exec/layout.h"
#include "ir/passes/passes.h"

namespace oq::exec {

std::optional<InferenceGraph> optimize_for_inference(const ir::Model& m, int channel_block) {
  InferenceGraph r{m, {}, {}, {}, 0};
  namespace P = ir::passes;
  r.rewrites += P::fold_constants(r.model).total();  // e.g. Clip bounds given by Constant nodes
  r.rewrites += P::remove_identity(r.model);
  r.rewrites += P::fold_batchnorm(r.model);
  r.rewrites += P::fuse_pad_into_conv(r.model);
  r.rewrites += P::fuse_conv_activation(r.model);
  r.rewrites += P::fuse_fake_quant(r.model);
  r.rewrites += to_blocked_layout(r.model, channel_block < 0 ? native_channel_block() : channel_block, &r.blocked);
  if (r.rewrites == 0) return std::nullopt;

  const ir::Graph& a = m.graph;
  const ir::Graph& b = r.model.graph;
  std::unordered_map<std::string, const void*> now;  // name -> initializer data (null: produced by a node)
  for (const auto& i : b.initializers) now[i.name] = i.tensor.raw();
  for (const auto& n : b.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty()) now.emplace(o, nullptr);
  for (const auto& i : a.initializers) {
    auto it = now.find(i.name);
    if (it == now.end() || it->second != i.tensor.raw()) r.touched.insert(i.name);
  }
  std::erase_if(r.blocked, [&](const auto& e) {  // converted back by a node
    if (!now.count(e.first)) return false;
    r.converted_back.insert(e.first);
    return true;
  });
  // A node output gone, or folded into a constant (no node produces it any more: observers would not see it).
  for (const auto& n : a.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty() && (!now.count(o) || now.at(o) != nullptr) && !r.blocked.count(o)) r.touched.insert(o);
  return r;
}

}  // namespace oq::exec
