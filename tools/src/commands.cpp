// The config-driven commands: run, train, convert, simulate (bench is in
// bench.cpp, info in info.cpp), and plot.
#include "snn/tool/commands.h"

#include "snn/conversion/trainer.h"
#include "snn/error.h"
#include "snn/tool/mpi.h"
#include "snn/tool/output_dir.h"
#include "snn/tool/pipeline.h"
#include "snn/tool/report.h"
#include "snn/tool/report_mapping.h"
#include "snn/tool/weight_cache.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>

namespace snn::tool {

namespace fs = std::filesystem;

std::vector<std::string> overrides_of(const CommonOptions& o) {
  std::vector<std::string> out;
  if (o.threads) out.push_back(fmt::format("simulation.threads={}", *o.threads));
  if (o.limit) out.push_back(fmt::format("simulation.limit={}", *o.limit));
  if (o.training_limit) out.push_back(fmt::format("training.limit={}", *o.training_limit));
  // Two seeds: most who vary --seed mean the spike trains, and reseeding the
  // training would retrain the ANN (the weight cache is keyed by its seed).
  if (o.seed) out.push_back(fmt::format("simulation.seed={}", *o.seed));
  if (o.training_seed) out.push_back(fmt::format("training.seed={}", *o.training_seed));
  // A JSON string literal is a valid TOML basic string.
  if (o.out) out.push_back(fmt::format("output.dir={}", nlohmann::json(*o.out).dump()));
  out.insert(out.end(), o.set.begin(), o.set.end());
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// CPU seconds of this process, all its threads so far.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// The phases of a run one after another: each one's wall seconds as
// timings[name] and this process's CPU seconds as timings[name_cpu] (which,
// unlike wall time, a loaded machine does not inflate).
class Phases {
 public:
  explicit Phases(std::map<std::string, double>& timings) : timings_(timings) {}
  void done(const std::string& name) {
    timings_[name] = seconds_since(wall_);
    const double cpu = cpu_seconds();
    timings_[name + "_cpu"] = cpu - cpu_;
    wall_ = Clock::now();
    cpu_ = cpu;
  }

 private:
  std::map<std::string, double>& timings_;
  Clock::time_point wall_ = Clock::now();
  double cpu_ = cpu_seconds();
};

void finish(const Prepared& p, RunReport& r, const CommonOptions& options, Clock::time_point start) {
  r.timings["total"] = seconds_since(start);
  publish_report(p.config, r, options);
  if (!options.quiet) {
    // prepare() printed the config's warnings already: the table repeats only the others.
    RunReport shown = r;
    std::erase_if(shown.warnings, [&](const std::string& w) {
      return std::find(p.config.warnings.begin(), p.config.warnings.end(), w) != p.config.warnings.end();
    });
    fmt::print("{}", summary_table(shown));
    fmt::print("results in {}/ (results.json, accuracy_vs_time.csv{})\n", p.config.output.dir,
               p.config.output.plots && have_gnuplot() ? ", plots" : "");
  }
}

// ANN accuracy on exactly the samples the SNN simulates, so the two compare;
// any architecture, biases included (an imported model's ReLU on its outputs
// or not). Classes it never predicts there go to the report's warnings (one line).
void record_ann_accuracy(RunReport& r, const AnnWeights& ann, const Config& c, const Dataset& test) {
  const std::size_t n = c.simulation.limit > 0 ? std::min<std::size_t>(c.simulation.limit, test.count) : test.count;
  auto eval = mpi::evaluate(ann.weights, test, ann.output_relu, n, mpi::threads_per_rank(c.simulation.threads));
  r.ann_accuracy = eval.accuracy;
  // Only classes among these samples' labels: with --limit a class may simply be absent.
  std::erase_if(eval.never_predicted, [&](std::size_t k) {
    return std::find(test.labels.begin(), test.labels.begin() + static_cast<std::ptrdiff_t>(n), k) ==
           test.labels.begin() + static_cast<std::ptrdiff_t>(n);
  });
  for (auto& w : conversion::prediction_warnings(eval, ann.output_relu)) r.warnings.push_back("ANN: " + w);
}

}  // namespace

RunReport run_report(const fs::path& path, const CommonOptions& options, bool publish) {
  const auto start = Clock::now();
  const double start_cpu = cpu_seconds();
  std::map<std::string, double> timings;
  Phases phases(timings);
  const Prepared p = prepare(path, options, true);
  phases.done("load_data");  // config, output checks, dataset
  RunReport r = base_report("run", p);
  const AnnWeights ann = ann_weights(p.config, p.data, options);
  r.weights = ann.source;
  r.weights_cached = ann.cached;
  r.weights_kind = ann.kind;
  if (ann.weights.training) r.training_machine = ann.weights.training->machine;
  phases.done(ann.kind == "trained" && !ann.cached ? "training" : "load_weights");
  record_ann_accuracy(r, ann, p.config, p.data.test);
  phases.done("ann_accuracy");
  const auto [snn, notes] = normalised_weights(p.config, ann.weights, p.data.train);
  r.warnings.insert(r.warnings.end(), notes.begin(), notes.end());
  phases.done("normalisation");
  r.normalisation = std::string(to_string(snn.normalisation.method));
  r.normalisation_factors = snn.normalisation.factors;
  r.snn = simulate(p.config, snn, p.data.test, options);
  // Building the network and engine, the simulation and its gather, the report's figures.
  phases.done("simulate");
  r.timings.insert(timings.begin(), timings.end());
  r.timings["total_cpu"] = cpu_seconds() - start_cpu;
  if (publish) {
    finish(p, r, options, start);
  } else {
    r.timings["total"] = seconds_since(start);
  }
  return r;
}

int run_command(const fs::path& path, const CommonOptions& options) {
  run_report(path, options, true);
  return 0;
}

int train_command(const fs::path& path, const CommonOptions& options) {
  const Prepared p = prepare(path, options, false);
  if (!p.config.network.model.empty())
    throw Error("{}: network.model = \"{}\" is the ANN: snnsim train has nothing to train (use run, convert or simulate)",
                path.string(), p.config.network.model);
  const AnnWeights ann = ann_weights(p.config, p.data, options);
  fmt::print("ANN weights: {}{}\n", ann.source, ann.cached ? " (cached)" : "");
  if (ann.weights.ann_test_accuracy) fmt::print("ANN test accuracy: {:.2f} %\n", *ann.weights.ann_test_accuracy * 100);
  return 0;
}

int convert_command(const fs::path& path, const CommonOptions& options) {
  const Prepared p = prepare(path, options, true, false);
  AnnWeights ann = ann_weights(p.config, p.data, options);
  // An imported model carries no accuracy of its own: record the one computed here, as training does.
  if (ann.kind == "onnx") {
    ann.weights.ann_test_accuracy =
        mpi::evaluate(ann.weights, p.data.test, ann.output_relu, 0, mpi::threads_per_rank(p.config.simulation.threads)).accuracy;
  }
  const auto [snn, warnings] = normalised_weights(p.config, ann.weights, p.data.train);
  const fs::path dir = fs::path(p.config.output.dir) / "weights";
  save_weights(dir, snn);
  if (options.quiet) return 0;
  for (const auto& w : warnings) fmt::print(stderr, "note: {}\n", w);
  fmt::print("{} normalisation, factors [{:.4g}]\nwrote {}\n", to_string(snn.normalisation.method),
             fmt::join(snn.normalisation.factors, ", "), (dir / kManifestFile).string());
  return 0;
}

int simulate_command(const fs::path& path, const CommonOptions& options) {
  const auto start = Clock::now();
  const Prepared p = prepare(path, options, true);
  if (p.config.network.weights.empty() && p.config.network.model.empty())
    throw Error(
        "{}: snnsim simulate needs network.weights (a converted weight directory, e.g. from snnsim convert) or "
        "network.model (an ONNX file)",
        path.string());
  RunReport r = base_report("simulate", p);
  // Through ann_weights, as run loads network.weights or network.model: the
  // same checks against the dataset, with the same messages.
  const auto t = Clock::now();
  const AnnWeights given = ann_weights(p.config, p.data, options);
  r.timings["load_weights"] = seconds_since(t);
  r.weights = given.source;
  r.weights_kind = given.kind;
  if (given.weights.training) r.training_machine = given.weights.training->machine;
  // Normalisation divides each layer by a positive factor, which keeps every
  // argmax: the weights' ANN accuracy is the ANN's, on the samples simulated.
  record_ann_accuracy(r, given, p.config, p.data.test);
  const auto [snn, notes] = normalised_weights(p.config, given.weights, p.data.train);
  r.warnings.insert(r.warnings.end(), notes.begin(), notes.end());
  r.normalisation = std::string(to_string(snn.normalisation.method));
  r.normalisation_factors = snn.normalisation.factors;
  r.snn = simulate(p.config, snn, p.data.test, options);
  finish(p, r, options, start);
  return 0;
}

int plot_command(const std::vector<fs::path>& results, const fs::path& png) {
  if (!have_gnuplot()) throw Error("snnsim plot needs gnuplot (apt-get install gnuplot-nox)");
  plot_accuracy(results, png);
  fmt::print("wrote {}\n", png.string());
  return 0;
}

}  // namespace snn::tool
