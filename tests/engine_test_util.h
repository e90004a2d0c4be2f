// Helpers shared by the engine and dense-simulator tests: random networks and
// inputs, and a plain time-stepped reference simulator written independently
// of engine/ (its own quantisation, current sums, neuron update and readout;
// only the encoder's random draw is shared, and test_encoder checks that).
#pragma once

#include "snn/engine/encoder.h"
#include "snn/engine/run.h"
#include "snn/network/network.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace snn::test {

/// Spike times of one neuron in a recorded train.
inline std::vector<Step> spike_times(const std::vector<engine::SpikeEvent>& train, PopulationId pop, NeuronId n) {
  std::vector<Step> t;
  for (const auto& e : train)
    if (e.population == pop && e.neuron == n) t.push_back(e.step);
  return t;
}

/// One always-spiking input (byte 255 at p = x): the hand-worked cases.
struct AlwaysOnInput {
  std::vector<std::uint8_t> values;
  std::vector<std::uint8_t> labels;
  explicit AlwaysOnInput(std::size_t n) : values(n, 255), labels(1, 0) {}
  engine::SampleSet set() const { return {1, values.size(), values, labels}; }
};

inline engine::RunOptions hand_options(Step steps) {
  engine::RunOptions o;
  o.steps = steps;
  o.input.max_rate = 1000.0;
  o.input.dt = 0.001;  // p = x: byte 255 spikes at every step
  o.threads = 1;
  o.record_spikes = true;
  return o;
}

/// What the reference computes for one sample.
struct ReferenceResult {
  std::vector<engine::SpikeEvent> train;
  std::vector<std::uint32_t> counts;
  std::vector<std::uint16_t> step_predictions;
  std::vector<OpCount> synops;  // per connection
  std::vector<std::uint64_t> pop_spikes;
};

/// A deliberately plain simulator of the semantics in docs/design.md and
/// engine/neuron.h: dense int64 current sums over every source each step, a
/// full history of spikes, scalar neuron update, argmax readout. Quantises by
/// itself with k bits per target population (`bits[c]`, from the engine's
/// report, whose choice is tested separately).
inline ReferenceResult reference_run(const Network& net, const std::vector<int>& bits, const engine::SampleSet& set,
                                     std::size_t sample, const engine::RunOptions& o) {
  const std::size_t P = net.populations().size();
  const std::size_t L = net.connection_count();
  const Step T = o.steps;
  // Quantised [out][in] weights, integer units.
  std::vector<std::vector<std::int64_t>> w(L);
  std::vector<std::int64_t> theta(P, 0);
  for (std::size_t c = 0; c < L; ++c) {
    const Matrix m = net.connection(c).to_matrix();
    const double th = net.population(c + 1).params.threshold;
    theta[c + 1] = std::int64_t{1} << bits[c];
    w[c].resize(m.data.size());
    for (std::size_t k = 0; k < m.data.size(); ++k)
      w[c][k] = std::llround(static_cast<double>(m.data[k]) * std::ldexp(1.0, bits[c]) / th);
  }
  // spiked[p][t][n]
  std::vector<std::vector<std::vector<char>>> spiked(P);
  for (std::size_t p = 0; p < P; ++p) spiked[p].assign(static_cast<std::size_t>(T), std::vector<char>(net.population(p).size, 0));
  std::vector<std::vector<std::int64_t>> v(P), ref(P);
  for (std::size_t p = 1; p < P; ++p) {
    v[p].assign(net.population(p).size, 0);
    ref[p].assign(net.population(p).size, 0);
  }
  const std::uint8_t* x = set.sample(sample);
  const double rate = o.input.rate_per_step();
  ReferenceResult r;
  r.counts.assign(net.output_size(), 0);
  r.synops.assign(L, 0);
  r.pop_spikes.assign(P, 0);
  const bool analog = o.input.encoding == engine::Encoding::Analog;
  for (Step t = 0; t < T; ++t) {
    const auto ti = static_cast<std::size_t>(t);
    if (!analog) {
      for (std::size_t i = 0; i < net.input_size(); ++i) {
        const double p = x[i] / 255.0 * rate;
        bool s = false;
        if (p >= 1.0)
          s = true;
        else if (p > 0.0)
          s = engine::input_spikes(o.input.seed, static_cast<SampleId>(sample), t, static_cast<NeuronId>(i),
                                   static_cast<std::uint64_t>(std::ldexp(p, 32)));
        spiked[0][ti][i] = s;
        if (s) {
          r.train.push_back({t, 0, static_cast<NeuronId>(i)});
          ++r.pop_spikes[0];
        }
      }
    }
    for (std::size_t p = 1; p < P; ++p) {
      const std::size_t c = p - 1;
      const std::size_t n_in = net.population(c).size, n_out = net.population(p).size;
      const Step d = net.connection(c).delay();
      const NeuronParams& np = net.population(p).params;
      std::vector<std::int64_t> cur(n_out, 0);
      if (t - d >= 0) {
        for (std::size_t i = 0; i < n_in; ++i) {
          if (analog && c == 0) {
            if (x[i] == 0) continue;
            r.synops[c] += net.connection(c).fan_out(i);
          } else {
            if (!spiked[c][static_cast<std::size_t>(t - d)][i]) continue;
            r.synops[c] += net.connection(c).fan_out(i);
          }
          for (std::size_t j = 0; j < n_out; ++j) cur[j] += (analog && c == 0 ? x[i] : 1) * w[c][j * n_in + i];
        }
        if (analog && c == 0)
          for (auto& s : cur) s = s >= 0 ? (s + 127) / 255 : -((-s + 127) / 255);
      }
      // Biases: a constant current every step, quantised like the weights.
      const auto& bias = net.population(p).bias;
      for (std::size_t j = 0; j < bias.size(); ++j)
        cur[j] += std::llround(static_cast<double>(bias[j]) * std::ldexp(1.0, bits[c]) / net.population(p).params.threshold);
      const std::int64_t beta_q = std::llround(np.beta * 1073741824.0);
      for (std::size_t j = 0; j < n_out; ++j) {
        if (ref[p][j] > 0) {
          --ref[p][j];
          continue;
        }
        std::int64_t vv = v[p][j];
        if (np.beta != 1.0) {
          // round(v * beta) as floor((v * beta_q + 2^29) / 2^30), floor division spelt out
          const std::int64_t a = vv * beta_q + (std::int64_t{1} << 29), b = std::int64_t{1} << 30;
          vv = a / b - ((a % b != 0 && a < 0) ? 1 : 0);
        }
        vv += cur[j];
        if (vv > theta[p]) {
          spiked[p][ti][j] = 1;
          r.train.push_back({t, static_cast<PopulationId>(p), static_cast<NeuronId>(j)});
          ++r.pop_spikes[p];
          if (p == P - 1) ++r.counts[j];
          vv = np.reset == ResetMode::Subtract ? vv - theta[p] : 0;
          ref[p][j] = np.refractory;
        }
        v[p][j] = vv;
      }
    }
    std::size_t best = 0;
    for (std::size_t k = 1; k < r.counts.size(); ++k) {
      const bool more = r.counts[k] > r.counts[best];
      const bool tie_higher = o.tie_break_by_potential && r.counts[k] == r.counts[best] && v[P - 1][k] > v[P - 1][best];
      if (more || tie_higher) best = k;
    }
    r.step_predictions.push_back(static_cast<std::uint16_t>(best));
  }
  return r;
}

/// Random input bytes with MNIST-like structure: many zeros, some saturated.
inline std::vector<std::uint8_t> random_inputs(std::mt19937_64& rng, std::size_t count, std::size_t size) {
  std::vector<std::uint8_t> v(count * size);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (auto& b : v) {
    const double r = u(rng);
    b = r < 0.5 ? 0 : (r < 0.7 ? 255 : static_cast<std::uint8_t>(u(rng) * 256.0));
  }
  return v;
}

/// A random [out, in] matrix with mean `mean` and spread `spread`, in model units.
inline Matrix random_matrix(std::mt19937_64& rng, std::size_t out, std::size_t in, double mean, double spread) {
  Matrix m(out, in);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (auto& w : m.data) w = static_cast<float>(mean + spread * u(rng));
  return m;
}

/// Random weights of one layer of random_mlp: mean and spread (model units).
struct WeightDraw {
  double mean, spread;
};

/// A sizes[0]-sizes[1]-sizes[2]-sizes[3] network of `format` connections
/// (sparse: weights below `cutoff` dropped), default neurons, the second
/// connection with delay 1; connection l's weights random_matrix(rng, ...,
/// draws[l]), drawn in that order.
inline Network random_mlp(std::mt19937_64& rng, FanOutFormat format, double cutoff, const std::size_t (&sizes)[4],
                          const WeightDraw (&draws)[3]) {
  Network net(sizes[0]);
  ConnectionSpec spec;
  spec.format = format;
  spec.cutoff = format == FanOutFormat::Sparse ? cutoff : 0.0;
  for (std::size_t l = 0; l < 3; ++l) {
    spec.delay = l == 1 ? 1 : 0;
    net.add_layer(random_matrix(rng, sizes[l + 1], sizes[l], draws[l].mean, draws[l].spread), NeuronParams{}, spec);
  }
  return net;
}

/// Network::from_layers for `layers` on input `in`, every weighted layer with
/// random weights that make it spike (mean 2 / fan-in, spread 3 / fan-in), and
/// per spiking layer l (the k-th) the neuron parameters and connection spec
/// `spiking(l, k)` returns (a std::pair), asked after that layer's weights are
/// drawn. `layers` must tile `in` (infer_shapes).
template <typename Spiking>
Network random_layered_network(std::mt19937_64& rng, const Shape& in, const std::vector<LayerSpec>& layers, Spiking&& spiking) {
  const std::vector<Shape> shapes = infer_shapes(in, layers);
  std::vector<Matrix> weights;
  std::vector<NeuronParams> params;
  std::vector<ConnectionSpec> specs;
  Shape s = in;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& l = layers[i];
    if (l.has_weights()) {
      const auto ws = weight_shape(l, s);
      const std::size_t cols = l.kind == LayerKind::Conv ? ws[1] * ws[2] * ws[3] : ws[1];
      weights.push_back(random_matrix(rng, ws[0], cols, 2.0 / static_cast<double>(cols), 3.0 / static_cast<double>(cols)));
    }
    if (l.spiking()) {
      auto [p, spec] = spiking(l, params.size());
      params.push_back(p);
      specs.push_back(spec);
    }
    s = shapes[i];
  }
  return Network::from_layers(in, layers, weights, params, specs);
}

/// Every per-sample field that says what the network did is equal in `a` and
/// `b` (the work done is compared only when both came from the same simulator).
inline void require_same_run(const engine::RunResult& a, const engine::RunResult& b, bool same_simulator) {
  REQUIRE(a.spike_trains == b.spike_trains);
  REQUIRE(a.output_counts == b.output_counts);
  REQUIRE(a.step_predictions == b.step_predictions);
  REQUIRE(a.predictions == b.predictions);
  REQUIRE(a.population_spikes == b.population_spikes);
  REQUIRE(a.synops == b.synops);
  REQUIRE(a.step_synops == b.step_synops);
  REQUIRE(a.steps_simulated == b.steps_simulated);
  REQUIRE(a.exit_step == b.exit_step);
  REQUIRE(a.exit_predictions == b.exit_predictions);
  REQUIRE(a.synops_at_exit == b.synops_at_exit);
  REQUIRE(a.bias_ops == b.bias_ops);
  if (same_simulator) REQUIRE(a.work == b.work);
}

}  // namespace snn::test
