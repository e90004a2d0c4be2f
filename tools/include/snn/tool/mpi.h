// Running snnsim over MPI ranks (Open MPI): `mpirun -np N snnsim run|simulate|bench CONFIG`.
// Rank r simulates a contiguous share of the test samples with its own
// threads; the per-sample result arrays of all ranks are gathered (exact
// integers, placed by sample index) into the RunResult the one-process run
// gives, on every rank, and only rank 0 publishes the report. The input spikes
// are keyed by the global sample index (SampleSet::first_id), so they do not
// depend on the split. Data and robust normalisation shard the training-set
// pass by whole activation batches and merge maxima and histograms exactly.
// Rank 0 trains (or loads) the ANN weights; the others read the cache entry it
// names once it is written. A rank that fails prints its error and aborts the
// whole job (MPI_Abort): no rank publishes anything after a failure.
//
// No MPI type appears here: without SNNSIM_MPI (or when the process was not
// started by mpirun or srun) every function is the one-process case (rank 0
// of 1), so the rest of snnsim needs no #if.
#pragma once

#include "snn/engine/encoder.h"
#include "snn/engine/run.h"
#include "snn/network/dataset.h"
#include "snn/network/weights.h"

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

namespace snn::conversion {
struct NormaliseOptions;
struct Evaluation;
}  // namespace snn::conversion
namespace snn::engine {
class FixedNetwork;
}

namespace snn::tool::mpi {

/// Whether this snnsim was built with MPI (CMake option SNNSIM_MPI).
bool built();

/// MPI for the lifetime of main(): initialises MPI (MPI_THREAD_FUNNELED: only
/// the main thread calls MPI) when built with it and started by a launcher
/// (mpirun/mpiexec or srun set OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK);
/// otherwise does nothing. Finalises on destruction.
class Session {
 public:
  Session(int& argc, char**& argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
};

/// This process's rank (0 without MPI) and the number of ranks (1 without MPI).
int rank();
int size();
inline bool is_root() { return rank() == 0; }
inline bool distributed() { return size() > 1; }
/// " (rank r of N)" when distributed, else "": for error messages.
std::string where();

/// A contiguous range of items.
struct Range {
  std::size_t first = 0;
  std::size_t count = 0;
  bool operator==(const Range&) const = default;
};
/// Rank `r` of `ranks`'s share of `total` items: contiguous, in rank order,
/// split in whole units of `unit` items (the last unit may be short) as evenly
/// as possible (the first ranks take one unit more; a lone extra unit goes to
/// the last rank when the last unit is short); a rank may get none.
Range share(std::size_t total, int r, int ranks, std::size_t unit = 1);

/// Runs `run` on this rank's share of `samples` (a SampleSet view of it with
/// first_id advanced, so the spikes are the whole set's) and returns the
/// RunResult of the whole set, on every rank: per-sample arrays gathered by
/// sample range, seconds = the slowest rank's wall time including the
/// gather. One process: run(samples). Spike trains (record_spikes) are not
/// gathered (snn::Error).
engine::RunResult run_sharded(const engine::SampleSet& samples,
                              const std::function<engine::RunResult(const engine::SampleSet&)>& run);

/// Ranks of this job on this process's node (1 without MPI).
int node_size();

/// Moves `network`'s delivery tables (engine::FixedNetwork::share_tables)
/// into memory shared by the ranks of this node, written by the node's first
/// rank: the node's ranks then read one copy, as the threads of one rank do,
/// instead of one copy each competing for the node's shared cache. Every rank
/// calls it for the same network, in the same order (it is collective over
/// the node's ranks), before any engine takes the network. Returns how many
/// ranks read the one copy: node_size(), or 1 when it did nothing (without
/// MPI, or one rank on this node). The memory is released when the last copy
/// of the network goes, unless an exception is in flight (see mpi.cpp).
int share_tables(engine::FixedNetwork& network);
/// share_tables' result in words, for reports: "one copy shared by the N
/// ranks of a node", or "a copy per rank" for 1.
std::string table_sharing(int shared_by);

/// Worker threads of this rank for simulation.threads = `requested`: at most
/// the cores; 0 (all cores) means this rank's share of its node's cores
/// (cores / node_size(), at least 1), so ranks sharing a node do not
/// oversubscribe it.
int threads_per_rank(int requested);

/// conversion::normalise, the training-set pass of data and robust
/// normalisation split into whole batches of conversion::kActivationBatch
/// images over the ranks and `threads` threads per rank (threads_per_rank).
/// Every batch is computed by single-threaded OpenBLAS, whatever `threads`
/// and the rank count: the summation order of a multi-threaded sgemm (so an
/// activation's last bits) depends on its thread count. Maxima merge by max
/// and histograms by sum: the same factors, bit for bit, for any ranks and
/// threads.
void normalise(WeightSet& weights, const conversion::NormaliseOptions& options, const Dataset& train, int threads);

/// The ANN's accuracy (conversion::evaluate) on the first `samples` images of
/// `test` (0: all), split like normalise(): whole batches of 500 over ranks
/// and threads, single-threaded OpenBLAS each, the integer counts summed.
/// The same Evaluation on every rank, for any ranks and threads.
conversion::Evaluation evaluate(const WeightSet& weights, const Dataset& test, bool output_relu, std::size_t samples,
                                int threads);

/// Rank 0 runs `produce` (train or load the ANN weights, which stores them in
/// a directory) and sends its result, the directory, to the others once done;
/// every rank returns it. One process: produce(). While waiting the other
/// ranks sleep rather than spin, so rank 0's training keeps the cores.
std::string from_root(const std::function<std::string()>& produce);

/// Waits for every rank (sleeping, not spinning; throws snn::Error if this
/// process is interrupted meanwhile). One process: returns at once.
void barrier();

/// After this rank printed its error: ends every rank of the job with
/// `status` (MPI_Abort) when distributed; returns otherwise.
void abort_job(int status);

}  // namespace snn::tool::mpi
