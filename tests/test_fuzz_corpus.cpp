// Replays every committed fuzz corpus input (tests/fuzz/corpus/<target>/)
// through the same target bodies libFuzzer runs (tests/fuzz/fuzz_targets.h),
// so the seeds and every input that once crashed are regression tests in CI,
// built with any compiler. A broken invariant aborts the test process.
#include "fuzz/fuzz_targets.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const fs::path kCorpus = fs::path(SNNSIM_SOURCE_DIR) / "tests" / "fuzz" / "corpus";

// The inputs of one corpus, in a fixed order.
std::vector<fs::path> inputs(const std::string& target) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kCorpus / target))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <typename Target>
std::size_t replay(const std::string& target, Target&& one) {
  const auto files = inputs(target);
  for (const auto& f : files) {
    INFO("corpus input " << f.string());
    const std::string bytes = slurp(f);
    // Only snn::Error may leave a parser; the targets catch it, so nothing may escape here.
    CHECK_NOTHROW(one(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  }
  return files.size();
}

}  // namespace

TEST_CASE("the IDX fuzz corpus replays without a crash or a broken invariant") { CHECK(replay("idx", snn::fuzz::idx_one) >= 5); }

TEST_CASE("the .npy and manifest fuzz corpus replays without a crash or a broken invariant") {
  CHECK(replay("npy", snn::fuzz::npy_one) >= 5);
}

TEST_CASE("the config fuzz corpus replays without a crash or a broken invariant") {
  CHECK(replay("config", snn::fuzz::config_one) >= 5);
}

TEST_CASE("the fuzz targets accept valid inputs and reject broken ones through snn::Error only") {
  // The seeds named valid_* / v1_* parse; this guards the targets themselves
  // against a layout change that would make every input fail early.
  const std::string valid = slurp(kCorpus / "idx" / "valid_raw");
  const auto* p = reinterpret_cast<const std::uint8_t*>(valid.data());
  const std::string_view rest(valid.data() + 3, valid.size() - 3);
  const std::size_t split = rest.size() * p[2] / 255;
  const fs::path dir = snn::fuzz::scratch_dir();
  snn::fuzz::write_bytes(dir / "i", rest.substr(0, split));
  snn::fuzz::write_bytes(dir / "l", rest.substr(split));
  const snn::Dataset d = snn::read_idx(dir / "i", dir / "l", std::size_t{p[1]} + 1);
  CHECK(d.count == 3);
  CHECK(d.rows == 2);
  CHECK(d.cols == 2);
  const std::string npy = slurp(kCorpus / "npy" / "v1_2x3");
  snn::fuzz::write_bytes(dir / "m.npy", std::string_view(npy).substr(1));
  CHECK(snn::read_npy(dir / "m.npy").cols == 3);
}
