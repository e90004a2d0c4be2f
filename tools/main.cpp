// snnsim command line: parses arguments with CLI11, dispatches to sub-commands,
// and is the one place that catches snn::Error (prints it, exits non-zero).
#include "snn/error.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  CLI::App app{"snnsim: event-driven simulation of spiking networks converted from ReLU networks", "snnsim"};
  app.set_version_flag("--version", std::string("snnsim ") + SNNSIM_VERSION);
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.get_subcommands().empty()) {
      fmt::print("{}", app.help());
      return 0;
    }
  } catch (const snn::Error& e) {
    fmt::print(stderr, "snnsim: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "snnsim: internal error: {}\n", e.what());
    return 2;
  }
  return 0;
}
