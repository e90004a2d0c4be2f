// MPI for snnsim (mpi.h). Every MPI call is made from the main thread, and
// the waits sleep between polls (MPI_Test) instead of spinning in a blocking
// call: a rank waiting for rank 0's training, or for a slower rank, must not
// take a core from them on a machine with more threads than cores.
#include "snn/tool/mpi.h"

#include "snn/conversion/layers.h"
#include "snn/conversion/normalise.h"
#include "snn/conversion/trainer.h"
#include "snn/engine/fixed_point.h"
#include "snn/error.h"
#include "snn/tool/interrupt.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include <tbb/info.h>

#if SNNSIM_WITH_MPI
#include <mpi.h>
#endif

namespace snn::tool::mpi {

namespace {
int g_rank = 0;
int g_size = 1;
int g_node_size = 1;
#if SNNSIM_WITH_MPI
bool g_active = false;            // MPI_Init was called, so MPI_Finalize must be
MPI_Comm g_node = MPI_COMM_NULL;  // the ranks of this node (MPI_COMM_TYPE_SHARED)
#endif

using Clock = std::chrono::steady_clock;

#if !SNNSIM_WITH_MPI
// Ranks of a build without MPI would each run the whole job and race to write one report.
bool several_ranks_launched() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"})
    if (const char* v = std::getenv(var); v && std::atoi(v) > 1) return true;
  return false;
}
#endif

#if SNNSIM_WITH_MPI
bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(var)) return true;
  return false;
}

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw Error("MPI: {} failed (error {}){}", what, rc, where());
}

// Polls until `request` completes, sleeping between polls; an interrupt
// (SIGINT/SIGTERM) ends the wait with an error, which aborts the job.
void wait_sleeping(MPI_Request& request, const char* what) {
  using std::chrono::microseconds;
  const auto start = Clock::now();
  auto pause = microseconds(50);
  for (;;) {
    int done = 0;
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    throw_if_interrupted();
    std::this_thread::sleep_for(pause);
    // A barrier ends every phase of a run (about a second in all on the seed
    // network): a short wait ends at most 1 ms late. A poll costs some 15 us
    // of CPU (1.3 % of a core at 1000 a second, measured on a loaded machine),
    // so a wait past 100 ms, already long, polls every 5 ms.
    const auto cap = Clock::now() - start < std::chrono::milliseconds(100) ? microseconds(1000) : microseconds(5000);
    pause = std::min(pause * 2, cap);
  }
}

int as_int(std::size_t n, const char* what) {
  if (n > static_cast<std::size_t>(INT_MAX))
    throw Error("MPI: {} of {} bytes exceeds the 2 GiB of one MPI message; use fewer samples per run", what, n);
  return static_cast<int>(n);
}

// Every rank's `mine` (its samples' rows of `per_sample` values, in sample
// order) into `all`, rows placed by global sample index.
template <class T>
void gather_rows(const std::vector<T>& mine, std::vector<T>& all, std::size_t total, std::size_t per_sample, const char* what) {
  const int n = size();
  std::vector<int> counts(static_cast<std::size_t>(n)), offsets(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    const Range s = share(total, r, n);
    counts[static_cast<std::size_t>(r)] = as_int(s.count * per_sample * sizeof(T), what);
    offsets[static_cast<std::size_t>(r)] = as_int(s.first * per_sample * sizeof(T), what);
  }
  const std::size_t expected = share(total, rank(), n).count * per_sample;
  if (mine.size() != expected)
    throw Error("MPI: {} holds {} values on this rank, expected {}{}", what, mine.size(), expected, where());
  all.assign(total * per_sample, T{});
  check(MPI_Allgatherv(mine.data(), counts[static_cast<std::size_t>(rank())], MPI_BYTE, all.data(), counts.data(), offsets.data(),
                       MPI_BYTE, MPI_COMM_WORLD),
        what);
}
#endif

}  // namespace

bool built() { return SNNSIM_WITH_MPI != 0; }

Session::Session([[maybe_unused]] int& argc, [[maybe_unused]] char**& argv) {
#if SNNSIM_WITH_MPI
  if (!launched_by_mpi()) return;
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fputs("snnsim: error: MPI_Init_thread failed\n", stderr);
    std::exit(1);
  }
  g_active = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  // The ranks sharing this node's memory (and cores), whatever the launcher.
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &g_node) == MPI_SUCCESS)
    MPI_Comm_size(g_node, &g_node_size);
  else
    g_node = MPI_COMM_NULL;
#else
  if (several_ranks_launched()) {
    std::fputs(
        "snnsim: error: started as one of several MPI ranks, but this snnsim was built without MPI "
        "(SNNSIM_MPI=OFF); rebuild with libopenmpi-dev installed, or run it without mpirun\n",
        stderr);
    std::exit(1);
  }
#endif
}

Session::~Session() {
#if SNNSIM_WITH_MPI
  if (g_node != MPI_COMM_NULL) MPI_Comm_free(&g_node);
  if (g_active) MPI_Finalize();
  g_active = false;
#endif
}

int rank() { return g_rank; }
int size() { return g_size; }
int node_size() { return g_node_size; }

int threads_per_rank(int requested) {
  if (requested < 0) throw Error("threads must be >= 0 (0 = all cores), got {}", requested);
  const int cores = tbb::info::default_concurrency();  // the engine's cap too (engine::effective_threads)
  if (requested > 0) return std::min(requested, cores);
  return std::max(1, cores / std::max(1, g_node_size));
}

std::string where() { return distributed() ? fmt::format(" (rank {} of {})", g_rank, g_size) : std::string(); }

Range share(std::size_t total, int r, int ranks, std::size_t unit) {
  if (ranks < 1 || r < 0 || r >= ranks || unit == 0) throw Error("share: rank {} of {} ranks, unit {}", r, ranks, unit);
  const auto n = static_cast<std::size_t>(ranks);
  const auto i = static_cast<std::size_t>(r);
  const std::size_t units = (total + unit - 1) / unit;
  const std::size_t base = units / n, extra = units % n;
  // A lone extra unit goes to the last rank when the last unit is short: the
  // largest share is then base full units and the short one, not base + 1
  // full units (8004 training images over 2 ranks: 4000 + 4004, not 4500 +
  // 3504). With two or more extra units some rank takes base + 1 full ones anyway.
  const bool last_takes_it = extra == 1 && n > 1 && total % unit != 0;
  const auto takes_extra = [&](std::size_t r) { return last_takes_it ? r == n - 1 : r < extra; };
  const std::size_t first_unit = i * base + (last_takes_it ? 0 : std::min(i, extra));
  const std::size_t end_unit = first_unit + base + (takes_extra(i) ? 1 : 0);
  const std::size_t first = std::min(first_unit * unit, total);
  return {first, std::min(end_unit * unit, total) - first};
}

void barrier() {
#if SNNSIM_WITH_MPI
  if (!distributed()) return;
  MPI_Request request;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &request), "barrier");
  wait_sleeping(request, "barrier");
#endif
}

#if SNNSIM_WITH_MPI
namespace {

// Frees a shared table window when the last network using it goes.
// MPI_Win_free is collective over the node's ranks. A rank unwinding after an
// error must not call it: its peers may be waiting for it elsewhere (in a
// barrier, or still simulating), so it would wait for them forever instead
// of reaching main's abort_job, whose MPI_Abort ends every rank (the memory
// goes with the processes). Freeing every window in Session's destructor
// instead would keep each run's tables mapped until exit; here a normal run
// frees them where all ranks pass in step (the end of the command's scope).
// After MPI_Finalize nothing may be freed either.
void free_window(MPI_Win window) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (std::uncaught_exceptions() > 0 || finalized) return;
  MPI_Win_free(&window);
}

}  // namespace
#endif

std::string table_sharing(int shared_by) {
  return shared_by > 1 ? fmt::format("one copy shared by the {} ranks of a node", shared_by) : std::string("a copy per rank");
}

int share_tables([[maybe_unused]] engine::FixedNetwork& network) {
#if SNNSIM_WITH_MPI
  if (!g_active || g_node == MPI_COMM_NULL || g_node_size < 2) return 1;
  int node_rank = 0;
  check(MPI_Comm_rank(g_node, &node_rank), "node rank");
  // Room to start the tables at a kTableAlignment boundary: every rank maps
  // the segment at a page boundary, so the same padding aligns it on all of
  // them (were it not so, the reader's check of the header would say so).
  constexpr std::size_t kAlign = engine::kTableAlignment;
  const std::size_t bytes = network.table_bytes() + kAlign;
  std::byte* mine = nullptr;
  MPI_Win window = MPI_WIN_NULL;
  check(MPI_Win_allocate_shared(node_rank == 0 ? static_cast<MPI_Aint>(bytes) : 0, 1, MPI_INFO_NULL, g_node, &mine, &window),
        "allocating shared memory for the engine's tables");
  MPI_Aint size = 0;
  int unit = 0;
  std::byte* base = nullptr;
  check(MPI_Win_shared_query(window, 0, &size, &unit, &base), "locating the shared tables");
  if (static_cast<std::size_t>(size) < bytes)
    throw Error("MPI: the node's shared table memory has {} bytes, the engine's tables need {}{}", size, bytes, where());
  std::byte* memory = base + (kAlign - reinterpret_cast<std::uintptr_t>(base) % kAlign) % kAlign;
  const std::shared_ptr<const void> owner(memory, [window](const void*) { free_window(window); });
  // The shared-memory model (MPI 3.1, 11.5.4.4): the writer's stores are made
  // visible by MPI_Win_sync, the barrier orders them before the readers',
  // whose MPI_Win_sync then makes them see them; within a passive epoch.
  check(MPI_Win_lock_all(MPI_MODE_NOCHECK, window), "locking the shared tables");
  if (node_rank == 0) network.share_tables(memory, owner, true);
  check(MPI_Win_sync(window), "publishing the shared tables");
  MPI_Request request;
  check(MPI_Ibarrier(g_node, &request), "node barrier");
  wait_sleeping(request, "node barrier");
  check(MPI_Win_sync(window), "reading the shared tables");
  if (node_rank != 0) network.share_tables(memory, owner, false);
  check(MPI_Win_unlock_all(window), "unlocking the shared tables");
  return g_node_size;
#else
  return 1;
#endif
}

engine::RunResult run_sharded(const engine::SampleSet& samples,
                              const std::function<engine::RunResult(const engine::SampleSet&)>& run) {
  if (!distributed()) return run(samples);
#if SNNSIM_WITH_MPI
  const std::size_t total = samples.count;
  const Range mine = share(total, rank(), size());
  engine::SampleSet part = samples;
  part.count = mine.count;
  part.values = samples.values.subspan(mine.first * samples.size, mine.count * samples.size);
  if (samples.has_labels()) part.labels = samples.labels.subspan(mine.first, mine.count);
  part.first_id = samples.first_id + mine.first;  // the global index keys the input spikes

  barrier();
  const auto start = Clock::now();
  // Test hook (tests/test_mpi.cpp): this rank fails while the others wait for it.
  if (const char* fail = std::getenv("SNNSIM_MPI_FAIL_RANK"); fail && std::atoi(fail) == rank())
    throw Error("SNNSIM_MPI_FAIL_RANK={}: this rank fails on purpose (a test of the fault handling)", fail);
  engine::RunResult local = run(part);
  if (!local.spike_trains.empty())
    throw Error("spike trains (record_spikes) are not gathered over MPI ranks; run them in one process{}", where());
  barrier();  // the slowest rank's work, waited for without spinning

  engine::RunResult all = local;  // the run's shape (populations, quantisation, ...) is the same on every rank
  all.samples = total;
  const auto steps = static_cast<std::size_t>(local.steps);
  gather_rows(local.output_counts, all.output_counts, total, local.classes, "output_counts");
  gather_rows(local.step_predictions, all.step_predictions, total, steps, "step_predictions");
  gather_rows(local.predictions, all.predictions, total, 1, "predictions");
  gather_rows(local.steps_simulated, all.steps_simulated, total, 1, "steps_simulated");
  gather_rows(local.population_spikes, all.population_spikes, total, local.populations, "population_spikes");
  gather_rows(local.synops, all.synops, total, local.connections, "synops");
  gather_rows(local.work, all.work, total, local.connections, "work");
  gather_rows(local.bias_ops, all.bias_ops, total, 1, "bias_ops");
  gather_rows(local.step_synops, all.step_synops, total, steps, "step_synops");
  // Sized only with early exit enabled (then on every rank with samples).
  int exits = local.exit_step.empty() ? 0 : 1;
  check(MPI_Allreduce(MPI_IN_PLACE, &exits, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "early exit");
  if (exits) {
    gather_rows(local.exit_step, all.exit_step, total, 1, "exit_step");
    gather_rows(local.exit_predictions, all.exit_predictions, total, 1, "exit_predictions");
    gather_rows(local.synops_at_exit, all.synops_at_exit, total, 1, "synops_at_exit");
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  check(MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "run time");
  all.seconds = seconds;
  return all;
#else
  return run(samples);
#endif
}

namespace {

// Threads split_over_threads uses for `range`: `threads`, but no more than
// its whole `unit`s (an idle thread would still build a model of the weights,
// and a robust pass allocate its histograms), at least 1.
int threads_for(Range range, std::size_t unit, int threads) {
  const auto units = static_cast<int>(std::min<std::size_t>((range.count + unit - 1) / unit, INT_MAX));
  return std::max(1, std::min(threads, units));
}

// Calls part(k, range) for each of `n` contiguous shares of `range` in whole
// `unit`s (range.first is a multiple of unit), share k on its own thread
// (share 0 on this one); rethrows the first error once all are done.
void split_over_threads(Range range, std::size_t unit, int n, const std::function<void(std::size_t, Range)>& part) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  const auto run = [&](int k) {
    try {
      Range s = share(range.count, k, n, unit);
      s.first += range.first;
      part(static_cast<std::size_t>(k), s);
    } catch (...) { errors[static_cast<std::size_t>(k)] = std::current_exception(); }
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < n; ++k) pool.emplace_back(run, k);
  run(0);
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<double> max_activations_shared(const WeightSet& weights, const Dataset& train, Range mine, int threads) {
  const int n = threads_for(mine, conversion::kActivationBatch, threads);
  std::vector<std::vector<double>> parts(static_cast<std::size_t>(n));
  split_over_threads(mine, conversion::kActivationBatch, n, [&](std::size_t k, Range s) {
    parts[k] = conversion::max_activations_in(weights, train, s.first, s.count);
  });
  std::vector<double> scales = parts[0];
  for (const auto& p : parts)
    for (std::size_t l = 0; l < scales.size(); ++l) scales[l] = std::max(scales[l], p.at(l));
#if SNNSIM_WITH_MPI
  if (distributed()) {
    barrier();
    check(MPI_Allreduce(MPI_IN_PLACE, scales.data(), as_int(scales.size(), "maxima"), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD),
          "activation maxima");
  }
#endif
  return scales;
}

std::vector<conversion::PercentileHistogram> histograms_shared(const WeightSet& weights, const Dataset& train, Range mine,
                                                               int threads) {
  const int n = threads_for(mine, conversion::kActivationBatch, threads);
  std::vector<std::vector<conversion::PercentileHistogram>> parts(static_cast<std::size_t>(n));
  split_over_threads(mine, conversion::kActivationBatch, n, [&](std::size_t k, Range s) {
    parts[k] = conversion::activation_histograms_in(weights, train, s.first, s.count);
  });
  std::vector<conversion::PercentileHistogram> hist = std::move(parts[0]);
  for (std::size_t k = 1; k < parts.size(); ++k)
    for (std::size_t l = 0; l < hist.size(); ++l) hist[l].merge(parts[k].at(l));
#if SNNSIM_WITH_MPI
  if (distributed()) {
    barrier();
    for (auto& h : hist) {
      std::vector<std::uint64_t> bins = h.bins();
      float max = h.max();
      check(MPI_Allreduce(MPI_IN_PLACE, bins.data(), as_int(bins.size(), "histogram"), MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD),
            "activation histogram");
      check(MPI_Allreduce(MPI_IN_PLACE, &max, 1, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD), "activation maximum");
      h = conversion::PercentileHistogram::from_bins(std::move(bins), max);
    }
  }
#endif
  return hist;
}

}  // namespace

void normalise(WeightSet& weights, const conversion::NormaliseOptions& options, const Dataset& train, int threads) {
  const bool pass = options.method == Normalisation::Data || options.method == Normalisation::Robust;
  if (!pass || weights.normalisation.method != Normalisation::None) {
    conversion::normalise(weights, options, &train);
    return;
  }
  if (options.method == Normalisation::Robust && !(options.percentile > 0.0 && options.percentile <= 100.0))
    throw Error("robust normalisation: percentile {} is not in (0, 100]", options.percentile);
  const std::size_t n = options.samples == 0 ? train.count : std::min(options.samples, train.count);
  // Whole batches per rank and thread: each batch is then computed exactly
  // as the one-process, one-thread pass computes it.
  const Range mine = share(n, rank(), size(), conversion::kActivationBatch);
  // Every batch on one OpenBLAS thread: an sgemm's summation order, so its
  // results' last bits, depend on its thread count (1 % to 16 % of the seed
  // network's activations differ between 1 and 2 threads); the parallelism
  // comes from splitting the batches instead.
  const conversion::SerialBlas blas;
  std::vector<double> scales;
  if (options.method == Normalisation::Data) {
    scales = max_activations_shared(weights, train, mine, threads);
  } else {
    const auto hist = histograms_shared(weights, train, mine, threads);
    scales = conversion::percentiles_of(hist, options.percentile);
  }
  conversion::normalise_with(weights, options, n, scales);
}

conversion::Evaluation evaluate(const WeightSet& weights, const Dataset& test, bool output_relu, std::size_t samples,
                                int threads) {
  const std::size_t n = samples == 0 ? test.count : std::min(samples, test.count);
  constexpr std::size_t kBatch = conversion::kEvaluationBatch;
  const Range mine = share(n, rank(), size(), kBatch);
  const conversion::SerialBlas blas;
  const int parts_n = threads_for(mine, kBatch, threads);
  std::vector<conversion::Evaluation> parts(static_cast<std::size_t>(parts_n));
  split_over_threads(mine, kBatch, parts_n, [&](std::size_t k, Range s) {
    // An empty share still learns the class count (and checks the data fits).
    parts[k] = conversion::evaluate_range(weights, test, output_relu, s.first, s.count);
  });
  // correct, then the per-class prediction counts: integers, summed exactly.
  std::vector<std::uint64_t> counts(1 + parts[0].predicted.size(), 0);
  for (const auto& p : parts) {
    counts[0] += p.correct;
    for (std::size_t c = 0; c < p.predicted.size(); ++c) counts[1 + c] += p.predicted[c];
  }
#if SNNSIM_WITH_MPI
  if (distributed()) {
    barrier();
    check(MPI_Allreduce(MPI_IN_PLACE, counts.data(), as_int(counts.size(), "counts"), MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD),
          "ANN accuracy");
  }
#endif
  conversion::Evaluation eval;
  eval.samples = n;
  eval.correct = counts[0];
  eval.predicted.assign(counts.begin() + 1, counts.end());
  conversion::finish_evaluation(eval);
  return eval;
}

std::string from_root(const std::function<std::string()>& produce) {
  if (!distributed()) return produce();
#if SNNSIM_WITH_MPI
  std::string text;
  if (is_root()) text = produce();
  std::uint64_t length = text.size();
  MPI_Request request;
  check(MPI_Ibcast(&length, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD, &request), "broadcast");
  wait_sleeping(request, "broadcast");
  text.resize(length);
  check(MPI_Ibcast(text.data(), as_int(length, "broadcast"), MPI_CHAR, 0, MPI_COMM_WORLD, &request), "broadcast");
  wait_sleeping(request, "broadcast");
  return text;
#else
  return produce();
#endif
}

void abort_job([[maybe_unused]] int status) {
#if SNNSIM_WITH_MPI
  if (!distributed()) return;
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, status);
#endif
}

}  // namespace snn::tool::mpi
