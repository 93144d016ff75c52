// Tensor: a dense, row-major, contiguous n-d array with shared (reference-counted) storage.
// Copying a Tensor is cheap and shares the data; use clone() for a deep copy.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace oq {

using Shape = std::vector<int64_t>;

// Number of elements of a shape; throws Model error on negative dims or 64-bit overflow.
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[1,3,224,224]"

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-initialised storage (64-byte aligned, from the caching allocator in core/alloc.h). Sizes are
  // checked for overflow first.
  Tensor(DType dtype, Shape shape);
  // Same, but the contents are unspecified (no zero fill): for outputs the caller provably writes in full
  // (every element, before anyone reads it). String tensors are default-constructed as with the constructor.
  // With OQ_POISON_UNINIT=1 (or set_poison_uninitialized) the bytes are 0xFF, so missed elements show up.
  static Tensor uninitialized(DType dtype, Shape shape);
  // Wraps external memory without copying; `owner` keeps it alive (may be null for borrowed views).
  static Tensor view(DType dtype, Shape shape, void* data, std::shared_ptr<void> owner = nullptr);

  template <typename T>
  static Tensor from_vector(DType dtype, Shape shape, const std::vector<T>& v) {
    Tensor t = uninitialized(dtype, std::move(shape));
    OQ_CHECK(sizeof(T) == dtype_size(dtype) && static_cast<int64_t>(v.size()) == t.numel(),
             "from_vector: size mismatch");
    std::copy(v.begin(), v.end(), t.data<T>());
    return t;
  }
  static Tensor scalar_float(float v);
  static Tensor scalar_int64(int64_t v);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i < 0 ? i + rank() : i]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  bool empty() const { return dtype_ == DType::Undefined; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T>
  T* data() { return static_cast<T*>(data_); }
  template <typename T>
  const T* data() const { return static_cast<const T*>(data_); }
  template <typename T>
  std::span<T> span() { return {data<T>(), static_cast<size_t>(numel_)}; }
  template <typename T>
  std::span<const T> span() const { return {data<T>(), static_cast<size_t>(numel_)}; }

  // String tensors keep their elements here (data() is null for them).
  std::vector<std::string>& strings();
  const std::vector<std::string>& strings() const;

  // Same data, new shape (numel must match).
  Tensor reshaped(Shape shape) const;
  Tensor clone() const;
  // Element-wise conversion to another dtype (numeric types; float->int rounds half to even and saturates).
  Tensor cast(DType to) const;
  // Values as double / int64 (any numeric dtype) — for small tensors (shapes, attributes, scales).
  std::vector<double> to_doubles() const;
  std::vector<int64_t> to_int64s() const;
  // Bit-exact equality of dtype, shape and bytes (strings compared as strings).
  bool equals(const Tensor& o) const;

 private:
  Tensor(DType dtype, Shape shape, bool zero);

  DType dtype_ = DType::Undefined;
  Shape shape_;
  int64_t numel_ = 0;
  void* data_ = nullptr;
  std::shared_ptr<void> storage_;
  std::shared_ptr<std::vector<std::string>> strings_;
};

}  // namespace oq
