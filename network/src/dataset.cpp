#include "snn/network/dataset.h"

#include "snn/error.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <system_error>

#ifndef SNNSIM_SOURCE_DIR
#error "snn_network must be compiled with SNNSIM_SOURCE_DIR (network/CMakeLists.txt)"
#endif

namespace snn {

namespace fs = std::filesystem;

namespace {

// Magic numbers: 0x00000800 | dimensions, so images 0x00000803 and labels
// 0x00000801 (unsigned bytes; read_idx_file builds the one it expects).
constexpr std::uint8_t kTypeUnsignedByte = 0x08;

std::string quoted(const fs::path& path) { return fmt::format("'{}'", path.string()); }

bool has_gz_suffix(const fs::path& path) { return path.extension() == ".gz"; }

// A sequential byte stream from a raw or gzipped file. read() fills as much of
// `dst` as the file still holds and returns how much it filled; it only returns
// less than asked at the end of the (decompressed) data.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::size_t read(std::uint8_t* dst, std::size_t n) = 0;
  /// Size of the data read() yields, when known without reading it (raw files).
  virtual bool known_size(std::uint64_t& size) const = 0;
};

class RawSource final : public ByteSource {
 public:
  RawSource(std::ifstream in, const fs::path& path, std::uint64_t size) : in_(std::move(in)), path_(path), size_(size) {}

  std::size_t read(std::uint8_t* dst, std::size_t n) override {
    in_.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (in_.bad()) throw Error("cannot read {}: read error: {}", quoted(path_), std::strerror(errno));
    return static_cast<std::size_t>(in_.gcount());
  }

  bool known_size(std::uint64_t& size) const override {
    size = size_;
    return true;
  }

 private:
  std::ifstream in_;
  fs::path path_;
  std::uint64_t size_;
};

// Streams the decompressed bytes so that a bogus header in a small .gz file
// cannot make us allocate gigabytes before noticing the data is not there.
// Concatenated gzip members (what `cat a.gz b.gz` makes, and gunzip accepts)
// are read as one stream.
class GzipSource final : public ByteSource {
 public:
  GzipSource(std::ifstream in, const fs::path& path) : in_(std::move(in)), path_(path), buffer_(1 << 16) {
    // 16 + MAX_WBITS: gzip wrapper only (no zlib or raw deflate), CRC and length checked.
    if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) throw Error("cannot read {}: zlib initialisation failed", quoted(path_));
  }
  ~GzipSource() override { inflateEnd(&zs_); }
  GzipSource(const GzipSource&) = delete;
  GzipSource& operator=(const GzipSource&) = delete;

  std::size_t read(std::uint8_t* dst, std::size_t n) override {
    std::size_t filled = 0;
    while (filled < n) {
      if (zs_.avail_in == 0 && !refill()) {
        if (member_ended_) break;  // clean end after a complete member
        throw Error("corrupt gzip {}: the compressed stream ends early (truncated .gz file?)", quoted(path_));
      }
      if (member_ended_) {
        // More input after a complete member: it must be another member.
        inflateReset(&zs_);
        member_ended_ = false;
        after_member_ = true;
      }
      const std::size_t chunk = std::min<std::size_t>(n - filled, std::numeric_limits<uInt>::max() / 2);
      zs_.next_out = dst + filled;
      zs_.avail_out = static_cast<uInt>(chunk);
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      filled += chunk - zs_.avail_out;
      if (ret == Z_STREAM_END) {
        member_ended_ = true;
        after_member_ = false;
      } else if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT || ret == Z_STREAM_ERROR) {
        if (after_member_) {
          throw Error("corrupt gzip {}: bytes after the end of the gzip stream are not another gzip member", quoted(path_));
        }
        throw Error("corrupt gzip {}: {}", quoted(path_), zs_.msg ? zs_.msg : "invalid compressed data");
      } else if (ret == Z_MEM_ERROR) {
        throw Error("cannot read {}: out of memory while decompressing", quoted(path_));
      }
      // Z_OK, or Z_BUF_ERROR (no progress: input exhausted, refilled next turn).
    }
    return filled;
  }

  bool known_size(std::uint64_t&) const override { return false; }

 private:
  bool refill() {
    if (eof_) return false;
    in_.read(reinterpret_cast<char*>(buffer_.data()), static_cast<std::streamsize>(buffer_.size()));
    if (in_.bad()) throw Error("cannot read {}: read error: {}", quoted(path_), std::strerror(errno));
    const auto got = static_cast<std::size_t>(in_.gcount());
    if (got == 0) {
      eof_ = true;
      return false;
    }
    zs_.next_in = buffer_.data();
    zs_.avail_in = static_cast<uInt>(got);
    return true;
  }

  std::ifstream in_;
  fs::path path_;
  std::vector<Bytef> buffer_;
  z_stream zs_{};
  bool eof_ = false;
  bool member_ended_ = false;
  bool after_member_ = false;
};

// Opens `path` for reading, deciding raw vs gzip. The decision is by content:
// the gzip magic 1f 8b (an IDX file starts with 00 00, so the two cannot be
// confused), which also reads a gzipped file whose name lacks .gz. The .gz
// suffix is checked against it: a file named .gz without the magic is reported
// as corrupt rather than silently read as raw.
std::unique_ptr<ByteSource> open_source(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) throw Error("cannot read {}: no such file", quoted(path));
  if (ec) throw Error("cannot read {}: {}", quoted(path), ec.message());
  if (status.type() == fs::file_type::directory) throw Error("cannot read {}: it is a directory, not an IDX file", quoted(path));
  if (status.type() != fs::file_type::regular) throw Error("cannot read {}: not a regular file", quoted(path));
  const std::uint64_t size = fs::file_size(path, ec);
  if (ec) throw Error("cannot read {}: {}", quoted(path), ec.message());
  if (size == 0) throw Error("cannot read {}: empty file (0 bytes)", quoted(path));

  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read {}: {}", quoted(path), std::strerror(errno));
  std::array<char, 2> head{};
  in.read(head.data(), 2);
  const bool gzip_magic =
      in.gcount() == 2 && static_cast<std::uint8_t>(head[0]) == 0x1f && static_cast<std::uint8_t>(head[1]) == 0x8b;
  in.clear();
  in.seekg(0);
  if (gzip_magic) return std::make_unique<GzipSource>(std::move(in), path);
  if (has_gz_suffix(path)) {
    throw Error("corrupt gzip {}: the name ends in .gz but the file does not start with the gzip magic 1f 8b", quoted(path));
  }
  return std::make_unique<RawSource>(std::move(in), path, size);
}

std::uint32_t big_endian32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

// Reads a whole IDX file of unsigned bytes with exactly `ndims` dimensions,
// checking its header against the data that follows.
IdxArray read_idx_file(const fs::path& path, std::uint32_t ndims, const char* kind) {
  const std::uint32_t expected_magic = 0x00000800u | ndims;
  const auto source = open_source(path);
  std::uint64_t file_size = 0;
  const bool raw = source->known_size(file_size);
  const char* after = raw ? "" : " after gunzip";

  std::array<std::uint8_t, 4> magic_bytes{};
  const std::size_t got_magic = source->read(magic_bytes.data(), 4);
  if (got_magic == 0) throw Error("cannot read {}: empty file{}", quoted(path), after);
  const std::size_t header_size = 4 + 4 * std::size_t{ndims};
  if (got_magic < 4) {
    throw Error("cannot read {}: truncated header: the file holds {} bytes{}, an {} file's header needs {}", quoted(path),
                got_magic, after, kind, header_size);
  }
  const std::uint32_t magic = big_endian32(magic_bytes.data());
  if (magic_bytes[0] != 0 || magic_bytes[1] != 0 || magic_bytes[2] != kTypeUnsignedByte) {
    throw Error(
        "cannot read {}: bad magic 0x{:08x}, expected 0x{:08x} for an {} file{}", quoted(path), magic, expected_magic, kind,
        magic_bytes[0] == 0 && magic_bytes[1] == 0 ? fmt::format(" (element type 0x{:02x} is not unsigned byte)", magic_bytes[2])
                                                   : std::string(" (not an IDX file)"));
  }
  if (magic_bytes[3] != ndims) {
    throw Error("cannot read {}: bad magic 0x{:08x}: wrong dimension count {}, an {} file has {} dimensions (magic 0x{:08x})",
                quoted(path), magic, magic_bytes[3], kind, ndims, expected_magic);
  }

  std::vector<std::uint8_t> dim_bytes(4 * std::size_t{ndims});
  const std::size_t got_dims = source->read(dim_bytes.data(), dim_bytes.size());
  if (got_dims < dim_bytes.size()) {
    throw Error("cannot read {}: truncated header: the file holds {} bytes{}, an {} file's header needs {}", quoted(path),
                4 + got_dims, after, kind, header_size);
  }
  IdxArray array;
  std::string shape;
  for (std::uint32_t d = 0; d < ndims; ++d) {
    array.dims.push_back(big_endian32(dim_bytes.data() + 4 * d));
    shape += fmt::format("{}{}", d ? " x " : "", array.dims.back());
  }
  // Checked multiplication: three 32-bit dimensions can overflow 64 bits, and
  // an unchecked product would allocate a wrapped-around (wrong) size.
  std::size_t elements = 1;
  for (const std::uint32_t dim : array.dims) {
    if (__builtin_mul_overflow(elements, std::size_t{dim}, &elements) ||
        elements > std::numeric_limits<std::size_t>::max() - header_size) {
      throw Error("cannot read {}: dimensions {} overflow: their product does not fit in a memory size", quoted(path), shape);
    }
  }
  for (std::uint32_t d = 0; d < ndims; ++d) {
    if (array.dims[d] == 0) throw Error("cannot read {}: dimension {} of {} is zero ({})", quoted(path), d, ndims, shape);
  }

  // A raw file's length is known: check it before allocating anything.
  if (raw) {
    const std::uint64_t expected = header_size + elements;
    if (file_size < expected) {
      throw Error(
          "cannot read {}: truncated data: the header says {} ({} bytes of data), the file holds {} after the {}-byte header",
          quoted(path), shape, elements, file_size - header_size, header_size);
    }
    if (file_size > expected) {
      throw Error("cannot read {}: {} trailing bytes after the {} bytes the header announces ({})", quoted(path),
                  file_size - expected, elements, shape);
    }
  }

  // Grow as data arrives (gzip): memory follows what the file really holds. A
  // raw file's size is verified, so it gets its whole buffer at once.
  if (raw) array.data.reserve(elements);
  constexpr std::size_t kMinChunk = std::size_t{1} << 20;
  std::size_t filled = 0;
  while (filled < elements) {
    const std::size_t target = std::min(elements, std::max(kMinChunk, 2 * filled));
    array.data.resize(target);
    const std::size_t got = source->read(array.data.data() + filled, target - filled);
    filled += got;
    if (filled < target) {
      throw Error("cannot read {}: truncated data: the header says {} ({} bytes of data), the file holds {}{}", quoted(path),
                  shape, elements, filled, after);
    }
  }
  // Reading on to the end also makes zlib check the gzip CRC and length.
  std::array<std::uint8_t, 1 << 14> rest{};
  std::uint64_t trailing = 0;
  for (std::size_t got; (got = source->read(rest.data(), rest.size())) > 0;) {
    trailing += got;
    if (trailing > (std::uint64_t{1} << 30)) break;  // enough to report; do not inflate a bomb
  }
  if (trailing > 0) {
    throw Error("cannot read {}: {}{} trailing bytes after the {} data bytes the header announces ({}){}", quoted(path),
                trailing > (std::uint64_t{1} << 30) ? "over " : "", trailing, elements, shape,
                raw ? "" : ", counted after gunzip");
  }
  return array;
}

const std::array<const char*, 4> kSplitFiles = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                                "t10k-labels-idx1-ubyte"};

}  // namespace

Dataset read_idx(const fs::path& images, const fs::path& labels, std::size_t num_classes) {
  if (num_classes == 0 || num_classes > 256) {
    throw Error("reading {}: num_classes = {} is out of range: byte labels allow 1..256", quoted(labels), num_classes);
  }
  IdxArray image_array = read_idx_file(images, 3, "idx3-ubyte image");
  IdxArray label_array = read_idx_file(labels, 1, "idx1-ubyte label");
  if (image_array.dims[0] != label_array.dims[0]) {
    throw Error("image count {} in {} differs from label count {} in {}", image_array.dims[0], quoted(images),
                label_array.dims[0], quoted(labels));
  }
  for (std::size_t i = 0; i < label_array.data.size(); ++i) {
    if (label_array.data[i] >= num_classes) {
      throw Error("label out of range in {}: label {} at index {} is not below the class count {}", quoted(labels),
                  label_array.data[i], i, num_classes);
    }
  }
  Dataset dataset;
  dataset.count = image_array.dims[0];
  dataset.rows = image_array.dims[1];
  dataset.cols = image_array.dims[2];
  dataset.num_classes = num_classes;
  dataset.pixels = std::move(image_array.data);
  dataset.labels = std::move(label_array.data);
  return dataset;
}

fs::path data_dir() {
  // An empty SNNSIM_DATA counts as unset: `SNNSIM_DATA= cmd` should not mean "the current directory".
  const char* env = std::getenv("SNNSIM_DATA");
  if (env != nullptr && *env != '\0') return fs::path(env);
  return fs::path(SNNSIM_SOURCE_DIR) / "data";
}

namespace {

struct Resolved {
  fs::path dir;
  bool by_name = false;  // looked up under data_dir()
};

Resolved resolve(const std::string& name_or_path) {
  if (name_or_path.empty()) throw Error("no dataset given: name one (e.g. mnist10k) or give a directory");
  const fs::path given(name_or_path);
  std::error_code ec;
  if (name_or_path.find('/') != std::string::npos || fs::is_directory(given, ec)) return {given, false};
  return {data_dir() / given, true};
}

}  // namespace

fs::path resolve_dataset(const std::string& name_or_path) { return resolve(name_or_path).dir; }

DatasetSplits load_dataset(const std::string& name_or_path, std::size_t num_classes) {
  const auto [dir, by_name] = resolve(name_or_path);
  std::error_code ec;
  const fs::file_status status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found) {
    if (by_name) {
      throw Error(
          "dataset '{}' not found: {} does not exist (run tools/fetch-data {}, or set SNNSIM_DATA to the directory holding it)",
          name_or_path, quoted(dir), name_or_path);
    }
    throw Error("dataset directory {} does not exist", quoted(dir));
  }
  if (ec) throw Error("cannot read dataset directory {}: {}", quoted(dir), ec.message());
  if (status.type() != fs::file_type::directory) {
    throw Error("dataset {} is not a directory: a dataset is a directory holding the four IDX files", quoted(dir));
  }

  // Prefer the raw file when both exist: it is what a user unpacked on purpose
  // (torchvision's MNIST/raw/ holds both), and it reads faster.
  std::array<fs::path, 4> files;
  std::vector<std::string> missing;
  for (std::size_t k = 0; k < kSplitFiles.size(); ++k) {
    const fs::path raw = dir / kSplitFiles[k];
    const fs::path gz = dir / (std::string(kSplitFiles[k]) + ".gz");
    if (fs::exists(raw, ec)) {
      files[k] = raw;
    } else if (fs::exists(gz, ec)) {
      files[k] = gz;
    } else {
      missing.push_back(kSplitFiles[k]);
    }
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += fmt::format("{}{}[.gz]", list.empty() ? "" : ", ", m);
    throw Error("dataset {} is incomplete: missing {}{}", quoted(dir), list,
                by_name ? fmt::format(" (run tools/fetch-data {})", name_or_path) : std::string());
  }

  DatasetSplits splits;
  if (by_name) {
    splits.name = name_or_path;
  } else {
    // The directory's own name, also for "." or "data/mnist10k/".
    splits.name = fs::weakly_canonical(dir, ec).filename().string();
    if (ec || splits.name.empty()) splits.name = dir.string();
  }
  splits.path = dir;
  splits.train = read_idx(files[0], files[1], num_classes);
  splits.test = read_idx(files[2], files[3], num_classes);
  if (splits.train.rows != splits.test.rows || splits.train.cols != splits.test.cols) {
    throw Error("dataset {}: training images are {}x{} ({}) but test images are {}x{} ({})", quoted(dir), splits.train.rows,
                splits.train.cols, quoted(files[0]), splits.test.rows, splits.test.cols, quoted(files[2]));
  }
  return splits;
}

}  // namespace snn
