// The one exception type of snnsim. Messages are built with fmt at the throw
// site and name the file, key or value at fault; tools/ catches it once in main.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace snn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message);

  /// Error("cannot open '{}': {}", path, reason): formats with fmt.
  template <typename... Args>
  explicit Error(fmt::format_string<Args...> format, Args&&... args) : Error(fmt::format(format, std::forward<Args>(args)...)) {}
};

}  // namespace snn
