// Random weights for `snnsim bench --random-weights` / `--random-width N`: the
// config's network (network.hidden or network.layers) with random weights,
// so the simulators can be timed on any shape without training. The engine's
// work depends on how many spikes each population fires, not on what the
// weights learned, so each weighted layer's weights are scaled (one factor per
// layer, found by false position on a log scale on a few training images,
// layer after layer: a layer's rate depends only on the layers before it)
// until the population it feeds fires at a target rate. Accuracy is meaningless with them.
#pragma once

#include "snn/network/dataset.h"
#include "snn/network/weights.h"
#include "snn/tool/config.h"

#include <string>
#include <vector>

namespace snn::tool {

/// What a seed-comparable setting was measured at (shared/reference/
/// seed_pytorch_mnist10k.json: the seed notebook's PyTorch + snntorch loop over
/// the 1996 mnist10k test images, 2 threads, on the project's machine kind).
struct SeedSetting {
  Normalisation method;
  Step steps;
  double spikes[3];  ///< per image: hidden 1 (1200), hidden 2 (1200), output (10)
  double seconds;    ///< the seed's wall time for the 1996 images
};

/// The seed's run for this config's normalisation method and steps, if the
/// config is the seed's network (784-1200-1200-10 MLP on mnist10k); else null.
const SeedSetting* seed_setting(const Config& config);

struct RandomWeights {
  WeightSet weights;            ///< scaled, not normalised (normalisation.method none)
  std::vector<double> scales;   ///< the factor of each weighted layer
  std::vector<double> target;   ///< spikes per neuron and step wanted of the population each feeds
  std::vector<double> reached;  ///< and reached on the tuning images
  std::size_t tune_samples = 0;
  double seconds = 0;  ///< time the tuning took
  std::string rule;    ///< how the targets were chosen, for the output
};

/// Random weights for `config`'s network on `train`'s images, seeded by
/// training.seed: dense layers U(-1, 1), conv layers (and every layer of a
/// net that has one) U(-1, 1) + 0.3 so that the few inputs of a kernel can
/// drive it; then scaled per layer until each weighted layer's population
/// fires `rate` spikes per neuron and step on the first `tune_samples`
/// training images (rate 0: for an MLP with two hidden layers, the spikes per
/// neuron and step of the seed's run with the config's normalisation method,
/// none, model or data; else 0.05).
RandomWeights random_weights(const Config& config, const Dataset& train, std::size_t tune_samples, double rate);

}  // namespace snn::tool
