// The event engine, the dense GEMM baseline and a plain reference loop
// (engine_test_util.h) must produce identical spike trains on random networks
// and inputs, for every combination of the neuron, connection, input and
// readout options.
#include "snn/engine/dense_simulator.h"

#include "engine_test_util.h"
#include "snn/engine/engine.h"
#include "snn/error.h"

#include <catch2/catch.hpp>

#include <array>
#include <random>

using snn::ConnectionSpec;
using snn::FanOutFormat;
using snn::Matrix;
using snn::Network;
using snn::NeuronParams;
using snn::ResetMode;
using snn::engine::DenseOptions;
using snn::engine::DenseSimulator;
using snn::engine::Encoding;
using snn::engine::Engine;
using snn::engine::RunOptions;
using snn::engine::RunResult;

namespace {

struct Combo {
  ResetMode reset;
  double beta;
  snn::Step refractory;
  bool delays;
  FanOutFormat format;
  Encoding encoding;
  bool tie_break;
  int early_exit;  // 0 off, 1 stop, 2 measure
  bool coarse;     // weights on a 1/8 grid: potentials hit the threshold exactly
  bool biases;     // every spiking population has per-neuron biases
};

Network random_network(std::mt19937_64& rng, const Combo& k, std::size_t layers) {
  std::uniform_int_distribution<std::size_t> size(8, 40);
  std::uniform_int_distribution<int> delay(0, 3);
  std::size_t in = size(rng) + 10;
  Network net(in);
  for (std::size_t l = 0; l < layers; ++l) {
    const std::size_t out = l + 1 == layers ? 6 : size(rng);
    // Enough drive that every layer spikes at a few percent to tens of percent.
    Matrix m = snn::test::random_matrix(rng, out, in, 1.2 / static_cast<double>(in) * (l == 0 ? 3.0 : 6.0),
                                        3.0 / static_cast<double>(in) * (l == 0 ? 2.0 : 4.0));
    if (k.coarse)
      for (auto& w : m.data) w = std::round(w * 8.0f) / 8.0f;
    NeuronParams p;
    p.threshold = l == 0 ? 1.0 : 0.5 + static_cast<double>(l) * 0.25;
    p.reset = k.reset;
    p.beta = k.beta;
    p.refractory = k.refractory;
    ConnectionSpec spec;
    spec.format = k.format;
    spec.cutoff = k.format == FanOutFormat::Sparse ? 0.02 : 0.0;
    spec.delay = k.delays ? delay(rng) : 0;
    net.add_layer(m, p, spec);
    if (k.biases) {
      std::vector<float> b(out);
      for (auto& x : b) x = static_cast<float>(static_cast<double>(rng() % 201) / 1000.0 - 0.1);  // +-0.1 theta
      net.set_bias(static_cast<snn::PopulationId>(l + 1), std::move(b));
    }
    in = out;
  }
  return net;
}

RunOptions options_for(const Combo& k, std::uint64_t seed) {
  RunOptions o;
  o.steps = 40;
  o.input.encoding = k.encoding;
  o.input.seed = seed;
  o.threads = 1;
  o.record_spikes = true;
  o.tie_break_by_potential = k.tie_break;
  o.early_exit.enabled = k.early_exit != 0;
  o.early_exit.stop = k.early_exit == 1;
  o.early_exit.margin = 2;
  o.early_exit.hold = 3;
  return o;
}

}  // namespace

TEST_CASE("event engine == dense baseline == plain reference, all option combinations") {
  std::mt19937_64 rng(12345);
  std::vector<std::uint64_t> spikes_per_population(4, 0);
  int combos = 0;
  for (int weight_bits : {32, 16, 8})
    for (ResetMode reset : {ResetMode::Subtract, ResetMode::Zero})
      for (double beta : {1.0, 0.8})
        for (snn::Step refractory : {0, 2})
          for (bool delays : {false, true})
            for (FanOutFormat format : {FanOutFormat::Dense, FanOutFormat::Sparse})
              for (Encoding encoding : {Encoding::Poisson, Encoding::Analog})
                for (int early_exit : {0, 1, 2}) {
                  const Combo k{reset,           beta,       refractory,      delays,        format, encoding,
                                combos % 2 == 0, early_exit, combos % 3 == 0, combos % 5 < 2};
                  ++combos;
                  const std::size_t layers = 2 + combos % 2;
                  const Network net = random_network(rng, k, layers);
                  const std::size_t n = 3;
                  const auto values = snn::test::random_inputs(rng, n, net.input_size());
                  const std::vector<std::uint8_t> labels{0, 1, 2};
                  const snn::engine::SampleSet set{n, net.input_size(), values, labels};
                  RunOptions o = options_for(k, rng());
                  // The event engine's block length (0: its default for the width).
                  o.step_block = std::array<snn::Step, 7>{0, 1, 2, 3, 7, 16, 40}[static_cast<std::size_t>(combos % 7)];
                  INFO("combo " << combos << ": reset " << snn::to_string(reset) << ", beta " << beta << ", refractory "
                                << refractory << ", delays " << delays << ", " << snn::to_string(format) << ", "
                                << snn::engine::to_string(encoding) << ", tie-break " << k.tie_break << ", early exit "
                                << early_exit << ", coarse " << k.coarse << ", biases " << k.biases << ", layers " << layers
                                << ", step block " << o.step_block);

                  const Engine engine(net, snn::engine::kDefaultFixedPointBits, weight_bits);
                  INFO("weight bits " << weight_bits);
                  // The tables really are that wide, and every weight fits it.
                  for (std::size_t c = 0; c < net.connection_count(); ++c) {
                    const auto& fc = engine.network().connection(c);
                    REQUIRE(fc.weight_bits == weight_bits);
                    const std::size_t stored = format == FanOutFormat::Dense ? fc.sources * fc.targets : fc.target_ids.size();
                    REQUIRE((weight_bits == 8    ? fc.weights8.size()
                             : weight_bits == 16 ? fc.weights16.size()
                                                 : fc.weights.size()) == stored);
                    const std::int64_t limit =
                        weight_bits == 32 ? (std::int64_t{1} << 24) : (std::int64_t{1} << (weight_bits - 1)) - 1;
                    for (std::size_t i = 0; i < stored; ++i) REQUIRE(std::abs(std::int64_t{fc.weight(i)}) <= limit);
                  }
                  const RunResult ev = engine.run(set, o);
                  DenseOptions dopt;
                  dopt.batch = 2;  // a full batch and a partial one
                  dopt.precompute_first_layer = combos % 2 == 1;
                  dopt.precompute_max_bytes = 1;  // forces chunks of one step: exercises chunk refills
                  if (combos % 4 == 1) dopt.precompute_max_bytes = std::size_t{1} << 20;
                  const RunResult de = DenseSimulator(engine.shared_network()).run(set, o, dopt);
                  snn::test::require_same_run(ev, de, false);

                  std::vector<int> bits;
                  for (const auto& r : engine.network().reports()) bits.push_back(r.bits);
                  for (std::size_t i = 0; i < n; ++i) {
                    const auto ref = snn::test::reference_run(net, bits, set, i, o);
                    if (early_exit == 1) {
                      // The reference runs to the end: the engine's train is its prefix up to the exit.
                      const snn::Step last = ev.exit_step[i] < 0 ? o.steps : ev.exit_step[i];
                      std::vector<snn::engine::SpikeEvent> prefix;
                      for (const auto& e : ref.train)
                        if (e.step <= last) prefix.push_back(e);
                      REQUIRE(ev.spike_trains[i] == prefix);
                      continue;
                    }
                    REQUIRE(ev.spike_trains[i] == ref.train);
                    for (snn::Step t = 0; t < o.steps; ++t)
                      REQUIRE(ev.prediction_at(i, t) == ref.step_predictions[static_cast<std::size_t>(t)]);
                    for (std::size_t c = 0; c < net.connection_count(); ++c)
                      REQUIRE(ev.synops[i * net.connection_count() + c] == ref.synops[c]);
                  }
                  const auto pops = ev.spikes_per_population();
                  for (std::size_t p = 0; p < pops.size(); ++p) spikes_per_population[p] += pops[p];
                }
  CHECK(combos == 3 * 192);
  // The comparison is only meaningful if every layer was active.
  CHECK(spikes_per_population[1] > 1000);
  CHECK(spikes_per_population[2] > 1000);
  CHECK(spikes_per_population[3] > 100);
}

TEST_CASE("dense baseline: batch size and the precomputed first layer change nothing") {
  std::mt19937_64 rng(99);
  const Combo k{ResetMode::Subtract, 1.0, 0, false, FanOutFormat::Dense, Encoding::Poisson, false, 0, false, false};
  const Network net = random_network(rng, k, 3);
  const std::size_t n = 7;
  const auto values = snn::test::random_inputs(rng, n, net.input_size());
  const std::vector<std::uint8_t> labels(n, 1);
  const snn::engine::SampleSet set{n, net.input_size(), values, labels};
  RunOptions o = options_for(k, 5);
  const RunResult ev = Engine(net).run(set, o);
  for (std::size_t batch : {std::size_t{1}, std::size_t{3}, std::size_t{100}})
    for (bool pre : {false, true}) {
      DenseOptions d;
      d.batch = batch;
      d.precompute_first_layer = pre;
      const RunResult de = DenseSimulator(net).run(set, o, d);
      snn::test::require_same_run(ev, de, false);
      // MACs: in x out per connection per step per sample.
      snn::OpCount macs = 0;
      for (const auto& c : net.connections()) macs += c.source_size() * c.target_size();
      CHECK(de.total_work() == macs * static_cast<snn::OpCount>(o.steps) * n);
      CHECK(de.dense_macs() == de.total_work());
    }
  DenseOptions bad;
  bad.batch = 0;
  CHECK_THROWS_AS(DenseSimulator(net).run(set, o, bad), snn::Error);
}
