// Checks default-domain (ai.onnx) nodes against the operator schema in force at the model's opset, as onnx.checker
// does: input / output counts (an empty name only where the schema's parameter is optional), unknown attributes,
// attributes given twice, required attributes missing and attribute types. The schemas are a table generated from
// onnx (src/ir/op_schemas_table.inc, scripts/gen_op_schemas.py): Debian's libonnx (1.12, opset 17) is too old to
// check models up to opset 28 with its own checker. Nodes of other domains are not checked.
#pragma once
#include <cstdint>
#include <string>

#include "ir/graph.h"

namespace oq::ir {

// What is wrong with default-domain node `n` at ai.onnx opset `opset`, "" when it fits its schema (or is not in the
// default domain). The text does not name the node (the caller does).
std::string schema_problem(const Node& n, int64_t opset);

// Every default-domain node of the graph and of its If / Loop / Scan bodies at `opset`; throws a Model error
// "node 'NAME' (OP): problem" for the first node that does not fit.
void check_graph_schemas(const Graph& g, int64_t opset);

// check_graph_schemas on the model's graph at its ai.onnx opset (nothing when it imports none).
void check_model_schemas(const Model& m);

// The newest since_version of `op` at or below `opset`, 0 when the op has none (tests, messages).
int schema_version(const std::string& op, int64_t opset);

}  // namespace oq::ir
