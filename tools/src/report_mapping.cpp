#include "snn/tool/report_mapping.h"

#include <fmt/format.h>

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
  const auto work = result.work_per_connection();
  double work_total = 0;
  for (std::size_t l = 0; l < layers; ++l) {
    const auto& conn = net.connection(l);
    out.connections.push_back({fmt::format("{}->{}", net.population(conn.source()).name, net.population(conn.target()).name),
                               conn.source_size(), conn.target_size(), static_cast<int>(conn.delay()), conn.synapses(),
                               static_cast<double>(synops[l]) / static_cast<double>(n),
                               static_cast<double>(result.dense_macs_per_step[l]) * s.steps,
                               std::string(to_string(conn.format()))});
    work_total += static_cast<double>(work[l]);
  }
  out.engine_row_adds_per_sample = work_total / static_cast<double>(n);
  for (const auto& q : result.quantisation) out.fixed_point_bits.push_back(q.bits);
  out.synops_curve = result.synops_curve();
  for (auto& v : out.synops_curve) v /= static_cast<double>(n);
  out.early_exit = s.early_exit;
  if (s.early_exit) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += result.exit_step[i] < 0 ? s.steps : result.exit_step[i] + 1;
    out.mean_exit_step = sum / static_cast<double>(n);
    out.exit_accuracy = result.exit_accuracy(samples.labels);
    out.synops_at_exit_per_sample = static_cast<double>(result.total_synops_at_exit()) / static_cast<double>(n);
  }
  return out;
}

RunReport base_report(const std::string& command, const Prepared& p) {
  RunReport r;
  r.command = command;
  r.config_toml = to_toml(p.config);
  r.dataset = p.data.name;
  r.train_samples = p.data.train.count;
  r.test_samples = p.data.test.count;
  r.checkpoints = p.config.simulation.checkpoints;
  r.warnings = p.config.warnings;
  return r;
}

}  // namespace snn::tool
