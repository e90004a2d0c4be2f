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

// The network up to weighted layer `l` (the layers after it do not change its
// rate: leaving them out makes each tuning step cheap), its weights scaled,
// and the config's per-population lists cut to match.
struct Prefix {
  Config config;
  WeightSet weights;
};
Prefix prefix(const Config& c, const WeightSet& base, const std::vector<double>& scales, std::size_t l, std::size_t spec_end,
              std::size_t populations) {
  Prefix p{c, {}};
  auto& sim = p.config.simulation;
  if (sim.threshold.size() > 1) sim.threshold.resize(populations);
  if (sim.delays.size() > 1) sim.delays.resize(populations);
  p.weights.input = base.input;
  if (!base.architecture.empty())
    p.weights.architecture.assign(base.architecture.begin(), base.architecture.begin() + static_cast<std::ptrdiff_t>(spec_end));
  for (std::size_t k = 0; k <= l; ++k) {
    Matrix m = base.layers[k];
    for (float& x : m.data) x = static_cast<float>(x * scales[k]);
    p.weights.layers.push_back(std::move(m));
  }
  return p;
}

// Spikes per neuron and step of the last population of `p`, or +infinity when
// the weights are so strong that the potentials leave the fixed-point range.
double rate_of(const Prefix& p, const engine::SampleSet& tuning, const engine::RunOptions& ro) {
  try {
    const Network net = build_network(p.config, p.weights);
    const engine::Engine e(net, p.config.simulation.fixed_point_bits, p.config.simulation.weight_bits);
    const auto spikes = e.run(tuning, ro).spikes_per_population();
    const std::size_t last = net.populations().size() - 1;
    return static_cast<double>(spikes[last]) /
           (static_cast<double>(tuning.count) * static_cast<double>(ro.steps) * static_cast<double>(net.population(last).size));
  } catch (const Error&) { return HUGE_VAL; }
}

// The scale (in [1e-5, 10]) at which `rate(scale)` is `target` to 0.2 %, or
// the closest found: in log-log space the rate is smooth and monotone, so
// false position (Illinois) takes a few steps where bisection takes 13;
// bisection while an end's rate is still 0 or infinite. Returns the scale and
// the rate reached.
template <typename Rate>
std::pair<double, double> solve_scale(Rate rate, double target) {
  double xlo = std::log(1e-5), xhi = std::log(10.0);
  double flo = -HUGE_VAL, fhi = HUGE_VAL;
  int side = 0;
  std::pair<double, double> best{std::exp(0.5 * (xlo + xhi)), 0.0};
  for (int it = 0; it < 30 && xhi - xlo > 1e-3; ++it) {
    double x = 0.5 * (xlo + xhi);
    if (std::isfinite(flo) && std::isfinite(fhi)) {
      const double w = xhi - xlo;
      x = std::clamp(xlo - flo * w / (fhi - flo), xlo + 0.02 * w, xhi - 0.02 * w);
    }
    const double r = rate(std::exp(x));
    if (std::abs(r / target - 1) < std::abs(best.second / target - 1)) best = {std::exp(x), r};
    if (std::abs(r / target - 1) < 2e-3) break;
    const double f = r > 0 ? std::log(r / target) : -HUGE_VAL;
    if (f < 0) {
      xlo = x, flo = f;
      if (side < 0 && std::isfinite(fhi)) fhi /= 2;  // Illinois: the stale end's weight halves
      side = -1;
    } else {
      xhi = x, fhi = f;
      if (side > 0 && std::isfinite(flo)) flo /= 2;
      side = 1;
    }
  }
  return best;
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
  // Each weighted layer's matrix, the population it feeds (0 is the input)
  // and the end of its prefix of the layer list.
  const std::vector<Shape> shapes = infer_shapes(spec.input, spec.layers);
  std::vector<std::size_t> feeds, ends;
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
    ends.push_back(i + 1);
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

  // Layer by layer: a layer's rate depends only on the layers before it.
  engine::RunOptions ro = run_options(c);
  ro.early_exit.enabled = false;
  const engine::SampleSet tuning = engine::SampleSet::of(train, 0, tune_samples);
  out.tune_samples = tuning.count;
  out.scales.assign(feeds.size(), 1.0);
  for (std::size_t l = 0; l < feeds.size(); ++l) {
    const auto [scale, reached] = solve_scale(
        [&](double s) {
          out.scales[l] = s;
          return rate_of(prefix(c, base, out.scales, l, ends[l], feeds[l]), tuning, ro);
        },
        out.target[l]);
    out.scales[l] = scale;
    out.reached.push_back(reached);
  }
  for (std::size_t l = 0; l < base.layers.size(); ++l)
    for (float& x : base.layers[l].data) x = static_cast<float>(x * out.scales[l]);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace snn::tool
