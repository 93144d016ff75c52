#include "quant/qdq_writer.h"

#include <algorithm>
#include <set>

#include "quant/params.h"
#include "quant/qparams.h"

namespace oq::quant {

namespace {

// In the tensor's float type (a float16 tensor's scales are float16 values: the conversion is exact).
Tensor scale_tensor(const exec::QuantParams& q) {
  Shape s = q.axis >= 0 ? Shape{static_cast<int64_t>(q.scale.size())} : Shape{};
  Tensor t(DType::Float, s);
  std::copy(q.scale.begin(), q.scale.end(), t.data<float>());
  return q.scale_type == DType::Float16 ? t.cast(DType::Float16) : t;
}

Tensor zero_point_tensor(const exec::QuantParams& q) {
  Shape s = q.axis >= 0 ? Shape{static_cast<int64_t>(q.zero_point.size())} : Shape{};
  Tensor t(DType::Int64, s);
  std::copy(q.zero_point.begin(), q.zero_point.end(), t.data<int64_t>());
  return t.cast(q.qtype);
}

ir::Node make_qdq_node(const char* op, std::string name, std::vector<std::string> in, std::string out, int axis) {
  ir::Node n;
  n.op_type = op;
  n.name = std::move(name);
  n.inputs = std::move(in);
  n.outputs = {std::move(out)};
  if (axis >= 0) n.set_attr_int("axis", axis);
  return n;
}

void replace_input_all(ir::Graph& g, const std::string& from, const std::string& to, size_t skip_from = SIZE_MAX) {
  for (size_t i = 0; i < g.nodes.size() && i < skip_from; ++i)
    for (auto& in : g.nodes[i].inputs)
      if (in == from) in = to;
}

std::string kind_key(DType t, TensorRole r) {
  const char* k = r == TensorRole::Weight ? "weights" : r == TensorRole::Bias ? "biases" : "activations";
  return fmt::format("{} {}", quant_type_name(t), k);
}

}  // namespace

WriteStats write_qdq(ir::Graph& g, const QuantPlan& plan, const ParamMap& params,
                     const std::map<std::string, Tensor>* weight_values, WeightCache* cache, const QdqLayout& layout,
                     const std::map<std::string, ParamNotes::Converted>* converted) {
  WriteStats st;
  // Drop the folded Relu/Clip nodes first.
  std::set<size_t> removed(plan.removed_nodes.begin(), plan.removed_nodes.end());
  std::set<std::string> unused_candidates;  // initializers that may be left without a reader
  std::vector<char> quantized_node;  // per node left: the annotator quantized it (ORT's receiving nodes)
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed.count(i)) quantized_node.push_back(plan.quantized_nodes.count(i) > 0);
  if (!removed.empty()) {
    std::vector<ir::Node> kept;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (!removed.count(i)) {
        kept.push_back(std::move(g.nodes[i]));
        continue;
      }
      for (const auto& in : g.nodes[i].inputs)  // a folded Clip's min/max constants (as ORT drops them)
        if (!in.empty() && g.find_initializer(in)) unused_candidates.insert(in);
    }
    g.nodes = std::move(kept);
  }
  const size_t original_nodes = g.nodes.size();
  std::vector<ir::Node> added;
  // Scale/zero-point initializer names of each quantized tensor (shared tensors reuse their provider's).
  std::map<std::string, std::pair<std::string, std::string>> qparam_names;
  // ORT's names (<t>_scale, <t>_QuantizeLinear_Output, <w>_quantized, ...), unless the model already uses one
  // for something else: then <name>_1, _2, ... (a user tensor called `w_scale` must not become w's scale).
  // Node names and tensor names are separate namespaces in ONNX (a node called `x_scale` leaves x's scale its name).
  std::set<std::string> taken, taken_nodes;
  for (const auto& n : g.nodes) {
    taken_nodes.insert(n.name);
    for (const auto* l : {&n.inputs, &n.outputs}) taken.insert(l->begin(), l->end());
  }
  for (const auto& i : g.initializers) taken.insert(i.name);
  for (const auto* l : {&g.inputs, &g.outputs, &g.value_info})
    for (const auto& v : *l) taken.insert(v.name);
  auto unique_in = [](std::set<std::string>& used, const std::string& base) {
    std::string n = base;
    for (int k = 1; used.count(n); ++k) n = base + "_" + std::to_string(k);
    used.insert(n);
    return n;
  };
  auto fresh = [&](const std::string& base) { return unique_in(taken, base); };
  auto fresh_node = [&](const std::string& base) { return unique_in(taken_nodes, base); };

  auto emit_activation = [&](const std::string& t, const std::string& scale, const std::string& zp, int axis) {
    if (layout.dedicated_qdq_pair) {
      // ORT's DedicatedQDQPair: the quantized nodes reading t, in graph order, once per input slot (a node reading
      // t twice is listed twice: its first pair replaces both slots, the second is left unread, as in ORT).
      std::vector<size_t> readers;
      for (size_t i = 0; i < original_nodes; ++i)
        if (quantized_node[i])
          for (const auto& in : g.nodes[i].inputs)
            if (in == t) readers.push_back(i);
      if (readers.size() > 1) {
        for (size_t k = 0; k < readers.size(); ++k) {
          const std::string sfx = "_" + std::to_string(k + 1);
          const std::string q_out = fresh(t + "_QuantizeLinear_Output" + sfx);
          const std::string dq_out = fresh(t + "_DequantizeLinear_Output" + sfx);
          added.push_back(make_qdq_node("QuantizeLinear", fresh_node(t + "_QuantizeLinear" + sfx), {t, scale, zp}, q_out,
                                        axis));
          added.push_back(make_qdq_node("DequantizeLinear", fresh_node(t + "_DequantizeLinear" + sfx), {q_out, scale, zp},
                                        dq_out, axis));
          for (auto& in : g.nodes[readers[k]].inputs)
            if (in == t) in = dq_out;
          if (k == 0) st.dq_output[t] = dq_out;
          st.q_nodes++;
          st.dq_nodes++;
        }
        st.q_input[t] = t;
        return;
      }
    }
    std::string q_in = t, dq_out;
    // A graph output keeps its name on the DequantizeLinear, unless it is a graph input too (then no node may
    // produce it: the output stays the float input, its consumers read the DequantizeLinear).
    if (g.is_graph_output(t) && !g.is_graph_input(t)) {
      q_in = fresh(t + "_QuantizeLinear_Input");
      dq_out = t;
      for (size_t i = 0; i < original_nodes; ++i)
        for (auto& o : g.nodes[i].outputs)
          if (o == t) o = q_in;
    } else {
      dq_out = fresh(t + "_DequantizeLinear_Output");
      replace_input_all(g, t, dq_out, original_nodes);
    }
    const std::string q_out = fresh(t + "_QuantizeLinear_Output");
    added.push_back(make_qdq_node("QuantizeLinear", fresh_node(t + "_QuantizeLinear"), {q_in, scale, zp}, q_out, axis));
    added.push_back(make_qdq_node("DequantizeLinear", fresh_node(t + "_DequantizeLinear"), {q_out, scale, zp}, dq_out,
                                  axis));
    st.q_nodes++;
    st.dq_nodes++;
    st.q_input[t] = q_in;
    st.dq_output[t] = dq_out;
  };

  // ORT's _add_qdq_ops_for_converted_activation: Q1 -> DQ1 for the readers of the original type, Q1 -> DQ1 (or its
  // clone when some readers keep the original) -> Q2 -> DQ2 for the receivers of the converted type; a graph
  // output keeps its name on DQ1 (DQ2 when every reader converts).
  auto emit_converted = [&](const std::string& t, const std::string& s1, const std::string& z1, const std::string& s2,
                            const std::string& z2, const std::optional<std::set<std::string>>& recv) {
    // ORT's tensor_to_its_receiving_nodes: the quantized nodes reading t. Only they (and the named recv_nodes) are
    // rewired; other readers (excluded nodes, op types not quantized, Shape) keep the float tensor.
    std::vector<size_t> conv_readers, orig_readers;
    std::set<std::string> receiver_names;
    for (size_t i = 0; i < original_nodes; ++i) {
      const bool reads = std::find(g.nodes[i].inputs.begin(), g.nodes[i].inputs.end(), t) != g.nodes[i].inputs.end();
      if (!reads) continue;
      if (quantized_node[i]) receiver_names.insert(g.nodes[i].name);
      if (recv ? recv->count(g.nodes[i].name) > 0 : quantized_node[i] != 0)
        conv_readers.push_back(i);
      else if (quantized_node[i])
        orig_readers.push_back(i);
    }
    const bool all_conv = !recv || recv->size() == receiver_names.size();
    const bool out = g.is_graph_output(t) && !g.is_graph_input(t);
    auto rewire = [&](const std::vector<size_t>& readers, const std::string& to) {
      for (size_t i : readers)
        for (auto& in : g.nodes[i].inputs)
          if (in == t) in = to;
    };
    std::string q1_in = t;
    if (out) {
      q1_in = fresh(t + "_QuantizeLinear_Input");
      for (size_t i = 0; i < original_nodes; ++i)
        for (auto& o : g.nodes[i].outputs)
          if (o == t) o = q1_in;
    }
    const std::string q1_out = fresh(t + "_QuantizeLinear_Output");
    added.push_back(make_qdq_node("QuantizeLinear", fresh_node(t + "_QuantizeLinear"), {q1_in, s1, z1}, q1_out, -1));
    const std::string dq1_out = out && !all_conv ? t : fresh(t + "_DequantizeLinear_Output");
    if (dq1_out != t) rewire(orig_readers, dq1_out);
    added.push_back(make_qdq_node("DequantizeLinear", fresh_node(t + "_DequantizeLinear"), {q1_out, s1, z1}, dq1_out, -1));
    std::string q2_in = dq1_out;
    if (!all_conv) {
      q2_in = fresh(t + "_convert_QuantizeLinear_Input");
      added.push_back(make_qdq_node("DequantizeLinear", fresh_node(t + "_convert_clone_DequantizeLinear"), {q1_out, s1, z1},
                                    q2_in, -1));
      st.dq_nodes++;
    }
    const std::string q2_out = fresh(t + "_convert_QuantizeLinear_Output");
    added.push_back(make_qdq_node("QuantizeLinear", fresh_node(t + "_convert_QuantizeLinear"), {q2_in, s2, z2}, q2_out, -1));
    const std::string dq2_out = out && all_conv ? t : fresh(t + "_convert_DequantizeLinear_Output");
    if (dq2_out != t) rewire(conv_readers, dq2_out);
    added.push_back(make_qdq_node("DequantizeLinear", fresh_node(t + "_convert_DequantizeLinear"), {q2_out, s2, z2}, dq2_out,
                                  -1));
    st.q_nodes += 2;
    st.dq_nodes += 2;
    st.q_input[t] = q1_in;
    st.dq_output[t] = dq1_out;
  };
  std::map<std::string, std::pair<std::string, std::string>> convert_names;  // converted scale / zero point

  auto process = [&](const std::string& name, const TensorSpec& s) {
    auto pit = params.find(name);
    if (pit == params.end()) {
      if (s.role == TensorRole::Bias) {  // left in float (compute_params says why)
        // The annotator took a Gemm's beta out to fold it into the int32 bias: a float bias needs it back.
        if (s.bias_beta != 1.0)
          for (size_t i = 0; i < original_nodes; ++i) {
            ir::Node& n = g.nodes[i];
            if (n.op_type == "Gemm" && n.inputs.size() > 2 && n.inputs[2] == name && !n.has_attr("beta"))
              n.set_attr_float("beta", static_cast<float>(s.bias_beta));
          }
        return;
      }
      fail(ErrorKind::Runtime, "tensor '{}' is marked for quantization but has no parameters", name);
    }
    const exec::QuantParams& q = pit->second;
    if (s.role == TensorRole::Bias) {
      const Tensor& b = g.find_initializer(name)->tensor;
      const DType bias_type = b.dtype();  // before initializers are added (b may move)
      const std::string qn = fresh(name + "_quantized"), qs = fresh(qn + "_scale"), qz = fresh(qn + "_zero_point");
      g.add_initializer(qn, quantize_bias(b, q, s.bias_beta));
      // ORT's layout: the bias scale is always 1-D; the zero point is 1-D with `axis` on the DequantizeLinear when
      // there are several scales (per channel), a scalar without axis otherwise (a one-channel per-channel bias too).
      Tensor sc = scale_tensor(q).reshaped({static_cast<int64_t>(q.scale.size())});
      const int bias_axis = q.scale.size() > 1 ? q.axis : -1;
      Tensor zp(DType::Int32, bias_axis >= 0 ? sc.shape() : Shape{});
      g.add_initializer(qs, sc);
      g.add_initializer(qz, zp);
      g.remove_initializer(name);
      if (bias_type == DType::Float16 && q.scale_type != DType::Float16) {
        // A float32 scale (float16_bias_params): ORT's float32 DequantizeLinear, then a Cast to float16.
        const std::string dq_out = fresh(name + "_DequantizeLinear_Output");
        added.push_back(make_qdq_node("DequantizeLinear", fresh_node(name + "_DequantizeLinear"), {qn, qs, qz}, dq_out,
                                      bias_axis));
        ir::Node cast = make_qdq_node("Cast", fresh_node(name + "_Cast"), {dq_out}, name, -1);
        cast.set_attr_int("to", static_cast<int64_t>(DType::Float16));
        added.push_back(std::move(cast));
        st.dq_output[name] = dq_out;
      } else {
        added.push_back(make_qdq_node("DequantizeLinear", fresh_node(name + "_DequantizeLinear"), {qn, qs, qz}, name,
                                      bias_axis));
        st.dq_output[name] = name;
      }
      st.dq_nodes++;
      st.tensors_per_type[kind_key(DType::Int32, s.role)]++;
      return;
    }
    st.tensors_per_type[kind_key(q.qtype, s.role)]++;
    if (s.is_initializer) {
      const Tensor* w = &g.find_initializer(name)->tensor;
      if (weight_values) {
        auto v = weight_values->find(name);
        if (v != weight_values->end()) w = &v->second;
      }
      if (layout.add_qdq_pair_to_weight) {
        // ORT's AddQDQPairToWeight: the float constant stays (with the values the parameters were chosen for,
        // when a weight quantizer changed them) and a QuantizeLinear -> DequantizeLinear pair follows it.
        if (w != &g.find_initializer(name)->tensor) g.find_initializer(name)->tensor = *w;
        const std::string ws = fresh(name + "_scale"), wz = fresh(name + "_zero_point");
        g.add_initializer(ws, scale_tensor(q));
        g.add_initializer(wz, zero_point_tensor(q));
        if (q.axis < 0) qparam_names[name] = {ws, wz};
        const std::string dq_out = fresh(name + "_DequantizeLinear_Output");
        replace_input_all(g, name, dq_out, original_nodes);
        const std::string q_out = fresh(name + "_QuantizeLinear_Output");
        added.push_back(make_qdq_node("QuantizeLinear", fresh_node(name + "_QuantizeLinear"), {name, ws, wz}, q_out, q.axis));
        added.push_back(make_qdq_node("DequantizeLinear", fresh_node(name + "_DequantizeLinear"), {q_out, ws, wz}, dq_out,
                                      q.axis));
        st.dq_output[name] = dq_out;
        st.q_nodes++;
        st.dq_nodes++;
        return;
      }
      const std::string qn = fresh(name + "_quantized");
      WeightCache::Entry* e = cache && s.role != TensorRole::Bias ? cache->find(name, q.qtype, s.axis) : nullptr;
      if (e && e->quantized.dtype() != DType::Undefined && same_quant_params(e->written_params, q)) {
        g.add_initializer(qn, e->quantized);
      } else {
        Tensor qt = quantize_tensor(*w, q);
        if (e) {
          e->written_params = q;
          e->quantized = qt;
        }
        g.add_initializer(qn, std::move(qt));
      }
      const std::string ws = fresh(name + "_scale"), wz = fresh(name + "_zero_point");
      g.add_initializer(ws, scale_tensor(q));
      g.add_initializer(wz, zero_point_tensor(q));
      if (q.axis < 0) qparam_names[name] = {ws, wz};  // a Gather output shares its constant table's
      const std::string dq_out = fresh(name + "_DequantizeLinear_Output");
      replace_input_all(g, name, dq_out, original_nodes);
      added.push_back(make_qdq_node("DequantizeLinear", fresh_node(name + "_DequantizeLinear"), {qn, ws, wz}, dq_out,
                                    q.axis));
      st.dq_output[name] = dq_out;
      st.dq_nodes++;
      unused_candidates.insert(name);
      return;
    }
    std::string scale, zp;
    if (!s.share_from.empty()) {
      // ORT reuses the provider's scale/zero-point initializers, the converted ones when this node receives them.
      const auto c = converted ? converted->find(s.share_from) : decltype(converted->end()){};
      const bool conv = converted && c != converted->end() && (!c->second.recv_nodes || c->second.recv_nodes->count(s.node));
      const auto& names = conv ? convert_names : qparam_names;
      auto it = names.find(s.share_from);
      if (it != names.end()) std::tie(scale, zp) = it->second;
    }
    if (scale.empty()) {
      scale = fresh(name + "_scale");
      zp = fresh(name + "_zero_point");
      g.add_initializer(scale, scale_tensor(q));
      g.add_initializer(zp, zero_point_tensor(q));
    }
    qparam_names[name] = {scale, zp};
    if (auto c = converted ? converted->find(name) : decltype(converted->end()){}; converted && c != converted->end()) {
      const std::string cs = fresh(name + "_scale_convert"), cz = fresh(name + "_zero_point_convert");
      g.add_initializer(cs, scale_tensor(c->second.params));
      g.add_initializer(cz, zero_point_tensor(c->second.params));
      convert_names[name] = {cs, cz};
      emit_converted(name, scale, zp, cs, cz, c->second.recv_nodes);
      return;
    }
    emit_activation(name, scale, zp, -1);
  };

  // ORT order: plain tensors, then tensors sharing parameters (each once its provider is written: chains),
  // then biases.
  std::set<std::string> pending;
  for (const auto& name : plan.marked_order)
    if (plan.tensors.at(name).role != TensorRole::Bias && !plan.tensors.at(name).share_from.empty()) pending.insert(name);
  for (int pass = 0; pass < 3; ++pass) {
    if (pass == 1) {
      while (!pending.empty()) {
        std::vector<std::string> ready;
        for (const auto& name : plan.marked_order)
          if (pending.count(name) && !pending.count(plan.tensors.at(name).share_from)) ready.push_back(name);
        if (ready.empty()) ready.push_back(*pending.begin());  // no cycles in a DAG; never loop forever
        for (const auto& name : ready) {
          process(name, plan.tensors.at(name));
          pending.erase(name);
        }
      }
      continue;
    }
    for (const auto& name : plan.marked_order) {
      const TensorSpec& s = plan.tensors.at(name);
      if ((s.role == TensorRole::Bias ? 2 : (!s.share_from.empty() ? 1 : 0)) == pass) process(name, s);
    }
  }

  for (auto& n : added) {
    if (layout.contrib_ops && (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear"))
      n.domain = "com.microsoft";  // ORT's UseQDQContribOps
    g.nodes.push_back(std::move(n));
  }
  // Float initializers that nothing reads any more (ORT's clean_initializers, which it skips with
  // AddQDQPairToWeight: a folded Clip's bounds then stay in the file).
  std::set<std::string> used;
  for (const auto& n : g.nodes)
    for (const auto& in : n.inputs) used.insert(in);
  // Bodies of If / Loop / Scan keep reading the float tensors by name (ORT's clean_initializers looks into them).
  for (const auto& n : g.nodes)
    if (ir::has_subgraphs(n))
      for (const auto& in : ir::implicit_inputs(n)) used.insert(in);
  if (layout.add_qdq_pair_to_weight) unused_candidates.clear();
  for (const auto& name : unused_candidates)
    if (!used.count(name) && !g.is_graph_output(name)) {
      g.remove_initializer(name);
      std::erase_if(g.inputs, [&](const ir::ValueInfo& v) { return v.name == name; });
    }
  // Stale value_info of renamed tensors would mislead consumers of the file: keep only still-present names.
  std::set<std::string> present(used);
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs) present.insert(o);
  std::erase_if(g.value_info, [&](const ir::ValueInfo& v) { return !present.count(v.name); });

  auto order = ir::topological_order(g);
  std::vector<ir::Node> sorted;
  sorted.reserve(g.nodes.size());
  for (size_t i : order) sorted.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(sorted);
  return st;
}

}  // namespace oq::quant
