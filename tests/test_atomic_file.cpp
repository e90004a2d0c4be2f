#include "snn/error.h"
#include "snn/network/atomic_file.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

static std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("write_file_atomically writes whole files or leaves the old one") {
  const fs::path dir = (fs::path(SNNSIM_BINARY_DIR) / "test_tmp") / "snnsim_test_atomic";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path target = dir / "out.txt";

  snn::write_file_atomically(target, "first");
  CHECK(slurp(target) == "first");

  // A writer that fails half-way leaves the previous content and no temporary behind.
  CHECK_THROWS(snn::write_file_atomically(target, [](std::ostream& out) {
    out << "partial";
    throw snn::Error("boom");
  }));
  CHECK(slurp(target) == "first");
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  CHECK(files == 1);

  // A directory that does not exist is an error naming the target.
  try {
    snn::write_file_atomically(dir / "missing" / "x.txt", "x");
    FAIL("expected an error");
  } catch (const snn::Error& e) { CHECK(std::string(e.what()).find("x.txt") != std::string::npos); }
  fs::remove_all(dir);
}
