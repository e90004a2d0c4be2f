#include "snn/error.h"

namespace snn {

Error::Error(const std::string& message) : std::runtime_error(message) {}

}  // namespace snn
