// Shape inference driver: seeds, topological walk, merging with declared value_info; element-wise rules.
#include "ir/passes/infer_shapes.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <unordered_set>

#include "core/error.h"
#include "ir/passes/infer_shapes_ops.h"
#include "ir/passes/pass_util.h"

namespace oq::ir::passes {

std::optional<int> TensorType::rank() const {
  if (!shape) return std::nullopt;
  return static_cast<int>(shape->size());
}

std::optional<Shape> TensorType::static_shape() const {
  if (!shape) return std::nullopt;
  Shape s;
  for (const Dim& d : *shape) {
    if (!d.known()) return std::nullopt;
    s.push_back(d.value);
  }
  return s;
}

const TensorType* ShapeInfo::find(const std::string& n) const {
  auto it = types.find(n);
  return it == types.end() ? nullptr : &it->second;
}
std::optional<int> ShapeInfo::rank(const std::string& n) const {
  const TensorType* t = find(n);
  return t ? t->rank() : std::nullopt;
}
std::optional<Shape> ShapeInfo::static_shape(const std::string& n) const {
  const TensorType* t = find(n);
  return t ? t->static_shape() : std::nullopt;
}
DType ShapeInfo::dtype(const std::string& n) const {
  const TensorType* t = find(n);
  return t ? t->dtype : DType::Undefined;
}
std::optional<int64_t> ShapeInfo::channels(const std::string& n) const {
  const TensorType* t = find(n);
  if (!t || !t->shape || t->shape->size() < 2 || !(*t->shape)[1].known()) return std::nullopt;
  return (*t->shape)[1].value;
}

namespace infer {

Dim dim_product(const Dims& d, size_t from, size_t to) {
  int64_t p = 1;
  std::string sym;
  bool unknown = false;
  for (size_t i = from; i < std::min(to, d.size()); ++i) {
    if (d[i].known()) {
      if (d[i].value != 0 && p > INT64_MAX / d[i].value) return udim();
      p *= d[i].value;
    } else if (!d[i].param.empty() && sym.empty() && !unknown) {
      sym = d[i].param;
    } else {
      unknown = true;
    }
  }
  if (p == 0) return kdim(0);
  if (unknown) return udim();
  if (!sym.empty()) return p == 1 ? Dim{-1, sym} : udim();
  return kdim(p);
}

std::optional<int64_t> norm_axis(int64_t a, int64_t r) {
  if (a < -r || a >= r) return std::nullopt;
  return a < 0 ? a + r : a;
}

Dims known_dims(const std::vector<int64_t>& v) {
  Dims d;
  for (int64_t x : v) d.push_back(x >= 0 ? kdim(x) : udim());
  return d;
}

Dims known_vals(const std::vector<int64_t>& v) {
  Dims d;
  for (int64_t x : v) d.push_back(Dim{x, {}});
  return d;
}

std::optional<int64_t> cast_int(int64_t v, DType t) {
  const auto u = static_cast<uint64_t>(v);
  switch (t) {
    case DType::Int64: return v;
    case DType::UInt64: return v >= 0 ? std::optional<int64_t>(v) : std::nullopt;
    case DType::Int32: return static_cast<int32_t>(static_cast<uint32_t>(u));
    case DType::UInt32: return static_cast<uint32_t>(u);
    case DType::Int16: return static_cast<int16_t>(static_cast<uint16_t>(u));
    case DType::UInt16: return static_cast<uint16_t>(u);
    case DType::Int8: return static_cast<int8_t>(static_cast<uint8_t>(u));
    case DType::UInt8: return static_cast<uint8_t>(u);
    default: return std::nullopt;
  }
}

std::optional<Dims> broadcast(const std::vector<const std::optional<Dims>*>& shapes) {
  size_t r = 0;
  for (const auto* s : shapes) {
    if (!s || !*s) return std::nullopt;
    r = std::max(r, (*s)->size());
  }
  Dims out(r);
  for (size_t k = 0; k < r; ++k) {  // k-th dim from the right
    std::optional<int64_t> big;
    bool conflict = false, all_one = true;
    std::vector<const Dim*> other;
    for (const auto* s : shapes) {
      const Dims& d = **s;
      if (k >= d.size()) continue;
      const Dim& x = d[d.size() - 1 - k];
      if (x.known() && x.value == 1) continue;
      all_one = false;
      if (x.known()) {
        conflict |= big && *big != x.value;
        big = x.value;
      } else {
        other.push_back(&x);
      }
    }
    Dim& o = out[r - 1 - k];
    if (conflict) o = udim();
    else if (big) o = kdim(*big);
    else if (all_one) o = kdim(1);
    else {
      bool same = !other[0]->param.empty();
      for (const Dim* x : other) same &= x->param == other[0]->param;
      o = same ? *other[0] : udim();
    }
  }
  return out;
}

const TensorType& Ctx::in(size_t i) const {
  static const TensorType kNone;
  if (!has(i)) return kNone;
  if (const TensorType* t = info_.find(n.inputs[i])) return *t;
  if (outer_)
    if (const TensorType* t = outer_->find(n.inputs[i])) return *t;
  return kNone;
}

const Tensor* Ctx::constant(size_t i) const {
  if (!has(i)) return nullptr;
  auto it = consts_.find(n.inputs[i]);
  return it == consts_.end() ? nullptr : it->second;
}

std::optional<Dims> Ctx::value(size_t i) const {
  if (const Tensor* t = constant(i); t && is_integer(t->dtype()) && t->rank() <= 1 && t->numel() <= 4096)
    return known_vals(t->to_int64s());
  return in(i).value;
}

std::optional<std::vector<int64_t>> Ctx::ints(size_t i) const {
  if (const Tensor* t = constant(i); t && is_integer(t->dtype())) return t->to_int64s();
  const auto& v = in(i).value;
  if (!v) return std::nullopt;
  std::vector<int64_t> r;
  for (const Dim& d : *v) {
    if (!vknown(d)) return std::nullopt;
    r.push_back(d.value);
  }
  return r;
}

std::optional<std::vector<double>> Ctx::floats(size_t i) const {
  const Tensor* t = constant(i);
  if (!t || t->dtype() == DType::String) return std::nullopt;
  return t->to_doubles();
}

void Ctx::set(size_t i, DType t, std::optional<Dims> s) {
  if (i >= outs.size()) return;
  outs[i].dtype = t;
  outs[i].shape = std::move(s);
}

void Ctx::set_value(size_t i, Dims v) {
  if (i < outs.size() && v.size() <= 4096) outs[i].value = std::move(v);
}

namespace {

// Integer arithmetic on propagated values (shape computations: Mul of two dims, Sub 1, Div by 2, ...).
void arith_value(Ctx& c) {
  const std::string& op = c.n.op_type;
  auto a = c.value(0), b = c.value(1);
  if (!a || !b || !is_integer(c.dtype(0))) return;
  const size_t na = a->size(), nb = b->size();
  if (na != nb && na != 1 && nb != 1) return;
  if (c.rank(0).value_or(2) > 1 || c.rank(1).value_or(2) > 1) return;
  const DType t = c.dtype(0);
  // The result as the op computes it in the tensors' type: an out-of-range one wraps there, so unknown.
  auto val = [t](int64_t v) {
    const auto w = cast_int(v, t);
    return w && *w == v ? kdim(v) : uval();
  };
  Dims r(std::max(na, nb));
  for (size_t k = 0; k < r.size(); ++k) {
    const Dim& x = (*a)[na == 1 ? 0 : k];
    const Dim& y = (*b)[nb == 1 ? 0 : k];
    if (vknown(x) && vknown(y)) {
      const int64_t p = x.value, q = y.value;
      const bool small = std::abs(p) < (int64_t{1} << 31) && std::abs(q) < (int64_t{1} << 31);
      if (!small) r[k] = uval();
      else if (op == "Add") r[k] = val(p + q);
      else if (op == "Sub") r[k] = val(p - q);
      else if (op == "Mul") r[k] = val(p * q);
      else if (op == "Div" && q > 0 && p >= 0) r[k] = val(p / q);
      else r[k] = uval();
    } else if ((op == "Mul" || op == "Div") && vknown(y) && y.value == 1) {
      r[k] = x;
    } else if (op == "Mul" && vknown(x) && x.value == 1) {
      r[k] = y;
    } else if ((op == "Add" || op == "Sub") && vknown(y) && y.value == 0) {
      r[k] = x;
    } else if (op == "Add" && vknown(x) && x.value == 0) {
      r[k] = y;
    } else {
      r[k] = uval();
    }
  }
  c.set_value(0, std::move(r));
}

bool infer_elementwise(Ctx& c) {
  static const std::unordered_set<std::string> kSame = {
      "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "Sigmoid", "HardSigmoid",
      "HardSwish", "Tanh", "Softplus", "Softsign", "Gelu", "Mish", "Erf", "Exp", "Log", "Sqrt", "Reciprocal",
      "Neg", "Abs", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh",
      "Asinh", "Acosh", "Atanh", "Clip", "Softmax", "LogSoftmax", "Hardmax", "Identity", "Shrink", "Swish",
      "CumSum", "Trilu", "LRN", "LpNormalization", "InstanceNormalization", "MeanVarianceNormalization",
      "GroupNormalization", "RMSNormalization", "ReverseSequence", "ScatterElements", "ScatterND", "Scatter",
      "BitwiseNot", "Not", "Celu"};
  static const std::unordered_set<std::string> kBroadcast = {
      "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod", "BitShift", "BitwiseAnd",
      "BitwiseOr", "BitwiseXor", "And", "Or", "Xor", "PRelu"};  // PRelu: onnxruntime broadcasts X and slope
  static const std::unordered_set<std::string> kCompare = {"Equal", "Less", "Greater", "LessOrEqual",
                                                           "GreaterOrEqual"};
  const std::string& op = c.n.op_type;
  if (kSame.count(op)) {
    c.set(0, c.dtype(0), c.shape(0));
    if (op == "Identity") c.outs[0].value = c.value(0);
    return true;
  }
  if (op == "IsNaN" || op == "IsInf") {
    c.set(0, DType::Bool, c.shape(0));
    return true;
  }
  if (op == "Dropout") {
    c.set(0, c.dtype(0), c.shape(0));
    c.set(1, DType::Bool, c.shape(0));
    c.outs[0].value = c.value(0);
    return true;
  }
  if (op == "BatchNormalization") {  // inference: Y only; the running statistics outputs keep the mean's shape
    c.set(0, c.dtype(0), c.shape(0));
    for (size_t k = 1; k < c.outs.size(); ++k) c.set(k, c.dtype(3), c.shape(3));
    return true;
  }
  if (op == "LayerNormalization") {  // Mean / InvStdDev: X's shape with the normalised axes set to 1
    c.set(0, c.dtype(0), c.shape(0));
    const auto& s = c.shape(0);
    if (s) {
      const auto a = norm_axis(c.n.attr_int("axis", -1), static_cast<int64_t>(s->size()));
      const int64_t st = c.n.attr_int("stash_type", 1);
      const DType stt = st > 0 && st <= INT32_MAX && dtype_is_known(static_cast<int32_t>(st)) ? static_cast<DType>(st)
                                                                                            : DType::Undefined;
      if (a) {
        Dims d = *s;
        for (size_t k = *a; k < d.size(); ++k) d[k] = kdim(1);
        for (size_t k = 1; k < c.outs.size(); ++k) c.set(k, stt, d);
      }
    }
    return true;
  }
  if (kBroadcast.count(op) || kCompare.count(op) || op == "Where") {
    std::vector<const std::optional<Dims>*> s;
    for (size_t k = 0; k < c.inputs(); ++k)
      if (c.has(k)) s.push_back(&c.shape(k));
    const DType t = kCompare.count(op) ? DType::Bool
                    : (op == "And" || op == "Or" || op == "Xor") ? DType::Bool
                    : op == "Where" ? c.dtype(1) : c.dtype(0);
    c.set(0, t, broadcast(s));
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") arith_value(c);
    return true;
  }
  if (op == "Cast") {
    const int64_t to = c.n.attr_int("to", 0);
    const DType t = to > 0 && to <= INT32_MAX && dtype_is_known(static_cast<int32_t>(to)) ? static_cast<DType>(to)
                                                                                         : DType::Undefined;
    c.set(0, t, c.shape(0));
    // The values as Cast computes them: integers wrap to the target width (int64 2^32-1 to int32 is -1); a
    // symbol (a dim, < 2^31 in practice) survives a 32 / 64-bit target; float / bool targets: no value.
    if (auto v = c.value(0); v && is_integer(c.dtype(0)) && dtype_bits(c.dtype(0)) >= 8) {
      const bool wide = t == DType::Int64 || t == DType::Int32 || t == DType::UInt64 || t == DType::UInt32;
      Dims r;
      for (const Dim& d : *v) {
        if (!d.param.empty()) r.push_back(wide ? d : uval());
        else if (!vknown(d)) r.push_back(uval());
        else if (auto w = cast_int(d.value, t)) r.push_back(Dim{*w, {}});
        else return true;  // not an integer target
      }
      c.set_value(0, std::move(r));
    }
    return true;
  }
  if (op == "CastLike") {
    c.set(0, c.dtype(1), c.shape(0));
    return true;
  }
  if (op == "QuantizeLinear" || op == "DequantizeLinear") {
    DType t = c.has(2) ? c.dtype(2) : DType::UInt8;
    if (op == "DequantizeLinear") t = c.dtype(1);
    if (const int64_t od = c.n.attr_int("output_dtype", 0); od > 0 && od <= INT32_MAX &&
                                                              dtype_is_known(static_cast<int32_t>(od)))
      t = static_cast<DType>(od);
    c.set(0, t, c.shape(0));
    return true;
  }
  if (op == "DynamicQuantizeLinear") {
    c.set(0, DType::UInt8, c.shape(0));
    c.set(1, DType::Float, Dims{});
    c.set(2, DType::UInt8, Dims{});
    return true;
  }
  return false;
}

Tensor copy_constant(const Node& n) { return detail::constant_node_value(n); }

}  // namespace
}  // namespace infer

using namespace infer;

namespace {

TensorType declared(const ValueInfo& v) {
  TensorType t;
  t.dtype = v.dtype;
  t.shape = v.shape;
  return t;
}

TensorType of_tensor(const Tensor& x) {
  TensorType t;
  t.dtype = x.dtype();
  t.shape = known_dims(x.shape());
  if (is_integer(x.dtype()) && x.rank() <= 1 && x.numel() <= 4096) t.value = known_vals(x.to_int64s());
  return t;
}

// A node output's declared type (value_info or graph output): its element type counts, its shape only when
// inference knows no rank, and then only its symbolic dims. Declared dims never replace inferred ones: exporters
// write the shapes of the run they traced, and a model made dynamic afterwards (graph input dim 0 set to 'N')
// keeps batch-1 value_info that would fold a Shape into a batch-1 constant. quant_pre_process's symbolic shape
// inference clears graph.value_info before it infers, for the same reason.
void merge_declared(TensorType& t, const ValueInfo* v) {
  if (!v || !v->opaque_type.empty()) return;
  if (v->dtype != DType::Undefined) t.dtype = v->dtype;
  if (!v->shape || t.shape) return;
  Dims d;
  for (const Dim& x : *v->shape) d.push_back(x.param.empty() ? udim() : x);
  t.shape = std::move(d);
  if (t.value && (t.shape->size() > 1 || (t.shape->empty() && t.value->size() != 1))) t.value.reset();
}

}  // namespace

ShapeInfo infer_shapes(const Graph& g, int opset, bool overridable, const ShapeInfo* outer) {
  ShapeInfo info;
  std::unordered_map<std::string, const Tensor*> consts;
  std::vector<Tensor> node_consts;
  node_consts.reserve(g.nodes.size());
  for (const auto& v : g.inputs) {
    if (!v.opaque_type.empty()) continue;
    info.types[v.name] = declared(v);
  }
  for (const auto& i : g.initializers) {
    if (!detail::is_constant(g, i.name, overridable)) continue;
    info.types[i.name] = of_tensor(i.tensor);
    consts[i.name] = &i.tensor;
  }
  {  // value_info of names no node here produces: what a body is told of the outer values it reads
    std::unordered_set<std::string> produced;
    for (const auto& n : g.nodes) produced.insert(n.outputs.begin(), n.outputs.end());
    for (const auto& v : g.value_info)
      if (v.opaque_type.empty() && !produced.count(v.name) && !info.types.count(v.name))
        info.types[v.name] = declared(v);
  }
  std::vector<size_t> order;
  try {
    std::unordered_set<std::string> outer_names;
    if (outer)
      for (const auto& [k, v] : outer->types) outer_names.insert(k);
    order = topological_order(g, &outer_names);
  } catch (const Error&) {
    for (size_t k = 0; k < g.nodes.size(); ++k) order.push_back(k);
  }
  for (size_t k : order) {
    const Node& n = g.nodes[k];
    Ctx c(n, opset, info, outer, consts);
    c.outs.resize(n.outputs.size());
    const Tensor* node_const = nullptr;
    if (n.is_default_domain()) {
      try {
        if (n.op_type == "Constant") {
          Tensor t = copy_constant(n);
          if (!t.empty() && !n.outputs.empty()) {
            c.outs[0] = of_tensor(t);
            if (t.numel() <= 4096) {
              node_consts.push_back(std::move(t));
              node_const = &node_consts.back();
            }
          }
        } else if (!infer_elementwise(c) && !infer_tensor_op(c) && !infer_index_op(c)) {
          infer_nn_op(c);
        }
      } catch (const std::exception&) {  // an attribute of the wrong type, an invalid geometry: nothing known
        for (auto& o : c.outs) o = TensorType{};
      }
    }
    for (size_t o = 0; o < n.outputs.size(); ++o) {
      if (n.outputs[o].empty()) continue;
      TensorType t = std::move(c.outs[o]);
      merge_declared(t, g.find_value_info(n.outputs[o]));
      info.types[n.outputs[o]] = std::move(t);
    }
    if (node_const && !consts.count(n.outputs[0])) consts[n.outputs[0]] = node_const;
  }
  return info;
}

ShapeInfo infer_shapes(const Model& m) {
  return infer_shapes(m.graph, static_cast<int>(m.default_opset()), detail::inputs_overridable(m));
}

void declare_inferred_shapes(Model& m) {
  Graph& g = m.graph;
  const ShapeInfo info = infer_shapes(m);
  std::unordered_set<std::string> produced;
  for (const auto& n : g.nodes) produced.insert(n.outputs.begin(), n.outputs.end());
  for (auto& v : g.value_info) {
    const TensorType* t = info.find(v.name);
    if (v.opaque_type.empty() && v.shape && t && t->shape && produced.count(v.name)) v.shape = t->shape;
  }
  for (auto& v : g.outputs) {
    const TensorType* t = info.find(v.name);
    if (!v.opaque_type.empty() || !t) continue;
    if (v.dtype == DType::Undefined) v.dtype = t->dtype;
    if (!v.shape) v.shape = t->shape;
  }
}

}  // namespace oq::ir::passes
