#include "snn/error.h"
#include "snn/tool/commands.h"
#include "snn/tool/config.h"
#include "snn/tool/pipeline.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

using snn::tool::parse_config;

namespace {
// The error message of parsing `text` (with optional overrides), or "" if it parsed.
std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(text, "t.toml", overrides);
  } catch (const snn::Error& e) { return e.what(); }
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
  CHECK(contains(error_of("[training]\nepochs = 1.5\n[simulation]\nmax_rate_hz = 100\n"),
                 "'training.epochs' must be an integer, found a float"));
  CHECK(
      contains(error_of("[normalisation]\nmethod = \"robst\"\n[simulation]\nmax_rate_hz = 100\n"), "none, model, data, robust"));
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
  const auto c = parse_config(
      "[simulation]\nmax_rate_hz = 100\nthreshold = [1, 2, 3]\ndelays = 2\n[normalisation]\ninclude_last = false\n", "t.toml");
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

namespace {
// docs/config.md's key table: the lines between its markers.
std::string docs_key_table() {
  std::ifstream in(std::filesystem::path(SNNSIM_SOURCE_DIR) / "docs" / "config.md");
  std::string line, table;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line == "<!-- keys:end -->") inside = false;
    if (inside) table += line + "\n";
    if (line == "<!-- keys:begin -->") inside = true;
  }
  return table;
}
// The key names of a Markdown key table (first column).
std::vector<std::string> keys_of(const std::string& table) {
  std::vector<std::string> keys;
  std::istringstream in(table);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("| `", 0) == 0) keys.push_back(line.substr(3, line.find('`', 3) - 3));
  return keys;
}
}  // namespace

TEST_CASE("docs/config.md's key table is the code's (tools/config-table regenerates it)") {
  const std::string table = snn::tool::config_keys_markdown();
  CHECK(keys_of(table).size() >= 40);
  CHECK(docs_key_table() == table);
}

TEST_CASE("config.resolved.toml holds every key, with numbers as written") {
  const auto c = parse_config("[simulation]\nduration_ms = 150\n", "t.toml");
  const std::string toml = snn::tool::to_toml(c);
  INFO(toml);
  // Every key of the table, each once, under its section.
  std::string section;
  std::map<std::string, int> seen;
  std::istringstream in(toml);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("["))
      section = line.substr(1, line.size() - 2);
    else if (const auto eq = line.find(" = "); eq != std::string::npos)
      ++seen[section + "." + line.substr(0, eq)];
  }
  for (const auto& key : keys_of(snn::tool::config_keys_markdown())) CHECK(seen[key] == 1);
  CHECK(contains(toml, "percentile = 99.9\n"));
  CHECK(contains(toml, "include_last = true\n"));  // data normalisation's effective default
  CHECK(contains(toml, "steps = 150\n"));
  CHECK(contains(toml, "learning_rate = 0.001\n"));
  CHECK(contains(toml, "dir = \"out/t\"\n"));
}

TEST_CASE("a --set bare word's error says --set, as a number's does") {
  const std::string e = error_of("[simulation]\nmax_rate_hz = 100\n", {"simulation.reset=Zero"});
  CHECK(contains(e, "t.toml: (--set): 'simulation.reset' = \"Zero\" is not one of: subtract, zero"));
}

TEST_CASE("a --set of steps or duration_ms wins over the file's other one") {
  const std::string file = "[simulation]\ndt_ms = 1\nduration_ms = 40\n";
  CHECK(parse_config(file, "t.toml", {"simulation.steps=100"}).simulation.steps == 100);
  CHECK(parse_config("[simulation]\nsteps = 40\n", "t.toml", {"simulation.duration_ms=60"}).simulation.steps == 60);
  // Given together on the command line (or in the file), they still must agree.
  CHECK(contains(error_of(file, {"simulation.steps=100", "simulation.duration_ms=50"}), "give one of them"));
  CHECK(contains(error_of("[simulation]\nsteps = 10\nduration_ms = 40\n"), "give one of them"));
}

TEST_CASE("a config without output.dir writes to out/<its name>") {
  CHECK(parse_config("", "configs/robust_fc.toml").output.dir == "out/robust_fc");
  CHECK(parse_config("[output]\ndir = \"elsewhere\"\n", "configs/robust_fc.toml").output.dir == "elsewhere");
  CHECK(snn::tool::load_config(std::filesystem::path(SNNSIM_SOURCE_DIR) / "configs" / "tiny.toml").output.dir == "out/tiny");
}

TEST_CASE("the --seed option reseeds the spike trains only, --training-seed the training") {
  snn::tool::CommonOptions o;
  o.seed = 7;
  const auto c = parse_config("", "t.toml", snn::tool::overrides_of(o));
  CHECK(c.simulation.seed == 7);
  CHECK(c.training.seed == 0);
  o.training_seed = 9;
  const auto d = parse_config("", "t.toml", snn::tool::overrides_of(o));
  CHECK(d.simulation.seed == 7);
  CHECK(d.training.seed == 9);
}

TEST_CASE("network.layers is parsed into layer specs and checked against 28x28 images") {
  const std::string lenet = R"([[network.layers]]
kind = "conv"
outputs = 12
kernel = 5
[[network.layers]]
kind = "avgpool"
kernel = 2
[[network.layers]]
kind = "conv"
outputs = 64
kernel = [5, 5]
[[network.layers]]
kind = "avgpool"
kernel = 2
[[network.layers]]
kind = "flatten"
[[network.layers]]
kind = "dense"
outputs = 10
name = "fc"
)";
  const auto c = parse_config(lenet, "t.toml");
  REQUIRE(c.network.layers.size() == 6);
  CHECK(c.network.layers[0] == snn::LayerSpec::conv(12, 5));
  CHECK(c.network.layers[1] == snn::LayerSpec::avgpool(2));
  CHECK(c.network.layers[5] == snn::LayerSpec::dense(10, "fc"));
  // Used as the network, with nothing to warn about; its resolved form names no hidden widths.
  CHECK(c.warnings.empty());
  CHECK_FALSE(contains(snn::tool::to_toml(c), "hidden ="));
  CHECK(contains(error_of(lenet, {"network.hidden=[100]"}), "'network.hidden' and network.layers are both given"));
  // An ONNX model is the whole ANN: a layer list beside it contradicts it.
  CHECK(contains(error_of(lenet, {"network.model=\"m.onnx\""}),
                 "'network.layers' cannot be given with network.model = \"m.onnx\""));
  const auto again = parse_config(snn::tool::to_toml(c), "resolved.toml");
  CHECK(again.network.layers == c.network.layers);
  CHECK(snn::tool::to_toml(again) == snn::tool::to_toml(c));
  CHECK(parse_config("", "t.toml").network.layers.empty());

  // 28 -conv5-> 24 -pool2-> 12 -conv5-> 8 -pool2-> 4 -conv5-> fails at layer 5.
  std::string deep = lenet;
  deep.replace(deep.find("kind = \"flatten\""), 16, "kind = \"conv\"\noutputs = 8\nkernel = 5");
  const std::string e = error_of(deep);
  CHECK(contains(e, "'network.layers'"));
  CHECK(contains(e, "layer 5 'conv 8 5x5'"));
  CHECK(contains(error_of(lenet, {"dataset.classes=5"}), "ends in 10 outputs (10), but dataset.classes = 5"));
  CHECK(contains(error_of("[[network.layers]]\nkind = \"dense\"\nneurons = 10\n"), "layer 1: has an unknown key 'neurons'"));
  CHECK(contains(error_of("[[network.layers]]\nkind = \"pool\"\n"), "layer 1:"));
  CHECK(contains(error_of("[network]\nlayers = 3\n"), "must be an array of layer tables"));
}

TEST_CASE("the engine runs with the config table's defaults, not its own structs' defaults") {
  // engine::InputOptions defaults to the seed's 400 Hz / 5 ms and
  // EarlyExitOptions to a margin of 3; a run must get docs/config.md's values.
  const auto c = parse_config("", "t.toml");
  const auto ro = snn::tool::run_options(c);
  CHECK(ro.steps == 200);
  CHECK(ro.input.max_rate == 1000.0);
  CHECK(ro.input.dt == Approx(0.001));
  CHECK(ro.input.encoding == snn::engine::Encoding::Poisson);
  CHECK(ro.early_exit.margin == 5);
  CHECK(ro.early_exit.hold == 10);
  CHECK_FALSE(ro.tie_break_by_potential);
}

TEST_CASE("simulation.early_exit names its mode, and a boolean from older configs is told the new names") {
  CHECK_FALSE(snn::tool::run_options(parse_config("", "t.toml")).early_exit.enabled);
  const auto measure = snn::tool::run_options(parse_config("[simulation]\nearly_exit = \"measure\"\n", "t.toml"));
  CHECK(measure.early_exit.enabled);
  CHECK_FALSE(measure.early_exit.stop);
  const auto stop = snn::tool::run_options(parse_config("[simulation]\nearly_exit = \"stop\"\n", "t.toml"));
  CHECK(stop.early_exit.enabled);
  CHECK(stop.early_exit.stop);
  CHECK_THROWS_WITH(parse_config("[simulation]\nearly_exit = true\n", "t.toml"),
                    Catch::Contains("line 2: 'simulation.early_exit' = true is no longer a boolean") &&
                        Catch::Contains("\"measure\" (what true did"));
}

TEST_CASE("to_toml round-trips awkward numbers and strings exactly") {
  const auto c = parse_config(
      "[training]\nlearning_rate = 1e-300\ninit_range = 0.30000000000000004\n[simulation]\nmax_rate_hz = 100\n"
      "weight_cutoff = -0.0\nbeta = 5e-324\nthreshold = [1e20, 0.1, 3]\n"
      "[output]\ndir = \"a \\\"quoted\\\" \\\\ dir\\u007f\\t\"\n",
      "t.toml");
  const std::string printed = snn::tool::to_toml(c);
  INFO(printed);
  const auto again = parse_config(printed, "resolved.toml");
  CHECK(again.training.learning_rate == c.training.learning_rate);
  CHECK(again.training.init_range == c.training.init_range);
  CHECK(again.simulation.beta == c.simulation.beta);
  CHECK(again.simulation.threshold == c.simulation.threshold);
  CHECK(again.output.dir == c.output.dir);
  CHECK(snn::tool::to_toml(again) == printed);
  CHECK(contains(printed, "init_range = 0.30000000000000004\n"));
}

TEST_CASE("training.init, training.bias and training.dropout_at are read, printed and checked") {
  const auto d = parse_config("", "t.toml");
  CHECK(d.training.init == snn::conversion::Init::Uniform);
  CHECK_FALSE(d.training.bias);
  CHECK(d.training.dropout_at == snn::conversion::DropoutAt::Hidden);
  const auto c = parse_config("[training]\ninit = \"kaiming_uniform\"\nbias = true\ndropout_at = \"hidden_dense\"\n", "t.toml");
  CHECK(c.training.init == snn::conversion::Init::KaimingUniform);
  CHECK(c.training.bias);
  CHECK(c.training.dropout_at == snn::conversion::DropoutAt::HiddenDense);
  const auto again = parse_config(snn::tool::to_toml(c), "resolved.toml");
  CHECK(again.training.init == c.training.init);
  CHECK(again.training.bias);
  CHECK(again.training.dropout_at == c.training.dropout_at);
  CHECK(contains(error_of("[training]\ninit = \"kaiming\"\n"), "is not one of: uniform, kaiming_uniform"));
  CHECK(contains(error_of("[training]\ndropout_at = \"all\"\n"), "'training.dropout_at'"));
}
