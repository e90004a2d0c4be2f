#include "snn/tool/pipeline.h"

#include "snn/conversion/normalise.h"
#include "snn/conversion/trainer.h"
#include "snn/engine/engine.h"
#include "snn/error.h"
#include "snn/tool/interrupt.h"
#include "snn/tool/mpi.h"
#include "snn/tool/output_dir.h"
#include "snn/tool/progress.h"
#include "snn/tool/report_mapping.h"
#include "snn/tool/weight_cache.h"

#include <fmt/format.h>

#include <atomic>

namespace snn::tool {

namespace fs = std::filesystem;

namespace {

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

Prepared prepare(const fs::path& path, const CommonOptions& options, bool needs_output, bool replaces_output) {
  return prepare(load_config(path, overrides_of(options)), options, needs_output, replaces_output);
}

Prepared prepare(Config config, const CommonOptions& options, bool needs_output, bool replaces_output) {
  Prepared p{std::move(config), {}};
  for (const auto& w : p.config.warnings)
    if (!options.quiet) fmt::print(stderr, "note: {}\n", w);
  if (needs_output) {
    check_output_writable(p.config, replaces_output);
    if (!options.quiet)
      fmt::print(stderr, "output directory: {}\n", fs::absolute(p.config.output.dir).lexically_normal().string());
  }
  p.data = load_dataset(p.config.dataset.name, static_cast<std::size_t>(p.config.dataset.classes));
  return p;
}

NormalisedWeights normalised_weights(const Config& c, const WeightSet& ann, const Dataset& train) {
  NormalisedWeights out{ann, {}};
  WeightSet& w = out.weights;
  const Normalisation want = c.normalisation.method;
  if (w.normalisation.method != Normalisation::None) {
    if (w.normalisation.method != want)
      throw Error("weights are already {}-normalised but normalisation.method = \"{}\"; set it to \"{}\" to use them as they are",
                  to_string(w.normalisation.method), to_string(want), to_string(w.normalisation.method));
    out.warnings.push_back(fmt::format("weights were already {}-normalised; used as given", to_string(want)));
    return out;
  }
  if (want == Normalisation::None) return out;
  conversion::NormaliseOptions o;
  o.method = want;
  o.include_last = c.normalisation.include_last;
  o.samples = static_cast<std::size_t>(c.normalisation.samples);
  o.percentile = c.normalisation.percentile;
  // The training-set pass in batches over ranks and simulation.threads
  // threads per rank, single-threaded BLAS each: the same factors for any split.
  mpi::normalise(w, o, train, mpi::threads_per_rank(c.simulation.threads));
  return out;
}

Network build_network(const Config& c, const WeightSet& weights) {
  const auto& s = c.simulation;
  std::vector<LayerSpec> specs = weights.layer_specs();
  std::size_t populations = 0;
  for (const LayerSpec& l : specs) populations += l.spiking();
  if (s.threshold.size() != 1 && s.threshold.size() != populations)
    throw Error("simulation.threshold has {} values but the network has {} spiking populations", s.threshold.size(), populations);
  if (s.delays.size() != 1 && s.delays.size() != populations)
    throw Error("simulation.delays has {} values but the network has {} connections", s.delays.size(), populations);
  // Normalisation factors are per spiking layer; a pool layer's factor scales
  // its uniform 1/(kh*kw) weight (dense and conv weights arrive divided already).
  const auto& factors = weights.normalisation.factors;
  std::vector<ConnectionSpec> conns(populations);
  std::vector<std::vector<Weight>> biases(weights.has_bias() ? populations : 0);
  const std::vector<Shape> shapes = infer_shapes(weights.input_shape(), specs);
  std::size_t pop = 0, w = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    LayerSpec& l = specs[i];
    if (!l.spiking()) continue;
    ConnectionSpec& cs = conns[pop];
    cs.delay = s.delays.size() == 1 ? s.delays[0] : s.delays[pop];
    if (s.weight_cutoff > 0 && l.kind == LayerKind::Dense) {
      cs.format = FanOutFormat::Sparse;
      cs.cutoff = s.weight_cutoff;
    }
    if (l.kind == LayerKind::AvgPool && pop < factors.size()) cs.pool_scale = 1.0 / factors[pop];
    if (l.has_weights()) {
      if (!biases.empty() && w < weights.biases.size() && !weights.biases[w].empty()) {
        // A conv bias is per output channel; the engine's is per neuron (CHW order).
        const std::vector<float>& b = weights.biases[w];
        const std::size_t plane = l.kind == LayerKind::Conv ? shapes[i].height * shapes[i].width : 1;
        biases[pop].reserve(b.size() * plane);
        for (float v : b) biases[pop].insert(biases[pop].end(), plane, v);
      }
      ++w;
    }
    ++pop;
    // The MLP keeps the names its reports always had; others their layer names.
    if (weights.architecture.empty()) {
      l.name = pop == populations ? "output" : fmt::format("hidden{}", pop);
    } else if (pop == populations) {
      l.name = "output";
    } else if (l.name.empty()) {
      l.name = fmt::format("{}{}", to_string(l.kind), pop);
    }
  }
  return Network::from_layers(weights.input_shape(), specs, weights.layers, neuron_params(c, populations), conns, biases);
}

engine::RunOptions run_options(const Config& c) {
  const auto& s = c.simulation;
  engine::RunOptions ro;
  ro.steps = s.steps;
  ro.input.encoding = s.encoding;
  ro.input.max_rate = s.max_rate_hz;
  ro.input.dt = s.dt_ms * 1e-3;
  ro.input.seed = s.seed;
  ro.threads = mpi::threads_per_rank(s.threads);  // 0: this rank's share of the node's cores
  ro.tie_break_by_potential = s.tie_break == TieBreak::Potential;
  ro.early_exit.enabled = s.early_exit != EarlyExitMode::Off;
  ro.early_exit.margin = static_cast<std::uint32_t>(s.early_exit_margin);
  ro.early_exit.hold = s.early_exit_steps;
  // measure: run to the end so one run reports both the full and the early-exit figures.
  ro.early_exit.stop = s.early_exit == EarlyExitMode::Stop;
  return ro;
}

SnnReport simulate(const Config& c, const WeightSet& weights, const Dataset& test, const CommonOptions& options) {
  const auto& s = c.simulation;
  const Network net = build_network(c, weights);
  const auto fixed = std::make_shared<engine::FixedNetwork>(net, s.fixed_point_bits, s.weight_bits);
  // The ranks of a node read one copy of the tables, as threads do (mpi.h).
  const int tables_shared_by = mpi::share_tables(*fixed);
  const engine::Engine eng(fixed);

  const std::size_t n = s.limit > 0 ? std::min<std::size_t>(static_cast<std::size_t>(s.limit), test.count) : test.count;
  const auto samples = engine::SampleSet::of(test, 0, n);
  engine::RunOptions ro = run_options(c);
  if (!options.quiet) fmt::print(stderr, "simulating {} test samples for {} steps\n", n, s.steps);
  Progress bar("simulate", n, options.quiet);
  std::atomic<std::size_t> samples_done{0};
  const auto stop_if_interrupted = [&] {
    if (interrupted())
      throw Error("interrupted during the simulation ({} of {} samples done); no results were written", samples_done.load(), n);
  };
  ro.progress = [&](std::size_t done, std::size_t) {
    samples_done = done;
    stop_if_interrupted();
    bar.update(done);
  };
  ro.check_cancel = stop_if_interrupted;  // within a sample too: long samples stop in a few steps
  const auto r = mpi::run_sharded(samples, [&](const engine::SampleSet& part) { return eng.run(part, ro); });
  bar.finish();

  SnnReport report = snn_report(c, net, samples, r);
  report.ranks = mpi::size();
  report.table_bytes = fixed->bytes();
  report.tables_shared_by = tables_shared_by;
  return report;
}

}  // namespace snn::tool
