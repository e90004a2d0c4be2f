// A feed-forward network described as data (NetworkSpec: an input shape and a
// list of snn::LayerSpec, network/layer_spec.h, shared with the config, the
// weight files and the engine's builder) and built into a list of Layer objects
// (layers.h) with the buffers a batch needs. The seed's network is the default
// spec: 784-1200-1200-10 dense, no bias, ReLU after every layer including the
// output, dropout 0.5 after each hidden ReLU during training.
//
// Layer order in the built model: each dense or conv layer is followed by its
// ReLU (not the output layer's when output_relu is false) and, in training, by
// dropout where NetworkSpec says; an avgpool layer has no ReLU (its input is
// already non-negative); a flatten layer builds nothing (a batch row is already
// the CHW-ordered flat vector).
#pragma once

#include "snn/conversion/layers.h"
#include "snn/network/layer_spec.h"
#include "snn/network/matrix.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace snn {
struct WeightSet;
}

namespace snn::conversion {

using snn::LayerKind;
using snn::LayerSpec;
using snn::Shape;

/// Where dropout goes (training only).
enum class DropoutAt {
  Hidden,       ///< after the ReLU of every hidden dense or conv layer (the seed: each hidden dense layer)
  HiddenDense,  ///< after the ReLU of hidden dense layers only (none in a net whose only dense layer is the output)
};
/// "hidden", "hidden_dense"; parse_dropout_at throws snn::Error naming the value and the choices.
std::string_view to_string(DropoutAt where);
DropoutAt parse_dropout_at(std::string_view text);

/// Initial weights.
enum class Init {
  Uniform,         ///< U(-range, range), range = TrainConfig::init_range (the seed: 0.1)
  KaimingUniform,  ///< PyTorch's default for Linear and Conv2d (1.13: kaiming_uniform_ with a = sqrt(5)):
                   ///< U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in features or in_c * kh * kw;
                   ///< a bias, if any, from the same bound (as torch)
};
/// "uniform", "kaiming_uniform"; parse_init throws snn::Error naming the value and the choices.
std::string_view to_string(Init init);
Init parse_init(std::string_view text);

struct NetworkSpec {
  Shape input{784, 1, 1};  ///< one sample's shape: {pixels, 1, 1} for an MLP, {1, 28, 28} for a ConvNet on MNIST
  std::vector<LayerSpec> layers{LayerSpec::dense(1200, "fc1"), LayerSpec::dense(1200, "fc2"), LayerSpec::dense(10, "fc3")};
  /// ReLU on the output layer too (the seed's choice). A ReLU'd logit that is
  /// never positive gets no gradient and its class can die; false leaves the
  /// logits linear (the spiking output neurons then simply never fire for
  /// negative current).
  bool output_relu = true;
  /// Drop probability (training only), where dropout_at says.
  float dropout = 0.5f;
  DropoutAt dropout_at = DropoutAt::Hidden;
  /// A bias per dense/conv output (torch's bias=True). Off by default: the
  /// spiking network the seed converts has none.
  bool bias = false;

  /// Features per sample in (input.size()) and classes out (the last layer's output size).
  std::size_t inputs() const { return input.size(); }
  std::size_t outputs() const;
  /// Throws snn::Error unless the layers fit the input (infer_shapes) and the
  /// last layer is dense or conv (the output layer).
  std::vector<Shape> shapes() const;
};

/// The spec matching a list of dense weight matrices ([out, in], chained).
NetworkSpec spec_for(const std::vector<Matrix>& weights, bool output_relu, float dropout = 0.0f);
/// The spec of a weight set (its input shape and architecture, or the dense
/// chain of its layers; bias if it has biases), without dropout.
NetworkSpec spec_for(const WeightSet& weights, bool output_relu);

class Model {
 public:
  /// Weights drawn by `init` (range: Uniform's bound), each weight layer's from
  /// its own counter-based stream keyed by (seed, weight-layer index), biases
  /// from (seed, index, 1). Uniform computes lo + (hi - lo) * u as
  /// torch.nn.init.uniform_ does.
  static Model initialise(const NetworkSpec& spec, Init init, float range, std::uint64_t seed);
  /// Uniform init (the seed's).
  static Model initialise(const NetworkSpec& spec, float init_range, std::uint64_t seed) {
    return initialise(spec, Init::Uniform, init_range, seed);
  }
  /// A model with the given weights, one per dense or conv layer in order
  /// (dense [out, in], conv [out_c, in_c * kh * kw]), and biases (empty: none;
  /// else one vector per weight layer, each empty or one value per output),
  /// checked against the spec. (spec.bias only matters to initialise.)
  Model(const NetworkSpec& spec, std::vector<Matrix> weights, std::vector<std::vector<float>> biases = {});

  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  /// Runs a batch [samples, inputs] through every layer and returns the output
  /// [samples, outputs]. `x` must stay alive and unchanged until backward().
  const Matrix& forward(const Matrix& x, const ForwardContext& ctx);
  /// Back-propagates dL/d(output) of the last forward; sets every layer's
  /// parameter gradients.
  void backward(const Matrix& doutput);

  /// Spiking layers are the dense, conv and avgpool layers (not flatten), in
  /// order. activation(s): spiking layer s's output for the last forward after
  /// its ReLU (the output layer's own output when output_relu is false; an
  /// avgpool's output as it is), [batch, size of its output shape].
  std::size_t spiking_layers() const { return activation_index_.size(); }
  const Matrix& activation(std::size_t spiking_layer) const;
  /// Index into spec().layers of spiking layer s.
  std::size_t spiking_spec_index(std::size_t s) const { return spiking_spec_.at(s); }

  const NetworkSpec& spec() const { return spec_; }
  std::vector<Layer*> layers();
  /// The dense and conv layers' weights in order (copies).
  std::vector<Matrix> weights() const;
  /// Their biases (copies), one per weight layer; empty when no layer has one.
  std::vector<std::vector<float>> biases() const;
  std::size_t weight_layers() const { return weighted_.size(); }

 private:
  NetworkSpec spec_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Layer*> weighted_;  // dense and conv layers
  std::vector<std::pair<std::size_t, std::size_t>> weight_shapes_;
  std::vector<std::size_t> activation_index_;  // per spiking layer: index into outputs_
  std::vector<std::size_t> spiking_spec_;
  const Matrix* input_ = nullptr;
  std::vector<Matrix> outputs_;  // outputs_[i]: output of layers_[i]
  std::vector<Matrix> grads_;    // grads_[i]: dL/d(output of layers_[i])
  // With a conv layer every pass splits the batch over oneTBB threads and runs
  // OpenBLAS single-threaded (the dense layers too, so that no GEMM's result
  // depends on a thread count).
  bool has_conv_ = false;
};

}  // namespace snn::conversion
