// Image-folder data sets: root/<class>/*.{jpg,jpeg,png,bmp,gif} (extensions case-insensitive; labels = class index)
// or a flat folder of images (unlabelled). Classes are the sorted sub-folder names, or the sorted
// DataOptions::class_names (as ST's loader numbers them; unlisted sub-folders are ignored, every listed class
// must have a folder; an empty class folder keeps its label, with a warning, as Keras numbers it). Files are
// sorted by name within their class; sub-folders of a class folder are not read (one warning counts their
// images). Images are decoded and preprocessed one sample at a time (see preprocess.h).
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace oq::data {

struct ImageEntry {
  std::string path;
  int64_t label = -1;  // -1: unlabelled
};

// The sorted file list of an image folder (before selection) and its class names (empty for a flat folder).
// Io/Data/Config errors naming the path.
std::vector<ImageEntry> scan_image_folder(const std::string& root, const std::vector<std::string>& class_names,
                                          std::vector<std::string>* classes_out);

// Opens o.path as an image folder for a single-input model.
DatasetPtr open_image_folder(const DataOptions& o, const std::vector<InputSpec>& inputs);

}  // namespace oq::data
