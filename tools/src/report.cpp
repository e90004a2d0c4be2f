#include "snn/tool/report.h"

#include "snn/error.h"
#include "snn/network/atomic_file.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <sstream>
#include <sys/wait.h>

namespace snn::tool {

namespace fs = std::filesystem;
using nlohmann::json;

double SnnReport::synops_per_sample() const {
  double s = 0;
  for (const auto& c : connections) s += c.synops_per_sample;
  return s;
}

double SnnReport::dense_macs_per_sample() const {
  double s = 0;
  for (const auto& c : connections) s += c.dense_macs_per_sample;
  return s;
}

Step SnnReport::steps_to_fraction(double fraction) const {
  const double target = fraction * accuracy();
  for (std::size_t i = 0; i < accuracy_curve.size(); ++i)
    if (accuracy_curve[i] >= target) return static_cast<Step>(i + 1);
  return steps;
}

namespace {

json config_as_json(const std::string& toml_text) {
  if (toml_text.empty()) return json::object();
  std::ostringstream out;
  out << toml::json_formatter{toml::parse(toml_text)};
  return json::parse(out.str());
}

std::string csv_accuracy(const SnnReport& s) {
  std::string out = "step,time_ms,accuracy,cumulative_synops_per_sample\n";
  for (std::size_t i = 0; i < s.accuracy_curve.size(); ++i)
    out += fmt::format("{},{:g},{:.6f},{:.1f}\n", i + 1, static_cast<double>(i + 1) * s.dt_ms, s.accuracy_curve[i],
                       i < s.synops_curve.size() ? s.synops_curve[i] : 0.0);
  return out;
}

std::string csv_populations(const SnnReport& s) {
  std::string out = "population,neurons,spikes_per_sample,rate_hz\n";
  for (const auto& p : s.populations)
    out += fmt::format("{},{},{:.3f},{:.4f}\n", p.name, p.neurons, p.spikes_per_sample, p.rate_hz);
  return out;
}

// Runs gnuplot on `script`; false (and no file) when it fails.
bool run_gnuplot(const std::string& script) {
  FILE* pipe = ::popen("gnuplot 2>/dev/null", "w");
  if (!pipe) return false;
  std::fwrite(script.data(), 1, script.size(), pipe);
  const int status = ::pclose(pipe);
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// gnuplot writes to a temporary that is renamed into place, so a failed plot
// never leaves a truncated PNG under the real name.
void plot(const fs::path& png, const std::string& body) {
  const fs::path tmp = png.parent_path() / fmt::format(".{}.tmp", png.filename().string());
  const std::string script = fmt::format(
      "set terminal pngcairo size 900,560 font 'sans,11'\nset output '{}'\nset grid\nset key bottom right\n{}\nset output\n",
      tmp.string(), body);
  if (!run_gnuplot(script) || !fs::exists(tmp)) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error("gnuplot failed to draw '{}'", png.string());
  }
  fs::rename(tmp, png);
}

}  // namespace

bool have_gnuplot() { return std::system("gnuplot --version >/dev/null 2>&1") == 0; }

std::string results_json(const RunReport& r) {
  const SnnReport& s = r.snn;
  json j;
  j["schema"] = "snnsim-results/1";
  j["command"] = r.command;
  j["dataset"] = {{"name", r.dataset}, {"train_samples", r.train_samples}, {"test_samples", r.test_samples}};
  j["ann"] = {{"accuracy", r.ann_accuracy ? json(*r.ann_accuracy) : json(nullptr)}};
  j["weights"] = {{"manifest", r.weights}, {"cached", r.weights_cached}};
  j["normalisation"] = {{"method", r.normalisation}, {"factors", r.normalisation_factors}};
  json checkpoints = json::array();
  for (int cp : r.checkpoints)
    if (cp >= 1 && static_cast<std::size_t>(cp) <= s.accuracy_curve.size())
      checkpoints.push_back({{"step", cp}, {"time_ms", cp * s.dt_ms}, {"accuracy", s.accuracy_curve[cp - 1]}});
  json populations = json::array();
  for (const auto& p : s.populations)
    populations.push_back({{"name", p.name}, {"neurons", p.neurons}, {"spikes_per_sample", p.spikes_per_sample}, {"rate_hz", p.rate_hz}});
  json connections = json::array();
  for (const auto& c : s.connections)
    connections.push_back({{"name", c.name}, {"in", c.in}, {"out", c.out}, {"delay", c.delay}, {"synapses", c.synapses},
                           {"synops_per_sample", c.synops_per_sample}, {"dense_macs_per_sample", c.dense_macs_per_sample}});
  const double synops = s.synops_per_sample();
  j["snn"] = {
      {"samples", s.samples},
      {"steps", s.steps},
      {"dt_ms", s.dt_ms},
      {"accuracy", s.accuracy()},
      {"steps_to_99pct_of_final", s.steps_to_fraction(0.99)},
      {"checkpoints", checkpoints},
      {"synops_per_sample", synops},
      {"dense_macs_per_sample", s.dense_macs_per_sample()},
      {"dense_macs_per_synop", synops > 0 ? json(s.dense_macs_per_sample() / synops) : json(nullptr)},
      {"engine_row_adds_per_sample", s.engine_row_adds_per_sample},
      {"fixed_point_bits", s.fixed_point_bits},
      {"early_exit", {{"enabled", s.early_exit}, {"mean_exit_step", s.mean_exit_step}, {"accuracy", s.exit_accuracy},
                      {"synops_per_sample", s.synops_at_exit_per_sample}}},
      {"populations", populations},
      {"connections", connections},
      {"accuracy_curve", s.accuracy_curve},
      {"synops_curve", s.synops_curve},
      {"predictions", s.predictions},
      {"labels", s.labels},
  };
  j["warnings"] = r.warnings;
  j["config"] = config_as_json(r.config_toml);
  // Everything that may differ between two runs of the same config lives here.
  json timings = json::object();
  for (const auto& [k, v] : r.timings) timings[k] = v;
  timings["threads"] = s.threads;
  timings["simulation_seconds"] = s.seconds;
  j["timings"] = timings;
  return j.dump(1) + "\n";
}

std::vector<fs::path> write_report(const RunReport& r, const fs::path& dir, bool plots, bool quiet) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create output directory '{}': {}", dir.string(), ec.message());
  std::vector<fs::path> written;
  auto put = [&](const std::string& name, const std::string& content) {
    write_file_atomically(dir / name, content);
    written.push_back(dir / name);
  };
  put("accuracy_vs_time.csv", csv_accuracy(r.snn));
  put("populations.csv", csv_populations(r.snn));
  if (!r.config_toml.empty()) put("config.resolved.toml", r.config_toml);
  if (plots && !r.snn.accuracy_curve.empty()) {
    if (!have_gnuplot()) {
      if (!quiet) fmt::print(stderr, "note: gnuplot not found, no plots drawn (apt-get install gnuplot-nox)\n");
    } else {
      const std::string csv = (dir / "accuracy_vs_time.csv").string();
      const fs::path acc = dir / "accuracy_vs_time.png";
      plot(acc, fmt::format("set datafile separator ','\nset title 'Accuracy against simulated time ({} samples)'\n"
                            "set xlabel 'simulated time (steps of {:g} ms)'\nset ylabel 'accuracy'\nset yrange [0:1]\n"
                            "plot '{}' every ::1 using 1:3 with lines lw 2 title 'SNN'{}",
                            r.snn.samples, r.snn.dt_ms, csv,
                            r.ann_accuracy ? fmt::format(", {:.6f} with lines dt 2 title 'ANN'", *r.ann_accuracy) : ""));
      written.push_back(acc);
      const fs::path syn = dir / "synops_vs_time.png";
      plot(syn, fmt::format("set datafile separator ','\nset title 'Cumulative SynOps per sample'\nset key top left\n"
                            "set xlabel 'simulated time (steps)'\nset ylabel 'SynOps per sample'\nset format y '%.1s%c'\n"
                            "plot '{}' every ::1 using 1:4 with lines lw 2 title 'event-driven SynOps', "
                            "'{}' every ::1 using 1:($1*{}) with lines dt 2 title 'dense MACs'",
                            csv, csv, r.snn.steps > 0 ? r.snn.dense_macs_per_sample() / r.snn.steps : 0.0));
      written.push_back(syn);
      const fs::path rates = dir / "firing_rates.png";
      plot(rates, fmt::format("set datafile separator ','\nset title 'Mean firing rate per population'\nset style fill solid 0.6\n"
                              "set boxwidth 0.6\nset ylabel 'rate (Hz)'\nset yrange [0:*]\nunset key\n"
                              "plot '{}' every ::1 using 0:4:xtic(1) with boxes",
                              (dir / "populations.csv").string()));
      written.push_back(rates);
    }
  }
  // results.json last: its presence marks a complete output directory.
  put("results.json", results_json(r));
  return written;
}

std::string summary_table(const RunReport& r) {
  const SnnReport& s = r.snn;
  std::string out;
  auto row = [&](const std::string& k, const std::string& v) { out += fmt::format("  {:<34} {}\n", k, v); };
  auto pct = [](double a) { return fmt::format("{:.2f} %", a * 100); };
  out += fmt::format("snnsim {} on {} ({} test samples)\n", r.command, r.dataset, s.samples);
  if (r.ann_accuracy) row("ANN accuracy", pct(*r.ann_accuracy));
  row("normalisation", r.normalisation_factors.empty() ? r.normalisation
                                                       : fmt::format("{} (factors {:.4g})", r.normalisation,
                                                                     fmt::join(r.normalisation_factors, ", ")));
  row("SNN accuracy", fmt::format("{} after {} steps ({:g} ms)", pct(s.accuracy()), s.steps, s.steps * s.dt_ms));
  for (int cp : r.checkpoints)
    if (cp >= 1 && static_cast<std::size_t>(cp) <= s.accuracy_curve.size())
      row(fmt::format("  at step {}", cp), pct(s.accuracy_curve[cp - 1]));
  row("steps to 99 % of final accuracy", fmt::format("{}", s.steps_to_fraction(0.99)));
  if (s.early_exit) {
    row("early exit: mean stopping step", fmt::format("{:.1f}", s.mean_exit_step));
    row("early exit: accuracy", pct(s.exit_accuracy));
    row("early exit: SynOps/sample", fmt::format("{:.4g} M ({:.0f} % saved)", s.synops_at_exit_per_sample / 1e6,
                                                 s.synops_per_sample() > 0 ? 100 * (1 - s.synops_at_exit_per_sample / s.synops_per_sample()) : 0.0));
  }
  for (const auto& c : s.connections)
    row(fmt::format("SynOps/sample {}", c.name), fmt::format("{:.4g} M (dense {:.4g} M MACs)", c.synops_per_sample / 1e6,
                                                              c.dense_macs_per_sample / 1e6));
  const double synops = s.synops_per_sample();
  row("SynOps/sample total", fmt::format("{:.4g} M", synops / 1e6));
  row("dense MACs/sample", fmt::format("{:.4g} M", s.dense_macs_per_sample() / 1e6));
  if (synops > 0) row("dense MACs per SynOp", fmt::format("{:.1f}x", s.dense_macs_per_sample() / synops));
  row("engine row adds/sample", fmt::format("{:.4g} M SynOps' worth ({:.0f} % of SynOps)",
                                            s.engine_row_adds_per_sample / 1e6,
                                            synops > 0 ? 100 * s.engine_row_adds_per_sample / synops : 0.0));
  for (const auto& p : s.populations)
    row(fmt::format("spikes/sample {}", p.name), fmt::format("{:.1f} ({:.2f} Hz per neuron)", p.spikes_per_sample, p.rate_hz));
  for (const auto& [k, v] : r.timings) row(fmt::format("wall time {}", k), fmt::format("{:.2f} s", v));
  row("wall time simulation", fmt::format("{:.2f} s on {} thread{} ({:.0f} samples/s)", s.seconds, s.threads,
                                          s.threads == 1 ? "" : "s", s.seconds > 0 ? s.samples / s.seconds : 0.0));
  for (const auto& w : r.warnings) out += fmt::format("  warning: {}\n", w);
  return out;
}

void plot_accuracy(const std::vector<fs::path>& results, const fs::path& png) {
  if (results.empty()) throw Error("snnsim plot: give at least one results.json");
  std::string plots;
  std::vector<fs::path> tmp_csvs;
  for (const auto& file : results) {
    std::ifstream in(file);
    if (!in) throw Error("cannot read '{}'", file.string());
    json j;
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      throw Error("'{}' is not valid JSON: {}", file.string(), e.what());
    }
    if (!j.is_object() || !j.contains("snn") || !j["snn"].is_object() || !j["snn"].contains("accuracy_curve"))
      throw Error("'{}' is not an snnsim results.json (no snn.accuracy_curve)", file.string());
    std::vector<double> curve;
    double dt = 1.0;
    try {
      curve = j["snn"]["accuracy_curve"].get<std::vector<double>>();
      dt = j["snn"].value("dt_ms", 1.0);
    } catch (const json::exception& e) {
      throw Error("'{}' is not a valid snnsim results.json: {}", file.string(), e.what());
    }
    std::string data;
    for (std::size_t i = 0; i < curve.size(); ++i) data += fmt::format("{:g} {:.6f}\n", (i + 1) * dt, curve[i]);
    const fs::path csv = png.parent_path() / fmt::format(".{}.{}.dat", png.filename().string(), tmp_csvs.size());
    write_file_atomically(csv, data);
    tmp_csvs.push_back(csv);
    const std::string title = file.parent_path().filename().string().empty() ? file.string() : file.parent_path().filename().string();
    plots += fmt::format("{}'{}' using 1:2 with lines lw 2 title '{}'", plots.empty() ? "" : ", ", csv.string(), title);
  }
  try {
    plot(png, fmt::format("set title 'Accuracy against simulated time'\nset xlabel 'simulated time (ms)'\n"
                          "set ylabel 'accuracy'\nset yrange [0:1]\nplot {}",
                          plots));
  } catch (...) {
    for (const auto& c : tmp_csvs) fs::remove(c);
    throw;
  }
  for (const auto& c : tmp_csvs) fs::remove(c);
}

}  // namespace snn::tool
