// The neuron update of one step, shared verbatim by the event engine and the
// dense baseline (so their spikes can only differ if their currents differ,
// and currents are exact integers in both).
//
// Semantics of step t for a neuron of a population with parameters P, given
// the current I delivered to it at t (integer units, |I| < 2^24):
//   if it is refractory (spiked within the last P.refractory steps): the
//     current is discarded, v is held, no spike; the counter counts down;
//   else: v <- leak(v) + I, where leak(v) = floor((v * beta_q + 2^29) / 2^30)
//     (beta_q = round(beta * 2^30); exact identity for beta = 1);
//     if v > threshold (strictly): one spike at t, then v <- v - threshold
//     (subtract) or v <- 0 (zero), and the refractory counter is set.
// Every neuron is visited every step, so a neuron that must fire without new
// input (v still above threshold after a subtract reset) is never missed. That
// full pass costs O(N / 16) vector operations per population and step with
// AVX-512, a few hundred cycles for 1200 neurons: small against the fan-out
// work of even one spike (1200 adds).
#pragma once

#include "snn/engine/fixed_point.h"
#include "snn/types.h"

#include <boost/container/vector.hpp>

#include <cstdint>
#include <limits>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <vector>

namespace snn::engine {

/// Spiking neuron ids of one population and step. boost::container::vector
/// because it can grow without zeroing (default_init): the vectorised update
/// reserves room for a whole block of ids before it knows how many spiked.
using SpikeList = boost::container::vector<NeuronId>;

/// Returned by update_neurons when every potential stayed in range.
inline constexpr NeuronId kAllInRange = std::numeric_limits<NeuronId>::max();

namespace detail {

inline Potential leak(Potential v, std::int64_t beta) {
  // Arithmetic shift of a signed value is floor division in C++20.
  return static_cast<Potential>((static_cast<std::int64_t>(v) * beta + (kBetaOne >> 1)) >> kBetaShift);
}

inline bool out_of_range(Potential v) { return v > kPotentialLimit || v < -kPotentialLimit; }

// beta = 1, no refractory period: the seed's neuron. Portable version:
// blocks of 16 lanes are added and compared branch-free; only a block
// holding a spike (or an out-of-range potential) takes the scalar path.
template <ResetMode kReset>
NeuronId update_plain_generic(Potential threshold, Potential* __restrict v, const Potential* __restrict current, NeuronId begin,
                              NeuronId end, SpikeList& spikes) {
  constexpr NeuronId kLanes = 16;
  NeuronId j = begin;
  auto scalar = [&](NeuronId i) -> bool {
    Potential x = v[i];
    if (x > threshold) {
      spikes.push_back(i);
      x = kReset == ResetMode::Subtract ? x - threshold : 0;
      v[i] = x;
    }
    return !out_of_range(x);
  };
  for (; j + kLanes <= end; j += kLanes) {
    int flag = 0;
    for (NeuronId k = 0; k < kLanes; ++k) {
      const Potential x = v[j + k] + current[j + k];
      v[j + k] = x;
      flag |= static_cast<int>(x > threshold) | static_cast<int>(x < -kPotentialLimit);
    }
    if (flag) [[unlikely]] {
      for (NeuronId k = 0; k < kLanes; ++k)
        if (!scalar(j + k)) return j + k;
    }
  }
  for (; j < end; ++j) {
    v[j] += current[j];
    if (!scalar(j)) return j;
  }
  return kAllInRange;
}

#if defined(__AVX512F__)
// The rule above, vectorised, for 16 neurons (the lanes of m) whose potential
// plus current is x and whose ids are `ids`: stores the new potentials at v,
// the ids of those that spike at out (a plain 16-lane store: 16 slots of
// slack), keeps in `worst` the largest |potential| of each lane so far
// (unsigned; out_of_range16 reads it once at the end), and returns out past
// the spikes. The one block both update_plain and the fused dense step
// (dense_fire.h) use. The range is kept as a running maximum, two vector
// operations per block, rather than compared into a mask per block (two
// compares and two mask ORs, which cost the 16-bit engine as much as the
// whole check costs now; see the commit that made the change).
template <ResetMode kReset>
inline NeuronId* fire16(__m512i x, __mmask16 m, Potential threshold, __m512i ids, Potential* v, NeuronId* out, __m512i& worst) {
  const __m512i th = _mm512_set1_epi32(threshold);
  const __mmask16 fire = _mm512_mask_cmpgt_epi32_mask(m, x, th);
  x = kReset == ResetMode::Subtract ? _mm512_mask_sub_epi32(x, fire, x, th) : _mm512_maskz_mov_epi32(~fire, x);
  _mm512_mask_storeu_epi32(v, m, x);
  _mm512_storeu_si512(out, _mm512_maskz_compress_epi32(fire, ids));
  // |INT_MIN| stays 2^31 as unsigned: above the limit too. (The maskz form
  // with a full mask avoids GCC 12's false -Wmaybe-uninitialized on the plain
  // one, which starts from _mm512_undefined.)
  worst = _mm512_maskz_max_epu32(0xFFFF, worst, _mm512_maskz_abs_epi32(m, x));
  return out + __builtin_popcount(fire);
}

// Whether some potential fire16 saw left [-kPotentialLimit, kPotentialLimit].
inline bool out_of_range16(__m512i worst) { return _mm512_cmpgt_epu32_mask(worst, _mm512_set1_epi32(kPotentialLimit)) != 0; }

// The same with AVX-512 and no branch per block: one add, one compare, a
// masked reset and a register compress of the spiking lanes' ids per 16
// neurons. At the seed's rates about half of the blocks of a 1200-neuron
// layer hold a spike at every step, so a per-block "any spike?" branch
// mispredicts constantly; here every block does the same work. The ids are
// stored 16 at a time into slack at the end of `spikes` (the register form of
// vpcompressd: its memory form is microcoded and slow on AMD Zen 4).
template <ResetMode kReset>
NeuronId update_plain(Potential threshold, Potential* __restrict v, const Potential* __restrict current, NeuronId begin,
                      NeuronId end, SpikeList& spikes) {
  const __m512i step = _mm512_set1_epi32(16);
  const std::size_t base = spikes.size();
  spikes.resize(base + (end - begin) + 16, boost::container::default_init);
  NeuronId* const first = spikes.data() + base;
  NeuronId* out = first;
  __m512i ids = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(begin)),
                                 _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
  __m512i worst = _mm512_setzero_si512();
  NeuronId j = begin;
  for (; j + 16 <= end; j += 16) {
    const __m512i x = _mm512_add_epi32(_mm512_loadu_si512(v + j), _mm512_loadu_si512(current + j));
    out = fire16<kReset>(x, 0xFFFF, threshold, ids, v + j, out, worst);
    ids = _mm512_add_epi32(ids, step);
  }
  spikes.resize(base + static_cast<std::size_t>(out - first));
  if (out_of_range16(worst)) [[unlikely]] {
    for (NeuronId i = begin; i < j; ++i)
      if (out_of_range(v[i])) return i;
  }
  // The tail (fewer than 16 neurons) in portable code.
  return j < end ? update_plain_generic<kReset>(threshold, v, current, j, end, spikes) : kAllInRange;
}
#else
template <ResetMode kReset>
NeuronId update_plain(Potential threshold, Potential* __restrict v, const Potential* __restrict current, NeuronId begin,
                      NeuronId end, SpikeList& spikes) {
  return update_plain_generic<kReset>(threshold, v, current, begin, end, spikes);
}
#endif

}  // namespace detail

/// Applies step t's update (see the top of this file) to neurons [begin, end)
/// of one population: `v` its potentials, `refractory_left` its countdowns
/// (may be null when params.refractory == 0), `current` the current delivered
/// at t (units). Appends the ids of spiking neurons, ascending, to `spikes`.
/// Returns kAllInRange, or the first neuron whose potential left
/// [-kPotentialLimit, kPotentialLimit] (the caller reports it as an error).
inline NeuronId update_neurons(const FixedNeuronParams& params, Potential* __restrict v, Step* __restrict refractory_left,
                               const Potential* __restrict current, NeuronId begin, NeuronId end, SpikeList& spikes) {
  if (!params.leaks() && params.refractory == 0) {
    return params.reset == ResetMode::Subtract
               ? detail::update_plain<ResetMode::Subtract>(params.threshold, v, current, begin, end, spikes)
               : detail::update_plain<ResetMode::Zero>(params.threshold, v, current, begin, end, spikes);
  }
  const bool refractory = params.refractory > 0;
  for (NeuronId j = begin; j < end; ++j) {
    if (refractory && refractory_left[j] > 0) {
      --refractory_left[j];
      continue;
    }
    Potential x = (params.leaks() ? detail::leak(v[j], params.beta) : v[j]) + current[j];
    if (x > params.threshold) {
      spikes.push_back(j);
      x = params.reset == ResetMode::Subtract ? x - params.threshold : 0;
      if (refractory) refractory_left[j] = params.refractory;
    }
    v[j] = x;
    if (detail::out_of_range(x)) return j;
  }
  return kAllInRange;
}

}  // namespace snn::engine
