// A run's configuration: one TOML file, plus `--set key=value` overrides.
// Every key is defined once, in the table of config_keys.cpp (name, type,
// default, range, meaning); parsing, validation, config.resolved.toml and the
// table of docs/config.md all come from it. The whole file is parsed into a temporary,
// checked, and only then returned (NEST's set_status discipline): unknown keys
// (with a did-you-mean), wrong types and impossible values are all reported
// together in one snn::Error naming the file, the key and its line.
#pragma once

#include "snn/conversion/model.h"
#include "snn/engine/encoder.h"
#include "snn/network/layer_spec.h"
#include "snn/network/network.h"
#include "snn/network/weights.h"
#include "snn/types.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace snn::tool {

struct DatasetConfig {
  std::string name = "mnist10k";  ///< a name under data_dir(), or a directory path
  int classes = 10;
};

struct NetworkConfig {
  std::vector<int> hidden = {1200, 1200};  ///< hidden layer widths; input and output come from the dataset
  std::string weights;                     ///< a weight manifest to load instead of training (empty: train)
  /// An ONNX file (docs/models.md) whose layers, weights and biases are the
  /// ANN, instead of training or network.weights (empty: none).
  std::string model;
  /// The architecture as layer specs (conv nets), checked against a 1x28x28
  /// input and dataset.classes when read. Non-empty: it replaces `hidden`.
  std::vector<LayerSpec> layers;
};

struct TrainingConfig {
  int epochs = 15;
  int batch_size = 100;
  double learning_rate = 1e-3;
  double dropout = 0.5;                               ///< drop probability after each hidden layer, in [0, 1)
  conversion::Init init = conversion::Init::Uniform;  ///< how initial weights are drawn
  double init_range = 0.1;                            ///< uniform init: weights start uniform in [-init_range, init_range]
  bool bias = false;                                  ///< a trained bias per dense/conv output (a constant current in the SNN)
  conversion::DropoutAt dropout_at = conversion::DropoutAt::Hidden;  ///< which hidden layers dropout follows
  bool output_relu = true;                                           ///< ReLU on the logits while training (the seed does)
  int limit = 0;                                                     ///< training samples used (0: all)
  std::uint64_t seed = 0;
};

struct NormalisationConfig {
  Normalisation method = Normalisation::Data;
  double percentile = 99.9;          ///< robust only: percentile of non-zero activations, in (0, 100]
  std::optional<bool> include_last;  ///< unset: model false, data/robust true (Diehl et al.)
  int samples = 0;                   ///< training samples used for data/robust (0: all)
};

using engine::Encoding;
/// Equal output spike counts go to the lowest class (torch's argmax) or to the highest output potential.
enum class TieBreak { Lowest, Potential };
/// Early exit: `Off`; `Measure` runs every sample to the end and records what
/// an exit would have given (accuracy, step, SynOps), so one run reports both;
/// `Stop` really stops a sample at its exit (the time and SynOps are saved;
/// the full-run figures are then those of the stopped samples).
enum class EarlyExitMode { Off, Measure, Stop };

struct SimulationConfig {
  Step steps = 200;                   ///< simulated steps (from duration_ms when that is given)
  std::optional<double> duration_ms;  ///< alternative to steps: a whole number of dt_ms
  double dt_ms = 1.0;                 ///< step length; the seed's rate/steps factor is max_rate * dt with dt = 1 s / steps
  Encoding encoding = Encoding::Poisson;
  double max_rate_hz = 1000.0;            ///< p_i = min(1, x_i * max_rate * dt); default p = x (Diehl et al.)
  bool clamp_probability = false;         ///< allow max_rate * dt > 1 (pixels above 1/(rate*dt) then spike every step)
  std::vector<double> threshold = {1.0};  ///< one value for every population, or one per population
  ResetMode reset = ResetMode::Subtract;
  double beta = 1.0;  ///< leak factor per step, in (0, 1]; 1 = pure integrate-and-fire
  int refractory_steps = 0;
  std::vector<int> delays = {0};  ///< one value for every connection, or one per connection, in steps
  int fixed_point_bits = 16;      ///< potentials in units of theta / 2^bits
  int weight_bits = 32;           ///< fan-out table element width: 32, 16 or 8
  double weight_cutoff = 0.0;     ///< |w| below this is dropped (sparse fan-out tables when > 0)
  TieBreak tie_break = TieBreak::Lowest;
  int limit = 0;  ///< test samples simulated (0: all)
  std::uint64_t seed = 0;
  int threads = 0;                                        ///< 0: all cores
  std::vector<int> checkpoints = {10, 25, 50, 100, 200};  ///< steps at which accuracy is reported
  EarlyExitMode early_exit = EarlyExitMode::Off;
  int early_exit_margin = 5;  ///< lead in output spikes
  int early_exit_steps = 10;  ///< held for this many consecutive steps
  int batch_size = 100;       ///< dense baseline batch
};

struct OutputConfig {
  /// results.json, CSV tables and plots go here; a config file without it
  /// gets out/<file name without .toml>.
  std::string dir = "out/default";
  std::string cache = "out/cache";  ///< trained weights, keyed by a hash of dataset, network and training
  bool plots = true;
};

struct Config {
  std::filesystem::path file;  ///< the file read (empty for a config built in code)
  DatasetConfig dataset;
  NetworkConfig network;
  TrainingConfig training;
  NormalisationConfig normalisation;
  SimulationConfig simulation;
  OutputConfig output;
  std::vector<std::string> warnings;  ///< things allowed but worth saying (clamped probability, ...)

  /// Spike probability scale max_rate * dt (the seed's rate / steps).
  double probability_scale() const { return simulation.max_rate_hz * simulation.dt_ms * 1e-3; }
};

/// Reads and validates `path`, applying `overrides` ("key=value", value in TOML
/// syntax; a bare word is taken as a string) before validation.
Config load_config(const std::filesystem::path& path, const std::vector<std::string>& overrides = {});

/// The same from TOML text; `source_name` is used in messages.
Config parse_config(const std::string& toml_text, const std::string& source_name, const std::vector<std::string>& overrides = {});

/// The config as resolved (every key with its effective value), as TOML text.
std::string to_toml(const Config& config);

/// The table of docs/config.md (between its keys:begin/end markers): one row
/// per key of config_keys.cpp. `snnsim keys` prints it.
std::string config_keys_markdown();

/// Closest known key to `key` by edit distance, or empty if none is close.
std::string did_you_mean(const std::string& key, const std::vector<std::string>& known);

}  // namespace snn::tool
