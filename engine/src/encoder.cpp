#include "snn/engine/encoder.h"

#include "snn/error.h"

#include <cmath>
#include <limits>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace snn::engine {

SampleSet SampleSet::of(const Dataset& data, std::size_t first, std::size_t n) {
  if (first > data.count) throw Error("samples from {}: the dataset has only {} samples", first, data.count);
  if (n == 0) n = data.count - first;
  if (first + n > data.count) throw Error("samples {} .. {}: the dataset has only {} samples", first, first + n - 1, data.count);
  const std::size_t size = data.image_size();
  if (data.pixels.size() < data.count * size || data.labels.size() < data.count)
    throw Error("dataset holds {} pixel bytes and {} labels for {} samples of {} bytes", data.pixels.size(), data.labels.size(),
                data.count, size);
  SampleSet s;
  s.count = n;
  s.size = size;
  s.first_id = first;
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
  if (!std::isfinite(options.dt) || options.dt <= 0.0) throw Error("input dt must be finite and > 0 s, got {}", options.dt);
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
  out.blocks.clear();
  out.slot.clear();
  for (std::size_t i = 0; i < size; ++i) {
    const std::uint64_t cut = spike_cutoff(sample[i], rate_per_step);
    if (cut == 0) continue;
    if (cut >= std::uint64_t{1} << 32) {
      out.always.push_back(static_cast<NeuronId>(i));
    } else {
      const auto block = static_cast<NeuronId>(i / 4);
      if (out.blocks.empty() || out.blocks.back() != block) out.blocks.push_back(block);
      out.random.push_back(static_cast<NeuronId>(i));
      out.cutoff.push_back(cut);
      out.slot.push_back(static_cast<std::uint32_t>(out.blocks.size() - 1));  // the block's position; the word below
    }
  }
  const std::size_t padded = (out.blocks.size() + 15) / 16 * 16;
  out.draws.assign(4 * padded, 0);
  for (std::size_t r = 0; r < out.random.size(); ++r) out.slot[r] += static_cast<std::uint32_t>(out.random[r] % 4 * padded);
}

namespace {

#if defined(__AVX512F__)
// Philox4x32-10 on 16 counters at once (lanes = blocks); same arithmetic as
// philox4x32. The low halves of the 32 x 32-bit products come from one
// vpmulld; the high halves from mul_epu32 on the even lanes and on the odd
// lanes shifted down, blended back into 16 lanes. The round keys come from
// `keys` (k0, k1 of rounds 0-9), computed once per call, so the compiler
// broadcasts each once, outside the rounds, rather than per key and round.
// (The maskz forms with a full mask avoid GCC 12's false -Wmaybe-uninitialized
// on the plain intrinsics, which start from _mm512_undefined.)
inline void mulhilo16(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  constexpr __mmask8 kAll = 0xFF;
  const __m512i even = _mm512_maskz_mul_epu32(kAll, a, m);
  const __m512i odd = _mm512_maskz_mul_epu32(kAll, _mm512_maskz_srli_epi64(kAll, a, 32), m);
  lo = _mm512_maskz_mullo_epi32(0xFFFF, a, m);
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_maskz_srli_epi64(kAll, even, 32), odd);
}

using RoundKeys = std::array<std::uint32_t, 20>;

RoundKeys round_keys(std::uint64_t seed) {
  RoundKeys keys;
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (std::size_t round = 0; round < 10; ++round, k0 += 0x9E3779B9u, k1 += 0xBB67AE85u) {
    keys[2 * round] = k0;
    keys[2 * round + 1] = k1;
  }
  return keys;
}

void philox16(const NeuronId* blocks, std::uint32_t step, std::uint32_t sample, const RoundKeys& keys, std::uint32_t* w0,
              std::uint32_t* w1, std::uint32_t* w2, std::uint32_t* w3) {
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  __m512i c0 = _mm512_loadu_si512(blocks);
  __m512i c1 = _mm512_set1_epi32(static_cast<int>(step));
  __m512i c2 = _mm512_set1_epi32(static_cast<int>(sample));
  __m512i c3 = _mm512_setzero_si512();
  for (std::size_t round = 0; round < 10; ++round) {
    __m512i hi0, lo0, hi1, lo1;
    mulhilo16(c0, m0, hi0, lo0);
    mulhilo16(c2, m1, hi1, lo1);
    c0 = _mm512_ternarylogic_epi32(hi1, c1, _mm512_set1_epi32(static_cast<int>(keys[2 * round])), 0x96);
    c1 = lo1;
    c2 = _mm512_ternarylogic_epi32(hi0, c3, _mm512_set1_epi32(static_cast<int>(keys[2 * round + 1])), 0x96);
    c3 = lo0;
  }
  _mm512_storeu_si512(w0, c0);
  _mm512_storeu_si512(w1, c1);
  _mm512_storeu_si512(w2, c2);
  _mm512_storeu_si512(w3, c3);
}
#endif

}  // namespace

void random_input_spikes(const PreparedInput& input, std::uint64_t seed, SampleId sample, Step step,
                         std::vector<NeuronId>& spikes) {
  const std::size_t nb = input.blocks.size();
  if (nb == 0) return;
  const std::size_t padded = input.draws.size() / 4;
  std::uint32_t* w = input.draws.data();
#if defined(__AVX512F__)
  // Blocks 16 at a time; the padding lanes of the last group read block ids
  // past the end, so they come from a zero-padded copy.
  alignas(64) NeuronId ids[16];
  const RoundKeys keys = round_keys(seed);
  for (std::size_t g = 0; g < nb; g += 16) {
    const NeuronId* src = input.blocks.data() + g;
    if (g + 16 > nb) {
      std::fill(std::begin(ids), std::end(ids), 0);
      std::copy(src, src + (nb - g), ids);
      src = ids;
    }
    philox16(src, static_cast<std::uint32_t>(step), sample, keys, w + g, w + padded + g, w + 2 * padded + g, w + 3 * padded + g);
  }
#else
  for (std::size_t g = 0; g < nb; ++g) {
    const auto words = draw_block(seed, sample, step, input.blocks[g]);
    for (std::size_t k = 0; k < 4; ++k) w[k * padded + g] = words[k];
  }
#endif
  // Branch-free selection: at the seed's rates whether an input spikes is
  // close to a coin flip, so a branch per input mispredicted about every
  // other time (this loop was most of the encoder's time). Every id is
  // written; the count advances only past those that spike.
  const std::size_t n = input.random.size(), base = spikes.size();
  spikes.resize(base + n);
  NeuronId* out = spikes.data() + base;
  std::size_t count = 0;
  for (std::size_t r = 0; r < n; ++r) {
    out[count] = input.random[r];
    count += static_cast<std::size_t>(w[input.slot[r]] < input.cutoff[r]);
  }
  spikes.resize(base + count);
}

bool input_spikes(std::uint64_t seed, SampleId sample, Step step, NeuronId input, std::uint64_t cutoff) {
  return draw_block(seed, sample, step, input / 4)[input % 4] < cutoff;
}

}  // namespace snn::engine
