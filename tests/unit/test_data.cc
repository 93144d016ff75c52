// src/data: .npy/.npz reading and writing, selection (seeded shuffle), array data sets.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "data/dataset.h"
#include "tmpdir_test_util.h"
#include "data/npy.h"
#include "data/npz.h"

using namespace oq;
using namespace oq::data;
namespace fs = std::filesystem;

namespace {

using oq::test_util::TmpDir;

void write_bytes(const std::string& path, const std::string& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}

// Expect an oq::Error of `kind` whose message contains every string in `parts`.
template <typename F>
void expect_error(F&& f, ErrorKind kind, std::vector<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind)) << e.what();
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

// ---- a tiny zip writer (test only), optionally with ZIP64 records the way Python's zipfile writes them.
void put16(std::string& s, uint32_t v) { s += char(v & 0xff), s += char((v >> 8) & 0xff); }
void put32(std::string& s, uint32_t v) { put16(s, v & 0xffff), put16(s, v >> 16); }
void put64(std::string& s, uint64_t v) { put32(s, uint32_t(v)), put32(s, uint32_t(v >> 32)); }

std::string raw_deflate(const std::string& in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()) + 16, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct ZipMember {
  std::string name, data;
  bool deflate = false;
};

std::string make_zip(const std::vector<ZipMember>& ms, bool zip64, bool corrupt_crc = false) {
  std::string z, cd;
  for (const auto& m : ms) {
    std::string payload = m.deflate ? raw_deflate(m.data) : m.data;
    uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(m.data.data()), m.data.size()));
    if (corrupt_crc) crc ^= 1;
    uint64_t off = z.size();
    put32(z, 0x04034b50), put16(z, zip64 ? 45 : 20), put16(z, 0), put16(z, m.deflate ? 8 : 0);
    put16(z, 0), put16(z, 0x21), put32(z, crc);
    put32(z, zip64 ? 0xFFFFFFFF : uint32_t(payload.size())), put32(z, zip64 ? 0xFFFFFFFF : uint32_t(m.data.size()));
    put16(z, uint32_t(m.name.size())), put16(z, zip64 ? 20 : 0);
    z += m.name;
    if (zip64) put16(z, 1), put16(z, 16), put64(z, m.data.size()), put64(z, payload.size());
    z += payload;
    put32(cd, 0x02014b50), put16(cd, 45), put16(cd, zip64 ? 45 : 20), put16(cd, 0), put16(cd, m.deflate ? 8 : 0);
    put16(cd, 0), put16(cd, 0x21), put32(cd, crc);
    put32(cd, zip64 ? 0xFFFFFFFF : uint32_t(payload.size())), put32(cd, zip64 ? 0xFFFFFFFF : uint32_t(m.data.size()));
    put16(cd, uint32_t(m.name.size())), put16(cd, zip64 ? 28 : 0), put16(cd, 0), put16(cd, 0), put16(cd, 0);
    put32(cd, 0), put32(cd, zip64 ? 0xFFFFFFFF : uint32_t(off));
    cd += m.name;
    if (zip64) put16(cd, 1), put16(cd, 24), put64(cd, m.data.size()), put64(cd, payload.size()), put64(cd, off);
  }
  uint64_t cd_off = z.size();
  z += cd;
  if (zip64) {
    uint64_t rec = z.size();
    put32(z, 0x06064b50), put64(z, 44), put16(z, 45), put16(z, 45), put32(z, 0), put32(z, 0);
    put64(z, ms.size()), put64(z, ms.size()), put64(z, cd.size()), put64(z, cd_off);
    put32(z, 0x07064b50), put32(z, 0), put64(z, rec), put32(z, 1);
  }
  put32(z, 0x06054b50), put16(z, 0), put16(z, 0);
  put16(z, zip64 ? 0xFFFF : uint32_t(ms.size())), put16(z, zip64 ? 0xFFFF : uint32_t(ms.size()));
  put32(z, zip64 ? 0xFFFFFFFF : uint32_t(cd.size())), put32(z, zip64 ? 0xFFFFFFFF : uint32_t(cd_off));
  put16(z, 0);
  return z;
}

Tensor iota_tensor(DType t, Shape s) {
  Tensor f(DType::Double, s);
  for (int64_t i = 0; i < f.numel(); ++i) f.data<double>()[i] = static_cast<double>(i % 7) - 2.0;
  return f.cast(t);
}

}  // namespace

// ------------------------------------------------------------------------------------------------ .npy

TEST(Npy, RoundTripEveryDtype) {
  TmpDir d;
  for (DType t : {DType::Float, DType::Double, DType::UInt8, DType::Int8, DType::Int16, DType::Int32, DType::Int64,
                  DType::Bool, DType::UInt16, DType::Float16}) {
    Tensor x = t == DType::Float16 ? Tensor::from_vector<uint16_t>(t, {2, 3}, {0x3C00, 0, 1, 2, 3, 0xC000})
                                   : iota_tensor(t, {2, 3, 5});
    std::string p = d / (std::string(dtype_name(t)) + ".npy");
    write_npy(p, x);
    NpyArray a = NpyArray::open(p);
    EXPECT_EQ(a.dtype(), t);
    EXPECT_EQ(a.shape(), x.shape());
    EXPECT_TRUE(a.tensor().equals(x)) << dtype_name(t);
    Tensor r1 = a.row(1);
    EXPECT_EQ(r1.dim(0), 1);
    EXPECT_EQ(std::memcmp(r1.raw(), static_cast<const uint8_t*>(x.raw()) + x.nbytes() / 2, r1.nbytes()), 0);
  }
  // No temporary files left behind by the atomic writer.
  for (const auto& e : fs::directory_iterator(d.path))
    EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST(Npy, HeaderBytesAsNumpyWritesThem) {
  // numpy 1.x/2.x: np.save of np.zeros((2, 3), '<f4') -> this exact 128-byte header (64-byte aligned data).
  std::string b = npy_bytes(Tensor(DType::Float, {2, 3}));
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  ASSERT_EQ(b.size(), 128u + 24u);
  EXPECT_EQ(b.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_EQ(uint8_t(b[8]) | (uint8_t(b[9]) << 8), 118);
  EXPECT_EQ(b.substr(10, dict.size()), dict);
  EXPECT_EQ(b[127], '\n');
  EXPECT_EQ(b[126], ' ');
  // 1-D and 0-d shapes use Python tuple syntax.
  EXPECT_NE(npy_bytes(Tensor(DType::Int64, {5})).find("'shape': (5,), }"), std::string::npos);
  EXPECT_NE(npy_bytes(Tensor(DType::Int64, {})).find("'shape': (), }"), std::string::npos);
}

TEST(Npy, ReadsVersion2And3Headers) {
  TmpDir d;
  for (int major : {2, 3}) {
    std::string dict = "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }";
    while ((12 + dict.size() + 1) % 64) dict += ' ';
    dict += '\n';
    std::string b = std::string("\x93NUMPY", 6) + char(major) + '\0';
    put32(b, uint32_t(dict.size()));
    b += dict;
    int16_t v[3] = {-5, 7, 300};
    b.append(reinterpret_cast<const char*>(v), sizeof v);
    write_bytes(d / "v.npy", b);
    NpyArray a = NpyArray::open(d / "v.npy");
    EXPECT_EQ(a.major_version(), major);
    EXPECT_EQ(a.tensor().to_int64s(), (std::vector<int64_t>{-5, 7, 300}));
  }
}

TEST(Npy, WriterSwitchesToVersion2ForHugeHeaders) {
  TmpDir d;
  Tensor t(DType::UInt8, Shape(23000, 1));  // "1, " x 23000 does not fit a 16-bit header length
  write_npy(d / "big.npy", t);
  NpyArray a = NpyArray::open(d / "big.npy");
  EXPECT_EQ(a.major_version(), 2);
  EXPECT_EQ(a.shape().size(), 23000u);
}

TEST(Npy, RowsAreViewsIntoTheMapping) {
  TmpDir d;
  Tensor x = iota_tensor(DType::Float, {4, 8});
  write_npy(d / "x.npy", x);
  NpyArray a = NpyArray::open(d / "x.npy");
  Tensor r0 = a.row(0), r3 = a.row(3);
  // Zero copy: rows are consecutive slices of the same mapped region, right after the 64-byte-aligned header.
  EXPECT_EQ(static_cast<const uint8_t*>(r3.raw()) - static_cast<const uint8_t*>(r0.raw()), 3 * 8 * 4);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r0.raw()) % 64, 0u);
  EXPECT_EQ(r3.data<float>()[1], x.data<float>()[25]);
  // Views keep the mapping alive after the NpyArray is gone.
  a = NpyArray();
  EXPECT_EQ(r3.data<float>()[7], x.data<float>()[31]);
}

// Kilobytes of file-backed memory resident in this process (RssFile in /proc/self/status).
int64_t rss_file_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("RssFile:", 0) == 0) return std::stoll(line.substr(8));
  return -1;
}

TEST(Npy, StreamingRowsDoesNotKeepTheFileResident) {
  TmpDir d;
  const int64_t rows = 40, cols = 512 * 1024;  // 40 rows of 2 MiB: 80 MiB, more than MappedFile::kReleaseBytes
  Tensor x(DType::Float, {rows, cols});
  for (int64_t r = 0; r < rows; ++r) x.data<float>()[r * cols + 7] = static_cast<float>(r) + 0.5f;
  write_npy(d / "big.npy", x);
  x = Tensor();
  NpyArray a = NpyArray::open(d / "big.npy");
  const int64_t before = rss_file_kb();
  ASSERT_GT(before, 0);
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    Tensor row = a.row(r);
    for (float v : row.span<const float>()) sum += v;  // touch every page
    EXPECT_EQ(row.data<float>()[7], static_cast<float>(r) + 0.5f);
  }
  EXPECT_EQ(sum, rows * (rows - 1) / 2.0 + rows * 0.5);
  const int64_t grown_kb = rss_file_kb() - before;
  // Without the releases it grows by the whole 80 MiB file. The bound leaves room for the pages released last
  // (kReleaseBytes) and for file-backed pages that are not the data: code of the test binary faulted in during
  // the loop (tens of MB in the sanitizer build).
  EXPECT_LT(grown_kb, static_cast<int64_t>(MappedFile::kReleaseBytes / 1024) + 32 * 1024) << "RssFile grew by " << grown_kb;
  // Rows read after a release fault back in with the same bytes.
  EXPECT_EQ(a.row(0).data<float>()[7], 0.5f);
}

TEST(Npy, ErrorsNameTheFile) {
  TmpDir d;
  write_bytes(d / "magic.npy", "not a numpy file at all");
  expect_error([&] { NpyArray::open(d / "magic.npy"); }, ErrorKind::Data, {"magic.npy", "magic"});
  std::string full = npy_bytes(iota_tensor(DType::Float, {10, 10}));
  write_bytes(d / "trunc.npy", full.substr(0, full.size() - 7));
  expect_error([&] { NpyArray::open(d / "trunc.npy"); }, ErrorKind::Data, {"trunc.npy", "truncated"});
  std::string fo = full;
  fo.replace(fo.find("False"), 5, "True ");
  write_bytes(d / "fortran_trunc.npy", fo.substr(0, fo.size() - 7));
  expect_error([&] { NpyArray::open(d / "fortran_trunc.npy"); }, ErrorKind::Data, {"fortran_trunc.npy", "truncated"});
  expect_error([&] { NpyArray::open(d / "missing.npy"); }, ErrorKind::Io, {"missing.npy"});
}

// Big-endian and Fortran-ordered arrays, as numpy writes them (np.save(x.astype('>f4')), np.save(x.T)), read as
// np.load reads them, from .npy files and from stored and deflated .npz members. The bytes are built here by hand
// from a C-order little-endian array: a big-endian element is its bytes reversed; Fortran order stores element
// (i, j, k) of a [d0, d1, d2] array at position i + d0 * (j + d1 * k).
TEST(Npy, BigEndianAndFortranOrderAreRead) {
  TmpDir d;
  const Shape shape{3, 4, 5};
  for (DType t : {DType::Float, DType::Double, DType::Float16, DType::Int16, DType::UInt16, DType::Int32,
                  DType::Int64, DType::UInt64, DType::UInt8, DType::Bool}) {
    Tensor x = iota_tensor(t, shape);
    const std::string c = npy_bytes(x);
    const size_t off = c.size() - x.nbytes(), esz = dtype_size(t);
    const std::string data = c.substr(off);
    std::string fdata(data.size(), '\0');
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t k = 0; k < 5; ++k)
          fdata.replace(static_cast<size_t>(i + 3 * (j + 4 * k)) * esz, esz, data, static_cast<size_t>((i * 4 + j) * 5 + k) * esz, esz);
    auto swapped = [&](std::string b) {
      for (size_t e = 0; e + esz <= b.size(); e += esz) std::reverse(b.begin() + static_cast<std::ptrdiff_t>(e),
                                                                     b.begin() + static_cast<std::ptrdiff_t>(e + esz));
      return b;
    };
    std::string head = c.substr(0, off), head_be = head, head_f = head;
    if (esz > 1) head_be.replace(head_be.find("'<"), 2, "'>");
    head_f.replace(head_f.find("False"), 5, "True ");  // same header length
    std::string head_fbe = head_f;
    if (esz > 1) head_fbe.replace(head_fbe.find("'<"), 2, "'>");
    const std::vector<std::pair<std::string, std::string>> variants = {
        {"be", head_be + swapped(data)}, {"f", head_f + fdata}, {"fbe", head_fbe + swapped(fdata)}};
    for (const auto& [tag, bytes] : variants) {
      const std::string name = fmt::format("{}_{}", dtype_name(t), tag);
      write_bytes(d / (name + ".npy"), bytes);
      write_bytes(d / (name + ".npz"), make_zip({{"x.npy", bytes, false}, {"y.npy", bytes, true}}, false));
      NpzArchive z = NpzArchive::open(d / (name + ".npz"));
      for (const NpyArray& a : {NpyArray::open(d / (name + ".npy")), z.array("x"), z.array("y")}) {
        EXPECT_TRUE(a.tensor().equals(x)) << name;
        ASSERT_EQ(a.shape(), shape) << name;
        for (int64_t i = 0; i < 3; ++i) {
          Tensor r(t, {1, 4, 5});
          std::memcpy(r.raw(), static_cast<const uint8_t*>(x.raw()) + i * 20 * static_cast<int64_t>(esz), r.nbytes());
          EXPECT_TRUE(a.row(i).equals(r)) << name << " row " << i;
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------ .npz

TEST(Npz, StoredDeflatedAndZip64Members) {
  TmpDir d;
  Tensor x = iota_tensor(DType::Float, {5, 3});
  Tensor y = Tensor::from_vector<int64_t>(DType::Int64, {5}, {4, 3, 2, 1, 0});
  for (bool deflate : {false, true})
    for (bool zip64 : {false, true}) {
      std::string p = d / fmt::format("a{}{}.npz", deflate, zip64);
      write_bytes(p, make_zip({{"x.npy", npy_bytes(x), deflate}, {"y.npy", npy_bytes(y), deflate}}, zip64));
      NpzArchive z = NpzArchive::open(p);
      EXPECT_EQ(z.names(), (std::vector<std::string>{"x", "y"}));
      NpyArray ax = z.array("x");
      EXPECT_TRUE(ax.tensor().equals(x)) << p;
      EXPECT_TRUE(z.array("y").tensor().equals(y)) << p;
      EXPECT_TRUE(ax.row(4).equals(Tensor::from_vector<float>(DType::Float, {1, 3},
                                                              {x.data<float>()[12], x.data<float>()[13],
                                                               x.data<float>()[14]})));
    }
}

TEST(Npz, Errors) {
  TmpDir d;
  Tensor x = iota_tensor(DType::Float, {5, 3});
  write_bytes(d / "crc.npz", make_zip({{"x.npy", npy_bytes(x), true}}, false, /*corrupt_crc=*/true));
  expect_error([&] { NpzArchive::open(d / "crc.npz").array("x"); }, ErrorKind::Data, {"crc.npz", "CRC"});
  write_bytes(d / "notzip.npz", std::string(100, 'z'));
  expect_error([&] { NpzArchive::open(d / "notzip.npz"); }, ErrorKind::Data, {"notzip.npz"});
  write_bytes(d / "ab.npz", make_zip({{"a.npy", npy_bytes(x)}, {"b.npy", npy_bytes(x)}}, false));
  expect_error([&] { NpzArchive::open(d / "ab.npz").array("x"); }, ErrorKind::Data, {"ab.npz", "a, b"});
}

// ------------------------------------------------------------------------------------------------ selection

TEST(Selection, Mt19937_64IsTheStandardOne) {
  // C++ standard [rand.predef]: the 10000th output of a default-constructed mt19937_64.
  std::mt19937_64 r;
  r.discard(9999);
  EXPECT_EQ(r(), 9981545732273789042ull);
}

TEST(Selection, ShuffleIsAPortablePermutation) {
  // Computed independently with a pure-Python mt19937_64 + the documented Fisher–Yates (the same
  // reimplementation tests/python/test_data_preprocessing.py uses).
  EXPECT_EQ(shuffled_permutation(10, 123), (std::vector<int64_t>{9, 2, 1, 7, 8, 6, 0, 5, 3, 4}));
  EXPECT_EQ(shuffled_permutation(10, 7), (std::vector<int64_t>{0, 7, 4, 9, 3, 1, 2, 8, 6, 5}));
  auto p = shuffled_permutation(1000, 123);
  auto q = p;
  std::sort(q.begin(), q.end());
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(q[static_cast<size_t>(i)], i);
  EXPECT_EQ(p, shuffled_permutation(1000, 123));
  EXPECT_NE(p, shuffled_permutation(1000, 124));
  EXPECT_EQ(shuffled_permutation(1, 123), (std::vector<int64_t>{0}));
}

TEST(Selection, UniformBelowIsUnbiasedRejection) {
  std::mt19937_64 a(99), b(99);
  for (uint64_t bound : {1ull, 3ull, 10ull, (1ull << 63) + 1}) {
    uint64_t t = (0 - bound) % bound, r;
    do r = b(); while (r < t);
    EXPECT_EQ(uniform_below(a, bound), r % bound);
  }
}

TEST(Selection, SplitKeepsAtLeastOne) {
  SelectionOptions o;
  o.split = 0.5;
  EXPECT_EQ(select_indices(10, o, "t"), (std::vector<int64_t>{9, 2, 1, 7, 8}));
  o.split = 0.01;
  EXPECT_EQ(select_indices(10, o, "t"), (std::vector<int64_t>{9}));
  o.split = 0.29;  // floor(2.9) = 2
  EXPECT_EQ(select_indices(10, o, "t").size(), 2u);
  o.shuffle = false;
  o.split = 1.0;
  EXPECT_EQ(select_indices(3, o, "t"), (std::vector<int64_t>{0, 1, 2}));
  o.split = 0;
  expect_error([&] { select_indices(10, o, "t"); }, ErrorKind::Config, {"split"});
  o.split = 1.5;
  expect_error([&] { select_indices(10, o, "t"); }, ErrorKind::Config, {"split"});
}

TEST(Selection, SplitKeepingGivesTheShortestSplitThatKeepsM) {
  EXPECT_EQ(split_count(200, 0.33), 66);
  EXPECT_EQ(split_count(10, 0.01), 1);
  EXPECT_DOUBLE_EQ(split_keeping(200, 64), 0.32);
  EXPECT_DOUBLE_EQ(split_keeping(200, 200), 1.0);
  EXPECT_DOUBLE_EQ(split_keeping(3, 1), 0.3);  // floor(0.9) = 0, kept at 1
  for (int64_t n : {1, 7, 199, 200, 1000, 49999})
    for (int64_t m : {int64_t{1}, n / 3 + 1, n / 2 + 1, n - 1, n})
      if (m >= 1 && m <= n) {
        EXPECT_EQ(split_count(n, split_keeping(n, m)), m) << n << " " << m;
      }
}

// ------------------------------------------------------------------------------------------------ array data

TEST(ArrayDataset, NpzWithLabelsSelectionAndDtypeConversion) {
  TmpDir d;
  Tensor x = iota_tensor(DType::UInt8, {10, 1, 2, 2});
  for (int64_t i = 0; i < 10; ++i) x.data<uint8_t>()[i * 4] = static_cast<uint8_t>(100 + i);  // row id
  std::vector<int64_t> yv(10);
  for (int i = 0; i < 10; ++i) yv[static_cast<size_t>(i)] = 20 + i;
  Tensor y = Tensor::from_vector<int64_t>(DType::Int64, {10}, yv);
  write_bytes(d / "d.npz", make_zip({{"x.npy", npy_bytes(x), true}, {"y.npy", npy_bytes(y)}}, true));
  DataOptions o;
  o.path = d / "d.npz";
  o.selection.split = 0.5;
  auto ds = open_dataset(o, {{"input", DType::Float, Shape{-1, 1, 2, 2}}});
  ASSERT_EQ(ds->size(), 5);
  EXPECT_TRUE(ds->has_labels());
  const int64_t expect_rows[5] = {9, 2, 1, 7, 8};
  for (int64_t i = 0; i < 5; ++i) {
    Sample s = ds->sample(i);
    const Tensor& t = s.at("input");
    EXPECT_EQ(t.dtype(), DType::Float);
    EXPECT_EQ(t.shape(), (Shape{1, 1, 2, 2}));
    EXPECT_EQ(t.data<float>()[0], 100.0f + expect_rows[i]);
    EXPECT_EQ(ds->label(i), 20 + expect_rows[i]);
  }
  Sample b = ds->batch(std::vector<int64_t>{0, 3});
  EXPECT_EQ(b.at("input").shape(), (Shape{2, 1, 2, 2}));
  EXPECT_EQ(b.at("input").data<float>()[4], 107.0f);
}

TEST(ArrayDataset, MultiInputByNameAndNpy) {
  TmpDir d;
  Tensor a = iota_tensor(DType::Float, {3, 4}), b = iota_tensor(DType::Int64, {3});
  write_bytes(d / "m.npz", make_zip({{"a.npy", npy_bytes(a)}, {"b.npy", npy_bytes(b)}}, false));
  DataOptions o;
  o.path = d / "m.npz";
  o.selection.shuffle = false;
  auto ds = open_dataset(o, {{"a", DType::Float, Shape{-1, 4}}, {"b", DType::Int64, Shape{-1}}});
  EXPECT_FALSE(ds->has_labels());
  Sample s = ds->sample(2);
  EXPECT_EQ(s.at("a").data<float>()[3], a.data<float>()[11]);
  EXPECT_EQ(s.at("b").data<int64_t>()[0], b.data<int64_t>()[2]);
  write_npy(d / "a.npy", a);
  o.path = d / "a.npy";
  auto ds2 = open_dataset(o, {{"in", DType::Double, Shape{1, 4}}});
  EXPECT_EQ(ds2->size(), 3);
  EXPECT_EQ(ds2->sample(1).at("in").data<double>()[0], static_cast<double>(a.data<float>()[4]));
  expect_error([&] { open_dataset(o, {{"p", DType::Float, Shape{1, 4}}, {"q", DType::Float, Shape{1, 4}}}); },
               ErrorKind::Data, {"a.npy", "single-input"});
}

TEST(ArrayDataset, ErrorsNameTheFile) {
  TmpDir d;
  Tensor x = iota_tensor(DType::Float, {4, 3, 8, 8});
  DataOptions o;
  o.path = d / "s.npz";
  write_bytes(o.path, make_zip({{"x.npy", npy_bytes(x)}}, false));
  expect_error([&] { open_dataset(o, {{"img", DType::Float, Shape{1, 3, 16, 16}}}); }, ErrorKind::Data,
               {"s.npz", "[4,3,8,8]", "[1,3,16,16]", "img"});
  expect_error([&] { open_dataset(o, {{"img", DType::Float, Shape{1, 3, 8}}}); }, ErrorKind::Data, {"s.npz"});
  o.path = d / "nox.npz";
  write_bytes(o.path, make_zip({{"inputs.npy", npy_bytes(x)}, {"labels.npy", npy_bytes(x)}}, false));
  expect_error([&] { open_dataset(o, {{"img", DType::Float, Shape{-1, 3, 8, 8}}}); }, ErrorKind::Data,
               {"nox.npz", "inputs, labels"});
  o.path = d / "lab.npz";
  write_bytes(o.path, make_zip({{"x.npy", npy_bytes(x)}, {"y.npy", npy_bytes(Tensor(DType::Int64, {3}))}}, false));
  expect_error([&] { open_dataset(o, {{"img", DType::Float, Shape{-1, 3, 8, 8}}}); }, ErrorKind::Data,
               {"lab.npz", "3 entries", "4 rows"});
  o.path = d / "nothere.npz";
  expect_error([&] { open_dataset(o, {{"img", DType::Float, Shape{-1, 3, 8, 8}}}); }, ErrorKind::Io, {"nothere.npz"});
}

TEST(RandomDataset, TenUniformSamplesFixedSeed) {
  DataOptions o;
  auto ds = open_dataset(o, {{"x", DType::Float, Shape{-1, 3, 4}}, {"n", DType::Double, Shape{2}}});
  EXPECT_TRUE(ds->is_random());
  ASSERT_EQ(ds->size(), 10);
  auto again = open_dataset(o, {{"x", DType::Float, Shape{-1, 3, 4}}, {"n", DType::Double, Shape{2}}});
  double sum = 0;
  for (int64_t i = 0; i < 10; ++i) {
    Sample s = ds->sample(i);
    EXPECT_EQ(s.at("x").shape(), (Shape{1, 3, 4}));
    EXPECT_EQ(s.at("n").shape(), (Shape{1}));  // a fixed batch dim of 2 becomes 1 per sample
    for (float v : s.at("x").span<float>()) {
      EXPECT_GE(v, 0.0f);
      EXPECT_LT(v, 1.0f);
      sum += v;
    }
    EXPECT_TRUE(s.at("x").equals(again->sample(i).at("x")));
  }
  EXPECT_NEAR(sum / 120.0, 0.5, 0.1);
  EXPECT_FALSE(ds->sample(0).at("x").equals(ds->sample(1).at("x")));
  expect_error([&] { open_dataset(o, {{"x", DType::Float, Shape{1, -1}}}); }, ErrorKind::Data, {"'x'"});
}

TEST(Npz, DeflatedMembersInflateToAnUnlinkedMappedFile) {
  TmpDir d, tmp;
  // 3 MB of float data (more than the 1 MiB inflate buffer), deflated.
  Tensor x = iota_tensor(DType::Float, {256, 3000});
  write_bytes(d / "big.npz", make_zip({{"x.npy", npy_bytes(x), true}}, true));
  const char* old = std::getenv("TMPDIR");
  std::string saved = old ? old : "";
  setenv("TMPDIR", tmp.path.c_str(), 1);
  NpyArray a = NpzArchive::open(d / "big.npz").array("x");
  if (old)
    setenv("TMPDIR", saved.c_str(), 1);
  else
    unsetenv("TMPDIR");
  EXPECT_TRUE(fs::is_empty(tmp.path));  // the temporary file was unlinked right after creation
  EXPECT_TRUE(a.row(255).equals(Tensor::view(DType::Float, {1, 3000}, x.data<float>() + 255 * 3000)));
  EXPECT_TRUE(a.tensor().equals(x));
}
