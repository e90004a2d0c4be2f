#include "snn/tool/config.h"

#include "snn/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <toml++/toml.h>

namespace snn::tool {
namespace {

std::string where(const toml::node& node) {
  const auto& src = node.source();
  if (src.path && *src.path == "--set") return "(--set)";
  return src.begin.line ? fmt::format("line {}", src.begin.line) : std::string("(default)");
}

// Reads keys of the parsed document into the Config fields. Every key it is
// asked for becomes "known"; whatever the document holds beyond those is an
// unknown key. Errors are collected, not thrown, so one run reports them all.
class Reader {
 public:
  Reader(toml::table& root, std::string source) : root_(root), source_(std::move(source)) {}

  const toml::node* find(const std::string& key) {
    known_.insert(key);
    for (auto pos = key.find('.'); pos != std::string::npos; pos = key.find('.', pos + 1))
      known_.insert(key.substr(0, pos));
    return root_.at_path(key).node();
  }

  void error(const std::string& key, const toml::node* node, const std::string& what) {
    errors_.push_back(node ? fmt::format("{}: {}: '{}' {}", source_, where(*node), key, what)
                           : fmt::format("{}: '{}' {}", source_, key, what));
  }

  bool get(const std::string& key, bool& out) {
    const toml::node* n = find(key);
    if (!n) return false;
    if (auto v = n->value_exact<bool>()) { out = *v; return true; }
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
    if (auto v = n->value_exact<double>()) { out = *v; return true; }
    if (auto v = n->value_exact<std::int64_t>()) { out = static_cast<double>(*v); return true; }
    error(key, n, fmt::format("must be a number, found {}", type_name(*n)));
    return false;
  }

  bool get(const std::string& key, std::string& out) {
    const toml::node* n = find(key);
    if (!n) return false;
    if (auto v = n->value_exact<std::string>()) { out = *v; return true; }
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
        if (auto v = item.value_exact<double>()) { values.push_back(*v); return true; }
        if (auto v = item.value_exact<std::int64_t>()) { values.push_back(static_cast<double>(*v)); return true; }
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

  template <typename Enum>
  bool get_enum(const std::string& key, Enum& out, const std::vector<std::pair<std::string, Enum>>& names) {
    std::string s;
    if (!get(key, s)) return false;
    for (const auto& [name, value] : names)
      if (name == s) { out = value; return true; }
    std::vector<std::string> options;
    for (const auto& p : names) options.push_back(p.first);
    error(key, find(key), fmt::format("= \"{}\" is not one of: {}", s, fmt::join(options, ", ")));
    return false;
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
    // A bare word (--set normalisation.method=robust) is meant as a string.
    toml::table t;
    t.insert("v", value);
    parsed = std::move(t);
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
}

Config read(toml::table& root, const std::string& source) {
  Config c;
  Reader r(root, source);
  std::vector<std::string> problems;
  auto bad = [&](const std::string& key, const std::string& what) { r.error(key, r.find(key), what); };

  r.get("dataset.name", c.dataset.name);
  r.get("dataset.classes", c.dataset.classes);
  if (c.dataset.name.empty()) bad("dataset.name", "must not be empty");
  if (c.dataset.classes < 2) bad("dataset.classes", fmt::format("= {} must be at least 2", c.dataset.classes));

  r.get("network.hidden", c.network.hidden);
  r.get("network.weights", c.network.weights);
  for (int w : c.network.hidden)
    if (w <= 0) { bad("network.hidden", fmt::format("has a width {}; widths must be positive", w)); break; }

  auto& t = c.training;
  r.get("training.epochs", t.epochs);
  r.get("training.batch_size", t.batch_size);
  r.get("training.learning_rate", t.learning_rate);
  r.get("training.dropout", t.dropout);
  r.get("training.init_range", t.init_range);
  r.get("training.output_relu", t.output_relu);
  r.get("training.limit", t.limit);
  r.get("training.seed", t.seed);
  if (t.epochs <= 0) bad("training.epochs", fmt::format("= {} must be positive", t.epochs));
  if (t.batch_size <= 0) bad("training.batch_size", fmt::format("= {} must be positive", t.batch_size));
  if (!(t.learning_rate > 0)) bad("training.learning_rate", fmt::format("= {} must be positive", t.learning_rate));
  if (!(t.dropout >= 0 && t.dropout < 1)) bad("training.dropout", fmt::format("= {} must be in [0, 1)", t.dropout));
  if (!(t.init_range > 0)) bad("training.init_range", fmt::format("= {} must be positive", t.init_range));
  if (t.limit < 0) bad("training.limit", fmt::format("= {} must be >= 0 (0: all)", t.limit));

  auto& n = c.normalisation;
  r.get_enum("normalisation.method", n.method,
             {{"none", Normalisation::None}, {"model", Normalisation::Model}, {"data", Normalisation::Data}, {"robust", Normalisation::Robust}});
  r.get("normalisation.percentile", n.percentile);
  bool include_last = false;
  if (r.get("normalisation.include_last", include_last)) n.include_last = include_last;
  r.get("normalisation.samples", n.samples);
  if (!(n.percentile > 0 && n.percentile <= 100)) bad("normalisation.percentile", fmt::format("= {} must be in (0, 100]", n.percentile));
  if (n.samples < 0) bad("normalisation.samples", fmt::format("= {} must be >= 0 (0: all)", n.samples));

  auto& s = c.simulation;
  const bool has_steps = r.get("simulation.steps", s.steps);
  r.get("simulation.dt_ms", s.dt_ms);
  double duration_ms = 0;
  const bool has_duration = r.get("simulation.duration_ms", duration_ms);
  r.get_enum("simulation.encoding", s.encoding, {{"poisson", Encoding::Poisson}, {"analog", Encoding::Analog}});
  r.get("simulation.max_rate_hz", s.max_rate_hz);
  r.get("simulation.clamp_probability", s.clamp_probability);
  r.get("simulation.threshold", s.threshold);
  r.get_enum("simulation.reset", s.reset, {{"subtract", ResetMode::Subtract}, {"zero", ResetMode::Zero}});
  r.get("simulation.beta", s.beta);
  r.get("simulation.refractory_steps", s.refractory_steps);
  r.get("simulation.delays", s.delays);
  r.get("simulation.fixed_point_bits", s.fixed_point_bits);
  r.get("simulation.weight_cutoff", s.weight_cutoff);
  r.get_enum("simulation.tie_break", s.tie_break, {{"lowest", TieBreak::lowest}, {"potential", TieBreak::potential}});
  r.get("simulation.limit", s.limit);
  r.get("simulation.seed", s.seed);
  r.get("simulation.threads", s.threads);
  const bool has_checkpoints = r.get("simulation.checkpoints", s.checkpoints);
  r.get("simulation.early_exit", s.early_exit);
  r.get("simulation.early_exit_margin", s.early_exit_margin);
  r.get("simulation.early_exit_steps", s.early_exit_steps);
  r.get("simulation.batch_size", s.batch_size);

  if (!(s.dt_ms > 0)) bad("simulation.dt_ms", fmt::format("= {} must be positive", s.dt_ms));
  if (has_duration) {
    if (!(duration_ms > 0)) {
      bad("simulation.duration_ms", fmt::format("= {} must be positive", duration_ms));
    } else if (s.dt_ms > 0) {
      const double ratio = duration_ms / s.dt_ms;
      const auto whole = static_cast<Step>(std::llround(ratio));
      if (std::abs(ratio - whole) > 1e-9 * std::max(1.0, ratio))
        bad("simulation.duration_ms", fmt::format("= {} is not a whole number of steps of dt_ms = {}", duration_ms, s.dt_ms));
      else if (has_steps && whole != s.steps)
        bad("simulation.duration_ms", fmt::format("= {} gives {} steps of {} ms but simulation.steps = {}; give one of them", duration_ms, whole, s.dt_ms, s.steps));
      else
        s.steps = whole;
    }
  }
  if (s.steps <= 0) bad("simulation.steps", fmt::format("= {} must be positive", s.steps));
  if (s.encoding == Encoding::Poisson) {
    if (!(s.max_rate_hz > 0)) bad("simulation.max_rate_hz", fmt::format("= {} must be positive", s.max_rate_hz));
    const double scale = c.probability_scale();
    if (scale > 1.0 && s.max_rate_hz > 0 && s.dt_ms > 0) {
      if (s.clamp_probability)
        c.warnings.push_back(fmt::format(
            "spike probability p = min(1, {:g} x): pixels above {:.3g} spike at every step (max_rate_hz * dt = {:g} Hz * {:g} ms)",
            scale, 1.0 / scale, s.max_rate_hz, s.dt_ms));
      else
        bad("simulation.max_rate_hz",
            fmt::format("= {:g} Hz with dt_ms = {:g} gives a spike probability of up to {:g} per step, above 1; lower the rate "
                        "or dt, or set simulation.clamp_probability = true to use p = min(1, {:g} x) as the seed does",
                        s.max_rate_hz, s.dt_ms, scale, scale));
    }
  }
  const std::size_t populations = c.network.hidden.size() + 1;  // spiking populations (input is not one)
  if (s.threshold.size() != 1 && s.threshold.size() != populations)
    bad("simulation.threshold", fmt::format("has {} values; give one, or one per spiking population ({})", s.threshold.size(), populations));
  for (double th : s.threshold)
    if (!(th > 0)) { bad("simulation.threshold", fmt::format("has {}; thresholds must be positive", th)); break; }
  if (s.delays.size() != 1 && s.delays.size() != populations)
    bad("simulation.delays", fmt::format("has {} values; give one, or one per connection ({})", s.delays.size(), populations));
  for (int d : s.delays)
    if (d < 0) { bad("simulation.delays", fmt::format("has {}; delays must be >= 0 steps", d)); break; }
  if (!(s.beta > 0 && s.beta <= 1)) bad("simulation.beta", fmt::format("= {} must be in (0, 1]", s.beta));
  if (s.refractory_steps < 0) bad("simulation.refractory_steps", fmt::format("= {} must be >= 0", s.refractory_steps));
  if (s.fixed_point_bits < 4 || s.fixed_point_bits > 24)
    bad("simulation.fixed_point_bits", fmt::format("= {} must be in [4, 24]", s.fixed_point_bits));
  if (!(s.weight_cutoff >= 0)) bad("simulation.weight_cutoff", fmt::format("= {} must be >= 0", s.weight_cutoff));
  if (s.limit < 0) bad("simulation.limit", fmt::format("= {} must be >= 0 (0: all)", s.limit));
  if (s.threads < 0) bad("simulation.threads", fmt::format("= {} must be >= 0 (0: all cores)", s.threads));
  if (s.early_exit_margin < 1) bad("simulation.early_exit_margin", fmt::format("= {} must be at least 1", s.early_exit_margin));
  if (s.early_exit_steps < 1) bad("simulation.early_exit_steps", fmt::format("= {} must be at least 1", s.early_exit_steps));
  if (s.batch_size <= 0) bad("simulation.batch_size", fmt::format("= {} must be positive", s.batch_size));
  for (int cp : s.checkpoints)
    if (cp <= 0) { bad("simulation.checkpoints", fmt::format("has {}; checkpoints must be positive steps", cp)); break; }
  if (s.steps > 0) {
    // Default checkpoints beyond a short run are dropped silently; explicit ones are the user's word.
    if (has_checkpoints) {
      for (int cp : s.checkpoints)
        if (cp > s.steps) { bad("simulation.checkpoints", fmt::format("has {}, beyond simulation.steps = {}", cp, s.steps)); break; }
    } else {
      std::erase_if(s.checkpoints, [&](int cp) { return cp > s.steps; });
    }
    if (std::find(s.checkpoints.begin(), s.checkpoints.end(), s.steps) == s.checkpoints.end()) s.checkpoints.push_back(s.steps);
    std::sort(s.checkpoints.begin(), s.checkpoints.end());
    s.checkpoints.erase(std::unique(s.checkpoints.begin(), s.checkpoints.end()), s.checkpoints.end());
  }

  r.get("output.dir", c.output.dir);
  r.get("output.cache", c.output.cache);
  r.get("output.plots", c.output.plots);
  if (c.output.dir.empty()) bad("output.dir", "must not be empty");
  if (c.output.cache.empty()) bad("output.cache", "must not be empty");

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
    if (d < best_d) { best_d = d; best = k; }
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
  auto ints = [](const auto& v) {
    toml::array a;
    for (auto x : v) a.push_back(static_cast<std::int64_t>(x));
    return a;
  };
  auto floats = [](const std::vector<double>& v) {
    toml::array a;
    for (double x : v) a.push_back(x);
    return a;
  };
  const auto& s = c.simulation;
  toml::table normalisation{{"method", std::string(to_string(c.normalisation.method))},
                            {"percentile", c.normalisation.percentile},
                            {"samples", c.normalisation.samples}};
  if (c.normalisation.include_last) normalisation.insert("include_last", *c.normalisation.include_last);
  toml::table root{
      {"dataset", toml::table{{"name", c.dataset.name}, {"classes", c.dataset.classes}}},
      {"network", toml::table{{"hidden", ints(c.network.hidden)}, {"weights", c.network.weights}}},
      {"training", toml::table{{"epochs", c.training.epochs},
                               {"batch_size", c.training.batch_size},
                               {"learning_rate", c.training.learning_rate},
                               {"dropout", c.training.dropout},
                               {"init_range", c.training.init_range},
                               {"output_relu", c.training.output_relu},
                               {"limit", c.training.limit},
                               {"seed", static_cast<std::int64_t>(c.training.seed)}}},
      {"normalisation", normalisation},
      {"simulation",
       toml::table{{"steps", s.steps},
                   {"dt_ms", s.dt_ms},
                   {"encoding", std::string(engine::to_string(s.encoding))},
                   {"max_rate_hz", s.max_rate_hz},
                   {"clamp_probability", s.clamp_probability},
                   {"threshold", floats(s.threshold)},
                   {"reset", std::string(to_string(s.reset))},
                   {"beta", s.beta},
                   {"refractory_steps", s.refractory_steps},
                   {"delays", ints(s.delays)},
                   {"fixed_point_bits", s.fixed_point_bits},
                   {"weight_cutoff", s.weight_cutoff},
                   {"tie_break", s.tie_break == TieBreak::lowest ? "lowest" : "potential"},
                   {"limit", s.limit},
                   {"seed", static_cast<std::int64_t>(s.seed)},
                   {"threads", s.threads},
                   {"checkpoints", ints(s.checkpoints)},
                   {"early_exit", s.early_exit},
                   {"early_exit_margin", s.early_exit_margin},
                   {"early_exit_steps", s.early_exit_steps},
                   {"batch_size", s.batch_size}}},
      {"output", toml::table{{"dir", c.output.dir}, {"cache", c.output.cache}, {"plots", c.output.plots}}},
  };
  std::ostringstream out;
  out << root << "\n";
  return out.str();
}

}  // namespace snn::tool
