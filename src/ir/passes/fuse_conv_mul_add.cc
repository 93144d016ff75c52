// Conv followed by a Mul / Add with a per-output-channel or scalar constant, folded into the Conv's weight / bias:
// ONNX Runtime's ConvMulFusion and ConvAddFusion, which quant_pre_process runs (its optimizer at the basic level),
// with their conditions and names as ORT 1.32 shows them (probed with quant_pre_process; docs/conformance.md):
//  - the Conv (default domain; ConvTranspose is left alone) has a constant float weight, a constant float bias of
//    shape [C_out] or none; its output is read by exactly one node (the bodies of If / Loop / Scan count as
//    readers) and is not a graph output;
//  - that node is a Mul / Add whose first input is the Conv's output and whose second input is a constant float
//    initializer (not one listed as an overridable graph input) of shape
//      Mul: [] (a scalar), or rank(W) - 1 with C_out on axis 0 ([C,1,1]), or rank(W) with C_out on axis 1
//           ([1,C,1,1]), every other dim 1;
//      Add: the same but not a scalar ([1] is refused by both);
//    a constant on the left (Mul(k, conv)) is not fused;
//  - Mul: W'[o] = W[o] * k[o], B' = B * k; new initializers "ConvMulFusion_W_<W>" and (only with a bias)
//    "ConvMulFusion_Mul_B_<k>", named in that order. Add: B' = B + k named "ConvAddFusion_B_<B>", or without a
//    bias k reshaped to [C] named "ConvAddFusion_Add_B_<k>". A name already used (or generated before) gets ORT's
//    "<base>_token_<n>" (n counting up from 0 per call);
//  - the Conv takes the Mul / Add's output name; initializers nothing reads any more are dropped.
// One call is one round of ORT's rule loop: the Convs in ORT's node order (siblings in reverse file order), each
// trying an Add fusion, then a Mul fusion; preprocess() repeats it, with BatchNormalization folding and the no-op
// removals, until nothing changes, so chains (Conv -> Mul -> BN -> Add ...) fold in chain order and colliding names
// get their _token_<n> in ORT's order.
#include <algorithm>
#include <unordered_set>

#include "ir/passes/ort_order.h"
#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

bool is_float(const Tensor* t) { return t && t->dtype() == DType::Float; }

// Channel axis of a Mul / Add constant against a weight of rank `wr` with `c` output channels: 0 for
// [C,1,...] (rank wr - 1), 1 for [1,C,1,...] (rank wr); -1 when the shape does not qualify.
int channel_axis(const Tensor& k, int wr, int64_t c) {
  int axis;
  if (k.rank() == wr - 1)
    axis = 0;
  else if (k.rank() == wr)
    axis = 1;
  else
    return -1;
  for (int i = 0; i < k.rank(); ++i)
    if (k.dim(i) != (i == axis ? c : 1)) return -1;
  return axis;
}

// Tries to fuse the single reader of Conv `ci`'s output into it. True when the graph changed.
bool fuse_one(Graph& g, LazyGraphIndex& index, size_t ci, const std::string& op,
              const std::unordered_set<std::string>& sub, OrtNames& names, bool ovr) {
  Node& conv = g.nodes[ci];
  if (conv.op_type != "Conv" || !conv.is_default_domain() || conv.outputs.size() != 1 || conv.inputs.size() < 2)
    return false;
  const std::string out = conv.outputs[0];
  if (out.empty() || g.is_graph_output(out) || sub.count(out)) return false;
  const GraphIndex& idx = index.get();
  auto cit = idx.consumers.find(out);
  if (cit == idx.consumers.end() || cit->second.size() != 1) return false;
  const size_t ni = cit->second[0];
  if (ni <= ci) return false;  // nodes are in topological order
  const Node& next = g.nodes[ni];
  const bool mul = op == "Mul";
  if (next.op_type != op || !next.is_default_domain() || next.inputs.size() != 2 ||
      next.outputs.size() != 1 || next.input(0) != out || next.input(1) == out)
    return false;
  const Tensor* wp = constant_value(g, conv.input(1), ovr);
  const Tensor* kp = constant_value(g, next.input(1), ovr);
  if (!is_float(wp) || !is_float(kp) || wp->rank() < 3) return false;
  const int64_t c = wp->dim(0);
  const bool has_bias = conv.inputs.size() >= 3 && !conv.input(2).empty();
  const Tensor* bp = has_bias ? constant_value(g, conv.input(2), ovr) : nullptr;
  if (has_bias && (!is_float(bp) || bp->rank() != 1 || bp->dim(0) != c)) return false;
  const bool scalar = kp->rank() == 0;
  if (scalar ? !mul : channel_axis(*kp, wp->rank(), c) < 0) return false;
  // Copies sharing the data: adding initializers below may move the vector the pointers point into.
  const Tensor w = *wp, k = *kp, b = has_bias ? *bp : Tensor();
  const std::string wname0 = conv.input(1), bname0 = has_bias ? conv.input(2) : std::string(), kname = next.input(1);
  const float* kv = k.data<float>();
  auto kat = [&](int64_t o) { return kv[scalar ? 0 : o]; };

  std::string wname = wname0, bname = bname0;
  if (mul) {
    // ORT names the weight first, then the bias (visible in the _token_<n> numbers of colliding names).
    Tensor nw = w.clone();
    const int64_t inner = w.numel() / c;
    for (int64_t o = 0; o < c; ++o)
      for (int64_t j = 0; j < inner; ++j) nw.data<float>()[o * inner + j] = w.data<float>()[o * inner + j] * kat(o);
    wname = names.make("ConvMulFusion_W_" + wname0);
    g.add_initializer(wname, std::move(nw));
    if (has_bias) {
      Tensor nb = b.clone();
      for (int64_t o = 0; o < c; ++o) nb.data<float>()[o] = b.data<float>()[o] * kat(o);
      bname = names.make("ConvMulFusion_Mul_B_" + kname);
      g.add_initializer(bname, std::move(nb));
    }
  } else {
    Tensor nb(DType::Float, {c});
    for (int64_t o = 0; o < c; ++o) nb.data<float>()[o] = has_bias ? b.data<float>()[o] + kat(o) : kat(o);
    bname = names.make(has_bias ? "ConvAddFusion_B_" + bname0 : "ConvAddFusion_Add_B_" + kname);
    g.add_initializer(bname, std::move(nb));
  }
  Node& cv = g.nodes[ci];
  cv.inputs.resize(has_bias || !mul ? 3 : 2);
  cv.inputs[1] = wname;
  if (has_bias || !mul) cv.inputs[2] = bname;
  cv.outputs[0] = g.nodes[ni].outputs[0];
  std::erase_if(g.value_info, [&](const ValueInfo& v) { return v.name == out; });
  g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(ni));
  return true;
}

}  // namespace

size_t fuse_conv_mul_add(Model& m) {
  Graph& g = m.graph;
  const auto sub = subgraph_refs(g);
  OrtNames names(g);
  const bool ovr = inputs_overridable(m);
  size_t fused = 0;
  LazyGraphIndex index(g);
  // One round of ORT's rule loop: each Conv in ORT's order tries ConvAddFusion, then ConvMulFusion (on the reader
  // the Add fusion may have left); the rest of a chain folds in the next rounds (preprocess() repeats the passes
  // until nothing changes), so colliding names get their _token_<n> in ORT's order.
  for (const std::string& out : ort_node_order(g, "Conv")) {
    const GraphIndex& idx = index.get();
    auto pit = idx.producer.find(out);
    if (out.empty() || pit == idx.producer.end() || g.nodes[pit->second].op_type != "Conv" ||
        g.nodes[pit->second].outputs[0] != out)
      continue;
    const size_t ci = pit->second;
    // A fusion erases the reader (after the Conv in node order), so ci stays the Conv's index.
    for (const char* op : {"Add", "Mul"})
      if (fuse_one(g, index, ci, op, sub, names, ovr)) {
        index.invalidate();
        ++fused;
      }
  }
  if (fused) {
    // Replaced weights, biases and Mul / Add constants that nothing reads any more.
    drop_unused_initializers(g, sub);
  }
  return fused;
}

}  // namespace oq::ir::passes
