// The dense time-stepped baseline: what the seed (PyTorch + snntorch) does,
// done well. Per step, the batch's spike vectors of a population (B x in, 0/1
// floats) times the connection's weights (in x out) by one cblas_sgemm
// (OpenBLAS, on RunOptions::threads threads), then the very same neuron
// update as the event engine (neuron.h), population by population, sample by
// sample.
//
// Spikes are identical to the event engine's: the weights are the engine's
// integer fixed-point weights stored as floats, every partial sum of a GEMM
// over 0/1 inputs stays below 2^24 in magnitude (checked at quantisation), so
// float32 sums are exact whatever order OpenBLAS uses, and the currents
// converted back to int32 equal the engine's integer sums.
//
// Convolutions: im2col + one sgemm per step and connection for the whole
// batch (the kernel, M = out_channels, K = in_channels x kh x kw, times the
// transposed im2col matrix, N = batch x output positions), the integer kernel
// as floats; exact for the same reason.
// Average pooling: a direct integer sum over each window times the pool's one
// weight (exact, and cheaper than any GEMM: kh x kw adds per target).
//
// Biases (integers) are added to the GEMM's integer current before the update.
//
// Variant (DenseOptions::precompute_first_layer, dense or sparse connection 0 only): connection 0 is linear in
// the input spikes, so its currents for many steps of a batch can be computed
// by one larger GEMM (M = steps x batch) before the step loop; the other
// connections depend on spikes and stay per step.
//
// Analog input: the constant current x * W is computed once per batch with
// cblas_dgemm on the bytes (exact in double: sums < 2^53) and rounded as the
// engine does (round(sum / 255)).
#pragma once

#include "snn/engine/fixed_point.h"
#include "snn/engine/run.h"
#include "snn/network/network.h"

#include <cstddef>
#include <memory>

namespace snn::engine {

struct DenseOptions {
  /// Samples simulated together (the GEMM's M per step); >= 1. The seed's 100.
  std::size_t batch = 100;
  /// Compute connection 0's currents for a chunk of steps in one GEMM.
  bool precompute_first_layer = false;
  /// Memory for that chunk (inputs + currents), bytes; the chunk is as many
  /// steps as fit (at least one).
  std::size_t precompute_max_bytes = std::size_t{64} << 20;
};

class DenseSimulator {
 public:
  explicit DenseSimulator(const Network& network, int fixed_point_bits = kDefaultFixedPointBits,
                          int weight_bits = kDefaultWeightBits);
  explicit DenseSimulator(std::shared_ptr<const FixedNetwork> network);

  const FixedNetwork& network() const { return *network_; }

  /// Same contract as Engine::run (options.parallelism is ignored: the GEMMs
  /// use options.threads OpenBLAS threads). RunResult::work counts the
  /// multiply-adds of the GEMMs per sample. Early exit is honoured in the
  /// result (a stopped sample's spikes and SynOps are no longer counted), but
  /// its rows stay in the batch's GEMM.
  RunResult run(const SampleSet& samples, const RunOptions& options, const DenseOptions& dense = {}) const;

 private:
  void currents(std::size_t c, std::size_t nb, const float* in, std::vector<float>& current, std::vector<float>& col,
                std::vector<float>& out) const;

  std::shared_ptr<const FixedNetwork> network_;
  // Per connection, integer units as floats: dense and sparse sources x
  // targets; conv the kernel, [out_channels, in_channels * kh * kw];
  // pool empty.
  std::vector<std::vector<float>> weights_;
};

}  // namespace snn::engine
