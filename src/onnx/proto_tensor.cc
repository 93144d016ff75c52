#include "onnx/proto_tensor.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/int4.h"

namespace oq::onnx::detail {
namespace {

namespace fs = std::filesystem;

bool is_4bit(DType t) { return t == DType::Int4 || t == DType::UInt4; }

// Serialized byte count of n elements of dtype t (overflow-checked).
int64_t bytes_for(DType t, int64_t n, const std::string& name) {
  if (is_4bit(t)) return n / 2 + (n % 2);
  int64_t esz = static_cast<int64_t>(dtype_size(t));
  if (n > std::numeric_limits<int64_t>::max() / esz)
    fail(ErrorKind::Model, "tensor '{}': {} elements of {} overflow 64 bits", name, n, dtype_name(t));
  return n * esz;
}

// Copies `bytes` serialized bytes into a freshly allocated tensor (unpacking 4-bit types).
void fill_from_bytes(Tensor& t, const char* bytes) {
  if (is_4bit(t.dtype())) {
    unpack_int4(reinterpret_cast<const uint8_t*>(bytes), static_cast<size_t>(t.numel()),
                t.dtype() == DType::Int4, t.data<uint8_t>());
  } else if (t.numel() > 0) {
    std::memcpy(t.raw(), bytes, t.nbytes());
  }
}

template <typename Field>
void check_count(const Field& f, int64_t want, const std::string& name, const char* field, DType dt) {
  if (static_cast<int64_t>(f.size()) != want)
    fail(ErrorKind::Model, "tensor '{}': {} has {} values, its shape needs {} ({})", name, field, f.size(),
         want, dtype_name(dt));
}

// Narrows int32_data entries to the element width (bit patterns for FLOAT16/BFLOAT16, 0/1 for BOOL).
template <typename T>
void from_int32(Tensor& t, const ::onnx::TensorProto& p) {
  T* d = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = static_cast<T>(p.int32_data(static_cast<int>(i)));
}

// FLOAT16 / BFLOAT16 bit patterns: an entry outside 0..65535 is not one (onnxruntime refuses it, "data overflow");
// narrowing it would keep some other value.
void from_int32_bits16(Tensor& t, const ::onnx::TensorProto& p) {
  uint16_t* d = t.data<uint16_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int32_t v = p.int32_data(static_cast<int>(i));
    if (v < 0 || v > 0xffff)
      fail(ErrorKind::Model, "tensor '{}': {} int32_data entry {} at element {} does not fit 16 bits", p.name(),
           t.dtype() == DType::Float16 ? "FLOAT16" : "BFLOAT16", v, i);
    d[i] = static_cast<uint16_t>(v);
  }
}

// BOOL elements stored as bytes (raw_data, external data) must be 0 or 1: any other byte is not a bool value,
// and the kernels would read it as one (undefined behaviour; fuzz_session finding 13).
Tensor check_bool_bytes(Tensor t, const std::string& name, const char* field) {
  if (t.dtype() != DType::Bool) return t;
  const uint8_t* d = t.data<uint8_t>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (d[i] > 1)
      fail(ErrorKind::Model, "tensor '{}': BOOL {} has byte {} at element {} (must be 0 or 1)", name, field, d[i], i);
  return t;
}

uint64_t parse_u64(const std::string& s, const std::string& key, const std::string& name) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
    fail(ErrorKind::Model, "tensor '{}': external data {} '{}' is not a non-negative integer", name, key, s);
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (errno == ERANGE) fail(ErrorKind::Model, "tensor '{}': external data {} '{}' is out of range", name, key, s);
  return v;
}

// Checks the external data (location, length, file size) against `want` bytes before allocating the tensor:
// memory is bounded by what the file really holds, not by the dims the model declares.
Tensor read_external(DType dt, const Shape& shape, const ::onnx::TensorProto& p, int64_t want,
                     const ExternalDir& ext) {
  const std::string& base_dir = ext.base_dir;
  const std::string& name = p.name();
  std::string location;
  uint64_t offset = 0;
  bool has_length = false;
  uint64_t length = 0;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = parse_u64(kv.value(), "offset", name);
    else if (kv.key() == "length") {
      length = parse_u64(kv.value(), "length", name);
      has_length = true;
    }
  }
  std::string path = resolve_external_location(base_dir, location, name);
  ext.note(path);  // a file of the model from now on, whether or not reading it succeeds
  {
    // A symbolic link on the way (the file or a folder of the location) must not lead out of the model's folder
    // either: onnxruntime refuses such a path ("External data path escapes model directory").
    std::error_code e1, e2;
    const fs::path real = fs::weakly_canonical(path, e1);
    const fs::path root = fs::weakly_canonical(base_dir.empty() ? "." : base_dir, e2);
    if (!e1 && !e2 && std::mismatch(root.begin(), root.end(), real.begin(), real.end()).first != root.end())
      fail(ErrorKind::Model, "tensor '{}': external data location '{}' leads out of the model's folder through a "
           "symbolic link (to '{}'; refused)", name, location, real.string());
  }
  if (has_length && length != static_cast<uint64_t>(want))
    fail(ErrorKind::Model, "tensor '{}': external data length {} does not match its shape {} of {} ({} bytes)",
         name, length, shape_str(shape), dtype_name(dt), want);
  std::error_code ec;
  uint64_t fsize = fs::file_size(path, ec);
  if (ec)
    fail(ErrorKind::Io, "tensor '{}': external data file '{}' (location '{}') cannot be read: {}", name, path,
         location, ec.message());
  if (offset > fsize || fsize - offset < static_cast<uint64_t>(want))
    fail(ErrorKind::Model,
         "tensor '{}': external data file '{}' has {} bytes, the tensor needs {} bytes at offset {}", name, path,
         fsize, want, offset);
  Tensor t = Tensor::uninitialized(dt, shape);
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail(ErrorKind::Io, "tensor '{}': external data file '{}' cannot be opened: {}", name, path,
         std::strerror(errno));
  in.seekg(static_cast<std::streamoff>(offset));
  if (is_4bit(t.dtype())) {
    std::string buf(static_cast<size_t>(want), '\0');
    in.read(buf.data(), want);
    if (!in) fail(ErrorKind::Io, "tensor '{}': reading external data file '{}' failed", name, path);
    fill_from_bytes(t, buf.data());
  } else {
    in.read(static_cast<char*>(t.raw()), want);
    if (!in) fail(ErrorKind::Io, "tensor '{}': reading external data file '{}' failed", name, path);
  }
  return t;
}

}  // namespace

std::string resolve_external_location(const std::string& base_dir, const std::string& location,
                                      const std::string& name) {
  if (location.empty()) fail(ErrorKind::Model, "tensor '{}': external data without a location", name);
  // A drive letter ('C:') makes a path absolute on Windows only: on POSIX 'w:1.bin' is a file name (onnxruntime
  // reads it).
  bool absolute = location[0] == '/' || location[0] == '\\' || fs::path(location).is_absolute();
#ifdef _WIN32
  absolute = absolute || (location.size() >= 2 && location[1] == ':');
#endif
  if (absolute)
    fail(ErrorKind::Model, "tensor '{}': external data location '{}' is an absolute path (refused)", name,
         location);
  size_t start = 0;
  while (start <= location.size()) {
    size_t end = location.find_first_of("/\\", start);
    if (end == std::string::npos) end = location.size();
    if (location.compare(start, end - start, "..") == 0 && end - start == 2)
      fail(ErrorKind::Model, "tensor '{}': external data location '{}' leaves the model's folder (refused)", name,
           location);
    start = end + 1;
  }
  return (fs::path(base_dir.empty() ? "." : base_dir) / location).string();
}

Tensor tensor_from_proto(const ::onnx::TensorProto& p, const ExternalDir& ext) {
  const std::string& name = p.name();
  int32_t code = p.data_type();
  if (!dtype_is_known(code))
    fail(ErrorKind::Model, "tensor '{}': unsupported data type {}", name, code);
  DType dt = static_cast<DType>(code);
  Shape shape(p.dims().begin(), p.dims().end());
  int64_t n = 0;
  try {
    n = shape_numel(shape);
  } catch (const Error& e) {
    fail(ErrorKind::Model, "tensor '{}': {}", name, e.what());
  }
  bool external = p.data_location() == ::onnx::TensorProto::EXTERNAL;

  if (dt == DType::String) {
    if (p.has_raw_data() || external)
      fail(ErrorKind::Model, "tensor '{}': STRING data must be in string_data", name);
    check_count(p.string_data(), n, name, "string_data", dt);
    Tensor t(dt, shape);
    for (int64_t i = 0; i < n; ++i) t.strings()[static_cast<size_t>(i)] = p.string_data(static_cast<int>(i));
    return t;
  }

  int64_t want = bytes_for(dt, n, name);
  if (external) return check_bool_bytes(read_external(dt, shape, p, want, ext), name, "external data");
  if (p.has_raw_data()) {
    const std::string& raw = p.raw_data();
    if (static_cast<int64_t>(raw.size()) != want)
      fail(ErrorKind::Model, "tensor '{}': raw_data has {} bytes, shape {} of {} needs {}", name, raw.size(),
           shape_str(shape), dtype_name(dt), want);
    Tensor t = Tensor::uninitialized(dt, shape);
    fill_from_bytes(t, raw.data());
    return check_bool_bytes(t, name, "raw_data");
  }

  switch (dt) {
    case DType::Float: {
      check_count(p.float_data(), n, name, "float_data", dt);
      Tensor t = Tensor::uninitialized(dt, shape);
      if (n) std::memcpy(t.raw(), p.float_data().data(), t.nbytes());
      return t;
    }
    case DType::Double: {
      check_count(p.double_data(), n, name, "double_data", dt);
      Tensor t = Tensor::uninitialized(dt, shape);
      if (n) std::memcpy(t.raw(), p.double_data().data(), t.nbytes());
      return t;
    }
    case DType::Int64: {
      check_count(p.int64_data(), n, name, "int64_data", dt);
      Tensor t = Tensor::uninitialized(dt, shape);
      if (n) std::memcpy(t.raw(), p.int64_data().data(), t.nbytes());
      return t;
    }
    case DType::UInt64:
    case DType::UInt32: {
      check_count(p.uint64_data(), n, name, "uint64_data", dt);
      Tensor t = Tensor::uninitialized(dt, shape);
      if (dt == DType::UInt64) {
        if (n) std::memcpy(t.raw(), p.uint64_data().data(), t.nbytes());
      } else {
        for (int64_t i = 0; i < n; ++i)
          t.data<uint32_t>()[i] = static_cast<uint32_t>(p.uint64_data(static_cast<int>(i)));
      }
      return t;
    }
    case DType::Int4:
    case DType::UInt4: {
      // int32_data holds the packed bytes, one per entry.
      check_count(p.int32_data(), want, name, "int32_data", dt);
      std::string packed(static_cast<size_t>(want), '\0');
      for (int64_t i = 0; i < want; ++i) packed[i] = static_cast<char>(p.int32_data(static_cast<int>(i)) & 0xff);
      Tensor t = Tensor::uninitialized(dt, shape);
      fill_from_bytes(t, packed.data());
      return t;
    }
    default:
      break;
  }
  check_count(p.int32_data(), n, name, "int32_data", dt);
  Tensor t = Tensor::uninitialized(dt, shape);
  switch (dt) {
    case DType::Int32: from_int32<int32_t>(t, p); break;
    case DType::Int16: from_int32<int16_t>(t, p); break;
    case DType::UInt16: from_int32<uint16_t>(t, p); break;
    case DType::Float16: case DType::BFloat16: from_int32_bits16(t, p); break;
    case DType::Int8: from_int32<int8_t>(t, p); break;
    case DType::UInt8: from_int32<uint8_t>(t, p); break;
    case DType::Bool: {
      for (int64_t i = 0; i < n; ++i) t.data<uint8_t>()[i] = p.int32_data(static_cast<int>(i)) != 0;
      break;
    }
    default:
      fail(ErrorKind::Model, "tensor '{}': data type {} cannot be stored in int32_data", name, dtype_name(dt));
  }
  return t;
}

size_t serialized_bytes(const Tensor& t) {
  if (t.dtype() == DType::String || t.empty()) return 0;
  if (is_4bit(t.dtype())) return int4_packed_bytes(static_cast<size_t>(t.numel()));
  return t.nbytes();
}

Tensor tensor_from_proto_taking(::onnx::TensorProto& p, const ExternalDir& ext) {
  const int32_t code = p.data_type();
  if (!p.has_raw_data() || p.data_location() == ::onnx::TensorProto::EXTERNAL || !dtype_is_known(code))
    return tensor_from_proto(p, ext);
  const DType dt = static_cast<DType>(code);
  if (dt == DType::String || dt == DType::Bool || is_4bit(dt)) return tensor_from_proto(p, ext);
  Shape shape(p.dims().begin(), p.dims().end());
  int64_t n = 0;
  try {
    n = shape_numel(shape);
  } catch (const Error& e) {
    fail(ErrorKind::Model, "tensor '{}': {}", p.name(), e.what());
  }
  const int64_t want = bytes_for(dt, n, p.name());
  if (static_cast<int64_t>(p.raw_data().size()) != want || want == 0) return tensor_from_proto(p, ext);
  std::shared_ptr<std::string> owner(p.release_raw_data());
  return Tensor::view(dt, std::move(shape), owner->data(), owner);
}

void tensor_to_proto(const Tensor& t, ::onnx::TensorProto* p) {
  p->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) p->add_dims(d);
  if (t.dtype() == DType::String) {
    for (const auto& s : t.strings()) p->add_string_data(s);
    return;
  }
  if (t.empty()) return;
  std::string* raw = p->mutable_raw_data();
  if (is_4bit(t.dtype())) {
    std::vector<uint8_t> packed = pack_int4(t.data<uint8_t>(), static_cast<size_t>(t.numel()));
    raw->assign(reinterpret_cast<const char*>(packed.data()), packed.size());
  } else {
    raw->assign(static_cast<const char*>(t.raw()), t.nbytes());
  }
}

}  // namespace oq::onnx::detail
