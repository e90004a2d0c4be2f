// What a simulation run is asked to do (RunOptions) and what it reports
// (RunResult). Shared by the event engine (engine.h) and the dense
// time-stepped baseline (dense_simulator.h), which fill the same result so
// that the two can be compared field by field.
#pragma once

#include "snn/engine/encoder.h"
#include "snn/engine/fixed_point.h"
#include "snn/types.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

namespace snn::engine {

/// How a run uses its threads.
enum class Parallelism {
  Samples,  ///< throughput: samples in parallel, each worker its own state
  Targets,  ///< latency: one sample at a time, each population's neurons partitioned over the threads
};
/// "samples", "targets".
std::string_view to_string(Parallelism parallelism);
/// Inverse of to_string ("throughput" and "latency" are accepted too); throws snn::Error.
Parallelism parse_parallelism(std::string_view text);

/// Beyond the seed: stop a sample once one output has led every other by at
/// least `margin` spikes (cumulative counts) for `hold` consecutive steps.
struct EarlyExitOptions {
  bool enabled = false;
  std::uint32_t margin = 3;  ///< >= 1 spikes
  Step hold = 10;            ///< >= 1 steps
  /// true: the sample really stops (saves time; SynOps after the exit are not
  /// spent). false: the run goes on to the end and only records what an exit
  /// would have given, so one run reports both the full and the early-exit
  /// accuracy and the SynOps an exit saves.
  bool stop = true;
};

/// One spike: at `step`, neuron `neuron` of population `population`.
struct SpikeEvent {
  Step step = 0;
  PopulationId population = 0;
  NeuronId neuron = 0;
  bool operator==(const SpikeEvent&) const = default;
};

/// Progress callback: `done` of `total` samples finished. Called from worker
/// threads but never concurrently; `done` increases; the last call is
/// (total, total), from the calling thread.
using ProgressCallback = std::function<void(std::size_t done, std::size_t total)>;

struct RunOptions {
  /// Steps simulated per sample (>= 1).
  Step steps = 200;
  InputOptions input;
  /// Worker threads; 0 = all cores (tbb::info::default_concurrency()); more
  /// than the cores are capped to the cores. Results do not depend on it.
  int threads = 0;
  Parallelism parallelism = Parallelism::Samples;
  /// Latency mode splits a (step, population) over the threads only when it
  /// holds at least this many operations (weights delivered + neurons
  /// updated); below, its partitions run one after the other on one thread
  /// (same results). The default, 2^17, is some 10 us of work against a few
  /// microseconds per tbb::parallel_for: at the seed's network (about 25k adds
  /// per population and step) latency mode then runs serially; it pays off
  /// on wider layers.
  OpCount min_parallel_work = OpCount{1} << 17;
  /// Break ties of the output spike counts by the output neurons' potential
  /// (highest wins); off = ties to the lowest index (torch's argmax, the seed).
  bool tie_break_by_potential = false;
  EarlyExitOptions early_exit;
  /// Keep every spike of every sample in RunResult::spike_trains (tests, small runs).
  bool record_spikes = false;
  /// The event engine simulates a sample in blocks of this many steps,
  /// population by population within a block: a population's fan-out rows
  /// and state are then reused over consecutive steps while they are still in
  /// the caches, instead of being pushed out by the other populations' work
  /// between two of its steps. Results do not depend on it: every step still
  /// sees exactly the events due at it, and recorded spike trains are put in
  /// step order. 0 (default): kNarrowStepBlock steps with 16- and 8-bit
  /// tables, 1 with 32-bit ones (see kNarrowStepBlock); capped at `steps`.
  /// Runs that stop early (early_exit.stop) always use blocks of one step, so
  /// that no work is done past an exit. check_cancel is called for a block's
  /// steps when the block starts, so a block longer than kCancelCheckSteps
  /// answers a cancel that much later.
  Step step_block = 0;
  ProgressCallback progress;
  /// Called from worker threads (concurrently: must be thread-safe) every
  /// kCancelCheckSteps steps of every sample; it may throw to abandon the run
  /// (the exception reaches the caller of run()), so a long sample can be
  /// stopped within a few steps, not only between samples (Ctrl-C).
  std::function<void()> check_cancel;
};

/// RunOptions::step_block's default with 16- and 8-bit tables. On the seed
/// data-norm run (`snnsim run`, medians of 5 - 9 alternating runs) blocks of
/// 16 steps took 16-bit tables from 0.505 to 0.483 s on one thread and 2 - 5
/// % off on two (three A/B batches), 8-bit 6 % off; at 32 bits they cost 1 -
/// 2 % (0.694 -> 0.708 s on one thread), so 32-bit tables run step by step.
/// At most kCancelCheckSteps, so that check_cancel keeps its cadence.
inline constexpr Step kNarrowStepBlock = 16;

/// Steps between two RunOptions::check_cancel calls within a sample.
inline constexpr Step kCancelCheckSteps = 16;

/// Throws snn::Error naming the option at fault.
void validate(const RunOptions& options);

/// Throws snn::Error unless `samples` fit `net`'s input population (size,
/// value count, 32-bit sample ids).
void validate(const SampleSet& samples, const FixedNetwork& net);

/// Threads a run uses: options.threads, capped to the cores; 0 = all cores.
int effective_threads(const RunOptions& options);

/// Everything measured in one run. Arrays are indexed by sample (the index in
/// the SampleSet), so they do not depend on the thread count or schedule.
struct RunResult {
  std::size_t samples = 0;
  Step steps = 0;               ///< steps requested per sample
  std::size_t populations = 0;  ///< including the input population 0
  std::size_t connections = 0;
  std::size_t classes = 0;  ///< output population size
  int threads = 0;          ///< threads used (after capping to the cores)
  double seconds = 0.0;     ///< wall time of the run

  std::vector<std::uint32_t> output_counts;      ///< [sample][class]: output spikes over the simulated steps
  std::vector<std::uint16_t> step_predictions;   ///< [sample][step]: predicted class after that step
  std::vector<std::uint16_t> predictions;        ///< [sample]: predicted class at the end (or at the exit)
  std::vector<Step> steps_simulated;             ///< [sample]: steps actually run (< steps after an early stop)
  std::vector<std::uint64_t> population_spikes;  ///< [sample][population]: spikes (population 0: input spikes)
  /// [sample][connection]: SynOps, the model's count: every delivered spike
  /// times its fan-out (input spikes included; analog input: one op per
  /// non-zero input and synapse per step). Spikes due after the last step are
  /// not delivered and not counted.
  std::vector<OpCount> synops;
  /// [sample][connection]: work actually done. Event engine: weights added
  /// (it adds one precomputed row per step for the inputs that spike at every
  /// step, so this is below synops). Dense baseline: multiply-adds.
  std::vector<OpCount> work;
  /// [sample]: bias additions, counted apart from SynOps: one per neuron with
  /// a non-zero (quantised) bias per simulated step.
  std::vector<OpCount> bias_ops;
  /// [sample][step]: SynOps delivered at that step, all connections (the
  /// cumulative-SynOps-against-time curve).
  std::vector<OpCount> step_synops;

  /// Early exit (when enabled): [sample] step at which the exit condition
  /// first held (-1: never), the prediction there, and SynOps up to and
  /// including that step (all SynOps of the sample if it never exited).
  std::vector<Step> exit_step;
  std::vector<std::uint16_t> exit_predictions;
  std::vector<OpCount> synops_at_exit;

  /// When RunOptions::record_spikes: [sample] every spike in order of step,
  /// population, neuron.
  std::vector<std::vector<SpikeEvent>> spike_trains;

  /// Quantisation of each connection (copied from the FixedNetwork).
  std::vector<QuantisationReport> quantisation;
  /// Dense equivalent per connection: in x out MACs per step.
  std::vector<OpCount> dense_macs_per_step;
  /// Neurons per population (for firing rates).
  std::vector<std::size_t> population_sizes;

  std::uint32_t count(std::size_t sample, std::size_t cls) const { return output_counts[sample * classes + cls]; }
  std::uint16_t prediction_at(std::size_t sample, Step step) const {
    return step_predictions[sample * static_cast<std::size_t>(steps) + static_cast<std::size_t>(step)];
  }
  /// Totals over samples.
  OpCount total_synops() const;
  OpCount total_work() const;
  OpCount total_bias_ops() const;
  std::vector<OpCount> synops_per_connection() const;
  std::vector<OpCount> work_per_connection() const;
  std::vector<std::uint64_t> spikes_per_population() const;
  /// Dense MACs of the whole run: sum over connections of in x out x steps x samples.
  OpCount dense_macs() const;
  /// Mean spikes per neuron per step of population p over all simulated steps.
  double firing_rate(PopulationId p) const;

  /// Fraction of samples whose final prediction equals the label.
  double accuracy(std::span<const std::uint8_t> labels) const;
  /// [step]: fraction correct when every sample is read out after that step
  /// (the accuracy-versus-simulated-time curve).
  std::vector<double> accuracy_curve(std::span<const std::uint8_t> labels) const;
  /// Early exit: fraction correct of exit_predictions.
  double exit_accuracy(std::span<const std::uint8_t> labels) const;
  OpCount total_synops_at_exit() const;
  /// [step]: cumulative SynOps up to and including that step, summed over samples.
  std::vector<double> synops_curve() const;
};

/// Cumulative output counts of one sample and its prediction (shared readout
/// of both simulators).
class Readout {
 public:
  void reset(std::size_t classes, const EarlyExitOptions& early_exit, bool tie_break_by_potential);
  void add(std::span<const NeuronId> output_spikes) {
    for (NeuronId j : output_spikes) ++counts_[j];
  }
  /// Argmax of the counts, ties to the lowest index, or (if enabled) to the
  /// highest of `potentials` (then the lowest index).
  std::uint16_t predict(const Potential* potentials) const;
  /// Updates the early-exit streak after a step; true the first time the
  /// condition holds.
  bool exit_now();
  const std::vector<std::uint32_t>& counts() const { return counts_; }

 private:
  std::vector<std::uint32_t> counts_;
  EarlyExitOptions early_exit_;
  bool tie_break_ = false;
  Step streak_ = 0;
  bool exited_ = false;
};

/// Where one sample's figures go in a RunResult: the run bookkeeping both
/// simulators share (spike counts and trains, SynOps, per-step predictions,
/// early exit, final counts). Cheap to construct: a few pointers.
class SampleRecorder {
 public:
  SampleRecorder(RunResult& result, const RunOptions& options, std::size_t sample);
  /// Spikes of population p at step t, ascending ids (counted, and kept when
  /// options.record_spikes).
  void spikes(Step t, PopulationId p, std::span<const NeuronId> ids);
  /// Counts n spikes of population p without their ids (only when spikes are not recorded).
  void count_spikes(PopulationId p, std::size_t n) { pop_spikes_[p] += n; }
  /// SynOps delivered through connection c at step t.
  void synops(std::size_t c, Step t, OpCount n) {
    synops_[c] += n;
    step_synops_[t] += n;
  }
  /// Work actually done for connection c (weights added, or MACs).
  void work(std::size_t c, OpCount n) { work_[c] += n; }
  /// Bias additions of one population and step.
  void bias_ops(OpCount n) { res_.bias_ops[sample_] += n; }
  /// Readout after step t: records the prediction, updates the early-exit
  /// state. Returns true when the sample stops here (early exit with stop);
  /// then the predictions of the remaining steps are filled in.
  bool readout(Step t, Readout& readout, const Potential* output_potentials);
  /// After the sample's last simulated step (`simulated` steps run): final
  /// counts, prediction, and the exit figures of a sample that never exited.
  void finish(const Readout& readout, Step simulated);

 private:
  OpCount spent() const;
  OpCount spent_through(Step t) const;  // SynOps of steps 0 .. t
  RunResult& res_;
  const RunOptions& options_;
  std::size_t sample_;
  std::uint64_t* pop_spikes_;
  OpCount* synops_;
  OpCount* work_;
  OpCount* step_synops_;
  std::uint16_t* predicted_;
};

/// The error for a potential that left [-kPotentialLimit, kPotentialLimit]:
/// names sample, neuron, population, step and the fixed-point bits.
[[noreturn]] void throw_potential_out_of_range(const FixedNetwork& net, std::size_t sample, std::size_t population,
                                               NeuronId neuron, Step step);

/// A RunResult with every array sized for `samples` of `net` (zeros).
RunResult make_result(const FixedNetwork& net, std::size_t samples, const RunOptions& options);

}  // namespace snn::engine
