// Shape inference rules of the indexing and block-rearranging ops: Slice, Split, Gather, GatherElements,
// GatherND, OneHot, DepthToSpace / SpaceToDepth, with the value propagation of Gather / Slice on small integer
// tensors. Malformed attributes (negative / huge values) leave the output unknown; the executor's kernels
// reject such nodes when the model runs.
#include <algorithm>
#include <climits>
#include <cmath>

#include "ir/passes/infer_shapes_ops.h"

namespace oq::ir::passes::infer {
namespace {

void gather(Ctx& c) {
  const auto& d = c.shape(0);
  const auto& i = c.shape(1);
  if (!d || !i) {
    c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  const int64_t r = static_cast<int64_t>(d->size());
  const auto a = norm_axis(c.n.attr_int("axis", 0), r);
  if (!a) return;
  Dims o(d->begin(), d->begin() + *a);
  o.insert(o.end(), i->begin(), i->end());
  o.insert(o.end(), d->begin() + *a + 1, d->end());
  c.set(0, c.dtype(0), o);
  auto v = c.value(0);
  auto idx = c.ints(1);
  if (v && idx && r == 1 && i->size() <= 1) {
    Dims r2;
    for (int64_t k : *idx) {
      const int64_t n = static_cast<int64_t>(v->size());
      if (k < -n || k >= n) return;
      r2.push_back((*v)[k < 0 ? k + n : k]);
    }
    c.set_value(0, std::move(r2));
  }
}

// One sliced axis of known size d (ONNX Slice clamping): the first index taken and the number of elements.
// Never overflows, whatever start / end / step (step != 0): the length is 1 + (span - 1) / |step| with span in
// [0, d], and with a negative step it is written as 1 - (span - 1) / step so that -INT64_MIN is never formed.
struct SliceRange {
  int64_t first = 0, len = 0;
};
SliceRange slice_range(int64_t d, int64_t start, int64_t end, int64_t step) {
  if (start < 0) start += d;  // no overflow: d >= 0 > start
  if (end < 0) end += d;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, d);
    end = std::clamp<int64_t>(end, 0, d);
    return {start, end > start ? 1 + (end - start - 1) / step : 0};
  }
  if (d == 0) return {0, 0};
  start = std::clamp<int64_t>(start, 0, d - 1);
  end = std::clamp<int64_t>(end, -1, d - 1);
  return {start, start > end ? 1 - (start - end - 1) / step : 0};
}

void slice(Ctx& c) {
  const auto& s = c.shape(0);
  if (!s) {
    c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  const int64_t r = static_cast<int64_t>(s->size());
  std::optional<std::vector<int64_t>> starts, ends, axes, steps;
  if (c.opset < 10) {
    starts = c.n.attr_ints("starts");
    ends = c.n.attr_ints("ends");
    if (c.n.has_attr("axes")) axes = c.n.attr_ints("axes");
  } else {
    starts = c.ints(1);
    ends = c.ints(2);
    if (c.has(3)) axes = c.ints(3);
    if (c.has(4)) steps = c.ints(4);
    if ((c.has(3) && !axes) || (c.has(4) && !steps)) {
      c.set(0, c.dtype(0), Dims(r, udim()));
      return;
    }
  }
  if (!axes) {  // the default axes: the first len(starts) ones (len(ends), or a 1-D input's known length)
    std::optional<int64_t> n;
    if (starts) n = static_cast<int64_t>(starts->size());
    else if (ends) n = static_cast<int64_t>(ends->size());
    else
      for (size_t i : {size_t{1}, size_t{2}})
        if (const auto& sh = c.shape(i); !n && sh && sh->size() == 1 && (*sh)[0].known()) n = (*sh)[0].value;
    if (!n || *n > r) {  // how many axes is not known (or invalid): every dim may change
      c.set(0, c.dtype(0), Dims(r, udim()));
      return;
    }
    axes.emplace();
    for (int64_t k = 0; k < *n; ++k) axes->push_back(k);
  }
  Dims o = *s;
  if (!starts || !ends) {  // which axes change is known, not by how much
    for (int64_t a : *axes)
      if (auto na = norm_axis(a, r)) o[*na] = udim();
      else o.assign(r, udim());
    c.set(0, c.dtype(0), o);
    return;
  }
  if (starts->size() != axes->size() || ends->size() != axes->size() || (steps && steps->size() != axes->size()))
    return;
  std::vector<char> seen(r, 0);
  for (size_t k = 0; k < axes->size(); ++k) {
    auto a = norm_axis((*axes)[k], r);
    const int64_t step = steps ? (*steps)[k] : 1;
    if (!a || step == 0 || seen[*a]++) return;  // invalid (a repeated axis: onnxruntime refuses it)
    const Dim& d = (*s)[*a];
    if (d.known()) o[*a] = kdim(slice_range(d.value, (*starts)[k], (*ends)[k], step).len);
    else if (!(step == 1 && (*starts)[k] == 0 && (*ends)[k] >= INT32_MAX)) o[*a] = udim();
  }
  c.set(0, c.dtype(0), o);
  if (auto v = c.value(0); v && r == 1 && axes->size() == 1) {
    const int64_t step = steps ? (*steps)[0] : 1;
    const SliceRange sr = slice_range(static_cast<int64_t>(v->size()), (*starts)[0], (*ends)[0], step);
    Dims r2;  // first + k * step stays in [0, n) for k < len: no overflow
    for (int64_t k = 0; k < sr.len; ++k) r2.push_back((*v)[sr.first + k * step]);
    c.set_value(0, std::move(r2));
  }
}

void split(Ctx& c) {
  const auto& s = c.shape(0);
  const size_t n = c.outs.size();
  for (size_t k = 0; k < n; ++k) c.set(k, c.dtype(0), std::nullopt);
  if (!s || n == 0) return;
  const int64_t r = static_cast<int64_t>(s->size());
  auto a = norm_axis(c.n.attr_int("axis", 0), r);
  if (!a) return;
  std::optional<std::vector<int64_t>> sp;
  if (c.opset < 13 && c.n.has_attr("split")) sp = c.n.attr_ints("split");
  else if (c.opset < 13 && c.has(1)) sp = c.ints(1);  // Split-2..11 allowed it as input (version 2 only), rare
  else if (c.opset >= 13 && c.has(1)) {
    sp = c.ints(1);
    if (!sp) {
      for (size_t k = 0; k < n; ++k) c.set(k, c.dtype(0), Dims(r, udim()));
      return;
    }
  }
  const Dim& d = (*s)[*a];
  const int64_t nn = static_cast<int64_t>(n);
  std::vector<Dim> parts(n, udim());
  if (sp) {
    if (sp->size() != n) return;
    for (size_t k = 0; k < n; ++k) parts[k] = sdim((*sp)[k]);
  } else if (d.known()) {
    const bool num = c.opset >= 18 && c.n.has_attr("num_outputs");
    if (num && c.n.attr_int("num_outputs", 0) != nn) return;  // invalid: num_outputs is the number of outputs
    if (d.value % nn == 0) parts.assign(n, kdim(d.value / nn));
    else if (num) {  // ceil(d / n) each, the last one what remains
      const int64_t ch = d.value / nn + 1;
      for (int64_t k = 0; k < nn; ++k)
        parts[k] = kdim(k > d.value / ch ? 0 : std::max<int64_t>(0, std::min(ch, d.value - ch * k)));
    }
  }
  for (size_t k = 0; k < n; ++k) {
    Dims o = *s;
    o[*a] = parts[k];
    c.set(k, c.dtype(0), o);
  }
}

void depth_space(Ctx& c, bool to_space) {
  const auto& s = c.shape(0);
  const int64_t b = c.n.attr_int("blocksize", 0);
  const auto bb = checked_mul(b, b);
  if (!s || s->size() != 4 || b <= 0 || !bb) {  // a huge blocksize: b * b overflows
    c.set(0, c.dtype(0), s ? std::optional(Dims(4, udim())) : std::nullopt);
    return;
  }
  const Dim &ch = (*s)[1], &h = (*s)[2], &w = (*s)[3];
  auto div = [](const Dim& d, int64_t f) { return d.known() && d.value % f == 0 ? kdim(d.value / f) : udim(); };
  if (to_space) c.set(0, c.dtype(0), Dims{(*s)[0], div(ch, *bb), mul_dim(h, b), mul_dim(w, b)});
  else c.set(0, c.dtype(0), Dims{(*s)[0], mul_dim(ch, *bb), div(h, b), div(w, b)});
}

void gather_nd(Ctx& c) {
  const auto& d = c.shape(0);
  const auto& i = c.shape(1);
  const int64_t b = c.n.attr_int("batch_dims", 0);
  c.set(0, c.dtype(0), std::nullopt);
  if (!d || !i || i->empty() || !i->back().known()) return;
  const int64_t r = static_cast<int64_t>(d->size()), q = static_cast<int64_t>(i->size());
  const int64_t last = i->back().value;
  if (b < 0 || b >= std::min(r, q) || last < 1 || last > r - b) return;  // invalid: the kernel refuses it
  Dims o(i->begin(), i->end() - 1);
  o.insert(o.end(), d->begin() + b + last, d->end());
  c.set(0, c.dtype(0), o);
}

void one_hot(Ctx& c) {
  const auto& s = c.shape(0);
  c.set(0, c.dtype(2), std::nullopt);
  if (!s) return;
  const int64_t r = static_cast<int64_t>(s->size()) + 1;
  auto a = norm_axis(c.n.attr_int("axis", -1), r);
  if (!a) return;
  Dims o = *s;
  auto depth = c.floats(1);
  const bool known = depth && depth->size() == 1 && (*depth)[0] >= 0 && (*depth)[0] < 0x1p62;
  o.insert(o.begin() + *a, known ? kdim(static_cast<int64_t>((*depth)[0])) : udim());
  c.set(0, c.dtype(2), o);
}

}  // namespace

bool infer_index_op(Ctx& c) {
  const std::string& op = c.n.op_type;
  if (op == "Gather") gather(c);
  else if (op == "Slice") slice(c);
  else if (op == "Split") split(c);
  else if (op == "DepthToSpace") depth_space(c, true);
  else if (op == "SpaceToDepth") depth_space(c, false);
  else if (op == "GatherElements") c.set(0, c.dtype(0), c.shape(1));
  else if (op == "GatherND") gather_nd(c);
  else if (op == "OneHot") one_hot(c);
  else return false;
  return true;
}

}  // namespace oq::ir::passes::infer
