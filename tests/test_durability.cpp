// Interrupting snnsim (SIGINT/SIGTERM during training or simulation): it exits
// within 2 s with a message and status 128 + signal, writes no results and no
// weights that look valid, keeps the previous results of the same output
// directory, and `--resume` continues the training from its last completed
// epoch to weights bit-identical to an uninterrupted training's.
#include "snnsim_process.h"

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using snn::test::Child;
using snn::test::run_snnsim;

namespace {

const std::string kTiny = (fs::path(SNNSIM_SOURCE_DIR) / "configs" / "tiny.toml").string();

fs::path scratch(const std::string& name) {
  const fs::path p = (fs::path(SNNSIM_BINARY_DIR) / "test_tmp") / "snnsim_durability" / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The one entry of a weight cache directory.
fs::path cache_entry(const fs::path& cache) {
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(cache)) entries.push_back(e.path());
  REQUIRE(entries.size() == 1);
  return entries[0];
}

std::vector<std::string> args(std::vector<std::string> a, const fs::path& out, const fs::path& cache,
                              const std::vector<std::string>& sets) {
  a.insert(a.end(),
           {"--out", out.string(), "--set", fmt::format("output.cache=\"{}\"", cache.string()), "--set", "output.plots=false"});
  for (const auto& s : sets) a.insert(a.end(), {"--set", s});
  return a;
}

}  // namespace

TEST_CASE("SIGINT during training stops within 2 s, writes nothing that looks valid, and --resume ends bit-identical") {
  const fs::path root = scratch("train");
  const fs::path out = root / "out";
  const fs::path cache = root / "cache";
  // Epochs of a few tenths of a second: the signal lands in epoch 2 at the
  // latest a few milliseconds after epoch 1's line, long before the end.
  const std::vector<std::string> sets = {"network.hidden=[300]", "training.epochs=5"};

  Child child(args({"run", kTiny}, out, cache, sets));
  REQUIRE(child.wait_for("epoch  1/5", 300));
  child.signal(SIGINT);
  const int status = child.finish(30);
  INFO(child.output());
  CHECK(status == 130);
  CHECK(child.seconds_since_signal() < 2.0);
  CHECK_THAT(child.output(),
             Catch::Contains("snnsim: error: interrupted during training epoch") && Catch::Contains("--resume to continue"));
  // No results, no staging directory beside them, and a cache entry that is
  // not a weight set: only the checkpoint.
  CHECK_FALSE(fs::exists(out));
  CHECK(names_in(root) == std::vector<std::string>{"cache"});
  const fs::path entry = cache_entry(cache);
  CHECK(names_in(entry) == std::vector<std::string>{"training.ckpt"});

  // --resume continues from the checkpoint...
  const auto resumed = run_snnsim(args({"train", kTiny, "--resume"}, out, cache, sets), 600);
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  CHECK_THAT(resumed.output, Catch::Contains("resuming training after epoch "));
  CHECK_THAT(resumed.output, !Catch::Contains("epoch  1/5"));
  CHECK(names_in(entry) == std::vector<std::string>{"fc1.npy", "fc2.npy", "manifest.json"});  // checkpoint gone once saved

  // ...to the weights of a training never interrupted, bit for bit.
  const fs::path cache2 = root / "cache2";
  const auto whole = run_snnsim(args({"train", kTiny, "--quiet"}, out, cache2, sets), 600);
  REQUIRE(whole.status == 0);
  const fs::path entry2 = cache_entry(cache2);
  CHECK(entry2.filename() == entry.filename());
  for (const char* f : {"fc1.npy", "fc2.npy"}) CHECK(slurp(entry / f) == slurp(entry2 / f));
}

TEST_CASE("SIGINT or SIGTERM during the simulation stops within 2 s and keeps the previous results") {
  const fs::path root = scratch("simulate");
  const fs::path out = root / "out";
  const fs::path cache = root / "cache";
  // A complete run first: its results must survive the interrupted one.
  const auto first = run_snnsim(args({"run", kTiny, "--quiet"}, out, cache, {}), 600);
  INFO(first.output);
  REQUIRE(first.status == 0);
  const std::string results = slurp(out / "results.json");
  REQUIRE_FALSE(results.empty());

  for (const int sig : {SIGINT, SIGTERM}) {
    INFO("signal " << sig);
    // 5000 steps for every test sample: minutes of simulation.
    Child child(args({"run", kTiny}, out, cache, {"simulation.steps=5000", "simulation.limit=0"}));
    REQUIRE(child.wait_for("simulating 1996 test samples", 300));
    ::usleep(300000);  // into the simulation proper
    child.signal(sig);
    const int status = child.finish(30);
    INFO(child.output());
    CHECK(status == 128 + sig);
    CHECK(child.seconds_since_signal() < 2.0);
    CHECK_THAT(child.output(),
               Catch::Contains("snnsim: error: interrupted during the simulation") && Catch::Contains("no results were written"));
    CHECK(slurp(out / "results.json") == results);
    CHECK(names_in(root) == std::vector<std::string>{"cache", "out"});  // no staging directory left
  }
}
