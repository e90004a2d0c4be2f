#include "snn/tool/report_mapping.h"

#include <fmt/format.h>

#include <algorithm>

namespace snn::tool {

SnnReport snn_report(const Config& c, const Network& net, const engine::SampleSet& samples, const engine::RunResult& result) {
  const auto& s = c.simulation;
  const std::size_t n = samples.count;
  const std::size_t layers = net.connections().size();
  SnnReport out;
  out.samples = n;
  out.steps = s.steps;
  out.dt_ms = s.dt_ms;
  out.labels.assign(samples.labels.begin(), samples.labels.end());
  out.predictions.assign(result.predictions.begin(), result.predictions.end());
  record_output_spikes(out, result);
  out.accuracy_curve = result.accuracy_curve(samples.labels);
  out.threads = result.threads;
  out.seconds = result.seconds;
  const double sim_seconds = s.steps * s.dt_ms * 1e-3;
  const auto spikes = result.spikes_per_population();
  for (std::size_t p = 0; p < net.populations().size(); ++p) {
    const auto& pop = net.population(static_cast<PopulationId>(p));
    const double per_sample = static_cast<double>(spikes[p]) / static_cast<double>(n);
    out.populations.push_back({pop.name, pop.size, per_sample, per_sample / static_cast<double>(pop.size) / sim_seconds});
  }
  const auto synops = result.synops_per_connection();
  // Analog input: the first connection multiplies input values every step
  // (the engine counts non-zero inputs x fan-out per step); those are MACs,
  // reported apart and taken out of the SynOps curves. Per sample they are
  // the same every simulated step.
  const bool analog = s.encoding == Encoding::Analog;
  std::vector<double> input_macs_per_step(n, 0.0);
  if (analog)
    for (std::size_t i = 0; i < n; ++i)
      if (result.steps_simulated[i] > 0)
        input_macs_per_step[i] = static_cast<double>(result.synops[i * layers]) / static_cast<double>(result.steps_simulated[i]);
  const auto input_macs_until = [&](std::size_t i, Step t) {
    return input_macs_per_step[i] * static_cast<double>(std::min(t, result.steps_simulated[i]));
  };
  const auto work = result.work_per_connection();
  double work_total = 0;
  for (std::size_t l = 0; l < layers; ++l) {
    const auto& conn = net.connection(l);
    ConnectionReport cr{fmt::format("{}->{}", net.population(conn.source()).name, net.population(conn.target()).name),
                        conn.source_size(),
                        conn.target_size(),
                        static_cast<int>(conn.delay()),
                        conn.synapses(),
                        static_cast<double>(synops[l]) / static_cast<double>(n),
                        static_cast<double>(result.dense_macs_per_step[l]) * s.steps,
                        std::string(to_string(conn.format()))};
    cr.analog_input = analog && l == 0;
    if (l < result.quantisation.size()) {
      const engine::QuantisationReport& q = result.quantisation[l];
      cr.fixed_point_bits = q.bits;
      cr.weight_bits = q.weight_bits;
      cr.max_relative_error = q.max_relative_error;
      cr.max_abs_error = q.max_abs_error;
      cr.zeroed = q.zeroed;
      cr.nonzero = q.nonzero;
      if (q.large())
        out.quantisation_warnings.push_back(fmt::format(
            "connection {}: large quantisation error ({}-bit weights, unit theta/2^{}): largest relative weight error "
            "{:.2g} %, {} of {} non-zero weights ({:.1f} %) rounded to 0; raise simulation.fixed_point_bits or "
            "simulation.weight_bits",
            cr.name, q.weight_bits, q.bits, 100 * q.max_relative_error, q.zeroed, q.nonzero,
            q.nonzero ? 100.0 * static_cast<double>(q.zeroed) / static_cast<double>(q.nonzero) : 0.0));
    }
    out.connections.push_back(std::move(cr));
    work_total += static_cast<double>(work[l]);
  }
  out.engine_row_adds_per_sample = work_total / static_cast<double>(n);
  out.bias_ops_per_sample = static_cast<double>(result.total_bias_ops()) / static_cast<double>(n);
  for (const auto& q : result.quantisation) out.fixed_point_bits.push_back(q.bits);
  out.synops_curve = result.synops_curve();
  for (std::size_t t = 0; t < out.synops_curve.size(); ++t) {
    double& v = out.synops_curve[t];
    if (analog)
      for (std::size_t i = 0; i < n; ++i) v -= input_macs_until(i, static_cast<Step>(t + 1));
    v /= static_cast<double>(n);
  }
  out.early_exit = s.early_exit != EarlyExitMode::Off;
  out.early_exit_stopped = s.early_exit == EarlyExitMode::Stop;
  if (out.early_exit) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += result.exit_step[i] < 0 ? s.steps : result.exit_step[i] + 1;
    out.mean_exit_step = sum / static_cast<double>(n);
    out.exit_accuracy = result.exit_accuracy(samples.labels);
    double at_exit = static_cast<double>(result.total_synops_at_exit());
    if (analog)
      for (std::size_t i = 0; i < n; ++i)
        at_exit -= input_macs_until(i, result.exit_step[i] < 0 ? s.steps : result.exit_step[i] + 1);
    out.synops_at_exit_per_sample = at_exit / static_cast<double>(n);
  }
  return out;
}

RunReport base_report(const std::string& command, const Prepared& p) {
  RunReport r;
  r.command = command;
  r.config_toml = to_toml(p.config);
  r.dataset = p.data.name;
  const int limit = p.config.training.limit;
  r.train_samples = limit > 0 ? std::min<std::size_t>(static_cast<std::size_t>(limit), p.data.train.count) : p.data.train.count;
  r.test_samples = p.data.test.count;
  r.checkpoints = p.config.simulation.checkpoints;
  r.warnings = p.config.warnings;
  return r;
}

}  // namespace snn::tool
