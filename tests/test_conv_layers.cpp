// Convolution, average pooling and flatten (conversion/layers.h): forward
// against a direct (naive, loop-per-output) convolution written independently
// here, and every gradient against central finite differences; plus a small
// ConvNet model's end-to-end gradient and init streams.
#include "snn/conversion/layers.h"
#include "snn/conversion/model.h"
#include "snn/conversion/normalise.h"
#include "snn/conversion/trainer.h"
#include "snn/error.h"
#include "snn/network/weights.h"

#include <catch2/catch.hpp>
#include <tbb/task_arena.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <vector>

using namespace snn;
using namespace snn::conversion;

namespace {

Matrix random_matrix(std::size_t rows, std::size_t cols, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  Matrix m(rows, cols);
  for (float& v : m.data) v = lo + (hi - lo) * static_cast<float>(gen() >> 8) * 0x1.0p-24f;
  return m;
}

std::vector<float> random_vector(std::size_t n, std::uint32_t seed) { return random_matrix(1, n, seed).data; }

// y[b][o][oy][ox] = bias[o] + sum_{c,ky,kx} w[o][c][ky][kx] * x[b][c][oy*s+ky-p][ox*s+kx-p] (0 outside), in double.
Matrix direct_conv(const Matrix& x, const Shape& in, const LayerSpec& l, const Matrix& w, const std::vector<float>& bias) {
  const std::size_t oh = (in.height + 2 * l.pad_h - l.kernel_h) / l.stride_h + 1;
  const std::size_t ow = (in.width + 2 * l.pad_w - l.kernel_w) / l.stride_w + 1;
  Matrix y(x.rows, l.outputs * oh * ow);
  for (std::size_t b = 0; b < x.rows; ++b)
    for (std::size_t o = 0; o < l.outputs; ++o)
      for (std::size_t oy = 0; oy < oh; ++oy)
        for (std::size_t ox = 0; ox < ow; ++ox) {
          double sum = bias.empty() ? 0.0 : bias[o];
          for (std::size_t c = 0; c < in.channels; ++c)
            for (std::size_t ky = 0; ky < l.kernel_h; ++ky)
              for (std::size_t kx = 0; kx < l.kernel_w; ++kx) {
                const long iy = static_cast<long>(oy * l.stride_h + ky) - static_cast<long>(l.pad_h);
                const long ix = static_cast<long>(ox * l.stride_w + kx) - static_cast<long>(l.pad_w);
                if (iy < 0 || ix < 0 || iy >= static_cast<long>(in.height) || ix >= static_cast<long>(in.width)) continue;
                const double xv = x(b, (c * in.height + static_cast<std::size_t>(iy)) * in.width + static_cast<std::size_t>(ix));
                sum += xv * w(o, (c * l.kernel_h + ky) * l.kernel_w + kx);
              }
          y(b, (o * oh + oy) * ow + ox) = static_cast<float>(sum);
        }
  return y;
}

// The scalar checked by finite differences: L = sum(y .* r), so dL/dy = r.
double weighted_sum(const Matrix& y, const Matrix& r) {
  double s = 0.0;
  for (std::size_t i = 0; i < y.data.size(); ++i) s += static_cast<double>(y.data[i]) * r.data[i];
  return s;
}

// Checks a layer's dx and parameter/bias gradients against central
// differences of L = sum(y .* r). Every layer here is linear in its input and
// in its parameters, so the central difference has no truncation error: only
// float rounding (outputs of magnitude < ~20 summed in double, h = 2^-5), far
// below the 1e-3 tolerance and the gradients' sizes (checked > 0.1).
void check_gradients(Layer& layer, const Matrix& x) {
  const ForwardContext ctx{};
  Matrix y;
  layer.forward(x, y, ctx);
  const Matrix r = random_matrix(y.rows, y.cols, 99);
  Matrix dx;
  layer.backward(x, y, r, &dx);
  REQUIRE(dx.rows == x.rows);
  REQUIRE(dx.cols == x.cols);
  const float h = 1.0f / 32.0f;
  const auto loss_at = [&](float* slot, float value) {
    const float saved = *slot;
    *slot = value;
    Matrix yy;
    Matrix xx = x;  // forward may keep state; a fresh copy each time
    layer.forward(xx, yy, ctx);
    *slot = saved;
    return weighted_sum(yy, r);
  };
  double biggest = 0.0;
  Matrix xs = x;
  for (std::size_t i = 0; i < xs.data.size(); ++i) {
    const float v = x.data[i];
    Matrix xp = x, xm = x;
    xp.data[i] = v + h;
    xm.data[i] = v - h;
    Matrix yp, ym;
    layer.forward(xp, yp, ctx);
    layer.forward(xm, ym, ctx);
    const double fd = (weighted_sum(yp, r) - weighted_sum(ym, r)) / (2.0 * h);
    CHECK(std::abs(fd - dx.data[i]) < 1e-3);
    biggest = std::max(biggest, std::abs(fd));
  }
  CHECK(biggest > 0.1);
  // Parameters: re-run forward/backward at x so the gradients belong to it.
  for (auto [p, g] :
       {std::pair{layer.parameters(), layer.gradients()}, std::pair{layer.bias_parameters(), layer.bias_gradients()}}) {
    layer.forward(x, y, ctx);
    layer.backward(x, y, r, nullptr);
    const std::vector<float> grad(g.begin(), g.end());
    double big = 0.0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      const float v = p[i];
      const double fd = (loss_at(&p[i], v + h) - loss_at(&p[i], v - h)) / (2.0 * h);
      CHECK(std::abs(fd - grad[i]) < 1e-3);
      big = std::max(big, std::abs(fd));
    }
    if (!p.empty()) CHECK(big > 0.1);
  }
}

LayerSpec conv_spec(std::size_t out, std::size_t kh, std::size_t kw, std::size_t sh, std::size_t sw, std::size_t ph,
                    std::size_t pw) {
  LayerSpec l = LayerSpec::conv(out, kh, sh, ph);
  l.kernel_w = kw;
  l.stride_w = sw;
  l.pad_w = pw;
  return l;
}

}  // namespace

TEST_CASE("conv forward equals a direct convolution for strides, padding and rectangular kernels", "[conv]") {
  struct Case {
    Shape in;
    LayerSpec spec;
    bool bias;
  };
  const std::vector<Case> cases{
      {{1, 6, 6}, LayerSpec::conv(2, 3), false},          {{3, 7, 5}, conv_spec(4, 3, 2, 2, 1, 1, 0), true},
      {{2, 8, 8}, conv_spec(3, 2, 3, 2, 1, 0, 1), false}, {{2, 5, 5}, conv_spec(2, 5, 5, 1, 1, 2, 2), true},  // 'same' padding
      {{1, 28, 28}, LayerSpec::conv(12, 5), false},  // the ConvNet's first layer
  };
  std::uint32_t seed = 1;
  for (const Case& c : cases) {
    CAPTURE(describe(c.spec), to_string(c.in));
    const Matrix w = random_matrix(c.spec.outputs, c.in.channels * c.spec.kernel_h * c.spec.kernel_w, seed++);
    const std::vector<float> bias = c.bias ? random_vector(c.spec.outputs, seed++) : std::vector<float>{};
    ConvLayer conv(c.spec, c.in, w, bias);
    const Matrix x = random_matrix(3, c.in.size(), seed++);
    Matrix y;
    conv.forward(x, y, {});
    const Matrix expected = direct_conv(x, c.in, c.spec, w, bias);
    REQUIRE(y.rows == expected.rows);
    REQUIRE(y.cols == expected.cols);
    REQUIRE(y.cols == output_shape(c.spec, c.in, 1).size());
    for (std::size_t i = 0; i < y.data.size(); ++i) CHECK(y.data[i] == Approx(expected.data[i]).margin(1e-5));
  }
}

TEST_CASE("conv gradients match finite differences", "[conv]") {
  SECTION("stride 2 pad 1, rectangular kernel, bias") {
    const Shape in{2, 5, 6};
    const LayerSpec spec = conv_spec(3, 3, 2, 2, 2, 1, 1);
    ConvLayer conv(spec, in, random_matrix(3, 2 * 3 * 2, 7), random_vector(3, 8));
    check_gradients(conv, random_matrix(2, in.size(), 9));
  }
  SECTION("stride 1, no padding, no bias") {
    const Shape in{1, 6, 6};
    ConvLayer conv(LayerSpec::conv(2, 3), in, random_matrix(2, 9, 10));
    CHECK(conv.bias_parameters().empty());
    check_gradients(conv, random_matrix(3, in.size(), 11));
  }
}

namespace {

// One forward and backward (with dx) of `layer` on x, run by `threads` oneTBB
// threads; returns y, dx, the weight and the bias gradients.
std::vector<std::vector<float>> pass(Layer& layer, const Matrix& x, const Matrix& r, int threads) {
  Matrix y, dx;
  tbb::task_arena(threads).execute([&] {
    layer.forward(x, y, {});
    layer.backward(x, y, r, &dx);
  });
  const std::span<float> g = layer.gradients(), gb = layer.bias_gradients();
  return {y.data, dx.data, {g.begin(), g.end()}, {gb.begin(), gb.end()}};
}

Matrix rows_of(const Matrix& m, std::size_t first, std::size_t count) {
  Matrix out(count, m.cols);
  std::copy(m.row(first), m.row(first) + count * m.cols, out.data.begin());
  return out;
}

}  // namespace

TEST_CASE("conv and avgpool split a batch into pieces: sample-wise results, the same bits for 1 and 2 threads", "[conv]") {
  // 13 samples make several pieces of the batch (pieces of 5 samples in
  // conv_layers.cpp; any size below 13 splits it). Expected: the outputs and
  // input gradients of each sample alone, and weight/bias gradients that are
  // the sum of the per-sample ones; and bit-identical results for 1 and 2
  // threads (the pieces and the order their gradients are summed in do not
  // depend on the thread count).
  const Shape in{2, 9, 8};
  std::vector<std::unique_ptr<Layer>> layers;
  layers.push_back(std::make_unique<ConvLayer>(conv_spec(3, 3, 2, 2, 1, 1, 0), in, random_matrix(3, 2 * 3 * 2, 21),
                                               random_vector(3, 22)));
  layers.push_back(std::make_unique<ConvLayer>(LayerSpec::conv(4, 3, 1, 1), in, random_matrix(4, 2 * 9, 23)));
  layers.push_back(std::make_unique<AvgPoolLayer>(LayerSpec::avgpool(2), Shape{2, 8, 8}));
  std::uint32_t seed = 30;
  for (auto& layer : layers) {
    CAPTURE(layer->kind(), layer->inputs());
    const std::size_t batch = 13;
    const Matrix x = random_matrix(batch, layer->inputs(), seed++);
    const Matrix r = random_matrix(batch, layer->outputs(), seed++);
    const auto one = pass(*layer, x, r, 1);
    const auto two = pass(*layer, x, r, 2);
    CHECK(one == two);
    std::vector<double> dw(one[2].size()), db(one[3].size());
    for (std::size_t b = 0; b < batch; ++b) {
      const auto alone = pass(*layer, rows_of(x, b, 1), rows_of(r, b, 1), 1);
      for (std::size_t i = 0; i < alone[0].size(); ++i) CHECK(one[0][b * layer->outputs() + i] == Approx(alone[0][i]).margin(1e-5));
      for (std::size_t i = 0; i < alone[1].size(); ++i) CHECK(one[1][b * layer->inputs() + i] == Approx(alone[1][i]).margin(1e-5));
      for (std::size_t i = 0; i < dw.size(); ++i) dw[i] += alone[2][i];
      for (std::size_t i = 0; i < db.size(); ++i) db[i] += alone[3][i];
    }
    for (std::size_t i = 0; i < dw.size(); ++i) CHECK(one[2][i] == Approx(dw[i]).margin(1e-4));
    for (std::size_t i = 0; i < db.size(); ++i) CHECK(one[3][i] == Approx(db[i]).margin(1e-4));
  }
}

TEST_CASE("conv rejects weights of the wrong shape, naming the layer and shapes", "[conv]") {
  CHECK_THROWS_WITH(ConvLayer(LayerSpec::conv(4, 5), Shape{1, 28, 28}, Matrix(4, 24)),
                    Catch::Contains("conv 4 5x5") && Catch::Contains("[4, 25]") && Catch::Contains("[4, 24]"));
  CHECK_THROWS_WITH(ConvLayer(LayerSpec::conv(4, 5), Shape{1, 28, 28}, Matrix(4, 25), std::vector<float>(3)),
                    Catch::Contains("bias has 3 values, expected 4"));
}

TEST_CASE("avgpool averages each window per channel, hand-worked", "[avgpool]") {
  // One sample, 2 channels of 2x4; 2x2 windows: channel 0 = 1..8, channel 1 = all 4.
  Matrix x(1, 16);
  for (std::size_t i = 0; i < 8; ++i) x.data[i] = static_cast<float>(i + 1);
  for (std::size_t i = 8; i < 16; ++i) x.data[i] = 4.0f;
  AvgPoolLayer pool(LayerSpec::avgpool(2), Shape{2, 2, 4});
  Matrix y;
  pool.forward(x, y, {});
  // Windows {1,2,5,6} and {3,4,7,8}.
  CHECK(y.data == std::vector<float>{3.5f, 5.5f, 4.0f, 4.0f});
  Matrix dx;
  pool.backward(x, y, Matrix(1, 4, 1.0f), &dx);
  CHECK(dx.data == std::vector<float>(16, 0.25f));
}

TEST_CASE("avgpool gradients match finite differences, also for overlapping windows", "[avgpool]") {
  SECTION("2x2 stride 2") {
    AvgPoolLayer pool(LayerSpec::avgpool(2), Shape{3, 4, 6});
    check_gradients(pool, random_matrix(2, 72, 21, -3.0f, 3.0f));
  }
  SECTION("3x3 stride 2 (overlapping)") {
    LayerSpec l = LayerSpec::avgpool(3);
    l.stride_h = l.stride_w = 2;
    AvgPoolLayer pool(l, Shape{2, 7, 5});
    check_gradients(pool, random_matrix(2, 70, 22, -3.0f, 3.0f));
  }
}

TEST_CASE("flatten passes values and gradients unchanged", "[flatten]") {
  FlattenLayer flat(Shape{2, 3, 3});
  const Matrix x = random_matrix(2, 18, 31);
  Matrix y;
  flat.forward(x, y, {});
  CHECK(y == x);
  check_gradients(flat, random_matrix(2, 18, 32, -2.0f, 2.0f));
}

TEST_CASE("a small ConvNet model's gradients match finite differences of the loss", "[model]") {
  // conv 3 3x3 pad 1 -> avgpool 2 -> flatten -> dense 4, linear logits; ReLU
  // kinks could sit within h of a pre-activation, so the check uses a small h
  // and skips nothing: random inputs make a crossing unlikely, and a crossing
  // would show as a single outlier, not a systematic error.
  NetworkSpec spec;
  spec.input = Shape{1, 6, 6};
  spec.layers = {LayerSpec::conv(3, 3, 1, 1, "c1"), LayerSpec::avgpool(2, "p1"), LayerSpec::flatten("f"),
                 LayerSpec::dense(4, "fc")};
  spec.output_relu = false;
  spec.dropout = 0.0f;
  spec.bias = true;
  Model model = Model::initialise(spec, Init::KaimingUniform, 0.0f, 5);
  REQUIRE(model.spiking_layers() == 3);
  REQUIRE(model.weight_layers() == 2);
  const Matrix x = random_matrix(3, 36, 41, 0.0f, 1.0f);
  const std::uint8_t labels[3] = {0, 3, 1};
  Matrix dlogits;
  const auto loss = [&] { return softmax_cross_entropy(model.forward(x, {}), labels, nullptr).loss; };
  softmax_cross_entropy(model.forward(x, {}), labels, &dlogits);
  model.backward(dlogits);
  const double h = 1e-3;
  for (Layer* l : model.layers()) {
    for (auto [p, g] : {std::pair{l->parameters(), l->gradients()}, std::pair{l->bias_parameters(), l->bias_gradients()}}) {
      const std::vector<float> grad(g.begin(), g.end());
      for (std::size_t i = 0; i < p.size(); ++i) {
        const float v = p[i];
        p[i] = static_cast<float>(v + h);
        const double up = loss();
        p[i] = static_cast<float>(v - h);
        const double down = loss();
        p[i] = v;
        CHECK(std::abs((up - down) / (2 * h) - grad[i]) < 2e-3);
      }
    }
  }
}

TEST_CASE("kaiming_uniform draws within 1 over sqrt(fan_in) and uniform keeps the seed's stream", "[model]") {
  NetworkSpec spec;
  spec.input = Shape{1, 12, 12};
  spec.layers = {LayerSpec::conv(4, 5), LayerSpec::avgpool(2), LayerSpec::dense(10)};
  Model k = Model::initialise(spec, Init::KaimingUniform, 0.0f, 3);
  const std::vector<Matrix> w = k.weights();
  REQUIRE(w.size() == 2);
  REQUIRE(w[0].rows == 4);
  REQUIRE(w[0].cols == 25);
  REQUIRE(w[1].cols == 4 * 4 * 4);
  for (std::size_t l = 0; l < 2; ++l) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(w[l].cols));
    float lo = 1, hi = -1;
    for (float v : w[l].data) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    CHECK(lo >= -bound);
    CHECK(hi < bound);
    CHECK(hi > 0.8 * bound);  // the range is used, not a smaller one
    CHECK(lo < -0.8 * bound);
  }
  // Uniform with range r is the same stream scaled: w_u / r == w_k / bound up to rounding.
  Model u = Model::initialise(spec, Init::Uniform, 0.1f, 3);
  const std::vector<Matrix> wu = u.weights();
  const double bound0 = 1.0 / 5.0;
  for (std::size_t i = 0; i < wu[0].data.size(); ++i) CHECK(wu[0].data[i] / 0.1 == Approx(w[0].data[i] / bound0).margin(1e-5));
  CHECK_THROWS_WITH(parse_init("he"), Catch::Contains("'he'") && Catch::Contains("kaiming_uniform"));
}

TEST_CASE("a ConvNet spec must end in a dense or conv layer and fit its input", "[model]") {
  NetworkSpec spec;
  spec.input = Shape{1, 8, 8};
  spec.layers = {LayerSpec::conv(2, 3), LayerSpec::avgpool(2)};
  CHECK_THROWS_WITH(Model::initialise(spec, Init::KaimingUniform, 0.0f, 1), Catch::Contains("must be dense or conv"));
  spec.layers = {LayerSpec::conv(2, 9), LayerSpec::dense(3)};
  CHECK_THROWS_WITH(Model::initialise(spec, Init::KaimingUniform, 0.0f, 1), Catch::Contains("conv 2 9x9"));
}

namespace {

// 8x8 images, two classes: a bright vertical bar in the left half (0) or the
// right half (1), at a random column, plus noise.
Dataset bars(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  Dataset d;
  d.count = n;
  d.rows = d.cols = 8;
  d.num_classes = 2;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t label = static_cast<std::uint8_t>(gen() % 2);
    const std::size_t col = label * 4 + gen() % 4;
    for (std::size_t r = 0; r < 8; ++r)
      for (std::size_t c = 0; c < 8; ++c) d.pixels.push_back(static_cast<std::uint8_t>(c == col ? 200 + gen() % 56 : gen() % 60));
    d.labels.push_back(label);
  }
  return d;
}

}  // namespace

TEST_CASE("a small ConvNet trains, saves, loads and evaluates the same, and normalisation keeps its predictions", "[model]") {
  const Dataset train_set = bars(400, 1);
  const Dataset test_set = bars(200, 2);
  TrainConfig c;
  c.network.input = Shape{1, 8, 8};
  c.network.layers = {LayerSpec::conv(4, 3, 1, 1, "conv1"), LayerSpec::avgpool(2, "pool1"), LayerSpec::flatten("flat"),
                      LayerSpec::dense(2, "fc")};
  c.network.output_relu = false;
  c.network.dropout = 0.0f;
  c.init = Init::KaimingUniform;
  c.epochs = 4;
  c.batch_size = 20;
  c.seed = 3;
  c.blas_threads = 1;
  const TrainResult r = train(c, train_set, &test_set);
  REQUIRE(r.test);
  CHECK(r.test->accuracy > 0.9);
  const WeightSet w = to_weight_set(c, r, "bars", train_set.count);
  CHECK(w.architecture == c.network.layers);
  CHECK(w.input == c.network.input);
  const auto dir = std::filesystem::temp_directory_path() / "snnsim_test_conv_layers_train";
  std::filesystem::remove_all(dir);
  save_weights(dir, w);
  const WeightSet back = load_weights(dir);
  CHECK(back.layers == w.layers);
  CHECK(back.architecture == w.architecture);
  CHECK(back.input == w.input);
  CHECK(back.names == w.names);
  CHECK(back.biases == w.biases);
  CHECK(back.training == w.training);
  CHECK(back.files == std::vector<std::string>{"conv1.npy", "fc.npy"});
  const Evaluation e = evaluate(back, test_set, false);
  CHECK(e.correct == r.test->correct);
  // Data-based normalisation divides each layer's output by a positive lambda:
  // the argmax, so every prediction, stays (up to float ties).
  WeightSet n = back;
  NormaliseOptions o;
  o.method = Normalisation::Data;
  normalise(n, o, &train_set);
  CHECK(n.normalisation.factors.size() == 3);
  CHECK(n.normalisation.factors[1] == 1.0);  // the pool
  CHECK(evaluate(n, test_set, false).correct == r.test->correct);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a ConvNet trains to the same weights bit for bit with 1 and 2 threads", "[model]") {
  // Conv nets split each batch into pieces fixed by the batch, not by the
  // thread count, and run OpenBLAS single-threaded (the dense layer too).
  const Dataset train_set = bars(200, 4);
  TrainConfig c;
  c.network.input = Shape{1, 8, 8};
  c.network.layers = {LayerSpec::conv(4, 3, 1, 1, "conv1"), LayerSpec::avgpool(2, "pool1"), LayerSpec::conv(6, 3, 1, 0, "conv2"),
                      LayerSpec::flatten("flat"), LayerSpec::dense(2, "fc")};
  c.network.output_relu = false;
  c.network.dropout = 0.0f;
  c.network.bias = true;
  c.init = Init::KaimingUniform;
  c.epochs = 2;
  c.batch_size = 30;  // pieces of 5, 5, ... and a last batch of 20
  c.seed = 5;
  c.blas_threads = 1;
  const TrainResult a = train(c, train_set);
  c.blas_threads = 2;
  const TrainResult b = train(c, train_set);
  CHECK(a.weights == b.weights);
  CHECK(a.biases == b.biases);
  c.seed = 6;
  CHECK(train(c, train_set).weights != a.weights);
}
