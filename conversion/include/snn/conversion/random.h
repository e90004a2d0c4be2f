// Counter-based random numbers for training: every random choice is a pure
// function of (seed, purpose, indices), never of a generator's call history or
// of which thread asks. The same seed therefore gives bit-identical weights,
// whatever the batch loop's structure or thread count.
#pragma once

#include <cstdint>

namespace snn::conversion {

/// SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mix
/// whose outputs over consecutive inputs pass BigCrush.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// What a random number is for; part of the key so streams never overlap.
enum class RandomPurpose : std::uint64_t { Init = 1, Shuffle = 2, Dropout = 3 };

/// A stream of random 64-bit words addressed by a counter: at(i) is the i-th
/// word of the stream keyed by (seed, purpose, a, b).
class CounterRng {
 public:
  constexpr CounterRng(std::uint64_t seed, RandomPurpose purpose, std::uint64_t a = 0, std::uint64_t b = 0)
      : key_(mix64(mix64(mix64(seed + 0x9e3779b97f4a7c15ull) ^ static_cast<std::uint64_t>(purpose)) ^
                   (a * 0xd1b54a32d192ed03ull)) ^
             (b * 0xabc98388fb8fac03ull)) {}

  /// SplitMix64 itself, addressed by counter: state key + (i + 1) * golden gamma.
  constexpr std::uint64_t at(std::uint64_t i) const { return mix64(key_ + (i + 1) * 0x9e3779b97f4a7c15ull); }
  /// A float uniform in [0, 1) with 24 random bits (every value exactly representable).
  constexpr float uniform(std::uint64_t i) const { return static_cast<float>(at(i) >> 40) * 0x1.0p-24f; }
  /// An integer uniform in [0, n), n > 0 (modulo bias below n / 2^64).
  constexpr std::uint64_t below(std::uint64_t i, std::uint64_t n) const { return at(i) % n; }

 private:
  std::uint64_t key_;
};

}  // namespace snn::conversion
