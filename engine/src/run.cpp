#include "snn/engine/run.h"

#include <tbb/info.h>
#include <algorithm>
#include <limits>

#include "snn/error.h"

#include <numeric>

namespace snn::engine {

std::string_view to_string(Parallelism parallelism) {
  switch (parallelism) {
    case Parallelism::Samples: return "samples";
    case Parallelism::Targets: return "targets";
  }
  return "?";
}

Parallelism parse_parallelism(std::string_view text) {
  if (text == "samples" || text == "throughput") return Parallelism::Samples;
  if (text == "targets" || text == "latency") return Parallelism::Targets;
  throw Error("unknown parallelism '{}' (expected 'samples' or 'targets')", text);
}

void validate(const SampleSet& samples, const FixedNetwork& net) {
  if (samples.size != net.input_size())
    throw Error("samples have {} values each, the network's input population has {} neurons", samples.size, net.input_size());
  if (samples.values.size() != samples.count * samples.size)
    throw Error("sample set holds {} values, {} samples of {} need {}", samples.values.size(), samples.count, samples.size,
                samples.count * samples.size);
  if (samples.count > std::numeric_limits<SampleId>::max() ||
      samples.first_id > std::numeric_limits<SampleId>::max() - samples.count)
    throw Error("samples {} .. {} exceed the 32-bit sample ids", samples.first_id, samples.first_id + samples.count);
}

int effective_threads(const RunOptions& options) {
  // More threads than cores would only oversubscribe (TBB caps its workers at
  // the cores anyway); results do not depend on the count.
  const int cores = tbb::info::default_concurrency();
  return options.threads > 0 ? std::min(options.threads, cores) : cores;
}

void validate(const RunOptions& options) {
  if (options.steps < 1) throw Error("steps must be >= 1, got {}", options.steps);
  if (options.threads < 0) throw Error("threads must be >= 0 (0 = all cores), got {}", options.threads);
  if (options.step_block < 0) throw Error("step_block must be >= 0 steps (0 = automatic), got {}", options.step_block);
  validate(options.input);
  if (options.early_exit.enabled) {
    if (options.early_exit.margin < 1) throw Error("early exit margin must be >= 1 spike, got 0");
    if (options.early_exit.hold < 1) throw Error("early exit hold must be >= 1 step, got {}", options.early_exit.hold);
  }
}

namespace {

template <typename T>
std::vector<T> column_sums(const std::vector<T>& a, std::size_t rows, std::size_t cols) {
  std::vector<T> out(cols, 0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) out[c] += a[r * cols + c];
  return out;
}

double fraction_correct(const std::vector<std::uint16_t>& predicted, std::span<const std::uint8_t> labels, std::size_t samples) {
  if (labels.size() != samples) throw Error("accuracy: {} labels for {} samples", labels.size(), samples);
  if (samples == 0) return 0.0;
  std::size_t correct = 0;
  for (std::size_t i = 0; i < samples; ++i) correct += predicted[i] == labels[i];
  return static_cast<double>(correct) / static_cast<double>(samples);
}

}  // namespace

OpCount RunResult::total_synops() const { return std::accumulate(synops.begin(), synops.end(), OpCount{0}); }
OpCount RunResult::total_bias_ops() const { return std::accumulate(bias_ops.begin(), bias_ops.end(), OpCount{0}); }
OpCount RunResult::total_work() const { return std::accumulate(work.begin(), work.end(), OpCount{0}); }
std::vector<OpCount> RunResult::synops_per_connection() const { return column_sums(synops, samples, connections); }
std::vector<OpCount> RunResult::work_per_connection() const { return column_sums(work, samples, connections); }
std::vector<std::uint64_t> RunResult::spikes_per_population() const {
  return column_sums(population_spikes, samples, populations);
}

OpCount RunResult::dense_macs() const {
  const OpCount per_step = std::accumulate(dense_macs_per_step.begin(), dense_macs_per_step.end(), OpCount{0});
  return per_step * static_cast<OpCount>(steps) * samples;
}

double RunResult::firing_rate(PopulationId p) const {
  const std::uint64_t simulated = std::accumulate(steps_simulated.begin(), steps_simulated.end(), std::uint64_t{0});
  if (simulated == 0 || p >= populations) return 0.0;
  return static_cast<double>(spikes_per_population()[p]) /
         (static_cast<double>(simulated) * static_cast<double>(population_sizes[p]));
}

double RunResult::accuracy(std::span<const std::uint8_t> labels) const { return fraction_correct(predictions, labels, samples); }

std::vector<double> RunResult::accuracy_curve(std::span<const std::uint8_t> labels) const {
  if (labels.size() != samples) throw Error("accuracy curve: {} labels for {} samples", labels.size(), samples);
  std::vector<std::size_t> correct(static_cast<std::size_t>(steps), 0);
  for (std::size_t i = 0; i < samples; ++i)
    for (Step t = 0; t < steps; ++t) correct[static_cast<std::size_t>(t)] += prediction_at(i, t) == labels[i];
  std::vector<double> curve(correct.size());
  for (std::size_t t = 0; t < curve.size(); ++t)
    curve[t] = samples ? static_cast<double>(correct[t]) / static_cast<double>(samples) : 0.0;
  return curve;
}

double RunResult::exit_accuracy(std::span<const std::uint8_t> labels) const {
  return fraction_correct(exit_predictions, labels, samples);
}

std::vector<double> RunResult::synops_curve() const {
  const auto n = static_cast<std::size_t>(steps);
  std::vector<double> curve(n, 0.0);
  for (std::size_t i = 0; i < samples; ++i)
    for (std::size_t t = 0; t < n; ++t) curve[t] += static_cast<double>(step_synops[i * n + t]);
  for (std::size_t t = 1; t < n; ++t) curve[t] += curve[t - 1];
  return curve;
}

OpCount RunResult::total_synops_at_exit() const {
  return std::accumulate(synops_at_exit.begin(), synops_at_exit.end(), OpCount{0});
}

void Readout::reset(std::size_t classes, const EarlyExitOptions& early_exit, bool tie_break_by_potential) {
  counts_.assign(classes, 0);
  early_exit_ = early_exit;
  tie_break_ = tie_break_by_potential;
  streak_ = 0;
  exited_ = false;
}

std::uint16_t Readout::predict(const Potential* potentials) const {
  std::size_t best = 0;
  for (std::size_t c = 1; c < counts_.size(); ++c) {
    if (counts_[c] > counts_[best] ||
        (tie_break_ && potentials && counts_[c] == counts_[best] && potentials[c] > potentials[best]))
      best = c;
  }
  return static_cast<std::uint16_t>(best);
}

bool Readout::exit_now() {
  if (!early_exit_.enabled || exited_) return false;
  std::uint32_t first = 0, second = 0;
  for (std::uint32_t c : counts_) {
    if (c > first) {
      second = first;
      first = c;
    } else if (c > second) {
      second = c;
    }
  }
  // With one class there is nobody to lead: the lead is its count.
  const std::uint32_t lead = first - second;
  streak_ = lead >= early_exit_.margin ? streak_ + 1 : 0;
  if (streak_ >= early_exit_.hold) {
    exited_ = true;
    return true;
  }
  return false;
}

SampleRecorder::SampleRecorder(RunResult& result, const RunOptions& options, std::size_t sample)
    : res_(result),
      options_(options),
      sample_(sample),
      pop_spikes_(result.population_spikes.data() + sample * result.populations),
      synops_(result.synops.data() + sample * result.connections),
      work_(result.work.data() + sample * result.connections),
      step_synops_(result.step_synops.data() + sample * static_cast<std::size_t>(result.steps)),
      predicted_(result.step_predictions.data() + sample * static_cast<std::size_t>(result.steps)) {}

void SampleRecorder::spikes(Step t, PopulationId p, std::span<const NeuronId> ids) {
  pop_spikes_[p] += ids.size();
  if (options_.record_spikes)
    for (NeuronId j : ids) res_.spike_trains[sample_].push_back({t, p, j});
}

OpCount SampleRecorder::spent() const { return std::accumulate(synops_, synops_ + res_.connections, OpCount{0}); }

OpCount SampleRecorder::spent_through(Step t) const { return std::accumulate(step_synops_, step_synops_ + t + 1, OpCount{0}); }

bool SampleRecorder::readout(Step t, Readout& readout, const Potential* output_potentials) {
  const std::uint16_t pred = readout.predict(output_potentials);
  predicted_[t] = pred;
  if (!readout.exit_now()) return false;
  res_.exit_step[sample_] = t;
  res_.exit_predictions[sample_] = pred;
  // By step: in a block of steps the populations before the output have
  // already spent the block's later steps.
  res_.synops_at_exit[sample_] = spent_through(t);
  if (!options_.early_exit.stop) return false;
  std::fill(predicted_ + t + 1, predicted_ + res_.steps, pred);
  return true;
}

void SampleRecorder::finish(const Readout& readout, Step simulated) {
  res_.steps_simulated[sample_] = simulated;
  if (options_.record_spikes) {
    // In step order, as a run in blocks of one step records them (each
    // step's ids of a population are already ascending).
    auto& train = res_.spike_trains[sample_];
    auto before = [](const SpikeEvent& a, const SpikeEvent& b) {
      return a.step != b.step ? a.step < b.step : a.population < b.population;
    };
    if (!std::is_sorted(train.begin(), train.end(), before)) std::stable_sort(train.begin(), train.end(), before);
  }
  const auto& counts = readout.counts();
  std::copy(counts.begin(), counts.end(), res_.output_counts.begin() + static_cast<std::ptrdiff_t>(sample_ * counts.size()));
  res_.predictions[sample_] = predicted_[res_.steps - 1];
  if (options_.early_exit.enabled && res_.exit_step[sample_] < 0) {
    res_.exit_predictions[sample_] = res_.predictions[sample_];
    res_.synops_at_exit[sample_] = spent();
  }
}

void throw_potential_out_of_range(const FixedNetwork& net, std::size_t sample, std::size_t population, NeuronId neuron,
                                  Step step) {
  throw Error(
      "sample {}: the potential of neuron {} of population {} left the fixed-point range (+-2^30 units, "
      "{} thetas at k = {} bits) at step {}; quantise with fewer fixed-point bits",
      sample, neuron, population, kPotentialLimit / net.params(static_cast<PopulationId>(population)).threshold,
      net.report(population - 1).bits, step);
}

RunResult make_result(const FixedNetwork& net, std::size_t samples, const RunOptions& options) {
  if (net.output_size() > 65536)
    throw Error("output population of {} neurons: predictions are stored as 16-bit classes (at most 65536)", net.output_size());
  RunResult r;
  r.samples = samples;
  r.steps = options.steps;
  r.populations = net.population_count();
  r.connections = net.connection_count();
  r.classes = net.output_size();
  const auto steps = static_cast<std::size_t>(options.steps);
  r.output_counts.assign(samples * r.classes, 0);
  r.step_predictions.assign(samples * steps, 0);
  r.predictions.assign(samples, 0);
  r.steps_simulated.assign(samples, 0);
  r.population_spikes.assign(samples * r.populations, 0);
  r.synops.assign(samples * r.connections, 0);
  r.work.assign(samples * r.connections, 0);
  r.bias_ops.assign(samples, 0);
  r.step_synops.assign(samples * static_cast<std::size_t>(options.steps), 0);
  if (options.early_exit.enabled) {
    r.exit_step.assign(samples, -1);
    r.exit_predictions.assign(samples, 0);
    r.synops_at_exit.assign(samples, 0);
  }
  if (options.record_spikes) r.spike_trains.resize(samples);
  r.quantisation = net.reports();
  for (std::size_t c = 0; c < net.connection_count(); ++c) r.dense_macs_per_step.push_back(net.connection(c).dense_macs());
  for (std::size_t p = 0; p < net.population_count(); ++p) r.population_sizes.push_back(net.size(p));
  return r;
}

}  // namespace snn::engine
