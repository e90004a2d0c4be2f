// Splitting a layer's work over oneTBB threads in pieces fixed by the batch
// alone (never by the thread count), each piece running single-threaded
// OpenBLAS. The arithmetic of every piece, and the order in which pieces'
// partial sums are combined, depend only on the batch, so results are the same
// for any thread count; the threads are those of the calling task arena.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <cstddef>

namespace snn::conversion::detail {

/// Runs body(i) for every i in [0, pieces), one piece per task.
template <class Body>
void for_each_piece(std::size_t pieces, const Body& body) {
  if (pieces == 1) {
    body(std::size_t{0});
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<std::size_t>(0, pieces, 1),
      [&](const tbb::blocked_range<std::size_t>& r) {
        for (std::size_t i = r.begin(); i != r.end(); ++i) body(i);
      },
      tbb::simple_partitioner());
}

/// Pieces of at most `per_piece` items covering `n` items.
inline std::size_t piece_count(std::size_t n, std::size_t per_piece) { return (n + per_piece - 1) / per_piece; }

}  // namespace snn::conversion::detail
