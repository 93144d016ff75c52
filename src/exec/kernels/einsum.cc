// Einsum (opsets 12-28; bfloat16 from 28). The equation is parsed once when the kernel is built, and so is the
// choice of path:
//
// * Gemm path: two operands whose every label is batch (in both inputs and the output), contracted (in both
//   inputs, not the output) or free (in one input and the output) -- no label repeated inside a term, no label
//   summed out of one input alone; "..." counts as labels like the others. Each operand is seen as [B, M, K]
//   / [B, K, N] (or its transpose, given to sgemm as such) and copied into that order only when its layout is
//   not already one of them; the label orders inside each group are chosen at build time to need the fewest
//   copies (output included: the [B, M, N] product is written straight into the output when the order fits,
//   else permuted into it). The products run as oneDNN sgemm's like batched MatMul (sgemm.h). A run still takes
//   the loop when the inputs are not float32, a label of size 1 is broadcast against a larger one, or the
//   product per batch is tiny (M*N*K < kGemmMinWork; measured: docs/benchmarks.md, "Einsum").
// * Loop path (everything else, and the naive reference the Gemm path is tested against): a run gives every
//   label a size and, per operand, a stride (the sum of the strides of the dims carrying it, so a label
//   repeated in one term walks the diagonal; 0 for a broadcast size-1 dim), then sums the product of the
//   operands over the labels absent from the output, for each output element. Floats accumulate in double,
//   integers in 64 bits (wrapping, so the result equals numpy's wrapping arithmetic in the element type);
//   Float16/BFloat16 are computed in float.
#include <algorithm>
#include <array>
#include <cctype>
#include <type_traits>

#include "core/parallel.h"
#include "exec/kernels/einsum.h"
#include "exec/kernels/elementwise.h"
#include "exec/kernels/sgemm.h"
#include "exec/kernels/strided.h"

namespace oq::exec {
namespace {

constexpr int kLetters = 52;   // A-Z -> 0..25, a-z -> 26..51 (ASCII order)
constexpr int kEllipsis = -1;  // marks "..." inside a parsed term

int letter_label(char c) { return c >= 'A' && c <= 'Z' ? c - 'A' : 26 + (c - 'a'); }
std::string label_name(int l) {
  if (l < 26) return std::string(1, static_cast<char>('A' + l));
  if (l < kLetters) return std::string(1, static_cast<char>('a' + l - 26));
  return fmt::format("... dim {}", l - kLetters);
}

struct Equation {
  std::vector<std::vector<int>> inputs;  // labels (kEllipsis for "...")
  std::vector<int> output;
  bool explicit_output = false;
};

std::vector<int> parse_term(const ir::Node& node, const std::string& t) {
  std::vector<int> labels;
  bool ell = false;
  for (size_t i = 0; i < t.size();) {
    const char c = t[i];
    if (c == '.') {
      if (t.compare(i, 3, "...") != 0) kfail(node, "equation term '{}': '.' outside an ellipsis '...'", t);
      if (ell) kfail(node, "equation term '{}' has more than one ellipsis", t);
      ell = true;
      labels.push_back(kEllipsis);
      i += 3;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      labels.push_back(letter_label(c));
      ++i;
    } else {
      kfail(node, "equation term '{}': invalid character '{}' (letters a-z, A-Z and '...' only)", t, c);
    }
  }
  return labels;
}

Equation parse_equation(const ir::Node& node, const std::string& eq_in, size_t n_inputs) {
  std::string eq;
  for (char c : eq_in)
    if (c != ' ') eq += c;
  if (eq.empty()) kfail(node, "attribute 'equation' is required and must not be empty");
  Equation e;
  std::string lhs = eq, rhs;
  if (size_t p = eq.find("->"); p != std::string::npos) {
    lhs = eq.substr(0, p);
    rhs = eq.substr(p + 2);
    e.explicit_output = true;
    if (rhs.find("->") != std::string::npos) kfail(node, "equation '{}' has more than one '->'", eq_in);
  }
  size_t start = 0;
  while (true) {
    size_t comma = lhs.find(',', start);
    e.inputs.push_back(parse_term(node, lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (e.inputs.size() != n_inputs)
    kfail(node, "equation '{}' has {} input terms but the node has {} inputs", eq_in, e.inputs.size(), n_inputs);
  std::array<int, kLetters> count{};
  bool any_ell = false;
  for (const auto& t : e.inputs)
    for (int l : t) {
      if (l == kEllipsis) any_ell = true;
      else ++count[l];
    }
  if (e.explicit_output) {
    e.output = parse_term(node, rhs);
    std::array<bool, kLetters> seen{};
    for (int l : e.output) {
      if (l == kEllipsis) continue;
      if (seen[l]) kfail(node, "equation '{}': output label repeated", eq_in);
      if (!count[l]) kfail(node, "equation '{}': output label not in any input term", eq_in);
      seen[l] = true;
    }
  } else {
    if (any_ell) e.output.push_back(kEllipsis);  // implicit: ellipsis dims first, then labels seen once
    for (int l = 0; l < kLetters; ++l)
      if (count[l] == 1) e.output.push_back(l);
  }
  return e;
}

template <typename T>
using EinsumAcc = std::conditional_t<std::is_floating_point_v<T>, double,
                                     std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

// out[o] = sum over the summed labels of prod_k x_k[...]; strides per operand are given per output label
// (ostr[k][j]) and per summed label (sstr[k][j]).
template <typename T>
void einsum_typed(const std::vector<const T*>& xs, T* y, const Shape& oshape, const Shape& sshape,
                  const std::vector<std::vector<int64_t>>& ostr, const std::vector<std::vector<int64_t>>& sstr) {
  using Acc = EinsumAcc<T>;
  const size_t nk = xs.size();
  const int no = static_cast<int>(oshape.size()), ns = static_cast<int>(sshape.size());
  const int64_t n_out = shape_numel(oshape), n_sum = shape_numel(sshape);
  parallel_for(n_out, std::max<int64_t>(1, 16384 / std::max<int64_t>(n_sum, 1)), [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> base(nk), off(nk), c(static_cast<size_t>(ns));
    for (int64_t o = lo; o < hi; ++o) {
      std::fill(base.begin(), base.end(), 0);
      for (int64_t rem = o, j = no - 1; j >= 0; --j) {
        const int64_t v = rem % oshape[j];
        rem /= oshape[j];
        for (size_t k = 0; k < nk; ++k) base[k] += v * ostr[k][j];
      }
      Acc acc = 0;
      off = base;
      std::fill(c.begin(), c.end(), 0);
      for (int64_t s = 0; s < n_sum; ++s) {
        Acc p = static_cast<Acc>(xs[0][off[0]]);
        for (size_t k = 1; k < nk; ++k) p = wrap_mul(p, static_cast<Acc>(xs[k][off[k]]));
        acc = wrap_add(acc, p);
        for (int j = ns - 1; j >= 0; --j) {  // odometer over the summed labels
          for (size_t k = 0; k < nk; ++k) off[k] += sstr[k][j];
          if (++c[j] < sshape[j]) break;
          for (size_t k = 0; k < nk; ++k) off[k] -= sstr[k][j] * sshape[j];
          c[j] = 0;
        }
      }
      y[o] = static_cast<T>(acc);
    }
  });
}

// The inputs of a run checked against the equation: every label's size and, per operand, stride and size.
struct Bound {
  std::vector<Tensor> xs;
  DType t = DType::Float;
  int ell_rank = 0;                             // dims the ellipsis stands for (labels kLetters...)
  std::vector<std::vector<int>> dims;           // label of each dim, per input
  std::vector<int> olabels;                     // output labels
  std::vector<int64_t> size;                    // per label (1 when every dim carrying it is 1)
  std::vector<std::vector<int64_t>> stride;     // per input and label
  std::vector<bool> used;
};

std::vector<int> expand_term(const std::vector<int>& term, int ell_rank) {
  std::vector<int> dims;
  for (int l : term) {
    if (l != kEllipsis) { dims.push_back(l); continue; }
    for (int e = 0; e < ell_rank; ++e) dims.push_back(kLetters + e);
  }
  return dims;
}

Bound bind(const ir::Node& node, const Equation& eq, const std::string& eq_str, const std::vector<const Tensor*>& in,
           int opset = kMaxOpset) {
  Bound b;
  const size_t nk = eq.inputs.size();
  for (size_t k = 0; k < nk; ++k) b.xs.push_back(input_at(node, in, k));
  const auto& xs = b.xs;
  const DType t = b.t = xs[0].dtype();
  if (t == DType::BFloat16 && opset < 28) kfail(node, "type BFLOAT16 needs opset 28 (model: {})", opset);
  for (const Tensor& x : xs)
    if (x.dtype() != t) kfail(node, "inputs have different types ({} and {})", dtype_name(t), dtype_name(x.dtype()));
  // Ellipsis rank: the same for every term that has one.
  int ell_rank = -1;
  for (size_t k = 0; k < nk; ++k) {
    const auto& term = eq.inputs[k];
    const bool has_ell = std::count(term.begin(), term.end(), kEllipsis) > 0;
    const int letters = static_cast<int>(term.size()) - (has_ell ? 1 : 0);
    if (has_ell ? xs[k].rank() < letters : xs[k].rank() != letters)
      kfail(node, "input {} of shape {} does not match equation term {} of '{}'", k, shape_str(xs[k].shape()),
            k, eq_str);
    if (!has_ell) continue;
    const int er = xs[k].rank() - letters;
    if (ell_rank >= 0 && er != ell_rank)
      kfail(node, "the ellipsis stands for {} dims in one input and {} in another ('{}')", ell_rank, er, eq_str);
    ell_rank = er;
  }
  if (ell_rank < 0) ell_rank = 0;
  b.ell_rank = ell_rank;
  const bool out_ell = std::count(eq.output.begin(), eq.output.end(), kEllipsis) > 0;
  if (ell_rank > 0 && !out_ell)
    kfail(node, "the inputs have ellipsis dims but the output term of '{}' has no '...'", eq_str);
  // Labels: letters 0..51, ellipsis dims 52... Sizes (1 broadcasts) and per-operand strides.
  const int n_labels = kLetters + ell_rank;
  b.size.assign(static_cast<size_t>(n_labels), -1);
  b.stride.assign(nk, std::vector<int64_t>(static_cast<size_t>(n_labels), 0));
  b.used.assign(static_cast<size_t>(n_labels), false);
  for (size_t k = 0; k < nk; ++k) {
    b.dims.push_back(expand_term(eq.inputs[k], ell_rank));
    const std::vector<int>& dims = b.dims.back();
    const auto st = contiguous_strides(xs[k].shape());
    for (size_t d = 0; d < dims.size(); ++d) {
      const int l = dims[d];
      const int64_t s = xs[k].dim(static_cast<int>(d));
      b.used[l] = true;
      if (s != 1) {
        if (b.size[l] != -1 && b.size[l] != 1 && b.size[l] != s)
          kfail(node, "label '{}' of '{}' has size {} in one place and {} in another", label_name(l), eq_str,
                b.size[l], s);
        b.size[l] = s;
        b.stride[k][l] += st[d];
      } else if (b.size[l] < 0) {
        b.size[l] = 1;
      }
    }
  }
  // A label of size > 1 repeated in one term only walks the diagonal when every occurrence has that size.
  for (size_t k = 0; k < nk; ++k) {
    const std::vector<int>& dims = b.dims[k];
    for (size_t d = 0; d < dims.size(); ++d)
      if (std::count(dims.begin(), dims.end(), dims[d]) > 1 && xs[k].dim(static_cast<int>(d)) != b.size[dims[d]])
        kfail(node, "input {}: the repeated label '{}' of '{}' has sizes that differ ({})", k,
              label_name(dims[d]), eq_str, shape_str(xs[k].shape()));
  }
  b.olabels = expand_term(eq.output, ell_rank);
  return b;
}

Tensor run_loop(const ir::Node& node, const Bound& b) {
  const size_t nk = b.xs.size();
  const int n_labels = static_cast<int>(b.size.size());
  std::vector<bool> in_out(static_cast<size_t>(n_labels), false);
  for (int l : b.olabels) in_out[l] = true;
  Shape oshape, sshape;
  std::vector<std::vector<int64_t>> ostr(nk), sstr(nk);
  for (int l : b.olabels) {
    oshape.push_back(b.size[l]);
    for (size_t k = 0; k < nk; ++k) ostr[k].push_back(b.stride[k][l]);
  }
  for (int l = 0; l < n_labels; ++l)
    if (b.used[l] && !in_out[l]) {
      sshape.push_back(b.size[l]);
      for (size_t k = 0; k < nk; ++k) sstr[k].push_back(b.stride[k][l]);
    }
  const DType t = b.t;
  const bool half = is_half(t);
  std::vector<Tensor> wide;
  for (const Tensor& x : b.xs) wide.push_back(half ? x.cast(DType::Float) : x);
  const DType ct = half ? DType::Float : t;
  Tensor y = Tensor::uninitialized(ct, oshape);
  bool ok = ct != DType::Bool && dispatch_numeric(ct, [&](auto tag) {
    using T = decltype(tag);
    std::vector<const T*> ptrs;
    for (const Tensor& x : wide) ptrs.push_back(x.data<T>());
    einsum_typed<T>(ptrs, y.data<T>(), oshape, sshape, ostr, sstr);
  });
  if (!ok) kfail(node, "unsupported type {}", dtype_name(t));
  return half ? y.cast(t) : y;
}

// ------------------------------------------------------------------------------------------- Gemm path
constexpr int kEll = kLetters;           // the ellipsis as one label in a plan (expanded by a run)
constexpr int64_t kGemmMinWork = 64;     // M*N*K below which a run keeps the loop

// Label orders of the sgemm view: operand `a` is A [batch, m, k], the other B [batch, k, n], the product
// [batch, m, n]. ok == false: the equation is not a two-operand contraction.
struct GemmPlan {
  bool ok = false;
  int a = 0;
  std::vector<int> batch, m, n, k;
};

using Labels = std::vector<int>;
Labels cat(std::initializer_list<const Labels*> parts) {
  Labels r;
  for (const Labels* p : parts) r.insert(r.end(), p->begin(), p->end());
  return r;
}

GemmPlan plan_gemm(const Equation& e) {
  GemmPlan plan;
  if (e.inputs.size() != 2) return plan;
  auto id = [](int l) { return l == kEllipsis ? kEll : l; };
  std::array<int, kLetters + 1> where{};  // bit k: in input k; bit 2: in the output
  for (int k = 0; k < 2; ++k)
    for (int l : e.inputs[k]) {
      if (where[id(l)] & (1 << k)) return plan;  // repeated in a term: a diagonal
      where[id(l)] |= 1 << k;
    }
  for (int l : e.output) where[id(l)] |= 4;
  // "..." in an input but not the output: the run fails unless it stands for no dims, so it is dropped.
  if (!(where[kEll] & 4)) where[kEll] = 0;
  for (int w : where)
    if (w == 1 || w == 2) return plan;  // summed out of one input alone
  // Terms in plan labels; orders of a group as they appear in a term.
  auto term = [&](const std::vector<int>& t) {
    Labels r;
    for (int l : t)
      if (where[id(l)]) r.push_back(id(l));
    return r;
  };
  const Labels t[2] = {term(e.inputs[0]), term(e.inputs[1])}, o = term(e.output);
  auto group = [&](const Labels& seq, int w) {
    Labels r;
    for (int l : seq)
      if (where[l] == w) r.push_back(l);
    return r;
  };
  int best = 4;
  for (int a = 0; a < 2; ++a) {
    const Labels &A = t[a], &B = t[1 - a];
    const int fa = a == 0 ? 5 : 6, fb = a == 0 ? 6 : 5;
    for (const Labels* bs : {&o, &t[0], &t[1]})
      for (const Labels* ms : {&o, &A})
        for (const Labels* ns : {&o, &B})
          for (const Labels* ks : {&A, &B}) {
            const Labels bt = group(*bs, 7), m = group(*ms, fa), n = group(*ns, fb), k = group(*ks, 3);
            const int copies = (A != cat({&bt, &m, &k}) && A != cat({&bt, &k, &m})) +
                               (B != cat({&bt, &k, &n}) && B != cat({&bt, &n, &k})) + (o != cat({&bt, &m, &n}));
            if (copies < best) {
              best = copies;
              plan = GemmPlan{true, a, bt, m, n, k};
            }
          }
  }
  return plan;
}

// Whether a run with inputs `b` can take the plan: float32, and a label in both inputs has the same size in
// both (no size-1 broadcasting).
bool gemm_fits(const GemmPlan& plan, const Bound& b) {
  if (!plan.ok || b.t != DType::Float) return false;
  std::vector<int64_t> first(b.size.size(), -1);
  for (size_t d = 0; d < b.dims[0].size(); ++d) first[b.dims[0][d]] = b.xs[0].dim(static_cast<int>(d));
  for (size_t d = 0; d < b.dims[1].size(); ++d) {
    const int64_t s0 = first[b.dims[1][d]];
    if (s0 >= 0 && s0 != b.xs[1].dim(static_cast<int>(d))) return false;
  }
  return true;
}

Labels expand_plan(const Labels& ls, int ell_rank) {
  Labels r;
  for (int l : ls) {
    if (l != kEll) { r.push_back(l); continue; }
    for (int e = 0; e < ell_rank; ++e) r.push_back(kLetters + e);
  }
  return r;
}

struct GemmDims {
  Labels batch, m, n, k;
  int64_t nb = 1, M = 1, N = 1, K = 1;
};

GemmDims gemm_dims(const GemmPlan& plan, const Bound& b) {
  GemmDims g{expand_plan(plan.batch, b.ell_rank), expand_plan(plan.m, b.ell_rank), expand_plan(plan.n, b.ell_rank),
             expand_plan(plan.k, b.ell_rank)};
  for (int l : g.batch) g.nb *= b.size[l];
  for (int l : g.m) g.M *= b.size[l];
  for (int l : g.n) g.N *= b.size[l];
  for (int l : g.k) g.K *= b.size[l];
  return g;
}

Tensor run_gemm(const ir::Node& node, const GemmPlan& plan, const Bound& b) {
  const GemmDims g = gemm_dims(plan, b);
  Shape oshape;
  for (int l : b.olabels) oshape.push_back(b.size[l]);
  Tensor y = Tensor::uninitialized(DType::Float, oshape);
  if (y.numel() == 0) return y;
  // Orders compared without their size-1 labels: those do not move any element.
  auto squeeze = [&](const Labels& ls) {
    Labels r;
    for (int l : ls)
      if (b.size[l] != 1) r.push_back(l);
    return r;
  };
  auto perm_to = [](const Labels& from, const Labels& to) {  // transpose perm taking order `from` to `to`
    std::vector<int64_t> perm;
    for (int l : to) perm.push_back(std::find(from.begin(), from.end(), l) - from.begin());
    return perm;
  };
  // Operand k as [batch, outer, inner] (trans: stored [batch, inner, outer]), copied only when neither fits.
  struct View {
    Tensor keep;
    bool trans = false;
  };
  auto view = [&](int k, const Labels& outer, const Labels& inner) {
    const Labels& have = b.dims[k];
    const Labels want = cat({&g.batch, &outer, &inner});
    if (squeeze(have) == squeeze(want)) return View{b.xs[k], false};
    if (squeeze(have) == squeeze(cat({&g.batch, &inner, &outer}))) return View{b.xs[k], true};
    return View{transpose(b.xs[k], perm_to(have, want)), false};
  };
  const View A = view(plan.a, g.m, g.k), B = view(1 - plan.a, g.k, g.n);
  const Labels res = cat({&g.batch, &g.m, &g.n});
  const bool direct = squeeze(b.olabels) == squeeze(res);
  Tensor prod = y;
  if (!direct) {
    Shape ps;
    for (int l : res) ps.push_back(b.size[l]);
    prod = Tensor::uninitialized(DType::Float, ps);
  }
  const dnnl_status_t st = sgemm_batched(A.trans, B.trans, g.nb, g.M, g.N, g.K, A.keep.data<float>(), g.M * g.K,
                                         B.keep.data<float>(), g.K * g.N, prod.data<float>());
  if (st != dnnl_success)
    kfail(node, "oneDNN sgemm failed (status {}) for {} products M={} N={} K={}", static_cast<int>(st), g.nb, g.M,
          g.N, g.K);
  return direct ? y : transpose(prod, perm_to(res, b.olabels));
}

struct Built {
  ir::Node node;
  std::string eq_str;
  Equation eq;
  GemmPlan plan;
  explicit Built(const ir::Node& n)
      : node(n), eq_str(n.attr_string("equation", "")), eq(parse_equation(n, eq_str, n.inputs.size())),
        plan(plan_gemm(eq)) {}
  EinsumPath path(const Bound& b) const {
    if (!gemm_fits(plan, b)) return EinsumPath::Loop;
    const GemmDims g = gemm_dims(plan, b);
    return g.M * g.N * g.K >= kGemmMinWork ? EinsumPath::Gemm : EinsumPath::Loop;
  }
};

std::unique_ptr<Kernel> make_einsum(const KernelInit& ki) {
  auto k = std::make_shared<const Built>(ki.node);
  const int opset = ki.opset;
  return fn_kernel([k, opset](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Bound b = bind(k->node, k->eq, k->eq_str, in, opset);
    out[0] = k->path(b) == EinsumPath::Gemm ? run_gemm(k->node, k->plan, b) : run_loop(k->node, b);
  });
}

}  // namespace

EinsumPath einsum_path(const ir::Node& node, const std::vector<const Tensor*>& in) {
  const Built k(node);
  return k.path(bind(node, k.eq, k.eq_str, in));
}

Tensor einsum_by(EinsumPath path, const ir::Node& node, const std::vector<const Tensor*>& in) {
  const Built k(node);
  const Bound b = bind(node, k.eq, k.eq_str, in);
  if (path == EinsumPath::Loop) return run_loop(node, b);
  if (!gemm_fits(k.plan, b)) kfail(node, "equation '{}' on these inputs is not an sgemm contraction", k.eq_str);
  return run_gemm(node, k.plan, b);
}

OQ_REGISTER_KERNEL(Einsum, 12, kMaxOpset, make_einsum);

}  // namespace oq::exec
