// Node pairs that undo each other, removed as ONNX Runtime's quant_pre_process removes them (conditions probed with
// ORT 1.32; docs/conformance.md):
//  - a Transpose reading a Transpose, the two perms composing to the identity (ORT's transpose optimizer, its
//    simplest case; a graph input as the first's input is fine): both go, or only the second when something else
//    reads the first's output;
//  - Transpose(perm) -> a chain of layout-agnostic unary elementwise ops -> Transpose(inverse perm): ORT's transpose
//    optimizer pushes the first Transpose through the chain, where it meets the second, and both go. The ops then
//    compute on the untransposed tensor, their outputs renamed as ORT renames them (Graph::GenerateNodeArgName of
//    the node's name: `<name>` when free, else `<name>_token_<n>`; ORT generates one more name per op, which takes
//    a number). Only when every tensor from the first Transpose's output to the last op's has one reader (ORT
//    pushes in other cases too: docs/conformance.md);
//  - Cast(to T1) -> Cast(to T0) on a T0 tensor where every T0 value is exactly a T1 value (float32 -> float64 ->
//    float32, int8 -> int32 -> int8, ...): both go, or only the second when something else reads the first's
//    output (ORT's optimizer does the same; a lossy pair such as float32 -> float16 -> float32 stays).
// Not when the second writes a graph output (ORT renames the producer then) or a body reads a name involved.
#include <algorithm>
#include <deque>

#include "ir/passes/ort_order.h"
#include "ir/passes/pass_util.h"

namespace oq::ir::passes::detail {

namespace {

// For a Transpose reading (through the chain) another Transpose: whether the two compose to the identity (perm p1
// then p2: output dim i is input dim p1[p2[i]]). Both perms absent (reversals) cancel; one absent takes the other's
// rank.
bool transposes_cancel(const Node& t1, const Node& t2) {
  const bool h1 = t1.has_attr("perm"), h2 = t2.has_attr("perm");
  if (!h1 && !h2) return true;
  std::vector<int64_t> p1 = h1 ? t1.attr_ints("perm") : std::vector<int64_t>{};
  std::vector<int64_t> p2 = h2 ? t2.attr_ints("perm") : std::vector<int64_t>{};
  const size_t r = h1 ? p1.size() : p2.size();
  auto reversed = [r] {
    std::vector<int64_t> v(r);
    for (size_t i = 0; i < r; ++i) v[i] = static_cast<int64_t>(r - 1 - i);
    return v;
  };
  if (!h1) p1 = reversed();
  if (!h2) p2 = reversed();
  if (p1.size() != r || p2.size() != r) return false;
  for (size_t i = 0; i < r; ++i) {
    if (p2[i] < 0 || p2[i] >= static_cast<int64_t>(r)) return false;
    if (p1[static_cast<size_t>(p2[i])] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

// Whether every value of type `from` is exactly a value of type `via`, so that Cast(via) -> Cast(from) gives it back.
bool exact_round_trip(DType from, DType via) {
  using D = DType;
  switch (from) {
    case D::Float16: return via == D::Float || via == D::Double;
    case D::Float: return via == D::Double;
    case D::Int8: return via == D::Int16 || via == D::Int32 || via == D::Int64 || via == D::Float || via == D::Double;
    case D::UInt8:
      return via == D::UInt16 || via == D::UInt32 || via == D::UInt64 || via == D::Int16 || via == D::Int32 ||
             via == D::Int64 || via == D::Float || via == D::Double;
    case D::Int16: return via == D::Int32 || via == D::Int64 || via == D::Float || via == D::Double;
    case D::UInt16:
      return via == D::UInt32 || via == D::UInt64 || via == D::Int32 || via == D::Int64 || via == D::Float ||
             via == D::Double;
    case D::Int32: return via == D::Int64 || via == D::Double;
    case D::UInt32: return via == D::UInt64 || via == D::Int64 || via == D::Double;
    default: return false;
  }
}

bool single_io(const Node& n, const std::string& op) {
  return n.op_type == op && n.is_default_domain() && n.inputs.size() == 1 && n.outputs.size() == 1 &&
         !n.input(0).empty();
}

// Elementwise ops of one data input (input 0; Clip's min / max are scalars) and scalar attributes: they compute the
// same on a transposed tensor.
bool layout_agnostic(const Node& n) {
  static const std::unordered_set<std::string> kOps = {
      "Abs",  "Acos",  "Acosh",    "Asin",      "Asinh",   "Atan",     "Atanh",  "Ceil",    "Celu",
      "Clip", "Cos",   "Cosh",     "Elu",       "Erf",     "Exp",      "Floor",  "Gelu",    "HardSigmoid",
      "HardSwish",     "IsInf",    "IsNaN",     "LeakyRelu",           "Log",    "Mish",    "Neg",
      "Not",  "Reciprocal",        "Relu",      "Round",   "Selu",     "Shrink", "Sigmoid", "Sign",
      "Sin",  "Sinh",  "Softplus", "Softsign",  "Sqrt",    "Tan",      "Tanh",   "ThresholdedRelu"};
  return n.is_default_domain() && n.outputs.size() == 1 && !n.inputs.empty() && !n.input(0).empty() &&
         kOps.count(n.op_type) && (n.op_type == "Clip" || n.inputs.size() == 1);
}

// What a node t2 (Transpose or Cast) cancels with: the first node of the pair and the ops in between (in order).
struct Pair {
  size_t first = 0;
  std::vector<size_t> chain;
};

std::optional<Pair> find_pair(const Graph& g, const GraphIndex& idx, const std::unordered_set<std::string>& sub,
                              const Node& t2) {
  const bool transpose = single_io(t2, "Transpose");
  if (!transpose && !single_io(t2, "Cast")) return std::nullopt;
  if (g.is_graph_output(t2.outputs[0]) || sub.count(t2.outputs[0])) return std::nullopt;
  std::deque<size_t> chain;
  std::string cur = t2.input(0);
  for (;;) {
    auto p = idx.producer.find(cur);
    if (p == idx.producer.end() || sub.count(cur)) return std::nullopt;
    const Node& n = g.nodes[p->second];
    if (single_io(n, t2.op_type)) {
      if (!chain.empty() && !sole_consumer(g, idx, sub, cur)) return std::nullopt;
      if (transpose ? !transposes_cancel(n, t2) : !chain.empty()) return std::nullopt;
      if (!transpose) {
        const DType from = known_dtype(g, n.input(0));
        if (from == DType::Undefined || t2.attr_int("to", 0) != static_cast<int64_t>(from) ||
            !exact_round_trip(from, static_cast<DType>(n.attr_int("to", 0))))
          return std::nullopt;
      }
      return Pair{p->second, {chain.begin(), chain.end()}};
    }
    if (!transpose || !layout_agnostic(n) || !sole_consumer(g, idx, sub, cur)) return std::nullopt;
    chain.push_front(p->second);
    cur = n.input(0);
  }
}

// Removes nodes at the given indices (any order).
void erase_nodes(Graph& g, std::vector<size_t> at) {
  std::sort(at.rbegin(), at.rend());
  for (size_t i : at) g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(i));
}

}  // namespace

size_t cancel_inverse_pairs(Graph& g, const std::unordered_set<std::string>& sub) {
  size_t removed = 0;
  OrtNames names(g);
  for (size_t k = 0; k < g.nodes.size();) {
    const Node& t2 = g.nodes[k];
    if (t2.op_type != "Transpose" && t2.op_type != "Cast") {
      ++k;
      continue;
    }
    GraphIndex idx(g);
    const auto pair = find_pair(g, idx, sub, t2);
    if (!pair) {
      ++k;
      continue;
    }
    const std::string out = g.nodes[k].outputs[0], mid = g.nodes[pair->first].outputs[0];
    const std::string in = g.nodes[pair->first].input(0);
    std::vector<std::string> gone{out};
    std::string result = in;  // what the second node's readers read instead
    if (!pair->chain.empty()) {
      g.nodes[pair->chain.front()].inputs[0] = in;
      for (size_t i = 0; i < pair->chain.size(); ++i) {
        Node& n = g.nodes[pair->chain[i]];
        gone.push_back(n.outputs[0]);
        n.outputs[0] = names.make(n.name);
        names.skip();
        if (i + 1 < pair->chain.size()) g.nodes[pair->chain[i + 1]].inputs[0] = n.outputs[0];
        result = n.outputs[0];
      }
    }
    // The first node goes too unless something else reads its output (only possible without a chain).
    const bool first_too = idx.consumers[mid].size() == 1 && !g.is_graph_output(mid);
    if (first_too) gone.push_back(mid);
    replace_input_uses(g, out, result);
    std::erase_if(g.value_info, [&](const ValueInfo& v) {
      return std::find(gone.begin(), gone.end(), v.name) != gone.end();
    });
    std::vector<size_t> at{k};
    if (first_too) at.push_back(pair->first);
    erase_nodes(g, at);
    removed += at.size();
    if (first_too && pair->first < k) --k;  // k now holds the node after the second
  }
  return removed;
}

}  // namespace oq::ir::passes::detail
