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

namespace snn::tool::bench_parts {

int latency_bench(const std::filesystem::path& path, const Prepared& p, const BenchNetwork& bn, const CommonOptions& options,
                  const BenchOptions& bench, const std::string& load_before) {
  const Config& c = p.config;
  const auto fixed =
      std::make_shared<const engine::FixedNetwork>(bn.network, c.simulation.fixed_point_bits, c.simulation.weight_bits);
  const engine::Engine engine(fixed);
  const std::size_t n = bench_samples(c, options, bench, p.data.test.count);
  const auto samples = engine::SampleSet::of(p.data.test, 0, n);

  // Three ways to run the same samples: latency mode on 1 thread and on T,
  // throughput mode on T.
  engine::RunOptions throughput = run_options(c);
  throughput.progress = [](std::size_t, std::size_t) { throw_if_interrupted(); };
  const int threads = engine::effective_threads(throughput);
  engine::RunOptions single = throughput, split = throughput;
  single.parallelism = split.parallelism = engine::Parallelism::Targets;
  single.threads = 1;
  split.threads = threads;
  struct Way {
    std::string name;
    const engine::RunOptions* options;
    Timing time;
    engine::RunResult result;  // the first timed run's
  };
  Way ways[] = {{"latency mode, 1 thread", &single, {}, {}},
                {fmt::format("latency mode, {} thread{}", threads, threads == 1 ? "" : "s"), &split, {}, {}},
                {fmt::format("throughput mode, {} thread{}", threads, threads == 1 ? "" : "s"), &throughput, {}, {}}};
  if (!options.quiet)
    fmt::print(stderr, "bench --latency: {} samples x {} steps, 1 and {} threads, {} timed runs of each\n", n, c.simulation.steps,
               threads, bench.repeat);
  engine.run(samples, single);  // untimed: pages in weights and data, sizes buffers
  for (int r = 0; r < bench.repeat; ++r) {
    // Alternating, so a slow spell of the shared machine hits all of them alike.
    for (Way& w : ways) {
      engine::RunResult result = engine.run(samples, *w.options);
      w.time.seconds.push_back(result.seconds);
      if (r == 0) w.result = std::move(result);
    }
    if (!options.quiet)
      fmt::print(stderr, "  run {}/{}: {:.3f} s, {:.3f} s, {:.3f} s\n", r + 1, bench.repeat, ways[0].time.seconds.back(),
                 ways[1].time.seconds.back(), ways[2].time.seconds.back());
  }
  const std::string load_after = load_average();
  const std::string diff_split = first_difference(ways[0].result, ways[1].result);
  const std::string diff_throughput = first_difference(ways[0].result, ways[2].result);
  const bool same = diff_split.empty() && diff_throughput.empty();

  const double dn = static_cast<double>(n);
  std::string out;
  auto line = [&](const std::string& k, const std::string& v) { out += report_line(k, v); };
  out += fmt::format(
      "snnsim bench {} --latency: {} samples x {} steps on {}, one sample at a time, each population split over the "
      "threads (median of {} runs)\n",
      path.string(), n, c.simulation.steps, p.data.name, bench.repeat);
  out += header_lines(bn, load_before, load_after);
  for (const Way& w : ways)
    line(fmt::format("per sample, {}", w.name), fmt::format("{:.3f} ms (range {:.3f}-{:.3f})", 1e3 * w.time.median() / dn,
                                                            1e3 * w.time.min() / dn, 1e3 * w.time.max() / dn));
  line(fmt::format("speed-up, latency mode {} vs 1 thread", threads),
       fmt::format("{:.2f}x{}", ways[0].time.median() / ways[1].time.median(),
                   threads == 1 ? " (1 thread only: --threads 1 or a single core)" : ""));
  const engine::RunResult& r = ways[0].result;
  const auto spikes = r.spikes_per_population();
  std::string per_pop;
  for (auto s : spikes) per_pop += fmt::format("{}{:.1f}", per_pop.empty() ? "" : ", ", static_cast<double>(s) / dn);
  line("spikes per sample (input first)", per_pop);
  line("SynOps per sample", fmt::format("{:.4g} M (engine adds {:.4g} M)", static_cast<double>(r.total_synops()) / dn / 1e6,
                                        static_cast<double>(r.total_work()) / dn / 1e6));
  line("SNN accuracy",
       fmt::format("{:.2f} %{}", 100 * r.accuracy(samples.labels), bn.random ? " (random weights: meaningless)" : ""));
  auto verdict = [](const std::string& d) {
    return d.empty() ? "yes: every spike count, prediction and SynOp" : "NO: " + d + " differ";
  };
  line(fmt::format("1 thread == {} threads (latency mode)", threads), verdict(diff_split));
  line("latency mode == throughput mode", verdict(diff_throughput));
  fmt::print("{}", out);

  if (!bench.json.empty()) {
    auto timing = [&](const Timing& t) {
      return nlohmann::json{{"median", t.median()},
                            {"min", t.min()},
                            {"max", t.max()},
                            {"runs", t.seconds},
                            {"per_sample_median", t.median() / dn}};
    };
    nlohmann::json j;
    j["mode"] = "latency";
    j["config"] = path.string();
    j["network"] = shapes_of(bn.network);
    j["random_weights"] = bn.random;
    j["samples"] = n;
    j["steps"] = c.simulation.steps;
    j["threads"] = threads;
    j["repeat"] = bench.repeat;
    j["load_average"] = {{"before", load_before}, {"after", load_after}};
    j["latency_1_thread"] = timing(ways[0].time);
    j["latency_threads"] = timing(ways[1].time);
    j["throughput"] = timing(ways[2].time);
    j["speedup_threads_vs_1"] = ways[0].time.median() / ways[1].time.median();
    j["synops_per_sample"] = static_cast<double>(r.total_synops()) / dn;
    std::vector<double> per_sample;
    for (auto x : spikes) per_sample.push_back(static_cast<double>(x) / dn);
    j["spikes_per_sample"] = per_sample;
    j["accuracy"] = r.accuracy(samples.labels);
    j["identical"] = {{"threads_vs_1", diff_split.empty()}, {"throughput_vs_latency", diff_throughput.empty()}};
    write_file_atomically(bench.json, j.dump(1) + "\n");
  }
  return same ? 0 : 3;
}

}  // namespace snn::tool::bench_parts
