#include "snn/engine/encoder.h"

#include "snn/engine/engine.h"
#include "snn/error.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

using namespace snn::engine;

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors") {
  using W = std::array<std::uint32_t, 4>;
  CHECK(philox4x32({0, 0, 0, 0}, {0, 0}) == W{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(philox4x32({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
        W{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
        W{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

TEST_CASE("p = min(1, x * max_rate * dt): the seed's p = 2x and the paper's p = x") {
  InputOptions seed;  // defaults: 400 Hz, 5 ms
  CHECK(seed.rate_per_step() == Approx(2.0));
  InputOptions paper;
  paper.max_rate = 1000.0;
  paper.dt = 0.001;
  CHECK(paper.rate_per_step() == Approx(1.0));

  // p = 2x: bytes >= 128 (x > 0.5) always spike, byte 0 never, the rest at random.
  std::vector<std::uint8_t> x{0, 1, 64, 127, 128, 200, 255};
  PreparedInput in;
  prepare_input(x.data(), x.size(), 2.0, in);
  CHECK(in.always == std::vector<snn::NeuronId>{4, 5, 6});
  CHECK(in.random == std::vector<snn::NeuronId>{1, 2, 3});
  CHECK(in.cutoff[1] == static_cast<std::uint64_t>(std::ldexp(64.0 / 255.0 * 2.0, 32)));
  prepare_input(x.data(), x.size(), 1.0, in);  // p = x: only 255 is certain
  CHECK(in.always == std::vector<snn::NeuronId>{6});
  CHECK(in.random.size() == 5);
}

TEST_CASE("Bernoulli rates match p and inputs are independent") {
  // 10 inputs at p = 0.05 .. 0.95, 20000 steps each: standard error <= 0.0036.
  std::vector<std::uint8_t> x(10);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<std::uint8_t>(std::lround((0.05 + 0.1 * i) * 255.0));
  PreparedInput in;
  prepare_input(x.data(), x.size(), 1.0, in);
  REQUIRE(in.random.size() == 10);
  const int steps = 20000;
  std::vector<int> count(10, 0);
  int both = 0;  // inputs 4 and 5 spiking together
  std::vector<snn::NeuronId> spikes;
  for (int t = 0; t < steps; ++t) {
    spikes.clear();
    random_input_spikes(in, 42, 3, t, spikes);
    bool s4 = false, s5 = false;
    for (auto i : spikes) {
      ++count[i];
      s4 |= i == 4;
      s5 |= i == 5;
      // the list and the single-draw function agree
      CHECK(input_spikes(42, 3, t, i, in.cutoff[i]));
    }
    both += s4 && s5;
  }
  for (std::size_t i = 0; i < 10; ++i) {
    const double p = x[i] / 255.0;
    const double se = std::sqrt(p * (1 - p) / steps);
    INFO("input " << i << " p " << p);
    CHECK(std::fabs(count[i] / double(steps) - p) < 5 * se);
  }
  const double p4 = x[4] / 255.0, p5 = x[5] / 255.0;
  const double se = std::sqrt(p4 * p5 * (1 - p4 * p5) / steps);
  CHECK(std::fabs(both / double(steps) - p4 * p5) < 5 * se);
}

TEST_CASE("the spike list holds exactly the random inputs whose single draw spikes") {
  // Every kind of input: p = 0 (never), p >= 1 (always, not listed), and
  // random ones in blocks that are full, partly random and spread over more
  // than 16 blocks (two groups of the vectorised draw).
  std::vector<std::uint8_t> x(150);
  std::mt19937 rng(3);
  for (auto& v : x) v = static_cast<std::uint8_t>(rng() % 4 == 0 ? 0 : rng() % 256);
  PreparedInput in;
  prepare_input(x.data(), x.size(), 2.0, in);
  REQUIRE(in.random.size() > 40);
  REQUIRE(!in.always.empty());
  std::vector<snn::NeuronId> spikes;
  for (snn::Step t = 0; t < 200; ++t) {
    spikes.assign({7u});  // appended to, not replaced
    random_input_spikes(in, 9, 4, t, spikes);
    std::vector<snn::NeuronId> expect{7u};
    for (std::size_t r = 0; r < in.random.size(); ++r)
      if (input_spikes(9, 4, t, in.random[r], in.cutoff[r])) expect.push_back(in.random[r]);
    REQUIRE(spikes == expect);
  }
}

TEST_CASE("input spikes depend on seed, sample and step, not on threads") {
  std::vector<std::uint8_t> x(64, 60);
  PreparedInput in;
  prepare_input(x.data(), x.size(), 2.0, in);
  std::vector<snn::NeuronId> a, b, c, d;
  random_input_spikes(in, 1, 0, 5, a);
  random_input_spikes(in, 1, 0, 5, b);
  random_input_spikes(in, 2, 0, 5, c);
  random_input_spikes(in, 1, 1, 5, d);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != d);

  // Through the engine: per-sample input spike counts are the same for 1 and 2 threads.
  snn::Network net(64);
  net.add_layer(snn::Matrix(3, 64, 0.01f), snn::NeuronParams{});
  const std::size_t n = 16;
  std::vector<std::uint8_t> values(n * 64);
  std::mt19937 rng(1);
  for (auto& v : values) v = static_cast<std::uint8_t>(rng() % 256);
  const SampleSet set{n, 64, values, {}};
  RunOptions o;
  o.steps = 50;
  o.threads = 1;
  const auto r1 = Engine(net).run(set, o);
  o.threads = 2;
  const auto r2 = Engine(net).run(set, o);
  CHECK(r1.population_spikes == r2.population_spikes);
  CHECK(r1.population_spikes[0] > 0);
}

TEST_CASE("encoding names and options are validated") {
  CHECK(parse_encoding("rate") == Encoding::Poisson);
  CHECK(parse_encoding("analog") == Encoding::Analog);
  CHECK_THROWS_AS(parse_encoding("burst"), snn::Error);
  InputOptions o;
  o.max_rate = -1;
  CHECK_THROWS_AS(validate(o), snn::Error);
  o.max_rate = 100;
  o.dt = std::nan("");
  CHECK_THROWS_AS(validate(o), snn::Error);
}

TEST_CASE("SampleSet views a dataset split") {
  snn::Dataset d;
  d.count = 3;
  d.rows = 2;
  d.cols = 2;
  d.pixels = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  d.labels = {7, 8, 9};
  const SampleSet s = SampleSet::of(d, 1, 2);
  CHECK(s.count == 2);
  CHECK(s.size == 4);
  CHECK(s.sample(1)[0] == 9);
  CHECK(s.labels[0] == 8);
  CHECK(SampleSet::of(d).count == 3);
  CHECK_THROWS_AS(SampleSet::of(d, 2, 2), snn::Error);
}
