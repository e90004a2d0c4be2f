#include "snn/error.h"
#include "snn/tool/config.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

using snn::tool::parse_config;

namespace {
// The error message of parsing `text` (with optional overrides), or "" if it parsed.
std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(text, "t.toml", overrides);
  } catch (const snn::Error& e) {
    return e.what();
  }
  return "";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("an empty config gives the documented defaults") {
  const auto c = parse_config("", "t.toml");
  CHECK(c.dataset.name == "mnist10k");
  CHECK(c.network.hidden == std::vector<int>{1200, 1200});
  CHECK(c.training.epochs == 15);
  CHECK(c.normalisation.method == snn::Normalisation::Data);
  CHECK(c.simulation.steps == 200);
  CHECK(c.simulation.checkpoints == std::vector<int>{10, 25, 50, 100, 200});
  CHECK(c.probability_scale() == Approx(1.0));
  CHECK(c.warnings.empty());
  // 400 Hz at 5 ms is p = 2x, above 1: only allowed with clamp_probability.
  CHECK(contains(error_of("[simulation]\nmax_rate_hz = 400\ndt_ms = 5\n"), "clamp_probability"));
}

TEST_CASE("the seed's settings parse, and p = 2x is reported as a warning") {
  const auto c = parse_config(R"(
[simulation]
steps = 100
dt_ms = 10
max_rate_hz = 200
clamp_probability = true
threshold = 4
)",
                              "t.toml");
  CHECK(c.probability_scale() == Approx(2.0));
  REQUIRE(c.warnings.size() == 1);
  CHECK(contains(c.warnings[0], "0.5"));
  CHECK(c.simulation.checkpoints == std::vector<int>{10, 25, 50, 100});
}

TEST_CASE("duration_ms and dt_ms give steps and inconsistent or fractional ones are errors") {
  const auto c = parse_config("[simulation]\ndt_ms = 1\nduration_ms = 40\nmax_rate_hz = 1000\n", "t.toml");
  CHECK(c.simulation.steps == 40);
  CHECK(c.probability_scale() == Approx(1.0));
  CHECK(contains(error_of("[simulation]\ndt_ms = 3\nduration_ms = 40\nmax_rate_hz = 100\n"), "not a whole number"));
  CHECK(contains(error_of("[simulation]\nsteps = 10\ndt_ms = 1\nduration_ms = 40\nmax_rate_hz = 100\n"), "give one of them"));
}

TEST_CASE("unknown keys are errors with a line number and a suggestion") {
  const std::string e = error_of("[simulation]\nmax_rate_hz = 100\nstep = 10\n");
  CHECK(contains(e, "t.toml"));
  CHECK(contains(e, "line 3"));
  CHECK(contains(e, "'simulation.step'"));
  CHECK(contains(e, "did you mean 'simulation.steps'"));
  CHECK(contains(error_of("[simulaton]\nsteps = 1\n"), "did you mean 'simulation'"));
  CHECK(contains(error_of("[nonsense_section_entirely]\n"), "is not a known key"));
}

TEST_CASE("wrong types and impossible values name the key and the value") {
  const std::string base = "[simulation]\nmax_rate_hz = 100\n";
  CHECK(contains(error_of(base + "steps = \"ten\"\n"), "'simulation.steps' must be an integer, found a string"));
  CHECK(contains(error_of(base + "steps = 0\n"), "'simulation.steps' = 0 must be positive"));
  CHECK(contains(error_of(base + "steps = -3\n"), "= -3 must be positive"));
  CHECK(contains(error_of(base + "threshold = 0\n"), "thresholds must be positive"));
  CHECK(contains(error_of(base + "threshold = [1, 2]\n"), "one per spiking population (3)"));
  CHECK(contains(error_of(base + "dt_ms = -1\n"), "'simulation.dt_ms' = -1 must be positive"));
  CHECK(contains(error_of("[simulation]\nmax_rate_hz = 0\n"), "'simulation.max_rate_hz' = 0 must be positive"));
  CHECK(contains(error_of(base + "beta = 1.5\n"), "(0, 1]"));
  CHECK(contains(error_of(base + "reset = \"to_zero\"\n"), "not one of: subtract, zero"));
  CHECK(contains(error_of(base + "delays = [0, -1, 0]\n"), "delays must be >= 0"));
  CHECK(contains(error_of("[training]\nepochs = 1.5\n[simulation]\nmax_rate_hz = 100\n"), "'training.epochs' must be an integer, found a float"));
  CHECK(contains(error_of("[normalisation]\nmethod = \"robst\"\n[simulation]\nmax_rate_hz = 100\n"), "none, model, data, robust"));
}

TEST_CASE("all problems are reported together") {
  const std::string e = error_of("[simulation]\nsteps = 0\nbeta = 2\nmax_rate_hz = 100\n");
  CHECK(contains(e, "2 problems"));
  CHECK(contains(e, "simulation.steps"));
  CHECK(contains(e, "simulation.beta"));
}

TEST_CASE("syntax errors give the line") {
  const std::string e = error_of("[simulation]\nsteps = = 3\n");
  CHECK(contains(e, "t.toml: line 2"));
  CHECK(contains(e, "syntax error"));
}

TEST_CASE("set overrides apply before validation, in TOML syntax or as bare strings") {
  const std::string base = "[simulation]\nmax_rate_hz = 100\n";
  const auto c = parse_config(base, "t.toml", {"simulation.steps=50", "normalisation.method=robust", "network.hidden=[100]"});
  CHECK(c.simulation.steps == 50);
  CHECK(c.normalisation.method == snn::Normalisation::Robust);
  CHECK(c.network.hidden == std::vector<int>{100});
  CHECK(contains(error_of(base, {"simulation.steps=0"}), "(--set): 'simulation.steps' = 0"));
  CHECK(contains(error_of(base, {"simulation.stepz=3"}), "did you mean 'simulation.steps'"));
  CHECK(contains(error_of(base, {"nokey"}), "expected key=value"));
  CHECK(contains(error_of(base + "steps = 5\n", {"simulation.steps.x=1"}), "is not a table"));
}

TEST_CASE("to_toml round-trips a resolved config") {
  const auto c = parse_config("[simulation]\nmax_rate_hz = 100\nthreshold = [1, 2, 3]\ndelays = 2\n[normalisation]\ninclude_last = false\n", "t.toml");
  const auto again = parse_config(snn::tool::to_toml(c), "resolved.toml");
  CHECK(again.simulation.threshold == c.simulation.threshold);
  CHECK(again.simulation.delays == c.simulation.delays);
  CHECK(again.normalisation.include_last == c.normalisation.include_last);
  CHECK(again.simulation.checkpoints == c.simulation.checkpoints);
  CHECK(snn::tool::to_toml(again) == snn::tool::to_toml(c));
}

TEST_CASE("every config shipped in configs/ is valid") {
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(SNNSIM_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    INFO(entry.path().string());
    CHECK_NOTHROW(snn::tool::load_config(entry.path()));
    ++n;
  }
  CHECK(n >= 7);
  const auto seed = snn::tool::load_config(std::filesystem::path(SNNSIM_SOURCE_DIR) / "configs/seed_fc_datanorm.toml");
  CHECK(seed.probability_scale() == Approx(2.0));  // the seed's p = 2x
  const auto paper = snn::tool::load_config(std::filesystem::path(SNNSIM_SOURCE_DIR) / "configs/paper_fc_datanorm.toml");
  CHECK(paper.simulation.steps == 40);
  CHECK(paper.probability_scale() == Approx(1.0));
  CHECK(paper.simulation.reset == snn::ResetMode::Zero);
}
