// Convolution and average-pooling connections: fan-out generated from the
// kernel (never a table), built from layer specs, simulated by the event
// engine and the dense im2col baseline with identical spikes.
#include "engine_test_util.h"
#include "snn/engine/delivery.h"
#include "snn/engine/dense_simulator.h"
#include "snn/engine/engine.h"
#include "snn/error.h"
#include "snn/network/network.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <random>
#include <string>
#include <utility>

using snn::ConnectionSpec;
using snn::LayerSpec;
using snn::Matrix;
using snn::Network;
using snn::NeuronParams;
using snn::ResetMode;
using snn::Shape;
using snn::Step;
using snn::engine::DenseOptions;
using snn::engine::DenseSimulator;
using snn::engine::Encoding;
using snn::engine::Engine;
using snn::engine::Parallelism;
using snn::engine::RunOptions;
using snn::engine::RunResult;
using snn::engine::SampleSet;
using snn::test::spike_times;

namespace {

using Times = std::vector<Step>;

// The weights of a conv layer as torch's dense [out, in] matrix, written from
// the definition (output (o, oy, ox) sums input (c, oy*s - p + ky, ox*s - p +
// kx) times kernel[o][c][ky][kx]) with signed arithmetic, independently of
// network/ and engine/.
Matrix naive_conv_matrix(const Shape& in, const LayerSpec& l, const Matrix& kernel) {
  const long oh =
      (static_cast<long>(in.height + 2 * l.pad_h) - static_cast<long>(l.kernel_h)) / static_cast<long>(l.stride_h) + 1;
  const long ow = (static_cast<long>(in.width + 2 * l.pad_w) - static_cast<long>(l.kernel_w)) / static_cast<long>(l.stride_w) + 1;
  const long H = static_cast<long>(in.height), W = static_cast<long>(in.width);
  const bool pool = l.kind == snn::LayerKind::AvgPool;
  const std::size_t out_c = pool ? in.channels : l.outputs;
  Matrix m(out_c * static_cast<std::size_t>(oh * ow), in.size());
  for (std::size_t o = 0; o < out_c; ++o)
    for (long oy = 0; oy < oh; ++oy)
      for (long ox = 0; ox < ow; ++ox)
        for (std::size_t c = 0; c < in.channels; ++c)
          for (long ky = 0; ky < static_cast<long>(l.kernel_h); ++ky)
            for (long kx = 0; kx < static_cast<long>(l.kernel_w); ++kx) {
              const long y = oy * static_cast<long>(l.stride_h) - static_cast<long>(l.pad_h) + ky;
              const long x = ox * static_cast<long>(l.stride_w) - static_cast<long>(l.pad_w) + kx;
              if (y < 0 || y >= H || x < 0 || x >= W) continue;
              if (pool && c != o) continue;
              const auto t = static_cast<std::size_t>((static_cast<long>(o) * oh + oy) * ow + ox);
              const auto s = static_cast<std::size_t>((static_cast<long>(c) * H + y) * W + x);
              m(t, s) =
                  pool ? 1.0f / static_cast<float>(l.kernel_h * l.kernel_w)
                       : kernel(o, (c * l.kernel_h + static_cast<std::size_t>(ky)) * l.kernel_w + static_cast<std::size_t>(kx));
            }
  return m;
}

RunResult run_hand(const Network& net, const std::vector<std::uint8_t>& bytes, Step steps) {
  const std::vector<std::uint8_t> labels(1, 0);
  const SampleSet set{1, bytes.size(), bytes, labels};
  const RunOptions o = snn::test::hand_options(steps);
  const RunResult r = Engine(net).run(set, o);
  const RunResult d = DenseSimulator(net).run(set, o);
  CHECK(d.spike_trains == r.spike_trains);
  CHECK(d.synops == r.synops);
  return r;
}

std::string message_of(const auto& f) {
  try {
    f();
  } catch (const snn::Error& e) { return e.what(); }
  return "(no error)";
}

}  // namespace

// All weights are multiples of 2^-16 theta: fixed point is exact and the hand
// arithmetic is the engine's. Input byte 255 spikes at every step, 0 never.

TEST_CASE("hand-worked: 2x2 convolution, stride 1, no padding") {
  // input 1x3x3   kernel 1x1x2x2
  //  1 0 1         .5   .25
  //  0 1 0         .125 .625
  //  1 0 0
  const std::vector<std::uint8_t> x{255, 0, 255, 0, 255, 0, 255, 0, 0};
  Matrix k(1, 4);
  k.data = {0.5f, 0.25f, 0.125f, 0.625f};
  const Network net = Network::from_layers(Shape{1, 3, 3}, {LayerSpec::conv(1, 2)}, {k}, {NeuronParams{}});
  REQUIRE(net.population(1).shape == Shape{1, 2, 2});
  const RunResult r = run_hand(net, x, 5);
  // per-step currents: (0,0) .5+.625 = 1.125, (0,1) .25+.125 = .375, (1,0) .25+.125 = .375, (1,1) .5
  // (0,0): 1.125 S .125 | 1.25 S .25 | 1.375 S | 1.5 S | 1.625 S
  CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{0, 1, 2, 3, 4});
  // .375 .75 1.125 S .125 .5 .875
  CHECK(spike_times(r.spike_trains[0], 1, 1) == Times{2});
  CHECK(spike_times(r.spike_trains[0], 1, 2) == Times{2});
  // .5 1.0 1.5 S .5 1.0 1.5 S
  CHECK(spike_times(r.spike_trains[0], 1, 3) == Times{2, 4});
  // fan-outs of the active inputs: (0,0) 1, (0,2) 1, (1,1) 4, (2,0) 1: 7 per step
  CHECK(r.synops[0] == 35);
}

TEST_CASE("hand-worked: 3x3 convolution, stride 2, padding 1, edge sources reach fewer targets") {
  // Only the centre of a 3x3 input spikes; kernel k[ky][kx] = (3 ky + kx + 1) / 16.
  std::vector<std::uint8_t> x(9, 0);
  x[4] = 255;
  Matrix k(1, 9);
  for (std::size_t i = 0; i < 9; ++i) k.data[i] = static_cast<float>(i + 1) / 16.0f;
  const Network net = Network::from_layers(Shape{1, 3, 3}, {LayerSpec::conv(1, 3, 2, 1)}, {k}, {NeuronParams{}});
  REQUIRE(net.population(1).shape == Shape{1, 2, 2});
  // centre (1,1) reaches (oy,ox) via tap (2 - 2 oy, 2 - 2 ox): 9/16, 7/16, 3/16, 1/16
  CHECK(net.connection(0).fan_out(4) == 4);
  CHECK(net.connection(0).fan_out(0) == 1);  // corner (0,0): only output (0,0)
  CHECK(net.connection(0).fan_out(1) == 2);  // (0,1): outputs (0,0) and (0,1)
  const RunResult r = run_hand(net, x, 6);
  // 9/16: .5625 | 1.125 S .125 | .6875 | 1.25 S .25 | .8125 | 1.375 S
  CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{1, 3, 5});
  // 7/16: .4375 | .875 | 1.3125 S .3125 | .75 | 1.1875 S .1875 | .625
  CHECK(spike_times(r.spike_trains[0], 1, 1) == Times{2, 4});
  // 3/16: 18/16 at t5
  CHECK(spike_times(r.spike_trains[0], 1, 2) == Times{5});
  CHECK(spike_times(r.spike_trains[0], 1, 3).empty());
  CHECK(r.synops[0] == 24);
}

TEST_CASE("hand-worked: 2x2 average pooling, with and without a scale") {
  // input 1x2x4: window 0 holds three active inputs, window 1 one.
  const std::vector<std::uint8_t> x{255, 255, 0, 0, 255, 0, 0, 255};
  for (double scale : {1.0, 2.0}) {
    ConnectionSpec spec;
    spec.pool_scale = scale;
    const Network net = Network::from_layers(Shape{1, 2, 4}, {LayerSpec::avgpool(2)}, {}, {NeuronParams{}}, {spec});
    REQUIRE(net.population(1).shape == Shape{1, 1, 2});
    const RunResult r = run_hand(net, x, 5);
    if (scale == 1.0) {
      // .75: .75 | 1.5 S .5 | 1.25 S .25 | 1.0 | 1.75 S ; .25: 1.25 at t4
      CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{1, 2, 4});
      CHECK(spike_times(r.spike_trains[0], 1, 1) == Times{4});
    } else {
      // 1.5: S .5 | 2.0 S 1.0 | 2.5 S 1.5 | 3.0 S 2.0 | 3.5 S ; .5: .5 | 1.0 | 1.5 S .5 | 1.0 | 1.5 S
      CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{0, 1, 2, 3, 4});
      CHECK(spike_times(r.spike_trains[0], 1, 1) == Times{2, 4});
    }
    CHECK(r.synops[0] == 20);  // 4 active inputs, one target each
  }
}

TEST_CASE("conv and pool connections expand to the naive [out, in] matrix") {
  std::mt19937_64 rng(7);
  const Shape in{2, 5, 7};
  LayerSpec conv = LayerSpec::conv(3, 3, 2, 1);
  conv.kernel_w = 2;
  conv.stride_w = 1;
  conv.pad_w = 0;
  const Matrix k = snn::test::random_matrix(rng, 3, 2 * 3 * 2, 0.0, 1.0);
  Network net(in);
  net.add_conv(conv, k, NeuronParams{});
  CHECK(net.connection(0).to_matrix() == naive_conv_matrix(in, conv, k));
  const Matrix m = naive_conv_matrix(in, conv, k);
  std::size_t synapses = 0;
  for (std::size_t s = 0; s < in.size(); ++s) {
    std::size_t n = 0;
    for (std::size_t t = 0; t < m.rows; ++t) n += m(t, s) != 0.0f;
    CHECK(net.connection(0).fan_out(s) == n);
    synapses += n;
  }
  CHECK(net.connection(0).synapses() == synapses);

  LayerSpec pool = LayerSpec::avgpool(2);
  pool.kernel_w = 3;
  pool.stride_w = 2;
  Network pnet(Shape{2, 4, 7});
  pnet.add_pool(pool, NeuronParams{});
  CHECK(pnet.connection(0).to_matrix() == naive_conv_matrix(Shape{2, 4, 7}, pool, Matrix{}));
  CHECK(pnet.connection(0).fan_out(2) == 2);  // column 2 lies in windows 0 and 1
}

namespace {

struct ConvNet {
  Network net;
  std::vector<LayerSpec> layers;
};

// A random conv net: conv (rectangular kernel, stride, padding), optionally
// avgpool, optionally a second conv, then flatten and dense. Shapes are
// redrawn until they tile exactly.
ConvNet random_conv_net(std::mt19937_64& rng, ResetMode reset, double beta, Step refractory, bool delays) {
  auto pick = [&](std::size_t lo, std::size_t hi) { return std::uniform_int_distribution<std::size_t>(lo, hi)(rng); };
  for (;;) {
    const Shape in{pick(1, 2), pick(5, 10), pick(5, 10)};
    std::vector<LayerSpec> layers;
    LayerSpec c1 = LayerSpec::conv(pick(2, 4), 1);
    c1.kernel_h = pick(1, 3);
    c1.kernel_w = pick(1, 3);
    c1.stride_h = pick(1, 2);
    c1.stride_w = pick(1, 2);
    c1.pad_h = pick(0, 1);
    c1.pad_w = pick(0, 1);
    layers.push_back(c1);
    if (pick(0, 1)) layers.push_back(LayerSpec::avgpool(2));
    if (pick(0, 1)) layers.push_back(LayerSpec::conv(pick(2, 3), pick(1, 2), 1, pick(0, 1)));
    layers.push_back(LayerSpec::flatten());
    layers.push_back(LayerSpec::dense(5));
    try {
      snn::infer_shapes(in, layers);
    } catch (const snn::Error&) { continue; }
    Network net = snn::test::random_layered_network(rng, in, layers, [&](const LayerSpec& l, std::size_t k) {
      ConnectionSpec spec;
      spec.delay = delays ? static_cast<Step>(pick(0, 2)) : 0;
      if (l.kind == snn::LayerKind::AvgPool) spec.pool_scale = 1.5;
      return std::pair{NeuronParams{0.6 + 0.1 * static_cast<double>(k), reset, beta, refractory}, spec};
    });
    // Biases on every other population, some negative.
    for (snn::PopulationId p = 1; p < net.populations().size(); p += 2) {
      std::vector<snn::Weight> bias(net.population(p).size);
      for (auto& b : bias) b = static_cast<snn::Weight>(std::uniform_real_distribution<double>(-0.05, 0.1)(rng));
      net.set_bias(p, std::move(bias));
    }
    return {std::move(net), layers};
  }
}

}  // namespace

TEST_CASE("random conv nets: event engine == dense im2col baseline == plain reference") {
  std::mt19937_64 rng(2024);
  std::vector<std::uint64_t> spikes(2, 0);
  int combos = 0;
  for (int weight_bits : {32, 16, 8})
    for (ResetMode reset : {ResetMode::Subtract, ResetMode::Zero})
      for (double beta : {1.0, 0.9})
        for (Step refractory : {0, 1})
          for (bool delays : {false, true})
            for (Encoding encoding : {Encoding::Poisson, Encoding::Analog}) {
              ++combos;
              const ConvNet cn = random_conv_net(rng, reset, beta, refractory, delays);
              const Network& net = cn.net;
              const std::size_t n = 3;
              const auto values = snn::test::random_inputs(rng, n, net.input_size());
              const std::vector<std::uint8_t> labels{0, 1, 2};
              const SampleSet set{n, net.input_size(), values, labels};
              RunOptions o;
              o.steps = 30;
              o.input.encoding = encoding;
              o.input.seed = rng();
              o.record_spikes = true;
              o.threads = 1;
              // The event engine's block length (0: its default for the width).
              o.step_block = std::array<Step, 5>{0, 1, 3, 7, 30}[static_cast<std::size_t>(combos % 5)];
              INFO("combo " << combos << ": " << net.connection_count() << " connections, delays " << delays << ", "
                            << snn::engine::to_string(encoding) << ", weight bits " << weight_bits << ", step block "
                            << o.step_block);
              const Engine engine(net, snn::engine::kDefaultFixedPointBits, weight_bits);
              const RunResult ev = engine.run(set, o);
              DenseOptions dopt;
              dopt.batch = 2;
              const RunResult de = DenseSimulator(engine.shared_network()).run(set, o, dopt);
              snn::test::require_same_run(ev, de, false);
              REQUIRE(ev.bias_ops == de.bias_ops);

              std::vector<int> bits;
              for (const auto& r : engine.network().reports()) bits.push_back(r.bits);
              // The reference reads every connection as the naive matrix.
              Network dense_net(net.input_size());
              Shape s = net.population(0).shape;
              for (std::size_t c = 0, l = 0; c < net.connection_count(); ++c, ++l) {
                while (!cn.layers[l].spiking()) ++l;
                const auto& conn = net.connection(c);
                const Matrix m =
                    conn.format() == snn::FanOutFormat::Dense
                        ? conn.to_matrix()
                        : naive_conv_matrix(s, cn.layers[l],
                                            conn.format() == snn::FanOutFormat::Conv ? conn.conv().weights : Matrix{});
                Matrix scaled = m;
                if (conn.format() == snn::FanOutFormat::AvgPool)
                  for (auto& w : scaled.data) w *= 1.5f;
                // Sparse drops the zeros of the expansion, so fan_out (the reference's
                // SynOps) counts only the synapses the kernel really has.
                const auto format =
                    conn.format() == snn::FanOutFormat::Dense ? snn::FanOutFormat::Dense : snn::FanOutFormat::Sparse;
                dense_net.add_layer(scaled, net.population(c + 1).params, ConnectionSpec{format, 0.0, conn.delay()});
                dense_net.set_bias(static_cast<snn::PopulationId>(c + 1), net.population(c + 1).bias);
                s = net.population(c + 1).shape;
              }
              for (std::size_t i = 0; i < n; ++i) {
                const auto ref = snn::test::reference_run(dense_net, bits, set, i, o);
                REQUIRE(ev.spike_trains[i] == ref.train);
                for (std::size_t c = 0; c < net.connection_count(); ++c)
                  REQUIRE(ev.synops[i * net.connection_count() + c] == ref.synops[c]);
              }
              const auto pops = ev.spikes_per_population();
              spikes[0] += pops[1];
              spikes[1] += pops.back();
            }
  CHECK(combos == 3 * 32);
  CHECK(spikes[0] > 1000);  // the first conv layer was active
  CHECK(spikes[1] > 100);   // and the output
}

TEST_CASE("conv nets: identical results for 1 and 2 threads in both parallel modes") {
  std::mt19937_64 rng(99);
  // Wide enough for latency mode to split the first conv (8x15x15) over 2
  // threads, at neuron 912: inside channel 4, not at a channel boundary.
  const Shape in{1, 15, 15};
  const std::vector<LayerSpec> layers{LayerSpec::conv(8, 3, 1, 1), LayerSpec::avgpool(3), LayerSpec::conv(8, 3, 1, 1),
                                      LayerSpec::flatten(), LayerSpec::dense(10)};
  const std::vector<Matrix> w{snn::test::random_matrix(rng, 8, 9, 0.25, 0.3), snn::test::random_matrix(rng, 8, 72, 0.04, 0.06),
                              snn::test::random_matrix(rng, 10, 200, 0.02, 0.04)};
  const Network net = Network::from_layers(in, layers, w, {NeuronParams{}},
                                           {ConnectionSpec{}, ConnectionSpec{snn::FanOutFormat::Dense, 0.0, 1}, ConnectionSpec{},
                                            ConnectionSpec{snn::FanOutFormat::Dense, 0.0, 2}});
  const std::size_t n = 4;
  const auto values = snn::test::random_inputs(rng, n, net.input_size());
  const SampleSet set{n, net.input_size(), values, {}};
  RunOptions o;
  o.steps = 25;
  o.record_spikes = true;
  o.min_parallel_work = 0;
  const Engine engine(net);
  o.threads = 1;
  const RunResult one = engine.run(set, o);
  CHECK(one.spikes_per_population()[3] > 100);
  for (Parallelism par : {Parallelism::Samples, Parallelism::Targets}) {
    o.parallelism = par;
    o.threads = 2;
    snn::test::require_same_run(one, engine.run(set, o), true);
  }
}

TEST_CASE("conv and pool delivery over any split of the targets equals the whole, and the synapse list") {
  std::mt19937_64 rng(11);
  LayerSpec conv = LayerSpec::conv(5, 3, 2, 1);
  conv.kernel_w = 2;
  conv.pad_w = 0;
  LayerSpec pool = LayerSpec::avgpool(2);
  pool.kernel_w = 3;
  pool.stride_w = 1;
  for (const LayerSpec& l : {conv, pool}) {
    const Shape in = l.kind == snn::LayerKind::Conv ? Shape{3, 9, 8} : Shape{3, 8, 8};
    Network net(in);
    if (l.kind == snn::LayerKind::Conv)
      net.add_conv(l, snn::test::random_matrix(rng, 5, 3 * 3 * 2, 0.0, 1.0), NeuronParams{});
    else
      net.add_pool(l, NeuronParams{});
    const snn::engine::FixedNetwork fixed(net);
    const auto& fc = fixed.connection(0);
    std::vector<snn::NeuronId> ids;
    for (snn::NeuronId s = 0; s < in.size(); ++s)
      if (rng() % 3 == 0) ids.push_back(s);
    // Expected: every synapse of every spike, summed target by target (a
    // conv's targets by their position-major engine ids).
    const bool is_conv = l.kind == snn::LayerKind::Conv;
    std::vector<snn::Potential> expected(fc.targets, 0);
    for (snn::NeuronId s : ids)
      fc.for_each_target(s, [&](std::size_t t, snn::FixedWeight w) {
        expected[is_conv ? snn::engine::position_major_id(fc.geometry.output, t) : t] += w;
      });
    for (int trial = 0; trial < 20; ++trial) {
      if (trial == 10)  // the second half: spikes position by position (conv sums a position's taps together)
        std::stable_sort(ids.begin(), ids.end(), [&](snn::NeuronId a, snn::NeuronId b) {
          return snn::engine::position_major_id(in, a) < snn::engine::position_major_id(in, b);
        });
      std::vector<snn::NeuronId> cuts{0, static_cast<snn::NeuronId>(fc.targets)};
      for (int k = 0; k < trial % 5; ++k) cuts.push_back(static_cast<snn::NeuronId>(rng() % fc.targets));
      std::sort(cuts.begin(), cuts.end());
      std::vector<snn::Potential> cur(fc.targets, 0);
      for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
        snn::engine::deliver(cur.data(), fc, ids, snn::engine::TargetRange{cuts[k], cuts[k + 1]});
      }
      REQUIRE(cur == expected);
    }
    // And the synapse list is the naive expansion's.
    const Matrix m = naive_conv_matrix(in, l, l.kind == snn::LayerKind::Conv ? net.connection(0).conv().weights : Matrix{});
    for (std::size_t s = 0; s < in.size(); ++s) {
      std::size_t n = 0;
      fc.for_each_target(s, [&](std::size_t t, snn::FixedWeight) {
        CHECK(m(t, s) != 0.0f);
        ++n;
      });
      CHECK(n == fc.fan_out_of(s));
      CHECK(n == net.connection(0).fan_out(s));
    }
  }
}

TEST_CASE("conv SynOps equal the recorded spikes times the generated fan-out") {
  std::mt19937_64 rng(5);
  const ConvNet cn = random_conv_net(rng, ResetMode::Subtract, 1.0, 0, true);
  const Network& net = cn.net;
  const auto values = snn::test::random_inputs(rng, 2, net.input_size());
  const SampleSet set{2, net.input_size(), values, {}};
  RunOptions o;
  o.steps = 20;
  o.record_spikes = true;
  const RunResult r = Engine(net).run(set, o);
  for (std::size_t i = 0; i < 2; ++i) {
    std::vector<snn::OpCount> expected(net.connection_count(), 0);
    for (const auto& e : r.spike_trains[i]) {
      if (e.population >= net.connection_count()) continue;
      const auto& c = net.connection(e.population);
      // fan-out counted from the expanded matrix: independent of the generator
      const Matrix m = c.to_matrix();
      std::size_t fan = 0;
      for (std::size_t t = 0; t < m.rows; ++t) fan += m(t, e.neuron) != 0.0f;
      if (e.step + c.delay() < o.steps) expected[e.population] += fan;
    }
    for (std::size_t c = 0; c < net.connection_count(); ++c) CHECK(r.synops[i * net.connection_count() + c] == expected[c]);
  }
}

TEST_CASE("a conv connection's memory does not grow with neurons x fan-out") {
  std::mt19937_64 rng(3);
  const Matrix k = snn::test::random_matrix(rng, 12, 25, 0.0, 0.1);
  std::vector<std::size_t> table, fixed, synapses;
  for (std::size_t side : {28, 112}) {
    const Network net =
        Network::from_layers(Shape{1, side, side}, {LayerSpec::conv(12, 5), LayerSpec::avgpool(2)}, {k}, {NeuronParams{}});
    table.push_back(net.connection(0).table_bytes() + net.connection(1).table_bytes());
    fixed.push_back(snn::engine::FixedNetwork(net).bytes());
    synapses.push_back(net.connection(0).synapses() + net.connection(1).synapses());
  }
  CHECK(synapses[1] > 16 * synapses[0]);  // 112x112 has more than 16x the synapses of 28x28
  // The model's table: the kernel (12 x 25 floats) and the pool's one weight, at both sizes.
  CHECK(table[0] == 12 * 25 * sizeof(float) + sizeof(float));
  CHECK(table[1] == table[0]);
  // The engine's: the integer kernel (twice: torch's layout and tap-major),
  // the pool weight and a reach count per input row and column.
  CHECK(fixed[0] == (2 * 12 * 25 + 1 + 2 * 28 + 2 * 24) * sizeof(std::int32_t));
  CHECK(fixed[1] == (2 * 12 * 25 + 1 + 2 * 112 + 2 * 108) * sizeof(std::int32_t));
}

TEST_CASE("conv networks: shapes that do not fit are errors naming the layer") {
  const NeuronParams p;
  const Shape in{1, 8, 8};
  // kernel larger than the input
  CHECK(message_of([&] {
          Network::from_layers(Shape{1, 4, 4}, {LayerSpec::conv(2, 5)}, {Matrix(2, 25)}, {p});
        }).find("layer 1 'conv 2 5x5' needs at least 5x5 input, gets 4x4") != std::string::npos);
  // channel mismatch: kernel for 2 input channels on a 1-channel input
  CHECK(message_of([&] {
          Network::from_layers(in, {LayerSpec::conv(2, 3)}, {Matrix(2, 18)}, {p});
        }).find("layer 1 'conv 2 3x3'") != std::string::npos);
  CHECK(message_of([&] { Network::from_layers(in, {LayerSpec::conv(2, 3)}, {Matrix(2, 18)}, {p}); }).find("needs [2, 9]") !=
        std::string::npos);
  // zero sizes
  CHECK(message_of([&] { Network::from_layers(in, {LayerSpec::conv(0, 3)}, {Matrix(1, 9)}, {p}); }).find("layer 1") !=
        std::string::npos);
  CHECK(message_of([&] {
          Network::from_layers(Shape{1, 0, 8}, {LayerSpec::conv(1, 3)}, {Matrix(1, 9)}, {p});
        }).find("zero size") != std::string::npos);
  // a pool that does not divide the map
  CHECK(message_of([&] {
          Network::from_layers(in, {LayerSpec::conv(2, 2), LayerSpec::avgpool(2)}, {Matrix(2, 4)}, {p});
        }).find("layer 2 'avgpool 2' does not tile its 7x7 input") != std::string::npos);
  // weight list that does not fit the layer list
  CHECK(message_of([&] {
          Network::from_layers(in, {LayerSpec::conv(2, 3), LayerSpec::flatten(), LayerSpec::dense(4)}, {Matrix(2, 9)}, {p});
        }).find("1 weight matrices for 2 dense or conv layers") != std::string::npos);
  CHECK(message_of([&] {
          Network::from_layers(in, {LayerSpec::conv(2, 3), LayerSpec::flatten(), LayerSpec::dense(4)},
                               {Matrix(2, 9), Matrix(4, 71)}, {p});
        }).find("layer 3 'dense 4'") != std::string::npos);
  // a conv after a flat layer
  CHECK(message_of([&] {
          Network::from_layers(in, {LayerSpec::dense(4), LayerSpec::conv(2, 3)}, {Matrix(4, 64), Matrix(2, 9)}, {p});
        }).find("layer 2 'conv 2 3x3' needs a channels x height x width input") != std::string::npos);
  // non-finite kernel values, bad pool scale, sparse conv
  Matrix nan(2, 9);
  nan.data[3] = std::nanf("");
  CHECK(message_of([&] { Network::from_layers(in, {LayerSpec::conv(2, 3)}, {nan}, {p}); }).find("not finite") !=
        std::string::npos);
  ConnectionSpec bad_scale;
  bad_scale.pool_scale = -1.0;
  CHECK(message_of([&] { Network::from_layers(in, {LayerSpec::avgpool(2)}, {}, {p}, {bad_scale}); }).find("pool scale") !=
        std::string::npos);
  CHECK(message_of([&] {
          Network(in).add_conv(LayerSpec::conv(2, 3), Matrix(2, 9), p, ConnectionSpec{snn::FanOutFormat::Sparse, 0.0, 0});
        }).find("dense layers only") != std::string::npos);
  // The MLP path still builds through from_layers.
  const Network mlp =
      Network::from_layers(Shape{6, 1, 1}, snn::dense_stack(std::vector<std::size_t>{4, 2}), {Matrix(4, 6), Matrix(2, 4)}, {p});
  CHECK(mlp.connection_count() == 2);
  CHECK(mlp.output_size() == 2);
}

TEST_CASE("conv and pool delivery locate a source id as plain division does, for any 32-bit id") {
  // SourceLocator divides by multiply and shift; check it against / and %
  // on small and huge planes, at the ends of the 32-bit range and at random.
  std::mt19937_64 rng(7);
  for (const auto& [h, w] : std::vector<std::pair<std::size_t, std::size_t>>{
           {1, 1}, {1, 2}, {28, 28}, {12, 12}, {3, 7}, {1, 65535}, {65535, 65535}, {65535, 65537}, {4096, 3}}) {
    snn::WindowGeometry g;
    g.input = Shape{1, h, w};
    const snn::engine::SourceLocator locate(g);
    const std::uint64_t plane = h * w;
    std::vector<std::uint32_t> ids{0, 1, 2, 0xFFFFFFFFu, 0xFFFFFFFEu, 0x80000000u, 0x7FFFFFFFu};
    for (std::uint64_t k : {plane - 1, plane, plane + 1, 2 * plane - 1, std::uint64_t{w} - 1, std::uint64_t{w}})
      if (k <= 0xFFFFFFFFu) ids.push_back(static_cast<std::uint32_t>(k));
    for (int i = 0; i < 20000; ++i) ids.push_back(static_cast<std::uint32_t>(rng()));
    for (std::uint32_t s : ids) {
      std::uint32_t c = 0, y = 0, x = 0;
      locate(s, c, y, x);
      INFO("plane " << h << "x" << w << ", id " << s);
      REQUIRE(c == s / plane);
      REQUIRE(y == s % plane / w);
      REQUIRE(x == s % w);
    }
  }
}

TEST_CASE("conv targets' position-major engine ids and their model ids are inverse permutations") {
  for (const Shape& s : {Shape{1, 1, 1}, Shape{12, 24, 24}, Shape{3, 5, 7}, Shape{64, 8, 8}}) {
    std::vector<int> seen(s.size(), 0);
    for (std::size_t chw = 0; chw < s.size(); ++chw) {
      const snn::NeuronId e = snn::engine::position_major_id(s, chw);
      REQUIRE(e < s.size());
      ++seen[e];
      REQUIRE(snn::engine::channel_major_id(s, e) == chw);
      // (o, y, x) -> ((y * W + x) * C + o), from the definition.
      const std::size_t o = chw / (s.height * s.width), y = chw / s.width % s.height, x = chw % s.width;
      REQUIRE(e == (y * s.width + x) * s.channels + o);
    }
    CHECK(std::all_of(seen.begin(), seen.end(), [](int k) { return k == 1; }));
  }
}

TEST_CASE("non-overlapping pool delivered through a per-source target table equals the synapse list, over any split") {
  std::mt19937_64 rng(17);
  for (const auto& [in, k] :
       std::vector<std::pair<Shape, std::size_t>>{{Shape{3, 8, 8}, 2}, {Shape{2, 9, 6}, 3}, {Shape{1, 4, 4}, 1}}) {
    Network net(in);
    net.add_pool(LayerSpec::avgpool(k), NeuronParams{});
    const snn::engine::FixedNetwork fixed(net);
    const auto& fc = fixed.connection(0);
    std::vector<snn::NeuronId> table(fc.sources, snn::engine::kNoTarget);
    for (std::size_t s = 0; s < fc.sources; ++s)
      fc.for_each_target(s, [&](std::size_t t, snn::FixedWeight) { table[s] = static_cast<snn::NeuronId>(t); });
    std::vector<snn::NeuronId> ids;
    for (snn::NeuronId s = 0; s < in.size(); ++s)
      if (rng() % 2 == 0) ids.push_back(s);
    std::shuffle(ids.begin(), ids.end(), rng);  // delivery needs no order
    std::vector<snn::Potential> expected(fc.targets, 0);
    for (snn::NeuronId s : ids) fc.for_each_target(s, [&](std::size_t t, snn::FixedWeight w) { expected[t] += w; });
    for (int trial = 0; trial < 10; ++trial) {
      std::vector<snn::NeuronId> cuts{0, static_cast<snn::NeuronId>(fc.targets)};
      for (int c = 0; c < trial % 4; ++c) cuts.push_back(static_cast<snn::NeuronId>(rng() % fc.targets));
      std::sort(cuts.begin(), cuts.end());
      std::vector<snn::Potential> cur(fc.targets, 0);
      for (std::size_t c = 0; c + 1 < cuts.size(); ++c) {
        snn::engine::TargetRange r{cuts[c], cuts[c + 1]};
        r.pool_target = table.data();
        snn::engine::deliver(cur.data(), fc, ids, r);
      }
      REQUIRE(cur == expected);
    }
  }
}

TEST_CASE("conv nets without recorded spikes: engine == dense baseline in both parallel modes") {
  // Unrecorded spikes reach a pool as the engine's own ids (no mapping back):
  // predictions, counts and SynOps must still equal the dense baseline's.
  std::mt19937_64 rng(31);
  for (int net_index = 0; net_index < 12; ++net_index) {
    const ConvNet cn = random_conv_net(rng, ResetMode::Subtract, 1.0, 0, net_index % 2 == 1);
    const Network& net = cn.net;
    const std::size_t n = 3;
    const auto values = snn::test::random_inputs(rng, n, net.input_size());
    const SampleSet set{n, net.input_size(), values, {}};
    RunOptions o;
    o.steps = 30;
    o.input.seed = rng();
    o.min_parallel_work = 0;
    const Engine engine(net);
    const RunResult de = DenseSimulator(engine.shared_network()).run(set, o);
    for (Parallelism par : {Parallelism::Samples, Parallelism::Targets})
      for (int threads : {1, 2}) {
        o.parallelism = par;
        o.threads = threads;
        INFO("net " << net_index << ", threads " << threads);
        snn::test::require_same_run(engine.run(set, o), de, false);
      }
  }
}
