// Helpers the training benchmarks share (bench/ only): the machine's load,
// printed beside every timing (the same helper as `snnsim bench`'s), and an
// observer printing one line per epoch.
#pragma once

#include "snn/conversion/trainer.h"
#include "snn/tool/bench.h"

#include <fmt/format.h>

#include <cstdio>
#include <string>

namespace snn::bench {

/// The 1-, 5- and 15-minute load averages: snnsim bench's (snn/tool/bench.h).
using snn::tool::load_average;

/// Prints each epoch's loss, train accuracy and time as it ends.
struct EpochPrinter : conversion::TrainObserver {
  void on_epoch(const conversion::EpochReport& r) override {
    fmt::print("  epoch {:2}/{}  loss {:.4f}  train accuracy {:6.2f} %  {:6.2f} s\n", r.epoch, r.epochs, r.loss,
               100.0 * r.train_accuracy, r.seconds);
    std::fflush(stdout);
  }
  void on_warning(const std::string& w) override { fmt::print("  warning: {}\n", w); }
};

}  // namespace snn::bench
