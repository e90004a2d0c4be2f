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
#include "snn/conversion/onnx_import.h"
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
  py::array keep;                       // the caller's uint8 array, kept alive
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
    throw py::value_error(
        fmt::format("images have dtype {}; snnsim takes uint8 (0..255) or float32 in [0, 1] "
                    "(e.g. images.astype(numpy.float32))",
                    dtype_name(a)));
  if (a.ndim() < 1 || a.shape(0) == 0) throw py::value_error(fmt::format("images have shape {}: no samples", shape_text(a)));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(
        fmt::format("images (shape {}) are not C-contiguous; pass numpy.ascontiguousarray(images)", shape_text(a)));
  Images im;
  im.count = static_cast<std::size_t>(a.shape(0));
  im.size = a.ndim() == 1 ? 1 : static_cast<std::size_t>(a.size()) / im.count;
  if (im.size != input_size)
    throw py::value_error(fmt::format("images have shape {}: {} values per sample, but the network has {} inputs", shape_text(a),
                                      im.size, input_size));
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
      throw py::value_error(
          fmt::format("images: sample {} value {} is {}; float32 images must lie in [0, 1]", i / im.size, i % im.size, x[i]));
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

// A dense weight [out, in], or with `conv` a conv kernel [out, in_c, kh, kw]
// (torch.nn.Conv2d.weight) or already flat [out, in_c * kh * kw]; copied as
// float32. `kernel` receives a 4-D kernel's (kh, kw).
snn::Matrix matrix_of(const py::handle& obj, std::size_t layer, bool conv = false,
                      std::pair<std::size_t, std::size_t>* kernel = nullptr) {
  auto raw = py::array::ensure(obj);
  if (!raw) throw py::value_error(fmt::format("layer {}: the weight is not an array", layer));
  if (raw.dtype().kind() != 'f')
    throw py::value_error(fmt::format("layer {}: weight has dtype {}; weights must be floating point", layer, dtype_name(raw)));
  if (!conv && raw.ndim() != 2)
    throw py::value_error(
        fmt::format("layer {}: weight has shape {}; a dense layer's weight is 2-D [out, in] "
                    "(torch.nn.Linear.weight)",
                    layer, shape_text(raw)));
  if (conv && raw.ndim() != 4 && raw.ndim() != 2)
    throw py::value_error(
        fmt::format("layer {}: weight has shape {}; a conv layer's weight is 4-D [out, in_channels, kh, kw] "
                    "(torch.nn.Conv2d.weight)",
                    layer, shape_text(raw)));
  if (raw.ndim() == 4 && kernel) *kernel = {static_cast<std::size_t>(raw.shape(2)), static_cast<std::size_t>(raw.shape(3))};
  auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(raw);
  const auto rows = static_cast<std::size_t>(a.shape(0));
  snn::Matrix m(rows, rows == 0 ? 0 : static_cast<std::size_t>(a.size()) / rows);
  std::copy(a.data(), a.data() + a.size(), m.data.begin());
  for (std::size_t i = 0; i < m.data.size(); ++i)
    if (!std::isfinite(m.data[i]))
      throw py::value_error(
          fmt::format("layer {}: weight[{}, {}] is {}; weights must be finite", layer, i / m.cols, i % m.cols, m.data[i]));
  return m;
}

// One value or a pair (h, w) of positive sizes (`least` is the smallest allowed).
std::pair<std::size_t, std::size_t> pair_of(const py::handle& obj, std::size_t layer, const char* key, std::size_t least) {
  std::vector<long long> v;
  if (py::isinstance<py::int_>(obj)) {
    v = {obj.cast<long long>()};
  } else {
    try {
      v = obj.cast<std::vector<long long>>();
    } catch (const py::cast_error&) {
      throw py::value_error(fmt::format("layer {}: '{}' must be an integer or a pair (h, w)", layer, key));
    }
  }
  if (v.size() == 1) v.push_back(v[0]);
  if (v.size() != 2 || v[0] < static_cast<long long>(least) || v[1] < static_cast<long long>(least))
    throw py::value_error(fmt::format("layer {}: '{}' must be an integer >= {} or a pair of them", layer, key, least));
  return {static_cast<std::size_t>(v[0]), static_cast<std::size_t>(v[1])};
}

std::vector<float> bias_of(const py::handle& obj, std::size_t layer, std::size_t out) {
  auto b = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!b || b.ndim() != 1 || static_cast<std::size_t>(b.shape(0)) != out)
    throw py::value_error(fmt::format("layer {}: bias must be a 1-D array of {} values", layer, out));
  std::vector<float> v(b.data(), b.data() + out);
  for (std::size_t i = 0; i < out; ++i)
    if (!std::isfinite(v[i]))
      throw py::value_error(fmt::format("layer {}: bias[{}] is {}; biases must be finite", layer, i, v[i]));
  return v;
}

// The input shape: an int (flat features) or (channels, height, width).
snn::Shape shape_of(const py::handle& obj) {
  std::vector<long long> v;
  if (py::isinstance<py::int_>(obj)) {
    v = {obj.cast<long long>(), 1, 1};
  } else {
    try {
      v = obj.cast<std::vector<long long>>();
    } catch (const py::cast_error&) { throw py::value_error("input must be an integer (features) or (channels, height, width)"); }
  }
  if (v.size() == 1) v = {v[0], 1, 1};
  if (v.size() != 3 || v[0] < 1 || v[1] < 1 || v[2] < 1)
    throw py::value_error("input must be a positive integer (features) or (channels, height, width) of positive sizes");
  return {static_cast<std::size_t>(v[0]), static_cast<std::size_t>(v[1]), static_cast<std::size_t>(v[2])};
}

class Model {
 public:
  explicit Model(snn::WeightSet w, bool output_relu = true) : w_(std::move(w)), output_relu_(output_relu) {}

  // layers: arrays [out, in] or dicts {"kind", "weight", "bias", "name", ...}.
  static Model from_layers(const py::sequence& layers, const py::object& input) {
    snn::WeightSet w;
    std::vector<snn::LayerSpec> specs;
    bool plain = true;  // dense (and flatten) only, no input shape: the MLP form, as before
    // Layers are numbered from 0 in messages, as snn::validate_layers does.
    std::size_t index = 0;
    for (const auto& item : layers) {
      const std::size_t at = index++;
      if (!py::isinstance<py::dict>(item)) {
        w.layers.push_back(matrix_of(item, at));
        w.names.push_back(fmt::format("fc{}", w.layers.size()));
        w.biases.emplace_back();
        specs.push_back(snn::LayerSpec::dense(w.layers.back().rows, w.names.back()));
        continue;
      }
      auto d = py::reinterpret_borrow<py::dict>(item);
      const std::string kind = d.contains("kind") ? py::str(d["kind"]).cast<std::string>() : "dense";
      for (auto kv : d) {
        const auto key = py::str(kv.first).cast<std::string>();
        static const char* known[] = {"kind", "weight", "bias", "name", "kernel", "stride", "padding"};
        if (std::find(std::begin(known), std::end(known), key) == std::end(known))
          throw py::value_error(
              fmt::format("layer {}: unknown key '{}' (known: kind, weight, bias, name; conv: stride, "
                          "padding; avgpool: kernel, stride)",
                          at, key));
      }
      const snn::LayerKind k = snn::parse_layer_kind(kind);  // a misspelt kind gets the list of kinds
      const std::string name = d.contains("name") && !d["name"].is_none() ? py::str(d["name"]).cast<std::string>() : "";
      if (k == snn::LayerKind::Flatten) {
        specs.push_back(snn::LayerSpec::flatten(name));
        continue;
      }
      if (k == snn::LayerKind::AvgPool) {
        if (!d.contains("kernel"))
          throw py::value_error(fmt::format("layer {}: an avgpool layer needs 'kernel' (its window)", at));
        const auto [kh, kw] = pair_of(d["kernel"], at, "kernel", 1);
        const auto [sh, sw] =
            d.contains("stride") && !d["stride"].is_none() ? pair_of(d["stride"], at, "stride", 1) : std::pair{kh, kw};
        snn::LayerSpec l = snn::LayerSpec::avgpool(kh, name);
        l.kernel_w = kw;
        l.stride_h = sh;
        l.stride_w = sw;
        specs.push_back(l);
        plain = false;
        continue;
      }
      const bool conv = k == snn::LayerKind::Conv;
      if (!d.contains("weight"))
        throw py::value_error(
            fmt::format("layer {}: a {} layer needs 'weight' ({})", at, kind, conv ? "[out, in_channels, kh, kw]" : "[out, in]"));
      std::pair<std::size_t, std::size_t> kernel{0, 0};
      snn::Matrix m = matrix_of(d["weight"], at, conv, &kernel);
      snn::LayerSpec l = snn::LayerSpec::dense(m.rows, name);
      if (conv) {
        if (d.contains("kernel") && !d["kernel"].is_none()) {
          const auto given = pair_of(d["kernel"], at, "kernel", 1);
          if (kernel.first != 0 && given != kernel)
            throw py::value_error(fmt::format("layer {}: 'kernel' is {}x{} but the weight's kernel is {}x{}", at, given.first,
                                              given.second, kernel.first, kernel.second));
          kernel = given;
        }
        if (kernel.first == 0)
          throw py::value_error(fmt::format("layer {}: a flat conv weight [out, in_channels * kh * kw] needs 'kernel'", at));
        const auto [sh, sw] =
            d.contains("stride") ? pair_of(d["stride"], at, "stride", 1) : std::pair<std::size_t, std::size_t>{1, 1};
        const auto [ph, pw] =
            d.contains("padding") ? pair_of(d["padding"], at, "padding", 0) : std::pair<std::size_t, std::size_t>{0, 0};
        l = snn::LayerSpec::conv(m.rows, kernel.first, sh, ph, name);
        l.kernel_w = kernel.second;
        l.stride_w = sw;
        l.pad_w = pw;
        plain = false;
      }
      const bool has_bias = d.contains("bias") && !d["bias"].is_none();
      w.biases.push_back(has_bias ? bias_of(d["bias"], at, m.rows) : std::vector<float>{});
      w.layers.push_back(std::move(m));
      w.names.push_back(!name.empty() ? name : fmt::format("{}{}", conv ? "conv" : "fc", w.layers.size()));
      l.name = w.names.back();
      specs.push_back(l);
    }
    if (w.layers.empty()) throw py::value_error("a model needs at least one dense or conv layer");
    if (!w.has_bias()) w.biases.clear();
    if (plain && input.is_none()) {
      snn::validate_layers(w.layers, "snnsim.Model");
    } else {
      if (input.is_none())
        throw py::value_error("a model with conv or avgpool layers needs input=(channels, height, width), e.g. (1, 28, 28)");
      w.input = shape_of(input);
      w.architecture = std::move(specs);
      snn::validate_weight_set(w, "snnsim.Model");
    }
    return Model(std::move(w));
  }

  static Model from_onnx(const fs::path& path) {
    if (!fs::exists(path)) file_not_found(fmt::format("ONNX model '{}' does not exist", path.string()));
    const snn::conversion::OnnxModel m = snn::conversion::import_onnx(path);
    return Model(snn::conversion::to_weight_set(m), m.output_relu);
  }

  static Model load(const fs::path& path) {
    if (!fs::exists(path)) file_not_found(fmt::format("weight directory '{}' does not exist", path.string()));
    return Model(snn::load_weights(path));
  }

  void save(const fs::path& dir) const { snn::save_weights(dir, w_); }

  py::list weights(const py::object& self) const {
    py::list out;
    for (const auto& m : w_.layers)
      out.append(view(m.data.data(), {static_cast<py::ssize_t>(m.rows), static_cast<py::ssize_t>(m.cols)}, self));
    return out;
  }

  // Input size, then each spiking layer's neurons (flatten has none).
  std::vector<std::size_t> sizes() const {
    std::vector<std::size_t> s{w_.inputs()};
    const auto specs = w_.layer_specs();
    const auto shapes = snn::infer_shapes(w_.input_shape(), specs);
    for (std::size_t i = 0; i < specs.size(); ++i)
      if (specs[i].spiking()) s.push_back(shapes[i].size());
    return s;
  }

  py::list layers() const {
    py::list out;
    const auto specs = w_.layer_specs();
    const auto shapes = snn::infer_shapes(w_.input_shape(), specs);
    std::size_t k = 0;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      const snn::LayerSpec& l = specs[i];
      py::dict d;
      d["kind"] = std::string(snn::to_string(l.kind));
      d["name"] = l.name;
      d["output"] = std::vector<std::size_t>{shapes[i].channels, shapes[i].height, shapes[i].width};
      if (l.kind == snn::LayerKind::Conv || l.kind == snn::LayerKind::AvgPool) {
        d["kernel"] = std::vector<std::size_t>{l.kernel_h, l.kernel_w};
        d["stride"] = std::vector<std::size_t>{l.stride_h, l.stride_w};
      }
      if (l.kind == snn::LayerKind::Conv) d["padding"] = std::vector<std::size_t>{l.pad_h, l.pad_w};
      if (l.has_weights()) {
        d["bias"] = k < w_.biases.size() && !w_.biases[k].empty();
        ++k;
      }
      out.append(d);
    }
    return out;
  }

  py::list biases(const py::object& self) const {
    py::list out;
    for (std::size_t k = 0; k < w_.layers.size(); ++k) {
      if (k < w_.biases.size() && !w_.biases[k].empty())
        out.append(view(w_.biases[k].data(), {static_cast<py::ssize_t>(w_.biases[k].size())}, self));
      else
        out.append(py::none());
    }
    return out;
  }

  std::vector<std::size_t> input_shape() const {
    const snn::Shape s = w_.input_shape();
    return {s.channels, s.height, s.width};
  }

  bool output_relu() const { return output_relu_; }

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
      return Model(std::move(w), output_relu_);
    }
    if (images.is_none()) throw py::value_error(fmt::format("{}-based normalisation needs images", method));
    Images im = images_of(images, w_.inputs());
    // The trainer's data layout owns its bytes: one copy, small against the
    // forward passes normalisation runs.
    snn::Dataset d = dataset_of(im);
    d.labels.assign(im.count, 0);
    py::gil_scoped_release release;
    snn::conversion::normalise(w, o, &d);
    return Model(std::move(w), output_relu_);
  }

  // The ANN's accuracy (argmax of its outputs) on `images`; output_relu unset: the model's own.
  double evaluate(const py::handle& images, const py::handle& labels, std::optional<bool> output_relu) const {
    Images im = images_of(images, w_.inputs());
    snn::Dataset d = dataset_of(im);
    d.num_classes = w_.outputs();
    d.labels = labels_of(labels, im.count, w_.outputs());
    const bool relu = output_relu.value_or(output_relu_);
    py::gil_scoped_release release;
    return snn::conversion::evaluate(w_, d, relu).accuracy;
  }

  const snn::WeightSet& weight_set() const { return w_; }

 private:
  // Images as the trainer's data set: one channel of height x width for an
  // image input, one row of features for a flat one.
  snn::Dataset dataset_of(const Images& im) const {
    const snn::Shape in = w_.input_shape();
    snn::Dataset d;
    d.count = im.count;
    d.rows = in.flat() ? 1 : in.height;
    d.cols = in.flat() ? im.size : im.size / std::max<std::size_t>(1, in.height);
    d.pixels.assign(im.bytes.begin(), im.bytes.end());
    return d;
  }

  snn::WeightSet w_;
  bool output_relu_ = true;  ///< ReLU on the ANN's outputs (an imported model says; else snnsim's training default)
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
  const auto sizes = model.sizes();  // input, then one per spiking population
  for (std::size_t l = 1; l + 1 < sizes.size(); ++l) hidden += fmt::format("{}{}", l > 1 ? ", " : "", sizes[l]);
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
  // Within a sample too, so one long sample stops within a few steps.
  ro.check_cancel = [] {
    if (snn::tool::interrupted()) throw Interrupted{"interrupted during the simulation"};
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
  } catch (const Interrupted& e) { raise_interrupt(e.message); }
  return res;
}

std::string run_config(const fs::path& config, const std::vector<std::string>& set, std::optional<int> threads,
                       std::optional<int> limit, std::optional<std::uint64_t> seed, std::optional<std::string> out, bool quiet,
                       bool retrain, bool write) {
  if (!fs::exists(config)) file_not_found(fmt::format("config '{}' does not exist", config.string()));
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
    file_not_found(fmt::format("dataset '{}': no directory '{}' (tools/fetch-data gets the named ones)", name, dir.string()));
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
  py::class_<Model>(m, "Model", R"doc(A converted (or to-be-converted) ANN: dense, conv, avgpool and flatten layers.

Model(layers, input=None) takes a list whose items are each either a 2-D
float array [out, in] (torch.nn.Linear.weight's layout) or a dict:
  {"kind": "dense", "weight": W [out, in], "bias": b [out] or None, "name": "fc1"}
  {"kind": "conv", "weight": K [out, in_channels, kh, kw] (torch.nn.Conv2d.weight),
   "bias": b [out] or None, "stride": 1, "padding": 0, "name": "conv1"}
  {"kind": "avgpool", "kernel": 2, "stride": kernel}
  {"kind": "flatten"}
(stride, padding and kernel: an int or a pair (h, w)). input: one sample's
shape (channels, height, width), or an int for flat features; required
with conv or avgpool layers, else layer 0's "in". Shapes must chain (a
stride must tile its input exactly); weights and biases must be finite.
Biases are a constant current each step in the spiking network (Rueckauer
et al. 2017). The weights are copied (the engine builds its own tables).
)doc")
      .def(py::init(&Model::from_layers), py::arg("layers"), py::arg("input") = py::none())
      .def_static("_from_onnx", &Model::from_onnx, py::arg("path"))
      .def_static("load", &Model::load, py::arg("path"),
                  "Loads a weight directory (manifest.json + .npy files, docs/weights.md). "
                  "FileNotFoundError if it does not exist, ValueError if it is malformed.")
      .def("save", &Model::save, py::arg("path"),
           "Writes the weight directory (each file atomically); snnsim's CLI reads it with --set network.weights=PATH.")
      .def_property_readonly(
          "weights", [](py::object self) { return self.cast<const Model&>().weights(self); },
          "The layers' weights, a list of read-only float32 arrays [out, in] (views, not copies).")
      .def_property_readonly("layer_sizes", &Model::sizes,
                             "Neurons per spiking layer, input first, e.g. [784, 1200, 1200, 10] (flatten layers have none).")
      .def_property_readonly("layers", &Model::layers,
                             "The architecture: one dict per layer {'kind', 'name', 'output' (c, h, w), and for conv/avgpool "
                             "'kernel', 'stride', conv 'padding', dense/conv 'bias' (bool)}.")
      .def_property_readonly(
          "biases", [](py::object self) { return self.cast<const Model&>().biases(self); },
          "One per dense/conv layer: a read-only float32 array [out] (divided by the normalisation factors up to it), or None.")
      .def_property_readonly("input_shape", &Model::input_shape, "One sample's input (channels, height, width); flat: (n, 1, 1).")
      .def_property_readonly(
          "output_relu", &Model::output_relu,
          "Whether the ANN applies ReLU to its outputs (an ONNX model's own; True otherwise); evaluate's default.")
      .def_property_readonly(
          "names", [](const Model& self) { return self.weight_set().names; }, "Layer names.")
      .def_property_readonly("normalisation", &Model::normalisation,
                             "How the weights were scaled: {'method', 'factors', 'samples', 'percentile'}.")
      .def("_normalise", &Model::normalise, py::arg("method"), py::arg("images"), py::arg("samples"), py::arg("percentile"),
           py::arg("include_last"))
      .def("evaluate", &Model::evaluate, py::arg("images"), py::arg("labels"), py::arg("output_relu") = py::none(),
           "The ANN's accuracy (fraction) on images (as simulate takes them) and labels: argmax of the network's "
           "outputs, biases included (output_relu: ReLU on the logits; None: the model's own, see output_relu).")
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
  bias_ops[i]               bias additions, counted apart from SynOps (uint64)
Summaries: accuracy_curve[t] (after step t; None without labels), accuracy,
synops_curve[t] (cumulative SynOps per sample after step t),
synops_per_connection[c] (mean per sample), seconds, threads.
)doc")
      .def_property_readonly("samples", [](const Result& r) { return r.run.samples; })
      .def_property_readonly("steps", [](const Result& r) { return r.run.steps; })
      .def_property_readonly(
          "threads", [](const Result& r) { return r.run.threads; }, "Threads the engine used.")
      .def_property_readonly(
          "seconds", [](const Result& r) { return r.run.seconds; }, "Wall time of the engine run.")
      .def_property_readonly("population_names", [](const Result& r) { return r.names; })
      .def_property_readonly("population_sizes", [](const Result& r) { return r.run.population_sizes; })
      .def_property_readonly("predictions",
                             [](py::object self) {
                               const auto& r = self.cast<const Result&>();
                               return view(r.run.predictions.data(), {static_cast<py::ssize_t>(r.run.samples)}, self);
                             })
      .def_property_readonly(
          "step_predictions",
          [](py::object self) {
            const auto& r = self.cast<const Result&>();
            return view(r.run.step_predictions.data(), {static_cast<py::ssize_t>(r.run.samples), r.run.steps}, self);
          })
      .def_property_readonly("output_counts",
                             [](py::object self) {
                               const auto& r = self.cast<const Result&>();
                               return view(r.run.output_counts.data(),
                                           {static_cast<py::ssize_t>(r.run.samples), static_cast<py::ssize_t>(r.run.classes)},
                                           self);
                             })
      .def_property_readonly("spike_counts",
                             [](py::object self) {
                               const auto& r = self.cast<const Result&>();
                               return view(r.run.population_spikes.data(),
                                           {static_cast<py::ssize_t>(r.run.samples), static_cast<py::ssize_t>(r.run.populations)},
                                           self);
                             })
      .def_property_readonly("synops",
                             [](py::object self) {
                               const auto& r = self.cast<const Result&>();
                               return view(r.run.synops.data(),
                                           {static_cast<py::ssize_t>(r.run.samples), static_cast<py::ssize_t>(r.run.connections)},
                                           self);
                             })
      .def_property_readonly("work",
                             [](py::object self) {
                               const auto& r = self.cast<const Result&>();
                               return view(r.run.work.data(),
                                           {static_cast<py::ssize_t>(r.run.samples), static_cast<py::ssize_t>(r.run.connections)},
                                           self);
                             })
      .def_property_readonly(
          "step_synops",
          [](py::object self) {
            const auto& r = self.cast<const Result&>();
            return view(r.run.step_synops.data(), {static_cast<py::ssize_t>(r.run.samples), r.run.steps}, self);
          })
      .def_property_readonly("labels",
                             [](py::object self) -> py::object {
                               const auto& r = self.cast<const Result&>();
                               if (r.labels.empty()) return py::none();
                               return view(r.labels.data(), {static_cast<py::ssize_t>(r.labels.size())}, self);
                             })
      .def_property_readonly("accuracy_curve",
                             [](py::object self) -> py::object {
                               const auto& r = self.cast<const Result&>();
                               if (r.accuracy_curve.empty()) return py::none();
                               return view(r.accuracy_curve.data(), {static_cast<py::ssize_t>(r.accuracy_curve.size())}, self);
                             })
      .def_property_readonly(
          "accuracy",
          [](const Result& r) -> py::object {
            if (r.accuracy_curve.empty()) return py::none();
            return py::float_(r.accuracy_curve.back());
          },
          "Final accuracy (fraction), None without labels.")
      .def_property_readonly("synops_curve",
                             [](py::object self) {
                               const auto& r = self.cast<const Result&>();
                               return view(r.synops_curve.data(), {static_cast<py::ssize_t>(r.synops_curve.size())}, self);
                             })
      .def_property_readonly("synops_per_connection",
                             [](const Result& r) {
                               std::vector<double> v;
                               for (auto s : r.run.synops_per_connection())
                                 v.push_back(static_cast<double>(s) / static_cast<double>(r.run.samples));
                               return py::array_t<double>(static_cast<py::ssize_t>(v.size()), v.data());
                             })
      .def_property_readonly(
          "bias_ops",
          [](py::object self) {
            const auto& r = self.cast<const Result&>();
            return view(r.run.bias_ops.data(), {static_cast<py::ssize_t>(r.run.samples)}, self);
          },
          "Bias additions per sample (one per neuron with a non-zero bias per step), apart from SynOps (uint64).")
      .def_property_readonly(
          "bias_ops_per_sample",
          [](const Result& r) { return static_cast<double>(r.run.total_bias_ops()) / static_cast<double>(r.run.samples); })
      .def_property_readonly(
          "synops_per_sample",
          [](const Result& r) { return static_cast<double>(r.run.total_synops()) / static_cast<double>(r.run.samples); })
      .def("__repr__", [](const Result& r) {
        return fmt::format("snnsim.Result({} samples x {} steps{}, {:.4g} SynOps/sample, {:.3f} s)", r.run.samples, r.run.steps,
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
    } catch (const snn::Error& e) { PyErr_SetString(PyExc_ValueError, e.what()); }
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
