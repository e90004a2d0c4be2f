// output.dir: the checks before a run that it may be written (and replaced),
// and the atomic publishing of a finished report into it.
#pragma once

#include "snn/tool/commands.h"
#include "snn/tool/config.h"
#include "snn/tool/report.h"

namespace snn::tool {

/// The file in output.dir that lists, one name a line, the files the report
/// there wrote: the only files a later report replaces or removes.
inline constexpr const char* kReportListFile = "report_files.txt";

/// Checks before any work that output.dir can be created and written, and is
/// a directory if it exists. With `replaces_report` (run, simulate: a report
/// goes there) also that no file a report writes is there unless an earlier
/// report wrote it (kReportListFile; for an older report, its results.json).
/// Other files (convert's weights/, a user's plots) are left alone. Throws
/// snn::Error naming the key and the file.
void check_output_writable(const Config& config, bool replaces_report);

/// Writes a report to output.dir: every file into a staging directory first,
/// then each moved into place (results.json last), replacing only an earlier
/// report's files and removing those of them the new report does not write;
/// kReportListFile is updated so it always names every file of ours. A failed
/// or interrupted run leaves the earlier report as it was.
void publish_report(const Config& config, const RunReport& report, const CommonOptions& options);

}  // namespace snn::tool
