// Shape inference rules of the network ops: convolution and pooling (the executor's own geometry functions),
// matrix products, Einsum, reductions, TopK, resizing, recurrent layers, RoiAlign / GridSample, If, and the element
// types of Loop / Scan outputs.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <unordered_set>

#include "exec/kernels/resize.h"
#include "exec/kernels/spatial.h"
#include "ir/passes/infer_shapes_ops.h"

namespace oq::ir::passes::infer {
namespace {

std::optional<std::vector<int64_t>> all_known(const Dims& d, size_t from) {
  std::vector<int64_t> r;
  for (size_t k = from; k < d.size(); ++k) {
    if (!d[k].known()) return std::nullopt;
    r.push_back(d[k].value);
  }
  return r;
}

// Conv / ConvTranspose / MaxPool / AveragePool / LpPool: [N, C_out, spatial...].
void conv_pool(Ctx& c, bool conv, bool transpose) {
  const auto& x0 = c.shape(0);
  const auto& w0 = c.shape(1);
  std::optional<Dims> xs = x0;
  if (!xs && conv && w0) xs = Dims(w0->size(), udim());  // the rank of X is the weight's
  const auto& x = xs;
  if (!x || x->size() < 3) {
    c.set(0, c.dtype(0), x ? std::optional(Dims(x->size(), udim())) : std::nullopt);
    return;
  }
  const size_t n = x->size() - 2;
  Dims o(x->size(), udim());
  o[0] = (*x)[0];
  std::vector<int64_t> kernel = c.n.attr_ints("kernel_shape");
  if (conv) {
    const auto& w = c.shape(1);
    if (w && w->size() == x->size()) {
      const int64_t group = c.n.attr_int("group", 1);
      if (!transpose) o[1] = (*w)[0];
      else if (group > 0) o[1] = mul_dim((*w)[1], group);
      if (kernel.empty())
        if (auto k = all_known(*w, 2)) kernel = *k;
    }
  } else {
    o[1] = (*x)[1];
  }
  auto in = all_known(*x, 2);
  // The geometry's arithmetic (kernel * dilation, stride * input, sums of pads) cannot overflow with every
  // operand below 2^30; larger (malformed) attributes leave the spatial dims unknown.
  auto small = [](const std::vector<int64_t>& v) {
    return std::all_of(v.begin(), v.end(), [](int64_t x) { return x > -(int64_t{1} << 30) && x < (int64_t{1} << 30); });
  };
  const bool sane = in && small(*in) && small(kernel) && small(c.n.attr_ints("strides")) &&
                    small(c.n.attr_ints("dilations")) && small(c.n.attr_ints("pads")) &&
                    small(c.n.attr_ints("output_padding")) && small(c.n.attr_ints("output_shape"));
  if (!sane) in.reset();
  if (in && kernel.size() == n) {
    const exec::SpatialAttrs a = exec::parse_spatial(c.n, !conv);
    exec::Geometry g;
    if (transpose) {
      std::vector<int64_t> os = c.n.attr_ints("output_shape");
      g = exec::transpose_geometry(c.n, a, *in, kernel, c.n.attr_ints("output_padding"), os);
    } else {
      g = exec::forward_geometry(c.n, a, *in, kernel);
    }
    for (size_t k = 0; k < n; ++k) o[2 + k] = kdim(g.out[k]);
  } else if (transpose) {
    std::vector<int64_t> os = c.n.attr_ints("output_shape");  // given: the output's spatial size whatever X is
    if (os.size() == n + 2) os.erase(os.begin(), os.begin() + 2);
    if (os.size() == n)
      for (size_t k = 0; k < n; ++k) o[2 + k] = sdim(os[k]);
  }
  c.set(0, c.dtype(0), o);
  if (c.n.op_type == "MaxPool") c.set(1, DType::Int64, o);
}

void global_pool(Ctx& c) {
  const auto& x = c.shape(0);
  if (!x || x->size() < 2) {
    c.set(0, c.dtype(0), x);
    return;
  }
  Dims o(x->size(), kdim(1));
  o[0] = (*x)[0];
  o[1] = (*x)[1];
  c.set(0, c.dtype(0), o);
}

void gemm(Ctx& c) {
  const auto& a = c.shape(0);
  const auto& b = c.shape(1);
  Dims o{udim(), udim()};
  if (a && a->size() == 2) o[0] = (*a)[c.n.attr_int("transA", 0) ? 1 : 0];
  if (b && b->size() == 2) o[1] = (*b)[c.n.attr_int("transB", 0) ? 0 : 1];
  c.set(0, c.dtype(0), o);
}

void matmul(Ctx& c, DType out) {
  const auto& a = c.shape(0);
  const auto& b = c.shape(1);
  if (!a || !b || a->empty() || b->empty()) {
    c.set(0, out, std::nullopt);
    return;
  }
  Dims A = *a, B = *b;
  if (A.size() == 1) A.insert(A.begin(), kdim(1));
  if (B.size() == 1) B.push_back(kdim(1));
  std::optional<Dims> ba = Dims(A.begin(), A.end() - 2), bb = Dims(B.begin(), B.end() - 2);
  Dims o = *broadcast({&ba, &bb});
  if (a->size() > 1) o.push_back(A[A.size() - 2]);
  if (b->size() > 1) o.push_back(B.back());
  c.set(0, out, o);
}

void einsum(Ctx& c) {
  c.set(0, c.dtype(0), std::nullopt);
  std::string eq;
  for (char ch : c.n.attr_string("equation", ""))
    if (ch != ' ') eq += ch;
  const size_t arrow = eq.find("->");
  {  // only letters, ',', one "->" and "..." (a stray '.' made a letter of it)
    std::string rest = eq;
    if (arrow != std::string::npos) rest.erase(arrow, 2);
    for (size_t p; (p = rest.find("...")) != std::string::npos;) rest.erase(p, 3);
    for (char ch : rest)
      if (!std::isalpha(static_cast<unsigned char>(ch)) && ch != ',') return;
  }
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  for (size_t p = 0;;) {
    const size_t q = lhs.find(',', p);
    terms.push_back(lhs.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  if (terms.size() != c.inputs()) return;
  std::map<char, Dim> dims;
  std::map<char, int> count;
  std::optional<Dims> ell;
  bool has_ell = false;
  for (size_t i = 0; i < terms.size(); ++i) {
    const auto& s = c.shape(i);
    if (!s) return;
    std::string t = terms[i];
    const size_t e = t.find("...");
    size_t letters = t.size();
    if (e != std::string::npos) letters -= 3;
    if (letters > s->size()) return;
    const size_t ne = s->size() - letters;
    if (e == std::string::npos && ne != 0) return;
    size_t pos = 0;
    for (size_t k = 0; k < t.size(); ++k) {
      if (e != std::string::npos && k == e) {
        std::optional<Dims> part = Dims(s->begin() + pos, s->begin() + pos + ne);
        ell = has_ell ? broadcast({&ell, &part}) : part;
        has_ell = true;
        pos += ne;
        k += 2;
        continue;
      }
      const char ch = t[k];
      const Dim& d = (*s)[pos++];
      ++count[ch];
      auto it = dims.find(ch);
      if (it == dims.end()) dims[ch] = d;
      else if (!same_dim(it->second, d)) it->second = it->second.known() && d.known() ? udim()
                                                      : it->second.known() ? it->second : d.known() ? d : udim();
    }
  }
  if (has_ell && !ell) return;
  std::string out;
  if (arrow != std::string::npos) out = eq.substr(arrow + 2);
  else {
    if (has_ell) out = "...";
    for (const auto& [ch, k] : count)
      if (k == 1) out += ch;
  }
  Dims o;
  for (size_t k = 0; k < out.size(); ++k) {
    if (out.compare(k, 3, "...") == 0) {
      if (ell) o.insert(o.end(), ell->begin(), ell->end());
      k += 2;
      continue;
    }
    auto it = dims.find(out[k]);
    if (it == dims.end()) return;
    o.push_back(it->second);
  }
  c.set(0, c.dtype(0), o);
}

void reduce(Ctx& c) {
  const std::string& op = c.n.op_type;
  const bool arg = op == "ArgMax" || op == "ArgMin";
  const DType t = arg ? DType::Int64 : c.dtype(0);
  const auto& s = c.shape(0);
  const bool keep = c.n.attr_int("keepdims", 1) != 0;
  if (!s) {
    c.set(0, t, std::nullopt);
    return;
  }
  const int64_t r = static_cast<int64_t>(s->size());
  std::optional<std::vector<int64_t>> axes;
  bool axes_unknown = false;
  if (arg) axes = std::vector<int64_t>{c.n.attr_int("axis", 0)};
  else if (c.opset >= (op == "ReduceSum" ? 13 : 18)) {
    if (c.has(1)) {
      axes = c.ints(1);
      axes_unknown = !axes;
    }
  } else if (c.n.has_attr("axes")) {
    axes = c.n.attr_ints("axes");
  }
  if (axes_unknown) {
    c.set(0, t, keep ? std::optional(Dims(r, udim())) : std::nullopt);
    return;
  }
  if (!axes || axes->empty()) {
    if (!arg && c.n.attr_int("noop_with_empty_axes", 0) != 0) {
      c.set(0, t, s);
      return;
    }
    axes.emplace();
    for (int64_t k = 0; k < r; ++k) axes->push_back(k);
  }
  std::vector<char> red(r, 0);
  for (int64_t a : *axes) {
    auto na = norm_axis(a, r);
    if (!na) return;
    red[*na] = 1;
  }
  Dims o;
  for (int64_t k = 0; k < r; ++k) {
    if (!red[k]) o.push_back((*s)[k]);
    else if (keep) o.push_back(kdim(1));
  }
  c.set(0, t, o);
}

void topk(Ctx& c) {
  const auto& s = c.shape(0);
  c.set(0, c.dtype(0), s ? std::optional(Dims(s->size(), udim())) : std::nullopt);
  c.set(1, DType::Int64, c.outs[0].shape);
  if (!s) return;
  auto a = norm_axis(c.n.attr_int("axis", -1), static_cast<int64_t>(s->size()));
  if (!a) return;
  Dims o = *s;
  std::optional<int64_t> k;
  if (c.opset < 10) k = c.n.attr_int("k", -1);
  else if (auto v = c.ints(1); v && v->size() == 1) k = (*v)[0];
  o[*a] = k && *k >= 0 ? kdim(*k) : udim();
  c.set(0, c.dtype(0), o);
  c.set(1, DType::Int64, o);
}

// A Resize / Upsample output extent from the float32 product scale * extent, truncated as onnxruntime's kernel
// does (int64_t(0.7f * 10.0f) = 7, where floor(0.7 * 10) in double is 6); unknown when it does not fit.
Dim extent_from_scale(float v) { return v >= 0 && v < 0x1p62f ? kdim(static_cast<int64_t>(v)) : udim(); }

void resize(Ctx& c) {
  const auto& s = c.shape(0);
  if (!s) {
    c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  const int64_t r = static_cast<int64_t>(s->size());
  Dims o(r, udim());
  c.set(0, c.dtype(0), o);
  const bool upsample = c.n.op_type == "Upsample";
  std::optional<std::vector<double>> scales;
  std::optional<Dims> sizes;  // propagated values: a size may be a symbol (tf2onnx: Shape(x)[:2] ++ [h, w])
  if (upsample && c.opset < 9) {
    const auto f = c.n.attr_floats("scales");
    scales = std::vector<double>(f.begin(), f.end());
  } else if (upsample || c.opset < 11) {
    scales = c.floats(1);
  } else {
    if (c.has(3)) sizes = c.value(3);
    else if (c.has(2)) scales = c.floats(2);
    if (scales && scales->empty()) scales.reset();  // an empty scales input with sizes unknown
  }
  std::vector<int64_t> axes;
  if (!upsample && c.opset >= 18)
    for (int64_t a : c.n.attr_ints("axes")) {
      auto na = norm_axis(a, r);
      if (!na) return;
      axes.push_back(*na);
    }
  if (axes.empty())
    for (int64_t k = 0; k < r; ++k) axes.push_back(k);
  o = *s;
  const std::string keep = !upsample && c.opset >= 18 ? c.n.attr_string("keep_aspect_ratio_policy", "stretch")
                                                      : "stretch";
  if (scales && scales->size() == axes.size()) {
    for (size_t i = 0; i < axes.size(); ++i) {
      Dim& d = o[axes[i]];
      const double sc = (*scales)[i];
      if (!(sc > 0)) return;
      if (sc == 1 && !d.known()) continue;  // a symbol stays (a known extent goes through float as in ORT)
      d = d.known() ? extent_from_scale(exec::resize_scaled_extent(sc, d.value)) : udim();
    }
  } else if (sizes && sizes->size() == axes.size()) {
    if (keep == "stretch") {
      for (size_t i = 0; i < axes.size(); ++i) o[axes[i]] = val_to_dim((*sizes)[i]);
    } else {  // one float scale for every axis, from the sizes and the input extents (onnxruntime's rule)
      float sc = keep == "not_larger" ? std::numeric_limits<float>::max() : 0.0f;
      for (size_t i = 0; i < axes.size(); ++i) {
        const Dim& d = (*s)[axes[i]];
        if (!d.known() || d.value == 0) {
          for (int64_t a : axes) o[a] = udim();
          c.set(0, c.dtype(0), o);
          return;
        }
        if (!vknown((*sizes)[i])) {
          for (int64_t a : axes) o[a] = udim();
          c.set(0, c.dtype(0), o);
          return;
        }
        const float si = static_cast<float>((*sizes)[i].value) / static_cast<float>(d.value);
        sc = keep == "not_larger" ? std::min(sc, si) : std::max(sc, si);
      }
      for (int64_t a : axes) o[a] = extent_from_scale(exec::resize_scaled_extent(sc, (*s)[a].value, true));
    }
  } else {
    for (int64_t a : axes) o[a] = udim();
  }
  c.set(0, c.dtype(0), o);
}

void rnn(Ctx& c) {
  const auto& x = c.shape(0);
  const bool layout1 = c.opset >= 14 && c.n.attr_int("layout", 0) != 0;
  const int64_t hidden = c.n.attr_int("hidden_size", -1);
  const int64_t nd = c.n.attr_string("direction", "forward") == "bidirectional" ? 2 : 1;
  const Dim h = hidden > 0 ? kdim(hidden) : udim();
  Dim seq = udim(), batch = udim();
  if (x && x->size() == 3) {
    seq = (*x)[layout1 ? 1 : 0];
    batch = (*x)[layout1 ? 0 : 1];
  }
  const Dim d = kdim(nd);
  c.set(0, c.dtype(0), layout1 ? Dims{batch, seq, d, h} : Dims{seq, d, batch, h});
  for (size_t k = 1; k < c.outs.size(); ++k) c.set(k, c.dtype(0), layout1 ? Dims{batch, d, h} : Dims{d, batch, h});
}

// If: what both branches declare for an output (types equal, dims where they agree).
void if_op(Ctx& c) {
  const Attribute* th = c.n.attr("then_branch");
  const Attribute* el = c.n.attr("else_branch");
  if (!th || !el || !th->g || !el->g) return;
  const Graph &a = *th->g, &b = *el->g;
  for (size_t k = 0; k < c.outs.size() && k < a.outputs.size() && k < b.outputs.size(); ++k) {
    const ValueInfo &x = a.outputs[k], &y = b.outputs[k];
    if (x.dtype != y.dtype || !x.opaque_type.empty() || !y.opaque_type.empty()) continue;
    std::optional<Dims> s;
    if (x.shape && y.shape && x.shape->size() == y.shape->size()) {
      s = Dims(x.shape->size(), udim());
      for (size_t i = 0; i < s->size(); ++i)
        if (same_dim((*x.shape)[i], (*y.shape)[i])) (*s)[i] = (*x.shape)[i];
    }
    c.set(k, x.dtype, s);
  }
}

// Loop / Scan: the element type of each output is that of the matching body output (Loop: body outputs 1.. are the
// carried values then the scan outputs; Scan: its body outputs in order), as onnx's inference gives it; an untyped
// body output of a carried value / state takes the node's initial value's type. Shapes stay unknown (a carried
// value may change shape from one iteration to the next; what the model declares gives the rank).
void loop_scan(Ctx& c) {
  const bool loop = c.n.op_type == "Loop";
  const Attribute* b = c.n.attr("body");
  const size_t first = loop ? 2 : c.opset < 9 ? 1 : 0;  // node input of the first carried value / state
  const int64_t scanned = loop ? 0 : c.n.attr_int("num_scan_inputs", 0);
  const int64_t states = static_cast<int64_t>(c.inputs()) - static_cast<int64_t>(first) - scanned;
  for (size_t k = 0; k < c.outs.size(); ++k) {
    DType t = DType::Undefined;
    const size_t bo = k + (loop ? 1 : 0);
    if (b && b->g && bo < b->g->outputs.size() && b->g->outputs[bo].opaque_type.empty()) t = b->g->outputs[bo].dtype;
    if (t == DType::Undefined && static_cast<int64_t>(k) < states) t = c.dtype(first + k);
    if (t != DType::Undefined) c.set(k, t, std::nullopt);
  }
}

}  // namespace

bool infer_nn_op(Ctx& c) {
  static const std::unordered_set<std::string> kReduce = {
      "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
      "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin"};
  const std::string& op = c.n.op_type;
  if (op == "Conv") conv_pool(c, true, false);
  else if (op == "ConvTranspose") conv_pool(c, true, true);
  else if (op == "MaxPool" || op == "AveragePool" || op == "LpPool") conv_pool(c, false, false);
  else if (op == "GlobalAveragePool" || op == "GlobalMaxPool" || op == "GlobalLpPool") global_pool(c);
  else if (op == "Gemm") gemm(c);
  else if (op == "MatMul") matmul(c, c.dtype(0));
  else if (op == "MatMulInteger") matmul(c, DType::Int32);
  else if (op == "Einsum") einsum(c);
  else if (kReduce.count(op)) reduce(c);
  else if (op == "TopK") topk(c);
  else if (op == "Resize" || op == "Upsample") resize(c);
  else if (op == "LSTM" || op == "GRU" || op == "RNN") rnn(c);
  else if (op == "If") if_op(c);
  else if (op == "Loop" || op == "Scan") loop_scan(c);
  else if (op == "RoiAlign") {
    const auto& x = c.shape(0);
    const auto& rois = c.shape(1);
    c.set(0, c.dtype(0), Dims{rois && rois->size() == 2 ? (*rois)[0] : udim(),
                              x && x->size() == 4 ? (*x)[1] : udim(), sdim(c.n.attr_int("output_height", 1)),
                              sdim(c.n.attr_int("output_width", 1))});
  } else if (op == "GridSample") {
    const auto& x = c.shape(0);
    const auto& grid = c.shape(1);
    if (x && grid && x->size() == grid->size() && x->size() >= 3) {
      Dims o{(*x)[0], (*x)[1]};
      o.insert(o.end(), grid->begin() + 1, grid->end() - 1);
      c.set(0, c.dtype(0), o);
    } else {
      c.set(0, c.dtype(0), std::nullopt);
    }
  } else return false;
  return true;
}

}  // namespace oq::ir::passes::infer
