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
      throw Error("{}: layer {} takes {} inputs but layer {} has {} outputs (shapes must chain: [out, in])", what, i, m.cols, i - 1,
                  layers[i - 1].rows);
    for (std::size_t k = 0; k < m.data.size(); ++k)
      if (!std::isfinite(m.data[k]))
        throw Error("{}: layer {} has a non-finite weight {} at [{}, {}]", what, i, m.data[k], k / m.cols, k % m.cols);
  }
}

namespace {

// Plain names only: a manifest must not make us read or write outside its directory.
void check_file_name(const std::string& name, const std::string& where) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos || name.find('\\') != std::string::npos ||
      name == kManifestFile)
    throw Error("{}: file name '{}' must be a plain file name inside the weight directory (not '{}')", where, name, kManifestFile);
}

void fill_defaults(WeightSet& w) {
  const std::size_t n = w.layers.size();
  if (w.names.empty())
    for (std::size_t i = 0; i < n; ++i) w.names.push_back(fmt::format("layer{}", i));
  if (w.files.empty())
    for (std::size_t i = 0; i < n; ++i) w.files.push_back(w.names[i] + ".npy");
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
  if (w.normalisation.factors.size() > n)
    throw Error("{}: {} normalisation factors for {} layers", where, w.normalisation.factors.size(), n);
  for (std::size_t i = 0; i < w.normalisation.factors.size(); ++i) {
    const double f = w.normalisation.factors[i];
    if (!std::isfinite(f) || f <= 0.0) throw Error("{}: normalisation factor {} is {}, expected a finite number > 0", where, i, f);
  }
  if (w.normalisation.method == Normalisation::None && !w.normalisation.factors.empty())
    throw Error("{}: normalisation method 'none' with {} factors", where, w.normalisation.factors.size());
  if (w.ann_test_accuracy && !(*w.ann_test_accuracy >= 0.0 && *w.ann_test_accuracy <= 1.0))
    throw Error("{}: ann_test_accuracy {} is not a fraction in [0, 1]", where, *w.ann_test_accuracy);
}

// ---- reading helpers: every accessor names the manifest and the key path ----

struct Reader {
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
  json layers = json::array();
  for (std::size_t i = 0; i < w.layers.size(); ++i)
    layers.push_back({{"name", w.names[i]}, {"kind", "dense"}, {"file", w.files[i]}, {"shape", {w.layers[i].rows, w.layers[i].cols}}});
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
    j["training"] = {{"dataset", t.dataset},         {"train_samples", t.train_samples}, {"epochs", t.epochs},
                     {"batch_size", t.batch_size},   {"optimiser", t.optimiser},         {"learning_rate", t.learning_rate},
                     {"beta1", t.beta1},             {"beta2", t.beta2},                 {"epsilon", t.epsilon},
                     {"dropout", t.dropout},         {"init_range", t.init_range},       {"output_relu", t.output_relu},
                     {"seconds", t.seconds},         {"blas_threads", t.blas_threads}};
    if (!t.init.empty()) j["training"]["init"] = t.init;
  }
  return j;
}

TrainingRecord training_from_json(const Reader& r, const json& j) {
  if (!j.is_object()) r.fail("training", fmt::format("expected an object, found {}", j.dump()));
  r.only_keys(j, "training",
              {"dataset", "train_samples", "epochs", "batch_size", "optimiser", "learning_rate", "beta1", "beta2", "epsilon", "dropout",
               "init", "init_range", "output_relu", "seconds", "blas_threads"});
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

void save_weights(const fs::path& dir, const WeightSet& weights) {
  WeightSet w = weights;
  fill_defaults(w);
  const std::string where = fmt::format("cannot save weights to '{}'", dir.string());
  validate_layers(w.layers, where);
  check_record(w, where);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("{}: cannot create the directory: {}", where, ec.message());
  // The manifest is what makes the directory a weight set: without it while
  // the layers are replaced, an interrupted overwrite cannot look valid.
  fs::remove(dir / kManifestFile, ec);
  if (ec) throw Error("{}: cannot remove the old manifest: {}", where, ec.message());
  for (std::size_t i = 0; i < w.layers.size(); ++i) write_npy(dir / w.files[i], w.layers[i]);
  write_file_atomically(dir / kManifestFile, to_json(w).dump(2) + "\n");
}

WeightSet load_weights(const fs::path& dir_or_manifest) {
  const bool is_dir = fs::is_directory(dir_or_manifest);
  const fs::path manifest = is_dir ? dir_or_manifest / kManifestFile : dir_or_manifest;
  const fs::path dir = is_dir ? dir_or_manifest : (manifest.has_parent_path() ? manifest.parent_path() : fs::path("."));
  Reader r{manifest.string()};

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
  r.only_keys(j, "", {"format", "version", "layers", "normalisation", "ann_test_accuracy", "seed", "training"});
  if (j.contains("format") && r.string(j["format"], "format") != "snnsim-weights")
    r.fail("format", fmt::format("expected \"snnsim-weights\", found {}", j["format"].dump()));
  if (j.contains("version") && r.count(j["version"], "version") != 1)
    r.fail("version", fmt::format("expected 1, found {}", j["version"].dump()));
  if (!j.contains("layers")) r.fail("layers", "missing (a list of {\"file\": ..., \"shape\": [out, in]})");
  const json& layers = j["layers"];
  if (!layers.is_array() || layers.empty()) r.fail("layers", fmt::format("expected a non-empty list, found {}", layers.dump()));

  WeightSet w;
  std::vector<std::pair<std::size_t, std::size_t>> shapes;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const json& l = layers[i];
    const std::string key = fmt::format("layers[{}]", i);
    if (!l.is_object()) r.fail(key, fmt::format("expected an object, found {}", l.dump()));
    r.only_keys(l, key, {"name", "kind", "file", "shape"});
    if (l.contains("kind") && r.string(l["kind"], key + ".kind") != "dense")
      r.fail(key + ".kind", fmt::format("expected \"dense\", found {}", l["kind"].dump()));
    if (!l.contains("file")) r.fail(key + ".file", "missing");
    if (!l.contains("shape")) r.fail(key + ".shape", "missing ([out, in])");
    const std::string file = r.string(l["file"], key + ".file");
    check_file_name(file, fmt::format("'{}': {}.file", manifest.string(), key));
    const json& s = l["shape"];
    if (!s.is_array() || s.size() != 2) r.fail(key + ".shape", fmt::format("expected [out, in], found {}", s.dump()));
    const std::size_t out = r.count(s[0], key + ".shape[0]");
    const std::size_t inn = r.count(s[1], key + ".shape[1]");
    if (out == 0 || inn == 0) r.fail(key + ".shape", fmt::format("expected positive sizes, found {}", s.dump()));
    if (i > 0 && inn != shapes.back().first)
      r.fail(key + ".shape", fmt::format("layer {} must take the {} outputs of layer {} as input: expected [{}, {}] with in = {}, found {}", i,
                                         shapes.back().first, i - 1, out, shapes.back().first, inn, s.dump()));
    shapes.emplace_back(out, inn);
    w.names.push_back(l.contains("name") ? r.string(l["name"], key + ".name") : fmt::format("layer{}", i));
    w.files.push_back(file);
  }

  if (j.contains("normalisation")) {
    const json& n = j["normalisation"];
    if (!n.is_object()) r.fail("normalisation", fmt::format("expected an object, found {}", n.dump()));
    r.only_keys(n, "normalisation", {"method", "factors", "samples", "percentile"});
    if (n.contains("method")) {
      try {
        w.normalisation.method = parse_normalisation(r.string(n["method"], "normalisation.method"));
      } catch (const Error& e) {
        r.fail("normalisation.method", e.what());
      }
    }
    if (n.contains("factors")) {
      if (!n["factors"].is_array()) r.fail("normalisation.factors", fmt::format("expected a list of numbers, found {}", n["factors"].dump()));
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

  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const fs::path file = dir / w.files[i];
    Matrix m = read_npy(file);
    if (m.rows != shapes[i].first || m.cols != shapes[i].second)
      throw Error("'{}': shape does not match the manifest '{}' (layer {} '{}'): expected [{}, {}], found [{}, {}]", file.string(),
                  manifest.string(), i, w.names[i], shapes[i].first, shapes[i].second, m.rows, m.cols);
    w.layers.push_back(std::move(m));
  }
  for (std::size_t i = 0; i < w.layers.size(); ++i) {
    const Matrix& m = w.layers[i];
    for (std::size_t k = 0; k < m.data.size(); ++k)
      if (!std::isfinite(m.data[k]))
        throw Error("'{}': non-finite weight {} at [{}, {}]: expected finite float32 values", (dir / w.files[i]).string(), m.data[k],
                    k / m.cols, k % m.cols);
  }
  check_record(w, fmt::format("'{}'", manifest.string()));
  return w;
}

}  // namespace snn
