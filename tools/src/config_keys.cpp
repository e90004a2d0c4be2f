// The config keys, each defined once. To add a key: add its field (with its
// default) to a section struct in snn/tool/config.h, add one entry below, and
// regenerate docs/config.md's table (tools/config-table; test_config fails
// until it agrees). Checks that involve several keys live in config.cpp
// (check_together).
#include "config_keys.h"

#include "key_reader.h"
#include "snn/error.h"
#include "snn/network/layer_spec.h"

#include <fmt/format.h>

#include <fmt/ranges.h>
#include <algorithm>

#include <cmath>
#include <optional>
#include <type_traits>

namespace snn::tool {
namespace {

// ---- values in TOML syntax -------------------------------------------------

std::string toml_value(bool b) { return b ? "true" : "false"; }
std::string toml_value(const std::string& s) { return toml_string(s); }
std::string toml_value(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", d);  // shortest text that reads back as the same double
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}
template <typename Int>
requires std::is_integral_v<Int> std::string toml_value(Int i) { return fmt::format("{}", i); }
template <typename T>
std::string toml_value(const std::vector<T>& v) {
  std::vector<std::string> items;
  for (const auto& x : v) items.push_back(toml_value(x));
  return fmt::format("[{}]", fmt::join(items, ", "));
}

template <typename T>
struct Optional : std::false_type {
  using Read = T;  ///< what a present key holds
};
template <typename T>
struct Optional<std::optional<T>> : std::true_type {
  using Read = T;
};
template <typename T>
struct Vector : std::false_type {};
template <typename T>
struct Vector<std::vector<T>> : std::true_type {};

template <typename T>
std::string type_text() {
  if constexpr (Optional<T>::value)
    return type_text<typename T::value_type>();
  else if constexpr (std::is_same_v<T, bool>)
    return "boolean";
  else if constexpr (std::is_integral_v<T>)
    return "integer";
  else if constexpr (std::is_floating_point_v<T>)
    return "number";
  else if constexpr (std::is_same_v<T, std::string>)
    return "string";
  else
    return "list of " + type_text<typename T::value_type>() + "s";
}

// ---- allowed values --------------------------------------------------------

struct Range {
  std::optional<double> lo, hi;
  bool lo_open = false, hi_open = false;
  bool non_empty = false;       ///< strings
  std::string note;             ///< said after the rule: " (0: all)"
  std::string noun;             ///< list elements, in messages: "thresholds"
  std::vector<double> allowed;  ///< when not empty: the only values allowed

  bool contains(double v) const {
    if (!allowed.empty()) return std::find(allowed.begin(), allowed.end(), v) != allowed.end();
    if (lo && (lo_open ? !(v > *lo) : !(v >= *lo))) return false;
    if (hi && (hi_open ? !(v < *hi) : !(v <= *hi))) return false;
    return true;
  }
  // "must be positive", "must be >= 0", "must be at least 2", "must be in (0, 1]".
  std::string rule() const {
    if (!allowed.empty()) return "must be one of " + listed(", ");
    if (lo && hi) return fmt::format("must be in {}{}, {}{}", lo_open ? '(' : '[', *lo, *hi, hi_open ? ')' : ']');
    if (lo && *lo == 0) return lo_open ? "must be positive" : "must be >= 0";
    if (lo) return fmt::format("must be at least {}", *lo);
    return "";
  }
  // For docs/config.md: "`> 0`", "`[0, 1)`".
  std::string text() const {
    if (non_empty) return "not empty";
    if (!allowed.empty()) return "`" + listed("`, `") + "`";
    if (lo && hi) return fmt::format("`{}{}, {}{}`", lo_open ? '(' : '[', *lo, *hi, hi_open ? ')' : ']');
    if (lo) return fmt::format("`{} {}`", lo_open ? ">" : ">=", *lo);
    return "";
  }
  std::string listed(const char* sep) const {
    std::string out;
    for (double a : allowed) out += (out.empty() ? "" : sep) + fmt::format("{}", a);
    return out;
  }
  // Why `v` is not allowed, or "".
  template <typename T>
  std::string check(const T& v) const {
    if constexpr (Vector<T>::value) {
      for (const auto& x : v)
        if (!contains(static_cast<double>(x))) return fmt::format("has {}; {} {}{}", x, noun, rule(), note);
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (non_empty && v.empty()) return "must not be empty";
    } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
      if (!contains(static_cast<double>(v))) return fmt::format("= {} {}{}", v, rule(), note);
    }
    return "";
  }
};

Range any() { return {}; }
Range positive(std::string noun = {}) {
  Range r;
  r.lo = 0.0;
  r.lo_open = true;
  r.noun = std::move(noun);
  return r;
}
Range at_least(double lo, std::string note = {}, std::string noun = {}) {
  Range r;
  r.lo = lo;
  r.note = std::move(note);
  r.noun = std::move(noun);
  return r;
}
Range within(char open, double lo, double hi, char close) {
  Range r;
  r.lo = lo;
  r.hi = hi;
  r.lo_open = open == '(';
  r.hi_open = close == ')';
  return r;
}
Range one_of(std::vector<double> values) {
  Range r;
  r.allowed = std::move(values);
  return r;
}
Range not_empty() {
  Range r;
  r.non_empty = true;
  return r;
}

// ---- key builders ----------------------------------------------------------

// A key named after its field, so the two cannot disagree:
// SNN_KEY(simulation, steps) is "simulation.steps" and c.simulation.steps.
#define SNN_KEY(section, field) \
#section "." #field, [](auto& c) -> auto& { return c.section.field; }

// A plain value (bool, integer, number, string, optional one, list of them).
// `one_for_all` lists may be given as one value, meaning the same for all.
template <typename Get>
ConfigKey value(const char* name, Get get, Range range, std::string help, bool one_for_all = false) {
  using T = std::remove_cvref_t<decltype(get(std::declval<Config&>()))>;
  ConfigKey k;
  k.name = name;
  k.type = type_text<T>();
  if constexpr (Vector<T>::value)
    if (one_for_all) k.type = type_text<typename T::value_type>() + " or " + k.type;
  k.range = range.text();
  k.help = std::move(help);
  k.read = [name = k.name, get, range](KeyReader& r, Config& c) {
    typename Optional<T>::Read v{};
    if (!r.get(name, v)) return false;
    if (const std::string why = range.check(v); !why.empty()) {
      r.error(name, r.find(name), why);
      return false;
    }
    get(c) = std::move(v);
    return true;
  };
  k.print = [get, one_for_all](const Config& c) -> std::optional<std::string> {
    const T& v = get(c);
    (void)one_for_all;  // used for lists only
    if constexpr (Optional<T>::value) {
      if (!v) return std::nullopt;
      return toml_value(*v);
    } else if constexpr (Vector<T>::value) {
      return one_for_all && v.size() == 1 ? toml_value(v[0]) : toml_value(v);
    } else {
      return toml_value(v);
    }
  };
  const auto printed = k.print(Config{});
  k.default_text = printed ? fmt::format("`{}`", *printed) : "";
  return k;
}

// simulation.early_exit was a boolean: a config written then gets told what
// its value now is called, rather than only "must be a string".
ConfigKey early_exit_was_boolean(ConfigKey k) {
  k.read = [read = k.read, name = k.name](KeyReader& r, Config& c) {
    const toml::node* n = r.find(name);
    if (n && n->is_boolean()) {
      r.error(name, n,
              fmt::format("= {} is no longer a boolean: give \"measure\" (what true did: run to the end and report "
                          "both the full and the early-exit figures), \"stop\" (samples stop at their exit) or \"off\"",
                          n->value<bool>().value_or(false)));
      return false;
    }
    return read(r, c);
  };
  return k;
}

// One of a few names, each standing for an enum value.
template <typename Get, typename Enum>
ConfigKey choice(const char* name, Get get, std::vector<std::pair<std::string, Enum>> names, std::string help) {
  std::vector<std::string> listed;
  for (const auto& n : names) listed.push_back(fmt::format("`{}`", n.first));
  ConfigKey k;
  k.name = name;
  k.type = fmt::format("{}", fmt::join(listed, ", "));
  k.help = std::move(help);
  k.read = [name = k.name, get, names](KeyReader& r, Config& c) {
    std::string s;
    if (!r.get(name, s)) return false;
    for (const auto& [text, v] : names)
      if (text == s) {
        get(c) = v;
        return true;
      }
    std::vector<std::string> options;
    for (const auto& n : names) options.push_back(n.first);
    r.error(name, r.find(name), fmt::format("= \"{}\" is not one of: {}", s, fmt::join(options, ", ")));
    return false;
  };
  k.print = [get, names](const Config& c) -> std::optional<std::string> {
    for (const auto& [text, v] : names)
      if (v == get(c)) return toml_value(text);
    return std::nullopt;
  };
  k.default_text = fmt::format("`{}`", *k.print(Config{}));
  return k;
}

// ---- network.layers: a list of layer tables --------------------------------

// One [[network.layers]] table as a LayerSpec; "" or why not. `kernel`,
// `stride` and `padding` are one integer or [height, width].
std::string read_layer(const toml::table& t, LayerSpec& layer) {
  const auto kind = t["kind"].value<std::string>();
  if (!kind) return "needs kind = \"dense\", \"conv\", \"avgpool\" or \"flatten\"";
  try {
    layer.kind = parse_layer_kind(*kind);
  } catch (const Error& e) { return e.what(); }
  auto pair = [&](const char* key, std::size_t& h, std::size_t& w) -> std::string {
    const toml::node* n = t.get(key);
    if (!n) return "";
    const toml::array* a = n->as_array();
    const auto one = n->value_exact<std::int64_t>();
    if (one && *one >= 0) {
      h = w = static_cast<std::size_t>(*one);
      return "";
    }
    if (a && a->size() == 2 && a->get(0)->value_exact<std::int64_t>().value_or(-1) >= 0 &&
        a->get(1)->value_exact<std::int64_t>().value_or(-1) >= 0) {
      h = static_cast<std::size_t>(*a->get(0)->value_exact<std::int64_t>());
      w = static_cast<std::size_t>(*a->get(1)->value_exact<std::int64_t>());
      return "";
    }
    return fmt::format("'{}' must be an integer >= 0 or [height, width]", key);
  };
  for (const auto& [key, value] : t) {
    const std::string k(key.str());
    if (k != "kind" && k != "outputs" && k != "kernel" && k != "stride" && k != "padding" && k != "name")
      return fmt::format("has an unknown key '{}' (kind, outputs, kernel, stride, padding, name)", k);
  }
  if (const toml::node* n = t.get("outputs")) {
    const auto v = n->value_exact<std::int64_t>();
    if (!v || *v < 0) return "'outputs' must be an integer >= 0";
    layer.outputs = static_cast<std::size_t>(*v);
  }
  if (std::string why = pair("kernel", layer.kernel_h, layer.kernel_w); !why.empty()) return why;
  if (layer.kind == LayerKind::AvgPool) layer.stride_h = layer.kernel_h, layer.stride_w = layer.kernel_w;
  if (std::string why = pair("stride", layer.stride_h, layer.stride_w); !why.empty()) return why;
  if (std::string why = pair("padding", layer.pad_h, layer.pad_w); !why.empty()) return why;
  if (const toml::node* n = t.get("name")) {
    const auto v = n->value_exact<std::string>();
    if (!v) return "'name' must be a string";
    layer.name = *v;
  }
  return "";
}

std::string print_layer(const LayerSpec& l) {
  return fmt::format("{{kind = {}, outputs = {}, kernel = [{}, {}], stride = [{}, {}], padding = [{}, {}], name = {}}}",
                     toml_string(std::string(to_string(l.kind))), l.outputs, l.kernel_h, l.kernel_w, l.stride_h, l.stride_w,
                     l.pad_h, l.pad_w, toml_string(l.name));
}

// The input shape network.layers is checked against: both datasets' images.
constexpr Shape kImageShape{1, 28, 28};

ConfigKey layers_key() {
  ConfigKey k;
  k.name = "network.layers";
  k.type = "list of tables";
  k.default_text = "`[]`";
  k.help =
      "the architecture layer by layer (conv nets): `{kind = \"conv\", outputs = 12, kernel = 5}`, `avgpool` "
      "(`kernel`, `stride`), `flatten`, `dense` (`outputs`); checked against 1x28x28 images and "
      "`dataset.classes`; when given it replaces `network.hidden`";
  k.read = [name = k.name](KeyReader& r, Config& c) {
    const toml::node* n = r.find(name);
    if (!n) return false;
    const toml::array* a = n->as_array();
    if (!a) {
      r.error(name, n, "must be an array of layer tables ([[network.layers]])");
      return false;
    }
    if (a->empty()) return false;  // none: the network of network.hidden
    std::vector<LayerSpec> layers(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::table* t = a->get(i)->as_table();
      const std::string why = t ? read_layer(*t, layers[i]) : "is not a table";
      if (!why.empty()) {
        r.error(name, a->get(i), fmt::format("layer {}: {}", i + 1, why));
        return false;
      }
    }
    try {
      const auto shapes = infer_shapes(kImageShape, layers);
      if (shapes.back().size() != static_cast<std::size_t>(c.dataset.classes))
        r.error(name, n,
                fmt::format("ends in {} outputs ({}), but dataset.classes = {}", shapes.back().size(), to_string(shapes.back()),
                            c.dataset.classes));
    } catch (const Error& e) {
      r.error(name, n, e.what());
      return false;
    }
    c.network.layers = std::move(layers);
    return true;
  };
  k.print = [](const Config& c) -> std::optional<std::string> {
    std::vector<std::string> items;
    for (const auto& l : c.network.layers) items.push_back(print_layer(l));
    return fmt::format("[{}]", fmt::join(items, ", "));
  };
  return k;
}

template <typename T>
ConfigKey with(ConfigKey k, T&& change) {
  change(k);
  return k;
}

std::vector<ConfigKey> make_keys() {
  std::vector<ConfigKey> keys = {
      value(SNN_KEY(dataset, name), not_empty(),
            "a dataset under `data/` (`mnist10k`, `fashion-mnist`) or a directory with the four IDX files"),
      value(SNN_KEY(dataset, classes), at_least(2), "labels must lie in `[0, classes)`; also the output layer's width"),

      with(value(SNN_KEY(network, hidden), positive("widths"),
                 "hidden layer widths of the MLP (input width from the dataset); give this or `network.layers`, not both"),
           [](ConfigKey& k) {
             // A resolved config with layers must read back: it names no hidden widths.
             k.print = [](const Config& c) -> std::optional<std::string> {
               if (!c.network.layers.empty()) return std::nullopt;
               return toml_value(c.network.hidden);
             };
           }),
      layers_key(),
      value(SNN_KEY(network, weights), any(),
            "a weight directory (or its `manifest.json`, docs/weights.md) to load instead of training; empty: train"),
      value(SNN_KEY(network, model), any(),
            "an ONNX file (docs/models.md) to import instead of training: its layers, weights and biases are the ANN "
            "(not with `network.weights`, `network.hidden`, `network.layers` or `[training]`); empty: none"),

      value(SNN_KEY(training, epochs), positive(), "passes over the training samples"),
      value(SNN_KEY(training, batch_size), positive(), "samples per Adam step"),
      value(SNN_KEY(training, learning_rate), positive(), "Adam, betas 0.9 / 0.999, eps 1e-8"),
      value(SNN_KEY(training, dropout), within('[', 0, 1, ')'), "drop probability after each hidden layer (training only)"),
      choice(SNN_KEY(training, dropout_at),
             std::vector<std::pair<std::string, conversion::DropoutAt>>{{"hidden", conversion::DropoutAt::Hidden},
                                                                        {"hidden_dense", conversion::DropoutAt::HiddenDense}},
             "`hidden`: dropout after every hidden dense or conv layer's ReLU, `hidden_dense`: after hidden dense "
             "layers only"),
      choice(SNN_KEY(training, init),
             std::vector<std::pair<std::string, conversion::Init>>{{"uniform", conversion::Init::Uniform},
                                                                   {"kaiming_uniform", conversion::Init::KaimingUniform}},
             "`uniform`: U(-init_range, init_range) (the seed), `kaiming_uniform`: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), "
             "PyTorch's default (use it for conv nets)"),
      value(SNN_KEY(training, init_range), positive(), "`uniform` init: weights start uniform in `[-r, r]`"),
      value(SNN_KEY(training, bias), any(),
            "train a bias per dense/conv output (a constant input current in the SNN); the seed and Diehl et al. have none"),
      value(SNN_KEY(training, output_relu), any(),
            "ReLU on the logits during training, as the seed does (can leave a class dead on some nets; `false` trains "
            "linear logits)"),
      value(SNN_KEY(training, limit), at_least(0, " (0: all)"), "training samples used, 0 = all"),
      value(SNN_KEY(training, seed), any(), "drives initialisation, shuffling and dropout (`--training-seed`)"),

      choice(SNN_KEY(normalisation, method),
             std::vector<std::pair<std::string, Normalisation>>{{"none", Normalisation::None},
                                                                {"model", Normalisation::Model},
                                                                {"data", Normalisation::Data},
                                                                {"robust", Normalisation::Robust}},
             "`model`: largest sum of positive weights, `data`: largest activation, `robust`: percentile of "
             "activations"),
      value(SNN_KEY(normalisation, percentile), within('(', 0, 100, ']'), "`robust` only"),
      with(value(SNN_KEY(normalisation, include_last), any(), "whether the output layer is normalised too"),
           [](ConfigKey& k) {
             k.default_text = "model: `false`, else `true`";
             k.print = [](const Config& c) -> std::optional<std::string> {
               return toml_value(c.normalisation.include_last.value_or(c.normalisation.method != Normalisation::Model));
             };
           }),
      value(SNN_KEY(normalisation, samples), at_least(0, " (0: all)"), "training samples used for data/robust, 0 = all"),

      with(value(SNN_KEY(simulation, steps), positive(), "simulated steps"),
           [](ConfigKey& k) { k.alternative = "simulation.duration_ms"; }),
      with(value(SNN_KEY(simulation, duration_ms), positive(),
                 "alternative to `steps`: must be a whole number of `dt_ms` (a `--set` of either replaces the other)"),
           [](ConfigKey& k) { k.alternative = "simulation.steps"; }),
      value(SNN_KEY(simulation, dt_ms), positive(), "step length"),
      choice(SNN_KEY(simulation, encoding),
             std::vector<std::pair<std::string, Encoding>>{{"poisson", Encoding::Poisson}, {"analog", Encoding::Analog}},
             "`poisson`: rate-coded Bernoulli spikes, `analog`: constant current x·W every step"),
      value(SNN_KEY(simulation, max_rate_hz), positive(),
            "input i spikes with probability `p = min(1, x_i * max_rate * dt)` per step"),
      value(SNN_KEY(simulation, clamp_probability), any(),
            "allow `max_rate * dt > 1` (pixels above `1/(max_rate*dt)` then spike every step); without it that is an "
            "error"),
      value(SNN_KEY(simulation, threshold), positive("thresholds"),
            "one value, or one per spiking population (hidden..., output)", true),
      choice(SNN_KEY(simulation, reset),
             std::vector<std::pair<std::string, ResetMode>>{{"subtract", ResetMode::Subtract}, {"zero", ResetMode::Zero}},
             "`subtract`: v -= theta (snntorch's default), `zero`: Diehl et al.'s code"),
      value(SNN_KEY(simulation, beta), within('(', 0, 1, ']'), "leak factor per step; 1 = pure integrate-and-fire"),
      value(SNN_KEY(simulation, refractory_steps), at_least(0), "steps a neuron ignores input after a spike"),
      value(SNN_KEY(simulation, delays), at_least(0, "", "delays"), "one value, or one per connection, in steps", true),
      value(SNN_KEY(simulation, fixed_point_bits), within('[', 4, 24, ']'),
            "membrane potentials in units of theta / 2^bits (lowered automatically if a neuron's fan-in could overflow; "
            "see docs/design.md)"),
      value(SNN_KEY(simulation, weight_bits), one_of({32, 16, 8}),
            "element width of the fan-out tables; 16 or 8 scale each connection's weights by a power of two so its "
            "largest fits (its fixed-point bits are lowered; see docs/design.md), the quantisation error is reported"),
      value(SNN_KEY(simulation, weight_cutoff), at_least(0),
            "weights of smaller magnitude are dropped; `> 0` stores sparse fan-out tables"),
      choice(SNN_KEY(simulation, tie_break),
             std::vector<std::pair<std::string, TieBreak>>{{"lowest", TieBreak::Lowest}, {"potential", TieBreak::Potential}},
             "equal output spike counts: `lowest` class (as torch's argmax; no spikes = class 0, as the seed) or highest "
             "output `potential`"),
      value(SNN_KEY(simulation, limit), at_least(0, " (0: all)"), "test samples simulated, 0 = all (`--limit`)"),
      value(SNN_KEY(simulation, seed), any(), "seed of the input spike trains (`--seed`)"),
      value(SNN_KEY(simulation, threads), at_least(0, " (0: all cores)"),
            "0 = all cores; results are identical for any count (`--threads`)"),
      value(SNN_KEY(simulation, checkpoints), positive("checkpoints"),
            "steps at which accuracy is tabulated (the last step is always added; default ones beyond `steps` are "
            "dropped)"),
      early_exit_was_boolean(
          choice(SNN_KEY(simulation, early_exit),
                 std::vector<std::pair<std::string, EarlyExitMode>>{
                     {"off", EarlyExitMode::Off}, {"measure", EarlyExitMode::Measure}, {"stop", EarlyExitMode::Stop}},
                 "exit once one output leads by `early_exit_margin` spikes for `early_exit_steps` steps: `stop` ends the "
                 "sample there (saves time and SynOps; the figures are the stopped run's), `measure` runs to the end and "
                 "reports both the full and the early-exit figures, `off`")),
      value(SNN_KEY(simulation, early_exit_margin), at_least(1), "lead in output spikes"),
      value(SNN_KEY(simulation, early_exit_steps), at_least(1), "consecutive steps the lead must hold"),
      value(SNN_KEY(simulation, batch_size), positive(), "batch of the dense time-stepped baseline (`snnsim bench`)"),

      with(value(SNN_KEY(output, dir), not_empty(), "where results go (`--out`); relative to the working directory"),
           [](ConfigKey& k) { k.default_text = "`\"out/<config name>\"`"; }),
      value(SNN_KEY(output, cache), not_empty(),
            "trained weights, keyed by a hash of the dataset, network and training sections: changing only simulation "
            "settings never retrains; relative to the working directory"),
      value(SNN_KEY(output, plots), any(), "draw PNG plots with gnuplot (missing gnuplot: one line, no plots)"),
  };
  return keys;
}

#undef SNN_KEY

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = make_keys();
  return keys;
}

}  // namespace snn::tool
