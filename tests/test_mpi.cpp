// snnsim over MPI ranks (tools/include/snn/tool/mpi.h): the split of the
// samples, and end-to-end `mpirun -np N snnsim ...` runs on this machine
// (loopback only) compared with one-process runs. Without SNNSIM_MPI or
// mpirun the end-to-end tests say so and pass having checked nothing else.
#include "snn/tool/mpi.h"

#include "snn/conversion/layers.h"
#include "snn/conversion/normalise.h"
#include "snn/conversion/trainer.h"
#include "snnsim_process.h"

#include <fmt/format.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace fs = std::filesystem;
using json = nlohmann::json;
using snn::tool::mpi::Range;
using snn::tool::mpi::share;

namespace {

const fs::path kTiny = fs::path(SNNSIM_SOURCE_DIR) / "configs" / "tiny.toml";

// The whole job is bounded: mpirun kills it after this many seconds.
constexpr int kJobTimeout = 240;

std::string mpirun(int ranks) {
  // Loopback only: shared memory between the ranks of this machine, no network
  // interface (pml ob1: no probing of UCX or OFI, 0.2 s per rank); as root
  // (containers, CI) mpirun must be told that is fine.
  return fmt::format(
      "{} --oversubscribe --allow-run-as-root --timeout {} --mca btl self,vader --mca pml ob1 "
      "--mca btl_vader_single_copy_mechanism none --mca oob_tcp_if_include lo -np {}",
      SNNSIM_MPIEXEC, kJobTimeout, ranks);
}

bool can_run_mpi() {
  if (!snn::tool::mpi::built()) {
    WARN("skipped: snnsim was built without MPI (SNNSIM_MPI=OFF, e.g. libopenmpi-dev not installed)");
    return false;
  }
  if (!fs::exists(SNNSIM_MPIEXEC)) {
    WARN("skipped: " << SNNSIM_MPIEXEC << " not found (install openmpi-bin)");
    return false;
  }
  return true;
}

using snn::test::Outcome;
using snn::test::run_shell;

fs::path scratch(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / "snnsim_mpi" / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p;
}

const std::string kCache = (fs::temp_directory_path() / "snnsim_mpi" / "cache").string();

// results.json without what may differ between runs of the same config:
// wall times, thread count, output directory.
std::string comparable(const fs::path& out) {
  std::ifstream in(out / "results.json");
  REQUIRE(in.good());
  json j = json::parse(in);
  j.erase("timings");
  j["config"]["simulation"].erase("threads");
  j["config"]["output"].erase("dir");
  j["weights"].erase("cached");  // the first run of a test may train
  return j.dump(1);
}

// `snnsim <command> tiny ...` under `launcher` (empty: one process) into `out`.
Outcome snnsim(const std::string& launcher, const std::string& command, const fs::path& out, const std::string& extra) {
  return run_shell(fmt::format("{} {} {} {} --quiet --out {} --set 'output.cache=\"{}\"' --set output.plots=false {}", launcher,
                               snn::test::kSnnsim.string(), command, kTiny.string(), out.string(), kCache, extra));
}

// snnsim(...) that must succeed (its output shown if not): its results.json, comparable.
std::string comparable_run(const std::string& launcher, const std::string& command, const fs::path& out,
                           const std::string& extra) {
  const Outcome o = snnsim(launcher, command, out, extra);
  INFO(o.output);
  REQUIRE(o.status == 0);
  return comparable(out);
}

}  // namespace

TEST_CASE("shares are contiguous, in rank order, cover every item once, and keep whole units") {
  for (std::size_t total : {0u, 1u, 2u, 7u, 200u, 1234u, 10000u}) {
    for (int ranks = 1; ranks <= 5; ++ranks) {
      for (std::size_t unit : {1u, 3u, 500u}) {
        INFO(total << " items, " << ranks << " ranks, unit " << unit);
        std::size_t next = 0, most = 0, least = total;
        for (int r = 0; r < ranks; ++r) {
          const Range s = share(total, r, ranks, unit);
          CHECK(s.first == next);
          if (s.first + s.count < total) CHECK(s.count % unit == 0);  // only the end may cut a unit short
          next = s.first + s.count;
          most = std::max(most, s.count);
          least = std::min(least, s.count);
        }
        CHECK(next == total);
        CHECK(most - least <= 2 * unit - 1);  // one unit more, and a short last unit
      }
    }
  }
  CHECK(share(10, 0, 3) == Range{0, 4});
  CHECK(share(10, 1, 3) == Range{4, 3});
  CHECK(share(10, 2, 3) == Range{7, 3});
  CHECK(share(1234, 2, 3, 500) == Range{1000, 234});
  CHECK(share(1234, 1, 4, 500) == Range{500, 500});
  CHECK(share(1234, 3, 4, 500) == Range{1234, 0});
  // A lone extra unit with a short last unit: the last rank takes both.
  CHECK(share(8004, 0, 2, 500) == Range{0, 4000});
  CHECK(share(8004, 1, 2, 500) == Range{4000, 4004});
  CHECK(share(1996, 0, 2, 500) == Range{0, 1000});
  CHECK(share(1996, 1, 2, 500) == Range{1000, 996});
  CHECK(share(1100, 0, 2, 500) == Range{0, 500});
  CHECK(share(1100, 1, 2, 500) == Range{500, 600});
  CHECK(share(11, 0, 3, 3) == Range{0, 3});  // 4 units, the last of 2
  CHECK(share(11, 2, 3, 3) == Range{6, 5});
  CHECK_THROWS(share(10, 3, 3));
}

namespace {

// 1700 random 8 x 8 images of 4 classes (4 batches of 500, the last short)
// and a random 64-40-30-4 network: many activations, some near ties.
snn::DatasetSplits random_images() {
  std::mt19937 rng(7);
  snn::Dataset d;
  d.count = 1700;
  d.rows = d.cols = 8;
  d.num_classes = 4;
  std::uniform_int_distribution<int> byte(0, 255), label(0, 3);
  for (std::size_t i = 0; i < d.count * 64; ++i) d.pixels.push_back(static_cast<std::uint8_t>(byte(rng)));
  for (std::size_t i = 0; i < d.count; ++i) d.labels.push_back(static_cast<std::uint8_t>(label(rng)));
  return {"random", {}, d, d};
}

snn::WeightSet random_weights() {
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.0f, 0.2f);
  snn::WeightSet w;
  for (auto [out, in] : {std::pair{40, 64}, {30, 40}, {4, 30}}) {
    snn::Matrix m(static_cast<std::size_t>(out), static_cast<std::size_t>(in));
    for (float& v : m.data) v = g(rng);
    w.layers.push_back(m);
  }
  return w;
}

}  // namespace

TEST_CASE("the activation passes give the one-thread whole-set results for any thread count") {
  // One process, so this checks the split over threads (the ranks' split is
  // the same share() over whole batches): every batch single-threaded in
  // OpenBLAS, whatever --threads says.
  const snn::DatasetSplits data = random_images();
  const snn::WeightSet ann = random_weights();
  snn::conversion::set_blas_threads(1);
  for (bool relu : {true, false}) {
    const auto expected = snn::conversion::evaluate(ann, data.test, relu, 1234);
    for (int threads : {1, 2, 3, 5}) {
      INFO("output_relu " << relu << ", " << threads << " threads");
      const auto e = snn::tool::mpi::evaluate(ann, data.test, relu, 1234, threads);
      CHECK(e.samples == 1234);
      CHECK(e.correct == expected.correct);
      CHECK(e.accuracy == expected.accuracy);
      CHECK(e.predicted == expected.predicted);
      CHECK(e.never_predicted == expected.never_predicted);
    }
  }
  for (auto method : {snn::Normalisation::Data, snn::Normalisation::Robust}) {
    snn::conversion::NormaliseOptions o;
    o.method = method;
    o.samples = 1600;
    o.percentile = 99.0;
    snn::WeightSet expected = ann;
    snn::conversion::set_blas_threads(1);
    snn::conversion::normalise(expected, o, &data.train);
    for (int threads : {1, 2, 3, 5}) {
      INFO(snn::to_string(method) << " normalisation, " << threads << " threads");
      snn::conversion::set_blas_threads(2);  // what the pass must not use, and must leave as it was
      snn::WeightSet w = ann;
      snn::tool::mpi::normalise(w, o, data.train, threads);
      CHECK(w.normalisation.factors == expected.normalisation.factors);
      CHECK(w.normalisation.samples == 1600);
      CHECK(w.layers == expected.layers);
      CHECK(snn::conversion::blas_threads() == 2);
    }
  }
}

TEST_CASE("threads per rank: at most the cores, 0 meaning the node's cores shared by its ranks") {
  const int cores = snn::tool::mpi::threads_per_rank(0);  // one process: all of them
  CHECK(cores >= 1);
  CHECK(snn::tool::mpi::threads_per_rank(1) == 1);
  CHECK(snn::tool::mpi::threads_per_rank(cores + 3) == cores);
  CHECK(snn::tool::mpi::node_size() == 1);
  CHECK_THROWS(snn::tool::mpi::threads_per_rank(-1));
}

TEST_CASE("one process without mpirun is rank 0 of 1") {
  CHECK(snn::tool::mpi::rank() == 0);
  CHECK(snn::tool::mpi::size() == 1);
  CHECK(snn::tool::mpi::where().empty());
}

TEST_CASE("mpirun with 2 and 3 ranks writes the one-process results.json, data and robust normalisation") {
  if (!can_run_mpi()) return;
  // 200 samples: 100 + 100 and 67 + 67 + 66; robust normalisation merges histograms.
  for (const char* norm : {"data", "robust"}) {
    INFO(norm << " normalisation");
    const std::string set = fmt::format("--threads 1 --set 'normalisation.method=\"{}\"' --set normalisation.samples=1200", norm);
    const fs::path one = scratch(fmt::format("one-{}", norm));
    const std::string expected = comparable_run("", "run", one, set);
    for (int ranks : {2, 3}) {
      for (int threads : {1, 2}) {
        INFO(ranks << " ranks x " << threads << " threads");
        const fs::path out = scratch(fmt::format("{}-r{}-t{}", norm, ranks, threads));
        CHECK(comparable_run(mpirun(ranks), "run", out,
                             fmt::format("--set 'normalisation.method=\"{}\"' "
                                         "--set normalisation.samples=1200 --threads {}",
                                         norm, threads)) == expected);
        // Only rank 0 writes: no staging directory of another rank is left.
        std::size_t entries = 0;
        for ([[maybe_unused]] const auto& e : fs::directory_iterator(out.parent_path()))
          if (e.path().filename().string().find(out.filename().string()) != std::string::npos) ++entries;
        CHECK(entries == 1);
      }
    }
  }
}

TEST_CASE("the ANN accuracy and normalisation split over ranks and threads give the one-process results") {
  if (!can_run_mpi()) return;
  // 1100 test samples: 3 evaluation batches (500, 500, 100) for 1, 2 or 3
  // ranks of 1 or 2 threads; 1500 normalisation images: 3 batches too.
  const std::string set =
      "--limit 1100 --set simulation.steps=10 --set simulation.checkpoints=[5,10] "
      "--set normalisation.samples=1500";
  const fs::path one = scratch("split-one");
  const std::string expected = comparable_run("", "run", one, set + " --threads 1");
  {
    std::ifstream in(one / "results.json");
    const json j = json::parse(in);
    CHECK(j["snn"]["samples"] == 1100);
    CHECK(j["timings"].contains("ann_accuracy"));
    CHECK(j["timings"].contains("load_data"));
  }
  const fs::path two_threads = scratch("split-one-t2");
  CHECK(comparable_run("", "run", two_threads, set + " --threads 2") == expected);
  for (int ranks : {2, 3}) {
    for (int threads : {1, 2}) {
      INFO(ranks << " ranks x " << threads << " threads");
      const fs::path out = scratch(fmt::format("split-r{}-t{}", ranks, threads));
      CHECK(comparable_run(mpirun(ranks), "run", out, fmt::format("{} --threads {}", set, threads)) == expected);
    }
  }
  // --threads 0: each of 2 ranks on this node takes half its cores, not all of them.
  const fs::path out = scratch("split-r2-t0");
  CHECK(comparable_run(mpirun(2), "run", out, set + " --threads 0") == expected);
  std::ifstream in(out / "results.json");
  CHECK(json::parse(in)["timings"]["threads"] == std::max(1, snn::tool::mpi::threads_per_rank(0) / 2));
}

TEST_CASE("mpirun simulate and bench agree with one process") {
  if (!can_run_mpi()) return;
  // A converted weight directory, simulated by 1 and 3 ranks.
  const fs::path conv = scratch("convert");
  const Outcome c = snnsim("", "convert", conv, "");
  INFO(c.output);
  REQUIRE(c.status == 0);
  const std::string weights = fmt::format("--set 'network.weights=\"{}\"'", (conv / "weights").string());
  const fs::path one = scratch("sim-one");
  const std::string expected = comparable_run("", "simulate", one, weights);
  const fs::path three = scratch("sim-three");
  CHECK(comparable_run(mpirun(3), "simulate", three, weights + " --threads 1") == expected);
  // The 3 ranks of this machine read one copy of the engine's tables (mpi::share_tables).
  {
    std::ifstream one_in(one / "results.json"), three_in(three / "results.json");
    const json one_t = json::parse(one_in)["timings"], three_t = json::parse(three_in)["timings"];
    CHECK(one_t["ranks"] == 1);
    CHECK(one_t["tables_shared_by"] == 1);
    CHECK(three_t["ranks"] == 3);
    CHECK(three_t["tables_shared_by"] == 3);
    CHECK(three_t["table_bytes"] == one_t["table_bytes"]);
    CHECK(three_t["table_bytes"] > 0);
  }

  // bench: every simulator's gathered result equals the others' (exit 0), and
  // the JSON says how many ranks ran.
  const fs::path bench_json = scratch("bench.json");
  const Outcome d =
      run_shell(fmt::format("{} {} bench {} --quiet --set 'output.cache=\"{}\"' --samples 30 --repeat 1 --no-bound "
                            "--threads 1 --json {}",
                            mpirun(2), snn::test::kSnnsim.string(), kTiny.string(), kCache, bench_json.string()));
  INFO(d.output);
  REQUIRE(d.status == 0);
  CHECK(d.output.find("event == dense per step") != std::string::npos);
  std::ifstream in(bench_json);
  REQUIRE(in.good());
  const json j = json::parse(in);
  CHECK(j["ranks"] == 2);
  CHECK(j["identical"]["dense"] == true);
  CHECK(d.output.find("one copy shared by the 2 ranks of a node") != std::string::npos);
  for (const auto& x : j["precisions"]) CHECK(x["tables_shared_by"] == 2);
}

TEST_CASE("a rank without samples and the early-exit arrays gather to the one-process results") {
  if (!can_run_mpi()) return;
  // 2 samples over 3 ranks: rank 2 simulates none.
  const std::string extra = "--limit 2 --set simulation.early_exit=\"measure\"";
  const std::string expected = comparable_run("", "run", scratch("few-one"), extra);
  const fs::path three = scratch("few-three");
  CHECK(comparable_run(mpirun(3), "run", three, extra + " --threads 1") == expected);
  std::ifstream in(three / "results.json");
  CHECK(json::parse(in)["snn"]["samples"] == 2);
}

TEST_CASE("a failure on a non-zero rank stops every rank, exits non-zero and publishes nothing") {
  if (!can_run_mpi()) return;
  // Rank 2 of 3 fails (SNNSIM_MPI_FAIL_RANK: a test hook in the sharded run)
  // while ranks 0 and 1 go on to wait for its results.
  const fs::path out = scratch("fail");
  const Outcome o =
      run_shell(fmt::format("SNNSIM_MPI_FAIL_RANK=2 {} -x SNNSIM_MPI_FAIL_RANK {} run {} --quiet --out {} "
                            "--set 'output.cache=\"{}\"' --threads 1",
                            mpirun(3), snn::test::kSnnsim.string(), kTiny.string(), out.string(), kCache));
  INFO(o.output);
  CHECK(o.status != 0);
  CHECK(o.output.find("snnsim: error (rank 2 of 3): ") != std::string::npos);
  CHECK(o.output.find("MPI_ABORT") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
  for (const auto& e : fs::directory_iterator(out.parent_path()))
    CHECK(e.path().filename().string().find(".fail.") == std::string::npos);  // no staging left
}

TEST_CASE("commands that do not share their work refuse to run under mpirun") {
  if (!can_run_mpi()) return;
  // convert would have every rank write the same weight directory.
  const fs::path out = scratch("convert-mpi");
  const Outcome o = snnsim(mpirun(2), "convert", out, "");
  INFO(o.output);
  CHECK(o.status != 0);
  CHECK(o.output.find("snnsim convert runs in one process") != std::string::npos);
  CHECK_FALSE(fs::exists(out / "weights"));
  // bench --latency times one process's threads; refused before any rank
  // loads or trains (a cache of its own stays unwritten).
  const fs::path lat = scratch("latency-mpi");
  const Outcome l =
      snnsim(mpirun(2), "bench", lat, fmt::format("--latency --set 'output.cache=\"{}\"'", (lat / "cache").string()));
  INFO(l.output);
  CHECK(l.status != 0);
  CHECK(l.output.find("--latency times one process's threads") != std::string::npos);
  CHECK_FALSE(fs::exists(lat / "cache"));
}

TEST_CASE("SIGTERM to mpirun stops every rank with a non-zero exit and publishes nothing") {
  if (!can_run_mpi()) return;
  const fs::path out = scratch("sigterm");
  // Long enough to be mid-simulation when the signal comes: every test image
  // for 10000 steps (some 5 s per rank).
  std::vector<std::string> args{"-c",
                                fmt::format("exec {} {} run {} --out {} --set 'output.cache=\"{}\"' --set simulation.limit=0 "
                                            "--set simulation.steps=10000 --set simulation.checkpoints=[] --threads 1",
                                            mpirun(2), snn::test::kSnnsim.string(), kTiny.string(), out.string(), kCache)};
  snn::test::Child job(args, "/bin/sh");
  REQUIRE(job.wait_for("simulating", 120));
  job.signal(SIGTERM);
  const int status = job.finish(60);
  INFO(job.output());
  CHECK(status != 0);
  CHECK(job.seconds_since_signal() < 30);
  CHECK_FALSE(fs::exists(out));
  CHECK(job.output().find("interrupted") != std::string::npos);
}
