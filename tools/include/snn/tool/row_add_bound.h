// The ceiling for fan-out delivery on this machine: how fast contiguous rows
// can be added into an accumulator (acc[0:n] += W[r, 0:n] for random rows r),
// with the matrix in L2, in L3 and in DRAM, by the engine's own delivery kernel
// (engine/delivery.h) and nothing else. The engine's adds per second divided
// by this figure is the share of its time spent at the machine's pace.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace snn::tool {

struct RowAddBound {
  std::string level;     ///< "L2", "L3", "DRAM"
  std::size_t rows = 0;  ///< matrix rows (row length is `width`)
  std::size_t width = 0;
  double bytes = 0;            ///< matrix size
  double adds_per_second = 0;  ///< median over repeats, summed over `threads`
  int threads = 1;
  int element_bits = 32;  ///< table element width (int32, int16, int8)
};

/// Measures row adds (the engine's fixed-point delivery: int32 accumulators)
/// of rows of `width` elements of `element_bits` (32, 16 or 8: the engine's
/// simulation.weight_bits); `threads` workers each with their own
/// accumulator; `seconds` of work per level and repeat, median of `repeats`.
/// The levels hold the same number of elements whatever the width (L2: 512
/// KiB of int32, L3: the seed's 784 x 1200 first layer, DRAM: 96 MiB of
/// int32), so a narrower table is the same table in fewer bytes.
std::vector<RowAddBound> measure_row_add_bound(std::size_t width, int threads, double seconds = 0.3, int repeats = 3,
                                               int element_bits = 32);

}  // namespace snn::tool
