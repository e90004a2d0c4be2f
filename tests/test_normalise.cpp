#include "snn/conversion/normalise.h"
#include "snn/error.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using namespace snn;
using namespace snn::conversion;

namespace {

Matrix mat(std::size_t rows, std::size_t cols, std::vector<float> values) {
  Matrix m(rows, cols);
  m.data = std::move(values);
  return m;
}

// Three layers 3 -> 2 -> 2 -> 1 with hand-picked weights.
std::vector<Matrix> three_layers() {
  return {mat(2, 3, {1.0f, -2.0f, 3.0f, 0.5f, 0.5f, -1.0f}), mat(2, 2, {2.0f, -1.0f, -3.0f, 1.0f}), mat(1, 2, {1.0f, 0.25f})};
}

Matrix scaled(const Matrix& m, double by) {
  Matrix out = m;
  for (float& v : out.data) v = static_cast<float>(static_cast<double>(v) * by);
  return out;
}

// A 1 x 2 "image" dataset whose pixels are 0 or 1 exactly (bytes 0 and 255).
Dataset two_pixel_images() {
  Dataset d;
  d.count = 3;
  d.rows = 1;
  d.cols = 2;
  d.pixels = {255, 0, 0, 255, 255, 255};  // x = (1, 0), (0, 1), (1, 1)
  d.labels = {0, 1, 1};
  d.num_classes = 2;
  return d;
}

// W0 = [[1, 2], [-1, 3]], W1 = [[1, -1], [0.5, 0.5]]. By hand:
//   x = (1, 0): h = relu(1, -1) = (1, 0), out = relu(1, 0.5)   = (1, 0.5)
//   x = (0, 1): h = (2, 3),               out = relu(-1, 2.5)  = (0, 2.5)
//   x = (1, 1): h = (3, 2),               out = relu(1, 2.5)   = (1, 2.5)
std::vector<Matrix> two_layers() { return {mat(2, 2, {1.0f, 2.0f, -1.0f, 3.0f}), mat(2, 2, {1.0f, -1.0f, 0.5f, 0.5f})}; }

}  // namespace

TEST_CASE("model-based normalisation divides by the largest positive fan-in sum") {
  std::vector<Matrix> w = three_layers();
  const std::vector<Matrix> original = w;
  // Layer 0: rows' positive sums 1 + 3 = 4 and 0.5 + 0.5 = 1 -> 4.
  // Layer 1: 2 and 1 -> 2. Layer 2 (last) is left alone by default.
  const std::vector<double> f = normalise_model(w);
  CHECK(f == std::vector<double>{4.0, 2.0});
  CHECK(w[0] == scaled(original[0], 1.0 / 4.0));
  CHECK(w[1] == scaled(original[1], 1.0 / 2.0));
  CHECK(w[2] == original[2]);

  std::vector<Matrix> all = three_layers();
  CHECK(normalise_model(all, true) == std::vector<double>{4.0, 2.0, 1.25});
  CHECK(all[2] == scaled(original[2], 1.0 / 1.25));

  std::vector<Matrix> dead = three_layers();
  dead[1].data = {-1.0f, -2.0f, -3.0f, 0.0f};
  CHECK_THROWS_WITH(normalise_model(dead), Catch::Contains("layer 1") && Catch::Contains("no positive weight"));
}

TEST_CASE("data-based normalisation: lambda = max(largest weight, largest activation), applied as ratios") {
  std::vector<Matrix> w = three_layers();
  const std::vector<Matrix> original = w;
  // Largest weights 3, 2, 1; activations 5, 1.5, 4 -> lambda = 5, 2, 4;
  // applied factors 5 / 1, 2 / 5, 4 / 2.
  const std::vector<double> f = normalise_data(w, {5.0, 1.5, 4.0});
  REQUIRE(f.size() == 3);
  CHECK(f[0] == 5.0);
  CHECK(f[1] == Approx(0.4).epsilon(1e-15));
  CHECK(f[2] == 2.0);
  CHECK(w[0] == scaled(original[0], 1.0 / 5.0));
  CHECK(w[1] == scaled(original[1], 1.0 / 0.4));
  CHECK(w[2] == scaled(original[2], 1.0 / 2.0));

  // Without the last layer only lambda_0, lambda_1 apply.
  std::vector<Matrix> w2 = three_layers();
  CHECK(normalise_data(w2, {5.0, 1.5, 4.0}, false).size() == 2);
  CHECK(w2[2] == original[2]);

  // A layer that is never active and has no positive weight cannot be scaled.
  std::vector<Matrix> dead = three_layers();
  dead[1].data = {-1.0f, -2.0f, -3.0f, -0.5f};
  CHECK_THROWS_WITH(normalise_data(dead, {5.0, 0.0, 4.0}), Catch::Contains("layer 1"));
}

TEST_CASE("activation maxima and data-based normalisation from a dataset") {
  const Dataset d = two_pixel_images();
  CHECK(max_activations(two_layers(), d) == std::vector<double>{3.0, 2.5});
  CHECK(max_activations(two_layers(), d, 1) == std::vector<double>{1.0, 1.0});  // only x = (1, 0)

  WeightSet ws;
  ws.layers = two_layers();
  normalise(ws, {Normalisation::Data, std::nullopt, 0, 99.9}, &d);
  // lambda_0 = max(3 (weight), 3 (activation)) = 3; lambda_1 = max(1, 2.5) = 2.5.
  CHECK(ws.normalisation.method == Normalisation::Data);
  REQUIRE(ws.normalisation.factors.size() == 2);
  CHECK(ws.normalisation.factors[0] == 3.0);
  CHECK(ws.normalisation.factors[1] == Approx(2.5 / 3.0).epsilon(1e-15));
  CHECK(ws.normalisation.samples == 3);
  // The normalised ANN's largest activations are now 1 in every layer.
  const std::vector<double> after = max_activations(ws.layers, d);
  CHECK(after[0] == Approx(1.0).epsilon(1e-6));
  CHECK(after[1] == Approx(1.0).epsilon(1e-6));
  CHECK_THROWS_WITH(normalise(ws, {Normalisation::Model, std::nullopt, 0, 99.9}, nullptr), Catch::Contains("already normalised"));
}

TEST_CASE("robust normalisation uses the percentile of non-zero activations") {
  const Dataset d = two_pixel_images();
  // Non-zero activations (see two_layers): layer 0 {1, 2, 3, 3, 2}, layer 1 {1, 0.5, 2.5, 1, 2.5}.
  // p = 50, nearest rank k = ceil(0.5 * 5) = 3: layer 0 -> 2, layer 1 -> sorted {0.5, 1, 1, 2.5, 2.5} -> 1.
  const std::vector<double> p = activation_percentiles(two_layers(), d, 50.0);
  REQUIRE(p.size() == 2);
  const double bound = 1.0 + std::ldexp(1.0, -PercentileHistogram::kMantissaBits);
  CHECK(p[0] >= 2.0);
  CHECK(p[0] <= 2.0 * bound);
  CHECK(p[1] >= 1.0);
  CHECK(p[1] <= 1.0 * bound);
  // p = 100 is the exact maximum, and robust(100) equals data-based here, since
  // no weight exceeds the activations.
  CHECK(activation_percentiles(two_layers(), d, 100.0) == std::vector<double>{3.0, 2.5});

  WeightSet ws;
  ws.layers = two_layers();
  normalise(ws, {Normalisation::Robust, std::nullopt, 2, 50.0}, &d);
  // On the first 2 samples: layer 0 {1, 2, 3} -> k = 2 -> 2; layer 1 {1, 0.5, 2.5} -> 1.
  CHECK(ws.normalisation.method == Normalisation::Robust);
  CHECK(ws.normalisation.samples == 2);
  CHECK(ws.normalisation.percentile == 50.0);
  REQUIRE(ws.normalisation.factors.size() == 2);
  CHECK(ws.normalisation.factors[0] >= 2.0);
  CHECK(ws.normalisation.factors[0] <= 2.0 * bound);
  const double lambda1 = ws.normalisation.factors[0] * ws.normalisation.factors[1];
  CHECK(lambda1 >= 1.0);
  CHECK(lambda1 <= bound);
  CHECK(ws.layers[0] == scaled(two_layers()[0], 1.0 / ws.normalisation.factors[0]));

  std::vector<Matrix> w = two_layers();
  const std::vector<double> f = normalise_robust(w, {2.0, 1.0});
  CHECK(f == std::vector<double>{2.0, 0.5});
  CHECK(w[1] == scaled(two_layers()[1], 2.0));
}

TEST_CASE("the percentile histogram is within its documented bound of the exact nearest-rank value") {
  PercentileHistogram h;
  for (int i = 1000; i >= 1; --i) {
    h.add(static_cast<float>(i));
    h.add(0.0f);  // zeros are not counted
  }
  CHECK(h.count() == 1000);
  const double bound = 1.0 + std::ldexp(1.0, -PercentileHistogram::kMantissaBits);
  // 99.9 % of 1000 is rank 999 exactly (not 1000, despite 99.9's binary rounding).
  CHECK(h.percentile(99.9) >= 999.0f);
  CHECK(h.percentile(99.9) <= 999.0 * bound);
  CHECK(h.percentile(50.0) >= 500.0f);
  CHECK(h.percentile(50.0) <= 500.0 * bound);
  CHECK(h.percentile(100.0) == 1000.0f);
  CHECK(h.percentile(0.01) >= 1.0f);
  CHECK(h.percentile(0.01) <= bound);

  // Against sorting, on a wide spread of magnitudes, in two arrival orders.
  std::mt19937 gen(3);
  std::vector<float> values;
  for (int i = 0; i < 200000; ++i) {
    const double u = (gen() >> 8) * 0x1.0p-24;
    values.push_back(static_cast<float>(std::exp(12.0 * u - 6.0)));  // e^-6 .. e^6
  }
  PercentileHistogram forward, backward;
  forward.add(values.data(), values.size());
  for (auto it = values.rbegin(); it != values.rend(); ++it) backward.add(*it);
  std::vector<float> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (double p : {0.1, 1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    const auto k = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size()) - 1e-6));
    const float exact = sorted[std::max<std::size_t>(k, 1) - 1];
    const float r = forward.percentile(p);
    INFO("p = " << p << " exact " << exact << " histogram " << r);
    CHECK(r >= exact);
    CHECK(r <= exact * bound);
    CHECK(backward.percentile(p) == r);
  }

  PercentileHistogram empty;
  CHECK_THROWS_WITH(empty.percentile(50.0), Catch::Contains("no values"));
  CHECK_THROWS_WITH(h.add(-1.0f), Catch::Contains("-1"));
  CHECK_THROWS(h.percentile(0.0));
  CHECK_THROWS(h.percentile(100.5));
}

// ---- conv and pooling (Diehl et al.'s ConvNet normalisation), hand-worked ----

namespace {

// input 1x3x3 -> conv 1 2x2 -> avgpool 2 (2x2 -> 1x1) -> flatten -> dense 2.
// Conv kernel [[1, -1], [0.5, 2]] (positive sum 3.5, largest 2); dense [2; -1].
WeightSet tiny_convnet(bool bias) {
  WeightSet w;
  w.input = Shape{1, 3, 3};
  w.architecture = {LayerSpec::conv(1, 2, 1, 0, "c"), LayerSpec::avgpool(2, "p"), LayerSpec::flatten("f"),
                    LayerSpec::dense(2, "d")};
  w.layers = {mat(1, 4, {1.0f, -1.0f, 0.5f, 2.0f}), mat(2, 1, {2.0f, -1.0f})};
  w.names = {"c", "d"};
  if (bias) w.biases = {{0.5f}, {1.0f, -3.0f}};
  return w;
}

// One image: [[1, 0, 1], [0, 1, 0], [1, 1, 0]] (bytes 255 and 0). By hand: conv
// outputs 3, -0.5 -> 0, 1.5, 1.5 (max 3); pool (3 + 0 + 1.5 + 1.5) / 4 = 1.5;
// dense 2 * 1.5 = 3 and -1.5 -> 0. So the spiking layers' maxima are 3, 1.5, 3.
Dataset tiny_image() {
  Dataset d;
  d.count = 1;
  d.rows = d.cols = 3;
  d.num_classes = 2;
  for (int v : {1, 0, 1, 0, 1, 0, 1, 1, 0}) d.pixels.push_back(static_cast<std::uint8_t>(v * 255));
  d.labels = {0};
  return d;
}

}  // namespace

TEST_CASE("model-based normalisation of a conv net: pool factor 1, conv by its largest positive row sum") {
  WeightSet w = tiny_convnet(false);
  CHECK(normalise_model(w) == std::vector<double>{3.5, 1.0});  // conv, pool; the output layer left alone
  CHECK(w.layers[0] == mat(1, 4, {1.0f / 3.5f, -1.0f / 3.5f, 0.5f / 3.5f, 2.0f / 3.5f}));
  CHECK(w.layers[1] == mat(2, 1, {2.0f, -1.0f}));
  WeightSet all = tiny_convnet(false);
  CHECK(normalise_model(all, true) == std::vector<double>{3.5, 1.0, 2.0});
  CHECK(pool_weight(all.architecture[1], 1.0) == 0.25);
  CHECK(pool_weight(LayerSpec::avgpool(3), 2.0) == Approx(1.0 / 18.0));
}

TEST_CASE("model-based normalisation counts a positive bias and divides biases by the overall scale") {
  WeightSet w = tiny_convnet(true);
  // conv: 3.5 + bias 0.5 = 4. Dense biases first at the conv's scale: [1, -3] / 4 =
  // [0.25, -0.75]; rows: 2 + 0.25 = 2.25 and 0 + 0 = 0, factor 2.25.
  CHECK(normalise_model(w, true) == std::vector<double>{4.0, 1.0, 2.25});
  CHECK(w.biases[0] == std::vector<float>{0.125f});
  CHECK(w.biases[1][0] == Approx(0.25 / 2.25));
  CHECK(w.biases[1][1] == Approx(-0.75 / 2.25));
  CHECK(w.layers[1](0, 0) == Approx(2.0 / 2.25));
}

TEST_CASE("data-based normalisation of a conv net: the pool passes its input's lambda on") {
  WeightSet w = tiny_convnet(false);
  // lambda_conv = max(2, 6) = 6, lambda_pool = 6 (its entry 99 is not used),
  // lambda_dense = max(2, 3) = 3: factors 6, 1, 3 / 6.
  CHECK(normalise_data(w, {6.0, 99.0, 3.0}) == std::vector<double>{6.0, 1.0, 0.5});
  CHECK(w.layers[0](0, 3) == Approx(2.0 / 6.0));
  CHECK(w.layers[1] == mat(2, 1, {4.0f, -2.0f}));
  WeightSet b = tiny_convnet(true);
  normalise_data(b, {6.0, 99.0, 3.0});
  CHECK(b.biases[0] == std::vector<float>{0.5f / 6.0f});
  CHECK(b.biases[1] == std::vector<float>{1.0f / 3.0f, -1.0f});
  WeightSet no_last = tiny_convnet(true);
  CHECK(normalise_data(no_last, {6.0, 99.0, 3.0}, false) == std::vector<double>{6.0, 1.0});
  CHECK(no_last.layers[1] == mat(2, 1, {2.0f, -1.0f}));
  CHECK(no_last.biases[1] == std::vector<float>{1.0f / 6.0f, -0.5f});  // b / lambda_{l-1}: same argmax
}

TEST_CASE("activations of a conv net, by hand, and robust and data normalisation from them") {
  const Dataset d = tiny_image();
  const WeightSet w = tiny_convnet(false);
  CHECK(max_activations(w, d) == std::vector<double>{3.0, 1.5, 3.0});
  CHECK(activation_percentiles(w, d, 100.0) == std::vector<double>{3.0, 1.5, 3.0});
  // 3 non-zero conv values {3, 1.5, 1.5}: the 50th percentile is rank 2, 1.5
  // (the histogram's bin edge: at most 2^-10 above, never below).
  const double p50 = activation_percentiles(w, d, 50.0)[0];
  CHECK(p50 >= 1.5);
  CHECK(p50 <= 1.5 * (1 + 0x1.0p-10));
  WeightSet r = w;
  CHECK(normalise_robust(r, activation_percentiles(w, d, 100.0)) == std::vector<double>{3.0, 1.0, 1.0});
  // After data normalisation every spiking layer's largest activation is 1.
  WeightSet n = w;
  NormaliseOptions o;
  o.method = Normalisation::Data;
  normalise(n, o, &d);
  CHECK(n.normalisation.factors == std::vector<double>{3.0, 1.0, 1.0});
  const std::vector<double> after = max_activations(n, d);
  CHECK(after[0] == Approx(1.0));
  CHECK(after[1] == Approx(0.5));  // the pool's rate relative to its input's scale
  CHECK(after[2] == Approx(1.0));
}

TEST_CASE("shards of the training set merge into the whole set's maxima, percentiles and factors, bit for bit") {
  // 1234 random images of 30 pixels through 30 -> 40 -> 20 -> 5: shards of
  // whole activation batches (500, 500, 234) as three MPI ranks take them.
  std::mt19937_64 rng(11);
  Dataset d;
  d.count = 1234;
  d.rows = 5;
  d.cols = 6;
  d.num_classes = 5;
  d.pixels.resize(d.count * 30);
  d.labels.assign(d.count, 0);
  for (auto& p : d.pixels) p = static_cast<std::uint8_t>(rng() % 256);
  std::uniform_real_distribution<float> u(-0.3f, 0.5f);
  std::vector<Matrix> layers;
  for (auto [out, in] : {std::pair<std::size_t, std::size_t>{40, 30}, {20, 40}, {5, 20}}) {
    Matrix m(out, in);
    for (auto& w : m.data) w = u(rng);
    layers.push_back(m);
  }
  WeightSet ws;
  ws.layers = layers;
  const std::vector<std::pair<std::size_t, std::size_t>> shards{{0, 500}, {500, 500}, {1000, 234}};

  std::vector<double> maxima(layers.size(), 0.0);
  std::vector<PercentileHistogram> hist(layers.size());
  for (auto [first, count] : shards) {
    const auto part = max_activations_in(ws, d, first, count);
    for (std::size_t l = 0; l < part.size(); ++l) maxima[l] = std::max(maxima[l], part[l]);
    const auto h = activation_histograms_in(ws, d, first, count);
    for (std::size_t l = 0; l < h.size(); ++l) hist[l].merge(h[l]);
  }
  const auto whole = max_activations(ws, d);
  CHECK(maxima == whole);
  CHECK(max_activations_in(ws, d, 0, 0) == std::vector<double>(layers.size(), 0.0));  // an empty shard
  for (double p : {50.0, 99.0, 99.9, 100.0}) {
    INFO("percentile " << p);
    CHECK(percentiles_of(hist, p) == activation_percentiles(ws, d, p));
  }
  // A histogram sent as its bins comes back the same.
  const auto back = PercentileHistogram::from_bins(hist[1].bins(), hist[1].max());
  CHECK(back.count() == hist[1].count());
  CHECK(back.percentile(99.9) == hist[1].percentile(99.9));
  CHECK_THROWS_WITH(PercentileHistogram::from_bins({1, 2}, 1.0f), Catch::Contains("2 bins given"));

  // A conv net's shards: one value per spiking layer (conv, pool, dense), also
  // from a shard without images.
  const WeightSet conv = tiny_convnet(true);
  CHECK(max_activations_in(conv, tiny_image(), 0, 1) == max_activations(conv, tiny_image()));
  CHECK(max_activations_in(conv, tiny_image(), 1, 0) == std::vector<double>(3, 0.0));
  CHECK(activation_histograms_in(conv, tiny_image(), 1, 0).size() == 3);

  for (Normalisation method : {Normalisation::Data, Normalisation::Robust}) {
    INFO(to_string(method));
    const NormaliseOptions o{method, std::nullopt, 0, 99.9};
    WeightSet one, merged;
    one.layers = merged.layers = layers;
    normalise(one, o, &d);
    normalise_with(merged, o, d.count, method == Normalisation::Data ? maxima : percentiles_of(hist, 99.9));
    CHECK(merged == one);
  }
}
