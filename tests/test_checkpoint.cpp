// Training checkpoints: the file round-trips bit-exactly, damaged files are
// errors naming the file, and a training interrupted after any epoch and
// resumed from its checkpoint ends bit-identical to one never interrupted
// (the independent expectation: the uninterrupted run itself).
#include "snn/conversion/checkpoint.h"
#include "snn/conversion/trainer.h"
#include "snn/error.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

namespace fs = std::filesystem;
using namespace snn;
using namespace snn::conversion;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = (fs::path(SNNSIM_BINARY_DIR) / "test_tmp") / "snnsim_test_checkpoint" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Four noisy class prototypes on 8 x 8 images: learnable in a few epochs.
Dataset synthetic(std::size_t count, std::uint32_t seed) {
  Dataset d;
  d.count = count;
  d.rows = 8;
  d.cols = 8;
  d.num_classes = 4;
  std::mt19937 gen(seed);
  d.pixels.resize(count * 64);
  d.labels.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto label = static_cast<std::uint8_t>(gen() % 4);
    d.labels[i] = label;
    for (std::size_t k = 0; k < 64; ++k) {
      const int base = (k / 16 == label) ? 200 : 20;
      d.pixels[i * 64 + k] = static_cast<std::uint8_t>(base + static_cast<int>(gen() % 50));
    }
  }
  return d;
}

TrainConfig config_for(const fs::path& checkpoint, std::size_t epochs) {
  TrainConfig c;
  c.network.input = Shape{64, 1, 1};
  c.network.layers = {LayerSpec::dense(32, "fc1"), LayerSpec::dense(16, "fc2"), LayerSpec::dense(4, "fc3")};
  c.network.dropout = 0.25f;  // dropout masks depend on the step counter: resuming must restore it
  c.epochs = epochs;
  c.batch_size = 30;  // 200 samples: the last batch of each epoch is a short one
  c.seed = 5;
  c.blas_threads = 1;
  c.checkpoint = checkpoint;
  return c;
}

// Throws at the first batch of `epoch` (1-based), as the tool does on SIGINT.
struct StopAt : TrainObserver {
  std::size_t epoch;
  std::size_t resumed_at = 0;
  explicit StopAt(std::size_t e) : epoch(e) {}
  void on_batch(std::size_t e, std::size_t, std::size_t, double) override {
    if (e == epoch) throw Error("stop");
  }
  void on_resume(std::size_t done, std::size_t) override { resumed_at = done; }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename F>
void require_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    FAIL("expected snn::Error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    for (const auto& p : parts) CHECK(msg.find(p) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("a checkpoint file round-trips bit-exactly") {
  const fs::path file = fresh_dir("round") / "train.ckpt";
  TrainCheckpoint c;
  c.fingerprint = 0xfedcba9876543210ull;
  c.epochs_done = 2;
  c.step = 14;
  c.seconds = 1.25;
  c.epochs = {{1, 3, 0.75, 0.5, 0.5}, {2, 3, 0.25, 0.875, 1.25}};
  c.weights = {Matrix(3, 2), Matrix(1, 3)};
  for (auto& m : c.weights)
    for (std::size_t i = 0; i < m.data.size(); ++i) m.data[i] = static_cast<float>(i) * 0.1f - 1e-39f;  // a subnormal in each
  c.adam_m = {std::vector<float>(6, 0.5f), std::vector<float>(3, -0.25f)};
  c.adam_v = {std::vector<float>(6, 1e-8f), std::vector<float>(3, 3.0f)};
  save_checkpoint(file, c);
  const TrainCheckpoint back = load_checkpoint(file);
  CHECK(back.fingerprint == c.fingerprint);
  CHECK(back.epochs_done == 2);
  CHECK(back.step == 14);
  CHECK(back.seconds == 1.25);
  REQUIRE(back.epochs.size() == 2);
  CHECK(back.epochs[1].epoch == 2);
  CHECK(back.epochs[1].loss == 0.25);
  CHECK(back.epochs[1].train_accuracy == 0.875);
  CHECK(back.weights == c.weights);
  CHECK(back.adam_m == c.adam_m);
  CHECK(back.adam_v == c.adam_v);

  // Inconsistent states are refused and leave the old file as it was.
  TrainCheckpoint bad = c;
  bad.adam_v[1].pop_back();
  require_error([&] { save_checkpoint(file, bad); }, {file.string(), "tensor 1"});
  CHECK(load_checkpoint(file).step == 14);
}

TEST_CASE("damaged checkpoints are errors naming the file") {
  const fs::path dir = fresh_dir("damaged");
  const fs::path file = dir / "train.ckpt";
  TrainCheckpoint c;
  c.weights = {Matrix(4, 4)};
  c.adam_m = {std::vector<float>(16)};
  c.adam_v = {std::vector<float>(16)};
  save_checkpoint(file, c);
  const std::string good = slurp(file);

  spit(file, "");
  require_error([&] { load_checkpoint(file); }, {file.string(), "not an snnsim training checkpoint"});
  spit(file, "PK\x03\x04 something else entirely");
  require_error([&] { load_checkpoint(file); }, {file.string(), "not an snnsim training checkpoint"});
  spit(file, good.substr(0, good.size() - 5));
  require_error([&] { load_checkpoint(file); }, {file.string(), "corrupt checkpoint"});
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x10;
  spit(file, flipped);
  require_error([&] { load_checkpoint(file); }, {file.string(), "corrupt checkpoint", "checksum"});
  require_error([&] { load_checkpoint(dir / "missing.ckpt"); }, {"missing.ckpt", "no such file"});
  require_error([&] { load_checkpoint(dir); }, {dir.string(), "directory"});
}

TEST_CASE("a training resumed after any epoch ends bit-identical to an uninterrupted one") {
  const fs::path dir = fresh_dir("resume");
  const Dataset train_set = synthetic(200, 1);
  const Dataset test_set = synthetic(60, 2);
  constexpr std::size_t kEpochs = 4;
  const TrainResult whole = train(config_for(dir / "whole.ckpt", kEpochs), train_set, &test_set);
  REQUIRE(whole.epochs.size() == kEpochs);
  // The uninterrupted run left its final state as a checkpoint.
  CHECK(load_checkpoint(dir / "whole.ckpt").weights == whole.weights);

  for (std::size_t stop : {2u, 3u, 4u}) {
    INFO("interrupted during epoch " << stop);
    const fs::path ckpt = dir / fmt::format("stop{}.ckpt", stop);
    StopAt stopper(stop);
    CHECK_THROWS_AS(train(config_for(ckpt, kEpochs), train_set, &test_set, &stopper), Error);
    const TrainCheckpoint partial = load_checkpoint(ckpt);
    CHECK(partial.epochs_done == stop - 1);
    CHECK(partial.weights != whole.weights);

    TrainConfig again = config_for(ckpt, kEpochs);
    again.resume = true;
    StopAt observer(0);
    const TrainResult resumed = train(again, train_set, &test_set, &observer);
    CHECK(observer.resumed_at == stop - 1);
    CHECK(resumed.weights == whole.weights);  // every bit
    REQUIRE(resumed.epochs.size() == kEpochs);
    for (std::size_t e = 0; e < kEpochs; ++e) {
      CHECK(resumed.epochs[e].epoch == e + 1);
      CHECK(resumed.epochs[e].loss == whole.epochs[e].loss);
      CHECK(resumed.epochs[e].train_accuracy == whole.epochs[e].train_accuracy);
    }
    REQUIRE(resumed.test);
    CHECK(resumed.test->correct == whole.test->correct);
  }

  SECTION("a finished training's checkpoint resumes to the same result without training") {
    TrainConfig again = config_for(dir / "whole.ckpt", kEpochs);
    again.resume = true;
    StopAt never(1);  // any batch would throw
    CHECK(train(again, train_set, nullptr, &never).weights == whole.weights);
  }
  SECTION("a checkpoint continues into a longer training") {
    const TrainResult six = train(config_for(dir / "six.ckpt", 6), train_set);
    TrainConfig longer = config_for(dir / "whole.ckpt", 6);
    longer.resume = true;
    CHECK(train(longer, train_set).weights == six.weights);
  }
  SECTION("without resume, an existing checkpoint is ignored") {
    TrainConfig fresh = config_for(dir / "whole.ckpt", 1);
    const TrainResult one = train(fresh, train_set);
    CHECK(one.epochs.size() == 1);
    CHECK(load_checkpoint(dir / "whole.ckpt").epochs_done == 1);
  }
}

TEST_CASE("resuming refuses a checkpoint of another training") {
  const fs::path dir = fresh_dir("other");
  const Dataset train_set = synthetic(200, 1);
  train(config_for(dir / "a.ckpt", 2), train_set);

  TrainConfig other_seed = config_for(dir / "a.ckpt", 3);
  other_seed.resume = true;
  other_seed.seed = 6;
  require_error([&] { train(other_seed, train_set); }, {(dir / "a.ckpt").string(), "different training"});

  TrainConfig other_data = config_for(dir / "a.ckpt", 3);
  other_data.resume = true;
  require_error([&] { train(other_data, synthetic(200, 9)); }, {"different training"});

  TrainConfig other_batch = config_for(dir / "a.ckpt", 3);
  other_batch.resume = true;
  other_batch.batch_size = 40;
  require_error([&] { train(other_batch, train_set); }, {"different training"});

  TrainConfig fewer = config_for(dir / "a.ckpt", 1);
  fewer.resume = true;
  require_error([&] { train(fewer, train_set); }, {"2 completed epochs", "more than the 1"});

  // Resuming with no checkpoint there trains from the start.
  TrainConfig none = config_for(dir / "none.ckpt", 2);
  none.resume = true;
  CHECK(train(none, train_set).weights == train(config_for(dir / "b.ckpt", 2), train_set).weights);
}
