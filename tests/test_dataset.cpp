// IDX reading and dataset loading, on files this test writes itself: the
// expectation is always the bytes we wrote, and each malformed file must give
// an snn::Error naming that file and saying what is wrong.
#include "snn/error.h"
#include "snn/network/dataset.h"

#include <zlib.h>
#include <catch2/catch.hpp>

#include <unistd.h>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

// A fresh directory per test case, removed afterwards.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag)
      : path(fs::temp_directory_path() / ("snnsim_test_dataset_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

// Sets an environment variable for one scope and restores it after.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const std::string& n, const std::optional<std::string>& value) : name(n) {
    if (const char* v = std::getenv(n.c_str())) old = v;
    if (value) {
      ::setenv(n.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(n.c_str());
    }
  }
  ~ScopedEnv() {
    if (old) {
      ::setenv(name.c_str(), old->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
};

void put_be32(Bytes& out, std::uint32_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 24));
  out.push_back(static_cast<std::uint8_t>(v >> 16));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

Bytes idx_header(std::uint32_t magic, const std::vector<std::uint32_t>& dims) {
  Bytes out;
  put_be32(out, magic);
  for (auto d : dims) put_be32(out, d);
  return out;
}

Bytes idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, const Bytes& pixels) {
  Bytes out = idx_header(0x00000803, {count, rows, cols});
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

Bytes idx_labels(const Bytes& labels) {
  Bytes out = idx_header(0x00000801, {static_cast<std::uint32_t>(labels.size())});
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

// A gzip member written with zlib (not with the code under test).
Bytes gzip(const Bytes& data) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(data.size())) + 64);
  zs.next_in = const_cast<Bytef*>(data.data());
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void write(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// Pixels that take every byte value, in an order that is not the identity.
Bytes test_pixels(std::size_t n) {
  Bytes p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
  return p;
}

Bytes test_labels(std::size_t n) {
  Bytes l(n);
  for (std::size_t i = 0; i < n; ++i) l[i] = static_cast<std::uint8_t>((i * 7) % 10);
  return l;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Runs `f`, which must throw snn::Error whose message names `file` and contains `phrase`.
template <typename F>
void require_error(F&& f, const fs::path& file, const std::string& phrase) {
  try {
    f();
  } catch (const snn::Error& e) {
    const std::string message = e.what();
    INFO("message: " << message);
    CHECK(contains(message, file.string()));
    CHECK(contains(message, phrase));
    return;
  }
  FAIL("expected snn::Error naming " << file << " and saying '" << phrase << "'");
}

constexpr std::uint32_t kCount = 12, kRows = 5, kCols = 7;

// A valid image file and a valid label file in `dir`, raw.
std::pair<fs::path, fs::path> write_valid(const TempDir& dir) {
  const fs::path images = dir / "images-idx3-ubyte";
  const fs::path labels = dir / "labels-idx1-ubyte";
  write(images, idx_images(kCount, kRows, kCols, test_pixels(kCount * kRows * kCols)));
  write(labels, idx_labels(test_labels(kCount)));
  return {images, labels};
}

void check_matches_written(const snn::Dataset& d) {
  const Bytes pixels = test_pixels(kCount * kRows * kCols);
  const Bytes labels = test_labels(kCount);
  CHECK(d.count == kCount);
  CHECK(d.rows == kRows);
  CHECK(d.cols == kCols);
  CHECK(d.image_size() == kRows * kCols);
  CHECK(d.num_classes == 10);
  CHECK(d.pixels == pixels);
  CHECK(d.labels == labels);
  // image(i) points at the i-th image's bytes, image-major.
  for (std::size_t i = 0; i < kCount; ++i) {
    for (std::size_t k = 0; k < kRows * kCols; ++k) REQUIRE(d.image(i)[k] == pixels[i * kRows * kCols + k]);
  }
}

}  // namespace

TEST_CASE("pixel_value is byte / 255 in [0, 1]") {
  CHECK(snn::pixel_value(0) == 0.0f);
  CHECK(snn::pixel_value(255) == 1.0f);
  for (int b = 0; b < 256; ++b) {
    const double expected = b / 255.0;
    CHECK(snn::pixel_value(static_cast<std::uint8_t>(b)) == Approx(expected).margin(1e-7));
    if (b > 0) CHECK(snn::pixel_value(static_cast<std::uint8_t>(b)) > snn::pixel_value(static_cast<std::uint8_t>(b - 1)));
  }
}

TEST_CASE("IDX round trip, raw and gzipped") {
  TempDir dir("roundtrip");
  const auto files = write_valid(dir);
  const fs::path& images = files.first;
  const fs::path& labels = files.second;
  const Bytes image_bytes = idx_images(kCount, kRows, kCols, test_pixels(kCount * kRows * kCols));
  const Bytes label_bytes = idx_labels(test_labels(kCount));

  SECTION("raw") { check_matches_written(snn::read_idx(images, labels)); }
  SECTION("gzipped, named .gz") {
    write(dir / "i.gz", gzip(image_bytes));
    write(dir / "l.gz", gzip(label_bytes));
    check_matches_written(snn::read_idx(dir / "i.gz", dir / "l.gz"));
  }
  SECTION("one raw, one gzipped") {
    write(dir / "l.gz", gzip(label_bytes));
    check_matches_written(snn::read_idx(images, dir / "l.gz"));
  }
  SECTION("gzipped without the .gz name is recognised by its magic") {
    write(dir / "i.bin", gzip(image_bytes));
    check_matches_written(snn::read_idx(dir / "i.bin", labels));
  }
  SECTION("concatenated gzip members read as one stream (as gunzip does)") {
    Bytes two = gzip(Bytes(image_bytes.begin(), image_bytes.begin() + 100));
    const Bytes second = gzip(Bytes(image_bytes.begin() + 100, image_bytes.end()));
    two.insert(two.end(), second.begin(), second.end());
    write(dir / "i.gz", two);
    check_matches_written(snn::read_idx(dir / "i.gz", labels));
  }
  SECTION("pixels map to byte / 255") {
    const snn::Dataset d = snn::read_idx(images, labels);
    for (std::size_t k = 0; k < d.pixels.size(); ++k) {
      REQUIRE(snn::pixel_value(d.pixels[k]) == Approx(test_pixels(d.pixels.size())[k] / 255.0).margin(1e-7));
    }
  }
  SECTION("a larger gzipped file, bigger than the reader's buffers") {
    const std::uint32_t n = 3000, r = 28, c = 28;  // 2.3 MB of pixels
    const Bytes px = test_pixels(std::size_t{n} * r * c);
    write(dir / "big.gz", gzip(idx_images(n, r, c, px)));
    write(dir / "big-labels", idx_labels(test_labels(n)));
    const snn::Dataset d = snn::read_idx(dir / "big.gz", dir / "big-labels");
    CHECK(d.count == n);
    CHECK(d.pixels == px);
  }
}

TEST_CASE("labels are checked against the class count") {
  TempDir dir("classes");
  const auto files = write_valid(dir);
  const fs::path& images = files.first;
  const fs::path& labels = files.second;
  // test_labels use 0..9: with 10 classes they pass; fewer classes must reject the first label >= k.
  CHECK_NOTHROW(snn::read_idx(images, labels, 10));
  const Bytes l = test_labels(kCount);
  std::size_t first = 0;
  while (l[first] < 7) ++first;
  try {
    snn::read_idx(images, labels, 7);
    FAIL("expected a label-range error");
  } catch (const snn::Error& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(contains(m, labels.string()));
    CHECK(contains(m, "out of range"));
    CHECK(contains(m, fmt::format("index {}", first)));
    CHECK(contains(m, fmt::format("label {}", l[first])));
  }
  require_error([&] { snn::read_idx(images, labels, 0); }, labels, "num_classes");
  require_error([&] { snn::read_idx(images, labels, 257); }, labels, "num_classes");
}

TEST_CASE("malformed IDX files give an snn::Error naming the file") {
  TempDir dir("malformed");
  const auto files = write_valid(dir);
  const fs::path& images = files.first;
  const fs::path& labels = files.second;
  const Bytes good_images = idx_images(kCount, kRows, kCols, test_pixels(kCount * kRows * kCols));
  const Bytes good_labels = idx_labels(test_labels(kCount));
  const fs::path bad = dir / "bad-idx3-ubyte";
  const fs::path bad_gz = dir / "bad-idx3-ubyte.gz";
  const fs::path bad_labels = dir / "bad-labels-idx1-ubyte";
  auto read_bad_images = [&] { snn::read_idx(bad, labels); };
  auto read_bad_gz = [&] { snn::read_idx(bad_gz, labels); };
  auto read_bad_labels = [&] { snn::read_idx(images, bad_labels); };

  SECTION("bad magic") {
    Bytes b = good_images;
    b[0] = 0x12;
    write(bad, b);
    require_error(read_bad_images, bad, "bad magic");
    b = good_images;
    b[2] = 0x0D;  // float elements
    write(bad, b);
    require_error(read_bad_images, bad, "bad magic");
    Bytes l = good_labels;
    l[3] = 0x03;
    l[2] = 0x09;
    write(bad_labels, l);
    require_error(read_bad_labels, bad_labels, "bad magic");
  }
  SECTION("wrong dimension count") {
    // A label file where an image file belongs, and the other way round.
    write(bad, good_labels);
    require_error(read_bad_images, bad, "wrong dimension count");
    write(bad_labels, good_images);
    require_error(read_bad_labels, bad_labels, "wrong dimension count");
  }
  SECTION("truncated header") {
    write(bad, Bytes(good_images.begin(), good_images.begin() + 10));
    require_error(read_bad_images, bad, "truncated header");
    write(bad, Bytes(good_images.begin(), good_images.begin() + 3));
    require_error(read_bad_images, bad, "truncated header");
    write(bad_labels, Bytes(good_labels.begin(), good_labels.begin() + 6));
    require_error(read_bad_labels, bad_labels, "truncated header");
    write(bad_gz, gzip(Bytes(good_images.begin(), good_images.begin() + 14)));
    require_error(read_bad_gz, bad_gz, "truncated header");
  }
  SECTION("truncated data") {
    write(bad, Bytes(good_images.begin(), good_images.end() - 1));
    require_error(read_bad_images, bad, "truncated data");
    write(bad_gz, gzip(Bytes(good_images.begin(), good_images.end() - 1)));
    require_error(read_bad_gz, bad_gz, "truncated data");
    write(bad_labels, Bytes(good_labels.begin(), good_labels.end() - 2));
    require_error(read_bad_labels, bad_labels, "truncated data");
  }
  SECTION("trailing bytes") {
    Bytes b = good_images;
    b.push_back(0);
    write(bad, b);
    require_error(read_bad_images, bad, "trailing bytes");
    write(bad_gz, gzip(b));
    require_error(read_bad_gz, bad_gz, "trailing bytes");
  }
  SECTION("a huge header on a small file fails without allocating it") {
    // 100000 x 1000 x 1000 = 1e11 bytes: fits in size_t, but is not there.
    Bytes b = idx_header(0x00000803, {100000, 1000, 1000});
    b.resize(b.size() + 4096, 7);
    write(bad, b);
    require_error(read_bad_images, bad, "truncated data");
    write(bad_gz, gzip(b));
    require_error(read_bad_gz, bad_gz, "truncated data");
  }
  SECTION("dimension product that overflows") {
    write(bad, idx_header(0x00000803, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}));
    require_error(read_bad_images, bad, "overflow");
    write(bad_gz, gzip(idx_header(0x00000803, {0xFFFFFFFFu, 0xFFFFFFFFu, 2})));
    require_error(read_bad_gz, bad_gz, "overflow");
  }
  SECTION("a zero dimension") {
    write(bad, idx_header(0x00000803, {0, kRows, kCols}));
    require_error(read_bad_images, bad, "zero");
  }
  SECTION("image count differs from label count: both files named") {
    write(bad_labels, idx_labels(test_labels(kCount - 1)));
    try {
      read_bad_labels();
      FAIL("expected a count mismatch");
    } catch (const snn::Error& e) {
      const std::string m = e.what();
      INFO(m);
      CHECK(contains(m, images.string()));
      CHECK(contains(m, bad_labels.string()));
      CHECK(contains(m, std::to_string(kCount)));
      CHECK(contains(m, std::to_string(kCount - 1)));
    }
  }
  SECTION("empty file") {
    write(bad, {});
    require_error(read_bad_images, bad, "empty");
    write(bad_gz, gzip({}));
    require_error(read_bad_gz, bad_gz, "empty");
    write(bad_labels, {});
    require_error(read_bad_labels, bad_labels, "empty");
  }
  SECTION("corrupt gzip") {
    const Bytes gz = gzip(good_images);
    Bytes b = gz;
    b[2] = 7;  // compression method: only 8 (deflate) exists
    write(bad_gz, b);
    require_error(read_bad_gz, bad_gz, "corrupt gzip");
    b = gz;
    b[b.size() - 6] ^= 0xFF;  // the CRC-32 in the trailer
    write(bad_gz, b);
    require_error(read_bad_gz, bad_gz, "corrupt gzip");
    write(bad_gz, Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2)));
    require_error(read_bad_gz, bad_gz, "corrupt gzip");
    b = gz;
    b.insert(b.end(), {'j', 'u', 'n', 'k'});
    write(bad_gz, b);
    require_error(read_bad_gz, bad_gz, "corrupt gzip");
    // Named .gz but raw inside: reported, not silently read as raw.
    write(bad_gz, good_images);
    require_error(read_bad_gz, bad_gz, "corrupt gzip");
    // Damage inside the deflate data: some error naming the file, whichever check sees it first.
    b = gz;
    for (std::size_t k = 20; k < 40 && k < b.size(); ++k) b[k] ^= 0x5A;
    write(bad_gz, b);
    require_error(read_bad_gz, bad_gz, "");
  }
  SECTION("a directory where a file should be") {
    fs::create_directories(bad);
    require_error(read_bad_images, bad, "directory");
  }
  SECTION("missing file") {
    require_error(read_bad_images, bad, "no such file");
    require_error(read_bad_labels, bad_labels, "no such file");
  }
}

TEST_CASE("load_dataset reads a directory of the four IDX files") {
  TempDir root("load");
  const fs::path dir = root / "myset";
  fs::create_directories(dir);
  const Bytes train_px = test_pixels(std::size_t{kCount} * kRows * kCols);
  const std::uint32_t n_test = 4;
  Bytes test_px(std::size_t{n_test} * kRows * kCols);
  for (std::size_t k = 0; k < test_px.size(); ++k) test_px[k] = static_cast<std::uint8_t>(255 - k % 256);
  const Bytes test_lb = {3, 1, 4, 1};
  write(dir / "train-images-idx3-ubyte", idx_images(kCount, kRows, kCols, train_px));
  write(dir / "train-labels-idx1-ubyte", idx_labels(test_labels(kCount)));
  write(dir / "t10k-images-idx3-ubyte.gz", gzip(idx_images(n_test, kRows, kCols, test_px)));
  write(dir / "t10k-labels-idx1-ubyte.gz", gzip(idx_labels(test_lb)));

  SECTION("by path, raw and .gz mixed") {
    const snn::DatasetSplits s = snn::load_dataset(dir.string());
    CHECK(s.name == "myset");
    CHECK(s.path == dir);
    check_matches_written(s.train);
    CHECK(s.test.count == n_test);
    CHECK(s.test.rows == kRows);
    CHECK(s.test.cols == kCols);
    CHECK(s.test.pixels == test_px);
    CHECK(s.test.labels == test_lb);
    // A trailing slash still names the directory.
    CHECK(snn::load_dataset(dir.string() + "/").name == "myset");
  }
  SECTION("by name under data_dir() (SNNSIM_DATA)") {
    ScopedEnv env("SNNSIM_DATA", root.path.string());
    CHECK(snn::data_dir() == root.path);
    CHECK(snn::resolve_dataset("myset") == dir);
    const snn::DatasetSplits s = snn::load_dataset("myset");
    CHECK(s.name == "myset");
    CHECK(s.path == dir);
    CHECK(s.test.labels == test_lb);
    // A name that is not there says how to get it.
    try {
      snn::load_dataset("no-such-set");
      FAIL("expected an error");
    } catch (const snn::Error& e) {
      const std::string m = e.what();
      INFO(m);
      CHECK(contains(m, (root.path / "no-such-set").string()));
      CHECK(contains(m, "tools/fetch-data"));
    }
  }
  SECTION("data_dir() without SNNSIM_DATA is the source tree's data/") {
    ScopedEnv env("SNNSIM_DATA", std::nullopt);
    CHECK(snn::data_dir() == fs::path(SNNSIM_SOURCE_DIR) / "data");
    ScopedEnv empty("SNNSIM_DATA", std::string());
    CHECK(snn::data_dir() == fs::path(SNNSIM_SOURCE_DIR) / "data");
  }
  SECTION("raw preferred when both raw and .gz exist") {
    // A .gz beside the raw labels with different labels: the raw ones must be read.
    write(dir / "train-labels-idx1-ubyte.gz", gzip(idx_labels(Bytes(kCount, 9))));
    CHECK(snn::load_dataset(dir.string()).train.labels == test_labels(kCount));
    // And the .gz is read when the raw file is gone.
    fs::remove(dir / "train-labels-idx1-ubyte");
    CHECK(snn::load_dataset(dir.string()).train.labels == Bytes(kCount, 9));
  }
  SECTION("missing files are all listed") {
    fs::remove(dir / "train-labels-idx1-ubyte");
    fs::remove(dir / "t10k-images-idx3-ubyte.gz");
    try {
      snn::load_dataset(dir.string());
      FAIL("expected an error");
    } catch (const snn::Error& e) {
      const std::string m = e.what();
      INFO(m);
      CHECK(contains(m, dir.string()));
      CHECK(contains(m, "train-labels-idx1-ubyte"));
      CHECK(contains(m, "t10k-images-idx3-ubyte"));
      CHECK_FALSE(contains(m, "train-images-idx3-ubyte"));
      CHECK_FALSE(contains(m, "t10k-labels-idx1-ubyte"));
    }
  }
  SECTION("an error in one file names that file") {
    write(dir / "t10k-labels-idx1-ubyte.gz", gzip(idx_labels({3, 1, 4, 10})));
    require_error([&] { snn::load_dataset(dir.string()); }, dir / "t10k-labels-idx1-ubyte.gz", "index 3");
  }
  SECTION("train and test image sizes must agree") {
    write(dir / "t10k-images-idx3-ubyte.gz", gzip(idx_images(n_test, kCols, kRows, test_px)));
    require_error([&] { snn::load_dataset(dir.string()); }, dir, "test images");
  }
  SECTION("a path that is not a dataset directory") {
    require_error([&] { snn::load_dataset((root / "nothing-here").string()); }, root / "nothing-here", "does not exist");
    require_error([&] { snn::load_dataset((dir / "train-images-idx3-ubyte").string()); }, dir / "train-images-idx3-ubyte",
                  "not a directory");
    CHECK_THROWS_AS(snn::load_dataset(""), snn::Error);
  }
}

TEST_CASE("Debian's Fashion-MNIST (.gz, 60,000 / 10,000) loads") {
  // tools/setup installs dataset-fashion-mnist; the files are real-world gzip
  // written by another tool than ours.
  const fs::path dir = "/usr/share/datasets/fashion-mnist";
  INFO("missing " << dir << ": run tools/setup (it installs dataset-fashion-mnist) or tools/fetch-data fashion-mnist");
  REQUIRE(fs::is_directory(dir));
  const snn::DatasetSplits s = snn::load_dataset(dir.string());
  CHECK(s.name == "fashion-mnist");
  CHECK(s.train.count == 60000);
  CHECK(s.test.count == 10000);
  CHECK(s.train.rows == 28);
  CHECK(s.train.cols == 28);
  // Fashion-MNIST is exactly balanced: 6000 / 1000 per class.
  std::vector<std::size_t> train_hist(10), test_hist(10);
  for (auto l : s.train.labels) ++train_hist[l];
  for (auto l : s.test.labels) ++test_hist[l];
  for (int c = 0; c < 10; ++c) {
    CHECK(train_hist[c] == 6000);
    CHECK(test_hist[c] == 1000);
  }
}
