#include "exec/session.h"

#include <algorithm>
#include <optional>
#include <mutex>
#include <unordered_set>

#include "core/log.h"
#include "exec/finite.h"
#include "exec/kernels/conv_blocked.h"
#include "exec/optimize.h"
#include "ir/passes/passes.h"

namespace oq::exec {

// One executable graph: kernels in execution order, value slots, constants, frees.
struct Plan {
  ir::Graph graph;
  int opset = 0;
  std::vector<size_t> order;
  std::vector<std::unique_ptr<Kernel>> kernels;  // per step (execution order)
  std::vector<std::vector<std::string>> implicit;  // per step: the outer names its bodies read (If / Loop / Scan)
  // Bodies read a value as the model has it, never its fake-quantized image: in a QDQ model the Q/DQ pairs feed
  // the main graph's quantized nodes and bodies keep reading the float tensor (ONNX Runtime's QDQ quantizer does
  // not rewire them). By id: the id of a private slot holding the value before fake quantization, or -1.
  std::vector<int> raw_of;
  // Value slots: every tensor name gets an id.
  std::unordered_map<std::string, int> ids;
  std::vector<std::string> names;
  std::vector<Tensor> constants;               // by id: initializers (empty for others)
  std::vector<std::vector<int>> step_inputs;   // -1 = omitted
  std::vector<std::vector<int>> step_outputs;  // -1 = omitted
  std::vector<std::vector<int>> step_frees;    // ids whose last use is this step
  std::vector<int> input_ids, output_ids;
  std::vector<bool> folded;  // step precomputed at build time (all inputs constant)
  std::vector<int> folded_values;  // ids of the values those steps produced
  std::vector<const ir::ValueInfo*> input_infos;
  bool check_feeds = false;  // some kernel was told its inputs are finite when the feeds are (exec/finite.h)
  // Fake-quantized constants, cached across runs while the parameters stay the same.
  struct FqCache {
    QuantParams q;
    Tensor value;
  };
  std::unordered_map<int, FqCache> fq_cache;
  std::mutex fq_mu;  // runs may be concurrent (exec::run_ordered)
  // Optimized plans with channel-blocked values (exec/layout.h): those values are not shown to observers as
  // they are; the ones standing for a tensor of the model as given are shown converted back, under its name.
  struct Shown {
    std::string name;
    int64_t channels;
  };
  std::vector<char> internal;  // by id; empty when the plan has no blocked values
  std::unordered_map<int, Shown> shown_as;

  void set_blocked(const std::unordered_map<std::string, BlockedAlias>& aliases) {
    for (size_t id = 0; id < names.size(); ++id)
      if (names[id].ends_with(kBlockedSuffix)) {
        internal.resize(names.size(), 0);
        internal[id] = 1;
      }
    for (const auto& [orig, a] : aliases)
      if (auto it = ids.find(a.blocked); it != ids.end()) shown_as[it->second] = Shown{orig, a.channels};
  }

  int id_of(const std::string& n) {
    auto [it, inserted] = ids.emplace(n, static_cast<int>(names.size()));
    if (inserted) names.push_back(n);
    return it->second;
  }

  void build(const ir::Model& model);
  std::vector<Tensor> run(const std::map<std::string, Tensor>& feeds, const RunOptions& opts);
};

struct Session::Impl {
  SessionOptions options;
  Plan plain;
  // The optimized plan, built on the first run that may use it (null: nothing to optimize or not built yet).
  ir::Model model;  // kept until the optimized plan is built
  bool opt_tried = false;
  std::unique_ptr<Plan> opt;
  std::unordered_set<std::string> touched;
  std::unordered_set<std::string> blocked;  // held blocked (observable, converted back): not fake-quantizable
  std::mutex mu;
  // Float16 model run in float32 (SessionOptions::upcast_float16): its float16 inputs and output positions.
  std::unordered_set<std::string> half_inputs;
  std::vector<size_t> half_outputs;

  bool may_optimize(const RunOptions& o) const {
    if (o.observer || o.pre_fake_quant_observer) {
      if (!o.observed) return false;
      for (const auto& n : *o.observed)
        if (touched.count(n)) return false;
    }
    if (o.fake_quant)
      for (const auto& [n, q] : *o.fake_quant)
        if (touched.count(n) || blocked.count(n)) return false;
    return true;
  }
};

// An Error from building or running a node's kernel that does not name the node yet (one thrown by core code, such
// as a tensor too large to allocate) gets the node's prefix, so the one error line says where it happened.
[[noreturn]] static void rethrow_naming(const ir::Node& node, const Error& e) {
  std::string_view msg = e.what();
  if (msg.starts_with("node '")) throw e;
  throw Error(e.kind(), fmt::format("node '{}' ({}): {}", ir::node_label(node), node.op_type, msg));
}

static bool same_params(const QuantParams& a, const QuantParams& b) {
  return a.qtype == b.qtype && a.axis == b.axis && a.scale == b.scale && a.zero_point == b.zero_point;
}

// ONNX Runtime's com.microsoft QuantizeLinear / DequantizeLinear (written with its UseQDQContribOps option) are
// ONNX's opset-21 operators under another domain, 16-bit and 4-bit types included: they run as those.
static std::optional<ir::Model> contrib_qdq_as_onnx(const ir::Model& model) {
  auto is_contrib = [](const ir::Node& n) {
    return n.domain == "com.microsoft" && (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear");
  };
  if (std::none_of(model.graph.nodes.begin(), model.graph.nodes.end(), is_contrib)) return std::nullopt;
  ir::Model m = model;
  for (auto& n : m.graph.nodes)
    if (is_contrib(n)) n.domain.clear();
  return m;
}

Session::Session(const ir::Model& given, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  const std::optional<ir::Model> normalized = contrib_qdq_as_onnx(given);
  const ir::Model& model = normalized ? *normalized : given;
  impl_->options = options;
  if (options.upcast_float16 && ir::passes::has_float16(model)) {
    ir::Model up = model;
    ir::passes::upcast_float16(up);
    for (const auto* in : model.graph.real_inputs())
      if (in->dtype == DType::Float16) impl_->half_inputs.insert(in->name);
    for (size_t i = 0; i < model.graph.outputs.size(); ++i)
      if (model.graph.outputs[i].dtype == DType::Float16) impl_->half_outputs.push_back(i);
    impl_->plain.build(up);
    if (options.optimize) impl_->model = std::move(up);
    else impl_->opt_tried = true;
    return;
  }
  impl_->plain.build(model);
  if (options.optimize) impl_->model = model;
  else impl_->opt_tried = true;
}

void Plan::build(const ir::Model& model) {
  Plan& m = *this;
  m.graph = model.graph;
  m.opset = static_cast<int>(model.default_opset());
  if (m.opset > kMaxOpset)
    fail(ErrorKind::Model, "model imports ai.onnx opset {}, newer than the newest supported ({})", m.opset, kMaxOpset);
  if (m.opset < 1) fail(ErrorKind::Model, "model does not import the default ONNX domain (ai.onnx)");
  m.order = ir::topological_order(m.graph);

  // One error listing every unsupported node.
  std::vector<std::string> unsupported;
  for (size_t i : m.order) {
    const ir::Node& n = m.graph.nodes[i];
    if (!n.is_default_domain() || !find_kernel(n.op_type, m.opset)) {
      std::string op = n.is_default_domain() ? n.op_type : n.domain + "." + n.op_type;
      int v = n.is_default_domain() ? m.opset : static_cast<int>(model.opset_of(n.domain));
      unsupported.push_back(fmt::format("node '{}' ({}, opset {}) is not supported", ir::node_label(n), op, v));
    }
  }
  if (!unsupported.empty()) {
    std::string msg = unsupported[0];
    for (size_t i = 1; i < unsupported.size(); ++i) msg += "; " + unsupported[i];
    fail(ErrorKind::Model, "{}", msg);
  }

  for (const auto& init : m.graph.initializers) {
    int id = m.id_of(init.name);
    if (static_cast<size_t>(id) >= m.constants.size()) m.constants.resize(id + 1);
    m.constants[id] = init.tensor;
  }
  for (const auto* vi : m.graph.real_inputs()) {
    m.input_ids.push_back(m.id_of(vi->name));
    m.input_infos.push_back(vi);
  }
  // Nodes whose inputs are finite whenever the feeds are (exec/finite.h): run() then checks the feeds once.
  const std::vector<char> finite_in = finite_when_feeds_are(m.graph, m.order, [&](const std::string& t) {
    auto it = m.ids.find(t);
    return it == m.ids.end() || static_cast<size_t>(it->second) >= m.constants.size() ||
                   m.constants[it->second].empty()
               ? nullptr
               : &m.constants[it->second];
  });
  m.implicit.resize(m.order.size());
  for (size_t s = 0; s < m.order.size(); ++s) {
    const ir::Node& n = m.graph.nodes[m.order[s]];
    std::vector<int> ins, outs;
    for (const auto& t : n.inputs) ins.push_back(t.empty() ? -1 : m.id_of(t));
    // A node with bodies (If / Loop / Scan) also reads the outer-scope values its bodies use: they follow its
    // own inputs, so that they are kept alive until it runs (ir::topological_order ordered it after them).
    const bool bodies = ir::has_subgraphs(n);
    if (bodies) m.implicit[s] = ir::implicit_inputs(n);
    for (const auto& t : m.implicit[s]) {
      const int id = m.id_of(t);
      if (static_cast<size_t>(id) >= m.raw_of.size()) m.raw_of.resize(id + 1, -1);
      if (m.raw_of[id] < 0) {
        const int raw = m.id_of(std::string("\x01raw\x01") + t);
        m.raw_of.resize(m.names.size(), -1);
        m.raw_of[id] = raw;
      }
      ins.push_back(m.raw_of[id]);
    }
    for (const auto& t : n.outputs) outs.push_back(t.empty() ? -1 : m.id_of(t));
    m.step_inputs.push_back(std::move(ins));
    m.step_outputs.push_back(std::move(outs));
    try {
      const bool finite = finite_in[m.order[s]] != 0;
      // The kernels that use it: Conv with a fused activation (exec/kernels/fused_activation.h).
      m.check_feeds = m.check_feeds || (finite && n.op_type == "Conv" && n.has_attr(ir::passes::kFusedActivationAttr));
      m.kernels.push_back(
          find_kernel(n.op_type, m.opset)(KernelInit{n, m.opset, bodies ? &m.implicit[s] : nullptr, finite}));
    } catch (const Error& e) {
      rethrow_naming(n, e);
    } catch (const std::exception& e) {
      kfail(n, "{}", exception_text(e));
    }
  }
  for (const auto& o : m.graph.outputs) {
    if (!m.ids.count(o.name))
      fail(ErrorKind::Model, "graph output '{}' is not produced by any node, input or initializer", o.name);
    m.output_ids.push_back(m.id_of(o.name));
  }
  m.constants.resize(m.names.size());
  m.raw_of.resize(m.names.size(), -1);
  for (size_t id = 0; id < m.names.size(); ++id)
    if (m.raw_of[id] >= 0) m.constants[m.raw_of[id]] = m.constants[id];

  // Precompute steps whose inputs are all constants (e.g. DequantizeLinear of quantized weights): they run
  // once here, their outputs become constants, and run() skips them. Observers see them only when they name them in
  // RunOptions::observed (calibration of a Cast of a constant that ORT quantizes as an activation).
  m.folded.assign(m.kernels.size(), false);
  for (size_t s = 0; s < m.kernels.size(); ++s) {
    bool all_const = !m.step_inputs[s].empty();
    for (int id : m.step_inputs[s]) all_const = all_const && (id < 0 || !m.constants[id].empty());
    if (!all_const) continue;
    const ir::Node& n = m.graph.nodes[m.order[s]];
    std::vector<const Tensor*> ins;
    for (int id : m.step_inputs[s]) ins.push_back(id < 0 ? nullptr : &m.constants[id]);
    std::vector<Tensor> outs(m.step_outputs[s].size());
    try {
      m.kernels[s]->run(ins, outs);
    } catch (const Error& e) {
      rethrow_naming(n, e);
    } catch (const std::exception& e) {
      kfail(n, "{}", exception_text(e));
    }
    for (size_t o = 0; o < outs.size(); ++o)
      if (m.step_outputs[s][o] >= 0) {
        const int id = m.step_outputs[s][o];
        m.constants[id] = std::move(outs[o]);
        if (m.raw_of[id] >= 0) m.constants[m.raw_of[id]] = m.constants[id];
        m.folded_values.push_back(id);
      }
    m.folded[s] = true;
  }

  // Last use of every non-constant, non-output value -> freed after that step.
  std::vector<int> last(m.names.size(), -1);
  for (size_t s = 0; s < m.step_inputs.size(); ++s)
    for (int id : m.step_inputs[s])
      if (id >= 0) last[id] = static_cast<int>(s);
  std::unordered_set<int> keep(m.output_ids.begin(), m.output_ids.end());
  m.step_frees.resize(m.step_inputs.size());
  for (size_t id = 0; id < last.size(); ++id)
    if (last[id] >= 0 && m.constants[id].empty() && !keep.count(static_cast<int>(id)))
      m.step_frees[last[id]].push_back(static_cast<int>(id));
}

Session::~Session() = default;

const ir::Graph& Session::graph() const { return impl_->plain.graph; }
const std::vector<size_t>& Session::order() const { return impl_->plain.order; }
std::vector<std::string> Session::output_names() const {
  std::vector<std::string> r;
  for (const auto& o : impl_->plain.graph.outputs) r.push_back(o.name);
  return r;
}

static void check_feed(const ir::ValueInfo& vi, const Tensor& t) {
  if (vi.dtype != DType::Undefined && t.dtype() != vi.dtype)
    fail(ErrorKind::Data, "input '{}': expected {} data, got {}", vi.name, dtype_name(vi.dtype), dtype_name(t.dtype()));
  auto s = vi.static_shape();
  if (!s) return;
  bool ok = s->size() == t.shape().size();
  for (size_t i = 0; ok && i < s->size(); ++i) ok = (*s)[i] < 0 || (*s)[i] == t.shape()[i];
  if (!ok) {
    std::string want = "[";
    for (size_t i = 0; i < vi.shape->size(); ++i) {
      const auto& d = (*vi.shape)[i];
      want += (i ? "," : "") + (d.known() ? std::to_string(d.value) : (d.param.empty() ? "?" : d.param));
    }
    fail(ErrorKind::Data, "input '{}': data of shape {} does not match the model's input shape {}]", vi.name,
         shape_str(t.shape()), want);
  }
}

std::vector<Tensor> Session::run(const std::map<std::string, Tensor>& feeds, const RunOptions& opts) {
  Impl& m = *impl_;
  Plan* plan = &m.plain;
  if (m.options.optimize) {
    std::lock_guard<std::mutex> lock(m.mu);
    if (!m.opt_tried && m.may_optimize(opts)) {
      m.opt_tried = true;
      if (auto og = optimize_for_inference(m.model, m.options.channel_block)) {
        m.touched = std::move(og->touched);
        for (const auto& [name, a] : og->blocked) m.blocked.insert(name);
        m.blocked.insert(og->converted_back.begin(), og->converted_back.end());
        m.opt = std::make_unique<Plan>();
        try {
          m.opt->build(og->model);
          m.opt->set_blocked(og->blocked);
        } catch (const Error& e) {  // not expected; the model as given still runs
          OQ_DEBUG("executor: optimized graph not used: {}", e.what());
          m.opt.reset();
        }
      }
      m.model = ir::Model();
    }
    if (m.opt && m.may_optimize(opts)) plan = m.opt.get();
  }
  if (m.half_inputs.empty() && m.half_outputs.empty()) return plan->run(feeds, opts);
  std::map<std::string, Tensor> wide;
  for (const auto& [name, t] : feeds) {
    if (m.half_inputs.count(name) && t.dtype() == DType::Float16) wide.emplace(name, t.cast(DType::Float));
    else if (m.half_inputs.count(name) && t.dtype() == DType::Float)
      wide.emplace(name, t.cast(DType::Float16).cast(DType::Float));
    else wide.emplace(name, t);
  }
  std::vector<Tensor> outs = plan->run(wide, opts);
  for (size_t i : m.half_outputs)
    if (i < outs.size() && outs[i].dtype() == DType::Float) outs[i] = outs[i].cast(DType::Float16);
  return outs;
}

std::vector<Tensor> Plan::run(const std::map<std::string, Tensor>& feeds, const RunOptions& opts) {
  Plan& m = *this;
  std::vector<Tensor> slots(m.names.size());
  const auto* fq = opts.fake_quant;
  auto fq_find = [&](int id) -> const QuantParams* {
    if (!fq || fq->empty()) return nullptr;
    auto it = fq->find(m.names[id]);
    return it == fq->end() ? nullptr : &it->second;
  };
  auto produce = [&](int id, Tensor&& t) {
    if (m.raw_of[id] >= 0) slots[m.raw_of[id]] = t;  // what bodies read (before fake quantization)
    if (const QuantParams* q = fq_find(id)) {
      if (opts.pre_fake_quant_observer) opts.pre_fake_quant_observer(m.names[id], t);
      t = fake_quantize(t, *q);
    }
    if (opts.observer) {
      if (m.internal.empty() || !m.internal[id]) {
        opts.observer(m.names[id], t);
      } else if (auto s = m.shown_as.find(id); s != m.shown_as.end()) {
        const std::string& name = s->second.name;
        if (!opts.observed || opts.observed->count(name)) {
          if (opts.any_order && opts.any_order->count(name)) {
            if (s->second.channels % t.dim(4) == 0) opts.observer(name, t);  // the same values, no padding
            else opts.observer(name, blocked_values(t, s->second.channels));  // padding left out
          } else
            opts.observer(name, blocked_to_nchw(t, s->second.channels));
        }
      }
    }
    slots[id] = std::move(t);
  };

  for (const auto& [name, t] : feeds) {
    auto it = m.ids.find(name);
    bool is_input = it != m.ids.end() &&
                    std::find(m.input_ids.begin(), m.input_ids.end(), it->second) != m.input_ids.end();
    if (!is_input) fail(ErrorKind::Data, "'{}' is not an input of the model", name);
  }
  for (size_t k = 0; k < m.input_ids.size(); ++k) {
    const ir::ValueInfo& vi = *m.input_infos[k];
    auto it = feeds.find(vi.name);
    if (it == feeds.end()) fail(ErrorKind::Data, "no data given for model input '{}'", vi.name);
    check_feed(vi, it->second);
    Tensor t = it->second;
    produce(m.input_ids[k], std::move(t));
  }
  // Constants, fake-quantized where asked (cached across runs).
  std::unique_lock<std::mutex> fq_lock(m.fq_mu, std::defer_lock);
  if (fq) fq_lock.lock();
  for (size_t id = 0; id < m.constants.size(); ++id) {
    if (m.constants[id].empty()) continue;
    const QuantParams* q = fq_find(static_cast<int>(id));
    if (!q) {
      slots[id] = m.constants[id];
      continue;
    }
    auto c = m.fq_cache.find(static_cast<int>(id));
    if (c == m.fq_cache.end() || !same_params(c->second.q, *q))
      c = m.fq_cache.insert_or_assign(static_cast<int>(id), FqCache{*q, fake_quantize(m.constants[id], *q)}).first;
    slots[id] = c->second.value;
  }
  if (fq && fq->size() < m.fq_cache.size())  // drop cache entries no longer asked for
    std::erase_if(m.fq_cache, [&](const auto& e) { return !fq->count(m.names[e.first]); });
  if (fq_lock.owns_lock()) fq_lock.unlock();
  bool finite = m.check_feeds;  // the feeds as the kernels see them (after fake quantization)
  for (size_t k = 0; finite && k < m.input_ids.size(); ++k) finite = all_finite(slots[m.input_ids[k]]);
  FeedsFiniteScope finite_scope(finite);
  if (opts.observer && opts.observed)
    for (int id : m.folded_values)
      if (opts.observed->count(m.names[id])) opts.observer(m.names[id], slots[id]);

  std::vector<const Tensor*> ins;
  std::vector<Tensor> outs;
  for (size_t s = 0; s < m.kernels.size(); ++s) {
    if (m.folded[s]) continue;
    const ir::Node& node = m.graph.nodes[m.order[s]];
    ins.clear();
    for (int id : m.step_inputs[s]) {
      if (id < 0) {
        ins.push_back(nullptr);
        continue;
      }
      if (slots[id].empty() && m.constants[id].empty())
        kfail(node, "input '{}' has no value (produced by a node that did not set it)", m.names[id]);
      ins.push_back(&slots[id]);
    }
    outs.assign(m.step_outputs[s].size(), Tensor());
    try {
      m.kernels[s]->run(ins, outs);
    } catch (const Error& e) {
      rethrow_naming(node, e);
    } catch (const std::exception& e) {
      kfail(node, "{}", exception_text(e));
    }
    for (size_t o = 0; o < outs.size(); ++o) {
      int id = m.step_outputs[s][o];
      if (id < 0) continue;
      if (outs[o].empty()) kfail(node, "kernel did not produce output '{}'", m.names[id]);
      produce(id, std::move(outs[o]));
    }
    for (int id : m.step_frees[s]) slots[id] = Tensor();
  }
  std::vector<Tensor> result;
  for (int id : m.output_ids) result.push_back(slots[id]);
  return result;
}

}  // namespace oq::exec

