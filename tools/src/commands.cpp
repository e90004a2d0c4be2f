#include "snn/tool/commands.h"

#include "snn/error.h"
#include "snn/tool/report.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>

namespace snn::tool {

namespace fs = std::filesystem;

std::vector<std::string> overrides_of(const CommonOptions& o) {
  std::vector<std::string> out;
  if (o.threads) out.push_back(fmt::format("simulation.threads={}", *o.threads));
  if (o.limit) out.push_back(fmt::format("simulation.limit={}", *o.limit));
  if (o.seed) {
    out.push_back(fmt::format("training.seed={}", *o.seed));
    out.push_back(fmt::format("simulation.seed={}", *o.seed));
  }
  // A JSON string literal is a valid TOML basic string.
  if (o.out) out.push_back(fmt::format("output.dir={}", nlohmann::json(*o.out).dump()));
  out.insert(out.end(), o.set.begin(), o.set.end());
  return out;
}

namespace {

int print_results(const fs::path& file, const nlohmann::json& j);

int info_results(const fs::path& file) {
  std::ifstream in(file);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error("'{}' is not valid JSON: {}", file.string(), e.what());
  }
  try {
    return print_results(file, j);
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong type (a hand-edited or foreign file).
    throw Error("'{}' is not a valid snnsim results.json: {}", file.string(), e.what());
  }
}

int print_results(const fs::path& file, const nlohmann::json& j) {
  if (!j.is_object() || j.value("schema", "") != "snnsim-results/1")
    throw Error("'{}' is not an snnsim results.json (no schema 'snnsim-results/1')", file.string());
  const auto& s = j.at("snn");
  fmt::print("{}: snnsim results ({} on {})\n", file.string(), j.value("command", "?"), j.at("dataset").value("name", "?"));
  if (!j.at("ann").at("accuracy").is_null())
    fmt::print("  ANN accuracy         {:.2f} %\n", j.at("ann").at("accuracy").get<double>() * 100);
  fmt::print("  normalisation        {}\n", j.at("normalisation").value("method", "?"));
  fmt::print("  SNN accuracy         {:.2f} % after {} steps of {:g} ms, {} samples\n", s.value("accuracy", 0.0) * 100,
             s.value("steps", 0), s.value("dt_ms", 0.0), s.value("samples", 0));
  for (const auto& cp : s.at("checkpoints"))
    fmt::print("    at step {:<5}      {:.2f} %\n", cp.value("step", 0), cp.value("accuracy", 0.0) * 100);
  fmt::print("  SynOps/sample        {:.4g} M (dense {:.4g} M MACs)\n", s.value("synops_per_sample", 0.0) / 1e6,
             s.value("dense_macs_per_sample", 0.0) / 1e6);
  return 0;
}

}  // namespace

int info_command(const fs::path& path) {
  if (path.extension() == ".json" && fs::is_regular_file(path)) {
    std::ifstream in(path);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_discarded() && j.contains("schema")) return info_results(path);
  }
  if (fs::is_directory(path) && fs::exists(path / "results.json")) return info_results(path / "results.json");
  throw Error("'{}' is not a results.json or an output directory holding one", path.string());
}

int plot_command(const std::vector<fs::path>& results, const fs::path& png) {
  if (!have_gnuplot()) throw Error("snnsim plot needs gnuplot (apt-get install gnuplot-nox)");
  plot_accuracy(results, png);
  fmt::print("wrote {}\n", png.string());
  return 0;
}

}  // namespace snn::tool
