// Input encoding: how a sample's intensities x in [0, 1] drive population 0.
//
// Rate-coded Bernoulli ("Poisson"): at step t input i spikes with probability
//   p_i = min(1, x_i * max_rate * dt).
// Mapping of the published settings:
//   - the seed notebook compares rand < x * rate / steps, i.e. max_rate * dt =
//     rate / steps: 400 Hz with 200 steps (and 200 Hz with 100 steps) is p = 2x,
//     which is max_rate = 400 Hz, dt = 5 ms (its "0.5 s" window notwithstanding:
//     only the product matters);
//   - Diehl et al. 2015 use 1000 Hz at dt = 1 ms: p = x.
// The random numbers are counter-based: Philox4x32-10 keyed by the seed, with
// counter (input / 4, step, sample, 0), lane input % 4; so the spikes are a
// pure function of (seed, sample, step, input), whatever the threads.
//
// Constant current ("analog", Rueckauer et al. 2017): no input spikes;
// population 1 receives x * W every step. For exactness x = byte / 255 and
// the current is round(sum_i byte_i * w_q[i] / 255) in integer units.
#pragma once

#include "snn/network/dataset.h"
#include "snn/types.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace snn::engine {

/// Samples to simulate: `count` vectors of `size` intensity bytes, x = byte /
/// 255 (snn::pixel_value), optionally with labels (for accuracy).
struct SampleSet {
  std::size_t count = 0;
  std::size_t size = 0;
  std::span<const std::uint8_t> values;  ///< count * size bytes, sample-major
  std::span<const std::uint8_t> labels;  ///< count labels, or empty
  /// Id of sample 0 (its index in the whole dataset): sample i's input random
  /// numbers are keyed by first_id + i, so a part of a set (an MPI rank's
  /// share) sees exactly the spikes the whole set does. Results stay indexed
  /// by i.
  std::size_t first_id = 0;

  const std::uint8_t* sample(std::size_t i) const { return values.data() + i * size; }
  bool has_labels() const { return !labels.empty(); }
  /// Samples [first, first + n) of a dataset split (n = 0: to the end), with
  /// first_id = first; the view borrows the dataset's memory. Throws
  /// snn::Error if out of range.
  static SampleSet of(const Dataset& data, std::size_t first = 0, std::size_t n = 0);
};

enum class Encoding {
  Poisson,  ///< rate-coded Bernoulli spikes (the seed's)
  Analog,   ///< constant current x * W every step
};
/// "poisson", "analog".
std::string_view to_string(Encoding encoding);
/// Inverse of to_string ("rate" is accepted for poisson); throws snn::Error.
Encoding parse_encoding(std::string_view text);

struct InputOptions {
  Encoding encoding = Encoding::Poisson;
  /// Maximum rate in Hz (x = 1 fires at max_rate); > 0.
  double max_rate = 400.0;
  /// Step length in seconds; > 0. Defaults give the seed's p = 2x.
  double dt = 0.005;
  /// Seed of the counter-based random numbers.
  std::uint64_t seed = 0;
  /// p of an input at x = 1: max_rate * dt.
  double rate_per_step() const { return max_rate * dt; }
};

/// Throws snn::Error unless max_rate and dt are finite and > 0.
void validate(const InputOptions& options);

/// Philox4x32-10 (Salmon et al. 2011): 4 random 32-bit words per counter.
std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> counter, std::array<std::uint32_t, 2> key);

/// One sample's inputs sorted by what they do under Poisson encoding.
struct PreparedInput {
  std::vector<NeuronId> always;       ///< p >= 1: spike at every step (ascending)
  std::vector<NeuronId> random;       ///< 0 < p < 1 (ascending)
  std::vector<std::uint64_t> cutoff;  ///< per random input: spikes iff a uniform 32-bit word < cutoff (p * 2^32)
  std::vector<NeuronId> blocks;       ///< distinct Philox blocks (input / 4) holding random inputs, ascending
  /// Per random input: where its word is in `draws` (word input % 4 of its
  /// block, at the block's position in `blocks`).
  std::vector<std::uint32_t> slot;
  /// Scratch of random_input_spikes: the 4 words of every block of a step,
  /// word-major (draws[w * padded + position], padded = blocks rounded up to 16).
  mutable std::vector<std::uint32_t> draws;
};

/// Classifies the inputs of one sample (bytes) for Poisson encoding.
void prepare_input(const std::uint8_t* sample, std::size_t size, double rate_per_step, PreparedInput& out);

/// The random inputs that spike at `step` (ascending ids) are appended to
/// `spikes`; the `always` inputs are not included. Draws the Philox blocks of
/// a step 16 at a time with AVX-512 where available (bit-identical to
/// philox4x32); uses `input.draws` as scratch (one PreparedInput per thread).
void random_input_spikes(const PreparedInput& input, std::uint64_t seed, SampleId sample, Step step,
                         std::vector<NeuronId>& spikes);

/// Whether input `i` with probability-cutoff `cutoff` spikes: the same draw
/// random_input_spikes uses (for tests and the naive reference).
bool input_spikes(std::uint64_t seed, SampleId sample, Step step, NeuronId input, std::uint64_t cutoff);

/// p * 2^32 as the cutoff of a random input (p in (0, 1)).
std::uint64_t spike_cutoff(std::uint8_t byte, double rate_per_step);

}  // namespace snn::engine
