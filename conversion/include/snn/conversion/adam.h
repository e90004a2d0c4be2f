// Adam (Kingma & Ba 2015) exactly as torch.optim.Adam computes it (PyTorch
// 1.13, single-tensor path, no weight decay, no amsgrad):
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// with the bias corrections computed in double and applied as float scalars.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace snn::conversion {

struct AdamConfig {
  float learning_rate = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
};

class Adam {
 public:
  /// One moment pair per parameter tensor, sized as given; all zero.
  Adam(const AdamConfig& config, const std::vector<std::size_t>& sizes);
  /// One optimiser step over every tensor: params[i] updated from grads[i].
  void step(const std::vector<std::span<float>>& params, const std::vector<std::span<const float>>& grads);
  std::size_t steps() const { return t_; }
  const AdamConfig& config() const { return config_; }
  /// The moment estimates m (first) and v (second), one vector per tensor.
  const std::vector<std::vector<float>>& first_moments() const { return m_; }
  const std::vector<std::vector<float>>& second_moments() const { return v_; }
  /// Continues from a saved state (a training checkpoint): `steps` taken so
  /// far and the moments then. Throws snn::Error unless the moments have the
  /// sizes this optimiser was made with.
  void restore(std::size_t steps, std::vector<std::vector<float>> m, std::vector<std::vector<float>> v);

 private:
  AdamConfig config_;
  std::size_t t_ = 0;
  std::vector<std::vector<float>> m_;
  std::vector<std::vector<float>> v_;
};

}  // namespace snn::conversion
