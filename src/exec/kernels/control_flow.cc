// Control flow: If (opsets 1-28), Loop (1-28), Scan (8, and 9-28). Each body is built once with the node's kernel
// (exec/subgraph.h: attributes parsed and checked here, body kernels built there); run() only runs them.
// The session passes the node's implicit inputs (outer-scope values its bodies read) after its own inputs.
// Values are tensors only: a body input or output that is a sequence / optional / map is refused at build time.
// Loop follows ONNX Runtime where it departs from the spec's pseudo-code: the body's condition output ends the
// loop even when the node's `cond` input is omitted, and a scan output of a loop that ran zero times has shape
// [0, d1, ...] with the body output's known dims (0 for unknown ones; [0] without a declared shape).
#include <algorithm>
#include <climits>
#include <cstring>

#include "exec/kernel.h"
#include "exec/subgraph.h"

namespace oq::exec {
namespace {

// Values of the implicit inputs: they follow the node's own inputs in `in`.
std::vector<const Tensor*> outer_values(const ir::Node& node, const std::vector<const Tensor*>& in) {
  const size_t own = node.inputs.size();
  return own < in.size() ? std::vector<const Tensor*>(in.begin() + static_cast<ptrdiff_t>(own), in.end())
                         : std::vector<const Tensor*>{};
}

const std::vector<std::string>& implicit_of(const KernelInit& ki) {
  static const std::vector<std::string> none;
  return ki.implicit ? *ki.implicit : none;
}

bool scalar_bool(const ir::Node& node, const Tensor& t, const char* what) {
  if (t.numel() != 1) kfail(node, "{} must hold one value, got shape {}", what, shape_str(t.shape()));
  if (t.dtype() != DType::Bool) kfail(node, "{} must be a bool tensor, got {}", what, dtype_name(t.dtype()));
  return t.data<uint8_t>()[0] != 0;
}

// Copies `n` elements (strings included) from src[src_off...] to dst[dst_off...].
void copy_elems(Tensor& dst, int64_t dst_off, const Tensor& src, int64_t src_off, int64_t n) {
  if (n <= 0) return;
  if (src.dtype() == DType::String) {
    std::copy_n(src.strings().begin() + src_off, n, dst.strings().begin() + dst_off);
    return;
  }
  const size_t es = dtype_size(src.dtype());
  std::memcpy(static_cast<char*>(dst.raw()) + dst_off * es, static_cast<const char*>(src.raw()) + src_off * es,
              static_cast<size_t>(n) * es);
}

// [outer, len, inner] view of a shape around `axis`.
void split_at(const Shape& s, int axis, int64_t& outer, int64_t& inner) {
  outer = inner = 1;
  for (int d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
}

// Slice `i` of x along `axis`, without that axis.
Tensor take_slice(const Tensor& x, int axis, int64_t i) {
  Shape s = x.shape();
  int64_t outer, inner;
  split_at(s, axis, outer, inner);
  const int64_t len = s[axis];
  s.erase(s.begin() + axis);
  Tensor y = Tensor::uninitialized(x.dtype(), s);
  for (int64_t o = 0; o < outer; ++o) copy_elems(y, o * inner, x, (o * len + i) * inner, inner);
  return y;
}

// Slices (all of one shape) stacked along a new axis `axis`; slice k goes to position pos[k].
Tensor stack(const ir::Node& node, const std::vector<Tensor>& slices, int axis, bool reverse, size_t out_index) {
  const Shape& s0 = slices[0].shape();
  for (size_t k = 1; k < slices.size(); ++k)
    if (slices[k].shape() != s0 || slices[k].dtype() != slices[0].dtype())
      kfail(node, "output {}: iteration {} gives a {} {} slice, iteration 0 a {} {} one", out_index, k,
            dtype_name(slices[k].dtype()), shape_str(slices[k].shape()), dtype_name(slices[0].dtype()),
            shape_str(s0));
  const int64_t n = static_cast<int64_t>(slices.size());
  Shape s = s0;
  s.insert(s.begin() + axis, n);
  Tensor y = Tensor::uninitialized(slices[0].dtype(), s);
  int64_t outer, inner;
  split_at(s, axis, outer, inner);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t p = reverse ? n - 1 - k : k;
    for (int64_t o = 0; o < outer; ++o) copy_elems(y, (o * n + p) * inner, slices[k], o * inner, inner);
  }
  return y;
}

// A scan output of zero iterations: [0] + the body output's known dims (ONNX Runtime's Loop).
Tensor empty_scan_output(const ir::ValueInfo& v) {
  Shape s{0};
  if (v.shape)
    for (const auto& d : *v.shape) s.push_back(d.known() ? d.value : 0);
  return Tensor(v.dtype == DType::Undefined ? DType::Float : v.dtype, s);
}

class IfKernel : public Kernel {
 public:
  explicit IfKernel(const KernelInit& ki) : node_(ki.node) {
    const auto& outer = implicit_of(ki);
    then_ = std::make_unique<Body>(body_attr(node_, "then_branch"), "then_branch", node_, ki.opset, outer);
    else_ = std::make_unique<Body>(body_attr(node_, "else_branch"), "else_branch", node_, ki.opset, outer);
    for (const Body* b : {then_.get(), else_.get()}) {
      if (b->num_inputs() != 0) kfail(node_, "{} has {} inputs (a branch takes none)", b->attr(), b->num_inputs());
      if (b->num_outputs() != node_.outputs.size())
        kfail(node_, "then_branch has {} output(s) and else_branch {}; the node has {}", then_->num_outputs(),
              else_->num_outputs(), node_.outputs.size());
    }
    if (node_.inputs.size() != 1 || node_.input(0).empty()) kfail(node_, "expects one input (cond)");
    // Declared element types of the two branches' outputs must agree (ONNX Runtime refuses such a model at load);
    // otherwise the error would surface later in a consumer, without naming the If.
    const auto &tout = then_->graph().outputs, &eout = else_->graph().outputs;
    for (size_t k = 0; k < tout.size() && k < eout.size(); ++k)
      if (tout[k].dtype != DType::Undefined && eout[k].dtype != DType::Undefined && tout[k].dtype != eout[k].dtype)
        kfail(node_, "output {} is {} in then_branch ('{}') but {} in else_branch ('{}')", k,
              dtype_name(tout[k].dtype), tout[k].name, dtype_name(eout[k].dtype), eout[k].name);
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    if (!in[0]) kfail(node_, "input 'cond' is missing");
    const Body& b = scalar_bool(node_, *in[0], "input 'cond'") ? *then_ : *else_;
    std::vector<Tensor> r = b.run({}, outer_values(node_, in));
    for (size_t k = 0; k < out.size() && k < r.size(); ++k) out[k] = std::move(r[k]);
  }

 private:
  const ir::Node node_;  // a copy: the bodies refer to it
  std::unique_ptr<Body> then_, else_;
};

class LoopKernel : public Kernel {
 public:
  explicit LoopKernel(const KernelInit& ki) : node_(ki.node) {
    body_ = std::make_unique<Body>(body_attr(node_, "body"), "body", node_, ki.opset, implicit_of(ki));
    if (node_.inputs.size() < 2) kfail(node_, "expects inputs M and cond (empty names when omitted)");
    n_carried_ = node_.inputs.size() - 2;
    if (body_->num_inputs() != 2 + n_carried_)
      kfail(node_, "body 'body' has {} inputs, expected {} (iteration number, condition, {} loop-carried values)",
            body_->num_inputs(), 2 + n_carried_, n_carried_);
    if (body_->num_outputs() < 1 + n_carried_)
      kfail(node_, "body 'body' has {} outputs, expected at least {} (condition, {} loop-carried values)",
            body_->num_outputs(), 1 + n_carried_, n_carried_);
    n_scan_ = body_->num_outputs() - 1 - n_carried_;
    if (node_.outputs.size() != n_carried_ + n_scan_)
      kfail(node_, "has {} outputs, its body gives {} loop-carried values and {} scan outputs", node_.outputs.size(),
            n_carried_, n_scan_);
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    int64_t max_trip = INT64_MAX;
    if (in[0]) {
      if (in[0]->numel() != 1 || (in[0]->dtype() != DType::Int64 && in[0]->dtype() != DType::Int32))
        kfail(node_, "input 'M' must be one int64 value, got {} {}", dtype_name(in[0]->dtype()),
              shape_str(in[0]->shape()));
      max_trip = in[0]->to_int64s()[0];
    }
    bool cond = in[1] ? scalar_bool(node_, *in[1], "input 'cond'") : true;
    const std::vector<const Tensor*> outer = outer_values(node_, in);
    std::vector<Tensor> carried(n_carried_);
    for (size_t k = 0; k < n_carried_; ++k) {
      if (!in[2 + k]) kfail(node_, "loop-carried input {} is missing", k);
      carried[k] = *in[2 + k];
    }
    std::vector<std::vector<Tensor>> scans(n_scan_);
    Tensor cond_t = Tensor(DType::Bool, {});
    for (int64_t it = 0; it < max_trip && cond; ++it) {
      Tensor iter = Tensor::scalar_int64(it);
      cond_t.data<uint8_t>()[0] = 1;
      std::vector<const Tensor*> feeds{&iter, &cond_t};
      for (auto& c : carried) feeds.push_back(&c);
      std::vector<Tensor> r = body_->run(feeds, outer);
      cond = scalar_bool(node_, r[0], "the body's condition output");
      cond_t = Tensor(DType::Bool, {});
      for (size_t k = 0; k < n_carried_; ++k) carried[k] = std::move(r[1 + k]);
      for (size_t k = 0; k < n_scan_; ++k) scans[k].push_back(std::move(r[1 + n_carried_ + k]));
    }
    for (size_t k = 0; k < n_carried_; ++k) out[k] = std::move(carried[k]);
    for (size_t k = 0; k < n_scan_; ++k)
      out[n_carried_ + k] = scans[k].empty() ? empty_scan_output(body_->graph().outputs[1 + n_carried_ + k])
                                             : stack(node_, scans[k], 0, false, n_carried_ + k);
  }

 private:
  const ir::Node node_;  // a copy: the bodies refer to it
  std::unique_ptr<Body> body_;
  size_t n_carried_ = 0, n_scan_ = 0;
};

class ScanKernel : public Kernel {
 public:
  explicit ScanKernel(const KernelInit& ki) : node_(ki.node) {
    body_ = std::make_unique<Body>(body_attr(node_, "body"), "body", node_, ki.opset, implicit_of(ki));
    const int64_t m = node_.attr_int("num_scan_inputs", -1);
    if (m < 1 || static_cast<size_t>(m) > node_.inputs.size())
      kfail(node_, "attribute 'num_scan_inputs' must be in [1, {}] (the number of inputs), got {}",
            node_.inputs.size(), m);
    n_scan_in_ = static_cast<size_t>(m);
    n_state_ = node_.inputs.size() - n_scan_in_;
    if (node_.outputs.size() < n_state_)
      kfail(node_, "has {} outputs, fewer than its {} state variables", node_.outputs.size(), n_state_);
    n_scan_out_ = node_.outputs.size() - n_state_;
    if (body_->num_inputs() != n_state_ + n_scan_in_)
      kfail(node_, "body 'body' has {} inputs, expected {} ({} state variables + {} scan inputs)", body_->num_inputs(),
            n_state_ + n_scan_in_, n_state_, n_scan_in_);
    if (body_->num_outputs() != n_state_ + n_scan_out_)
      kfail(node_, "body 'body' has {} outputs, the node {} ({} state variables + {} scan outputs)",
            body_->num_outputs(), node_.outputs.size(), n_state_, n_scan_out_);
    auto list = [&](const char* name, size_t n) {
      std::vector<int64_t> v = node_.attr_ints(name, std::vector<int64_t>(n, 0));
      if (v.size() != n) kfail(node_, "attribute '{}' has {} values, expected {}", name, v.size(), n);
      return v;
    };
    in_dirs_ = list("scan_input_directions", n_scan_in_);
    out_dirs_ = list("scan_output_directions", n_scan_out_);
    in_axes_ = list("scan_input_axes", n_scan_in_);
    out_axes_ = list("scan_output_axes", n_scan_out_);
    for (const auto* d : {&in_dirs_, &out_dirs_})
      for (int64_t v : *d)
        if (v != 0 && v != 1)
          kfail(node_, "attribute '{}' values must be 0 (forward) or 1 (reverse), got {}",
                d == &in_dirs_ ? "scan_input_directions" : "scan_output_directions", v);
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const std::vector<const Tensor*> outer = outer_values(node_, in);
    std::vector<Tensor> state(n_state_);
    for (size_t k = 0; k < n_state_; ++k) {
      if (!in[k]) kfail(node_, "state input {} is missing", k);
      state[k] = *in[k];
    }
    int64_t len = -1;
    std::vector<int> axes(n_scan_in_);
    for (size_t j = 0; j < n_scan_in_; ++j) {
      const Tensor* x = in[n_state_ + j];
      if (!x) kfail(node_, "scan input {} is missing", j);
      const int64_t a = in_axes_[j] < 0 ? in_axes_[j] + x->rank() : in_axes_[j];
      if (a < 0 || a >= x->rank())
        kfail(node_, "scan_input_axes[{}] = {} is out of range for scan input {} of shape {}", j, in_axes_[j], j,
              shape_str(x->shape()));
      axes[j] = static_cast<int>(a);
      if (len >= 0 && x->dim(axes[j]) != len)
        kfail(node_, "scan input {} has {} slices along axis {}, scan input 0 has {}", j, x->dim(axes[j]), a, len);
      len = x->dim(axes[j]);
    }
    std::vector<std::vector<Tensor>> scans(n_scan_out_);
    for (int64_t t = 0; t < len; ++t) {
      std::vector<Tensor> slices(n_scan_in_);
      std::vector<const Tensor*> feeds;
      for (auto& s : state) feeds.push_back(&s);
      for (size_t j = 0; j < n_scan_in_; ++j) {
        slices[j] = take_slice(*in[n_state_ + j], axes[j], in_dirs_[j] ? len - 1 - t : t);
        feeds.push_back(&slices[j]);
      }
      std::vector<Tensor> r = body_->run(feeds, outer);
      for (size_t k = 0; k < n_state_; ++k) state[k] = std::move(r[k]);
      for (size_t k = 0; k < n_scan_out_; ++k) scans[k].push_back(std::move(r[n_state_ + k]));
    }
    for (size_t k = 0; k < n_state_; ++k) out[k] = std::move(state[k]);
    for (size_t k = 0; k < n_scan_out_; ++k) {
      if (scans[k].empty()) {
        out[n_state_ + k] = empty_scan_output(body_->graph().outputs[n_state_ + k]);
        continue;
      }
      const int rank = scans[k][0].rank() + 1;
      const int64_t a = out_axes_[k] < 0 ? out_axes_[k] + rank : out_axes_[k];
      if (a < 0 || a >= rank)
        kfail(node_, "scan_output_axes[{}] = {} is out of range for an output of rank {}", k, out_axes_[k], rank);
      out[n_state_ + k] = stack(node_, scans[k], static_cast<int>(a), out_dirs_[k] != 0, n_state_ + k);
    }
  }

 private:
  const ir::Node node_;  // a copy: the bodies refer to it
  std::unique_ptr<Body> body_;
  size_t n_state_ = 0, n_scan_in_ = 0, n_scan_out_ = 0;
  std::vector<int64_t> in_dirs_, out_dirs_, in_axes_, out_axes_;
};

// Scan-8: a batch axis 0 in front of everything (states [B, ...], scan inputs [B, L, ...]), the sequence axis 1,
// `directions` per scan input, an optional sequence_lens input [B] (int64); each batch entry is scanned on its own
// and scan outputs past its length are zeros.
class Scan8Kernel : public Kernel {
 public:
  explicit Scan8Kernel(const KernelInit& ki) : node_(ki.node) {
    body_ = std::make_unique<Body>(body_attr(node_, "body"), "body", node_, ki.opset, implicit_of(ki));
    const int64_t m = node_.attr_int("num_scan_inputs", -1);
    if (node_.inputs.empty() || m < 1 || static_cast<size_t>(m) + 1 > node_.inputs.size())
      kfail(node_, "attribute 'num_scan_inputs' must be in [1, {}], got {}", node_.inputs.size() - 1, m);
    n_scan_in_ = static_cast<size_t>(m);
    n_state_ = node_.inputs.size() - 1 - n_scan_in_;
    if (node_.outputs.size() < n_state_)
      kfail(node_, "has {} outputs, fewer than its {} state variables", node_.outputs.size(), n_state_);
    n_scan_out_ = node_.outputs.size() - n_state_;
    if (body_->num_inputs() != n_state_ + n_scan_in_ || body_->num_outputs() != n_state_ + n_scan_out_)
      kfail(node_, "body 'body' has {} inputs and {} outputs, expected {} and {}", body_->num_inputs(),
            body_->num_outputs(), n_state_ + n_scan_in_, n_state_ + n_scan_out_);
    dirs_ = node_.attr_ints("directions", std::vector<int64_t>(n_scan_in_, 0));
    if (dirs_.size() != n_scan_in_) kfail(node_, "attribute 'directions' has {} values, expected {}", dirs_.size(), n_scan_in_);
    for (int64_t d : dirs_)
      if (d != 0 && d != 1) kfail(node_, "attribute 'directions' values must be 0 or 1, got {}", d);
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out) override {
    const std::vector<const Tensor*> outer = outer_values(node_, in);
    for (size_t k = 1; k < 1 + n_state_ + n_scan_in_; ++k)
      if (!in[k] || in[k]->rank() < (k > n_state_ ? 2 : 1))
        kfail(node_, "input {} is missing or lacks the batch{} axis", k, k > n_state_ ? " and sequence" : "");
    const int64_t batch = in[1]->dim(0), len = in[1 + n_state_]->dim(1);
    for (size_t k = 1; k < 1 + n_state_ + n_scan_in_; ++k)
      if (in[k]->dim(0) != batch || (k > n_state_ && in[k]->dim(1) != len))
        kfail(node_, "input {} has shape {}: batch {} and sequence length {} expected", k, shape_str(in[k]->shape()),
              batch, len);
    std::vector<int64_t> lens(static_cast<size_t>(batch), len);
    if (in[0]) {
      if (in[0]->numel() != batch) kfail(node_, "sequence_lens has {} values for a batch of {}", in[0]->numel(), batch);
      lens = in[0]->to_int64s();
      for (int64_t l : lens)
        if (l < 0 || l > len) kfail(node_, "sequence_lens value {} is outside [0, {}]", l, len);
    }
    std::vector<std::vector<Tensor>> states(n_state_), scans(n_scan_out_);
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<Tensor> state(n_state_), xs(n_scan_in_);
      for (size_t k = 0; k < n_state_; ++k) state[k] = take_slice(*in[1 + k], 0, b);
      for (size_t j = 0; j < n_scan_in_; ++j) xs[j] = take_slice(*in[1 + n_state_ + j], 0, b);
      std::vector<std::vector<Tensor>> steps(n_scan_out_);
      for (int64_t t = 0; t < lens[b]; ++t) {
        std::vector<Tensor> slices(n_scan_in_);
        std::vector<const Tensor*> feeds;
        for (auto& st : state) feeds.push_back(&st);
        for (size_t j = 0; j < n_scan_in_; ++j) {
          slices[j] = take_slice(xs[j], 0, dirs_[j] ? lens[b] - 1 - t : t);
          feeds.push_back(&slices[j]);
        }
        std::vector<Tensor> r = body_->run(feeds, outer);
        for (size_t k = 0; k < n_state_; ++k) state[k] = std::move(r[k]);
        for (size_t k = 0; k < n_scan_out_; ++k) steps[k].push_back(std::move(r[n_state_ + k]));
      }
      for (size_t k = 0; k < n_scan_out_; ++k) {
        if (steps[k].empty()) kfail(node_, "batch entry {} has sequence length 0 (no output shape to pad to)", b);
        while (static_cast<int64_t>(steps[k].size()) < len)  // past the entry's length: zeros
          steps[k].push_back(Tensor(steps[k][0].dtype(), steps[k][0].shape()));
        scans[k].push_back(stack(node_, steps[k], 0, false, n_state_ + k));
      }
      for (size_t k = 0; k < n_state_; ++k) states[k].push_back(std::move(state[k]));
    }
    for (size_t k = 0; k < n_state_; ++k) out[k] = stack(node_, states[k], 0, false, k);
    for (size_t k = 0; k < n_scan_out_; ++k) out[n_state_ + k] = stack(node_, scans[k], 0, false, n_state_ + k);
  }

 private:
  const ir::Node node_;  // a copy: the body refers to it
  std::unique_ptr<Body> body_;
  size_t n_state_ = 0, n_scan_in_ = 0, n_scan_out_ = 0;
  std::vector<int64_t> dirs_;
};

std::unique_ptr<Kernel> make_if(const KernelInit& ki) { return std::make_unique<IfKernel>(ki); }
std::unique_ptr<Kernel> make_loop(const KernelInit& ki) { return std::make_unique<LoopKernel>(ki); }
std::unique_ptr<Kernel> make_scan(const KernelInit& ki) { return std::make_unique<ScanKernel>(ki); }
std::unique_ptr<Kernel> make_scan8(const KernelInit& ki) { return std::make_unique<Scan8Kernel>(ki); }

}  // namespace

OQ_REGISTER_KERNEL(If, 1, kMaxOpset, make_if);
OQ_REGISTER_KERNEL(Loop, 1, kMaxOpset, make_loop);
OQ_REGISTER_KERNEL(Scan, 8, 8, make_scan8);
OQ_REGISTER_KERNEL(Scan, 9, kMaxOpset, make_scan);

}  // namespace oq::exec
