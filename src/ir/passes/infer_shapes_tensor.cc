// Shape inference rules of the shape-manipulating ops, with the element-wise value propagation of small integer
// tensors (Shape -> Gather -> Unsqueeze -> Concat -> Reshape; Gather / Slice: infer_shapes_index.cc).
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
        const auto t = x.known() ? checked_add(sum, x.value) : std::nullopt;
        if (t) sum = *t;
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
    if (ss && ss->size() == 1 && (*ss)[0].known() && (*ss)[0].value <= kMaxBuiltRank)
      c.set(0, c.dtype(0), Dims((*ss)[0].value, udim()));
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
    auto mul = [&ok](int64_t& p, int64_t v) {
      const auto t = checked_mul(p, v);
      if (t) p = *t;
      else ok = false;
    };
    for (const Dim& d : *s) {
      if (d.known()) mul(pin, d.value);
      else if (!d.param.empty()) syms.insert(d.param);
      else ok = false;
    }
    for (size_t k = 0; ok && k < o.size(); ++k) {
      if (static_cast<int>(k) == neg) continue;
      if (o[k].known()) mul(pout, o[k].value);
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
  std::vector<char> seen(r, 0);
  for (int64_t p : perm) {
    auto a = norm_axis(p, r);
    if (!a || seen[*a]++) return;  // out of range or repeated: invalid
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
    else if ((*rep)[k] != 1) o[k] = mul_dim(o[k], (*rep)[k]);
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
    const auto add = checked_add((*pads)[k], (*pads)[k + n]);
    if (add && *add == 0) continue;
    const auto v = add && o[*a].known() ? checked_add(o[*a].value, *add) : std::nullopt;
    o[*a] = v ? sdim(*v) : udim();
  }
  c.set(0, c.dtype(0), o);
}

void constant_of_shape(Ctx& c) {
  DType t = DType::Float;
  if (const Tensor* v = c.n.attr_tensor("value")) t = v->dtype();
  auto v = c.value(0);
  if (v) {
    for (auto& d : *v) d = val_to_dim(d);
    c.set(0, t, *v);
  } else if (const auto& s = c.shape(0); s && s->size() == 1 && (*s)[0].known() && (*s)[0].value <= kMaxBuiltRank) {
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
    // ceil((limit - start) / delta) in 128 bits: no overflow whatever the values
    const __int128 span = static_cast<__int128>((*b)[0]) - (*a)[0], step = (*d)[0];
    const __int128 n = span == 0 || (span > 0) != (step > 0) ? 0 : (span + step + (step > 0 ? -1 : 1)) / step;
    if (n <= INT64_MAX) c.set(0, c.dtype(0), Dims{kdim(static_cast<int64_t>(n))});
    return;
  }
  const double n = std::ceil(((*li)[0] - (*st)[0]) / (*de)[0]);
  if (!(n < 0x1p62)) return;  // NaN, infinite or huge
  c.set(0, c.dtype(0), Dims{kdim(std::max<int64_t>(0, static_cast<int64_t>(n)))});
}

}  // namespace

bool infer_tensor_op(Ctx& c) {
  const std::string& op = c.n.op_type;
  if (op == "Shape") shape_op(c);
  else if (op == "Size") {
    c.set(0, DType::Int64, Dims{});
    if (c.shape(0)) c.set_value(0, Dims{dim_to_val(dim_product(*c.shape(0)))});
  } else if (op == "Concat") concat(c);
  else if (op == "Unsqueeze") unsqueeze(c);
  else if (op == "Squeeze") squeeze(c);
  else if (op == "Reshape") reshape(c);
  else if (op == "Flatten") flatten(c);
  else if (op == "Transpose") transpose(c);
  else if (op == "Expand") expand(c);
  else if (op == "Tile") tile(c);
  else if (op == "Pad") pad(c);
  else if (op == "ConstantOfShape") constant_of_shape(c);
  else if (op == "Range") range(c);
  else if (op == "EyeLike") {
    const int64_t t = c.n.attr_int("dtype", 0);
    const bool ok = t > 0 && t <= INT32_MAX && dtype_is_known(static_cast<int32_t>(t));
    c.set(0, ok ? static_cast<DType>(t) : t > 0 ? DType::Undefined : c.dtype(0), c.shape(0));
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
