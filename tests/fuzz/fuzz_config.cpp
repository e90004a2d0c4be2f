// libFuzzer target: the config parser (snn::tool::parse_config); see fuzz_targets.h.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  snn::fuzz::config_one(data, size);
  return 0;
}
