// Bodies of control-flow nodes (If branches, Loop / Scan bodies): a small executor built once, when the parent
// node's kernel is built, and run as many times as the node needs (each branch taken, each iteration).
//
// A body reads its formal inputs (Loop: iteration number, condition, loop-carried values; Scan: states and
// slices; If: none) and outer-scope values by name: the parent node's implicit inputs (ir::implicit_inputs),
// which the session passes to the parent's kernel after its own inputs. Nested bodies work the same way: a
// control-flow node inside a body gets its own implicit inputs from the body's values or from further out.
// Observers and fake quantization never see body tensors (ONNX Runtime calibrates and quantizes only the main
// graph's tensors); errors name the parent node and the body: "node 'P' (Loop): body 'body': node 'N' (Add): ...".
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "exec/kernel.h"
#include "ir/graph.h"

namespace oq::exec {

class Body {
 public:
  // `outer`: the parent node's implicit inputs (their values come in run()'s `outer`, same order). Checks that
  // the body's inputs and outputs are tensors (sequence / optional values are refused) and builds one kernel
  // per body node.
  Body(const ir::Graph& body, const std::string& attr, const ir::Node& parent, int opset,
       const std::vector<std::string>& outer);
  ~Body();
  Body(const Body&) = delete;
  Body& operator=(const Body&) = delete;

  size_t num_inputs() const { return input_ids_.size(); }
  size_t num_outputs() const { return output_ids_.size(); }
  const ir::Graph& graph() const { return g_; }
  const std::string& attr() const { return attr_; }

  // inputs: one per formal input (in order); outer: one per outer name. Returns the body outputs in order.
  std::vector<Tensor> run(const std::vector<const Tensor*>& inputs, const std::vector<const Tensor*>& outer) const;

 private:
  [[noreturn]] void fail_here(const std::string& msg) const;

  const ir::Node& parent_;
  std::string attr_;
  ir::Graph g_;
  int opset_;
  std::vector<std::string> names_;
  std::vector<Tensor> constants_;  // by id (body initializers)
  std::vector<int> input_ids_, outer_ids_, output_ids_;
  std::vector<size_t> order_;
  std::vector<std::vector<std::string>> implicit_;  // per step: the step node's implicit inputs
  std::vector<std::unique_ptr<Kernel>> kernels_;
  std::vector<std::vector<int>> step_inputs_, step_outputs_, step_frees_;
};

// A graph attribute of a control-flow node, checked: present and of type GRAPH (errors name the node).
const ir::Graph& body_attr(const ir::Node& n, const char* name);

}  // namespace oq::exec
