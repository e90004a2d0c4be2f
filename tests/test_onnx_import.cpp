// The ONNX importer (conversion/onnx_import.h): the PyTorch-exported fixtures
// of tests/data/onnx/ (made by make_fixtures.py) must compute torch's outputs
// after folding, checked with an independent naive forward pass below (direct
// loops, not the trainer's layers); every refusal names the node and op type;
// broken files name the file.
#include "snn/conversion/onnx_import.h"
#include "snn/error.h"
#include "snn/network/dataset.h"
#include "snn/network/npy.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#if SNNSIM_HAS_ONNX
#include <onnx/onnx_pb.h>
#endif

namespace fs = std::filesystem;
using snn::LayerKind;
using snn::LayerSpec;
using snn::Shape;
using snn::conversion::import_onnx;
using snn::conversion::OnnxModel;

namespace {

const fs::path kFixtures = fs::path(SNNSIM_SOURCE_DIR) / "tests" / "data" / "onnx";

// The ANN of an imported model, written out as plain loops: bias added to
// every weighted layer, ReLU after every weighted layer but (unless
// output_relu) the last; average pools and flatten as their definitions say.
[[maybe_unused]] std::vector<float> reference_forward(const OnnxModel& m, std::vector<float> x) {
  std::size_t last_weighted = 0;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    if (m.layers[i].has_weights()) last_weighted = i;
  }
  Shape in = m.input;
  std::size_t w_index = 0;
  for (std::size_t li = 0; li < m.layers.size(); ++li) {
    const LayerSpec& l = m.layers[li];
    std::vector<float> y;
    Shape out = in;
    if (l.kind == LayerKind::Dense) {
      const snn::Matrix& w = m.weights[w_index];
      const std::vector<float>& b = m.biases[w_index];
      REQUIRE(w.cols == x.size());
      y.assign(w.rows, 0.0f);
      for (std::size_t o = 0; o < w.rows; ++o) {
        double acc = b.empty() ? 0.0 : b[o];
        for (std::size_t i = 0; i < w.cols; ++i) acc += static_cast<double>(w(o, i)) * x[i];
        y[o] = static_cast<float>(acc);
      }
      out = Shape{w.rows, 1, 1};
    } else if (l.kind == LayerKind::Conv || l.kind == LayerKind::AvgPool) {
      const bool conv = l.kind == LayerKind::Conv;
      const std::size_t oh = (in.height + 2 * l.pad_h - l.kernel_h) / l.stride_h + 1;
      const std::size_t ow = (in.width + 2 * l.pad_w - l.kernel_w) / l.stride_w + 1;
      out = Shape{conv ? l.outputs : in.channels, oh, ow};
      y.assign(out.size(), 0.0f);
      for (std::size_t o = 0; o < out.channels; ++o) {
        for (std::size_t r = 0; r < oh; ++r) {
          for (std::size_t c = 0; c < ow; ++c) {
            double acc = 0.0;
            const std::size_t c_begin = conv ? 0 : o, c_end = conv ? in.channels : o + 1;
            for (std::size_t ci = c_begin; ci < c_end; ++ci) {
              for (std::size_t ky = 0; ky < l.kernel_h; ++ky) {
                for (std::size_t kx = 0; kx < l.kernel_w; ++kx) {
                  const auto iy = static_cast<long>(r * l.stride_h + ky) - static_cast<long>(l.pad_h);
                  const auto ix = static_cast<long>(c * l.stride_w + kx) - static_cast<long>(l.pad_w);
                  if (iy < 0 || ix < 0 || iy >= static_cast<long>(in.height) || ix >= static_cast<long>(in.width)) { continue; }
                  const float v = x[(ci * in.height + static_cast<std::size_t>(iy)) * in.width + static_cast<std::size_t>(ix)];
                  const double weight =
                      conv ? m.weights[w_index](o, (ci * l.kernel_h + ky) * l.kernel_w + kx) : 1.0 / (l.kernel_h * l.kernel_w);
                  acc += weight * v;
                }
              }
            }
            if (conv && !m.biases[w_index].empty()) acc += m.biases[w_index][o];
            y[(o * oh + r) * ow + c] = static_cast<float>(acc);
          }
        }
      }
    } else {  // flatten
      y = x;
      out = Shape{in.size(), 1, 1};
    }
    if (l.has_weights()) {
      if (li != last_weighted || m.output_relu) {
        for (float& v : y) v = std::max(v, 0.0f);
      }
      ++w_index;
    }
    REQUIRE(out == m.shapes[li]);
    x = std::move(y);
    in = out;
  }
  return x;
}

// Max |snnsim - torch| over the fixture's inputs; also counts argmax agreement.
[[maybe_unused]] double max_diff_against_torch(const OnnxModel& m, const std::string& name) {
  const snn::Matrix inputs = snn::read_npy(kFixtures / "inputs.npy");
  const snn::Matrix expected = snn::read_npy(kFixtures / (name + "_out.npy"));
  REQUIRE(inputs.rows == expected.rows);
  REQUIRE(inputs.cols == m.input.size());
  double worst = 0.0;
  for (std::size_t s = 0; s < inputs.rows; ++s) {
    const std::vector<float> x(inputs.row(s), inputs.row(s) + inputs.cols);
    const std::vector<float> y = reference_forward(m, x);
    REQUIRE(y.size() == expected.cols);
    for (std::size_t k = 0; k < y.size(); ++k) worst = std::max(worst, std::abs(double(y[k]) - expected(s, k)));
  }
  return worst;
}

[[maybe_unused]] std::vector<std::string> describe_all(const OnnxModel& m) {
  std::vector<std::string> out;
  for (const auto& l : m.layers) out.push_back(snn::describe(l));
  return out;
}

}  // namespace

TEST_CASE("onnx_supported reports the build option", "[onnx]") {
  CHECK(snn::conversion::onnx_supported() == bool(SNNSIM_HAS_ONNX));
}

#if !SNNSIM_HAS_ONNX

TEST_CASE("Without ONNX support import_onnx names the file and the missing option", "[onnx]") {
  try {
    import_onnx(kFixtures / "mlp.onnx");
    FAIL("no error");
  } catch (const snn::Error& e) { CHECK_THAT(e.what(), Catch::Contains("mlp.onnx") && Catch::Contains("SNNSIM_ONNX")); }
}

#else

namespace {

fs::path temp_dir() {
  const fs::path dir = fs::path(SNNSIM_BINARY_DIR) / "test_onnx_import_tmp";
  fs::create_directories(dir);
  return dir;
}

// Crafts small ONNX models with ONNX's own protobuf classes: an input, then
// nodes appended in order, each reading the previous node's output unless
// told otherwise.
class GraphBuilder {
 public:
  explicit GraphBuilder(std::vector<std::int64_t> input_dims, std::int64_t opset = 13) {
    model_.set_ir_version(7);
    model_.set_producer_name("test_onnx_import");
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    auto* in = graph().add_input();
    in->set_name("x");
    auto* type = in->mutable_type()->mutable_tensor_type();
    type->set_elem_type(onnx::TensorProto::FLOAT);
    for (std::int64_t d : input_dims) type->mutable_shape()->add_dim()->set_dim_value(d);
  }
  onnx::GraphProto& graph() { return *model_.mutable_graph(); }
  onnx::ModelProto& model() { return model_; }

  /// A float initializer; returns its name.
  std::string init(const std::string& name, std::vector<std::int64_t> dims, const std::vector<float>& values) {
    auto* t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    return name;
  }
  std::string init_i64(const std::string& name, std::vector<std::int64_t> dims, const std::vector<std::int64_t>& values) {
    auto* t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (auto d : dims) t->add_dims(d);
    for (auto v : values) t->add_int64_data(v);
    return name;
  }
  /// Random float initializer U(-scale, scale), fixed seed.
  std::string random(const std::string& name, std::vector<std::int64_t> dims, float scale = 0.3f) {
    std::size_t n = 1;
    for (auto d : dims) n *= static_cast<std::size_t>(d);
    std::vector<float> v(n);
    std::uniform_real_distribution<float> dist(-scale, scale);
    for (float& x : v) x = dist(rng_);
    return init(name, std::move(dims), v);
  }
  /// Appends node `name` of type `op` reading the current activation and then
  /// `params`; its output becomes the current activation.
  onnx::NodeProto& node(const std::string& op, const std::string& name, const std::vector<std::string>& params = {}) {
    auto* n = graph().add_node();
    n->set_op_type(op);
    n->set_name(name);
    n->add_input(current_);
    for (const auto& p : params) n->add_input(p);
    current_ = name + "_out";
    n->add_output(current_);
    return *n;
  }
  static void ints(onnx::NodeProto& n, const std::string& name, const std::vector<std::int64_t>& values) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto v : values) a->add_ints(v);
  }
  static void integer(onnx::NodeProto& n, const std::string& name, std::int64_t value) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }
  static void real(onnx::NodeProto& n, const std::string& name, float value) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }
  std::string& current() { return current_; }

  /// Declares the current activation the graph's output and writes the file.
  fs::path save(const std::string& file) {
    if (graph().output_size() == 0) {
      auto* out = graph().add_output();
      out->set_name(current_);
      out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    }
    const fs::path path = temp_dir() / file;
    std::ofstream os(path, std::ios::binary | std::ios::trunc);
    REQUIRE(model_.SerializeToOstream(&os));
    return path;
  }

 private:
  onnx::ModelProto model_;
  std::string current_ = "x";
  std::mt19937 rng_{7};
};

std::string import_error(const fs::path& path) {
  try {
    import_onnx(path);
  } catch (const snn::Error& e) { return e.what(); }
  FAIL("no error importing " << path);
  return {};
}

}  // namespace

TEST_CASE("PyTorch MLP: Sub/Div normalisation and BatchNorm1d folded, outputs equal torch's", "[onnx]") {
  const OnnxModel m = import_onnx(kFixtures / "mlp.onnx");
  CHECK(m.opset == 13);
  CHECK(m.input == Shape{1, 28, 28});
  CHECK(describe_all(m) == std::vector<std::string>{"flatten", "dense 16", "dense 10"});
  REQUIRE(m.weights.size() == 2);
  CHECK(m.weights[0].rows == 16);
  CHECK(m.weights[0].cols == 784);
  CHECK(m.biases[0].size() == 16);
  CHECK(m.biases[1].size() == 10);
  CHECK_FALSE(m.output_relu);
  CHECK(m.parameters() == 784 * 16 + 16 + 16 * 10 + 10);
  const double diff = max_diff_against_torch(m, "mlp");
  INFO("max |snnsim - torch| = " << diff);
  CHECK(diff <= 1e-4);
}

TEST_CASE("PyTorch ConvNet: Mul/Add input scaling, Pad and Softmax dropped, outputs equal torch's", "[onnx]") {
  const OnnxModel m = import_onnx(kFixtures / "convnet.onnx");
  CHECK(describe_all(m) == std::vector<std::string>{"conv 4 5x5", "avgpool 2", "conv 8 5x5", "avgpool 2", "flatten", "dense 10"});
  CHECK(m.shapes.back() == Shape{10, 1, 1});
  CHECK(m.shapes[3] == Shape{8, 4, 4});
  CHECK(m.parameters() == (4 * 25 + 4) + (8 * 4 * 25 + 8) + (128 * 10 + 10));
  const double diff = max_diff_against_torch(m, "convnet");
  INFO("max |snnsim - torch| = " << diff);
  CHECK(diff <= 1e-4);
  const std::string table = snn::conversion::describe(m);
  CHECK_THAT(table, Catch::Contains("conv 4 5x5") && Catch::Contains("total parameters 2202") && Catch::Contains("/10/Softmax") &&
                        Catch::Contains("input 1x28x28"));
}

TEST_CASE("PyTorch strided, padded ConvNet with a bias-free MatMul: outputs equal torch's", "[onnx]") {
  const OnnxModel m = import_onnx(kFixtures / "strided.onnx");
  CHECK(describe_all(m) ==
        std::vector<std::string>{"conv 6 4x4 stride 2 pad 1", "conv 8 4x4 stride 2 pad 1", "flatten", "dense 10"});
  CHECK(m.shapes[1] == Shape{8, 7, 7});
  CHECK(m.biases[2].empty());
  const double diff = max_diff_against_torch(m, "strided");
  INFO("max |snnsim - torch| = " << diff);
  CHECK(diff <= 1e-4);
}

#endif

#if SNNSIM_HAS_ONNX

TEST_CASE("The imported fixtures' ANN accuracy on mnist10k equals torch's", "[onnx]") {
  const fs::path dir = snn::data_dir() / "mnist10k";
  INFO("mnist10k is not fetched into " << dir << ": run tools/fetch-data mnist10k");
  REQUIRE(fs::is_directory(dir));
  const snn::Dataset test = snn::load_dataset("mnist10k").test;
  std::ifstream in(kFixtures / "torch_accuracy.json");
  const auto torch = nlohmann::json::parse(in);
  for (const std::string name : {"mlp", "convnet", "strided"}) {
    const OnnxModel m = import_onnx(kFixtures / (name + ".onnx"));
    REQUIRE(torch[name]["test_samples"] == test.count);
    std::size_t correct = 0;
    for (std::size_t i = 0; i < test.count; ++i) {
      std::vector<float> x(test.image_size());
      for (std::size_t p = 0; p < x.size(); ++p) x[p] = snn::pixel_value(test.image(i)[p]);
      const std::vector<float> y = reference_forward(m, x);
      correct += static_cast<std::size_t>(std::max_element(y.begin(), y.end()) - y.begin()) == test.labels[i];
    }
    const double accuracy = static_cast<double>(correct) / static_cast<double>(test.count);
    const double expected = torch[name]["test_accuracy"];
    std::printf("%s: snnsim ANN %.2f %% (%zu / %zu), torch %.2f %%\n", name.c_str(), 100 * accuracy, correct, test.count,
                100 * expected);
    CHECK(std::abs(accuracy - expected) <= 0.001);
  }
}

namespace {

// The model as imported but with the given raw (unfolded) weights and
// biases, no ReLU at the output: reference_forward then gives the raw
// pre-activation the test folds by hand.
OnnxModel with_raw(OnnxModel m, std::vector<snn::Matrix> weights, std::vector<std::vector<float>> biases) {
  m.weights = std::move(weights);
  m.biases = std::move(biases);
  m.output_relu = false;
  return m;
}

std::vector<float> values_of(const onnx::TensorProto& t) { return {t.float_data().begin(), t.float_data().end()}; }

std::vector<float> sample(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

}  // namespace

TEST_CASE("Conv followed by BatchNormalization folds into the conv's weights and bias", "[onnx]") {
  GraphBuilder g({1, 2, 6, 6});
  const auto w = g.random("w", {3, 2, 3, 3});
  const auto b = g.random("b", {3});
  auto& conv = g.node("Conv", "conv", {w, b});
  GraphBuilder::ints(conv, "pads", {1, 1, 1, 1});
  const std::vector<float> gamma{1.5f, -0.5f, 0.8f}, beta{0.1f, 0.2f, -0.3f}, mean{0.05f, -0.1f, 0.2f}, var{0.5f, 2.0f, 0.1f};
  auto& bn = g.node("BatchNormalization", "bn",
                    {g.init("gamma", {3}, gamma), g.init("beta", {3}, beta), g.init("mean", {3}, mean), g.init("var", {3}, var)});
  GraphBuilder::real(bn, "epsilon", 1e-3f);
  g.node("Relu", "relu");
  const OnnxModel m = import_onnx(g.save("conv_bn.onnx"));
  REQUIRE(describe_all(m) == std::vector<std::string>{"conv 3 3x3 pad 1"});
  CHECK(m.output_relu);
  CHECK(m.nodes[1].action == "folded into layer 1 (batch norm)");

  snn::Matrix raw_w(3, 18);
  raw_w.data = values_of(g.graph().initializer(0));
  const OnnxModel raw = with_raw(m, {raw_w}, {values_of(g.graph().initializer(1))});
  for (unsigned seed = 0; seed < 3; ++seed) {
    const std::vector<float> x = sample(72, seed);
    const std::vector<float> pre = reference_forward(raw, x);
    const std::vector<float> got = reference_forward(m, x);
    for (std::size_t i = 0; i < pre.size(); ++i) {
      const std::size_t c = i / 36;
      const double expected = std::max(0.0, gamma[c] * (pre[i] - mean[c]) / std::sqrt(var[c] + 1e-3) + beta[c]);
      CHECK(got[i] == Approx(expected).margin(1e-5));
    }
  }
}

TEST_CASE("Gemm's transB, alpha, beta and broadcast C become dense weights and bias", "[onnx]") {
  GraphBuilder g({1, 5});
  const std::vector<float> bm{0.1f,  -0.2f, 0.3f, 0.4f, 0.5f,  -0.6f, 0.7f, 0.8f, 0.9f, 1.0f,
                              -1.1f, 1.2f,  1.3f, 1.4f, -1.5f, 1.6f,  1.7f, 1.8f, 1.9f, 2.0f};
  const std::vector<float> cm{0.25f, -0.5f, 0.75f, 1.0f};
  auto& gemm = g.node("Gemm", "gemm", {g.init("B", {5, 4}, bm), g.init("C", {1, 4}, cm)});
  GraphBuilder::real(gemm, "alpha", 0.5f);
  GraphBuilder::real(gemm, "beta", 2.0f);
  const OnnxModel m = import_onnx(g.save("gemm.onnx"));
  REQUIRE(describe_all(m) == std::vector<std::string>{"dense 4"});
  const std::vector<float> x{0.3f, -1.0f, 2.0f, 0.5f, 1.5f};
  const std::vector<float> got = reference_forward(m, x);
  for (std::size_t n = 0; n < 4; ++n) {
    double expected = 2.0 * cm[n];
    for (std::size_t k = 0; k < 5; ++k) expected += 0.5 * x[k] * bm[k * 4 + n];
    CHECK(got[n] == Approx(expected).margin(1e-6));
  }
}

TEST_CASE("MatMul then Add becomes a dense layer with a bias", "[onnx]") {
  GraphBuilder g({1, 3});
  g.node("MatMul", "mm", {g.init("B", {3, 2}, {1, 2, 3, 4, 5, 6})});
  g.node("Add", "add", {g.init("c", {2}, {0.5f, -0.5f})});
  const OnnxModel m = import_onnx(g.save("matmul_add.onnx"));
  REQUIRE(m.weights.size() == 1);
  CHECK(m.weights[0].data == std::vector<float>{1, 3, 5, 2, 4, 6});
  CHECK(m.biases[0] == std::vector<float>{0.5f, -0.5f});
  CHECK(m.nodes[1].action == "folded into layer 1 (bias)");
}

TEST_CASE("Per-channel input normalisation folds into an unpadded first Conv, and is refused before a padded one", "[onnx]") {
  for (const bool padded : {false, true}) {
    GraphBuilder g({1, 2, 5, 5});
    g.node("Sub", "sub", {g.init("mean", {1, 2, 1, 1}, {0.2f, 0.6f})});
    g.node("Div", "div", {g.init("std", {2, 1, 1}, {0.5f, 0.25f})});
    const auto w = g.random("w", {4, 2, 3, 3});
    auto& conv = g.node("Conv", "conv", {w});
    if (padded) GraphBuilder::ints(conv, "pads", {1, 1, 1, 1});
    const fs::path path = g.save(padded ? "norm_padded.onnx" : "norm.onnx");
    if (padded) {
      CHECK_THAT(import_error(path), Catch::Contains("'conv' (Conv)") && Catch::Contains("padded Conv"));
      continue;
    }
    const OnnxModel m = import_onnx(path);
    snn::Matrix raw_w(4, 18);
    raw_w.data = values_of(g.graph().initializer(2));
    const OnnxModel raw = with_raw(m, {raw_w}, {{}});
    const std::vector<float> x = sample(50, 3);
    std::vector<float> normalised = x;
    for (std::size_t i = 0; i < x.size(); ++i) { normalised[i] = i < 25 ? (x[i] - 0.2f) / 0.5f : (x[i] - 0.6f) / 0.25f; }
    const std::vector<float> expected = reference_forward(raw, normalised);
    const std::vector<float> got = reference_forward(m, x);
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(expected[i]).margin(1e-5));
  }
}

TEST_CASE("GlobalAveragePool becomes a pool over the whole plane and the Flatten after it is dropped", "[onnx]") {
  GraphBuilder g({1, 1, 6, 6});
  g.node("Conv", "conv", {g.random("w", {3, 1, 3, 3})});
  g.node("Relu", "relu");
  g.node("GlobalAveragePool", "gap");
  g.node("Flatten", "flat");
  g.node("Gemm", "fc", {g.random("w2", {2, 3})}).mutable_attribute();
  GraphBuilder::integer(*g.graph().mutable_node(4), "transB", 1);
  const OnnxModel m = import_onnx(g.save("gap.onnx"));
  CHECK(describe_all(m) == std::vector<std::string>{"conv 3 3x3", "avgpool 4", "dense 2"});
  CHECK(m.shapes[1] == Shape{3, 1, 1});
  CHECK(m.nodes[3].action == "dropped (already flat)");
}

TEST_CASE("Opsets 9 and 18 are read (Pad, Reshape, Dropout, Identity), 8 and 19 are refused", "[onnx]") {
  for (const std::int64_t opset : {8, 9, 18, 19}) {
    GraphBuilder g({1, 1, 6, 6}, opset);
    g.node("Conv", "conv", {g.random("w", {2, 1, 3, 3})});
    g.node("Relu", "relu");
    auto& pad = opset < 11 ? g.node("Pad", "pad") : g.node("Pad", "pad", {g.init_i64("pads", {8}, {0, 0, 0, 0, 0, 0, 0, 0})});
    if (opset < 11) GraphBuilder::ints(pad, "pads", {0, 0, 0, 0, 0, 0, 0, 0});
    auto& pool = g.node("AveragePool", "pool");
    GraphBuilder::ints(pool, "kernel_shape", {2, 2});
    GraphBuilder::ints(pool, "strides", {2, 2});
    g.node("Dropout", "drop");
    g.node("Identity", "id");
    g.node("Reshape", "reshape", {g.init_i64("shape", {2}, {1, -1})});
    g.node("Gemm", "fc", {g.random("w2", {8, 3})});
    const fs::path path = g.save(fmt::format("opset{}.onnx", opset));
    if (opset == 8 || opset == 19) {
      CHECK_THAT(import_error(path),
                 Catch::Contains(fmt::format("opset {}", opset)) && Catch::Contains(path.filename().string()));
      continue;
    }
    const OnnxModel m = import_onnx(path);
    CHECK(m.opset == opset);
    CHECK(describe_all(m) == std::vector<std::string>{"conv 2 3x3", "avgpool 2", "flatten", "dense 3"});
  }
}

namespace {

// A base chain (conv, relu on a 1x2x6x6 input) followed by whatever `extend`
// appends; returns the import error.
template <typename Extend>
std::string refusal(const std::string& file, Extend extend) {
  GraphBuilder g({1, 2, 6, 6});
  g.node("Conv", "conv", {g.random("w", {2, 2, 3, 3})});
  g.node("Relu", "relu");
  extend(g);
  const fs::path path = g.save(file);
  const std::string error = import_error(path);
  CHECK_THAT(error, Catch::Contains(file));
  return error;
}

}  // namespace

TEST_CASE("Unsupported operators are refused naming the node, its op type and what to do", "[onnx]") {
  using Catch::Contains;
  CHECK_THAT(refusal("maxpool.onnx",
                     [](GraphBuilder& g) {
                       auto& n = g.node("MaxPool", "pool1");
                       GraphBuilder::ints(n, "kernel_shape", {2, 2});
                     }),
             Contains("node 'pool1' (MaxPool)") && Contains("use AveragePool"));
  for (const std::string op : {"Sigmoid", "Tanh", "Gelu", "Erf", "LeakyRelu"}) {
    CHECK_THAT(refusal(op + ".onnx", [&](GraphBuilder& g) { g.node(op, "act"); }),
               Contains(fmt::format("node 'act' ({})", op)) && Contains("not ReLU-convertible"));
  }
  CHECK_THAT(refusal("unknown.onnx", [](GraphBuilder& g) { g.node("LRN", "lrn"); }),
             Contains("node 'lrn' (LRN)") && Contains("unsupported operator"));
  CHECK_THAT(refusal("unnamed.onnx", [](GraphBuilder& g) { g.node("Tanh", ""); }), Contains("node '#2' (Tanh)"));
}

TEST_CASE("Conv variants snnsim cannot run are refused naming the node", "[onnx]") {
  using Catch::Contains;
  CHECK_THAT(refusal("group.onnx",
                     [](GraphBuilder& g) {
                       auto& n = g.node("Conv", "dw", {g.random("w2", {2, 1, 3, 3})});
                       GraphBuilder::integer(n, "group", 2);
                     }),
             Contains("node 'dw' (Conv)") && Contains("group = 2"));
  CHECK_THAT(refusal("dilation.onnx",
                     [](GraphBuilder& g) {
                       auto& n = g.node("Conv", "dil", {g.random("w2", {2, 2, 2, 2})});
                       GraphBuilder::ints(n, "dilations", {2, 2});
                     }),
             Contains("node 'dil' (Conv)") && Contains("dilation 2"));
  CHECK_THAT(refusal("asym.onnx",
                     [](GraphBuilder& g) {
                       auto& n = g.node("Conv", "asym", {g.random("w2", {2, 2, 3, 3})});
                       GraphBuilder::ints(n, "pads", {0, 0, 1, 1});
                     }),
             Contains("node 'asym' (Conv)") && Contains("asymmetric pads"));
  CHECK_THAT(refusal("untiled.onnx",
                     [](GraphBuilder& g) {
                       auto& n = g.node("Conv", "c2", {g.random("w2", {2, 2, 3, 3})});
                       GraphBuilder::ints(n, "strides", {2, 2});
                       GraphBuilder::ints(n, "pads", {1, 1, 1, 1});
                     }),
             Contains("node 'c2' (Conv)") && Contains("does not tile"));
}

TEST_CASE("Misplaced layers are refused naming the node", "[onnx]") {
  using Catch::Contains;
  CHECK_THAT(refusal("no_relu.onnx",
                     [](GraphBuilder& g) {
                       g.node("Conv", "c2", {g.random("w2", {2, 2, 3, 3})});
                       g.node("Conv", "c3", {g.random("w3", {2, 2, 1, 1})});
                     }),
             Contains("node 'c3' (Conv)") && Contains("no Relu between"));
  CHECK_THAT(
      refusal("bn_after_relu.onnx",
              [](GraphBuilder& g) {
                g.node("BatchNormalization", "bn",
                       {g.init("s", {2}, {1, 1}), g.init("b", {2}, {0, 0}), g.init("m", {2}, {0, 0}), g.init("v", {2}, {1, 1})});
              }),
      Contains("node 'bn' (BatchNormalization)") && Contains("before the ReLU"));
  CHECK_THAT(refusal("pool_before_relu.onnx",
                     [](GraphBuilder& g) {
                       g.node("Conv", "c2", {g.random("w2", {2, 2, 1, 1})});
                       auto& n = g.node("AveragePool", "pool");
                       GraphBuilder::ints(n, "kernel_shape", {2, 2});
                       GraphBuilder::ints(n, "strides", {2, 2});
                     }),
             Contains("node 'pool' (AveragePool)") && Contains("apply the ReLU first"));
  CHECK_THAT(refusal("pad.onnx",
                     [](GraphBuilder& g) {
                       g.node("Pad", "pad", {g.init_i64("pads", {8}, {0, 0, 1, 1, 0, 0, 1, 1})});
                     }),
             Contains("node 'pad' (Pad)") && Contains("non-zero padding"));
  CHECK_THAT(refusal("softmax.onnx",
                     [](GraphBuilder& g) {
                       g.node("Softmax", "sm");
                       g.node("Relu", "relu2");
                     }),
             Contains("node 'sm' (Softmax)") && Contains("last node"));
}

TEST_CASE("Graphs that are not a chain, dynamic shapes and external data are refused", "[onnx]") {
  using Catch::Contains;
  CHECK_THAT(refusal("residual.onnx",
                     [](GraphBuilder& g) {
                       const std::string skip = g.current();
                       g.node("Conv", "c2", {g.random("w2", {2, 2, 1, 1})});
                       g.node("Add", "residual", {skip});
                     }),
             Contains("not a chain") && Contains("'c2' (Conv)") && Contains("'residual' (Add)"));
  CHECK_THAT(refusal("dynamic_reshape.onnx",
                     [](GraphBuilder& g) {
                       // relu_out feeds both Shape and the Reshape that uses its result.
                       g.node("Shape", "shape");
                       auto& r = g.node("Reshape", "reshape", {"shape_out"});
                       r.set_input(0, "relu_out");
                     }),
             Contains("'shape' (Shape)") && Contains("dynamic shapes"));
  CHECK_THAT(refusal("dangling.onnx",
                     [](GraphBuilder& g) {
                       auto* n = g.graph().add_node();  // reads a weight, not the chain
                       n->set_op_type(std::string("Relu"));
                       n->set_name(std::string("stray"));
                       n->add_input(std::string("w"));
                       n->add_output(std::string("stray_out"));
                     }),
             Contains("node 'stray' (Relu) is not on the chain"));
  CHECK_THAT(refusal("external.onnx",
                     [](GraphBuilder& g) {
                       g.node("Flatten", "flat");
                       const auto w = g.random("fc_w", {10, 32});
                       auto* t = g.graph().mutable_initializer(g.graph().initializer_size() - 1);
                       t->clear_float_data();
                       t->set_data_location(onnx::TensorProto::EXTERNAL);
                       auto* entry = t->add_external_data();
                       entry->set_key("location");
                       entry->set_value("weights.bin");
                       auto& n = g.node("Gemm", "fc", {w});
                       GraphBuilder::integer(n, "transB", 1);
                     }),
             Contains("node 'fc' (Gemm)") && Contains("external data file 'weights.bin'"));

  GraphBuilder g({1, 1, 28, 28});
  auto* dim = g.graph().mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(2);
  dim->set_dim_param("height");
  g.node("Conv", "conv", {g.random("w", {2, 1, 3, 3})});
  const fs::path path = g.save("dynamic_input.onnx");
  CHECK_THAT(import_error(path),
             Contains("dynamic_input.onnx") && Contains("input 'x'") && Contains("dynamic height axis ('height')"));
  // A dynamic batch axis (Keras/tf2onnx always writes one) is fine.
  GraphBuilder batch({1, 1, 28, 28});
  batch.graph().mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_param("N");
  batch.node("Conv", "conv", {batch.random("w", {2, 1, 3, 3})});
  CHECK(import_onnx(batch.save("dynamic_batch.onnx")).input == Shape{1, 28, 28});
}

TEST_CASE("Missing, garbage, empty and truncated files are errors naming the file", "[onnx]") {
  using Catch::Contains;
  const fs::path dir = temp_dir();
  CHECK_THAT(import_error(dir / "no_such_model.onnx"), Contains("no_such_model.onnx") && Contains("cannot open"));
  const auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << bytes;
    return dir / name;
  };
  std::mt19937 rng(1);
  std::string garbage(4096, '\0');
  for (char& c : garbage) c = static_cast<char>(rng() & 0xff);
  CHECK_THAT(import_error(write("garbage.onnx", garbage)), Contains("garbage.onnx"));
  CHECK_THAT(import_error(write("empty.onnx", "")), Contains("empty.onnx"));
  CHECK_THAT(import_error(write("text.onnx", "hello, this is not a model\n")), Contains("text.onnx"));
  std::ifstream in(kFixtures / "mlp.onnx", std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(whole.size() > 1000);
  for (const double fraction : {0.01, 0.1, 0.5, 0.9, 0.999}) {
    const auto cut = static_cast<std::size_t>(fraction * static_cast<double>(whole.size()));
    INFO("truncated to " << cut << " of " << whole.size() << " bytes");
    CHECK_THAT(import_error(write("truncated.onnx", whole.substr(0, cut))), Contains("truncated.onnx"));
  }
}

TEST_CASE("Load times of paper-size models (12c5-2s-64c5-2s-10o and 784-1200-1200-10) are printed", "[onnx]") {
  GraphBuilder g({1, 1, 28, 28});
  g.node("Conv", "conv1", {g.random("w1", {12, 1, 5, 5})});
  g.node("Relu", "relu1");
  auto& p1 = g.node("AveragePool", "pool1");
  GraphBuilder::ints(p1, "kernel_shape", {2, 2});
  GraphBuilder::ints(p1, "strides", {2, 2});
  g.node("Conv", "conv2", {g.random("w2", {64, 12, 5, 5})});
  g.node("Relu", "relu2");
  auto& p2 = g.node("AveragePool", "pool2");
  GraphBuilder::ints(p2, "kernel_shape", {2, 2});
  GraphBuilder::ints(p2, "strides", {2, 2});
  g.node("Flatten", "flat");
  GraphBuilder::integer(g.node("Gemm", "fc", {g.random("w3", {10, 1024})}), "transB", 1);
  const fs::path path = g.save("paper.onnx");
  std::vector<double> seconds;
  OnnxModel m;
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    m = import_onnx(path);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  CHECK(describe_all(m) ==
        std::vector<std::string>{"conv 12 5x5", "avgpool 2", "conv 64 5x5", "avgpool 2", "flatten", "dense 10"});
  CHECK(m.parameters() == 12 * 25 + 64 * 12 * 25 + 10 * 1024);
  std::printf("paper-size ONNX ConvNet (%zu parameters, %ju bytes): import median %.2f ms over 5 loads (min %.2f, max %.2f)\n",
              m.parameters(), static_cast<std::uintmax_t>(fs::file_size(path)), seconds[2] * 1e3, seconds[0] * 1e3,
              seconds[4] * 1e3);

  // Diehl et al.'s fully connected 784-1200-1200-10, as torch exports it.
  GraphBuilder fc({1, 1, 28, 28});
  fc.node("Flatten", "flat");
  GraphBuilder::integer(fc.node("Gemm", "fc1", {fc.random("w1", {1200, 784}), fc.random("b1", {1200})}), "transB", 1);
  fc.node("Relu", "relu1");
  GraphBuilder::integer(fc.node("Gemm", "fc2", {fc.random("w2", {1200, 1200}), fc.random("b2", {1200})}), "transB", 1);
  fc.node("Relu", "relu2");
  GraphBuilder::integer(fc.node("Gemm", "fc3", {fc.random("w3", {10, 1200}), fc.random("b3", {10})}), "transB", 1);
  const fs::path fc_path = fc.save("paper_fc.onnx");
  seconds.clear();
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    m = import_onnx(fc_path);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  CHECK(m.parameters() == 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10);
  std::printf("paper-size ONNX FC net (%zu parameters, %ju bytes): import median %.1f ms over 5 loads (min %.1f, max %.1f)\n",
              m.parameters(), static_cast<std::uintmax_t>(fs::file_size(fc_path)), seconds[2] * 1e3, seconds[0] * 1e3,
              seconds[4] * 1e3);
}

TEST_CASE("A constant added after a conv's Flatten folds into that conv, not the flatten", "[onnx]") {
  GraphBuilder g({1, 1, 4, 4});
  g.node("Conv", "conv", {g.random("w", {2, 1, 3, 3})});
  g.node("Flatten", "flat");
  g.node("Add", "add", {g.init("c", {}, {0.25f})});
  g.node("Relu", "relu");
  const OnnxModel m = import_onnx(g.save("flatten_add.onnx"));
  CHECK(describe_all(m) == std::vector<std::string>{"conv 2 3x3", "flatten"});
  CHECK(m.biases[0] == std::vector<float>{0.25f, 0.25f});
  CHECK(m.nodes[2].action == "folded into layer 1 (bias)");
  CHECK(m.nodes[2].layer == std::optional<std::size_t>{0});
  CHECK(m.output_relu);
}

TEST_CASE("Cycles and missing weight inputs are errors, not hangs or crashes", "[onnx]") {
  using Catch::Contains;
  GraphBuilder g({1, 4});
  g.node("Identity", "a");
  g.node("Identity", "b").set_output(0, std::string("x"));  // feeds the input back to 'a'
  auto* out = g.graph().add_output();
  out->set_name(std::string("never"));
  CHECK_THAT(import_error(g.save("cycle.onnx")), Contains("cycle.onnx") && Contains("cycle"));

  GraphBuilder h({1, 4});
  h.node("Gemm", "fc");
  CHECK_THAT(import_error(h.save("no_weight.onnx")), Contains("node 'fc' (Gemm)") && Contains("no input 2"));
}

TEST_CASE("Randomly corrupted fixtures give a model or an snn::Error naming the file, never a crash", "[onnx]") {
  std::mt19937 rng(11);
  const fs::path path = temp_dir() / "mutated.onnx";
  std::size_t errors = 0, loaded = 0;
  for (const std::string name : {"mlp", "convnet", "strided"}) {
    std::ifstream in(kFixtures / (name + ".onnx"), std::ios::binary);
    const std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (int trial = 0; trial < 200; ++trial) {
      std::string bytes = whole;
      // Mostly the structure (the first and last kilobyte hold the graph's
      // nodes and shapes; the middle is weight data).
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        const std::size_t region = rng() % 3 == 0 ? bytes.size() : std::min<std::size_t>(bytes.size(), 1024);
        std::size_t at = rng() % region;
        if (rng() % 2 == 0) at = bytes.size() - 1 - at;
        bytes[at] = static_cast<char>(rng() & 0xff);
      }
      std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
      try {
        const OnnxModel m = import_onnx(path);
        CHECK(m.shapes.size() == m.layers.size());
        ++loaded;
      } catch (const snn::Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("mutated.onnx"));
        ++errors;
      }
    }
  }
  std::printf("corrupted fixtures: %zu loaded, %zu refused with an error\n", loaded, errors);
  CHECK(errors > 0);
}

#endif
