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
#include <vector>
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

// cur[lo, hi) = from[lo, hi) (or 0 where from is null) + the N rows r: the
// first pass of a step, which thereby also initialises the current.
template <std::size_t N, typename T>
inline void set_rows(Potential* __restrict cur, const Potential* __restrict from, const T* const* r, std::size_t lo,
                     std::size_t hi) {
  std::size_t j = lo;
  for (; j + 16 <= hi; j += 16) {
    const __m512i s = row_sum16<N>(r, j);
    _mm512_storeu_si512(cur + j, from ? _mm512_add_epi32(_mm512_loadu_si512(from + j), s) : s);
  }
  if (j < hi) {
    const auto m = static_cast<__mmask16>((1u << (hi - j)) - 1u);
    const __m512i s = row_sum16<N>(r, j, m);
    _mm512_mask_storeu_epi32(cur + j, m, from ? _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, from + j), s) : s);
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
template <std::size_t N, typename T>
inline void set_rows(Potential* __restrict cur, const Potential* __restrict from, const T* const* r, std::size_t lo,
                     std::size_t hi) {
  for (std::size_t j = lo; j < hi; ++j) {
    Potential s = from ? from[j] : 0;
    for (std::size_t k = 0; k < N; ++k) s += Potential{r[k][j]};
    cur[j] = s;
  }
}
#endif

// set_rows<n> for a run-time n in [1, N].
template <std::size_t N, typename T>
inline void set_rows_n(std::size_t n, Potential* __restrict cur, const Potential* __restrict from, const T* const* r,
                       std::size_t lo, std::size_t hi) {
  if (n == N) return set_rows<N>(cur, from, r, lo, hi);
  if constexpr (N > 1) set_rows_n<N - 1>(n, cur, from, r, lo, hi);
}

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

/// add_dense_rows into a current that is not initialised yet: cur[lo, hi) =
/// from[lo, hi) (null: 0) + the rows `ids`. The first pass stores instead of
/// adding, so the step saves a separate fill or copy of the current and one
/// load of it per target.
template <typename T>
inline void set_dense_rows(Potential* __restrict cur, const Potential* __restrict from, const T* __restrict table,
                           std::size_t stride, std::span<const NeuronId> ids, std::size_t lo, std::size_t hi) {
  constexpr std::size_t kGroup = kRowsPerPass<T>;
  const std::size_t n = std::min(ids.size(), kGroup);
  if (n == 0) {
    if (from)
      std::copy(from + lo, from + hi, cur + lo);
    else
      std::fill(cur + lo, cur + hi, 0);
    return;
  }
  const T* r[kGroup];
  for (std::size_t k = 0; k < n; ++k) r[k] = table + ids[k] * stride;
  detail::set_rows_n<kGroup>(n, cur, from, r, lo, hi);
  add_dense_rows(cur, table, stride, ids.subspan(n), lo, hi);
}

/// set_dense_rows for a dense connection, whatever its table width.
inline void set_dense(Potential* cur, const Potential* from, const FixedConnection& fc, std::span<const NeuronId> ids,
                      std::size_t lo, std::size_t hi) {
  switch (fc.weight_bits) {
    case 8: set_dense_rows(cur, from, fc.table<std::int8_t>(), fc.targets, ids, lo, hi); return;
    case 16: set_dense_rows(cur, from, fc.table<std::int16_t>(), fc.targets, ids, lo, hi); return;
    default: set_dense_rows(cur, from, fc.table<FixedWeight>(), fc.targets, ids, lo, hi); return;
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

/// Engine id of conv target (o, pix) (pix = oy * width + ox) whose model
/// (CHW) id is `chw`: the engine numbers a conv's targets position-major
/// (HWC), pix * channels + o; see add_conv.
inline NeuronId position_major_id(const Shape& out, std::size_t chw) {
  const std::size_t hw = out.height * out.width, o = chw / hw;
  return static_cast<NeuronId>((chw - o * hw) * out.channels + o);
}

/// Model (CHW) id of a conv target whose engine (HWC) id is `hwc`.
inline NeuronId channel_major_id(const Shape& out, std::size_t hwc) {
  const std::size_t pix = hwc / out.channels, o = hwc - pix * out.channels;
  return static_cast<NeuronId>(o * out.height * out.width + pix);
}

namespace detail {

// Adds, for each of `rows` output rows r, the sum of K tap rows (w[j] + r *
// wstep, n weights each) to targets [t0 + r * tstep, + n), the part within
// [lo, hi). The K sums are formed in int32 (|w| <= 2^23). One call per spike
// group: its own small loop nest, so the compiler keeps every pointer in a
// register.
template <int K, typename T>
inline void add_tap_rows(Potential* __restrict cur, const T* const* w, std::ptrdiff_t wstep, std::size_t t0, std::size_t tstep,
                         std::size_t rows, std::size_t n, std::size_t lo, std::size_t hi) {
  for (std::size_t r = 0; r < rows; ++r, t0 += tstep) {
    const std::size_t i0 = lo > t0 ? lo - t0 : 0;
    const std::size_t i1 = std::min(n, hi > t0 ? hi - t0 : 0);
    const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(r) * wstep;
    Potential* __restrict t = cur + t0;
    const T* __restrict a = w[0] + off;
    const T* __restrict b = w[K > 1 ? 1 : 0] + off;
    const T* __restrict c = w[K > 2 ? 2 : 0] + off;
    const T* __restrict d = w[K > 3 ? 3 : 0] + off;
    for (std::size_t i = i0; i < i1; ++i) {
      if constexpr (K == 1) t[i] += Potential{a[i]};
      if constexpr (K == 2) t[i] += Potential{a[i]} + Potential{b[i]};
      if constexpr (K == 3) t[i] += (Potential{a[i]} + Potential{b[i]}) + Potential{c[i]};
      if constexpr (K == 4) t[i] += (Potential{a[i]} + Potential{b[i]}) + (Potential{c[i]} + Potential{d[i]});
    }
  }
}

}  // namespace detail

/// What a stride_w == 1 conv source at one input position (y, x) reaches,
/// the same for every input channel: output rows r0 .. r0 + rows - 1, each
/// adding n weights (the covering columns times the output channels) to
/// targets from t0 (row r0's first, engine id) on, from tap-major offset w0
/// (row ky0, reversed column kr0) within the input channel's taps. rows = 0:
/// no window covers the position.
struct ConvWindow {
  std::uint32_t t0 = 0, w0 = 0, rows = 0, n = 0;
};

/// Per input position (y * width + x), a stride_w == 1 conv's ConvWindow
/// (O(height x width), built once by the engine, passed in TargetRange).
inline std::vector<ConvWindow> conv_windows(const FixedConnection& fc) {
  const WindowGeometry& g = fc.geometry;
  std::vector<ConvWindow> out(g.input.height * g.input.width);
  const std::size_t oc = g.output.channels, kw = g.kernel_w;
  for (std::uint32_t y = 0; y < g.input.height; ++y)
    for (std::uint32_t x = 0; x < g.input.width; ++x) {
      if (fc.row_reach[y] == 0 || fc.col_reach[x] == 0) continue;
      std::uint32_t r0, c0;
      fc.window_of(y, x, r0, c0);
      const std::size_t ky0 = y + g.pad_h - r0 * g.stride_h, kr0 = kw - 1 - (x + g.pad_w - c0);
      out[y * g.input.width + x] = {static_cast<std::uint32_t>((r0 * g.output.width + c0) * oc),
                                    static_cast<std::uint32_t>((ky0 * kw + kr0) * oc), fc.row_reach[y],
                                    static_cast<std::uint32_t>(fc.col_reach[x] * oc)};
    }
  return out;
}

/// Convolution: source (c, y, x) (CHW id) adds kernel tap (ky, kx) = (y +
/// pad_h - oy * stride_h, x + pad_w - ox * stride_w) of every output channel
/// o to target (o, oy, ox), for the output positions whose window covers (y,
/// x). The fan-out is generated here from the geometry; nothing per synapse
/// is stored. Targets are numbered position-major (HWC: engine id (oy *
/// width + ox) * channels + o, see position_major_id), so one tap's adds to
/// all output channels are one contiguous, vectorisable loop over the
/// tap-major kernel, straight into `cur`; [lo, hi) is a range of these ids.
///
/// With stride_w == 1 the kernel is stored with kx reversed (see
/// FixedConnection::tap_major), so for one output row oy the targets ox = c0..c1
/// (contiguous) meet contiguous weights: the whole row is one flat add of
/// (c1 - c0 + 1) * oc elements, clipped to [lo, hi). Up to four consecutive
/// spikes at the same position (other input channels: the engine delivers a
/// position-major source's spikes position by position) share their targets,
/// so their taps are summed in one pass: one load and store of the current
/// per four spikes instead of per spike. Integer sums: any grouping gives the
/// same currents.
template <typename T>
inline void add_conv(Potential* __restrict cur, const FixedConnection& fc, std::span<const NeuronId> ids, NeuronId lo,
                     NeuronId hi, const ConvWindow* windows = nullptr) {
  const WindowGeometry& g = fc.geometry;
  const std::size_t OW = g.output.width, oc = g.output.channels;
  const std::size_t kh = g.kernel_h, kw = g.kernel_w;
  const T* __restrict taps = fc.table<T>();
  const SourceLocator& locate = fc.locator;
  if (g.stride_w == 1) {
    const std::ptrdiff_t wstep = -static_cast<std::ptrdiff_t>(g.stride_h * kw * oc);
    const std::size_t tstep = OW * oc, per_channel = kh * kw * oc;
    std::vector<ConvWindow> own;
    if (!windows) {
      own = conv_windows(fc);
      windows = own.data();
    }
    const NeuronId* id = ids.data();
    const NeuronId* const end = id + ids.size();
    // A group: up to four consecutive spikes at one position. The spike that
    // ends a group is split once and starts the next.
    std::uint32_t c = 0, pos = 0;
    bool more = id != end;
    if (more) locate.split(*id++, c, pos);
    while (more) {
      const ConvWindow win = windows[pos];
      std::size_t chan[4] = {c, 0, 0, 0};
      std::size_t k = 1;
      more = false;
      while (id != end) {
        std::uint32_t c2, pos2;
        locate.split(*id++, c2, pos2);
        if (pos2 != pos || k == 4) {
          c = c2;
          pos = pos2;
          more = true;
          break;
        }
        chan[k++] = c2;
      }
      if (win.rows == 0) continue;
      const T* w[4];
      for (std::size_t j = 0; j < k; ++j) w[j] = taps + chan[j] * per_channel + win.w0;
      switch (k) {
        case 1: detail::add_tap_rows<1>(cur, w, wstep, win.t0, tstep, win.rows, win.n, lo, hi); break;
        case 2: detail::add_tap_rows<2>(cur, w, wstep, win.t0, tstep, win.rows, win.n, lo, hi); break;
        case 3: detail::add_tap_rows<3>(cur, w, wstep, win.t0, tstep, win.rows, win.n, lo, hi); break;
        default: detail::add_tap_rows<4>(cur, w, wstep, win.t0, tstep, win.rows, win.n, lo, hi); break;
      }
    }
    return;
  }
  for (NeuronId s : ids) {
    SourceWindow win;
    if (!source_window(fc, locate, s, win)) continue;
    const auto [c, y, x, r0, r1, c0, c1] = win;
    for (std::size_t oy = r0; oy <= r1; ++oy) {
      const std::size_t ky = y + g.pad_h - oy * g.stride_h;
      for (std::size_t ox = c0; ox <= c1; ++ox) {
        const std::size_t kx = x + g.pad_w - ox * g.stride_w;
        const T* w = taps + ((c * kh + ky) * kw + kx) * oc;
        detail::add_tap_rows<1>(cur, &w, 0, (oy * OW + ox) * oc, 0, 1, oc, lo, hi);
      }
    }
  }
}

/// A pool whose windows do not overlap (stride >= kernel) sends each source
/// to at most one target: `target` (per source id as delivered, built by the
/// engine; kNoTarget for sources no window covers) replaces the per-spike
/// geometry. One load and one add per spike, targets [lo, hi) only.
inline constexpr NeuronId kNoTarget = ~NeuronId{0};
inline void add_pool_table(Potential* __restrict cur, FixedWeight v, const NeuronId* __restrict target,
                           std::span<const NeuronId> ids, NeuronId lo, NeuronId hi) {
  const NeuronId width = hi - lo;
  for (NeuronId s : ids) {
    const NeuronId t = target[s];
    if (t - lo < width) cur[t] += v;  // unsigned: also false for kNoTarget
  }
}

/// Average pooling: source (c, y, x) adds the pool's one weight to target (c,
/// oy, ox) for each window of channel c that covers (y, x); targets [lo, hi)
/// only. Generated from the geometry, nothing per synapse stored. A pool's
/// sources spike often (every spike of the conv before it) and each adds one
/// or a few weights, so the whole population (no clipping) has its own loop;
/// the engine sends non-overlapping pools to add_pool_table instead.
inline void add_pool(Potential* __restrict cur, const FixedConnection& fc, std::span<const NeuronId> ids, NeuronId lo,
                     NeuronId hi) {
  const WindowGeometry& g = fc.geometry;
  const std::size_t OW = g.output.width, ohw = g.output.height * OW;
  const FixedWeight v = fc.weights[0];
  const SourceLocator& locate = fc.locator;
  if (lo == 0 && hi == fc.targets) {
    for (NeuronId s : ids) {
      SourceWindow win;
      if (!source_window(fc, locate, s, win)) continue;
      for (std::size_t oy = win.r0; oy <= win.r1; ++oy)
        for (std::size_t ox = win.c0; ox <= win.c1; ++ox) cur[win.c * ohw + oy * OW + ox] += v;
    }
    return;
  }
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
  /// Pool only (may be null): each source's one target (add_pool_table).
  const NeuronId* pool_target = nullptr;
  /// Stride-1 conv only (may be null: built per call): conv_windows(fc).
  const ConvWindow* conv_windows = nullptr;
};

/// deliver() for a connection whose tables hold T.
template <typename T>
inline void deliver_as(Potential* cur, const FixedConnection& fc, std::span<const NeuronId> ids, const TargetRange& range) {
  switch (fc.format) {
    case FanOutFormat::Dense: add_dense_rows(cur, fc.table<T>(), fc.targets, ids, range.lo, range.hi); return;
    case FanOutFormat::Sparse: add_sparse_rows<T>(cur, fc, ids, range.split, range.parts, range.q); return;
    case FanOutFormat::Conv: add_conv<T>(cur, fc, ids, range.lo, range.hi, range.conv_windows); return;
    case FanOutFormat::AvgPool:
      if (range.pool_target)
        add_pool_table(cur, fc.weights[0], range.pool_target, ids, range.lo, range.hi);
      else
        add_pool(cur, fc, ids, range.lo, range.hi);
      return;
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
