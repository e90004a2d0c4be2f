// A dense connection's delivery fused with the plain neuron update (beta = 1,
// no refractory period, no bias: the converted networks' usual neuron), the
// event engine's hottest step.
//
// Separately, a step writes the current in its first row pass, adds the other
// passes into it, and then the update pass reads it back with the potentials:
// one more pass over the population per step, with a load and a store per 16
// neurons. Fused, the rows are added straight into the potentials (v + I is
// exact integer arithmetic in any order, and no partial sum can leave int32:
// |v| <= 2^30 (kPotentialLimit) and |I| < 2^24) and the last row pass also
// compares, resets and collects the spiking ids. The same spikes and potentials as
// set_dense_rows + update_neurons, which the dense baseline still uses
// (tests/test_delivery.cpp checks one against the other).
#pragma once

#include "snn/engine/delivery.h"
#include "snn/engine/neuron.h"

namespace snn::engine {

namespace detail {

// update_neurons' rule for one neuron whose potential is x = v + I.
template <ResetMode kReset>
inline Potential fire_one(Potential x, Potential threshold, NeuronId j, NeuronId*& out) {
  if (x <= threshold) return x;
  *out++ = j;
  return kReset == ResetMode::Subtract ? x - threshold : 0;
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
// The last pass: v[lo, hi) += (from) + the N rows r, then fire. Spiking ids
// go to out (16 slots of slack needed past the last one); `bad` says whether
// some potential left the range.
template <std::size_t N, ResetMode kReset, typename T>
inline NeuronId* fire_rows(Potential* __restrict v, const Potential* __restrict from, const T* const* r, std::size_t lo,
                           std::size_t hi, Potential threshold, NeuronId* __restrict out, bool& bad) {
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  __m512i worst = _mm512_setzero_si512();
  // One block of 16 (m: its lanes within the slice).
  auto block = [&](std::size_t j, __mmask16 m, auto... tail) {
    __m512i x = _mm512_maskz_loadu_epi32(m, v + j);
    if (from) x = _mm512_add_epi32(x, _mm512_maskz_loadu_epi32(m, from + j));
    if constexpr (N > 0) x = _mm512_add_epi32(x, row_sum16<N>(r, j, tail...));
    const __m512i ids = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(j)), iota);
    out = fire16<kReset>(x, m, threshold, ids, v + j, out, worst);
  };
  std::size_t j = lo;
  for (; j + 16 <= hi; j += 16) block(j, kAll16);
  if (j < hi) {
    const auto m = static_cast<__mmask16>((1u << (hi - j)) - 1u);
    block(j, m, m);
  }
  bad = out_of_range16(worst);
  return out;
}

// A slice of at most 16 targets, one block (a classifier's output layer):
// every row is added in registers, into four running sums so that the adds
// need not wait for each other, and the block fires once; no load and store
// of the potentials per kRowsPerPass<T> rows. Partial sums stay in int32: each
// is v, or from, plus a part of the target's fan-in (bounded as in the
// header comment).
template <ResetMode kReset, typename T>
inline NeuronId* fire_block(Potential* __restrict v, const Potential* __restrict from, const T* __restrict table,
                            std::size_t stride, std::span<const NeuronId> ids, std::size_t lo, std::size_t hi,
                            Potential threshold, NeuronId* __restrict out, bool& bad) {
  const auto m = static_cast<__mmask16>(hi - lo == 16 ? 0xFFFFu : (1u << (hi - lo)) - 1u);
  const T* const base = table + lo;
  __m512i s0 = _mm512_maskz_loadu_epi32(m, v + lo);
  __m512i s1 = from ? _mm512_maskz_loadu_epi32(m, from + lo) : _mm512_setzero_si512();
  __m512i s2 = _mm512_setzero_si512(), s3 = _mm512_setzero_si512();
  const NeuronId* id = ids.data();
  std::size_t left = ids.size();
  for (; left >= 4; left -= 4, id += 4) {
    s0 = _mm512_add_epi32(s0, widen16(base + id[0] * stride, m));
    s1 = _mm512_add_epi32(s1, widen16(base + id[1] * stride, m));
    s2 = _mm512_add_epi32(s2, widen16(base + id[2] * stride, m));
    s3 = _mm512_add_epi32(s3, widen16(base + id[3] * stride, m));
  }
  for (; left > 0; --left, ++id) s0 = _mm512_add_epi32(s0, widen16(base + *id * stride, m));
  const __m512i x = _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3));
  const __m512i lanes = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(lo)),
                                         _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
  __m512i worst = _mm512_setzero_si512();
  out = fire16<kReset>(x, m, threshold, lanes, v + lo, out, worst);
  bad = out_of_range16(worst);
  return out;
}

// A pass that is not the last: v[lo, hi) += (from) + the N rows r.
template <std::size_t N, typename T>
inline void accumulate_rows(Potential* __restrict v, const Potential* __restrict from, const T* const* r, std::size_t lo,
                            std::size_t hi) {
  if (!from) return add_rows<N>(v, r, lo, hi);
  std::size_t j = lo;
  for (; j + 16 <= hi; j += 16) {
    const __m512i s = _mm512_add_epi32(_mm512_loadu_si512(v + j), _mm512_loadu_si512(from + j));
    _mm512_storeu_si512(v + j, _mm512_add_epi32(s, row_sum16<N>(r, j)));
  }
  if (j < hi) {
    const auto m = static_cast<__mmask16>((1u << (hi - j)) - 1u);
    const __m512i s = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, v + j), _mm512_maskz_loadu_epi32(m, from + j));
    _mm512_mask_storeu_epi32(v + j, m, _mm512_add_epi32(s, row_sum16<N>(r, j, m)));
  }
}
#else
template <std::size_t N, ResetMode kReset, typename T>
inline NeuronId* fire_rows(Potential* __restrict v, const Potential* __restrict from, const T* const* r, std::size_t lo,
                           std::size_t hi, Potential threshold, NeuronId* __restrict out, bool& bad) {
  bad = false;
  for (std::size_t j = lo; j < hi; ++j) {
    Potential x = v[j] + (from ? from[j] : 0);
    for (std::size_t k = 0; k < N; ++k) x += Potential{r[k][j]};
    x = fire_one<kReset>(x, threshold, static_cast<NeuronId>(j), out);
    v[j] = x;
    bad |= out_of_range(x);
  }
  return out;
}
template <std::size_t N, typename T>
inline void accumulate_rows(Potential* __restrict v, const Potential* __restrict from, const T* const* r, std::size_t lo,
                            std::size_t hi) {
  for (std::size_t j = lo; j < hi; ++j) {
    Potential s = v[j] + (from ? from[j] : 0);
    for (std::size_t k = 0; k < N; ++k) s += Potential{r[k][j]};
    v[j] = s;
  }
}
#endif

// fire_rows<n> for a run-time n in [0, N].
template <std::size_t N, ResetMode kReset, typename T>
inline NeuronId* fire_rows_n(std::size_t n, Potential* v, const Potential* from, const T* const* r, std::size_t lo,
                             std::size_t hi, Potential threshold, NeuronId* out, bool& bad) {
  if (n == N) return fire_rows<N, kReset>(v, from, r, lo, hi, threshold, out, bad);
  if constexpr (N > 0) return fire_rows_n<N - 1, kReset>(n, v, from, r, lo, hi, threshold, out, bad);
  return out;
}

}  // namespace detail

/// One step of neurons [lo, hi) of a population whose only input is a dense
/// connection (table rows s at table + s * stride, element type T) and whose
/// neurons are plain (FixedNeuronParams::leaks() false, refractory 0, no
/// bias): v += from (null: nothing; the constant input current) + the rows
/// `ids`, then update_neurons' rule with `threshold` and kReset. Appends the
/// spiking ids, ascending, to `spikes`; returns kAllInRange or the first
/// neuron whose potential left the range, as update_neurons does. Rows are
/// added kRowsPerPass<T> per pass, the last pass (up to that many rows) fused
/// with the update.
template <ResetMode kReset, typename T>
NeuronId fire_dense_rows(Potential* __restrict v, const Potential* __restrict from, const T* __restrict table, std::size_t stride,
                         std::span<const NeuronId> ids, std::size_t lo, std::size_t hi, Potential threshold, SpikeList& spikes) {
  constexpr std::size_t kGroup = kRowsPerPass<T>;
#if defined(__AVX512F__) && defined(__AVX512BW__)
  if (hi - lo <= 16) {
    const std::size_t base = spikes.size();
    spikes.resize(base + 32, boost::container::default_init);  // fire16 stores 16 ids at once
    bool bad = false;
    NeuronId* const first = spikes.data() + base;
    NeuronId* const last = detail::fire_block<kReset>(v, from, table, stride, ids, lo, hi, threshold, first, bad);
    spikes.resize(base + static_cast<std::size_t>(last - first));
    if (bad) [[unlikely]] {
      for (std::size_t j = lo; j < hi; ++j)
        if (detail::out_of_range(v[j])) return static_cast<NeuronId>(j);
    }
    return kAllInRange;
  }
#endif
  const T* r[kGroup];
  const NeuronId* id = ids.data();
  std::size_t left = ids.size();
  for (; left > kGroup; left -= kGroup, id += kGroup) {
    for (std::size_t k = 0; k < kGroup; ++k) r[k] = table + id[k] * stride;
    detail::accumulate_rows<kGroup>(v, from, r, lo, hi);
    from = nullptr;  // added once, in the first pass
  }
  for (std::size_t k = 0; k < left; ++k) r[k] = table + id[k] * stride;
  const std::size_t base = spikes.size();
  spikes.resize(base + (hi - lo) + 16, boost::container::default_init);
  bool bad = false;
  NeuronId* const first = spikes.data() + base;
  NeuronId* const last = detail::fire_rows_n<kGroup, kReset>(left, v, from, r, lo, hi, threshold, first, bad);
  spikes.resize(base + static_cast<std::size_t>(last - first));
  if (bad) [[unlikely]] {
    for (std::size_t j = lo; j < hi; ++j)
      if (detail::out_of_range(v[j])) return static_cast<NeuronId>(j);
  }
  return kAllInRange;
}

/// fire_dense_rows for a dense connection, whatever its table width and the
/// population's reset mode.
inline NeuronId fire_dense(Potential* v, const Potential* from, const FixedConnection& fc, const FixedNeuronParams& params,
                           std::span<const NeuronId> ids, std::size_t lo, std::size_t hi, SpikeList& spikes) {
  auto as = [&]<typename T>(const T* table) {
    return params.reset == ResetMode::Subtract
               ? fire_dense_rows<ResetMode::Subtract>(v, from, table, fc.targets, ids, lo, hi, params.threshold, spikes)
               : fire_dense_rows<ResetMode::Zero>(v, from, table, fc.targets, ids, lo, hi, params.threshold, spikes);
  };
  switch (fc.weight_bits) {
    case 8: return as(fc.table<std::int8_t>());
    case 16: return as(fc.table<std::int16_t>());
    default: return as(fc.table<FixedWeight>());
  }
}

}  // namespace snn::engine
