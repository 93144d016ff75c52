// Test helpers for the ONNX I/O tests: a thorough IR equality check that reports the first difference, and a
// tiny hand-written protobuf wire encoder (independent of the protobuf library) to build exact test files.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "tmpdir_test_util.h"

namespace oq::testutil {

// ---- IR equality: "" when equal, else a path to the first difference ----

inline std::string diff_tensor(const Tensor& a, const Tensor& b, const std::string& where) {
  if (a.dtype() != b.dtype()) return where + ": dtype " + std::string(dtype_name(a.dtype())) + " vs " +
                                     std::string(dtype_name(b.dtype()));
  if (a.shape() != b.shape()) return where + ": shape " + shape_str(a.shape()) + " vs " + shape_str(b.shape());
  if (!a.equals(b)) return where + ": data differs";
  return "";
}

inline std::string diff_vi(const ir::ValueInfo& a, const ir::ValueInfo& b, const std::string& where) {
  std::string w = where + " '" + a.name + "'";
  if (a.name != b.name) return w + ": name vs '" + b.name + "'";
  if (a.dtype != b.dtype) return w + ": dtype";
  if (a.shape != b.shape) return w + ": shape";
  if (a.doc != b.doc) return w + ": doc";
  if (a.opaque_type != b.opaque_type) return w + ": opaque type";
  if (a.metadata != b.metadata) return w + ": metadata_props";
  return "";
}

std::string diff_graph(const ir::Graph& a, const ir::Graph& b, const std::string& where);

inline std::string diff_attr(const ir::Attribute& a, const ir::Attribute& b, const std::string& where) {
  std::string w = where + " attr '" + a.name + "'";
  if (a.name != b.name) return w + ": name vs '" + b.name + "'";
  if (a.type != b.type) return w + ": type";
  if (std::memcmp(&a.f, &b.f, sizeof(float)) != 0) return w + ": f";
  if (a.i != b.i || a.s != b.s || a.ints != b.ints || a.strings != b.strings) return w + ": i/s/ints/strings";
  if (a.floats.size() != b.floats.size() ||
      (!a.floats.empty() && std::memcmp(a.floats.data(), b.floats.data(), a.floats.size() * 4) != 0))
    return w + ": floats";
  if (a.ref_attr_name != b.ref_attr_name || a.doc != b.doc || a.opaque != b.opaque) return w + ": ref/doc/opaque";
  if (a.t.empty() != b.t.empty()) return w + ": t presence";
  if (!a.t.empty()) {
    if (auto d = diff_tensor(a.t, b.t, w + ".t"); !d.empty()) return d;
  }
  if (a.tensors.size() != b.tensors.size()) return w + ": tensors count";
  for (size_t i = 0; i < a.tensors.size(); ++i)
    if (auto d = diff_tensor(a.tensors[i], b.tensors[i], w + ".tensors"); !d.empty()) return d;
  if (bool(a.g) != bool(b.g)) return w + ": g presence";
  if (a.g) {
    if (auto d = diff_graph(*a.g, *b.g, w + ".g"); !d.empty()) return d;
  }
  if (a.graphs.size() != b.graphs.size()) return w + ": graphs count";
  for (size_t i = 0; i < a.graphs.size(); ++i)
    if (auto d = diff_graph(*a.graphs[i], *b.graphs[i], w + ".graphs"); !d.empty()) return d;
  return "";
}

inline std::string diff_graph(const ir::Graph& a, const ir::Graph& b, const std::string& where) {
  std::string w = where + " graph '" + a.name + "'";
  if (a.name != b.name || a.doc != b.doc) return w + ": name/doc";
  if (a.nodes.size() != b.nodes.size()) return w + ": node count";
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const ir::Node &x = a.nodes[i], &y = b.nodes[i];
    std::string nw = w + " node " + std::to_string(i) + " '" + x.name + "'";
    if (x.name != y.name || x.op_type != y.op_type || x.domain != y.domain || x.doc != y.doc)
      return nw + ": name/op_type/domain/doc";
    if (x.inputs != y.inputs || x.outputs != y.outputs) return nw + ": inputs/outputs";
    if (x.overload != y.overload || x.metadata != y.metadata) return nw + ": overload/metadata_props";
    if (x.attrs.size() != y.attrs.size()) return nw + ": attr count";
    for (size_t k = 0; k < x.attrs.size(); ++k)
      if (auto d = diff_attr(x.attrs[k], y.attrs[k], nw); !d.empty()) return d;
  }
  const std::vector<ir::ValueInfo>* lists[3][2] = {{&a.inputs, &b.inputs}, {&a.outputs, &b.outputs},
                                                   {&a.value_info, &b.value_info}};
  const char* names[3] = {"input", "output", "value_info"};
  for (int l = 0; l < 3; ++l) {
    if (lists[l][0]->size() != lists[l][1]->size()) return w + ": " + names[l] + " count";
    for (size_t i = 0; i < lists[l][0]->size(); ++i)
      if (auto d = diff_vi((*lists[l][0])[i], (*lists[l][1])[i], w + " " + names[l]); !d.empty()) return d;
  }
  if (a.initializers.size() != b.initializers.size()) return w + ": initializer count";
  for (size_t i = 0; i < a.initializers.size(); ++i) {
    const auto &x = a.initializers[i], &y = b.initializers[i];
    if (x.name != y.name || x.doc != y.doc) return w + " initializer '" + x.name + "': name/doc";
    if (auto d = diff_tensor(x.tensor, y.tensor, w + " initializer '" + x.name + "'"); !d.empty()) return d;
  }
  if (a.opaque_quantization_annotation != b.opaque_quantization_annotation) return w + ": quantization annotation";
  if (a.metadata != b.metadata) return w + ": metadata_props";
  return "";
}

inline std::string diff_model(const ir::Model& a, const ir::Model& b) {
  if (a.ir_version != b.ir_version) return "ir_version";
  if (a.opsets != b.opsets) return "opsets";
  if (a.producer_name != b.producer_name || a.producer_version != b.producer_version) return "producer";
  if (a.domain != b.domain || a.doc != b.doc || a.model_version != b.model_version) return "domain/doc/version";
  if (a.metadata_props != b.metadata_props) return "metadata_props";
  if (a.functions.size() != b.functions.size()) return "function count";
  for (size_t i = 0; i < a.functions.size(); ++i)
    if (a.functions[i].serialized != b.functions[i].serialized) return "function " + a.functions[i].label();
  if (a.opaque_training_info != b.opaque_training_info) return "training_info";
  return diff_graph(a.graph, b.graph, "main");
}

// ---- protobuf wire format, by hand ----

struct Pb {
  std::string b;
  Pb& varint(uint64_t v) {
    while (v >= 0x80) {
      b.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    b.push_back(static_cast<char>(v));
    return *this;
  }
  Pb& tag(int field, int wire) { return varint(static_cast<uint64_t>(field) << 3 | static_cast<unsigned>(wire)); }
  Pb& u(int field, uint64_t v) { return tag(field, 0).varint(v); }
  Pb& i(int field, int64_t v) { return u(field, static_cast<uint64_t>(v)); }
  Pb& bytes(int field, const std::string& s) {
    tag(field, 2).varint(s.size());
    b += s;
    return *this;
  }
  Pb& msg(int field, const Pb& m) { return bytes(field, m.b); }
  Pb& f32(int field, float f) {
    tag(field, 5);
    b.append(reinterpret_cast<const char*>(&f), 4);
    return *this;
  }
  Pb& f64(int field, double f) {
    tag(field, 1);
    b.append(reinterpret_cast<const char*>(&f), 8);
    return *this;
  }
};

// TensorProto field numbers.
enum { kTDims = 1, kTType = 2, kTFloat = 4, kTInt32 = 5, kTString = 6, kTInt64 = 7, kTName = 8, kTRaw = 9,
       kTDouble = 10, kTUint64 = 11, kTExternal = 13, kTLocation = 14 };

inline Pb kv(const std::string& k, const std::string& v) {
  Pb p;
  p.bytes(1, k).bytes(2, v);
  return p;
}

// A minimal model: ir_version 8, opset 13, a graph holding the given initializer TensorProtos.
inline std::string model_with_initializers(const std::vector<Pb>& inits) {
  Pb g;
  g.bytes(2, "g");
  for (const auto& t : inits) g.msg(5, t);
  Pb opset;
  opset.bytes(1, "").i(2, 13);
  Pb m;
  m.i(1, 8).msg(7, g).msg(8, opset);
  return m.b;
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A fresh temp directory removed at scope exit (shared with the other unit tests).
using TempDir = oq::test_util::TmpDir;

}  // namespace oq::testutil
