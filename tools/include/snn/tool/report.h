// What a run reports, and how it is written: results.json (schema in
// docs/results.md), CSV tables, PNG plots through gnuplot, and the summary
// table on the terminal. Everything here is plain data so the tests can build
// a report by hand and check what is written.
#pragma once

#include "snn/types.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace snn::tool {

struct PopulationReport {
  std::string name;           ///< "input", "hidden1", ..., "output"
  std::size_t neurons = 0;
  double spikes_per_sample = 0;  ///< mean over samples of the population's total spikes
  double rate_hz = 0;            ///< spikes_per_sample / neurons / simulated seconds
};

struct ConnectionReport {
  std::string name;  ///< "input->hidden1", ...
  std::size_t in = 0, out = 0;
  int delay = 0;
  std::size_t synapses = 0;          ///< stored (non-zero, above the cut-off) weights
  double synops_per_sample = 0;      ///< delivered spikes x fan-out, mean per sample
  double dense_macs_per_sample = 0;  ///< in x out x steps
};

struct SnnReport {
  std::size_t samples = 0;
  Step steps = 0;
  double dt_ms = 1;
  std::vector<double> accuracy_curve;      ///< accuracy after steps 1..steps (cumulative output counts)
  std::vector<double> synops_curve;        ///< cumulative SynOps per sample after steps 1..steps
  std::vector<std::uint8_t> predictions;   ///< final prediction per sample
  std::vector<std::uint8_t> labels;        ///< label per sample
  std::vector<PopulationReport> populations;
  std::vector<ConnectionReport> connections;
  double engine_row_adds_per_sample = 0;   ///< fan-out rows the engine actually added (<= SynOps rows)
  std::vector<int> fixed_point_bits;       ///< per spiking population
  bool early_exit = false;
  double mean_exit_step = 0;               ///< with early exit: mean step at which samples would stop
  double exit_accuracy = 0;                ///< with early exit: accuracy of the predictions at the exit
  double synops_at_exit_per_sample = 0;    ///< with early exit: SynOps spent up to the exit, mean per sample
  double seconds = 0;                      ///< wall time of the simulation
  int threads = 1;

  double accuracy() const { return accuracy_curve.empty() ? 0.0 : accuracy_curve.back(); }
  double synops_per_sample() const;
  double dense_macs_per_sample() const;
  /// First step at which the accuracy reaches `fraction` of the final accuracy.
  Step steps_to_fraction(double fraction) const;
};

struct RunReport {
  std::string command;                ///< "run", "simulate", ...
  std::string config_toml;            ///< the config as resolved
  std::string dataset;                ///< name or path
  std::size_t train_samples = 0, test_samples = 0;
  std::optional<double> ann_accuracy;  ///< ANN test accuracy (on the samples simulated)
  std::string weights;                 ///< weight manifest used
  bool weights_cached = false;         ///< true when training was skipped thanks to the cache
  std::string normalisation;           ///< none / model / data / robust
  std::vector<double> normalisation_factors;
  std::vector<int> checkpoints;        ///< steps at which accuracy is tabulated
  SnnReport snn;
  std::vector<std::string> warnings;
  std::map<std::string, double> timings;  ///< wall seconds per phase; the only non-deterministic part
};

/// Writes results.json, accuracy_vs_time.csv, synops_vs_time.csv and
/// populations.csv into `dir` (each atomically), and the PNG plots if `plots`
/// (gnuplot missing: one line on stderr, no plots). Returns the files written.
std::vector<std::filesystem::path> write_report(const RunReport& report, const std::filesystem::path& dir, bool plots,
                                                bool quiet);

/// The report as the JSON text of results.json.
std::string results_json(const RunReport& report);

/// The summary table printed at the end of a run.
std::string summary_table(const RunReport& report);

/// Plots accuracy against simulated time for several results.json files into `png`.
void plot_accuracy(const std::vector<std::filesystem::path>& results, const std::filesystem::path& png);

/// Whether gnuplot can be run.
bool have_gnuplot();

}  // namespace snn::tool
