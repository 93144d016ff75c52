// inspection.html: one self-contained page (inline CSS, SVG and a few lines of JS; no network access).
#include <algorithm>
#include <cmath>
#include <map>

#include "analysis/report.h"
#include "core/error.h"

namespace oq::analysis {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

const char* type_colour(DType t) {
  switch (t) {
    case DType::Int8: return "#1f77b4";
    case DType::UInt8: return "#2ca02c";
    case DType::Int16: return "#ff7f0e";
    case DType::UInt16: return "#d62728";
    case DType::Int4: return "#9467bd";
    case DType::UInt4: return "#8c564b";
    case DType::Int32: return "#7f7f7f";
    default: return "#17becf";
  }
}

std::string snr_text(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : "n/a"; }

std::string op_of(const TensorInspection& t) {
  if (!t.producer.op_type.empty()) return t.producer.op_type;
  if (!t.consumers.empty()) return t.consumers.front().op_type;
  return "input";
}

struct Axis {
  double lo, hi, step;  // the SNR range shown and its grid step (dB)
};

// From 0 or the lowest bar to the highest bar or threshold + 10 dB, both capped at 130 dB: the bars are clipped at
// 120 dB and so is a threshold line above the chart (an snr_threshold of 1e8 used to draw one grid line per 10 dB
// up to it: gigabytes of SVG). Grid lines every 10 dB, or a wider round step for at most 20 of them.
Axis chart_axis(const InspectionResult& r, double threshold, double cap) {
  double lo = 0, hi = std::isnan(threshold) ? 10 : std::clamp(threshold + 10, lo + 10, cap + 10);
  for (const auto& t : r.tensors) {
    double v = t.snr();
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);  // >= -3400 dB (snr_db: signal >= DBL_EPSILON, noise < DBL_MAX)
    hi = std::max(hi, std::min(v, cap));
  }
  double step = 10;
  for (int k = 0; (hi - lo) / step > 20; ++k) step *= k % 3 == 1 ? 2.5 : 2;  // 10, 20, 50, 100, 200, 500, ...
  return {std::floor(lo / step) * step, std::ceil(hi / step) * step, step};
}

// The bar chart: one bar per tensor in execution order, the threshold as a dashed line.
std::string chart_svg(const InspectionResult& r, double threshold) {
  const size_t n = r.tensors.size();
  const double cap = 120.0;  // taller bars are clipped (marked with a triangle)
  const auto [lo, hi, step] = chart_axis(r, threshold, cap);
  const double bar = n ? std::clamp(1000.0 / static_cast<double>(n), 3.0, 24.0) : 10.0;
  const double left = 56, top = 16, plot_h = 380, bottom = 40;
  const double width = left + bar * static_cast<double>(n) + 20, height = top + plot_h + bottom;
  auto y_of = [&](double v) { return top + (hi - std::clamp(v, lo, hi)) / (hi - lo) * plot_h; };
  std::string s = fmt::format(
      "<svg id=\"snr-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "role=\"img\" aria-label=\"SNR per tensor\">\n<rect x=\"0\" y=\"0\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "fill=\"#ffffff\"/>\n",
      width, height, width, height);
  for (double v = lo; v <= hi + 1e-9; v += step) {
    double y = y_of(v);
    s += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e3e3e3\"/><text x=\"{:.1f}\" "
        "y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\" fill=\"#444\">{:.0f} dB</text>\n",
        left, width - 20, y, y, left - 6, y + 4, v);
  }
  const double y0 = y_of(0);
  for (size_t i = 0; i < n; ++i) {
    const auto& t = r.tensors[i];
    double v = t.snr();
    double x = left + bar * static_cast<double>(i);
    std::string tip = fmt::format("#{} {} ({}, {}, {}): {} dB", t.exec_index, t.name, to_string(t.kind),
                                  quant_type_name(t.qtype), t.granularity(), snr_text(v));
    if (!t.initializer) tip += fmt::format(" xmodel, {} dB local", snr_text(t.snr_local_db));
    if (!std::isfinite(v)) continue;
    double yv = y_of(v), y = std::min(yv, y0), h = std::max(std::fabs(y0 - yv), 1.0);
    bool weight = t.initializer;
    s += fmt::format(
        "<rect class=\"bar\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\" "
        "fill-opacity=\"{}\" stroke=\"{}\" stroke-width=\"{}\"><title>{}</title></rect>\n",
        x + 0.5, y, std::max(bar - 1.0, 1.0), h, type_colour(t.qtype), weight ? "0.45" : "0.95",
        weight ? "#333" : "none", weight ? "0.6" : "0", esc(tip));
    if (v > hi)
      s += fmt::format("<path d=\"M{:.1f},{:.1f} l{:.1f},-6 l{:.1f},6 z\" fill=\"#000\"/>\n", x + 0.5, top + 6,
                       bar / 2 - 0.5, bar / 2 - 0.5);
    if (v < threshold)
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"#d00\"/>\n", x + bar / 2,
                       top + plot_h + 8);
  }
  double yt = y_of(threshold);
  s += fmt::format(
      "<line id=\"threshold-line\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#d00\" "
      "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/><text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" "
      "fill=\"#d00\" text-anchor=\"end\">threshold {} dB{}</text>\n",
      left, width - 20, yt, yt, width - 22, yt - 4, threshold,
      threshold > hi ? " (above the chart)" : threshold < lo ? " (below the chart)" : "");
  s += fmt::format(
      "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#000\"/><text x=\"{:.1f}\" "
      "y=\"{:.1f}\" font-size=\"11\" fill=\"#444\">tensors in execution order &#8594;</text>\n",
      left, width - 20, y0, y0, left, top + plot_h + 30);
  s += "</svg>\n";
  return s;
}

std::string legend(const InspectionResult& r) {
  std::map<std::string, DType> types;
  for (const auto& t : r.tensors) types.emplace(std::string(quant_type_name(t.qtype)), t.qtype);
  std::string s = "<div class=\"legend\">";
  for (const auto& [name, t] : types)
    s += fmt::format("<span><i style=\"background:{}\"></i>{}</span>", type_colour(t), esc(name));
  s += "<span><i style=\"background:#888;opacity:.45;outline:1px solid #333\"></i>weights / biases (light)</span>";
  s += "<span><i style=\"background:#888\"></i>activations (solid, xmodel SNR)</span>";
  s += "<span><i style=\"background:#d00;border-radius:50%\"></i>below threshold</span></div>\n";
  return s;
}

std::string worst_table(const InspectionResult& r, double threshold) {
  std::string s =
      "<table id=\"worst\"><thead><tr><th>#</th><th>tensor</th><th>kind</th><th>op</th><th>type</th>"
      "<th>granularity</th><th>SNR (dB)</th><th>local SNR (dB)</th></tr></thead><tbody>\n";
  auto w = worst_first(r);
  for (size_t i = 0; i < w.size() && i < 20; ++i) {
    const auto& t = *w[i];
    s += fmt::format(
        "<tr{}><td>{}</td><td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td></tr>\n",
        t.snr() < threshold ? " class=\"bad\"" : "", i + 1, esc(t.name), to_string(t.kind), esc(op_of(t)),
        quant_type_name(t.qtype), t.granularity(), snr_text(t.snr()),
        t.initializer ? "" : snr_text(t.snr_local_db));
  }
  return s + "</tbody></table>\n";
}

const char* kStyle = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555;font-size:13px;line-height:1.5} .meta code{background:#eee;padding:1px 4px;border-radius:3px}
.chart{overflow-x:auto;background:#fff;border:1px solid #ddd;padding:8px}
.legend{font-size:12px;margin:8px 0} .legend span{margin-right:16px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-2px}
table{border-collapse:collapse;font-size:13px;background:#fff} th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f0f0f0} tr.bad td{background:#fde8e8} td.name{font-family:monospace}
pre{background:#fff;border:1px solid #ddd;padding:12px;font-size:12px;overflow-x:auto}
button{font-size:12px;padding:3px 10px}
)";

const char* kScript = R"(
function copyYaml(){
  var t=document.getElementById('overrides-yaml').textContent;
  var b=document.getElementById('copy-btn');
  function ok(){b.textContent='Copied';setTimeout(function(){b.textContent='Copy';},1500);}
  if(navigator.clipboard){navigator.clipboard.writeText(t).then(ok,function(){});}
  else{var a=document.createElement('textarea');a.value=t;document.body.appendChild(a);a.select();
       document.execCommand('copy');document.body.removeChild(a);ok();}
}
)";

}  // namespace

std::string to_html(const InspectionResult& r, const ReportSettings& s, const std::string& yaml) {
  size_t below_w = 0, below_a = 0, nw = 0, na = 0;
  for (const auto& t : r.tensors) {
    (t.initializer ? nw : na)++;
    if (t.snr() < s.snr_threshold) (t.initializer ? below_w : below_a)++;
  }
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>onnxquant inspection: " +
                  esc(s.model_path) + "</title>\n<style>" + kStyle + "</style>\n</head><body>\n";
  h += "<h1>onnxquant inspection</h1>\n<div class=\"meta\">";
  h += fmt::format("Model <code>{}</code> &#8594; <code>{}</code><br>\n", esc(s.model_path),
                   esc(s.quantized_model_path));
  for (const auto& l : s.quantization_lines) h += esc(l) + "<br>\n";
  h += fmt::format(
      "Activations measured on {} of {} calibration samples (inspection_split {}). Threshold {} dB "
      "(quantization.iterative_quant_parameters.snr_threshold): {} of {} initializers and {} of {} activations "
      "below.</div>\n",
      r.samples, s.calibration_samples, s.inspection_split, s.snr_threshold, below_w, nw, below_a, na);
  h += "<h2>SNR per tensor</h2>\n<div class=\"meta\">Weights and biases: float initializer vs (q &#8722; zp)&#183;scale. "
       "Activations: float model vs quantized model after DequantizeLinear (xmodel). Hover a bar for details.</div>\n";
  h += legend(r);
  h += "<div class=\"chart\">" + chart_svg(r, s.snr_threshold) + "</div>\n";
  h += "<h2>Worst 20 tensors</h2>\n" + worst_table(r, s.snr_threshold);
  h += "<h2>Suggested tensor overrides <button id=\"copy-btn\" onclick=\"copyYaml()\">Copy</button></h2>\n";
  h += "<pre id=\"overrides-yaml\">" + esc(yaml) + "</pre>\n";
  h += std::string("<script>") + kScript + "</script>\n</body></html>\n";
  return h;
}

}  // namespace oq::analysis
