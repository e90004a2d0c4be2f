// FixedNetwork's delivery tables moved into caller-provided memory
// (share_tables: what MPI ranks on one node use to read one copy): the moved
// network reads the same weights and simulates the same spikes as the
// original, and a writer and a reader on one memory agree.
#include "snn/engine/dense_simulator.h"
#include "snn/engine/engine.h"
#include "snn/engine/fixed_point.h"
#include "snn/error.h"

#include "engine_test_util.h"

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <utility>
#include <vector>

using snn::ConnectionSpec;
using snn::FanOutFormat;
using snn::LayerSpec;
using snn::Matrix;
using snn::Network;
using snn::NeuronParams;
using snn::Shape;
using snn::engine::FixedNetwork;
using snn::engine::kTableAlignment;

namespace {

// Room for `bytes` at a kTableAlignment boundary, and the owner that keeps it.
struct Buffer {
  std::shared_ptr<std::vector<std::byte>> storage;
  std::byte* memory = nullptr;
  std::byte* end = nullptr;
  explicit Buffer(std::size_t bytes) : storage(std::make_shared<std::vector<std::byte>>(bytes + kTableAlignment)) {
    auto at = reinterpret_cast<std::uintptr_t>(storage->data());
    memory = storage->data() + (kTableAlignment - at % kTableAlignment) % kTableAlignment;
    end = memory + bytes;
  }
  // Whether p points into the `bytes` at `memory` (compared as integers:
  // pointers into different objects have no order).
  bool holds(const void* p) const {
    const auto b = reinterpret_cast<std::uintptr_t>(p);
    return b >= reinterpret_cast<std::uintptr_t>(memory) && b < reinterpret_cast<std::uintptr_t>(end);
  }
};

// Dense or sparse: 60 inputs, two hidden layers (one with a delay), 4 outputs.
Network mlp(FanOutFormat format, std::mt19937_64& rng) {
  return snn::test::random_mlp(rng, format, 0.01, {60, 50, 30, 4}, {{0.02, 0.06}, {0.02, 0.08}, {0.03, 0.1}});
}

// conv 3x3 (stride 1, pad 1) -> avgpool 2 -> conv 2x3 (strides 2, 1) -> flatten -> dense.
Network conv_net(std::mt19937_64& rng) {
  const Shape in{2, 8, 8};
  LayerSpec c2 = LayerSpec::conv(4, 2, 2, 0);
  c2.kernel_w = 3;
  c2.stride_w = 1;
  const std::vector<LayerSpec> layers{LayerSpec::conv(3, 3, 1, 1), LayerSpec::avgpool(2), c2, LayerSpec::flatten(),
                                      LayerSpec::dense(5)};
  return snn::test::random_layered_network(rng, in, layers, [](const LayerSpec& l, std::size_t) {
    ConnectionSpec spec;
    if (l.kind == snn::LayerKind::AvgPool) spec.pool_scale = 1.5;
    return std::pair{NeuronParams{0.6, snn::ResetMode::Subtract, 1.0, 0}, spec};
  });
}

// Every weight `a` reads, by every reader, equals `b`'s.
void require_same_weights(const FixedNetwork& a, const FixedNetwork& b) {
  REQUIRE(a.connection_count() == b.connection_count());
  CHECK(a.bytes() == b.bytes());
  for (std::size_t c = 0; c < a.connection_count(); ++c) {
    INFO("connection " << c);
    const auto& x = a.connection(c);
    const auto& y = b.connection(c);
    REQUIRE(x.weights.size() == y.weights.size());
    REQUIRE(x.weights16.size() == y.weights16.size());
    REQUIRE(x.weights8.size() == y.weights8.size());
    REQUIRE(x.target_ids.size() == y.target_ids.size());
    for (std::size_t i = 0; i < x.target_ids.size(); ++i) REQUIRE(x.target_ids[i] == y.target_ids[i]);
    const std::size_t stored = std::max({x.weights.size(), x.weights16.size(), x.weights8.size()});
    for (std::size_t i = 0; i < stored; ++i) REQUIRE(x.weight(i) == y.weight(i));
    REQUIRE(x.tap_major.size() == y.tap_major.size());
    REQUIRE(x.tap_major16.size() == y.tap_major16.size());
    REQUIRE(x.tap_major8.size() == y.tap_major8.size());
    const std::size_t taps = x.tap_major.size() + x.tap_major16.size() + x.tap_major8.size();
    for (std::size_t i = 0; i < taps; ++i) {
      switch (a.weight_bits()) {
        case 8: REQUIRE(x.table<std::int8_t>()[i] == y.table<std::int8_t>()[i]); break;
        case 16: REQUIRE(x.table<std::int16_t>()[i] == y.table<std::int16_t>()[i]); break;
        default: REQUIRE(x.table<std::int32_t>()[i] == y.table<std::int32_t>()[i]); break;
      }
    }
    CHECK(a.dense_float_weights(c) == b.dense_float_weights(c));
  }
}

// Connection c's delivery table at the network's width.
const void* table_of(const FixedNetwork& f, std::size_t c) {
  const auto& fc = f.connection(c);
  switch (f.weight_bits()) {
    case 8: return fc.table<std::int8_t>();
    case 16: return fc.table<std::int16_t>();
    default: return fc.table<std::int32_t>();
  }
}

// The delivery tables of `f` lie in `buffer`, and `f` holds none of its own.
void require_tables_in(const FixedNetwork& f, const Buffer& buffer) {
  CHECK(f.tables_shared());
  for (std::size_t c = 0; c < f.connection_count(); ++c) {
    const auto& fc = f.connection(c);
    const void* table = table_of(f, c);
    if (fc.format == FanOutFormat::AvgPool) {
      CHECK_FALSE(fc.weights.shared());  // its one weight stays
      continue;
    }
    INFO("connection " << c);
    CHECK(buffer.holds(table));
    CHECK(reinterpret_cast<std::uintptr_t>(table) % kTableAlignment == 0);
    if (fc.format == FanOutFormat::Sparse) CHECK(buffer.holds(fc.target_ids.data()));
    if (fc.format == FanOutFormat::Conv) CHECK_FALSE(fc.weights.shared());  // the dense baseline's kernel stays
  }
}

snn::engine::RunOptions options() {
  snn::engine::RunOptions o;
  o.steps = 25;
  o.threads = 1;
  o.record_spikes = true;
  return o;
}

}  // namespace

TEST_CASE("tables moved into separate memory give the same weights and spikes, dense, sparse and conv at 32, 16 and 8 bits") {
  std::mt19937_64 rng(13);
  const std::vector<std::pair<const char*, Network>> nets{
      {"dense", mlp(FanOutFormat::Dense, rng)}, {"sparse", mlp(FanOutFormat::Sparse, rng)}, {"conv", conv_net(rng)}};
  for (const auto& [name, net] : nets) {
    const std::size_t n = 4;
    const auto values = snn::test::random_inputs(rng, n, net.input_size());
    const std::vector<std::uint8_t> labels(n, 1);
    const snn::engine::SampleSet set{n, net.input_size(), values, labels};
    for (int bits : {32, 16, 8}) {
      INFO(name << ", " << bits << "-bit weights");
      const auto original = std::make_shared<const FixedNetwork>(net, 16, bits);
      // Tables of its own start at kTableAlignment too, as shared ones do.
      for (std::size_t c = 0; c < original->connection_count(); ++c)
        if (original->connection(c).format != FanOutFormat::AvgPool)
          CHECK(reinterpret_cast<std::uintptr_t>(table_of(*original, c)) % kTableAlignment == 0);
      auto moved = std::make_shared<FixedNetwork>(net, 16, bits);
      Buffer buffer(moved->table_bytes());
      std::weak_ptr<std::vector<std::byte>> alive = buffer.storage;
      moved->share_tables(buffer.memory, buffer.storage, true);
      buffer.storage.reset();  // the network keeps the memory alive now
      REQUIRE_FALSE(alive.expired());
      require_tables_in(*moved, buffer);
      require_same_weights(*moved, *original);
      CHECK_FALSE(original->tables_shared());

      const auto base = snn::engine::Engine(original).run(set, options());
      REQUIRE(base.spikes_per_population().back() > 0);  // every layer carries spikes to the output
      snn::test::require_same_run(snn::engine::Engine(moved).run(set, options()), base, true);
      // The dense baseline reads the tables through dense_float_weights and a
      // conv's kernel: the same spikes as the event engine on the same tables.
      snn::test::require_same_run(snn::engine::DenseSimulator(moved).run(set, options()),
                                  snn::engine::DenseSimulator(original).run(set, options()), true);

      // A copy views the same memory and keeps it alive too.
      auto copy = std::make_unique<FixedNetwork>(*moved);
      CHECK(copy->tables_shared());
      moved.reset();
      CHECK_FALSE(alive.expired());
      require_same_weights(*copy, *original);
      copy.reset();
      CHECK(alive.expired());
    }
  }
}

TEST_CASE("a writer and a reader on one memory agree, and a copy of an unshared network owns its tables") {
  std::mt19937_64 rng(5);
  for (FanOutFormat format : {FanOutFormat::Dense, FanOutFormat::Sparse}) {
    for (int bits : {32, 16, 8}) {
      INFO(snn::to_string(format) << ", " << bits << "-bit weights");
      const Network net = mlp(format, rng);
      const auto values = snn::test::random_inputs(rng, 3, net.input_size());
      const std::vector<std::uint8_t> labels(3, 0);
      const snn::engine::SampleSet set{3, net.input_size(), values, labels};
      const FixedNetwork original(net, 16, bits);
      auto writer = std::make_shared<FixedNetwork>(net, 16, bits);
      auto reader = std::make_shared<FixedNetwork>(net, 16, bits);
      REQUIRE(writer->table_bytes() == reader->table_bytes());
      Buffer buffer(writer->table_bytes());
      // The reader checks the header: nothing was written yet.
      CHECK_THROWS_AS(reader->share_tables(buffer.memory, buffer.storage, false), snn::Error);
      CHECK_FALSE(reader->tables_shared());
      writer->share_tables(buffer.memory, buffer.storage, true);
      reader->share_tables(buffer.memory, buffer.storage, false);
      require_tables_in(*reader, buffer);
      require_same_weights(*reader, original);
      for (std::size_t c = 0; c < net.connection_count(); ++c) CHECK(table_of(*writer, c) == table_of(*reader, c));
      snn::test::require_same_run(snn::engine::Engine(reader).run(set, options()),
                                  snn::engine::Engine(writer).run(set, options()), true);
      // A second move, or a network of another width on this memory, is refused.
      CHECK_THROWS_AS(writer->share_tables(buffer.memory, buffer.storage, true), snn::Error);
      FixedNetwork other(net, 16, bits == 8 ? 16 : 8);
      CHECK_THROWS_AS(other.share_tables(buffer.memory, buffer.storage, false), snn::Error);

      // Unshared: a copy has its own tables, equal to the original's.
      const FixedNetwork copy(original);
      CHECK_FALSE(copy.tables_shared());
      CHECK(table_of(copy, 0) != table_of(original, 0));
      require_same_weights(copy, original);
    }
  }
  // Memory off the alignment is refused, not used slowly or wrongly.
  std::mt19937_64 rng2(1);
  FixedNetwork f(mlp(FanOutFormat::Dense, rng2));
  Buffer buffer(f.table_bytes() + 1);
  CHECK_THROWS_AS(f.share_tables(buffer.memory + 1, buffer.storage, true), snn::Error);
  CHECK_FALSE(f.tables_shared());
}
