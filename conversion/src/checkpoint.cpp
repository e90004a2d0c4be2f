#include "snn/conversion/checkpoint.h"

#include "snn/error.h"
#include "snn/network/atomic_file.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

namespace snn::conversion {

namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little, "checkpoints assume a little-endian host");

namespace {

constexpr std::string_view kMagic = "SNNCKPT1";

struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
  template <typename T>
  void value(const T& v) {
    add(&v, sizeof v);
  }
};

// Writes values and hashes every byte written.
class Writer {
 public:
  explicit Writer(std::ostream& out) : out_(out) {}
  void bytes(const void* data, std::size_t n) {
    fnv_.add(data, n);
    out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  }
  template <typename T>
  void value(T v) {
    bytes(&v, sizeof v);
  }
  void floats(const std::vector<float>& v) { bytes(v.data(), v.size() * sizeof(float)); }
  std::uint64_t hash() const { return fnv_.h; }

 private:
  std::ostream& out_;
  Fnv fnv_;
};

// Reads values from the file's bytes, refusing to read past the end.
class CheckpointReader {
 public:
  CheckpointReader(const fs::path& file, std::string_view bytes) : file_(file), bytes_(bytes) {}
  template <typename T>
  T value(const char* what) {
    T v;
    take(&v, sizeof v, what);
    return v;
  }
  void take(void* dst, std::size_t n, const char* what) {
    if (n > remaining())
      throw Error("'{}': truncated checkpoint: {} needs {} bytes at offset {}, the file has {} left", file_.string(), what, n,
                  pos_, remaining());
    if (n) std::memcpy(dst, bytes_.data() + pos_, n);
    pos_ += n;
  }
  std::size_t remaining() const { return bytes_.size() - pos_; }
  std::size_t pos() const { return pos_; }

 private:
  const fs::path& file_;
  std::string_view bytes_;
  std::size_t pos_ = 0;
};

}  // namespace

void save_checkpoint(const fs::path& file, const TrainCheckpoint& c) {
  const std::size_t n = c.weights.size();
  if (c.adam_m.size() != n || c.adam_v.size() != n)
    throw Error("cannot save checkpoint '{}': {} weight tensors but {} and {} moment tensors", file.string(), n, c.adam_m.size(),
                c.adam_v.size());
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t size = c.weights[k].data.size();
    if (size != c.weights[k].rows * c.weights[k].cols || c.adam_m[k].size() != size || c.adam_v[k].size() != size)
      throw Error("cannot save checkpoint '{}': tensor {} [{}, {}] has {} values and {} and {} moments", file.string(), k,
                  c.weights[k].rows, c.weights[k].cols, size, c.adam_m[k].size(), c.adam_v[k].size());
  }
  if (c.epochs.size() != c.epochs_done)
    throw Error("cannot save checkpoint '{}': {} epoch reports for {} epochs", file.string(), c.epochs.size(), c.epochs_done);
  write_file_atomically(file, [&](std::ostream& out) {
    Writer w(out);
    w.bytes(kMagic.data(), kMagic.size());
    w.value<std::uint64_t>(c.fingerprint);
    w.value<std::uint64_t>(c.epochs_done);
    w.value<std::uint64_t>(c.step);
    w.value<double>(c.seconds);
    w.value<std::uint64_t>(c.epochs.size());
    for (const auto& e : c.epochs) {
      w.value<double>(e.loss);
      w.value<double>(e.train_accuracy);
      w.value<double>(e.seconds);
    }
    w.value<std::uint64_t>(n);
    for (const auto& m : c.weights) {
      w.value<std::uint64_t>(m.rows);
      w.value<std::uint64_t>(m.cols);
    }
    for (std::size_t k = 0; k < n; ++k) {
      w.floats(c.weights[k].data);
      w.floats(c.adam_m[k]);
      w.floats(c.adam_v[k]);
    }
    const std::uint64_t hash = w.hash();
    out.write(reinterpret_cast<const char*>(&hash), sizeof hash);
  });
}

TrainCheckpoint load_checkpoint(const fs::path& file) {
  std::error_code ec;
  if (fs::is_directory(file, ec)) throw Error("cannot read checkpoint '{}': it is a directory", file.string());
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("cannot read checkpoint '{}': no such file or not readable", file.string());
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw Error("cannot read checkpoint '{}': read error", file.string());

  if (bytes.size() < kMagic.size() || std::string_view(bytes).substr(0, kMagic.size()) != kMagic)
    throw Error("'{}' is not an snnsim training checkpoint (expected the magic '{}')", file.string(), kMagic);
  if (bytes.size() < kMagic.size() + sizeof(std::uint64_t))
    throw Error("'{}': truncated checkpoint: {} bytes", file.string(), bytes.size());
  // The checksum first: a damaged file is reported as such, not as whatever
  // field the damage happens to hit.
  const std::size_t body = bytes.size() - sizeof(std::uint64_t);
  std::uint64_t stored = 0;
  std::memcpy(&stored, bytes.data() + body, sizeof stored);
  Fnv fnv;
  fnv.add(bytes.data(), body);
  if (fnv.h != stored)
    throw Error("'{}': corrupt checkpoint: checksum {:016x} does not match the contents ({:016x})", file.string(), stored, fnv.h);

  CheckpointReader r(file, std::string_view(bytes).substr(0, body));
  std::string magic(kMagic.size(), '\0');
  r.take(magic.data(), magic.size(), "magic");
  TrainCheckpoint c;
  c.fingerprint = r.value<std::uint64_t>("fingerprint");
  c.epochs_done = r.value<std::uint64_t>("epoch count");
  c.step = r.value<std::uint64_t>("step count");
  c.seconds = r.value<double>("seconds");
  const auto reports = r.value<std::uint64_t>("report count");
  if (reports != c.epochs_done)
    throw Error("'{}': inconsistent checkpoint: {} epoch reports for {} completed epochs", file.string(), reports, c.epochs_done);
  if (reports > r.remaining() / (3 * sizeof(double)))
    throw Error("'{}': truncated checkpoint: {} epoch reports", file.string(), reports);
  for (std::uint64_t e = 0; e < reports; ++e) {
    EpochReport rep;
    rep.epoch = static_cast<std::size_t>(e + 1);
    rep.loss = r.value<double>("epoch report");
    rep.train_accuracy = r.value<double>("epoch report");
    rep.seconds = r.value<double>("epoch report");
    c.epochs.push_back(rep);
  }
  const auto tensors = r.value<std::uint64_t>("tensor count");
  if (tensors == 0 || tensors > r.remaining() / (2 * sizeof(std::uint64_t)))
    throw Error("'{}': corrupt checkpoint: {} tensors", file.string(), tensors);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> shapes;
  std::uint64_t total = 0;
  for (std::uint64_t k = 0; k < tensors; ++k) {
    const auto rows = r.value<std::uint64_t>("tensor shape");
    const auto cols = r.value<std::uint64_t>("tensor shape");
    std::uint64_t size = 0;
    // Three copies (weights, m, v) of rows * cols floats must fit in what is left.
    if (rows == 0 || cols == 0 || __builtin_mul_overflow(rows, cols, &size) || size > r.remaining() / (3 * sizeof(float)))
      throw Error("'{}': corrupt checkpoint: tensor {} has shape [{}, {}]", file.string(), k, rows, cols);
    total += size;
    shapes.emplace_back(rows, cols);
  }
  if (total * 3 * sizeof(float) != r.remaining())
    throw Error("'{}': corrupt checkpoint: the shapes need {} bytes of data, the file holds {}", file.string(),
                total * 3 * sizeof(float), r.remaining());
  for (const auto& [rows, cols] : shapes) {
    Matrix m(rows, cols);
    std::vector<float> mo(m.data.size()), ve(m.data.size());
    r.take(m.data.data(), m.data.size() * sizeof(float), "weights");
    r.take(mo.data(), mo.size() * sizeof(float), "Adam moments");
    r.take(ve.data(), ve.size() * sizeof(float), "Adam moments");
    c.weights.push_back(std::move(m));
    c.adam_m.push_back(std::move(mo));
    c.adam_v.push_back(std::move(ve));
  }
  return c;
}

std::uint64_t training_fingerprint(const TrainConfig& config, const Dataset& train, int blas_threads) {
  Fnv f;
  f.add("snnsim-train-1", 14);
  const NetworkSpec& s = config.network;
  f.value<std::uint64_t>(s.inputs());
  f.value<std::uint64_t>(s.layers.size());
  for (const auto& l : s.layers) {
    f.value<std::uint64_t>(static_cast<std::uint64_t>(l.kind));
    f.value<std::uint64_t>(l.outputs);
    // Only for non-dense layers, so a dense chain's fingerprint (and its old
    // checkpoints) stay as they were.
    if (l.kind != LayerKind::Dense)
      for (std::size_t v : {l.kernel_h, l.kernel_w, l.stride_h, l.stride_w, l.pad_h, l.pad_w}) f.value<std::uint64_t>(v);
  }
  if (!s.input.flat()) {
    f.value<std::uint64_t>(s.input.channels);
    f.value<std::uint64_t>(s.input.height);
    f.value<std::uint64_t>(s.input.width);
  }
  if (s.dropout_at != DropoutAt::Hidden) f.value<std::uint64_t>(static_cast<std::uint64_t>(s.dropout_at) + 100);
  if (config.init != Init::Uniform) f.value<std::uint64_t>(static_cast<std::uint64_t>(config.init) + 200);
  f.value<std::uint8_t>(s.output_relu);
  f.value<float>(s.dropout);
  f.value<std::uint64_t>(config.batch_size);
  f.value<float>(config.adam.learning_rate);
  f.value<float>(config.adam.beta1);
  f.value<float>(config.adam.beta2);
  f.value<float>(config.adam.epsilon);
  f.value<float>(config.init_range);
  f.value<std::uint64_t>(config.seed);
  f.value<std::int64_t>(blas_threads);
  const std::size_t n = config.train_samples == 0 ? train.count : std::min(config.train_samples, train.count);
  f.value<std::uint64_t>(n);
  f.value<std::uint64_t>(train.rows);
  f.value<std::uint64_t>(train.cols);
  f.add(train.pixels.data(), std::min(train.pixels.size(), n * train.image_size()));
  f.add(train.labels.data(), std::min(train.labels.size(), n));
  return f.h;
}

}  // namespace snn::conversion
