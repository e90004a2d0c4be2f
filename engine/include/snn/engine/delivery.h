// Fan-out delivery, the event engine's inner loop (after Auryn's
// SparseConnection::propagate: for each spike, for each target, add). Public so
// the micro-benchmarks and the row-add bound measure exactly this code.
#pragma once

#include "snn/types.h"

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

}  // namespace snn::engine
