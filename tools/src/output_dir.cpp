#include "snn/tool/output_dir.h"

#include "snn/error.h"
#include "snn/tool/mpi.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>

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

// Whether `inner` is `outer` or lies inside it (after resolving symlinks of
// the parts that exist).
bool is_within(const fs::path& inner, const fs::path& outer) {
  std::error_code ec;
  const fs::path a = fs::weakly_canonical(fs::absolute(inner), ec);
  const fs::path b = fs::weakly_canonical(outer, ec);
  auto [ai, bi] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  while (bi != b.end() && bi->empty()) ++bi;  // a trailing separator of b
  return bi == b.end();
}

}  // namespace

void check_output_writable(const Config& c, bool replaced_whole) {
  const fs::path out = output_path(c.output.dir);
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(out, ec);
  if (st.type() != fs::file_type::not_found && st.type() != fs::file_type::directory)
    throw Error("output.dir '{}' exists and is not a directory ({}); snnsim will not replace it", c.output.dir,
                st.type() == fs::file_type::symlink ? "a symbolic link: give the directory it points to" : "a file");
  if (replaced_whole) {
    // A run replaces output.dir whole: only an earlier run's output (or an
    // empty directory) may go, never a directory of other files.
    if (st.type() == fs::file_type::directory && !fs::is_empty(out, ec)) {
      if (!fs::exists(out / "results.json", ec))
        throw Error("output.dir '{}' is a directory without snnsim results (no results.json); a run replaces its output "
                    "directory whole, so snnsim will not touch this one: choose another output.dir (--out) or empty it",
                    c.output.dir);
      // An earlier report holds only the files a report writes.
      for (const auto& e : fs::directory_iterator(out, ec)) {
        const std::string name = e.path().filename().string();
        const std::string ext = e.path().extension().string();
        const bool ours = e.is_regular_file() && (name == "results.json" || name == "config.resolved.toml" || ext == ".csv" || ext == ".png");
        if (!ours)
          throw Error("output.dir '{}' holds '{}', which no snnsim report writes; a run replaces its output directory whole, "
                      "so snnsim will not touch this one: choose another output.dir (--out) or move '{}' out of it",
                      c.output.dir, name, name);
      }
    }
    const auto inside = [&](const std::string& key, const std::string& path) {
      if (!path.empty() && is_within(path, out))
        throw Error("{} '{}' is inside output.dir '{}', which every run replaces whole; put one of them elsewhere", key, path,
                    c.output.dir);
    };
    inside("output.cache", c.output.cache);
    inside("network.weights", c.network.weights);
    if (c.dataset.name.find('/') != std::string::npos) inside("dataset.name", c.dataset.name);
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
    write_report(report, staging, c.output.plots, options.quiet);
    std::error_code ec;
    // A previous run's directory is replaced only once the new one is complete.
    const fs::path old = dir.parent_path() / fmt::format(".{}.old-{}", dir.filename().string(), std::random_device{}());
    if (fs::exists(dir)) {
      fs::rename(dir, old, ec);
      if (ec) throw Error("output.dir '{}': cannot move the previous results aside: {}", c.output.dir, ec.message());
    }
    fs::rename(staging, dir, ec);
    if (ec) throw Error("output.dir '{}': cannot move the new results into place: {}", c.output.dir, ec.message());
    fs::remove_all(old, ec);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
}

}  // namespace snn::tool
