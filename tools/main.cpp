// snnsim command line: CLI11 parses, the sub-command functions (snn::tool) do
// the work, and this is the one place that catches snn::Error.
#include "snn/conversion/layers.h"
#include "snn/error.h"
#include "snn/tool/bench.h"
#include "snn/tool/commands.h"
#include "snn/tool/config.h"
#include "snn/tool/interrupt.h"
#include "snn/tool/mpi.h"

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <functional>

namespace {

// Exit statuses: 0 success, 1 an snn::Error (bad input, failed run), 2 a
// command-line mistake, 128 + signal when interrupted, 70 (EX_SOFTWARE) a bug.
constexpr int kUsageError = 2;
constexpr int kInternalError = 70;

// A whole number >= `least` for --threads, --limit, --repeat, with a message
// saying so (CLI11's range check prints its limits as 300-digit doubles).
CLI::Validator count_at_least(long long least) {
  return CLI::Validator(
      [least](std::string& text) -> std::string {
        std::size_t used = 0;
        long long v = least - 1;
        try {
          v = std::stoll(text, &used);
        } catch (const std::exception&) { used = 0; }
        if (used != text.size() || text.empty() || v < least || v > 1'000'000'000)
          return fmt::format("expected a whole number >= {}, found '{}'", least, text);
        return "";
      },
      "N");
}

// An option a command takes but must not honour: refused with `why` instead of
// silently ignored. Hidden from the command's --help.
void refuse(CLI::App* cmd, const char* name, std::string why) {
  cmd->add_option(name, [name = std::string(name), why](const CLI::results_t&) -> bool { throw CLI::ValidationError(name, why); })
      ->group("");
}

// The options of the config-driven commands. Each command takes only those it
// honours: train and convert always run OpenBLAS on 2 threads (the weights'
// last bits depend on it), and convert simulates nothing.
void add_common(CLI::App* cmd, snn::tool::CommonOptions& o) {
  const std::string name = cmd->get_name();
  const bool simulates = name == "run" || name == "simulate" || name == "bench";
  const bool trains = name == "run" || name == "train" || name == "convert" || name == "bench";
  cmd->add_option("--set", o.set, "Override a config key, e.g. --set simulation.steps=100 (repeatable)")->allow_extra_args(false);
  if (simulates) {
    cmd->add_option("--threads", o.threads, "Worker threads (default: all cores; results do not depend on it)")
        ->check(count_at_least(0));
    cmd->add_option("--limit", o.limit, "Simulate only the first N test samples")->check(count_at_least(0));
    cmd->add_option("--seed", o.seed, "Seed of the input spike trains (simulation.seed)");
  } else {
    refuse(cmd, "--threads",
           fmt::format("snnsim {} runs OpenBLAS on 2 threads whatever --threads says, so the weights do not depend "
                       "on it; --threads is for run, simulate and bench",
                       name));
    refuse(
        cmd, "--seed",
        "--seed sets the input spike trains' seed, which snnsim " + name + " does not use; --training-seed seeds the training");
  }
  if (name == "train")
    cmd->add_option("--limit", o.training_limit, "Train on only the first N training samples (training.limit)")
        ->check(count_at_least(0));
  if (name == "convert")
    refuse(cmd, "--limit",
           "snnsim convert simulates no samples; --set normalisation.samples=N limits the samples "
           "data normalisation uses");
  if (trains) cmd->add_option("--training-seed", o.training_seed, "Seed of the ANN's training (training.seed)");
  cmd->add_option("--out", o.out, "Output directory (default: output.dir of the config)");
  cmd->add_flag("-q,--quiet", o.quiet, "No progress bars and no summary table");
}

// Parses the command line; -1 to go on, else the exit status (a mistake
// printed as one line naming the command and what was wrong, status 2).
int parse(CLI::App& app, int argc, char** argv) {
  // A mistyped command would otherwise be reported as an unexpected argument.
  if (argc > 1 && argv[1][0] != '-') {
    std::vector<std::string> commands;
    for (const CLI::App* sub : app.get_subcommands({})) commands.push_back(sub->get_name());
    const std::string given = argv[1];
    if (std::find(commands.begin(), commands.end(), given) == commands.end()) {
      const std::string guess = snn::tool::did_you_mean(given, commands);
      fmt::print(stderr, "snnsim: error: unknown command '{}'{}; the commands are {} (snnsim --help)\n", given,
                 guess.empty() ? "" : fmt::format(" (did you mean '{}'?)", guess), fmt::join(commands, ", "));
      return kUsageError;
    }
  }
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // Usage mistakes: one line naming the command and what was wrong, exit 2.
    const auto parsed = app.get_subcommands();
    const std::string command = parsed.empty() ? "snnsim" : "snnsim " + parsed.front()->get_name();
    std::string what = e.what();
    if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) && what.find(" missing") != std::string::npos) {
      what = what.substr(0, what.find(':')) + " needs a value";
    } else if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
      const auto extras = parsed.empty() ? app.remaining() : parsed.front()->remaining();
      what = extras.empty() ? what
                            : fmt::format("unexpected argument{} '{}'", extras.size() == 1 ? "" : "s", fmt::join(extras, "' '"));
    }
    fmt::print(stderr, "{}: error: {} ({} --help)\n", command, what, command);
    return kUsageError;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // OpenBLAS started its threads spinning when the process loaded. One BLAS
  // thread unless a command asks for more (training, the dense baseline), and
  // the idle ones stopped: a --threads 1 run used a second core for 0.1 s.
  // First of all, so they do not spin through MPI_Init either.
  snn::conversion::set_blas_threads(1);
  snn::conversion::release_blas_threads();
  // Before the command line is parsed: MPI_Init may consume its own
  // arguments. Without mpirun (or without SNNSIM_MPI) this does nothing.
  const snn::tool::mpi::Session mpi_session(argc, argv);
  CLI::App app{
      "snnsim: event-driven simulation of spiking networks converted from ReLU networks.\n"
      "Run a config end to end with `snnsim run configs/default.toml`; see README.md.",
      "snnsim"};
  app.set_version_flag("--version", std::string("snnsim ") + SNNSIM_VERSION);
  app.require_subcommand(0, 1);
  app.fallthrough(false);

  std::function<int()> action;
  snn::tool::CommonOptions common;
  std::string config_path;

  // The config-driven commands share one option set.
  auto config_command = [&](const char* name, const char* help,
                            int (*fn)(const std::filesystem::path&, const snn::tool::CommonOptions&)) {
    auto* cmd = app.add_subcommand(name, help);
    cmd->add_option("config", config_path, "TOML config (see docs/config.md)")->required();
    add_common(cmd, common);
    cmd->callback([&, fn] { action = [&, fn] { return fn(config_path, common); }; });
    return cmd;
  };
  auto* run =
      config_command("run", "Run a config end to end: dataset, ANN (trained or cached), normalisation, simulation, report",
                     snn::tool::run_command);
  run->add_flag("--retrain", common.retrain, "Train the ANN again even if cached weights exist");
  run->add_flag("--resume", common.resume, "Continue an interrupted training from its last completed epoch");
  auto* train = config_command("train", "Train the ANN of a config (or reuse the cache) and print its test accuracy",
                               snn::tool::train_command);
  train->add_flag("--retrain", common.retrain, "Train again even if cached weights exist");
  train->add_flag("--resume", common.resume, "Continue an interrupted training from its last completed epoch");
  config_command("convert", "Normalise the ANN's weights as the config says and write them to <output.dir>/weights",
                 snn::tool::convert_command);
  config_command("simulate", "Simulate a converted network (network.weights) on the test set and report",
                 snn::tool::simulate_command);
  snn::tool::BenchOptions bench_options;
  auto* bench = app.add_subcommand("bench",
                                   "Event engine against the dense time-stepped baseline: same network, input and seed; or "
                                   "latency mode on 1 against N threads (--latency); trained or random weights");
  bench->add_option("config", config_path, "TOML config (see docs/config.md)")->required();
  add_common(bench, common);
  bench->add_option("--repeat", bench_options.repeat, "Timed runs of each simulator, alternating (median reported)")
      ->capture_default_str()
      ->check(count_at_least(1));
  bench->add_option("--samples", bench_options.samples, "Test samples to run (0: simulation.limit or all; --limit overrides)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  bench->add_option("--json", bench_options.json, "Also write the figures as JSON to this file");
  auto* no_bound = bench->add_flag("--no-bound", bench_options.skip_bound, "Skip the row-add bound micro-benchmark");
  bench
      ->add_flag("--latency", bench_options.latency,
                 "Time latency mode instead: one sample at a time, each population split over the threads, on 1 thread "
                 "and on --threads, beside throughput mode; checks all three give identical results")
      ->excludes(no_bound);
  bench->add_flag("--random-weights", bench_options.random_weights,
                  "No training: random weights for the config's network (network.hidden or network.layers), scaled per "
                  "layer to fire at set rates (--random-rate); accuracy is then meaningless");
  bench
      ->add_option("--random-width", bench_options.random_width,
                   "Random weights for a 784-N-N-10 MLP (network.hidden = [N, N]) instead; implies --random-weights")
      ->check(count_at_least(1));
  auto* random_rate =
      bench
          ->add_option("--random-rate", bench_options.random_rate,
                       "Spikes per neuron and step each random layer is tuned to (default: the seed's rates for a "
                       "two-hidden-layer MLP, else 0.05)")
          ->check(CLI::Validator(
              [](std::string& text) -> std::string {
                try {
                  std::size_t used = 0;
                  const double v = std::stod(text, &used);
                  if (used == text.size() && v > 0 && v < 1) return "";
                } catch (const std::exception&) {}
                return fmt::format("expected spikes per neuron and step, a number in (0, 1), found '{}'", text);
              },
              "RATE"));
  auto* tune_samples =
      bench->add_option("--tune-samples", bench_options.tune_samples, "Training images the random weights' scales are tuned on")
          ->capture_default_str()
          ->check(count_at_least(1));
  bench->callback([&, random_rate, tune_samples] {
    // Refused, not ignored, without random weights to tune.
    if (!bench_options.random_weights && bench_options.random_width == 0)
      for (const CLI::Option* o : {random_rate, tune_samples})
        if (o->count() > 0)
          throw CLI::ValidationError(o->get_name(), "tunes random weights: give --random-weights or --random-width N too");
    action = [&] { return snn::tool::bench_command(config_path, common, bench_options); };
  });

  std::string info_path;
  auto* info =
      app.add_subcommand("info", "Describe a dataset, a weight directory/manifest, an ONNX model (.onnx) or a results.json");
  info->add_option("path", info_path, "Dataset name or directory, weight directory, manifest.json, model.onnx or results.json")
      ->required();
  info->callback([&] { action = [&] { return snn::tool::info_command(info_path); }; });

  auto* keys = app.add_subcommand("keys", "Print every config key with its type, default, allowed values and meaning (Markdown)");
  keys->callback([&] {
    action = [] {
      fmt::print("{}", snn::tool::config_keys_markdown());
      return 0;
    };
  });

  std::vector<std::string> plot_inputs;
  std::string plot_out = "accuracy_vs_time.png";
  auto* plot = app.add_subcommand("plot", "Plot accuracy against simulated time for one or more results.json");
  plot->add_option("results", plot_inputs, "results.json files (or output directories)")->required();
  plot->add_option("-o,--output", plot_out, "figure to write: .png, .svg or .pdf")->capture_default_str();
  plot->callback([&] {
    action = [&] {
      std::vector<std::filesystem::path> files;
      for (const auto& p : plot_inputs)
        files.push_back(std::filesystem::is_directory(p) ? std::filesystem::path(p) / "results.json" : std::filesystem::path(p));
      return snn::tool::plot_command(files, plot_out);
    };
  });

  if (const int status = parse(app, argc, argv); status >= 0) return status;
  snn::tool::install_interrupt_handler();
  namespace mpi = snn::tool::mpi;
  // A failing rank prints its error and ends the whole job (mpi::abort_job),
  // so no rank waits forever for it and rank 0 publishes nothing.
  auto fail = [](const std::string& message, int status) {
    fmt::print(stderr, "snnsim: {}{}: {}\n", status == kInternalError ? "internal error" : "error", mpi::where(), message);
    mpi::abort_job(status);
    return status;
  };
  try {
    if (!action) {
      if (mpi::is_root()) fmt::print("{}", app.help());
      return 0;
    }
    if (mpi::distributed()) {
      const auto parsed = app.get_subcommands();
      const std::string name = parsed.empty() ? "" : parsed.front()->get_name();
      if (name != "run" && name != "simulate" && name != "bench")
        throw snn::Error(
            "snnsim {} runs in one process; under mpirun only run, simulate and bench share their work "
            "over the ranks",
            name);
      // One rank draws progress and prints the summary, so the log reads as one run's.
      if (!mpi::is_root()) common.quiet = true;
    }
    return action();
  } catch (const snn::Error& e) {
    return fail(e.what(), snn::tool::interrupted() ? 128 + snn::tool::interrupt_signal() : 1);
  } catch (const std::exception& e) { return fail(e.what(), kInternalError); }
}
