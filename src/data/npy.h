// NumPy .npy arrays: a memory-mapped reader (format versions 1.0, 2.0 and 3.0) and an atomic writer. Reading
// never loads a whole file: the array is a view over an mmap'ed region, and a sample is one slice along axis 0
// (row(i)), which touches only that slice's pages. Big-endian data ('>f4') is byte-swapped in the copy each row
// then is; a Fortran-ordered array (np.save of x.T) is rewritten once in C order into a mapped temporary file.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace oq::data {

// A read-only file mapping (MAP_PRIVATE with PROT_WRITE, so a stray write through a Tensor view changes only
// this process's copy-on-write page, never the file). Unmapped when the last owner goes away.
class MappedFile {
 public:
  // Maps the whole file. Io error naming `path` when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // Maps an already open descriptor (the caller keeps ownership of fd; it may be closed afterwards).
  static std::shared_ptr<MappedFile> from_fd(int fd, const std::string& label);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

  // Streaming readers call this with the bytes of every view they hand out. Each time kReleaseBytes have been
  // handed out, the mapping's pages are dropped from this process (madvise MADV_DONTNEED): the file stays
  // mapped and pages still in use fault back in from the page cache with the same bytes. Without it every
  // page a pass over the data touched would stay in the process's resident set (the RSS of a 1000-sample
  // calibration grew by the 600 MB file), although nothing reads it again until the next pass.
  // 2 MiB: a few samples of a 224x224 model; a drop costs one madvise (pages are faulted in once either way).
  // With 64 MiB, a 100-sample calibration on MobileNetV2 peaked at 126 MB, with 2 MiB at 77 MB.
  void note_streamed(size_t nbytes);
  static constexpr size_t kReleaseBytes = size_t{2} << 20;
  // Drops the pages that lie wholly inside [begin, begin + n) (a part of the mapping read once, such as the
  // deflated bytes of an .npz member zlib has consumed) from this process, as note_streamed does for all of it.
  void release(const uint8_t* begin, size_t n);

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::atomic<size_t> streamed_{0};
};

// What an .npy header says.
struct NpyHeader {
  DType dtype = DType::Undefined;
  Shape shape;
  size_t data_offset = 0;  // bytes from the start of the .npy content to the first element
  int major = 1;           // format version
  bool big_endian = false; // a multi-byte dtype stored big-endian ('>')
  bool fortran = false;    // Fortran order that differs from C order (two dims above 1)
  int64_t numel = 0;       // elements (Data error naming the file when they, or their bytes, overflow 64 bits)
  size_t nbytes = 0;       // numel * the dtype's size
};

// Parses the header at `p` (n bytes available). `label` names the file in Data errors.
NpyHeader parse_npy_header(const uint8_t* p, size_t n, const std::string& label);
// The numpy descr ("<f4", "|u1", ...) for a dtype; Data error for dtypes .npy cannot hold here.
std::string npy_descr(DType t);

// An array inside a mapping (a .npy file, or a member of an .npz archive).
class NpyArray {
 public:
  NpyArray() = default;
  // Maps `path` and parses its header. Data error naming the file on a bad header or truncated data.
  static NpyArray open(const std::string& path);
  // An .npy image at [bytes, bytes + n) inside memory kept alive by `owner`; `label` names it in errors.
  static NpyArray from_memory(std::shared_ptr<void> owner, const uint8_t* bytes, size_t n,
                              const std::string& label);
  // Same, inside a file mapping: rows handed out by row() count as streamed (MappedFile::note_streamed).
  static NpyArray from_mapping(std::shared_ptr<MappedFile> m, const uint8_t* bytes, size_t n,
                               const std::string& label);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  // Length of axis 0 (1 for a 0-d array).
  int64_t rows() const { return shape_.empty() ? 1 : shape_[0]; }
  const std::string& label() const { return label_; }
  int major_version() const { return major_; }

  // Zero-copy view of the whole array (copied only when the data is not aligned for its dtype, which can
  // happen for members stored in a zip archive, or is big-endian: then byte-swapped).
  Tensor tensor() const;
  // Row i along axis 0 with that axis kept: shape [1, d1, d2, ...]. Same copy rule as tensor().
  Tensor row(int64_t i) const;
  // Pointer to the raw bytes of row i (may be unaligned; in the file's byte order).
  const uint8_t* row_bytes(int64_t i) const;
  size_t row_nbytes() const { return row_nbytes_; }

 private:
  static NpyArray build(std::shared_ptr<void> owner, MappedFile* mapping, const uint8_t* bytes, size_t n,
                        const std::string& label);
  Tensor make(const uint8_t* p, Shape shape) const;
  std::shared_ptr<void> owner_;
  MappedFile* mapping_ = nullptr;  // owner_ when it is a file mapping
  const uint8_t* data_ = nullptr;
  DType dtype_ = DType::Undefined;
  Shape shape_;
  size_t row_nbytes_ = 0;
  int major_ = 1;
  bool swap_ = false;  // big-endian data: rows are copied and byte-swapped
  std::string label_;
};

// An unlinked temporary file in $TMPDIR (else /tmp), open for writing; Io error naming `label`, the folder (and
// TMPDIR when it is the variable's) and `purpose` ("inflate the deflated member").
int unlinked_temp_file(const std::string& label, const char* purpose);
// Writes all n bytes to fd (retrying short writes); Io error naming `label`.
void write_all(int fd, const uint8_t* p, size_t n, const std::string& label);

// Serialises a tensor as .npy bytes (version 1.0, or 2.0 when the header needs more than 65535 bytes). The
// header is padded so that the data starts at a multiple of 64 bytes, as numpy does.
std::string npy_bytes(const Tensor& t);
// Writes `t` to `path` atomically: a temporary file in the same folder, then rename. Io error naming the path.
void write_npy(const std::string& path, const Tensor& t);
// Writes bytes to `path` atomically (temp file + fsync + rename). Io error naming the path.
void write_file_atomic(const std::string& path, const std::string& bytes);
// write_file_atomic in two steps, for writers that must put several files in place only once all are written:
// the bytes go to a registered temporary file beside `path` (NAME.tmp-XXXXXX, fsynced), whose name is returned;
// commit_beside renames it over `path` (an Io error naming both on failure, the temporary then removed).
std::string write_temp_beside(const std::string& path, const std::string& bytes);
void commit_beside(const std::string& tmp, const std::string& path);

}  // namespace oq::data
