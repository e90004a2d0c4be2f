// Training and evaluating the ReLU network on the CPU (the seed's recipe by
// default): softmax cross-entropy (mean over the batch), Adam, fixed-size
// batches over a training set reshuffled every epoch, dropout in training only.
// One seed drives every random choice (initial weights, shuffles, dropout
// masks) through counter-based streams (random.h), so the same config, data
// and seed give bit-identical weights.
//
// Threads (TrainConfig::blas_threads; 0 keeps OpenBLAS's default:
// OPENBLAS_NUM_THREADS, else all cores):
// - A network of dense layers only runs its products in that many OpenBLAS
//   threads. For a fixed thread count OpenBLAS's sgemm is deterministic, but
//   its summation order over a long k dimension depends on the thread count
//   (measured with OpenBLAS 0.3.21: 1 and 2 threads differ in the last bits
//   of most outputs of a 100 x 1200 x 784 product). So its weights are
//   bit-identical for the same seed, data, config and thread count (and
//   OpenBLAS build and CPU kind); the count is recorded in the weight manifest.
// - A network with a conv layer splits every batch into pieces of a few
//   samples, fixed by the batch alone, run by a oneTBB arena of that many
//   threads; each piece's products are single-threaded OpenBLAS (the dense
//   layers' too) and the pieces' gradients are summed in piece order. Its
//   weights are bit-identical for the same seed, data and config whatever the
//   thread count (OpenBLAS build and CPU kind still matter). OpenBLAS's own
//   threads would otherwise yield and spin on the first conv layer's thin
//   GEMMs (k = 25) while im2col and pooling ran on one core.
// Element-wise work (ReLU) is split in fixed pieces too; the rest runs
// single-threaded in a fixed order.
#pragma once

#include "snn/conversion/adam.h"
#include "snn/conversion/model.h"
#include "snn/network/dataset.h"
#include "snn/network/matrix.h"
#include "snn/network/weights.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace snn::conversion {

struct TrainConfig {
  NetworkSpec network;  ///< layers, output_relu, dropout (default: the seed's)
  std::size_t epochs = 15;
  std::size_t batch_size = 100;  ///< the last batch of an epoch holds the remainder, as torch's DataLoader
  AdamConfig adam;               ///< lr 1e-3, betas 0.9 / 0.999, eps 1e-8
  Init init = Init::Uniform;     ///< how initial weights are drawn (model.h)
  float init_range = 0.1f;       ///< Uniform: initial weights U(-init_range, init_range)
  std::uint64_t seed = 0;
  std::size_t train_samples = 0;  ///< train on the first n images of the training set (0: all)
  int blas_threads = 0;           ///< training threads: OpenBLAS's, or a conv net's oneTBB arena (0: OpenBLAS's setting)
  /// A checkpoint file (checkpoint.h) written atomically after every completed
  /// epoch; empty: none. train() never removes it: the caller does, once the
  /// result is stored (until then it can still resume a training that ended).
  std::filesystem::path checkpoint;
  /// Continue from `checkpoint` if that file exists: the training then ends
  /// bit-identical to one never interrupted. The checkpoint must come from the
  /// same training (training_fingerprint: network, settings, seed, data, BLAS
  /// threads), else snn::Error. Without `resume` an existing checkpoint is
  /// ignored and overwritten after the first epoch.
  bool resume = false;
};

/// One line per epoch.
struct EpochReport {
  std::size_t epoch = 0;  ///< 1-based
  std::size_t epochs = 0;
  double loss = 0.0;            ///< mean training loss over the epoch's samples
  double train_accuracy = 0.0;  ///< fraction of the epoch's training samples classified right in their (dropout) forward pass
  double seconds = 0.0;         ///< wall time since training started
};

/// Accuracy of a network on a labelled set.
struct Evaluation {
  std::size_t samples = 0;
  std::size_t correct = 0;
  double accuracy = 0.0;                     ///< correct / samples
  std::vector<std::size_t> predicted;        ///< per class: how many samples were predicted as it
  std::vector<std::size_t> never_predicted;  ///< classes that no sample was predicted as
};

/// Receives progress; every method has an empty default. Called from the
/// training thread.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  /// After each batch: epoch 1-based, batch 1-based of `batches`, that batch's loss.
  virtual void on_batch(std::size_t /*epoch*/, std::size_t /*batch*/, std::size_t /*batches*/, double /*loss*/) {}
  virtual void on_epoch(const EpochReport& /*report*/) {}
  /// The final test evaluation (only when a test set is given).
  virtual void on_test(const Evaluation& /*test*/) {}
  /// Something the user should know (e.g. a class that is never predicted).
  virtual void on_warning(const std::string& /*message*/) {}
  /// Training continues from a checkpoint after `epochs_done` of `epochs`
  /// (called before any on_batch; the earlier epochs are not reported again).
  virtual void on_resume(std::size_t /*epochs_done*/, std::size_t /*epochs*/) {}
};

struct TrainResult {
  std::vector<Matrix> weights;             ///< dense [out, in] and conv [out_c, in_c * kh * kw] weights, input side first
  std::vector<std::vector<float>> biases;  ///< one per weight layer when the network has biases, else empty
  std::vector<EpochReport> epochs;
  std::optional<Evaluation> test;  ///< when a test set was given
  double seconds = 0.0;            ///< wall time of the epochs (not of the test evaluation)
  int blas_threads = 0;            ///< OpenBLAS threads used
};

/// Trains config.network on `train` and, if `test` is given, evaluates on it at
/// the end (with a warning for classes never predicted). Throws snn::Error if
/// the data does not fit the network (image size != inputs, labels >= outputs)
/// or the config is invalid. An exception from the observer (e.g. on an
/// interrupt) ends training; the checkpoint, if any, then holds the last
/// completed epoch.
TrainResult train(const TrainConfig& config, const Dataset& train, const Dataset* test = nullptr,
                  TrainObserver* observer = nullptr);

/// evaluate()'s batch size: a share of the test images that starts at a
/// multiple of it is computed batch for batch as the whole-set pass computes it.
inline constexpr std::size_t kEvaluationBatch = 500;

/// The ANN's accuracy on `data` (first `samples` images, 0: all), without
/// dropout, in batches of `batch_size`. output_relu as the network was trained
/// (it changes only ties: ReLU'd outputs that are all 0 predict class 0).
Evaluation evaluate(const std::vector<Matrix>& weights, const Dataset& data, bool output_relu = true, std::size_t samples = 0,
                    std::size_t batch_size = kEvaluationBatch);
/// The same for any architecture: a weight set (spec_for(weights, output_relu)).
Evaluation evaluate(const WeightSet& weights, const Dataset& data, bool output_relu = true, std::size_t samples = 0,
                    std::size_t batch_size = kEvaluationBatch);
/// The same for a built model (its weights as they are; dropout off).
Evaluation evaluate(Model& model, const Dataset& data, std::size_t samples = 0, std::size_t batch_size = kEvaluationBatch);
/// The counts (samples, correct, predicted) of images [first, first + count)
/// of `data`, in batches of kEvaluationBatch from `first`; accuracy and
/// never_predicted are left to finish_evaluation() once shares are summed.
Evaluation evaluate_range(const WeightSet& weights, const Dataset& data, bool output_relu, std::size_t first, std::size_t count);
/// Sets accuracy and never_predicted from samples, correct and predicted.
void finish_evaluation(Evaluation& eval);

/// Warnings for an evaluation: one line naming every class never predicted
/// (possibly dead output units). Empty when every class is predicted at least once.
std::vector<std::string> prediction_warnings(const Evaluation& eval, bool output_relu);

/// Runs the network without dropout over the first `samples` images of `data`
/// (0: all) in batches and calls visit(l, a) for each weight layer l with its
/// activations a = ReLU(output of layer l), shape [batch, out_l] (ReLU also on
/// the output layer: a spiking neuron's rate is never negative). Used by the
/// data-based and robust normalisations.
void for_each_activation(const std::vector<Matrix>& weights, const Dataset& data, std::size_t samples,
                         const std::function<void(std::size_t layer, const Matrix& activations)>& visit,
                         std::size_t batch_size = 500);
/// The same for any architecture: visit(s, a) for each spiking layer s (dense,
/// conv, avgpool in order; Model::activation), a = [batch, output size], ReLU'd
/// (an avgpool's output is already non-negative).
void for_each_activation(const WeightSet& weights, const Dataset& data, std::size_t samples,
                         const std::function<void(std::size_t layer, const Matrix& activations)>& visit,
                         std::size_t batch_size = 500);
/// The same over images [first, first + count) (clipped to the set; 0: none), in
/// batches starting at `first`. A batch's activations do not depend on what
/// other batches exist, so with `first` a multiple of batch_size every batch
/// is one the whole-set pass computes too, bit for bit (the sharded
/// normalisation relies on it).
void for_each_activation_in(const WeightSet& weights, const Dataset& data, std::size_t first, std::size_t count,
                            const std::function<void(std::size_t layer, const Matrix& activations)>& visit,
                            std::size_t batch_size = 500);

/// Fills `batch` ([count, image_size]) with images order[first, first+count) as
/// floats in [0, 1] (pixel_value).
void gather_batch(const Dataset& data, const std::vector<std::uint32_t>& order, std::size_t first, std::size_t count,
                  Matrix& batch);

/// A weight set recording how the result was trained (names from the spec,
/// the input shape and, for a network other than a plain dense chain, the
/// architecture; biases if any; normalisation none, ANN test accuracy if
/// evaluated, seed, settings).
WeightSet to_weight_set(const TrainConfig& config, const TrainResult& result, const std::string& dataset_name,
                        std::size_t train_samples);

}  // namespace snn::conversion
