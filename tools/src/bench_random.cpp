#include "snn/tool/bench_random.h"

#include "snn/engine/engine.h"
#include "snn/error.h"
#include "snn/tool/pipeline.h"
#include "snn/tool/weight_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

namespace snn::tool {

namespace {

// The seed's three SNN runs (shared/reference/seed_pytorch_mnist10k.json).
constexpr SeedSetting kSeed[] = {
    {Normalisation::None, 100, {2617.5, 2143.4, 43.4}, 33.17},
    {Normalisation::Model, 200, {3517.9, 1087.3, 295.5}, 73.06},
    {Normalisation::Data, 200, {4795.7, 11381.3, 140.2}, 72.02},
};

const SeedSetting* seed_rates(const Config& c) {
  for (const SeedSetting& s : kSeed)
    if (s.method == c.normalisation.method) return &s;
  return nullptr;
}

// The weights with layer l multiplied by scales[l].
WeightSet scaled(const WeightSet& base, const std::vector<double>& scales) {
  WeightSet w = base;
  for (std::size_t l = 0; l < w.layers.size(); ++l)
    for (float& x : w.layers[l].data) x = static_cast<float>(x * scales[l]);
  return w;
}

// Spikes per neuron and step of population `pop`, or +infinity when the
// weights are so strong that the potentials leave the fixed-point range.
double rate_of(const Config& c, const WeightSet& w, const engine::SampleSet& tuning, const engine::RunOptions& ro,
               std::size_t pop) {
  try {
    const Network net = build_network(c, w);
    const engine::Engine e(net, c.simulation.fixed_point_bits, c.simulation.weight_bits);
    const auto spikes = e.run(tuning, ro).spikes_per_population();
    return static_cast<double>(spikes[pop]) /
           (static_cast<double>(tuning.count) * static_cast<double>(ro.steps) * static_cast<double>(net.population(pop).size));
  } catch (const Error&) { return HUGE_VAL; }
}

}  // namespace

const SeedSetting* seed_setting(const Config& c) {
  const SeedSetting* s = seed_rates(c);
  const bool seed_net = c.network.layers.empty() && c.network.hidden == std::vector<int>{1200, 1200} &&
                        c.dataset.name == "mnist10k" && c.dataset.classes == 10;
  return seed_net && s && s->steps == c.simulation.steps ? s : nullptr;
}

RandomWeights random_weights(const Config& c, const Dataset& train, std::size_t tune_samples, double rate) {
  if (!c.network.model.empty())
    throw Error(
        "random weights are drawn for network.hidden or network.layers, but this config takes its network from "
        "network.model '{}'; drop --random-weights or network.model",
        c.network.model);
  if (!c.network.weights.empty())
    throw Error(
        "random weights are drawn for network.hidden or network.layers, but this config takes its weights from "
        "network.weights '{}'; drop --random-weights or network.weights",
        c.network.weights);
  if (tune_samples == 0 || tune_samples > train.count)
    throw Error("--tune-samples {}: must be between 1 and the {} training images", tune_samples, train.count);
  const auto t0 = std::chrono::steady_clock::now();
  const conversion::NetworkSpec spec = network_spec(c, train);
  RandomWeights out;
  WeightSet& base = out.weights;
  base.input = spec.input;
  if (!c.network.layers.empty()) base.architecture = spec.layers;
  const bool has_conv =
      std::any_of(spec.layers.begin(), spec.layers.end(), [](const LayerSpec& l) { return l.kind == LayerKind::Conv; });
  const float offset = has_conv ? 0.3f : 0.0f;
  std::mt19937_64 rng(c.training.seed + 1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  // Each weighted layer's matrix, and the population it feeds (0 is the input).
  const std::vector<Shape> shapes = infer_shapes(spec.input, spec.layers);
  std::vector<std::size_t> feeds;
  std::size_t pop = 0;
  for (std::size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    pop += l.spiking();
    if (!l.has_weights()) continue;
    const auto ws = weight_shape(l, i == 0 ? spec.input : shapes[i - 1]);
    std::size_t cols = 1;
    for (std::size_t d = 1; d < ws.size(); ++d) cols *= ws[d];
    Matrix m(ws[0], cols);
    for (float& x : m.data) x = u(rng) + offset;
    base.layers.push_back(std::move(m));
    feeds.push_back(pop);
  }

  const SeedSetting* seed = seed_rates(c);
  const bool seed_shape = c.network.layers.empty() && c.network.hidden.size() == 2;
  for (std::size_t l = 0; l < feeds.size(); ++l) {
    const double width = l + 1 < feeds.size() ? 1200.0 : 10.0;
    out.target.push_back(rate > 0 || !seed_shape || !seed ? (rate > 0 ? rate : 0.05)
                                                          : seed->spikes[l] / width / static_cast<double>(seed->steps));
  }
  out.rule = rate > 0             ? fmt::format("--random-rate {}", rate)
             : seed_shape && seed ? fmt::format("the seed's {}-normalised run", to_string(seed->method))
                                  : "0.05 (the default where no seed run has this shape and normalisation)";

  // Layer by layer; the layers after the one being tuned stay weak (they do
  // not change its rate, and silent layers simulate fast).
  engine::RunOptions ro = run_options(c);
  ro.early_exit.enabled = false;
  const engine::SampleSet tuning = engine::SampleSet::of(train, 0, tune_samples);
  out.tune_samples = tuning.count;
  out.scales.assign(feeds.size(), 1e-6);
  for (std::size_t l = 0; l < feeds.size(); ++l) {
    double lo = 1e-5, hi = 10.0;
    for (int it = 0; it < 13; ++it) {  // 13 halvings of ln(1e6): the scale to 0.2 %
      const double mid = std::sqrt(lo * hi);
      out.scales[l] = mid;
      (rate_of(c, scaled(base, out.scales), tuning, ro, feeds[l]) < out.target[l] ? lo : hi) = mid;
    }
    out.scales[l] = std::sqrt(lo * hi);
    out.reached.push_back(rate_of(c, scaled(base, out.scales), tuning, ro, feeds[l]));
  }
  base = scaled(base, out.scales);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace snn::tool
