#include "snn/engine/dense_simulator.h"

#include "snn/engine/encoder.h"
#include "snn/engine/neuron.h"
#include "snn/error.h"

#include <cblas.h>
#include <tbb/info.h>

#include <algorithm>
#include <chrono>
#include <limits>

namespace snn::engine {

DenseSimulator::DenseSimulator(const Network& network, int fixed_point_bits, int weight_bits)
    : DenseSimulator(std::make_shared<const FixedNetwork>(network, fixed_point_bits, weight_bits)) {}

DenseSimulator::DenseSimulator(std::shared_ptr<const FixedNetwork> network) : network_(std::move(network)) {
  if (!network_) throw Error("dense simulator: no network given");
  for (std::size_t c = 0; c < network_->connection_count(); ++c) {
    const FixedConnection& fc = network_->connection(c);
    if (fc.format == FanOutFormat::Conv) {
      // The kernel [out_channels, in_channels * kh * kw]; |w_q| < 2^24: exact floats.
      weights_.emplace_back(fc.weights.begin(), fc.weights.end());
    } else if (fc.format == FanOutFormat::AvgPool) {
      weights_.emplace_back();
    } else {
      weights_.push_back(network_->dense_float_weights(c));
    }
  }
}

namespace {

// C[m x n] = A[m x k] * B[k x n], row-major floats.
void gemm(std::size_t m, std::size_t n, std::size_t k, const float* a, const float* b, float* c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0f, a,
              static_cast<int>(k), b, static_cast<int>(n), 0.0f, c, static_cast<int>(n));
}

// im2col of nb samples' CHW spike maps `in` (nb x input.size()), transposed
// (Caffe's layout): row (c * kh + ky) * kw + kx, column b * OHW + oy * OW +
// ox, zeros on the padding. Then the GEMM is kernel [OC x K] times this [K x
// nb * OHW]: a wide N instead of the thin N = OC of the row-major im2col.
void im2col(const WindowGeometry& g, std::size_t nb, const float* in, std::vector<float>& col) {
  const std::size_t oh = g.output.height, ow = g.output.width, kh = g.kernel_h, kw = g.kernel_w;
  const std::size_t H = g.input.height, W = g.input.width, n = nb * oh * ow;
  col.resize(g.input.channels * kh * kw * n);
  for (std::size_t c = 0; c < g.input.channels; ++c)
    for (std::size_t ky = 0; ky < kh; ++ky)
      for (std::size_t kx = 0; kx < kw; ++kx) {
        float* out = col.data() + ((c * kh + ky) * kw + kx) * n;
        for (std::size_t b = 0; b < nb; ++b) {
          const float* src = in + b * g.input.size() + c * H * W;
          for (std::size_t oy = 0; oy < oh; ++oy) {
            const std::size_t yp = oy * g.stride_h + ky;
            const bool row_in = yp >= g.pad_h && yp < g.pad_h + H;
            const float* line = row_in ? src + (yp - g.pad_h) * W : nullptr;
            for (std::size_t ox = 0; ox < ow; ++ox) {
              const std::size_t xp = ox * g.stride_w + kx;
              *out++ = row_in && xp >= g.pad_w && xp < g.pad_w + W ? line[xp - g.pad_w] : 0.0f;
            }
          }
        }
      }
}

// The state of one batch: everything [sample in batch][...], flat.
struct Batch {
  std::size_t size = 0;
  std::vector<StateVector<Potential>> v;      // [pop]: size x n_p
  std::vector<std::vector<Step>> refractory;  // [pop]: size x n_p (empty without refractory period)
  // [pop][ring slot]: size x n_p 0/1 spike matrix of the population at the
  // slot's step, the GEMM's left operand for the connection leaving it.
  std::vector<std::vector<std::vector<float>>> spike_matrix;
  // [pop][ring slot][sample]: the same spikes as id lists (for SynOps).
  std::vector<std::vector<std::vector<std::vector<NeuronId>>>> spike_ids;
  std::vector<PreparedInput> inputs;
  std::vector<Readout> readouts;
  std::vector<bool> active;  // false once a sample stopped early
};

}  // namespace

// Connection c's currents at one step for the nb samples of the batch, from
// the source spike matrix `in` (nb x sources), into `current` (nb x targets).
void DenseSimulator::currents(std::size_t c, std::size_t nb, const float* in, std::vector<float>& current,
                              std::vector<float>& col, std::vector<float>& out) const {
  const FixedConnection& fc = network_->connection(c);
  const std::size_t n_tgt = fc.targets;
  switch (fc.format) {
    case FanOutFormat::Dense:
    case FanOutFormat::Sparse: gemm(nb, n_tgt, fc.sources, in, weights_[c].data(), current.data()); return;
    case FanOutFormat::Conv: {
      const WindowGeometry& g = fc.geometry;
      const std::size_t ohw = g.output.height * g.output.width, oc = g.output.channels;
      im2col(g, nb, in, col);
      out.resize(oc * nb * ohw);
      gemm(oc, nb * ohw, col.size() / (nb * ohw), weights_[c].data(), col.data(), out.data());
      // [channel][b][pixel] -> [b] CHW.
      for (std::size_t o = 0; o < oc; ++o)
        for (std::size_t b = 0; b < nb; ++b)
          std::copy_n(out.data() + (o * nb + b) * ohw, ohw, current.data() + b * n_tgt + o * ohw);
      return;
    }
    case FanOutFormat::AvgPool: {
      const WindowGeometry& g = fc.geometry;
      const auto w = static_cast<float>(fc.weights[0]);
      const std::size_t H = g.input.height, W = g.input.width;
      for (std::size_t b = 0; b < nb; ++b)
        for (std::size_t ch = 0; ch < g.output.channels; ++ch)
          for (std::size_t oy = 0; oy < g.output.height; ++oy)
            for (std::size_t ox = 0; ox < g.output.width; ++ox) {
              float n = 0.0f;  // spikes in the window: a small exact integer
              for (std::size_t ky = 0; ky < g.kernel_h; ++ky)
                for (std::size_t kx = 0; kx < g.kernel_w; ++kx)
                  n += in[b * fc.sources + (ch * H + oy * g.stride_h + ky) * W + ox * g.stride_w + kx];
              current[b * n_tgt + (ch * g.output.height + oy) * g.output.width + ox] = n * w;
            }
      return;
    }
  }
}

RunResult DenseSimulator::run(const SampleSet& samples, const RunOptions& options, const DenseOptions& dense) const {
  validate(options);
  if (dense.batch < 1) throw Error("dense baseline: batch must be >= 1, got {}", dense.batch);
  const FixedNetwork& net = *network_;
  validate(samples, net);

  RunResult res = make_result(net, samples.count, options);
  const int threads = effective_threads(options);
  res.threads = threads;
  // Only when it changes: in OpenBLAS 0.3.21 setting a count restarts the
  // worker pool if it was stopped (tools/main.cpp stops it), even for 1, and
  // a restarted worker spins for 0.1 s on a core the run may want.
  if (openblas_get_num_threads() != threads) openblas_set_num_threads(threads);

  const std::size_t pops = net.population_count();
  const std::size_t L = net.connection_count();
  const Step steps = options.steps;
  const bool poisson = options.input.encoding == Encoding::Poisson;
  const std::size_t n_in = net.input_size();
  const std::size_t n1 = net.size(1);

  // Ring length per source population: its spikes are read `delay` steps later.
  std::vector<std::size_t> ring(pops, 1);
  for (std::size_t c = 0; c < L; ++c) ring[c] = static_cast<std::size_t>(net.connection(c).delay) + 1;

  const std::size_t B = std::min(dense.batch, std::max<std::size_t>(samples.count, 1));
  Batch batch;
  batch.v.resize(pops);
  batch.refractory.resize(pops);
  batch.spike_matrix.resize(pops);
  batch.spike_ids.resize(pops);
  for (std::size_t p = 0; p < pops; ++p) {
    if (p < L) {
      batch.spike_matrix[p].assign(ring[p], std::vector<float>(B * net.size(p), 0.0f));
      batch.spike_ids[p].assign(ring[p], std::vector<std::vector<NeuronId>>(B));
    }
    if (p == 0) continue;
    batch.v[p].assign(B * net.size(p), 0);
    if (net.params(static_cast<PopulationId>(p)).refractory > 0) batch.refractory[p].assign(B * net.size(p), 0);
  }
  batch.inputs.resize(B);
  batch.readouts.resize(B);
  std::vector<float> current;  // B x n_p, the GEMM's result
  StateVector<Potential> current_int;
  SpikeList spikes;
  std::vector<NeuronId> chunk_ids, random_spikes;
  std::vector<Potential> analog;          // B x n1 constant current (analog input)
  std::vector<OpCount> analog_ops(B, 0);  // per sample: SynOps of the analog input per step

  // Precompute variant: connection 0's currents for steps [chunk_first, chunk_first + chunk_steps).
  std::size_t chunk_steps = 0;
  Step chunk_first = 0, chunk_end = 0;
  std::vector<float> chunk_in, chunk_out;
  const bool first_is_table = net.connection(0).format == FanOutFormat::Dense || net.connection(0).format == FanOutFormat::Sparse;
  std::vector<float> col, col_out;  // im2col scratch
  if (dense.precompute_first_layer && poisson && first_is_table) {
    const std::size_t per_step = B * (n_in + n1) * sizeof(float);
    chunk_steps = std::clamp<std::size_t>(dense.precompute_max_bytes / per_step, 1, static_cast<std::size_t>(steps));
    chunk_in.resize(chunk_steps * B * n_in);
    chunk_out.resize(chunk_steps * B * n1);
  }

  // The input population's spikes of sample b (batch row) at step t, as ids
  // and (unless null) as the 0/1 row `row` of n_in floats.
  auto input_row = [&](std::size_t b, SampleId sid, Step t, std::vector<NeuronId>& ids, float* row) {
    random_spikes.clear();
    random_input_spikes(batch.inputs[b], options.input.seed, sid, t, random_spikes);
    ids.clear();
    std::merge(batch.inputs[b].always.begin(), batch.inputs[b].always.end(), random_spikes.begin(), random_spikes.end(),
               std::back_inserter(ids));
    if (!row) return;
    std::fill(row, row + n_in, 0.0f);
    for (NeuronId i : ids) row[i] = 1.0f;
  };

  const auto start = std::chrono::steady_clock::now();
  for (std::size_t first = 0; first < samples.count; first += B) {
    const std::size_t nb = std::min(B, samples.count - first);
    for (std::size_t p = 1; p < pops; ++p) {
      std::fill(batch.v[p].begin(), batch.v[p].end(), 0);
      std::fill(batch.refractory[p].begin(), batch.refractory[p].end(), 0);
    }
    for (std::size_t p = 0; p < L; ++p)
      for (auto& m : batch.spike_matrix[p]) std::fill(m.begin(), m.end(), 0.0f);
    batch.active.assign(nb, true);
    for (std::size_t b = 0; b < nb; ++b) {
      batch.readouts[b].reset(net.output_size(), options.early_exit, options.tie_break_by_potential);
      if (poisson) prepare_input(samples.sample(first + b), n_in, options.input.rate_per_step(), batch.inputs[b]);
    }
    if (!poisson && !first_is_table) {
      // x * W once per batch, exactly in 64-bit integers (conv or pool: the
      // generated fan-out, no weight matrix to multiply with).
      analog.assign(nb * n1, 0);
      const FixedConnection& fc0 = net.connection(0);
      std::vector<std::int64_t> acc(n1);
      for (std::size_t b = 0; b < nb; ++b) {
        std::fill(acc.begin(), acc.end(), 0);
        OpCount nonzero = 0;
        for (std::size_t i = 0; i < n_in; ++i) {
          const std::int64_t x = samples.sample(first + b)[i];
          if (x == 0) continue;
          nonzero += fc0.fan_out_of(i);
          fc0.for_each_target(i, [&](std::size_t j, FixedWeight w) { acc[j] += x * w; });
        }
        for (std::size_t j = 0; j < n1; ++j) analog[b * n1 + j] = static_cast<Potential>(round_div_255(acc[j]));
        res.work[(first + b) * L] += fc0.dense_macs();
        analog_ops[b] = nonzero;
      }
    } else if (!poisson) {
      // x * W once per batch, exactly: bytes times integer weights in double.
      std::vector<double> xb(nb * n_in), w0(weights_[0].begin(), weights_[0].end()), out(nb * n1);
      for (std::size_t b = 0; b < nb; ++b)
        for (std::size_t i = 0; i < n_in; ++i) xb[b * n_in + i] = samples.sample(first + b)[i];
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(nb), static_cast<int>(n1), static_cast<int>(n_in),
                  1.0, xb.data(), static_cast<int>(n_in), w0.data(), static_cast<int>(n1), 0.0, out.data(), static_cast<int>(n1));
      analog.resize(nb * n1);
      for (std::size_t k = 0; k < nb * n1; ++k)
        analog[k] = static_cast<Potential>(round_div_255(static_cast<std::int64_t>(out[k])));
      for (std::size_t b = 0; b < nb; ++b) {
        OpCount nonzero = 0;
        for (std::size_t i = 0; i < n_in; ++i) nonzero += samples.sample(first + b)[i] != 0 ? net.connection(0).fan_out_of(i) : 0;
        res.work[(first + b) * L] += static_cast<OpCount>(n_in) * n1;  // the dgemm's MACs
        analog_ops[b] = nonzero;
      }
    }
    chunk_first = chunk_end = 0;

    // The phases of a step, named as the event engine's (engine.cpp): input,
    // deliver (currents of connection p - 1 for the whole batch), update
    // (the engine's neuron code, sample by sample), readout (SampleRecorder).
    auto input = [&](Step t) {
      if (!poisson) return;
      const std::size_t slot = static_cast<std::size_t>(t) % ring[0];
      float* m = batch.spike_matrix[0][slot].data();
      for (std::size_t b = 0; b < nb; ++b) {
        const auto sid = static_cast<SampleId>(samples.first_id + first + b);
        auto& ids = batch.spike_ids[0][slot][b];
        // The precomputed chunk holds the matrix; only the ids are needed here.
        input_row(b, sid, t, ids, chunk_steps > 0 ? nullptr : m + b * n_in);
        if (!batch.active[b]) continue;
        SampleRecorder(res, options, first + b).spikes(t, 0, ids);
      }
    };
    auto deliver = [&](std::size_t p, Step t) {
      const std::size_t c = p - 1;
      const FixedConnection& fc = net.connection(c);
      const std::size_t n_src = net.size(c), n_tgt = net.size(p);
      const Step src_step = t - fc.delay;
      current.assign(nb * n_tgt, 0.0f);
      if (src_step < 0) return;
      const std::size_t slot = static_cast<std::size_t>(src_step) % ring[c];
      if (c == 0 && !poisson) {
        for (std::size_t k = 0; k < nb * n_tgt; ++k) current[k] = static_cast<float>(analog[k]);
      } else if (c == 0 && chunk_steps > 0) {
        if (src_step >= chunk_end) {
          // Input rows of the next chunk_steps steps. Their ids are drawn
          // again at those steps (for SynOps and the readout): the draw is
          // a pure function of (seed, sample, step, input), so they agree.
          chunk_first = src_step;
          chunk_end = std::min<Step>(steps, chunk_first + static_cast<Step>(chunk_steps));
          const auto rows = static_cast<std::size_t>(chunk_end - chunk_first) * nb;
          for (Step s = chunk_first; s < chunk_end; ++s)
            for (std::size_t b = 0; b < nb; ++b)
              input_row(b, static_cast<SampleId>(samples.first_id + first + b), s, chunk_ids,
                        chunk_in.data() + (static_cast<std::size_t>(s - chunk_first) * nb + b) * n_in);
          gemm(rows, n_tgt, n_src, chunk_in.data(), weights_[0].data(), chunk_out.data());
        }
        const float* src = chunk_out.data() + static_cast<std::size_t>(src_step - chunk_first) * nb * n_tgt;
        std::copy(src, src + nb * n_tgt, current.begin());
      } else {
        currents(c, nb, batch.spike_matrix[c][slot].data(), current, col, col_out);
      }
      for (std::size_t b = 0; b < nb; ++b) {
        if (!batch.active[b]) continue;
        SampleRecorder rec(res, options, first + b);
        rec.synops(c, t, c == 0 && !poisson ? analog_ops[b] : fc.synops(batch.spike_ids[c][slot][b]));
        if (c != 0 || poisson) rec.work(c, fc.dense_macs());
      }
    };
    auto update = [&](std::size_t p, Step t) {
      const std::size_t c = p - 1;
      const std::size_t n_tgt = net.size(p);
      const FixedNeuronParams& params = net.params(static_cast<PopulationId>(p));
      const std::vector<Potential>& bias = net.bias(static_cast<PopulationId>(p));
      current_int.resize(n_tgt);
      const std::size_t out_slot = p < L ? static_cast<std::size_t>(t) % ring[p] : 0;
      for (std::size_t b = 0; b < nb; ++b) {
        // |current| < 2^24: the float is an exact integer.
        for (std::size_t j = 0; j < n_tgt; ++j) current_int[j] = static_cast<Potential>(current[b * n_tgt + j]);
        // Biases: integers added after the GEMM, so the sum stays exact.
        for (std::size_t j = 0; j < bias.size(); ++j) current_int[j] += bias[j];
        if (batch.active[b]) res.bias_ops[first + b] += net.report(c).biases;
        spikes.clear();
        Potential* v = batch.v[p].data() + b * n_tgt;
        Step* ref = batch.refractory[p].empty() ? nullptr : batch.refractory[p].data() + b * n_tgt;
        const NeuronId bad = update_neurons(params, v, ref, current_int.data(), 0, static_cast<NeuronId>(n_tgt), spikes);
        if (bad != kAllInRange && batch.active[b]) throw_potential_out_of_range(net, samples.first_id + first + b, p, bad, t);
        if (!batch.active[b]) spikes.clear();  // a stopped sample sends nothing on
        if (p < L) {
          float* row = batch.spike_matrix[p][out_slot].data() + b * n_tgt;
          std::fill(row, row + n_tgt, 0.0f);
          for (NeuronId j : spikes) row[j] = 1.0f;
          batch.spike_ids[p][out_slot][b].assign(spikes.begin(), spikes.end());
        } else if (batch.active[b]) {
          batch.readouts[b].add({spikes.data(), spikes.size()});
        }
        if (!batch.active[b]) continue;
        SampleRecorder(res, options, first + b).spikes(t, static_cast<PopulationId>(p), {spikes.data(), spikes.size()});
      }
    };
    auto readout = [&](Step t) {
      for (std::size_t b = 0; b < nb; ++b) {
        if (!batch.active[b]) continue;
        res.steps_simulated[first + b] = t + 1;
        SampleRecorder rec(res, options, first + b);
        if (rec.readout(t, batch.readouts[b], batch.v[pops - 1].data() + b * net.output_size())) batch.active[b] = false;
      }
    };

    for (Step t = 0; t < steps; ++t) {
      if (options.check_cancel && t % kCancelCheckSteps == 0) options.check_cancel();
      input(t);
      for (std::size_t p = 1; p < pops; ++p) {
        deliver(p, t);
        update(p, t);
      }
      readout(t);
    }
    for (std::size_t b = 0; b < nb; ++b)
      SampleRecorder(res, options, first + b).finish(batch.readouts[b], res.steps_simulated[first + b]);
    if (options.progress) options.progress(std::min(first + nb, samples.count), samples.count);
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return res;
}

}  // namespace snn::engine
