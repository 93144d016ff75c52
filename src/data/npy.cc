#include "data/npy.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/run_files.h"

namespace oq::data {

// ---------------------------------------------------------------------------------------------- mapping

std::shared_ptr<MappedFile> MappedFile::from_fd(int fd, const std::string& label) {
  struct stat st {};
  if (fstat(fd, &st) != 0) fail(ErrorKind::Io, "cannot stat {}: {}", label, std::strerror(errno));
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ == 0) return m;  // nothing to map; data() stays null
  void* p = mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) fail(ErrorKind::Io, "cannot map {}: {}", label, std::strerror(errno));
  m->data_ = static_cast<uint8_t*>(p);
  return m;
}

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(ErrorKind::Io, "data file not found: {}", path);
  if (std::filesystem::is_directory(path, ec)) fail(ErrorKind::Io, "{} is a folder, expected a file", path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorKind::Io, "cannot open {}: {}", path, std::strerror(errno));
  try {
    auto m = from_fd(fd, path);
    ::close(fd);
    return m;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

MappedFile::~MappedFile() {
  if (data_) munmap(data_, size_);
}

void MappedFile::note_streamed(size_t nbytes) {
  if (!data_ || streamed_.fetch_add(nbytes) + nbytes < kReleaseBytes) return;
  streamed_ = 0;
  madvise(data_, size_, MADV_DONTNEED);  // advisory: a failure only means the pages stay resident
}

void MappedFile::release(const uint8_t* begin, size_t n) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = std::max(reinterpret_cast<uintptr_t>(begin), reinterpret_cast<uintptr_t>(data_));
  const uintptr_t hi = std::min(reinterpret_cast<uintptr_t>(begin) + n, reinterpret_cast<uintptr_t>(data_) + size_);
  const uintptr_t a = (lo + page - 1) / page * page, b = hi / page * page;
  if (data_ && a < b) madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);  // advisory, as note_streamed
}

// ---------------------------------------------------------------------------------------------- header

namespace {

struct DescrEntry {
  const char* code;  // without the byte-order character
  DType dtype;
};
constexpr DescrEntry kDescrs[] = {
    {"b1", DType::Bool},   {"u1", DType::UInt8},   {"i1", DType::Int8},   {"i2", DType::Int16},
    {"u2", DType::UInt16}, {"i4", DType::Int32},   {"u4", DType::UInt32}, {"i8", DType::Int64},
    {"u8", DType::UInt64}, {"f2", DType::Float16}, {"f4", DType::Float},  {"f8", DType::Double},
};

// The dtype of a descr; `big_endian` is set for multi-byte types stored big-endian ('>f4'), which are byte-swapped
// when read ('=' is the writer's native order: numpy writes '<' or '>' for multi-byte types, '|' for bytes).
DType descr_to_dtype(const std::string& d, const std::string& label, bool& big_endian) {
  if (d.size() < 2) fail(ErrorKind::Data, "{}: unsupported .npy dtype '{}'", label, d);
  char order = d[0];
  std::string code = d.substr(1);
  if (order != '<' && order != '|' && order != '=' && order != '>')
    fail(ErrorKind::Data, "{}: unsupported .npy dtype '{}'", label, d);
  for (const auto& e : kDescrs) {
    if (code != e.code) continue;
    big_endian = order == '>' && dtype_size(e.dtype) > 1;
    return e.dtype;
  }
  fail(ErrorKind::Data, "{}: unsupported .npy dtype '{}' (supported: bool, (u)int8/16/32/64, float16/32/64)",
       label, d);
}

// Minimal reader for the Python dict literal of an .npy header:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class DictParser {
 public:
  DictParser(const std::string& s, const std::string& label) : s_(s), label_(label) {}

  void parse(std::string& descr, bool& fortran, Shape& shape, bool& have_descr, bool& have_shape) {
    ws();
    expect('{');
    for (;;) {
      ws();
      if (peek() == '}') break;
      std::string key = str();
      ws();
      expect(':');
      ws();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"') bad("structured dtypes are not supported");
        descr = str();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = word() == "True";
      } else if (key == "shape") {
        shape = tuple();
        have_shape = true;
      } else {
        bad("unknown header key '" + key + "'");
      }
      ws();
      if (peek() == ',') ++i_;
    }
  }

 private:
  [[noreturn]] void bad(const std::string& why) { fail(ErrorKind::Data, "{}: bad .npy header: {}", label_, why); }
  char peek() { return i_ < s_.size() ? s_[i_] : '\0'; }
  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string str() {
    char q = peek();
    if (q != '\'' && q != '"') bad("expected a string");
    size_t e = s_.find(q, i_ + 1);
    if (e == std::string::npos) bad("unterminated string");
    std::string r = s_.substr(i_ + 1, e - i_ - 1);
    i_ = e + 1;
    return r;
  }
  std::string word() {
    size_t b = i_;
    while (i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_]))) ++i_;
    std::string w = s_.substr(b, i_ - b);
    if (w != "True" && w != "False") bad("expected True or False");
    return w;
  }
  Shape tuple() {
    expect('(');
    Shape r;
    for (;;) {
      ws();
      if (peek() == ')') {
        ++i_;
        return r;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) bad("bad shape");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (int64_t{1} << 50)) bad("dimension too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 longs
      r.push_back(v);
      ws();
      if (peek() == ',') ++i_;
    }
  }
  const std::string& s_;
  const std::string& label_;
  size_t i_ = 0;
};

uint32_t le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t{p[3]} << 24); }

// Reverses the bytes of each `esz`-byte element of [p, p + n).
void byteswap_elements(uint8_t* p, size_t n, size_t esz) {
  if (esz < 2) return;
  for (size_t i = 0; i + esz <= n; i += esz) std::reverse(p + i, p + i + esz);
}

// The elements of a Fortran-ordered array (element (i0, i1, ...) at i0 + d0 * (i1 + d1 * (...))) written in C
// order, byte-swapped when `swap`, into an unlinked temporary file that is then mapped: the memory used stays
// one 1 MiB buffer whatever the array's size. Hand-written: numpy's np.ascontiguousarray does the same copy.
std::shared_ptr<MappedFile> fortran_to_c_order(const uint8_t* src, const Shape& shape, size_t esz, bool swap,
                                               const std::string& label) {
  const int r = static_cast<int>(shape.size());
  std::vector<size_t> stride(static_cast<size_t>(r));  // bytes between consecutive indices of each dim
  size_t st = esz;
  for (size_t d = 0; d < stride.size(); ++d) stride[d] = st, st *= static_cast<size_t>(shape[d]);
  const int fd = unlinked_temp_file(label, "rewrite the Fortran-ordered array in C order");
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  std::vector<uint8_t> buf(size_t{1} << 20);
  size_t used = 0;
  std::vector<int64_t> idx(static_cast<size_t>(r), 0);
  size_t off = 0;  // source byte offset of idx
  for (int64_t e = 0, n = shape_numel(shape); e < n; ++e) {
    if (used + esz > buf.size()) {
      write_all(fd, buf.data(), used, label);
      used = 0;
    }
    std::memcpy(buf.data() + used, src + off, esz);
    if (swap) std::reverse(buf.data() + used, buf.data() + used + esz);
    used += esz;
    for (int d = r - 1; d >= 0; --d) {  // next index in C order: the last dim fastest
      const auto du = static_cast<size_t>(d);
      off += stride[du];
      if (++idx[du] < shape[du]) break;
      off -= stride[du] * static_cast<size_t>(shape[du]);
      idx[du] = 0;
    }
  }
  write_all(fd, buf.data(), used, label);
  return MappedFile::from_fd(fd, label);
}

}  // namespace

int unlinked_temp_file(const std::string& label, const char* purpose) {
  const char* env = std::getenv("TMPDIR");
  const bool from_env = env && *env;
  const std::string dir = from_env ? env : "/tmp";
  const int fd = run_files::create_unlinked_temp(dir);  // never has a name an interruption could leave behind
  if (fd >= 0) return fd;
  const int e = errno;
  std::string where = from_env ? fmt::format("TMPDIR '{}'", dir) : "/tmp (TMPDIR is not set)";
  if (from_env && dir[0] != '/') {  // as every program takes it: relative to the working folder
    std::error_code ec;
    where += fmt::format(" (relative to the working folder: '{}')", std::filesystem::absolute(dir, ec).string());
  }
  fail(ErrorKind::Io, "{}: cannot create a temporary file in {} to {} (onnxquant keeps it on disk, not in memory): {}; "
       "set TMPDIR to a writable folder{}", label, where, purpose, std::strerror(e), from_env ? ", or unset it for /tmp" : "");
}

void write_all(int fd, const uint8_t* p, size_t n, const std::string& label) {
  for (size_t off = 0; off < n;) {
    ssize_t w = ::write(fd, p + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(ErrorKind::Io, "{}: cannot write a temporary file: {}", label, std::strerror(errno));
    off += static_cast<size_t>(w);
  }
}

NpyHeader parse_npy_header(const uint8_t* p, size_t n, const std::string& label) {
  static const uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (n < 10 || std::memcmp(p, kMagic, 6) != 0) fail(ErrorKind::Data, "{} is not an .npy file (bad magic)", label);
  NpyHeader h;
  h.major = p[6];
  size_t hlen = 0, start = 0;
  if (h.major == 1) {
    hlen = p[8] | (p[9] << 8);
    start = 10;
  } else if (h.major == 2 || h.major == 3) {
    if (n < 12) fail(ErrorKind::Data, "{}: truncated .npy header", label);
    hlen = le32(p + 8);
    start = 12;
  } else {
    fail(ErrorKind::Data, "{}: unsupported .npy format version {}.{}", label, p[6], p[7]);
  }
  if (hlen > n - start) fail(ErrorKind::Data, "{}: truncated .npy header", label);
  std::string text(reinterpret_cast<const char*>(p + start), hlen);
  std::string descr;
  bool fortran = false, have_descr = false, have_shape = false;
  DictParser(text, label).parse(descr, fortran, h.shape, have_descr, have_shape);
  if (!have_descr || !have_shape) fail(ErrorKind::Data, "{}: .npy header lacks 'descr' or 'shape'", label);
  h.dtype = descr_to_dtype(descr, label, h.big_endian);
  // The element and byte counts must fit in 64 bits (numpy: "array is too big"): numel * itemsize used to wrap (a
  // header of shape (2^31, 2^31) and '<f4' gave 0 bytes), slip past the truncation check and read far beyond the
  // mapping (a hang or SIGBUS in calibration).
  const size_t esz = dtype_size(h.dtype);
  try {
    h.numel = shape_numel(h.shape);
  } catch (const Error& e) {
    fail(ErrorKind::Data, "{}: bad .npy header: {}", label, e.what());
  }
  if (static_cast<uint64_t>(h.numel) > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / esz)
    fail(ErrorKind::Data, "{}: bad .npy header: shape {} of {} needs more than 2^63 bytes", label,
         shape_str(h.shape), descr);
  h.nbytes = static_cast<size_t>(h.numel) * esz;
  // Fortran order differs from C order only when two dims exceed 1 (and no dim is 0).
  int non1 = 0;
  for (int64_t d : h.shape) non1 += d > 1;
  h.fortran = fortran && non1 > 1 && h.numel > 0;
  h.data_offset = start + hlen;
  return h;
}

std::string npy_descr(DType t) {
  switch (t) {
    case DType::Bool: return "|b1";
    case DType::UInt8: case DType::UInt4: return "|u1";
    case DType::Int8: case DType::Int4: return "|i1";
    case DType::Int16: return "<i2";
    case DType::UInt16: return "<u2";
    case DType::Int32: return "<i4";
    case DType::UInt32: return "<u4";
    case DType::Int64: return "<i8";
    case DType::UInt64: return "<u8";
    case DType::Float16: return "<f2";
    case DType::Float: return "<f4";
    case DType::Double: return "<f8";
    default: fail(ErrorKind::Data, "tensors of type {} cannot be written as .npy", dtype_name(t));
  }
}

// ---------------------------------------------------------------------------------------------- arrays

NpyArray NpyArray::open(const std::string& path) {
  auto m = MappedFile::open(path);
  return from_mapping(m, m->data(), m->size(), path);
}

NpyArray NpyArray::from_mapping(std::shared_ptr<MappedFile> m, const uint8_t* bytes, size_t n,
                                const std::string& label) {
  MappedFile* raw = m.get();
  return build(std::move(m), raw, bytes, n, label);
}

NpyArray NpyArray::from_memory(std::shared_ptr<void> owner, const uint8_t* bytes, size_t n,
                               const std::string& label) {
  return build(std::move(owner), nullptr, bytes, n, label);
}

NpyArray NpyArray::build(std::shared_ptr<void> owner, MappedFile* mapping, const uint8_t* bytes, size_t n,
                         const std::string& label) {
  NpyHeader h = parse_npy_header(bytes, n, label);
  NpyArray a;
  a.owner_ = std::move(owner);
  a.mapping_ = mapping;
  a.dtype_ = h.dtype;
  a.shape_ = h.shape;
  a.major_ = h.major;
  a.label_ = label;
  a.data_ = bytes + h.data_offset;
  a.swap_ = h.big_endian;
  const size_t need = h.nbytes;
  if (need > n - h.data_offset)
    fail(ErrorKind::Data, "{}: truncated .npy data: shape {} needs {} bytes, file holds {}", label,
         shape_str(h.shape), need, n - h.data_offset);
  if (h.fortran) {
    // A row of a Fortran-ordered array is spread over the whole file: the array is rewritten once in C order
    // (and native byte order) into a mapped temporary file, which the rows then view.
    auto c = fortran_to_c_order(a.data_, h.shape, dtype_size(h.dtype), h.big_endian, label);
    a.data_ = c->data();
    a.mapping_ = c.get();
    a.owner_ = std::move(c);
    a.swap_ = false;
  }
  int64_t rows = a.rows();
  a.row_nbytes_ = rows > 0 ? need / static_cast<size_t>(rows) : 0;
  return a;
}

Tensor NpyArray::make(const uint8_t* p, Shape shape) const {
  size_t esz = dtype_size(dtype_);
  if (dtype_ == DType::Bool) {  // a byte other than 0/1 is no bool value; kernels would read it as one (UB)
    const int64_t n = shape_numel(shape);
    for (int64_t i = 0; i < n; ++i)
      if (p[i] > 1)
        fail(ErrorKind::Data, "{}: bool array holds byte {} at element {} of {} (must be 0 or 1)", label_, p[i],
             (p - data_) + i, shape_str(shape_));
  }
  if (!swap_ && reinterpret_cast<uintptr_t>(p) % esz == 0)
    return Tensor::view(dtype_, std::move(shape), const_cast<uint8_t*>(p), owner_);
  Tensor t = Tensor::uninitialized(dtype_, std::move(shape));  // every byte copied below
  if (t.nbytes()) std::memcpy(t.raw(), p, t.nbytes());
  if (swap_) byteswap_elements(static_cast<uint8_t*>(t.raw()), t.nbytes(), esz);
  return t;
}

Tensor NpyArray::tensor() const { return make(data_, shape_); }

const uint8_t* NpyArray::row_bytes(int64_t i) const {
  OQ_CHECK(i >= 0 && i < rows(), "row {} of {} in {}", i, rows(), label_);
  return data_ + static_cast<size_t>(i) * row_nbytes_;
}

Tensor NpyArray::row(int64_t i) const {
  Shape s = shape_;
  if (s.empty())
    s = {1};
  else
    s[0] = 1;
  Tensor t = make(row_bytes(i), std::move(s));
  if (mapping_) mapping_->note_streamed(row_nbytes_);
  return t;
}

// ---------------------------------------------------------------------------------------------- writing

std::string npy_bytes(const Tensor& t) {
  std::string dict = "{'descr': '" + npy_descr(t.dtype()) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < t.shape().size(); ++i) dict += std::to_string(t.shape()[i]) + ", ";
  if (t.shape().size() > 1) dict.resize(dict.size() - 2);  // (5,) keeps its comma, (2, 3) does not
  if (t.shape().size() == 1) dict.resize(dict.size() - 1);
  dict += "), }";
  size_t prefix = 10;
  size_t total = ((prefix + dict.size() + 1 + 63) / 64) * 64;
  int major = 1;
  if (total - prefix > 65535) {
    prefix = 12;
    total = ((prefix + dict.size() + 1 + 63) / 64) * 64;
    major = 2;
  }
  size_t hlen = total - prefix;
  dict.append(hlen - dict.size() - 1, ' ');
  dict += '\n';
  std::string out;
  out.reserve(total + t.nbytes());
  out += "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (size_t b = 0; b < prefix - 8; ++b) out += static_cast<char>((hlen >> (8 * b)) & 0xff);
  out += dict;
  if (t.nbytes()) out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

std::string write_temp_beside(const std::string& path, const std::string& bytes) {
  std::string tmpl;
  // registered and locked: an interrupted run removes it, another run's clean-up of left-overs does not; a
  // read-only file at `path` is refused first
  int fd = run_files::create_temp_beside(path, &tmpl);
  if (fd < 0) fail(ErrorKind::Io, "cannot write {}: {}", path, std::strerror(errno));
  const char* q = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t w = ::write(fd, q, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w == 0 ? EIO : errno;
      ::close(fd);
      run_files::remove_temp(tmpl);
      fail(ErrorKind::Io, "cannot write {}: {}", path, std::strerror(e));
    }
    q += w;
    left -= static_cast<size_t>(w);
  }
  int e = ::fsync(fd) == 0 ? 0 : errno;
  if (::close(fd) != 0 && e == 0) e = errno;
  if (e != 0) {
    run_files::remove_temp(tmpl);
    fail(ErrorKind::Io, "cannot write {}: {}", path, std::strerror(e));
  }
  return tmpl;
}

void commit_beside(const std::string& tmp, const std::string& path) {
  if (run_files::commit_temp(tmp, path) != 0) {
    const int e = errno;
    run_files::remove_temp(tmp);
    fail(ErrorKind::Io, "cannot rename {} to {}: {}", tmp, path, std::strerror(e));
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  commit_beside(write_temp_beside(path, bytes), path);
}

void write_npy(const std::string& path, const Tensor& t) { write_file_atomic(path, npy_bytes(t)); }

}  // namespace oq::data
