#include "snn/network/weights.h"

#include "snn/error.h"
#include "snn/network/atomic_file.h"
#include "snn/network/npy.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

namespace snn {

namespace fs = std::filesystem;
using nlohmann::json;

std::string_view to_string(Normalisation method) {
  switch (method) {
    case Normalisation::None: return "none";
    case Normalisation::Model: return "model";
    case Normalisation::Data: return "data";
    case Normalisation::Robust: return "robust";
  }
  return "none";
}

Normalisation parse_normalisation(std::string_view text) {
  for (auto m : {Normalisation::None, Normalisation::Model, Normalisation::Data, Normalisation::Robust})
    if (text == to_string(m)) return m;
  throw Error("unknown normalisation '{}': expected one of none, model, data, robust", text);
}

std::size_t WeightSet::outputs() const {
  if (layers.empty()) return 0;
  if (architecture.empty()) return layers.back().rows;
  return infer_shapes(input_shape(), architecture).back().size();
}

std::vector<LayerSpec> WeightSet::layer_specs() const {
  if (!architecture.empty()) return architecture;
  std::vector<LayerSpec> out;
  for (std::size_t i = 0; i < layers.size(); ++i)
    out.push_back(LayerSpec::dense(layers[i].rows, i < names.size() ? names[i] : fmt::format("layer{}", i)));
  return out;
}

bool WeightSet::has_bias() const {
  for (const auto& b : biases)
    if (!b.empty()) return true;
  return false;
}

void validate_layers(const std::vector<Matrix>& layers, std::string_view what) {
  if (layers.empty()) throw Error("{}: no layers", what);
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const Matrix& m = layers[i];
    if (m.rows == 0 || m.cols == 0) throw Error("{}: layer {} has an empty shape [{}, {}]", what, i, m.rows, m.cols);
    if (m.data.size() != m.rows * m.cols)
      throw Error("{}: layer {} says [{}, {}] but holds {} values", what, i, m.rows, m.cols, m.data.size());
    if (i > 0 && m.cols != layers[i - 1].rows)
      throw Error("{}: layer {} takes {} inputs but layer {} has {} outputs (shapes must chain: [out, in])", what, i, m.cols,
                  i - 1, layers[i - 1].rows);
    for (std::size_t k = 0; k < m.data.size(); ++k)
      if (!std::isfinite(m.data[k]))
        throw Error("{}: layer {} has a non-finite weight {} at [{}, {}]", what, i, m.data[k], k / m.cols, k % m.cols);
  }
}

namespace {

// Plain names only: a manifest must not make us read or write outside its directory.
void check_file_name(const std::string& name, const std::string& where) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || name == kManifestFile)
    throw Error("{}: file name '{}' must be a plain file name inside the weight directory (not '{}')", where, name,
                kManifestFile);
}

void fill_defaults(WeightSet& w) {
  const std::size_t n = w.layers.size();
  if (w.names.empty())
    for (std::size_t i = 0; i < n; ++i) w.names.push_back(fmt::format("layer{}", i));
  if (w.files.empty())
    for (std::size_t i = 0; i < n; ++i) w.files.push_back(w.names[i] + ".npy");
  // The architecture's dense/conv entries carry the weight layers' names;
  // the others default to "layer<i>" (i: position in the architecture).
  std::size_t k = 0;
  for (std::size_t i = 0; i < w.architecture.size(); ++i) {
    LayerSpec& l = w.architecture[i];
    if (l.has_weights()) {
      if (k < w.names.size()) l.name = w.names[k];
      ++k;
    } else if (l.name.empty()) {
      l.name = fmt::format("layer{}", i);
    }
  }
}

std::string bias_file(const WeightSet& w, std::size_t i) {
  const std::string& f = w.files[i];
  const std::string stem = f.size() > 4 && f.ends_with(".npy") ? f.substr(0, f.size() - 4) : f;
  return stem + ".bias.npy";
}

// As numpy prints a shape: (5,), (3, 4).
std::string tuple_text(const std::vector<std::size_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

std::string shape_text(const std::vector<std::size_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return out + "]";
}

// Checks an architecture against the weight matrices: the shapes chain from
// the input (infer_shapes) and each dense/conv layer's matrix has the shape
// weight_shape gives. `what` names the source in messages.
void check_architecture(const WeightSet& w, const std::string& what) {
  const std::vector<LayerSpec> specs = w.layer_specs();
  std::vector<Shape> shapes;
  try {
    shapes = infer_shapes(w.input_shape(), specs);
  } catch (const Error& e) { throw Error("{}: input {}: {}", what, to_string(w.input_shape()), e.what()); }
  std::size_t k = 0;
  Shape in = w.input_shape();
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].has_weights()) {
      if (k >= w.layers.size())
        throw Error("{}: the architecture has more dense/conv layers than the {} weight matrices", what, w.layers.size());
      const std::vector<std::size_t> ws = weight_shape(specs[i], in);
      std::size_t cols = 1;
      for (std::size_t d = 1; d < ws.size(); ++d) cols *= ws[d];
      const Matrix& m = w.layers[k];
      if (m.rows != ws[0] || m.cols != cols)
        throw Error("{}: layer {} '{}' ({}) on input {} needs weights {} (stored as [{}, {}]), found [{}, {}]", what, i,
                    specs[i].name, describe(specs[i]), to_string(in), shape_text(ws), ws[0], cols, m.rows, m.cols);
      if (k < w.biases.size() && !w.biases[k].empty() && w.biases[k].size() != ws[0])
        throw Error("{}: layer {} '{}' has a bias of {} values, expected {}", what, i, specs[i].name, w.biases[k].size(), ws[0]);
      ++k;
    }
    in = shapes[i];
  }
  if (k != w.layers.size())
    throw Error("{}: the architecture has {} dense/conv layers but there are {} weight matrices", what, k, w.layers.size());
  if (!w.biases.empty() && w.biases.size() != w.layers.size())
    throw Error("{}: {} bias vectors for {} weight layers (expected none or one per layer)", what, w.biases.size(),
                w.layers.size());
  for (const auto& b : w.biases)
    for (float v : b)
      if (!std::isfinite(v)) throw Error("{}: non-finite bias value {}", what, v);
}

void check_record(const WeightSet& w, const std::string& where) {
  const std::size_t n = w.layers.size();
  if (w.names.size() != n) throw Error("{}: {} layer names for {} layers", where, w.names.size(), n);
  if (w.files.size() != n) throw Error("{}: {} layer files for {} layers", where, w.files.size(), n);
  std::set<std::string> seen;
  for (const auto& f : w.files) {
    check_file_name(f, where);
    if (!seen.insert(f).second) throw Error("{}: file '{}' is used by two layers", where, f);
  }
  for (std::size_t i = 0; i < w.biases.size() && i < n; ++i)
    if (!w.biases[i].empty() && !seen.insert(bias_file(w, i)).second)
      throw Error("{}: bias file '{}' is also used by another layer", where, bias_file(w, i));
  std::size_t spiking = n;
  if (!w.architecture.empty()) {
    spiking = 0;
    for (const auto& l : w.architecture) spiking += l.spiking();
  }
  if (w.normalisation.factors.size() > spiking)
    throw Error("{}: {} normalisation factors for {} {}", where, w.normalisation.factors.size(), spiking,
                w.architecture.empty() ? "layers" : "spiking layers");
  for (std::size_t i = 0; i < w.normalisation.factors.size(); ++i) {
    const double f = w.normalisation.factors[i];
    if (!std::isfinite(f) || f <= 0.0)
      throw Error("{}: normalisation factor {} is {}, expected a finite number > 0", where, i, f);
  }
  if (w.normalisation.method == Normalisation::None && !w.normalisation.factors.empty())
    throw Error("{}: normalisation method 'none' with {} factors", where, w.normalisation.factors.size());
  if (w.ann_test_accuracy && !(*w.ann_test_accuracy >= 0.0 && *w.ann_test_accuracy <= 1.0))
    throw Error("{}: ann_test_accuracy {} is not a fraction in [0, 1]", where, *w.ann_test_accuracy);
}

// ---- reading helpers: every accessor names the manifest and the key path ----

struct ManifestReader {
  std::string manifest;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error("'{}': {}: {}", manifest, key, what);
  }
  void only_keys(const json& obj, const std::string& where, std::initializer_list<std::string_view> allowed) const {
    for (const auto& [key, value] : obj.items()) {
      bool ok = false;
      for (auto a : allowed) ok = ok || key == a;
      if (!ok) {
        std::string list;
        for (auto a : allowed) list += fmt::format("{}'{}'", list.empty() ? "" : ", ", a);
        fail(where.empty() ? key : where + "." + key, fmt::format("unknown key (expected one of {})", list));
      }
    }
  }
  std::string string(const json& v, const std::string& key) const {
    if (!v.is_string()) fail(key, fmt::format("expected a string, found {}", v.dump()));
    return v.get<std::string>();
  }
  double number(const json& v, const std::string& key) const {
    if (!v.is_number()) fail(key, fmt::format("expected a number, found {}", v.dump()));
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail(key, fmt::format("expected a finite number, found {}", v.dump()));
    return d;
  }
  std::uint64_t count(const json& v, const std::string& key) const {
    if (!v.is_number_integer() || (v.is_number_integer() && !v.is_number_unsigned() && v.get<std::int64_t>() < 0))
      fail(key, fmt::format("expected a non-negative integer, found {}", v.dump()));
    return v.get<std::uint64_t>();
  }
  bool boolean(const json& v, const std::string& key) const {
    if (!v.is_boolean()) fail(key, fmt::format("expected true or false, found {}", v.dump()));
    return v.get<bool>();
  }
};

json to_json(const WeightSet& w) {
  json j;
  j["format"] = "snnsim-weights";
  j["version"] = 1;
  if (w.input.size() != 0) j["input"] = {w.input.channels, w.input.height, w.input.width};
  json layers = json::array();
  const std::vector<LayerSpec> specs = w.layer_specs();
  const std::vector<Shape> shapes = infer_shapes(w.input_shape(), specs);
  const auto pair = [](std::size_t h, std::size_t v) { return h == v ? json(h) : json::array({h, v}); };
  Shape in = w.input_shape();
  std::size_t k = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const LayerSpec& l = specs[i];
    json e = {{"name", l.has_weights() ? w.names[k] : l.name}, {"kind", std::string(to_string(l.kind))}};
    if (l.has_weights()) {
      e["file"] = w.files[k];
      e["shape"] = weight_shape(l, in);
      if (k < w.biases.size() && !w.biases[k].empty()) e["bias"] = bias_file(w, k);
      ++k;
    }
    if (l.kind == LayerKind::Conv) {
      e["stride"] = pair(l.stride_h, l.stride_w);
      e["padding"] = pair(l.pad_h, l.pad_w);
    } else if (l.kind == LayerKind::AvgPool) {
      e["kernel"] = pair(l.kernel_h, l.kernel_w);
      e["stride"] = pair(l.stride_h, l.stride_w);
    }
    layers.push_back(std::move(e));
    in = shapes[i];
  }
  j["layers"] = std::move(layers);
  json norm;
  norm["method"] = std::string(to_string(w.normalisation.method));
  norm["factors"] = w.normalisation.factors;
  if (w.normalisation.samples) norm["samples"] = w.normalisation.samples;
  if (w.normalisation.percentile != 0.0) norm["percentile"] = w.normalisation.percentile;
  j["normalisation"] = std::move(norm);
  if (w.ann_test_accuracy) j["ann_test_accuracy"] = *w.ann_test_accuracy;
  if (w.seed) j["seed"] = *w.seed;
  if (w.training) {
    const TrainingRecord& t = *w.training;
    j["training"] = {{"dataset", t.dataset},       {"train_samples", t.train_samples},
                     {"epochs", t.epochs},         {"batch_size", t.batch_size},
                     {"optimiser", t.optimiser},   {"learning_rate", t.learning_rate},
                     {"beta1", t.beta1},           {"beta2", t.beta2},
                     {"epsilon", t.epsilon},       {"dropout", t.dropout},
                     {"init_range", t.init_range}, {"output_relu", t.output_relu},
                     {"seconds", t.seconds},       {"blas_threads", t.blas_threads}};
    if (t.machine)
      j["training"]["machine"] = {{"cpu", t.machine->cpu},
                                  {"blas_core", t.machine->blas_core},
                                  {"blas_config", t.machine->blas_config},
                                  {"blas_coretype", t.machine->blas_coretype}};
    if (!t.init.empty()) j["training"]["init"] = t.init;
  }
  return j;
}

TrainingRecord training_from_json(const ManifestReader& r, const json& j) {
  if (!j.is_object()) r.fail("training", fmt::format("expected an object, found {}", j.dump()));
  r.only_keys(j, "training",
              {"dataset", "train_samples", "epochs", "batch_size", "optimiser", "learning_rate", "beta1", "beta2", "epsilon",
               "dropout", "init", "init_range", "output_relu", "seconds", "blas_threads", "machine"});
  TrainingRecord t;
  const auto num = [&](const char* key, double& out) {
    if (j.contains(key)) out = r.number(j[key], fmt::format("training.{}", key));
  };
  const auto cnt = [&](const char* key, std::size_t& out) {
    if (j.contains(key)) out = r.count(j[key], fmt::format("training.{}", key));
  };
  if (j.contains("dataset")) t.dataset = r.string(j["dataset"], "training.dataset");
  if (j.contains("init")) t.init = r.string(j["init"], "training.init");
  if (j.contains("optimiser")) t.optimiser = r.string(j["optimiser"], "training.optimiser");
  if (j.contains("output_relu")) t.output_relu = r.boolean(j["output_relu"], "training.output_relu");
  if (j.contains("machine")) {
    const json& m = j["machine"];
    if (!m.is_object()) r.fail("training.machine", fmt::format("expected an object, found {}", m.dump()));
    r.only_keys(m, "training.machine", {"cpu", "blas_core", "blas_config", "blas_coretype"});
    MachineRecord mr;
    const std::pair<const char*, std::string*> fields[] = {
        {"cpu", &mr.cpu}, {"blas_core", &mr.blas_core}, {"blas_config", &mr.blas_config}, {"blas_coretype", &mr.blas_coretype}};
    for (const auto& [key, out] : fields)
      if (m.contains(key)) *out = r.string(m[key], fmt::format("training.machine.{}", key));
    t.machine = mr;
  }
  cnt("train_samples", t.train_samples);
  cnt("epochs", t.epochs);
  cnt("batch_size", t.batch_size);
  cnt("blas_threads", t.blas_threads);
  num("learning_rate", t.learning_rate);
  num("beta1", t.beta1);
  num("beta2", t.beta2);
  num("epsilon", t.epsilon);
  num("dropout", t.dropout);
  num("init_range", t.init_range);
  num("seconds", t.seconds);
  return t;
}

}  // namespace

void validate_weight_set(const WeightSet& weights, std::string_view what) {
  WeightSet w = weights;
  fill_defaults(w);
  const std::string where(what);
  if (w.architecture.empty()) validate_layers(w.layers, where);
  check_architecture(w, where);
  for (std::size_t i = 0; i < w.layers.size(); ++i)
    for (std::size_t v = 0; v < w.layers[i].data.size(); ++v)
      if (!std::isfinite(w.layers[i].data[v]))
        throw Error("{}: layer {} has a non-finite weight {}", where, i, w.layers[i].data[v]);
}

void save_weights(const fs::path& dir, const WeightSet& weights) {
  WeightSet w = weights;
  fill_defaults(w);
  const std::string where = fmt::format("cannot save weights to '{}'", dir.string());
  if (w.architecture.empty()) validate_layers(w.layers, where);
  check_record(w, where);
  check_architecture(w, where);
  for (std::size_t i = 0; i < w.layers.size(); ++i)
    for (std::size_t v = 0; v < w.layers[i].data.size(); ++v)
      if (!std::isfinite(w.layers[i].data[v]))
        throw Error("{}: layer {} has a non-finite weight {}", where, i, w.layers[i].data[v]);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("{}: cannot create the directory: {}", where, ec.message());
  // The manifest is what makes the directory a weight set: without it while
  // the layers are replaced, an interrupted overwrite cannot look valid.
  fs::remove(dir / kManifestFile, ec);
  if (ec) throw Error("{}: cannot remove the old manifest: {}", where, ec.message());
  {
    const std::vector<LayerSpec> specs = w.layer_specs();
    const std::vector<Shape> shapes = infer_shapes(w.input_shape(), specs);
    Shape in = w.input_shape();
    std::size_t k = 0;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      if (specs[i].has_weights()) {
        // A conv kernel is written 4-D [out, in_c, kh, kw], torch's layout.
        write_npy_array(dir / w.files[k], weight_shape(specs[i], in), w.layers[k].data);
        if (k < w.biases.size() && !w.biases[k].empty())
          write_npy_array(dir / bias_file(w, k), {w.biases[k].size()}, w.biases[k]);
        ++k;
      }
      in = shapes[i];
    }
  }
  write_file_atomically(dir / kManifestFile, to_json(w).dump(2) + "\n");
}

WeightSet load_weights(const fs::path& dir_or_manifest) {
  const bool is_dir = fs::is_directory(dir_or_manifest);
  const fs::path manifest = is_dir ? dir_or_manifest / kManifestFile : dir_or_manifest;
  const fs::path dir = is_dir ? dir_or_manifest : (manifest.has_parent_path() ? manifest.parent_path() : fs::path("."));
  ManifestReader r{manifest.string()};

  std::error_code ec;
  if (!fs::exists(dir_or_manifest, ec))
    throw Error("weights '{}' do not exist (expected a weight directory or its {})", dir_or_manifest.string(), kManifestFile);
  if (is_dir && !fs::exists(manifest, ec))
    throw Error("'{}' is not a weight directory: '{}' does not exist (see docs/weights.md)", dir_or_manifest.string(),
                manifest.string());
  std::ifstream in(manifest, std::ios::binary);
  if (!in) throw Error("cannot open weight manifest '{}'", manifest.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  json j;
  try {
    j = json::parse(buffer.str());
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number beyond double (1e999).
    throw Error("'{}': invalid JSON: {}", manifest.string(), e.what());
  }
  if (!j.is_object()) throw Error("'{}': expected a JSON object at the top level, found {}", manifest.string(), j.type_name());
  r.only_keys(j, "", {"format", "version", "input", "layers", "normalisation", "ann_test_accuracy", "seed", "training"});
  if (j.contains("format") && r.string(j["format"], "format") != "snnsim-weights")
    r.fail("format", fmt::format("expected \"snnsim-weights\", found {}", j["format"].dump()));
  if (j.contains("version") && r.count(j["version"], "version") != 1)
    r.fail("version", fmt::format("expected 1, found {}", j["version"].dump()));
  if (!j.contains("layers")) r.fail("layers", "missing (a list of {\"file\": ..., \"shape\": [out, in]})");
  const json& layers = j["layers"];
  if (!layers.is_array() || layers.empty()) r.fail("layers", fmt::format("expected a non-empty list, found {}", layers.dump()));

  WeightSet w;
  if (j.contains("input")) {
    const json& in = j["input"];
    if (!in.is_array() || (in.size() != 1 && in.size() != 3))
      r.fail("input", fmt::format("expected [features] or [channels, height, width], found {}", in.dump()));
    std::vector<std::size_t> v;
    for (std::size_t d = 0; d < in.size(); ++d) v.push_back(r.count(in[d], fmt::format("input[{}]", d)));
    w.input = v.size() == 1 ? Shape{v[0], 1, 1} : Shape{v[0], v[1], v[2]};
    if (w.input.size() == 0) r.fail("input", fmt::format("expected positive sizes, found {}", in.dump()));
  }
  // Per layer: its spec, and for dense/conv the manifest's shape (empty if not given).
  std::vector<LayerSpec> specs;
  std::vector<std::vector<std::size_t>> declared;
  std::vector<std::string> bias_files;
  std::vector<std::size_t> entry_of;  // weight layer -> manifest entry
  bool dense_only = true;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const json& l = layers[i];
    const std::string key = fmt::format("layers[{}]", i);
    if (!l.is_object()) r.fail(key, fmt::format("expected an object, found {}", l.dump()));
    r.only_keys(l, key, {"name", "kind", "file", "shape", "bias", "kernel", "stride", "padding"});
    LayerSpec spec;
    if (l.contains("kind")) {
      const std::string kind = r.string(l["kind"], key + ".kind");
      if (kind == "maxpool" || kind == "max_pool" || kind == "batchnorm")
        r.fail(key + ".kind",
               fmt::format("\"{}\" is not supported (snnsim converts dense, conv, avgpool and flatten layers)", kind));
      try {
        spec.kind = parse_layer_kind(kind);
      } catch (const Error& e) { r.fail(key + ".kind", fmt::format("\"{}\": {}", kind, e.what())); }
    }
    dense_only = dense_only && spec.kind == LayerKind::Dense;
    const bool weighted = spec.has_weights();
    const auto allow = [&](const char* k, bool ok) {
      if (l.contains(k) && !ok) r.fail(key + "." + k, fmt::format("not used by a {} layer", to_string(spec.kind)));
    };
    allow("file", weighted);
    allow("shape", weighted);
    allow("bias", weighted);
    allow("kernel", spec.kind == LayerKind::Conv || spec.kind == LayerKind::AvgPool);
    allow("stride", spec.kind == LayerKind::Conv || spec.kind == LayerKind::AvgPool);
    allow("padding", spec.kind == LayerKind::Conv);
    // A size given as n or [h, w].
    const auto hw = [&](const char* k, std::size_t& h, std::size_t& wdt) {
      if (!l.contains(k)) return false;
      const json& v = l[k];
      if (v.is_array() && v.size() == 2) {
        h = r.count(v[0], fmt::format("{}.{}[0]", key, k));
        wdt = r.count(v[1], fmt::format("{}.{}[1]", key, k));
      } else if (v.is_number_integer()) {
        h = wdt = r.count(v, key + "." + k);
      } else {
        r.fail(key + "." + k, fmt::format("expected n or [h, w], found {}", v.dump()));
      }
      return true;
    };
    std::vector<std::size_t> shape;
    if (weighted) {
      if (!l.contains("file")) r.fail(key + ".file", "missing");
      const std::string file = r.string(l["file"], key + ".file");
      check_file_name(file, fmt::format("'{}': {}.file", manifest.string(), key));
      w.files.push_back(file);
      if (l.contains("shape")) {
        const json& sh = l["shape"];
        const std::size_t rank = spec.kind == LayerKind::Dense ? 2 : 4;
        if (!sh.is_array() || sh.size() != rank) {
          if (spec.kind == LayerKind::Conv)
            r.fail(key + ".kind", fmt::format("\"conv\" needs a 4-D shape [out, in_channels, kh, kw], found {}", sh.dump()));
          r.fail(key + ".shape", fmt::format("expected [out, in], found {}", sh.dump()));
        }
        for (std::size_t d = 0; d < rank; ++d) shape.push_back(r.count(sh[d], fmt::format("{}.shape[{}]", key, d)));
        for (std::size_t d : shape)
          if (d == 0) r.fail(key + ".shape", fmt::format("expected positive sizes, found {}", sh.dump()));
        // Old manifests: a chain of dense layers is checked before any file is read.
        if (spec.kind == LayerKind::Dense && !declared.empty() && dense_only && declared.back().size() == 2 &&
            shape[1] != declared.back()[0])
          r.fail(key + ".shape",
                 fmt::format("layer {} must take the {} outputs of layer {} as input: expected [{}, {}] with in = {}, found {}",
                             i, declared.back()[0], i - 1, shape[0], declared.back()[0], shape[1], sh.dump()));
      }
      bias_files.push_back(l.contains("bias") ? r.string(l["bias"], key + ".bias") : std::string{});
      if (!bias_files.back().empty()) check_file_name(bias_files.back(), fmt::format("'{}': {}.bias", manifest.string(), key));
      declared.push_back(shape);
      entry_of.push_back(i);
    }
    if (spec.kind == LayerKind::Conv) {
      hw("stride", spec.stride_h, spec.stride_w);
      hw("padding", spec.pad_h, spec.pad_w);
      if (!shape.empty()) {
        spec.outputs = shape[0];
        spec.kernel_h = shape[2];
        spec.kernel_w = shape[3];
      }
      std::size_t kh = 0, kw = 0;
      if (hw("kernel", kh, kw) && !shape.empty() && (kh != shape[2] || kw != shape[3]))
        r.fail(key + ".kernel", fmt::format("{}x{} disagrees with the shape {}", kh, kw, shape_text(shape)));
      if (shape.empty()) {
        spec.kernel_h = kh;
        spec.kernel_w = kw;
      }
    } else if (spec.kind == LayerKind::AvgPool) {
      if (!hw("kernel", spec.kernel_h, spec.kernel_w)) r.fail(key + ".kernel", "missing (the pooling window, n or [h, w])");
      spec.stride_h = spec.kernel_h;
      spec.stride_w = spec.kernel_w;
      hw("stride", spec.stride_h, spec.stride_w);
    } else if (spec.kind == LayerKind::Dense && !shape.empty()) {
      spec.outputs = shape[0];
    }
    spec.name =
        l.contains("name") ? r.string(l["name"], key + ".name") : fmt::format("layer{}", weighted ? w.files.size() - 1 : i);
    if (weighted) w.names.push_back(spec.name);
    specs.push_back(spec);
  }
  if (w.files.empty()) r.fail("layers", "no dense or conv layer (nothing holds weights)");
  if (j.contains("normalisation")) {
    const json& n = j["normalisation"];
    if (!n.is_object()) r.fail("normalisation", fmt::format("expected an object, found {}", n.dump()));
    r.only_keys(n, "normalisation", {"method", "factors", "samples", "percentile"});
    if (n.contains("method")) {
      try {
        w.normalisation.method = parse_normalisation(r.string(n["method"], "normalisation.method"));
      } catch (const Error& e) { r.fail("normalisation.method", e.what()); }
    }
    if (n.contains("factors")) {
      if (!n["factors"].is_array())
        r.fail("normalisation.factors", fmt::format("expected a list of numbers, found {}", n["factors"].dump()));
      for (std::size_t i = 0; i < n["factors"].size(); ++i)
        w.normalisation.factors.push_back(r.number(n["factors"][i], fmt::format("normalisation.factors[{}]", i)));
    }
    if (n.contains("samples")) w.normalisation.samples = r.count(n["samples"], "normalisation.samples");
    if (n.contains("percentile")) {
      w.normalisation.percentile = r.number(n["percentile"], "normalisation.percentile");
      if (!(w.normalisation.percentile > 0.0 && w.normalisation.percentile <= 100.0))
        r.fail("normalisation.percentile", fmt::format("expected a value in (0, 100], found {}", w.normalisation.percentile));
    }
  }
  if (j.contains("ann_test_accuracy")) w.ann_test_accuracy = r.number(j["ann_test_accuracy"], "ann_test_accuracy");
  if (j.contains("seed")) w.seed = r.count(j["seed"], "seed");
  if (j.contains("training")) w.training = training_from_json(r, j["training"]);

  // Read the files in order; the expected shape follows from the input and the
  // layers before (so "shape" may be left out: the .npy header has it).
  Shape cur = w.input.size() != 0 ? w.input : Shape{0, 1, 1};
  std::size_t k = 0;
  bool any_bias = false;
  std::vector<std::vector<float>> biases;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    LayerSpec& spec = specs[i];
    const std::string key = fmt::format("layers[{}]", i);
    if (spec.has_weights()) {
      const fs::path file = dir / w.files[k];
      const NpyArray a = read_npy_array(file, 4);
      const std::size_t rank = spec.kind == LayerKind::Dense ? 2 : 4;
      if (a.shape.size() != rank)
        throw Error("'{}' (layer {} '{}', {}): expected a {}-D array {}, found shape {}", file.string(), i, spec.name,
                    to_string(spec.kind), rank, rank == 2 ? "[out, in]" : "[out, in_channels, kh, kw] (torch.nn.Conv2d.weight)",
                    tuple_text(a.shape));
      if (!declared[k].empty() && a.shape != declared[k])
        throw Error("'{}': shape does not match the manifest '{}' (layer {} '{}'): expected {}, found {}{}", file.string(),
                    manifest.string(), i, spec.name, shape_text(declared[k]), shape_text(a.shape),
                    rank == 2 && a.shape[0] == declared[k][1] && a.shape[1] == declared[k][0]
                        ? " (transposed? torch.nn.Linear.weight is [out, in]: save weight, not weight.T)"
                        : "");
      if (cur.size() == 0) cur = Shape{a.shape[1], 1, 1};  // no "input": layer 0 reads a flat vector
      if (spec.kind == LayerKind::Dense) {
        spec.outputs = a.shape[0];
        if (a.shape[1] != cur.size()) {
          const bool transposed = a.shape[0] == cur.size();
          throw Error("'{}' (layer {} '{}'): expected [out, {}] (the layer's input is {}), found {}{}", file.string(), i,
                      spec.name, cur.size(), to_string(cur), shape_text(a.shape),
                      transposed
                          ? ": it looks transposed ([in, out]); torch.nn.Linear.weight is [out, in], save weight, not weight.T"
                          : "");
        }
      } else {
        spec.outputs = a.shape[0];
        spec.kernel_h = a.shape[2];
        spec.kernel_w = a.shape[3];
        if (a.shape[1] != cur.channels)
          throw Error("'{}' (layer {} '{}', {}): expected {} input channels (the layer's input is {}), found shape {}",
                      file.string(), i, spec.name, describe(spec), cur.channels, to_string(cur), shape_text(a.shape));
      }
      Matrix m(a.shape[0], a.data.size() / a.shape[0]);
      m.data = a.data;
      for (std::size_t v = 0; v < m.data.size(); ++v)
        if (!std::isfinite(m.data[v]))
          throw Error("'{}': non-finite weight {} at [{}, {}]: expected finite float32 values", file.string(), m.data[v],
                      v / m.cols, v % m.cols);
      w.layers.push_back(std::move(m));
      std::vector<float> bias;
      if (!bias_files[k].empty()) {
        const fs::path bf = dir / bias_files[k];
        const NpyArray b = read_npy_array(bf, 1);
        if (b.shape[0] != spec.outputs)
          throw Error("'{}' (bias of layer {} '{}'): expected [{}], found {}", bf.string(), i, spec.name, spec.outputs,
                      shape_text(b.shape));
        for (float v : b.data)
          if (!std::isfinite(v)) throw Error("'{}': non-finite bias value {}", bf.string(), v);
        bias = b.data;
        any_bias = true;
      }
      biases.push_back(std::move(bias));
      ++k;
    }
    try {
      cur = output_shape(spec, cur, i + 1);
    } catch (const Error& e) { r.fail(key, e.what()); }
  }
  if (any_bias) w.biases = std::move(biases);
  if (!dense_only) w.architecture = std::move(specs);
  check_record(w, fmt::format("'{}'", manifest.string()));
  return w;
}

}  // namespace snn
