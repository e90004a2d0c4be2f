#include "snn/conversion/model.h"

#include "snn/conversion/random.h"
#include "snn/error.h"

namespace snn::conversion {

NetworkSpec spec_for(const std::vector<Matrix>& weights, bool output_relu, float dropout) {
  if (weights.empty()) throw Error("a network needs at least one layer");
  NetworkSpec spec;
  spec.inputs = weights.front().cols;
  spec.layers.clear();
  for (std::size_t i = 0; i < weights.size(); ++i) spec.layers.push_back({LayerKind::Dense, weights[i].rows, fmt::format("layer{}", i)});
  spec.output_relu = output_relu;
  spec.dropout = dropout;
  return spec;
}

Model Model::initialise(const NetworkSpec& spec, float init_range, std::uint64_t seed) {
  if (!(init_range > 0.0f)) throw Error("init_range {} must be > 0", init_range);
  std::vector<Matrix> weights;
  std::size_t in = spec.inputs;
  for (std::size_t l = 0; l < spec.layers.size(); ++l) {
    Matrix w(spec.layers[l].outputs, in);
    const CounterRng rng(seed, RandomPurpose::Init, l);
    // torch.nn.init.uniform_(w, a, b) computes a + (b - a) * u.
    const float lo = -init_range;
    const float span = 2.0f * init_range;
    for (std::size_t i = 0; i < w.data.size(); ++i) w.data[i] = lo + span * rng.uniform(i);
    weights.push_back(std::move(w));
    in = spec.layers[l].outputs;
  }
  return Model(spec, std::move(weights));
}

Model::Model(const NetworkSpec& spec, std::vector<Matrix> weights) : spec_(spec) {
  if (spec.layers.empty()) throw Error("a network needs at least one layer");
  if (weights.size() != spec.layers.size())
    throw Error("network spec has {} layers but {} weight matrices were given", spec.layers.size(), weights.size());
  std::size_t in = spec.inputs;
  std::uint64_t dropout_id = 0;
  for (std::size_t l = 0; l < spec.layers.size(); ++l) {
    const LayerSpec& ls = spec.layers[l];
    Matrix& w = weights[l];
    if (ls.outputs == 0) throw Error("layer {} has no outputs", l);
    if (w.rows != ls.outputs || w.cols != in)
      throw Error("layer {} ('{}'): expected weights [{}, {}], found [{}, {}]", l, ls.name, ls.outputs, in, w.rows, w.cols);
    switch (ls.kind) {
      case LayerKind::Dense: {
        auto dense = std::make_unique<DenseLayer>(std::move(w));
        dense_.push_back(dense.get());
        layers_.push_back(std::move(dense));
        break;
      }
    }
    const bool last = l + 1 == spec.layers.size();
    if (!last || spec.output_relu) layers_.push_back(std::make_unique<ReluLayer>(ls.outputs));
    activation_index_.push_back(layers_.size() - 1);
    if (!last && spec.dropout > 0.0f) layers_.push_back(std::make_unique<DropoutLayer>(ls.outputs, spec.dropout, dropout_id++));
    in = ls.outputs;
  }
  outputs_.resize(layers_.size());
  grads_.resize(layers_.size());
}

const Matrix& Model::forward(const Matrix& x, const ForwardContext& ctx) {
  if (x.cols != spec_.inputs) throw Error("network takes {} inputs per sample, the batch has {}", spec_.inputs, x.cols);
  input_ = &x;
  const Matrix* in = &x;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->forward(*in, outputs_[i], ctx);
    in = &outputs_[i];
  }
  return *in;
}

void Model::backward(const Matrix& doutput) {
  if (!input_) throw Error("Model::backward called before forward");
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

const Matrix& Model::activation(std::size_t weight_layer) const { return outputs_.at(activation_index_.at(weight_layer)); }

std::vector<Layer*> Model::layers() {
  std::vector<Layer*> out;
  for (auto& l : layers_) out.push_back(l.get());
  return out;
}

std::vector<Matrix> Model::weights() const {
  std::vector<Matrix> out;
  for (const DenseLayer* d : dense_) out.push_back(d->weights());
  return out;
}

}  // namespace snn::conversion
