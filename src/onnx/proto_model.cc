#include "onnx/proto_model.h"

#include "onnx/proto_sparse.h"
#include "onnx/proto_tensor.h"

namespace oq::onnx::detail {
namespace {

using ::onnx::AttributeProto;
using ::onnx::FunctionProto;
using ::onnx::GraphProto;
using ::onnx::ModelProto;
using ::onnx::NodeProto;
using ::onnx::TypeProto;
using ::onnx::ValueInfoProto;

// ---- metadata_props ----

template <class P>
ir::Metadata metadata_from(const P& p) {
  ir::Metadata md;
  for (const auto& kv : p.metadata_props()) md.emplace_back(kv.key(), kv.value());
  return md;
}

template <class P>
void metadata_to(const ir::Metadata& md, P* p) {
  for (const auto& [k, v] : md) {
    auto* kv = p->add_metadata_props();
    kv->set_key(k);
    kv->set_value(v);
  }
}

// ---- types ----

// The IR's view of a tensor TypeProto.
void tensor_type_to_ir(const TypeProto& tp, DType* dtype, std::optional<std::vector<ir::Dim>>* shape) {
  const auto& tt = tp.tensor_type();
  *dtype = dtype_is_known(tt.elem_type()) ? static_cast<DType>(tt.elem_type()) : DType::Undefined;
  shape->reset();
  if (!tt.has_shape()) return;
  std::vector<ir::Dim> dims;
  for (const auto& d : tt.shape().dim()) {
    ir::Dim dim;
    if (d.has_dim_value()) dim.value = d.dim_value() >= 0 ? d.dim_value() : -1;
    else if (d.has_dim_param()) dim.param = d.dim_param();
    dims.push_back(std::move(dim));
  }
  *shape = std::move(dims);
}

// TypeProto from the IR's dtype/shape; false when there is no type to write (undefined dtype, no shape).
bool tensor_type_from_ir(DType dtype, const std::optional<std::vector<ir::Dim>>& shape, TypeProto* tp) {
  if (dtype == DType::Undefined && !shape) return false;
  auto* tt = tp->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(dtype));
  if (shape) {
    auto* sp = tt->mutable_shape();
    for (const auto& d : *shape) {
      auto* pd = sp->add_dim();
      if (d.known()) pd->set_dim_value(d.value);
      else if (!d.param.empty()) pd->set_dim_param(d.param);
    }
  }
  return true;
}

ir::ValueInfo value_info_from_proto(const ValueInfoProto& p) {
  ir::ValueInfo v;
  v.name = p.name();
  v.doc = p.doc_string();
  v.metadata = metadata_from(p);
  if (!p.has_type()) return v;
  const TypeProto& tp = p.type();
  if (!tp.has_tensor_type()) {
    v.opaque_type = tp.SerializeAsString();
    return v;
  }
  tensor_type_to_ir(tp, &v.dtype, &v.shape);
  TypeProto canon;
  bool has = tensor_type_from_ir(v.dtype, v.shape, &canon);
  if (!has || canon.SerializeAsString() != tp.SerializeAsString()) v.opaque_type = tp.SerializeAsString();
  return v;
}

void value_info_to_proto(const ir::ValueInfo& v, ValueInfoProto* p) {
  p->set_name(v.name);
  if (!v.doc.empty()) p->set_doc_string(v.doc);
  metadata_to(v.metadata, p);
  if (!v.opaque_type.empty()) {
    TypeProto kept;
    if (!kept.ParseFromString(v.opaque_type))
      fail(ErrorKind::Model, "value '{}': kept type is not a serialized TypeProto", v.name);
    bool use_kept = !kept.has_tensor_type();
    if (!use_kept) {  // a tensor type: still valid only if dtype/shape were not edited
      DType dt;
      std::optional<std::vector<ir::Dim>> shape;
      tensor_type_to_ir(kept, &dt, &shape);
      use_kept = dt == v.dtype && shape == v.shape;
    }
    if (use_kept) {
      *p->mutable_type() = std::move(kept);
      return;
    }
  }
  TypeProto tp;
  if (tensor_type_from_ir(v.dtype, v.shape, &tp)) *p->mutable_type() = std::move(tp);
}

// ---- external data of the parts kept unread ----

// Notes the file of every external tensor in parts written back as they were read (training_info, sparse-tensor
// attributes): not read, but the written model still names them, so no output may replace them either. A
// location that reading would refuse ('..', absolute) names no file of the model's folder: skipped.
void note_kept_external(const ::onnx::TensorProto& t, const ExternalDir& ext) {
  if (t.data_location() != ::onnx::TensorProto::EXTERNAL) return;
  for (const auto& kv : t.external_data())
    if (kv.key() == "location") try {
        ext.note(resolve_external_location(ext.base_dir, kv.value(), t.name()));
      } catch (const Error&) {
      }
}

void note_kept_external(const ::onnx::SparseTensorProto& s, const ExternalDir& ext) {
  note_kept_external(s.values(), ext);
  note_kept_external(s.indices(), ext);
}

void note_kept_external(const GraphProto& g, const ExternalDir& ext);

void note_kept_external(const AttributeProto& a, const ExternalDir& ext) {
  if (a.has_t()) note_kept_external(a.t(), ext);
  for (const auto& t : a.tensors()) note_kept_external(t, ext);
  if (a.has_sparse_tensor()) note_kept_external(a.sparse_tensor(), ext);
  for (const auto& s : a.sparse_tensors()) note_kept_external(s, ext);
  if (a.has_g()) note_kept_external(a.g(), ext);
  for (const auto& g : a.graphs()) note_kept_external(g, ext);
}

void note_kept_external(const GraphProto& g, const ExternalDir& ext) {
  for (const auto& t : g.initializer()) note_kept_external(t, ext);
  for (const auto& s : g.sparse_initializer()) note_kept_external(s, ext);
  for (const auto& n : g.node())
    for (const auto& a : n.attribute()) note_kept_external(a, ext);
}

// ---- graphs ----

ir::Graph graph_from_proto(GraphProto& p, const ExternalDir& ext);
void graph_to_proto(const ir::Graph& g, GraphProto* p);

ir::Attribute attr_from_proto(AttributeProto& p, const ExternalDir& ext) {
  ir::Attribute a;
  a.name = p.name();
  a.ref_attr_name = p.ref_attr_name();
  a.doc = p.doc_string();
  if (!a.ref_attr_name.empty()) {
    // A reference (function bodies only) carries a name and a type but no value: none is parsed, whatever the type
    // (an empty TensorProto is not a tensor: "unsupported data type 0"). The inliner puts the call's attribute in.
    a.type = p.type() >= 0 && p.type() <= 14 ? static_cast<ir::AttrType>(p.type()) : ir::AttrType::Undefined;
    return a;
  }
  switch (p.type()) {
    case AttributeProto::FLOAT: a.f = p.f(); break;
    case AttributeProto::INT: a.i = p.i(); break;
    case AttributeProto::STRING: a.s = p.s(); break;
    case AttributeProto::TENSOR:
      a.t = tensor_from_proto(p.t(), ext);
      a.s = p.t().name();
      break;
    case AttributeProto::GRAPH: a.g = std::make_shared<ir::Graph>(graph_from_proto(*p.mutable_g(), ext)); break;
    case AttributeProto::FLOATS: a.floats.assign(p.floats().begin(), p.floats().end()); break;
    case AttributeProto::INTS: a.ints.assign(p.ints().begin(), p.ints().end()); break;
    case AttributeProto::STRINGS: a.strings.assign(p.strings().begin(), p.strings().end()); break;
    case AttributeProto::TENSORS:
      for (const auto& t : p.tensors()) {
        a.tensors.push_back(tensor_from_proto(t, ext));
        a.strings.push_back(t.name());
      }
      break;
    case AttributeProto::GRAPHS:
      for (auto& g : *p.mutable_graphs()) a.graphs.push_back(std::make_shared<ir::Graph>(graph_from_proto(g, ext)));
      break;
    default:  // sparse tensors, type protos, undefined or unknown types: kept as they are
      note_kept_external(p, ext);
      a.type = ir::AttrType::Undefined;
      a.opaque = p.SerializeAsString();
      if (p.type() >= 11 && p.type() <= 14) a.type = static_cast<ir::AttrType>(p.type());
      return a;
  }
  a.type = static_cast<ir::AttrType>(p.type());
  return a;
}

void attr_to_proto(const ir::Attribute& a, AttributeProto* p) {
  if (!a.opaque.empty()) {
    if (!p->ParseFromString(a.opaque))
      fail(ErrorKind::Model, "attribute '{}': kept bytes are not a serialized AttributeProto", a.name);
    p->set_name(a.name);
    return;
  }
  p->set_name(a.name);
  if (!a.doc.empty()) p->set_doc_string(a.doc);
  p->set_type(static_cast<AttributeProto::AttributeType>(a.type));
  if (!a.ref_attr_name.empty()) {  // a reference has no value (attr_from_proto)
    p->set_ref_attr_name(a.ref_attr_name);
    return;
  }
  switch (a.type) {
    case ir::AttrType::Float: p->set_f(a.f); break;
    case ir::AttrType::Int: p->set_i(a.i); break;
    case ir::AttrType::String: p->set_s(a.s); break;
    case ir::AttrType::Tensor:
      tensor_to_proto(a.t, p->mutable_t());
      if (!a.s.empty()) p->mutable_t()->set_name(a.s);
      break;
    case ir::AttrType::Graph:
      if (!a.g) fail(ErrorKind::Model, "attribute '{}': graph attribute without a graph", a.name);
      graph_to_proto(*a.g, p->mutable_g());
      break;
    case ir::AttrType::Floats: for (float f : a.floats) p->add_floats(f); break;
    case ir::AttrType::Ints: for (int64_t i : a.ints) p->add_ints(i); break;
    case ir::AttrType::Strings: for (const auto& s : a.strings) p->add_strings(s); break;
    case ir::AttrType::Tensors:
      for (size_t i = 0; i < a.tensors.size(); ++i) {
        auto* t = p->add_tensors();
        tensor_to_proto(a.tensors[i], t);
        if (a.strings.size() == a.tensors.size() && !a.strings[i].empty()) t->set_name(a.strings[i]);
      }
      break;
    case ir::AttrType::Graphs:
      for (const auto& g : a.graphs) {
        if (!g) fail(ErrorKind::Model, "attribute '{}': null graph in a graphs attribute", a.name);
        graph_to_proto(*g, p->add_graphs());
      }
      break;
    default:
      fail(ErrorKind::Model, "attribute '{}': type {} needs its serialized form", a.name, static_cast<int>(a.type));
  }
}

// Constant's sparse_value as the dense `value` it stands for (onnxruntime makes such a Constant a dense
// initializer): the executor and the passes then read it as any other Constant.
ir::Attribute dense_constant_value(const AttributeProto& p, const ExternalDir& ext) {
  ir::Attribute a;
  a.name = "value";
  a.type = ir::AttrType::Tensor;
  a.doc = p.doc_string();
  a.t = sparse_to_dense(p.sparse_tensor(), ext);
  a.s = p.sparse_tensor().values().name();
  return a;
}

ir::Node node_from_proto(NodeProto& p, const ExternalDir& ext) {
  ir::Node n;
  n.name = p.name();
  n.op_type = p.op_type();
  n.domain = p.domain() == "ai.onnx" ? std::string() : p.domain();  // one spelling of the default domain
  n.doc = p.doc_string();
  n.overload = p.overload();
  n.metadata = metadata_from(p);
  n.inputs.assign(p.input().begin(), p.input().end());
  n.outputs.assign(p.output().begin(), p.output().end());
  for (const auto& c : p.device_configurations()) n.opaque_device_configurations.push_back(c.SerializeAsString());
  const bool constant = n.op_type == "Constant" && n.domain.empty();
  for (auto& a : *p.mutable_attribute()) {
    try {
      if (constant && a.name() == "sparse_value" && a.type() == AttributeProto::SPARSE_TENSOR &&
          a.ref_attr_name().empty())
        n.attrs.push_back(dense_constant_value(a, ext));
      else
        n.attrs.push_back(attr_from_proto(a, ext));
    } catch (const Error& e) {
      fail(e.kind(), "node '{}' ({}): {}", n.name, n.op_type, e.what());
    }
  }
  return n;
}

void node_to_proto(const ir::Node& n, NodeProto* p) {
  for (const auto& i : n.inputs) p->add_input(i);
  for (const auto& o : n.outputs) p->add_output(o);
  if (!n.name.empty()) p->set_name(n.name);
  p->set_op_type(n.op_type);
  if (!n.domain.empty()) p->set_domain(n.domain);
  if (!n.doc.empty()) p->set_doc_string(n.doc);
  if (!n.overload.empty()) p->set_overload(n.overload);
  metadata_to(n.metadata, p);
  for (const auto& c : n.opaque_device_configurations)
    if (!p->add_device_configurations()->ParseFromString(c))
      fail(ErrorKind::Model, "node '{}' ({}): kept device_configurations entry does not parse", n.name, n.op_type);
  for (const auto& a : n.attrs) {
    try {
      attr_to_proto(a, p->add_attribute());
    } catch (const Error& e) {
      fail(e.kind(), "node '{}' ({}): {}", n.name, n.op_type, e.what());
    }
  }
}

ir::Graph graph_from_proto(GraphProto& p, const ExternalDir& ext) {
  ir::Graph g;
  g.name = p.name();
  g.doc = p.doc_string();
  g.metadata = metadata_from(p);
  g.nodes.reserve(p.node_size());
  for (auto& n : *p.mutable_node()) g.nodes.push_back(node_from_proto(n, ext));
  for (const auto& v : p.input()) g.inputs.push_back(value_info_from_proto(v));
  for (const auto& v : p.output()) g.outputs.push_back(value_info_from_proto(v));
  for (const auto& v : p.value_info()) g.value_info.push_back(value_info_from_proto(v));
  g.initializers.reserve(p.initializer_size());
  for (auto& t : *p.mutable_initializer()) {
    g.initializers.push_back({t.name(), tensor_from_proto_taking(t, ext), t.doc_string(), metadata_from(t)});
    t.clear_raw_data();  // release the file's copy as we go (when it was copied)
  }
  // Sparse initializers become ordinary (dense) ones, as onnxruntime's Graph makes them; they are written dense.
  for (const auto& s : p.sparse_initializer())
    g.initializers.push_back({s.values().name(), sparse_to_dense(s, ext), s.values().doc_string(), {}});
  for (const auto& q : p.quantization_annotation())
    g.opaque_quantization_annotation.push_back(q.SerializeAsString());
  g.reindex();
  return g;
}

void graph_to_proto(const ir::Graph& g, GraphProto* p) {
  for (const auto& n : g.nodes) node_to_proto(n, p->add_node());
  if (!g.name.empty()) p->set_name(g.name);
  for (const auto& init : g.initializers) {
    auto* t = p->add_initializer();
    tensor_to_proto(init.tensor, t);
    t->set_name(init.name);
    if (!init.doc.empty()) t->set_doc_string(init.doc);
    metadata_to(init.metadata, t);
  }
  if (!g.doc.empty()) p->set_doc_string(g.doc);
  metadata_to(g.metadata, p);
  for (const auto& v : g.inputs) value_info_to_proto(v, p->add_input());
  for (const auto& v : g.outputs) value_info_to_proto(v, p->add_output());
  for (const auto& v : g.value_info) value_info_to_proto(v, p->add_value_info());
  for (const auto& q : g.opaque_quantization_annotation)
    if (!p->add_quantization_annotation()->ParseFromString(q))
      fail(ErrorKind::Model, "graph '{}': kept quantization annotation does not parse", g.name);
}

// The default domain may be spelled "ai.onnx" (onnxruntime reads it as ""; onnx.checker does not): the IR keeps
// one spelling, "", so that the nodes and imports the quantization adds agree with the model's.
template <typename Imports>
std::vector<ir::OpsetImport> opsets_from(const Imports& imports, const std::string& owner) {
  std::vector<ir::OpsetImport> r;
  for (const auto& o : imports) {
    const std::string d = o.domain() == "ai.onnx" ? std::string() : o.domain();
    bool seen = false;
    for (const auto& e : r)
      if (e.domain == d) {
        if (e.version != o.version())
          fail(ErrorKind::Model, "{} imports domain '{}' twice, at opsets {} and {}", owner, d.empty() ? "ai.onnx" : d,
               e.version, o.version());
        seen = true;
      }
    if (!seen) r.push_back({d, o.version()});
  }
  return r;
}

ir::Function function_from_proto(FunctionProto& p, const ExternalDir& ext) {
  ir::Function f;
  f.serialized = p.SerializeAsString();
  f.name = p.name();
  f.domain = p.domain();
  f.overload = p.overload();
  f.doc = p.doc_string();
  f.inputs.assign(p.input().begin(), p.input().end());
  f.outputs.assign(p.output().begin(), p.output().end());
  f.attributes.assign(p.attribute().begin(), p.attribute().end());
  try {
    for (auto& a : *p.mutable_attribute_proto()) f.attribute_defaults.push_back(attr_from_proto(a, ext));
    for (auto& n : *p.mutable_node()) f.nodes.push_back(node_from_proto(n, ext));
  } catch (const Error& e) {
    fail(e.kind(), "function '{}': {}", f.label(), e.what());
  }
  f.opsets = opsets_from(p.opset_import(), "function '" + f.label() + "'");
  return f;
}

}  // namespace

ir::Model model_from_proto(ModelProto& pb, const ExternalDir& ext) {
  ir::Model m;
  m.ir_version = pb.ir_version();
  m.opsets = opsets_from(pb.opset_import(), "the model");
  m.producer_name = pb.producer_name();
  m.producer_version = pb.producer_version();
  m.domain = pb.domain();
  m.model_version = pb.model_version();
  m.doc = pb.doc_string();
  for (const auto& kv : pb.metadata_props()) m.metadata_props.emplace_back(kv.key(), kv.value());
  for (auto& f : *pb.mutable_functions()) m.functions.push_back(function_from_proto(f, ext));
  for (const auto& t : pb.training_info()) {
    m.opaque_training_info.push_back(t.SerializeAsString());
    note_kept_external(t.initialization(), ext);
    note_kept_external(t.algorithm(), ext);
  }
  for (const auto& c : pb.configuration()) m.opaque_configuration.push_back(c.SerializeAsString());
  m.graph = graph_from_proto(*pb.mutable_graph(), ext);
  return m;
}

void model_to_proto(const ir::Model& m, ModelProto* pb) {
  pb->set_ir_version(m.ir_version);
  if (!m.producer_name.empty()) pb->set_producer_name(m.producer_name);
  if (!m.producer_version.empty()) pb->set_producer_version(m.producer_version);
  if (!m.domain.empty()) pb->set_domain(m.domain);
  if (m.model_version != 0) pb->set_model_version(m.model_version);
  if (!m.doc.empty()) pb->set_doc_string(m.doc);
  graph_to_proto(m.graph, pb->mutable_graph());
  for (const auto& o : m.opsets) {
    auto* op = pb->add_opset_import();
    op->set_domain(o.domain);
    op->set_version(o.version);
  }
  for (const auto& [k, v] : m.metadata_props) {
    auto* kv = pb->add_metadata_props();
    kv->set_key(k);
    kv->set_value(v);
  }
  for (const auto& t : m.opaque_training_info)
    if (!pb->add_training_info()->ParseFromString(t))
      fail(ErrorKind::Model, "kept training_info does not parse");
  for (const auto& c : m.opaque_configuration)
    if (!pb->add_configuration()->ParseFromString(c)) fail(ErrorKind::Model, "kept configuration does not parse");
  for (const auto& f : m.functions)
    if (!pb->add_functions()->ParseFromString(f.serialized))
      fail(ErrorKind::Model, "kept function '{}' does not parse", f.label());
}

}  // namespace oq::onnx::detail
