#include "snn/tool/config.h"

#include "config_keys.h"
#include "key_reader.h"
#include "snn/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace snn::tool {
namespace {

void apply_override(toml::table& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error("--set '{}': expected key=value, for example --set simulation.steps=100", assignment);
  std::string key = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  key.erase(key.find_last_not_of(" \t") + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value, std::string_view("--set"));
  } catch (const toml::parse_error&) {
    // A bare word (--set normalisation.method=robust) is meant as a string;
    // parsed as one so that its messages, too, say it came from --set.
    try {
      parsed = toml::parse("v = " + toml_string(value), std::string_view("--set"));
    } catch (const toml::parse_error&) {  // not UTF-8
      throw Error("--set '{}': the value is not valid UTF-8 text", key);
    }
  }
  toml::table* table = &root;
  std::size_t start = 0;
  for (auto dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
    const std::string part = key.substr(start, dot - start);
    auto [it, inserted] = table->insert(part, toml::table{});
    if (!it->second.is_table()) throw Error("--set '{}': '{}' is not a table", assignment, key.substr(0, dot));
    table = it->second.as_table();
    start = dot + 1;
  }
  table->insert_or_assign(key.substr(start), std::move(*parsed.get("v")));
  // The command line wins over the file's other way of saying the same thing
  // (--set simulation.steps=100 on a file that sets duration_ms).
  for (const ConfigKey& k : config_keys()) {
    if (k.name != key || k.alternative.empty()) continue;
    const std::string other = k.alternative;
    const auto dot = other.rfind('.');
    toml::node* other_node = root.at_path(other).node();
    toml::table* section = root.at_path(other.substr(0, dot)).as_table();
    if (other_node && section && !(other_node->source().path && *other_node->source().path == "--set"))
      section->erase(other.substr(dot + 1));
  }
}

// Checks that involve several keys, after each key was read and checked on its
// own; `r` says which keys the document gave.
void check_together(Config& c, KeyReader& r) {
  auto bad = [&](const std::string& key, const std::string& what) { r.error(key, r.find(key), what); };
  auto& s = c.simulation;
  if (s.duration_ms && s.dt_ms > 0) {
    const double ratio = *s.duration_ms / s.dt_ms;
    const auto whole = static_cast<Step>(std::llround(ratio));
    if (std::abs(ratio - static_cast<double>(whole)) > 1e-9 * std::max(1.0, ratio))
      bad("simulation.duration_ms", fmt::format("= {} is not a whole number of steps of dt_ms = {}", *s.duration_ms, s.dt_ms));
    else if (r.has("simulation.steps") && whole != s.steps)
      bad("simulation.duration_ms", fmt::format("= {} gives {} steps of {} ms but simulation.steps = {}; give one of them",
                                                *s.duration_ms, whole, s.dt_ms, s.steps));
    else
      s.steps = whole;
  }
  if (s.encoding == Encoding::Poisson) {
    const double scale = c.probability_scale();
    if (scale > 1.0) {
      if (s.clamp_probability)
        c.warnings.push_back(
            fmt::format("spike probability p = min(1, {:g} x): pixels above {:.3g} spike at every step (max_rate_hz * dt = {:g} "
                        "Hz * {:g} ms)",
                        scale, 1.0 / scale, s.max_rate_hz, s.dt_ms));
      else
        bad("simulation.max_rate_hz",
            fmt::format("= {:g} Hz with dt_ms = {:g} gives a spike probability of up to {:g} per step, above 1; lower the rate "
                        "or dt, or set simulation.clamp_probability = true to use p = min(1, {:g} x) as the seed does",
                        s.max_rate_hz, s.dt_ms, scale, scale));
    }
  }
  if (!c.network.model.empty()) {
    // The ONNX file is the whole ANN: anything that would build or train another one contradicts it.
    for (const char* other : {"network.weights", "network.hidden", "network.layers", "training"})
      if (r.has(other))
        bad(other, fmt::format("cannot be given with network.model = \"{}\": the ONNX file's layers and weights are the ANN "
                               "(remove one of them)",
                               c.network.model));
  }
  // Spiking populations (input is not one): dense, conv and avgpool layers. With an imported
  // model the count is known only once the file is read (build_network checks then).
  std::size_t populations = c.network.hidden.size() + 1;
  if (!c.network.layers.empty()) {
    populations = 0;
    for (const LayerSpec& l : c.network.layers) populations += l.spiking();
    if (r.has("network.hidden"))
      bad("network.hidden", "and network.layers are both given; network.layers describes the whole network, drop one");
  }
  if (c.network.model.empty() && s.threshold.size() != 1 && s.threshold.size() != populations)
    bad("simulation.threshold",
        fmt::format("has {} values; give one, or one per spiking population ({})", s.threshold.size(), populations));
  if (c.network.model.empty() && s.delays.size() != 1 && s.delays.size() != populations)
    bad("simulation.delays", fmt::format("has {} values; give one, or one per connection ({})", s.delays.size(), populations));
  // Default checkpoints beyond a short run are dropped silently; explicit ones are the user's word.
  if (r.has("simulation.checkpoints")) {
    for (int cp : s.checkpoints)
      if (cp > s.steps) {
        bad("simulation.checkpoints", fmt::format("has {}, beyond simulation.steps = {}", cp, s.steps));
        break;
      }
  } else {
    std::erase_if(s.checkpoints, [&](int cp) { return cp > s.steps; });
  }
  if (std::find(s.checkpoints.begin(), s.checkpoints.end(), s.steps) == s.checkpoints.end()) s.checkpoints.push_back(s.steps);
  std::sort(s.checkpoints.begin(), s.checkpoints.end());
  s.checkpoints.erase(std::unique(s.checkpoints.begin(), s.checkpoints.end()), s.checkpoints.end());
}

Config read(toml::table& root, const std::string& source) {
  Config c;
  // A file without output.dir writes to out/<its name>, so two configs never
  // overwrite each other's report by default.
  const std::string stem = std::filesystem::path(source).stem().string();
  if (!stem.empty()) c.output.dir = "out/" + stem;
  KeyReader r(root, source);
  for (const ConfigKey& key : config_keys()) key.read(r, c);
  check_together(c, r);
  r.check_unknown();
  if (!r.errors().empty()) {
    throw Error("{} has {} problem{}:\n  {}", source, r.errors().size(), r.errors().size() == 1 ? "" : "s",
                fmt::join(r.errors(), "\n  "));
  }
  return c;
}

}  // namespace

std::string did_you_mean(const std::string& key, const std::vector<std::string>& known) {
  // Plain Levenshtein distance; the key sets are a few dozen entries.
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      std::swap(prev, cur);
    }
    return prev[b.size()];
  };
  std::string best;
  std::size_t best_d = std::numeric_limits<std::size_t>::max();
  for (const auto& k : known) {
    const std::size_t d = distance(key, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  // Accept up to a third of the key's last component's length in edits.
  const auto dot = key.rfind('.');
  const std::size_t tail = key.size() - (dot == std::string::npos ? 0 : dot + 1);
  return best_d <= std::max<std::size_t>(2, tail / 3) ? best : std::string();
}

Config parse_config(const std::string& toml_text, const std::string& source_name, const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    throw Error("{}: line {}, column {}: TOML syntax error: {}", source_name, e.source().begin.line, e.source().begin.column,
                e.description());
  }
  for (const auto& o : overrides) apply_override(root, o);
  return read(root, source_name);
}

Config load_config(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error("config '{}' does not exist", path.string());
  if (std::filesystem::is_directory(path, ec)) throw Error("config '{}' is a directory, not a TOML file", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read config '{}'", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  Config c = parse_config(ss.str(), path.string(), overrides);
  c.file = path;
  return c;
}

std::string to_toml(const Config& c) {
  std::string out;
  std::string section;
  for (const ConfigKey& key : config_keys()) {
    const auto value = key.print(c);
    if (!value) continue;
    const auto dot = key.name.find('.');
    if (key.name.substr(0, dot) != section) {
      section = key.name.substr(0, dot);
      out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", section);
    }
    out += fmt::format("{} = {}\n", key.name.substr(dot + 1), *value);
  }
  return out;
}

std::string config_keys_markdown() {
  std::string out = "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
  for (const ConfigKey& k : config_keys())
    out += fmt::format("| `{}` | {} | {} | {} | {} |\n", k.name, k.type, k.default_text, k.range, k.help);
  return out;
}

}  // namespace snn::tool
