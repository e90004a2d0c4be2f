// output.dir: the checks before a run that it may be written (and replaced),
// and the atomic publishing of a finished report into it.
#pragma once

#include "snn/tool/commands.h"
#include "snn/tool/config.h"
#include "snn/tool/report.h"

namespace snn::tool {

/// Checks before any work that output.dir can be created and written, and is
/// a directory if it exists. With `replaced_whole` (run, simulate: the report
/// replaces output.dir) also that it is empty or holds an earlier report
/// (results.json), and that neither output.cache, network.weights nor a
/// dataset path lies inside it. Throws snn::Error naming the key.
void check_output_writable(const Config& config, bool replaced_whole);

/// Writes a report to output.dir: every file into a staging directory first,
/// which then replaces output.dir whole, so an interrupted or failed run never
/// leaves a half-written output directory. Only an earlier report or an empty
/// directory is ever replaced (check_output_writable).
void publish_report(const Config& config, const RunReport& report, const CommonOptions& options);

}  // namespace snn::tool
