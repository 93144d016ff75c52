#include "analysis/full_auto_report.h"

#include <fmt/format.h>

#include <algorithm>

#include "analysis/json_text.h"

namespace oq::analysis {

static double share(int64_t n, int64_t total) {
  return total ? 100.0 * static_cast<double>(n) / static_cast<double>(total) : 0.0;
}

// {"4": {"count": n, "percent": p}, ...} per bit width, for the weights (parameters) or activations (tensors).
static nlohmann::ordered_json bits_json(const std::map<int, int64_t>& m, int64_t total) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [bits, n] : m)
    j[std::to_string(bits)] = {{"count", n}, {"percent", share(n, total)}};
  return j;
}

static nlohmann::ordered_json precision_json(const PrecisionCounts& c) {
  return {{"weight_bits", bits_json(c.weights, c.weight_total())},
          {"activation_bits", bits_json(c.activations, c.activation_total())}};
}

// "4: 83.36 · 8: 2.22 · 16: 14.42" (percent per bit width), for the HTML table.
static std::string bits_cell(const std::map<int, int64_t>& m, int64_t total) {
  std::string s;
  for (const auto& [bits, n] : m)
    s += fmt::format("{}{}: {:.2f}", s.empty() ? "" : " · ", bits, share(n, total));
  return s.empty() ? "—" : s;
}

std::string full_auto_json(const FullAutoReport& r) {
  nlohmann::ordered_json j;
  j["model"] = r.model;
  j["metric"] = r.metric;
  j["unit"] = r.unit;
  j["tolerance"] = r.tolerance;
  j["tolerance_mode"] = r.tolerance_mode;
  j["threshold"] = r.threshold;
  j["scores"] = {{"float", r.float_score ? nlohmann::ordered_json(*r.float_score) : nlohmann::ordered_json(nullptr)},
                 {"int8", r.int8_score},
                 {"int4", r.int4_score}};
  j["int8_model"] = r.int8_file;
  j["int8_precision"] = precision_json(r.int8_bits);
  j["ranked_tensors"] = r.n_tensors;
  j["ranked_weights"] = r.ranked_weights;
  j["quantized_weights"] = r.quantized_weights;
  j["ranking"] = r.ranking;
  if (r.sensitivity) {
    nlohmann::ordered_json snr = nlohmann::ordered_json::object();
    for (const auto& [name, v] : r.sensitivity->snr_db) snr[name] = v;
    j["sensitivity"] = {{"samples", r.sensitivity->samples}, {"snr_db", snr}};
  }
  auto& a = j["attempts"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < r.attempts.size(); ++i) {
    const auto& t = r.attempts[i];
    a.push_back({{"n_int8", t.n_int8}, {"int8_tensors", t.int8_tensors}, {"w4_percent", t.w4_percent},
                 {"precision", precision_json(t.bits)}, {"model_bytes", t.model_bytes}, {"score", t.score},
                 {"passed", t.passed}, {"file", t.file}});
    // The bisection can come back to a configuration it measured (ST's walk): its score is reused, not measured
    // again; say which attempt it repeats.
    for (size_t j = 0; j < i; ++j)
      if (r.attempts[j].int8_tensors == t.int8_tensors) {
        a.back()["repeat_of"] = j;
        break;
      }
  }
  if (r.answer) {
    const auto& t = r.attempts[*r.answer];
    j["answer"] = {{"attempt", *r.answer}, {"n_int8", t.n_int8}, {"w4_percent", t.w4_percent},
                   {"precision", precision_json(t.bits)}, {"score", t.score}, {"file", t.file}};
  } else {
    j["answer"] = {{"attempt", nullptr}, {"file", r.int8_file}, {"note", "no mixed-precision attempt passed"}};
  }
  return dump_json(j);
}

static std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string full_auto_html(const FullAutoReport& r) {
  // Chart: score (y) against percent of parameters in 4 bits (x), with the tolerance line.
  const double W = 760, H = 380, L = 60, R = 20, T = 20, B = 50;
  double lo = std::min({r.threshold, r.int4_score, r.int8_score});
  double hi = std::max({r.threshold, r.int4_score, r.int8_score});
  if (r.float_score) lo = std::min(lo, *r.float_score), hi = std::max(hi, *r.float_score);
  for (const auto& a : r.attempts) lo = std::min(lo, a.score), hi = std::max(hi, a.score);
  double pad = std::max(0.5, (hi - lo) * 0.1);
  lo -= pad;
  hi += pad;
  auto X = [&](double pct) { return L + (W - L - R) * pct / 100.0; };
  auto Y = [&](double s) { return T + (H - T - B) * (hi - s) / (hi - lo); };
  std::string svg = fmt::format("<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' style='background:#fff'>",
                                W, H);
  svg += fmt::format("<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='#333'/>", L, H - B, W - R, H - B);
  svg += fmt::format("<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='#333'/>", L, T, L, H - B);
  for (int k = 0; k <= 4; ++k) {
    double pct = 25.0 * k, s = lo + (hi - lo) * k / 4.0;
    svg += fmt::format("<text x='{:.1f}' y='{}' font-size='11' text-anchor='middle'>{}%</text>", X(pct), H - B + 16, pct);
    svg += fmt::format("<text x='{}' y='{:.1f}' font-size='11' text-anchor='end'>{:.2f}</text>", L - 6, Y(s) + 4, s);
  }
  svg += fmt::format("<text x='{}' y='{}' font-size='12' text-anchor='middle'>parameters in 4 bits (%)</text>",
                     (W + L) / 2, H - 12);
  svg += fmt::format("<line x1='{}' y1='{:.1f}' x2='{}' y2='{:.1f}' stroke='#d33' stroke-dasharray='6,4'/>", L,
                     Y(r.threshold), W - R, Y(r.threshold));
  svg += fmt::format("<text x='{}' y='{:.1f}' font-size='11' fill='#d33' text-anchor='end'>tolerance ({:.2f})</text>",
                     W - R - 4, Y(r.threshold) - 4, r.threshold);
  if (r.float_score) {
    svg += fmt::format("<line x1='{}' y1='{:.1f}' x2='{}' y2='{:.1f}' stroke='#888' stroke-dasharray='2,3'/>", L,
                       Y(*r.float_score), W - R, Y(*r.float_score));
    svg += fmt::format("<text x='{}' y='{:.1f}' font-size='11' fill='#666'>float {:.2f}</text>", L + 4,
                       Y(*r.float_score) - 4, *r.float_score);
  }
  for (size_t i = 0; i < r.attempts.size(); ++i) {
    const auto& a = r.attempts[i];
    bool ans = r.answer && *r.answer == i;
    svg += fmt::format("<circle cx='{:.1f}' cy='{:.1f}' r='{}' fill='{}' stroke='#000'><title>n_int8={} score={:.2f}</title></circle>",
                       X(a.w4_percent), Y(a.score), ans ? 8 : 5, a.passed ? "#2a2" : "#c33", a.n_int8, a.score);
  }
  svg += fmt::format("<circle cx='{:.1f}' cy='{:.1f}' r='6' fill='#36c'><title>all Int8 {:.2f}</title></circle>", X(0),
                     Y(r.int8_score), r.int8_score);
  svg += "</svg>";

  std::string rows;
  for (size_t i = 0; i < r.attempts.size(); ++i) {
    const auto& a = r.attempts[i];
    rows += fmt::format("<tr{}><td>{}</td><td>{}</td><td>{:.2f}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2f}</td>"
                        "<td>{}</td><td>{}</td></tr>",
                        r.answer && *r.answer == i ? " class='ans'" : "", i, a.n_int8, a.w4_percent,
                        bits_cell(a.bits.weights, a.bits.weight_total()),
                        bits_cell(a.bits.activations, a.bits.activation_total()), a.model_bytes, a.score,
                        a.passed ? "pass" : "fail", esc(a.file));
  }
  std::string answer = r.answer
      ? fmt::format("Answer: attempt {} — {} of {} ranked tensors in Int8, {:.2f}% of the quantized weight parameters in 4 bits, "
                    "score {:.2f}{} — <code>{}</code>", *r.answer, r.attempts[*r.answer].n_int8, r.n_tensors,
                    r.attempts[*r.answer].w4_percent, r.attempts[*r.answer].score, r.unit, esc(r.attempts[*r.answer].file))
      : fmt::format("No mixed-precision attempt passed: the answer is the 8-bit reference <code>{}</code>", esc(r.int8_file));
  // Widths other than ST's (4/8-bit weights, 8-bit activations) are named: 16-bit overrides, Int4 activations.
  const PrecisionCounts& shown = r.answer ? r.attempts[*r.answer].bits : r.int8_bits;
  if (!shown.st_only()) answer += " — " + esc(precision_summary(shown));
  return fmt::format(
      "<!DOCTYPE html><html><head><meta charset='utf-8'><title>onnxquant full_auto — {}</title><style>"
      "body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse}}"
      "td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}tr.ans{{background:#dfd}}code{{font-size:12px}}"
      "</style></head><body><h1>full_auto: {}</h1>"
      "<p>Metric <b>{}</b>; float {}, all-8-bit {:.2f}{u}, all-4-bit {:.2f}{u}; tolerance {:.2f} ({}) → passing "
      "score ≥ {:.2f}{u}.</p><p><b>{}</b></p>{}<h2>Attempts</h2><table><tr><th>#</th><th>tensors in Int8</th>"
      "<th>4-bit params %</th><th>weight params % by bits</th><th>activation tensors % by bits</th>"
      "<th>model bytes</th><th>score</th><th>result</th><th>file</th></tr>{}</table>"
      "</body></html>\n",
      esc(r.model), esc(r.model), esc(r.metric),
      r.float_score ? fmt::format("{:.2f}{}", *r.float_score, r.unit) : std::string("(the reference)"),
      r.int8_score, r.int4_score, r.tolerance, esc(r.tolerance_mode), r.threshold, answer, svg, rows,
      fmt::arg("u", r.unit));
}

}  // namespace oq::analysis
