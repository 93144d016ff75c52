#include "core/tensor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/alloc.h"
#include "core/half_array.h"

namespace oq {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) fail(ErrorKind::Model, "negative dimension in shape {}", shape_str(s));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      fail(ErrorKind::Model, "shape {} has more elements than fit in 64 bits", shape_str(s));
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

static constexpr int64_t kMaxTensorBytes = int64_t{1} << 40;  // 1 TiB: anything larger is absurd here
static std::atomic<int64_t> g_max_tensor_bytes{kMaxTensorBytes};

void set_max_tensor_bytes(int64_t bytes) { g_max_tensor_bytes = bytes > 0 ? bytes : kMaxTensorBytes; }
int64_t max_tensor_bytes() { return g_max_tensor_bytes.load(std::memory_order_relaxed); }

Tensor::Tensor(DType dtype, Shape shape) : Tensor(dtype, std::move(shape), true) {}

Tensor Tensor::uninitialized(DType dtype, Shape shape) { return Tensor(dtype, std::move(shape), false); }

namespace {
// Owns one block of the caching allocator (core/alloc.h): gives it back with its size class.
struct BlockDeleter {
  size_t capacity;
  void operator()(void* p) const noexcept { tensor_free(p, capacity); }
};
}  // namespace

Tensor::Tensor(DType dtype, Shape shape, bool zero) : dtype_(dtype), shape_(std::move(shape)) {
  numel_ = shape_numel(shape_);
  if (dtype_ == DType::String) {
    strings_ = std::make_shared<std::vector<std::string>>(static_cast<size_t>(numel_));
    return;
  }
  size_t esz = dtype_size(dtype_);
  OQ_CHECK(esz > 0, "tensor of dtype {}", dtype_name(dtype_));
  if (int64_t max = max_tensor_bytes(); numel_ > max / static_cast<int64_t>(esz))
    fail(ErrorKind::Model, "tensor of shape {} ({}) is too large to allocate (limit {} bytes)", shape_str(shape_),
         dtype_name(dtype_), max);
  size_t bytes = static_cast<size_t>(numel_) * esz;
  size_t capacity = 0;
  void* p = tensor_alloc(bytes, &capacity);
  storage_ = std::shared_ptr<void>(p, BlockDeleter{capacity});  // frees p itself if it throws
  // Zero-filled: the whole 64-byte-rounded extent, as before the caching allocator (capacity is at least that).
  if (zero) std::memset(p, 0, std::max<size_t>((bytes + 63) / 64 * 64, 64));
  else if (bytes && poison_uninitialized()) std::memset(p, 0xFF, bytes);
  data_ = p;
}

Tensor Tensor::view(DType dtype, Shape shape, void* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  t.data_ = data;
  t.storage_ = std::move(owner);
  return t;
}

Tensor Tensor::scalar_float(float v) {
  Tensor t(DType::Float, {});
  *t.data<float>() = v;
  return t;
}
Tensor Tensor::scalar_int64(int64_t v) {
  Tensor t(DType::Int64, {});
  *t.data<int64_t>() = v;
  return t;
}

std::vector<std::string>& Tensor::strings() {
  OQ_CHECK(strings_ != nullptr, "strings() on a non-string tensor");
  return *strings_;
}
const std::vector<std::string>& Tensor::strings() const {
  OQ_CHECK(strings_ != nullptr, "strings() on a non-string tensor");
  return *strings_;
}

Tensor Tensor::reshaped(Shape shape) const {
  OQ_CHECK(shape_numel(shape) == numel_, "reshape {} -> {}", shape_str(shape_), shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = uninitialized(dtype_, shape_);
  if (dtype_ == DType::String)
    *t.strings_ = *strings_;
  else if (nbytes())
    std::memcpy(t.data_, data_, nbytes());
  return t;
}

namespace {

template <typename F>
void visit_numeric(DType t, F&& f) {
  switch (t) {
    case DType::Float: f(float{}); break;
    case DType::Double: f(double{}); break;
    case DType::Int8: case DType::Int4: f(int8_t{}); break;
    case DType::UInt8: case DType::UInt4: f(uint8_t{}); break;
    case DType::Int16: f(int16_t{}); break;
    case DType::UInt16: f(uint16_t{}); break;
    case DType::Int32: f(int32_t{}); break;
    case DType::UInt32: f(uint32_t{}); break;
    case DType::Int64: f(int64_t{}); break;
    case DType::UInt64: f(uint64_t{}); break;
    case DType::Bool: f(bool{}); break;
    default: fail(ErrorKind::Runtime, "unsupported dtype {} in conversion", dtype_name(t));
  }
}

double load_as_double(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::Float16: return half_to_float(t.data<uint16_t>()[i]);
    case DType::BFloat16: return bfloat16_to_float(t.data<uint16_t>()[i]);
    default: break;
  }
  double r = 0;
  visit_numeric(t.dtype(), [&](auto tag) { r = static_cast<double>(t.data<decltype(tag)>()[i]); });
  return r;
}

template <typename T>
T saturate_round(double v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v != 0.0;
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return T{0};
    double r = std::nearbyint(v);  // default rounding mode: half to even
    double lo = static_cast<double>(std::numeric_limits<T>::min());
    double hi = static_cast<double>(std::numeric_limits<T>::max());
    if (r <= lo) return std::numeric_limits<T>::min();
    if (r >= hi) return std::numeric_limits<T>::max();
    return static_cast<T>(r);
  }
}

// Int4 / UInt4 elements are held one per int8 / uint8 and converted as those: brought into the 4-bit range the way
// the 8-bit types are brought into theirs. Integers wrap (ONNX Cast, fixed point to fixed point: "discard higher
// bits and reinterpret"; 300 -> UInt4 12), floating-point values saturate (out of range is undefined there; 9.0 ->
// Int4 7). pack_int4 keeps the low nibble, so a value left outside the range changed (9 -> -7).
void fit_4bit(Tensor& t, bool from_integer) {
  if (t.dtype() == DType::Int4)
    for (int8_t& v : t.span<int8_t>())
      v = from_integer ? static_cast<int8_t>(((v & 0xf) ^ 8) - 8) : std::clamp<int8_t>(v, -8, 7);
  else if (t.dtype() == DType::UInt4)
    for (uint8_t& v : t.span<uint8_t>()) v = from_integer ? static_cast<uint8_t>(v & 0xf) : std::min<uint8_t>(v, 15);
}

}  // namespace

Tensor Tensor::cast(DType to) const {
  if (to == dtype_) return clone();
  Tensor out = uninitialized(to, shape_);  // every element is written below
  // Integer -> integer keeps exact int64 values (doubles lose precision above 2^53).
  if (is_integer(dtype_) && is_integer(to)) {
    std::vector<int64_t> v = to_int64s();
    visit_numeric(to, [&](auto tag) {
      using T = decltype(tag);
      for (int64_t i = 0; i < numel_; ++i) out.data<T>()[i] = static_cast<T>(v[i]);
    });
    fit_4bit(out, true);
    return out;
  }
  if (dtype_ == DType::Float && to == DType::Float16) {  // F16C when the CPU has it
    floats_to_halves(data<float>(), out.data<uint16_t>(), numel_);
    return out;
  }
  if (dtype_ == DType::Float16 && to == DType::Float) {
    halves_to_floats(data<uint16_t>(), out.data<float>(), numel_);
    return out;
  }
  for (int64_t i = 0; i < numel_; ++i) {
    double v = load_as_double(*this, i);
    switch (to) {
      case DType::Float16: out.data<uint16_t>()[i] = float_to_half(static_cast<float>(v)); break;
      case DType::BFloat16: out.data<uint16_t>()[i] = float_to_bfloat16(static_cast<float>(v)); break;
      default:
        visit_numeric(to, [&](auto tag) {
          using T = decltype(tag);
          out.data<T>()[i] = saturate_round<T>(v);
        });
    }
  }
  fit_4bit(out, false);
  return out;
}

std::vector<double> Tensor::to_doubles() const {
  std::vector<double> r(static_cast<size_t>(numel_));
  for (int64_t i = 0; i < numel_; ++i) r[i] = load_as_double(*this, i);
  return r;
}

std::vector<int64_t> Tensor::to_int64s() const {
  std::vector<int64_t> r(static_cast<size_t>(numel_));
  if (is_integer(dtype_) || dtype_ == DType::Bool) {
    visit_numeric(dtype_, [&](auto tag) {
      using T = decltype(tag);
      for (int64_t i = 0; i < numel_; ++i) r[i] = static_cast<int64_t>(data<T>()[i]);
    });
  } else {
    for (int64_t i = 0; i < numel_; ++i) r[i] = static_cast<int64_t>(load_as_double(*this, i));
  }
  return r;
}

bool Tensor::equals(const Tensor& o) const {
  if (dtype_ != o.dtype_ || shape_ != o.shape_) return false;
  if (dtype_ == DType::String) return *strings_ == *o.strings_;
  return nbytes() == 0 || std::memcmp(data_, o.data_, nbytes()) == 0;
}

}  // namespace oq
