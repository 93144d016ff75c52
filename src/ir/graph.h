// The graph IR: what every part of onnxquant except src/onnx/ works on. Protobuf never appears here.
// Parts of a model that onnxquant does not interpret (non-tensor types,
// training info, ...) are kept as opaque serialized bytes so that a load/save round trip keeps them.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace oq::ir {

// One dimension: a known size (value >= 0), a symbolic one (param non-empty), or unknown (neither).
struct Dim {
  int64_t value = -1;
  std::string param;
  bool known() const { return value >= 0; }
  bool operator==(const Dim&) const = default;
};

// IR 10 metadata_props (key / value pairs) of a graph, node or value info, in the file's order.
using Metadata = std::vector<std::pair<std::string, std::string>>;

struct ValueInfo {
  std::string name;
  DType dtype = DType::Undefined;
  std::optional<std::vector<Dim>> shape;  // nullopt: rank unknown
  std::string doc;
  std::string opaque_type;  // serialized TypeProto when the value is not a tensor (sequence, map, ...)
  Metadata metadata;
  bool operator==(const ValueInfo&) const = default;
  // Known dims as int64 (-1 for symbolic/unknown); empty optional when rank unknown.
  std::optional<Shape> static_shape() const;
};

struct Graph;

// The body of a graph attribute (If / Loop / Scan), held by value: copying an Attribute (a Node, a Graph, a Model)
// copies the body, so that an edited copy of a model (the executor's float16 copy, a pass run on a copy) never
// changes the original's bodies. Pointer-like access; built from a shared_ptr.
class GraphPtr {
 public:
  GraphPtr() = default;
  GraphPtr(std::shared_ptr<Graph> g) : p_(std::move(g)) {}  // NOLINT: implicit, as the shared_ptr it replaces
  GraphPtr(const GraphPtr& o);
  GraphPtr& operator=(const GraphPtr& o);
  GraphPtr(GraphPtr&&) noexcept = default;
  GraphPtr& operator=(GraphPtr&&) noexcept = default;
  Graph* operator->() const { return p_.get(); }
  Graph& operator*() const { return *p_; }
  Graph* get() const { return p_.get(); }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  std::shared_ptr<Graph> p_;
};

enum class AttrType { Undefined = 0, Float = 1, Int = 2, String = 3, Tensor = 4, Graph = 5,
                      Floats = 6, Ints = 7, Strings = 8, Tensors = 9, Graphs = 10,
                      SparseTensor = 11, SparseTensors = 12, TypeProto = 13, TypeProtos = 14 };

struct Attribute {
  std::string name;
  AttrType type = AttrType::Undefined;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  GraphPtr g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<GraphPtr> graphs;
  std::string ref_attr_name;  // attribute reference inside a function body
  std::string doc;
  std::string opaque;  // serialized AttributeProto for sparse tensors / type protos
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" or "ai.onnx" = default domain
  std::vector<std::string> inputs;   // "" = omitted optional input
  std::vector<std::string> outputs;  // "" = omitted optional output
  std::vector<Attribute> attrs;
  std::string doc;
  std::string overload;  // IR 10: which overload of a model-local function the node calls
  Metadata metadata;     // IR 10 metadata_props (nodes onnxquant creates have none)
  // The NodeIndex ONNX Runtime's Graph would give the node: its place among the file's nodes, then creation order
  // for the nodes rewrites create. The pre-processing numbers nodes and writes them in ORT's order by it
  // (src/ir/passes/ort_graph_order.h); -1: not numbered yet. Not written to files.
  int64_t ort_index = -1;
  // IR 11 device_configurations, each a serialized NodeDeviceConfigurationProto, written back as read.
  std::vector<std::string> opaque_device_configurations;

  const Attribute* attr(const std::string& n) const;
  bool has_attr(const std::string& n) const { return attr(n) != nullptr; }
  // Typed getters; throw a Model error naming the node if the attribute has another type.
  int64_t attr_int(const std::string& n, int64_t def) const;
  float attr_float(const std::string& n, float def) const;
  std::string attr_string(const std::string& n, const std::string& def) const;
  std::vector<int64_t> attr_ints(const std::string& n, std::vector<int64_t> def = {}) const;
  std::vector<float> attr_floats(const std::string& n, std::vector<float> def = {}) const;
  const Tensor* attr_tensor(const std::string& n) const;
  void set_attr_int(const std::string& n, int64_t v);
  void set_attr_ints(const std::string& n, std::vector<int64_t> v);
  void set_attr_float(const std::string& n, float v);
  void set_attr_string(const std::string& n, std::string v);
  void remove_attr(const std::string& n);
  bool is_default_domain() const { return domain.empty() || domain == "ai.onnx"; }
  // Input i if present and non-empty, else "".
  const std::string& input(size_t i) const;
};

// How errors name a node: its name, or "(unnamed) -> <first output>" for the many exporters that leave
// names empty.
std::string node_label(const Node& n);

// Why a default-domain BatchNormalization computes batch statistics (training mode) at `opset`, else "": from 14
// `training_mode=1`; below 14 any named output beyond Y (the spec's running / saved mean and variance, which
// onnxruntime computes from the batch). onnxquant runs and quantizes inference nodes only.
std::string batchnorm_training_reason(const Node& n, int64_t opset);

struct Initializer {
  std::string name;
  Tensor tensor;
  std::string doc;
  Metadata metadata;  // IR 10 metadata_props of the TensorProto (initializers onnxquant creates have none)
};

struct Graph {
  std::string name;
  std::string doc;
  std::vector<Node> nodes;  // in the file's order (topological for valid models)
  std::vector<ValueInfo> inputs, outputs, value_info;
  std::vector<Initializer> initializers;
  std::vector<std::string> opaque_quantization_annotation;  // serialized TensorAnnotation
  Metadata metadata;  // IR 10 metadata_props

  // Initializer lookup (linear index rebuilt lazily; call reindex() after editing the vector directly).
  const Initializer* find_initializer(const std::string& n) const;
  Initializer* find_initializer(const std::string& n);
  void add_initializer(std::string n, Tensor t);
  bool remove_initializer(const std::string& n);
  const ValueInfo* find_value_info(const std::string& n) const;  // inputs, outputs, value_info
  bool is_graph_input(const std::string& n) const;
  bool is_graph_output(const std::string& n) const;
  // Graph inputs that are not initializers (the real model inputs).
  std::vector<const ValueInfo*> real_inputs() const;
  void reindex() const;

 private:
  mutable std::unordered_map<std::string, size_t> init_index_;
  mutable bool index_valid_ = false;
};

inline GraphPtr::GraphPtr(const GraphPtr& o) : p_(o.p_ ? std::make_shared<Graph>(*o.p_) : nullptr) {}
inline GraphPtr& GraphPtr::operator=(const GraphPtr& o) {
  if (this != &o) p_ = o.p_ ? std::make_shared<Graph>(*o.p_) : nullptr;
  return *this;
}

struct OpsetImport {
  std::string domain;
  int64_t version = 0;
  bool operator==(const OpsetImport&) const = default;
};

// A model-local function (FunctionProto), as parsed at load; `serialized` is the FunctionProto as read, written
// back unchanged while the function is kept (functions no node calls).
struct Function {
  std::string name, domain, overload, doc;
  std::vector<std::string> inputs, outputs;
  std::vector<std::string> attributes;       // attribute names without a default
  std::vector<Attribute> attribute_defaults;  // attribute_proto: attributes with a default value
  std::vector<Node> nodes;
  std::vector<OpsetImport> opsets;
  std::string serialized;
  // "domain.name" (":overload" when set), as errors name it.
  std::string label() const;
};

struct Model {
  int64_t ir_version = 0;
  std::vector<OpsetImport> opsets;
  std::string producer_name, producer_version, domain, doc;
  int64_t model_version = 0;
  std::vector<std::pair<std::string, std::string>> metadata_props;
  std::vector<Function> functions;                // model-local functions (inlined by inline_local_functions)
  std::vector<std::string> opaque_training_info;  // serialized TrainingInfoProto
  std::vector<std::string> opaque_configuration;  // IR 11: serialized DeviceConfigurationProto
  Graph graph;
  // Files the model's external data were read from (resolved paths; empty when it had none): every file a tensor
  // was read from (initializers, Constant value / sparse_value, tensor attributes, subgraphs, functions) and the
  // files named by the parts kept unread (training_info, sparse-tensor attributes). Outputs must never be written
  // over them.
  std::vector<std::string> external_data_files;

  // Opset of the default domain ("" / "ai.onnx"); 0 if not imported.
  int64_t default_opset() const;
  void set_default_opset(int64_t v);
  int64_t opset_of(const std::string& domain) const;
};

// Consumers/producers index over a graph (rebuilt on demand by passes).
struct GraphIndex {
  std::unordered_map<std::string, size_t> producer;                    // tensor -> node index
  std::unordered_map<std::string, std::vector<size_t>> consumers;      // tensor -> node indices
  explicit GraphIndex(const Graph& g);
};

// A GraphIndex built when first asked for and again after invalidate(): for a pass that looks at every node but
// changes the graph rarely (an index per candidate node made these passes quadratic in string hashing).
class LazyGraphIndex {
 public:
  explicit LazyGraphIndex(const Graph& g) : g_(g) {}
  const GraphIndex& get() {
    if (!idx_) idx_.emplace(g_);
    return *idx_;
  }
  // After any change to the nodes (inputs, outputs, a node added or erased).
  void invalidate() { idx_.reset(); }

 private:
  const Graph& g_;
  std::optional<GraphIndex> idx_;
};

// Whether a node has graph attributes (If / Loop / Scan bodies).
bool has_subgraphs(const Node& n);
// The outer-scope names a node's bodies read (ONNX's implicit inputs): every name a body node (nested bodies
// included) reads, or a body output, that the body itself does not define (formal inputs, initializers, node
// outputs). In first-read order, without repeats; empty for a node without bodies. `body_of` (optional)
// receives, for each name, the attribute name of the first body that reads it.
std::vector<std::string> implicit_inputs(const Node& n, std::vector<std::string>* body_of = nullptr);

// Refuses (a Model error naming the name, and the node with the bodies when in one) two nodes of one graph with the
// same non-empty name, as onnxruntime's Graph does (the model is invalid: "two nodes with same node name"). Each
// graph is checked on its own, If / Loop / Scan bodies included: a body may reuse a name of the outer graph, as ORT
// allows.
void check_unique_node_names(const Graph& g);

// Nodes in a topological order (stable: file order among ready nodes). Throws a Model error naming a node
// on a cycle or on an input that nothing produces (and that is not a graph input or initializer). A node's
// implicit inputs (names its bodies read from this graph) order it after their producers like its inputs; an
// implicit input that nothing produces is an error naming the node and the body, unless it is in `outer`
// (names of enclosing scopes, when g is itself a body).
std::vector<size_t> topological_order(const Graph& g, const std::unordered_set<std::string>* outer = nullptr);

}  // namespace oq::ir
