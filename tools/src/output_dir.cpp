#include "snn/tool/output_dir.h"

#include "snn/error.h"
#include "snn/network/atomic_file.h"
#include "snn/tool/mpi.h"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <vector>

namespace snn::tool {

namespace fs = std::filesystem;

namespace {

// output.dir as an absolute path without a trailing separator ("out/x/" names
// the directory x, whose parent holds the staging directory).
fs::path output_path(const std::string& dir) {
  fs::path p = fs::absolute(dir).lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
  return p;
}

// Every name write_report may write (keep in step with it: a name missing
// here would be refused as someone else's file on the next run).
std::vector<std::string> report_file_names() {
  return {"results.json",         "config.resolved.toml",   "accuracy_vs_time.csv", "populations.csv",  "per_class.csv",
          "accuracy_vs_time.png", "accuracy_vs_synops.png", "synops_vs_time.png",   "firing_rates.png", "confusion_matrix.png"};
}

// The files an earlier report in `out` wrote: those its kReportListFile
// names (and the list itself); for a report older than the list (a
// results.json of snnsim's schema, no list), the names a report writes.
// Only names a report can write count, so an edited list never makes a run
// remove someone's file.
std::set<std::string> earlier_report_files(const fs::path& out) {
  std::set<std::string> names;
  const auto ours = report_file_names();
  std::ifstream list(out / kReportListFile);
  if (list) {
    for (std::string line; std::getline(list, line);)
      if (std::find(ours.begin(), ours.end(), line) != ours.end()) names.insert(line);
    names.insert(kReportListFile);
    return names;
  }
  std::ifstream results(out / "results.json");
  if (!results) return names;
  const auto j = nlohmann::json::parse(results, nullptr, false);
  if (j.is_object() && j.contains("schema") && j["schema"] == "snnsim-results/1")
    for (const auto& name : report_file_names()) names.insert(name);
  return names;
}

void write_report_list(const fs::path& dir, const std::set<std::string>& names) {
  std::string text;
  for (const auto& n : names)
    if (n != kReportListFile) text += n + "\n";
  write_file_atomically(dir / kReportListFile, text);
}

}  // namespace

void check_output_writable(const Config& c, bool replaces_report) {
  const fs::path out = output_path(c.output.dir);
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(out, ec);
  if (st.type() != fs::file_type::not_found && st.type() != fs::file_type::directory)
    throw Error("output.dir '{}' exists and is not a directory ({}); snnsim will not replace it", c.output.dir,
                st.type() == fs::file_type::symlink ? "a symbolic link: give the directory it points to" : "a file");
  if (replaces_report && st.type() == fs::file_type::directory) {
    // A report replaces only the files an earlier report there wrote; a file
    // of someone else's under a name the report writes is refused, anything
    // else in the directory is left alone.
    const std::set<std::string> earlier = earlier_report_files(out);
    std::vector<std::string> names = report_file_names();
    names.emplace_back(kReportListFile);
    for (const auto& name : names) {
      const fs::file_status f = fs::symlink_status(out / name, ec);
      if (f.type() == fs::file_type::not_found) continue;
      if (f.type() != fs::file_type::regular || !earlier.count(name))
        throw Error(
            "output.dir '{}' holds '{}', which no earlier snnsim report there wrote ({} does not list it); the report "
            "would overwrite it, so snnsim will not: choose another output.dir (--out) or move '{}' out of it",
            c.output.dir, name, kReportListFile, name);
    }
  }
  const fs::path dir = out.parent_path();
  fs::create_directories(dir, ec);
  if (ec) throw Error("output.dir '{}': cannot create '{}': {}", c.output.dir, dir.string(), ec.message());
  const fs::path probe = dir / fmt::format(".snnsim-write-test-{}", std::random_device{}());
  std::FILE* f = std::fopen(probe.c_str(), "w");
  if (!f) throw Error("output.dir '{}': '{}' is not writable", c.output.dir, dir.string());
  std::fclose(f);
  fs::remove(probe, ec);
}

void publish_report(const Config& c, const RunReport& report, const CommonOptions& options) {
  // Under MPI every rank holds the whole report; rank 0 writes it, and only
  // once every rank got here (a rank failing before aborts the job instead).
  mpi::barrier();
  if (!mpi::is_root()) return;
  check_output_writable(c, true);  // again: the directory may have changed during the run
  const fs::path dir = output_path(c.output.dir);
  const fs::path staging = dir.parent_path() / fmt::format(".{}.staging-{}", dir.filename().string(), std::random_device{}());
  try {
    const auto written = write_report(report, staging, c.output.plots, options.quiet);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error("output.dir '{}': cannot create it: {}", c.output.dir, ec.message());
    const std::set<std::string> earlier = earlier_report_files(dir);
    std::set<std::string> now;
    for (const auto& p : written) now.insert(p.filename().string());
    // The list names every file of ours first (earlier and new), so a run
    // stopped between the moves below leaves nothing of ours unlisted.
    std::set<std::string> both = now;
    both.insert(earlier.begin(), earlier.end());
    write_report_list(dir, both);
    // Each file replaces its earlier version atomically; results.json, which
    // write_report writes last, moves last.
    for (const auto& p : written) {
      fs::rename(p, dir / p.filename(), ec);
      if (ec) throw Error("output.dir '{}': cannot move '{}' into place: {}", c.output.dir, p.filename().string(), ec.message());
    }
    for (const auto& name : earlier)
      if (!now.count(name) && name != kReportListFile) fs::remove(dir / name, ec);
    write_report_list(dir, now);
    fs::remove_all(staging, ec);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
}

}  // namespace snn::tool
