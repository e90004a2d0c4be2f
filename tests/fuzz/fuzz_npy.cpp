// libFuzzer target: the .npy reader (snn::read_npy, read_npy_shape) and the
// weight manifest loader (snn::load_weights); see fuzz_targets.h.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  snn::fuzz::npy_one(data, size);
  return 0;
}
