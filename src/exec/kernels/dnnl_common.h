// Shared oneDNN plumbing for the compute kernels (Conv, ConvTranspose, Gemm, MatMul): one CPU engine per
// process, one stream per calling thread (CPU streams are cheap; a per-thread stream keeps concurrent
// sessions safe), memory descriptors for onnxquant's dense row-major float tensors, and a small cache of
// weights reordered into the layout a primitive chose.
//
// Concurrency: a kernel may run on several threads at once (exec::run_ordered). oneDNN's default
// library-managed scratchpad is shared by the primitives of the thread that created them, so a primitive
// may not run on another thread; every primitive here is therefore made with a user-managed scratchpad
// (Prim) that each execution allocates for itself, and temporary buffers are per execution too.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace oq::exec::dnnl_util {

dnnl::engine& engine();
dnnl::stream& stream();

using dims = dnnl::memory::dims;

// Plain (row-major, dense) f32 descriptor of `shape`.
dnnl::memory::desc plain_f32(const dims& shape);
// Row-major strides of `shape`.
dims dense_strides(const dims& shape);

// Weights reordered once per (primitive, weight tensor). Holding a reference to the source tensor keeps its
// storage alive, so the data pointer cannot be recycled for another tensor while it is the key: a new
// pointer means new weights (node outputs are fresh allocations each run; initializers never move).
class ReorderedWeights {
 public:
  // Memory with `want` layout holding `w`'s values (plain layout `plain`), reordered only when `w` changed.
  const dnnl::memory& get(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& want);

 private:
  Tensor src_;  // the tensor the cached memory was made from (shares its storage)
  dnnl::memory mem_;
};

// The threads oneDNN will use (part of every primitive cache key: oneDNN plans the work split at creation).
int threads_key();
// Cache key of a convolution-like primitive: input and weight shapes, bias presence, thread count.
Shape primitive_key(const Tensor& x, const Tensor& w, const Tensor* b);
// Inputs X, W and the optional B of a convolution-like node (errors name the node when X or W is missing).
struct XWB {
  const Tensor& x;
  const Tensor& w;
  const Tensor* b;
};
XWB conv_inputs(const ir::Node& node, const std::vector<const Tensor*>& in);

// The primitive cached for these inputs' shapes (primitive_key), made by build(x, w, b) on first use.
// The caller holds the kernel's lock.
template <typename P, typename Build>
P& cached_primitive(std::map<Shape, std::unique_ptr<P>>& cache, const XWB& in, Build&& build) {
  auto& slot = cache[primitive_key(in.x, in.w, in.b)];
  if (!slot) slot = build(in.x, in.w, in.b);
  return *slot;
}

// `attr` with a user-managed scratchpad (pass it to every primitive descriptor).
dnnl::primitive_attr user_scratchpad(dnnl::primitive_attr attr = {});

// A primitive made with user_scratchpad() and the scratchpad it needs. execute() may run on any thread, on
// several at once: each call allocates its own scratchpad (from the tensor caching allocator).
struct Prim {
  dnnl::primitive prim;
  dnnl::memory::desc scratch;  // zero-sized: none
  Prim() = default;
  template <typename PD>
  Prim(const dnnl::primitive& p, const PD& pd) : prim(p), scratch(pd.scratchpad_desc()) {}
  explicit operator bool() const { return static_cast<bool>(prim); }
  // Runs on this thread's stream and waits for it.
  void execute(std::unordered_map<int, dnnl::memory> args) const;
  void execute(const dnnl::memory& src, const dnnl::memory& dst) const;  // a reorder
};

// A reorder primitive between two layouts of the same tensor.
Prim make_reorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to);

// Executes a convolution-like primitive on plain user memories: the source converted into src_md, and the
// result out of dst_md, through buffers of this call when the reorders are set. bias may be null.
void execute_in_layouts(const Prim& prim, const Prim& src_reorder, const dnnl::memory::desc& src_md,
                        const Prim& dst_reorder, const dnnl::memory::desc& dst_md, const dnnl::memory& src_user,
                        const dnnl::memory& dst_user, const dnnl::memory& wei, const dnnl::memory* bias);
// The same with the primitive's other arguments (weights, bias, post-op operands) given as they are.
void execute_in_layouts(const Prim& prim, const Prim& src_reorder, const dnnl::memory::desc& src_md,
                        const Prim& dst_reorder, const dnnl::memory::desc& dst_md, const dnnl::memory& src_user,
                        const dnnl::memory& dst_user, std::unordered_map<int, dnnl::memory> args);

// What kind of kernel oneDNN picked, from a primitive descriptor's impl_info_str(): its reference loops
// ("ref:any"; correct but 100-1000x slower than the others), im2col + GEMM ("gemm:jit"), or a JIT kernel
// (jit, jit_dw, brgconv, brdgmm_dw...). oneDNN falls back to the reference without an error when no fast
// kernel takes the layouts asked for (oneDNN 2.6: grouped convolutions with channels per group not a multiple
// of the block in nChw16c, 1-D depthwise, kernel extents above ~60 in blocked layouts).
enum class ImplKind { Reference = 0, Gemm = 1, Jit = 2 };
ImplKind impl_kind(const std::string& impl);

// The primitive descriptor to use among `count` candidates (make(i) returns an empty optional when oneDNN
// has no implementation for candidate i): the first whose kind is at least `enough`, else the first of the
// best kind found; empty when no candidate has an implementation. Callers order the candidates by preference.
// chosen (optional): the index of the one returned.
template <typename PD, typename Make>
std::optional<PD> pick_primitive(int count, ImplKind enough, Make&& make, int* chosen = nullptr) {
  std::optional<PD> best;
  ImplKind best_kind = ImplKind::Reference;
  for (int i = 0; i < count; ++i) {
    std::optional<PD> pd = make(i);
    if (!pd) continue;
    const ImplKind k = impl_kind(pd->impl_info_str());
    if (!best || k > best_kind) {
      best = std::move(pd), best_kind = k;
      if (chosen) *chosen = i;
    }
    if (best_kind >= enough) break;
  }
  return best;
}

// Converts a dnnl::error into a Model error naming the node.
[[noreturn]] void rethrow_dnnl(const char* node_name, const char* op, const dnnl::error& e);

}  // namespace oq::exec::dnnl_util
