#include "snn/conversion/adam.h"

#include "snn/error.h"

#include <cmath>

namespace snn::conversion {

Adam::Adam(const AdamConfig& config, const std::vector<std::size_t>& sizes) : config_(config) {
  if (!(config.learning_rate > 0.0f) || !(config.beta1 >= 0.0f && config.beta1 < 1.0f) || !(config.beta2 >= 0.0f && config.beta2 < 1.0f) ||
      !(config.epsilon >= 0.0f))
    throw Error("invalid Adam settings: lr {} (> 0), beta1 {} and beta2 {} (in [0, 1)), eps {} (>= 0)", config.learning_rate,
                config.beta1, config.beta2, config.epsilon);
  for (std::size_t n : sizes) {
    m_.emplace_back(n, 0.0f);
    v_.emplace_back(n, 0.0f);
  }
}

void Adam::step(const std::vector<std::span<float>>& params, const std::vector<std::span<const float>>& grads) {
  if (params.size() != m_.size() || grads.size() != m_.size())
    throw Error("Adam::step: {} parameter and {} gradient tensors for {} states", params.size(), grads.size(), m_.size());
  ++t_;
  const double t = static_cast<double>(t_);
  const double bias1 = 1.0 - std::pow(static_cast<double>(config_.beta1), t);
  const double bias2 = 1.0 - std::pow(static_cast<double>(config_.beta2), t);
  const float step_size = static_cast<float>(static_cast<double>(config_.learning_rate) / bias1);
  const float bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  const float b1 = config_.beta1;
  const float b2 = config_.beta2;
  const float one_minus_b1 = 1.0f - b1;
  const float one_minus_b2 = 1.0f - b2;
  const float eps = config_.epsilon;
  for (std::size_t k = 0; k < params.size(); ++k) {
    float* p = params[k].data();
    const float* g = grads[k].data();
    float* m = m_[k].data();
    float* v = v_[k].data();
    const std::size_t n = m_[k].size();
    if (params[k].size() != n || grads[k].size() != n)
      throw Error("Adam::step: tensor {} has {} parameters and {} gradients, the state {}", k, params[k].size(), grads[k].size(), n);
    // One flat pass per tensor, vectorised by the compiler; this is memory
    // bound (four float streams) and small next to the GEMMs.
    for (std::size_t i = 0; i < n; ++i) {
      const float gi = g[i];
      const float mi = b1 * m[i] + one_minus_b1 * gi;
      const float vi = b2 * v[i] + one_minus_b2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] -= step_size * (mi / (std::sqrt(vi) / bias2_sqrt + eps));
    }
  }
}

}  // namespace snn::conversion
