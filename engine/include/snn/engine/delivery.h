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
#include <cstdint>
#include <cstddef>
#include <span>

namespace snn::engine {

/// Adds the slices [lo, hi) of the rows `ids` of a dense fan-out table (row s
/// at table + s * stride) into `cur`. Four rows per pass: one load and store of
/// the accumulator per four rows instead of per row. Integer adds, so the
/// grouping changes nothing in the result.
inline void add_dense_rows(Potential* __restrict cur, const FixedWeight* __restrict table, std::size_t stride,
                    std::span<const NeuronId> ids, std::size_t lo, std::size_t hi) {
  const NeuronId* id = ids.data();
  const NeuronId* const end = id + ids.size();
  for (; end - id >= 4; id += 4) {
    const FixedWeight* __restrict r0 = table + id[0] * stride;
    const FixedWeight* __restrict r1 = table + id[1] * stride;
    const FixedWeight* __restrict r2 = table + id[2] * stride;
    const FixedWeight* __restrict r3 = table + id[3] * stride;
    for (std::size_t j = lo; j < hi; ++j) cur[j] += (r0[j] + r1[j]) + (r2[j] + r3[j]);
  }
  for (; id != end; ++id) {
    const FixedWeight* __restrict r = table + *id * stride;
    for (std::size_t j = lo; j < hi; ++j) cur[j] += r[j];
  }
}

/// Sparse (CSR) rows of `ids`, the part of each row in targets [lo, hi).
/// `split` (may be null: whole rows, for lo = 0, hi = targets) holds, per
/// source, parts + 1 offsets where each partition's targets start in its row;
/// q selects the partition.
inline void add_sparse_rows(Potential* __restrict cur, const FixedConnection& fc, std::span<const NeuronId> ids,
                            const std::uint64_t* split, std::size_t parts, std::size_t q) {
  const NeuronId* __restrict tid = fc.target_ids.data();
  const FixedWeight* __restrict w = fc.weights.data();
  for (NeuronId s : ids) {
    const std::uint64_t b0 = split ? split[s * (parts + 1) + q] : fc.offsets[s];
    const std::uint64_t b1 = split ? split[s * (parts + 1) + q + 1] : fc.offsets[s + 1];
    for (std::uint64_t e = b0; e < b1; ++e) cur[tid[e]] += w[e];
  }
}

/// Convolution (or, with `pool`, average pooling): source (c, y, x) adds
/// kernel tap (ky, kx) = (y + pad_h - oy * stride_h, x + pad_w - ox * stride_w)
/// of every output channel o (pool: channel c only, the one weight) to target
/// (o, oy, ox), for the output positions whose window covers (y, x). The
/// fan-out is generated here from the geometry; nothing per synapse is stored.
template <bool kPool>
inline void add_window(Potential* __restrict cur, const FixedConnection& fc, std::span<const NeuronId> ids,
                       NeuronId lo, NeuronId hi) {
  const WindowGeometry& g = fc.geometry;
  const std::size_t W = g.input.width, plane = g.input.height * W;
  const std::size_t OW = g.output.width, ohw = g.output.height * OW;
  const std::size_t kw = g.kernel_w, kk = g.kernel_h * kw, cin = g.input.channels;
  const std::size_t sh = g.stride_h, sw = g.stride_w;
  const FixedWeight* __restrict w = fc.weights.data();
  // Output channels whose planes meet [lo, hi).
  const std::size_t o_lo = lo / ohw, o_hi = std::min(g.output.channels, (static_cast<std::size_t>(hi) + ohw - 1) / ohw);
  for (NeuronId s : ids) {
    const std::size_t c = s / plane, y = s % plane / W, x = s % W;
    const auto [r0, r1] = g.rows_of(y);
    const auto [c0, c1] = g.cols_of(x);
    if (r0 > r1 || c0 > c1) continue;
    const std::size_t first = kPool ? std::max(c, o_lo) : o_lo, last = kPool ? std::min(c + 1, o_hi) : o_hi;
    for (std::size_t o = first; o < last; ++o) {
      const FixedWeight* k = kPool ? w : w + (o * cin + c) * kk;
      for (std::size_t oy = r0; oy <= r1; ++oy) {
        const std::size_t ky = y + g.pad_h - oy * sh;
        const std::size_t base = o * ohw + oy * OW;
        // This partition's columns of the row: [a, b).
        const std::size_t a = std::max(c0, lo > base ? lo - base : 0);
        const std::size_t b = std::min(c1 + 1, hi > base ? hi - base : 0);
        Potential* __restrict t = cur + base;
        if constexpr (kPool) {
          const FixedWeight v = k[0];
          for (std::size_t ox = a; ox < b; ++ox) t[ox] += v;
        } else {
          const std::size_t tap = ky * kw + x + g.pad_w;  // tap kx = x + pad_w - ox * sw >= 0
          for (std::size_t ox = a; ox < b; ++ox) t[ox] += k[tap - ox * sw];
        }
      }
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
};

/// Adds the currents of spikes `ids` (sources of `fc`) to `cur` within `range`.
inline void deliver(Potential* cur, const FixedConnection& fc, std::span<const NeuronId> ids, const TargetRange& range) {
  switch (fc.format) {
    case FanOutFormat::Dense: add_dense_rows(cur, fc.weights.data(), fc.targets, ids, range.lo, range.hi); return;
    case FanOutFormat::Sparse: add_sparse_rows(cur, fc, ids, range.split, range.parts, range.q); return;
    case FanOutFormat::Conv: add_window<false>(cur, fc, ids, range.lo, range.hi); return;
    case FanOutFormat::AvgPool: add_window<true>(cur, fc, ids, range.lo, range.hi); return;
  }
}

}  // namespace snn::engine
