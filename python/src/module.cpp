// snnsim's Python bindings (the extension snnsim._snnsim; the package's
// __init__.py adds the keyword-argument layer and from_torch). Everything the
// CLI does goes through the same library functions (tools/pipeline.h), so a
// run from Python gives the same spikes and figures as `snnsim run`.
//
// Arrays: uint8 images are read in place (no copy); float32 images are
// converted once to the engine's 8-bit intensities; results are handed out
// as NumPy views of the C++ result (no copy).
// Threads: the GIL is released while the engine runs. Ctrl-C: a SIGINT
// handler installed for the duration of a call sets snnsim's interrupt flag
// (and forwards to Python's handler); the engine's progress callback sees the
// flag after the sample each thread is on, and the call raises
// KeyboardInterrupt.
#include "snn/conversion/normalise.h"
#include "snn/conversion/trainer.h"
#include "snn/engine/engine.h"
#include "snn/error.h"
#include "snn/network/dataset.h"
#include "snn/network/layer_spec.h"
#include "snn/network/weights.h"
#include "snn/tool/commands.h"
#include "snn/tool/config.h"
#include "snn/tool/interrupt.h"
#include "snn/tool/pipeline.h"
#include "snn/tool/report.h"

#include <fmt/format.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;
namespace fs = std::filesystem;

namespace {

// ---- Ctrl-C ---------------------------------------------------------------

struct sigaction g_previous {};
int g_scopes = 0;  // guarded by the GIL: scopes are opened and closed holding it

extern "C" void snnsim_python_on_sigint(int sig, siginfo_t* info, void* context) {
  snn::tool::request_interrupt(sig);
  // Forward to Python's own handler so its signal machinery also sees the
  // Ctrl-C (and runs a user's signal.signal handler afterwards).
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN && g_previous.sa_handler) {
    g_previous.sa_handler(sig);
  }
}

// While alive (outermost scope), SIGINT sets snnsim's interrupt flag.
class InterruptScope {
 public:
  InterruptScope() {
    if (g_scopes++ > 0) return;
    snn::tool::clear_interrupt();
    struct sigaction sa {};
    sa.sa_sigaction = snnsim_python_on_sigint;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &g_previous);
  }
  ~InterruptScope() {
    if (--g_scopes > 0) return;
    sigaction(SIGINT, &g_previous, nullptr);
  }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

// Thrown (from a worker's progress callback) when Ctrl-C was pressed; becomes
// KeyboardInterrupt.
struct Interrupted {
  std::string message;
};

// Raises the pending KeyboardInterrupt (holding the GIL): Python's handler
// runs if it was tripped; otherwise KeyboardInterrupt is set directly.
[[noreturn]] void raise_interrupt(const std::string& message) {
  snn::tool::clear_interrupt();
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  PyErr_SetString(PyExc_KeyboardInterrupt, message.c_str());
  throw py::error_already_set();
}

[[noreturn]] void file_not_found(const std::string& message) {
  PyErr_SetString(PyExc_FileNotFoundError, message.c_str());
  throw py::error_already_set();
}

// ---- arrays ---------------------------------------------------------------

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

std::string shape_text(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += fmt::format("{}{}", i ? ", " : "", a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Images as the engine's bytes: uint8 used in place, float32 in [0, 1]
// converted to round(x * 255) (exact for torchvision's ToTensor: byte / 255).
struct Images {
  std::size_t count = 0;
  std::size_t size = 0;
  py::array keep;                     // the caller's uint8 array, kept alive
  std::vector<std::uint8_t> converted;  // float32 input, as bytes
  std::span<const std::uint8_t> bytes;
};

Images images_of(const py::handle& obj, std::size_t input_size) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(fmt::format("images must be a numpy array of uint8 or float32, not {}",
                                     py::str(py::type::of(obj).attr("__name__")).cast<std::string>()));
  auto a = py::reinterpret_borrow<py::array>(obj);
  const bool u8 = a.dtype().is(py::dtype::of<std::uint8_t>());
  const bool f32 = a.dtype().is(py::dtype::of<float>());
  if (!u8 && !f32)
    throw py::value_error(fmt::format("images have dtype {}; snnsim takes uint8 (0..255) or float32 in [0, 1] "
                                      "(e.g. images.astype(numpy.float32))",
                                      dtype_name(a)));
  if (a.ndim() < 1 || a.shape(0) == 0) throw py::value_error(fmt::format("images have shape {}: no samples", shape_text(a)));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(fmt::format("images (shape {}) are not C-contiguous; pass numpy.ascontiguousarray(images)",
                                      shape_text(a)));
  Images im;
  im.count = static_cast<std::size_t>(a.shape(0));
  im.size = a.ndim() == 1 ? 1 : static_cast<std::size_t>(a.size()) / im.count;
  if (im.size != input_size)
    throw py::value_error(fmt::format("images have shape {}: {} values per sample, but the network has {} inputs",
                                      shape_text(a), im.size, input_size));
  if (u8) {
    im.keep = a;
    im.bytes = {static_cast<const std::uint8_t*>(a.data()), im.count * im.size};
    return im;
  }
  const auto* x = static_cast<const float*>(a.data());
  const std::size_t n = im.count * im.size;
  im.converted.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (!(x[i] >= 0.0f && x[i] <= 1.0f))
      throw py::value_error(fmt::format("images: sample {} value {} is {}; float32 images must lie in [0, 1]", i / im.size,
                                        i % im.size, x[i]));
    im.converted[i] = static_cast<std::uint8_t>(std::lround(x[i] * 255.0f));
  }
  im.bytes = im.converted;
  return im;
}

std::vector<std::uint8_t> labels_of(const py::handle& obj, std::size_t count, std::size_t classes) {
  auto a = py::array::ensure(obj);
  if (!a || !(py::dtype::of<std::int64_t>().kind() == a.dtype().kind() || a.dtype().kind() == 'u'))
    throw py::value_error("labels must be a numpy array of integers");
  if (a.ndim() != 1 || static_cast<std::size_t>(a.shape(0)) != count)
    throw py::value_error(fmt::format("labels have shape {} but there are {} images", shape_text(a), count));
  auto l = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
  std::vector<std::uint8_t> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::int64_t v = l.at(static_cast<py::ssize_t>(i));
    if (v < 0 || static_cast<std::size_t>(v) >= classes)
      throw py::value_error(fmt::format("labels[{}] is {}; the network has {} classes (0..{})", i, v, classes, classes - 1));
    out[i] = static_cast<std::uint8_t>(v);
  }
  return out;
}

// A read-only NumPy view of `data` (shape `shape`), kept alive by `owner`.
template <typename T>
py::array view(const T* data, std::vector<py::ssize_t> shape, const py::object& owner) {
  py::array a(py::dtype::of<T>(), std::move(shape), {}, data, owner);
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

// ---- model ----------------------------------------------------------------

snn::Matrix matrix_of(const py::handle& obj, std::size_t layer) {
  auto raw = py::array::ensure(obj);
  if (!raw) throw py::value_error(fmt::format("layer {}: the weight is not an array", layer));
  if (raw.dtype().kind() != 'f')
    throw py::value_error(fmt::format("layer {}: weight has dtype {}; weights must be floating point", layer, dtype_name(raw)));
  if (raw.ndim() != 2)
    throw py::value_error(fmt::format("layer {}: weight has shape {}; a dense layer's weight is 2-D [out, in] "
                                      "(torch.nn.Linear.weight)",
                                      layer, shape_text(raw)));
  auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(raw);
  snn::Matrix m(static_cast<std::size_t>(a.shape(0)), static_cast<std::size_t>(a.shape(1)));
  std::copy(a.data(), a.data() + a.size(), m.data.begin());
  for (std::size_t i = 0; i < m.data.size(); ++i)
    if (!std::isfinite(m.data[i]))
      throw py::value_error(fmt::format("layer {}: weight[{}, {}] is {}; weights must be finite", layer, i / m.cols,
                                        i % m.cols, m.data[i]));
  return m;
}

class Model {
 public:
  explicit Model(snn::WeightSet w) : w_(std::move(w)) {}

  // layers: arrays [out, in] or dicts {"kind", "weight", "bias", "name", ...}.
  static Model from_layers(const py::sequence& layers) {
    snn::WeightSet w;
    // Layers are numbered from 0 in messages, as snn::validate_layers does.
    std::size_t index = 0;
    for (const auto& item : layers) {
      const std::size_t at = index++;
      if (!py::isinstance<py::dict>(item)) {
        w.layers.push_back(matrix_of(item, at));
        w.names.push_back(fmt::format("fc{}", w.layers.size()));
        continue;
      }
      auto d = py::reinterpret_borrow<py::dict>(item);
      const std::string kind = d.contains("kind") ? py::str(d["kind"]).cast<std::string>() : "dense";
      for (auto kv : d) {
        const auto key = py::str(kv.first).cast<std::string>();
        static const char* known[] = {"kind", "weight", "bias", "name", "kernel", "stride", "padding", "channels", "window"};
        if (std::find(std::begin(known), std::end(known), key) == std::end(known))
          throw py::value_error(fmt::format("layer {}: unknown key '{}' (known: kind, weight, bias, name, and for conv/avgpool "
                                            "kernel, stride, padding, window)",
                                            at, key));
      }
      if (kind == "flatten") continue;  // dense layers read their input flat already
      if (kind != "dense") {
        (void)snn::parse_layer_kind(kind);  // a misspelt kind gets the list of kinds
        throw py::value_error(fmt::format("layer {}: '{}' layers cannot be simulated yet: snnsim's engine runs dense "
                                          "(fully connected) layers only",
                                          at, kind));
      }
      if (!d.contains("weight")) throw py::value_error(fmt::format("layer {}: a dense layer needs 'weight' [out, in]", at));
      snn::Matrix m = matrix_of(d["weight"], at);
      if (d.contains("bias") && !d["bias"].is_none()) {
        auto b = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(d["bias"]);
        if (!b || b.ndim() != 1 || static_cast<std::size_t>(b.shape(0)) != m.rows)
          throw py::value_error(fmt::format("layer {}: bias must be a 1-D array of {} values", at, m.rows));
        for (py::ssize_t i = 0; i < b.shape(0); ++i)
          if (b.at(i) != 0.0)
            throw py::value_error(fmt::format("layer {}: bias[{}] is {}; the engine does not simulate biases yet "
                                              "(train with bias=False)",
                                              at, i, b.at(i)));
      }
      w.layers.push_back(std::move(m));
      w.names.push_back(d.contains("name") && !d["name"].is_none() ? py::str(d["name"]).cast<std::string>()
                                                                    : fmt::format("fc{}", w.layers.size()));
    }
    if (w.layers.empty()) throw py::value_error("a model needs at least one dense layer");
    snn::validate_layers(w.layers, "snnsim.Model");
    return Model(std::move(w));
  }

  static Model load(const fs::path& path) {
    if (!fs::exists(path))
      file_not_found(fmt::format("weight directory '{}' does not exist", path.string()));
    return Model(snn::load_weights(path));
  }

  void save(const fs::path& dir) const { snn::save_weights(dir, w_); }

  py::list weights(const py::object& self) const {
    py::list out;
    for (const auto& m : w_.layers)
      out.append(view(m.data.data(), {static_cast<py::ssize_t>(m.rows), static_cast<py::ssize_t>(m.cols)}, self));
    return out;
  }

  std::vector<std::size_t> sizes() const {
    std::vector<std::size_t> s{w_.inputs()};
    for (const auto& m : w_.layers) s.push_back(m.rows);
    return s;
  }

  py::dict normalisation() const {
    py::dict d;
    d["method"] = std::string(snn::to_string(w_.normalisation.method));
    d["factors"] = w_.normalisation.factors;
    d["samples"] = w_.normalisation.samples;
    d["percentile"] = w_.normalisation.percentile;
    return d;
  }

  Model normalise(const std::string& method, const py::handle& images, std::size_t samples, double percentile,
                  std::optional<bool> include_last) const {
    snn::conversion::NormaliseOptions o;
    o.method = snn::parse_normalisation(method);
    o.samples = samples;
    o.percentile = percentile;
    o.include_last = include_last;
    snn::WeightSet w = w_;
    if (o.method == snn::Normalisation::Model) {
      py::gil_scoped_release release;
      snn::conversion::normalise(w, o, nullptr);
      return Model(std::move(w));
    }
    if (images.is_none()) throw py::value_error(fmt::format("{}-based normalisation needs images", method));
    Images im = images_of(images, w_.inputs());
    // The trainer's data layout owns its bytes: one copy, small against the
    // forward passes normalisation runs.
    snn::Dataset d;
    d.count = im.count;
    d.rows = 1;
    d.cols = im.size;
    d.pixels.assign(im.bytes.begin(), im.bytes.end());
    d.labels.assign(im.count, 0);
    py::gil_scoped_release release;
    snn::conversion::normalise(w, o, &d);
    return Model(std::move(w));
  }

  // The ANN's accuracy (argmax of the ReLU network's outputs) on `images`.
  double evaluate(const py::handle& images, const py::handle& labels, bool output_relu) const {
    Images im = images_of(images, w_.inputs());
    snn::Dataset d;
    d.count = im.count;
    d.rows = 1;
    d.cols = im.size;
    d.num_classes = w_.outputs();
    d.pixels.assign(im.bytes.begin(), im.bytes.end());
    d.labels = labels_of(labels, im.count, w_.outputs());
    py::gil_scoped_release release;
    return snn::conversion::evaluate(w_.layers, d, output_relu).accuracy;
  }

  const snn::WeightSet& weight_set() const { return w_; }

 private:
  snn::WeightSet w_;
};

// ---- simulation -----------------------------------------------------------

struct Result {
  snn::engine::RunResult run;
  std::vector<std::uint8_t> labels;
  std::vector<std::string> names;
  std::vector<double> accuracy_curve;
  std::vector<double> synops_curve;
};

snn::tool::Config config_of(const std::vector<std::string>& overrides, const char* where) {
  return snn::tool::parse_config("", where, overrides);
}

Result simulate(const Model& model, const py::handle& images, const py::handle& labels,
                const std::vector<std::string>& overrides) {
  const snn::WeightSet& w = model.weight_set();
  // The config's per-population lists (threshold, delays) are checked
  // against network.hidden: describe this model there.
  std::vector<std::string> all;
  std::string hidden;
  for (std::size_t l = 0; l + 1 < w.layers.size(); ++l) hidden += fmt::format("{}{}", l ? ", " : "", w.layers[l].rows);
  all.push_back(fmt::format("network.hidden=[{}]", hidden));
  all.insert(all.end(), overrides.begin(), overrides.end());
  const snn::tool::Config c = config_of(all, "snnsim.simulate");
  const snn::Network net = snn::tool::build_network(c, w);
  Images im = images_of(images, net.input_size());
  std::size_t n = im.count;
  if (c.simulation.limit > 0) n = std::min<std::size_t>(n, static_cast<std::size_t>(c.simulation.limit));
  Result res;
  if (!labels.is_none()) {
    res.labels = labels_of(labels, im.count, net.output_size());
    res.labels.resize(n);
  }
  snn::engine::SampleSet samples;
  samples.count = n;
  samples.size = im.size;
  samples.values = im.bytes.first(n * im.size);
  samples.labels = res.labels;
  snn::engine::RunOptions ro = snn::tool::run_options(c);
  ro.progress = [](std::size_t done, std::size_t total) {
    if (snn::tool::interrupted())
      throw Interrupted{fmt::format("interrupted during the simulation ({} of {} samples done)", done, total)};
  };
  for (const auto& pop : net.populations()) res.names.push_back(pop.name);
  InterruptScope scope;
  try {
    py::gil_scoped_release release;
    const snn::engine::Engine engine(net, c.simulation.fixed_point_bits, c.simulation.weight_bits);
    res.run = engine.run(samples, ro);
    if (!res.labels.empty()) res.accuracy_curve = res.run.accuracy_curve(res.labels);
    res.synops_curve = res.run.synops_curve();
    for (auto& v : res.synops_curve) v /= static_cast<double>(n);
  } catch (const Interrupted& e) {
    raise_interrupt(e.message);
  }
  return res;
}

std::string run_config(const fs::path& config, const std::vector<std::string>& set, std::optional<int> threads,
                       std::optional<int> limit, std::optional<std::uint64_t> seed, std::optional<std::string> out,
                       bool quiet, bool retrain, bool write) {
  if (!fs::exists(config))
    file_not_found(fmt::format("config '{}' does not exist", config.string()));
  snn::tool::CommonOptions o;
  o.set = set;
  o.threads = threads;
  o.limit = limit;
  o.seed = seed;
  o.out = std::move(out);
  o.quiet = quiet;
  o.retrain = retrain;
  InterruptScope scope;
  try {
    py::gil_scoped_release release;
    return snn::tool::results_json(snn::tool::run_report(config, o, write));
  } catch (const snn::Error& e) {
    if (!snn::tool::interrupted()) throw;
    raise_interrupt(e.what());
  }
}

py::dict load_dataset(const std::string& name, std::size_t classes) {
  const fs::path dir = snn::resolve_dataset(name);
  if (!fs::is_directory(dir))
    file_not_found(fmt::format("dataset '{}': no directory '{}' (tools/fetch-data gets the named ones)", name,
                               dir.string()));
  auto splits = std::make_shared<snn::DatasetSplits>();
  {
    py::gil_scoped_release release;
    *splits = snn::load_dataset(name, classes);
  }
  // One capsule owns the bytes; every array is a view of them.
  py::capsule owner(new std::shared_ptr<snn::DatasetSplits>(splits),
                    [](void* p) { delete static_cast<std::shared_ptr<snn::DatasetSplits>*>(p); });
  py::dict d;
  d["name"] = splits->name;
  d["path"] = splits->path.string();
  auto put = [&](const char* prefix, const snn::Dataset& s) {
    const auto c = static_cast<py::ssize_t>(s.count);
    d[py::str(fmt::format("{}_images", prefix))] =
        view(s.pixels.data(), {c, static_cast<py::ssize_t>(s.rows), static_cast<py::ssize_t>(s.cols)}, owner);
    d[py::str(fmt::format("{}_labels", prefix))] = view(s.labels.data(), {c}, owner);
  };
  put("train", splits->train);
  put("test", splits->test);
  return d;
}

void bind_model(py::module_& m) {
  py::class_<Model>(m, "Model", R"doc(A converted (or to-be-converted) ANN: dense layers' weights [out, in].

Model(layers) takes a list whose items are each either a 2-D float array
[out, in] (torch.nn.Linear.weight's layout) or a dict
{"kind": "dense", "weight": W, "bias": b or None, "name": "fc1"}
("flatten" items are accepted and ignored; "conv" and "avgpool" raise
ValueError until the engine runs them; a non-zero bias raises ValueError
until the engine simulates biases). Layer i's "in" must equal layer i-1's
"out". The weights are copied (the engine builds its own tables from them).
)doc")
      .def(py::init(&Model::from_layers), py::arg("layers"))
      .def_static("load", &Model::load, py::arg("path"),
                  "Loads a weight directory (manifest.json + .npy files, docs/weights.md). "
                  "FileNotFoundError if it does not exist, ValueError if it is malformed.")
      .def("save", &Model::save, py::arg("path"),
           "Writes the weight directory (each file atomically); snnsim's CLI reads it with --set network.weights=PATH.")
      .def_property_readonly(
          "weights", [](py::object self) { return self.cast<const Model&>().weights(self); },
          "The layers' weights, a list of read-only float32 arrays [out, in] (views, not copies).")
      .def_property_readonly("layer_sizes", &Model::sizes, "Neurons per layer, input first, e.g. [784, 1200, 1200, 10].")
      .def_property_readonly(
          "names", [](const Model& self) { return self.weight_set().names; }, "Layer names.")
      .def_property_readonly("normalisation", &Model::normalisation,
                             "How the weights were scaled: {'method', 'factors', 'samples', 'percentile'}.")
      .def("_normalise", &Model::normalise, py::arg("method"), py::arg("images"), py::arg("samples"),
           py::arg("percentile"), py::arg("include_last"))
      .def("evaluate", &Model::evaluate, py::arg("images"), py::arg("labels"), py::arg("output_relu") = true,
           "The ANN's accuracy (fraction) on images (as simulate takes them) and labels: argmax of the ReLU "
           "network's outputs (output_relu: ReLU on the logits, as snnsim's training does by default).")
      .def("_simulate", &simulate, py::arg("images"), py::arg("labels"), py::arg("overrides"))
      .def("__repr__", [](const Model& self) {
        const auto s = self.sizes();
        std::string t;
        for (std::size_t i = 0; i < s.size(); ++i) t += fmt::format("{}{}", i ? "-" : "", s[i]);
        return fmt::format("snnsim.Model({}, normalisation='{}')", t, snn::to_string(self.weight_set().normalisation.method));
      });

}

void bind_result(py::module_& m) {
  py::class_<Result>(m, "Result", R"doc(What a simulation measured. Arrays are read-only NumPy views (no copies).

Per sample i (in the order of the images given):
  predictions[i]            class predicted after the last step (uint16)
  step_predictions[i, t]    class predicted after step t (uint16)
  output_counts[i, c]       output spikes of class c (uint32)
  spike_counts[i, p]        spikes of population p, input first (uint64)
  synops[i, c]              SynOps of connection c (spikes x fan-out, uint64)
  step_synops[i, t]         SynOps at step t, all connections (uint64)
  work[i, c]                weights the engine actually added (uint64)
Summaries: accuracy_curve[t] (after step t; None without labels), accuracy,
synops_curve[t] (cumulative SynOps per sample after step t),
synops_per_connection[c] (mean per sample), seconds, threads.
)doc")
      .def_property_readonly("samples", [](const Result& r) { return r.run.samples; })
      .def_property_readonly("steps", [](const Result& r) { return r.run.steps; })
      .def_property_readonly("threads", [](const Result& r) { return r.run.threads; }, "Threads the engine used.")
      .def_property_readonly("seconds", [](const Result& r) { return r.run.seconds; }, "Wall time of the engine run.")
      .def_property_readonly("population_names", [](const Result& r) { return r.names; })
      .def_property_readonly("population_sizes", [](const Result& r) { return r.run.population_sizes; })
      .def_property_readonly("predictions", [](py::object self) {
        const auto& r = self.cast<const Result&>();
        return view(r.run.predictions.data(), {static_cast<py::ssize_t>(r.run.samples)}, self);
      })
      .def_property_readonly("step_predictions", [](py::object self) {
        const auto& r = self.cast<const Result&>();
        return view(r.run.step_predictions.data(), {static_cast<py::ssize_t>(r.run.samples), r.run.steps}, self);
      })
      .def_property_readonly("output_counts", [](py::object self) {
        const auto& r = self.cast<const Result&>();
        return view(r.run.output_counts.data(),
                    {static_cast<py::ssize_t>(r.run.samples), static_cast<py::ssize_t>(r.run.classes)}, self);
      })
      .def_property_readonly("spike_counts", [](py::object self) {
        const auto& r = self.cast<const Result&>();
        return view(r.run.population_spikes.data(),
                    {static_cast<py::ssize_t>(r.run.samples), static_cast<py::ssize_t>(r.run.populations)}, self);
      })
      .def_property_readonly("synops", [](py::object self) {
        const auto& r = self.cast<const Result&>();
        return view(r.run.synops.data(),
                    {static_cast<py::ssize_t>(r.run.samples), static_cast<py::ssize_t>(r.run.connections)}, self);
      })
      .def_property_readonly("work", [](py::object self) {
        const auto& r = self.cast<const Result&>();
        return view(r.run.work.data(),
                    {static_cast<py::ssize_t>(r.run.samples), static_cast<py::ssize_t>(r.run.connections)}, self);
      })
      .def_property_readonly("step_synops", [](py::object self) {
        const auto& r = self.cast<const Result&>();
        return view(r.run.step_synops.data(), {static_cast<py::ssize_t>(r.run.samples), r.run.steps}, self);
      })
      .def_property_readonly("labels", [](py::object self) -> py::object {
        const auto& r = self.cast<const Result&>();
        if (r.labels.empty()) return py::none();
        return view(r.labels.data(), {static_cast<py::ssize_t>(r.labels.size())}, self);
      })
      .def_property_readonly("accuracy_curve", [](py::object self) -> py::object {
        const auto& r = self.cast<const Result&>();
        if (r.accuracy_curve.empty()) return py::none();
        return view(r.accuracy_curve.data(), {static_cast<py::ssize_t>(r.accuracy_curve.size())}, self);
      })
      .def_property_readonly("accuracy", [](const Result& r) -> py::object {
        if (r.accuracy_curve.empty()) return py::none();
        return py::float_(r.accuracy_curve.back());
      }, "Final accuracy (fraction), None without labels.")
      .def_property_readonly("synops_curve", [](py::object self) {
        const auto& r = self.cast<const Result&>();
        return view(r.synops_curve.data(), {static_cast<py::ssize_t>(r.synops_curve.size())}, self);
      })
      .def_property_readonly("synops_per_connection", [](const Result& r) {
        std::vector<double> v;
        for (auto s : r.run.synops_per_connection()) v.push_back(static_cast<double>(s) / static_cast<double>(r.run.samples));
        return py::array_t<double>(static_cast<py::ssize_t>(v.size()), v.data());
      })
      .def_property_readonly("synops_per_sample", [](const Result& r) {
        return static_cast<double>(r.run.total_synops()) / static_cast<double>(r.run.samples);
      })
      .def("__repr__", [](const Result& r) {
        return fmt::format("snnsim.Result({} samples x {} steps{}, {:.4g} SynOps/sample, {:.3f} s)", r.run.samples,
                           r.run.steps,
                           r.accuracy_curve.empty() ? std::string() : fmt::format(", accuracy {:.4f}", r.accuracy_curve.back()),
                           static_cast<double>(r.run.total_synops()) / static_cast<double>(r.run.samples), r.run.seconds);
      });

}

}  // namespace

PYBIND11_MODULE(_snnsim, m) {
  m.doc() = "snnsim's C++ core; use the snnsim package, which wraps it.";
  m.attr("__version__") = SNNSIM_VERSION;

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const snn::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  bind_model(m);
  bind_result(m);
  m.def("_run", &run_config, py::arg("config"), py::arg("set"), py::arg("threads"), py::arg("limit"), py::arg("seed"),
        py::arg("out"), py::arg("quiet"), py::arg("retrain"), py::arg("write"));
  m.def("load_dataset", &load_dataset, py::arg("name"), py::arg("classes") = 10,
        R"doc(Loads a dataset (a name under data/ such as "mnist10k", or a directory of MNIST-layout IDX files).

Returns a dict: name, path, train_images [n, rows, cols] uint8, train_labels [n] uint8,
test_images, test_labels (read-only views of one buffer, no copies).
FileNotFoundError if the directory does not exist; ValueError if a file is malformed.)doc");
  m.def("_config_keys_check", [](const std::vector<std::string>& overrides) { (void)config_of(overrides, "snnsim"); });
}
