// The steps behind `snnsim run` and its sub-commands: config + dataset ->
// ANN weights (weight_cache.h) -> normalisation -> network -> simulation ->
// report (report_mapping.h, written by output_dir.h). Each step is a function
// so `train`, `convert`, `simulate` and `bench` reuse exactly what `run` does.
#pragma once

#include "snn/engine/run.h"
#include "snn/network/dataset.h"
#include "snn/network/network.h"
#include "snn/network/weights.h"
#include "snn/tool/commands.h"
#include "snn/tool/config.h"
#include "snn/tool/report.h"

#include <filesystem>
#include <string>
#include <vector>

namespace snn::tool {

/// A config read and checked, and its dataset loaded.
struct Prepared {
  Config config;
  DatasetSplits data;
};
/// Reads the config with the options' overrides, prints its warnings, checks
/// (when `needs_output`) that output.dir is writable (and, when
/// `replaces_output`, that it may be replaced: check_output_writable), and
/// loads the dataset.
Prepared prepare(const std::filesystem::path& config, const CommonOptions& options, bool needs_output,
                 bool replaces_output = true);
/// The same for a config already read with the options' overrides (a command
/// that had to read it first, to check an override of its own, reads it once).
Prepared prepare(Config config, const CommonOptions& options, bool needs_output, bool replaces_output = true);

/// Weights after normalisation, and what is worth saying about them.
struct NormalisedWeights {
  WeightSet weights;
  std::vector<std::string> warnings;
};
/// A copy of `ann` normalised as the config says (already-normalised weights
/// are taken as they are when the method agrees; otherwise an error).
NormalisedWeights normalised_weights(const Config& config, const WeightSet& ann, const Dataset& train);

/// The spiking network of `weights` with the config's neuron parameters,
/// delays and fan-out format.
Network build_network(const Config& config, const WeightSet& weights);

/// The engine's run options for the config (no progress callback).
engine::RunOptions run_options(const Config& config);

/// Simulates the test split (its first simulation.limit samples) with
/// `weights`, showing progress unless quiet.
SnnReport simulate(const Config& config, const WeightSet& weights, const Dataset& test, const CommonOptions& options);

}  // namespace snn::tool
