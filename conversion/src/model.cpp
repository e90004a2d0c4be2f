#include "snn/conversion/model.h"

#include "snn/conversion/random.h"
#include "snn/error.h"
#include "snn/network/weights.h"

#include "pieces.h"

#include <cmath>
#include <optional>

namespace snn::conversion {

std::string_view to_string(DropoutAt where) { return where == DropoutAt::Hidden ? "hidden" : "hidden_dense"; }

DropoutAt parse_dropout_at(std::string_view text) {
  if (text == "hidden") return DropoutAt::Hidden;
  if (text == "hidden_dense") return DropoutAt::HiddenDense;
  throw Error("unknown dropout placement '{}' (choose hidden or hidden_dense)", text);
}

std::string_view to_string(Init init) { return init == Init::Uniform ? "uniform" : "kaiming_uniform"; }

Init parse_init(std::string_view text) {
  if (text == "uniform") return Init::Uniform;
  if (text == "kaiming_uniform") return Init::KaimingUniform;
  throw Error("unknown init '{}' (choose uniform or kaiming_uniform)", text);
}

std::vector<Shape> NetworkSpec::shapes() const {
  std::vector<Shape> s = infer_shapes(input, layers);
  if (!layers.back().has_weights())
    throw Error("the last layer '{}' must be dense or conv (the output layer)", describe(layers.back()));
  return s;
}

std::size_t NetworkSpec::outputs() const { return layers.empty() ? 0 : shapes().back().size(); }

NetworkSpec spec_for(const std::vector<Matrix>& weights, bool output_relu, float dropout) {
  if (weights.empty()) throw Error("a network needs at least one layer");
  NetworkSpec spec;
  spec.input = Shape{weights.front().cols, 1, 1};
  spec.layers.clear();
  for (std::size_t i = 0; i < weights.size(); ++i)
    spec.layers.push_back(LayerSpec::dense(weights[i].rows, fmt::format("layer{}", i)));
  spec.output_relu = output_relu;
  spec.dropout = dropout;
  return spec;
}

NetworkSpec spec_for(const WeightSet& weights, bool output_relu) {
  if (weights.architecture.empty()) {
    NetworkSpec spec = spec_for(weights.layers, output_relu);
    if (weights.input.size() != 0) spec.input = weights.input;
    spec.bias = !weights.biases.empty();
    return spec;
  }
  NetworkSpec spec;
  spec.input = weights.input;
  spec.layers = weights.architecture;
  spec.output_relu = output_relu;
  spec.dropout = 0.0f;
  spec.bias = !weights.biases.empty();
  return spec;
}

Model Model::initialise(const NetworkSpec& spec, Init init, float range, std::uint64_t seed) {
  if (init == Init::Uniform && !(range > 0.0f)) throw Error("init_range {} must be > 0", range);
  const std::vector<Shape> shapes = spec.shapes();
  std::vector<Matrix> weights;
  std::vector<std::vector<float>> biases;
  Shape in = spec.input;
  for (std::size_t l = 0; l < spec.layers.size(); ++l) {
    const LayerSpec& ls = spec.layers[l];
    if (ls.has_weights()) {
      const std::vector<std::size_t> ws = weight_shape(ls, in);
      std::size_t fan_in = 1;
      for (std::size_t k = 1; k < ws.size(); ++k) fan_in *= ws[k];
      const std::size_t index = weights.size();
      Matrix w(ws[0], fan_in);
      const CounterRng rng(seed, RandomPurpose::Init, index);
      // torch.nn.init.uniform_(w, a, b) computes a + (b - a) * u; kaiming_uniform_
      // with a = sqrt(5) reduces to the bound 1/sqrt(fan_in).
      const float bound = init == Init::Uniform ? range : static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)));
      const float lo = -bound;
      const float span = 2.0f * bound;
      for (std::size_t i = 0; i < w.data.size(); ++i) w.data[i] = lo + span * rng.uniform(i);
      weights.push_back(std::move(w));
      if (spec.bias) {
        const CounterRng brng(seed, RandomPurpose::Init, index, 1);
        std::vector<float> b(ws[0]);
        for (std::size_t i = 0; i < b.size(); ++i) b[i] = lo + span * brng.uniform(i);
        biases.push_back(std::move(b));
      }
    }
    in = shapes[l];
  }
  return Model(spec, std::move(weights), std::move(biases));
}

Model::Model(const NetworkSpec& spec, std::vector<Matrix> weights, std::vector<std::vector<float>> biases) : spec_(spec) {
  if (spec.layers.empty()) throw Error("a network needs at least one layer");
  const std::vector<Shape> shapes = spec.shapes();
  std::size_t weight_count = 0;
  for (const auto& l : spec.layers) weight_count += l.has_weights();
  if (weights.size() != weight_count)
    throw Error("network spec has {} dense/conv layers but {} weight matrices were given", weight_count, weights.size());
  if (!biases.empty() && biases.size() != weight_count)
    throw Error("{} bias vectors were given for {} dense/conv layers (expected none or one per layer)", biases.size(),
                weight_count);
  std::size_t last_weighted = 0;
  for (std::size_t l = 0; l < spec.layers.size(); ++l)
    if (spec.layers[l].has_weights()) last_weighted = l;
  Shape in = spec.input;
  std::uint64_t dropout_id = 0;
  std::size_t w_index = 0;
  for (std::size_t l = 0; l < spec.layers.size(); ++l) {
    const LayerSpec& ls = spec.layers[l];
    const Shape& out = shapes[l];
    if (ls.has_weights()) {
      Matrix& w = weights[w_index];
      std::vector<float> b = biases.empty() ? std::vector<float>{} : std::move(biases[w_index]);
      const std::vector<std::size_t> ws = weight_shape(ls, in);
      const std::size_t cols = ls.kind == LayerKind::Dense ? ws[1] : ws[1] * ws[2] * ws[3];
      const std::string name = ls.name.empty() ? fmt::format("layer{}", l) : ls.name;
      if (w.rows != ws[0] || w.cols != cols)
        throw Error("layer {} ('{}', {}): expected weights [{}, {}], found [{}, {}]", l, name, describe(ls), ws[0], cols, w.rows,
                    w.cols);
      std::unique_ptr<Layer> layer;
      if (ls.kind == LayerKind::Dense)
        layer = std::make_unique<DenseLayer>(std::move(w), std::move(b));
      else
        layer = std::make_unique<ConvLayer>(ls, in, w, std::move(b));
      has_conv_ = has_conv_ || ls.kind == LayerKind::Conv;
      weighted_.push_back(layer.get());
      weight_shapes_.emplace_back(ws[0], cols);
      layers_.push_back(std::move(layer));
      ++w_index;
      const bool last = l == last_weighted;
      if (!last || spec.output_relu) layers_.push_back(std::make_unique<ReluLayer>(out.size()));
      activation_index_.push_back(layers_.size() - 1);
      spiking_spec_.push_back(l);
      const bool drop = spec.dropout > 0.0f && !last && (spec.dropout_at == DropoutAt::Hidden || ls.kind == LayerKind::Dense);
      if (drop) layers_.push_back(std::make_unique<DropoutLayer>(out.size(), spec.dropout, dropout_id++));
    } else if (ls.kind == LayerKind::AvgPool) {
      layers_.push_back(std::make_unique<AvgPoolLayer>(ls, in));
      activation_index_.push_back(layers_.size() - 1);
      spiking_spec_.push_back(l);
    }
    in = out;
  }
  outputs_.resize(layers_.size());
  grads_.resize(layers_.size());
}

const Matrix& Model::forward(const Matrix& x, const ForwardContext& ctx) {
  if (x.cols != spec_.inputs())
    throw Error("network takes {} inputs per sample ({}), the batch has {}", spec_.inputs(), to_string(spec_.input), x.cols);
  input_ = &x;
  std::optional<SerialBlas> serial;
  if (has_conv_) serial.emplace();
  const Matrix* in = &x;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->forward(*in, outputs_[i], ctx);
    in = &outputs_[i];
  }
  return *in;
}

void Model::backward(const Matrix& doutput) {
  if (!input_) throw Error("Model::backward called before forward");
  std::optional<SerialBlas> serial;
  if (has_conv_) serial.emplace();
  const Matrix* dy = &doutput;
  for (std::size_t i = layers_.size(); i-- > 0;) {
    const Matrix& x = i == 0 ? *input_ : outputs_[i - 1];
    // Nothing upstream of the first layer learns, so its input gradient (the
    // largest GEMM of the backward pass for a wide input) is skipped.
    Matrix* dx = i == 0 ? nullptr : &grads_[i - 1];
    layers_[i]->backward(x, outputs_[i], *dy, dx);
    dy = dx;
  }
}

const Matrix& Model::activation(std::size_t spiking_layer) const { return outputs_.at(activation_index_.at(spiking_layer)); }

std::vector<Layer*> Model::layers() {
  std::vector<Layer*> out;
  for (auto& l : layers_) out.push_back(l.get());
  return out;
}

std::vector<Matrix> Model::weights() const {
  std::vector<Matrix> out;
  for (std::size_t i = 0; i < weighted_.size(); ++i) {
    const std::span<const float> p = weighted_[i]->parameters();
    Matrix m(weight_shapes_[i].first, weight_shapes_[i].second);
    std::copy(p.begin(), p.end(), m.data.begin());
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::vector<float>> Model::biases() const {
  std::vector<std::vector<float>> out;
  bool any = false;
  for (Layer* l : weighted_) {
    const std::span<const float> b = l->bias_parameters();
    out.emplace_back(b.begin(), b.end());
    any = any || !b.empty();
  }
  if (!any) out.clear();
  return out;
}

}  // namespace snn::conversion
