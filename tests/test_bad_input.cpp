// The bad-input catalogue (docs/errors.md), end to end through the snnsim
// binary: every case must exit with the documented status, print a message
// naming the file, key or value at fault, and leave no output directory (nor
// a staging directory, nor weights in the cache). The parsers' own unit tests
// (test_dataset, test_npy, test_weights, test_config) cover the same readers
// in more detail; these check what a user actually sees.
//
// With SNNSIM_ERRORS_TABLE=<file> set, every case appends a row (id, what,
// status, message) to that file: tools/errors-table turns it into the table
// of docs/errors.md, so the documented messages are the real ones.
#include "snnsim_process.h"

#include "snn/network/npy.h"
#include "snn/network/weights.h"

#include <fmt/format.h>
#include <zlib.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using Bytes = std::string;
using snn::test::run_snnsim;

namespace {

const fs::path kRoot = (fs::path(SNNSIM_BINARY_DIR) / "test_tmp") / "snnsim_errors";
const fs::path kSource = SNNSIM_SOURCE_DIR;

fs::path scratch(const std::string& name) {
  const fs::path p = kRoot / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void spit(const fs::path& p, const Bytes& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

Bytes slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---- a small valid dataset (28 x 28, 20 train / 10 test images), then broken copies

Bytes be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

Bytes idx_images(std::uint32_t n, std::uint32_t rows = 28, std::uint32_t cols = 28) {
  Bytes b = be32(0x803) + be32(n) + be32(rows) + be32(cols);
  for (std::size_t i = 0; i < std::size_t{n} * rows * cols; ++i) b += static_cast<char>((i * 37 + 11) % 256);
  return b;
}

Bytes idx_labels(std::uint32_t n) {
  Bytes b = be32(0x801) + be32(n);
  for (std::uint32_t i = 0; i < n; ++i) b += static_cast<char>(i % 10);
  return b;
}

Bytes gzip(const Bytes& data) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(data.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

const char* const kTrainImages = "train-images-idx3-ubyte";
const char* const kTrainLabels = "train-labels-idx1-ubyte";
const char* const kTestImages = "t10k-images-idx3-ubyte";
const char* const kTestLabels = "t10k-labels-idx1-ubyte";

fs::path valid_dataset(const fs::path& dir) {
  spit(dir / kTrainImages, idx_images(20));
  spit(dir / kTrainLabels, idx_labels(20));
  spit(dir / kTestImages, idx_images(10));
  spit(dir / kTestLabels, idx_labels(10));
  return dir;
}

// ---- weights for that dataset: 784 -> 100 -> 10

snn::Matrix ramp(std::size_t rows, std::size_t cols) {
  snn::Matrix m(rows, cols);
  for (std::size_t i = 0; i < m.data.size(); ++i) m.data[i] = static_cast<float>(i % 13) * 0.01f - 0.06f;
  return m;
}

fs::path valid_weights(const fs::path& dir, std::size_t inputs = 784, std::size_t outputs = 10) {
  snn::WeightSet w;
  w.layers = {ramp(100, inputs), ramp(outputs, 100)};
  w.names = {"fc1", "fc2"};
  snn::save_weights(dir, w);
  return dir;
}

// ---- running a case

// A config for the synthetic dataset, so no case depends on fetched data.
fs::path config_for(const fs::path& dir, const fs::path& dataset, const std::string& extra = "") {
  const fs::path cfg = dir / "run.toml";
  spit(cfg, fmt::format("[dataset]\nname = \"{}\"\n[network]\nhidden = [100]\n[training]\nepochs = 1\n[simulation]\nsteps = 10\n"
                        "checkpoints = [10]\n[output]\nplots = false\ncache = \"{}\"\n{}",
                        dataset.string(), (dir / "cache").string(), extra));
  return cfg;
}

// Appends a row for docs/errors.md when SNNSIM_ERRORS_TABLE is set.
void record(const std::string& id, const std::string& what, const std::vector<std::string>& args, int status,
            std::string output) {
  const char* table = std::getenv("SNNSIM_ERRORS_TABLE");
  if (!table || !*table) return;
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (std::size_t pos = 0; (pos = output.find(from, pos)) != std::string::npos; pos += to.size())
      output.replace(pos, from.size(), to);
  };
  replace_all(kRoot.string() + "/", "");
  replace_all(kSource.string() + "/", "");
  while (!output.empty() && output.back() == '\n') output.pop_back();
  replace_all("\n", "<br>");
  replace_all("|", "\\|");
  std::string command = "snnsim";
  for (const auto& a : args) command += " " + a;
  (void)command;
  std::ofstream(table, std::ios::app) << id << '\t' << what << '\t' << status << '\t' << output << '\n';
}

// Runs snnsim with `args` (plus --out `out` unless it is empty) and checks
// the documented behaviour: the status, every part in the output, an
// "error:" line, and no output directory or staging directory afterwards.
void check_case(const std::string& id, const std::string& what, std::vector<std::string> args, int status,
                std::initializer_list<std::string> parts, const fs::path& out = {}) {
  INFO(id << ": " << what);
  if (!out.empty()) args.insert(args.end(), {"--out", out.string()});
  // --quiet right after a config command, so a case can end with an option missing its value.
  for (const char* cmd : {"run", "train", "convert", "simulate", "bench"})
    if (!args.empty() && args[0] == cmd) args.insert(args.begin() + 1, "--quiet");
  const auto o = run_snnsim(args, 120);
  INFO("output: " << o.output);
  CHECK(o.status == status);
  CHECK_THAT(o.output, Catch::Contains("error: "));
  CHECK_THAT(o.output, !Catch::Contains("internal error"));
  for (const auto& p : parts) CHECK_THAT(o.output, Catch::Contains(p));
  if (!out.empty()) {
    CHECK_FALSE(fs::exists(out));
    if (fs::is_directory(out.parent_path()))
      for (const auto& e : fs::directory_iterator(out.parent_path()))
        CHECK(e.path().filename().string().find(".staging-") == std::string::npos);
  }
  record(id, what, args, o.status, o.output);
}

// The case's --set for a dataset or weight directory.
std::string set_dataset(const fs::path& dir) { return fmt::format("dataset.name=\"{}\"", dir.string()); }
std::string set_weights(const fs::path& dir) { return fmt::format("network.weights=\"{}\"", dir.string()); }

}  // namespace

TEST_CASE("bad IDX datasets: a message naming the file, status 1, no output") {
  const fs::path root = scratch("idx");
  const fs::path cfg = config_for(root, valid_dataset(root / "valid"));
  const fs::path out = root / "out";
  // A broken copy of the valid dataset, `file` replaced by `bytes`.
  auto broken = [&](const std::string& name, const std::string& file, const Bytes& bytes) {
    const fs::path dir = valid_dataset(root / name);
    fs::remove(dir / file);
    spit(dir / file, bytes);
    return dir;
  };
  auto run_case = [&](const std::string& id, const std::string& what, const fs::path& dir,
                      std::initializer_list<std::string> parts) {
    check_case(id, what, {"run", cfg.string(), "--set", set_dataset(dir)}, 1, parts, out);
  };
  const Bytes images = idx_images(20);

  // The valid dataset itself runs: the cases fail because of what they break.
  const auto ok = run_snnsim({"run", cfg.string(), "--out", out.string(), "--quiet"});
  INFO(ok.output);
  REQUIRE(ok.status == 0);
  fs::remove_all(out);

  run_case("D1", "not an IDX file (bad magic)", broken("magic", kTrainImages, "\x89PNG\r\n\x1a\n" + images.substr(8)),
           {"train-images-idx3-ubyte", "bad magic 0x89504e47", "expected 0x00000803", "not an IDX file"});
  run_case("D2", "a label file where the image file belongs (wrong dimension count)",
           broken("dims", kTrainImages, idx_labels(20)), {"train-images-idx3-ubyte", "wrong dimension count 1"});
  run_case("D3", "truncated header", broken("header", kTrainImages, images.substr(0, 10)),
           {"train-images-idx3-ubyte", "truncated header", "10 bytes"});
  run_case("D4", "truncated data", broken("data", kTrainImages, images.substr(0, images.size() - 100)),
           {"train-images-idx3-ubyte", "truncated data", "20 x 28 x 28"});
  run_case("D5", "dimensions whose product overflows",
           broken("overflow", kTrainImages, be32(0x803) + be32(0xffffffff) + be32(0xffffffff) + be32(0xffffffff)),
           {"train-images-idx3-ubyte", "4294967295 x 4294967295 x 4294967295 overflow"});
  run_case("D6", "image count differs from label count", broken("count", kTrainLabels, idx_labels(19)),
           {"image count 20", "train-images-idx3-ubyte", "label count 19", "train-labels-idx1-ubyte"});
  {
    Bytes labels = idx_labels(10);
    labels[8 + 3] = 10;
    run_case("D7", "a label >= dataset.classes", broken("label", kTestLabels, labels),
             {"t10k-labels-idx1-ubyte", "label 10 at index 3", "class count 10"});
  }
  run_case("D8", "empty file", broken("empty", kTrainLabels, ""), {"train-labels-idx1-ubyte", "empty file"});
  {
    const Bytes gz = gzip(idx_images(10));
    fs::path dir = broken("gz_trunc", kTestImages + std::string(".gz"), gz.substr(0, gz.size() / 2));
    fs::remove(dir / kTestImages);
    run_case("D9", "corrupt gzip: truncated .gz", dir, {"t10k-images-idx3-ubyte.gz", "corrupt gzip", "ends early"});
    Bytes bad_crc = gz;
    bad_crc[bad_crc.size() - 6] ^= 0x5a;
    dir = broken("gz_crc", kTestImages + std::string(".gz"), bad_crc);
    fs::remove(dir / kTestImages);
    run_case("D10", "corrupt gzip: CRC mismatch", dir, {"t10k-images-idx3-ubyte.gz", "corrupt gzip", "incorrect data check"});
    dir = broken("gz_name", kTestImages + std::string(".gz"), idx_images(10));
    fs::remove(dir / kTestImages);
    run_case("D11", "named .gz but not gzip", dir, {"t10k-images-idx3-ubyte.gz", "does not start with the gzip magic"});
  }
  {
    const fs::path dir = valid_dataset(root / "dir");
    fs::remove(dir / kTrainImages);
    fs::create_directories(dir / kTrainImages);
    run_case("D12", "a directory where a file should be", dir, {"train-images-idx3-ubyte", "is a directory"});
  }
  {
    const fs::path dir = valid_dataset(root / "missing");
    fs::remove(dir / kTestLabels);
    run_case("D13", "a missing file", dir, {"missing", "is incomplete: missing t10k-labels-idx1-ubyte[.gz]"});
  }
  run_case("D14", "train and test images of different sizes", broken("size", kTestImages, idx_images(10, 20, 20)),
           {"training images are 28x28", "test images are 20x20", "t10k-images-idx3-ubyte"});
  run_case("D15", "trailing bytes after the data", broken("trailing", kTrainImages, images + "xx"),
           {"train-images-idx3-ubyte", "2 trailing bytes"});
  check_case("D16", "a dataset directory that does not exist", {"run", cfg.string(), "--set", set_dataset(root / "nowhere")}, 1,
             {"nowhere", "does not exist"}, out);
  check_case("D17", "a dataset name that is not under the data directory",
             {"run", cfg.string(), "--set", "dataset.name=nosuchset"}, 1,
             {"dataset 'nosuchset' not found", "tools/fetch-data nosuchset", "SNNSIM_DATA"}, out);
  check_case("D18", "a dataset path that is a file", {"run", cfg.string(), "--set", set_dataset(root / "valid" / kTrainImages)},
             1, {"train-images-idx3-ubyte", "is not a directory"}, out);
}

TEST_CASE("bad weight files and manifests: a message naming the file and key, status 1, no output") {
  const fs::path root = scratch("weights");
  const fs::path cfg = config_for(root, valid_dataset(root / "data"));
  const fs::path out = root / "out";
  const fs::path npy_fixtures = kSource / "tests" / "data" / "npy";
  // A broken copy of a valid 784-100-10 weight set.
  auto weights = [&](const std::string& name) { return valid_weights(root / name); };
  auto run_case = [&](const std::string& id, const std::string& what, const fs::path& dir,
                      std::initializer_list<std::string> parts) {
    check_case(id, what, {"run", cfg.string(), "--set", set_weights(dir)}, 1, parts, out);
  };

  const auto ok = run_snnsim({"run", cfg.string(), "--set", set_weights(weights("valid")), "--out", out.string(), "--quiet"});
  INFO(ok.output);
  REQUIRE(ok.status == 0);
  fs::remove_all(out);

  {
    const fs::path dir = weights("magic");
    spit(dir / "fc2.npy", "PK\x03\x04" + slurp(dir / "fc2.npy").substr(4));
    run_case("W1", ".npy with a bad magic (a zip file)", dir, {"fc2.npy", "not a .npy file", "found 'PK\\x03\\x04"});
  }
  {
    const fs::path dir = weights("dtype");
    fs::copy_file(npy_fixtures / "numpy_f8_3x4.npy", dir / "fc2.npy", fs::copy_options::overwrite_existing);
    run_case("W2", "unsupported dtype (float64, written by numpy)", dir, {"fc2.npy", "expected '<f4'", "found '<f8'", "astype"});
  }
  {
    const fs::path dir = weights("fortran");
    fs::copy_file(npy_fixtures / "numpy_fortran_3x4.npy", dir / "fc2.npy", fs::copy_options::overwrite_existing);
    run_case("W3", "Fortran order (written by numpy)", dir, {"fc2.npy", "fortran_order False", "found True"});
  }
  {
    const fs::path dir = weights("trunc");
    const Bytes b = slurp(dir / "fc1.npy");
    spit(dir / "fc1.npy", b.substr(0, b.size() - 1000));
    run_case("W4", "truncated .npy data", dir,
             {"fc1.npy", "truncated .npy data", "shape (100, 784) needs 313600 bytes", "found 312600"});
  }
  {
    const fs::path dir = weights("shape");
    snn::write_npy(dir / "fc2.npy", ramp(100, 10));
    run_case("W5", "a .npy shape that disagrees with the manifest", dir,
             {"fc2.npy", "manifest.json", "layer 1 'fc2'", "expected [10, 100], found [100, 10]"});
  }
  {
    const fs::path dir = weights("ndim");
    fs::copy_file(npy_fixtures / "numpy_1d_5.npy", dir / "fc2.npy", fs::copy_options::overwrite_existing);
    run_case("W6", "a .npy that is not 2-D", dir, {"fc2.npy", "expected a 2-D array", "found shape (5,)"});
  }
  run_case("W7", "weights whose inputs disagree with the dataset's image size", valid_weights(root / "inputs", 500),
           {"inputs", "take 500 inputs", "784 pixels"});
  run_case("W8", "weights whose outputs disagree with dataset.classes", valid_weights(root / "outputs", 784, 7),
           {"outputs", "have 7 outputs", "dataset.classes = 10"});
  {
    const fs::path dir = weights("nan");
    snn::Matrix m = ramp(10, 100);
    m(9, 99) = std::numeric_limits<float>::quiet_NaN();
    snn::write_npy(dir / "fc2.npy", m);
    run_case("W9", "a non-finite weight", dir, {"fc2.npy", "non-finite weight nan at [9, 99]"});
  }
  {
    const fs::path dir = weights("json");
    spit(dir / "manifest.json", "{\"layers\": [{\"file\": \"fc1.npy\", \"shape\": [100, 784]},\n]}");
    run_case("W10", "a manifest that is not valid JSON", dir, {"manifest.json", "invalid JSON", "line 2"});
  }
  {
    const fs::path dir = weights("key");
    Bytes m = slurp(dir / "manifest.json");
    m.replace(m.find("\"normalisation\""), 15, "\"normalization\"");
    spit(dir / "manifest.json", m);
    run_case("W11", "a manifest with an unknown key", dir, {"manifest.json", "normalization: unknown key", "'normalisation'"});
  }
  {
    const fs::path dir = weights("chain");
    spit(dir / "manifest.json",
         R"({"layers": [{"file": "fc1.npy", "shape": [100, 784]}, {"file": "fc2.npy", "shape": [10, 99]}]})");
    run_case("W12", "manifest shapes that do not chain", dir, {"manifest.json", "layers[1].shape", "100 outputs of layer 0"});
  }
  {
    const fs::path dir = weights("nofile");
    fs::remove(dir / "fc2.npy");
    run_case("W13", "a layer file the manifest names is missing", dir, {"fc2.npy", "No such file"});
  }
  run_case("W14", "a weight directory that does not exist", root / "nowhere", {"nowhere", "do not exist"});
  {
    const fs::path dir = weights("nomanifest");
    fs::remove(dir / "manifest.json");
    run_case("W15", "a directory without manifest.json", dir, {"nomanifest", "is not a weight directory", "manifest.json"});
  }
  {
    const fs::path dir = weights("escape");
    spit(dir / "manifest.json", R"({"layers": [{"file": "../valid/fc1.npy", "shape": [100, 784]}]})");
    run_case("W16", "a manifest naming a file outside its directory", dir,
             {"manifest.json", "../valid/fc1.npy", "plain file name"});
  }
}

TEST_CASE("bad configs: a message naming the file, key, line and value, status 1, no output") {
  const fs::path root = scratch("config");
  const fs::path data = valid_dataset(root / "data");
  const fs::path out = root / "out";
  const fs::path cfg = config_for(root, data);
  auto bad_config = [&](const std::string& name, const std::string& text) {
    const fs::path p = root / (name + ".toml");
    spit(p, fmt::format("[dataset]\nname = \"{}\"\n{}", data.string(), text));
    return p.string();
  };
  auto set_case = [&](const std::string& id, const std::string& what, const std::string& set,
                      std::initializer_list<std::string> parts) {
    check_case(id, what, {"run", cfg.string(), "--set", set}, 1, parts, out);
  };

  check_case("C1", "TOML syntax error", {"run", bad_config("syntax", "[simulation]\nsteps = = 3\n")}, 1,
             {"syntax.toml: line 4, column", "TOML syntax error"}, out);
  check_case("C2", "unknown key (with a suggestion)",
             {"run", bad_config("unknown", "[simulation]\nsteps = 10\nthreshhold = 1\n")}, 1,
             {"unknown.toml: line 5", "'simulation.threshhold' is not a known key; did you mean 'simulation.threshold'?"}, out);
  check_case("C3", "wrong type", {"run", bad_config("type", "[simulation]\nsteps = \"ten\"\n")}, 1,
             {"type.toml: line 4", "'simulation.steps' must be an integer, found a string"}, out);
  set_case("C4", "steps <= 0", "simulation.steps=0", {"(--set): 'simulation.steps' = 0 must be positive"});
  set_case("C5", "threshold <= 0", "simulation.threshold=-1", {"'simulation.threshold' has -1; thresholds must be positive"});
  set_case("C6", "max_rate_hz <= 0", "simulation.max_rate_hz=0", {"'simulation.max_rate_hz' = 0 must be positive"});
  set_case("C7", "dt_ms <= 0", "simulation.dt_ms=0", {"'simulation.dt_ms' = 0 must be positive"});
  check_case("C8", "spike probability above 1 without clamp_probability",
             {"run", bad_config("prob", "[simulation]\nmax_rate_hz = 400\ndt_ms = 5\n")}, 1,
             {"prob.toml: line 4", "'simulation.max_rate_hz' = 400 Hz with dt_ms = 5", "probability of up to 2",
              "clamp_probability = true"},
             out);
  set_case("C9", "an integer out of range", "simulation.steps=99999999999", {"'simulation.steps' = 99999999999 is out of range"});
  check_case("C10", "several problems, reported together",
             {"run", bad_config("many", "[simulation]\nsteps = 0\nbeta = 2\n[training]\nepochs = 1.5\n")}, 1,
             {"many.toml has 3 problems", "line 4: 'simulation.steps'", "line 5: 'simulation.beta' = 2 must be in (0, 1]",
              "line 7: 'training.epochs' must be an integer, found a float"},
             out);
  check_case("C11", "config file missing", {"run", (root / "missing.toml").string()}, 1,
             {"config", "missing.toml", "does not exist"}, out);
  fs::create_directories(root / "dir.toml");
  check_case("C12", "config is a directory", {"run", (root / "dir.toml").string()}, 1, {"dir.toml", "is a directory"}, out);
  set_case("C13", "--set without '='", "simulation", {"--set 'simulation': expected key=value"});
  set_case("C14", "--set of an unknown key", "simulation.stepz=3",
           {"'simulation.stepz' is not a known key; did you mean 'simulation.steps'?"});
  set_case("C21", "--set of a bare word that is not a choice", "simulation.reset=Zero",
           {"(--set): 'simulation.reset' = \"Zero\" is not one of: subtract, zero"});

  // Output directories that cannot or must not be written.
  spit(root / "a_file", "not a directory");
  check_case("C15", "unwritable output directory (its parent is a file)", {"run", cfg.string()}, 1,
             {"output.dir", "a_file/sub", "cannot create", "Not a directory"}, root / "a_file" / "sub");
  check_case("C16", "unwritable output directory (/proc)", {"run", cfg.string(), "--out", "/proc/snnsim_out"}, 1,
             {"output.dir '/proc/snnsim_out'", "'/proc' is not writable"});
  check_case("C17", "output.dir is an existing file", {"run", cfg.string(), "--out", (root / "a_file").string()}, 1,
             {"output.dir", "a_file", "exists and is not a directory"});
  CHECK(slurp(root / "a_file") == "not a directory");
  // A report replaces only what an earlier report there wrote (its
  // report_files.txt); a file of someone else's under a report's name stays.
  spit(root / "precious" / "results.json", "{}");
  check_case("C18", "output.dir holds a results.json snnsim did not write",
             {"run", cfg.string(), "--out", (root / "precious").string()}, 1,
             {"output.dir", "precious", "holds 'results.json', which no earlier snnsim report there wrote"});
  CHECK(slurp(root / "precious" / "results.json") == "{}");
  spit(root / "report" / "report_files.txt", "results.json\n");
  spit(root / "report" / "results.json", "{}");
  spit(root / "report" / "per_class.csv", "mine");
  check_case("C19", "output.dir holds a report and a user's file under a report's name",
             {"run", cfg.string(), "--out", (root / "report").string()}, 1,
             {"output.dir", "report", "holds 'per_class.csv', which no earlier snnsim report there wrote"});
  CHECK(slurp(root / "report" / "per_class.csv") == "mine");
}

TEST_CASE("bad ConvNet layer lists and weights that do not fit them: the layer and the shapes named, status 1") {
  const fs::path root = scratch("convnet");
  const fs::path data = valid_dataset(root / "data");
  const fs::path out = root / "out";
  auto layers_config = [&](const std::string& name, const std::string& layers) {
    const fs::path p = root / (name + ".toml");
    spit(p, fmt::format("[dataset]\nname = \"{}\"\n[network]\nlayers = [{}]\n[output]\ncache = \"{}\"\n", data.string(), layers,
                        (root / "cache").string()));
    return p.string();
  };
  const std::string tail = R"(, {kind = "flatten"}, {kind = "dense", outputs = 10})";
  check_case("N1", "a kernel larger than its input",
             {"run", layers_config("kernel", R"({kind = "conv", outputs = 4, kernel = 5}, {kind = "avgpool", kernel = 2},
                                               {kind = "conv", outputs = 8, kernel = 13})" +
                                                 tail)},
             1, {"kernel.toml: line 4", "'network.layers' layer 3 'conv 8 13x13' needs at least 13x13 input, gets 12x12"}, out);
  check_case("N2", "a pooling window that does not tile its map",
             {"run", layers_config("pool", R"({kind = "conv", outputs = 4, kernel = 5}, {kind = "avgpool", kernel = 5})" + tail)},
             1, {"layer 2 'avgpool 5' does not tile its 24x24 input", "is not a multiple of the stride 5"}, out);
  check_case("N3", "a zero size", {"run", layers_config("zero", R"({kind = "conv", outputs = 0, kernel = 5})" + tail)}, 1,
             {"'network.layers' layer 1 'conv 0 5x5'"}, out);
  check_case("N4", "a negative size", {"run", layers_config("negative", R"({kind = "conv", outputs = 4, kernel = -5})" + tail)},
             1, {"'network.layers' layer 1: 'kernel' must be an integer >= 0 or [height, width]"}, out);
  check_case("N5", "a last layer that does not give dataset.classes outputs",
             {"run", layers_config("classes", R"({kind = "conv", outputs = 4, kernel = 2, stride = 2}, {kind = "flatten"},
                                                {kind = "dense", outputs = 7})")},
             1, {"'network.layers' ends in 7 outputs (7), but dataset.classes = 10"}, out);
  // Valid 784-100-10 weights against a ConvNet's layer list, and against a
  // dense list of other widths.
  const fs::path mlp = valid_weights(root / "mlp");
  check_case("N6", "dense weights for a ConvNet's layer list",
             {"run", layers_config("convnet", R"({kind = "conv", outputs = 4, kernel = 2, stride = 2})" + tail), "--set",
              set_weights(mlp)},
             1, {"weights", "take input 784 but network.layers starts with layer 1 'conv 4 2x2 stride 2' on 1x28x28 images"},
             out);
  check_case("N7", "weights whose layers differ from the layer list",
             {"run", layers_config("widths", R"({kind = "dense", outputs = 50}, {kind = "dense", outputs = 10})"), "--set",
              set_weights(mlp)},
             1, {"do not fit network.layers: layer 1 is 'dense 50' in the config but 'dense 100' ('fc1') in the weights"}, out);
}

TEST_CASE("command-line mistakes: one line naming the command and the mistake, status 2") {
  const fs::path root = scratch("cli");
  const fs::path cfg = config_for(root, valid_dataset(root / "data"));
  check_case("L1", "unknown command", {"frobnicate"}, 2, {"snnsim: error: unknown command 'frobnicate'", "run, train"});
  check_case("L2", "mistyped command", {"rn", cfg.string()}, 2, {"unknown command 'rn' (did you mean 'run'?)"});
  check_case("L3", "unknown option", {"run", cfg.string(), "--bogus"}, 2, {"snnsim run: error: unexpected argument '--bogus'"});
  check_case("L4", "missing config argument", {"run"}, 2, {"snnsim run: error: config is required"});
  check_case("L5", "option without its value", {"run", cfg.string(), "--threads"}, 2,
             {"snnsim run: error: --threads needs a value"});
  check_case("L6", "option value of the wrong kind", {"run", cfg.string(), "--threads", "two"}, 2,
             {"--threads: expected a whole number >= 0, found 'two'"});
  check_case("L7", "negative count", {"run", cfg.string(), "--limit", "-5"}, 2,
             {"--limit: expected a whole number >= 0, found '-5'"});
  check_case("L8", "an extra argument", {"run", cfg.string(), "other.toml"}, 2, {"unexpected argument 'other.toml'"});
  check_case("L12", "an option the command cannot honour", {"train", cfg.string(), "--threads", "1"}, 2,
             {"snnsim train: error: --threads", "2 threads"});
  check_case("L13", "--limit on convert", {"convert", cfg.string(), "--limit", "5"}, 2,
             {"snnsim convert: error: --limit", "normalisation.samples"});
  check_case("L9", "info on something that is not a results file", {"info", cfg.string()}, 1,
             {"run.toml", "is not a results.json"});
  spit(root / "bad" / "results.json", R"({"schema": "snnsim-results/1", "snn": [1, 2]})");
  check_case("L10", "info on a results.json with a field of the wrong type", {"info", (root / "bad").string()}, 1,
             {"bad/results.json", "is not a valid snnsim results.json"});
  check_case("L11", "plot of a results.json with a field of the wrong type",
             {"plot", (root / "bad" / "results.json").string(), "-o", (root / "bad.png").string()}, 1,
             {"bad/results.json", "snn.accuracy_curve"});
}

TEST_CASE("bad imported models (network.model): a message naming the file and both shapes, status 1, no output") {
  const fs::path root = scratch("model");
  const fs::path data = valid_dataset(root / "valid");
  const fs::path convnet = kSource / "tests" / "data" / "onnx" / "convnet.onnx";
  const auto model_config = [&](const fs::path& model, const fs::path& dataset) {
    const fs::path cfg = root / "model.toml";
    spit(cfg, fmt::format("[dataset]\nname = \"{}\"\n[network]\nmodel = \"{}\"\n[simulation]\nsteps = 10\ncheckpoints = [10]\n"
                          "[output]\nplots = false\n",
                          dataset.string(), model.string()));
    return cfg;
  };
  const fs::path out = root / "out";
  check_case("M1", "network.model names a file that does not exist", {"run", model_config(root / "missing.onnx", data).string()},
             1, {"missing.onnx"}, out);
  spit(root / "garbage.onnx", "this is not a protobuf");
  check_case("M2", "network.model is not an ONNX file", {"run", model_config(root / "garbage.onnx", data).string()}, 1,
             {"garbage.onnx"}, out);
  check_case("M3", "network.model with network.hidden and [training]",
             {"run", config_for(root, data).string(), "--set", fmt::format("network.model=\"{}\"", convnet.string())}, 1,
             {"'network.hidden' cannot be given with network.model", "'training' cannot be given with network.model"}, out);
#if SNNSIM_HAS_ONNX
  const fs::path small = root / "small";
  spit(small / kTrainImages, idx_images(20, 20, 20));
  spit(small / kTrainLabels, idx_labels(20));
  spit(small / kTestImages, idx_images(10, 20, 20));
  spit(small / kTestLabels, idx_labels(10));
  check_case("M4", "a dataset whose images are not the model's input", {"run", model_config(convnet, small).string()}, 1,
             {"convnet.onnx", "takes inputs of shape 1x28x28", "images of 1x20x20"}, out);
  check_case("M5", "a model whose outputs are not dataset.classes",
             {"run", model_config(convnet, data).string(), "--set", "dataset.classes=12"}, 1,
             {"convnet.onnx", "has 10 outputs but dataset.classes = 12"}, out);
#endif
}

TEST_CASE("an output.dir given with a trailing slash is replaced like any other (regression)") {
  const fs::path root = scratch("slash");
  const fs::path cfg = config_for(root, valid_dataset(root / "data"));
  const std::string out = (root / "out").string() + "/";
  for (int i = 0; i < 2; ++i) {
    const auto o = run_snnsim({"run", cfg.string(), "--out", out, "--quiet"});
    INFO(o.output);
    CHECK(o.status == 0);
    CHECK(fs::exists(root / "out" / "results.json"));
  }
  for (const auto& e : fs::directory_iterator(root / "out")) CHECK(e.path().filename().string()[0] != '.');
}
