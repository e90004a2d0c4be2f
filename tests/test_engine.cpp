#include "snn/engine/engine.h"

#include "engine_test_util.h"
#include "snn/engine/dense_simulator.h"
#include "snn/engine/neuron.h"
#include "snn/error.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <span>

using snn::ConnectionSpec;
using snn::FanOutFormat;
using snn::Matrix;
using snn::Network;
using snn::NeuronParams;
using snn::ResetMode;
using snn::Step;
using snn::engine::Engine;
using snn::engine::RunOptions;
using snn::engine::RunResult;
using snn::test::spike_times;

namespace {

// Column vector [n out, 1 in] of the given weights.
Matrix column(std::initializer_list<float> weights) {
  Matrix m(weights.size(), 1);
  std::size_t i = 0;
  for (float w : weights) m(i++, 0) = w;
  return m;
}

RunResult run_hand(const Network& net, Step steps) {
  const snn::test::AlwaysOnInput input(net.input_size());
  const RunResult r = Engine(net).run(input.set(), snn::test::hand_options(steps));
  // The dense baseline must agree with every hand-worked case too.
  const RunResult d = snn::engine::DenseSimulator(net).run(input.set(), snn::test::hand_options(steps));
  CHECK(d.spike_trains == r.spike_trains);
  return r;
}

using Times = std::vector<Step>;

}  // namespace

// All weights below are multiples of 2^-16 theta, so fixed point is exact and
// the hand arithmetic is the engine's arithmetic. The input neuron spikes at
// every step (byte 255, p = x).

TEST_CASE("hand-worked: reset by subtraction, strict threshold") {
  Network net(1);
  net.add_layer(column({0.625f, 0.5f}), NeuronParams{1.0, ResetMode::Subtract, 1.0, 0});
  const RunResult r = run_hand(net, 9);
  // neuron 0, +0.625 per step: t0 .625 | t1 1.25 S->.25 | t2 .875 | t3 1.5 S->.5 | t4 1.125 S->.125
  //   | t5 .75 | t6 1.375 S->.375 | t7 1.0 (not > 1) | t8 1.625 S
  CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{1, 3, 4, 6, 8});
  // neuron 1, +0.5: t0 .5 | t1 1.0 (no) | t2 1.5 S->.5 | t3 1.0 | t4 1.5 S | ... every other step
  CHECK(spike_times(r.spike_trains[0], 1, 1) == Times{2, 4, 6, 8});
  // input spikes at all 9 steps, each delivered to 2 targets
  CHECK(r.population_spikes[0] == 9);
  CHECK(r.synops[0] == 18);
  // counts (5, 4): class 0; before t1 no spikes -> class 0; after t2: 1 vs 1 tie -> 0
  CHECK(r.predictions[0] == 0);
}

TEST_CASE("hand-worked: reset to zero") {
  Network net(1);
  net.add_layer(column({0.625f, 0.5f}), NeuronParams{1.0, ResetMode::Zero, 1.0, 0});
  const RunResult r = run_hand(net, 9);
  // neuron 0: .625 | 1.25 S->0 | .625 | 1.25 S->0 | ...  spikes every second step from t1
  CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{1, 3, 5, 7});
  // neuron 1: .5 | 1.0 | 1.5 S->0 | .5 | 1.0 | 1.5 S | ... every third step from t2
  CHECK(spike_times(r.spike_trains[0], 1, 1) == Times{2, 5, 8});
}

TEST_CASE("hand-worked: neurons that fire without new input, zero-delay propagation") {
  Network net(1);
  // A: +0.25 per step, reset to zero: .25 .5 .75 1.0 | t4 1.25 S->0 | ... | t9 S | t14 S
  net.add_layer(column({0.25f}), NeuronParams{1.0, ResetMode::Zero, 1.0, 0});
  // B: +2.5 per spike of A (same step), subtract:
  //   t4 2.5 S->1.5 | t5 no input, 1.5 S->0.5 | t9 3.0 S->2 | t10 S->1 | t11 1.0 (no)
  //   | t14 3.5 S->2.5 | t15 S->1.5 | t16 S->0.5
  net.add_layer(column({2.5f}), NeuronParams{1.0, ResetMode::Subtract, 1.0, 0});
  const RunResult r = run_hand(net, 17);
  CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{4, 9, 14});
  CHECK(spike_times(r.spike_trains[0], 2, 0) == Times{4, 5, 9, 10, 14, 15, 16});
  CHECK(r.output_counts[0] == 7);
  CHECK(r.synops[1] == 3);  // A's 3 spikes x fan-out 1
}

TEST_CASE("hand-worked: biases are a constant current each step, counted apart from SynOps") {
  Network net(1);
  net.add_layer(column({0.5f, 0.25f, 0.0f}), NeuronParams{1.0, ResetMode::Subtract, 1.0, 0});
  net.set_bias(1, {0.25f, -0.125f, 0.375f});
  const RunResult r = run_hand(net, 9);
  // neuron 0, +.75 per step: .75 | 1.5 S .5 | 1.25 S .25 | 1.0 | 1.75 S .75 | 1.5 S | 1.25 S | 1.0 | 1.75 S
  CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{1, 2, 4, 5, 6, 8});
  // neuron 1, +.125 per step: 1.0 at t7 (not > 1), 1.125 at t8
  CHECK(spike_times(r.spike_trains[0], 1, 1) == Times{8});
  // neuron 2, bias only (+.375): .375 .75 1.125 S .125 .5 .875 1.25 S .25 .625 1.0 1.375 S
  CHECK(spike_times(r.spike_trains[0], 1, 2) == Times{2, 5, 8});
  CHECK(r.synops[0] == 27);    // the input reaches 3 targets at 9 steps
  CHECK(r.bias_ops[0] == 27);  // 3 non-zero biases at 9 steps
  CHECK(r.quantisation[0].biases == 3);
}

TEST_CASE("biases: bad values are errors naming the population, and count in the 2^24 bound") {
  Network net(2);
  net.add_layer(Matrix(3, 2, 0.5f), NeuronParams{});
  CHECK_THROWS_WITH(net.set_bias(1, {0.1f, 0.2f}), Catch::Contains("2 biases for 3 neurons"));
  CHECK_THROWS_WITH(net.set_bias(1, {0.1f, std::nanf(""), 0.2f}), Catch::Contains("bias of neuron 1 is not finite"));
  CHECK_THROWS_WITH(net.set_bias(0, {0.1f, 0.2f}), Catch::Contains("is the input"));
  // |w| sum 1 theta: k = 16 fits (2^16 units); with a bias of 300 theta the
  // sum is 301 * 2^16 > 2^24 units, so k must drop to 15.
  net.set_bias(1, {0.0f, 300.0f, 0.0f});
  const snn::engine::FixedNetwork f(net);
  CHECK(f.report(0).bits == 15);
  CHECK(f.report(0).max_fan_in_sum < snn::engine::kExactSumLimit);
  CHECK(f.bias(1)[1] == 300 << 15);
}

TEST_CASE("hand-worked: leak beta < 1") {
  Network net(1);
  // beta 0.5: v <- v/2 + I.
  // neuron 0, I = .75: .75 | .375+.75=1.125 S->.125 | .0625+.75=.8125 | .40625+.75=1.15625 S->.15625
  //   | .078125+.75=.828125 | .4140625+.75=1.1640625 S | ... spikes at odd steps
  // neuron 1, I = .5: .5 | .75 | .875 | .9375 | ... -> 1 - 2^-(t+1), never above 1 (with beta 1 it
  //   would spike at t2; in fixed point it settles at exactly 1.0 = theta, still not > theta)
  net.add_layer(column({0.75f, 0.5f}), NeuronParams{1.0, ResetMode::Subtract, 0.5, 0});
  const RunResult r = run_hand(net, 30);
  Times odd;
  for (Step t = 1; t < 30; t += 2) odd.push_back(t);
  CHECK(spike_times(r.spike_trains[0], 1, 0) == odd);
  CHECK(spike_times(r.spike_trains[0], 1, 1).empty());
}

TEST_CASE("hand-worked: refractory period") {
  Network net(1);
  // R = 2, I = .625, subtract: .625 | t1 1.25 S->.25 | t2, t3 refractory (input lost) | t4 .875
  //   | t5 1.5 S->.5 | t6, t7 ref | t8 1.125 S->.125 | t9, t10 ref | t11 .75 | t12 1.375 S
  net.add_layer(column({0.625f}), NeuronParams{1.0, ResetMode::Subtract, 1.0, 2});
  const RunResult r = run_hand(net, 13);
  CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{1, 5, 8, 12});
  // delivered spikes still count as SynOps while the target is refractory
  CHECK(r.synops[0] == 13);
}

TEST_CASE("hand-worked: delays") {
  SECTION("delay on the input connection") {
    Network net(1);
    // input spikes at t arrive at t + 2: .625 at t2 | t3 1.25 S->.25 | t4 .875 | t5 1.5 S->.5
    //   | t6 1.125 S->.125 | t7 .75 | t8 1.375 S
    net.add_layer(column({0.625f}), NeuronParams{}, ConnectionSpec{FanOutFormat::Dense, 0.0, 2});
    const RunResult r = run_hand(net, 9);
    CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{3, 5, 6, 8});
    CHECK(r.synops[0] == 7);  // spikes of t7, t8 are due after the run: not delivered
  }
  SECTION("delay between hidden populations, sparse table") {
    Network net(1);
    // A: +1.5 per step, subtract: spikes at every step (v grows by .5 per step)
    net.add_layer(column({1.5f}), NeuronParams{});
    // B: A's spike at t arrives at t + 3: t3 .625 | t4 1.25 S->.25 | t5 .875 | t6 1.5 S->.5
    //   | t7 1.125 S->.125 | t8 .75 | t9 1.375 S
    net.add_layer(column({0.625f}), NeuronParams{}, ConnectionSpec{FanOutFormat::Sparse, 0.0, 3});
    const RunResult r = run_hand(net, 10);
    CHECK(spike_times(r.spike_trains[0], 1, 0).size() == 10);
    CHECK(spike_times(r.spike_trains[0], 2, 0) == Times{4, 6, 7, 9});
    CHECK(r.synops[1] == 7);
  }
}

TEST_CASE("readout: argmax ties go to the lowest index, or to the higher potential when asked") {
  Network net(1);
  // Both spike at t1 (1.25 and 1.125); potentials after reset .25 and .125 (t1), then
  // .875/.6875 at t2 ... neuron 1 is never higher in count.
  net.add_layer(column({0.5f, 0.5625f}), NeuronParams{});
  const snn::test::AlwaysOnInput input(1);
  RunOptions o = snn::test::hand_options(3);
  // t0: .5 / .5625 | t1: 1.0 (no) / 1.125 S->.125 | t2: 1.5 S->.5 / .6875
  RunResult r = Engine(net).run(input.set(), o);
  CHECK(r.prediction_at(0, 0) == 0);  // no spikes yet: class 0, as the seed
  CHECK(r.prediction_at(0, 1) == 1);
  CHECK(r.prediction_at(0, 2) == 0);  // 1:1 tie -> lowest index
  o.tie_break_by_potential = true;
  r = Engine(net).run(input.set(), o);
  CHECK(r.prediction_at(0, 0) == 1);  // 0:0 tie, potential .5625 > .5
  CHECK(r.prediction_at(0, 2) == 1);  // 1:1 tie, potential .6875 > .5
}

TEST_CASE("early exit stops a sample once one output leads by the margin for the hold") {
  Network net(1);
  // neuron 0 spikes at every step (1.5/step), neuron 1 never (negative weight)
  net.add_layer(column({1.5f, -0.5f}), NeuronParams{});
  const snn::test::AlwaysOnInput input(1);
  RunOptions o = snn::test::hand_options(20);
  o.early_exit.enabled = true;
  o.early_exit.margin = 3;  // lead after t: t + 1 spikes -> >= 3 from t2 on
  o.early_exit.hold = 2;    // held at t2 and t3 -> exit at t3
  const RunResult stopped = Engine(net).run(input.set(), o);
  CHECK(stopped.exit_step[0] == 3);
  CHECK(stopped.steps_simulated[0] == 4);
  CHECK(stopped.output_counts[0] == 4);
  CHECK(stopped.synops_at_exit[0] == 4 * 2);  // 4 input spikes x fan-out 2
  CHECK(stopped.total_synops() == 4 * 2);
  CHECK(stopped.exit_predictions[0] == 0);
  CHECK(stopped.prediction_at(0, 19) == 0);
  o.early_exit.stop = false;
  const RunResult measured = Engine(net).run(input.set(), o);
  CHECK(measured.exit_step[0] == 3);
  CHECK(measured.synops_at_exit[0] == 8);
  CHECK(measured.total_synops() == 20 * 2);
  CHECK(measured.steps_simulated[0] == 20);
  const RunResult dense = snn::engine::DenseSimulator(net).run(input.set(), o);
  CHECK(dense.exit_step == measured.exit_step);
  CHECK(dense.synops_at_exit == measured.synops_at_exit);
}

TEST_CASE("analog input delivers round(x * W) every step") {
  Network net(2);
  Matrix m(1, 2);
  m(0, 0) = 0.5f;
  m(0, 1) = 0.25f;
  net.add_layer(m, NeuronParams{});
  // x = (255, 51)/255 = (1, 0.2): I = 0.5 + 0.05 = 0.55 theta per step:
  // .55 | 1.1 S->.1 | .65 | 1.2 S->.2 | .75 | 1.3 S->.3 | .85 | 1.4 S->.4 | .95 | 1.5 S->.5 | 1.05 S
  // (fixed point: sum 255 * 32768 + 51 * 16384 = 9191424, / 255 = 36044.8 -> 36045 units per step)
  std::vector<std::uint8_t> values{255, 51}, labels{0};
  RunOptions o = snn::test::hand_options(11);
  o.input.encoding = snn::engine::Encoding::Analog;
  const RunResult r = Engine(net).run({1, 2, values, labels}, o);
  CHECK(spike_times(r.spike_trains[0], 1, 0) == Times{1, 3, 5, 7, 9, 10});
  CHECK(r.population_spikes[0] == 0);
  CHECK(r.synops[0] == 11 * 2);  // 2 non-zero inputs x fan-out 1 x 11 steps
}

TEST_CASE("fixed point: weights that fit no k are refused, naming the population and the width") {
  // 2^25 theta breaks the 2^24-unit bound even at k = 0.
  Network huge(1);
  huge.add_layer(column({33554432.0f}), NeuronParams{});
  try {
    snn::engine::FixedNetwork f(huge);
    FAIL("no error");
  } catch (const snn::Error& e) {
    const std::string m = e.what();
    CHECK(m.find("population 1") != std::string::npos);
    CHECK(m.find("weights too large for fixed point") != std::string::npos);
  }
  // 200 theta fits 32-bit tables but no 8-bit one (|w_q| <= 127 even at k = 0).
  Network wide(1);
  wide.add_layer(column({200.0f}), NeuronParams{});
  CHECK_NOTHROW(snn::engine::FixedNetwork(wide, 16, 32));
  try {
    snn::engine::FixedNetwork f(wide, 16, 8);
    FAIL("no error");
  } catch (const snn::Error& e) { CHECK(std::string(e.what()).find("8-bit weights") != std::string::npos); }
}

TEST_CASE("fixed point: weights round to the nearest unit, halves away from zero, as std::llround does") {
  // Hand-picked halves (k = 1, theta 1: w * 2): 2.5 -> 3 and -2.5 -> -3, where
  // rounding half to even would give 2 and -2.
  Network halves(6);
  Matrix h(1, 6);
  const float w[] = {1.25f, -1.25f, 0.25f, -0.25f, 0.75f, 0.2f};
  const snn::FixedWeight want[] = {3, -3, 1, -1, 2, 0};
  for (std::size_t i = 0; i < 6; ++i) h(0, i) = w[i];
  halves.add_layer(h, NeuronParams{1.0, ResetMode::Subtract, 1.0, 0});
  const snn::engine::FixedNetwork fh(halves, 1);
  for (std::size_t i = 0; i < 6; ++i) CHECK(fh.connection(0).row(i)[0] == want[i]);

  // Random weights at k = 16, theta 1.5, against std::llround in double.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  Network net(300);
  Matrix m(40, 300);
  for (float& x : m.data) x = u(rng);
  net.add_layer(m, NeuronParams{1.5, ResetMode::Subtract, 1.0, 0});
  const snn::engine::FixedNetwork f(net);
  REQUIRE(f.report(0).bits == 16);
  for (std::size_t s = 0; s < 300; ++s)
    for (std::size_t t = 0; t < 40; ++t)
      REQUIRE(f.connection(0).row(s)[t] == std::llround(static_cast<double>(m(t, s)) * 65536.0 / 1.5));
}

TEST_CASE("fixed point: k = 16 by default, lowered when a target's sum |w| reaches 2^24 units") {
  Network net(4);
  Matrix m(2, 4, 0.3f);
  m(1, 0) = 200.0f;  // neuron 1's fan-in sum: 200.9 theta
  net.add_layer(m, NeuronParams{2.0, ResetMode::Subtract, 1.0, 0});
  const snn::engine::FixedNetwork f(net);
  const auto& rep = f.report(0);
  CHECK(rep.requested_bits == 16);
  // 100.45 theta (theta = 2) * 2^k < 2^24  <=>  k <= 17.35 ... with theta 2: 200.9 / 2 * 2^16 < 2^24 holds
  CHECK(rep.bits == 16);
  CHECK(f.params(1).threshold == 65536);
  CHECK(f.connection(0).row(0)[0] == 9830);     // 0.3 / 2 * 65536 = 9830.4
  CHECK(f.connection(0).row(0)[1] == 6553600);  // 200 / 2 * 65536
  CHECK(rep.max_fan_in_sum == 6553600 + 3 * 9830);
  CHECK(rep.max_abs_error <= rep.unit / 2);
  CHECK(rep.unit == Approx(2.0 / 65536));

  Matrix big(1, 4, 200.0f);  // sum 800 / theta 1 = 800 theta: 800 * 2^15 < 2^24 <= 800 * 2^16
  Network net2(4);
  net2.add_layer(big, NeuronParams{});
  const snn::engine::FixedNetwork f2(net2);
  CHECK(f2.report(0).bits == 14);  // 800 * 2^14 = 13.1 M < 16.8 M; 800 * 2^15 = 26.2 M too much
  CHECK(f2.params(1).threshold == 1 << 14);

  Network huge(1);
  huge.add_layer(Matrix(1, 1, 3.0e7f), NeuronParams{});
  CHECK_THROWS_AS(snn::engine::FixedNetwork(huge), snn::Error);
  CHECK_THROWS_AS(snn::engine::FixedNetwork(net, 25), snn::Error);
}

TEST_CASE("bad run options and inputs are errors, not silent results") {
  Network net(3);
  net.add_layer(Matrix(2, 3, 0.1f), NeuronParams{});
  const Engine engine(net);
  std::vector<std::uint8_t> values(6, 10), labels(2, 0);
  const snn::engine::SampleSet set{2, 3, values, labels};
  RunOptions o;
  o.steps = 0;
  CHECK_THROWS_AS(engine.run(set, o), snn::Error);
  o.steps = 5;
  o.threads = -1;
  CHECK_THROWS_AS(engine.run(set, o), snn::Error);
  o.threads = 1;
  o.step_block = -1;
  CHECK_THROWS_AS(engine.run(set, o), snn::Error);
  o.step_block = 0;
  o.input.dt = 0.0;
  CHECK_THROWS_AS(engine.run(set, o), snn::Error);
  o.input.dt = 0.005;
  const snn::engine::SampleSet wrong{3, 2, values, labels};
  CHECK_THROWS_AS(engine.run(wrong, o), snn::Error);
  const snn::engine::SampleSet short_set{3, 3, values, labels};
  CHECK_THROWS_AS(engine.run(short_set, o), snn::Error);
  CHECK_NOTHROW(engine.run(set, o));
}

TEST_CASE("check_cancel is called every 16 steps within a sample and its exception stops the run") {
  Network net(3);
  net.add_layer(Matrix(2, 3, 0.1f), NeuronParams{});
  std::vector<std::uint8_t> values(6, 200), labels(2, 0);
  const snn::engine::SampleSet set{2, 3, values, labels};
  struct Stop {};
  for (const bool dense : {false, true}) {
    INFO((dense ? "dense baseline" : "event engine"));
    RunOptions o;
    o.steps = 1000;
    o.threads = 1;
    int calls = 0;
    // The third call (step 32 of the first sample) abandons the run: a long
    // sample stops within kCancelCheckSteps steps, not at its end.
    o.check_cancel = [&] {
      if (++calls == 3) throw Stop{};
    };
    if (dense) {
      CHECK_THROWS_AS(snn::engine::DenseSimulator(net).run(set, o), Stop);
    } else {
      CHECK_THROWS_AS(Engine(net).run(set, o), Stop);
    }
    CHECK(calls == 3);
    // Without a throw it is called ceil(1000 / 16) = 63 times per sample
    // (per batch for the dense baseline, which steps both samples together).
    calls = -1000000;
    const RunResult r = dense ? snn::engine::DenseSimulator(net).run(set, o) : Engine(net).run(set, o);
    CHECK(calls == -1000000 + (dense ? 63 : 2 * 63));
    CHECK(r.samples == 2);
  }
}

TEST_CASE("a potential leaving the fixed-point range is reported, not wrapped") {
  Network net(1);
  // -0.9 theta per step at k = 16: -58982 units per step; -2^30 is passed after ~18205 steps.
  net.add_layer(column({-0.9f}), NeuronParams{});
  const snn::test::AlwaysOnInput input(1);
  RunOptions o = snn::test::hand_options(20000);
  o.record_spikes = false;
  try {
    Engine(net).run(input.set(), o);
    FAIL("no error");
  } catch (const snn::Error& e) {
    CHECK(std::string(e.what()).find("left the fixed-point range") != std::string::npos);
    CHECK(std::string(e.what()).find("step 18204") != std::string::npos);
  }
  o.steps = 18000;
  CHECK_NOTHROW(Engine(net).run(input.set(), o));
}

TEST_CASE("in blocks of steps, the error names the neuron and step met first step by step") {
  // Both neurons fire at every step (subtract reset) and keep the rest, at
  // k = 16 bits (limit 2^30 units = 16384 theta): population 1 gains 190
  // theta a step and leaves the range after step 86 (190 * 87 > 16384),
  // population 2 gains 200 theta a step and leaves it after step 81. Both
  // fall in the block of steps 80 - 95, where population 1 runs first.
  Network net(1);
  net.add_layer(column({191.0f}), NeuronParams{});
  net.add_layer(column({201.0f}), NeuronParams{});
  const snn::test::AlwaysOnInput input(1);
  RunOptions o = snn::test::hand_options(200);
  auto error_of = [&](Step block) {
    o.step_block = block;
    try {
      Engine(net).run(input.set(), o);
    } catch (const snn::Error& e) { return std::string(e.what()); }
    return std::string("no error");
  };
  const std::string step_by_step = error_of(1);
  CHECK(step_by_step.find("of population 2 left the fixed-point range") != std::string::npos);
  CHECK(step_by_step.find("at step 81;") != std::string::npos);
  CHECK(error_of(16) == step_by_step);
  CHECK(error_of(200) == step_by_step);
}

namespace {

// n random samples for `net` (all labelled 3): what the thread and block
// tests run, with options that record spikes on one thread. Not copyable:
// `set` views the two vectors.
struct RandomSamples {
  std::vector<std::uint8_t> values, labels;
  snn::engine::SampleSet set;
  RandomSamples(std::mt19937_64& rng, const Network& net, std::size_t n)
      : values(snn::test::random_inputs(rng, n, net.input_size())), labels(n, 3), set{n, net.input_size(), values, labels} {}
  RandomSamples(const RandomSamples&) = delete;
  RandomSamples& operator=(const RandomSamples&) = delete;
};

RunOptions recording_options(Step steps) {
  RunOptions o;
  o.steps = steps;
  o.record_spikes = true;
  o.threads = 1;
  return o;
}

// Spikes in every layer of a three-layer MLP run, so that a comparison of
// runs compares something.
void require_activity(const RunResult& r) {
  const auto pops = r.spikes_per_population();
  REQUIRE(pops[1] > 100);
  REQUIRE(pops[2] > 100);
  REQUIRE(pops[3] > 10);
}

}  // namespace

TEST_CASE("blocks of steps give the results of step-by-step runs") {
  std::mt19937_64 rng(17);
  for (FanOutFormat format : {FanOutFormat::Dense, FanOutFormat::Sparse}) {
    INFO(snn::to_string(format));
    // Delay 1 on the middle connection (random_mlp).
    const Network net =
        snn::test::random_mlp(rng, format, 0.004, {120, 400, 300, 10}, {{0.01, 0.04}, {0.004, 0.02}, {0.0, 0.03}});
    REQUIRE(net.connection(1).delay() == 1);
    const RandomSamples samples(rng, net, 5);
    const snn::engine::SampleSet& set = samples.set;
    RunOptions o = recording_options(45);
    o.early_exit.enabled = true;  // measured, not stopping: the SynOps at the exit count steps up to it
    o.early_exit.stop = false;
    o.early_exit.margin = 1;
    o.early_exit.hold = 2;
    o.step_block = 1;
    const Engine engine(net);
    const RunResult base = engine.run(set, o);
    require_activity(base);
    REQUIRE(std::count_if(base.exit_step.begin(), base.exit_step.end(), [](Step s) { return s >= 0; }) > 0);
    for (Step block : {2, 7, 16, 45, 64}) {
      INFO("block " << block);
      o.step_block = block;
      o.threads = 1;
      o.parallelism = snn::engine::Parallelism::Samples;
      snn::test::require_same_run(base, engine.run(set, o), true);
      o.threads = 2;  // and latency mode, every population and step split
      o.parallelism = snn::engine::Parallelism::Targets;
      o.min_parallel_work = 0;
      snn::test::require_same_run(base, engine.run(set, o), true);
      o.min_parallel_work = RunOptions{}.min_parallel_work;
    }
  }
}

namespace {

// A network large enough for latency mode to split populations (>= 256
// neurons per thread), with activity in every layer.
Network threaded_network(FanOutFormat format, std::mt19937_64& rng) {
  return snn::test::random_mlp(rng, format, 0.004, {120, 1100, 600, 10}, {{0.01, 0.04}, {0.004, 0.02}, {0.01, 0.05}});
}

}  // namespace

TEST_CASE("identical results for 1 to 4 threads, both parallel modes, and across runs") {
  std::mt19937_64 rng(7);
  for (FanOutFormat format : {FanOutFormat::Dense, FanOutFormat::Sparse}) {
    INFO(snn::to_string(format));
    const Network net = threaded_network(format, rng);
    const RandomSamples samples(rng, net, 6);
    const snn::engine::SampleSet& set = samples.set;
    RunOptions o = recording_options(30);
    const Engine engine(net);
    const RunResult base = engine.run(set, o);
    require_activity(base);
    // 4 threads on a 2-core machine: members start late or are preempted, so
    // the chunks of a step fall to the threads differently from run to run.
    for (int threads : {1, 2, 3, 4}) {
      for (auto mode : {snn::engine::Parallelism::Samples, snn::engine::Parallelism::Targets}) {
        INFO("threads " << threads << ", " << snn::engine::to_string(mode));
        o.threads = threads;
        o.parallelism = mode;
        o.min_parallel_work = 0;  // split every population and step
        snn::test::require_same_run(base, engine.run(set, o), true);
        o.min_parallel_work = RunOptions{}.min_parallel_work;
        snn::test::require_same_run(base, engine.run(set, o), true);
      }
    }
    // Another seed draws other input spikes.
    o.input.seed = 1;
    CHECK(engine.run(set, o).spike_trains != base.spike_trains);
  }
}

TEST_CASE("SynOps equal the recorded spikes times their fan-out") {
  std::mt19937_64 rng(11);
  for (FanOutFormat format : {FanOutFormat::Dense, FanOutFormat::Sparse}) {
    INFO(snn::to_string(format));
    const Network net = threaded_network(format, rng);
    const std::size_t n = 4;
    const auto values = snn::test::random_inputs(rng, n, net.input_size());
    const std::vector<std::uint8_t> labels(n, 0);
    const snn::engine::SampleSet set{n, net.input_size(), values, labels};
    RunOptions o;
    o.steps = 25;
    o.record_spikes = true;
    o.threads = 2;
    const RunResult r = Engine(net).run(set, o);
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<snn::OpCount> expected(net.connection_count(), 0);
      for (const auto& e : r.spike_trains[i]) {
        if (e.population >= net.connection_count()) continue;  // output spikes go nowhere
        const auto& c = net.connection(e.population);
        if (e.step + c.delay() < o.steps) expected[e.population] += c.fan_out(e.neuron);
      }
      for (std::size_t c = 0; c < net.connection_count(); ++c) CHECK(r.synops[i * net.connection_count() + c] == expected[c]);
      // Per step, the same count: a spike at step t through a delay-d connection is delivered at t + d.
      std::vector<snn::OpCount> per_step(static_cast<std::size_t>(o.steps), 0);
      for (const auto& e : r.spike_trains[i]) {
        if (e.population >= net.connection_count()) continue;
        const auto& c = net.connection(e.population);
        if (e.step + c.delay() < o.steps) per_step[static_cast<std::size_t>(e.step + c.delay())] += c.fan_out(e.neuron);
      }
      for (Step t = 0; t < o.steps; ++t)
        CHECK(r.step_synops[i * static_cast<std::size_t>(o.steps) + static_cast<std::size_t>(t)] ==
              per_step[static_cast<std::size_t>(t)]);

      // The engine's own work on connection 0: rows of the inputs that spike at
      // random (p < 1), plus one precomputed row per step and, once, the rows
      // summed into it (inputs with p >= 1: byte >= 128 at p = 2x).
      const auto& c0 = net.connection(0);
      snn::OpCount always = 0, random_rows = 0;
      for (std::size_t k = 0; k < net.input_size(); ++k)
        if (set.sample(i)[k] >= 128) always += c0.fan_out(k);
      for (const auto& e : r.spike_trains[i])
        if (e.population == 0 && set.sample(i)[e.neuron] < 128) random_rows += c0.fan_out(e.neuron);
      const snn::OpCount steps_with_constant = always > 0 ? static_cast<snn::OpCount>(o.steps) : 0;
      CHECK(r.work[i * net.connection_count()] == random_rows + always + steps_with_constant * c0.target_size());
      CHECK(r.work[i * net.connection_count()] < r.synops[i * net.connection_count()]);
    }
    CHECK(r.dense_macs() == (120 * 1100 + 1100 * 600 + 600 * 10) * static_cast<snn::OpCount>(o.steps) * n);
  }
}

TEST_CASE("progress reports are monotone and end with (total, total)") {
  std::mt19937_64 rng(3);
  const Network net = threaded_network(FanOutFormat::Dense, rng);
  const std::size_t n = 20;
  const auto values = snn::test::random_inputs(rng, n, net.input_size());
  const snn::engine::SampleSet set{n, net.input_size(), values, {}};
  RunOptions o;
  o.steps = 5;
  o.threads = 2;
  std::vector<std::size_t> seen;
  o.progress = [&](std::size_t done, std::size_t total) {
    CHECK(total == n);
    seen.push_back(done);
  };
  Engine(net).run(set, o);
  REQUIRE(!seen.empty());
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(seen.back() == n);
}

TEST_CASE("the vectorised neuron update equals the portable one") {
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<snn::Potential> pot(-200000, 200000), cur(-70000, 70000);
  for (ResetMode mode : {ResetMode::Subtract, ResetMode::Zero}) {
    for (snn::NeuronId n : {1u, 15u, 16u, 17u, 100u, 1200u}) {
      std::vector<snn::Potential> v(n), c(n);
      for (auto& x : v) x = pot(rng);
      for (auto& x : c) x = cur(rng);
      auto v2 = v;
      snn::engine::SpikeList s1, s2;
      snn::NeuronId b1, b2;
      if (mode == ResetMode::Subtract) {
        b1 = snn::engine::detail::update_plain<ResetMode::Subtract>(65536, v.data(), c.data(), 0, n, s1);
        b2 = snn::engine::detail::update_plain_generic<ResetMode::Subtract>(65536, v2.data(), c.data(), 0, n, s2);
      } else {
        b1 = snn::engine::detail::update_plain<ResetMode::Zero>(65536, v.data(), c.data(), 0, n, s1);
        b2 = snn::engine::detail::update_plain_generic<ResetMode::Zero>(65536, v2.data(), c.data(), 0, n, s2);
      }
      CHECK(b1 == snn::engine::kAllInRange);
      CHECK(b2 == snn::engine::kAllInRange);
      CHECK(v == v2);
      CHECK(s1 == s2);
      if (n >= 100) CHECK(!s1.empty());
    }
  }
  // Out-of-range potentials are found by both, at the same neuron.
  std::vector<snn::Potential> v(40, 0), c(40, 0);
  v[21] = -snn::engine::kPotentialLimit;
  c[21] = -1;
  auto v2 = v;
  snn::engine::SpikeList s;
  CHECK(snn::engine::detail::update_plain<ResetMode::Subtract>(65536, v.data(), c.data(), 0, 40, s) == 21);
  CHECK(snn::engine::detail::update_plain_generic<ResetMode::Subtract>(65536, v2.data(), c.data(), 0, 40, s) == 21);
  // In either block, at either edge of a block: exactly -limit is in range,
  // one unit past it is not; the vector path finds the same first neuron.
  for (std::size_t at : {0u, 15u, 16u, 31u}) {
    for (const snn::Potential step : {0, -1}) {
      std::vector<snn::Potential> a(40, 0), b(40, 0), cur(40, 0);
      a[at] = b[at] = -snn::engine::kPotentialLimit;
      cur[at] = step;
      a[at + 3] = b[at + 3] = -snn::engine::kPotentialLimit;  // a later one, found only if `at` is not
      cur[at + 3] = -1;
      const snn::NeuronId want = static_cast<snn::NeuronId>(step == 0 ? at + 3 : at);
      CHECK(snn::engine::detail::update_plain<ResetMode::Zero>(65536, a.data(), cur.data(), 0, 40, s) == want);
      CHECK(snn::engine::detail::update_plain_generic<ResetMode::Zero>(65536, b.data(), cur.data(), 0, 40, s) == want);
    }
  }
  // The upper edge, checked after the reset: a neuron at the limit that gets
  // 2^20 fires and keeps limit + 2^20 - 65536 (out of range); one that ends
  // exactly at limit + 65536 keeps the limit (in range).
  for (const snn::Potential below : {65536 - (1 << 20), 0}) {
    std::vector<snn::Potential> a(40, 0), b(40, 0), cur(40, 0);
    a[20] = b[20] = snn::engine::kPotentialLimit + below;
    cur[20] = 1 << 20;
    const snn::NeuronId want = below == 0 ? 20 : snn::engine::kAllInRange;
    CHECK(snn::engine::detail::update_plain<ResetMode::Subtract>(65536, a.data(), cur.data(), 0, 40, s) == want);
    CHECK(snn::engine::detail::update_plain_generic<ResetMode::Subtract>(65536, b.data(), cur.data(), 0, 40, s) == want);
  }
}

TEST_CASE("fixed point: the quantisation report counts weights rounded to 0 and the largest relative error") {
  // theta 1, k = 4: unit 1/16. 1.0 -> 16 (exact), 0.01 -> 0 (rounded to 0,
  // error 0.01), -0.3 -> -5 (-0.3125, error 0.0125), 0 stays 0 (not counted).
  Network net(4);
  Matrix m(1, 4, 0.0f);
  m(0, 0) = 1.0f;
  m(0, 1) = 0.01f;
  m(0, 2) = -0.3f;
  net.add_layer(m, NeuronParams{});
  const snn::engine::FixedNetwork f(net, 4);
  const auto& rep = f.report(0);
  CHECK(rep.bits == 4);
  CHECK(rep.nonzero == 3);
  CHECK(rep.zeroed == 1);
  CHECK(rep.max_abs_weight == 16);
  CHECK(rep.max_abs_error == Approx(0.0125).margin(1e-7));
  CHECK(rep.max_relative_error == Approx(0.0125).margin(1e-7));
  CHECK(rep.large());  // 1 of 3 weights rounded to 0, and 1.25 % > 1 %
  // At k = 16 the same weights quantise finely: 0.01 -> 655, nothing zeroed.
  const snn::engine::FixedNetwork fine(net);
  CHECK(fine.report(0).zeroed == 0);
  CHECK(fine.report(0).max_relative_error < 1e-5);
  CHECK_FALSE(fine.report(0).large());
}

TEST_CASE("fixed point: 16- and 8-bit weights lower k until the largest weight fits the width") {
  // Largest weight 3 theta: 8 bits need 3 * 2^k <= 127, so k = 5 (96);
  // 16 bits need 3 * 2^k <= 32767, so k = 13 (24576). theta 1.
  Network net(3);
  Matrix m(2, 3, 0.0f);
  m(0, 0) = 3.0f;
  m(0, 1) = -0.5f;
  m(1, 2) = 0.02f;
  net.add_layer(m, NeuronParams{});
  const snn::engine::FixedNetwork f8(net, 16, 8), f16(net, 16, 16), f32(net, 16, 32);
  CHECK(f8.report(0).bits == 5);
  CHECK(f8.report(0).weight_bits == 8);
  CHECK(f8.params(1).threshold == 32);
  CHECK(f8.report(0).max_abs_weight == 96);
  CHECK(f16.report(0).bits == 13);
  CHECK(f16.report(0).max_abs_weight == 24576);
  CHECK(f32.report(0).bits == 16);
  // The tables hold the narrow type only; weight(i) reads them: dense [sources x targets].
  const auto& c8 = f8.connection(0);
  CHECK(c8.weights.empty());
  REQUIRE(c8.weights8.size() == 6);
  CHECK(c8.weight(0 * 2 + 0) == 96);                  // 3 * 32
  CHECK(c8.weight(1 * 2 + 0) == -16);                 // -0.5 * 32
  CHECK(c8.weight(2 * 2 + 1) == 1);                   // 0.02 * 32 = 0.64 -> 1
  CHECK(f16.connection(0).weight(2 * 2 + 1) == 164);  // 0.02 * 8192 = 163.84
  CHECK(f8.bytes() < f16.bytes());
  CHECK(f16.bytes() < f32.bytes());
  // A weight >= 2^(bits-1) theta cannot fit even at k = 0.
  Matrix huge(1, 3, 200.0f);
  Network net2(3);
  net2.add_layer(huge, NeuronParams{});
  CHECK_THROWS_WITH(snn::engine::FixedNetwork(net2, 16, 8), Catch::Contains("8-bit weights"));
  CHECK_THROWS_WITH(snn::engine::FixedNetwork(net, 16, 12), Catch::Contains("32, 16 or 8"));
}

TEST_CASE("a part of a sample set keyed by its global ids gives the whole set's results for its samples") {
  // What an MPI rank runs: samples [k, n) with first_id = k must see the
  // input spikes the whole run gives them, so their figures are the same.
  std::mt19937_64 rng(5);
  const Network net = threaded_network(FanOutFormat::Dense, rng);
  const std::size_t n = 7, k = 3;
  const auto values = snn::test::random_inputs(rng, n, net.input_size());
  const std::vector<std::uint8_t> labels(n, 1);
  const snn::engine::SampleSet whole{n, net.input_size(), values, labels};
  snn::engine::SampleSet part{n - k, net.input_size(), std::span(values).subspan(k * net.input_size()),
                              std::span(labels).subspan(k)};
  RunOptions o;
  o.steps = 25;
  o.record_spikes = true;
  o.threads = 1;
  const Engine engine(net);
  const RunResult all = engine.run(whole, o);
  const RunResult unkeyed = engine.run(part, o);
  part.first_id = k;
  const RunResult keyed = engine.run(part, o);
  for (std::size_t i = 0; i < n - k; ++i) {
    INFO("sample " << i + k);
    CHECK(keyed.spike_trains[i] == all.spike_trains[i + k]);
    CHECK(keyed.predictions[i] == all.predictions[i + k]);
  }
  CHECK(std::equal(keyed.step_synops.begin(), keyed.step_synops.end(), all.step_synops.begin() + k * o.steps));
  // The dense baseline keys its input the same way.
  const snn::engine::DenseSimulator dense(engine.shared_network());
  CHECK(dense.run(part, o, {}).population_spikes == keyed.population_spikes);
  // Without the offset the part's samples draw sample 0's, 1's, ... numbers.
  CHECK(unkeyed.spike_trains[0] != all.spike_trains[k]);
  // The ids must stay 32-bit.
  part.first_id = std::numeric_limits<snn::SampleId>::max();
  CHECK_THROWS_WITH(engine.run(part, o), Catch::Contains("exceed the 32-bit sample ids"));
}
