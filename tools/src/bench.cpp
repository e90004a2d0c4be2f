#include "snn/tool/bench.h"

#include "bench_parts.h"
#include "snn/conversion/layers.h"
#include "snn/engine/dense_simulator.h"
#include "snn/engine/engine.h"
#include "snn/error.h"
#include "snn/network/atomic_file.h"
#include "snn/tool/bench_random.h"
#include "snn/tool/interrupt.h"
#include "snn/tool/mpi.h"
#include "snn/tool/pipeline.h"
#include "snn/tool/row_add_bound.h"
#include "snn/tool/weight_cache.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

namespace snn::tool {

using bench_parts::BenchNetwork;
using bench_parts::first_difference;
using bench_parts::Timing;

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return in ? fmt::format("{} {} {}", a, b, c) : "unknown";
}

namespace bench_parts {

std::string first_difference(const engine::RunResult& a, const engine::RunResult& b) {
  if (a.population_spikes != b.population_spikes) return "spike counts";
  if (a.output_counts != b.output_counts) return "output spike counts";
  if (a.step_predictions != b.step_predictions) return "predictions after some step";
  if (a.predictions != b.predictions) return "final predictions";
  if (a.synops != b.synops) return "SynOps";
  if (a.bias_ops != b.bias_ops) return "bias additions";
  return "";
}

std::size_t bench_samples(const Config& c, const CommonOptions& options, const BenchOptions& bench, std::size_t available) {
  // --limit (or simulation.limit) wins; otherwise --samples, so that the dense
  // baseline's six timed runs keep the whole bench near a minute.
  std::size_t n = available;
  if (options.limit && *options.limit > 0)
    n = static_cast<std::size_t>(*options.limit);
  else if (bench.samples > 0)
    n = static_cast<std::size_t>(bench.samples);
  else if (c.simulation.limit > 0)
    n = static_cast<std::size_t>(c.simulation.limit);
  return std::min(n, available);
}

std::string shapes_of(const Network& net) {
  std::vector<std::string> shapes;
  for (const auto& p : net.populations()) shapes.push_back(to_string(p.shape));
  return fmt::format("{}", fmt::join(shapes, "-"));
}

std::string report_line(const std::string& key, const std::string& value) { return fmt::format("  {:<38} {}\n", key, value); }

std::string header_lines(const BenchNetwork& net, const std::string& load_before, const std::string& load_after) {
  return report_line("network", shapes_of(net.network)) + report_line("weights", net.weights) +
         report_line("load average (1, 5, 15 min)",
                     fmt::format("{} before, {} after ({} cores)", load_before, load_after, std::thread::hardware_concurrency()));
}

}  // namespace bench_parts

namespace {

// Peak resident memory since the last reset_peak_rss(): /proc/self/status's
// VmHWM, which /proc/self/clear_refs can reset (Linux >= 4.0); getrusage's
// process-lifetime peak where /proc cannot be read.
double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// Training and data-based normalisation (a ConvNet's im2col batches) peak far
// above the simulation; the bench measures the simulators, so the peak is
// reset once they start. Returns false if the kernel does not allow it.
bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return clear.good();
}

// One weight width's event engine: its quantised network, runs and results.
struct Precision {
  int bits = 32;
  std::shared_ptr<const engine::FixedNetwork> fixed;
  int tables_shared_by = 1;  // ranks of a node reading one copy of its tables (mpi::share_tables)
  engine::RunResult result;  // the untimed run's
  std::string differs;       // against the dense baseline on the same quantised weights ("" = identical)
  Timing time;
  std::vector<RowAddBound> bound;
};

// "16/13/12": the fixed-point k each connection used.
std::string bits_used(const engine::FixedNetwork& f) {
  std::string out;
  for (const auto& r : f.reports()) {
    if (!out.empty()) out += '/';
    out += fmt::format("{}", r.bits);
  }
  return out;
}

// The config's trained network (normalised as it says), or random weights.
BenchNetwork bench_network(const Prepared& p, const CommonOptions& options, const BenchOptions& bench) {
  const Config& c = p.config;
  if (bench.random_weights || bench.random_width > 0) {
    const RandomWeights r = random_weights(c, p.data.train, static_cast<std::size_t>(bench.tune_samples), bench.random_rate);
    std::vector<std::string> layers;
    for (std::size_t l = 0; l < r.scales.size(); ++l)
      layers.push_back(fmt::format("x{:.3g} -> {:.4f} (want {:.4f}{})", r.scales[l], r.reached[l], r.target[l],
                                   std::abs(r.reached[l] / r.target[l] - 1) > 0.1 ? ": NOT reached, the scales tried "
                                                                                    "(1e-5 to 10) cannot get there"
                                                                                  : ""));
    return {build_network(c, r.weights), true,
            fmt::format("RANDOM (seed training.seed = {}; accuracy meaningless), scaled per layer until each fires the "
                        "spikes per neuron and step of {}, on {} training images ({:.1f} s): {}",
                        c.training.seed, r.rule, r.tune_samples, r.seconds, fmt::join(layers, ", "))};
  }
  const AnnWeights ann = ann_weights(c, p.data, options);
  const WeightSet w = normalised_weights(c, ann.weights, p.data.train).weights;
  return {
      build_network(c, w), false,
      fmt::format(
          "{} {}{}, {}-normalised",
          ann.kind == "onnx"      ? "the ONNX model"
          : ann.kind == "weights" ? "network.weights"
          : ann.cached            ? "trained by snnsim, from the cache"
                                  : "trained by snnsim just now, cached in",
          ann.source,
          ann.weights.ann_test_accuracy ? fmt::format(", ANN test accuracy {:.2f} %", 100 * *ann.weights.ann_test_accuracy) : "",
          to_string(w.normalisation.method))};
}

// The config with the options' overrides and, for --random-width N,
// network.hidden = [N, N] after every other override, read once. A config the
// --random-width override does not fit (a layer list, an ONNX model,
// per-population settings sized for its own layers) is refused naming the
// option, not only the key it set.
struct BenchConfig {
  CommonOptions options;  // with the --random-width override, if any
  Config config;
};
BenchConfig bench_config(const std::filesystem::path& path, const CommonOptions& options, const BenchOptions& bench) {
  CommonOptions o = options;
  if (bench.random_width <= 0) return {o, load_config(path, overrides_of(o))};
  o.set.push_back(fmt::format("network.hidden=[{0}, {0}]", bench.random_width));
  try {
    Config c = load_config(path, overrides_of(o));
    return {std::move(o), std::move(c)};
  } catch (const Error& e) {
    load_config(path, overrides_of(options));  // the config's own mistake, if it has one, said as always
    throw Error(
        "--random-width {0} times a random 784-{0}-{0}-10 MLP (network.hidden = [{0}, {0}]), which {1} does not "
        "allow: {2}; use --random-weights to time its own network with random weights",
        bench.random_width, path.string(), e.what());
  }
}

// What the phases of the throughput bench share, filled in phase by phase:
// bench_command's set-up, time_runs, compare; the reports only read it.
struct Bench {
  const std::filesystem::path& path;
  const Prepared& p;
  const BenchNetwork& bn;
  const CommonOptions& options;
  const BenchOptions& bench;
  std::string load_before;
  // Before the simulators.
  double rss_before = 0;
  bool rss_reset = false;
  std::vector<Precision> prec{};  // the config's width first
  std::size_t n = 0;
  engine::SampleSet samples{};
  engine::RunOptions ro{};
  int threads = 0;
  engine::DenseOptions per_step{}, chunked{};
  FanOutFormat first{};
  bool with_chunk = false;
  // The runs: the event engine's are each width's Precision.
  double rss_event = 0, rss_all = 0;
  bool exit_on = false;
  engine::RunResult dn_result{}, dc_result{};     // the dense baselines' first timed runs
  engine::RunResult stop_result{}, off_result{};  // early exit stopping and off: the last timed runs
  Timing t_dense{}, t_chunk{}, t_stop{}, t_off{};
  // The comparisons: against the config's width's event run ("" = identical).
  std::string diff_step{}, diff_chunk{};
};

// Every table width, the config's first: its tables are the ones the dense
// baselines time and the main table reports.
std::vector<Precision> precisions(const Network& net, const Config& c) {
  std::vector<Precision> prec;
  for (int b : {c.simulation.weight_bits, 32, 16, 8})
    if (std::none_of(prec.begin(), prec.end(), [&](const Precision& x) { return x.bits == b; })) {
      Precision x;
      x.bits = b;
      auto fixed = std::make_shared<engine::FixedNetwork>(net, c.simulation.fixed_point_bits, b);
      x.tables_shared_by = mpi::share_tables(*fixed);  // ranks on a node read one copy, as threads do
      x.fixed = std::move(fixed);
      prec.push_back(std::move(x));
    }
  return prec;
}

// The samples, run options and dense variants every run uses.
void set_up_runs(Bench& b) {
  const Config& c = b.p.config;
  const Dataset& test = b.p.data.test;
  b.n = bench_parts::bench_samples(c, b.options, b.bench, test.count);
  b.samples = engine::SampleSet::of(test, 0, b.n);
  b.ro = run_options(c);
  b.ro.progress = [](std::size_t, std::size_t) { throw_if_interrupted(); };
  b.threads = engine::effective_threads(b.ro);
  b.per_step.batch = static_cast<std::size_t>(c.simulation.batch_size);
  b.chunked = b.per_step;
  b.chunked.precompute_first_layer = true;
  // The precompute variant turns connection 0 into one big GEMM over a chunk
  // of steps; it exists for dense and sparse tables only (a conv or pool first
  // layer would silently run as the per-step baseline), so it is skipped.
  b.first = b.prec.front().fixed->connection(0).format;
  b.with_chunk = b.first == FanOutFormat::Dense || b.first == FanOutFormat::Sparse;
}

// Under MPI each simulator shares the samples over the ranks (mpi.h); the
// times are the slowest rank's, gather included.
engine::RunResult run_event(const Bench& b, const std::shared_ptr<const engine::FixedNetwork>& f) {
  const engine::Engine e(f);
  return mpi::run_sharded(b.samples, [&](const engine::SampleSet& s) { return e.run(s, b.ro); });
}
engine::RunResult run_dense(const Bench& b, const engine::DenseSimulator& d, const engine::DenseOptions& o) {
  return mpi::run_sharded(b.samples, [&](const engine::SampleSet& s) { return d.run(s, b.ro, o); });
}

// One untimed event run of each width, then bench.repeat timed rounds of
// every simulator, with the peak RSS after each stage.
void time_runs(Bench& b, const engine::Engine& event, const engine::DenseSimulator& dense) {
  const Config& c = b.p.config;
  if (!b.options.quiet)
    fmt::print(stderr, "bench: {} samples x {} steps, {} threads, {} timed runs of each simulator, weights of {} bits\n", b.n,
               c.simulation.steps, b.threads, b.bench.repeat, c.simulation.weight_bits);
  // One untimed event run first (pages in weights and data, sizes buffers); its
  // peak RSS is the event engine's alone, before the dense baseline allocates.
  for (auto& x : b.prec) x.result = run_event(b, x.fixed);
  b.rss_event = peak_rss_mb();

  // With early exit on: the event engine once more with samples stopped at
  // their exit and once without early exit, to show the time it saves.
  b.exit_on = c.simulation.early_exit != EarlyExitMode::Off;
  engine::RunOptions ro_stop = b.ro, ro_off = b.ro;
  ro_stop.early_exit.stop = true;
  ro_off.early_exit.enabled = false;
  for (int r = 0; r < b.bench.repeat; ++r) {
    if (b.exit_on) {
      b.stop_result = event.run(b.samples, ro_stop);
      b.t_stop.seconds.push_back(b.stop_result.seconds);
      b.off_result = event.run(b.samples, ro_off);
      b.t_off.seconds.push_back(b.off_result.seconds);
    }
    // Alternating, so a slow spell of the shared machine hits all of them alike.
    // OpenBLAS's threads spin for a while after a GEMM (the dense runs, the
    // normalisation); stopped here, they do not steal the event engine's cores.
    conversion::release_blas_threads();
    for (auto& x : b.prec) x.time.seconds.push_back(run_event(b, x.fixed).seconds);
    auto d = run_dense(b, dense, b.per_step);
    b.t_dense.seconds.push_back(d.seconds);
    engine::RunResult dc;
    if (b.with_chunk) {
      dc = run_dense(b, dense, b.chunked);
      b.t_chunk.seconds.push_back(dc.seconds);
    }
    if (r == 0) {
      b.dn_result = std::move(d);
      b.dc_result = std::move(dc);
    }
    if (!b.options.quiet) {
      std::string ev;
      for (const auto& x : b.prec) ev += fmt::format("event/{} {:.3f} s, ", x.bits, x.time.seconds.back());
      fmt::print(stderr, "  run {}/{}: {}dense {:.3f} s{}\n", r + 1, b.bench.repeat, ev, b.t_dense.seconds.back(),
                 b.with_chunk ? fmt::format(", dense+precompute {:.3f} s", b.t_chunk.seconds.back()) : "");
    }
  }
  b.rss_all = peak_rss_mb();
}

// Whether each width's event run equals the dense baseline's, and each
// width's row-add bound (unless --no-bound).
void compare(Bench& b) {
  const engine::RunResult& ev = b.prec.front().result;
  b.diff_step = first_difference(ev, b.dn_result);
  b.diff_chunk = b.with_chunk ? first_difference(ev, b.dc_result) : "";
  b.prec.front().differs = b.diff_step.empty() ? b.diff_chunk : b.diff_step;
  // The other widths against the dense baseline on their own quantised weights
  // (untimed: the dense baseline's time does not depend on the width; the
  // precompute variant where it applies, which is the faster one).
  for (std::size_t i = 1; i < b.prec.size(); ++i)
    b.prec[i].differs = first_difference(
        b.prec[i].result, run_dense(b, engine::DenseSimulator(b.prec[i].fixed), b.with_chunk ? b.chunked : b.per_step));
  if (!b.bench.skip_bound)
    for (auto& x : b.prec)
      x.bound = measure_row_add_bound(b.prec.front().fixed->connection(0).targets, b.threads, 0.3, 3, x.bits);
}

// What the text and JSON reports both say, per sample where it is a count.
struct Figures {
  double dn = 0;                // samples, as a double
  double synops = 0, work = 0;  // per sample: the event engine's SynOps and the adds it did
  double macs = 0;              // per sample: the dense baseline's
  double te = 0;                // the event engine's median time (the config's width)
  double best_dense = 0;        // the faster dense variant's median time
  double t32 = 0;               // the 32-bit tables' median time
  double accuracy = 0;          // the event engine's
  double mean_steps = 0;        // steps simulated per sample, early exit stopping (0 if off)
  std::string load_after;
  const SeedSetting* seed = nullptr;  // the seed notebook's loop, if the config is one of its settings
};

Figures figures(const Bench& b) {
  const engine::RunResult& ev = b.prec.front().result;
  Figures f;
  f.dn = static_cast<double>(b.n);
  f.synops = static_cast<double>(ev.total_synops()) / f.dn;
  f.work = static_cast<double>(ev.total_work()) / f.dn;
  f.macs = static_cast<double>(ev.dense_macs()) / f.dn;
  f.best_dense = b.with_chunk ? std::min(b.t_dense.median(), b.t_chunk.median()) : b.t_dense.median();
  f.te = b.prec.front().time.median();
  f.accuracy = ev.accuracy(b.samples.labels);
  f.load_after = load_average();
  f.seed = seed_setting(b.p.config);
  if (b.exit_on) {
    for (auto st : b.stop_result.steps_simulated) f.mean_steps += static_cast<double>(st);
    f.mean_steps /= f.dn;
  }
  f.t32 = f.te;
  for (const auto& x : b.prec)
    if (x.bits == 32) {
      f.t32 = x.time.median();
      break;
    }
  return f;
}

// The main table: the event engine against the dense baselines on the
// config's width, and what the runs say about the network.
std::string report_main(const Bench& b, const Figures& f) {
  const Config& c = b.p.config;
  const Network& net = b.bn.network;
  const engine::RunResult& ev = b.prec.front().result;
  const Timing& t_event = b.prec.front().time;
  const double dn = f.dn, te = f.te;
  std::string out;
  auto line = [&](const std::string& k, const std::string& v) { out += bench_parts::report_line(k, v); };
  out += fmt::format("snnsim bench {}: {} samples x {} steps on {}, {} threads (median of {} runs)\n", b.path.string(), b.n,
                     c.simulation.steps, b.p.data.name, b.threads, b.bench.repeat);
  out += bench_parts::header_lines(b.bn, b.load_before, f.load_after);
  out += fmt::format("  {:<38} {:>12} {:>14} {:>18}\n", "", "event", "dense/step", "dense+precompute");
  auto trio = [&](const std::string& k, const std::string& e, const std::string& d, const std::string& dc) {
    out += fmt::format("  {:<38} {:>12} {:>14} {:>18}\n", k, e, d, dc);
  };
  const std::string na = "n/a";
  auto secs = [&](const Timing& t) { return t.seconds.empty() ? na : fmt::format("{:.3f} s", t.median()); };
  auto range = [&](const Timing& t) { return t.seconds.empty() ? na : fmt::format("{:.3f}-{:.3f}", t.min(), t.max()); };
  trio("wall time (median)", secs(t_event), secs(b.t_dense), secs(b.t_chunk));
  trio("wall time (range)", range(t_event), range(b.t_dense), range(b.t_chunk));
  trio("samples/s", fmt::format("{:.0f}", dn / te), fmt::format("{:.0f}", dn / b.t_dense.median()),
       b.with_chunk ? fmt::format("{:.0f}", dn / b.t_chunk.median()) : na);
  trio("ops/sample (SynOps | MACs)", fmt::format("{:.4g} M", f.synops / 1e6), fmt::format("{:.4g} M", f.macs / 1e6),
       b.with_chunk ? fmt::format("{:.4g} M", f.macs / 1e6) : na);
  trio("ops/s (SynOps | MAC)", fmt::format("{:.3g} G", f.synops * dn / te / 1e9),
       fmt::format("{:.3g} G", f.macs * dn / b.t_dense.median() / 1e9),
       b.with_chunk ? fmt::format("{:.3g} G", f.macs * dn / b.t_chunk.median() / 1e9) : na);
  line("speed-up, event vs best dense", fmt::format("{:.2f}x", f.best_dense / te));
  line("speed-up, event vs dense per step", fmt::format("{:.2f}x", b.t_dense.median() / te));
  // The seed notebook's PyTorch + snntorch loop, measured once on this
  // machine kind, scaled to these samples: a reference, not a same-run figure.
  if (f.seed)
    line("speed-up, event vs the seed's loop",
         fmt::format("{:.1f}x (its {:.2f} s for 1996 images, {:.3f} s for {}; measured in another session)",
                     f.seed->seconds * dn / 1996.0 / te, f.seed->seconds, f.seed->seconds * dn / 1996.0, b.n));
  line("dense MACs per SynOp", fmt::format("{:.1f}", f.macs / f.synops));
  std::vector<std::string> per_pop;
  for (auto x : ev.spikes_per_population()) per_pop.push_back(fmt::format("{:.1f}", static_cast<double>(x) / dn));
  line("spikes per sample (input first)", fmt::format("{}", fmt::join(per_pop, ", ")));
  const auto per_conn = ev.synops_per_connection();
  for (std::size_t l = 0; l < per_conn.size(); ++l) {
    const auto& conn = net.connection(l);
    const double dense_l = static_cast<double>(ev.dense_macs_per_step[l]) * c.simulation.steps;
    line(fmt::format("  {}->{} ({})", net.population(conn.source()).name, net.population(conn.target()).name,
                     to_string(conn.format())),
         fmt::format("{:.4g} M SynOps vs {:.4g} M MACs ({:.1f}x)", per_conn[l] / dn / 1e6, dense_l / 1e6,
                     per_conn[l] > 0 ? dense_l * dn / per_conn[l] : 0.0));
  }
  line("engine adds/sample (done)", fmt::format("{:.4g} M ({:.0f} % of SynOps)", f.work / 1e6, 100 * f.work / f.synops));
  line("engine adds/s (done)", fmt::format("{:.3g} G", f.work * dn / te / 1e9));
  for (const auto& x : b.prec.front().bound)
    line(fmt::format("row-add bound {} ({:.1f} MB)", x.level, x.bytes / 1e6),
         fmt::format("{:.3g} G adds/s; engine at {:.0f} % (SynOps {:.0f} %)", x.adds_per_second / 1e9,
                     100 * f.work * dn / te / x.adds_per_second, 100 * f.synops * dn / te / x.adds_per_second));
  line("peak RSS before simulating",
       fmt::format("{:.1f} MB (loading, training or random-weight tuning, normalisation{})", b.rss_before,
                   b.rss_reset ? "; reset before the simulators" : "; could not reset: below include it"));
  if (b.exit_on) {
    line("early exit (stop): wall time (median)",
         fmt::format("{:.3f} s, without early exit {:.3f} s: {:.0f} % saved", b.t_stop.median(), b.t_off.median(),
                     100 * (1 - b.t_stop.median() / b.t_off.median())));
    line("early exit (stop): steps/sample, accuracy",
         fmt::format("{:.1f} of {}, {:.2f} % (without early exit {:.2f} %)", f.mean_steps, c.simulation.steps,
                     b.stop_result.accuracy(b.samples.labels) * 100, b.off_result.accuracy(b.samples.labels) * 100));
  }
  line("peak RSS after event runs", fmt::format("{:.1f} MB", b.rss_event));
  line("peak RSS after dense runs", fmt::format("{:.1f} MB", b.rss_all));
  line("SNN accuracy", fmt::format("{:.2f} %{}", f.accuracy * 100, b.bn.random ? " (random weights: meaningless)" : ""));
  line("event == dense per step",
       b.diff_step.empty() ? "yes: every spike count and prediction" : "NO: " + b.diff_step + " differ");
  if (b.with_chunk)
    line("event == dense + precompute",
         b.diff_chunk.empty() ? "yes: every spike count and prediction" : "NO: " + b.diff_chunk + " differ");
  else
    line("dense + precompute",
         fmt::format("skipped: the first connection is {}, the variant is for dense tables only", to_string(b.first)));
  return out;
}

// Each table width: the same samples, runs alternating with the others; then
// the other widths' row-add bounds below L3, and the MPI ranks if any.
std::string report_precisions(const Bench& b, const Figures& f) {
  std::string out;
  out += fmt::format("  weight precision (event engine; dense baseline on the same quantised weights):\n");
  out += fmt::format("  {:>6} {:>12} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10} {:>14} {:>8}\n", "bits", "k per conn", "tables MB",
                     "time (s)", "vs 32", "vs dense", "accuracy", "adds/s", "L3 bound", "== dense");
  for (const auto& x : b.prec) {
    const double tx = x.time.median();
    const double adds = static_cast<double>(x.result.total_work()) / tx;  // its own spikes: widths may differ
    std::string l3 = "-";
    for (const auto& y : x.bound)
      if (y.level == "L3") l3 = fmt::format("{:.3g} G {:.0f} %", y.adds_per_second / 1e9, 100 * adds / y.adds_per_second);
    out += fmt::format("  {:>6} {:>12} {:>10.2f} {:>10.3f} {:>8.2f}x {:>8.1f}x {:>8.2f}% {:>8.3g} G {:>14} {:>8}\n", x.bits,
                       bits_used(*x.fixed), static_cast<double>(x.fixed->bytes()) / 1e6, tx, f.t32 / tx, f.best_dense / tx,
                       100 * x.result.accuracy(b.samples.labels), adds / 1e9, l3, x.differs.empty() ? "yes" : "NO");
  }
  auto line = [&](const std::string& k, const std::string& v) { out += bench_parts::report_line(k, v); };
  for (std::size_t i = 1; i < b.prec.size(); ++i)  // the config's width's levels are printed above
    for (const auto& y : b.prec[i].bound)
      if (y.level != "L3")
        line(fmt::format("row-add bound {}, {}-bit ({:.1f} MB)", y.level, b.prec[i].bits, y.bytes / 1e6),
             fmt::format("{:.3g} G adds/s; engine at {:.0f} %", y.adds_per_second / 1e9,
                         100 * static_cast<double>(b.prec[i].result.total_work()) / b.prec[i].time.median() / y.adds_per_second));
  if (mpi::distributed())
    line("MPI ranks", fmt::format("{} x {} threads (peak RSS: rank 0's); tables MB: {}", mpi::size(), b.threads,
                                  mpi::table_sharing(b.prec.front().tables_shared_by)));
  return out;
}

nlohmann::json timing_json(const Timing& t) {
  return nlohmann::json{{"median", t.median()}, {"min", t.min()}, {"max", t.max()}, {"runs", t.seconds}};
}

nlohmann::json bound_json(const std::vector<RowAddBound>& bound) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& x : bound) out.push_back({{"level", x.level}, {"bytes", x.bytes}, {"adds_per_second", x.adds_per_second}});
  return out;
}

// The figures of both text tables, for --json.
nlohmann::json report_json(const Bench& b, const Figures& f) {
  const Config& c = b.p.config;
  const engine::RunResult& ev = b.prec.front().result;
  const double dn = f.dn, te = f.te;
  nlohmann::json j;
  j["config"] = b.path.string();
  j["samples"] = b.n;
  j["steps"] = c.simulation.steps;
  j["threads"] = b.threads;
  j["ranks"] = mpi::size();
  j["repeat"] = b.bench.repeat;
  j["accuracy"] = f.accuracy;
  j["mode"] = "throughput";
  j["network"] = bench_parts::shapes_of(b.bn.network);
  j["random_weights"] = b.bn.random;
  std::vector<double> spikes;
  for (auto x : ev.spikes_per_population()) spikes.push_back(static_cast<double>(x) / dn);
  j["spikes_per_sample"] = spikes;
  j["load_average"] = {{"before", b.load_before}, {"after", f.load_after}};
  j["seed_speedup"] = f.seed ? nlohmann::json(f.seed->seconds * dn / 1996.0 / te) : nlohmann::json(nullptr);
  j["event"] = {{"seconds", timing_json(b.prec.front().time)},
                {"synops_per_sample", f.synops},
                {"adds_per_sample", f.work},
                {"peak_rss_mb", b.rss_event}};
  j["dense"] = {{"seconds", timing_json(b.t_dense)}, {"macs_per_sample", f.macs}, {"batch", b.per_step.batch}};
  if (b.with_chunk)
    j["dense_precompute"] = {{"seconds", timing_json(b.t_chunk)}, {"macs_per_sample", f.macs}};
  else
    j["dense_precompute"] = nullptr;
  j["speedup_vs_best_dense"] = f.best_dense / te;
  if (b.exit_on)
    j["early_exit"] = {{"stop_seconds", timing_json(b.t_stop)},
                       {"no_exit_seconds", timing_json(b.t_off)},
                       {"time_saved", 1 - b.t_stop.median() / b.t_off.median()},
                       {"mean_steps_simulated", f.mean_steps},
                       {"accuracy", b.stop_result.accuracy(b.samples.labels)},
                       {"no_exit_accuracy", b.off_result.accuracy(b.samples.labels)}};
  j["peak_rss_mb"] = b.rss_all;
  j["peak_rss_before_simulating_mb"] = b.rss_before;
  j["peak_rss_reset"] = b.rss_reset;
  j["identical"] = {{"dense", b.diff_step.empty()},
                    {"dense_precompute", b.with_chunk ? nlohmann::json(b.diff_chunk.empty()) : nlohmann::json(nullptr)}};
  j["row_add_bound"] = bound_json(b.prec.front().bound);
  nlohmann::json pj = nlohmann::json::array();
  for (const auto& x : b.prec) {
    std::vector<int> ks;
    for (const auto& r : x.fixed->reports()) ks.push_back(r.bits);
    pj.push_back({{"weight_bits", x.bits},
                  {"fixed_point_bits", ks},
                  {"table_bytes", x.fixed->bytes()},
                  {"tables_shared_by", x.tables_shared_by},
                  {"seconds", timing_json(x.time)},
                  {"accuracy", x.result.accuracy(b.samples.labels)},
                  {"speedup_vs_32", f.t32 / x.time.median()},
                  {"speedup_vs_best_dense", f.best_dense / x.time.median()},
                  {"identical_to_dense", x.differs.empty()},
                  {"row_add_bound", bound_json(x.bound)}});
  }
  j["precisions"] = pj;
  return j;
}

}  // namespace

int bench_command(const std::filesystem::path& path, const CommonOptions& common, const BenchOptions& bench) {
  // Before any loading or training: every rank would do that work first.
  if (bench.latency && mpi::distributed())
    throw Error("--latency times one process's threads working on one sample; run it without mpirun");
  BenchConfig bc = bench_config(path, common, bench);
  const CommonOptions& options = bc.options;
  const std::string load_before = load_average();
  const Prepared p = prepare(std::move(bc.config), options, false);
  const BenchNetwork bn = bench_network(p, options, bench);
  if (bench.latency) return bench_parts::latency_bench(path, p, bn, options, bench, load_before);

  Bench b{path, p, bn, options, bench, load_before};
  b.rss_before = peak_rss_mb();
  b.rss_reset = reset_peak_rss();
  b.prec = precisions(bn.network, p.config);
  const engine::Engine event(b.prec.front().fixed);
  const engine::DenseSimulator dense(b.prec.front().fixed);
  set_up_runs(b);
  time_runs(b, event, dense);
  compare(b);

  const Figures f = figures(b);
  const std::string out = report_main(b, f) + report_precisions(b, f);
  const bool all_same = std::all_of(b.prec.begin(), b.prec.end(), [](const Precision& x) { return x.differs.empty(); });
  if (mpi::distributed()) mpi::barrier();  // every rank done before rank 0 reports
  if (!mpi::is_root()) return all_same ? 0 : 3;
  fmt::print("{}", out);
  if (!bench.json.empty()) write_file_atomically(bench.json, report_json(b, f).dump(1) + "\n");
  return all_same ? 0 : 3;
}

}  // namespace snn::tool
