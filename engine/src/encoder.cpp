#include "snn/engine/encoder.h"

#include "snn/error.h"

#include <cmath>
#include <limits>

namespace snn::engine {

SampleSet SampleSet::of(const Dataset& data, std::size_t first, std::size_t n) {
  if (first > data.count) throw Error("samples from {}: the dataset has only {} samples", first, data.count);
  if (n == 0) n = data.count - first;
  if (first + n > data.count)
    throw Error("samples {} .. {}: the dataset has only {} samples", first, first + n - 1, data.count);
  const std::size_t size = data.image_size();
  if (data.pixels.size() < data.count * size || data.labels.size() < data.count)
    throw Error("dataset holds {} pixel bytes and {} labels for {} samples of {} bytes", data.pixels.size(),
                data.labels.size(), data.count, size);
  SampleSet s;
  s.count = n;
  s.size = size;
  s.values = std::span<const std::uint8_t>(data.pixels.data() + first * size, n * size);
  s.labels = std::span<const std::uint8_t>(data.labels.data() + first, n);
  return s;
}

std::string_view to_string(Encoding encoding) {
  switch (encoding) {
    case Encoding::Poisson: return "poisson";
    case Encoding::Analog: return "analog";
  }
  return "?";
}

Encoding parse_encoding(std::string_view text) {
  if (text == "poisson" || text == "rate") return Encoding::Poisson;
  if (text == "analog") return Encoding::Analog;
  throw Error("unknown input encoding '{}' (expected 'poisson' or 'analog')", text);
}

void validate(const InputOptions& options) {
  if (!std::isfinite(options.max_rate) || options.max_rate <= 0.0)
    throw Error("input max_rate must be finite and > 0 Hz, got {}", options.max_rate);
  if (!std::isfinite(options.dt) || options.dt <= 0.0)
    throw Error("input dt must be finite and > 0 s, got {}", options.dt);
}

std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> c, std::array<std::uint32_t, 2> k) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kM0) * c[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(kM1) * c[2];
    c = {static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<std::uint32_t>(p1),
         static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<std::uint32_t>(p0)};
    k[0] += kW0;
    k[1] += kW1;
  }
  return c;
}

namespace {

std::array<std::uint32_t, 4> draw_block(std::uint64_t seed, SampleId sample, Step step, NeuronId block) {
  return philox4x32({block, static_cast<std::uint32_t>(step), sample, 0u},
                    {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
}

}  // namespace

std::uint64_t spike_cutoff(std::uint8_t byte, double rate_per_step) {
  const double p = static_cast<double>(byte) / 255.0 * rate_per_step;
  if (p <= 0.0) return 0;
  if (p >= 1.0) return std::uint64_t{1} << 32;
  return static_cast<std::uint64_t>(std::ldexp(p, 32));
}

void prepare_input(const std::uint8_t* sample, std::size_t size, double rate_per_step, PreparedInput& out) {
  out.always.clear();
  out.random.clear();
  out.cutoff.clear();
  for (std::size_t i = 0; i < size; ++i) {
    const std::uint64_t cut = spike_cutoff(sample[i], rate_per_step);
    if (cut == 0) continue;
    if (cut >= std::uint64_t{1} << 32) {
      out.always.push_back(static_cast<NeuronId>(i));
    } else {
      out.random.push_back(static_cast<NeuronId>(i));
      out.cutoff.push_back(cut);
    }
  }
}

void random_input_spikes(const PreparedInput& input, std::uint64_t seed, SampleId sample, Step step,
                         std::vector<NeuronId>& spikes) {
  // One Philox call serves four consecutive inputs; the random inputs are
  // ascending, so a block is drawn once when the walk enters it.
  NeuronId block = std::numeric_limits<NeuronId>::max();
  std::array<std::uint32_t, 4> words{};
  for (std::size_t r = 0; r < input.random.size(); ++r) {
    const NeuronId i = input.random[r];
    if (i / 4 != block) {
      block = i / 4;
      words = draw_block(seed, sample, step, block);
    }
    if (words[i % 4] < input.cutoff[r]) spikes.push_back(i);
  }
}

bool input_spikes(std::uint64_t seed, SampleId sample, Step step, NeuronId input, std::uint64_t cutoff) {
  return draw_block(seed, sample, step, input / 4)[input % 4] < cutoff;
}

}  // namespace snn::engine
