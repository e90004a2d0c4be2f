// libFuzzer target: the IDX reader (snn::read_idx) on files it writes, raw and
// gzipped; see fuzz_targets.h for the input layout.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  snn::fuzz::idx_one(data, size);
  return 0;
}
