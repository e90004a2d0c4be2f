// Trains the seed's network (784-1200-1200-10, ReLU incl. output, dropout 0.5,
// Adam 1e-3, batch 100, 15 epochs) on a dataset and prints wall time and test
// accuracy next to the PyTorch reference measured on this machine kind
// (../shared/reference/seed_pytorch_mnist10k.json: PyTorch 1.13, 2 threads).
//
//   bench_train [--data mnist10k] [--seed 0] [--epochs 15] [--repeat 1]
//               [--threads 0] [--out DIR] [--reference FILE]
//
// A figure printed by a command, not a timed test: the machine is shared, so
// the load average is printed with it, and --repeat N gives a median.
#include "bench_util.h"
#include "snn/conversion/trainer.h"
#include "snn/error.h"
#include "snn/network/dataset.h"
#include "snn/network/weights.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <vector>

namespace fs = std::filesystem;
using namespace snn;
using namespace snn::conversion;

namespace {

struct Reference {
  double seconds = 0.0;
  double accuracy = 0.0;
  std::string source;
};

// The figures from the reference file when it is reachable; otherwise the
// values that file held when this benchmark was written (55.6 s, 96.94 %).
Reference load_reference(const fs::path& path) {
  std::ifstream in(path);
  if (in) {
    try {
      const auto j = nlohmann::json::parse(in);
      return {j.at("train_seconds").get<double>(), j.at("ann").at("accuracy").get<double>(), path.string()};
    } catch (const std::exception& e) { throw Error("reference '{}': {}", path.string(), e.what()); }
  }
  return {55.64943353199999, 0.9694388777555111, "embedded copy of shared/reference/seed_pytorch_mnist10k.json"};
}

using snn::bench::load_average;
using Printer = snn::bench::EpochPrinter;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train the seed's ReLU network and compare with PyTorch's reference time and accuracy"};
  std::string data = "mnist10k";
  std::uint64_t seed = 0;
  std::size_t epochs = 15;
  std::size_t repeat = 1;
  int threads = 0;
  std::string out;
  std::string reference = (fs::path(SNNSIM_SOURCE_DIR) / ".." / "shared" / "reference" / "seed_pytorch_mnist10k.json").string();
  app.add_option("--data", data, "dataset name (under $SNNSIM_DATA) or directory");
  app.add_option("--seed", seed, "training seed");
  app.add_option("--epochs", epochs, "epochs");
  app.add_option("--repeat", repeat, "trainings to run (median time reported)")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "OpenBLAS threads (0: OpenBLAS default)");
  app.add_option("--out", out, "save the (last) trained weights to this directory");
  app.add_option("--reference", reference, "PyTorch reference JSON");
  CLI11_PARSE(app, argc, argv);

  try {
    const Reference ref = load_reference(reference);
    const DatasetSplits splits = load_dataset(data);
    TrainConfig config;  // the seed's recipe
    config.seed = seed;
    config.epochs = epochs;
    config.blas_threads = threads;
    fmt::print("bench_train: {} ({} train / {} test images), seed {}, {} epochs, OpenBLAS threads {}\n", splits.name,
               splits.train.count, splits.test.count, seed, epochs, threads > 0 ? threads : blas_threads());
    fmt::print("load average before: {}\n", load_average());

    std::vector<double> times;
    TrainResult last;
    Printer printer;
    for (std::size_t r = 0; r < repeat; ++r) {
      if (repeat > 1) fmt::print("run {}/{}\n", r + 1, repeat);
      last = train(config, splits.train, &splits.test, &printer);
      times.push_back(last.seconds);
      fmt::print("  wall time {:.2f} s, test accuracy {:.2f} %\n", last.seconds, 100.0 * last.test->accuracy);
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    fmt::print("load average after: {}\n", load_average());
    fmt::print("\nresult: training {:.2f} s (median of {}), test accuracy {:.2f} % ({} / {})\n", median, repeat,
               100.0 * last.test->accuracy, last.test->correct, last.test->samples);
    fmt::print("PyTorch reference ({}): {:.2f} s, {:.2f} %\n", ref.source, ref.seconds, 100.0 * ref.accuracy);
    fmt::print("ratio: time {:.3f} x PyTorch's ({:.2f}x faster), accuracy {:+.2f} points\n", median / ref.seconds,
               ref.seconds / median, 100.0 * (last.test->accuracy - ref.accuracy));
    fmt::print("target (>= 96.5 %, <= {:.1f} s): {}\n", ref.seconds,
               last.test->accuracy >= 0.965 && median <= ref.seconds ? "met" : "NOT met");
    if (!out.empty()) {
      save_weights(out, to_weight_set(config, last, splits.name, splits.train.count));
      fmt::print("weights written to {}\n", out);
    }
  } catch (const Error& e) {
    std::cerr << "bench_train: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
