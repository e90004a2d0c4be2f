// `snnsim bench --latency`: one sample at a time with each population split
// over the threads (engine Parallelism::Targets), on 1 thread and on the
// --threads count, beside throughput mode (samples in parallel) on as many
// threads; per-sample times, and whether all three agree exactly.
#include "bench_parts.h"

#include "snn/engine/engine.h"
#include "snn/error.h"
#include "snn/network/atomic_file.h"
#include "snn/tool/interrupt.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace snn::tool::bench_parts {

namespace {

// One way to run the samples, with its times and its first timed result.
struct Way {
  std::string name;
  engine::RunOptions options;
  Timing time;
  engine::RunResult result;
};

// The three ways timed: latency mode on 1 thread and on T, throughput mode
// on T (ways[0], [1], [2]).
struct LatencyRuns {
  std::size_t n = 0;
  int threads = 1;
  engine::SampleSet samples;
  std::vector<Way> ways;
};

// One untimed run, then bench.repeat rounds of the three ways, alternating
// so that a slow spell of the shared machine hits all of them alike.
LatencyRuns time_latency(const Prepared& p, const engine::Engine& engine, const CommonOptions& options,
                         const BenchOptions& bench) {
  const Config& c = p.config;
  LatencyRuns l;
  l.n = bench_samples(c, options, bench, p.data.test.count);
  l.samples = engine::SampleSet::of(p.data.test, 0, l.n);
  engine::RunOptions throughput = run_options(c);
  throughput.progress = [](std::size_t, std::size_t) { throw_if_interrupted(); };
  l.threads = engine::effective_threads(throughput);
  engine::RunOptions single = throughput, split = throughput;
  single.parallelism = split.parallelism = engine::Parallelism::Targets;
  single.threads = 1;
  split.threads = l.threads;
  const std::string s = l.threads == 1 ? "" : "s";
  l.ways = {{"latency mode, 1 thread", single, {}, {}},
            {fmt::format("latency mode, {} thread{}", l.threads, s), split, {}, {}},
            {fmt::format("throughput mode, {} thread{}", l.threads, s), throughput, {}, {}}};
  if (!options.quiet)
    fmt::print(stderr, "bench --latency: {} samples x {} steps, 1 and {} threads, {} timed runs of each\n", l.n,
               c.simulation.steps, l.threads, bench.repeat);
  engine.run(l.samples, single);  // untimed: pages in weights and data, sizes buffers
  for (int r = 0; r < bench.repeat; ++r) {
    for (Way& w : l.ways) {
      engine::RunResult result = engine.run(l.samples, w.options);
      w.time.seconds.push_back(result.seconds);
      if (r == 0) w.result = std::move(result);
    }
    if (!options.quiet)
      fmt::print(stderr, "  run {}/{}: {:.3f} s, {:.3f} s, {:.3f} s\n", r + 1, bench.repeat, l.ways[0].time.seconds.back(),
                 l.ways[1].time.seconds.back(), l.ways[2].time.seconds.back());
  }
  return l;
}

std::vector<double> spikes_per_sample(const engine::RunResult& r, double n) {
  std::vector<double> out;
  for (auto x : r.spikes_per_population()) out.push_back(static_cast<double>(x) / n);
  return out;
}

// The text report on stdout.
void print_latency(const std::filesystem::path& path, const Prepared& p, const BenchNetwork& bn, const BenchOptions& bench,
                   const LatencyRuns& l, const std::string& load_before, const std::string& load_after,
                   const std::string& diff_split, const std::string& diff_throughput) {
  const Config& c = p.config;
  const double dn = static_cast<double>(l.n);
  std::string out;
  auto line = [&](const std::string& k, const std::string& v) { out += report_line(k, v); };
  out += fmt::format(
      "snnsim bench {} --latency: {} samples x {} steps on {}, one sample at a time, each population split over the "
      "threads (median of {} runs)\n",
      path.string(), l.n, c.simulation.steps, p.data.name, bench.repeat);
  out += header_lines(bn, load_before, load_after);
  for (const Way& w : l.ways)
    line(fmt::format("per sample, {}", w.name), fmt::format("{:.3f} ms (range {:.3f}-{:.3f})", 1e3 * w.time.median() / dn,
                                                            1e3 * w.time.min() / dn, 1e3 * w.time.max() / dn));
  line(fmt::format("speed-up, latency mode {} vs 1 thread", l.threads),
       fmt::format("{:.2f}x{}", l.ways[0].time.median() / l.ways[1].time.median(),
                   l.threads == 1 ? " (1 thread only: --threads 1 or a single core)" : ""));
  const engine::RunResult& r = l.ways[0].result;
  std::string per_pop;
  for (double s : spikes_per_sample(r, dn)) per_pop += fmt::format("{}{:.1f}", per_pop.empty() ? "" : ", ", s);
  line("spikes per sample (input first)", per_pop);
  line("SynOps per sample", fmt::format("{:.4g} M (engine adds {:.4g} M)", static_cast<double>(r.total_synops()) / dn / 1e6,
                                        static_cast<double>(r.total_work()) / dn / 1e6));
  line("SNN accuracy",
       fmt::format("{:.2f} %{}", 100 * r.accuracy(l.samples.labels), bn.random ? " (random weights: meaningless)" : ""));
  auto verdict = [](const std::string& d) {
    return d.empty() ? "yes: every spike count, prediction and SynOp" : "NO: " + d + " differ";
  };
  line(fmt::format("1 thread == {} thread{} (latency mode)", l.threads, l.threads == 1 ? "" : "s"), verdict(diff_split));
  line("latency mode == throughput mode", verdict(diff_throughput));
  fmt::print("{}", out);
}

// The same figures as JSON (--json), written whole or not at all.
void write_latency_json(const std::filesystem::path& path, const Prepared& p, const BenchNetwork& bn, const BenchOptions& bench,
                        const LatencyRuns& l, const std::string& load_before, const std::string& load_after, bool same_split,
                        bool same_throughput) {
  const double dn = static_cast<double>(l.n);
  auto timing = [&](const Timing& t) {
    return nlohmann::json{
        {"median", t.median()}, {"min", t.min()}, {"max", t.max()}, {"runs", t.seconds}, {"per_sample_median", t.median() / dn}};
  };
  const engine::RunResult& r = l.ways[0].result;
  nlohmann::json j;
  j["mode"] = "latency";
  j["config"] = path.string();
  j["network"] = shapes_of(bn.network);
  j["random_weights"] = bn.random;
  j["samples"] = l.n;
  j["steps"] = p.config.simulation.steps;
  j["threads"] = l.threads;
  j["repeat"] = bench.repeat;
  j["load_average"] = {{"before", load_before}, {"after", load_after}};
  j["latency_1_thread"] = timing(l.ways[0].time);
  j["latency_threads"] = timing(l.ways[1].time);
  j["throughput"] = timing(l.ways[2].time);
  j["speedup_threads_vs_1"] = l.ways[0].time.median() / l.ways[1].time.median();
  j["synops_per_sample"] = static_cast<double>(r.total_synops()) / dn;
  j["spikes_per_sample"] = spikes_per_sample(r, dn);
  j["accuracy"] = r.accuracy(l.samples.labels);
  j["identical"] = {{"threads_vs_1", same_split}, {"throughput_vs_latency", same_throughput}};
  write_file_atomically(bench.json, j.dump(1) + "\n");
}

}  // namespace

int latency_bench(const std::filesystem::path& path, const Prepared& p, const BenchNetwork& bn, const CommonOptions& options,
                  const BenchOptions& bench, const std::string& load_before) {
  const Config& c = p.config;
  const auto fixed =
      std::make_shared<const engine::FixedNetwork>(bn.network, c.simulation.fixed_point_bits, c.simulation.weight_bits);
  const engine::Engine engine(fixed);
  const LatencyRuns l = time_latency(p, engine, options, bench);
  const std::string load_after = load_average();
  const std::string diff_split = first_difference(l.ways[0].result, l.ways[1].result);
  const std::string diff_throughput = first_difference(l.ways[0].result, l.ways[2].result);
  print_latency(path, p, bn, bench, l, load_before, load_after, diff_split, diff_throughput);
  if (!bench.json.empty())
    write_latency_json(path, p, bn, bench, l, load_before, load_after, diff_split.empty(), diff_throughput.empty());
  return diff_split.empty() && diff_throughput.empty() ? 0 : 3;
}

}  // namespace snn::tool::bench_parts
