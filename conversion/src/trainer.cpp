#include "snn/conversion/trainer.h"

#include "snn/conversion/checkpoint.h"
#include "snn/conversion/random.h"
#include "snn/error.h"

#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <optional>
#include <string>
#include <system_error>

namespace snn::conversion {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// A float setting as the double its shortest decimal form names (1e-3f is
// recorded as 0.001, not 0.0010000000474974513).
double as_written(float f) { return std::stod(fmt::format("{}", f)); }

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void check_data(const Dataset& data, const Shape& input, std::size_t classes, const char* what) {
  const std::size_t inputs = input.size();
  if (data.image_size() != inputs)
    throw Error("{} set: images have {} pixels ({} x {}), the network takes {} inputs", what, data.image_size(), data.rows,
                data.cols, inputs);
  if (!input.flat() && (input.channels != 1 || input.height != data.rows || input.width != data.cols))
    throw Error("{} set: images are {} x {} (one channel), the network's input is {}", what, data.rows, data.cols,
                to_string(input));
  if (data.pixels.size() != data.count * data.image_size() || data.labels.size() != data.count)
    throw Error("{} set: {} samples but {} pixel bytes and {} labels", what, data.count, data.pixels.size(), data.labels.size());
  for (std::size_t i = 0; i < data.count; ++i)
    if (data.labels[i] >= classes)
      throw Error("{} set: sample {} has label {}, the network has only {} outputs", what, i, data.labels[i], classes);
}

std::size_t count_or_all(std::size_t samples, const Dataset& data) {
  return samples == 0 ? data.count : std::min(samples, data.count);
}

std::vector<std::uint32_t> identity_order(std::size_t n) {
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  return order;
}

}  // namespace

void gather_batch(const Dataset& data, const std::vector<std::uint32_t>& order, std::size_t first, std::size_t count,
                  Matrix& batch) {
  const std::size_t size = data.image_size();
  reshape(batch, count, size);
  for (std::size_t r = 0; r < count; ++r) {
    const std::uint8_t* img = data.image(order[first + r]);
    float* out = batch.row(r);
    for (std::size_t c = 0; c < size; ++c) out[c] = pixel_value(img[c]);
  }
}

TrainResult train(const TrainConfig& config, const Dataset& train_set, const Dataset* test_set, TrainObserver* observer) {
  const NetworkSpec& spec = config.network;
  if (spec.layers.empty()) throw Error("training: the network has no layers");
  if (config.batch_size == 0) throw Error("training: batch_size must be > 0");
  const std::size_t classes = spec.outputs();
  check_data(train_set, spec.input, classes, "training");
  if (test_set) check_data(*test_set, spec.input, classes, "test");
  if (!config.checkpoint.empty() && spec.bias)
    throw Error(
        "training: checkpoints of networks with biases are not supported yet (train without a checkpoint, or without bias)");
  const std::size_t n = count_or_all(config.train_samples, train_set);
  if (n == 0) throw Error("training: the training set is empty");

  if (config.blas_threads < 0) throw Error("training: blas_threads {} must be >= 0", config.blas_threads);
  const int saved_threads = blas_threads();
  if (config.blas_threads > 0) set_blas_threads(config.blas_threads);
  // Restore the caller's OpenBLAS setting however training ends.
  struct Restore {
    int threads;
    ~Restore() { set_blas_threads(threads); }
  } restore{saved_threads};

  const auto start = Clock::now();
  const std::size_t batches = (n + config.batch_size - 1) / config.batch_size;
  const int threads = blas_threads();
  const bool checkpointing = !config.checkpoint.empty();
  const std::uint64_t fingerprint = checkpointing ? training_fingerprint(config, train_set, threads) : 0;
  std::error_code ec;
  std::optional<TrainCheckpoint> resumed;
  if (checkpointing && config.resume && fs::exists(config.checkpoint, ec)) {
    resumed = load_checkpoint(config.checkpoint);
    if (resumed->fingerprint != fingerprint)
      throw Error(
          "cannot resume from '{}': it is the checkpoint of a different training (network, training settings, seed, data "
          "or OpenBLAS threads differ); remove it to train from the start",
          config.checkpoint.string());
    if (resumed->epochs_done > config.epochs)
      throw Error("cannot resume from '{}': it holds {} completed epochs, more than the {} asked for", config.checkpoint.string(),
                  resumed->epochs_done, config.epochs);
    if (resumed->step != resumed->epochs_done * batches)
      throw Error("cannot resume from '{}': {} optimiser steps after {} epochs of {} batches", config.checkpoint.string(),
                  resumed->step, resumed->epochs_done, batches);
  }

  Model model = resumed ? Model(spec, resumed->weights) : Model::initialise(spec, config.init, config.init_range, config.seed);
  std::vector<std::span<float>> params;
  std::vector<std::span<const float>> grads;
  std::vector<std::size_t> sizes;
  for (Layer* l : model.layers()) {
    if (!l->parameters().empty()) {
      params.push_back(l->parameters());
      grads.emplace_back(l->gradients());
      sizes.push_back(l->parameters().size());
    }
    if (!l->bias_parameters().empty()) {
      params.push_back(l->bias_parameters());
      grads.emplace_back(l->bias_gradients());
      sizes.push_back(l->bias_parameters().size());
    }
  }
  Adam adam(config.adam, sizes);

  TrainResult result;
  result.blas_threads = threads;
  std::size_t first_epoch = 0;
  std::uint64_t step = 0;
  double seconds_before = 0.0;  // wall time of the epochs done before a resume
  if (resumed) {
    adam.restore(resumed->step, std::move(resumed->adam_m), std::move(resumed->adam_v));
    first_epoch = resumed->epochs_done;
    step = resumed->step;
    seconds_before = resumed->seconds;
    result.epochs = std::move(resumed->epochs);
    for (auto& e : result.epochs) e.epochs = config.epochs;
    if (observer) observer->on_resume(first_epoch, config.epochs);
  }
  Matrix x;
  Matrix dlogits;
  std::vector<std::uint8_t> labels(config.batch_size);
  // The layers' pieces of work (pieces.h) run in `threads` oneTBB threads.
  tbb::task_arena arena(threads);
  arena.execute([&] {
    for (std::size_t epoch = first_epoch; epoch < config.epochs; ++epoch) {
      // Fisher-Yates from the identity, so an epoch's order depends only on
      // (seed, epoch), not on earlier epochs.
      std::vector<std::uint32_t> order = identity_order(n);
      const CounterRng shuffle(config.seed, RandomPurpose::Shuffle, epoch);
      for (std::size_t i = n - 1; i > 0; --i) std::swap(order[i], order[shuffle.below(i, i + 1)]);

      double loss_sum = 0.0;
      std::size_t correct = 0;
      for (std::size_t b = 0; b < batches; ++b) {
        const std::size_t first = b * config.batch_size;
        const std::size_t count = std::min(config.batch_size, n - first);
        gather_batch(train_set, order, first, count, x);
        for (std::size_t r = 0; r < count; ++r) labels[r] = train_set.labels[order[first + r]];
        const ForwardContext ctx{true, config.seed, step};
        const Matrix& out = model.forward(x, ctx);
        const LossResult loss = softmax_cross_entropy(out, labels.data(), &dlogits);
        model.backward(dlogits);
        adam.step(params, grads);
        ++step;
        loss_sum += loss.loss * static_cast<double>(count);
        correct += loss.correct;
        if (observer) observer->on_batch(epoch + 1, b + 1, batches, loss.loss);
      }
      EpochReport report;
      report.epoch = epoch + 1;
      report.epochs = config.epochs;
      report.loss = loss_sum / static_cast<double>(n);
      report.train_accuracy = static_cast<double>(correct) / static_cast<double>(n);
      report.seconds = seconds_before + seconds_since(start);
      result.epochs.push_back(report);
      if (checkpointing) {
        TrainCheckpoint c;
        c.fingerprint = fingerprint;
        c.epochs_done = epoch + 1;
        c.step = step;
        c.seconds = report.seconds;
        c.epochs = result.epochs;
        c.weights = model.weights();
        c.adam_m = adam.first_moments();
        c.adam_v = adam.second_moments();
        save_checkpoint(config.checkpoint, c);
      }
      if (observer) observer->on_epoch(report);
    }
  });
  result.seconds = seconds_before + seconds_since(start);
  result.weights = model.weights();
  result.biases = model.biases();

  if (test_set) {
    result.test = evaluate(model, *test_set);
    if (observer) {
      observer->on_test(*result.test);
      for (const auto& w : prediction_warnings(*result.test, spec.output_relu)) observer->on_warning(w);
    }
  }
  return result;
}

Evaluation evaluate(const std::vector<Matrix>& weights, const Dataset& data, bool output_relu, std::size_t samples,
                    std::size_t batch_size) {
  Model model(spec_for(weights, output_relu), weights);
  return evaluate(model, data, samples, batch_size);
}

Evaluation evaluate(const WeightSet& weights, const Dataset& data, bool output_relu, std::size_t samples,
                    std::size_t batch_size) {
  Model model(spec_for(weights, output_relu), weights.layers,
              weights.has_bias() ? weights.biases : std::vector<std::vector<float>>{});
  return evaluate(model, data, samples, batch_size);
}

namespace {
// The counts of images [first, first + count) in batches of batch_size.
Evaluation count_predictions(Model& model, const Dataset& data, std::size_t first, std::size_t count, std::size_t batch_size) {
  if (batch_size == 0) throw Error("evaluate: batch_size must be > 0");
  const std::size_t classes = model.spec().outputs();
  check_data(data, model.spec().input, classes, "evaluation");
  Evaluation eval;
  eval.samples = count;
  eval.predicted.assign(classes, 0);
  const std::vector<std::uint32_t> order = identity_order(first + count);
  Matrix x;
  const ForwardContext ctx{false, 0, 0};
  for (std::size_t b = first; b < first + count; b += batch_size) {
    const std::size_t rows = std::min(batch_size, first + count - b);
    gather_batch(data, order, b, rows, x);
    const Matrix& out = model.forward(x, ctx);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t p = argmax_row(out, r);
      ++eval.predicted[p];
      if (p == data.labels[b + r]) ++eval.correct;
    }
  }
  return eval;
}
}  // namespace

Evaluation evaluate(Model& model, const Dataset& data, std::size_t samples, std::size_t batch_size) {
  Evaluation eval = count_predictions(model, data, 0, count_or_all(samples, data), batch_size);
  finish_evaluation(eval);
  return eval;
}

Evaluation evaluate_range(const WeightSet& weights, const Dataset& data, bool output_relu, std::size_t first, std::size_t count) {
  if (first + count > data.count)
    throw Error("evaluate: images [{}, {}) are beyond the {} of the data", first, first + count, data.count);
  Model model(spec_for(weights, output_relu), weights.layers,
              weights.has_bias() ? weights.biases : std::vector<std::vector<float>>{});
  return count_predictions(model, data, first, count, kEvaluationBatch);
}

void finish_evaluation(Evaluation& eval) {
  eval.accuracy = eval.samples ? static_cast<double>(eval.correct) / static_cast<double>(eval.samples) : 0.0;
  eval.never_predicted.clear();
  for (std::size_t c = 0; c < eval.predicted.size(); ++c)
    if (eval.predicted[c] == 0) eval.never_predicted.push_back(c);
}

std::vector<std::string> prediction_warnings(const Evaluation& eval, bool output_relu) {
  // One line for all of them: a dead output usually comes with others.
  const auto& c = eval.never_predicted;
  if (c.empty()) return {};
  return {fmt::format("{} {} never predicted on the {} evaluated samples{}", c.size() == 1 ? "class" : "classes",
                      fmt::join(c, ", "), eval.samples,
                      output_relu ? fmt::format(": {} output unit{} may be dead (with output_relu a logit that is never "
                                                "positive gets no gradient); consider training with output_relu = false",
                                                c.size() == 1 ? "its" : "their", c.size() == 1 ? "" : "s")
                                  : "")};
}

namespace {

// Images [begin, end) in batches of batch_size starting at begin.
void visit_activations(Model& model, const Dataset& data, std::size_t begin, std::size_t end,
                       const std::function<void(std::size_t, const Matrix&)>& visit, std::size_t batch_size) {
  if (batch_size == 0) throw Error("for_each_activation: batch_size must be > 0");
  if (data.image_size() != model.spec().inputs())
    throw Error("activations: images have {} pixels, the network takes {} inputs", data.image_size(), model.spec().inputs());
  const std::vector<std::uint32_t> order = identity_order(end);
  Matrix x;
  const ForwardContext ctx{false, 0, 0};
  for (std::size_t first = begin; first < end; first += batch_size) {
    const std::size_t count = std::min(batch_size, end - first);
    gather_batch(data, order, first, count, x);
    model.forward(x, ctx);
    for (std::size_t l = 0; l < model.spiking_layers(); ++l) visit(l, model.activation(l));
  }
}

}  // namespace

void for_each_activation(const std::vector<Matrix>& weights, const Dataset& data, std::size_t samples,
                         const std::function<void(std::size_t, const Matrix&)>& visit, std::size_t batch_size) {
  // output_relu on: the recorded output activations are ReLU'd either way.
  Model model(spec_for(weights, true), weights);
  visit_activations(model, data, 0, count_or_all(samples, data), visit, batch_size);
}

void for_each_activation(const WeightSet& weights, const Dataset& data, std::size_t samples,
                         const std::function<void(std::size_t, const Matrix&)>& visit, std::size_t batch_size) {
  Model model(spec_for(weights, true), weights.layers, weights.has_bias() ? weights.biases : std::vector<std::vector<float>>{});
  visit_activations(model, data, 0, count_or_all(samples, data), visit, batch_size);
}

void for_each_activation_in(const WeightSet& weights, const Dataset& data, std::size_t first, std::size_t count,
                            const std::function<void(std::size_t, const Matrix&)>& visit, std::size_t batch_size) {
  if (first > data.count) throw Error("activations: first image {} is beyond the {} images", first, data.count);
  Model model(spec_for(weights, true), weights.layers, weights.has_bias() ? weights.biases : std::vector<std::vector<float>>{});
  visit_activations(model, data, first, first + std::min(count, data.count - first), visit, batch_size);
}

WeightSet to_weight_set(const TrainConfig& config, const TrainResult& result, const std::string& dataset_name,
                        std::size_t train_samples) {
  WeightSet w;
  w.layers = result.weights;
  w.biases = result.biases;
  const NetworkSpec& spec = config.network;
  bool dense_chain = spec.input.flat();
  for (std::size_t i = 0; i < spec.layers.size(); ++i) {
    const std::string& name = spec.layers[i].name;
    if (spec.layers[i].has_weights()) w.names.push_back(name.empty() ? fmt::format("layer{}", i) : name);
    dense_chain = dense_chain && spec.layers[i].kind == LayerKind::Dense;
  }
  if (!dense_chain) {
    w.input = spec.input;
    w.architecture = spec.layers;
    std::size_t k = 0;
    for (std::size_t i = 0; i < spec.layers.size(); ++i) {
      LayerSpec& l = w.architecture[i];
      if (l.has_weights())
        l.name = w.names[k++];
      else if (l.name.empty())
        l.name = fmt::format("layer{}", i);
    }
  }
  if (result.test) w.ann_test_accuracy = result.test->accuracy;
  w.seed = config.seed;
  TrainingRecord t;
  t.dataset = dataset_name;
  t.train_samples = train_samples;
  t.epochs = config.epochs;
  t.batch_size = config.batch_size;
  t.optimiser = "adam";
  t.learning_rate = as_written(config.adam.learning_rate);
  t.beta1 = as_written(config.adam.beta1);
  t.beta2 = as_written(config.adam.beta2);
  t.epsilon = as_written(config.adam.epsilon);
  t.dropout = as_written(config.network.dropout);
  t.init = std::string(to_string(config.init));
  if (config.init == Init::Uniform) t.init_range = as_written(config.init_range);
  t.output_relu = config.network.output_relu;
  t.seconds = result.seconds;
  t.blas_threads = static_cast<std::size_t>(result.blas_threads);
  t.machine = machine_record();
  w.training = t;
  return w;
}

}  // namespace snn::conversion
