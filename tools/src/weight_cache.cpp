#include "snn/tool/weight_cache.h"

#include "snn/conversion/layers.h"
#include "snn/conversion/onnx_import.h"
#include "snn/conversion/trainer.h"
#include "snn/error.h"
#include "snn/tool/interrupt.h"
#include "snn/tool/mpi.h"
#include "snn/tool/progress.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

namespace snn::tool {

namespace fs = std::filesystem;

namespace {

// FNV-1a: a stable 64-bit hash (std::hash is not stable across builds).
struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
};

conversion::TrainConfig train_config(const Config& c, const Dataset& train) {
  conversion::TrainConfig t;
  t.network = network_spec(c, train);
  t.epochs = static_cast<std::size_t>(c.training.epochs);
  t.batch_size = static_cast<std::size_t>(c.training.batch_size);
  t.adam.learning_rate = static_cast<float>(c.training.learning_rate);
  t.init = c.training.init;
  t.init_range = static_cast<float>(c.training.init_range);
  t.seed = c.training.seed;
  t.train_samples = static_cast<std::size_t>(c.training.limit);
  t.blas_threads = training_blas_threads();
  return t;
}

// Draws the training progress: a bar per epoch on a terminal, one line per epoch always.
class TrainingObserver : public conversion::TrainObserver {
 public:
  TrainingObserver(bool quiet, std::size_t epochs, fs::path checkpoint)
      : quiet_(quiet), epochs_(epochs), checkpoint_(std::move(checkpoint)) {}
  void on_batch(std::size_t epoch, std::size_t batch, std::size_t batches, double loss) override {
    if (interrupted()) {
      if (epoch > 1)
        throw Error(
            "interrupted during training epoch {}/{}; the {} completed epoch{} saved in '{}': run the same command with "
            "--resume to continue from there",
            epoch, epochs_, epoch - 1, epoch == 2 ? " is" : "s are", checkpoint_.string());
      throw Error("interrupted during training epoch 1/{}, before any epoch was complete; nothing was written", epochs_);
    }
    if (quiet_) return;
    if (!bar_ || epoch != epoch_) {
      bar_ = std::make_unique<Progress>(fmt::format("epoch {}/{}", epoch, epochs_), batches, quiet_);
      epoch_ = epoch;
    }
    bar_->update(batch, fmt::format("loss {:.4f}", loss));
  }
  void on_epoch(const conversion::EpochReport& r) override {
    if (bar_) bar_->finish();
    bar_.reset();
    if (!quiet_)
      fmt::print(stderr, "epoch {:>2}/{}: loss {:.4f}, train accuracy {:.2f} %, {:.1f} s\n", r.epoch, r.epochs, r.loss,
                 r.train_accuracy * 100, r.seconds);
  }
  void on_test(const conversion::Evaluation& e) override {
    if (!quiet_) fmt::print(stderr, "ANN test accuracy {:.2f} % ({} samples)\n", e.accuracy * 100, e.samples);
  }
  void on_warning(const std::string& message) override { fmt::print(stderr, "warning: {}\n", message); }
  void on_resume(std::size_t done, std::size_t epochs) override {
    if (!quiet_) fmt::print(stderr, "resuming training after epoch {}/{} from '{}'\n", done, epochs, checkpoint_.string());
  }

 private:
  bool quiet_;
  std::size_t epochs_;
  fs::path checkpoint_;
  std::size_t epoch_ = 0;
  std::unique_ptr<Progress> bar_;
};

}  // namespace

int training_blas_threads() { return 2; }

conversion::NetworkSpec network_spec(const Config& c, const Dataset& train) {
  conversion::NetworkSpec n;
  n.layers.clear();
  if (c.network.layers.empty()) {
    n.input = Shape{train.image_size(), 1, 1};
    for (std::size_t i = 0; i < c.network.hidden.size(); ++i)
      n.layers.push_back(LayerSpec::dense(static_cast<std::size_t>(c.network.hidden[i]), fmt::format("fc{}", i + 1)));
    n.layers.push_back(
        LayerSpec::dense(static_cast<std::size_t>(c.dataset.classes), fmt::format("fc{}", c.network.hidden.size() + 1)));
  } else {
    n.layers = c.network.layers;
    // A stack of dense layers reads the image flat, exactly as the MLP does
    // (same weight files, same population names).
    const bool all_dense = std::all_of(n.layers.begin(), n.layers.end(), [](const LayerSpec& l) {
      return l.kind == LayerKind::Dense || l.kind == LayerKind::Flatten;
    });
    n.input = all_dense ? Shape{train.image_size(), 1, 1} : Shape{1, train.rows, train.cols};
    std::map<LayerKind, std::size_t> count;
    for (LayerSpec& l : n.layers) {
      const std::size_t k = ++count[l.kind];
      if (!l.name.empty()) continue;
      const std::string_view stem = l.kind == LayerKind::Dense ? "fc" : l.kind == LayerKind::AvgPool ? "pool" : to_string(l.kind);
      l.name = fmt::format("{}{}", stem, k);
    }
    try {
      const auto shapes = infer_shapes(n.input, n.layers);
      if (shapes.back().size() != static_cast<std::size_t>(c.dataset.classes))
        throw Error("ends in {} outputs but dataset.classes = {}", shapes.back().size(), c.dataset.classes);
    } catch (const Error& e) { throw Error("network.layers on {}x{} images: {}", train.rows, train.cols, e.what()); }
  }
  n.output_relu = c.training.output_relu;
  n.dropout = static_cast<float>(c.training.dropout);
  n.dropout_at = c.training.dropout_at;
  n.bias = c.training.bias;
  return n;
}

void check_weights_fit_layers(const Config& c, const WeightSet& w, const std::string& source, const Dataset& data) {
  if (c.network.layers.empty()) return;
  const std::vector<LayerSpec> given = w.layer_specs();
  const std::vector<LayerSpec>& want = c.network.layers;
  // The input: a conv net needs the image's shape; a dense first layer only its size.
  const Shape image{1, data.rows, data.cols};
  const bool shaped = want.front().kind == LayerKind::Conv || want.front().kind == LayerKind::AvgPool;
  if (shaped ? w.input_shape() != image : w.inputs() != image.size())
    throw Error("weights '{}' take input {} but network.layers starts with layer 1 '{}' on {} images", source,
                to_string(w.input_shape()), describe(want.front()), to_string(image));
  auto text = [](const std::vector<LayerSpec>& ls, std::size_t i) {
    return i < ls.size() ? fmt::format("'{}'", describe(ls[i])) : std::string("nothing");
  };
  for (std::size_t i = 0; i < std::max(given.size(), want.size()); ++i) {
    if (text(want, i) == text(given, i)) continue;
    throw Error(
        "weights '{}' do not fit network.layers: layer {} is {} in the config but {}{} in the weights ({} layers vs "
        "{}); drop network.layers to use the weights' own architecture",
        source, i + 1, text(want, i), text(given, i), i < given.size() ? fmt::format(" ('{}')", given[i].name) : "", want.size(),
        given.size());
  }
}

fs::path weight_cache_dir(const Config& c, const Dataset& train) {
  Fnv fnv;
  fnv.add(train.pixels.data(), train.pixels.size());
  fnv.add(train.labels.data(), train.labels.size());
  const auto& t = c.training;
  fnv.add(fmt::format("classes={};hidden={};epochs={};batch={};lr={};dropout={};init={};output_relu={};limit={};seed={};blas={}",
                      c.dataset.classes, fmt::join(c.network.hidden, ","), t.epochs, t.batch_size, t.learning_rate, t.dropout,
                      t.init_range, t.output_relu, t.limit, t.seed, training_blas_threads()));
  // Added only when not the MLP defaults, so existing MLP cache entries keep their key.
  if (!c.network.layers.empty()) {
    std::vector<std::string> layers;
    for (const LayerSpec& l : network_spec(c, train).layers) layers.push_back(fmt::format("{}:{}", describe(l), l.name));
    fnv.add(fmt::format(";layers={}", fmt::join(layers, ",")));
    // Conv nets now train in batch pieces (thread-count independent, but with
    // other last bits than the earlier whole-batch GEMMs): entries trained the
    // old way are not what this build trains, so they must not be found.
    fnv.add(";trainer=pieces");
  }
  if (t.init != conversion::Init::Uniform) fnv.add(fmt::format(";init_kind={}", conversion::to_string(t.init)));
  if (t.bias) fnv.add(";bias");
  if (t.dropout_at != conversion::DropoutAt::Hidden) fnv.add(fmt::format(";dropout_at={}", conversion::to_string(t.dropout_at)));
  std::string name = fs::path(c.dataset.name).filename().string();
  if (name.empty()) name = "data";
  return fs::path(c.output.cache) / fmt::format("{}-{:016x}", name, fnv.h);
}

AnnWeights model_weights(const Config& c, const DatasetSplits& data) {
  const conversion::OnnxModel m = conversion::import_onnx(c.network.model);
  const Dataset& test = data.test;
  // An image is 1 x rows x cols; a flat model input takes it as rows * cols features.
  const bool fits =
      m.input.size() == test.image_size() && (m.input.channels == 1 ? m.input.height == test.rows && m.input.width == test.cols
                                                                    : m.input.height == 1 && m.input.width == 1);
  if (!fits)
    throw Error("network.model '{}' takes inputs of shape {} but dataset '{}' has images of 1x{}x{}", c.network.model,
                to_string(m.input), data.name, test.rows, test.cols);
  const std::size_t outputs = m.shapes.empty() ? 0 : m.shapes.back().size();
  if (outputs != static_cast<std::size_t>(c.dataset.classes))
    throw Error("network.model '{}' has {} outputs but dataset.classes = {}", c.network.model, outputs, c.dataset.classes);
  AnnWeights out;
  out.weights = conversion::to_weight_set(m);
  out.source = c.network.model;
  out.kind = "onnx";
  out.output_relu = m.output_relu;
  return out;
}

namespace {
AnnWeights ann_weights_here(const Config& c, const DatasetSplits& data, const CommonOptions& options);
}

AnnWeights ann_weights(const Config& c, const DatasetSplits& data, const CommonOptions& options) {
  if (!c.network.model.empty()) return model_weights(c, data);  // every rank reads the file itself
  if (!mpi::distributed() || !c.network.weights.empty()) return ann_weights_here(c, data, options);
  // Under MPI rank 0 alone trains or loads the cache entry (no two ranks write
  // it); the others read the entry it names once it is there.
  std::optional<AnnWeights> mine;
  const std::string dir = mpi::from_root([&] {
    mine = ann_weights_here(c, data, options);
    return mine->source;
  });
  if (mine) return std::move(*mine);
  return {load_weights(dir), true, dir, "trained", c.training.output_relu};
}

namespace {
AnnWeights ann_weights_here(const Config& c, const DatasetSplits& data, const CommonOptions& options) {
  if (!c.network.weights.empty()) {
    WeightSet w = load_weights(c.network.weights);
    if (w.inputs() != data.test.image_size())
      throw Error("weights '{}' take {} inputs but dataset '{}' has images of {} pixels", c.network.weights, w.inputs(),
                  data.name, data.test.image_size());
    if (w.outputs() != static_cast<std::size_t>(c.dataset.classes))
      throw Error("weights '{}' have {} outputs but dataset.classes = {}", c.network.weights, w.outputs(), c.dataset.classes);
    check_weights_fit_layers(c, w, c.network.weights, data.test);
    return {std::move(w), false, c.network.weights, "weights", c.training.output_relu};
  }
  const fs::path dir = weight_cache_dir(c, data.train);
  // Absolute, so a run from another working directory (another cache) never retrains unannounced.
  const std::string where = fs::absolute(dir).lexically_normal().string();
  if (!options.retrain && fs::exists(dir / kManifestFile)) {
    if (!options.quiet) fmt::print(stderr, "using cached ANN weights from {} (--retrain to train again)\n", where);
    return {load_weights(dir), true, dir.string(), "trained", c.training.output_relu};
  }
  auto tc = train_config(c, data.train);
  // The checkpoint lives in the cache entry it will become: same key, and
  // without a manifest the entry is never taken for trained weights.
  tc.checkpoint = dir / kCheckpointFile;
  tc.resume = options.resume;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("output.cache '{}': cannot create '{}': {}", c.output.cache, dir.string(), ec.message());
  const bool have_checkpoint = fs::exists(tc.checkpoint, ec);
  if (!options.quiet) {
    std::vector<std::string> arch;
    for (const LayerSpec& l : tc.network.layers) arch.push_back(describe(l));
    fmt::print(stderr, "training {}: {} on {} ({} samples), {} epochs, into the weight cache {}{}\n", to_string(tc.network.input),
               fmt::join(arch, ", "), data.name, tc.train_samples ? tc.train_samples : data.train.count, tc.epochs, where,
               options.retrain ? " (--retrain)" : " (no cached weights there)");
    if (!have_checkpoint && options.resume)
      fmt::print(stderr, "note: no interrupted training to resume ('{}' does not exist); training from the start\n",
                 tc.checkpoint.string());
  }
  // Said even with --quiet: the first epoch done overwrites that checkpoint.
  if (have_checkpoint && !options.resume)
    fmt::print(stderr,
               "warning: '{}' holds an interrupted training, which this run discards: it starts over and replaces "
               "that checkpoint after its first epoch (Ctrl-C now and add --resume to continue it instead)\n",
               tc.checkpoint.string());
  TrainingObserver progress(options.quiet, tc.epochs, tc.checkpoint);
  const auto result = conversion::train(tc, data.train, &data.test, &progress);
  // Its OpenBLAS threads would spin on the simulation's cores for a while.
  // Here, not in train(): a library caller (Python) may be running GEMMs of
  // its own on those threads.
  conversion::release_blas_threads();
  WeightSet w = conversion::to_weight_set(tc, result, data.name, tc.train_samples ? tc.train_samples : data.train.count);
  save_weights(dir, w);
  // Only once the weights are stored: until then the checkpoint can still resume.
  fs::remove(tc.checkpoint, ec);
  return {std::move(w), false, dir.string(), "trained", c.training.output_relu};
}
}  // namespace

}  // namespace snn::tool
