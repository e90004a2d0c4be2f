// From what the pipeline computed to what a report says: the engine's
// RunResult becomes the SnnReport (per-sample means, rates, per-connection
// SynOps, early-exit figures), and a prepared config becomes a report's header.
#pragma once

#include "snn/engine/encoder.h"
#include "snn/engine/run.h"
#include "snn/network/network.h"
#include "snn/tool/config.h"
#include "snn/tool/pipeline.h"
#include "snn/tool/report.h"

#include <string>

namespace snn::tool {

/// The report of simulating `samples` on `net` as `config` says.
SnnReport snn_report(const Config& config, const Network& net, const engine::SampleSet& samples, const engine::RunResult& result);

/// A report of `command` with the config, dataset and warnings filled in.
RunReport base_report(const std::string& command, const Prepared& prepared);

}  // namespace snn::tool
