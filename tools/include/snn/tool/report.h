// What a run reports, and how it is written: results.json (schema in
// docs/results.md), CSV tables, PNG plots through gnuplot, and the summary
// table on the terminal. Everything here is plain data so the tests can build
// a report by hand and check what is written.
#pragma once

#include "snn/network/weights.h"
#include "snn/types.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace snn::engine {
struct RunResult;
}

namespace snn::tool {

struct PopulationReport {
  std::string name;  ///< "input", "hidden1", ..., "output"
  std::size_t neurons = 0;
  double spikes_per_sample = 0;  ///< mean over samples of the population's total spikes
  double rate_hz = 0;            ///< spikes_per_sample / neurons / simulated seconds
};

struct ConnectionReport {
  std::string name;  ///< "input->hidden1", ..., "input->conv1", "conv1->pool1": source and target population
  std::size_t in = 0, out = 0;
  int delay = 0;
  std::size_t synapses = 0;          ///< stored (non-zero, above the cut-off) weights
  double synops_per_sample = 0;      ///< delivered spikes x fan-out, mean per sample
  double dense_macs_per_sample = 0;  ///< what a dense simulation multiplies per sample: steps x (dense: in x out;
                                     ///< conv: out x in_channels x kh x kw; avgpool: out x kh x kw)
  std::string kind;                  ///< the connection's format: "dense", "sparse", "conv", "avgpool"
  // Quantisation of the connection's weights (engine QuantisationReport).
  int fixed_point_bits = 16;      ///< k of the target's unit theta / 2^k actually used
  int weight_bits = 32;           ///< fan-out table element width
  double max_relative_error = 0;  ///< largest |w - w_q| over the largest |w|
  double max_abs_error = 0;       ///< largest |w - w_q|, model units
  std::size_t zeroed = 0;         ///< non-zero weights rounded to 0
  std::size_t nonzero = 0;        ///< non-zero stored weights
  /// The connection from an analog input (simulation.encoding = "analog"): its
  /// synops_per_sample are multiply-adds of input values (non-zero inputs x
  /// fan-out per step), not spike deliveries, and are left out of the SynOps.
  bool analog_input = false;
};

struct SnnReport {
  std::size_t samples = 0;
  Step steps = 0;
  double dt_ms = 1;
  std::vector<double> accuracy_curve;     ///< accuracy after steps 1..steps (cumulative output counts)
  std::vector<double> synops_curve;       ///< cumulative SynOps per sample after steps 1..steps
  std::vector<std::uint8_t> predictions;  ///< final prediction per sample
  std::vector<std::uint8_t> labels;       ///< label per sample
  std::vector<PopulationReport> populations;
  std::vector<ConnectionReport> connections;
  double engine_row_adds_per_sample = 0;  ///< fan-out rows the engine actually added (<= SynOps rows)
  /// Bias additions per sample (one per neuron with a non-zero bias per step;
  /// Rueckauer et al. 2017), counted apart from SynOps. 0 without biases.
  double bias_ops_per_sample = 0;
  std::vector<int> fixed_point_bits;  ///< per spiking population
  /// Quantisation errors large enough to matter (QuantisationReport::large),
  /// one per connection: printed with the summary's warnings and in
  /// results.json's "warnings".
  std::vector<std::string> quantisation_warnings;
  bool early_exit = false;
  bool early_exit_stopped = false;       ///< samples stopped at their exit (simulation.early_exit = "stop")
  double mean_exit_step = 0;             ///< with early exit: mean step at which samples would stop
  double exit_accuracy = 0;              ///< with early exit: accuracy of the predictions at the exit
  double synops_at_exit_per_sample = 0;  ///< with early exit: SynOps spent up to the exit, mean per sample
  double seconds = 0;                    ///< wall time of the simulation
  int threads = 1;                       ///< per rank
  int ranks = 1;                         ///< MPI ranks that shared the samples
  std::size_t table_bytes = 0;           ///< the engine's weight tables (engine::FixedNetwork::bytes), bytes
  /// Ranks on a node reading one copy of the tables (mpi::share_tables); 1:
  /// each rank its own copy.
  int tables_shared_by = 1;
  /// Per sample: output spikes over the whole run, all classes together.
  /// Empty when not recorded. A sample with 0 never spiked at the output: its
  /// prediction is only the readout's tie-break (class 0 unless ties go by
  /// potential).
  std::vector<std::uint32_t> output_spikes;

  /// Number of classes: the output population's size (the last connection's
  /// `out`), or one more than the largest label or prediction if larger.
  std::size_t classes() const;
  /// Samples whose output never spiked; nullopt when output_spikes is not recorded.
  std::optional<std::size_t> silent_samples() const;

  double accuracy() const { return accuracy_curve.empty() ? 0.0 : accuracy_curve.back(); }
  /// SynOps per sample, all connections but an analog input's.
  double synops_per_sample() const;
  /// The analog input connection's multiply-adds per sample (0 for spiking input).
  double analog_input_macs_per_sample() const;
  double dense_macs_per_sample() const;
  /// Whether the final accuracy beats always answering the most frequent
  /// label (below that, "steps to 99 % of final" means nothing).
  bool above_chance() const;
  /// First step at which the accuracy reaches `fraction` of the final accuracy.
  Step steps_to_fraction(double fraction) const;
};

/// One class's share of the final predictions.
struct ClassReport {
  std::size_t label = 0;
  std::size_t samples = 0;            ///< samples with this label
  std::size_t correct = 0;            ///< of them, predicted as `label`
  std::optional<std::size_t> silent;  ///< of them, output never spiked (nullopt: not recorded)
  double accuracy() const { return samples ? static_cast<double>(correct) / static_cast<double>(samples) : 0.0; }
};

/// Final predictions counted by label (rows) and predicted class (columns):
/// matrix[label][predicted], classes() x classes().
std::vector<std::vector<std::size_t>> confusion_matrix(const SnnReport& report);

/// Per-class accuracy (and never-spiked count), one entry per class.
std::vector<ClassReport> per_class(const SnnReport& report);

/// Copies what the report needs of a run's output spikes into `report`
/// (SnnReport::output_spikes, one total per sample) from the engine's result.
void record_output_spikes(SnnReport& report, const engine::RunResult& result);

struct RunReport {
  std::string command;      ///< "run", "simulate", ...
  std::string config_toml;  ///< the config as resolved
  std::string dataset;      ///< name or path
  std::size_t train_samples = 0, test_samples = 0;
  std::optional<double> ann_accuracy;  ///< ANN test accuracy (on the samples simulated)
  std::string weights;                 ///< weight manifest (or with weights_kind "onnx", the ONNX file) used
  /// Where the weights came from: "onnx" (network.model), "weights"
  /// (network.weights) or "trained" (by snnsim: now, or found in the weight cache); empty: not said.
  std::string weights_kind;
  bool weights_cached = false;  ///< true when training was skipped thanks to the cache
  /// Where the ANN weights were trained (their manifest's training.machine), if recorded.
  std::optional<MachineRecord> training_machine;
  std::string normalisation;  ///< none / model / data / robust
  std::vector<double> normalisation_factors;
  std::vector<int> checkpoints;  ///< steps at which accuracy is tabulated
  SnnReport snn;
  std::vector<std::string> warnings;
  std::map<std::string, double> timings;  ///< wall seconds per phase; the only non-deterministic part
};

/// Writes results.json, accuracy_vs_time.csv, populations.csv and
/// per_class.csv into `dir` (each atomically), and the PNG plots if `plots`
/// (gnuplot or its PNG terminals missing: one line on stderr, no plots).
/// Returns the files written.
std::vector<std::filesystem::path> write_report(const RunReport& report, const std::filesystem::path& dir, bool plots,
                                                bool quiet);

/// The report as the JSON text of results.json.
std::string results_json(const RunReport& report);

/// The summary table printed at the end of a run.
std::string summary_table(const RunReport& report);

/// Plots several results.json files into one figure: accuracy against
/// simulated time and against cumulative SynOps, each over the whole run and
/// zoomed on its end, with each run's final and ANN accuracy in the legend.
/// The format follows the extension of `out`: .png, .svg or .pdf (an
/// snn::Error for anything else, or when this gnuplot lacks the terminal).
void plot_accuracy(const std::vector<std::filesystem::path>& results, const std::filesystem::path& out);

/// Whether gnuplot can be run.
bool have_gnuplot();

}  // namespace snn::tool
