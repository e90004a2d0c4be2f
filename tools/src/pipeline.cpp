#include "snn/tool/pipeline.h"

#include "snn/conversion/layers.h"
#include "snn/conversion/normalise.h"
#include "snn/conversion/trainer.h"
#include "snn/engine/engine.h"
#include "snn/error.h"
#include "snn/network/network.h"
#include "snn/tool/interrupt.h"
#include "snn/tool/progress.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>

namespace snn::tool {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// FNV-1a: a stable 64-bit hash (std::hash is not stable across builds).
struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
};

// Training always uses the same OpenBLAS thread count, whatever --threads says,
// because sgemm's summation order (and so the weights' last bits) depends on it.
int training_blas_threads() { return 2; }

conversion::TrainConfig train_config(const Config& c, const Dataset& train) {
  conversion::TrainConfig t;
  t.network.input = Shape{train.image_size(), 1, 1};
  t.network.layers.clear();
  for (std::size_t i = 0; i < c.network.hidden.size(); ++i)
    t.network.layers.push_back(LayerSpec::dense(static_cast<std::size_t>(c.network.hidden[i]), fmt::format("fc{}", i + 1)));
  t.network.layers.push_back(LayerSpec::dense(static_cast<std::size_t>(c.dataset.classes), fmt::format("fc{}", c.network.hidden.size() + 1)));
  t.network.output_relu = c.training.output_relu;
  t.network.dropout = static_cast<float>(c.training.dropout);
  t.epochs = static_cast<std::size_t>(c.training.epochs);
  t.batch_size = static_cast<std::size_t>(c.training.batch_size);
  t.adam.learning_rate = static_cast<float>(c.training.learning_rate);
  t.init_range = static_cast<float>(c.training.init_range);
  t.seed = c.training.seed;
  t.train_samples = static_cast<std::size_t>(c.training.limit);
  t.blas_threads = training_blas_threads();
  return t;
}

// Draws the training progress: a bar per epoch on a terminal, one line per epoch always.
class TrainProgress : public conversion::TrainObserver {
 public:
  TrainProgress(bool quiet, std::size_t epochs, fs::path checkpoint)
      : quiet_(quiet), epochs_(epochs), checkpoint_(std::move(checkpoint)) {}
  void on_batch(std::size_t epoch, std::size_t batch, std::size_t batches, double loss) override {
    if (interrupted()) {
      if (epoch > 1)
        throw Error("interrupted during training epoch {}/{}; the {} completed epoch{} saved in '{}': run the same command with "
                    "--resume to continue from there",
                    epoch, epochs_, epoch - 1, epoch == 2 ? " is" : "s are", checkpoint_.string());
      throw Error("interrupted during training epoch 1/{}, before any epoch was complete; nothing was written", epochs_);
    }
    if (quiet_) return;
    if (!bar_ || epoch != epoch_) {
      bar_ = std::make_unique<Progress>(fmt::format("epoch {}/{}", epoch, epochs_), batches, quiet_);
      epoch_ = epoch;
    }
    bar_->update(batch, fmt::format("loss {:.4f}", loss));
  }
  void on_epoch(const conversion::EpochReport& r) override {
    if (bar_) bar_->finish();
    bar_.reset();
    if (!quiet_)
      fmt::print(stderr, "epoch {:>2}/{}: loss {:.4f}, train accuracy {:.2f} %, {:.1f} s\n", r.epoch, r.epochs, r.loss,
                 r.train_accuracy * 100, r.seconds);
  }
  void on_test(const conversion::Evaluation& e) override {
    if (!quiet_) fmt::print(stderr, "ANN test accuracy {:.2f} % ({} samples)\n", e.accuracy * 100, e.samples);
  }
  void on_warning(const std::string& message) override { fmt::print(stderr, "warning: {}\n", message); }
  void on_resume(std::size_t done, std::size_t epochs) override {
    if (!quiet_) fmt::print(stderr, "resuming training after epoch {}/{} from '{}'\n", done, epochs, checkpoint_.string());
  }

 private:
  bool quiet_;
  std::size_t epochs_;
  fs::path checkpoint_;
  std::size_t epoch_ = 0;
  std::unique_ptr<Progress> bar_;
};

std::vector<NeuronParams> neuron_params(const Config& c, std::size_t layers) {
  const auto& s = c.simulation;
  std::vector<NeuronParams> params(layers);
  for (std::size_t l = 0; l < layers; ++l) {
    params[l].threshold = s.threshold.size() == 1 ? s.threshold[0] : s.threshold.at(l);
    params[l].reset = s.reset;
    params[l].beta = s.beta;
    params[l].refractory = s.refractory_steps;
  }
  return params;
}

}  // namespace

fs::path weight_cache_dir(const Config& c, const Dataset& train) {
  Fnv fnv;
  fnv.add(train.pixels.data(), train.pixels.size());
  fnv.add(train.labels.data(), train.labels.size());
  const auto& t = c.training;
  fnv.add(fmt::format("classes={};hidden={};epochs={};batch={};lr={};dropout={};init={};output_relu={};limit={};seed={};blas={}",
                      c.dataset.classes, fmt::join(c.network.hidden, ","), t.epochs, t.batch_size, t.learning_rate,
                      t.dropout, t.init_range, t.output_relu, t.limit, t.seed, training_blas_threads()));
  std::string name = fs::path(c.dataset.name).filename().string();
  if (name.empty()) name = "data";
  return fs::path(c.output.cache) / fmt::format("{}-{:016x}", name, fnv.h);
}

WeightSet ann_weights(const Config& c, const DatasetSplits& data, const CommonOptions& options, bool& cached,
                      std::string& source) {
  cached = false;
  if (!c.network.weights.empty()) {
    source = c.network.weights;
    WeightSet w = load_weights(c.network.weights);
    if (w.inputs() != data.test.image_size())
      throw Error("weights '{}' take {} inputs but dataset '{}' has images of {} pixels", c.network.weights, w.inputs(),
                  data.name, data.test.image_size());
    if (w.outputs() != static_cast<std::size_t>(c.dataset.classes))
      throw Error("weights '{}' have {} outputs but dataset.classes = {}", c.network.weights, w.outputs(), c.dataset.classes);
    return w;
  }
  const fs::path dir = weight_cache_dir(c, data.train);
  source = dir.string();
  if (!options.retrain && fs::exists(dir / kManifestFile)) {
    cached = true;
    if (!options.quiet) fmt::print(stderr, "using cached ANN weights from {} (--retrain to train again)\n", dir.string());
    return load_weights(dir);
  }
  auto tc = train_config(c, data.train);
  // The checkpoint lives in the cache entry it will become: same key, and
  // without a manifest the entry is never taken for trained weights.
  tc.checkpoint = dir / kCheckpointFile;
  tc.resume = options.resume;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("output.cache '{}': cannot create '{}': {}", c.output.cache, dir.string(), ec.message());
  const bool have_checkpoint = fs::exists(tc.checkpoint, ec);
  if (!options.quiet) {
    fmt::print(stderr, "training {}-{}-{} on {} ({} samples), {} epochs\n", data.train.image_size(), fmt::join(c.network.hidden, "-"),
               c.dataset.classes, data.name, tc.train_samples ? tc.train_samples : data.train.count, tc.epochs);
    if (have_checkpoint && !options.resume)
      fmt::print(stderr, "note: '{}' holds an interrupted training; starting over (--resume continues it)\n", tc.checkpoint.string());
    if (!have_checkpoint && options.resume)
      fmt::print(stderr, "note: no interrupted training to resume ('{}' does not exist); training from the start\n",
                 tc.checkpoint.string());
  }
  TrainProgress progress(options.quiet, tc.epochs, tc.checkpoint);
  const auto result = conversion::train(tc, data.train, &data.test, &progress);
  WeightSet w = conversion::to_weight_set(tc, result, data.name, tc.train_samples ? tc.train_samples : data.train.count);
  save_weights(dir, w);
  // Only once the weights are stored: until then the checkpoint can still resume.
  fs::remove(tc.checkpoint, ec);
  return w;
}

WeightSet normalised_weights(const Config& c, const WeightSet& ann, const Dataset& train, std::vector<std::string>& warnings) {
  WeightSet w = ann;
  const Normalisation want = c.normalisation.method;
  if (w.normalisation.method != Normalisation::None) {
    if (w.normalisation.method != want)
      throw Error("weights are already {}-normalised but normalisation.method = \"{}\"; set it to \"{}\" to use them as they are",
                  to_string(w.normalisation.method), to_string(want), to_string(w.normalisation.method));
    warnings.push_back(fmt::format("weights were already {}-normalised; used as given", to_string(want)));
    return w;
  }
  if (want == Normalisation::None) return w;
  conversion::NormaliseOptions o;
  o.method = want;
  o.include_last = c.normalisation.include_last;
  o.samples = static_cast<std::size_t>(c.normalisation.samples);
  o.percentile = c.normalisation.percentile;
  conversion::set_blas_threads(training_blas_threads());
  conversion::normalise(w, o, &train);
  return w;
}

Network build_network(const Config& c, const WeightSet& weights) {
  const auto& s = c.simulation;
  const std::size_t layers = weights.layers.size();
  if (s.threshold.size() != 1 && s.threshold.size() != layers)
    throw Error("simulation.threshold has {} values but the network has {} spiking populations", s.threshold.size(), layers);
  if (s.delays.size() != 1 && s.delays.size() != layers)
    throw Error("simulation.delays has {} values but the network has {} connections", s.delays.size(), layers);
  std::vector<ConnectionSpec> specs(layers);
  for (std::size_t l = 0; l < layers; ++l) {
    specs[l].delay = s.delays.size() == 1 ? s.delays[0] : s.delays[l];
    if (s.weight_cutoff > 0) {
      specs[l].format = FanOutFormat::Sparse;
      specs[l].cutoff = s.weight_cutoff;
    }
  }
  std::vector<std::string> names;
  for (std::size_t l = 0; l < layers; ++l) names.push_back(l + 1 == layers ? "output" : fmt::format("hidden{}", l + 1));
  return Network::from_matrices(weights.layers, neuron_params(c, layers), specs, names);
}

engine::RunOptions run_options(const Config& c) {
  const auto& s = c.simulation;
  engine::RunOptions ro;
  ro.steps = s.steps;
  ro.input.encoding = s.encoding;
  ro.input.max_rate = s.max_rate_hz;
  ro.input.dt = s.dt_ms * 1e-3;
  ro.input.seed = s.seed;
  ro.threads = s.threads;
  ro.tie_break_by_potential = s.tie_break == TieBreak::potential;
  ro.early_exit.enabled = s.early_exit;
  ro.early_exit.margin = static_cast<std::uint32_t>(s.early_exit_margin);
  ro.early_exit.hold = s.early_exit_steps;
  ro.early_exit.stop = false;  // run to the end so one run reports both the full and the early-exit figures
  return ro;
}

void simulate_into(const Config& c, const WeightSet& weights, const Dataset& test, const CommonOptions& options,
                   RunReport& report) {
  const auto& s = c.simulation;
  const std::size_t layers = weights.layers.size();
  const Network net = build_network(c, weights);
  const engine::Engine eng(net, s.fixed_point_bits);

  const std::size_t n = s.limit > 0 ? std::min<std::size_t>(static_cast<std::size_t>(s.limit), test.count) : test.count;
  const auto samples = engine::SampleSet::of(test, 0, n);
  engine::RunOptions ro = run_options(c);
  if (!options.quiet) fmt::print(stderr, "simulating {} test samples for {} steps\n", n, s.steps);
  Progress bar("simulate", n, options.quiet);
  ro.progress = [&](std::size_t done, std::size_t total) {
    if (interrupted())
      throw Error("interrupted during the simulation ({} of {} samples done); no results were written", done, total);
    bar.update(done);
  };
  const auto r = eng.run(samples, ro);
  bar.finish();

  SnnReport& out = report.snn;
  out.samples = n;
  out.steps = s.steps;
  out.dt_ms = s.dt_ms;
  out.labels.assign(samples.labels.begin(), samples.labels.end());
  out.predictions.assign(r.predictions.begin(), r.predictions.end());
  out.accuracy_curve = r.accuracy_curve(samples.labels);
  out.threads = r.threads;
  out.seconds = r.seconds;
  const double sim_seconds = s.steps * s.dt_ms * 1e-3;
  const auto spikes = r.spikes_per_population();
  for (std::size_t p = 0; p < net.populations().size(); ++p) {
    const auto& pop = net.population(static_cast<PopulationId>(p));
    const double per_sample = static_cast<double>(spikes[p]) / static_cast<double>(n);
    out.populations.push_back({pop.name, pop.size, per_sample, per_sample / static_cast<double>(pop.size) / sim_seconds});
  }
  const auto synops = r.synops_per_connection();
  const auto work = r.work_per_connection();
  double work_total = 0;
  for (std::size_t l = 0; l < layers; ++l) {
    const auto& conn = net.connection(l);
    out.connections.push_back({fmt::format("{}->{}", net.population(conn.source()).name, net.population(conn.target()).name),
                               conn.source_size(), conn.target_size(), static_cast<int>(conn.delay()), conn.synapses(),
                               static_cast<double>(synops[l]) / static_cast<double>(n),
                               static_cast<double>(r.dense_macs_per_step[l]) * s.steps});
    work_total += static_cast<double>(work[l]);
  }
  out.engine_row_adds_per_sample = work_total / static_cast<double>(n);
  for (const auto& q : r.quantisation) out.fixed_point_bits.push_back(q.bits);
  out.synops_curve = r.synops_curve();
  for (auto& v : out.synops_curve) v /= static_cast<double>(n);
  out.early_exit = s.early_exit;
  if (s.early_exit) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += r.exit_step[i] < 0 ? s.steps : r.exit_step[i] + 1;
    out.mean_exit_step = sum / static_cast<double>(n);
    out.exit_accuracy = r.exit_accuracy(samples.labels);
    out.synops_at_exit_per_sample = static_cast<double>(r.total_synops_at_exit()) / static_cast<double>(n);
  }
}

Prepared prepare(const fs::path& path, const CommonOptions& options, bool needs_output, bool replaces_output) {
  Prepared p{load_config(path, overrides_of(options)), {}};
  for (const auto& w : p.config.warnings)
    if (!options.quiet) fmt::print(stderr, "note: {}\n", w);
  if (needs_output) check_output_writable(p.config, replaces_output);
  p.data = load_dataset(p.config.dataset.name, static_cast<std::size_t>(p.config.dataset.classes));
  return p;
}

namespace {

// output.dir as an absolute path without a trailing separator ("out/x/" names
// the directory x, whose parent holds the staging directory).
fs::path output_path(const std::string& dir) {
  fs::path p = fs::absolute(dir).lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
  return p;
}

// Whether `inner` is `outer` or lies inside it (after resolving symlinks of
// the parts that exist).
bool is_within(const fs::path& inner, const fs::path& outer) {
  std::error_code ec;
  const fs::path a = fs::weakly_canonical(fs::absolute(inner), ec);
  const fs::path b = fs::weakly_canonical(outer, ec);
  auto [ai, bi] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  while (bi != b.end() && bi->empty()) ++bi;  // a trailing separator of b
  return bi == b.end();
}

}  // namespace

void check_output_writable(const Config& c, bool replaced_whole) {
  const fs::path out = output_path(c.output.dir);
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(out, ec);
  if (st.type() != fs::file_type::not_found && st.type() != fs::file_type::directory)
    throw Error("output.dir '{}' exists and is not a directory ({}); snnsim will not replace it", c.output.dir,
                st.type() == fs::file_type::symlink ? "a symbolic link: give the directory it points to" : "a file");
  if (replaced_whole) {
    // A run replaces output.dir whole: only an earlier run's output (or an
    // empty directory) may go, never a directory of other files.
    if (st.type() == fs::file_type::directory && !fs::is_empty(out, ec)) {
      if (!fs::exists(out / "results.json", ec))
        throw Error("output.dir '{}' is a directory without snnsim results (no results.json); a run replaces its output "
                    "directory whole, so snnsim will not touch this one: choose another output.dir (--out) or empty it",
                    c.output.dir);
      // An earlier report holds only the files a report writes.
      for (const auto& e : fs::directory_iterator(out, ec)) {
        const std::string name = e.path().filename().string();
        const std::string ext = e.path().extension().string();
        const bool ours = e.is_regular_file() && (name == "results.json" || name == "config.resolved.toml" || ext == ".csv" || ext == ".png");
        if (!ours)
          throw Error("output.dir '{}' holds '{}', which no snnsim report writes; a run replaces its output directory whole, "
                      "so snnsim will not touch this one: choose another output.dir (--out) or move '{}' out of it",
                      c.output.dir, name, name);
      }
    }
    const auto inside = [&](const std::string& key, const std::string& path) {
      if (!path.empty() && is_within(path, out))
        throw Error("{} '{}' is inside output.dir '{}', which every run replaces whole; put one of them elsewhere", key, path,
                    c.output.dir);
    };
    inside("output.cache", c.output.cache);
    inside("network.weights", c.network.weights);
    if (c.dataset.name.find('/') != std::string::npos) inside("dataset.name", c.dataset.name);
  }
  const fs::path dir = out.parent_path();
  fs::create_directories(dir, ec);
  if (ec) throw Error("output.dir '{}': cannot create '{}': {}", c.output.dir, dir.string(), ec.message());
  const fs::path probe = dir / fmt::format(".snnsim-write-test-{}", std::random_device{}());
  std::FILE* f = std::fopen(probe.c_str(), "w");
  if (!f) throw Error("output.dir '{}': '{}' is not writable", c.output.dir, dir.string());
  std::fclose(f);
  fs::remove(probe, ec);
}

void publish_report(const Config& c, const RunReport& report, const CommonOptions& options) {
  check_output_writable(c, true);  // again: the directory may have changed during the run
  const fs::path dir = output_path(c.output.dir);
  const fs::path staging = dir.parent_path() / fmt::format(".{}.staging-{}", dir.filename().string(), std::random_device{}());
  try {
    write_report(report, staging, c.output.plots, options.quiet);
    std::error_code ec;
    // A previous run's directory is replaced only once the new one is complete.
    const fs::path old = dir.parent_path() / fmt::format(".{}.old-{}", dir.filename().string(), std::random_device{}());
    if (fs::exists(dir)) {
      fs::rename(dir, old, ec);
      if (ec) throw Error("output.dir '{}': cannot move the previous results aside: {}", c.output.dir, ec.message());
    }
    fs::rename(staging, dir, ec);
    if (ec) throw Error("output.dir '{}': cannot move the new results into place: {}", c.output.dir, ec.message());
    fs::remove_all(old, ec);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
}

namespace {

RunReport base_report(const std::string& command, const Prepared& p) {
  RunReport r;
  r.command = command;
  r.config_toml = to_toml(p.config);
  r.dataset = p.data.name;
  r.train_samples = p.data.train.count;
  r.test_samples = p.data.test.count;
  r.checkpoints = p.config.simulation.checkpoints;
  r.warnings = p.config.warnings;
  return r;
}

void finish(const Prepared& p, RunReport& r, const CommonOptions& options, Clock::time_point start) {
  r.timings["total"] = seconds_since(start);
  publish_report(p.config, r, options);
  if (!options.quiet) {
    fmt::print("{}", summary_table(r));
    fmt::print("results in {}/ (results.json, accuracy_vs_time.csv{})\n", p.config.output.dir,
               p.config.output.plots && have_gnuplot() ? ", plots" : "");
  }
}

// ANN accuracy on exactly the samples the SNN simulates, so the two compare.
double ann_accuracy_on(const WeightSet& w, const Config& c, const Dataset& test) {
  const std::size_t n = c.simulation.limit > 0 ? std::min<std::size_t>(c.simulation.limit, test.count) : test.count;
  conversion::set_blas_threads(training_blas_threads());
  return conversion::evaluate(w.layers, test, c.training.output_relu, n).accuracy;
}

}  // namespace

int run_command(const fs::path& path, const CommonOptions& options) {
  const auto start = Clock::now();
  const Prepared p = prepare(path, options, true);
  RunReport r = base_report("run", p);
  bool cached = false;
  auto t = Clock::now();
  const WeightSet ann = ann_weights(p.config, p.data, options, cached, r.weights);
  r.weights_cached = cached;
  r.timings[cached ? "load_weights" : "training"] = seconds_since(t);
  r.ann_accuracy = ann_accuracy_on(ann, p.config, p.data.test);
  t = Clock::now();
  const WeightSet snn = normalised_weights(p.config, ann, p.data.train, r.warnings);
  r.timings["normalisation"] = seconds_since(t);
  r.normalisation = std::string(to_string(snn.normalisation.method));
  r.normalisation_factors = snn.normalisation.factors;
  simulate_into(p.config, snn, p.data.test, options, r);
  finish(p, r, options, start);
  return 0;
}

int train_command(const fs::path& path, const CommonOptions& options) {
  const Prepared p = prepare(path, options, false);
  bool cached = false;
  std::string source;
  const WeightSet ann = ann_weights(p.config, p.data, options, cached, source);
  fmt::print("ANN weights: {}{}\n", source, cached ? " (cached)" : "");
  if (ann.ann_test_accuracy) fmt::print("ANN test accuracy: {:.2f} %\n", *ann.ann_test_accuracy * 100);
  return 0;
}

int convert_command(const fs::path& path, const CommonOptions& options) {
  const Prepared p = prepare(path, options, true, false);
  bool cached = false;
  std::string source;
  std::vector<std::string> warnings;
  const WeightSet ann = ann_weights(p.config, p.data, options, cached, source);
  const WeightSet snn = normalised_weights(p.config, ann, p.data.train, warnings);
  for (const auto& w : warnings) fmt::print(stderr, "note: {}\n", w);
  const fs::path dir = fs::path(p.config.output.dir) / "weights";
  save_weights(dir, snn);
  fmt::print("{} normalisation, factors [{:.4g}]\nwrote {}\n", to_string(snn.normalisation.method),
             fmt::join(snn.normalisation.factors, ", "), (dir / kManifestFile).string());
  return 0;
}

int simulate_command(const fs::path& path, const CommonOptions& options) {
  const auto start = Clock::now();
  const Prepared p = prepare(path, options, true);
  if (p.config.network.weights.empty())
    throw Error("{}: snnsim simulate needs network.weights (a converted weight directory, e.g. from snnsim convert)",
                path.string());
  RunReport r = base_report("simulate", p);
  const WeightSet given = load_weights(p.config.network.weights);
  r.weights = p.config.network.weights;
  r.ann_accuracy = given.ann_test_accuracy;
  const WeightSet snn = normalised_weights(p.config, given, p.data.train, r.warnings);
  r.normalisation = std::string(to_string(snn.normalisation.method));
  r.normalisation_factors = snn.normalisation.factors;
  simulate_into(p.config, snn, p.data.test, options, r);
  finish(p, r, options, start);
  return 0;
}

}  // namespace snn::tool
