#include "snn/engine/engine.h"

#include "snn/engine/delivery.h"
#include "snn/engine/dense_fire.h"

#include "snn/engine/calendar_queue.h"
#include "snn/engine/encoder.h"
#include "snn/engine/neuron.h"
#include "snn/error.h"

#include <tbb/blocked_range.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace snn::engine {

namespace {

// Latency mode gives a chunk at least this many neurons of a population:
// below it, the per-chunk overhead (a claim and a completion, ~0.1 us each)
// outweighs the work.
constexpr std::size_t kMinPartition = 256;

// Latency mode cuts a population into up to this many chunks per thread. A
// member that starts late (woken from sleep, preempted) leaves its chunk to
// whoever is free first either way; more chunks balance better but cost a
// pass over the due spikes and a claim each: 784-4096-4096-10 on a quiet
// machine ran 1.69-1.81x faster on 2 threads with 1, 1.56-1.57x with 2.
constexpr std::size_t kChunksPerThread = 1;

// Partition bounds are multiples of 16 int32 (one 64-byte line): no two
// threads write the same cache line of a population's arrays.
constexpr std::size_t kAlign = 16;

// How long a team member spins for the next job, or the caller for a chunk
// another member holds, before it sleeps. A sample's jobs follow each other
// within microseconds, but waking a sleeping thread takes tens of
// microseconds on this kind of (virtual) machine, about a population step:
// with a short spin every job paid one or two wake-ups and latency mode lost
// to one thread. Beyond the budget (between runs, or when the caller is
// preempted) the member sleeps.
constexpr std::chrono::microseconds kSpinBudget{200};

// A member that took no chunk of this many jobs in a row (it was descheduled,
// or starts too late to find work: a loaded machine) sleeps instead of
// spinning, since its spinning then takes CPU time the caller needs; the
// caller wakes sleepers at most once per kWakeInterval to try again, so a
// wake-up (a system call) costs the caller little when they keep failing.
constexpr unsigned kMaxMisses = 8;
constexpr std::chrono::microseconds kWakeInterval{1000};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until ready() or for kSpinBudget; returns ready().
template <typename Ready>
bool spin_until(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinBudget;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() > deadline) return ready();
  }
}

// Latency mode's persistent parallel region: `size - 1` threads started once
// per Engine::run, instead of a tbb::parallel_for (task spawn and join,
// microseconds) per population and step. The caller is a member too.
// run(chunks, job) calls job(k) once for every k < chunks and returns when
// all have returned. Members claim chunks one at a time from a shared
// counter, so the caller never waits for a member to wake up: it works
// through the chunks itself and waits only for chunks another member has
// already claimed. Which member runs a chunk does not matter: a chunk writes
// only its own partition (no locks), so results do not depend on it.
class Team {
 public:
  explicit Team(std::size_t size) : size_(size) {
    for (std::size_t q = 1; q < size_; ++q) threads_.emplace_back([this] { work(); });
  }
  ~Team() {
    stop_ = true;
    publish(0, true);  // wakes the members; they see stop_ and leave
    for (auto& t : threads_) t.join();
  }
  Team(const Team&) = delete;
  Team& operator=(const Team&) = delete;
  std::size_t size() const { return size_; }
  void run(std::size_t chunks, const std::function<void(std::size_t)>& job) {
    if (chunks > kMaxChunks) throw Error("latency mode: {} chunks in one job, at most {}", chunks, kMaxChunks);
    job_ = &job;
    target_ += static_cast<std::uint32_t>(chunks);
    publish(chunks, false);
    drain();
    const std::uint32_t target = target_;
    if (!spin_until([&] { return done_.load(std::memory_order_acquire) == target; })) {
      // A member holds a chunk and is not running (preempted): sleep on done_.
      done_waiting_.store(true);
      for (std::uint32_t d = done_.load(); d != target; d = done_.load()) done_.wait(d);
      done_waiting_.store(false, std::memory_order_relaxed);
    }
  }

 private:
  // next_ packs (generation << 32) | (chunks << 16) | next chunk, so that a
  // claim (one fetch_add) names its job and its chunk together: a member that
  // wakes late cannot take a chunk of a job that is over.
  static constexpr std::size_t kMaxChunks = 4096;
  static std::uint32_t generation(std::uint64_t w) { return static_cast<std::uint32_t>(w >> 32); }

  void publish(std::size_t chunks, bool wake_now) {
    const std::uint32_t g = generation(next_.load(std::memory_order_relaxed)) + 1;
    next_.store(std::uint64_t{g} << 32 | std::uint64_t{chunks} << 16, std::memory_order_release);
    // seq_cst on wake_ and sleepers_: either a member about to sleep sees the
    // new generation, or this sees the sleeper (and wakes it, at most once
    // per kWakeInterval: the caller does not need it to finish the job).
    wake_.fetch_add(1);
    if (sleepers_.load() == 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (wake_now || now - last_wake_ >= kWakeInterval) {
      last_wake_ = now;
      wake_.notify_all();
    }
  }

  // Claims and runs chunks of the current job until none is left; returns
  // the job's generation and how many chunks this member ran.
  std::pair<std::uint32_t, std::size_t> drain() {
    for (std::size_t ran = 0;; ++ran) {
      const std::uint64_t w = next_.fetch_add(1, std::memory_order_acq_rel);
      const std::size_t chunk = w & 0xffff, chunks = (w >> 16) & 0xffff;
      if (chunk >= chunks) return {generation(w), ran};
      (*job_)(chunk);
      done_.fetch_add(1);  // seq_cst: pairs with done_waiting_ as wake_ with sleepers_
      if (done_waiting_.load()) done_.notify_all();
    }
  }

  void work() {
    std::uint32_t seen = 0;  // the last generation this member drained
    unsigned misses = 0;     // jobs in a row it took no chunk of
    for (;;) {
      auto fresh = [&] {
        return stop_.load(std::memory_order_relaxed) || generation(next_.load(std::memory_order_acquire)) != seen;
      };
      bool slept = false;
      if (misses >= kMaxMisses || !spin_until(fresh)) {
        sleepers_.fetch_add(1);
        for (std::uint32_t k = wake_.load(); !fresh(); k = wake_.load()) wake_.wait(k);
        sleepers_.fetch_sub(1);
        misses = 0;
        slept = true;
      }
      if (stop_) return;
      const auto [g, ran] = drain();
      // Every job it missed while awake counts (not those it slept through).
      misses = ran > 0 ? 0 : misses + (slept ? 1 : g - seen);
      seen = g;
    }
  }

  std::size_t size_;
  std::vector<std::thread> threads_;
  const std::function<void(std::size_t)>* job_ = nullptr;
  std::uint32_t target_ = 0;  // chunks finished once the current job is done (wraps)
  std::chrono::steady_clock::time_point last_wake_{};
  alignas(64) std::atomic<std::uint64_t> next_{0};
  alignas(64) std::atomic<std::uint32_t> done_{0};
  alignas(64) std::atomic<std::uint32_t> wake_{0};
  std::atomic<std::uint32_t> sleepers_{0};
  std::atomic<bool> done_waiting_{false};
  std::atomic<bool> stop_{false};
};

// One worker's simulator: the state of one sample at a time.
class Simulator {
 public:
  // `team` (latency mode; null for one thread) runs the partitions of a
  // population step concurrently; a population has up to `partitions`.
  Simulator(const FixedNetwork& net, const RunOptions& options, std::size_t partitions, Team* team = nullptr)
      : net_(net), options_(options), layers_(net.connection_count()), team_(team) {
    const std::size_t pops = net.population_count();
    v_.resize(pops);
    current_.resize(pops);
    refractory_.resize(pops);
    bounds_.resize(pops);
    part_spikes_.resize(pops);
    splits_.resize(layers_);
    for (std::size_t p = 1; p < pops; ++p) {
      const std::size_t n = net.size(p);
      v_[p].assign(n, 0);
      current_[p].assign(n, 0);
      if (net.params(static_cast<PopulationId>(p)).refractory > 0) refractory_[p].assign(n, 0);
      // Contiguous ranges, multiples of kAlign, at least kMinPartition each.
      const std::size_t parts = std::clamp<std::size_t>(n / kMinPartition, 1, partitions);
      bounds_[p].push_back(0);
      for (std::size_t q = 1; q < parts; ++q)
        bounds_[p].push_back(static_cast<NeuronId>(std::min(n, (n * q / parts + kAlign - 1) / kAlign * kAlign)));
      bounds_[p].push_back(static_cast<NeuronId>(n));
      part_spikes_[p].resize(parts);
      for (auto& s : part_spikes_[p]) s.reserve(n / parts + 1);
      bad_.resize(std::max(bad_.size(), parts));
    }
    for (std::size_t c = 0; c < layers_; ++c) {
      const FixedConnection& fc = net.connection(c);
      if (fc.format != FanOutFormat::Sparse) continue;
      // For each source row and partition q, where q's targets start within
      // the row (rows are sorted by target): a thread walks only its part.
      const auto& b = bounds_[c + 1];
      const std::size_t parts = b.size() - 1;
      auto& split = splits_[c];
      split.resize(fc.sources * (parts + 1));
      for (std::size_t s = 0; s < fc.sources; ++s) {
        const NeuronId* first = fc.target_ids.data() + fc.offsets[s];
        const NeuronId* last = fc.target_ids.data() + fc.offsets[s + 1];
        for (std::size_t q = 0; q <= parts; ++q)
          split[s * (parts + 1) + q] = fc.offsets[s] + static_cast<std::uint64_t>(std::lower_bound(first, last, b[q]) - first);
      }
    }
    number_conv_targets();
    constant_.assign(net.size(1), 0);
    if (options.early_exit.enabled && options.early_exit.stop)
      block_ = 1;  // no work past an exit
    else if (options.step_block > 0)
      block_ = std::min(options.step_block, options.steps);
    else
      block_ = net.weight_bits() < 32 ? std::min(kNarrowStepBlock, options.steps) : 1;
    queue_.reset(layers_, net.max_delay(), block_);
    spikes_.reserve(net.input_size());
  }

  // One sample: per step the four phases input, deliver + update (per
  // population, fused per target partition so that each thread's slice of
  // the current stays in its cache), readout; in blocks of steps, each phase
  // and population over the whole block before the next
  // (RunOptions::step_block).
  void run(const SampleSet& set, std::size_t sample, RunResult& res) {
    if (run_blocks(set, sample, res, block_)) return;
    // A potential left the range. Step by step, the error names the neuron
    // and step a run in step order meets first, whatever the block length.
    // (The counts the failed try left in `res` stay wrong, which is fine only
    // because this run always throws.)
    run_blocks(set, sample, res, 1);
    throw Error("sample {}: a potential left the fixed-point range in a block of {} steps but not step by step",
                set.first_id + sample, block_);
  }

 private:
  // Simulates the sample in blocks of `block` steps. Returns false when
  // block > 1 and a potential left the range (the state is then spent);
  // with block == 1 that error is thrown.
  bool run_blocks(const SampleSet& set, std::size_t sample, RunResult& res, Step block) {
    SampleRecorder rec(res, options_, sample);
    reset(set.sample(sample), rec);
    defer_range_error_ = block > 1;
    range_failed_ = false;
    const std::size_t id = set.first_id + sample;  // keys the input's random numbers, names the sample in errors
    const std::size_t last = net_.population_count() - 1;
    Step t = 0;
    for (Step t0 = 0; t0 < options_.steps; t0 += block) {
      const Step t1 = std::min<Step>(options_.steps, t0 + block);
      for (t = t0; t < t1; ++t) {
        if (options_.check_cancel && t % kCancelCheckSteps == 0) options_.check_cancel();
        input(id, t, rec);
      }
      for (std::size_t p = 1; p <= last; ++p) {
        for (t = t0; t < t1; ++t) {
          deliver_and_update(id, p, t, rec);
          if (range_failed_) return false;
          if (p == last && rec.readout(t, readout_, v_.back().data())) {
            rec.finish(readout_, t + 1);
            return true;
          }
        }
      }
    }
    rec.finish(readout_, t);
    return true;
  }

  // Engine numbering (docs/design.md, "Connection kinds"): the target
  // population of a conv or of a non-overlapping pool, unless it is the
  // output, is numbered position-major (HWC) in here, so that add_conv adds
  // straight into its current and a conv reading it meets the spikes of one
  // position together. Everything seen outside (recorded spikes, errors) and
  // every consumer that expects model (CHW) ids gets them mapped back; a
  // non-overlapping pool reads its sources' engine ids through a per-source
  // target table instead.
  static bool table_pool(const FixedConnection& fc) {
    const WindowGeometry& g = fc.geometry;
    return fc.format == FanOutFormat::AvgPool && g.stride_h >= g.kernel_h && g.stride_w >= g.kernel_w;
  }

  void number_conv_targets() {
    const std::size_t pops = net_.population_count();
    model_id_.resize(pops);
    pool_target_.resize(layers_);
    bias_.resize(pops);
    for (std::size_t c = 0; c < layers_; ++c) {
      const FixedConnection& fc = net_.connection(c);
      const std::size_t p = c + 1;
      if ((fc.format == FanOutFormat::Conv || table_pool(fc)) && p + 1 < pops) {
        model_id_[p].resize(fc.targets);
        for (std::size_t e = 0; e < fc.targets; ++e) model_id_[p][e] = channel_major_id(fc.geometry.output, e);
      }
      const std::vector<Potential>& bias = net_.bias(static_cast<PopulationId>(p));
      bias_[p].resize(bias.size());
      for (std::size_t e = 0; e < bias.size(); ++e) bias_[p][e] = bias[model_of(p, e)];
    }
    conv_windows_.resize(layers_);
    for (std::size_t c = 0; c < layers_; ++c) {
      const FixedConnection& fc = net_.connection(c);
      if (fc.format == FanOutFormat::Conv && fc.geometry.stride_w == 1) conv_windows_[c] = conv_windows(fc);
      if (!table_pool(fc)) continue;
      auto& target = pool_target_[c];
      target.assign(fc.sources, kNoTarget);
      const bool pm = !model_id_[c + 1].empty();
      for (std::size_t e = 0; e < fc.sources; ++e)
        fc.for_each_target(model_of(c, e), [&](std::size_t j, FixedWeight) {
          target[e] = pm ? position_major_id(fc.geometry.output, j) : static_cast<NeuronId>(j);
        });
    }
  }

  // SynOps of delivering `due` over connection c (a table pool's ids are
  // engine ids: each reaches its one target, if it has one).
  OpCount synops(std::size_t c, std::span<const NeuronId> due) const {
    if (pool_target_[c].empty()) return net_.connection(c).synops(due);
    const NeuronId* target = pool_target_[c].data();
    OpCount n = 0;
    for (NeuronId s : due) n += target[s] != kNoTarget;
    return n;
  }

  // Model id of neuron e (engine id) of population p.
  NeuronId model_of(std::size_t p, std::size_t e) const {
    return model_id_[p].empty() ? static_cast<NeuronId>(e) : model_id_[p][e];
  }

  // `spikes` (engine ids of population p) as model ids, in the same
  // (engine) order; `spikes` itself when p is numbered as the model.
  std::span<const NeuronId> model_ids(std::size_t p, std::span<const NeuronId> spikes) {
    if (model_id_[p].empty()) return spikes;
    model_spikes_.resize(spikes.size());
    const NeuronId* map = model_id_[p].data();
    for (std::size_t i = 0; i < spikes.size(); ++i) model_spikes_[i] = map[spikes[i]];
    return model_spikes_;
  }

  void reset(const std::uint8_t* x, SampleRecorder& rec) {
    for (std::size_t p = 1; p < net_.population_count(); ++p) {
      std::fill(v_[p].begin(), v_[p].end(), 0);
      std::fill(refractory_[p].begin(), refractory_[p].end(), 0);
    }
    queue_.clear();
    readout_.reset(net_.output_size(), options_.early_exit, options_.tie_break_by_potential);
    prepare_constant(x, rec);
  }

  // Phase "input": population 0's random spikes at t go into the queue (the
  // inputs that spike at every step are in the constant current).
  void input(std::size_t sample, Step t, SampleRecorder& rec) {
    if (options_.input.encoding != Encoding::Poisson) return;
    input_spikes_.clear();
    random_input_spikes(input_, options_.input.seed, static_cast<SampleId>(sample), t, input_spikes_);
    if (options_.record_spikes) {
      merged_.clear();
      std::merge(input_.always.begin(), input_.always.end(), input_spikes_.begin(), input_spikes_.end(),
                 std::back_inserter(merged_));
      rec.spikes(t, 0, merged_);
    } else {
      rec.count_spikes(0, input_.always.size() + input_spikes_.size());
    }
    const Step due = t + net_.connection(0).delay;
    if (due < options_.steps) queue_.push(due, 0, input_spikes_);
  }

  // A potential of population p left the range at step t: thrown, or in a
  // block of steps noted for run() (see there).
  void range_error(std::size_t sample, std::size_t p, NeuronId neuron, Step t) {
    if (!defer_range_error_) throw_potential_out_of_range(net_, sample, p, neuron, t);
    range_failed_ = true;
  }

  // Phases "deliver" and "update" of population p at step t: the current
  // starts at the constant input (population 1) plus the biases, the events
  // due for connection p - 1 add their fan-outs, then the neurons integrate and
  // fire; p's spikes go into the queue for connection p (or to the readout).
  void deliver_and_update(std::size_t sample, std::size_t p, Step t, SampleRecorder& rec) {
    const std::size_t c = p - 1;
    const FixedConnection& fc = net_.connection(c);
    const std::span<const NeuronId> due = queue_.due(t, c);
    const bool constant = c == 0 && has_constant_ && t >= fc.delay;
    const OpCount delivered = synops(c, due);
    rec.synops(c, t, delivered + (constant ? constant_synops_ : 0));
    rec.work(c, delivered + (constant ? fc.targets : 0));
    rec.bias_ops(net_.report(c).biases);

    const std::size_t parts = bounds_[p].size() - 1;
    std::span<const NeuronId> spikes;  // of p at t, ascending
    if (parts == 1 || delivered + fc.targets < options_.min_parallel_work) {
      // Too little work to be worth sharing: all of p as one range here (the
      // same results as any split, without a pass over `due` per partition).
      SpikeList& out = part_spikes_[p][0];
      const NeuronId bad = range_step(p, whole(p), due, constant, out);
      queue_.pop(t, c);
      if (bad != kAllInRange) return range_error(sample, p, model_of(p, bad), t);
      spikes = {out.data(), out.size()};
    } else {
      team_->run(parts, [&](std::size_t q) { bad_[q] = range_step(p, partition(p, q), due, constant, part_spikes_[p][q]); });
      queue_.pop(t, c);
      NeuronId bad = kAllInRange;  // the lowest model id reported
      for (std::size_t q = 0; q < parts; ++q)
        if (bad_[q] != kAllInRange) bad = std::min(bad, model_of(p, bad_[q]));
      if (bad != kAllInRange) return range_error(sample, p, bad, t);
      spikes_.clear();  // partitions are ascending ranges
      for (const auto& s : part_spikes_[p]) spikes_.insert(spikes_.end(), s.begin(), s.end());
      spikes = spikes_;
    }
    // Model ids where someone needs them (a table pool reads engine ids).
    const bool last = p + 1 == net_.population_count();
    const bool engine_ids_out = !last && !pool_target_[p].empty();
    const std::span<const NeuronId> model = options_.record_spikes || !engine_ids_out ? model_ids(p, spikes) : spikes;
    if (options_.record_spikes && !model_id_[p].empty()) {
      recorded_.assign(model.begin(), model.end());  // recorded ascending, as the model numbers them
      std::sort(recorded_.begin(), recorded_.end());
      rec.spikes(t, static_cast<PopulationId>(p), recorded_);
    } else {
      rec.spikes(t, static_cast<PopulationId>(p), model);
    }
    if (!last) {
      const Step due_at = t + net_.connection(p).delay;
      if (due_at < options_.steps) queue_.push(due_at, p, engine_ids_out ? spikes : model);
    } else {
      readout_.add(spikes);
    }
  }

  // The current connection 0 delivers at every step whatever the random
  // inputs do: Poisson, the fan-outs of the inputs with p >= 1; analog, x * W.
  void prepare_constant(const std::uint8_t* x, SampleRecorder& rec) {
    const FixedConnection& fc = net_.connection(0);
    const std::size_t n_in = net_.input_size();
    std::fill(constant_.begin(), constant_.end(), 0);
    constant_synops_ = 0;
    if (options_.input.encoding == Encoding::Poisson) {
      prepare_input(x, n_in, options_.input.rate_per_step(), input_);
      constant_synops_ = fc.synops(input_.always);
      deliver(constant_.data(), fc, input_.always, whole(1));
      has_constant_ = !input_.always.empty();
    } else {
      // Exact: byte * w_q summed in 64 bits, then one rounding per target.
      analog_.assign(fc.targets, 0);
      for (std::size_t i = 0; i < n_in; ++i) {
        const std::int64_t b = x[i];
        if (b == 0) continue;
        constant_synops_ += fc.fan_out_of(i);
        fc.for_each_target(i, [&](std::size_t j, FixedWeight w) { analog_[j] += b * w; });
      }
      for (std::size_t e = 0; e < fc.targets; ++e) constant_[e] = static_cast<Potential>(round_div_255(analog_[model_of(1, e)]));
      has_constant_ = constant_synops_ > 0;
    }
    rec.work(0, constant_synops_);
  }

  // All of population p as one range (whole rows of a sparse table).
  TargetRange whole(std::size_t p) {
    const std::size_t c = p - 1;
    TargetRange all{0, static_cast<NeuronId>(net_.connection(c).targets)};
    all.pool_target = pool_target_[c].empty() ? nullptr : pool_target_[c].data();
    all.conv_windows = conv_windows_[c].empty() ? nullptr : conv_windows_[c].data();
    return all;
  }

  // Latency mode's partition q of population p.
  TargetRange partition(std::size_t p, std::size_t q) {
    const std::size_t c = p - 1;
    return TargetRange{bounds_[p][q],
                       bounds_[p][q + 1],
                       splits_[c].empty() ? nullptr : splits_[c].data(),
                       bounds_[p].size() - 1,
                       q,
                       pool_target_[c].empty() ? nullptr : pool_target_[c].data(),
                       conv_windows_[c].empty() ? nullptr : conv_windows_[c].data()};
  }

  // Targets `range` of population p at step t: deliver into their slice of
  // the current, then update them; their spikes go to `spikes`. Returns the
  // first neuron whose potential left its range (or kAllInRange). Touches only
  // the range's slice of p's arrays, so ranges run concurrently without
  // synchronisation.
  NeuronId range_step(std::size_t p, const TargetRange& range, std::span<const NeuronId> due, bool constant, SpikeList& spikes) {
    const FixedConnection& fc = net_.connection(p - 1);
    const NeuronId lo = range.lo, hi = range.hi;
    Potential* cur = current_[p].data();
    const StateVector<Potential>& bias = bias_[p];
    const FixedNeuronParams& params = net_.params(static_cast<PopulationId>(p));
    spikes.clear();
    if (fc.format == FanOutFormat::Dense && !params.leaks() && params.refractory == 0 && (bias.empty() || !constant)) {
      // Rows straight into the potentials, the last pass fused with the update;
      // the step's one constant current (input or biases) added in the first pass.
      const Potential* from = constant ? constant_.data() : bias.empty() ? nullptr : bias.data();
      return fire_dense(v_[p].data(), from, fc, params, due, lo, hi, spikes);
    }
    if (fc.format == FanOutFormat::Dense && bias.empty()) {
      // The first pass of row adds initialises the current (no fill or copy).
      set_dense(cur, constant ? constant_.data() : nullptr, fc, due, lo, hi);
    } else {
      if (constant)
        std::copy(constant_.begin() + lo, constant_.begin() + hi, cur + lo);
      else
        std::fill(cur + lo, cur + hi, 0);
      if (!bias.empty())
        for (NeuronId j = lo; j < hi; ++j) cur[j] += bias[j];
      deliver(cur, fc, due, range);
    }
    return update_neurons(params, v_[p].data(), refractory_[p].empty() ? nullptr : refractory_[p].data(), cur, lo, hi, spikes);
  }

  const FixedNetwork& net_;
  const RunOptions& options_;
  std::size_t layers_;
  Team* team_ = nullptr;
  std::vector<StateVector<Potential>> v_, current_;
  std::vector<std::vector<NeuronId>> model_id_;        // [pop]: engine id -> model id; empty: the same (number_conv_targets)
  std::vector<std::vector<NeuronId>> pool_target_;     // [connection]: non-overlapping pool's target per engine source id
  std::vector<StateVector<Potential>> bias_;           // [pop]: biases by engine id
  std::vector<std::vector<ConvWindow>> conv_windows_;  // [connection]: stride-1 conv's windows per input position
  std::vector<NeuronId> model_spikes_, recorded_;
  std::vector<std::vector<Step>> refractory_;
  std::vector<std::vector<NeuronId>> bounds_;
  std::vector<std::vector<std::uint64_t>> splits_;
  std::vector<std::vector<SpikeList>> part_spikes_;
  std::vector<NeuronId> bad_;
  std::vector<NeuronId> spikes_, input_spikes_, merged_;
  StateVector<Potential> constant_;
  std::vector<std::int64_t> analog_;
  OpCount constant_synops_ = 0;
  bool has_constant_ = false;
  Step block_ = 1;  // steps per block (RunOptions::step_block)
  bool defer_range_error_ = false, range_failed_ = false;
  PreparedInput input_;
  CalendarQueue queue_;
  Readout readout_;
};

// Serialised, monotone progress reports from worker threads.
class SampleProgress {
 public:
  SampleProgress(const ProgressCallback& callback, std::size_t total) : callback_(callback), total_(total) {}
  void sample_done() {
    done_.fetch_add(1, std::memory_order_relaxed);
    if (!callback_) return;
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock) return;  // another thread is reporting; the next call catches up
    const std::size_t d = done_.load(std::memory_order_relaxed);
    if (d > reported_ && d < total_) {
      reported_ = d;
      callback_(d, total_);
    }
  }
  void finish() {
    if (callback_) callback_(total_, total_);
  }

 private:
  const ProgressCallback& callback_;
  std::size_t total_;
  std::atomic<std::size_t> done_{0};
  std::mutex mutex_;
  std::size_t reported_ = 0;
};

}  // namespace

Engine::Engine(const Network& network, int fixed_point_bits, int weight_bits)
    : network_(std::make_shared<const FixedNetwork>(network, fixed_point_bits, weight_bits)) {}

Engine::Engine(std::shared_ptr<const FixedNetwork> network) : network_(std::move(network)) {
  if (!network_) throw Error("engine: no network given");
}

RunResult Engine::run(const SampleSet& samples, const RunOptions& options) const {
  validate(options);
  const FixedNetwork& net = *network_;
  validate(samples, net);

  RunResult res = make_result(net, samples.count, options);
  const int threads = effective_threads(options);
  res.threads = threads;
  SampleProgress progress(options.progress, samples.count);
  const auto start = std::chrono::steady_clock::now();
  tbb::task_arena arena(threads);
  if (options.parallelism == Parallelism::Samples) {
    // One simulator per arena slot, created by the thread that first uses it.
    std::vector<std::unique_ptr<Simulator>> sims(static_cast<std::size_t>(arena.max_concurrency()));
    arena.execute([&] {
      tbb::parallel_for(tbb::blocked_range<std::size_t>(0, samples.count, 1), [&](const tbb::blocked_range<std::size_t>& range) {
        const auto slot = static_cast<std::size_t>(tbb::this_task_arena::current_thread_index());
        auto& sim = sims.at(slot);
        if (!sim) sim = std::make_unique<Simulator>(net, options, 1);
        for (std::size_t i = range.begin(); i != range.end(); ++i) {
          sim->run(samples, i, res);
          progress.sample_done();
        }
      });
    });
  } else {
    // One team for the whole run: its threads persist across samples, steps
    // and populations.
    std::unique_ptr<Team> team;
    if (threads > 1) team = std::make_unique<Team>(static_cast<std::size_t>(threads));
    Simulator sim(net, options, team ? team->size() * kChunksPerThread : 1, team.get());
    arena.execute([&] {
      for (std::size_t i = 0; i < samples.count; ++i) {
        sim.run(samples, i, res);
        progress.sample_done();
      }
    });
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.finish();
  return res;
}

}  // namespace snn::engine
