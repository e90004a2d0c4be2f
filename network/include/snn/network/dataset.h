// Labelled image datasets in IDX format (the MNIST layout), raw or gzipped.
// Pixels stay as bytes in memory (a 60,000-image MNIST is 47 MB, not 188 MB of
// floats); pixel_value() maps a byte to the [0, 1] float the models see.
#pragma once

#include "snn/types.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace snn {

/// One split (train or test) of a dataset: `count` images of rows x cols bytes
/// and `count` labels in [0, num_classes).
struct Dataset {
  std::size_t count = 0;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t num_classes = 10;
  std::vector<std::uint8_t> pixels;  ///< count * rows * cols bytes, image-major
  std::vector<std::uint8_t> labels;  ///< count labels

  std::size_t image_size() const { return rows * cols; }
  const std::uint8_t* image(std::size_t i) const { return pixels.data() + i * image_size(); }
};

/// A pixel byte as the float the models see: byte / 255, in [0, 1].
inline float pixel_value(std::uint8_t byte) { return static_cast<float>(byte) / 255.0f; }

/// Both splits of a dataset directory.
struct DatasetSplits {
  std::string name;            ///< the name given, or the directory's name
  std::filesystem::path path;  ///< the directory read
  Dataset train;
  Dataset test;
};

/// Reads an idx3-ubyte image file and an idx1-ubyte label file (each raw, or
/// gzipped when the name ends in .gz), validating everything (see dataset.cpp).
/// Throws snn::Error naming the file and what is wrong.
///
/// A file is gunzipped when it starts with the gzip magic 1f 8b (whatever its
/// name); a name ending in .gz without that magic is an error. Checked, each an
/// snn::Error naming the file: missing file, directory, empty file, corrupt or
/// truncated gzip, truncated header, bad magic (images 0x00000803, labels
/// 0x00000801), wrong dimension count, a zero dimension, a dimension product
/// that overflows, truncated data, trailing bytes, image count != label count
/// (naming both files), a label >= num_classes (naming index and value).
/// num_classes must be in 1..256.
Dataset read_idx(const std::filesystem::path& images, const std::filesystem::path& labels, std::size_t num_classes = 10);

/// Resolves a dataset given by name ("mnist10k", "fashion-mnist": a folder under
/// data_dir()) or by path, and reads both splits: train-images-idx3-ubyte,
/// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each
/// optionally .gz (the raw file is read when both exist). A dataset whose files
/// are missing is an error listing them all; train and test images must have
/// the same rows x cols.
DatasetSplits load_dataset(const std::string& name_or_path, std::size_t num_classes = 10);

/// The directory load_dataset(name_or_path) reads, without reading it: the
/// argument itself if it contains '/' or names an existing directory, else
/// data_dir() / name_or_path. Throws snn::Error for an empty argument.
std::filesystem::path resolve_dataset(const std::string& name_or_path);

/// Where named datasets live: $SNNSIM_DATA if set and non-empty, else the data/
/// folder of the source tree snnsim was built from (compiled in as
/// SNNSIM_SOURCE_DIR), which is where tools/fetch-data puts them by default.
std::filesystem::path data_dir();

}  // namespace snn
