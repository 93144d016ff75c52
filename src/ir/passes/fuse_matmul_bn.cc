// MatMul -> BatchNormalization folded into one Gemm, as ONNX Runtime's MatmulBNFusion rule (quant_pre_process)
// does it; the Keras export of Dense(use_bias=False) -> BatchNormalization. Conditions, found by running ORT
// 1.32's quant_pre_process on small models (tests/python/test_ort_fusions_more.py):
//  - MatMul (default domain) with a constant float 2-D B [K, N] and an A of rank 2 (both tools know the rank from
//    their shape inference); its output read by exactly one node and not a graph output;
//  - then zero or more Reshape nodes, each read by exactly one node (a Transpose, Flatten or anything else in
//    between: not fused); not in ORT: the last one's constant shape must be [M, N, 1...] (BN channels = columns;
//    ORT fuses any Reshape, computing something else when the channels are not the MatMul's columns);
//  - then a BatchNormalization (inference: training_mode 0, no extra output used) with constant float rank-1
//    scale, B, mean and var of N values; epsilon from the attribute, 1e-5 when absent.
// s = scale / sqrt(var + eps) (float32, in ORT's order), B' = B * s along N, C = bias - mean * s.
// New initializers "MatMulBnFusion_GemmB_<B>" and "MatMulBnFusion_GemmBias", the Gemm node
// "MatMulBnFusion_Gemm" (alpha 1, beta 1, no transposes; ORT's generated names, `_token_<n>` on collision, visited
// in ORT's node order). The Gemm writes the MatMul's output; the BN's output is then written by the node before the
// BN (the Gemm itself or the last Reshape). MatMul and BN go; initializers nothing reads any more are dropped.
#include <algorithm>
#include <cmath>

#include "ir/passes/infer_shapes.h"
#include "ir/passes/ort_order.h"
#include "ir/passes/pass_util.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

namespace {

const Tensor* float_vec(const Graph& g, const std::string& n, int64_t len, bool ovr) {
  const Tensor* t = constant_value(g, n, ovr);
  return t && t->dtype() == DType::Float && t->rank() == 1 && t->dim(0) == len ? t : nullptr;
}

bool fuse_one(Model& m, size_t mi, const std::unordered_set<std::string>& sub, OrtNames& names,
              const ShapeInfo& shapes) {
  Graph& g = m.graph;
  const bool ovr = inputs_overridable(m);
  GraphIndex idx(g);
  const Node& mm = g.nodes[mi];
  if (!mm.is_default_domain() || mm.inputs.size() != 2 || mm.outputs.size() != 1) return false;
  const Tensor* w = constant_value(g, mm.input(1), ovr);
  if (!w || w->dtype() != DType::Float || w->rank() != 2 || shapes.rank(mm.input(0)) != 2) return false;
  const int64_t k = w->dim(0), n = w->dim(1);
  // MatMul -> Reshape* -> BatchNormalization, every link read once.
  std::vector<size_t> path;
  auto r = sole_consumer(g, idx, sub, mm.outputs[0]);
  while (r && g.nodes[*r].op_type == "Reshape" && g.nodes[*r].is_default_domain() &&
         g.nodes[*r].input(0) == g.nodes[path.empty() ? mi : path.back()].outputs[0] && g.nodes[*r].outputs.size() == 1) {
    path.push_back(*r);
    r = sole_consumer(g, idx, sub, g.nodes[*r].outputs[0]);
  }
  if (!r) return false;
  const Node& bn = g.nodes[*r];
  const std::string& feeds = g.nodes[path.empty() ? mi : path.back()].outputs[0];
  if (bn.op_type != "BatchNormalization" || !bn.is_default_domain() || bn.input(0) != feeds || bn.inputs.size() != 5 ||
      bn.outputs.empty() || bn.outputs[0].empty() || bn.attr_int("training_mode", 0) != 0)
    return false;
  for (size_t i = 1; i < bn.outputs.size(); ++i)
    if (!bn.outputs[i].empty()) return false;
  if (!path.empty()) {
    // Not in ORT: the BN's channels must be the MatMul's columns, i.e. the last Reshape gives [M, N, 1...] (ORT
    // fuses whatever the shape, which changes what the model computes when the channels are something else).
    const Tensor* shp = constant_value(g, g.nodes[path.back()].input(1), ovr);
    if (!shp || shp->dtype() != DType::Int64 || shp->rank() != 1 || shp->numel() < 2) return false;
    const auto d = shp->to_int64s();
    if (d[1] != n || std::any_of(d.begin() + 2, d.end(), [](int64_t v) { return v != 1; })) return false;
  }
  const Tensor *scale = float_vec(g, bn.input(1), n, ovr), *bias = float_vec(g, bn.input(2), n, ovr),
               *mean = float_vec(g, bn.input(3), n, ovr), *var = float_vec(g, bn.input(4), n, ovr);
  if (!scale || !bias || !mean || !var) return false;
  const float eps = bn.attr_float("epsilon", 1e-5f);
  Tensor nw = w->clone(), nb(DType::Float, {n});
  std::vector<float> s(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    s[j] = scale->data<float>()[j] / std::sqrt(var->data<float>()[j] + eps);
    nb.data<float>()[j] = bias->data<float>()[j] - mean->data<float>()[j] * s[j];
  }
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j) nw.data<float>()[i * n + j] *= s[j];
  const std::string wname = names.make("MatMulBnFusion_GemmB_" + mm.input(1));
  const std::string bname = names.make("MatMulBnFusion_GemmBias");
  Node gemm;
  gemm.name = names.make("MatMulBnFusion_Gemm");
  gemm.op_type = "Gemm";
  gemm.inputs = {mm.inputs[0], wname, bname};
  gemm.outputs = mm.outputs;
  gemm.set_attr_float("alpha", 1.0f);
  gemm.set_attr_float("beta", 1.0f);
  gemm.set_attr_int("transA", 0);
  gemm.set_attr_int("transB", 0);
  const std::string bn_out = bn.outputs[0], bn_in = bn.inputs[0];
  const size_t bi = *r;
  g.add_initializer(wname, std::move(nw));
  g.add_initializer(bname, std::move(nb));
  g.nodes[mi] = std::move(gemm);
  // The BN's reader-facing name goes to the node before it.
  g.nodes[path.empty() ? mi : path.back()].outputs[0] = bn_out;
  std::erase_if(g.value_info, [&](const ValueInfo& v) { return v.name == bn_in; });
  g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(bi));
  return true;
}

}  // namespace

size_t fuse_matmul_bn(Model& m) {
  Graph& g = m.graph;
  if (!has_op(g, {"MatMul"}) || !has_op(g, {"BatchNormalization"})) return 0;
  const auto sub = subgraph_refs(g);
  OrtNames names(g);
  // A's rank: ORT knows it from the shape inference quant_pre_process runs first (fusions keep the ranks).
  const ShapeInfo shapes = infer_shapes(m);
  size_t fused = 0;
  for (const std::string& out : ort_node_order(g, "MatMul")) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (g.nodes[i].op_type != "MatMul" || g.nodes[i].outputs.empty() || g.nodes[i].outputs[0] != out) continue;
      if (fuse_one(m, i, sub, names, shapes)) ++fused;
      break;
    }
  }
  if (fused) drop_unused_initializers(g, sub);
  return fused;
}

}  // namespace oq::ir::passes
