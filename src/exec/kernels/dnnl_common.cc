#include "exec/kernels/dnnl_common.h"

#include "core/parallel.h"

namespace oq::exec::dnnl_util {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

dims dense_strides(const dims& shape) {
  dims st(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * std::max<int64_t>(shape[i + 1], 1);
  return st;
}

dnnl::memory::desc plain_f32(const dims& shape) {
  return dnnl::memory::desc(shape, dnnl::memory::data_type::f32, dense_strides(shape));
}

const dnnl::memory& ReorderedWeights::get(const Tensor& w, const dnnl::memory::desc& plain,
                                          const dnnl::memory::desc& want) {
  if (mem_ && src_.raw() == w.raw() && src_.shape() == w.shape() && mem_.get_desc() == want) return mem_;
  dnnl::memory src(plain, engine(), const_cast<void*>(w.raw()));
  if (plain == want) {
    mem_ = src;  // used in place: src_ keeps the storage alive
  } else {
    mem_ = dnnl::memory(want, engine());
    dnnl::reorder(src, mem_).execute(stream(), src, mem_);
    stream().wait();
  }
  src_ = w;
  return mem_;
}

int threads_key() { return num_threads(); }

void rethrow_dnnl(const char* node_name, const char* op, const dnnl::error& e) {
  fail(ErrorKind::Runtime, "node '{}' ({}): oneDNN failed: {} (status {})", node_name, op, e.what(),
       static_cast<int>(e.status));
}

XWB conv_inputs(const ir::Node& node, const std::vector<const Tensor*>& in) {
  if (in.size() < 2 || !in[0] || !in[1])
    fail(ErrorKind::Model, "node '{}' ({}): needs inputs X and W", node.name, node.op_type);
  return XWB{*in[0], *in[1], in.size() > 2 ? in[2] : nullptr};
}

Shape primitive_key(const Tensor& x, const Tensor& w, const Tensor* b) {
  Shape key = x.shape();
  key.insert(key.end(), w.shape().begin(), w.shape().end());
  key.push_back(b ? 1 : 0);
  key.push_back(threads_key());
  return key;
}

dnnl::primitive_attr user_scratchpad(dnnl::primitive_attr attr) {
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

namespace {
// Memory of `md` backed by a buffer allocated for this call; `holder` keeps the buffer alive.
dnnl::memory temporary(const dnnl::memory::desc& md, Tensor& holder) {
  holder = Tensor::uninitialized(DType::UInt8, {static_cast<int64_t>(md.get_size())});
  return dnnl::memory(md, engine(), holder.raw());
}
}  // namespace

void Prim::execute(std::unordered_map<int, dnnl::memory> args) const {
  Tensor holder;
  if (scratch.get_size() > 0) args.emplace(DNNL_ARG_SCRATCHPAD, temporary(scratch, holder));
  prim.execute(stream(), args);
  stream().wait();
}

void Prim::execute(const dnnl::memory& src, const dnnl::memory& dst) const {
  execute({{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}});
}

void execute_in_layouts(const Prim& prim, const Prim& src_reorder, const dnnl::memory::desc& src_md,
                        const Prim& dst_reorder, const dnnl::memory::desc& dst_md, const dnnl::memory& src_user,
                        const dnnl::memory& dst_user, const dnnl::memory& wei, const dnnl::memory* bias) {
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_WEIGHTS, wei}};
  if (bias) args.emplace(DNNL_ARG_BIAS, *bias);
  execute_in_layouts(prim, src_reorder, src_md, dst_reorder, dst_md, src_user, dst_user, std::move(args));
}

void execute_in_layouts(const Prim& prim, const Prim& src_reorder, const dnnl::memory::desc& src_md,
                        const Prim& dst_reorder, const dnnl::memory::desc& dst_md, const dnnl::memory& src_user,
                        const dnnl::memory& dst_user, std::unordered_map<int, dnnl::memory> args) {
  Tensor src_buf, dst_buf;
  dnnl::memory src = src_user, dst = dst_user;
  if (src_reorder) {
    src = temporary(src_md, src_buf);
    src_reorder.execute(src_user, src);
  }
  if (dst_reorder) dst = temporary(dst_md, dst_buf);
  args[DNNL_ARG_SRC] = src;
  args[DNNL_ARG_DST] = dst;
  prim.execute(std::move(args));
  if (dst_reorder) dst_reorder.execute(dst, dst_user);
}

ImplKind impl_kind(const std::string& impl) {
  const std::string name = impl.rfind("x64:", 0) == 0 ? impl.substr(4) : impl;
  if (name.rfind("ref", 0) == 0) return ImplKind::Reference;
  if (name.rfind("gemm", 0) == 0) return ImplKind::Gemm;
  return ImplKind::Jit;
}

Prim make_reorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  dnnl::reorder::primitive_desc pd(engine(), from, engine(), to, user_scratchpad());
  return Prim(dnnl::reorder(pd), pd);
}

}  // namespace oq::exec::dnnl_util
