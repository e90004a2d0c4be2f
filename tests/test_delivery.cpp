// The dense row-add kernels (delivery.h add_dense_rows, set_dense_rows) against a plain
// int64 sum, at every table width: every row count (the full passes and each
// kind of leftover pass), slices [lo, hi) that start and end anywhere
// (vector tails), weights at the extremes of the width, and no write outside
// the slice. The fused step (dense_fire.h) against the separate row adds and
// neuron update it replaces in the engine.
#include "snn/engine/delivery.h"
#include "snn/engine/dense_fire.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {

template <typename T>
void check_dense_rows(std::mt19937_64& rng) {
  // Table extremes: int16 and int8 use their whole range; int32 tables hold
  // |w| <= 2^23 (fixed_point.h).
  const std::int64_t hi_w = sizeof(T) == 4 ? (std::int64_t{1} << 23) : std::numeric_limits<T>::max();
  const std::int64_t lo_w = sizeof(T) == 4 ? -hi_w : std::numeric_limits<T>::min();
  std::uniform_int_distribution<std::int64_t> weight(lo_w, hi_w);
  for (std::size_t width : {1u, 5u, 16u, 17u, 40u, 70u}) {
    const std::size_t sources = 23;
    std::vector<T> table(sources * width);
    for (auto& w : table) {
      const auto u = rng() % 8;
      w = static_cast<T>(u == 0 ? lo_w : u == 1 ? hi_w : weight(rng));
    }
    for (std::size_t rows = 0; rows <= 19; ++rows) {
      std::vector<snn::NeuronId> ids(rows);
      for (auto& id : ids) id = static_cast<snn::NeuronId>(rng() % sources);
      const std::size_t lo = rng() % (width + 1);
      const std::size_t hi = lo + rng() % (width - lo + 1);
      std::vector<snn::Potential> cur(width);
      for (auto& c : cur) c = static_cast<snn::Potential>(static_cast<std::int64_t>(rng() % 2001) - 1000);
      std::vector<std::int64_t> expect(cur.begin(), cur.end());
      for (std::size_t j = lo; j < hi; ++j)
        for (auto id : ids) expect[j] += table[id * width + j];
      snn::engine::add_dense_rows(cur.data(), table.data(), width, ids, lo, hi);
      INFO("bits " << 8 * sizeof(T) << ", width " << width << ", rows " << rows << ", slice [" << lo << ", " << hi << ")");
      for (std::size_t j = 0; j < width; ++j) REQUIRE(std::int64_t{cur[j]} == expect[j]);
      // set_dense_rows: the same sums into an uninitialised current, starting
      // from `from` (or from 0), nothing written outside the slice.
      std::vector<snn::Potential> from(width);
      for (auto& f : from) f = static_cast<snn::Potential>(static_cast<std::int64_t>(rng() % 2001) - 1000);
      for (const bool zero : {false, true}) {
        std::vector<snn::Potential> out(width, 777777);
        snn::engine::set_dense_rows(out.data(), zero ? nullptr : from.data(), table.data(), width, ids, lo, hi);
        INFO("set_dense_rows, from " << (zero ? "0" : "an array"));
        for (std::size_t j = 0; j < width; ++j) {
          std::int64_t want = 777777;
          if (j >= lo && j < hi) {
            want = zero ? 0 : from[j];
            for (auto id : ids) want += table[id * width + j];
          }
          REQUIRE(std::int64_t{out[j]} == want);
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("dense row adds equal a plain sum for every width, row count and slice") {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 20; ++round) {
    check_dense_rows<std::int32_t>(rng);
    check_dense_rows<std::int16_t>(rng);
    check_dense_rows<std::int8_t>(rng);
  }
}

namespace {

// fire_dense_rows against set_dense_rows + update_neurons (the dense
// baseline's path): the same potentials, spikes and out-of-range neuron.
template <typename T>
void check_fire_dense(std::mt19937_64& rng, snn::ResetMode reset) {
  using namespace snn::engine;
  const std::int64_t hi_w = sizeof(T) == 4 ? 4000 : std::numeric_limits<T>::max() / 8;
  std::uniform_int_distribution<std::int64_t> weight(-hi_w, hi_w);
  for (std::size_t width : {1u, 7u, 16u, 33u, 70u}) {
    const std::size_t sources = 29;
    std::vector<T> table(sources * width);
    for (auto& w : table) w = static_cast<T>(weight(rng));
    for (std::size_t rows = 0; rows <= 27; ++rows) {
      std::vector<snn::NeuronId> ids(rows);
      for (auto& id : ids) id = static_cast<snn::NeuronId>(rng() % sources);
      const std::size_t lo = rng() % (width + 1);
      const std::size_t hi = lo + rng() % (width - lo + 1);
      FixedNeuronParams params;
      params.threshold = static_cast<snn::Potential>(1 + rng() % (2 * hi_w));
      params.reset = reset;
      std::vector<snn::Potential> v(width), from(width);
      for (auto& x : v) x = static_cast<snn::Potential>(static_cast<std::int64_t>(rng() % (4 * hi_w + 1)) - 2 * hi_w);
      for (auto& x : from) x = static_cast<snn::Potential>(static_cast<std::int64_t>(rng() % 2001) - 1000);
      // Now and then a potential near the limit, so that some leave the range.
      if (rng() % 4 == 0 && width > 0)
        v[rng() % width] = snn::engine::kPotentialLimit - static_cast<snn::Potential>(rng() % 3000);
      for (const bool with_from : {false, true}) {
        const snn::Potential* f = with_from ? from.data() : nullptr;
        std::vector<snn::Potential> v_expect = v, cur(width);
        SpikeList s_expect, s_fused = {99};  // appended to, not replaced
        s_expect.push_back(99);
        set_dense_rows(cur.data(), f, table.data(), width, ids, lo, hi);
        const snn::NeuronId bad_expect = update_neurons(params, v_expect.data(), nullptr, cur.data(),
                                                        static_cast<snn::NeuronId>(lo), static_cast<snn::NeuronId>(hi), s_expect);
        std::vector<snn::Potential> v_fused = v;
        const snn::NeuronId bad_fused = reset == snn::ResetMode::Subtract
                                            ? fire_dense_rows<snn::ResetMode::Subtract>(v_fused.data(), f, table.data(), width,
                                                                                        ids, lo, hi, params.threshold, s_fused)
                                            : fire_dense_rows<snn::ResetMode::Zero>(v_fused.data(), f, table.data(), width, ids,
                                                                                    lo, hi, params.threshold, s_fused);
        INFO("bits " << 8 * sizeof(T) << ", width " << width << ", rows " << rows << ", slice [" << lo << ", " << hi << "), from "
                     << with_from << ", reset " << static_cast<int>(reset));
        REQUIRE(bad_fused == bad_expect);
        if (bad_expect != kAllInRange) continue;  // the step is an error: state after it is unspecified
        REQUIRE(std::vector<snn::NeuronId>(s_fused.begin(), s_fused.end()) ==
                std::vector<snn::NeuronId>(s_expect.begin(), s_expect.end()));
        REQUIRE(v_fused == v_expect);
      }
    }
  }
}

}  // namespace

TEST_CASE("the fused dense step reports a potential out of range in a part block, and none outside its slice") {
  using namespace snn::engine;
  // Slice [3, 19) of 20 neurons: one full block and a part block of 3 lanes.
  // Neuron 17 is one unit past the limit; neuron 19, outside the slice, further.
  const std::vector<std::int32_t> table(20, 0);
  std::vector<snn::Potential> v(20, 0);
  v[17] = -kPotentialLimit - 1;
  v[19] = -kPotentialLimit - 100;
  SpikeList spikes;
  CHECK(fire_dense_rows<snn::ResetMode::Subtract>(v.data(), nullptr, table.data(), 20, {}, 3, 19, 1000, spikes) == 17);
  v[17] = -kPotentialLimit;  // exactly at the limit: in range
  CHECK(fire_dense_rows<snn::ResetMode::Subtract>(v.data(), nullptr, table.data(), 20, {}, 3, 19, 1000, spikes) == kAllInRange);
}

TEST_CASE("the fused dense step equals row adds then the neuron update, at every width, row count and slice") {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 10; ++round)
    for (const auto reset : {snn::ResetMode::Subtract, snn::ResetMode::Zero}) {
      check_fire_dense<std::int32_t>(rng, reset);
      check_fire_dense<std::int16_t>(rng, reset);
      check_fire_dense<std::int8_t>(rng, reset);
    }
}
