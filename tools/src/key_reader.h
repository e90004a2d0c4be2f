// The TOML side of config parsing, shared by config.cpp (documents and
// overrides) and config_keys.cpp (the key table). Private to snn::tool.
#pragma once

#include "snn/tool/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

namespace snn::tool {

/// `s` as a TOML basic string: quotes, backslashes and control characters
/// (DEL included, which JSON would leave as it is) escaped.
inline std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\')
      out += {'\\', ch};
    else if (u < 0x20 || u == 0x7f)
      out += fmt::format("\\u{:04x}", u);
    else
      out += ch;
  }
  return out + "\"";
}

/// Where a node came from: "line N", "(--set)", or "(default)".
inline std::string where(const toml::node& node) {
  const auto& src = node.source();
  if (src.path && *src.path == "--set") return "(--set)";
  return src.begin.line ? fmt::format("line {}", src.begin.line) : std::string("(default)");
}

// Reads keys of the parsed document (the config keys of config_keys.cpp call
// it). Every key it is asked for becomes "known"; whatever the document holds
// beyond those is an unknown key. Errors are collected, not thrown, so one run
// reports them all.
class KeyReader {
 public:
  KeyReader(toml::table& root, std::string source) : root_(root), source_(std::move(source)) {}

  /// Whether the document holds `key` (after the --set overrides).
  bool has(const std::string& key) const { return root_.at_path(key).node() != nullptr; }

  const toml::node* find(const std::string& key) {
    known_.insert(key);
    for (auto pos = key.find('.'); pos != std::string::npos; pos = key.find('.', pos + 1)) known_.insert(key.substr(0, pos));
    return root_.at_path(key).node();
  }

  void error(const std::string& key, const toml::node* node, const std::string& what) {
    errors_.push_back(node ? fmt::format("{}: {}: '{}' {}", source_, where(*node), key, what)
                           : fmt::format("{}: '{}' {}", source_, key, what));
  }

  bool get(const std::string& key, bool& out) {
    const toml::node* n = find(key);
    if (!n) return false;
    if (auto v = n->value_exact<bool>()) {
      out = *v;
      return true;
    }
    error(key, n, fmt::format("must be true or false, found {}", type_name(*n)));
    return false;
  }

  template <typename Int>
  requires std::is_integral_v<Int>
  bool get(const std::string& key, Int& out) {
    const toml::node* n = find(key);
    if (!n) return false;
    auto v = n->value_exact<std::int64_t>();
    if (!v) {
      error(key, n, fmt::format("must be an integer, found {}", type_name(*n)));
      return false;
    }
    if (*v < static_cast<std::int64_t>(std::numeric_limits<Int>::min()) ||
        (*v > 0 && static_cast<std::uint64_t>(*v) > static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))) {
      error(key, n, fmt::format("= {} is out of range", *v));
      return false;
    }
    out = static_cast<Int>(*v);
    return true;
  }

  bool get(const std::string& key, double& out) {
    const toml::node* n = find(key);
    if (!n) return false;
    if (auto v = n->value_exact<double>()) {
      out = *v;
      return true;
    }
    if (auto v = n->value_exact<std::int64_t>()) {
      out = static_cast<double>(*v);
      return true;
    }
    error(key, n, fmt::format("must be a number, found {}", type_name(*n)));
    return false;
  }

  bool get(const std::string& key, std::string& out) {
    const toml::node* n = find(key);
    if (!n) return false;
    if (auto v = n->value_exact<std::string>()) {
      out = *v;
      return true;
    }
    error(key, n, fmt::format("must be a string, found {}", type_name(*n)));
    return false;
  }

  // A list key accepts one scalar (meaning: the same for all) or an array.
  template <typename T>
  bool get(const std::string& key, std::vector<T>& out) {
    const toml::node* n = find(key);
    if (!n) return false;
    std::vector<T> values;
    auto take = [&](const toml::node& item) {
      if constexpr (std::is_integral_v<T>) {
        if (auto v = item.value_exact<std::int64_t>()) {
          if (*v < std::numeric_limits<T>::min() || *v > std::numeric_limits<T>::max()) return false;
          values.push_back(static_cast<T>(*v));
          return true;
        }
      } else {
        if (auto v = item.value_exact<double>()) {
          values.push_back(*v);
          return true;
        }
        if (auto v = item.value_exact<std::int64_t>()) {
          values.push_back(static_cast<double>(*v));
          return true;
        }
      }
      return false;
    };
    const char* want = std::is_integral_v<T> ? "an integer or an array of integers" : "a number or an array of numbers";
    if (const toml::array* arr = n->as_array()) {
      for (const auto& item : *arr) {
        if (!take(item)) {
          error(key, n, fmt::format("must be {}, found an element that is {}", want, type_name(item)));
          return false;
        }
      }
    } else if (!take(*n)) {
      error(key, n, fmt::format("must be {}, found {}", want, type_name(*n)));
      return false;
    }
    out = std::move(values);
    return true;
  }

  // Anything in the document that no get() asked for.
  void check_unknown() {
    std::vector<std::string> known(known_.begin(), known_.end());
    walk(root_, "", known);
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  static std::string type_name(const toml::node& n) {
    switch (n.type()) {
      case toml::node_type::string: return "a string";
      case toml::node_type::integer: return "an integer";
      case toml::node_type::floating_point: return "a float";
      case toml::node_type::boolean: return "a boolean";
      case toml::node_type::array: return "an array";
      case toml::node_type::table: return "a table";
      default: return "a date/time";
    }
  }

  void walk(const toml::table& table, const std::string& prefix, const std::vector<std::string>& known) {
    for (const auto& [k, v] : table) {
      const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      if (!known_.count(key)) {
        const std::string guess = did_you_mean(key, known);
        error(key, &v, guess.empty() ? "is not a known key" : fmt::format("is not a known key; did you mean '{}'?", guess));
        continue;
      }
      if (const toml::table* sub = v.as_table()) walk(*sub, key, known);
    }
  }

  toml::table& root_;
  std::string source_;
  std::set<std::string> known_;
  std::vector<std::string> errors_;
};

}  // namespace snn::tool
