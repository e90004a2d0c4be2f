// Fan-out delivery, the event engine's inner loop (after Auryn's
// SparseConnection::propagate: for each spike, for each target, add). Public so
// the micro-benchmarks and the row-add bound measure exactly this code.
//
// One function per connection kind, each a flat loop; deliver() picks one by
// a switch per connection and call (never per synapse). Every function adds
// only to targets [lo, hi), so latency mode's threads, each owning a range of
// targets, deliver the same spikes concurrently without synchronisation.
#pragma once

#include "snn/engine/fixed_point.h"
#include "snn/types.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#endif

namespace snn::engine {

namespace detail {

#if defined(__AVX512F__) && defined(__AVX512BW__)
// 16 table elements from p, sign-extended to int32 (one load, and for 16 and
// 8 bits one widening move that reads memory directly: no separate extract
// of the upper half). The masked forms read only the lanes of m, so a row's
// tail never reads past the row. (The maskz conversions with a full mask
// avoid GCC 12's false -Wmaybe-uninitialized on the plain ones, which start
// from _mm512_undefined.)
constexpr __mmask16 kAll16 = 0xFFFF;
inline __m512i widen16(const std::int32_t* p) { return _mm512_loadu_si512(p); }
inline __m512i widen16(const std::int16_t* p) {
  return _mm512_maskz_cvtepi16_epi32(kAll16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512i widen16(const std::int8_t* p) {
  return _mm512_maskz_cvtepi8_epi32(kAll16, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m512i widen16(const std::int32_t* p, __mmask16 m) { return _mm512_maskz_loadu_epi32(m, p); }
inline __m512i widen16(const std::int16_t* p, __mmask16 m) {
  return _mm512_maskz_cvtepi16_epi32(kAll16, _mm256_maskz_loadu_epi16(m, p));
}
inline __m512i widen16(const std::int8_t* p, __mmask16 m) {
  return _mm512_maskz_cvtepi8_epi32(kAll16, _mm_maskz_loadu_epi8(m, p));
}

// Sum of the 16 elements at offset j of the N rows r, in int32.
template <std::size_t N, typename T, typename... Mask>
inline __m512i row_sum16(const T* const* r, std::size_t j, Mask... m) {
  if constexpr (N == 1) {
    return widen16(r[0] + j, m...);
  } else {
    return _mm512_add_epi32(row_sum16<N / 2>(r, j, m...), row_sum16<N - N / 2>(r + N / 2, j, m...));
  }
}

// cur[lo, hi) += the N rows r over [lo, hi): one load and store of the
// accumulator per 16 targets and N rows.
template <std::size_t N, typename T>
inline void add_rows(Potential* __restrict cur, const T* const* r, std::size_t lo, std::size_t hi) {
  std::size_t j = lo;
  for (; j + 16 <= hi; j += 16) _mm512_storeu_si512(cur + j, _mm512_add_epi32(_mm512_loadu_si512(cur + j), row_sum16<N>(r, j)));
  if (j < hi) {
    const auto m = static_cast<__mmask16>((1u << (hi - j)) - 1u);
    _mm512_mask_storeu_epi32(cur + j, m, _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, cur + j), row_sum16<N>(r, j, m)));
  }
}
#else
// Portable: the same grouping, left to the compiler's vectoriser.
template <std::size_t N, typename T>
inline void add_rows(Potential* __restrict cur, const T* const* r, std::size_t lo, std::size_t hi) {
  for (std::size_t j = lo; j < hi; ++j) {
    Potential s = 0;
    for (std::size_t k = 0; k < N; ++k) s += Potential{r[k][j]};
    cur[j] += s;
  }
}
#endif

}  // namespace detail

/// Rows add_dense_rows sums per pass for table element type T. Measured
/// (CPU time, one thread, rows of 1200): eight rows per pass add 13-15 %
/// more per second than four at 16 and 8 bits, where the widening moves are
/// the bottleneck and the accumulator's load and store are the rest; at 32
/// bits eight streams from L3 were slower than four.
template <typename T>
inline constexpr std::size_t kRowsPerPass = sizeof(T) < 4 ? 8 : 4;

/// Adds the slices [lo, hi) of the rows `ids` of a dense fan-out table (row s
/// at table + s * stride) into `cur`. kRowsPerPass<T> rows per pass: one load
/// and store of the accumulator per pass instead of per row; the last rows in
/// at most two passes of their own (four, then three, two or one). Integer
/// adds, so the grouping changes nothing in the result. T is the table's
/// element type (int32, int16 or int8: simulation.weight_bits); the rows' sum
/// is formed in int32 (|w| <= 2^23 each, so it cannot overflow) and added to
/// int32. With AVX-512 the passes are written with intrinsics: GCC 12 turned
/// the leftover rows' loop into scalar code for 16 and 8 bits.
template <typename T>
inline void add_dense_rows(Potential* __restrict cur, const T* __restrict table, std::size_t stride,
                           std::span<const NeuronId> ids, std::size_t lo, std::size_t hi) {
  constexpr std::size_t kGroup = kRowsPerPass<T>;
  const NeuronId* id = ids.data();
  const NeuronId* const end = id + ids.size();
  const T* r[kGroup];
  auto rows = [&](std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) r[k] = table + id[k] * stride;
    id += n;
  };
  for (; static_cast<std::size_t>(end - id) >= kGroup;) {
    rows(kGroup);
    detail::add_rows<kGroup>(cur, r, lo, hi);
  }
  if constexpr (kGroup > 4) {
    if (end - id >= 4) {
      rows(4);
      detail::add_rows<4>(cur, r, lo, hi);
    }
  }
  switch (end - id) {
    case 3: rows(3), detail::add_rows<3>(cur, r, lo, hi); break;
    case 2: rows(2), detail::add_rows<2>(cur, r, lo, hi); break;
    case 1: rows(1), detail::add_rows<1>(cur, r, lo, hi); break;
    default: break;
  }
}

/// Sparse (CSR) rows of `ids`, the part of each row in targets [lo, hi).
/// `split` (may be null: whole rows, for lo = 0, hi = targets) holds, per
/// source, parts + 1 offsets where each partition's targets start in its row;
/// q selects the partition.
template <typename T>
inline void add_sparse_rows(Potential* __restrict cur, const FixedConnection& fc, std::span<const NeuronId> ids,
                            const std::uint64_t* split, std::size_t parts, std::size_t q) {
  const NeuronId* __restrict tid = fc.target_ids.data();
  const T* __restrict w = fc.table<T>();
  for (NeuronId s : ids) {
    const std::uint64_t b0 = split ? split[s * (parts + 1) + q] : fc.offsets[s];
    const std::uint64_t b1 = split ? split[s * (parts + 1) + q + 1] : fc.offsets[s + 1];
    for (std::uint64_t e = b0; e < b1; ++e) cur[tid[e]] += Potential{w[e]};
  }
}

/// Source id -> (channel, row, column) of a conv or pool input, by multiply
/// and shift instead of division (per spike; pool spikes add one weight each,
/// so the divisions dominated their delivery). Exact for all 32-bit ids: with
/// M = floor(2^64 / d) + 1, n / d = (M * n) >> 64 for n, d < 2^32 (Lemire,
/// Kaser and Kurz, "Faster remainder by direct computation", 2019). Planes
/// of fewer than 2^32 neurons (every id is 32-bit).
class SourceLocator {
 public:
  explicit SourceLocator(const WindowGeometry& g)
      : w_(static_cast<std::uint32_t>(g.input.width)),
        plane_(static_cast<std::uint32_t>(g.input.height) * w_),
        mw_(magic(w_)),
        mp_(magic(plane_)) {}
  void operator()(NeuronId s, std::uint32_t& c, std::uint32_t& y, std::uint32_t& x) const {
    c = div(s, plane_, mp_);
    const std::uint32_t pos = s - c * plane_;
    y = div(pos, w_, mw_);
    x = pos - y * w_;
  }

 private:
  __extension__ using U128 = unsigned __int128;
  static std::uint64_t magic(std::uint32_t d) { return d <= 1 ? 0 : ~std::uint64_t{0} / d + 1; }
  static std::uint32_t div(std::uint32_t n, std::uint32_t d, std::uint64_t m) {
    return d <= 1 ? n : static_cast<std::uint32_t>((U128{m} * n) >> 64);
  }
  std::uint32_t w_, plane_;
  std::uint64_t mw_, mp_;
};

/// Where a conv or pool source spike lands: its channel and position, and
/// the inclusive range of output rows [r0, r1] and columns [c0, c1] whose
/// windows cover it.
struct SourceWindow {
  std::size_t c, y, x, r0, r1, c0, c1;
};

/// Fills `w` for source `s`; false when no window covers it (an edge the
/// stride skips), so the spike reaches no target.
inline bool source_window(const FixedConnection& fc, const SourceLocator& locate, NeuronId s, SourceWindow& w) {
  std::uint32_t c, y, x;
  locate(s, c, y, x);
  if (fc.row_reach[y] == 0 || fc.col_reach[x] == 0) return false;
  std::uint32_t r0, c0;
  fc.window_of(y, x, r0, c0);
  w = {c, y, x, r0, r0 + fc.row_reach[y] - 1u, c0, c0 + fc.col_reach[x] - 1u};
  return true;
}

/// Convolution: source (c, y, x) adds kernel tap (ky, kx) = (y + pad_h - oy
/// * stride_h, x + pad_w - ox * stride_w) of every output channel o to target
/// (o, oy, ox), for the output positions whose window covers (y, x). The
/// fan-out is generated here from the geometry; nothing per synapse is stored.
/// The adds go into `scratch`, the targets' current in HWC order (position-
/// major, channel-minor), so that one tap's adds to all output channels are
/// one contiguous, vectorisable loop over the tap-major kernel; the targets of
/// [lo, hi) (CHW ids) are then moved into `cur` and their scratch entries
/// zeroed again. `scratch` holds `targets` zeros on entry and on return.
///
/// With stride_w == 1 the kernel is stored with kx reversed (see
/// FixedConnection::tap_major), so for one output row oy the targets ox = c0..c1
/// (contiguous in scratch) meet contiguous weights: the whole row is one flat
/// add of (c1 - c0 + 1) * oc elements instead of c1 - c0 + 1 short loops.
template <typename T>
inline void add_conv(Potential* __restrict cur, Potential* __restrict scratch, const FixedConnection& fc,
                     std::span<const NeuronId> ids, NeuronId lo, NeuronId hi) {
  if (ids.empty()) return;
  const WindowGeometry& g = fc.geometry;
  const std::size_t OW = g.output.width, ohw = g.output.height * OW, oc = g.output.channels;
  const std::size_t kh = g.kernel_h, kw = g.kernel_w;
  const T* __restrict taps = fc.table<T>();
  const bool full = lo == 0 && hi == fc.targets;
  const bool reversed = g.stride_w == 1;
  const SourceLocator locate(g);
  if (full && reversed) {
    for (NeuronId s : ids) {
      SourceWindow win;
      if (!source_window(fc, locate, s, win)) continue;
      const auto [c, y, x, r0, r1, c0, c1] = win;
      // Reversed column of tap kx = x + pad_w - c0, the first of the row.
      const std::size_t kr0 = kw - 1 - (x + g.pad_w - c0);
      const std::size_t n = (c1 - c0 + 1) * oc;
      for (std::size_t oy = r0; oy <= r1; ++oy) {
        const std::size_t ky = y + g.pad_h - oy * g.stride_h;
        const T* __restrict w = taps + ((c * kh + ky) * kw + kr0) * oc;
        Potential* __restrict t = scratch + (oy * OW + c0) * oc;
        for (std::size_t i = 0; i < n; ++i) t[i] += Potential{w[i]};
      }
    }
  } else {
    for (NeuronId s : ids) {
      SourceWindow win;
      if (!source_window(fc, locate, s, win)) continue;
      const auto [c, y, x, r0, r1, c0, c1] = win;
      for (std::size_t oy = r0; oy <= r1; ++oy) {
        const std::size_t ky = y + g.pad_h - oy * g.stride_h;
        for (std::size_t ox = c0; ox <= c1; ++ox) {
          const std::size_t kx = x + g.pad_w - ox * g.stride_w;
          const std::size_t kcol = reversed ? kw - 1 - kx : kx;
          const T* __restrict w = taps + ((c * kh + ky) * kw + kcol) * oc;
          const std::size_t pix = oy * OW + ox;
          Potential* __restrict t = scratch + pix * oc;
          if (full) {
            for (std::size_t o = 0; o < oc; ++o) t[o] += Potential{w[o]};
          } else {
            // Channels o with lo <= o * ohw + pix < hi.
            const std::size_t o0 = lo > pix ? (lo - pix + ohw - 1) / ohw : 0;
            const std::size_t o1 = std::min(oc, hi > pix ? (hi - pix + ohw - 1) / ohw : 0);
            for (std::size_t o = o0; o < o1; ++o) t[o] += Potential{w[o]};
          }
        }
      }
    }
  }
  if (full) {
    // Contiguous reads of scratch, one pass of zeroing (a vectorised fill).
    // Tiles of 16 positions: each channel's 16 targets are one contiguous
    // (vector) add, the tile's scratch (16 x oc) stays in L1.
    constexpr std::size_t kTile = 16;
    std::size_t pb = 0;
    for (; pb + kTile <= ohw; pb += kTile) {
      const Potential* __restrict t = scratch + pb * oc;
      for (std::size_t o = 0; o < oc; ++o) {
        Potential* __restrict d = cur + o * ohw + pb;
        for (std::size_t j = 0; j < kTile; ++j) d[j] += t[j * oc + o];
      }
    }
    for (std::size_t pix = pb; pix < ohw; ++pix)
      for (std::size_t o = 0; o < oc; ++o) cur[o * ohw + pix] += scratch[pix * oc + o];
    std::fill(scratch, scratch + ohw * oc, Potential{0});
    return;
  }
  for (std::size_t o = lo / ohw; o * ohw < hi; ++o) {
    const std::size_t p0 = std::max<std::size_t>(lo, o * ohw) - o * ohw;
    const std::size_t p1 = std::min<std::size_t>(hi, (o + 1) * ohw) - o * ohw;
    for (std::size_t pix = p0; pix < p1; ++pix) {
      cur[o * ohw + pix] += scratch[pix * oc + o];
      scratch[pix * oc + o] = 0;
    }
  }
}

/// Average pooling: source (c, y, x) adds the pool's one weight to target (c,
/// oy, ox) for each window of channel c that covers (y, x); targets [lo, hi)
/// only. Generated from the geometry, nothing per synapse stored.
inline void add_pool(Potential* __restrict cur, const FixedConnection& fc, std::span<const NeuronId> ids, NeuronId lo,
                     NeuronId hi) {
  const WindowGeometry& g = fc.geometry;
  const std::size_t OW = g.output.width, ohw = g.output.height * OW;
  const FixedWeight v = fc.weights[0];
  const SourceLocator locate(g);
  for (NeuronId s : ids) {
    SourceWindow win;
    if (!source_window(fc, locate, s, win)) continue;
    const auto [c, y, x, r0, r1, c0, c1] = win;
    for (std::size_t oy = r0; oy <= r1; ++oy) {
      const std::size_t base = c * ohw + oy * OW;
      // This partition's columns of the row: [a, b).
      const std::size_t a = std::max(c0, lo > base ? lo - base : 0);
      const std::size_t b = std::min(c1 + 1, hi > base ? hi - base : 0);
      for (std::size_t ox = a; ox < b; ++ox) cur[base + ox] += v;
    }
  }
}

/// Where a delivery adds: targets [lo, hi); for sparse connections, the
/// per-source split of that range (see add_sparse_rows; null = whole rows).
struct TargetRange {
  NeuronId lo = 0;
  NeuronId hi = 0;
  const std::uint64_t* split = nullptr;
  std::size_t parts = 1;
  std::size_t q = 0;
  /// Conv only: `targets` zeros of scratch (see add_conv), owned by the caller.
  Potential* scratch = nullptr;
};

/// deliver() for a connection whose tables hold T.
template <typename T>
inline void deliver_as(Potential* cur, const FixedConnection& fc, std::span<const NeuronId> ids, const TargetRange& range) {
  switch (fc.format) {
    case FanOutFormat::Dense: add_dense_rows(cur, fc.table<T>(), fc.targets, ids, range.lo, range.hi); return;
    case FanOutFormat::Sparse: add_sparse_rows<T>(cur, fc, ids, range.split, range.parts, range.q); return;
    case FanOutFormat::Conv: add_conv<T>(cur, range.scratch, fc, ids, range.lo, range.hi); return;
    case FanOutFormat::AvgPool: add_pool(cur, fc, ids, range.lo, range.hi); return;
  }
}

/// Adds the currents of spikes `ids` (sources of `fc`) to `cur` within
/// `range`. One switch on the kind and one on the weight width per call.
inline void deliver(Potential* cur, const FixedConnection& fc, std::span<const NeuronId> ids, const TargetRange& range) {
  switch (fc.weight_bits) {
    case 8: deliver_as<std::int8_t>(cur, fc, ids, range); return;
    case 16: deliver_as<std::int16_t>(cur, fc, ids, range); return;
    default: deliver_as<FixedWeight>(cur, fc, ids, range); return;
  }
}

}  // namespace snn::engine
