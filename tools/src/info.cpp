// `snnsim info PATH`: describes a results.json, a weight set or a dataset.
#include "snn/tool/commands.h"

#include "snn/conversion/onnx_import.h"
#include "snn/error.h"
#include "snn/network/dataset.h"
#include "snn/network/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

namespace snn::tool {

namespace fs = std::filesystem;

namespace {

int print_results(const fs::path& file, const nlohmann::json& j);

int info_results(const fs::path& file) {
  std::ifstream in(file);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) { throw Error("'{}' is not valid JSON: {}", file.string(), e.what()); }
  try {
    return print_results(file, j);
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong type (a hand-edited or foreign file).
    throw Error("'{}' is not a valid snnsim results.json: {}", file.string(), e.what());
  }
}

int print_results(const fs::path& file, const nlohmann::json& j) {
  if (!j.is_object() || j.value("schema", "") != "snnsim-results/1")
    throw Error("'{}' is not an snnsim results.json (no schema 'snnsim-results/1')", file.string());
  const auto& s = j.at("snn");
  fmt::print("{}: snnsim results ({} on {})\n", file.string(), j.value("command", "?"), j.at("dataset").value("name", "?"));
  if (!j.at("ann").at("accuracy").is_null())
    fmt::print("  ANN accuracy         {:.2f} %\n", j.at("ann").at("accuracy").get<double>() * 100);
  // Older results have no weights.source; an imported model's file is weights.model.
  if (j.contains("weights") && j.at("weights").is_object()) {
    const auto& w = j.at("weights");
    if (w.contains("model") && w.at("model").is_string())
      fmt::print("  model                {}\n", w.at("model").get<std::string>());
  }
  fmt::print("  normalisation        {}\n", j.at("normalisation").value("method", "?"));
  fmt::print("  SNN accuracy         {:.2f} % after {} steps of {:g} ms, {} samples\n", s.value("accuracy", 0.0) * 100,
             s.value("steps", 0), s.value("dt_ms", 0.0), s.value("samples", 0));
  for (const auto& cp : s.at("checkpoints"))
    fmt::print("    at step {:<5}      {:.2f} %\n", cp.value("step", 0), cp.value("accuracy", 0.0) * 100);
  fmt::print("  SynOps/sample        {:.4g} M (dense {:.4g} M MACs)\n", s.value("synops_per_sample", 0.0) / 1e6,
             s.value("dense_macs_per_sample", 0.0) / 1e6);
  if (s.value("bias_ops_per_sample", 0.0) > 0)
    fmt::print("  bias additions       {:.4g} M per sample (not in SynOps)\n", s.value("bias_ops_per_sample", 0.0) / 1e6);
  return 0;
}

int info_weights(const fs::path& path) {
  const WeightSet w = load_weights(path);
  fmt::print("{}: weight set, {} layers, {} -> {}\n", path.string(), w.layers.size(), w.inputs(), w.outputs());
  std::size_t params = 0;
  for (std::size_t l = 0; l < w.layers.size(); ++l) {
    const auto& m = w.layers[l];
    float lo = 0, hi = 0;
    for (float x : m.data) lo = std::min(lo, x), hi = std::max(hi, x);
    fmt::print("  {:<8} {:>5} x {:<5} {:<14} weights in [{:.4g}, {:.4g}]\n", w.names[l], m.rows, m.cols, w.files[l], lo, hi);
    params += m.data.size();
  }
  fmt::print("  parameters           {}\n", params);
  fmt::print("  normalisation        {}", to_string(w.normalisation.method));
  if (!w.normalisation.factors.empty()) fmt::print(" (factors {:.4g})", fmt::join(w.normalisation.factors, ", "));
  fmt::print("\n");
  if (w.ann_test_accuracy) fmt::print("  ANN test accuracy    {:.2f} %\n", *w.ann_test_accuracy * 100);
  if (w.seed) fmt::print("  seed                 {}\n", *w.seed);
  if (w.training)
    fmt::print("  trained on           {} ({} samples), {} epochs, batch {}, {} lr {:g}, {:.1f} s\n", w.training->dataset,
               w.training->train_samples, w.training->epochs, w.training->batch_size, w.training->optimiser,
               w.training->learning_rate, w.training->seconds);
  return 0;
}

int info_dataset(const std::string& name) {
  const DatasetSplits d = load_dataset(name);
  fmt::print("{}: dataset '{}'\n", d.path.string(), d.name);
  for (const auto* split : {&d.train, &d.test}) {
    std::vector<std::size_t> per_class(split->num_classes, 0);
    for (auto l : split->labels) ++per_class[l];
    double mean = 0;
    for (auto p : split->pixels) mean += p;
    mean /= 255.0 * static_cast<double>(std::max<std::size_t>(1, split->pixels.size()));
    fmt::print("  {:<5} {:>6} images of {}x{}, mean pixel {:.3f}, per class [{}]\n", split == &d.train ? "train" : "test",
               split->count, split->rows, split->cols, mean, fmt::join(per_class, ", "));
  }
  return 0;
}

}  // namespace

int info_command(const fs::path& path) {
  std::error_code ec;
  if (path.extension() == ".onnx") {
    fmt::print("{}", conversion::describe(conversion::import_onnx(path)));
    return 0;
  }
  if (path.extension() == ".json" && fs::is_regular_file(path, ec)) {
    std::ifstream in(path);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_discarded() && j.contains("schema")) return info_results(path);
    if (!j.is_discarded() && j.contains("layers")) return info_weights(path);
  }
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "results.json")) return info_results(path / "results.json");
    if (fs::exists(path / kManifestFile)) return info_weights(path);
  }
  if (fs::is_regular_file(path, ec))
    throw Error(
        "'{}' is not a results.json or a weight manifest (snnsim info takes a results.json or output directory, "
        "a weight directory or its manifest.json, or a dataset name or directory)",
        path.string());
  // Anything else is taken as a dataset name or directory; its error says what is missing.
  return info_dataset(path.string());
}

}  // namespace snn::tool
