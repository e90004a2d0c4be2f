// The table of config keys (config_keys.cpp): each key once, with its type,
// default, allowed range and meaning. config.cpp reads, checks and prints a
// Config through it; docs/config.md's table is generated from it.
// Private to snn::tool.
#pragma once

#include "snn/tool/config.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace snn::tool {

class KeyReader;  // key_reader.h

struct ConfigKey {
  std::string name;          ///< "section.key"
  std::string type;          ///< as docs/config.md shows it
  std::string default_text;  ///< docs/config.md's default (Markdown); from Config{} unless the key says otherwise
  std::string range;         ///< the values allowed beyond the type (Markdown), empty if any
  std::string help;          ///< what it means (Markdown, one line)
  /// A key that says the same thing another way (steps / duration_ms): a
  /// --set of one removes the file's other, so the command line wins.
  std::string alternative;
  /// Reads the key from the document into `config` if it is there and valid
  /// (otherwise records the error); true when it was read.
  std::function<bool(KeyReader&, Config&)> read;
  /// The key's effective value in TOML syntax, or nullopt to leave it out of
  /// config.resolved.toml.
  std::function<std::optional<std::string>(const Config&)> print;
};

/// Every key, grouped by section in the order config.resolved.toml shows them.
const std::vector<ConfigKey>& config_keys();

}  // namespace snn::tool
