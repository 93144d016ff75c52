// Loading an ST user_config.yaml: file -> YAML tree -> command-line overrides -> typed, validated Config.
#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "config/yaml_read.h"

namespace oq::config {
using namespace detail;

namespace {

const char* kIgnored = "ignored by onnxquant";

// yaml-cpp gives a node no hashable identity; Node::is() compares two handles. An alias is the anchored node
// itself, so a walk that follows every path expands `*a` as often as it is referenced: nine aliases of nine
// aliases of ... make a few hundred bytes that take minutes (ninefold per level) to walk. The walks below visit
// each distinct node once: NodeMemo buckets nodes by their position in the text (the same for every alias of a
// node; almost unique otherwise) and compares with is() within a bucket.
template <typename T>
class NodeMemo {
 public:
  const T* find(const YAML::Node& n) const {
    auto it = buckets_.find(key(n));
    if (it == buckets_.end()) return nullptr;
    for (const auto& [node, v] : it->second)
      if (node.is(n)) return &v;
    return nullptr;
  }
  void set(const YAML::Node& n, T v) {
    auto& b = buckets_[key(n)];
    for (auto& [node, old] : b)
      if (node.is(n)) {
        old = std::move(v);
        return;
      }
    b.emplace_back(n, std::move(v));
  }

 private:
  static int64_t key(const YAML::Node& n) { return n.IsDefined() ? n.Mark().pos : -2; }
  std::unordered_map<int64_t, std::deque<std::pair<YAML::Node, T>>> buckets_;
};

// Where a tree comes from, for the messages of check_duplicate_keys: the config file (its lines are cited), or the
// value of a command-line override (`origin` is "override '<text>'": its lines would mean nothing).
struct TreeOrigin {
  std::string source;
  bool file = true;
  std::string at(const YAML::Node& n) const {
    return file ? fmt::format("{}:{}", source, n.Mark().line + 1) : source;
  }
};

// yaml-cpp keeps every pair of a map with a repeated key and answers lookups with the first; Hydra refuses
// such a file. A repeated key is an error naming both lines. Each distinct node is checked once (an alias is
// the node it names); an alias inside the node it names (a recursive structure, which no config needs and which
// the walks here and Hydra cannot follow) is an error naming its line.
void check_duplicate_keys(const YAML::Node& n, const std::string& path, const TreeOrigin& origin,
                          NodeMemo<bool>& seen) {
  if (!n.IsSequence() && !n.IsMap()) return;
  if (const bool* done = seen.find(n)) {
    if (!*done)
      fail(ErrorKind::Config, "{}: {}: an alias refers to a node that contains it (a recursive structure); a "
           "config cannot be recursive", origin.at(n), path.empty() ? "<top level>" : path);
    return;
  }
  seen.set(n, false);  // in progress
  if (n.IsSequence()) {
    size_t i = 0;
    for (const auto& e : n) check_duplicate_keys(e, path + "[" + std::to_string(i++) + "]", origin, seen);
  } else {
    std::map<std::string, int> first_line;
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) continue;
      const std::string& k = kv.first.Scalar();
      if (k == "<<") {  // merge keys may repeat (PyYAML merges each, OmegaConf's duplicate check skips them)
        check_duplicate_keys(kv.second, path.empty() ? k : path + "." + k, origin, seen);
        continue;
      }
      const std::string p = path.empty() ? k : path + "." + k;
      const int line = kv.first.Mark().line + 1;
      auto [it, inserted] = first_line.emplace(k, line);
      if (!inserted)
        fail(ErrorKind::Config, "{}: {}: key given twice{}; keep one", origin.at(kv.first), p,
             origin.file ? fmt::format(" (lines {} and {})", it->second, line) : "");
      check_duplicate_keys(kv.second, p, origin, seen);
    }
  }
  seen.set(n, true);
}

// YAML 1.1 merge keys (`<<: *defaults`, `<<: [*a, *b]`), which PyYAML and so Hydra / OmegaConf resolve and
// yaml-cpp 0.7 leaves as a key named "<<": the merged map's keys are added where the map does not set them (the
// first map of a list wins; of several `<<` keys in one map, the last: PyYAML's flatten_mapping), recursively.
// New map nodes are built (an anchored map may be merged in several places) only where a merge key is; keys,
// scalars and untouched maps keep their marks for error lines. Each distinct node is resolved once (NodeMemo),
// and the result shared by its aliases as the input shares it.
class MergeResolver {
 public:
  explicit MergeResolver(std::string source) : source_(std::move(source)) {}

  YAML::Node resolve(const YAML::Node& n, const std::string& path) {
    if (!has_merge_key(n)) return n;
    if (const YAML::Node* r = resolved_.find(n)) return *r;
    YAML::Node out = resolve_uncached(n, path);
    resolved_.set(n, out);
    return out;
  }

 private:
  bool has_merge_key(const YAML::Node& n) {
    if (!n.IsSequence() && !n.IsMap()) return false;
    if (const bool* h = has_.find(n)) return *h;
    bool h = false;
    if (n.IsSequence()) {
      for (const auto& e : n) h = has_merge_key(e) || h;
    } else {
      for (const auto& kv : n) h = (kv.first.IsScalar() && kv.first.Scalar() == "<<") || has_merge_key(kv.second) || h;
    }
    has_.set(n, h);
    return h;
  }

  YAML::Node resolve_uncached(const YAML::Node& n, const std::string& path) {
    if (n.IsSequence()) {
      YAML::Node out(YAML::NodeType::Sequence);
      size_t i = 0;
      for (const auto& e : n) out.push_back(resolve(e, path + "[" + std::to_string(i++) + "]"));
      return out;
    }
    bool has_merge = false;
    for (const auto& kv : n) has_merge |= kv.first.IsScalar() && kv.first.Scalar() == "<<";
    YAML::Node out(YAML::NodeType::Map);
    std::set<std::string> present;
    for (const auto& kv : n) {
      if (has_merge && kv.first.IsScalar() && kv.first.Scalar() == "<<") continue;
      const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
      present.insert(k);
      out.force_insert(kv.first, resolve(kv.second, path.empty() ? k : path + "." + k));
    }
    if (!has_merge) return out;
    std::vector<std::pair<YAML::Node, YAML::Node>> merges;  // the last first: its keys win
    for (const auto& kv : n)
      if (kv.first.IsScalar() && kv.first.Scalar() == "<<") merges.emplace(merges.begin(), kv.first, kv.second);
    for (const auto& kv : merges) {
      const std::string p = path.empty() ? "<<" : path + ".<<";
      std::vector<YAML::Node> maps;
      if (kv.second.IsMap()) maps.push_back(kv.second);
      if (kv.second.IsSequence())
        for (const auto& e : kv.second) maps.push_back(e);
      if (maps.empty() || std::any_of(maps.begin(), maps.end(), [](const YAML::Node& m) { return !m.IsMap(); }))
        fail(ErrorKind::Config, "{}:{}: {}: a merge key takes a map or a list of maps (an alias such as *defaults)",
             source_, kv.first.Mark().line + 1, p);
      for (const auto& m : maps) {
        const YAML::Node r = resolve(m, path);
        for (const auto& mk : r) {
          const std::string k = mk.first.IsScalar() ? mk.first.Scalar() : std::string();
          if (!present.insert(k).second) continue;
          out.force_insert(mk.first, mk.second);
        }
      }
    }
    return out;
  }

  std::string source_;
  NodeMemo<bool> has_;
  NodeMemo<YAML::Node> resolved_;
};

bool valid_key_segment(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

// `node` (a map, or null / absent: an empty one) with `segs[i..]` set to `value`: a new map with the same pairs in
// the same order, the key's value replaced (or appended), built down the path. The nodes of the file are never
// changed in place: an anchored value shared by several keys (`test_path: *d`) keeps its value for the others,
// as Hydra's override changes one key only.
YAML::Node with_path(const YAML::Node& node, const std::vector<std::string>& segs, size_t i, const YAML::Node& value,
                     const std::string& ov) {
  const std::string& k = segs[i];
  YAML::Node replacement;
  if (i + 1 == segs.size()) {
    replacement.reset(value);
  } else {
    const YAML::Node existing = child(node, k);
    if (!is_null(existing) && !existing.IsMap()) {
      std::string prefix;
      for (size_t j = 0; j <= i; ++j) prefix += (j ? "." : "") + segs[j];
      fail(ErrorKind::Config, "override {}: {} is {}, not a map", quote(ov), prefix, show(existing));
    }
    replacement.reset(with_path(existing, segs, i + 1, value, ov));
  }
  YAML::Node out(YAML::NodeType::Map);
  bool replaced = false;
  if (!is_null(node))
    for (const auto& kv : node) {
      if (!replaced && kv.first.IsScalar() && kv.first.Scalar() == k) {
        out.force_insert(kv.first, replacement);
        replaced = true;
      } else {
        out.force_insert(kv.first, kv.second);
      }
    }
  if (!replaced) out.force_insert(YAML::Node(k), replacement);
  return out;
}

// Hydra-like `dotted.key=value` (a leading `+` or `++` is accepted); the value is read with Hydra's override grammar.
void apply_override(YAML::Node& root, const std::string& ov) {
  size_t eq = ov.find('=');
  std::string key = ov.substr(0, eq);
  if (key.rfind("++", 0) == 0) key.erase(0, 2);
  else if (key.rfind("+", 0) == 0) key.erase(0, 1);
  std::vector<std::string> segs;
  std::stringstream ss(key);
  for (std::string s; std::getline(ss, s, '.');) segs.push_back(s);
  bool ok = eq != std::string::npos && !segs.empty() && key.back() != '.';
  for (const auto& s : segs) ok = ok && valid_key_segment(s);
  if (!ok)
    fail(ErrorKind::Config, "override {}: expected dotted.key=value (e.g. quantization.granularity=per_tensor)",
         quote(ov));
  // Without source marks: errors on values an override set do not point at a line of the config file.
  const YAML::Node value = override_value(ov, ov.substr(eq + 1));
  {  // a key given twice in the value ({quant_type: Int4, quant_type: Int8}), as in the file
    NodeMemo<bool> seen;
    check_duplicate_keys(value, key, TreeOrigin{"override " + quote(ov), false}, seen);
  }
  root.reset(with_path(root, segs, 0, value, ov));
}

OperationMode read_operation_mode(const Ctx& ctx, MapReader& top) {
  YAML::Node n = top.get("operation_mode");
  if (is_null(n)) return OperationMode::Quantization;
  std::string s = read_string(ctx, n, "operation_mode");
  for (OperationMode m : {OperationMode::Quantization, OperationMode::Evaluation, OperationMode::ChainQE})
    if (iequals(s, to_string(m))) return m;
  key_fail(ctx, n, "operation_mode",
           quote(s) + " is not supported by onnxquant; supported modes: quantization, evaluation, chain_qe");
}

void read_general(const Ctx& ctx, const YAML::Node& node, GeneralConfig& g) {
  MapReader m(ctx, node, "general");
  g.project_name = get_string(m, "project_name", g.project_name);
  g.logs_dir = get_path(m, "logs_dir", g.logs_dir);
  g.saved_models_dir = get_path(m, "saved_models_dir", g.saved_models_dir);
  g.global_seed = get_int(m, "global_seed", g.global_seed);
  m.finish_silent();  // other ST general keys (gpu_memory_limit, display_figures, ...) are fine
}

bool ends_with_ci(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(std::string_view(s).substr(s.size() - suffix.size()), suffix);
}

// general_model_path: the file has general.model_path (ST's older layout), which is not read.
void read_model(const Ctx& ctx, const YAML::Node& node, ModelConfig& mc, bool general_model_path) {
  MapReader m(ctx, node, "model");
  mc.model_path = get_path(m, "model_path");
  if (mc.model_path.empty())
    key_fail(ctx, m.get("model_path"), "model.model_path",
             general_model_path
                 ? "missing: general.model_path (ST's older layout) is not read; move it to model.model_path"
                 : "missing: the ONNX model to quantize or evaluate (or pass model.model_path=<file> as an override)");
  for (const char* ext : {".h5", ".keras", ".tflite", ".pt", ".pth"})
    if (ends_with_ci(mc.model_path, ext))
      key_fail(ctx, m.get("model_path"), "model.model_path",
               quote(mc.model_path) + " is not an ONNX model; onnxquant reads .onnx files only");
  // A list, or ST's tuple spelling as a string: "(128, 128, 3)".
  YAML::Node is = m.get("input_shape");
  if (!is_null(is)) {
    std::vector<YAML::Node> dims;
    if (is.IsSequence()) {
      for (const auto& e : is) dims.push_back(e);
    } else if (is.IsScalar()) {
      std::string s = is.Scalar();
      size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
      if (b != std::string::npos && ((s[b] == '(' && s[e] == ')') || (s[b] == '[' && s[e] == ']'))) s = s.substr(b + 1, e - b - 1);
      std::stringstream ss(s);
      for (std::string item; std::getline(ss, item, ',');) {
        size_t ib = item.find_first_not_of(" \t"), ie = item.find_last_not_of(" \t");
        item = ib == std::string::npos ? "" : item.substr(ib, ie - ib + 1);
        if (!item.empty() || !ss.eof()) dims.push_back(YAML::Node(item));
      }
    }
    if (dims.empty()) key_fail(ctx, is, "model.input_shape", "expected a list of integers such as [128, 128, 3], got " + show(is));
    for (size_t i = 0; i < dims.size(); ++i) {
      std::string p = "model.input_shape[" + std::to_string(i) + "]";
      int64_t d = read_int(ctx, dims[i], p);
      if (d <= 0) key_fail(ctx, at_or(dims[i], is), p, "must be > 0, got " + std::to_string(d));
      mc.input_shape.push_back(d);
    }
    if (mc.input_shape.size() != 2 && mc.input_shape.size() != 3)
      key_fail(ctx, is, "model.input_shape",
               "expected (height, width, channels) as ST writes it, or (height, width); got " +
                   std::to_string(mc.input_shape.size()) + " values");
  }
  m.finish_warn(kIgnored);
}

void read_dataset(const Ctx& ctx, const YAML::Node& node, DatasetConfig& d) {
  MapReader m(ctx, node, "dataset");
  if (m.present("name") && m.present("dataset_name"))
    key_fail2(ctx, m.get("dataset_name"), "dataset.dataset_name", "both dataset.name and dataset.dataset_name are given; use one",
              "dataset.name", m.get("name"));
  d.name = m.present("dataset_name") ? get_string(m, "dataset_name") : get_string(m, "name");
  m.get("name");
  m.get("dataset_name");
  d.class_names = get_string_list(m, "class_names");  // folder names
  {
    const YAML::Node cn = m.get("class_names");
    auto at = [&](size_t i) { return at_or(cn[i], cn); };
    auto path = [&](size_t i) { return m.path("class_names") + "[" + std::to_string(i) + "]"; };
    std::map<std::string, size_t> first;
    for (size_t i = 0; i < d.class_names.size(); ++i) {
      check_no_nul(ctx, at(i), path(i), d.class_names[i]);
      // Whatever the data (an image folder's classes, or the labels of an .npz), a class is listed once.
      if (auto [it, fresh] = first.emplace(d.class_names[i], i); !fresh)
        key_fail2(ctx, at(i), path(i), "class " + quote(d.class_names[i]) + " is listed twice; list each class once",
                  path(it->second), at(it->second));
    }
  }
  d.training_path = get_path(m, "training_path");
  d.quantization_path = get_path(m, "quantization_path");
  d.quantization_split = get_number(m, "quantization_split", d.quantization_split);
  check_range(m, "quantization_split", d.quantization_split > 0 && d.quantization_split <= 1, d.quantization_split,
              "in (0, 1]");
  d.test_path = get_path(m, "test_path");
  d.validation_path = get_path(m, "validation_path");
  d.seed = get_int(m, "seed", d.seed);
  d.batch_size = get_int(m, "batch_size", d.batch_size);
  check_range(m, "batch_size", d.batch_size > 0, static_cast<double>(d.batch_size), "> 0");
  d.skip_bad_files = get_bool(m, "skip_bad_files", d.skip_bad_files);
  m.finish_warn(kIgnored);
}

void read_preprocessing(const Ctx& ctx, const YAML::Node& node, PreprocessingConfig& p) {
  MapReader m(ctx, node, "preprocessing");
  MapReader resc(ctx, m.get("rescaling"), "preprocessing.rescaling");
  p.scale = get_number(resc, "scale", p.scale);
  p.offset = get_number(resc, "offset", p.offset);
  resc.finish_warn(kIgnored);
  MapReader resz(ctx, m.get("resizing"), "preprocessing.resizing");
  p.interpolation = get_enum(resz, "interpolation", p.interpolation,
                             {Interpolation::Nearest, Interpolation::Bilinear, Interpolation::Bicubic, Interpolation::Area});
  p.aspect_ratio = get_enum(resz, "aspect_ratio", p.aspect_ratio, {AspectRatio::Fit, AspectRatio::Crop, AspectRatio::Padding});
  resz.finish_warn(kIgnored);
  p.color_mode = get_enum(m, "color_mode", p.color_mode, {ColorMode::Grayscale, ColorMode::Rgb, ColorMode::Rgba, ColorMode::Bgr});
  p.layout = get_enum(m, "layout", p.layout, {Layout::Auto, Layout::NCHW, Layout::NHWC});
  m.finish_warn(kIgnored);
}

std::string read_hydra_dir(const Ctx& ctx, const YAML::Node& node) {
  MapReader h(ctx, node, "hydra");
  MapReader run(ctx, h.get("run"), "hydra.run");
  std::string dir = get_path(run, "dir");
  run.finish_warn(kIgnored);
  h.finish_warn(kIgnored);
  return dir;
}

// The group path of a Hydra defaults-list key ("override hydra/job_logging", "optional db@pkg", "/dataset"):
// the last word, without a package and a leading '/'.
std::string defaults_group(const std::string& key) {
  std::string g = key;
  if (const size_t sp = g.find_last_of(" \t"); sp != std::string::npos) g = g.substr(sp + 1);
  if (const size_t at = g.find('@'); at != std::string::npos) g = g.substr(0, at);
  while (!g.empty() && g.front() == '/') g.erase(0, 1);
  return g;
}

bool hydra_group(const std::string& group) { return group == "hydra" || group.rfind("hydra/", 0) == 0; }

// Hydra's defaults list composes other config files into this one before the job sees it; onnxquant reads this
// file alone. Entries that only configure Hydra itself (`_self_`, a group under hydra/, a group set to null) change
// no key onnxquant reads and are ignored with the section's warning; any other entry (`- dataset: flowers`,
// `- base_config`) would make Hydra's config differ from the file: an error naming the entry and its line.
void check_defaults_list(const Ctx& ctx, const YAML::Node& d) {
  if (is_null(d)) return;
  if (!d.IsSequence()) key_fail(ctx, d, "defaults", "expected Hydra's defaults list, got " + show(d));
  for (size_t i = 0; i < d.size(); ++i) {
    const YAML::Node e = d[i];
    const std::string p = "defaults[" + std::to_string(i) + "]";
    std::string what;
    if (e.IsScalar()) {
      if (e.Scalar() == "_self_" || hydra_group(defaults_group(e.Scalar()))) continue;
      what = "config " + quote(e.Scalar());
    } else if (e.IsMap() && e.size() == 1 && e.begin()->first.IsScalar()) {
      const std::string key = e.begin()->first.Scalar(), group = defaults_group(key);
      if (hydra_group(group) || is_null(e.begin()->second)) continue;
      const YAML::Node option = e.begin()->second;  // a copy: the iterator holding the pair is a temporary
      what = "config group " + quote(group) + " (" + quote(key + ": " + (option.IsScalar() ? option.Scalar() : show(option))) + ")";
    } else {
      key_fail(ctx, at_or(e, d), p, "expected a defaults-list entry (a config name or one 'group: option'), got " + show(e));
    }
    key_fail(ctx, at_or(e, d), p, "Hydra would compose " + what + " into this config; onnxquant reads this file "
             "alone (only _self_ and hydra/ groups can be ignored): put those keys into this file and remove the entry");
  }
}

Config build(YAML::Node root, const std::string& source, std::time_t now) {
  Config cfg;
  cfg.source = source;
  cfg.load_time = now;
  Ctx ctx{source, now, &cfg.warnings};
  MapReader top(ctx, root, "");
  cfg.operation_mode = read_operation_mode(ctx, top);
  read_general(ctx, top.get("general"), cfg.general);
  {
    const YAML::Node gmp = child(top.get("general"), "model_path");
    read_model(ctx, top.get("model"), cfg.model, gmp && !gmp.IsNull());
  }
  read_dataset(ctx, top.get("dataset"), cfg.dataset);
  read_preprocessing(ctx, top.get("preprocessing"), cfg.preprocessing);
  YAML::Node q = top.get("quantization");
  cfg.has_quantization = q.IsDefined();  // `quantization:` with no keys is present, every key at its default
  if (!cfg.has_quantization && cfg.operation_mode != OperationMode::Evaluation)
    key_fail2(ctx, q, "quantization",
              "section missing; operation_mode '" + std::string(to_string(cfg.operation_mode)) + "' requires it",
              "operation_mode", top.get("operation_mode"));
  read_quantization(ctx, q, cfg.quantization);
  cfg.hydra_run_dir = read_hydra_dir(ctx, top.get("hydra"));
  check_defaults_list(ctx, child(root, "defaults"));  // not marked as read: a harmless list keeps its "ignored" warning
  top.finish_warn(kIgnored);
  check_rules(ctx, root, cfg);
  for (auto& w : cfg.warnings) w = escape_controls(w);  // a key may hold a newline: one line each
  return cfg;
}

std::string format_time(std::time_t t, const char* fmt_str) {
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[128];
  size_t n = std::strftime(buf, sizeof buf, fmt_str, &tm);
  return std::string(buf, n);
}

}  // namespace

Config load_config_from_string(const std::string& yaml_text, const std::vector<std::string>& overrides,
                               const std::string& source_name) {
  YAML::Node root;
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(yaml_text);
    if (!docs.empty()) root = docs[0];
    for (size_t i = 1; i < docs.size(); ++i)
      if (!is_null(docs[i]))
        fail(ErrorKind::Config, "{}:{}: a second YAML document ('---'); a config file holds one", source_name,
             docs[i].Mark().line + 1);
  } catch (const YAML::Exception& e) {
    fail(ErrorKind::Config, "{}:{}:{}: YAML syntax error: {}", source_name, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  if (is_null(root)) root = YAML::Node(YAML::NodeType::Map);
  {
    NodeMemo<bool> seen;
    check_duplicate_keys(root, "", TreeOrigin{source_name}, seen);
  }
  root.reset(MergeResolver(source_name).resolve(root, ""));
  if (!root.IsMap()) fail(ErrorKind::Config, "{}: expected a map of sections at the top level, got {}", source_name, show(root));
  for (const auto& ov : overrides) apply_override(root, ov);
  return build(root, source_name, std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()));
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(ErrorKind::Config, "config file not found: {}", path);
  if (std::filesystem::is_directory(path, ec)) fail(ErrorKind::Config, "config file is a directory: {}", path);
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorKind::Config, "cannot open config file: {}", path);
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail(ErrorKind::Config, "cannot read config file: {}", path);
  return load_config_from_string(ss.str(), overrides, path);
}

std::string resolve_output_dir(const Config& cfg, const std::string& cli_output_dir) {
  if (!cli_output_dir.empty()) return cli_output_dir;
  if (!cfg.hydra_run_dir.empty()) return cfg.hydra_run_dir;
  return "experiments_outputs/" + format_time(cfg.load_time, "%Y_%m_%d_%H_%M_%S");
}

}  // namespace oq::config
