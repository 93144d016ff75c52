// The zip parsing below is hand-written on purpose: reading a few members of a numpy-written archive needs
// only the end-of-central-directory record, the ZIP64 records numpy/Python's zipfile emit for large arrays,
// the central directory and the local headers (APPNOTE.TXT sections 4.3.7, 4.3.12, 4.3.14-16, 4.5.3).
// Decompression uses zlib (raw deflate streams); CRC-32s are libdeflate's (PCLMUL: a 60 MB member in ~20 ms).
#include "data/npz.h"

#include <stdlib.h>
#include <unistd.h>
#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/log.h"
#include "core/parallel.h"

namespace oq::data {

namespace {

constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kLocalSig = 0x04034b50;

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) { return rd16(p) | (uint32_t{rd16(p + 2)} << 16); }
uint64_t rd64(const uint8_t* p) { return rd32(p) | (uint64_t{rd32(p + 4)} << 32); }

void check_crc(uint32_t got, uint32_t expected, const std::string& label) {
  if (got != expected)
    fail(ErrorKind::Data, "{}: CRC-32 mismatch (corrupt archive)", label);
}

// Inflates a raw deflate stream (inside `archive`'s mapping) into an unlinked temporary file and maps it. The
// deflated bytes are fed to zlib MappedFile::kReleaseBytes at a time and their pages released once consumed:
// without it the whole compressed member stayed resident (a 1000-sample calibration set of 557 MB, deflated,
// peaked at 574 MB of RSS; stored, at 87 MB).
std::shared_ptr<MappedFile> inflate_to_mapping(MappedFile& archive, const uint8_t* src, uint64_t comp_size,
                                               uint64_t size, uint32_t crc_expected, const std::string& label) {
  const int fd = unlinked_temp_file(label, "inflate the deflated member");
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail(ErrorKind::Runtime, "{}: zlib init failed", label);
  std::vector<uint8_t> buf(1 << 20);
  uint64_t consumed = 0, produced = 0, released = 0;
  uint32_t crc = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (zs.avail_in == 0 && consumed < comp_size) {
      archive.release(src + released, consumed - released);  // zlib has read every byte before `consumed`
      released = consumed - std::min<uint64_t>(consumed, 1 << 16);  // the page partly released stays in range
      uint64_t chunk = std::min<uint64_t>(comp_size - consumed, MappedFile::kReleaseBytes);
      zs.next_in = const_cast<Bytef*>(src + consumed);
      zs.avail_in = static_cast<uInt>(chunk);
      consumed += chunk;
    }
    zs.next_out = buf.data();
    zs.avail_out = static_cast<uInt>(buf.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      fail(ErrorKind::Data, "{}: corrupt deflate data ({})", label, zs.msg ? zs.msg : std::to_string(rc));
    }
    size_t got = buf.size() - zs.avail_out;
    if (got == 0 && rc == Z_OK && zs.avail_in == 0 && consumed >= comp_size) {
      inflateEnd(&zs);
      fail(ErrorKind::Data, "{}: truncated deflate data", label);
    }
    crc = libdeflate_crc32(crc, buf.data(), got);
    produced += got;
    if (produced > size) {
      inflateEnd(&zs);
      fail(ErrorKind::Data, "{}: inflates to more than the {} bytes the zip directory records", label, size);
    }
    try {
      write_all(fd, buf.data(), got, label);
    } catch (...) {
      inflateEnd(&zs);
      throw;
    }
  }
  inflateEnd(&zs);
  archive.release(src + released, consumed - released);
  if (produced != size)
    fail(ErrorKind::Data, "{}: inflated {} bytes, the zip directory records {}", label, produced, size);
  check_crc(crc, crc_expected, label);
  return MappedFile::from_fd(fd, label);
}

// np.savez stores its members: numpy (Python's zipfile) checks their CRC-32 as it reads them and raises BadZipFile
// on a mismatch; a flipped bit in a stored member was fed silently. The member's bytes are checked once, when it
// is opened, in chunks of MappedFile::kReleaseBytes summed on the run's threads, each chunk's pages released once
// summed (as inflate_to_mapping does: the check leaves the resident set as small as the streaming that follows);
// zlib's crc32_combine joins the chunks' CRCs. A 60 MB member: ~25-45 ms of CPU (docs/benchmarks.md).
void check_stored_crc(MappedFile& archive, const uint8_t* src, uint64_t size, uint32_t crc_expected,
                      const std::string& label) {
  constexpr uint64_t step = MappedFile::kReleaseBytes;
  const auto chunks = static_cast<int64_t>((size + step - 1) / step);
  auto len = [&](int64_t k) { return static_cast<size_t>(std::min<uint64_t>(size - k * step, step)); };
  std::vector<uint32_t> part(static_cast<size_t>(chunks));
  parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      part[static_cast<size_t>(k)] = libdeflate_crc32(0, src + k * step, len(k));
      archive.release(src + k * step, len(k));
    }
  });
  uLong crc = 0;  // the CRC-32 of no bytes
  for (int64_t k = 0; k < chunks; ++k)
    crc = crc32_combine(crc, part[static_cast<size_t>(k)], static_cast<z_off_t>(len(k)));
  check_crc(static_cast<uint32_t>(crc), crc_expected, label);
}

}  // namespace

NpzArchive NpzArchive::open(const std::string& path) {
  NpzArchive a;
  a.path_ = path;
  a.file_ = MappedFile::open(path);
  const uint8_t* base = a.file_->data();
  const uint64_t n = a.file_->size();
  if (n < 22) fail(ErrorKind::Data, "{} is not an .npz (zip) archive: too short", path);

  // End of central directory: 22 bytes + a comment of up to 65535 bytes, searched backwards.
  int64_t eocd = -1;
  for (int64_t pos = static_cast<int64_t>(n) - 22, lo = std::max<int64_t>(0, static_cast<int64_t>(n) - 22 - 65535);
       pos >= lo; --pos) {
    if (rd32(base + pos) == kEocdSig && static_cast<uint64_t>(pos) + 22 + rd16(base + pos + 20) <= n) {
      eocd = pos;
      break;
    }
  }
  if (eocd < 0) fail(ErrorKind::Data, "{} is not an .npz (zip) archive: no end-of-central-directory record", path);
  const uint8_t* e = base + eocd;
  uint64_t count = rd16(e + 10);
  uint64_t cd_size = rd32(e + 12);
  uint64_t cd_off = rd32(e + 16);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
    // ZIP64: a 20-byte locator right before the EOCD points to the ZIP64 end-of-central-directory record.
    if (eocd < 20 || rd32(base + eocd - 20) != kZip64LocatorSig)
      fail(ErrorKind::Data, "{}: ZIP64 archive without a ZIP64 locator", path);
    uint64_t z = rd64(base + eocd - 20 + 8);
    if (z + 56 > n || rd32(base + z) != kZip64EocdSig) fail(ErrorKind::Data, "{}: bad ZIP64 end record", path);
    count = rd64(base + z + 32);
    cd_size = rd64(base + z + 40);
    cd_off = rd64(base + z + 48);
  }
  if (cd_off > n || cd_size > n - cd_off) fail(ErrorKind::Data, "{}: central directory lies outside the file", path);

  const uint8_t* p = base + cd_off;
  const uint8_t* end = p + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (end - p < 46 || rd32(p) != kCentralSig) fail(ErrorKind::Data, "{}: corrupt zip central directory", path);
    Member m;
    m.flags = rd16(p + 8);
    m.method = rd16(p + 10);
    m.crc = rd32(p + 16);
    m.comp_size = rd32(p + 20);
    m.size = rd32(p + 24);
    uint16_t name_len = rd16(p + 28), extra_len = rd16(p + 30), comment_len = rd16(p + 32);
    m.local_offset = rd32(p + 42);
    if (static_cast<uint64_t>(end - p) < 46u + name_len + extra_len + comment_len)
      fail(ErrorKind::Data, "{}: corrupt zip central directory", path);
    m.name.assign(reinterpret_cast<const char*>(p + 46), name_len);
    // ZIP64 extended information (header id 1): only the fields whose 32-bit value is 0xFFFFFFFF, in order
    // uncompressed size, compressed size, local header offset.
    const uint8_t* x = p + 46 + name_len;
    const uint8_t* xe = x + extra_len;
    while (xe - x >= 4) {
      uint16_t id = rd16(x), len = rd16(x + 2);
      const uint8_t* d = x + 4;
      if (xe - d < len) break;
      if (id == 1) {
        const uint8_t* q = d;
        auto take = [&](uint64_t& v) {
          if (v != 0xFFFFFFFFu) return;
          if (d + len - q < 8) fail(ErrorKind::Data, "{}: bad ZIP64 extra field for {}", path, m.name);
          v = rd64(q);
          q += 8;
        };
        take(m.size);
        take(m.comp_size);
        take(m.local_offset);
      }
      x = d + len;
    }
    a.members_.push_back(std::move(m));
    p += 46 + name_len + extra_len + comment_len;
  }
  a.warn_duplicates();
  return a;
}

void NpzArchive::warn_duplicates() const {
  std::map<std::string, int> count;
  for (const auto& m : members_) ++count[m.name];
  for (const auto& [name, c] : count) {
    if (c > 1)
      OQ_WARN("{}: {} members are named '{}' (an array appended to the archive?): the last one is read, as numpy "
              "does", path_, c, name);
    const bool npy = name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0;
    const std::string array = npy ? name.substr(0, name.size() - 4) : "";
    if (npy && count.count(array))
      OQ_WARN("{}: members '{}' and '{}' both hold array '{}': member '{}' is read, as numpy does", path_, array, name,
              array, array);
  }
}

std::vector<std::string> NpzArchive::names() const {
  std::vector<std::string> r;
  for (const auto& m : members_) {
    std::string s = m.name;
    if (s.size() > 4 && s.compare(s.size() - 4, 4, ".npy") == 0) s.resize(s.size() - 4);
    if (std::find(r.begin(), r.end(), s) == r.end()) r.push_back(s);
  }
  return r;
}

std::string NpzArchive::names_str() const {
  std::string r;
  for (const auto& s : names()) r += (r.empty() ? "" : ", ") + s;
  return r.empty() ? "(none)" : r;
}

// numpy's rule (NpzFile.__getitem__): the member named exactly `name`, else `name`.npy; of several members of
// that name, the last in the central directory (zipfile's NameToInfo keeps the last: an array appended with
// ZipFile(..., 'a').writestr replaces the first for numpy). onnxquant used to read the first match of either name.
const NpzArchive::Member* NpzArchive::find(const std::string& name) const {
  for (const std::string& want : {name, name + ".npy"})
    for (auto it = members_.rbegin(); it != members_.rend(); ++it)
      if (it->name == want) return &*it;
  return nullptr;
}

bool NpzArchive::has(const std::string& name) const { return find(name) != nullptr; }

NpyArray NpzArchive::array(const std::string& name) const {
  const Member* m = find(name);
  if (!m) fail(ErrorKind::Data, "{} has no array '{}'; its members are: {}", path_, name, names_str());
  std::string label = path_ + ":" + name;
  if (m->flags & 1) fail(ErrorKind::Data, "{}: encrypted zip members are not supported", label);
  const uint8_t* base = file_->data();
  const uint64_t n = file_->size();
  if (m->local_offset > n || n - m->local_offset < 30 || rd32(base + m->local_offset) != kLocalSig)
    fail(ErrorKind::Data, "{}: bad zip local header", label);
  const uint8_t* lh = base + m->local_offset;
  uint64_t data_off = m->local_offset + 30 + rd16(lh + 26) + rd16(lh + 28);
  if (data_off > n || n - data_off < m->comp_size) fail(ErrorKind::Data, "{}: member data lies outside the file", label);
  const uint8_t* data = base + data_off;
  if (m->method == 0) {
    if (m->comp_size != m->size) fail(ErrorKind::Data, "{}: stored member with differing sizes", label);
    check_stored_crc(*file_, data, m->size, m->crc, label);
    return NpyArray::from_mapping(file_, data, m->size, label);
  }
  if (m->method == 8) {
    auto mapped = inflate_to_mapping(*file_, data, m->comp_size, m->size, m->crc, label);
    return NpyArray::from_mapping(mapped, mapped->data(), mapped->size(), label);
  }
  fail(ErrorKind::Data, "{}: zip compression method {} is not supported (only stored and deflate)", label,
       m->method);
}

}  // namespace oq::data
