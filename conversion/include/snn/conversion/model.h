// A feed-forward network described as data (NetworkSpec: a list of layer
// specs) and built into a list of Layer objects (layers.h) with the buffers a
// batch needs. The seed's network is the default spec: 784-1200-1200-10 dense,
// no bias, ReLU after every layer including the output, dropout 0.5 after each
// hidden ReLU during training.
#pragma once

#include "snn/conversion/layers.h"
#include "snn/network/matrix.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace snn::conversion {

enum class LayerKind { Dense };

struct LayerSpec {
  LayerKind kind = LayerKind::Dense;
  std::size_t outputs = 0;  ///< neurons of this layer
  std::string name;         ///< e.g. "fc1" (names the weight file); default "layer<i>"
};

struct NetworkSpec {
  std::size_t inputs = 784;  ///< features per sample (pixels)
  std::vector<LayerSpec> layers{{LayerKind::Dense, 1200, "fc1"}, {LayerKind::Dense, 1200, "fc2"}, {LayerKind::Dense, 10, "fc3"}};
  /// ReLU on the output layer too (the seed's choice). A ReLU'd logit that is
  /// never positive gets no gradient and its class can die; false leaves the
  /// logits linear (the spiking output neurons then simply never fire for
  /// negative current).
  bool output_relu = true;
  /// Drop probability after each hidden layer's ReLU, training only.
  float dropout = 0.5f;
};

/// The spec matching a list of dense weight matrices ([out, in], chained).
NetworkSpec spec_for(const std::vector<Matrix>& weights, bool output_relu, float dropout = 0.0f);

class Model {
 public:
  /// Weights drawn U(-init_range, init_range) (torch.nn.init.uniform_), each
  /// layer's from its own counter-based stream keyed by (seed, layer index).
  static Model initialise(const NetworkSpec& spec, float init_range, std::uint64_t seed);
  /// A model with the given dense weights (checked against the spec).
  Model(const NetworkSpec& spec, std::vector<Matrix> weights);

  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  /// Runs a batch [samples, inputs] through every layer and returns the output
  /// [samples, outputs]. `x` must stay alive and unchanged until backward().
  const Matrix& forward(const Matrix& x, const ForwardContext& ctx);
  /// Back-propagates dL/d(output) of the last forward; sets every layer's
  /// parameter gradients.
  void backward(const Matrix& doutput);

  /// The output of weight layer l's ReLU for the last forward (or of the dense
  /// layer itself, for the output layer when output_relu is false).
  const Matrix& activation(std::size_t weight_layer) const;

  const NetworkSpec& spec() const { return spec_; }
  std::vector<Layer*> layers();
  /// The dense layers' weights in order (copies).
  std::vector<Matrix> weights() const;
  std::size_t weight_layers() const { return dense_.size(); }

 private:
  NetworkSpec spec_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<DenseLayer*> dense_;
  std::vector<std::size_t> activation_index_;  // per weight layer: index into outputs_
  const Matrix* input_ = nullptr;
  std::vector<Matrix> outputs_;  // outputs_[i]: output of layers_[i]
  std::vector<Matrix> grads_;    // grads_[i]: dL/d(output of layers_[i])
};

}  // namespace snn::conversion
