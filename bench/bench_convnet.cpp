// Trains the paper's ConvNet 28x28-12c5-2s-64c5-2s-10o (conv 12 5x5, avgpool 2,
// conv 64 5x5, avgpool 2, dense 10; no biases) and prints wall time and test
// accuracy. Defaults are the recipe that works for it (the ConvNet issue):
// Kaiming-uniform init, linear logits, Adam 1e-3, batch 100, 15 epochs, no
// dropout. Compare with bench/torch_conv_reference.py run in the same session.
//
//   bench_convnet [--data mnist10k] [--seed 0] [--epochs 15] [--repeat 1]
//                 [--threads 2] [--init kaiming_uniform] [--output-relu]
//                 [--dropout 0] [--dropout-at hidden] [--out DIR]
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

#include <algorithm>
#include <fstream>
#include <iostream>
#include <vector>

using namespace snn;
using namespace snn::conversion;

namespace {

using snn::bench::load_average;
using Printer = snn::bench::EpochPrinter;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train the paper's ConvNet 28x28-12c5-2s-64c5-2s-10o and print time and accuracy"};
  std::string data = "mnist10k";
  std::uint64_t seed = 0;
  std::size_t epochs = 15;
  std::size_t repeat = 1;
  int threads = 2;
  std::string init = "kaiming_uniform";
  bool output_relu = false;
  float dropout = 0.0f;
  std::string dropout_at = "hidden";
  std::string out;
  app.add_option("--data", data, "dataset name (under $SNNSIM_DATA) or directory");
  app.add_option("--seed", seed, "training seed (runs r use seed + r)");
  app.add_option("--epochs", epochs, "epochs");
  app.add_option("--repeat", repeat, "trainings to run (median reported)")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "OpenBLAS threads (0: OpenBLAS default)");
  app.add_option("--init", init, "uniform (U(-0.1, 0.1)) or kaiming_uniform");
  app.add_flag("--output-relu", output_relu, "ReLU on the logits (the seed's MLP recipe)");
  app.add_option("--dropout", dropout, "drop probability");
  app.add_option("--dropout-at", dropout_at, "hidden or hidden_dense");
  app.add_option("--out", out, "save the (last) trained weights to this directory");
  CLI11_PARSE(app, argc, argv);

  try {
    const DatasetSplits splits = load_dataset(data);
    TrainConfig config;
    config.network.input = Shape{1, splits.train.rows, splits.train.cols};
    config.network.layers = {LayerSpec::conv(12, 5, 1, 0, "conv1"), LayerSpec::avgpool(2, "pool1"),
                             LayerSpec::conv(64, 5, 1, 0, "conv2"), LayerSpec::avgpool(2, "pool2"),
                             LayerSpec::flatten("flatten"),         LayerSpec::dense(10, "fc")};
    config.network.output_relu = output_relu;
    config.network.dropout = dropout;
    config.network.dropout_at = parse_dropout_at(dropout_at);
    config.init = parse_init(init);
    config.epochs = epochs;
    config.blas_threads = threads;
    fmt::print(
        "bench_convnet: {} ({} train / {} test), init {}, output_relu {}, dropout {} ({}), {} epochs, OpenBLAS threads {}\n",
        splits.name, splits.train.count, splits.test.count, init, output_relu, dropout, dropout_at, epochs,
        threads > 0 ? threads : blas_threads());
    fmt::print("load average before: {}\n", load_average());
    std::vector<double> times, accuracies;
    TrainResult last;
    Printer printer;
    for (std::size_t r = 0; r < repeat; ++r) {
      config.seed = seed + r;
      fmt::print("run {}/{} (seed {})\n", r + 1, repeat, config.seed);
      last = train(config, splits.train, &splits.test, &printer);
      times.push_back(last.seconds);
      accuracies.push_back(last.test->accuracy);
      fmt::print("  wall time {:.2f} s, test accuracy {:.2f} %\n", last.seconds, 100.0 * last.test->accuracy);
    }
    std::sort(times.begin(), times.end());
    std::sort(accuracies.begin(), accuracies.end());
    fmt::print("load average after: {}\n", load_average());
    fmt::print(
        "\nresult: training {:.2f} s (median of {}; min {:.2f}, max {:.2f}), test accuracy median {:.2f} % (min {:.2f}, max "
        "{:.2f})\n",
        times[times.size() / 2], repeat, times.front(), times.back(), 100.0 * accuracies[accuracies.size() / 2],
        100.0 * accuracies.front(), 100.0 * accuracies.back());
    if (!out.empty()) {
      save_weights(out, to_weight_set(config, last, splits.name, splits.train.count));
      fmt::print("weights written to {}\n", out);
    }
  } catch (const Error& e) {
    std::cerr << "bench_convnet: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
