// Small graph helpers shared by the float-model rewrites of src/quant (SmoothQuant, cross-layer equalization,
// bias correction).
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"
#include "exec/session.h"
#include "ir/graph.h"

namespace oq::quant {

// Number of node inputs (top-level graph) reading `name`, plus one if it is a graph output and one per If / Loop /
// Scan node whose bodies read it.
int tensor_uses(const ir::Graph& g, const std::string& name);

// A float initializer used by one node input only and not a graph input (safe to rewrite in place).
ir::Initializer* private_constant(ir::Graph& g, const std::string& name);
const ir::Initializer* private_constant(const ir::Graph& g, const std::string& name);

// t[..., j, ...] (j along `axis`) *= f[j] (or /= f[j]); the tensor is cloned first (copies share data).
void scale_along(Tensor& t, int axis, const std::vector<double>& f, bool divide);

// Streams the data set through the float model once on exec::run_ordered's workers (batches of batch_size, a
// progress bar named `label`); `observer` sees every tensor produced (exec::RunOptions::observer), each name's batches in order, different
// names possibly at the same time on different threads.
void stream_observed(const ir::Model& m, const data::DatasetPtr& data, int64_t batch_size, const char* label,
                     const exec::Observer& observer);

}  // namespace oq::quant
