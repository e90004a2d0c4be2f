#include "snn/conversion/adam.h"

#include "snn/error.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace snn::conversion {

Adam::Adam(const AdamConfig& config, const std::vector<std::size_t>& sizes) : config_(config) {
  if (!(config.learning_rate > 0.0f) || !(config.beta1 >= 0.0f && config.beta1 < 1.0f) ||
      !(config.beta2 >= 0.0f && config.beta2 < 1.0f) || !(config.epsilon >= 0.0f))
    throw Error("invalid Adam settings: lr {} (> 0), beta1 {} and beta2 {} (in [0, 1)), eps {} (>= 0)", config.learning_rate,
                config.beta1, config.beta2, config.epsilon);
  for (std::size_t n : sizes) {
    m_.emplace_back(n, 0.0f);
    v_.emplace_back(n, 0.0f);
  }
}

void Adam::restore(std::size_t steps, std::vector<std::vector<float>> m, std::vector<std::vector<float>> v) {
  if (m.size() != m_.size() || v.size() != v_.size())
    throw Error("Adam::restore: {} and {} moment tensors for {} parameter tensors", m.size(), v.size(), m_.size());
  for (std::size_t k = 0; k < m_.size(); ++k)
    if (m[k].size() != m_[k].size() || v[k].size() != v_[k].size())
      throw Error("Adam::restore: tensor {} has {} and {} moments for {} parameters", k, m[k].size(), v[k].size(), m_[k].size());
  t_ = steps;
  m_ = std::move(m);
  v_ = std::move(v);
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
  std::size_t total = 0;
  for (std::size_t k = 0; k < params.size(); ++k) {
    const std::size_t n = m_[k].size();
    if (params[k].size() != n || grads[k].size() != n)
      throw Error("Adam::step: tensor {} has {} parameters and {} gradients, the state {}", k, params[k].size(), grads[k].size(),
                  n);
    total += n;
  }
  // Updates elements [begin, end) of the concatenation of all tensors. Each
  // element's update is independent of the others, so splitting the range
  // between threads cannot change any result.
  // Captures by value: with references the compiler must assume the stores
  // through p, m, v may change the scalars, and does not vectorise.
  const auto update = [=, this](std::size_t begin, std::size_t end) {
    std::size_t offset = 0;
    for (std::size_t k = 0; k < params.size(); ++k) {
      const std::size_t n = m_[k].size();
      const std::size_t lo = std::max(begin, offset) - offset;
      const std::size_t hi = std::min(end, offset + n) > offset ? std::min(end, offset + n) - offset : 0;
      offset += n;
      if (lo >= hi) continue;
      float* p = params[k].data();
      const float* g = grads[k].data();
      float* m = m_[k].data();
      float* v = v_[k].data();
      // A flat loop the compiler vectorises; memory bound (four float streams).
      for (std::size_t i = lo; i < hi; ++i) {
        const float gi = g[i];
        const float mi = b1 * m[i] + one_minus_b1 * gi;
        const float vi = b2 * v[i] + one_minus_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * (mi / (std::sqrt(vi) / bias2_sqrt + eps));
      }
    }
  };
  // Two threads (the machine's two cores; the BLAS threads are idle between
  // GEMMs) for large steps; a thread start costs tens of microseconds, so
  // small models stay on one.
  if (total >= (std::size_t{1} << 18)) {
    const std::size_t half = total / 2;
    std::thread helper(update, half, total);
    update(0, half);
    helper.join();
  } else {
    update(0, total);
  }
}

}  // namespace snn::conversion
