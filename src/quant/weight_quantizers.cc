#include "quant/weight_quantizers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>

#include "calib/binning.h"
#include "core/log.h"
#include "core/parallel.h"
#include "exec/session.h"
#include "quant/graph_util.h"
#include "quant/qparams.h"

namespace oq::quant {

namespace {

struct ChannelLayout {
  int64_t outer = 1, ch = 1, inner = 1;
};

ChannelLayout layout(const Tensor& w, int axis) {
  ChannelLayout l;
  if (axis < 0) {
    l.inner = w.numel();
    return l;
  }
  l.ch = w.dim(axis);
  for (int i = 0; i < axis; ++i) l.outer *= w.dim(i);
  for (int i = axis + 1; i < w.rank(); ++i) l.inner *= w.dim(i);
  return l;
}

// In-place lower Cholesky factor of a symmetric n×n matrix (row-major); false if not positive definite.
bool cholesky_lower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int64_t p = 0; p < j; ++p) d -= a[j * n + p] * a[j * n + p];
    if (!(d > 0.0)) return false;
    d = std::sqrt(d);
    a[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (int64_t p = 0; p < j; ++p) s -= a[i * n + p] * a[j * n + p];
      a[i * n + j] = s / d;
    }
    for (int64_t i = 0; i < j; ++i) a[i * n + j] = 0.0;
  }
  return true;
}

// Upper factor U of H⁻¹ = UᵀU (what GPTQ iterates on), from H (damped). False if H is not positive definite.
bool inverse_upper_factor(std::vector<double> h, int64_t n, std::vector<double>& u) {
  if (!cholesky_lower(h, n)) return false;
  // Linv: inverse of the lower factor L (forward substitution, column by column).
  std::vector<double> li(static_cast<size_t>(n * n), 0.0);
  for (int64_t c = 0; c < n; ++c) {
    li[c * n + c] = 1.0 / h[c * n + c];
    for (int64_t i = c + 1; i < n; ++i) {
      double s = 0.0;
      for (int64_t p = c; p < i; ++p) s += h[i * n + p] * li[p * n + c];
      li[i * n + c] = -s / h[i * n + i];
    }
  }
  // H⁻¹ = Linvᵀ · Linv.
  std::vector<double> hi(static_cast<size_t>(n * n), 0.0);
  parallel_for(n, 8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      for (int64_t j = i; j < n; ++j) {
        double s = 0.0;
        for (int64_t p = j; p < n; ++p) s += li[p * n + i] * li[p * n + j];
        hi[i * n + j] = s;
        hi[j * n + i] = s;
      }
  });
  if (!cholesky_lower(hi, n)) return false;
  u.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) u[j * n + i] = hi[i * n + j];
  return true;
}

// (s[i] - zero point) * scale per element of w's layout along q.axis: the float values of integers s.
Tensor dequantize_ints(const Tensor& w, const int64_t* s, const exec::QuantParams& q) {
  Tensor out(DType::Float, w.shape());
  ChannelLayout l = layout(w, q.axis);
  float* d = out.data<float>();
  for (int64_t o = 0; o < l.outer; ++o)
    for (int64_t c = 0; c < l.ch; ++c) {
      size_t ci = q.scale.size() == 1 ? 0 : static_cast<size_t>(c);
      for (int64_t i = 0, base = (o * l.ch + c) * l.inner; i < l.inner; ++i)
        d[base + i] = static_cast<float>(s[base + i] - q.zero_point[ci]) * q.scale[ci];
    }
  return out;
}

// Dequantized Q(W) with the integers clipped to r; an undefined tensor when no integer leaves r (then the writer's
// own quantization of W gives the same integers).
Tensor clipped_values(const Tensor& w, const exec::QuantParams& q, QRange r) {
  if (w.dtype() != DType::Float) return Tensor();  // float16 models take no weight quantizer (job.cc)
  Tensor qi = quantize_tensor(w, q).cast(DType::Int64);
  int64_t* s = qi.data<int64_t>();
  bool clipped = false;
  for (int64_t i = 0; i < qi.numel(); ++i)
    if (s[i] < r.qmin || s[i] > r.qmax) {
      s[i] = std::clamp(s[i], r.qmin, r.qmax);
      clipped = true;
    }
  if (!clipped) return Tensor();
  return dequantize_ints(w, s, q);
}

Tensor clipped_fake_quant(const Tensor& w, const exec::QuantParams& q, QRange r) {
  Tensor c = clipped_values(w, q, r);
  return c.dtype() != DType::Undefined ? c : weight_fake_quant(w, q);
}

}  // namespace

Tensor weight_fake_quant(const Tensor& w, const exec::QuantParams& q) {
  Tensor qi = quantize_tensor(w, q).cast(DType::Int64);
  return dequantize_ints(w, qi.data<int64_t>(), q);
}

double quant_error(const Tensor& w, const exec::QuantParams& q) {
  Tensor f = weight_fake_quant(w, q);
  double e = 0.0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    double d = static_cast<double>(w.data<float>()[i]) - f.data<float>()[i];
    e += d * d;
  }
  return e;
}

exec::QuantParams mse_params(const Tensor& w, const WeightProposal& proposal, const WeightQuantizerOptions& o) {
  exec::QuantParams best = proposal.params;
  const bool symmetric = proposal.symmetric;
  std::vector<double> mins, maxs;
  channel_minmax(w, best.axis, mins, maxs);
  ChannelLayout l = layout(w, best.axis);
  // Candidates are clipped to the range their scale is computed for (±127 for symmetric Int8, as min/max and ORT;
  // 4-bit types keep their full range), not to the type's full range.
  QRange qr = qrange(best.qtype, symmetric, proposal.reduce_range);
  const float* d = w.data<float>();
  parallel_for(l.ch, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      double best_err = std::numeric_limits<double>::infinity();
      for (int step = 0; step <= o.grid; ++step) {
        double r = 1.0 - (1.0 - o.min_ratio) * step / std::max(o.grid, 1);
        ScaleZp sz = compute_scale_zp(mins[c] * r, maxs[c] * r, qr.qmin, qr.qmax, symmetric, proposal.min_real_range);
        double err = 0.0;
        for (int64_t ob = 0; ob < l.outer && err < best_err; ++ob)
          for (int64_t i = 0, base = (ob * l.ch + c) * l.inner; i < l.inner; ++i) {
            float x = d[base + i];
            int64_t qv = quantize_value(x, sz.scale, sz.zero_point, qr.qmin, qr.qmax);
            double e = static_cast<double>(x) - static_cast<float>(qv - sz.zero_point) * sz.scale;
            err += e * e;
          }
        if (err < best_err) {
          best_err = err;
          best.scale[c] = sz.scale;
          best.zero_point[c] = sz.zero_point;
        }
      }
    }
  });
  return best;
}

std::optional<LayerView> layer_view(const ir::Graph& g, const ir::Node& n) {
  if (!n.is_default_domain() || n.inputs.size() < 2) return std::nullopt;
  const ir::Initializer* wi = g.find_initializer(n.input(1));
  if (!wi || wi->tensor.dtype() != DType::Float || g.find_initializer(n.input(0))) return std::nullopt;
  const Tensor& w = wi->tensor;
  LayerView v;
  v.weight = wi->name;
  v.input = n.input(0);
  v.node = n.name;
  v.op_type = n.op_type;
  if (n.op_type == "Conv") {
    if (w.rank() != 3 && w.rank() != 4) return std::nullopt;
    std::string ap = n.attr_string("auto_pad", "NOTSET");
    if (ap != "NOTSET" && ap != "VALID") return std::nullopt;
    const int sp = static_cast<int>(w.rank()) - 2;
    auto strides = n.attr_ints("strides", std::vector<int64_t>(sp, 1));
    auto dil = n.attr_ints("dilations", std::vector<int64_t>(sp, 1));
    auto pads = n.attr_ints("pads", std::vector<int64_t>(2 * sp, 0));
    if (ap == "VALID") pads.assign(2 * sp, 0);
    v.groups = n.attr_int("group", 1);
    if (v.groups <= 0 || w.dim(0) % v.groups) return std::nullopt;
    v.rows = w.dim(0) / v.groups;
    v.k = w.numel() / w.dim(0);
    if (sp == 2) {
      v.kernel = {w.dim(2), w.dim(3)};
      v.strides = strides, v.dilations = dil, v.pads = pads;
    } else {
      v.kernel = {1, w.dim(2)};
      v.strides = {1, strides[0]}, v.dilations = {1, dil[0]}, v.pads = {0, pads[0], 0, pads[1]};
    }
    v.out_axis = 0;
    return v;
  }
  if (w.rank() != 2) return std::nullopt;
  if (n.op_type == "Gemm") {
    if (n.attr_int("transA", 0) != 0) return std::nullopt;
    bool tb = n.attr_int("transB", 0) != 0;
    v.rows = tb ? w.dim(0) : w.dim(1);
    v.k = tb ? w.dim(1) : w.dim(0);
    v.transposed = !tb;
    v.out_axis = tb ? 0 : 1;
    return v;
  }
  if (n.op_type == "MatMul") {
    v.rows = w.dim(1);
    v.k = w.dim(0);
    v.transposed = true;
    v.out_axis = 1;
    return v;
  }
  return std::nullopt;
}

void for_each_im2col(const LayerView& v, const Tensor& xin, const Im2colFn& f) {
  const int64_t k = v.k;
  Tensor x = xin.dtype() == DType::Float ? xin : xin.cast(DType::Float);
  const float* xd = x.data<float>();
  std::vector<float> col;
  if (v.op_type == "Conv") {
    if (x.rank() != 3 && x.rank() != 4) fail(ErrorKind::Runtime, "input of Conv '{}' has rank {}", v.node, x.rank());
    const int64_t N = x.dim(0), C = x.dim(1);
    const int64_t IH = x.rank() == 4 ? x.dim(2) : 1, IW = x.dim(x.rank() - 1);
    const int64_t KH = v.kernel[0], KW = v.kernel[1], Cg = C / v.groups;
    if (Cg * KH * KW != k) fail(ErrorKind::Runtime, "Conv '{}': input channels {} do not match its weight", v.node, C);
    const int64_t OH = (IH + v.pads[0] + v.pads[2] - v.dilations[0] * (KH - 1) - 1) / v.strides[0] + 1;
    const int64_t OW = (IW + v.pads[1] + v.pads[3] - v.dilations[1] * (KW - 1) - 1) / v.strides[1] + 1;
    const int64_t P = OH * OW;
    col.assign(static_cast<size_t>(k * P), 0.f);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t grp = 0; grp < v.groups; ++grp) {
        for (int64_t ci = 0; ci < Cg; ++ci)
          for (int64_t a = 0; a < KH; ++a)
            for (int64_t b = 0; b < KW; ++b) {
              float* dst = col.data() + ((ci * KH + a) * KW + b) * P;
              const float* src = xd + (n * C + grp * Cg + ci) * IH * IW;
              for (int64_t oh = 0; oh < OH; ++oh) {
                int64_t ih = oh * v.strides[0] - v.pads[0] + a * v.dilations[0];
                for (int64_t ow = 0; ow < OW; ++ow) {
                  int64_t iw = ow * v.strides[1] - v.pads[1] + b * v.dilations[1];
                  dst[oh * OW + ow] = (ih >= 0 && ih < IH && iw >= 0 && iw < IW) ? src[ih * IW + iw] : 0.f;
                }
              }
            }
        f(col, P, grp);
      }
    return;
  }
  if (x.rank() < 1 || x.dim(x.rank() - 1) != k)
    fail(ErrorKind::Runtime, "input of {} '{}' does not end in {} columns", v.op_type, v.node, k);
  const int64_t P = x.numel() / k;
  col.resize(static_cast<size_t>(k * P));
  for (int64_t p = 0; p < P; ++p)
    for (int64_t j = 0; j < k; ++j) col[j * P + p] = xd[p * k + j];
  f(col, P, 0);
}

void accumulate_hessian(LayerHessian& h, const Tensor& x) { accumulate_hessian(h, h.view, x); }

void accumulate_hessian(LayerHessian& h, const LayerView& reader, const Tensor& x) {
  const int64_t k = h.view.k;
  if (h.h.empty()) h.h.assign(static_cast<size_t>(h.view.groups * k * k), 0.0);
  if (h.group_rows.empty()) h.group_rows.assign(static_cast<size_t>(h.view.groups), 0);
  std::vector<float> clean;
  // Columns of one group, transposed: col[j][p] for input column j, im2col row p.
  for_each_im2col(reader, x, [&](const std::vector<float>& col_in, int64_t p, int64_t grp) {
    // A row with a non-finite entry is left out: zeroed, it adds nothing to XᵀX.
    const std::vector<float>* colp = &col_in;
    int64_t bad = 0;
    if (calib::finite_min_max(std::span<const float>(col_in.data(), col_in.size())).non_finite) {
      clean = col_in;
      std::vector<char> row_bad(static_cast<size_t>(p), 0);
      for (int64_t j = 0; j < k; ++j)
        for (int64_t i = 0; i < p; ++i) row_bad[i] |= !std::isfinite(clean[j * p + i]);
      for (int64_t j = 0; j < k; ++j)
        for (int64_t i = 0; i < p; ++i)
          if (row_bad[i]) clean[j * p + i] = 0.f;
      bad = std::count(row_bad.begin(), row_bad.end(), 1);
      colp = &clean;
    }
    const std::vector<float>& col = *colp;
    double* H = h.h.data() + grp * k * k;
    parallel_for(k, 4, [&](int64_t b, int64_t e) {
      for (int64_t a = b; a < e; ++a) {
        const float* ca = col.data() + a * p;
        for (int64_t c = a; c < k; ++c) {
          const float* cc = col.data() + c * p;
          double s = 0.0;
          for (int64_t i = 0; i < p; ++i) s += static_cast<double>(ca[i]) * cc[i];
          H[a * k + c] += 2.0 * s;
          if (c != a) H[c * k + a] += 2.0 * s;
        }
      }
    });
    h.rows += p - bad;
    h.group_rows[static_cast<size_t>(grp)] += p - bad;
    h.non_finite_rows += bad;  // counted over every group
  });
}

std::vector<LayerHessian> gptq_layers(const ir::Graph& g, const std::vector<std::string>& weights) {
  std::set<std::string> wanted(weights.begin(), weights.end());
  std::vector<LayerHessian> out;
  std::map<std::string, size_t> index;
  std::set<std::string> mixed;  // read by layers of different layouts
  auto same_layout = [](const LayerView& a, const LayerView& b) {
    return a.groups == b.groups && a.rows == b.rows && a.k == b.k && a.transposed == b.transposed &&
           a.out_axis == b.out_axis;
  };
  for (const auto& n : g.nodes) {
    auto v = layer_view(g, n);
    if (!v || (!wanted.empty() && !wanted.count(v->weight))) continue;
    auto it = index.find(v->weight);
    if (it == index.end()) {
      index[v->weight] = out.size();
      out.push_back(LayerHessian{*v, {}, 0, {*v}, 0});
    } else {
      if (!same_layout(out[it->second].view, *v)) mixed.insert(v->weight);
      out[it->second].readers.push_back(*v);
    }
  }
  std::erase_if(out, [&](const LayerHessian& l) {
    const int uses = tensor_uses(g, l.view.weight);
    if (mixed.count(l.view.weight)) {
      OQ_INFO("GPTQ: weight '{}' is read by {} layers of different layouts: mse for it", l.view.weight,
              l.readers.size());
      return true;
    }
    if (uses != static_cast<int>(l.readers.size())) {
      OQ_INFO("GPTQ: weight '{}' is also read by a node GPTQ does not handle ({} uses, {} layers): mse for it",
              l.view.weight, uses, l.readers.size());
      return true;
    }
    return false;
  });
  return out;
}

void measure_hessians(const ir::Model& m, std::vector<LayerHessian>& layers, const data::DatasetPtr& data,
                      int64_t batch_size, std::set<std::string>* warned) {
  if (layers.empty()) return;
  // One partial Hessian per reader: the observer sees different tensors on different threads, each one's batches
  // in order, so every partial sum is deterministic; they are added in node order after the pass.
  std::vector<std::vector<LayerHessian>> parts(layers.size());
  std::map<std::string, std::vector<LayerHessian*>> by_input;
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto& readers = layers[l].readers.empty() ? std::vector<LayerView>{layers[l].view} : layers[l].readers;
    for (const auto& r : readers) parts[l].push_back(LayerHessian{r, {}, 0, {}, 0});
  }
  for (auto& p : parts)
    for (auto& r : p) by_input[r.view.input].push_back(&r);
  auto observer = [&](const std::string& name, const Tensor& t) {
    auto it = by_input.find(name);
    if (it == by_input.end()) return;
    for (LayerHessian* r : it->second) accumulate_hessian(*r, t);
  };
  stream_observed(m, data, batch_size, "GPTQ Hessians", observer);
  for (size_t l = 0; l < layers.size(); ++l) {
    LayerHessian& L = layers[l];
    L.h.clear();
    L.group_rows.assign(static_cast<size_t>(L.view.groups), 0);
    L.rows = L.non_finite_rows = 0;
    for (auto& r : parts[l]) {
      if (r.h.empty()) continue;
      if (L.h.empty()) {
        L.h = std::move(r.h);
      } else {
        for (size_t i = 0; i < L.h.size(); ++i) L.h[i] += r.h[i];
      }
      for (size_t g = 0; g < r.group_rows.size(); ++g) L.group_rows[g] += r.group_rows[g];
      L.rows += r.rows;
      L.non_finite_rows += r.non_finite_rows;
    }
    if (L.non_finite_rows && (!warned || warned->insert(L.view.weight).second))
      OQ_WARN("GPTQ: {} im2col rows of the input of layer {} (weight '{}') hold a NaN or infinite value on the "
              "calibration data (counted over its groups and readers); they are left out of its Hessian (a group "
              "left without any row is rounded to nearest, without GPTQ)",
              L.non_finite_rows,
              L.view.node.empty() ? fmt::format("(unnamed {} reading '{}')", L.view.op_type, L.view.input)
                                  : fmt::format("'{}'", L.view.node),
              L.view.weight);
  }
}

std::map<std::string, LayerHessian> collect_hessians(const ir::Model& m, const std::vector<std::string>& weights,
                                                     const data::DatasetPtr& data, int64_t batch_size) {
  std::vector<LayerHessian> layers = gptq_layers(m.graph, weights);
  measure_hessians(m, layers, data, batch_size);
  std::map<std::string, LayerHessian> out;
  for (auto& l : layers)
    if (l.rows > 0 || l.non_finite_rows > 0) out[l.view.weight] = std::move(l);
  return out;
}

Tensor gptq_quantize(const Tensor& w, const LayerHessian& lh, const exec::QuantParams& q,
                     const WeightQuantizerOptions& o, std::optional<QRange> range) {
  const LayerView& v = lh.view;
  const QRange full = range.value_or(qrange(q.qtype, false));
  if (q.axis >= 0 && q.axis != v.out_axis) return clipped_fake_quant(w, q, full);
  const int64_t k = v.k, R = v.rows;
  Tensor out(DType::Float, w.shape());
  const float* wd = w.data<float>();
  float* od = out.data<float>();
  auto at = [&](int64_t o_ch, int64_t j) { return v.transposed ? j * R + o_ch : o_ch * k + j; };
  Tensor plain;  // round to nearest, for a group whose every im2col row held a non-finite value
  for (int64_t grp = 0; grp < v.groups; ++grp) {
    if (static_cast<size_t>(grp) < lh.group_rows.size() && lh.group_rows[static_cast<size_t>(grp)] == 0) {
      if (plain.dtype() == DType::Undefined) plain = clipped_fake_quant(w, q, full);
      const float* pd = plain.data<float>();
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < k; ++j) od[at(grp * R + r, j)] = pd[at(grp * R + r, j)];
      continue;
    }
    std::vector<double> H(lh.h.begin() + grp * k * k, lh.h.begin() + (grp + 1) * k * k);
    std::vector<double> W(static_cast<size_t>(R * k));
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < k; ++j) W[r * k + j] = wd[at(grp * R + r, j)];
    double mean_diag = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      if (H[j * k + j] == 0.0) {  // a dead input column: nothing to compensate with
        H[j * k + j] = 1.0;
        for (int64_t r = 0; r < R; ++r) W[r * k + j] = 0.0;
      }
      mean_diag += H[j * k + j] / static_cast<double>(k);
    }
    std::vector<double> U;
    double damp = o.damp;
    for (int attempt = 0;; ++attempt) {
      std::vector<double> Hd = H;
      for (int64_t j = 0; j < k; ++j) Hd[j * k + j] += damp * mean_diag;
      if (inverse_upper_factor(std::move(Hd), k, U)) break;
      if (attempt >= 6) fail(ErrorKind::Runtime, "GPTQ: the Hessian of '{}' is not positive definite", v.weight);
      damp *= 10.0;
    }
    std::vector<double> Q(W.size());
    parallel_for(R, 1, [&](int64_t rb, int64_t re) {
      std::vector<double> err(static_cast<size_t>(o.block));
      for (int64_t r = rb; r < re; ++r) {
        const int64_t oc = grp * R + r;
        const size_t si = q.scale.size() == 1 ? 0 : static_cast<size_t>(oc);
        const float s = q.scale[si];
        const int64_t zp = q.zero_point[si];
        double* wr = W.data() + r * k;
        for (int64_t i1 = 0; i1 < k; i1 += o.block) {
          const int64_t i2 = std::min(i1 + o.block, k);
          for (int64_t i = i1; i < i2; ++i) {
            int64_t qv = quantize_value(static_cast<float>(wr[i]), s, zp, full.qmin, full.qmax);
            double qf = static_cast<float>(qv - zp) * s;
            Q[r * k + i] = qf;
            double e = (wr[i] - qf) / U[i * k + i];
            err[i - i1] = e;
            for (int64_t j = i + 1; j < i2; ++j) wr[j] -= e * U[i * k + j];
          }
          // Lazy batch update of the columns after the block.
          for (int64_t i = i1; i < i2; ++i) {
            const double e = err[i - i1];
            const double* ui = U.data() + i * k;
            for (int64_t j = i2; j < k; ++j) wr[j] -= e * ui[j];
          }
        }
      }
    });
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < k; ++j) od[at(grp * R + r, j)] = static_cast<float>(Q[r * k + j]);
  }
  return out;
}

HessianSource::HessianSource(const ir::Model& m, data::DatasetPtr data, int64_t batch_size, size_t budget_bytes)
    : model_(m), data_(std::move(data)), batch_size_(batch_size), budget_(budget_bytes) {
  layers_ = gptq_layers(model_.graph);
  unreached_.assign(layers_.size(), 0);
  for (size_t i = 0; i < layers_.size(); ++i) index_[layers_[i].view.weight] = i;
  if (!layers_.empty()) load(0);
}

void HessianSource::load(size_t first) {
  for (size_t i = held_begin_; i < held_end_; ++i) std::vector<double>().swap(layers_[i].h);
  auto bytes = [&](size_t i) {
    const LayerView& v = layers_[i].view;
    return static_cast<size_t>(v.groups * v.k * v.k) * sizeof(double);
  };
  size_t end = first + 1, total = bytes(first);
  while (end < layers_.size() && total + bytes(end) <= budget_) total += bytes(end++);
  std::vector<LayerHessian> group(std::make_move_iterator(layers_.begin() + first),
                                  std::make_move_iterator(layers_.begin() + end));
  measure_hessians(model_, group, data_, batch_size_, &warned_);
  for (size_t i = first; i < end; ++i) {
    layers_[i] = std::move(group[i - first]);
    unreached_[i] = layers_[i].rows == 0 && layers_[i].non_finite_rows == 0;  // its input never seen
  }
  held_begin_ = first;
  held_end_ = end;
  ++passes_;
  if (passes_ == 1 && end == layers_.size())
    OQ_INFO("GPTQ: Hessians of {} layers measured on the calibration data", end - first);
  else
    OQ_INFO("GPTQ: Hessians of {} layers measured on the calibration data (pass {}, layers {}-{} of {}: {:.1f} MiB "
            "held, GptqHessianBudget)", end - first, passes_, first + 1, end, layers_.size(),
            static_cast<double>(total) / (1 << 20));
}

const LayerHessian* HessianSource::find(const std::string& weight) {
  auto it = index_.find(weight);
  if (it == index_.end() || unreached_[it->second]) return nullptr;
  if (it->second < held_begin_ || it->second >= held_end_) load(it->second);
  return unreached_[it->second] ? nullptr : &layers_[it->second];
}

WeightParamsFn make_weight_quantizer(const WeightQuantizerOptions& o, std::shared_ptr<HessianSource> hessians) {
  if (o.kind == WeightQuantizerKind::MinMax) return {};
  auto cache = std::make_shared<std::map<std::string, WeightChoice>>();
  return [o, hessians, cache](const std::string& name, const Tensor& w,
                              const WeightProposal& proposal) -> WeightChoice {
    const exec::QuantParams& p = proposal.params;
    std::string key = fmt::format("{}|{}|{}|{}|{}", name, static_cast<int>(p.qtype), p.axis, proposal.symmetric,
                                  proposal.reduce_range);
    auto it = cache->find(key);
    if (it != cache->end()) return it->second;
    WeightChoice c{mse_params(w, proposal, o), Tensor()};
    // The integers stay in the range the scales are computed for (±127 for symmetric Int8): the writer's own
    // quantization saturates to the type's full range, so values are returned where a clipped one would leave it.
    const QRange r = qrange(p.qtype, proposal.symmetric, proposal.reduce_range);
    const LayerHessian* lh = o.kind == WeightQuantizerKind::Gptq && hessians ? hessians->find(name) : nullptr;
    c.values = lh ? gptq_quantize(w, *lh, c.params, o, r) : clipped_values(w, c.params, r);
    (*cache)[key] = c;
    return c;
  };
}

}  // namespace oq::quant
