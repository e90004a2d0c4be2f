// The snnsim sub-commands, callable from main() and from tests. Each returns
// the process exit status; failures throw snn::Error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace snn::tool {

/// Options every config-driven command takes.
struct CommonOptions {
  std::vector<std::string> set;                ///< --set key=value, applied last
  std::optional<int> threads;                  ///< --threads N  -> simulation.threads
  std::optional<int> limit;                    ///< --limit N    -> simulation.limit (run, simulate, bench)
  std::optional<int> training_limit;           ///< train --limit N -> training.limit
  std::optional<std::uint64_t> seed;           ///< --seed S     -> simulation.seed (the input spike trains)
  std::optional<std::uint64_t> training_seed;  ///< --training-seed S -> training.seed
  std::optional<std::string> out;              ///< --out DIR    -> output.dir
  bool quiet = false;                          ///< --quiet: no progress, no summary table
  bool retrain = false;                        ///< --retrain: ignore cached weights
  bool resume = false;                         ///< --resume: continue an interrupted training
};

/// The config overrides the common options stand for, then the --set ones.
std::vector<std::string> overrides_of(const CommonOptions& options);

struct RunReport;

/// What `snnsim run` does, returning the report (results_json() gives the text
/// of results.json); it is written to output.dir only when `publish` (then the
/// summary table is printed too, unless options.quiet). The Python module's run().
RunReport run_report(const std::filesystem::path& config, const CommonOptions& options, bool publish);

int run_command(const std::filesystem::path& config, const CommonOptions& options);
int train_command(const std::filesystem::path& config, const CommonOptions& options);
int convert_command(const std::filesystem::path& config, const CommonOptions& options);
int simulate_command(const std::filesystem::path& config, const CommonOptions& options);
int info_command(const std::filesystem::path& path);
int plot_command(const std::vector<std::filesystem::path>& results, const std::filesystem::path& png);

}  // namespace snn::tool
