// Shape kernels: Reshape, Flatten, Squeeze, Unsqueeze, Shape, Size, Identity, Dropout (inference),
// Constant, ConstantOfShape, Range. Reshape-like ops return a tensor sharing the input's storage.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "exec/kernels/strided.h"

namespace oq::exec {
namespace {

// ---------------------------------------------------------------------------------------------- Reshape
std::unique_ptr<Kernel> make_reshape(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  bool allowzero = ki.opset >= 14 && node.attr_int("allowzero", 0) != 0;
  return fn_kernel([node, allowzero](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    auto req = int_values(node, input_at(node, in, 1), "shape");
    Shape s(req.size());
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < req.size(); ++i) {
      int64_t v = req[i];
      if (v == 0 && !allowzero) {
        if (static_cast<int>(i) >= x.rank()) kfail(node, "shape entry {} is 0 but the input has rank {}", i, x.rank());
        v = x.shape()[i];
      }
      if (v == -1) {
        if (infer >= 0) kfail(node, "shape {} has more than one -1", shape_str(req));
        infer = static_cast<int>(i);
        continue;
      }
      if (v < 0) kfail(node, "invalid shape entry {}", v);
      if (v != 0 && known > std::numeric_limits<int64_t>::max() / v)
        kfail(node, "shape {} has more elements than fit in 64 bits", shape_str(req));
      s[i] = v;
      known *= v;
    }
    if (infer >= 0) {
      if (known == 0 || x.numel() % known != 0)
        kfail(node, "cannot reshape {} to {}", shape_str(x.shape()), shape_str(req));
      s[infer] = x.numel() / known;
    }
    if (shape_numel(s) != x.numel()) kfail(node, "cannot reshape {} to {}", shape_str(x.shape()), shape_str(req));
    out[0] = x.reshaped(s);
  });
}

// ---------------------------------------------------------------------------------------------- Flatten
std::unique_ptr<Kernel> make_flatten(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  int64_t axis = node.attr_int("axis", 1);
  return fn_kernel([node, axis](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    int64_t a = axis < 0 ? axis + x.rank() : axis;
    if (a < 0 || a > x.rank()) kfail(node, "axis {} is out of range for rank {}", axis, x.rank());
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < x.rank(); ++k) (k < a ? outer : inner) *= x.shape()[k];
    out[0] = x.reshaped({outer, inner});
  });
}

// ------------------------------------------------------------------------------------- Squeeze / Unsqueeze
std::unique_ptr<Kernel> make_squeeze(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  bool from_input = ki.opset >= 13;
  std::vector<int64_t> attr_axes = from_input ? std::vector<int64_t>{} : node.attr_ints("axes");
  return fn_kernel([node, from_input, attr_axes](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    std::vector<int64_t> axes = attr_axes;
    if (from_input)
      if (const Tensor* t = optional_input(in, 1)) axes = int_values(node, *t, "axes");
    std::vector<bool> drop(static_cast<size_t>(x.rank()), false);
    if (axes.empty()) {
      for (int k = 0; k < x.rank(); ++k) drop[k] = x.shape()[k] == 1;
    } else {
      for (int64_t a : axes) {
        int k = normalize_axis(node, a, x.rank());
        if (x.shape()[k] != 1) kfail(node, "cannot squeeze axis {} of size {}", k, x.shape()[k]);
        drop[k] = true;
      }
    }
    Shape s;
    for (int k = 0; k < x.rank(); ++k)
      if (!drop[k]) s.push_back(x.shape()[k]);
    out[0] = x.reshaped(s);
  });
}

std::unique_ptr<Kernel> make_unsqueeze(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  bool from_input = ki.opset >= 13;
  std::vector<int64_t> attr_axes = from_input ? std::vector<int64_t>{} : node.attr_ints("axes");
  if (!from_input && attr_axes.empty()) kfail(node, "attribute 'axes' is required");
  return fn_kernel([node, from_input, attr_axes](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    std::vector<int64_t> axes = from_input ? int_values(node, input_at(node, in, 1), "axes") : attr_axes;
    const int r = x.rank() + static_cast<int>(axes.size());
    std::vector<bool> ins(static_cast<size_t>(r), false);
    for (int64_t a : axes) {
      int k = normalize_axis(node, a, r);
      if (ins[k]) kfail(node, "axis {} appears twice", k);
      ins[k] = true;
    }
    Shape s;
    int j = 0;
    for (int k = 0; k < r; ++k) s.push_back(ins[k] ? 1 : x.shape()[j++]);
    out[0] = x.reshaped(s);
  });
}

// -------------------------------------------------------------------------------------------- Shape, Size
std::unique_ptr<Kernel> make_shape(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  int64_t start = ki.opset >= 15 ? node.attr_int("start", 0) : 0;
  bool has_end = ki.opset >= 15 && node.has_attr("end");
  int64_t end = has_end ? node.attr_int("end", 0) : 0;
  return fn_kernel([node, start, has_end, end](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    const int64_t r = x.rank();
    int64_t b = start < 0 ? start + r : start, e = has_end ? (end < 0 ? end + r : end) : r;
    b = std::clamp<int64_t>(b, 0, r);
    e = std::clamp<int64_t>(e, 0, r);
    int64_t n = std::max<int64_t>(0, e - b);
    Tensor o(DType::Int64, {n});
    for (int64_t i = 0; i < n; ++i) o.data<int64_t>()[i] = x.shape()[b + i];
    out[0] = std::move(o);
  });
}

std::unique_ptr<Kernel> make_size(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  return fn_kernel([node](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    out[0] = Tensor::scalar_int64(input_at(node, in, 0).numel());
  });
}

// ---------------------------------------------------------------------------------------- Identity, Dropout
std::unique_ptr<Kernel> make_identity(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  return fn_kernel([node](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    out[0] = input_at(node, in, 0);
  });
}

std::unique_ptr<Kernel> make_dropout(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  const int opset = ki.opset;
  float ratio_attr = opset < 12 ? node.attr_float("ratio", 0.5f) : 0.5f;
  (void)ratio_attr;  // inference: the ratio never changes the output
  return fn_kernel([node, opset](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& x = input_at(node, in, 0);
    if (opset >= 12) {
      bool training = false;
      if (const Tensor* t = optional_input(in, 2)) training = t->to_int64s().at(0) != 0;
      double ratio = 0.5;
      if (const Tensor* t = optional_input(in, 1)) ratio = t->to_doubles().at(0);
      if (training && ratio != 0.0)
        kfail(node, "training_mode=true with ratio {} (random dropout) is not supported by the executor", ratio);
    }
    out[0] = x;
    if (out.size() > 1 && !node.outputs[1].empty()) {
      if (opset < 10) {
        out[1] = scalar_of(x.dtype(), 1.0);
        Tensor m(x.dtype(), x.shape());
        size_t esz = elem_size(node, x);
        for (int64_t i = 0; i < m.numel(); ++i)
          std::memcpy(static_cast<uint8_t*>(m.raw()) + i * esz, out[1].raw(), esz);
        out[1] = std::move(m);
      } else {
        Tensor m(DType::Bool, x.shape());
        std::memset(m.raw(), 1, m.nbytes());
        out[1] = std::move(m);
      }
    }
  });
}

// -------------------------------------------------------------------------------------- Constant(OfShape)
std::unique_ptr<Kernel> make_constant(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  Tensor value;
  int found = 0;
  for (const ir::Attribute& a : node.attrs) {
    if (a.name == "value") {
      value = a.t;
    } else if (a.name == "value_float") {
      value = Tensor::scalar_float(a.type == ir::AttrType::Int ? static_cast<float>(a.i) : a.f);
    } else if (a.name == "value_floats") {
      value = Tensor::from_vector(DType::Float, {static_cast<int64_t>(a.floats.size())}, a.floats);
    } else if (a.name == "value_int") {
      value = Tensor::scalar_int64(a.i);
    } else if (a.name == "value_ints") {
      value = Tensor::from_vector(DType::Int64, {static_cast<int64_t>(a.ints.size())}, a.ints);
    } else if (a.name == "value_string") {
      value = Tensor(DType::String, {});
      value.strings()[0] = a.s;
    } else if (a.name == "value_strings") {
      value = Tensor(DType::String, {static_cast<int64_t>(a.strings.size())});
      value.strings() = a.strings;
    } else if (a.name == "sparse_value") {
      kfail(node, "sparse_value is not supported");
    } else {
      continue;
    }
    ++found;
  }
  if (found != 1 || value.empty()) kfail(node, "exactly one value attribute is required (found {})", found);
  return fn_kernel([value](const std::vector<const Tensor*>&, std::vector<Tensor>& out) { out[0] = value; });
}

std::unique_ptr<Kernel> make_constant_of_shape(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  Tensor value = Tensor::scalar_float(0.0f);
  if (const Tensor* v = node.attr_tensor("value")) {
    if (v->numel() != 1) kfail(node, "attribute 'value' must hold one element, got {}", v->numel());
    value = *v;
  }
  elem_size(node, value);
  return fn_kernel([node, value](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    auto dims = int_values(node, input_at(node, in, 0), "shape");
    for (int64_t d : dims)
      if (d < 0) kfail(node, "negative dimension {} in shape", d);
    Tensor o(value.dtype(), Shape(dims.begin(), dims.end()));
    size_t esz = dtype_size(value.dtype());
    bool zero = true;
    for (size_t b = 0; b < esz; ++b) zero = zero && static_cast<const uint8_t*>(value.raw())[b] == 0;
    if (!zero)
      for (int64_t i = 0; i < o.numel(); ++i)
        std::memcpy(static_cast<uint8_t*>(o.raw()) + i * esz, value.raw(), esz);
    out[0] = std::move(o);
  });
}

// ------------------------------------------------------------------------------------------------- Range
std::unique_ptr<Kernel> make_range(const KernelInit& ki) {
  const ir::Node& node = ki.node;
  // Opset 27's `stash_type` (the accumulation type of float16 / bfloat16 ranges; 1 = float, the default): the
  // kernel takes neither type, and a float16 model's float32 execution copy accumulates in float, so only 1 runs.
  if (const int64_t stash = ki.opset >= 27 ? node.attr_int("stash_type", 1) : 1; stash != 1)
    kfail(node, "attribute stash_type={} is not supported (only 1 = float)", stash);
  return fn_kernel([node](const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
    const Tensor& s = input_at(node, in, 0);
    const Tensor& l = input_at(node, in, 1);
    const Tensor& d = input_at(node, in, 2);
    // Scalars, or at run time one-element [1] vectors as ONNX Runtime's kernel takes them ("scalar like": ONNX's
    // own AffineGrid function body feeds it [1] sizes); [1, 1] or [2] are refused. Constant [1] inputs are refused
    // on load by constant folding (fold_constants.cc), as ONNX's shape inference refuses them.
    const Tensor* args[] = {&s, &l, &d};
    for (size_t i = 0; i < 3; ++i)
      if (args[i]->rank() > 1 || args[i]->numel() != 1)
        kfail(node, "input {} '{}' has shape {}: start, limit and delta must be scalars",
              i == 0 ? "start" : i == 1 ? "limit" : "delta", node.inputs.at(i), shape_str(args[i]->shape()));
    if (l.dtype() != s.dtype() || d.dtype() != s.dtype()) kfail(node, "start, limit and delta types differ");
    auto fill = [&](auto tag) {
      using T = decltype(tag);
      T start = *s.data<T>(), limit = *l.data<T>(), delta = *d.data<T>();
      if (delta == T(0)) kfail(node, "delta must not be zero");
      double n_d = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
      // Checked before the conversion: an infinite or huge count does not fit in int64 (undefined behaviour).
      if (n_d >= 0x1p62)
        kfail(node, "start {}, limit {} and delta {} give {} elements, too many", start, limit, delta, n_d);
      int64_t n = n_d > 0 ? static_cast<int64_t>(n_d) : 0;
      Tensor o(s.dtype(), {n});
      T v = start;  // accumulate like the ONNX function body and ONNX Runtime
      for (int64_t i = 0; i < n; ++i, v = static_cast<T>(v + delta)) o.data<T>()[i] = v;
      out[0] = std::move(o);
    };
    switch (s.dtype()) {
      case DType::Float: fill(float{}); break;
      case DType::Double: fill(double{}); break;
      case DType::Int16: fill(int16_t{}); break;
      case DType::Int32: fill(int32_t{}); break;
      case DType::Int64: fill(int64_t{}); break;
      default: kfail(node, "unsupported type {}", dtype_name(s.dtype()));
    }
  });
}

}  // namespace

OQ_REGISTER_KERNEL(Reshape, kMinOpset, kMaxOpset, make_reshape);
OQ_REGISTER_KERNEL(Flatten, kMinOpset, kMaxOpset, make_flatten);
OQ_REGISTER_KERNEL(Squeeze, kMinOpset, kMaxOpset, make_squeeze);
OQ_REGISTER_KERNEL(Unsqueeze, kMinOpset, kMaxOpset, make_unsqueeze);
OQ_REGISTER_KERNEL(Shape, kMinOpset, kMaxOpset, make_shape);
OQ_REGISTER_KERNEL(Size, kMinOpset, kMaxOpset, make_size);
OQ_REGISTER_KERNEL(Identity, kMinOpset, kMaxOpset, make_identity);
OQ_REGISTER_KERNEL(Dropout, kMinOpset, kMaxOpset, make_dropout);
OQ_REGISTER_KERNEL(Constant, kMinOpset, kMaxOpset, make_constant);
OQ_REGISTER_KERNEL(ConstantOfShape, 9, kMaxOpset, make_constant_of_shape);
OQ_REGISTER_KERNEL(Range, 11, kMaxOpset, make_range);

}  // namespace oq::exec
