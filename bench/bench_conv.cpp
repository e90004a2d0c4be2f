// bench_conv: the event engine against the dense im2col baseline on Diehl et
// al.'s ConvNet shape 28x28-12c5-2s-64c5-2s-10o (conv 12 5x5, avgpool 2, conv
// 64 5x5, avgpool 2, dense 10) on the mnist10k test images, p = 2x, 200 steps
// by default. Prints time per sample (median of N runs), SynOps per sample,
// the dense/event time ratio, whether both gave identical spikes, and the peak
// resident memory. A program that prints figures, not a timed test.
//
// Weights: random (uniform, mean > 0 so that the layers fire), one scale per
// layer tuned by bisection on a few images so that each population fires at
// --rate spikes per neuron and step; accuracy is meaningless with them.
#include "snn/engine/dense_simulator.h"
#include "snn/engine/engine.h"
#include "snn/error.h"
#include "snn/network/dataset.h"
#include "snn/network/network.h"

#include <fmt/core.h>
#include <tbb/info.h>
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using namespace snn;
using namespace snn::engine;

namespace {

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

const std::vector<LayerSpec> kLayers{LayerSpec::conv(12, 5), LayerSpec::avgpool(2), LayerSpec::conv(64, 5),
                                     LayerSpec::avgpool(2),  LayerSpec::flatten(),  LayerSpec::dense(10)};
const Shape kInput{1, 28, 28};

Network make_network(const std::vector<Matrix>& base, const std::vector<double>& scales) {
  std::vector<Matrix> w = base;
  for (std::size_t i = 0; i < w.size(); ++i)
    for (auto& x : w[i].data) x = static_cast<float>(x * scales[i]);
  return Network::from_layers(kInput, kLayers, w, {NeuronParams{}});
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_conv: event engine vs dense im2col baseline on 28x28-12c5-2s-64c5-2s-10o"};
  std::string data = "mnist10k";
  std::size_t samples = 0, tune_samples = 20, batch = 100;
  int runs = 3, dense_runs = 1, threads = 0;
  Step steps = 200;
  double rate = 0.05;
  std::uint64_t seed = 0;
  bool latency = false;
  app.add_flag("--latency", latency, "also time latency mode (one image at a time, neurons split over the threads)");
  app.add_option("--data", data, "dataset name (under $SNNSIM_DATA) or directory");
  app.add_option("--samples", samples, "test images to simulate (default: all)");
  app.add_option("--runs", runs, "timed event-engine runs (median reported)")->check(CLI::Range(1, 100));
  app.add_option("--dense-runs", dense_runs, "timed dense runs (median)")->check(CLI::Range(0, 20));
  app.add_option("--threads", threads, "threads (0: all cores)")->check(CLI::Range(0, 1024));
  app.add_option("--steps", steps, "simulated steps per image")->check(CLI::Range(1, 100000));
  app.add_option("--batch", batch, "dense baseline batch")->check(CLI::Range(1, 100000));
  app.add_option("--rate", rate, "target spikes per neuron and step of the hidden populations");
  app.add_option("--tune-samples", tune_samples, "images used to tune the weight scales");
  app.add_option("--seed", seed, "input and weight seed");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto dir = resolve_dataset(data);
    const Dataset test = read_idx(dir / "t10k-images-idx3-ubyte", dir / "t10k-labels-idx1-ubyte");
    const SampleSet all = SampleSet::of(test, 0, samples);
    fmt::print("data      {}: {} test images\n", dir.string(), all.count);
    fmt::print("machine   {} cores (TBB), {} threads requested\n", tbb::info::default_concurrency(), threads);
    RunOptions opt;
    opt.steps = steps;
    opt.threads = threads;
    opt.input.seed = seed;

    // Random kernels, uniform in [-1, 1] plus a positive mean, scaled per layer.
    std::mt19937_64 rng(seed + 1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<Matrix> base{Matrix(12, 25), Matrix(64, 12 * 25), Matrix(10, 64 * 4 * 4)};
    for (auto& m : base)
      for (auto& x : m.data) x = u(rng) + 0.3f;
    std::vector<double> scales(base.size(), 1.0);
    const SampleSet tuning = SampleSet::of(test, 0, std::min(tune_samples, test.count));
    // Populations 1..5: conv1, pool1, conv2, pool2, dense. Tune the weighted
    // layers on the population they feed (pools follow their conv).
    const std::size_t pop_of[3] = {1, 3, 5};
    for (std::size_t l = 0; l < base.size(); ++l) {
      auto fired = [&](double s) {
        scales[l] = s;
        const Network net = make_network(base, scales);
        RunResult r;
        try {
          r = Engine(net).run(tuning, opt);
        } catch (const Error&) {
          return 1.0;  // potentials out of the fixed-point range: far too strong
        }
        return static_cast<double>(r.spikes_per_population()[pop_of[l]]) /
               (static_cast<double>(tuning.count * static_cast<std::size_t>(steps)) * net.population(pop_of[l]).size);
      };
      double lo = 1e-4, hi = 10.0;
      for (int it = 0; it < 18; ++it) {
        const double mid = std::sqrt(lo * hi);
        (fired(mid) < rate ? lo : hi) = mid;
      }
      scales[l] = std::sqrt(lo * hi);
    }
    const Network net = make_network(base, scales);
    fmt::print("network   28x28-12c5-2s-64c5-2s-10o: populations");
    for (const auto& p : net.populations()) fmt::print(" {}", to_string(p.shape));
    fmt::print("\nweights   RANDOM (U(-1,1) + 0.3) x scales [{:.3g}, {:.3g}, {:.3g}] tuned to {} spikes/neuron/step\n", scales[0],
               scales[1], scales[2], rate);
    std::size_t table = 0;
    for (const auto& c : net.connections()) table += c.table_bytes();
    const Engine engine(net);
    fmt::print("memory    model tables {} bytes, engine tables {} bytes\n", table, engine.network().bytes());

    RunResult ev = engine.run(all, opt);  // warm-up
    std::vector<double> times;
    for (int r = 0; r < runs; ++r) {
      ev = engine.run(all, opt);
      times.push_back(ev.seconds);
    }
    const double n = static_cast<double>(all.count);
    const double t_ev = median(times) / n;
    const auto spikes = ev.spikes_per_population();
    fmt::print("spikes    per image:");
    for (std::size_t p = 0; p < spikes.size(); ++p) fmt::print(" {:.1f}", static_cast<double>(spikes[p]) / n);
    fmt::print("\nsynops    per image {:.0f} (dense equivalent MACs {:.0f})\n", static_cast<double>(ev.total_synops()) / n,
               static_cast<double>(ev.dense_macs()) / n);
    fmt::print("event     {:.3f} ms per image (median of {}, {} threads), peak RSS so far {:.1f} MB\n", 1e3 * t_ev, runs,
               ev.threads, peak_rss_mb());
    if (latency) {
      RunOptions lat = opt;
      lat.parallelism = Parallelism::Targets;
      const RunResult lr = engine.run(all, lat);
      const bool same =
          lr.output_counts == ev.output_counts && lr.population_spikes == ev.population_spikes && lr.synops == ev.synops;
      fmt::print("latency   {:.3f} ms per image (one run, {} threads splitting each population); identical: {}\n",
                 1e3 * lr.seconds / n, lr.threads, same ? "yes" : "NO");
    }
    if (dense_runs > 0) {
      const DenseSimulator dense(engine.shared_network());
      DenseOptions dopt;
      dopt.batch = batch;
      std::vector<double> dt;
      RunResult de;
      for (int r = 0; r < dense_runs; ++r) {
        de = dense.run(all, opt, dopt);
        dt.push_back(de.seconds);
      }
      const double t_de = median(dt) / n;
      const bool same = de.output_counts == ev.output_counts && de.population_spikes == ev.population_spikes &&
                        de.synops == ev.synops && de.step_predictions == ev.step_predictions;
      fmt::print("dense     {:.3f} ms per image (im2col + sgemm, batch {}, median of {})\n", 1e3 * t_de, batch, dense_runs);
      fmt::print("ratio     dense / event time {:.2f}x; identical spikes, SynOps and predictions: {}\n", t_de / t_ev,
                 same ? "yes" : "NO");
    }
    fmt::print("peak RSS  {:.1f} MB\n", peak_rss_mb());
  } catch (const Error& e) {
    fmt::print(stderr, "bench_conv: {}\n", e.what());
    return 1;
  }
  return 0;
}
