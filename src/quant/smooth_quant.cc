#include "quant/smooth_quant.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/log.h"
#include "exec/session.h"
#include "ir/passes/pass_util.h"
#include "quant/graph_util.h"

namespace oq::quant {

namespace {

// Per-channel constant of shape [C, 1, ...] (rank - 1 - axis trailing ones) holding v[j].
Tensor channel_tensor(const std::vector<double>& v, int64_t rank, int axis) {
  Shape s{static_cast<int64_t>(v.size())};
  for (int64_t i = axis + 1; i < rank; ++i) s.push_back(1);
  Tensor t(DType::Float, s);
  for (size_t j = 0; j < v.size(); ++j) t.data<float>()[j] = static_cast<float>(v[j]);
  return t;
}

bool matches(const ir::Initializer* i, int64_t c) { return i && i->tensor.numel() == c; }

// Divides the output channels (axis `ax` of a rank-`rank` tensor) of node p's output by s, if p allows it.
bool fold_into(ir::Graph& g, ir::Node& p, const std::vector<double>& s, int64_t rank, int ax) {
  const int64_t C = static_cast<int64_t>(s.size());
  const std::string& op = p.op_type;
  if (!p.is_default_domain()) return false;
  auto bias_ok = [&](size_t idx) {
    return p.input(idx).empty() || matches(private_constant(g, p.input(idx)), C);
  };
  if ((op == "Conv" || op == "ConvTranspose") && ax == 1) {
    ir::Initializer* w = private_constant(g, p.input(1));
    if (!w || w->tensor.rank() < 3 || !bias_ok(2)) return false;
    int waxis = op == "Conv" ? 0 : 1;
    if (op == "ConvTranspose" && p.attr_int("group", 1) != 1) return false;
    if (w->tensor.dim(waxis) != C) return false;
    scale_along(w->tensor, waxis, s, true);
    if (!p.input(2).empty()) {
      Tensor& b = g.find_initializer(p.input(2))->tensor;
      b = b.reshaped({C});
      scale_along(b, 0, s, true);
    }
    return true;
  }
  if ((op == "Gemm" || op == "MatMul") && ax == rank - 1) {
    ir::Initializer* w = private_constant(g, p.input(1));
    if (!w || w->tensor.rank() != 2) return false;
    if (op == "Gemm" && p.attr_int("transA", 0) != 0) return false;
    int waxis = op == "Gemm" && p.attr_int("transB", 0) != 0 ? 0 : 1;
    if (w->tensor.dim(waxis) != C) return false;
    if (op == "Gemm" && !p.input(2).empty()) {
      ir::Initializer* b = private_constant(g, p.input(2));
      if (!matches(b, C) || b->tensor.dim(b->tensor.rank() - 1) != C) return false;
    }
    scale_along(w->tensor, waxis, s, true);
    if (op == "Gemm" && !p.input(2).empty()) {
      Tensor& b = g.find_initializer(p.input(2))->tensor;
      scale_along(b, static_cast<int>(b.rank()) - 1, s, true);
    }
    return true;
  }
  if ((op == "BatchNormalization" || op == "InstanceNormalization") && ax == 1) {
    size_t si = 1, bi = 2;
    if (!matches(private_constant(g, p.input(si)), C) || !matches(private_constant(g, p.input(bi)), C)) return false;
    if (op == "BatchNormalization" && p.outputs.size() > 1) return false;
    for (size_t i : {si, bi}) {
      Tensor& t = g.find_initializer(p.input(i))->tensor;
      t = t.reshaped({C});
      scale_along(t, 0, s, true);
    }
    return true;
  }
  if (op == "LayerNormalization" && ax == rank - 1) {
    int64_t a = p.attr_int("axis", -1);
    if (a != -1 && a != rank - 1) return false;
    if (!matches(private_constant(g, p.input(1)), C) || !bias_ok(2)) return false;
    for (size_t i : {size_t{1}, size_t{2}}) {
      if (p.input(i).empty()) continue;
      Tensor& t = g.find_initializer(p.input(i))->tensor;
      scale_along(t, static_cast<int>(t.rank()) - 1, s, true);
    }
    return true;
  }
  if (op == "Mul") {
    for (size_t ci : {size_t{0}, size_t{1}}) {
      ir::Initializer* c = private_constant(g, p.input(ci));
      if (!c || c->tensor.numel() != 1 || c->tensor.rank() > rank) continue;
      float v = c->tensor.data<float>()[0];
      std::vector<double> vals(s.size());
      for (size_t j = 0; j < s.size(); ++j) vals[j] = v / s[j];
      c->tensor = channel_tensor(vals, rank, ax);
      return true;
    }
  }
  return false;
}

// Writes x / s as a new node read by the targets instead of x (named `<tag>_...`): a depthwise 1x1 Conv (group C,
// weight 1/s as [C,1,1,1], no bias) when `as_conv` and x is 4-D with its channels on axis 1, else Mul(x, 1/s)
// with 1/s as [C, 1, ...] (recorded in rep.inv_scales for its per-channel quantization). True for a Conv.
bool insert_division(ir::Graph& g, const std::string& x, const std::vector<SmoothTarget>& ts,
                     const std::vector<double>& s, int64_t rank, int ax, bool as_conv, const std::string& tag,
                     SmoothReport& rep) {
  const int64_t C = static_cast<int64_t>(s.size());
  std::vector<double> inv(s.size());
  for (size_t j = 0; j < s.size(); ++j) inv[j] = 1.0 / s[j];
  const bool conv = as_conv && rank == 4 && ax == 1;
  ir::Node n;
  if (conv) {
    g.add_initializer(tag + "_inv_scale", channel_tensor(inv, 4, 0));  // [C, 1, 1, 1]
    n.op_type = "Conv";
    n.set_attr_int("group", C);
    n.set_attr_ints("kernel_shape", {1, 1});
  } else {
    g.add_initializer(tag + "_inv_scale", channel_tensor(inv, rank, ax));
    rep.inv_scales[tag + "_inv_scale"] = 0;  // shape [C, 1, ...]: channels on the first axis
    n.op_type = "Mul";
  }
  n.name = tag + "_" + n.op_type;
  n.inputs = {x, tag + "_inv_scale"};
  n.outputs = {tag + "_out"};
  for (const auto& t : ts)
    for (auto& in : g.nodes[t.node].inputs)
      if (in == x) in = tag + "_out";
  g.nodes.push_back(std::move(n));
  return conv;
}

}  // namespace

std::vector<SmoothTarget> smooth_targets(const ir::Graph& g, const std::function<bool(const ir::Node&)>& selected) {
  std::vector<SmoothTarget> out;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    if (!n.is_default_domain() || n.inputs.size() < 2 || g.find_initializer(n.input(0))) continue;
    if (selected && !selected(n)) continue;  // kept in float: neither smoothed nor given a division
    const ir::Initializer* w = g.find_initializer(n.input(1));
    if (!w || w->tensor.dtype() != DType::Float || g.is_graph_input(w->name) || tensor_uses(g, w->name) != 1) continue;
    SmoothTarget t{i, n.input(0), w->name, 0};
    if (n.op_type == "Conv") {
      if (n.attr_int("group", 1) != 1 || w->tensor.rank() < 3) continue;
      t.w_axis = 1;
    } else if (n.op_type == "Gemm") {
      if (n.attr_int("transA", 0) != 0 || w->tensor.rank() != 2) continue;
      t.w_axis = n.attr_int("transB", 0) != 0 ? 1 : 0;
    } else if (n.op_type == "MatMul") {
      if (w->tensor.rank() != 2) continue;
      t.w_axis = 0;
    } else {
      continue;
    }
    out.push_back(t);
  }
  return out;
}

ChannelStats measure_channel_absmax(const ir::Model& m, const std::vector<SmoothTarget>& targets,
                                    const data::DatasetPtr& data, int64_t batch_size) {
  ChannelStats st;
  std::map<std::string, bool> conv_axis;  // input -> channel axis 1 (else last)
  for (const auto& t : targets) conv_axis[t.input] = m.graph.nodes[t.node].op_type == "Conv";
  if (conv_axis.empty()) return st;
  // One entry per name before the runs (observers of different names may run at once; see run_ordered).
  std::map<std::string, std::vector<char>> finite_seen;  // per channel: some finite value was seen
  for (const auto& [name, conv] : conv_axis) {
    st.absmax[name];
    st.rank[name] = 0;
    st.nonfinite[name] = 0;
    st.channels_without_finite[name] = 0;
    finite_seen[name];
  }
  auto observer = [&](const std::string& name, const Tensor& v) {
    auto it = conv_axis.find(name);
    if (it == conv_axis.end() || v.dtype() != DType::Float || v.rank() < 2) return;
    const int axis = it->second ? 1 : static_cast<int>(v.rank()) - 1;
    int64_t outer = 1, inner = 1, ch = v.dim(axis);
    for (int i = 0; i < axis; ++i) outer *= v.dim(i);
    for (int i = axis + 1; i < v.rank(); ++i) inner *= v.dim(i);
    auto& mx = st.absmax[name];
    auto& seen = finite_seen[name];
    if (mx.empty()) mx.assign(static_cast<size_t>(ch), 0.f), seen.assign(static_cast<size_t>(ch), 0);
    if (static_cast<int64_t>(mx.size()) != ch)
      fail(ErrorKind::Runtime, "SmoothQuant: tensor '{}' changed its channel count ({} then {})", name, mx.size(), ch);
    st.rank[name] = v.rank();
    // Non-finite values (NaN, ±inf) are left out, as the calibrator's ranges leave them out: an inf would give
    // s = inf (inf weights, x / inf = 0).
    const float* d = v.data<float>();
    int64_t bad = 0;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < ch; ++c) {
        float a = mx[static_cast<size_t>(c)];
        bool any = false;
        for (int64_t i = 0, base = (o * ch + c) * inner; i < inner; ++i) {
          const float x = d[base + i];
          if (!std::isfinite(x)) {
            bad++;
            continue;
          }
          a = std::max(a, std::fabs(x));
          any = true;
        }
        mx[static_cast<size_t>(c)] = a;
        if (any) seen[static_cast<size_t>(c)] = 1;
      }
    st.nonfinite[name] += bad;
  };
  stream_observed(m, data, batch_size, "SmoothQuant statistics", observer);
  for (const auto& [name, seen] : finite_seen) {
    st.channels_without_finite[name] = std::count(seen.begin(), seen.end(), 0);
    if (st.nonfinite[name] > 0)
      OQ_WARN("SmoothQuant: tensor '{}' holds {} NaN or infinite values on the calibration data: its per-channel "
              "maxima leave them out, as the calibrated ranges do{}", name, st.nonfinite[name],
              st.channels_without_finite[name] > 0
                  ? fmt::format(" ({} of its {} channels have no finite value and keep s = 1)",
                                st.channels_without_finite[name], seen.size())
                  : "");
  }
  std::erase_if(st.absmax, [](const auto& kv) { return kv.second.empty(); });
  for (auto* counts : {&st.rank, &st.nonfinite, &st.channels_without_finite})
    std::erase_if(*counts, [&](const auto& kv) { return !st.absmax.count(kv.first); });
  return st;
}

SmoothReport smooth_quant(ir::Model& m, const ChannelStats& stats, const SmoothQuantOptions& o) {
  ir::Graph& g = m.graph;
  SmoothReport rep;
  // Groups of targets by input tensor, ordered by their first target's topological position (not by name).
  struct Group {
    std::string x;
    std::vector<SmoothTarget> ts;
    size_t pos = 0;
    int64_t rank = 0;
    int ax = 0;
    std::vector<double> s;
  };
  std::vector<Group> groups;
  {
    std::vector<size_t> pos(g.nodes.size(), 0);
    auto order = ir::topological_order(g);
    for (size_t i = 0; i < order.size(); ++i) pos[order[i]] = i;
    std::map<std::string, size_t> at;
    for (const auto& t : smooth_targets(g, o.selected)) {
      auto [it, fresh] = at.emplace(t.input, groups.size());
      if (fresh) groups.push_back({t.input, {}, pos[t.node], 0, 0, {}});
      groups[it->second].ts.push_back(t);
      groups[it->second].pos = std::min(groups[it->second].pos, pos[t.node]);
    }
    std::stable_sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) { return a.pos > b.pos; });
  }
  // Downstream groups first: each s is computed, then applied, before the groups upstream of it. A layer whose
  // output carries a downstream 1/s (folded into its output rows) thus gets its own s from the weight it will be
  // quantized with, W[o, j] / s'_o, and the order does not depend on tensor names. (Computing every s from the
  // original weights instead gave 30.4 dB instead of 35.7 dB output SNR on MobileNetV2-0.35, W8A8, alpha 0.5.)
  auto compute = [&](Group& gr) {  // the group's s from the current weights; true: the group is left alone
    auto st = stats.absmax.find(gr.x);
    if (st == stats.absmax.end()) return true;
    gr.rank = stats.rank.at(gr.x);
    auto axis_of = [&](const SmoothTarget& t) {
      return g.nodes[t.node].op_type == "Conv" ? 1 : static_cast<int>(gr.rank) - 1;
    };
    gr.ax = axis_of(gr.ts[0]);
    for (const auto& t : gr.ts)
      if (axis_of(t) != gr.ax) return ++rep.mixed_axes, true;  // e.g. a 4-D input read by a Conv and a MatMul
    const size_t C = st->second.size();
    std::vector<double> wmax(C, 0.0);
    for (const auto& t : gr.ts) {
      const Tensor& w = g.find_initializer(t.weight)->tensor;
      if (w.dim(t.w_axis) != static_cast<int64_t>(C)) return ++rep.mixed_axes, true;
      int64_t outer = 1, inner = 1;
      for (int i = 0; i < t.w_axis; ++i) outer *= w.dim(i);
      for (int i = t.w_axis + 1; i < w.rank(); ++i) inner *= w.dim(i);
      for (int64_t ob = 0; ob < outer; ++ob)
        for (size_t c = 0; c < C; ++c)
          for (int64_t i = 0, base = (ob * static_cast<int64_t>(C) + static_cast<int64_t>(c)) * inner; i < inner; ++i)
            wmax[c] = std::max(wmax[c], static_cast<double>(std::fabs(w.data<float>()[base + i])));
    }
    gr.s.assign(C, 1.0);
    for (size_t j = 0; j < C; ++j) {
      // A channel that is 0 on every calibration sample, or whose weights are all 0, contributes nothing to
      // the targets' outputs: any s keeps the float model, and the formula would give 1e-5 (or a huge s),
      // i.e. a 1/s of 1e5 next to the others in the inserted Mul's constant. s = 1 leaves it alone.
      if (!(st->second[j] > 0) || !(wmax[j] > 0)) {
        rep.neutral_channels++;
        continue;
      }
      double num = std::pow(static_cast<double>(st->second[j]), o.alpha);
      double den = std::max(std::pow(wmax[j], 1.0 - o.alpha), 1e-5);
      gr.s[j] = std::max(num / den, 1e-5);
    }
    return false;
  };
  int counter = 0;
  // DequantizeLinear takes an axis from opset 13 on: below it an inserted Mul's 1/s constant could only be
  // quantized per tensor (one scale for values far apart: worse than no smoothing), so such inputs are skipped.
  const bool per_channel_constants = m.default_opset() >= 13;
  auto apply = [&](const Group& gr) {
    const std::string& x = gr.x;
    const auto& ts = gr.ts;
    const auto& s = gr.s;
    const int64_t rank = gr.rank;
    const int ax = gr.ax;
    // Fold into the producer (through single-consumer Relus) when every consumer of x is a target.
    bool folded = false;
    if (o.folding && tensor_uses(g, x) == static_cast<int>(ts.size())) {
      ir::GraphIndex idx(g);
      std::string cur = x;
      for (int hops = 0; hops < 8 && !folded; ++hops) {
        auto p = idx.producer.find(cur);
        if (p == idx.producer.end() || g.is_graph_output(cur)) break;
        ir::Node& pn = g.nodes[p->second];
        if (pn.op_type == "Relu" && pn.is_default_domain()) {
          cur = pn.input(0);
          if (cur.empty() || tensor_uses(g, cur) != 1) break;
          continue;
        }
        folded = fold_into(g, pn, s, rank, ax);
        break;
      }
    }
    if (folded) {
      rep.folded++;
    } else if (o.unfolded == Unfolded::Skip) {
      rep.skipped++;
      return;
    } else if (!per_channel_constants && !(o.unfolded == Unfolded::Conv && rank == 4 && ax == 1)) {
      rep.skipped_opset++;
      return;
    } else if (insert_division(g, x, ts, s, rank, ax, o.unfolded == Unfolded::Conv,
                               fmt::format("{}_smooth{}", x, counter++), rep)) {
      rep.inserted_conv++;
    } else {
      rep.inserted_mul++;
      if (o.unfolded == Unfolded::Conv) rep.mul_not_4d++;
    }
    for (const auto& t : ts) {
      scale_along(g.find_initializer(t.weight)->tensor, t.w_axis, s, false);
      rep.targets++;
    }
  };
  for (Group& gr : groups)
    if (!compute(gr)) apply(gr);
  ir::passes::detail::sort_topologically(g);
  return rep;
}

SmoothReport apply_smooth_quant(ir::Model& m, const data::DatasetPtr& data, int64_t batch_size,
                                const SmoothQuantOptions& o) {
  auto stats = measure_channel_absmax(m, smooth_targets(m.graph, o.selected), data, batch_size);
  auto rep = smooth_quant(m, stats, o);
  OQ_INFO("SmoothQuant (alpha {}): {} layers smoothed, {} divisions folded into producers, {} Mul nodes inserted, "
          "{} channels left unscaled (zero on all calibration data or zero weights)",
          o.alpha, rep.targets, rep.folded, rep.inserted_mul, rep.neutral_channels);
  if (o.unfolded == Unfolded::Conv)
    OQ_INFO("SmoothQuant (SmoothQuantUnfolded: conv): {} divisions written as depthwise 1x1 Conv nodes, {} inputs not "
            "4-D kept their Mul", rep.inserted_conv, rep.mul_not_4d);
  if (o.unfolded == Unfolded::Skip)
    OQ_INFO("SmoothQuant (SmoothQuantUnfolded: skip): {} inputs whose division could not be folded left unsmoothed, "
            "with their layers", rep.skipped);
  if (rep.skipped_opset)
    OQ_WARN("SmoothQuant: opset {} < 13 has no per-channel DequantizeLinear for an inserted Mul's 1/s constant: {} "
            "inputs whose division could not be folded left unsmoothed with their layers (as SmoothQuantUnfolded: "
            "skip does); only the folded divisions remain", m.default_opset(), rep.skipped_opset);
  if (rep.mixed_axes)
    OQ_INFO("SmoothQuant: {} inputs left unsmoothed with their layers: the layers reading them take their channels "
            "on different axes (a Conv and a Gemm / MatMul) or in different counts", rep.mixed_axes);
  return rep;
}

}  // namespace oq::quant
