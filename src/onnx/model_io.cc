#include "onnx/model_io.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <set>
#include <unordered_set>

#include "core/run_files.h"
#include "onnx/proto_model.h"
#include "onnx/proto_tensor.h"

namespace oq::onnx {
namespace {

namespace fs = std::filesystem;
namespace pbio = google::protobuf::io;

constexpr uint64_t kProtoLimit = static_cast<uint64_t>(INT_MAX);  // protobuf's 2 GiB message limit
constexpr size_t kExternalAlign = 64;

// All bytes of an open descriptor, read to its end, up to protobuf's limit.
std::string read_fd(int fd) {
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) return bytes;
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(ErrorKind::Io, "read failed: {}", std::strerror(errno));
    }
    bytes.append(buf, static_cast<size_t>(n));
    if (bytes.size() > kProtoLimit) fail(ErrorKind::Model, "more than the 2 GiB protobuf limit");
  }
}

// A file's bytes for parsing (a model, a TensorProto): the file mapped read-only (no copy into the process's
// memory, no zeroing of a buffer first: parsing copies what it keeps anyway), or read into memory from the open
// descriptor when it cannot be mapped (a pipe such as <(...), a file system without mmap).
// The mapping lives only while the file is parsed. (As with every mapped input, e.g. the .npz data, a file
// truncated by another process during those milliseconds would end the process with SIGBUS.)
class FileBytes {
 public:
  explicit FileBytes(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) fail(ErrorKind::Io, "is a directory");
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(ErrorKind::Io, "cannot open: {}", std::strerror(errno));
    try {
      struct stat st {};
      if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        size_ = static_cast<size_t>(st.st_size);
        if (size_ > kProtoLimit) fail(ErrorKind::Model, "{} bytes exceed the 2 GiB protobuf limit", size_);
        if (size_ > 0) {
          void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
          if (p != MAP_FAILED) {
            map_ = p;
            ::madvise(p, size_, MADV_SEQUENTIAL);  // advisory
          } else {  // a file system without mapping: read it
            copy_ = read_fd(fd);
            size_ = copy_.size();
          }
        }
      } else {  // a pipe or another stream: read it to its end
        copy_ = read_fd(fd);
        size_ = copy_.size();
      }
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
  }
  ~FileBytes() {
    if (map_) ::munmap(map_, size_);
  }
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  std::string_view view() const {
    return map_ ? std::string_view(static_cast<const char*>(map_), size_) : std::string_view(copy_);
  }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
  std::string copy_;
};

// Parses bytes with the total-bytes limit raised to protobuf's maximum.
template <typename Msg>
bool parse_large(std::string_view bytes, Msg* msg) {
  pbio::ArrayInputStream ais(bytes.data(), static_cast<int>(bytes.size()));
  pbio::CodedInputStream cis(&ais);
  cis.SetTotalBytesLimit(INT_MAX);
  return msg->ParseFromCodedStream(&cis) && cis.ConsumedEntireMessage();
}

template <typename Msg>
std::string serialize_deterministic(const Msg& msg, const std::string& label) {
  size_t size = msg.ByteSizeLong();
  if (size > kProtoLimit)
    fail(ErrorKind::Model, "'{}': serialized size {} bytes exceeds the 2 GiB protobuf limit", label, size);
  std::string out;
  out.reserve(size);
  {
    pbio::StringOutputStream sos(&out);
    pbio::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    msg.SerializeWithCachedSizes(&cos);
    if (cos.HadError()) fail(ErrorKind::Runtime, "'{}': protobuf serialization failed", label);
  }
  return out;
}

std::string parent_dir(const std::string& path) {
  fs::path p = fs::path(path).parent_path();
  return p.empty() ? std::string(".") : p.string();
}

// A temp file beside `target`; removed on destruction unless committed (renamed onto target).
class TempFile {
 public:
  explicit TempFile(const std::string& target, bool keep_locked = false) : target_(target), keep_locked_(keep_locked) {
    // Registered as the run's temporary and locked while it exists (core/run_files.h): an interrupted run removes
    // it, another run's clean-up of left-overs does not. A read-only file at `target` is refused first.
    int fd = run_files::create_temp_beside(target, &path_);
    if (fd < 0) fail(ErrorKind::Io, "cannot create a temporary file beside '{}': {}", target, std::strerror(errno));
    f_ = ::fdopen(fd, "wb");
    if (!f_) {
      const int e = errno;
      ::close(fd);
      run_files::remove_temp(path_);
      fail(ErrorKind::Io, "cannot open '{}': {}", path_, std::strerror(e));
    }
  }
  ~TempFile() {
    if (f_) std::fclose(f_);
    if (!committed_) run_files::remove_temp(path_);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const char* data, size_t n) {
    if (n && std::fwrite(data, 1, n, f_) != n)
      fail(ErrorKind::Io, "writing '{}' failed: {}", target_, std::strerror(errno));
    written_ += n;
  }
  void pad_to(size_t offset) {
    static const char zeros[kExternalAlign] = {};
    while (written_ < offset) write(zeros, std::min(offset - written_, sizeof zeros));
  }
  size_t written() const { return written_; }
  // Flushes and closes; the data is complete after this.
  void close() {
    bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
    ok = (std::fclose(f_) == 0) && ok;
    f_ = nullptr;
    if (!ok) fail(ErrorKind::Io, "writing '{}' failed: {}", target_, std::strerror(errno));
  }
  // Renames it into place, with the mode open(2) would give it (run_files::commit_temp).
  void commit() {
    if (f_) close();
    if (run_files::commit_temp(path_, target_, keep_locked_) != 0)
      fail(ErrorKind::Io, "cannot rename '{}' to '{}': {}", path_, target_, std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string target_, path_;
  bool keep_locked_ = false;
  std::FILE* f_ = nullptr;
  size_t written_ = 0;
  bool committed_ = false;
};

// Every initializer TensorProto of a graph and of its subgraphs (graph attributes).
void for_each_initializer(::onnx::GraphProto* g, const std::function<void(::onnx::TensorProto*)>& fn) {
  for (auto& t : *g->mutable_initializer()) fn(&t);
  for (auto& n : *g->mutable_node())
    for (auto& a : *n.mutable_attribute()) {
      if (a.has_g()) for_each_initializer(a.mutable_g(), fn);
      for (auto& sg : *a.mutable_graphs()) for_each_initializer(&sg, fn);
    }
}

// Structural checks every consumer relies on, done once at load so that errors name the file: a cycle, an input
// nothing produces, a tensor produced twice (ir::topological_order), a graph output nothing produces or listed
// twice, a graph input listed twice, two initializers of the same name, two nodes of the same name (in any graph).
void check_structure(const ir::Graph& g) {
  (void)ir::topological_order(g);
  ir::check_unique_node_names(g);
  std::unordered_set<std::string> avail, seen_in, seen_out;
  for (const auto& v : g.inputs) {
    if (!seen_in.insert(v.name).second) fail(ErrorKind::Model, "graph input '{}' is listed twice", v.name);
    avail.insert(v.name);
  }
  std::unordered_set<std::string> inits;
  for (const auto& i : g.initializers) {
    avail.insert(i.name);  // also listed as a graph input in older exports: fine
    if (!inits.insert(i.name).second)
      fail(ErrorKind::Model, "initializer '{}' is given twice (onnx.checker refuses it; which tensor is meant is "
           "ambiguous)", i.name);
  }
  for (const auto& n : g.nodes) avail.insert(n.outputs.begin(), n.outputs.end());
  for (const auto& v : g.outputs) {
    if (!seen_out.insert(v.name).second) fail(ErrorKind::Model, "graph output '{}' is listed twice", v.name);
    if (!avail.count(v.name))
      fail(ErrorKind::Model, "graph output '{}' is not produced by any node, input or initializer", v.name);
  }
}

void add_kv(::onnx::TensorProto* t, const char* k, const std::string& v) {
  auto* kv = t->add_external_data();
  kv->set_key(k);
  kv->set_value(v);
}

}  // namespace

ir::Model load_model_from_bytes(std::string_view bytes, const std::string& base_dir, const std::string& label) {
  try {
    if (bytes.empty()) fail(ErrorKind::Model, "file is empty");
    if (bytes.size() > kProtoLimit) fail(ErrorKind::Model, "{} bytes exceed the 2 GiB protobuf limit", bytes.size());
    ::onnx::ModelProto pb;
    if (!parse_large(bytes, &pb))
      fail(ErrorKind::Model, "not a valid ONNX protobuf (garbage or truncated file)");
    if (!pb.has_ir_version() || pb.ir_version() <= 0)
      fail(ErrorKind::Model, "not an ONNX model (no ir_version; garbage or truncated file?)");
    if (!pb.has_graph()) fail(ErrorKind::Model, "not an ONNX model (no graph; truncated file?)");
    if (pb.ir_version() >= 3 && pb.opset_import_size() == 0)
      fail(ErrorKind::Model, "no opset_import (truncated file?)");
    std::set<std::string> external;  // every external data file the model names (proto_model.h)
    ir::Model m = detail::model_from_proto(pb, detail::ExternalDir(base_dir, &external));
    m.external_data_files.assign(external.begin(), external.end());
    check_structure(m.graph);
    return m;
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("model '{}': {}", label, e.what()));
  }
}

ir::Model load_model(const std::string& path) {
  std::unique_ptr<FileBytes> bytes;
  try {
    bytes = std::make_unique<FileBytes>(path);
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("model '{}': {}", path, e.what()));
  }
  return load_model_from_bytes(bytes->view(), parent_dir(path), path);
}

// Adapts TempFile::write to protobuf's CopyingOutputStream (the write's Error is kept, not thrown through
// protobuf's frames, and rethrown by serialize_deterministic_to).
class TempFileStream final : public pbio::CopyingOutputStream {
 public:
  explicit TempFileStream(TempFile& f) : f_(f) {}
  bool Write(const void* buffer, int size) override {
    try {
      f_.write(static_cast<const char*>(buffer), static_cast<size_t>(size));
      return true;
    } catch (...) {
      error = std::current_exception();
      return false;
    }
  }
  std::exception_ptr error;

 private:
  TempFile& f_;
};

template <typename Msg>
void serialize_deterministic_to(const Msg& msg, TempFile& file, const std::string& label) {
  size_t size = msg.ByteSizeLong();
  if (size > kProtoLimit)
    fail(ErrorKind::Model, "'{}': serialized size {} bytes exceeds the 2 GiB protobuf limit", label, size);
  TempFileStream stream(file);
  pbio::CopyingOutputStreamAdaptor adaptor(&stream, 1 << 16);
  bool ok;
  {
    pbio::CodedOutputStream cos(&adaptor);
    cos.SetSerializationDeterministic(true);
    msg.SerializeWithCachedSizes(&cos);
    ok = !cos.HadError();
  }
  ok = adaptor.Flush() && ok;
  if (stream.error) std::rethrow_exception(stream.error);  // the file's own error (disk full, ...)
  if (!ok) fail(ErrorKind::Runtime, "'{}': protobuf serialization failed", label);
}

std::string serialize_model(const ir::Model& m) {
  ::onnx::ModelProto pb;
  detail::model_to_proto(m, &pb);
  return serialize_deterministic(pb, "model");
}

uint64_t SavedModel::bytes() const {
  uint64_t n = 0;
  for (const auto* f : {&path, &data_path}) {
    std::error_code ec;
    const auto size = f->empty() ? 0 : fs::file_size(*f, ec);
    if (!ec) n += size;
  }
  return n;
}

SavedModel save_model(const ir::Model& m, const std::string& path, const SaveOptions& opts) {
  try {
    ::onnx::ModelProto pb;
    detail::model_to_proto(m, &pb);

    bool external = opts.external_data;
    size_t threshold = opts.external_threshold;
    if (!external && pb.ByteSizeLong() > kProtoLimit) {
      external = true;  // a protobuf cannot hold more than 2 GiB
    }
    std::string data_name = opts.external_file.empty()
                                ? fs::path(path).filename().string() + ".data"
                                : opts.external_file;
    std::string dir = parent_dir(path);
    std::unique_ptr<TempFile> data_file;
    std::string data_path;
    if (external) {
      data_path = detail::resolve_external_location(dir, data_name, "(external data file)");
      for (const auto& p : opts.protected_files) {
        std::error_code ec;
        if (fs::exists(p, ec) && fs::exists(data_path, ec) && fs::equivalent(p, data_path, ec) && !ec)
          fail(ErrorKind::Usage, "the model is over 2 GiB and its external data would go to '{}', which is an input "
               "file ('{}'); choose another output folder", data_path, p);
      }
      // Each tensor's bytes go straight to the data file; the proto keeps only their location.
      for_each_initializer(pb.mutable_graph(), [&](::onnx::TensorProto* t) {
        if (!t->has_raw_data() || t->raw_data().size() < threshold) return;
        if (!data_file) data_file = std::make_unique<TempFile>(data_path, opts.transient);
        size_t offset = (data_file->written() + kExternalAlign - 1) / kExternalAlign * kExternalAlign;
        data_file->pad_to(offset);
        data_file->write(t->raw_data().data(), t->raw_data().size());
        add_kv(t, "location", data_name);
        add_kv(t, "offset", std::to_string(offset));
        add_kv(t, "length", std::to_string(t->raw_data().size()));
        t->clear_raw_data();
        t->set_data_location(::onnx::TensorProto::EXTERNAL);
      });
    }
    // Straight into the file: no copy of the serialized model in memory (it would add its size to the peak).
    TempFile model_file(path, opts.transient);
    serialize_deterministic_to(pb, model_file, path);
    model_file.close();
    if (data_file) data_file->commit();
    model_file.commit();
    return {path, data_file ? data_path : std::string()};
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("saving model '{}': {}", path, e.what()));
  }
}

Tensor load_tensor_pb(const std::string& path, std::string* name) {
  try {
    FileBytes file(path);
    const std::string_view bytes = file.view();
    ::onnx::TensorProto pb;
    if (bytes.empty()) fail(ErrorKind::Data, "file is empty");
    if (!parse_large(bytes, &pb)) fail(ErrorKind::Data, "not a valid serialized TensorProto");
    if (name) *name = pb.name();
    return detail::tensor_from_proto(pb, parent_dir(path));
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("tensor file '{}': {}", path, e.what()));
  }
}

void save_tensor_pb(const Tensor& t, const std::string& name, const std::string& path) {
  try {
    ::onnx::TensorProto pb;
    detail::tensor_to_proto(t, &pb);
    pb.set_name(name);
    std::string bytes = serialize_deterministic(pb, path);
    TempFile f(path);
    f.write(bytes.data(), bytes.size());
    f.commit();
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("saving tensor file '{}': {}", path, e.what()));
  }
}

}  // namespace oq::onnx
