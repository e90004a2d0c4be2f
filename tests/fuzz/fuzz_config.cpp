// libFuzzer target: any bytes given to the config parser either parse into a
// valid config or raise snn::Error; nothing else (no crash, no other exception).
#include "snn/error.h"
#include "snn/tool/config.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto config = snn::tool::parse_config(text, "fuzz.toml");
    // A config that parsed must also print and parse again.
    (void)snn::tool::parse_config(snn::tool::to_toml(config), "resolved.toml");
  } catch (const snn::Error&) {
  }
  return 0;
}
