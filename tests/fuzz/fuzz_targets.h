// The bodies of the fuzz targets, shared by the libFuzzer entry points
// (tests/fuzz/fuzz_*.cpp, built with clang) and by test_fuzz_corpus, which
// replays every committed corpus input through them in the normal test suite
// (any compiler), so inputs that once crashed stay regression tests in CI.
//
// Contract of each target: any bytes either parse into a value that satisfies
// the parser's documented invariants, or raise snn::Error. Anything else (a
// crash, another exception, a broken invariant) aborts.
#pragma once

#include "snn/error.h"
#include "snn/network/dataset.h"
#include "snn/network/npy.h"
#include "snn/network/weights.h"
#include "snn/tool/config.h"

#include <zlib.h>

#include <unistd.h>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace snn::fuzz {

namespace fs = std::filesystem;

// Stops the run with a message: libFuzzer keeps the input that got here.
[[noreturn]] inline void broken(const char* what) {
  std::fprintf(stderr, "fuzz: invariant broken: %s\n", what);
  std::abort();
}

// One scratch directory per process, made on first use and removed at exit
// (libFuzzer runs one input at a time, so the fixed file names never collide).
inline const fs::path& scratch_dir() {
  struct Scratch {
    fs::path dir = fs::temp_directory_path() / ("snnsim_fuzz_" + std::to_string(::getpid()));
    Scratch() { fs::create_directories(dir); }
    ~Scratch() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  };
  static const Scratch scratch;
  return scratch.dir;
}

inline void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) broken("cannot write the scratch file");
}

// A gzip member of `bytes`, made with zlib (not with the reader under test),
// so the fuzzer's mutations of the plain bytes reach the IDX checks through
// the gzip path too.
inline std::string gzip(std::string_view bytes) {
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) broken("deflateInit2");
  std::string out(deflateBound(&zs, static_cast<uLong>(bytes.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) broken("deflate");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

/// IDX: byte 0 holds flags (bit 0: gzip the image file, bit 1: gzip the label
/// file, bit 2: name the files .gz even when not gzipped), byte 1 is
/// num_classes - 1, byte 2 is the share of the rest that is the image file (in
/// 256ths); the rest is the image file's bytes followed by the label file's.
inline void idx_one(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return;
  const std::uint8_t flags = data[0];
  const std::size_t classes = std::size_t{data[1]} + 1;
  const std::string_view rest(reinterpret_cast<const char*>(data + 3), size - 3);
  const std::size_t split = rest.size() * data[2] / 255;
  const std::string_view images = rest.substr(0, split);
  const std::string_view labels = rest.substr(split);
  const bool gz_names = flags & 4;
  const fs::path image_path = scratch_dir() / (gz_names || (flags & 1) ? "images.gz" : "images");
  const fs::path label_path = scratch_dir() / (gz_names || (flags & 2) ? "labels.gz" : "labels");
  write_bytes(image_path, flags & 1 ? std::string_view(gzip(images)) : images);
  write_bytes(label_path, flags & 2 ? std::string_view(gzip(labels)) : labels);
  try {
    const Dataset d = read_idx(image_path, label_path, classes);
    if (d.count == 0 || d.rows == 0 || d.cols == 0) broken("read_idx returned an empty dimension");
    if (d.pixels.size() != d.count * d.rows * d.cols) broken("pixel count != count * rows * cols");
    if (d.labels.size() != d.count) broken("label count != image count");
    if (d.num_classes != classes) broken("num_classes not kept");
    for (auto l : d.labels)
      if (l >= classes) broken("a label >= num_classes was accepted");
    // Raw files must be exactly header + data: nothing may be silently ignored.
    if (!(flags & 1) && images.size() != 16 + d.pixels.size()) broken("raw image file size != header + data");
    if (!(flags & 2) && labels.size() != 8 + d.labels.size()) broken("raw label file size != header + data");
  } catch (const Error&) {}
  fs::remove(image_path);
  fs::remove(label_path);
}

/// .npy: the bytes are the file; read_npy and read_npy_shape must agree.
inline void npy_file_one(std::string_view bytes) {
  const fs::path path = scratch_dir() / "fuzz.npy";
  write_bytes(path, bytes);
  bool shape_ok = false;
  NpyShape shape;
  try {
    shape = read_npy_shape(path);
    shape_ok = true;
  } catch (const Error&) {}
  try {
    const Matrix m = read_npy(path);
    if (!shape_ok) broken("read_npy accepted what read_npy_shape rejected");
    if (m.rows != shape.rows || m.cols != shape.cols) broken("read_npy and read_npy_shape disagree on the shape");
    if (m.data.size() != m.rows * m.cols) broken("matrix size != rows * cols");
    // What was read writes back as a valid file of the same shape and bits
    // (compared as bits: a NaN read from the file must come back as that NaN).
    write_bytes(path, npy_bytes(m));
    const Matrix back = read_npy(path);
    if (back.rows != m.rows || back.cols != m.cols ||
        (!m.data.empty() && std::memcmp(back.data.data(), m.data.data(), m.data.size() * sizeof(float)) != 0))
      broken("write/read round trip changed the matrix");
  } catch (const Error&) {
    if (shape_ok && bytes.size() > 0) {
      // read_npy_shape checks the header and the file size, read_npy nothing more.
      broken("read_npy rejected what read_npy_shape accepted");
    }
  }
  fs::remove(path);
}

/// A weight manifest: the bytes are manifest.json in a directory that also
/// holds valid layers fc1.npy [5, 4], fc2.npy [3, 5] and a.npy [4, 3], so the
/// fuzzer can reach the checks of layer files against the manifest.
inline void manifest_one(std::string_view bytes) {
  const fs::path dir = scratch_dir() / "weights";
  static const bool made = [&] {
    fs::create_directories(dir);
    auto layer = [&](const char* name, std::size_t rows, std::size_t cols) {
      Matrix m(rows, cols);
      for (std::size_t i = 0; i < m.data.size(); ++i) m.data[i] = static_cast<float>(i % 5) * 0.25f - 0.5f;
      write_bytes(dir / name, npy_bytes(m));
    };
    layer("fc1.npy", 5, 4);
    layer("fc2.npy", 3, 5);
    layer("a.npy", 4, 3);
    return true;
  }();
  (void)made;
  write_bytes(dir / kManifestFile, bytes);
  try {
    const WeightSet w = load_weights(dir);
    if (w.layers.empty()) broken("load_weights returned no layers");
    if (w.names.size() != w.layers.size() || w.files.size() != w.layers.size()) broken("names/files do not match the layers");
    for (std::size_t i = 0; i < w.layers.size(); ++i) {
      const Matrix& m = w.layers[i];
      if (m.data.size() != m.rows * m.cols) broken("layer size != rows * cols");
      if (i > 0 && m.cols != w.layers[i - 1].rows) broken("layer shapes do not chain");
      for (float v : m.data)
        if (!std::isfinite(v)) broken("a non-finite weight was accepted");
    }
  } catch (const Error&) {}
}

/// .npy reader and manifest loader in one target: byte 0 even -> the rest is
/// a .npy file, odd -> the rest is a manifest.json.
inline void npy_one(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    npy_file_one(rest);
  } else {
    manifest_one(rest);
  }
}

/// Config: any bytes either parse into a valid config or raise snn::Error; a
/// config that parsed must also print and parse again to the same text.
inline void config_one(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto config = tool::parse_config(text, "fuzz.toml");
    const std::string printed = tool::to_toml(config);
    const auto again = tool::parse_config(printed, "resolved.toml");
    if (tool::to_toml(again) != printed) broken("to_toml(parse(to_toml(c))) != to_toml(c)");
  } catch (const Error&) {}
}

}  // namespace snn::fuzz
