// The end-to-end pipeline behind `snnsim run` and its sub-steps: dataset ->
// ANN weights (trained, cached or given) -> normalisation -> network ->
// simulation -> report. Each step is a function so `train`, `convert` and
// `simulate` reuse exactly what `run` does.
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

namespace snn::tool {

/// Where trained weights for `config` are cached: <output.cache>/<key>, the key
/// a hash of the training data's bytes and the network and training sections
/// (so changing only simulation or normalisation settings never retrains).
std::filesystem::path weight_cache_dir(const Config& config, const Dataset& train);

/// The training checkpoint's name inside a cache entry (see ann_weights).
inline constexpr const char* kCheckpointFile = "training.ckpt";

/// The ANN weights of `config`: network.weights if given, else the cache entry,
/// else trained now (and cached). `cached` tells which. While training, the
/// cache entry holds a checkpoint (kCheckpointFile) of the last completed
/// epoch, removed once the weights are saved; options.resume continues from it.
WeightSet ann_weights(const Config& config, const DatasetSplits& data, const CommonOptions& options, bool& cached,
                      std::string& source);

/// A copy of `ann` normalised as the config says (already-normalised weights
/// are taken as they are when the method agrees; otherwise an error).
WeightSet normalised_weights(const Config& config, const WeightSet& ann, const Dataset& train,
                             std::vector<std::string>& warnings);

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

/// The spiking network of `weights` with the config's neuron parameters,
/// delays and fan-out format.
Network build_network(const Config& config, const WeightSet& weights);

/// The engine's run options for the config (no progress callback).
engine::RunOptions run_options(const Config& config);

/// Simulates the test split with `weights` and fills `report.snn`.
void simulate_into(const Config& config, const WeightSet& weights, const Dataset& test, const CommonOptions& options,
                   RunReport& report);

/// Writes a report to output.dir: every file into a staging directory first,
/// which then replaces output.dir whole, so an interrupted or failed run never
/// leaves a half-written output directory. Only an earlier report or an empty
/// directory is ever replaced (check_output_writable).
void publish_report(const Config& config, const RunReport& report, const CommonOptions& options);

/// Checks before any work that output.dir can be created and written, and is
/// a directory if it exists. With `replaced_whole` (run, simulate: the report
/// replaces output.dir) also that it is empty or holds an earlier report
/// (results.json), and that neither output.cache, network.weights nor a
/// dataset path lies inside it. Throws snn::Error naming the key.
void check_output_writable(const Config& config, bool replaced_whole);

/// What `snnsim run` does, returning the report (results_json() gives the text
/// of results.json); it is written to output.dir only when `publish` (then
/// the summary table is printed too, unless options.quiet).
RunReport run_report(const std::filesystem::path& config, const CommonOptions& options, bool publish);

int run_command(const std::filesystem::path& config, const CommonOptions& options);
int train_command(const std::filesystem::path& config, const CommonOptions& options);
int convert_command(const std::filesystem::path& config, const CommonOptions& options);
int simulate_command(const std::filesystem::path& config, const CommonOptions& options);

}  // namespace snn::tool
