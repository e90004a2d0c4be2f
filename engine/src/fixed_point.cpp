#include "snn/engine/fixed_point.h"

#include "snn/error.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>

namespace snn::engine {

namespace {

// The weights of one connection as (source, target, w) in fan-out order,
// whatever the table format, so quantisation handles both formats alike.
template <typename F>
void for_each_synapse(const Connection& conn, F&& f) {
  if (conn.format() == FanOutFormat::Dense) {
    const DenseFanOut& d = conn.dense();
    for (std::size_t s = 0; s < d.sources; ++s) {
      const Weight* row = d.row(s);
      for (std::size_t t = 0; t < d.targets; ++t) f(s, t, row[t]);
    }
  } else {
    const SparseFanOut& sp = conn.sparse();
    for (std::size_t s = 0; s < sp.sources; ++s)
      for (std::uint64_t e = sp.offsets[s]; e < sp.offsets[s + 1]; ++e) f(s, sp.target_ids[e], sp.weights[e]);
  }
}

// Quantised weights for k bits, or nothing when some target's sum |w_q|
// reaches kExactSumLimit (then a smaller k is tried).
std::optional<std::vector<FixedWeight>> quantise(const Connection& conn, double theta, int bits,
                                                 std::int64_t& max_sum) {
  const double scale = std::ldexp(1.0, bits) / theta;
  std::vector<FixedWeight> q;
  q.reserve(conn.synapses());
  std::vector<std::int64_t> sums(conn.target_size(), 0);
  bool too_large = false;
  for_each_synapse(conn, [&](std::size_t, std::size_t t, Weight w) {
    const double x = static_cast<double>(w) * scale;
    if (too_large || std::fabs(x) >= static_cast<double>(kExactSumLimit)) {
      too_large = true;
      return;
    }
    const auto v = static_cast<FixedWeight>(std::llround(x));
    q.push_back(v);
    sums[t] += std::abs(static_cast<std::int64_t>(v));
  });
  if (too_large) return std::nullopt;
  max_sum = sums.empty() ? 0 : *std::max_element(sums.begin(), sums.end());
  if (max_sum >= kExactSumLimit) return std::nullopt;
  return q;
}

}  // namespace

FixedNetwork::FixedNetwork(const Network& network, int bits) {
  if (bits < 0 || bits > kMaxFixedPointBits)
    throw Error("fixed-point bits must be in 0 .. {}, got {}", kMaxFixedPointBits, bits);
  for (const Population& pop : network.populations()) sizes_.push_back(pop.size);
  params_.resize(sizes_.size());
  for (std::size_t c = 0; c < network.layers(); ++c) {
    const Connection& conn = network.connection(c);
    const PopulationId target = conn.target();
    const Population& pop = network.population(target);
    const double theta = pop.params.threshold;

    int k = bits;
    std::int64_t max_sum = 0;
    std::optional<std::vector<FixedWeight>> q;
    for (; k >= 0; --k) {
      q = quantise(conn, theta, k, max_sum);
      if (q) break;
    }
    if (!q)
      throw Error(
          "population {} ('{}'): weights too large for fixed point: even with 0 bits (unit = theta = {}) "
          "some neuron's sum of |w| over its inputs reaches 2^24 units",
          target, pop.name, theta);

    QuantisationReport rep;
    rep.target = target;
    rep.requested_bits = bits;
    rep.bits = k;
    rep.unit = theta / std::ldexp(1.0, k);
    rep.max_fan_in_sum = max_sum;
    double sq = 0.0;
    double max_w = 0.0;
    std::size_t i = 0;
    for_each_synapse(conn, [&](std::size_t, std::size_t, Weight w) {
      const double err = std::fabs(static_cast<double>(w) - static_cast<double>((*q)[i]) * rep.unit);
      rep.max_abs_error = std::max(rep.max_abs_error, err);
      sq += err * err;
      max_w = std::max(max_w, std::fabs(static_cast<double>(w)));
      if (w != 0.0f && (*q)[i] == 0) ++rep.zeroed;
      ++i;
    });
    rep.rms_error = i ? std::sqrt(sq / static_cast<double>(i)) : 0.0;
    rep.max_relative_error = max_w > 0.0 ? rep.max_abs_error / max_w : 0.0;
    reports_.push_back(rep);

    FixedNeuronParams fp;
    fp.threshold = Potential{1} << k;
    fp.reset = pop.params.reset;
    fp.beta = pop.params.beta == 1.0 ? kBetaOne : std::llround(pop.params.beta * static_cast<double>(kBetaOne));
    fp.refractory = pop.params.refractory;
    params_[target] = fp;

    FixedConnection fc;
    fc.source = conn.source();
    fc.delay = conn.delay();
    fc.format = conn.format();
    fc.sources = conn.source_size();
    fc.targets = conn.target_size();
    fc.weights = std::move(*q);
    fc.fan_out.resize(fc.sources);
    if (fc.format == FanOutFormat::Sparse) {
      const SparseFanOut& sp = conn.sparse();
      fc.offsets.assign(sp.offsets.begin(), sp.offsets.end());
      fc.target_ids.assign(sp.target_ids.begin(), sp.target_ids.end());
      for (std::size_t s = 0; s < fc.sources; ++s) fc.fan_out[s] = static_cast<std::uint32_t>(sp.row_size(s));
    } else {
      std::fill(fc.fan_out.begin(), fc.fan_out.end(), static_cast<std::uint32_t>(fc.targets));
    }
    max_delay_ = std::max(max_delay_, fc.delay);
    connections_.push_back(std::move(fc));
  }
}

std::vector<float> FixedNetwork::dense_float_weights(std::size_t c) const {
  const FixedConnection& fc = connections_.at(c);
  std::vector<float> w(fc.sources * fc.targets, 0.0f);
  if (fc.format == FanOutFormat::Dense) {
    // |w_q| < 2^24: exactly representable as float.
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(fc.weights[i]);
  } else {
    for (std::size_t s = 0; s < fc.sources; ++s)
      for (std::uint64_t e = fc.offsets[s]; e < fc.offsets[s + 1]; ++e)
        w[s * fc.targets + fc.target_ids[e]] = static_cast<float>(fc.weights[e]);
  }
  return w;
}

std::size_t FixedNetwork::bytes() const {
  std::size_t b = 0;
  for (const FixedConnection& fc : connections_)
    b += fc.weights.size() * sizeof(FixedWeight) + fc.offsets.size() * sizeof(std::uint64_t) +
         fc.target_ids.size() * sizeof(NeuronId) + fc.fan_out.size() * sizeof(std::uint32_t);
  return b;
}

}  // namespace snn::engine
