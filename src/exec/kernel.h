// Kernel interface. A kernel is built once per node: its factory parses and validates the node's
// attributes into a typed struct (errors name the node) and returns an object whose run() only computes.
//
// Conventions for every kernel:
//  - `in[i]` is null for an omitted optional input (empty name or fewer inputs than the schema allows).
//  - run() assigns every output it produces: `out[i] = Tensor(dtype, shape)` then fills it.
//    out.size() == node.outputs.size(); an omitted optional output ("" name) may be left empty.
//  - Shapes are found by execution: kernels compute output shapes from input shapes/values at run time.
//  - Input errors found at run time (incompatible shapes, bad indices) throw oq::Error(ErrorKind::Model, ...)
//    naming the node: use kfail(ctx.node ...) below.
//  - Every optimised path keeps a naive reference (a free function in the same file, declared in a header
//    under exec/kernels/ so tests can reach it).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::exec {

struct KernelInit {
  const ir::Node& node;
  int opset;  // version of the default-domain opset imported by the model
  // Nodes with bodies (If / Loop / Scan): the outer-scope names the bodies read (ir::implicit_inputs), in the
  // order their values follow the node's own inputs in run()'s `in`. Null for other nodes.
  const std::vector<std::string>* implicit = nullptr;
  // Every float input of the node is finite whenever the run's feeds are (exec/finite.h; set by the Session's
  // plan, false elsewhere). Read by the kernels whose fast path needs finite inputs (Conv with a fused Relu / Clip).
  bool finite_with_feeds = false;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) = 0;
};

using KernelFactory = std::unique_ptr<Kernel> (*)(const KernelInit&);

// Registers op_type (default domain) for opsets [min_opset, max_opset].
struct KernelRegistration {
  KernelRegistration(const char* op_type, int min_opset, int max_opset, KernelFactory f);
};

// Factory for (op_type, opset) or null when unsupported.
KernelFactory find_kernel(const std::string& op_type, int opset);
std::vector<std::string> registered_ops();
// The lowest opset at which op_type (default domain) has a kernel, or 0 when it has none. The registrations start
// at the ops' ONNX since-versions (tests/python/test_opset_convert_fixes.py checks them against onnx's
// schemas), so this is where the op appears.
int first_kernel_opset(const std::string& op_type);

// Checks done on load, before any work: refuses (one Model error naming the node) a default-domain node whose op
// appears only at a later opset than the model imports (ONNX's checker and onnxruntime refuse such a model; it is
// not the op's first version), a BatchNormalization in training mode (ir::batchnorm_training_reason), and a node of
// another domain than ai.onnx (com.microsoft contrib ops such as FusedMatMul or Gelu, ai.onnx.ml ops: the executor
// runs ai.onnx ops only; ORT's com.microsoft QuantizeLinear / DequantizeLinear excepted). Bodies of If / Loop / Scan
// included.
void check_model_ops(const ir::Model& m);

// The highest default-domain opset the executor supports.
inline constexpr int kMaxOpset = 28;
inline constexpr int kMinOpset = 7;

#define OQ_CONCAT_INNER(a, b) a##b
#define OQ_CONCAT(a, b) OQ_CONCAT_INNER(a, b)
// OQ_REGISTER_KERNEL(Relu, 6, 21, make_relu) — at namespace scope in a kernels/*.cc file.
#define OQ_REGISTER_KERNEL(op, lo, hi, factory) \
  static ::oq::exec::KernelRegistration OQ_CONCAT(oq_reg_, __COUNTER__)(#op, lo, hi, factory)

// Throws a Model error naming the node: "node 'NAME' (OpType): message".
template <typename... Args>
[[noreturn]] void kfail(const ir::Node& node, fmt::format_string<Args...> f, Args&&... args) {
  fail(ErrorKind::Model, "node '{}' ({}): {}", ir::node_label(node), node.op_type,
       fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace oq::exec
