#include "ir/validate_schema.h"

#include <algorithm>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"

namespace oq::ir {
namespace {

// The schemas are onnx's (generated, scripts/gen_op_schemas.py); only the checks below are written by hand, since
// no library available here checks opsets up to 28 (Debian's onnx 1.12 stops at 17).
struct Row {
  const char* op;
  int since, min_in, max_in, min_out, max_out, deprecated;
  const char* ins;
  const char* outs;
  const char* attrs;
};

constexpr Row kRows[] = {
#include "ir/op_schemas_table.inc"
};

enum class Opt { Single, Optional, Variadic };
struct Param {
  std::string name;
  Opt opt = Opt::Single;
};
struct AttrSpec {
  AttrType type = AttrType::Undefined;
  bool required = false;
};
struct OpVersion {
  int since = 0, min_in = 0, max_in = 0, min_out = 0, max_out = 0;
  bool deprecated = false;
  std::vector<Param> ins, outs;
  std::map<std::string, AttrSpec> attrs;
};

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> r;
  while (!s.empty()) {
    const size_t c = s.find(',');
    r.push_back(s.substr(0, c));
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return r;
}

std::vector<Param> parse_params(const char* s) {
  std::vector<Param> r;
  for (auto p : split(s)) {
    Param q;
    if (!p.empty() && (p.back() == '?' || p.back() == '*')) {
      q.opt = p.back() == '?' ? Opt::Optional : Opt::Variadic;
      p.remove_suffix(1);
    }
    q.name = std::string(p);
    r.push_back(std::move(q));
  }
  return r;
}

// op -> its versions, oldest first (the table is sorted).
const std::map<std::string, std::vector<OpVersion>>& schemas() {
  static const auto table = [] {
    std::map<std::string, std::vector<OpVersion>> t;
    for (const Row& row : kRows) {
      OpVersion v{row.since, row.min_in, row.max_in, row.min_out, row.max_out, row.deprecated != 0,
                  parse_params(row.ins), parse_params(row.outs), {}};
      for (auto a : split(row.attrs)) {
        const size_t eq = a.find('=');
        AttrSpec spec;
        spec.required = a.back() == '!';
        spec.type = static_cast<AttrType>(std::stoi(std::string(a.substr(eq + 1))));
        v.attrs[std::string(a.substr(0, eq))] = spec;
      }
      t[row.op].push_back(std::move(v));
    }
    return t;
  }();
  return table;
}

const char* type_name(AttrType t) {
  static const char* const names[] = {"UNDEFINED", "FLOAT",   "INT",           "STRING",         "TENSOR",
                                      "GRAPH",     "FLOATS",  "INTS",          "STRINGS",        "TENSORS",
                                      "GRAPHS",    "SPARSE_TENSOR", "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
  const auto i = static_cast<size_t>(t);
  return i < std::size(names) ? names[i] : "UNDEFINED";
}

std::string count_range(int lo, int hi) {
  if (hi == 2147483647) return fmt::format("at least {}", lo);
  return lo == hi ? fmt::format("{}", lo) : fmt::format("{} to {}", lo, hi);
}

// Why attribute `name`, unknown to `cur`, is there: the versions of the op that had it.
std::string unknown_attr_hint(const std::string& op, const std::vector<OpVersion>& vs, const OpVersion& cur,
                              const std::string& name) {
  std::vector<int> had;
  for (const auto& v : vs)
    if (v.attrs.count(name)) had.push_back(v.since);
  if (had.empty()) return "";
  const bool as_input =
      std::any_of(cur.ins.begin(), cur.ins.end(), [&](const Param& p) { return p.name == name; });
  std::string r = fmt::format(" ({}-{} had it", op, had.back());
  if (had.back() < cur.since)
    r += as_input ? fmt::format(": the model was written for an older opset; convert it, or give '{}' as the input "
                                "of that name", name)
                  : ": the model was written for an older opset; convert it";
  else
    r += fmt::format(": the model's opset is too old for it; import opset {} or newer", had.back());
  return r + ")";
}

// Why input `i` beyond the schema's count is there: another version takes an input of that position as an input
// while this one has it as an attribute.
std::string extra_input_hint(const std::string& op, const std::vector<OpVersion>& vs, const OpVersion& cur,
                             size_t i) {
  for (const auto& v : vs) {
    if (i >= v.ins.size() || v.ins[i].opt == Opt::Variadic) continue;
    const std::string& name = v.ins[i].name;
    if (cur.attrs.count(name))
      return fmt::format(" ({}-{} takes '{}' as an input; at {}-{} it is an attribute)", op, v.since, name, op,
                         cur.since);
  }
  return "";
}

std::string check_params(const char* what, const std::vector<std::string>& names, const std::vector<Param>& formal) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (!names[i].empty() || formal.empty()) continue;
    const Param& p = i < formal.size() ? formal[i] : formal.back();
    if (i >= formal.size() && p.opt != Opt::Variadic) continue;  // counted elsewhere
    if (p.opt == Opt::Single) return fmt::format("{} {} ('{}') is required but has an empty name", what, i + 1, p.name);
  }
  return "";
}

}  // namespace

int schema_version(const std::string& op, int64_t opset) {
  const auto it = schemas().find(op);
  if (it == schemas().end()) return 0;
  int r = 0;
  for (const auto& v : it->second)
    if (v.since <= opset) r = v.since;
  return r;
}

std::string schema_problem(const Node& n, int64_t opset) {
  if (!n.is_default_domain()) return "";
  const auto it = schemas().find(n.op_type);
  if (it == schemas().end()) return fmt::format("'{}' is not an ai.onnx operator", n.op_type);
  const auto& vs = it->second;
  const OpVersion* cur = nullptr;
  for (const auto& v : vs)
    if (v.since <= opset) cur = &v;
  const std::string& op = n.op_type;
  if (!cur) return fmt::format("{} does not exist at opset {}; it appears at opset {}", op, opset, vs.front().since);
  const int ver = cur->since;
  // Deprecated versions (GroupNormalization-18, Upsample-10, Scatter-11) are not refused: onnx.checker does, but
  // onnxruntime runs them and onnxquant has kernels for some (GroupNormalization-18 models are common).

  std::set<std::string> seen;
  for (const auto& a : n.attrs)
    if (!seen.insert(a.name).second) return fmt::format("attribute '{}' is given twice", a.name);
  for (const auto& a : n.attrs) {
    if (!a.ref_attr_name.empty())  // the inliner replaced every reference of a function body
      return fmt::format("attribute '{}' refers to a function's attribute '{}' outside a function body", a.name,
                         a.ref_attr_name);
    const auto s = cur->attrs.find(a.name);
    if (s == cur->attrs.end())
      return fmt::format("{}-{} (the version at opset {}) has no attribute '{}'{}", op, ver, opset, a.name,
                         unknown_attr_hint(op, vs, *cur, a.name));
    if (a.type != s->second.type)
      return fmt::format("attribute '{}' is {}, {}-{} wants {}", a.name, type_name(a.type), op, ver,
                         type_name(s->second.type));
  }
  for (const auto& [name, spec] : cur->attrs)
    if (spec.required && !seen.count(name))
      return fmt::format("required attribute '{}' of {}-{} is missing", name, op, ver);

  const int nin = static_cast<int>(n.inputs.size()), nout = static_cast<int>(n.outputs.size());
  if (nin < cur->min_in || nin > cur->max_in)
    return fmt::format("{}-{} takes {} input(s), the node has {}{}", op, ver, count_range(cur->min_in, cur->max_in),
                       nin, nin > cur->max_in ? extra_input_hint(op, vs, *cur, cur->max_in) : "");
  if (nout < cur->min_out || nout > cur->max_out)
    return fmt::format("{}-{} has {} output(s), the node declares {}", op, ver, count_range(cur->min_out, cur->max_out),
                       nout);
  if (auto p = check_params("input", n.inputs, cur->ins); !p.empty()) return p;
  return check_params("output", n.outputs, cur->outs);
}

void check_graph_schemas(const Graph& g, int64_t opset) {
  for (const auto& n : g.nodes) {
    if (const std::string why = schema_problem(n, opset); !why.empty())
      fail(ErrorKind::Model, "node '{}' ({}): {}", node_label(n), n.op_type, why);
    for (const auto& a : n.attrs) {
      if (a.g) check_graph_schemas(*a.g, opset);
      for (const auto& sg : a.graphs)
        if (sg) check_graph_schemas(*sg, opset);
    }
  }
}

void check_model_schemas(const Model& m) {
  const int64_t opset = m.default_opset();
  if (opset >= 1) check_graph_schemas(m.graph, opset);
}

}  // namespace oq::ir
