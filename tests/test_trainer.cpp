#include "snn/conversion/adam.h"
#include "snn/conversion/layers.h"
#include "snn/conversion/model.h"
#include "snn/conversion/normalise.h"
#include "snn/conversion/random.h"
#include "snn/conversion/trainer.h"
#include "snn/error.h"
#include "snn/network/dataset.h"
#include "snn/network/weights.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

using namespace snn;
using namespace snn::conversion;

// Finite-difference tolerance, used by every gradient check below. Central
// differences f'(w) ~ (f(w+h) - f(w-h)) / 2h err by h^2/6 |f'''| (truncation)
// plus 2 delta / 2h, delta being the rounding error of one float evaluation of
// f. With h = 2^-7: Dense, ReLU (away from its kink, which the checks verify
// they never cross) and Dropout (fixed mask) are linear in each coordinate, so
// truncation is 0; the loss's log-sum-exp has |f'''| < 1, giving < 3e-6.
// Rounding: the checked scalar is summed in double from float outputs of
// magnitude <= ~10 with ~1e-6 relative error, delta < 1e-5, so delta/h < 1.3e-3.
// A tolerance of 3e-3 keeps a margin over that, and is far below the gradient
// sizes checked (the tests require max |gradient| > 0.1), so a wrong factor,
// sign, transpose or mask would fail.
constexpr double kTolerance = 3e-3;
constexpr float kStep = 1.0f / 128.0f;

namespace {

Matrix random_matrix(std::size_t rows, std::size_t cols, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  Matrix m(rows, cols);
  // The raw 32-bit output (not a std distribution) so values are the same on every platform.
  for (float& v : m.data) v = lo + (hi - lo) * static_cast<float>(gen() >> 8) * 0x1.0p-24f;
  return m;
}

// Weighted sum of a layer's output, in double: a scalar whose gradient wrt the
// output is `r` itself.
double weighted(const Matrix& y, const Matrix& r) {
  double s = 0.0;
  for (std::size_t i = 0; i < y.data.size(); ++i) s += static_cast<double>(y.data[i]) * r.data[i];
  return s;
}

// Checks backward() of `layer` on input x against central differences of
// L = sum(r * forward(x)), for the input and for every parameter.
void check_layer_gradients(Layer& layer, Matrix x, const ForwardContext& ctx) {
  Matrix y;
  layer.forward(x, y, ctx);
  const Matrix r = random_matrix(y.rows, y.cols, 99);
  Matrix dx;
  layer.backward(x, y, r, &dx);
  const std::vector<float> grad(layer.gradients().begin(), layer.gradients().end());

  double largest = 0.0;
  const auto fd = [&](float& slot) {
    const float saved = slot;
    Matrix yp, ym;
    slot = saved + kStep;
    layer.forward(x, yp, ctx);
    slot = saved - kStep;
    layer.forward(x, ym, ctx);
    slot = saved;
    return (weighted(yp, r) - weighted(ym, r)) / (2.0 * kStep);
  };
  for (std::size_t i = 0; i < x.data.size(); ++i) {
    const double numeric = fd(x.data[i]);
    INFO(layer.kind() << " input " << i);
    CHECK(std::abs(numeric - dx.data[i]) <= kTolerance);
    largest = std::max(largest, std::abs(numeric));
  }
  std::span<float> params = layer.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const double numeric = fd(params[i]);
    INFO(layer.kind() << " parameter " << i);
    CHECK(std::abs(numeric - grad[i]) <= kTolerance);
    largest = std::max(largest, std::abs(numeric));
  }
  CHECK(largest > 0.1);
}

// A tiny classification batch: 6 samples of 5 features, labels 0..2.
struct TinyBatch {
  Matrix x = random_matrix(6, 5, 7, 0.0f, 1.0f);
  std::vector<std::uint8_t> labels{0, 1, 2, 1, 0, 2};
};

// Synthetic 10-class "images" of 28 x 28: each class a fixed random prototype
// of bright blobs, each sample the prototype with noise and random dropped pixels.
Dataset synthetic(std::size_t count, std::uint32_t seed, std::size_t side = 28) {
  Dataset d;
  d.count = count;
  d.rows = side;
  d.cols = side;
  d.num_classes = 10;
  const std::size_t px = side * side;
  std::mt19937 proto_gen(12345);
  std::vector<std::uint8_t> protos(10 * px);
  for (auto& p : protos) p = (proto_gen() % 4 == 0) ? static_cast<std::uint8_t>(128 + proto_gen() % 128) : 0;
  std::mt19937 gen(seed);
  d.pixels.resize(count * px);
  d.labels.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto label = static_cast<std::uint8_t>(gen() % 10);
    d.labels[i] = label;
    for (std::size_t k = 0; k < px; ++k) {
      int v = protos[label * px + k];
      if (gen() % 5 == 0) v = 0;
      v += static_cast<int>(gen() % 64);
      d.pixels[i * px + k] = static_cast<std::uint8_t>(std::min(v, 255));
    }
  }
  return d;
}

TrainConfig small_config(std::uint64_t seed) {
  TrainConfig c;
  c.network.input = Shape{784, 1, 1};
  c.network.layers = {LayerSpec::dense(128, "fc1"), LayerSpec::dense(64, "fc2"), LayerSpec::dense(10, "fc3")};
  c.epochs = 2;
  c.batch_size = 50;
  c.seed = seed;
  return c;
}

}  // namespace

TEST_CASE("dense backward matches finite differences") {
  DenseLayer dense(random_matrix(4, 5, 1));
  check_layer_gradients(dense, random_matrix(3, 5, 2), {});
}

TEST_CASE("relu backward matches finite differences away from the kink") {
  ReluLayer relu(8);
  Matrix x = random_matrix(3, 8, 3);
  // Keep every input at least 2 steps from 0, so x +- h never crosses the kink.
  for (float& v : x.data)
    if (std::abs(v) < 2 * kStep) v = v < 0 ? -0.5f : 0.5f;
  check_layer_gradients(relu, x, {});
  // At exactly 0 the gradient is 0, as PyTorch's threshold_backward.
  Matrix z(1, 8, 0.0f), y, dz;
  relu.forward(z, y, {});
  relu.backward(z, y, Matrix(1, 8, 1.0f), &dz);
  CHECK(dz == Matrix(1, 8, 0.0f));
}

TEST_CASE("dropout backward matches finite differences with its mask fixed") {
  DropoutLayer dropout(16, 0.5f, 0);
  check_layer_gradients(dropout, random_matrix(4, 16, 4), {true, 11, 3});
}

TEST_CASE("softmax cross-entropy: value by hand, gradient by finite differences") {
  Matrix z(2, 3);
  z.data = {1.0f, 2.0f, 3.0f, 0.5f, 0.5f, -1.0f};
  const std::uint8_t labels[] = {2, 0};
  Matrix dz;
  const LossResult res = softmax_cross_entropy(z, labels, &dz);
  // Row 0: log(e + e^2 + e^3) - 3; row 1: log(2 e^0.5 + e^-1) - 0.5; mean of the two.
  const double l0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0;
  const double l1 = std::log(2.0 * std::exp(0.5) + std::exp(-1.0)) - 0.5;
  CHECK(res.loss == Approx((l0 + l1) / 2).epsilon(1e-12));
  CHECK(res.correct == 2);  // row 1 ties classes 0 and 1: the first wins
  // d/dz = (softmax - onehot) / batch; row 0, class 2 by hand:
  const double p2 = std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  CHECK(dz(0, 2) == Approx((p2 - 1.0) / 2).epsilon(1e-6));

  const Matrix big = random_matrix(5, 4, 21, -3.0f, 3.0f);
  const std::uint8_t lab[] = {0, 3, 1, 2, 3};
  Matrix d;
  softmax_cross_entropy(big, lab, &d);
  double largest = 0.0;
  for (std::size_t i = 0; i < big.data.size(); ++i) {
    Matrix p = big, m = big;
    p.data[i] += kStep;
    m.data[i] -= kStep;
    const double numeric =
        (softmax_cross_entropy(p, lab, nullptr).loss - softmax_cross_entropy(m, lab, nullptr).loss) / (2.0 * kStep);
    CHECK(std::abs(numeric - d.data[i]) <= kTolerance / 10);  // no GEMM rounding here: tighter
    largest = std::max(largest, std::abs(numeric));
  }
  CHECK(largest > 0.1);
}

TEST_CASE("a whole tiny network's backward matches finite differences of the loss") {
  for (bool output_relu : {true, false}) {
    NetworkSpec spec;
    spec.input = Shape{5, 1, 1};
    spec.layers = {LayerSpec::dense(7, "a"), LayerSpec::dense(6, "b"), LayerSpec::dense(3, "c")};
    spec.output_relu = output_relu;
    spec.dropout = 0.5f;
    Model model = Model::initialise(spec, 1.0f, 5);
    TinyBatch batch;
    const ForwardContext ctx{true, 3, 17};

    const auto relu_pattern = [&]() {
      std::vector<bool> pattern;
      for (std::size_t l = 0; l < model.weight_layers(); ++l)
        for (float v : model.activation(l).data) pattern.push_back(v > 0.0f);
      return pattern;
    };
    const auto loss = [&]() { return softmax_cross_entropy(model.forward(batch.x, ctx), batch.labels.data(), nullptr).loss; };

    Matrix dlogits;
    softmax_cross_entropy(model.forward(batch.x, ctx), batch.labels.data(), &dlogits);
    const std::vector<bool> base = relu_pattern();
    model.backward(dlogits);
    double largest = 0.0;
    std::size_t checked = 0;
    for (Layer* layer : model.layers()) {
      if (layer->parameters().empty()) continue;
      const std::vector<float> grad(layer->gradients().begin(), layer->gradients().end());
      std::span<float> w = layer->parameters();
      for (std::size_t i = 0; i < w.size(); ++i) {
        const float saved = w[i];
        w[i] = saved + kStep;
        const double up = loss();
        const bool same_up = relu_pattern() == base;
        w[i] = saved - kStep;
        const double down = loss();
        const bool same_down = relu_pattern() == base;
        w[i] = saved;
        // A perturbation that flips a ReLU makes the difference quotient span a
        // kink: the derivative is not defined by it, so that coordinate is skipped.
        if (!same_up || !same_down) continue;
        const double numeric = (up - down) / (2.0 * kStep);
        INFO("output_relu " << output_relu << " weight " << i << " of a " << layer->inputs() << "-input layer");
        CHECK(std::abs(numeric - grad[i]) <= kTolerance);
        largest = std::max(largest, std::abs(numeric));
        ++checked;
      }
    }
    CHECK(checked >= 80);  // of the 35 + 42 + 18 = 95 weights, most must be checkable
    CHECK(largest > 0.1);
  }
}

TEST_CASE("Adam takes the steps worked out by hand") {
  Adam adam({}, {2});
  std::vector<float> p{1.0f, -2.0f};
  std::vector<float> g{0.5f, -4.0f};
  adam.step({std::span<float>(p)}, {std::span<const float>(g)});
  // Step 1: m = 0.1 g, v = 0.001 g^2; bias corrections make m^ = g, v^ = g^2, so
  // each parameter moves by lr * g / (|g| + eps) = 1e-3 * sign(g) (to 1e-8).
  CHECK(p[0] == Approx(1.0 - 1e-3).epsilon(1e-7));
  CHECK(p[1] == Approx(-2.0 + 1e-3).epsilon(1e-7));
  // Step 2 with g = (0.25, 1): m = 0.9*0.05 + 0.1*0.25 = 0.07, v = 0.999*0.00025 + 0.001*0.0625,
  // step = lr / (1 - 0.81) * m / (sqrt(v) / sqrt(1 - 0.998001) + eps).
  g = {0.25f, 1.0f};
  adam.step({std::span<float>(p)}, {std::span<const float>(g)});
  const double m0 = 0.07, v0 = 0.999 * 0.00025 + 0.001 * 0.0625;
  const double expected0 = (1.0 - 1e-3) - 1e-3 / 0.19 * m0 / (std::sqrt(v0) / std::sqrt(1.0 - 0.998001) + 1e-8);
  const double m1 = 0.9 * -0.4 + 0.1 * 1.0, v1 = 0.999 * 0.016 + 0.001 * 1.0;
  const double expected1 = (-2.0 + 1e-3) - 1e-3 / 0.19 * m1 / (std::sqrt(v1) / std::sqrt(1.0 - 0.998001) + 1e-8);
  CHECK(p[0] == Approx(expected0).epsilon(1e-6));
  CHECK(p[1] == Approx(expected1).epsilon(1e-6));
  CHECK(adam.steps() == 2);
}

TEST_CASE("initial weights are U(-r, r), set by the seed alone") {
  NetworkSpec spec;  // the seed's 784-1200-1200-10
  const Model a = Model::initialise(spec, 0.1f, 42);
  const Model b = Model::initialise(spec, 0.1f, 42);
  const Model c = Model::initialise(spec, 0.1f, 43);
  CHECK(a.weights() == b.weights());
  CHECK(a.weights() != c.weights());
  const std::vector<Matrix> weights = a.weights();  // weights() returns copies
  const Matrix& w = weights[1];
  double sum = 0.0, sq = 0.0;
  for (float v : w.data) {
    REQUIRE(v >= -0.1f);
    REQUIRE(v < 0.1f);
    sum += v;
    sq += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(w.data.size());
  // U(-0.1, 0.1): mean 0, variance 0.01 / 3. With 1.44 M draws the sample mean's
  // standard error is 4.8e-5 and the variance's 3e-6; allow 5 of each.
  CHECK(std::abs(sum / n) < 5 * 4.8e-5);
  CHECK(std::abs(sq / n - 0.01 / 3) < 5 * 3e-6);
}

TEST_CASE("dropout drops a fraction p, scales survivors by 1/(1-p), is off in evaluation") {
  DropoutLayer d(1000, 0.5f, 2);
  const Matrix x(50, 1000, 3.0f);
  Matrix y, y2, y3;
  d.forward(x, y, {true, 7, 1});
  std::size_t dropped = 0;
  for (float v : y.data) {
    REQUIRE((v == 0.0f || v == 6.0f));
    dropped += v == 0.0f;
  }
  // 50,000 Bernoulli(0.5): standard deviation 112; allow 5 of them.
  CHECK(std::abs(static_cast<double>(dropped) - 25000.0) < 5 * 112);
  d.forward(x, y2, {true, 7, 1});
  CHECK(y2 == y);  // a pure function of (seed, step, layer)
  d.forward(x, y3, {true, 7, 2});
  CHECK(y3 != y);  // a new step draws a new mask
  d.forward(x, y3, {false, 7, 1});
  CHECK(y3 == x);
}

TEST_CASE("the same seed gives bit-identical weights for a given OpenBLAS thread count") {
  // OpenBLAS's sgemm sums a long k dimension in a thread-count dependent order
  // (measured with 0.3.21: 1 and 2 threads differ in the last bits for k >= 784),
  // so reproducibility is per thread count, which TrainConfig::blas_threads
  // fixes and the weight manifest records.
  const Dataset train_set = synthetic(400, 1);
  for (int threads : {1, 2}) {
    TrainConfig config = small_config(9);
    config.blas_threads = threads;
    const TrainResult a = train(config, train_set);
    const TrainResult b = train(config, train_set);
    CHECK(a.weights == b.weights);
    config.seed = 10;
    const TrainResult other = train(config, train_set);
    CHECK(a.weights != other.weights);
  }
}

TEST_CASE("training learns a synthetic task and reports progress") {
  const Dataset train_set = synthetic(1000, 1);
  const Dataset test_set = synthetic(300, 2);
  struct Recorder : TrainObserver {
    std::size_t batches = 0;
    std::vector<EpochReport> epochs;
    std::optional<Evaluation> test;
    void on_batch(std::size_t, std::size_t, std::size_t total, double) override {
      ++batches;
      CHECK(total == 20);
    }
    void on_epoch(const EpochReport& r) override { epochs.push_back(r); }
    void on_test(const Evaluation& e) override { test = e; }
  } rec;
  // Linear logits: with the seed's output ReLU this small run can lose a class
  // to a dead output unit (the next test's warning), which is not the point here.
  TrainConfig config = small_config(3);
  config.network.output_relu = false;
  const TrainResult r = train(config, train_set, &test_set, &rec);
  CHECK(rec.batches == 2 * 20);
  REQUIRE(rec.epochs.size() == 2);
  CHECK(rec.epochs[1].epoch == 2);
  CHECK(rec.epochs[1].loss < rec.epochs[0].loss);
  CHECK(rec.epochs[1].seconds >= rec.epochs[0].seconds);
  REQUIRE(rec.test.has_value());
  INFO("predicted per class: " << ::Catch::Detail::stringify(rec.test->predicted) << " epoch losses " << rec.epochs[0].loss << " "
                               << rec.epochs[1].loss << " train acc " << rec.epochs[1].train_accuracy);
  CHECK(rec.test->accuracy > 0.95);
  CHECK(rec.test->never_predicted.empty());
  // evaluate() agrees with what train() reported, and counts every sample once.
  const Evaluation e = evaluate(r.weights, test_set, false);
  CHECK(e.correct == rec.test->correct);
  std::size_t total = 0;
  for (auto n : e.predicted) total += n;
  CHECK(total == test_set.count);
}

TEST_CASE("a class that is never predicted is reported") {
  const Dataset test_set = synthetic(200, 2);
  // A network whose output unit 3 has only negative weights: with the output
  // ReLU it is always 0, never the unique maximum.
  std::vector<Matrix> w{random_matrix(16, 784, 5, 0.0f, 0.01f), random_matrix(10, 16, 6, 0.0f, 1.0f)};
  for (std::size_t c = 0; c < 16; ++c) w[1](3, c) = -1.0f;
  const Evaluation e = evaluate(w, test_set, true);
  REQUIRE(e.never_predicted.size() >= 1);
  CHECK(std::find(e.never_predicted.begin(), e.never_predicted.end(), 3u) != e.never_predicted.end());
  const auto warnings = prediction_warnings(e, true);
  // One line naming every such class (they come in groups: one line each repeated itself).
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings.front(), Catch::Contains("never predicted") && Catch::Contains("output_relu"));
  std::string listed;
  for (std::size_t i = 0; i < e.never_predicted.size(); ++i) listed += (i ? ", " : " ") + std::to_string(e.never_predicted[i]);
  CHECK_THAT(warnings.front(), Catch::Contains(listed + " never predicted"));
  CHECK(prediction_warnings(Evaluation{}, true).empty());
}

TEST_CASE("training rejects data that does not fit the network") {
  Dataset small = synthetic(10, 1, 14);  // 196 pixels, the network takes 784
  CHECK_THROWS_WITH(train(small_config(1), small), Catch::Contains("196 pixels") && Catch::Contains("784 inputs"));
  Dataset bad = synthetic(10, 1);
  bad.labels[4] = 12;
  CHECK_THROWS_WITH(train(small_config(1), bad), Catch::Contains("sample 4 has label 12"));
}

TEST_CASE("trained weights save and load back identically, with their record") {
  const Dataset train_set = synthetic(200, 1);
  const Dataset test_set = synthetic(100, 2);
  TrainConfig config = small_config(4);
  config.epochs = 1;
  const TrainResult r = train(config, train_set, &test_set);
  const WeightSet w = to_weight_set(config, r, "synthetic", train_set.count);
  const std::filesystem::path dir = (std::filesystem::path(SNNSIM_BINARY_DIR) / "test_tmp") / "snnsim_test_trainer_weights";
  std::filesystem::remove_all(dir);
  save_weights(dir, w);
  const WeightSet back = load_weights(dir);
  CHECK(back.layers == r.weights);
  CHECK(back.names == std::vector<std::string>{"fc1", "fc2", "fc3"});
  CHECK(back.seed == 4u);
  CHECK(back.ann_test_accuracy == r.test->accuracy);
  REQUIRE(back.training.has_value());
  CHECK(back.training->learning_rate == 0.001);  // as written, not float 1e-3's binary value
  CHECK(back.training->dropout == 0.5);
  CHECK(back.training->batch_size == 50);
  CHECK(back.training->blas_threads == static_cast<std::size_t>(r.blas_threads));
  CHECK(evaluate(back.layers, test_set).correct == r.test->correct);
}

TEST_CASE("one epoch on mnist10k reaches over 90 % test accuracy and normalisation keeps it") {
  // One epoch over the 8,004 training images (about 2 s on two cores). With
  // linear logits (output_relu = false) this short run measured 92.5 - 93.5 %
  // over seeds 0-4; with the seed's ReLU'd logits a short run is unreliable
  // (30 - 90 % after 1-3 epochs, some classes not yet alive), which is why the
  // full recipe is measured by bench_train over 15 epochs instead.
  const DatasetSplits data = load_dataset("mnist10k");
  REQUIRE(data.train.count == 8004);
  REQUIRE(data.test.count == 1996);
  TrainConfig config;
  config.epochs = 1;
  config.seed = 0;
  config.network.output_relu = false;
  struct Warnings : TrainObserver {
    std::vector<std::string> seen;
    void on_warning(const std::string& w) override { seen.push_back(w); }
  } warnings;
  const TrainResult r = train(config, data.train, &data.test, &warnings);
  REQUIRE(r.test.has_value());
  INFO("test accuracy " << r.test->accuracy);
  CHECK(r.test->accuracy > 0.90);
  CHECK(r.test->never_predicted.empty());
  CHECK(warnings.seen.empty());

  // A ReLU network is positively homogeneous (relu(c z) = c relu(z) for c > 0),
  // so every normalisation leaves each sample's prediction as it was, up to
  // float rounding deciding a near-tie (measured: none differ). Predictions
  // computed here layer by layer with sgemm, not through evaluate().
  const auto predictions = [&](const std::vector<Matrix>& w) {
    const std::size_t n = data.test.count;
    Matrix x;
    x.rows = n;
    x.cols = data.test.image_size();
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t c = 0; c < x.cols; ++c) x.data.push_back(pixel_value(data.test.image(i)[c]));
    for (std::size_t l = 0; l < w.size(); ++l) {
      Matrix y;
      reshape(y, n, w[l].rows);
      sgemm(false, true, n, w[l].rows, x.cols, 1.0f, x.data.data(), w[l].data.data(), 0.0f, y.data.data());
      if (l + 1 < w.size())
        for (float& v : y.data) v = std::max(v, 0.0f);
      x = std::move(y);
    }
    std::vector<std::size_t> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = argmax_row(x, i);
    return out;
  };
  const std::vector<std::size_t> original = predictions(r.weights);
  std::size_t original_correct = 0;
  for (std::size_t i = 0; i < original.size(); ++i) original_correct += original[i] == data.test.labels[i];
  CHECK(original_correct == r.test->correct);
  const auto differing = [&](const std::vector<Matrix>& w) {
    const std::vector<std::size_t> p = predictions(w);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < p.size(); ++i) differ += p[i] != original[i];
    return differ;
  };
  std::vector<Matrix> model = r.weights;
  normalise_model(model);
  CHECK(differing(model) <= 2);
  std::vector<Matrix> by_data = r.weights;
  const std::vector<double> maxima = max_activations(by_data, data.train, 1000);
  normalise_data(by_data, maxima);
  CHECK(differing(by_data) <= 2);
  // After data-based normalisation every layer's largest activation on the same
  // samples is at most 1 (exactly 1 where the activation, not a weight, set lambda).
  for (double a : max_activations(by_data, data.train, 1000)) CHECK(a <= 1.0 + 1e-5);
  std::vector<Matrix> robust = r.weights;
  normalise_robust(robust, activation_percentiles(robust, data.train, 99.9, 1000));
  CHECK(differing(robust) <= 2);
}
