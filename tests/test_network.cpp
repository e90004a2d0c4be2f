#include "snn/network/network.h"

#include "snn/error.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

using snn::ConnectionSpec;
using snn::FanOutFormat;
using snn::Matrix;
using snn::Network;
using snn::NeuronParams;

namespace {

// [out = 2, in = 3], torch layout: row r = incoming weights of output r.
Matrix small_matrix() {
  Matrix m(2, 3);
  m(0, 0) = 0.5f;
  m(0, 1) = 0.0f;
  m(0, 2) = -0.25f;
  m(1, 0) = 0.01f;
  m(1, 1) = -2.0f;
  m(1, 2) = 0.75f;
  return m;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const snn::Error& e) { return e.what(); }
  return "<no error>";
}

}  // namespace

TEST_CASE("dense fan-out rows are the transpose of torch's [out, in] layout") {
  const Matrix m = small_matrix();
  const snn::DenseFanOut d = snn::make_dense_fan_out(m);
  REQUIRE(d.sources == 3);
  REQUIRE(d.targets == 2);
  for (std::size_t s = 0; s < 3; ++s)
    for (std::size_t t = 0; t < 2; ++t) CHECK(d.row(s)[t] == m(t, s));
}

TEST_CASE("dense transpose is right for shapes that are not multiples of the block") {
  Matrix m(37, 70);
  for (std::size_t r = 0; r < m.rows; ++r)
    for (std::size_t c = 0; c < m.cols; ++c) m(r, c) = static_cast<float>(r * 1000 + c);
  const snn::DenseFanOut d = snn::make_dense_fan_out(m);
  for (std::size_t s = 0; s < m.cols; ++s)
    for (std::size_t t = 0; t < m.rows; ++t) REQUIRE(d.row(s)[t] == m(t, s));
}

TEST_CASE("sparse fan-out drops zeros and weights below the cut-off, rows sorted by target") {
  const Matrix m = small_matrix();
  SECTION("cut-off 0 keeps every non-zero weight") {
    const snn::SparseFanOut sp = snn::make_sparse_fan_out(m, 0.0);
    REQUIRE(sp.offsets.size() == 4);
    // source 0 -> targets 0 (0.5), 1 (0.01); source 1 -> target 1 (-2); source 2 -> 0 (-0.25), 1 (0.75)
    CHECK(std::vector<std::uint64_t>(sp.offsets.begin(), sp.offsets.end()) == std::vector<std::uint64_t>{0, 2, 3, 5});
    CHECK(std::vector<snn::NeuronId>(sp.target_ids.begin(), sp.target_ids.end()) == std::vector<snn::NeuronId>{0, 1, 1, 0, 1});
    CHECK(std::vector<float>(sp.weights.begin(), sp.weights.end()) == std::vector<float>{0.5f, 0.01f, -2.0f, -0.25f, 0.75f});
  }
  SECTION("cut-off 0.25 drops |w| < 0.25 but keeps |w| == 0.25") {
    const snn::SparseFanOut sp = snn::make_sparse_fan_out(m, 0.25);
    CHECK(std::vector<std::uint64_t>(sp.offsets.begin(), sp.offsets.end()) == std::vector<std::uint64_t>{0, 1, 2, 4});
    CHECK(std::vector<snn::NeuronId>(sp.target_ids.begin(), sp.target_ids.end()) == std::vector<snn::NeuronId>{0, 1, 0, 1});
  }
}

TEST_CASE("connections convert back to the [out, in] matrix") {
  const Matrix m = small_matrix();
  Network dense(3);
  dense.add_layer(m, NeuronParams{});
  CHECK(dense.connection(0).to_matrix() == m);
  CHECK(dense.connection(0).synapses() == 6);
  CHECK(dense.connection(0).fan_out(1) == 2);

  Network sparse(3);
  sparse.add_layer(m, NeuronParams{}, ConnectionSpec{FanOutFormat::Sparse, 0.1, 2});
  Matrix expected = m;
  expected(1, 0) = 0.0f;  // 0.01 < cut-off
  CHECK(sparse.connection(0).to_matrix() == expected);
  CHECK(sparse.connection(0).synapses() == 4);
  CHECK(sparse.connection(0).fan_out(0) == 1);
  CHECK(sparse.connection(0).fan_out(1) == 1);
  CHECK(sparse.connection(0).fan_out(2) == 2);
  CHECK(sparse.connection(0).delay() == 2);
  CHECK(sparse.connection(0).format() == FanOutFormat::Sparse);
  CHECK_THROWS_AS(sparse.connection(0).dense(), snn::Error);
}

TEST_CASE("from_matrices chains layers and names populations") {
  const Network net = Network::from_matrices({Matrix(4, 3), Matrix(2, 4)}, {NeuronParams{}}, {}, {"hidden", "out"});
  REQUIRE(net.populations().size() == 3);
  CHECK(net.input_size() == 3);
  CHECK(net.output_size() == 2);
  CHECK(net.connection_count() == 2);
  CHECK(net.population(0).name == "input");
  CHECK(net.population(1).name == "hidden");
  CHECK(net.population(2).name == "out");
  CHECK(net.connection(1).source() == 1);
  CHECK(net.connection(1).target() == 2);
  const Network unnamed = Network::from_matrices({Matrix(4, 3)}, {NeuronParams{}});
  CHECK(unnamed.population(1).name == "layer1");
}

TEST_CASE("invalid networks are rejected with the value named") {
  NeuronParams ok;
  SECTION("sizes must chain") {
    const auto msg = message_of([] { Network::from_matrices({Matrix(4, 3), Matrix(2, 5)}, {NeuronParams{}}); });
    CHECK(msg.find("5 in") != std::string::npos);
    CHECK(msg.find("has 4 neurons") != std::string::npos);
  }
  SECTION("threshold must be > 0 and finite") {
    NeuronParams p;
    p.threshold = 0.0;
    CHECK(message_of([&] { Network(3).add_layer(Matrix(2, 3), p); }).find("threshold must be finite and > 0, got 0") !=
          std::string::npos);
    p.threshold = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_AS(Network(3).add_layer(Matrix(2, 3), p), snn::Error);
    p.threshold = -1.0;
    CHECK_THROWS_AS(Network(3).add_layer(Matrix(2, 3), p), snn::Error);
  }
  SECTION("beta must be in (0, 1]") {
    NeuronParams p;
    p.beta = 0.0;
    CHECK(message_of([&] { Network(3).add_layer(Matrix(2, 3), p); }).find("beta must be in (0, 1], got 0") != std::string::npos);
    p.beta = 1.5;
    CHECK(message_of([&] { Network(3).add_layer(Matrix(2, 3), p); }).find("got 1.5") != std::string::npos);
    p.beta = 1.0;
    CHECK_NOTHROW(Network(3).add_layer(Matrix(2, 3), p));
  }
  SECTION("refractory period and delay must be >= 0") {
    NeuronParams p;
    p.refractory = -1;
    CHECK(message_of([&] { Network(3).add_layer(Matrix(2, 3), p); }).find("refractory period must be >= 0 steps, got -1") !=
          std::string::npos);
    CHECK(message_of([&] {
            Network(3).add_layer(Matrix(2, 3), ok, ConnectionSpec{FanOutFormat::Dense, 0.0, -2});
          }).find("delay must be >= 0 steps, got -2") != std::string::npos);
  }
  SECTION("weights must be finite; the entry is named") {
    Matrix m(2, 3);
    m(1, 2) = std::numeric_limits<float>::infinity();
    CHECK(message_of([&] { Network(3).add_layer(m, ok); }).find("weight [1, 2] is not finite") != std::string::npos);
  }
  SECTION("cut-off needs the sparse format and must be >= 0") {
    CHECK_THROWS_AS(Network(3).add_layer(Matrix(2, 3), ok, ConnectionSpec{FanOutFormat::Dense, 0.5, 0}), snn::Error);
    CHECK_THROWS_AS(Network(3).add_layer(Matrix(2, 3), ok, ConnectionSpec{FanOutFormat::Sparse, -0.5, 0}), snn::Error);
  }
  SECTION("empty populations and inconsistent matrices") {
    CHECK_THROWS_AS(Network(0), snn::Error);
    CHECK_THROWS_AS(Network(3).add_layer(Matrix(0, 3), ok), snn::Error);
    Matrix broken(2, 3);
    broken.data.pop_back();
    CHECK(message_of([&] { Network(3).add_layer(broken, ok); }).find("holds 5 values") != std::string::npos);
    CHECK_THROWS_AS(Network::from_matrices({}, {ok}), snn::Error);
    CHECK_THROWS_AS(Network::from_matrices({Matrix(2, 3), Matrix(2, 2)}, {ok, ok, ok}), snn::Error);
  }
}

TEST_CASE("enum names parse back") {
  CHECK(snn::parse_reset_mode("zero") == snn::ResetMode::Zero);
  CHECK(snn::parse_reset_mode(snn::to_string(snn::ResetMode::Subtract)) == snn::ResetMode::Subtract);
  CHECK(snn::parse_fan_out_format("sparse") == FanOutFormat::Sparse);
  CHECK(message_of([] { snn::parse_reset_mode("half"); }).find("'half'") != std::string::npos);
  CHECK_THROWS_AS(snn::parse_fan_out_format("csr"), snn::Error);
}

TEST_CASE("from_layers: one population per spiking layer with its CHW shape, flatten makes none") {
  const std::vector<snn::LayerSpec> layers{snn::LayerSpec::conv(4, 3, 1, 1), snn::LayerSpec::avgpool(2),
                                           snn::LayerSpec::flatten(), snn::LayerSpec::dense(3)};
  const Network net =
      Network::from_layers(snn::Shape{2, 6, 6}, layers, {Matrix(4, 2 * 9), Matrix(3, 4 * 3 * 3)}, {NeuronParams{}});
  REQUIRE(net.populations().size() == 4);
  CHECK(net.population(0).shape == snn::Shape{2, 6, 6});
  CHECK(net.population(1).shape == snn::Shape{4, 6, 6});
  CHECK(net.population(2).shape == snn::Shape{4, 3, 3});
  CHECK(net.population(3).shape == snn::Shape{3, 1, 1});
  CHECK(net.connection(0).format() == FanOutFormat::Conv);
  CHECK(net.connection(1).format() == FanOutFormat::AvgPool);
  CHECK(net.connection(2).format() == FanOutFormat::Dense);
  CHECK(net.connection(1).pool().weight == 0.25f);
  CHECK_THROWS_AS(net.connection(0).dense(), snn::Error);

  // Biases per population, checked against its size and naming the layer.
  const Network with_bias = Network::from_layers(snn::Shape{2, 6, 6}, layers, {Matrix(4, 18), Matrix(3, 36)}, {NeuronParams{}},
                                                 {}, {{}, {}, {0.5f, -0.25f, 0.0f}});
  CHECK(with_bias.population(1).bias.empty());
  CHECK(with_bias.population(3).bias == std::vector<snn::Weight>{0.5f, -0.25f, 0.0f});
  try {
    Network::from_layers(snn::Shape{2, 6, 6}, layers, {Matrix(4, 18), Matrix(3, 36)}, {NeuronParams{}}, {}, {{}, {}, {0.5f}});
    FAIL("no error");
  } catch (const snn::Error& e) {
    CHECK(std::string(e.what()).find("layer 4 'dense 3'") != std::string::npos);
    CHECK(std::string(e.what()).find("1 biases for 3 neurons") != std::string::npos);
  }
}

TEST_CASE("window geometry: the output rows covering an input row, by brute force") {
  for (std::size_t in = 1; in <= 9; ++in)
    for (std::size_t k = 1; k <= 4; ++k)
      for (std::size_t s = 1; s <= 3; ++s)
        for (std::size_t pad = 0; pad <= 2; ++pad) {
          if (in + 2 * pad < k || (in + 2 * pad - k) % s != 0) continue;
          snn::WindowGeometry g;
          g.input = snn::Shape{1, in, 1};
          g.output = snn::Shape{1, (in + 2 * pad - k) / s + 1, 1};
          g.kernel_h = k;
          g.stride_h = s;
          g.pad_h = pad;
          for (std::size_t y = 0; y < in; ++y) {
            std::vector<std::size_t> covering;
            for (std::size_t o = 0; o < g.output.height; ++o)
              if (o * s <= y + pad && y + pad < o * s + k) covering.push_back(o);
            const auto [lo, hi] = g.rows_of(y);
            std::vector<std::size_t> got;
            for (std::size_t o = lo; o <= hi && lo <= hi; ++o) got.push_back(o);
            INFO("in " << in << " kernel " << k << " stride " << s << " pad " << pad << " y " << y);
            CHECK(got == covering);
          }
        }
}
