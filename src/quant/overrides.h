// Validation of tensor overrides against the model: each broken rule is a Config error naming the tensor.
#pragma once
#include "ir/graph.h"
#include "quant/options.h"

namespace oq::quant {

void validate_overrides(const ir::Graph& g, const QuantOptions& o);

}  // namespace oq::quant
