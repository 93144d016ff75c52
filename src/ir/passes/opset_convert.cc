// Default-domain opset up-conversion: driver and the attribute -> input rewrites.
#include "ir/passes/opset_convert.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <unordered_set>

#include "core/log.h"
#include "exec/kernel.h"
#include "ir/passes/passes.h"

namespace oq::ir::passes {
using namespace detail;

int64_t ir_version_for_opset(int64_t opset) {
  // onnx.helper.VERSION_TABLE: the IR version of the ONNX release that introduced the opset.
  if (opset >= 28) return 14;
  if (opset >= 25) return 13;
  if (opset == 24) return 12;
  if (opset == 23) return 11;
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  if (opset >= 15) return 8;
  if (opset >= 12) return 7;
  if (opset == 11) return 6;
  if (opset == 10) return 5;
  if (opset == 9) return 4;
  return 3;
}

namespace detail {

void OpsetConverter::cannot(const Node& n, const std::string& why) const {
  fail(ErrorKind::Model, "node '{}' ({}): cannot convert from opset {} to {}: {}", node_label(n), n.op_type, from_,
       to_, why);
}

std::string OpsetConverter::node_name(const Node& n, const std::string& suffix) {
  return names_.make((n.name.empty() ? n.op_type : n.name) + "_" + suffix);
}
std::string OpsetConverter::tensor_name(const Node& n, const std::string& suffix) {
  const std::string base = !n.name.empty() ? n.name : (!n.outputs.empty() ? n.outputs[0] : n.op_type);
  return names_.make(base + "_" + suffix);
}

std::string OpsetConverter::const_i64(const Node& n, const std::string& what, const std::vector<int64_t>& v,
                                      bool scalar) {
  std::string name = tensor_name(n, what);
  Shape s = scalar ? Shape{} : Shape{static_cast<int64_t>(v.size())};
  g_->add_initializer(name, Tensor::from_vector(DType::Int64, s, v));
  return name;
}
std::string OpsetConverter::const_f32(const Node& n, const std::string& what, const std::vector<float>& v,
                                      bool scalar) {
  std::string name = tensor_name(n, what);
  Shape s = scalar ? Shape{} : Shape{static_cast<int64_t>(v.size())};
  g_->add_initializer(name, Tensor::from_vector(DType::Float, s, v));
  return name;
}

DType OpsetConverter::dtype_of(const std::string& name) const {
  const DType dt = known_dtype(*g_, name);
  return dt != DType::Undefined || !shapes_ ? dt : shapes_->dtype(name);
}

std::string OpsetConverter::scalar_like(const Node& n, const std::string& what, const std::string& like,
                                        double v) {
  DType dt = dtype_of(like);
  if (dt != DType::Undefined && dt != DType::String) {
    std::string name = tensor_name(n, what);
    Tensor t = dt == DType::Double ? Tensor::from_vector(DType::Double, {}, std::vector<double>{v})
                                   : Tensor::scalar_float(static_cast<float>(v)).cast(dt);
    g_->add_initializer(name, t);
    return name;
  }
  if (to_ < 15)
    cannot(n, fmt::format("the element type of '{}' is unknown, so '{}' cannot become a typed input", like, what));
  Node cast;
  cast.op_type = "CastLike";
  cast.name = node_name(n, what + "_cast");
  cast.inputs = {const_f32(n, what + "_f32", {static_cast<float>(v)}, true), like};
  cast.outputs = {tensor_name(n, what)};
  std::string out = cast.outputs[0];
  emit(std::move(cast));
  return out;
}

const Tensor* OpsetConverter::constant(const std::string& name) const {
  auto defines = [&](const Graph& g) {
    if (g.find_initializer(name) || g.is_graph_input(name)) return true;
    for (const auto& n : g.nodes)
      if (std::find(n.outputs.begin(), n.outputs.end(), name) != n.outputs.end()) return true;
    return false;
  };
  if (defines(*g_)) return constant_value(*g_, name, overridable_);
  for (auto it = outer_.rbegin(); it != outer_.rend(); ++it)
    if (defines(**it)) return constant_value(**it, name, overridable_);
  return nullptr;
}

std::optional<Tensor> OpsetConverter::static_value(const std::string& name) const {
  ValueMemo memo;
  return static_value(name, 0, memo);
}

std::optional<Tensor> OpsetConverter::static_value(const std::string& name, int depth, ValueMemo& memo) const {
  if (name.empty()) return std::nullopt;
  if (const Tensor* t = constant(name)) return *t;
  if (auto m = memo.find(name); m != memo.end()) return m->second;
  std::optional<Tensor> v = evaluate(name, depth, memo);
  memo.emplace(name, v);
  return v;
}

std::optional<Tensor> OpsetConverter::evaluate(const std::string& name, int depth, ValueMemo& memo) const {
  if (const TensorType* t = shapes_ ? shapes_->find(name) : nullptr; t && t->value && is_integer(t->dtype)) {
    const std::optional<Shape> s = t->static_shape();
    std::vector<int64_t> v;
    for (const Dim& d : *t->value)
      if (d.param.empty() && d.value != INT64_MIN) v.push_back(d.value);  // else a symbol or unknown
    if (s && s->size() <= 1 && v.size() == t->value->size() && shape_numel(*s) == static_cast<int64_t>(v.size()))
      return Tensor::from_vector(DType::Int64, *s, v).cast(t->dtype);
  }
  // Deterministic ops of shape arithmetic only, a few levels up.
  static const std::unordered_set<std::string> kShapeMath = {
      "Cast", "Concat", "Div", "Mul", "Add", "Sub", "Slice", "Gather", "Unsqueeze", "Squeeze", "Reshape", "Identity",
      "Reciprocal", "Floor", "Ceil", "Max", "Min"};
  const auto it = idx_->producer.find(name);
  if (depth >= 16 || it == idx_->producer.end()) return std::nullopt;
  const Node& p = g_->nodes[it->second];
  if (!p.is_default_domain() || !kShapeMath.count(p.op_type)) return std::nullopt;
  std::vector<std::optional<Tensor>> vals;
  for (const auto& in : p.inputs) {
    vals.push_back(in.empty() ? std::nullopt : static_value(in, depth + 1, memo));
    if (!in.empty() && !vals.back()) return std::nullopt;
  }
  std::vector<const Tensor*> in;
  for (const auto& v : vals) in.push_back(v ? &*v : nullptr);
  const exec::KernelFactory f = exec::find_kernel(p.op_type, from_);
  if (!f) return std::nullopt;
  std::vector<Tensor> out(p.outputs.size());
  try {
    f(exec::KernelInit{p, from_})->run(in, out);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  for (size_t k = 0; k < out.size(); ++k)
    if (p.outputs[k] == name) return std::move(out[k]);
  return std::nullopt;
}

bool OpsetConverter::is_used(const std::string& t) const {
  if (t.empty()) return false;
  return idx_->consumers.count(t) || g_->is_graph_output(t);
}

static void set_input(Node& n, size_t i, const std::string& name) {
  if (n.inputs.size() <= i) n.inputs.resize(i + 1);
  n.inputs[i] = name;
}

bool OpsetConverter::axes_to_input(Node& n, const char* attr, size_t input_index) {
  if (!n.has_attr(attr)) return false;
  std::vector<int64_t> axes = n.attr_ints(attr);
  n.remove_attr(attr);
  if (!axes.empty()) set_input(n, input_index, const_i64(n, attr, axes));
  return true;
}

bool OpsetConverter::convert_split(Node& n) {
  bool changed = false;
  if (crosses(13)) changed |= axes_to_input(n, "split", 1);
  if (crosses(18) && n.input(1).empty() && !n.has_attr("num_outputs")) {
    n.set_attr_int("num_outputs", static_cast<int64_t>(n.outputs.size()));
    changed = true;
  }
  return changed;
}

bool OpsetConverter::convert_pad(Node& n) {
  if (!crosses(11)) return false;
  if (!n.has_attr("pads")) cannot(n, "Pad without a 'pads' attribute");
  std::vector<int64_t> pads = n.attr_ints("pads");
  float value = n.attr_float("value", 0.0f);
  n.remove_attr("pads");
  n.remove_attr("value");
  n.inputs.resize(1);
  n.inputs.push_back(const_i64(n, "pads", pads));
  // As onnx's version converter (Pad_10_11): constant mode always gets a constant_value input, 0 included (ORT's
  // QDQPad then quantizes it, so the Q/DQ counts match the reference flow); reflect / edge modes get none. A zero of
  // unknown element type below 15 (no CastLike to type it) is left as the default.
  const bool typed = dtype_of(n.input(0)) != DType::Undefined || to_ >= 15;
  if (n.attr_string("mode", "constant") == "constant" && (value != 0.0f || typed))
    n.inputs.push_back(scalar_like(n, "constant_value", n.input(0), value));
  return true;
}

bool OpsetConverter::convert_clip(Node& n) {
  if (!crosses(11)) return false;
  const bool has_min = n.has_attr("min"), has_max = n.has_attr("max");
  float lo = n.attr_float("min", 0), hi = n.attr_float("max", 0);
  n.remove_attr("min");
  n.remove_attr("max");
  n.inputs.resize(1);
  if (has_min || has_max) n.inputs.push_back(has_min ? scalar_like(n, "min", n.input(0), lo) : "");
  if (has_max) n.inputs.push_back(scalar_like(n, "max", n.input(0), hi));
  return true;
}

bool OpsetConverter::convert_slice(Node& n) {
  if (!crosses(10)) return false;
  if (!n.has_attr("starts") || !n.has_attr("ends")) cannot(n, "Slice without 'starts'/'ends' attributes");
  auto starts = n.attr_ints("starts"), ends = n.attr_ints("ends");
  n.inputs.resize(1);
  n.inputs.push_back(const_i64(n, "starts", starts));
  n.inputs.push_back(const_i64(n, "ends", ends));
  if (n.has_attr("axes")) n.inputs.push_back(const_i64(n, "axes", n.attr_ints("axes")));
  for (const char* a : {"starts", "ends", "axes"}) n.remove_attr(a);
  return true;
}

bool OpsetConverter::convert_topk(Node& n) {
  if (!crosses(10)) return false;
  if (!n.has_attr("k")) cannot(n, "TopK without a 'k' attribute");
  int64_t k = n.attr_int("k", 0);
  n.remove_attr("k");
  n.inputs.resize(1);
  n.inputs.push_back(const_i64(n, "k", {k}));
  return true;
}

bool OpsetConverter::convert_misc(Node& n) {
  static const std::unordered_set<std::string> kExperimental = {
      "ATen", "Affine", "ConstantFill", "Crop", "DynamicSlice", "GivenTensorFill", "GRUUnit", "ImageScaler",
      "ParametricSoftplus", "Scale", "ScaledTanh"};
  if (kExperimental.count(n.op_type)) cannot(n, "experimental operator removed from the standard");
  if (n.op_type == "Scan" && crosses(9)) cannot(n, "Scan-8 (batch axis) has no automatic Scan-9 equivalent");
  if (n.op_type == "Scatter" && crosses(11)) {
    n.op_type = "ScatterElements";
    return true;
  }
  if (n.op_type == "RoiAlign" && crosses(16) && !n.has_attr("coordinate_transformation_mode")) {
    n.set_attr_string("coordinate_transformation_mode", "output_half_pixel");
    return true;
  }
  if (n.op_type == "MeanVarianceNormalization" && !n.has_attr("axes")) {
    // Same default, made explicit: the opset-18+ function body reads the attribute through a Constant.
    n.set_attr_ints("axes", {0, 2, 3});
    return true;
  }
  if (n.op_type == "GroupNormalization" && crosses(21)) {
    // 18-20: scale / bias hold one value per group; 21: one per channel. Constant ones are repeated C / num_groups
    // times (C from X's shape information); anything else cannot be rewritten without knowing C.
    const int64_t groups = n.attr_int("num_groups", 0);
    const int64_t c = shapes_->channels(n.input(0)).value_or(-1);
    if (groups > 0 && c == groups) return false;  // one channel per group: same tensors
    if (groups <= 0 || c <= 0 || c % groups != 0)
      cannot(n, "GroupNormalization-21 takes one scale / bias value per channel; the channel count of X is unknown");
    for (size_t i = 1; i <= 2; ++i) {
      const Tensor* t = constant(n.input(i));
      if (!t || t->rank() != 1 || t->dim(0) != groups)
        cannot(n, fmt::format("input '{}' is not a constant with one value per group", n.input(i)));
      Tensor r(t->dtype(), {c});
      const size_t esz = dtype_size(t->dtype());
      for (int64_t k = 0; k < c; ++k)
        std::memcpy(static_cast<uint8_t*>(r.raw()) + k * esz, static_cast<const uint8_t*>(t->raw()) + (k / (c / groups)) * esz, esz);
      const std::string name = tensor_name(n, i == 1 ? "scale_per_channel" : "bias_per_channel");
      g_->add_initializer(name, std::move(r));
      n.inputs[i] = name;
    }
    return true;
  }
  if (n.op_type == "DFT" && crosses(20)) {
    // DFT-20 takes the axis as input 2 (default -2) where DFT-17 had an attribute (default 1).
    const int64_t axis = n.attr_int("axis", 1);
    n.remove_attr("axis");
    if (n.inputs.size() < 2) n.inputs.resize(2);
    set_input(n, 2, const_i64(n, "axis", {axis}, /*scalar=*/true));
    return true;
  }
  if (n.op_type == "Attention" && crosses(25) && (n.has_attr("q_num_heads") || n.has_attr("kv_num_heads")) &&
      shapes_->rank(n.input(0)) == 4) {
    // 23 / 24 ignore the head counts on 4-D inputs (the shape gives them); 25 refuses them there.
    n.remove_attr("q_num_heads");
    n.remove_attr("kv_num_heads");
    return true;
  }
  if (n.op_type == "GridSample" && crosses(20)) {
    std::string mode = n.attr_string("mode", "bilinear");
    n.set_attr_string("mode", mode == "bilinear" ? "linear" : mode == "bicubic" ? "cubic" : mode);
    return true;
  }
  return false;
}

bool OpsetConverter::convert_node(Node& n) {
  static const std::unordered_set<std::string> kReduce18 = {
      "ReduceMax", "ReduceMin", "ReduceMean", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
      "ReduceLogSumExp", "ReduceSumSquare"};
  const std::string& op = n.op_type;
  if (op == "Squeeze" || op == "Unsqueeze") {
    if (!crosses(13)) return false;
    if (op == "Unsqueeze" && !n.has_attr("axes")) cannot(n, "Unsqueeze without an 'axes' attribute");
    return axes_to_input(n, "axes", 1);
  }
  if (op == "ReduceSum") return crosses(13) && axes_to_input(n, "axes", 1);
  if ((op == "ReduceLogSum" || op == "ReduceLogSumExp") && crosses(28)) {
    // Version 28 drops the integer types: an integer input has no version-28 equivalent.
    const DType dt = n.inputs.empty() ? DType::Undefined : dtype_of(n.inputs[0]);
    if (dt != DType::Undefined && !is_float(dt))
      cannot(n, fmt::format("{} input (version 28 takes float types only)", dtype_name(dt)));
  }
  if (kReduce18.count(op)) return crosses(18) && axes_to_input(n, "axes", 1);
  if (op == "Split") return convert_split(n);
  if (op == "Pad") return convert_pad(n);
  if (op == "Clip") return convert_clip(n);
  if (op == "Slice") return convert_slice(n);
  if (op == "TopK") return convert_topk(n);
  if (op == "Resize") return convert_resize(n);
  if (op == "Upsample") return convert_upsample(n);
  if (op == "BatchNormalization") return convert_batchnorm(n);
  if (op == "Dropout") return convert_dropout(n);
  return convert_misc(n);
}

size_t OpsetConverter::convert_body(Graph& body, const Graph& outer, const ShapeInfo& outer_shapes,
                                     const Node& parent, const std::string& attr) {
  // The body's rewrites may need the element type, rank or channel count of a value it reads from an enclosing
  // graph (an attribute-form Clip's bounds become inputs typed like its input; a GroupNormalization's per-group
  // scale is repeated per channel): what the enclosing graph knows is given to the body as value info while it
  // converts.
  std::vector<std::string> added;
  for (const auto& name : implicit_inputs(parent)) {
    if (body.find_value_info(name)) continue;
    ValueInfo vi;
    vi.name = name;
    if (const TensorType* t = outer_shapes.find(name)) {
      vi.dtype = t->dtype;
      vi.shape = t->shape;
    }
    if (vi.dtype == DType::Undefined) vi.dtype = known_dtype(outer, name);
    if (vi.dtype == DType::Undefined && !vi.shape) continue;
    body.value_info.push_back(std::move(vi));
    added.push_back(name);
  }
  auto drop_added = [&] {
    std::erase_if(body.value_info, [&](const ValueInfo& v) {
      return std::find(added.begin(), added.end(), v.name) != added.end();
    });
  };
  size_t changed = 0;
  outer_.push_back(&outer);
  try {
    changed = convert(body);
  } catch (const Error& e) {
    outer_.pop_back();
    drop_added();
    fail(e.kind(), "node '{}' ({}): body '{}': {}", node_label(parent), parent.op_type, attr, e.what());
  }
  outer_.pop_back();
  drop_added();
  return changed;
}

size_t OpsetConverter::convert(Graph& g) {
  size_t changed = 0;
  const ShapeInfo shapes = infer_shapes(g, from_, overridable_);
  // Sub-graphs first (they see the same opset imports).
  for (auto& n : g.nodes)
    for (auto& a : n.attrs) {
      if (a.g) changed += convert_body(*a.g, g, shapes, n, a.name);
      for (auto& sg : a.graphs)
        if (sg) changed += convert_body(*sg, g, shapes, n, a.name);
    }
  GraphIndex idx(g);
  g_ = &g;
  shapes_ = &shapes;
  idx_ = &idx;
  out_.clear();
  // g.nodes stays unchanged while converting (type lookups follow the original producers); converted copies
  // go to out_.
  for (const auto& orig : g.nodes) {
    Node n = orig;
    if (!n.is_default_domain()) {
      emit(n);
      continue;
    }
    std::vector<Node> after;
    bool c = (n.op_type == "Softmax" || n.op_type == "LogSoftmax" || n.op_type == "Hardmax")
                 ? convert_softmax(n, after)
                 : convert_node(n);
    changed += c ? 1 : 0;
    emit(n);
    for (auto& a : after) emit(std::move(a));
  }
  g.nodes = std::move(out_);
  out_.clear();
  g_ = nullptr;
  shapes_ = nullptr;
  idx_ = nullptr;
  return changed;
}

}  // namespace detail

size_t convert_opset(Model& m, int target) {
  const int64_t from = m.default_opset();
  if (target < 7 || target > kMaxConvertOpset)
    fail(ErrorKind::Model, "convert_opset: target opset {} is outside [7, {}]", target, kMaxConvertOpset);
  if (from == 0) fail(ErrorKind::Model, "convert_opset: the model imports no default-domain (ai.onnx) opset");
  if (from < 7) fail(ErrorKind::Model, "convert_opset: converting from opset {} (< 7) is not supported", from);
  if (target < from)
    fail(ErrorKind::Model, "convert_opset: the model has opset {}; converting down to {} is not supported", from,
         target);
  size_t changed = 0;
  if (target > from) {
    NameGen names(m.graph);
    OpsetConverter conv(static_cast<int>(from), target, inputs_overridable(m), names);
    changed = conv.convert(m.graph);
    if (conv.left_dead_nodes()) remove_dead(m);
    m.set_default_opset(target);
    OQ_INFO("convert_opset: opset {} -> {}, {} nodes rewritten", from, target, changed);
  }
  const int64_t ir = std::max(m.ir_version, ir_version_for_opset(target));
  if (m.ir_version < 4 && ir >= 4) {
    // IR < 4 lists every initializer among the graph inputs, where it cannot be overridden; from IR 4 on such
    // an input would become overridable, so drop the initializers from the inputs to keep them constant.
    std::erase_if(m.graph.inputs, [&](const ValueInfo& v) { return m.graph.find_initializer(v.name) != nullptr; });
  }
  m.ir_version = ir;
  return changed;
}

}  // namespace oq::ir::passes
