#include "snn/tool/report.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using snn::tool::RunReport;

namespace {
RunReport small_report() {
  RunReport r;
  r.command = "run";
  r.dataset = "tiny";
  r.normalisation = "data";
  r.normalisation_factors = {2.0, 0.5};
  r.checkpoints = {2, 4};
  auto& s = r.snn;
  s.samples = 4;
  s.steps = 4;
  s.dt_ms = 5;
  s.accuracy_curve = {0.25, 0.5, 0.75, 0.75};
  s.synops_curve = {10, 30, 60, 100};
  s.predictions = {1, 2, 0, 3};
  s.labels = {1, 2, 0, 0};
  s.connections = {{"input->out", 3, 2, 0, 6, 100, 24}};
  s.populations = {{"input", 3, 20, 1000}, {"output", 2, 4, 100}};
  r.timings["training"] = 1.5;
  return r;
}
}  // namespace

TEST_CASE("steps_to_fraction finds the first step at or above the fraction of the final accuracy") {
  auto r = small_report();
  CHECK(r.snn.steps_to_fraction(0.99) == 3);    // 0.99 * 0.75 = 0.7425, first reached at step 3
  CHECK(r.snn.steps_to_fraction(0.5) == 2);     // 0.375 -> step 2 (0.5)
  CHECK(r.snn.steps_to_fraction(0.3) == 1);     // 0.225 -> step 1 (0.25)
  CHECK(r.snn.synops_per_sample() == 100);
  CHECK(r.snn.dense_macs_per_sample() == 24);
}

TEST_CASE("results.json holds the figures, the checkpoints and timings apart") {
  const auto r = small_report();
  const auto j = nlohmann::json::parse(snn::tool::results_json(r));
  CHECK(j["snn"]["accuracy"] == 0.75);
  REQUIRE(j["snn"]["checkpoints"].size() == 2);
  CHECK(j["snn"]["checkpoints"][0]["step"] == 2);
  CHECK(j["snn"]["checkpoints"][0]["accuracy"] == 0.5);
  CHECK(j["snn"]["checkpoints"][1]["time_ms"] == 20.0);
  CHECK(j["snn"]["steps_to_99pct_of_final"] == 3);
  CHECK(j["snn"]["dense_macs_per_synop"] == Approx(0.24));
  CHECK(j["timings"]["training"] == 1.5);
  CHECK(j["ann"]["accuracy"].is_null());
}

TEST_CASE("write_report writes every file whole, results.json last") {
  const fs::path dir = fs::temp_directory_path() / "snnsim_test_report";
  fs::remove_all(dir);
  const auto r = small_report();
  const auto files = snn::tool::write_report(r, dir, snn::tool::have_gnuplot(), true);
  REQUIRE(!files.empty());
  CHECK(files.back().filename() == "results.json");
  for (const auto& f : files) CHECK(fs::file_size(f) > 0);
  std::ifstream csv(dir / "accuracy_vs_time.csv");
  std::string header, first;
  std::getline(csv, header);
  std::getline(csv, first);
  CHECK(first == "1,5,0.250000,10.0");
  if (snn::tool::have_gnuplot()) {
    CHECK(fs::exists(dir / "accuracy_vs_time.png"));
    snn::tool::plot_accuracy({dir / "results.json", dir / "results.json"}, dir / "compare.png");
    CHECK(fs::file_size(dir / "compare.png") > 1000);
  }
  // No temporaries are left behind.
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string()[0] != '.');
  fs::remove_all(dir);
}
