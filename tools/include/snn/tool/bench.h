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
#pragma once

#include "snn/tool/commands.h"

#include <filesystem>
#include <string>

namespace snn::tool {

struct BenchOptions {
  int repeat = 3;           ///< timed runs of each simulator
  int samples = 500;        ///< test samples (0: simulation.limit, or all); --limit also sets it
  std::string json;         ///< also write the figures here (atomically), if set
  bool skip_bound = false;  ///< skip the row-add bound micro-benchmark
};

int bench_command(const std::filesystem::path& config, const CommonOptions& options, const BenchOptions& bench);

}  // namespace snn::tool
