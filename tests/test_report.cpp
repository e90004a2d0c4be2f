#include "snn/tool/report.h"

#include "snn/engine/run.h"
#include "snn/error.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

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
  s.connections = {{"input->out", 3, 2, 0, 6, 100, 24, "dense"}};
  s.populations = {{"input", 3, 20, 1000}, {"output", 2, 4, 100}};
  r.timings["training"] = 1.5;
  return r;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A fresh scratch directory holding small_report()'s results.json in a
// sub-directory whose name has underscores (as config names do).
fs::path results_dir(const std::string& name) {
  const fs::path dir = (fs::path(SNNSIM_BINARY_DIR) / "test_tmp") / name;
  fs::remove_all(dir);
  fs::create_directories(dir / "seed_fc_datanorm");
  auto r = small_report();
  r.ann_accuracy = 0.9;
  std::ofstream(dir / "seed_fc_datanorm" / "results.json") << snn::tool::results_json(r);
  return dir;
}
}  // namespace

TEST_CASE("steps_to_fraction finds the first step at or above the fraction of the final accuracy") {
  auto r = small_report();
  CHECK(r.snn.steps_to_fraction(0.99) == 3);  // 0.99 * 0.75 = 0.7425, first reached at step 3
  CHECK(r.snn.steps_to_fraction(0.5) == 2);   // 0.375 -> step 2 (0.5)
  CHECK(r.snn.steps_to_fraction(0.3) == 1);   // 0.225 -> step 1 (0.25)
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

TEST_CASE("results.json leaves figures that mean nothing null") {
  auto r = small_report();
  // labels {1, 2, 0, 0}: always answering 0 gets 2 of 4, as does this run.
  r.snn.accuracy_curve = {0.25, 0.5, 0.5, 0.5};
  auto j = nlohmann::json::parse(snn::tool::results_json(r));
  CHECK_FALSE(r.snn.above_chance());
  CHECK(j["snn"]["steps_to_99pct_of_final"].is_null());
  CHECK(j["snn"]["early_exit"]["enabled"] == false);
  for (const char* k : {"mean_exit_step", "accuracy", "synops_per_sample"}) CHECK(j["snn"]["early_exit"][k].is_null());
  r.snn.accuracy_curve.back() = 0.75;
  r.snn.early_exit = true;
  r.snn.mean_exit_step = 2.5;
  j = nlohmann::json::parse(snn::tool::results_json(r));
  CHECK(j["snn"]["steps_to_99pct_of_final"] == 4);
  CHECK(j["snn"]["early_exit"]["mean_exit_step"] == 2.5);
  CHECK(j["snn"]["early_exit"]["accuracy"] == 0.0);
  CHECK(j["snn"]["early_exit"]["mode"] == "measure");
  CHECK_THAT(snn::tool::summary_table(r), Catch::Contains("% saved"));
  // Stopped samples: the run's SynOps are the exit's, so no "saved" against themselves.
  r.snn.early_exit_stopped = true;
  CHECK(nlohmann::json::parse(snn::tool::results_json(r))["snn"]["early_exit"]["mode"] == "stop");
  CHECK_THAT(snn::tool::summary_table(r), !Catch::Contains("% saved") && Catch::Contains("samples stopped"));
}

TEST_CASE("an analog input's multiply-adds are reported apart from the SynOps") {
  auto r = small_report();
  r.snn.connections.push_back({"out->out2", 2, 2, 0, 4, 7, 16, "dense"});
  r.snn.connections[0].analog_input = true;  // 100 per sample: MACs
  CHECK(r.snn.synops_per_sample() == 7);
  CHECK(r.snn.analog_input_macs_per_sample() == 100);
  const auto j = nlohmann::json::parse(snn::tool::results_json(r));
  CHECK(j["snn"]["synops_per_sample"] == 7.0);
  CHECK(j["snn"]["analog_input_macs_per_sample"] == 100.0);
  CHECK(j["snn"]["connections"][0]["synops_per_sample"].is_null());
  CHECK(j["snn"]["connections"][0]["analog_input_macs_per_sample"] == 100.0);
  CHECK(j["snn"]["connections"][1]["synops_per_sample"] == 7.0);
  CHECK(j["snn"]["connections"][1]["analog_input_macs_per_sample"].is_null());
  CHECK(nlohmann::json::parse(snn::tool::results_json(small_report()))["snn"]["analog_input_macs_per_sample"].is_null());
}

TEST_CASE("write_report writes every file whole, results.json last") {
  const fs::path dir = (fs::path(SNNSIM_BINARY_DIR) / "test_tmp") / "snnsim_test_report";
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
    for (const char* png :
         {"accuracy_vs_time.png", "accuracy_vs_synops.png", "synops_vs_time.png", "firing_rates.png", "confusion_matrix.png"})
      CHECK_THAT(read_text(dir / png), Catch::StartsWith("\x89PNG"));
    snn::tool::plot_accuracy({dir / "results.json", dir / "results.json"}, dir / "compare.png");
    CHECK(fs::file_size(dir / "compare.png") > 1000);
  }
  // No temporaries are left behind.
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string()[0] != '.');
  fs::remove_all(dir);
}

TEST_CASE("per-class accuracy, the confusion matrix and the never-spiked count, in results.json and per_class.csv") {
  auto r = small_report();
  // labels {1, 2, 0, 0}, predictions {1, 2, 0, 3}; the output population has
  // 2 neurons but a prediction of 3 widens the table to 4 classes.
  CHECK(r.snn.classes() == 4);
  CHECK_FALSE(r.snn.silent_samples().has_value());
  using Row = std::vector<std::size_t>;
  CHECK(snn::tool::confusion_matrix(r.snn) == std::vector<Row>{{1, 0, 0, 1}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 0}});
  auto classes = snn::tool::per_class(r.snn);
  REQUIRE(classes.size() == 4);
  CHECK(classes[0].samples == 2);
  CHECK(classes[0].correct == 1);
  CHECK(classes[0].accuracy() == 0.5);
  CHECK(classes[3].samples == 0);
  CHECK(classes[3].accuracy() == 0.0);
  CHECK_FALSE(classes[0].silent.has_value());
  auto j = nlohmann::json::parse(snn::tool::results_json(r));
  CHECK(j["snn"]["never_spiked"].is_null());
  CHECK(j["snn"]["per_class"][0]["never_spiked"].is_null());

  // Samples 1 and 3 never spiked at the output: sample 1 has label 2, sample 3 label 0.
  r.snn.output_spikes = {5, 0, 3, 0};
  CHECK(r.snn.silent_samples() == std::optional<std::size_t>(2));
  classes = snn::tool::per_class(r.snn);
  CHECK(classes[0].silent == std::optional<std::size_t>(1));
  CHECK(classes[1].silent == std::optional<std::size_t>(0));
  CHECK(classes[2].silent == std::optional<std::size_t>(1));
  j = nlohmann::json::parse(snn::tool::results_json(r));
  CHECK(j["snn"]["never_spiked"] == 2);
  CHECK(j["snn"]["confusion_matrix"][0] == nlohmann::json{1, 0, 0, 1});
  CHECK(j["snn"]["per_class"][0] ==
        nlohmann::json{{"label", 0}, {"samples", 2}, {"correct", 1}, {"accuracy", 0.5}, {"never_spiked", 1}});

  const fs::path dir = (fs::path(SNNSIM_BINARY_DIR) / "test_tmp") / "snnsim_test_report_classes";
  fs::remove_all(dir);
  snn::tool::write_report(r, dir, false, true);
  CHECK(read_text(dir / "per_class.csv") ==
        "label,samples,correct,accuracy,never_spiked,predicted_0,predicted_1,predicted_2,predicted_3\n"
        "0,2,1,0.500000,1,1,0,0,1\n"
        "1,1,1,1.000000,0,0,1,0,0\n"
        "2,1,1,1.000000,1,0,0,1,0\n"
        "3,0,0,0.000000,0,0,0,0,0\n");
  fs::remove_all(dir);
}

TEST_CASE("record_output_spikes sums each sample's output spikes over the classes") {
  snn::engine::RunResult run;
  run.samples = 3;
  run.classes = 2;
  run.output_counts = {0, 0, 4, 1, 0, 7};
  snn::tool::SnnReport s;
  snn::tool::record_output_spikes(s, run);
  CHECK(s.output_spikes == std::vector<std::uint32_t>{0, 5, 7});
  CHECK(s.silent_samples() == std::optional<std::size_t>(1));
}

TEST_CASE("results.json records the machine, and the training machine when known") {
  auto r = small_report();
  auto j = nlohmann::json::parse(snn::tool::results_json(r));
  CHECK(j["weights"]["training_machine"].is_null());
  CHECK_FALSE(j["machine"]["blas_core"].get<std::string>().empty());
  CHECK_THAT(j["machine"]["blas_config"].get<std::string>(), Catch::Contains("OpenBLAS"));
  r.training_machine = snn::MachineRecord{"cpu x", "Zen", "OpenBLAS 0.3", ""};
  j = nlohmann::json::parse(snn::tool::results_json(r));
  CHECK(j["weights"]["training_machine"]["blas_core"] == "Zen");
  CHECK(j["weights"]["training_machine"]["cpu"] == "cpu x");
}

TEST_CASE("snnsim plot writes PNG, SVG or PDF by the extension, and keeps underscores in names") {
  if (!snn::tool::have_gnuplot()) return;
  const fs::path dir = results_dir("snnsim_test_plot_formats");
  const fs::path results = dir / "seed_fc_datanorm" / "results.json";
  snn::tool::plot_accuracy({results}, dir / "a.svg");
  const std::string svg = read_text(dir / "a.svg");
  CHECK_THAT(svg, Catch::StartsWith("<?xml") && Catch::Contains("<svg"));
  // Not enhanced text: the name is written as it is, not with "fc" as a subscript.
  CHECK_THAT(svg, Catch::Contains("seed_fc_datanorm: 75.00 % final"));
  CHECK_THAT(svg, Catch::Contains("ANN: 90.00 %"));
  // Both x axes: simulated time and SynOps.
  CHECK_THAT(svg, Catch::Contains("simulated time (ms)") && Catch::Contains("cumulative SynOps per sample"));
  snn::tool::plot_accuracy({results}, dir / "a.pdf");
  CHECK_THAT(read_text(dir / "a.pdf"), Catch::StartsWith("%PDF"));
  snn::tool::plot_accuracy({results, results}, dir / "a.png");
  CHECK_THAT(read_text(dir / "a.png"), Catch::StartsWith("\x89PNG"));
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string()[0] != '.');
  fs::remove_all(dir);
}

TEST_CASE("snnsim plot: a missing folder or an unknown extension is named, with no temporary file in the message") {
  if (!snn::tool::have_gnuplot()) return;
  const fs::path dir = results_dir("snnsim_test_plot_errors");
  const fs::path results = dir / "seed_fc_datanorm" / "results.json";
  const fs::path missing = dir / "no_such_folder" / "cmp.png";
  try {
    snn::tool::plot_accuracy({results}, missing);
    FAIL("no error");
  } catch (const snn::Error& e) {
    const std::string m = e.what();
    CHECK_THAT(m,
               Catch::Contains(missing.string()) && Catch::Contains("'" + missing.parent_path().string() + "' does not exist"));
    CHECK_THAT(m, !Catch::Contains(".tmp") && !Catch::Contains(".dat"));
  }
  CHECK_THROWS_WITH(snn::tool::plot_accuracy({results}, dir / "cmp.jpg"),
                    Catch::Contains("cmp.jpg") && Catch::Contains(".png, .svg or .pdf"));
  CHECK_FALSE(fs::exists(dir / "cmp.jpg"));
  fs::remove_all(dir);
}
