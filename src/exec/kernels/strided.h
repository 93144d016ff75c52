// Data-movement building blocks shared by the shape, movement, pad and resize kernels, each with the naive
// reference it is tested against. Everything here is dtype-agnostic: elements are moved as `esz` bytes.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "exec/kernel.h"

namespace oq::exec {

// --- small kernel helpers -------------------------------------------------------------------------------

using RunFn = std::function<void(const std::vector<const Tensor*>&, std::vector<Tensor>&)>;

// A kernel whose run() is a closure built by the factory (attributes already parsed into the capture).
class FnKernel final : public Kernel {
 public:
  explicit FnKernel(RunFn f) : f_(std::move(f)) {}
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override { f_(in, out); }

 private:
  RunFn f_;
};
inline std::unique_ptr<Kernel> fn_kernel(RunFn f) { return std::make_unique<FnKernel>(std::move(f)); }

// Required input i (throws naming the node when missing).
const Tensor& input_at(const ir::Node& node, const std::vector<const Tensor*>& in, size_t i);
// Optional input i: null when omitted or given as an empty (0-element) tensor.
const Tensor* optional_input(const std::vector<const Tensor*>& in, size_t i);
// Normalises axis into [0, rank) (accepts [-rank, rank)); throws naming the node otherwise.
int normalize_axis(const ir::Node& node, int64_t axis, int rank);
// Integer values of a 0-d/1-d integer tensor (shape / axes / pads inputs).
std::vector<int64_t> int_values(const ir::Node& node, const Tensor& t, const char* what);
// Bytes per element; throws for string tensors (not supported by these kernels).
size_t elem_size(const ir::Node& node, const Tensor& t);
// Row-major strides (in elements) of a shape.
std::vector<int64_t> contiguous_strides(const Shape& s);

// --- strided copy ---------------------------------------------------------------------------------------

// out[i0..in-1] = in_base[sum_k i_k * in_strides[k]] for every index of out_shape (strides in elements, may
// be zero or negative). Coalesces dimensions, memcpy's contiguous inner runs, parallel over rows.
void strided_copy(size_t esz, const Shape& out_shape, const std::vector<int64_t>& in_strides,
                  const uint8_t* in_base, uint8_t* out);
void strided_copy_naive(size_t esz, const Shape& out_shape, const std::vector<int64_t>& in_strides,
                        const uint8_t* in_base, uint8_t* out);

// Transpose with ONNX semantics (output dim i = input dim perm[i]).
Tensor transpose(const Tensor& x, const std::vector<int64_t>& perm);
Tensor transpose_naive(const Tensor& x, const std::vector<int64_t>& perm);

// --- gather by per-axis index maps ----------------------------------------------------------------------

// out[o_0, ..., o_{r-1}] = in[maps[0][o_0], ..., maps[r-1][o_{r-1}]], or the element at `fill` when any map
// entry is -1. maps[k].size() is the output extent of axis k. Used by Pad and nearest Resize.
void gather_by_maps(size_t esz, const Shape& in_shape, const uint8_t* in,
                    const std::vector<std::vector<int64_t>>& maps, const uint8_t* fill, uint8_t* out);
void gather_by_maps_naive(size_t esz, const Shape& in_shape, const uint8_t* in,
                          const std::vector<std::vector<int64_t>>& maps, const uint8_t* fill, uint8_t* out);

// --- Gather / Concat --------------------------------------------------------------------------------------

// ONNX Gather along `axis` (already normalised); indices int32/int64, negative ones counted from the end.
Tensor gather(const ir::Node& node, const Tensor& data, const Tensor& indices, int axis);
Tensor gather_naive(const ir::Node& node, const Tensor& data, const Tensor& indices, int axis);
// ONNX Concat along `axis` (already normalised).
Tensor concat(const ir::Node& node, const std::vector<const Tensor*>& xs, int axis);
Tensor concat_naive(const ir::Node& node, const std::vector<const Tensor*>& xs, int axis);

// A one-element tensor of dtype `t` holding v (rounded/saturated like Cast).
Tensor scalar_of(DType t, double v);

}  // namespace oq::exec
