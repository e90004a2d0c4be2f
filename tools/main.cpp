// snnsim command line: CLI11 parses, the sub-command functions (snn::tool) do
// the work, and this is the one place that catches snn::Error.
#include "snn/error.h"
#include "snn/tool/commands.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>
#include <exception>
#include <functional>


int main(int argc, char** argv) {
  CLI::App app{"snnsim: event-driven simulation of spiking networks converted from ReLU networks.\n"
               "Run a config end to end with `snnsim run configs/default.toml`; see README.md.",
               "snnsim"};
  app.set_version_flag("--version", std::string("snnsim ") + SNNSIM_VERSION);
  app.require_subcommand(0, 1);
  app.fallthrough(false);

  std::function<int()> action;

  std::string info_path;
  auto* info = app.add_subcommand("info", "Describe a dataset, a weight directory/manifest or a results.json");
  info->add_option("path", info_path, "Dataset name or directory, weight directory, manifest.json or results.json")->required();
  info->callback([&] { action = [&] { return snn::tool::info_command(info_path); }; });

  std::vector<std::string> plot_inputs;
  std::string plot_out = "accuracy_vs_time.png";
  auto* plot = app.add_subcommand("plot", "Plot accuracy against simulated time for one or more results.json");
  plot->add_option("results", plot_inputs, "results.json files (or output directories)")->required();
  plot->add_option("-o,--output", plot_out, "PNG file to write")->capture_default_str();
  plot->callback([&] {
    action = [&] {
      std::vector<std::filesystem::path> files;
      for (const auto& p : plot_inputs)
        files.push_back(std::filesystem::is_directory(p) ? std::filesystem::path(p) / "results.json" : std::filesystem::path(p));
      return snn::tool::plot_command(files, plot_out);
    };
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (!action) {
      fmt::print("{}", app.help());
      return 0;
    }
    return action();
  } catch (const snn::Error& e) {
    fmt::print(stderr, "snnsim: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "snnsim: internal error: {}\n", e.what());
    return 2;
  }
}
