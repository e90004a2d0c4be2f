// MPI for snnsim (mpi.h). Every MPI call is made from the main thread, and
// the waits sleep between polls (MPI_Test) instead of spinning in a blocking
// call: a rank waiting for rank 0's training, or for a slower rank, must not
// take a core from them on a machine with more threads than cores.
#include "snn/tool/mpi.h"

#include "snn/conversion/normalise.h"
#include "snn/error.h"
#include "snn/tool/interrupt.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>

#if SNNSIM_WITH_MPI
#include <mpi.h>
#endif

namespace snn::tool::mpi {

namespace {
int g_rank = 0;
int g_size = 1;
#if SNNSIM_WITH_MPI
bool g_active = false;  // MPI_Init was called, so MPI_Finalize must be
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
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    int done = 0;
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    throw_if_interrupted();
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(5000));
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
  if (g_active) MPI_Finalize();
  g_active = false;
#endif
}

int rank() { return g_rank; }
int size() { return g_size; }

std::string where() { return distributed() ? fmt::format(" (rank {} of {})", g_rank, g_size) : std::string(); }

Range share(std::size_t total, int r, int ranks, std::size_t unit) {
  if (ranks < 1 || r < 0 || r >= ranks || unit == 0) throw Error("share: rank {} of {} ranks, unit {}", r, ranks, unit);
  const auto n = static_cast<std::size_t>(ranks);
  const auto i = static_cast<std::size_t>(r);
  const std::size_t units = (total + unit - 1) / unit;
  const std::size_t base = units / n, extra = units % n;
  const std::size_t first_unit = i * base + std::min(i, extra);
  const std::size_t end_unit = first_unit + base + (i < extra ? 1 : 0);
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

void normalise(WeightSet& weights, const conversion::NormaliseOptions& options, const Dataset& train) {
  const bool pass = options.method == Normalisation::Data || options.method == Normalisation::Robust;
  if (!distributed() || !pass || weights.normalisation.method != Normalisation::None) {
    conversion::normalise(weights, options, &train);
    return;
  }
#if SNNSIM_WITH_MPI
  const std::size_t n = options.samples == 0 ? train.count : std::min(options.samples, train.count);
  // Whole batches per rank: each batch is then computed exactly as the
  // one-process pass computes it.
  const Range mine = share(n, rank(), size(), conversion::kActivationBatch);
  std::vector<double> scales;
  if (options.method == Normalisation::Data) {
    scales = conversion::max_activations_in(weights, train, mine.first, mine.count);
    barrier();
    check(MPI_Allreduce(MPI_IN_PLACE, scales.data(), as_int(scales.size(), "maxima"), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD),
          "activation maxima");
  } else {
    if (!(options.percentile > 0.0 && options.percentile <= 100.0))
      throw Error("robust normalisation: percentile {} is not in (0, 100]", options.percentile);
    auto hist = conversion::activation_histograms_in(weights, train, mine.first, mine.count);
    barrier();
    for (auto& h : hist) {
      std::vector<std::uint64_t> bins = h.bins();
      float max = h.max();
      check(MPI_Allreduce(MPI_IN_PLACE, bins.data(), as_int(bins.size(), "histogram"), MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD),
            "activation histogram");
      check(MPI_Allreduce(MPI_IN_PLACE, &max, 1, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD), "activation maximum");
      h = conversion::PercentileHistogram::from_bins(std::move(bins), max);
    }
    scales = conversion::percentiles_of(hist, options.percentile);
  }
  conversion::normalise_with(weights, options, n, scales);
#endif
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
