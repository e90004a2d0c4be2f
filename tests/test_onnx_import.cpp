// The ONNX importer (conversion/onnx_import.h): the PyTorch-exported fixtures
// of tests/data/onnx/ (made by make_fixtures.py) must compute torch's outputs
// after folding, checked with an independent naive forward pass below (direct
// loops, not the trainer's layers); every refusal names the node and op type;
// broken files name the file.
#include "snn/conversion/onnx_import.h"
#include "snn/error.h"
#include "snn/network/npy.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
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

fs::path temp_dir() {
  const fs::path dir = fs::path(SNNSIM_BINARY_DIR) / "test_onnx_import_tmp";
  fs::create_directories(dir);
  return dir;
}

// The ANN of an imported model, written out as plain loops: bias added to
// every weighted layer, ReLU after every weighted layer but (unless
// output_relu) the last; average pools and flatten as their definitions say.
std::vector<float> reference_forward(const OnnxModel& m, std::vector<float> x) {
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
                  if (iy < 0 || ix < 0 || iy >= static_cast<long>(in.height) || ix >= static_cast<long>(in.width)) {
                    continue;
                  }
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
double max_diff_against_torch(const OnnxModel& m, const std::string& name) {
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

std::vector<std::string> describe_all(const OnnxModel& m) {
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
  } catch (const snn::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("mlp.onnx") && Catch::Contains("SNNSIM_ONNX"));
  }
}

#else

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
  CHECK(describe_all(m) ==
        std::vector<std::string>{"conv 4 5x5", "avgpool 2", "conv 8 5x5", "avgpool 2", "flatten", "dense 10"});
  CHECK(m.shapes.back() == Shape{10, 1, 1});
  CHECK(m.shapes[3] == Shape{8, 4, 4});
  CHECK(m.parameters() == (4 * 25 + 4) + (8 * 4 * 25 + 8) + (128 * 10 + 10));
  const double diff = max_diff_against_torch(m, "convnet");
  INFO("max |snnsim - torch| = " << diff);
  CHECK(diff <= 1e-4);
  const std::string table = snn::conversion::describe(m);
  CHECK_THAT(table, Catch::Contains("conv 4 5x5") && Catch::Contains("total parameters 2202") &&
                        Catch::Contains("/10/Softmax") && Catch::Contains("input 1x28x28"));
}

TEST_CASE("PyTorch strided, padded ConvNet with a bias-free MatMul: outputs equal torch's", "[onnx]") {
  const OnnxModel m = import_onnx(kFixtures / "strided.onnx");
  CHECK(describe_all(m) == std::vector<std::string>{"conv 6 4x4 stride 2 pad 1", "conv 8 4x4 stride 2 pad 1",
                                                    "flatten", "dense 10"});
  CHECK(m.shapes[1] == Shape{8, 7, 7});
  CHECK(m.biases[2].empty());
  const double diff = max_diff_against_torch(m, "strided");
  INFO("max |snnsim - torch| = " << diff);
  CHECK(diff <= 1e-4);
}

#endif
