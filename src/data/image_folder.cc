#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <exception>
#include <filesystem>
#include <set>

#include "core/log.h"
#include "core/parallel.h"

namespace oq::data {

namespace fs = std::filesystem;

namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".gif";  // TF's decode_image set
}

bool hidden(const fs::path& p) {
  std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

// Other files found next to the images (not hidden, not an image extension), for one warning per scan.
struct Skipped {
  size_t count = 0;
  std::string example;
  size_t special = 0;  // named like an image but not a regular file (FIFO, socket, device)
  std::string special_example;
};

void warn_skipped(const std::string& root, const Skipped& s) {
  if (s.count)
    OQ_WARN("image folder {}: {} file(s) that are not .jpg, .jpeg, .png, .bmp or .gif images skipped (e.g. {})",
            root, s.count, s.example);
  if (s.special)
    OQ_WARN("image folder {}: {} entr{} named like an image but not a regular file (a FIFO, socket or device) "
            "skipped (e.g. {})", root, s.special, s.special == 1 ? "y" : "ies", s.special_example);
}

// Images in sub-folders of class folders, which are not read, for one warning per scan.
struct Nested {
  size_t images = 0, folders = 0;  // folders: sub-folders of class folders that hold images
  std::string example;
};

// Counts the image files anywhere under `dir` (hidden entries and symbolic links to folders aside, as Keras'
// os.walk with follow_links=False).
void count_nested(const fs::path& dir, Nested& nested) {
  const size_t before = nested.images;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    if (hidden(it->path())) {
      if (it->is_directory(e2)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(e2)) continue;
    if (!is_image_file(it->path())) continue;
    if (nested.images++ == 0) nested.example = it->path().string();
  }
  if (nested.images > before) ++nested.folders;
}

// Image files directly inside `dir`, sorted by file name (byte order). A symbolic link named like an image whose
// target cannot be read (dangling, a loop) is listed too, so that reading it fails naming it, as Keras lists it.
// Sub-folders are counted in `nested` when given.
std::vector<std::string> list_images(const fs::path& dir, Skipped& skipped, Nested* nested) {
  std::vector<std::string> r;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (hidden(it->path())) continue;
    std::error_code e2, e3;
    const fs::file_status st = it->status(e2);
    if (fs::is_directory(st)) {
      if (nested) count_nested(it->path(), *nested);
      continue;
    }
    const bool unreadable_link = it->is_symlink(e3) && (e2 || !fs::exists(st));
    if (!fs::is_regular_file(st) && !unreadable_link) {
      // A FIFO, socket or device named like an image: not read (TF would block on a FIFO), but said.
      if (is_image_file(it->path()) && skipped.special++ == 0) skipped.special_example = it->path().string();
      continue;
    }
    if (is_image_file(it->path())) {
      r.push_back(it->path().string());
    } else if (skipped.count++ == 0) {
      skipped.example = it->path().string();
    }
  }
  if (ec) fail(ErrorKind::Io, "cannot list {}: {}", dir.string(), ec.message());
  std::sort(r.begin(), r.end());
  return r;
}

}  // namespace

std::vector<ImageEntry> scan_image_folder(const std::string& root, const std::vector<std::string>& class_names,
                                          std::vector<std::string>* classes_out) {
  std::error_code ec;
  if (!fs::exists(root, ec)) fail(ErrorKind::Io, "image folder not found: {}", root);
  if (!fs::is_directory(root, ec)) fail(ErrorKind::Io, "{} is not a folder", root);
  std::vector<std::string> subdirs;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    if (!hidden(it->path()) && it->is_directory(e2)) subdirs.push_back(it->path().filename().string());
  }
  if (ec) fail(ErrorKind::Io, "cannot list {}: {}", root, ec.message());
  std::sort(subdirs.begin(), subdirs.end());

  std::vector<ImageEntry> entries;
  Skipped skipped, skipped_loose;
  Nested nested;
  std::vector<std::string> loose = list_images(root, skipped_loose, nullptr);
  if (subdirs.empty()) {
    if (!class_names.empty())
      fail(ErrorKind::Config, "dataset.class_names is given but image folder {} has no class sub-folders", root);
    if (loose.empty())
      fail(ErrorKind::Data, "image folder {} holds no images (.jpg, .jpeg, .png, .bmp, .gif){}", root,
           skipped_loose.count ? fmt::format(", only {} other file(s) such as {}{}", skipped_loose.count,
                                             skipped_loose.example,
                                             fs::path(skipped_loose.example).extension() == ".npz" ||
                                                     fs::path(skipped_loose.example).extension() == ".npy"
                                                 ? " (give the array file itself, not its folder)"
                                                 : "")
                               : "");
    warn_skipped(root, skipped_loose);
    for (auto& p : loose) entries.push_back({std::move(p), -1});
    if (classes_out) classes_out->clear();
    return entries;
  }

  std::vector<std::string> classes;
  if (class_names.empty()) {
    classes = subdirs;
  } else {
    // As ST's loader (get_path_dataset): the listed classes only, numbered in sorted order.
    std::set<std::string> listed;
    for (const auto& c : class_names)
      if (!listed.insert(c).second) fail(ErrorKind::Config, "dataset.class_names lists '{}' twice", c);
    for (const auto& c : class_names)
      if (!std::binary_search(subdirs.begin(), subdirs.end(), c))
        fail(ErrorKind::Data, "class '{}' from dataset.class_names has no folder {}", c,
             (fs::path(root) / c).string());
    std::string unlisted;
    for (const auto& d : subdirs)
      if (!listed.count(d)) unlisted += (unlisted.empty() ? "'" : ", '") + d + "'";
    if (!unlisted.empty())
      OQ_WARN("image folder {}: ignoring sub-folder(s) {} that dataset.class_names does not list", root, unlisted);
    classes.assign(listed.begin(), listed.end());  // std::set: sorted by byte order, as Python's sorted()
    if (classes != class_names)
      OQ_WARN("dataset.class_names: labels follow the sorted class names (label 0 = '{}'), as ST's loader numbers "
              "them, not the order given", classes.front());
  }
  if (!loose.empty())
    OQ_WARN("image folder {}: ignoring {} image(s) next to the class sub-folders", root, loose.size());
  std::string empty;
  size_t n_empty = 0;
  for (size_t k = 0; k < classes.size(); ++k) {
    fs::path dir = fs::path(root) / classes[k];
    auto files = list_images(dir, skipped, &nested);
    // As Keras' image_dataset_from_directory: an empty class folder keeps its label, with no images.
    if (files.empty() && n_empty++ < 5) empty += (empty.empty() ? "'" : ", '") + classes[k] + "'";
    for (auto& p : files) entries.push_back({std::move(p), static_cast<int64_t>(k)});
  }
  if (entries.empty())
    fail(ErrorKind::Data, "image folder {}: none of its {} class folder(s) holds images (.jpg, .jpeg, .png, .bmp, "
         ".gif)", root, classes.size());
  if (n_empty)
    OQ_WARN("image folder {}: {} class folder(s) hold no images ({}{}); their labels are kept (as Keras' "
            "image_dataset_from_directory numbers them), with no samples", root, n_empty, empty,
            n_empty > 5 ? fmt::format(" and {} more", n_empty - 5) : "");
  warn_skipped(root, skipped);
  if (nested.images)
    OQ_WARN("image folder {}: {} image(s) in {} sub-folder(s) of class folders are not read (e.g. {}); Keras' "
            "image_dataset_from_directory reads them: move them into their class folder to use them", root,
            nested.images, nested.folders, nested.example);
  if (classes_out) *classes_out = std::move(classes);
  return entries;
}

namespace {

class ImageFolderDataset : public Dataset {
 public:
  ImageFolderDataset(const DataOptions& o, const InputSpec& input) : root_(o.path), input_(input), opts_(o) {
    // The folder first: a folder without images is the error to report, not the input shape the images
    // would have needed.
    entries_ = scan_image_folder(root_, o.class_names, &classes_);
    try {  // whether the model input can take the images at all: the error names the folder
      if (!input_.shape)
        fail(ErrorKind::Data, "model input '{}' has no known shape; image data needs [N,C,H,W] or [N,H,W,C]",
             input_.name);
      check_image_input_type(input_.name, input_.dtype);
      geom_ = resolve_geometry(input_.name, *input_.shape, o.preprocess);
    } catch (const Error& e) {
      throw Error(e.kind(), fmt::format("image folder {}: {}", root_, e.what()));
    }
    sel_ = select_indices(static_cast<int64_t>(entries_.size()), o.selection, root_);
    if (o.skip_bad_files) drop_undecodable();
  }

  int64_t size() const override { return static_cast<int64_t>(sel_.size()); }
  bool has_labels() const override { return !classes_.empty(); }
  int64_t label(int64_t i) const override {
    OQ_CHECK(has_labels(), "image folder {} has no labels", root_);
    return entry(i).label;
  }
  std::string sample_name(int64_t i) const override { return entry(i).path; }
  std::string describe() const override {
    std::string cls = classes_.empty() ? "unlabelled" : fmt::format("{} classes", classes_.size());
    std::string skipped = skipped_ ? fmt::format(", {} undecodable skipped", skipped_) : "";
    return fmt::format("image folder {} ({} of {} images{}, {}, {}x{})", root_, sel_.size(), entries_.size(), skipped,
                       cls, geom_.h, geom_.w);
  }
  const std::vector<std::string>& class_names() const override { return classes_; }

  Sample sample(int64_t i) const override { return to_sample(decode_image(entry(i).path, opts_.preprocess.color), i); }

  int64_t skipped() const override { return skipped_; }

 private:
  // dataset.skip_bad_files: every selected image is decoded (and preprocessed) once, on all threads, and those
  // that fail to decode with a data error leave the selection, named in one warning. The data set is then what the
  // run uses: its size, describe() and the samples a subset (inspection's first k) takes from it count only images
  // that decode, in every report. An I/O error (unreadable file) still stops the run.
  void drop_undecodable() {
    const auto n = static_cast<int64_t>(sel_.size());
    std::vector<std::string> why(static_cast<size_t>(n));
    std::vector<std::exception_ptr> other(static_cast<size_t>(n));
    parallel_for(n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        Image img;
        try {
          img = decode_image(entry(i).path, opts_.preprocess.color);
        } catch (const Error& err) {
          if (err.kind() == ErrorKind::Data)
            why[static_cast<size_t>(i)] = err.what();
          else
            other[static_cast<size_t>(i)] = std::current_exception();
          continue;
        } catch (...) {
          other[static_cast<size_t>(i)] = std::current_exception();
          continue;
        }
        // A decoded image whose values the model input cannot take (an integer input) is no bad file: that
        // error stops the run.
        try {
          (void)to_sample(img, i);
        } catch (...) {
          other[static_cast<size_t>(i)] = std::current_exception();
        }
      }
    });
    for (const auto& e : other)
      if (e) std::rethrow_exception(e);
    std::vector<int64_t> kept;
    std::string named;
    for (int64_t i = 0; i < n; ++i) {
      const std::string& w = why[static_cast<size_t>(i)];
      if (w.empty()) {
        kept.push_back(sel_[static_cast<size_t>(i)]);
        continue;
      }
      if (skipped_ < 5) named += (skipped_ ? "; " : "") + w;
      ++skipped_;
    }
    if (!skipped_) return;
    if (skipped_ > 5) named += fmt::format("; and {} more", skipped_ - 5);
    if (kept.empty())
      fail(ErrorKind::Data, "image folder {}: none of the {} selected images can be decoded (dataset.skip_bad_files): "
           "{}", root_, n, named);
    OQ_WARN("image folder {}: {} of the {} selected images cannot be decoded and are left out "
            "(dataset.skip_bad_files; the run uses the other {}): {}", root_, skipped_, n, kept.size(), named);
    sel_ = std::move(kept);
  }

  Sample to_sample(const Image& img, int64_t i) const {
    Sample s;
    s.emplace(input_.name, preprocess_image(img, geom_, opts_.preprocess, input_.dtype, input_.name, entry(i).path));
    return s;
  }

  const ImageEntry& entry(int64_t i) const {
    OQ_CHECK(i >= 0 && i < size(), "sample {} of {} in {}", i, size(), root_);
    return entries_[static_cast<size_t>(sel_[static_cast<size_t>(i)])];
  }

  std::string root_;
  InputSpec input_;
  DataOptions opts_;
  ImageGeometry geom_;
  std::vector<ImageEntry> entries_;
  std::vector<std::string> classes_;
  std::vector<int64_t> sel_;
  int64_t skipped_ = 0;  // selected images left out as undecodable (skip_bad_files)
};

}  // namespace

DatasetPtr open_image_folder(const DataOptions& o, const std::vector<InputSpec>& inputs) {
  if (inputs.size() != 1) {
    std::string names;
    for (const auto& in : inputs) names += (names.empty() ? "" : ", ") + in.name;
    fail(ErrorKind::Data, "image folder {} can feed only a single-input model; this one has {} inputs ({})", o.path,
         inputs.size(), names);
  }
  return std::make_shared<ImageFolderDataset>(o, inputs[0]);
}

}  // namespace oq::data
