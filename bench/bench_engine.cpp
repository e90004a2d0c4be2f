// bench_engine: the event engine against the dense time-stepped baseline at
// the seed's settings (784-1200-1200-10 on the 1996 mnist10k test images,
// p = 2x; data-normalised: theta 1, 200 steps, the default), printing wall
// time (median of N runs), samples/s, accuracy, SynOps per image and per
// second, the engine's own adds per second against a row-add ceiling
// measured in the same run, the event/dense time ratio and the peak resident
// memory. A program that prints figures, not a timed test.
//
// Weights: --weights DIR reads a trained weight directory (conversion's
// manifest.json + .npy, e.g. from `bench_train --out DIR`); unnormalised
// weights are normalised here as the seed did (--normalise data|model|none,
// data by default, maxima over the training split). Without --weights the
// bench uses random weights whose per-layer scale is tuned (bisection on a
// few images) so that every layer fires as many spikes per image as the
// seed's data-normalised run (shared/reference): the engine's work depends on
// those counts, not on what the weights learned; accuracy is then
// meaningless and is said to be.
#include "snn/conversion/normalise.h"
#include "snn/engine/dense_simulator.h"
#include "snn/engine/engine.h"
#include "snn/error.h"
#include "snn/network/dataset.h"
#include "snn/network/network.h"
#include "snn/network/weights.h"

#include <fmt/core.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

namespace fs = std::filesystem;
using namespace snn;
using namespace snn::engine;

namespace {

// The seed's three SNN runs on this machine kind
// (shared/reference/seed_pytorch_mnist10k.json): settings and figures.
struct Setting {
  const char* name;
  double threshold;
  Step steps;
  double accuracy;   // fraction
  double spikes[4];  // per image: input, layer 1, layer 2, output
  double synops;     // per image
  double seconds;    // the seed's PyTorch loop over the 1996 test images
};
constexpr Setting kSettings[] = {
    {"none", 4.0, 100, 0.968436873747495, {12477.4, 2617.5, 2143.4, 43.4}, 18135309.5, 33.17},
    {"model", 0.25, 200, 0.969939879759519, {24957.2, 3517.9, 1087.3, 295.5}, 34181084.5, 73.06},
    {"data", 1.0, 200, 0.9679358717434869, {24957.6, 4795.7, 11381.3, 140.2}, 35817773.4, 72.02},
};

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

Matrix uniform_matrix(std::mt19937_64& rng, std::size_t out, std::size_t in) {
  Matrix m(out, in);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& w : m.data) w = u(rng);
  return m;
}

Matrix scaled(const Matrix& m, double s) {
  Matrix r = m;
  for (auto& w : r.data) w = static_cast<float>(w * s);
  return r;
}

Network make_network(const std::vector<Matrix>& base, const std::vector<double>& scales, double threshold) {
  std::vector<Matrix> layers;
  for (std::size_t i = 0; i < base.size(); ++i) layers.push_back(scaled(base[i], scales[i]));
  return Network::from_matrices(layers, {NeuronParams{threshold, ResetMode::Subtract, 1.0, 0}});
}

// Scales per layer such that the spikes per image of each population match
// the reference, found by bisection on log(scale), layer by layer (a layer's
// count depends only on the layers before it).
std::vector<double> tune_scales(const std::vector<Matrix>& base, const SampleSet& tuning, const RunOptions& opt,
                                const Setting& setting, double spike_factor = 1.0) {
  std::vector<double> scales(base.size(), 1.0 / 64);
  for (std::size_t l = 0; l < base.size(); ++l) {
    // Wider layers (latency demo): the same spikes per neuron.
    const double target = setting.spikes[l + 1] * (l + 1 < base.size() ? spike_factor : 1.0);
    auto spikes = [&](double s) {
      scales[l] = s;
      const Engine e(make_network(base, scales, setting.threshold));
      return static_cast<double>(e.run(tuning, opt).spikes_per_population()[l + 1]) / static_cast<double>(tuning.count);
    };
    double lo = 1e-5, hi = 10.0;
    for (int it = 0; it < 22; ++it) {
      const double mid = std::sqrt(lo * hi);
      (spikes(mid) < target ? lo : hi) = mid;
    }
    scales[l] = std::sqrt(lo * hi);
  }
  return scales;
}

// How fast one thread (and all threads at once) adds random rows of a
// 784 x 1200 int32 table into an accumulator: the ceiling for fan-out
// delivery from the L2/L3-resident first-layer table.
double row_add_rate(const FixedConnection& fc, int threads, double seconds) {
  std::vector<double> rates(static_cast<std::size_t>(threads), 0.0);
  tbb::task_arena arena(threads);
  arena.execute([&] {
    tbb::parallel_for(0, threads, [&](int k) {
      std::mt19937 rng(static_cast<unsigned>(k) + 1);
      std::vector<Potential> acc(fc.targets, 0);
      std::vector<NeuronId> ids(256);
      std::uint64_t adds = 0;
      const auto start = std::chrono::steady_clock::now();
      double elapsed = 0.0;
      while (elapsed < seconds) {
        for (auto& i : ids) i = rng() % fc.sources;
        for (NeuronId i : ids) {
          const FixedWeight* __restrict r = fc.row(i);
          Potential* __restrict a = acc.data();
          for (std::size_t j = 0; j < fc.targets; ++j) a[j] += r[j];
        }
        adds += ids.size() * fc.targets;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      }
      volatile Potential sink = acc[fc.targets / 2];
      (void)sink;
      rates[static_cast<std::size_t>(k)] = static_cast<double>(adds) / elapsed;
    });
  });
  double total = 0.0;
  for (double r : rates) total += r;
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_engine: event engine vs dense baseline at the seed's settings"};
  std::string data = "mnist10k", weights_dir, normalise = "data";
  std::size_t samples = 0;
  int runs = 5, dense_runs = 1, threads = 0;
  Step steps = 0;
  std::size_t tune_samples = 40;
  bool skip_dense = false, skip_latency = false;
  std::size_t wide = 0;
  std::uint64_t seed = 0;
  app.add_option("--data", data, "dataset name (under $SNNSIM_DATA) or directory");
  app.add_option("--weights", weights_dir, "trained weight directory (default: random weights, tuned)");
  app.add_option("--normalise", normalise,
                 "for unnormalised --weights: data (theta 1, 200 steps), model "
                 "(theta 0.25, 200 steps) or none (theta 4, 100 steps), as the seed")
      ->check(CLI::IsMember({"data", "model", "none"}));
  app.add_option("--samples", samples, "test images to simulate (default: all)");
  app.add_option("--runs", runs, "timed event-engine runs (median reported)")->check(CLI::Range(1, 100));
  app.add_option("--dense-runs", dense_runs, "timed runs of each dense variant")->check(CLI::Range(0, 20));
  app.add_option("--threads", threads, "threads (0: all cores)")->check(CLI::Range(0, 1024));
  app.add_option("--steps", steps, "simulated steps per image (default: the setting's)")->check(CLI::Range(1, 100000));
  app.add_option("--tune-samples", tune_samples, "images used to tune the random weights' scales");
  app.add_option("--seed", seed, "input and random-weight seed");
  app.add_flag("--no-dense", skip_dense, "skip the dense baseline");
  app.add_flag("--no-latency", skip_latency, "skip the latency-mode run");
  app.add_option("--wide", wide, "also time latency mode on a random 784-N-N-10 network (N hidden neurons)");
  CLI11_PARSE(app, argc, argv);

  try {
    const fs::path dir = resolve_dataset(data);
    const Dataset test = read_idx(dir / "t10k-images-idx3-ubyte", dir / "t10k-labels-idx1-ubyte");
    const SampleSet all = SampleSet::of(test, 0, samples);
    const int cores = tbb::info::default_concurrency();
    fmt::print("data      {}: {} test images of {} pixels\n", dir.string(), all.count, all.size);
    fmt::print("machine   {} cores (TBB), {} threads requested\n", cores, threads == 0 ? cores : threads);

    // The network: trained (and normalised here if need be) or random.
    std::vector<Matrix> layers;
    std::string method = normalise;
    bool trained = false;
    if (!weights_dir.empty()) {
      WeightSet ws = load_weights(weights_dir);
      if (ws.normalisation.method == Normalisation::None && normalise != "none") {
        const auto t0 = std::chrono::steady_clock::now();
        conversion::NormaliseOptions no;
        no.method = parse_normalisation(normalise);
        std::optional<Dataset> train;
        if (no.method == Normalisation::Data) train = read_idx(dir / "train-images-idx3-ubyte", dir / "train-labels-idx1-ubyte");
        conversion::normalise(ws, no, train ? &*train : nullptr);
        fmt::print("weights   {}: trained (ANN test accuracy {}), {}-normalised here: factors [{:.3f}] ({:.1f} s)\n", weights_dir,
                   ws.ann_test_accuracy ? fmt::format("{:.2f} %", 100 * *ws.ann_test_accuracy) : "?", normalise,
                   fmt::join(ws.normalisation.factors, ", "),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      } else {
        method = std::string(to_string(ws.normalisation.method));
        fmt::print("weights   {}: trained, normalisation in the file: {}\n", weights_dir, method);
      }
      layers = std::move(ws.layers);
      trained = true;
    }
    const Setting* setting = nullptr;
    for (const Setting& st : kSettings)
      if (method == st.name) setting = &st;
    if (!setting) throw Error("no seed setting for normalisation '{}'", method);

    RunOptions opt;
    opt.steps = steps > 0 ? steps : setting->steps;
    opt.threads = threads;
    opt.input.seed = seed;  // defaults: 400 Hz, dt 5 ms: p = 2x as the seed

    if (!trained) {
      std::mt19937_64 rng(seed + 1);
      const std::vector<Matrix> base{uniform_matrix(rng, 1200, all.size), uniform_matrix(rng, 1200, 1200),
                                     uniform_matrix(rng, 10, 1200)};
      const SampleSet tuning = SampleSet::of(test, 0, std::min(tune_samples, test.count));
      const auto t0 = std::chrono::steady_clock::now();
      const std::vector<double> scales = tune_scales(base, tuning, opt, *setting);
      fmt::print(
          "weights   RANDOM U(-1,1) x per-layer scale [{:.3g}, {:.3g}, {:.3g}] tuned on {} images to the "
          "reference's spikes per image ({:.1f} s); accuracy is meaningless with them\n",
          scales[0], scales[1], scales[2], tuning.count,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      for (std::size_t i = 0; i < base.size(); ++i) layers.push_back(scaled(base[i], scales[i]));
    }
    fmt::print("setting   {}-normalised as the seed: theta {}, {} steps, p = {}x\n", setting->name, setting->threshold, opt.steps,
               opt.input.rate_per_step());
    const Network net = Network::from_matrices(layers, {NeuronParams{setting->threshold, ResetMode::Subtract, 1.0, 0}});
    layers.clear();
    layers.shrink_to_fit();
    const Engine engine(net);
    for (const auto& q : engine.network().reports())
      fmt::print(
          "fixed pt  population {}: k = {} bits, unit {:.3g} theta, max |error| {:.3g} (rms {:.3g}, {:.2g} of "
          "the largest weight), max fan-in sum 2^{:.1f} units\n",
          q.target, q.bits, q.unit / setting->threshold, q.max_abs_error, q.rms_error, q.max_relative_error,
          std::log2(static_cast<double>(std::max<std::int64_t>(q.max_fan_in_sum, 1))));

    // Event engine: one warm-up, then `runs` timed runs.
    RunResult ev = engine.run(all, opt);
    std::vector<double> times;
    for (int r = 0; r < runs; ++r) {
      ev = engine.run(all, opt);
      times.push_back(ev.seconds);
    }
    const double t_ev = median(times);
    const double rss_event = peak_rss_mb();
    const double n = static_cast<double>(all.count);
    const auto pops = ev.spikes_per_population();
    const double synops = static_cast<double>(ev.total_synops());
    const double work = static_cast<double>(ev.total_work());
    fmt::print("\nevent engine ({} threads, {} runs after a warm-up)\n", ev.threads, runs);
    fmt::print("  wall time       median {:.3f} s  (min {:.3f}, max {:.3f})\n", t_ev,
               *std::min_element(times.begin(), times.end()), *std::max_element(times.begin(), times.end()));
    fmt::print("  samples/s       {:.0f}\n", n / t_ev);
    if (trained) {
      const auto curve = ev.accuracy_curve(all.labels);
      std::string at;
      for (Step t : {10, 25, 50, 100, 150, 200})
        if (t <= opt.steps) at += fmt::format("{}: {:.2f}  ", t, 100 * curve[static_cast<std::size_t>(t - 1)]);
      fmt::print("  accuracy        {:.2f} %  (seed's PyTorch run: {:.2f} %)\n", 100 * ev.accuracy(all.labels),
                 100 * setting->accuracy);
      fmt::print("  after step      {}\n", at);
    } else {
      fmt::print("  accuracy        {:.2f} % (random weights: meaningless)\n", 100 * ev.accuracy(all.labels));
    }
    fmt::print(
        "  spikes/image    input {:.0f}, layer1 {:.0f}, layer2 {:.0f}, output {:.1f}  (seed: {:.0f}, {:.0f}, "
        "{:.0f}, {:.1f})\n",
        pops[0] / n, pops[1] / n, pops[2] / n, pops[3] / n, setting->spikes[0], setting->spikes[1], setting->spikes[2],
        setting->spikes[3]);
    const auto per_conn = ev.synops_per_connection();
    const auto work_conn = ev.work_per_connection();
    fmt::print("  SynOps/image    {:.2f} M (conn 0: {:.2f} M, 1: {:.2f} M, 2: {:.3f} M; seed: {:.1f} M)\n", synops / n / 1e6,
               per_conn[0] / n / 1e6, per_conn[1] / n / 1e6, per_conn[2] / n / 1e6, setting->synops / 1e6);
    fmt::print("  dense MACs/img  {:.1f} M  -> SynOps are {:.2f} % of dense\n", ev.dense_macs() / n / 1e6,
               100.0 * synops / static_cast<double>(ev.dense_macs()));
    fmt::print("  engine adds/img {:.2f} M (conn 0: {:.2f} M): {:.1f} % of the SynOps\n", work / n / 1e6, work_conn[0] / n / 1e6,
               100.0 * work / synops);
    fmt::print("  SynOps/s        {:.2f} G (model count)\n", synops / t_ev / 1e9);
    fmt::print("  engine adds/s   {:.2f} G\n", work / t_ev / 1e9);
    const double seed_s = setting->seconds * n / 1996.0;
    fmt::print("  vs seed         {:.1f} x faster than the seed's {:.1f} s (target >= 20 x: <= {:.2f} s)\n", seed_s / t_ev,
               seed_s, seed_s / 20.0);
    fmt::print("  peak RSS        {:.1f} MB (data, weights, network, engine state)\n", rss_event);

    const double ceiling1 = row_add_rate(engine.network().connection(0), 1, 0.3);
    const double ceilingN = row_add_rate(engine.network().connection(0), ev.threads, 0.3);
    fmt::print("  row-add ceiling {:.2f} G adds/s on 1 thread, {:.2f} G on {} (784x1200 int32 table, random rows)\n",
               ceiling1 / 1e9, ceilingN / 1e9, ev.threads);
    fmt::print("  engine adds/s   {:.0f} % of the {}-thread ceiling\n", 100.0 * work / t_ev / ceilingN, ev.threads);

    if (trained) {
      // Early exit (beyond the seed), measured in one run that goes on to the
      // end, then timed with real stops.
      RunOptions ex = opt;
      ex.early_exit.enabled = true;
      ex.early_exit.margin = 3;
      ex.early_exit.hold = 10;
      ex.early_exit.stop = false;
      const RunResult m = engine.run(all, ex);
      double mean_exit = 0.0;
      for (std::size_t i = 0; i < all.count; ++i) mean_exit += m.exit_step[i] < 0 ? opt.steps : m.exit_step[i] + 1;
      std::size_t changed = 0;
      for (std::size_t i = 0; i < all.count; ++i) changed += m.exit_predictions[i] != m.predictions[i];
      ex.early_exit.stop = true;
      const RunResult st = engine.run(all, ex);
      fmt::print(
          "  early exit      lead >= {} spikes for {} steps: accuracy {:.2f} % (full run {:.2f} %), mean exit "
          "after {:.0f} steps, {} predictions differ from the full run's, SynOps {:.2f} M/image ({:.0f} % saved), "
          "{:.3f} s\n",
          ex.early_exit.margin, ex.early_exit.hold, 100 * m.exit_accuracy(all.labels), 100 * m.accuracy(all.labels),
          mean_exit / n, changed, static_cast<double>(m.total_synops_at_exit()) / n / 1e6,
          100.0 * (1.0 - static_cast<double>(m.total_synops_at_exit()) / static_cast<double>(m.total_synops())), st.seconds);
    }

    if (!skip_latency) {
      RunOptions lat = opt;
      lat.parallelism = Parallelism::Targets;
      const RunResult lr = engine.run(all, lat);
      fmt::print("  latency mode    {:.3f} s ({:.2f} ms per image, neurons split over {} threads); identical: {}\n", lr.seconds,
                 1e3 * lr.seconds / n, lr.threads,
                 lr.output_counts == ev.output_counts && lr.population_spikes == ev.population_spikes ? "yes" : "NO");
    }

    if (wide > 0) {
      // Latency mode where it can pay: layers N wide at the seed's rates per
      // neuron, one image at a time, 1 thread vs all.
      std::mt19937_64 rng(seed + 2);
      const std::vector<Matrix> base{uniform_matrix(rng, wide, all.size), uniform_matrix(rng, wide, wide),
                                     uniform_matrix(rng, 10, wide)};
      const SampleSet few = SampleSet::of(test, 0, std::min<std::size_t>(100, all.count));
      const std::vector<double> scales =
          tune_scales(base, SampleSet::of(test, 0, 10), opt, *setting, static_cast<double>(wide) / 1200.0);
      const Network wnet = make_network(base, scales, setting->threshold);
      const Engine wide_engine(wnet);
      RunOptions lat = opt;
      lat.parallelism = Parallelism::Targets;
      lat.threads = 1;
      const RunResult one = wide_engine.run(few, lat);
      lat.threads = threads;
      const RunResult many = wide_engine.run(few, lat);
      const auto wp = many.spikes_per_population();
      fmt::print("\nlatency mode, random 784-{}-{}-10 (spikes/image {:.0f}, {:.0f}, {:.0f}; {:.1f} M adds/image)\n", wide, wide,
                 static_cast<double>(wp[1]) / few.count, static_cast<double>(wp[2]) / few.count,
                 static_cast<double>(wp[3]) / few.count, static_cast<double>(many.total_work()) / few.count / 1e6);
      fmt::print("  per image       {:.2f} ms on 1 thread, {:.2f} ms on {} ({:.2f} x); identical: {}\n",
                 1e3 * one.seconds / few.count, 1e3 * many.seconds / few.count, many.threads, one.seconds / many.seconds,
                 one.population_spikes == many.population_spikes ? "yes" : "NO");
      fmt::print("  peak RSS        {:.1f} MB\n", peak_rss_mb());
    }

    if (!skip_dense && dense_runs > 0) {
      const DenseSimulator dense(engine.shared_network());
      for (bool pre : {false, true}) {
        DenseOptions dopt;
        dopt.precompute_first_layer = pre;
        std::vector<double> dt;
        RunResult dr;
        for (int r = 0; r < dense_runs; ++r) {
          dr = dense.run(all, opt, dopt);
          dt.push_back(dr.seconds);
        }
        const double t_de = median(dt);
        const bool same = dr.output_counts == ev.output_counts && dr.population_spikes == ev.population_spikes &&
                          dr.predictions == ev.predictions && dr.synops == ev.synops;
        fmt::print("\ndense baseline{} (batch {}, OpenBLAS sgemm, {} threads, {} run{})\n",
                   pre ? ", first layer precomputed" : "", dopt.batch, dr.threads, dense_runs, dense_runs > 1 ? "s" : "");
        fmt::print("  wall time       median {:.3f} s, {:.0f} samples/s, {:.1f} GMAC/s\n", t_de, n / t_de,
                   static_cast<double>(dr.total_work()) / t_de / 1e9);
        fmt::print("  same spikes, counts, predictions, SynOps as the event engine: {}\n", same ? "yes" : "NO");
        fmt::print("  event engine is {:.2f} x faster\n", t_de / t_ev);
      }
      fmt::print("\npeak RSS after the dense runs: {:.1f} MB\n", peak_rss_mb());
    }
  } catch (const Error& e) {
    fmt::print(stderr, "bench_engine: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
