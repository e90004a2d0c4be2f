// What the two modes of `snnsim bench` share (bench.cpp: throughput, event
// against dense; bench_latency.cpp: one sample at a time). Internal to tools/.
#pragma once

#include "snn/engine/run.h"
#include "snn/network/network.h"
#include "snn/tool/bench.h"
#include "snn/tool/pipeline.h"

#include <algorithm>
#include <string>
#include <vector>

namespace snn::tool::bench_parts {

/// Wall times of repeated runs of one thing.
struct Timing {
  std::vector<double> seconds;
  double median() const {
    auto v = seconds;
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
  }
  double min() const { return seconds.empty() ? 0 : *std::min_element(seconds.begin(), seconds.end()); }
  double max() const { return seconds.empty() ? 0 : *std::max_element(seconds.begin(), seconds.end()); }
};

/// The first field that says what the network did in which `a` and `b`
/// differ ("spike counts", "SynOps", ...), or "" if none does.
std::string first_difference(const engine::RunResult& a, const engine::RunResult& b);

/// The network bench times, and where its weights came from.
struct BenchNetwork {
  Network network;
  bool random = false;
  std::string weights;  ///< one line saying what the weights are
};

/// How many test samples the bench runs: --limit, else --samples, else
/// simulation.limit, else all; never more than `available`.
std::size_t bench_samples(const Config& config, const CommonOptions& options, const BenchOptions& bench, std::size_t available);

/// "784-1200-1200-10" or "1x28x28-12x24x24-...": the populations' shapes.
std::string shapes_of(const Network& network);

/// "  KEY VALUE", the key padded to 38 columns: one line of a bench report.
std::string report_line(const std::string& key, const std::string& value);

/// The lines under both modes' title: the network's shapes, where its weights
/// came from, and the machine's load average before and after the runs.
std::string header_lines(const BenchNetwork& net, const std::string& load_before, const std::string& load_after);

/// `snnsim bench --latency`: see bench.h. `load_before`: load_average() read
/// before the command loaded anything, as the other modes report it.
int latency_bench(const std::filesystem::path& path, const Prepared& prepared, const BenchNetwork& net,
                  const CommonOptions& options, const BenchOptions& bench, const std::string& load_before);

}  // namespace snn::tool::bench_parts
