// Shape inference rules of the shape-manipulating ops, with the element-wise value propagation of small integer
// tensors (Shape -> Gather -> Unsqueeze -> Concat -> Reshape).
#include <algorithm>
#include <climits>
#include <cmath>
#include <set>

#include "ir/passes/infer_shapes_ops.h"

namespace oq::ir::passes::infer {
namespace {

// Axes from the attribute (before `input_from`) or from input `idx`; nullopt when not given / not known.
std::optional<std::vector<int64_t>> axes_of(const Ctx& c, int input_from, size_t idx) {
  if (c.opset < input_from) {
    if (!c.n.has_attr("axes")) return std::nullopt;
    return c.n.attr_ints("axes");
  }
  if (!c.has(idx)) return std::nullopt;
  return c.ints(idx);
}

// Normalised, sorted, distinct axes against rank r (nullopt on an invalid list).
std::optional<std::vector<int64_t>> norm_axes(std::vector<int64_t> a, int64_t r) {
  for (auto& x : a) {
    auto v = norm_axis(x, r);
    if (!v) return std::nullopt;
    x = *v;
  }
  std::sort(a.begin(), a.end());
  if (std::adjacent_find(a.begin(), a.end()) != a.end()) return std::nullopt;
  return a;
}

void shape_op(Ctx& c) {
  const auto& s = c.shape(0);
  if (!s) {
    c.set(0, DType::Int64, Dims{udim()});
    return;
  }
  const int64_t r = static_cast<int64_t>(s->size());
  int64_t start = c.opset >= 15 ? c.n.attr_int("start", 0) : 0, end = c.opset >= 15 ? c.n.attr_int("end", r) : r;
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  Dims v;
  for (int64_t k = start; k < end; ++k) v.push_back(dim_to_val((*s)[k]));
  c.set(0, DType::Int64, Dims{kdim(static_cast<int64_t>(v.size()))});
  c.set_value(0, std::move(v));
}

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

void concat(Ctx& c) {
  std::optional<int64_t> r;
  for (size_t k = 0; k < c.inputs(); ++k)
    if (c.has(k) && c.rank(k)) r = *c.rank(k);
  if (!r) {
    c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  const auto a = norm_axis(c.n.attr_int("axis", 0), *r);
  if (!a) return;
  Dims o(*r, udim());
  bool sum_known = true;
  int64_t sum = 0;
  bool all_values = true;
  Dims vals;
  for (size_t k = 0; k < c.inputs(); ++k) {
    if (!c.has(k)) continue;
    const auto& s = c.shape(k);
    auto v = c.value(k);
    if (v && *r == 1) vals.insert(vals.end(), v->begin(), v->end());
    else all_values = false;
    if (!s) {
      sum_known = false;
      continue;
    }
    if (static_cast<int64_t>(s->size()) != *r) return;  // invalid model
    for (int64_t j = 0; j < *r; ++j) {
      const Dim& x = (*s)[j];
      if (j == *a) {
        if (x.known()) sum += x.value;
        else sum_known = false;
      } else if (x.known() || (!o[j].known() && o[j].param.empty())) {
        o[j] = x;
      }
    }
  }
  o[*a] = sum_known ? kdim(sum) : udim();
  c.set(0, c.dtype(0), o);
  if (all_values && *r == 1) c.set_value(0, std::move(vals));
}

void unsqueeze(Ctx& c) {
  const auto& s = c.shape(0);
  auto axes = axes_of(c, 13, 1);
  if (!s || !axes) {
    c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  const int64_t r = static_cast<int64_t>(s->size() + axes->size());
  auto na = norm_axes(*axes, r);
  if (!na) return;
  Dims o;
  size_t src = 0;
  for (int64_t k = 0, j = 0; k < r; ++k) {
    if (j < static_cast<int64_t>(na->size()) && (*na)[j] == k) {
      o.push_back(kdim(1));
      ++j;
    } else {
      o.push_back((*s)[src++]);
    }
  }
  c.set(0, c.dtype(0), o);
  if (auto v = c.value(0); v && s->empty() && r == 1) c.set_value(0, *v);
}

void squeeze(Ctx& c) {
  const auto& s = c.shape(0);
  auto axes = axes_of(c, 13, 1);
  if (!s) {
    c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  const int64_t r = static_cast<int64_t>(s->size());
  Dims o;
  if (!axes || axes->empty()) {
    if ((c.opset >= 13 && c.has(1) && !axes)) {  // axes input not known
      c.set(0, c.dtype(0), std::nullopt);
      return;
    }
    for (const Dim& d : *s) {
      if (!d.known()) {  // could be 1
        c.set(0, c.dtype(0), std::nullopt);
        return;
      }
      if (d.value != 1) o.push_back(d);
    }
  } else {
    auto na = norm_axes(*axes, r);
    if (!na) return;
    for (int64_t k = 0; k < r; ++k)
      if (!std::binary_search(na->begin(), na->end(), k)) o.push_back((*s)[k]);
  }
  c.set(0, c.dtype(0), o);
  if (auto v = c.value(0); v && r == 1 && o.empty()) c.set_value(0, *v);
}

// Length of one sliced axis of known size d (ONNX Slice clamping).
int64_t slice_len(int64_t d, int64_t start, int64_t end, int64_t step) {
  if (start < 0) start += d;
  if (end < 0) end += d;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, d);
    end = std::clamp<int64_t>(end, 0, d);
    return std::max<int64_t>(0, (end - start + step - 1) / step);
  }
  start = std::clamp<int64_t>(start, 0, d - 1);
  end = std::clamp<int64_t>(end, -1, d - 1);
  return std::max<int64_t>(0, (start - end + (-step) - 1) / (-step));
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
  if (!axes) {
    axes.emplace();
    for (int64_t k = 0; starts && k < static_cast<int64_t>(starts->size()); ++k) axes->push_back(k);
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
  for (size_t k = 0; k < axes->size(); ++k) {
    auto a = norm_axis((*axes)[k], r);
    const int64_t step = steps ? (*steps)[k] : 1;
    if (!a || step == 0) return;
    const Dim& d = (*s)[*a];
    if (d.known()) o[*a] = kdim(slice_len(d.value, (*starts)[k], (*ends)[k], step));
    else if (!(step == 1 && (*starts)[k] == 0 && (*ends)[k] >= INT32_MAX)) o[*a] = udim();
  }
  c.set(0, c.dtype(0), o);
  if (auto v = c.value(0); v && r == 1 && axes->size() == 1) {
    const int64_t n = static_cast<int64_t>(v->size());
    int64_t st = (*starts)[0], en = (*ends)[0];
    const int64_t step = steps ? (*steps)[0] : 1;
    const int64_t len = slice_len(n, st, en, step);
    if (st < 0) st += n;
    st = step > 0 ? std::clamp<int64_t>(st, 0, n) : std::clamp<int64_t>(st, 0, n - 1);
    Dims r2;
    for (int64_t k = 0; k < len; ++k) r2.push_back((*v)[st + k * step]);
    c.set_value(0, std::move(r2));
  }
}

void reshape(Ctx& c) {
  std::optional<Dims> want;  // values: -1 and 0 are kept as known ints
  if (c.opset < 5) {
    if (c.n.has_attr("shape")) want = known_vals(c.n.attr_ints("shape"));
  } else {
    want = c.value(1);
  }
  const auto& s = c.shape(0);
  if (!want) {
    const auto& ss = c.shape(1);  // the shape input's length is the output rank
    if (ss && ss->size() == 1 && (*ss)[0].known()) c.set(0, c.dtype(0), Dims((*ss)[0].value, udim()));
    else c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  const bool allowzero = c.opset >= 14 && c.n.attr_int("allowzero", 0) != 0;
  Dims o;
  int neg = -1;
  for (size_t k = 0; k < want->size(); ++k) {
    const Dim& w = (*want)[k];
    if (vknown(w) && w.value == -1) {
      if (neg >= 0) return;  // two -1: invalid
      neg = static_cast<int>(k);
      o.push_back(udim());
    } else if (vknown(w) && w.value == 0 && !allowzero) {
      o.push_back(s && k < s->size() ? (*s)[k] : udim());
    } else {
      o.push_back(val_to_dim(w));
    }
  }
  if (neg >= 0 && s) {  // input elements / the other output dims, symbols cancelling by name
    std::multiset<std::string> syms;
    int64_t pin = 1, pout = 1;
    bool ok = true;
    for (const Dim& d : *s) {
      if (d.known()) pin *= d.value;
      else if (!d.param.empty()) syms.insert(d.param);
      else ok = false;
    }
    for (size_t k = 0; ok && k < o.size(); ++k) {
      if (static_cast<int>(k) == neg) continue;
      if (o[k].known()) pout *= o[k].value;
      else if (auto it = syms.find(o[k].param); !o[k].param.empty() && it != syms.end()) syms.erase(it);
      else ok = false;
    }
    if (ok && syms.empty() && pout > 0 && pin % pout == 0) o[neg] = kdim(pin / pout);
  }
  c.set(0, c.dtype(0), o);
}

void flatten(Ctx& c) {
  const auto& s = c.shape(0);
  if (!s) {
    c.set(0, c.dtype(0), Dims{udim(), udim()});
    return;
  }
  const int64_t r = static_cast<int64_t>(s->size());
  int64_t a = c.n.attr_int("axis", 1);
  if (a < 0) a += r;
  if (a < 0 || a > r) return;
  c.set(0, c.dtype(0), Dims{dim_product(*s, 0, a), dim_product(*s, a)});
}

void transpose(Ctx& c) {
  const auto& s = c.shape(0);
  if (!s) {
    c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  const int64_t r = static_cast<int64_t>(s->size());
  std::vector<int64_t> perm = c.n.attr_ints("perm");
  if (perm.empty())
    for (int64_t k = r - 1; k >= 0; --k) perm.push_back(k);
  if (static_cast<int64_t>(perm.size()) != r) return;
  Dims o;
  for (int64_t p : perm) {
    auto a = norm_axis(p, r);
    if (!a) return;
    o.push_back((*s)[*a]);
  }
  c.set(0, c.dtype(0), o);
}

void expand(Ctx& c) {
  auto v = c.value(1);
  if (!v) {
    c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  std::optional<Dims> want = Dims{};
  for (const Dim& d : *v) want->push_back(val_to_dim(d));
  c.set(0, c.dtype(0), broadcast({&c.shape(0), &want}));
}

void tile(Ctx& c) {
  const auto& s = c.shape(0);
  auto rep = c.ints(1);
  if (!s) {
    c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  Dims o = *s;
  for (size_t k = 0; k < o.size(); ++k) {
    if (!rep || rep->size() != o.size()) o[k] = udim();
    else if ((*rep)[k] != 1) o[k] = o[k].known() ? kdim(o[k].value * (*rep)[k]) : udim();
  }
  c.set(0, c.dtype(0), o);
}

void pad(Ctx& c) {
  const auto& s = c.shape(0);
  if (!s) {
    c.set(0, c.dtype(0), std::nullopt);
    return;
  }
  const int64_t r = static_cast<int64_t>(s->size());
  auto pads = c.opset < 11 ? std::optional(c.n.attr_ints(c.opset < 2 ? "paddings" : "pads")) : c.ints(1);
  std::optional<std::vector<int64_t>> axes;
  if (c.opset >= 18 && c.has(3)) axes = c.ints(3);
  else {
    axes.emplace();
    for (int64_t k = 0; k < r; ++k) axes->push_back(k);
  }
  Dims o = *s;
  if (!pads || !axes || pads->size() != 2 * axes->size()) {
    c.set(0, c.dtype(0), Dims(r, udim()));
    return;
  }
  const size_t n = axes->size();
  for (size_t k = 0; k < n; ++k) {
    auto a = norm_axis((*axes)[k], r);
    if (!a) return;
    const int64_t add = (*pads)[k] + (*pads)[k + n];
    if (add == 0) continue;
    o[*a] = o[*a].known() && o[*a].value + add >= 0 ? kdim(o[*a].value + add) : udim();
  }
  c.set(0, c.dtype(0), o);
}

void split(Ctx& c) {
  const auto& s = c.shape(0);
  const size_t n = c.outs.size();
  for (size_t k = 0; k < n; ++k) c.set(k, c.dtype(0), std::nullopt);
  if (!s) return;
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
  std::vector<Dim> parts(n, udim());
  if (sp) {
    if (sp->size() != n) return;
    for (size_t k = 0; k < n; ++k) parts[k] = kdim((*sp)[k]);
  } else if (d.known()) {
    const bool num = c.opset >= 18 && c.n.has_attr("num_outputs");
    if (d.value % static_cast<int64_t>(n) == 0) parts.assign(n, kdim(d.value / static_cast<int64_t>(n)));
    else if (num) {  // ceil(d / n) each, the last one what remains
      const int64_t ch = (d.value + static_cast<int64_t>(n) - 1) / static_cast<int64_t>(n);
      for (size_t k = 0; k < n; ++k) parts[k] = kdim(std::max<int64_t>(0, std::min(ch, d.value - ch * static_cast<int64_t>(k))));
    }
  }
  for (size_t k = 0; k < n; ++k) {
    Dims o = *s;
    o[*a] = parts[k];
    c.set(k, c.dtype(0), o);
  }
}

void constant_of_shape(Ctx& c) {
  DType t = DType::Float;
  if (const Tensor* v = c.n.attr_tensor("value")) t = v->dtype();
  auto v = c.value(0);
  if (v) {
    for (auto& d : *v) d = val_to_dim(d);
    c.set(0, t, *v);
  } else if (const auto& s = c.shape(0); s && s->size() == 1 && (*s)[0].known()) {
    c.set(0, t, Dims((*s)[0].value, udim()));
  } else {
    c.set(0, t, std::nullopt);
  }
}

void range(Ctx& c) {
  c.set(0, c.dtype(0), Dims{udim()});
  auto st = c.floats(0), li = c.floats(1), de = c.floats(2);
  if (!st || !li || !de || st->size() != 1 || li->size() != 1 || de->size() != 1 || (*de)[0] == 0) {
    auto a = c.ints(0), b = c.ints(1), d = c.ints(2);  // integer values propagated through Shape chains
    if (!a || !b || !d || a->size() != 1 || b->size() != 1 || d->size() != 1 || (*d)[0] == 0) return;
    const int64_t step = (*d)[0], n = std::max<int64_t>(0, ((*b)[0] - (*a)[0] + step + (step > 0 ? -1 : 1)) / step);
    c.set(0, c.dtype(0), Dims{kdim(n)});
    return;
  }
  const double n = std::ceil(((*li)[0] - (*st)[0]) / (*de)[0]);
  c.set(0, c.dtype(0), Dims{kdim(std::max<int64_t>(0, static_cast<int64_t>(n)))});
}

void depth_space(Ctx& c, bool to_space) {
  const auto& s = c.shape(0);
  const int64_t b = c.n.attr_int("blocksize", 0);
  if (!s || s->size() != 4 || b <= 0) {
    c.set(0, c.dtype(0), s ? std::optional(Dims(4, udim())) : std::nullopt);
    return;
  }
  const Dim &ch = (*s)[1], &h = (*s)[2], &w = (*s)[3];
  auto mul = [](const Dim& d, int64_t f) { return d.known() ? kdim(d.value * f) : udim(); };
  auto div = [](const Dim& d, int64_t f) { return d.known() && d.value % f == 0 ? kdim(d.value / f) : udim(); };
  if (to_space) c.set(0, c.dtype(0), Dims{(*s)[0], div(ch, b * b), mul(h, b), mul(w, b)});
  else c.set(0, c.dtype(0), Dims{(*s)[0], mul(ch, b * b), div(h, b), div(w, b)});
}

void gather_nd(Ctx& c) {
  const auto& d = c.shape(0);
  const auto& i = c.shape(1);
  const int64_t b = c.n.attr_int("batch_dims", 0);
  c.set(0, c.dtype(0), std::nullopt);
  if (!d || !i || i->empty() || !i->back().known()) return;
  const int64_t last = i->back().value;
  if (b + last > static_cast<int64_t>(d->size())) return;
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
  o.insert(o.begin() + *a, depth && depth->size() == 1 && (*depth)[0] >= 0 ? kdim(static_cast<int64_t>((*depth)[0]))
                                                                            : udim());
  c.set(0, c.dtype(2), o);
}

}  // namespace

bool infer_tensor_op(Ctx& c) {
  const std::string& op = c.n.op_type;
  if (op == "Shape") shape_op(c);
  else if (op == "Size") {
    c.set(0, DType::Int64, Dims{});
    if (c.shape(0)) c.set_value(0, Dims{dim_to_val(dim_product(*c.shape(0)))});
  } else if (op == "Gather") gather(c);
  else if (op == "Concat") concat(c);
  else if (op == "Unsqueeze") unsqueeze(c);
  else if (op == "Squeeze") squeeze(c);
  else if (op == "Slice") slice(c);
  else if (op == "Reshape") reshape(c);
  else if (op == "Flatten") flatten(c);
  else if (op == "Transpose") transpose(c);
  else if (op == "Expand") expand(c);
  else if (op == "Tile") tile(c);
  else if (op == "Pad") pad(c);
  else if (op == "Split") split(c);
  else if (op == "ConstantOfShape") constant_of_shape(c);
  else if (op == "Range") range(c);
  else if (op == "DepthToSpace") depth_space(c, true);
  else if (op == "SpaceToDepth") depth_space(c, false);
  else if (op == "GatherElements") c.set(0, c.dtype(0), c.shape(1));
  else if (op == "GatherND") gather_nd(c);
  else if (op == "OneHot") one_hot(c);
  else if (op == "EyeLike") {
    const int64_t t = c.n.attr_int("dtype", 0);
    c.set(0, t > 0 ? static_cast<DType>(t) : c.dtype(0), c.shape(0));
  } else if (op == "NonZero") {
    const auto r = c.rank(0);
    c.set(0, DType::Int64, Dims{r ? kdim(*r) : udim(), udim()});
  } else if (op == "Compress") {
    const auto& s = c.shape(0);
    if (!c.n.has_attr("axis")) c.set(0, c.dtype(0), Dims{udim()});
    else if (s) c.set(0, c.dtype(0), Dims(s->size(), udim()));
    else c.set(0, c.dtype(0), std::nullopt);
  } else if (op == "NonMaxSuppression") {
    c.set(0, DType::Int64, Dims{udim(), kdim(3)});
  } else if (op == "Unique") {
    c.set(0, c.dtype(0), c.n.has_attr("axis") ? std::nullopt : std::optional(Dims{udim()}));
    for (size_t k = 1; k < c.outs.size(); ++k) c.set(k, DType::Int64, Dims{udim()});
  } else return false;
  return true;
}

}  // namespace oq::ir::passes::infer
