#include "snn/error.h"
#include "snn/network/npy.h"
#include "snn/network/weights.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = (fs::path(SNNSIM_BINARY_DIR) / "test_tmp") / "snnsim_test_weights" / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

snn::Matrix ramp(std::size_t rows, std::size_t cols, float scale) {
  snn::Matrix m(rows, cols);
  for (std::size_t i = 0; i < m.data.size(); ++i)
    m.data[i] = scale * (static_cast<float>(i % 7) - 3.0f) + 1.0e-7f * static_cast<float>(i);
  return m;
}

snn::WeightSet sample_set() {
  snn::WeightSet w;
  w.layers = {ramp(6, 4, 0.1f), ramp(5, 6, 0.2f), ramp(3, 5, 0.3f)};
  w.normalisation.method = snn::Normalisation::Data;
  w.normalisation.factors = {4.437563896179199, 1.478223657530652, 6.613861319924316};
  w.normalisation.samples = 8004;
  w.ann_test_accuracy = 0.9694388777555111;
  w.seed = 18446744073709551615ull;  // the whole uint64 range survives JSON
  snn::TrainingRecord t;
  t.dataset = "mnist10k";
  t.train_samples = 8004;
  t.epochs = 15;
  t.batch_size = 100;
  t.optimiser = "adam";
  t.learning_rate = 1e-3;
  t.beta1 = 0.9;
  t.beta2 = 0.999;
  t.epsilon = 1e-8;
  t.dropout = 0.5;
  t.init_range = 0.1;
  t.output_relu = false;
  t.seconds = 12.345678901234567;
  t.blas_threads = 2;
  t.machine =
      snn::MachineRecord{"AMD EPYC (AuthenticAMD family 26 model 2 stepping 1)", "Haswell", "OpenBLAS 0.3.21 Haswell", ""};
  w.training = t;
  return w;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

template <typename F>
void require_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    FAIL("expected snn::Error");
  } catch (const snn::Error& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    for (const auto& p : parts) CHECK(msg.find(p) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("a saved weight set loads back identically") {
  const fs::path dir = fresh_dir("round");
  const snn::WeightSet w = sample_set();
  snn::save_weights(dir, w);
  CHECK(fs::exists(dir / "manifest.json"));
  CHECK(fs::exists(dir / "layer0.npy"));
  CHECK(fs::exists(dir / "layer2.npy"));

  const snn::WeightSet back = snn::load_weights(dir);
  snn::WeightSet expected = w;
  expected.names = {"layer0", "layer1", "layer2"};
  expected.files = {"layer0.npy", "layer1.npy", "layer2.npy"};
  CHECK(back == expected);  // every weight bit, every double, the uint64 seed
  CHECK(back.inputs() == 4);
  CHECK(back.outputs() == 3);
  // The manifest file itself can be named instead of the directory.
  CHECK(snn::load_weights(dir / "manifest.json") == expected);

  // Custom names and files survive, and a minimal set (no records) too.
  snn::WeightSet minimal;
  minimal.layers = {ramp(2, 3, 1.0f)};
  minimal.names = {"only"};
  minimal.files = {"w.npy"};
  snn::save_weights(dir, minimal);
  const snn::WeightSet m = snn::load_weights(dir);
  CHECK(m == minimal);
  CHECK_FALSE(m.seed.has_value());
  CHECK_FALSE(m.training.has_value());
}

TEST_CASE("weights exported from numpy with a hand-written manifest load") {
  // tests/data/numpy_export was written by numpy.save on torch.nn.Linear-shaped
  // arrays ([out, in]) with the manifest docs/weights.md shows.
  const fs::path dir = fs::path(SNNSIM_SOURCE_DIR) / "tests" / "data" / "numpy_export";
  const snn::WeightSet w = snn::load_weights(dir);
  REQUIRE(w.layers.size() == 2);
  CHECK(w.names == std::vector<std::string>{"fc1", "fc2"});
  CHECK(w.layers[0].rows == 5);
  CHECK(w.layers[0].cols == 4);
  CHECK(w.layers[1].rows == 3);
  CHECK(w.layers[1].cols == 5);
  // Values numpy printed when it made the files (first and last of each).
  CHECK(w.layers[0](0, 0) == 0.25019094347953796f);
  CHECK(w.layers[0](4, 3) == 0.9779202938079834f);
  CHECK(w.layers[1](2, 4) == 0.3840642273426056f);
  CHECK(w.normalisation.method == snn::Normalisation::None);
  CHECK(w.ann_test_accuracy == 0.5);
}

TEST_CASE("loading rejects .npy files that disagree with the manifest") {
  const fs::path dir = fresh_dir("mismatch");
  snn::save_weights(dir, sample_set());

  SECTION("shape mismatch") {
    snn::write_npy(dir / "layer1.npy", ramp(6, 5, 0.2f));  // transposed
    require_error([&] { snn::load_weights(dir); },
                  {(dir / "layer1.npy").string(), "manifest", "expected [5, 6]", "found [6, 5]"});
  }
  SECTION("wrong dtype inside a set") {
    std::string bytes = snn::npy_bytes(ramp(5, 6, 0.2f));
    bytes.replace(bytes.find("<f4"), 3, "<f8");
    write_text(dir / "layer1.npy", bytes);
    require_error([&] { snn::load_weights(dir); }, {(dir / "layer1.npy").string(), "expected '<f4'", "found '<f8'"});
  }
  SECTION("truncated layer file") {
    std::string bytes = snn::npy_bytes(ramp(5, 6, 0.2f));
    bytes.resize(bytes.size() - 4);
    write_text(dir / "layer1.npy", bytes);
    require_error([&] { snn::load_weights(dir); }, {(dir / "layer1.npy").string(), "truncated", "needs 120 bytes", "found 116"});
  }
  SECTION("missing layer file") {
    fs::remove(dir / "layer2.npy");
    require_error([&] { snn::load_weights(dir); }, {(dir / "layer2.npy").string()});
  }
  SECTION("non-finite weight") {
    snn::Matrix m = ramp(5, 6, 0.2f);
    m(1, 2) = std::numeric_limits<float>::quiet_NaN();
    snn::write_npy(dir / "layer1.npy", m);
    require_error([&] { snn::load_weights(dir); }, {(dir / "layer1.npy").string(), "non-finite", "[1, 2]"});
  }
}

TEST_CASE("loading rejects bad manifests, naming the key") {
  const fs::path dir = fresh_dir("manifest");
  snn::save_weights(dir, sample_set());
  const fs::path man = dir / "manifest.json";
  const std::string layers =
      R"("layers": [{"file": "layer0.npy", "shape": [6, 4]}, {"file": "layer1.npy", "shape": [5, 6]}, {"file": "layer2.npy", "shape": [3, 5]}])";

  write_text(man, "{" + layers + "}");
  CHECK(snn::load_weights(dir).layers.size() == 3);  // the minimal form is enough

  write_text(man, R"({"layers": [{"file": "layer0.npy", "shape": [6, 4]}, {"file": "layer2.npy", "shape": [3, 5]}]})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "layers[1].shape", "6 outputs of layer 0", "found [3,5]"});
  write_text(man, "{" + layers + R"(, "normalization": {}})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "normalization", "unknown key"});
  write_text(man, "{" + layers + R"(, "normalisation": {"method": "max"}})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "normalisation.method", "'max'"});
  write_text(man, "{" + layers + R"(, "normalisation": {"method": "model", "factors": [1, -2]}})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "factor 1 is -2"});
  write_text(man, "{" + layers + R"(, "seed": -1})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "seed", "non-negative integer", "-1"});
  write_text(man, "{" + layers + R"(, "ann_test_accuracy": 96.9})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "ann_test_accuracy", "96.9"});
  write_text(man, R"({"layers": [{"file": "../layer0.npy", "shape": [6, 4]}]})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "../layer0.npy", "plain file name"});
  write_text(man, R"({"layers": [{"file": "layer0.npy", "shape": [6, 4], "kind": "conv"}]})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "layers[0].kind", "\"conv\""});
  write_text(man, "{" + layers + R"(, "training": {"machine": {"cpu": 3}}})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "training.machine.cpu", "expected a string"});
  write_text(man, "{" + layers + R"(, "training": {"machine": {"cores": 2}}})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "training.machine.cores", "unknown key"});
  write_text(man, R"({"layers": []})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "non-empty"});
  write_text(man, R"({"layers": [}")");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "invalid JSON"});
  // A number beyond double's range (found by fuzz_npy: it escaped as a json::out_of_range).
  write_text(man, "{" + layers + R"(, "ann_test_accuracy": 1e999})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "invalid JSON", "1e999"});
  fs::remove(man);
  require_error([&] { snn::load_weights(dir); }, {man.string()});
}

TEST_CASE("saving rejects inconsistent sets and leaves no manifest behind") {
  const fs::path dir = fresh_dir("save_bad");
  snn::WeightSet w = sample_set();
  w.layers[1] = ramp(5, 7, 0.2f);  // takes 7 inputs, layer 0 gives 6
  require_error([&] { snn::save_weights(dir, w); }, {dir.string(), "layer 1 takes 7 inputs", "layer 0 has 6 outputs"});
  CHECK_FALSE(fs::exists(dir / "manifest.json"));

  w = sample_set();
  w.files = {"a.npy", "a.npy", "b.npy"};
  require_error([&] { snn::save_weights(dir, w); }, {"'a.npy' is used by two layers"});
  w = sample_set();
  w.layers[2](0, 0) = INFINITY;
  require_error([&] { snn::save_weights(dir, w); }, {"non-finite", "layer 2"});
  w = sample_set();
  w.normalisation.factors = {1.0, 2.0, 3.0, 4.0};
  require_error([&] { snn::save_weights(dir, w); }, {"4 normalisation factors for 3 layers"});
  CHECK_FALSE(fs::exists(dir / "manifest.json"));
}

TEST_CASE("an overwrite that fails halfway leaves no manifest, never a mix of old and new layers") {
  const fs::path dir = fresh_dir("overwrite");
  snn::save_weights(dir, sample_set());
  snn::WeightSet other = sample_set();
  for (auto& m : other.layers)
    for (auto& v : m.data) v = -v;
  // layer2.npy cannot be replaced (a directory is in its way), after layer0 and layer1 were.
  fs::remove(dir / "layer2.npy");
  fs::create_directories(dir / "layer2.npy" / "blocker");
  require_error([&] { snn::save_weights(dir, other); }, {(dir / "layer2.npy").string()});
  CHECK(snn::read_npy(dir / "layer0.npy") == other.layers[0]);  // the new layers were written...
  CHECK_FALSE(fs::exists(dir / "manifest.json"));               // ...but nothing claims they form a set
  require_error([&] { snn::load_weights(dir); }, {(dir / "manifest.json").string()});
}

namespace {

// input 2x6x6 -> conv 3 3x3 pad 1 -> avgpool 2 -> flatten -> dense 4 (27 inputs)
snn::WeightSet conv_set(bool with_bias) {
  snn::WeightSet w;
  w.input = snn::Shape{2, 6, 6};
  w.architecture = {snn::LayerSpec::conv(3, 3, 1, 1, "conv1"), snn::LayerSpec::avgpool(2, "pool1"),
                    snn::LayerSpec::flatten("flat"), snn::LayerSpec::dense(4, "fc")};
  w.layers = {ramp(3, 18, 0.01f), ramp(4, 27, 0.02f)};
  w.names = {"conv1", "fc"};
  if (with_bias) w.biases = {{0.5f, -0.25f, 1.0f}, {}};
  return w;
}

}  // namespace

TEST_CASE("a conv architecture with pooling, flatten and a bias round-trips, conv kernels stored 4-D") {
  const fs::path dir = fresh_dir("conv");
  const snn::WeightSet w = conv_set(true);
  snn::save_weights(dir, w);
  const snn::WeightSet back = snn::load_weights(dir);
  CHECK(back == snn::load_weights(dir / "manifest.json"));
  CHECK(back.input == w.input);
  CHECK(back.architecture == w.architecture);
  CHECK(back.layers == w.layers);
  CHECK(back.biases == w.biases);
  CHECK(back.outputs() == 4);
  CHECK(back.inputs() == 72);
  // torch's Conv2d.weight layout on disk, the bias a 1-D array.
  const snn::NpyArray k = snn::read_npy_array(dir / "conv1.npy");
  CHECK(k.shape == std::vector<std::size_t>{3, 2, 3, 3});
  CHECK(k.data == w.layers[0].data);
  CHECK(snn::read_npy_array(dir / "conv1.bias.npy").shape == std::vector<std::size_t>{3});
  CHECK_FALSE(fs::exists(dir / "fc.bias.npy"));
}

TEST_CASE("a hand-written conv manifest loads without shapes, and mistakes name the layer and shapes") {
  const fs::path dir = fresh_dir("conv_manifest");
  snn::save_weights(dir, conv_set(false));
  const fs::path man = dir / "manifest.json";
  const std::string conv = R"({"name": "conv1", "kind": "conv", "file": "conv1.npy", "padding": 1})";
  const std::string rest = R"({"kind": "avgpool", "kernel": 2}, {"kind": "flatten"}, {"name": "fc", "file": "fc.npy"})";
  write_text(man, R"({"input": [2, 6, 6], "layers": [)" + conv + ", " + rest + "]}");
  const snn::WeightSet w = snn::load_weights(dir);
  REQUIRE(w.architecture.size() == 4);
  CHECK(w.architecture[0] == snn::LayerSpec::conv(3, 3, 1, 1, "conv1"));
  CHECK(w.architecture[1].kind == snn::LayerKind::AvgPool);
  CHECK(w.architecture[1].stride_h == 2);
  CHECK(w.layers == conv_set(false).layers);

  // Without padding the conv output is 4x4, pooled 2x2: fc would need 12 inputs.
  write_text(man, R"({"input": [2, 6, 6], "layers": [{"kind": "conv", "file": "conv1.npy"}, )" + rest + "]}");
  require_error([&] { snn::load_weights(dir); }, {(dir / "fc.npy").string(), "layer 3 'fc'", "[out, 12]", "[4, 27]"});
  // A 2-D array where the conv needs 4-D.
  write_text(man, R"({"input": [2, 6, 6], "layers": [{"kind": "conv", "file": "fc.npy"}, )" + rest + "]}");
  require_error([&] { snn::load_weights(dir); }, {(dir / "fc.npy").string(), "4-D", "(4, 27)"});
  // Unsupported kinds say so.
  write_text(man, R"({"input": [2, 6, 6], "layers": [{"kind": "maxpool", "kernel": 2}, )" + rest + "]}");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "layers[0].kind", "not supported"});
  // Pooling that does not tile its input.
  write_text(man, R"({"input": [2, 6, 6], "layers": [)" + conv +
                      R"(, {"kind": "avgpool", "kernel": 4}, {"kind": "flatten"}, {"file": "fc.npy"}]})");
  require_error([&] { snn::load_weights(dir); }, {man.string(), "layers[1]", "avgpool 4", "does not tile"});
}

TEST_CASE("an [in, out] dense array gets a hint to transpose") {
  const fs::path dir = fresh_dir("transposed");
  snn::save_weights(dir, sample_set());
  const fs::path man = dir / "manifest.json";
  snn::Matrix t = ramp(6, 5, 0.2f);  // [in, out] for a [5, 6] layer
  snn::write_npy(dir / "layer1.npy", t);
  // With the shape in the manifest and without it.
  require_error([&] { snn::load_weights(dir); }, {(dir / "layer1.npy").string(), "transposed", "[out, in]"});
  write_text(man, R"({"layers": [{"file": "layer0.npy"}, {"file": "layer1.npy"}, {"file": "layer2.npy"}]})");
  require_error([&] { snn::load_weights(dir); }, {(dir / "layer1.npy").string(), "looks transposed", "[6, 5]"});
}

TEST_CASE("saving checks an architecture against its matrices") {
  const fs::path dir = fresh_dir("conv_bad");
  snn::WeightSet w = conv_set(false);
  w.layers[1] = ramp(4, 26, 0.1f);
  require_error([&] { snn::save_weights(dir, w); }, {"layer 3 'fc'", "[4, 27]", "found [4, 26]"});
  w = conv_set(true);
  w.biases[0].pop_back();
  require_error([&] { snn::save_weights(dir, w); }, {"'conv1' has a bias of 2 values, expected 3"});
}
