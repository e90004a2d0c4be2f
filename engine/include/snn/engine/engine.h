// The event-driven simulator. Per sample and step t, four named phases
// (Simulator::run in engine.cpp; with RunOptions::step_block > 1 each phase,
// and each population, runs over a block of steps before the next):
//   1. input: the encoder's spikes at t go into the calendar queue
//      (calendar_queue.h), due at t + delay of connection 0;
//   2. deliver, for each population p = 1 .. L in order: the current buffer
//      starts at the sample's constant current (connection 0 only, see below)
//      or zero, plus p's biases; every event due at t for connection p - 1
//      adds its source's fan-out (delivery.h: a row, a CSR row, or generated
//      from a conv or pool kernel; a conv's or non-overlapping pool's
//      target is numbered position-major inside the engine, mapped back to
//      the model's CHW ids wherever ids leave it: docs/design.md);
//   3. update: update_neurons (neuron.h) leaks, integrates, threshold-checks
//      and resets every neuron of p; p's spikes go into the queue, due at
//      t + delay of connection p (zero delay: reaching p + 1 in this step);
//      deliver and update are fused per target partition;
//   4. readout: output spikes are counted, the prediction after t recorded,
//      the early-exit condition checked (SampleRecorder, run.h, shared with
//      the dense baseline).
// Inputs that spike at every step (p >= 1: x >= 0.5 at p = 2x, about 84 % of
// the input spikes on MNIST) always deliver the same current, so it is summed
// once per sample and added as one row per step. SynOps still count those
// spikes times their fan-out (the model's count); RunResult::work counts the
// adds actually done.
//
// Threads (oneTBB, in a task_arena of RunOptions::threads): either samples in
// parallel, each worker thread with its own simulator state and the weights
// shared read-only (Parallelism::Samples), or one sample at a time with each
// population's neurons split into contiguous ranges, one per thread, every
// thread adding each due row's slice for its own targets and updating them
// (Parallelism::Targets; the threads are a team started once per run and
// synchronised by a barrier per population step, not a task per step). No locks or atomics inside either inner loop, and
// results are stored by sample index: identical for every thread count.
#pragma once

#include "snn/engine/fixed_point.h"
#include "snn/engine/run.h"
#include "snn/network/network.h"

#include <memory>

namespace snn::engine {

class Engine {
 public:
  /// Quantises `network` (fixed_point.h) with `fixed_point_bits` per target
  /// population into fan-out tables of `weight_bits` (32, 16 or 8) elements.
  explicit Engine(const Network& network, int fixed_point_bits = kDefaultFixedPointBits, int weight_bits = kDefaultWeightBits);
  /// Runs on an already quantised network (shared, read-only).
  explicit Engine(std::shared_ptr<const FixedNetwork> network);

  const FixedNetwork& network() const { return *network_; }
  std::shared_ptr<const FixedNetwork> shared_network() const { return network_; }

  /// Simulates every sample of `samples` (their size must equal the input
  /// population's) for options.steps steps. Throws snn::Error on bad options,
  /// mismatched sizes, or a potential leaving the fixed-point range.
  RunResult run(const SampleSet& samples, const RunOptions& options) const;

 private:
  std::shared_ptr<const FixedNetwork> network_;
};

}  // namespace snn::engine
