// The engine on a trained network: one epoch of the seed's ANN on mnist10k
// (conversion's trainer, ~2 s), data-normalised as the seed, simulated at the
// seed's setting (theta 1, 200 steps, p = 2x). Checks that the dense baseline
// gives the same spikes there too, that the SNN classifies like the ANN, and
// how much the fixed-point quantisation moves accuracy.
#include "snn/conversion/normalise.h"
#include "snn/conversion/trainer.h"
#include "snn/engine/dense_simulator.h"
#include "snn/engine/engine.h"
#include "snn/network/dataset.h"

#include <catch2/catch.hpp>

using namespace snn;
using namespace snn::engine;

TEST_CASE("trained mnist10k network: event == dense, SNN close to the ANN, quantisation harmless") {
  const DatasetSplits data = load_dataset("mnist10k");
  conversion::TrainConfig config;
  config.epochs = 1;
  config.seed = 0;
  config.network.output_relu = false;  // reliable after one epoch (see test_trainer)
  const conversion::TrainResult trained = conversion::train(config, data.train, &data.test, nullptr);
  REQUIRE(trained.test.has_value());
  std::vector<Matrix> layers = trained.weights;
  conversion::normalise_data(layers, conversion::max_activations(layers, data.train, 2000));
  const Network net = Network::from_matrices(layers, {NeuronParams{1.0, ResetMode::Subtract, 1.0, 0}});

  const SampleSet test = SampleSet::of(data.test, 0, 400);
  RunOptions o;
  o.steps = 200;
  o.threads = 2;
  const Engine engine(net);
  for (const auto& q : engine.network().reports()) CHECK(q.bits == 16);
  const RunResult ev = engine.run(test, o);

  // Same spikes from the GEMM baseline (one batch of 100 images, both variants).
  const SampleSet first100 = SampleSet::of(data.test, 0, 100);
  RunOptions rec = o;
  rec.record_spikes = true;
  const RunResult ev100 = engine.run(first100, rec);
  for (bool pre : {false, true}) {
    DenseOptions d;
    d.precompute_first_layer = pre;
    const RunResult de = DenseSimulator(engine.shared_network()).run(first100, rec, d);
    CHECK(de.spike_trains == ev100.spike_trains);
    CHECK(de.step_predictions == ev100.step_predictions);
    CHECK(de.synops == ev100.synops);
  }

  // The SNN after 200 steps classifies about as the ANN does on the same 400
  // images (measured: SNN 371 right, ANN 375 / 377 / 376 with the Haswell /
  // Cooperlake / SkylakeX OpenBLAS kernels, which train slightly different ANNs).
  const double snn_acc = ev.accuracy(test.labels);
  const double ann_acc = conversion::evaluate(layers, data.test, false, 400).accuracy;
  INFO("SNN accuracy " << snn_acc << ", ANN on the same 400 " << ann_acc);
  CHECK(std::abs(snn_acc - ann_acc) * 400 <= 8.5);  // 8 samples, 2 points
  // Accuracy grows with simulated time (the curve the paper is about): short
  // of the end after 10 steps, within 1.5 points of it from step 50 on
  // (measured: 88 - 89.5 % at 10 steps, 92.75 % at 200, at most 4 samples
  // away from step 50 on, over the three kernels).
  const auto curve = ev.accuracy_curve(test.labels);
  INFO("accuracy after 10, 25, 50, 200 steps: " << curve[9] << " " << curve[24] << " " << curve[49] << " " << curve[199]);
  CHECK(curve[9] <= curve[199] - 0.02);
  for (std::size_t t = 49; t < 200; ++t) CHECK(std::abs(curve[t] - curve[199]) * 400 <= 6.5);

  // Quantisation: units of theta / 2^16 (error <= 7.6e-6 theta per weight)
  // against 4 - 16 times finer ones (k = 20 asked, lowered where a neuron's
  // fan-in sum would reach 2^24 units); the classifications barely move.
  const Engine fine(net, 20);
  for (const auto& q : fine.network().reports()) CHECK(q.bits >= 18);
  const RunResult evf = fine.run(test, o);
  std::size_t same = 0;
  for (std::size_t i = 0; i < test.count; ++i) same += ev.predictions[i] == evf.predictions[i];
  INFO("k = 16 vs 18-20: " << same << " of " << test.count << " predictions equal");
  CHECK(same >= test.count * 99 / 100);
  CHECK(std::abs(ev.accuracy(test.labels) - evf.accuracy(test.labels)) <= 0.005);
}
