// bench_engine: the event engine against the dense time-stepped baseline at
// the seed's data-normalised setting (784-1200-1200-10, theta 1, 200 steps,
// p = 2x, the 1996 mnist10k test images), printing wall time (median of N
// runs), samples/s, SynOps per image and per second, the engine's own adds
// per second against a row-add ceiling measured here, the event/dense time
// ratio and the peak resident memory. A program that prints figures, not a
// timed test.
//
// Weights: a weight directory (--weights, the conversion's manifest.json +
// .npy, once that reader is merged) is not read yet; until trained weights
// are available the bench uses random weights whose per-layer scale is tuned
// (bisection on a few images) so that every layer fires as many spikes per
// image as the seed's data-normalised run did (shared/reference): the work
// the engine does depends on those counts, not on what the weights learned.
// Accuracy is then meaningless and is not reported as such.
#include "snn/engine/dense_simulator.h"
#include "snn/engine/engine.h"
#include "snn/error.h"
#include "snn/network/dataset.h"
#include "snn/network/network.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

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

// Spikes per image of the seed's data-normalised run (input, layer 1, layer 2,
// output): shared/reference/seed_pytorch_mnist10k.json, snn_datanorm.
constexpr double kReferenceSpikes[4] = {24957.6, 4795.7, 11381.3, 140.2};
constexpr double kReferenceSynops = 35817773.4;
constexpr double kSeedSeconds = 72.0;  // the seed's PyTorch loop, same run, this machine kind

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

// Stop-gap raw IDX reader for the bench until the data branch's
// snn::read_idx is merged (same format: big-endian header, then bytes).
Dataset read_test_split(const fs::path& dir) {
  auto be32 = [](const unsigned char* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
  };
  auto slurp = [](const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot open '{}'", path.string());
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
  };
  const auto img = slurp(dir / "t10k-images-idx3-ubyte");
  const auto lab = slurp(dir / "t10k-labels-idx1-ubyte");
  if (img.size() < 16 || be32(img.data()) != 0x803) throw Error("'{}': not an idx3-ubyte file", dir.string());
  if (lab.size() < 8 || be32(lab.data()) != 0x801) throw Error("'{}': not an idx1-ubyte file", dir.string());
  Dataset d;
  d.count = be32(img.data() + 4);
  d.rows = be32(img.data() + 8);
  d.cols = be32(img.data() + 12);
  if (img.size() != 16 + d.count * d.rows * d.cols || lab.size() != 8 + d.count || be32(lab.data() + 4) != d.count)
    throw Error("'{}': image and label files disagree or are truncated", dir.string());
  d.pixels.assign(img.begin() + 16, img.end());
  d.labels.assign(lab.begin() + 8, lab.end());
  return d;
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

Network make_network(const std::vector<Matrix>& base, const std::vector<double>& scales) {
  std::vector<Matrix> layers;
  for (std::size_t i = 0; i < base.size(); ++i) layers.push_back(scaled(base[i], scales[i]));
  return Network::from_matrices(layers, {NeuronParams{1.0, ResetMode::Subtract, 1.0, 0}});
}

// Scales per layer such that the spikes per image of each population match
// the reference, found by bisection on log(scale), layer by layer (a layer's
// count depends only on the layers before it).
std::vector<double> tune_scales(const std::vector<Matrix>& base, const SampleSet& tuning, const RunOptions& opt) {
  std::vector<double> scales(base.size(), 1.0 / 64);
  for (std::size_t l = 0; l < base.size(); ++l) {
    const double target = kReferenceSpikes[l + 1];
    auto spikes = [&](double s) {
      scales[l] = s;
      const Engine e(make_network(base, scales));
      return static_cast<double>(e.run(tuning, opt).spikes_per_population()[l + 1]) /
             static_cast<double>(tuning.count);
    };
    double lo = 1e-5, hi = 1.0;
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
  CLI::App app{"bench_engine: event engine vs dense baseline at the seed's data-normalised setting"};
  std::string data;
  std::size_t samples = 0;
  int runs = 5, dense_runs = 1, threads = 0;
  Step steps = 200;
  std::size_t tune_samples = 40;
  bool skip_dense = false;
  std::uint64_t seed = 0;
  app.add_option("--data", data, "mnist10k directory (default: $SNNSIM_DATA/mnist10k)");
  app.add_option("--samples", samples, "test images to simulate (default: all)");
  app.add_option("--runs", runs, "timed event-engine runs (median reported)")->check(CLI::Range(1, 100));
  app.add_option("--dense-runs", dense_runs, "timed runs of each dense variant")->check(CLI::Range(0, 20));
  app.add_option("--threads", threads, "threads (0: all cores)")->check(CLI::Range(0, 1024));
  app.add_option("--steps", steps, "simulated steps per image")->check(CLI::Range(1, 100000));
  app.add_option("--tune-samples", tune_samples, "images used to tune the random weights' scales");
  app.add_option("--seed", seed, "input and weight seed");
  app.add_flag("--no-dense", skip_dense, "skip the dense baseline");
  CLI11_PARSE(app, argc, argv);

  try {
    if (data.empty()) {
      const char* env = std::getenv("SNNSIM_DATA");
      data = (fs::path(env ? env : "data") / "mnist10k").string();
    }
    const Dataset test = read_test_split(data);
    const SampleSet all = SampleSet::of(test, 0, samples);
    const int cores = tbb::info::default_concurrency();
    fmt::print("data      {}: {} test images of {} pixels\n", data, all.count, all.size);
    fmt::print("machine   {} cores (TBB), {} threads requested\n", cores, threads == 0 ? cores : threads);

    RunOptions opt;
    opt.steps = steps;
    opt.threads = threads;
    opt.input.seed = seed;  // defaults: 400 Hz, dt 5 ms: p = 2x as the seed

    // Random weights with tuned scales (see the top of this file).
    std::mt19937_64 rng(seed + 1);
    const std::vector<Matrix> base{uniform_matrix(rng, 1200, 784), uniform_matrix(rng, 1200, 1200),
                                   uniform_matrix(rng, 10, 1200)};
    const SampleSet tuning = SampleSet::of(test, 0, std::min(tune_samples, test.count));
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<double> scales = tune_scales(base, tuning, opt);
    fmt::print("weights   RANDOM U(-1,1) x per-layer scale [{:.3g}, {:.3g}, {:.3g}] tuned on {} images to the "
               "reference's spikes per image ({:.1f} s); accuracy is meaningless with them\n",
               scales[0], scales[1], scales[2], tuning.count,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    const Network net = make_network(base, scales);
    const Engine engine(net);
    for (const auto& q : engine.network().reports())
      fmt::print("fixed pt  population {}: k = {} bits, unit {:.3g} theta, max |error| {:.3g} (rms {:.3g}), "
                 "max fan-in sum 2^{:.1f} units\n",
                 q.target, q.bits, q.unit, q.max_abs_error, q.rms_error,
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
    fmt::print("  spikes/image    input {:.0f}, layer1 {:.0f}, layer2 {:.0f}, output {:.1f}  (reference {:.0f}, {:.0f}, "
               "{:.0f}, {:.1f})\n",
               pops[0] / n, pops[1] / n, pops[2] / n, pops[3] / n, kReferenceSpikes[0], kReferenceSpikes[1],
               kReferenceSpikes[2], kReferenceSpikes[3]);
    const auto per_conn = ev.synops_per_connection();
    const auto work_conn = ev.work_per_connection();
    fmt::print("  SynOps/image    {:.2f} M (conn 0: {:.2f} M, 1: {:.2f} M, 2: {:.3f} M; reference {:.1f} M)\n",
               synops / n / 1e6, per_conn[0] / n / 1e6, per_conn[1] / n / 1e6, per_conn[2] / n / 1e6,
               kReferenceSynops / 1e6);
    fmt::print("  dense MACs/img  {:.1f} M  -> SynOps are {:.2f} % of dense\n", ev.dense_macs() / n / 1e6,
               100.0 * synops / static_cast<double>(ev.dense_macs()));
    fmt::print("  engine adds/img {:.2f} M (conn 0: {:.2f} M): {:.1f} % of the SynOps\n", work / n / 1e6,
               work_conn[0] / n / 1e6, 100.0 * work / synops);
    fmt::print("  SynOps/s        {:.2f} G (model count)\n", synops / t_ev / 1e9);
    fmt::print("  engine adds/s   {:.2f} G\n", work / t_ev / 1e9);
    fmt::print("  vs seed         {:.1f} x faster than the seed's {:.1f} s (target >= 20 x: <= {:.2f} s)\n",
               kSeedSeconds * n / 1996.0 / t_ev, kSeedSeconds, kSeedSeconds / 20.0 * n / 1996.0);
    fmt::print("  peak RSS        {:.1f} MB (data, weights, network, engine state)\n", rss_event);

    const double ceiling1 = row_add_rate(engine.network().connection(0), 1, 0.3);
    const double ceilingN = row_add_rate(engine.network().connection(0), ev.threads, 0.3);
    fmt::print("  row-add ceiling {:.2f} G adds/s on 1 thread, {:.2f} G on {} (784x1200 int32 table, random rows)\n",
               ceiling1 / 1e9, ceilingN / 1e9, ev.threads);
    fmt::print("  engine adds/s   {:.0f} % of the {}-thread ceiling\n", 100.0 * work / t_ev / ceilingN, ev.threads);

    // Latency mode on the same run, for the record.
    RunOptions lat = opt;
    lat.parallelism = Parallelism::Targets;
    const RunResult lr = engine.run(all, lat);
    fmt::print("  latency mode    {:.3f} s ({:.2f} ms per image, neurons split over {} threads); identical: {}\n",
               lr.seconds, 1e3 * lr.seconds / n, lr.threads,
               lr.output_counts == ev.output_counts && lr.population_spikes == ev.population_spikes ? "yes" : "NO");

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
                   pre ? ", first layer precomputed" : "", dopt.batch, dr.threads, dense_runs,
                   dense_runs > 1 ? "s" : "");
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
