#include "snn/error.h"
#include "snn/network/npy.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(SNNSIM_SOURCE_DIR) / "tests" / "data" / "npy";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

fs::path scratch() {
  const fs::path dir = (fs::path(SNNSIM_BINARY_DIR) / "test_tmp") / "snnsim_test_npy";
  fs::create_directories(dir);
  return dir;
}

// The matrix the fixtures were made from with numpy (tests/data/npy): x[r, c] =
// (4r + c) / 8 - 0.5, except x[0, 0] = float32(-1e-38), a subnormal.
snn::Matrix fixture_matrix() {
  snn::Matrix m(3, 4);
  for (std::size_t r = 0; r < 3; ++r)
    for (std::size_t c = 0; c < 4; ++c) m(r, c) = static_cast<float>(4 * r + c) / 8.0f - 0.5f;
  m(0, 0) = -1.0e-38f;
  return m;
}

// Runs `f`, requires an snn::Error whose message holds every string in `parts`.
template <typename F>
void require_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    FAIL("expected snn::Error");
  } catch (const snn::Error& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    for (const auto& p : parts) CHECK(msg.find(p) != std::string::npos);
  }
}

// A v1.0 file with the given header dict text (padded as numpy pads) and data.
std::string make_npy(const std::string& dict, const std::string& data, char major = 1) {
  std::string header = dict;
  const std::size_t prelude = major == 1 ? 10 : 12;
  header.append((64 - (prelude + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += major;
  out += '\0';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  if (major == 2) out += std::string(2, '\0');
  return out + header + data;
}

std::string floats(std::size_t n) { return std::string(n * sizeof(float), '\0'); }

}  // namespace

TEST_CASE("read_npy reads what numpy.save wrote, versions 1.0 and 2.0") {
  const snn::Matrix expected = fixture_matrix();
  const snn::Matrix v1 = snn::read_npy(kFixtures / "numpy_v1_3x4.npy");
  CHECK(v1.rows == 3);
  CHECK(v1.cols == 4);
  CHECK(v1 == expected);  // bit-exact, the subnormal included
  CHECK(snn::read_npy(kFixtures / "numpy_v2_3x4.npy") == expected);
  const auto shape = snn::read_npy_shape(kFixtures / "numpy_v2_3x4.npy");
  CHECK(shape.rows == 3);
  CHECK(shape.cols == 4);
}

TEST_CASE("write_npy writes the bytes numpy writes, and reads back bit-exactly") {
  // Byte-identical to numpy's own file for the same array: numpy reads ours.
  CHECK(snn::npy_bytes(fixture_matrix()) == slurp(kFixtures / "numpy_v1_3x4.npy"));

  const fs::path p = scratch() / "round.npy";
  snn::Matrix m(7, 129);  // a header needing different padding than 3 x 4
  for (std::size_t i = 0; i < m.data.size(); ++i) m.data[i] = static_cast<float>(i) * 1.0e-3f - 0.4f;
  m(6, 128) = 3.4028235e38f;
  snn::write_npy(p, m);
  CHECK(fs::file_size(p) % 64 == (7 * 129 * 4) % 64);  // data starts 64-byte aligned
  CHECK(snn::read_npy(p) == m);

  snn::Matrix empty_rows(0, 5);
  snn::write_npy(p, empty_rows);
  CHECK(snn::read_npy(p) == empty_rows);
}

TEST_CASE("read_npy rejects numpy files of the wrong kind, naming file and values") {
  const fs::path f8 = kFixtures / "numpy_f8_3x4.npy";
  require_error([&] { snn::read_npy(f8); }, {f8.string(), "expected '<f4'", "found '<f8'", "astype"});
  const fs::path fo = kFixtures / "numpy_fortran_3x4.npy";
  require_error([&] { snn::read_npy(fo); }, {fo.string(), "fortran_order False", "found True"});
  const fs::path d1 = kFixtures / "numpy_1d_5.npy";
  require_error([&] { snn::read_npy(d1); }, {d1.string(), "2-D", "found shape (5,)"});
}

TEST_CASE("read_npy rejects malformed files") {
  const fs::path p = scratch() / "bad.npy";
  const std::string good_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

  SECTION("bad magic") {
    std::string bytes = make_npy(good_dict, floats(6));
    bytes[1] = 'X';
    spit(p, bytes);
    require_error([&] { snn::read_npy(p); }, {p.string(), "expected magic", "found '\\x93XUMPY'"});
  }
  SECTION("not a npy file at all, shorter than the magic") {
    spit(p, "PK");
    require_error([&] { snn::read_npy(p); }, {p.string(), "not a .npy file", "found 'PK'"});
  }
  SECTION("unsupported version") {
    std::string bytes = make_npy(good_dict, floats(6));
    bytes[6] = 3;
    spit(p, bytes);
    require_error([&] { snn::read_npy(p); }, {p.string(), "expected 1.0 or 2.0", "found 3.0"});
  }
  SECTION("truncated data") {
    spit(p, make_npy(good_dict, floats(5)));
    require_error([&] { snn::read_npy(p); }, {p.string(), "truncated", "needs 24 bytes", "found 20"});
  }
  SECTION("trailing data") {
    spit(p, make_npy(good_dict, floats(6) + "x"));
    require_error([&] { snn::read_npy(p); }, {p.string(), "trailing", "needs 24 bytes", "found 25"});
  }
  SECTION("truncated header") {
    std::string bytes = make_npy(good_dict, "");
    bytes.resize(40);
    spit(p, bytes);
    require_error([&] { snn::read_npy(p); }, {p.string(), "truncated"});
  }
  SECTION("version 2.0 header read, then wrong dtype") {
    spit(p, make_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", floats(6), 2));
    require_error([&] { snn::read_npy(p); }, {p.string(), "expected '<f4'", "found '<i4'"});
  }
  SECTION("big-endian floats") {
    spit(p, make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", floats(6)));
    require_error([&] { snn::read_npy(p); }, {p.string(), "found '>f4'"});
  }
  SECTION("header syntax errors") {
    spit(p, make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3) ", floats(6)));
    require_error([&] { snn::read_npy(p); }, {p.string(), "malformed .npy header"});
    spit(p, make_npy("{'descr': '<f4', 'fortran_order': Nope, 'shape': (2, 3), }", floats(6)));
    require_error([&] { snn::read_npy(p); }, {p.string(), "malformed .npy header", "True, False"});
    spit(p, make_npy("{'descr': '<f4', 'shape': (2, 3), }", floats(6)));
    require_error([&] { snn::read_npy(p); }, {p.string(), "lacks the key 'fortran_order'"});
    spit(p, make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': True}", floats(6)));
    require_error([&] { snn::read_npy(p); }, {p.string(), "unexpected key 'extra'"});
    spit(p, make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", floats(6)));
    require_error([&] { snn::read_npy(p); }, {p.string(), "non-negative integer"});
  }
  SECTION("a shape whose byte count overflows") {
    spit(p, make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", floats(6)));
    require_error([&] { snn::read_npy(p); }, {p.string(), "too large"});
  }
  SECTION("missing file") {
    require_error([&] { snn::read_npy(scratch() / "does_not_exist.npy"); }, {"does_not_exist.npy"});
  }
}
