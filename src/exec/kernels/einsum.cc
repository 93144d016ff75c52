// Einsum (opset 12): the equation is parsed once when the kernel is built; a run gives every label a size and,
// per operand, a stride (the sum of the strides of the dims carrying it, so a label repeated in one term walks
// the diagonal; 0 for a broadcast size-1 dim), then sums the product of the operands over the labels absent
// from the output, for each output element. Floats accumulate in double, integers in 64 bits (wrapping, so the
// result equals numpy's wrapping arithmetic in the element type); Float16/BFloat16 are computed in float.
#include <algorithm>
#include <array>
#include <cctype>
#include <type_traits>

#include "core/parallel.h"
#include "exec/kernels/elementwise.h"
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

std::unique_ptr<Kernel> make_einsum(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const std::string eq_str = node.attr_string("equation", "");
  const Equation eq = parse_equation(node, eq_str, node.inputs.size());
  return fn_kernel([node, eq, eq_str](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const size_t nk = eq.inputs.size();
    std::vector<Tensor> xs;
    for (size_t k = 0; k < nk; ++k) xs.push_back(input_at(node, in, k));
    const DType t = xs[0].dtype();
    if (t == DType::BFloat16) kfail(node, "type BFLOAT16 needs opset 28 (the executor covers up to {})", kMaxOpset);
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
    const bool out_ell = std::count(eq.output.begin(), eq.output.end(), kEllipsis) > 0;
    if (ell_rank > 0 && !out_ell)
      kfail(node, "the inputs have ellipsis dims but the output term of '{}' has no '...'", eq_str);
    // Labels: letters 0..51, ellipsis dims 52... Sizes (1 broadcasts) and per-operand strides.
    const int n_labels = kLetters + ell_rank;
    std::vector<int64_t> size(static_cast<size_t>(n_labels), -1);
    std::vector<std::vector<int64_t>> stride(nk, std::vector<int64_t>(static_cast<size_t>(n_labels), 0));
    std::vector<bool> used(static_cast<size_t>(n_labels), false);
    for (size_t k = 0; k < nk; ++k) {
      std::vector<int> dims;  // label of each dim of input k
      for (int l : eq.inputs[k]) {
        if (l != kEllipsis) { dims.push_back(l); continue; }
        for (int e = 0; e < ell_rank; ++e) dims.push_back(kLetters + e);
      }
      const auto st = contiguous_strides(xs[k].shape());
      for (size_t d = 0; d < dims.size(); ++d) {
        const int l = dims[d];
        const int64_t s = xs[k].dim(static_cast<int>(d));
        used[l] = true;
        if (s != 1) {
          if (size[l] != -1 && size[l] != 1 && size[l] != s)
            kfail(node, "label '{}' of '{}' has size {} in one place and {} in another", label_name(l), eq_str,
                  size[l], s);
          size[l] = s;
          stride[k][l] += st[d];
        } else if (size[l] < 0) {
          size[l] = 1;
        }
      }
    }
    // A label of size > 1 repeated in one term only walks the diagonal when every occurrence has that size.
    for (size_t k = 0; k < nk; ++k) {
      std::vector<int> dims;
      for (int l : eq.inputs[k]) {
        if (l != kEllipsis) { dims.push_back(l); continue; }
        for (int e = 0; e < ell_rank; ++e) dims.push_back(kLetters + e);
      }
      for (size_t d = 0; d < dims.size(); ++d)
        if (std::count(dims.begin(), dims.end(), dims[d]) > 1 && xs[k].dim(static_cast<int>(d)) != size[dims[d]])
          kfail(node, "input {}: the repeated label '{}' of '{}' has sizes that differ ({})", k,
                label_name(dims[d]), eq_str, shape_str(xs[k].shape()));
    }
    std::vector<int> olabels;
    for (int l : eq.output) {
      if (l != kEllipsis) { olabels.push_back(l); continue; }
      for (int e = 0; e < ell_rank; ++e) olabels.push_back(kLetters + e);
    }
    std::vector<bool> in_out(static_cast<size_t>(n_labels), false);
    for (int l : olabels) in_out[l] = true;
    Shape oshape, sshape;
    std::vector<std::vector<int64_t>> ostr(nk), sstr(nk);
    for (int l : olabels) {
      oshape.push_back(size[l]);
      for (size_t k = 0; k < nk; ++k) ostr[k].push_back(stride[k][l]);
    }
    for (int l = 0; l < n_labels; ++l)
      if (used[l] && !in_out[l]) {
        sshape.push_back(size[l]);
        for (size_t k = 0; k < nk; ++k) sstr[k].push_back(stride[k][l]);
      }
    const bool half = is_half(t);
    std::vector<Tensor> wide;
    for (const Tensor& x : xs) wide.push_back(half ? x.cast(DType::Float) : x);
    const DType ct = half ? DType::Float : t;
    Tensor y = Tensor::uninitialized(ct, oshape);
    bool ok = ct != DType::Bool && dispatch_numeric(ct, [&](auto tag) {
      using T = decltype(tag);
      std::vector<const T*> ptrs;
      for (const Tensor& x : wide) ptrs.push_back(x.data<T>());
      einsum_typed<T>(ptrs, y.data<T>(), oshape, sshape, ostr, sstr);
    });
    if (!ok) kfail(node, "unsupported type {}", dtype_name(t));
    out[0] = half ? y.cast(t) : std::move(y);
  });
}

}  // namespace

OQ_REGISTER_KERNEL(Einsum, 12, kMaxOpset, make_einsum);

}  // namespace oq::exec
