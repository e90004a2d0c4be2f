#include "snn/error.h"

#include <catch2/catch.hpp>

TEST_CASE("Error formats its message with fmt and names the value") {
  try {
    throw snn::Error("file '{}': expected {} bytes, found {}", "x.idx", 16, 3);
  } catch (const snn::Error& e) { CHECK(std::string(e.what()) == "file 'x.idx': expected 16 bytes, found 3"); }
  CHECK_THROWS_AS(throw snn::Error(std::string("plain")), std::runtime_error);
}
