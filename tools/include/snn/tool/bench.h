// `snnsim bench CONFIG`: the event engine against the dense time-stepped
// baseline (per-step sgemm as PyTorch/snntorch do it, and the variant that
// computes the first connection for a chunk of steps in one larger sgemm), on
// the same network, input encoding, seed and samples, runs alternating. Prints
// wall time (median and range), samples/s, SynOps (event) against MACs (dense)
// per sample, SynOps/s and MAC/s reached, the speed-up, peak resident memory,
// whether every spike count and prediction agrees, and the engine's delivery
// rate as a fraction of the machine's row-add bound (row_add_bound.h).
// Then the same for each weight table width (simulation.weight_bits 32, 16,
// 8; runs alternating): time, speed-up over 32-bit and over the dense
// baseline, accuracy, identity with the dense baseline on the same quantised
// weights, and the row-add bound measured for that element size.
//
// The network is the config's trained one (training it if the cache has none)
// or, with --random-weights / --random-width N, random weights tuned to fire
// at set rates (bench_random.h): no training, any width. With --latency the
// bench times latency mode instead (one sample at a time, each population
// split over the threads: engine Parallelism::Targets) on 1 thread and on the
// --threads count, beside throughput mode on as many threads, and checks that
// all three give identical results. Every timing is the median (and range) of
// --repeat runs, printed with the machine's load average before and after.
#pragma once

#include "snn/tool/commands.h"

#include <filesystem>
#include <string>

namespace snn::tool {

struct BenchOptions {
  int repeat = 3;               ///< timed runs of each simulator
  int samples = 500;            ///< test samples (0: simulation.limit, or all); --limit also sets it
  std::string json;             ///< also write the figures here (atomically), if set
  bool skip_bound = false;      ///< skip the row-add bound micro-benchmark
  bool random_weights = false;  ///< random weights for the config's network instead of the trained ones
  int random_width = 0;         ///< > 0: random weights for a 784-N-N-10 MLP (network.hidden = [N, N])
  double random_rate = 0;       ///< spikes per neuron and step the random weights are tuned to (0: bench_random.h's default)
  int tune_samples = 20;        ///< training images the random weights' scales are tuned on
  bool latency = false;         ///< time latency mode (1 vs --threads threads) instead of event vs dense
};

/// The 1-, 5- and 15-minute load averages from /proc/loadavg, or "unknown".
std::string load_average();

int bench_command(const std::filesystem::path& config, const CommonOptions& options, const BenchOptions& bench);

}  // namespace snn::tool
