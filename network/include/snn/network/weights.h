// A trained (and possibly normalised) feed-forward network's weights on disk: a
// directory holding one .npy file per layer (float32, C order, shape [out, in],
// as torch.nn.Linear.weight) and a JSON manifest, `manifest.json`, that lists
// the layers and records how the weights were made. docs/weights.md has the
// schema with examples, including how to export from PyTorch.
//
// Manifest schema (JSON object; keys not listed here are rejected so that a
// misspelt key is an error, not a silently ignored setting):
//
//   "format":  "snnsim-weights"           optional; if present must be exactly this
//   "version": 1                          optional; if present must be 1
//   "input":   [1, 28, 28]                optional; [features] or [channels, height, width]
//   "layers":  [ {                        required, non-empty, input side first
//       "kind":  "dense",                 optional; "dense" (default), "conv", "avgpool", "flatten"
//       "file":  "fc1.npy",               dense/conv: required; a plain file name in the directory
//       "shape": [1200, 784],             optional; dense [out, in], conv [out, in_c, kh, kw], as in the .npy
//       "bias":  "fc1.bias.npy",          optional; dense/conv: a 1-D [out] file
//       "stride": 1, "padding": 0,        conv: n or [h, w] (defaults 1, 0); avgpool: stride (default kernel)
//       "kernel": 2,                      avgpool: required window, n or [h, w]; conv: optional check
//       "name":  "fc1",                   optional; default "layer<i>"
//     }, ... ]
//   "normalisation": {                    optional; default method "none"
//       "method":  "none" | "model" | "data" | "robust",
//       "factors": [24.02, 38.94],        the divisors applied: layer i's weights were
//                                         divided by factors[i]; may be shorter than
//                                         "layers" (model-based leaves the last layer)
//       "samples": 8004,                  data/robust: training images the activations came from
//       "percentile": 99.9                robust: the percentile used
//     }
//   "ann_test_accuracy": 0.9694           optional; fraction in [0, 1] of the ANN (before normalisation)
//   "seed": 1                             optional; the training seed, a non-negative integer
//   "training": { "dataset": "mnist10k", "train_samples": 8004, "epochs": 15,
//       "batch_size": 100, "optimiser": "adam", "learning_rate": 0.001, "beta1": 0.9,
//       "beta2": 0.999, "epsilon": 1e-8, "dropout": 0.5, "init_range": 0.1,
//       "output_relu": true, "seconds": 12.3, "blas_threads": 2 }   optional; every key in it optional
//
// Loading validates the manifest (types, ranges, unknown keys), that the
// shapes chain from the input (infer_shapes; a dense layer's in equals what
// the layers before produce), and each .npy against its manifest shape and
// the shape its layer needs (and everything read_npy checks; an [in, out]
// array gets a hint to transpose); weights must be finite. Any fault is snn::Error
// naming the file and the expected and found value.
#pragma once

#include "snn/network/layer_spec.h"
#include "snn/network/matrix.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace snn {

/// How a weight set was scaled for the spiking network (Diehl et al. 2015;
/// robust: Rueckauer et al. 2017).
enum class Normalisation { None, Model, Data, Robust };

/// "none", "model", "data", "robust".
std::string_view to_string(Normalisation method);
/// Inverse of to_string; throws snn::Error naming the value and the choices.
Normalisation parse_normalisation(std::string_view text);

struct NormalisationRecord {
  Normalisation method = Normalisation::None;
  /// factors[i]: the divisor applied to spiking layer i (the dense, conv and
  /// avgpool layers in order; flatten has none; for a dense chain, layer i):
  /// a dense/conv layer's weights W /= factors[i]; an avgpool layer's
  /// connections all weigh 1/(kh*kw)/factors[i] (Diehl's normalisation leaves
  /// it 1). At most one per spiking layer; missing trailing entries mean
  /// layers left unscaled. Biases, if any, were divided by the product of the
  /// factors up to their layer (Rueckauer et al. 2017).
  std::vector<double> factors;
  std::size_t samples = 0;  ///< data/robust: number of training images whose activations were used
  double percentile = 0.0;  ///< robust: the percentile (e.g. 99.9); 0 otherwise
  bool operator==(const NormalisationRecord&) const = default;
};

/// How the ANN was trained (informational: loading does not need it).
/// Where weights were trained: OpenBLAS picks its sgemm kernels by CPU model,
/// and different kernels round differently, so the same seed trains to
/// slightly different weights on another CPU (see README, Reproducibility).
struct MachineRecord {
  std::string cpu;            ///< /proc/cpuinfo's model name, family, model and stepping
  std::string blas_core;      ///< openblas_get_corename(): the kernels used, e.g. "Haswell"
  std::string blas_config;    ///< openblas_get_config()
  std::string blas_coretype;  ///< $OPENBLAS_CORETYPE when training ("" if unset)
  bool operator==(const MachineRecord&) const = default;
};

struct TrainingRecord {
  std::string dataset;            ///< e.g. "mnist10k"
  std::size_t train_samples = 0;  ///< training images used
  std::size_t epochs = 0;
  std::size_t batch_size = 0;
  std::string optimiser;  ///< e.g. "adam"
  double learning_rate = 0.0;
  double beta1 = 0.0;
  double beta2 = 0.0;
  double epsilon = 0.0;
  double dropout = 0.0;     ///< drop probability after each hidden layer
  std::string init;         ///< "uniform", "kaiming_uniform"; empty: not recorded (uniform)
  double init_range = 0.0;  ///< uniform init: weights initialised U(-init_range, init_range)
  bool output_relu = true;  ///< ReLU applied to the output layer during training
  double seconds = 0.0;     ///< wall time of training
  /// OpenBLAS threads used: the trainer's weights are bit-reproducible only for
  /// the same count (see conversion/trainer.h). 0: not recorded.
  std::size_t blas_threads = 0;
  std::optional<MachineRecord> machine;  ///< not recorded by older manifests
  bool operator==(const TrainingRecord&) const = default;
};

struct WeightSet {
  /// The weights of each dense or conv layer, input side first: dense
  /// [out, in] (torch.nn.Linear.weight), conv [out_c, in_c * kh * kw]
  /// (torch.nn.Conv2d.weight.view(out_c, -1)). Without an architecture every
  /// layer is dense and in_i == out_{i-1}; layer 0 reads the input.
  std::vector<Matrix> layers;
  /// One sample's input shape (CHW). Default (size 0): flat, layer 0's in.
  Shape input{0, 1, 1};
  /// The whole layer list including avgpool and flatten layers; its dense and
  /// conv entries correspond in order to `layers`. Empty: the dense chain of
  /// `layers`.
  std::vector<LayerSpec> architecture;
  /// Empty (no biases), or one vector per entry of `layers`: that layer's bias,
  /// one value per output neuron/channel, or empty for a layer without one.
  std::vector<std::vector<float>> biases;
  /// Per-layer names and .npy file names (plain names inside the directory).
  /// Either may be left empty when saving: defaults "layer<i>" and "<name>.npy".
  std::vector<std::string> names;
  std::vector<std::string> files;
  NormalisationRecord normalisation;
  std::optional<double> ann_test_accuracy;  ///< fraction in [0, 1]
  std::optional<std::uint64_t> seed;
  std::optional<TrainingRecord> training;

  /// Features per input sample and output neurons.
  std::size_t inputs() const { return input.size() != 0 ? input.size() : layers.empty() ? 0 : layers.front().cols; }
  std::size_t outputs() const;
  /// The input shape (flat layer 0's in when `input` is unset).
  Shape input_shape() const { return input.size() != 0 ? input : Shape{inputs(), 1, 1}; }
  /// The architecture (`architecture`, or the dense chain of `layers` named by `names`).
  std::vector<LayerSpec> layer_specs() const;
  /// True if some layer has a non-empty bias.
  bool has_bias() const;
  bool operator==(const WeightSet&) const = default;
};

/// The manifest's file name inside a weight directory.
inline constexpr std::string_view kManifestFile = "manifest.json";

/// Writes `weights` into directory `dir` (created if missing): each layer's
/// .npy, then the manifest last, each file atomically (write_file_atomically),
/// so a reader never finds a manifest naming files not yet written. A manifest
/// already in `dir` is removed first: a save that fails or is killed halfway
/// through overwriting a set leaves no manifest, never an old manifest over a
/// mix of old and new layer files. Fills in
/// default names/files. Throws snn::Error if the set is inconsistent (broken
/// chain, non-finite values, duplicate or unsafe file names).
void save_weights(const std::filesystem::path& dir, const WeightSet& weights);

/// Reads a weight directory (or its manifest file directly), validating
/// everything listed at the top of this header. The result compares equal to
/// the WeightSet that save_weights wrote (names and files filled in).
WeightSet load_weights(const std::filesystem::path& dir_or_manifest);

/// Throws snn::Error unless `weights` is consistent, as save_weights checks:
/// the architecture's shapes chain from the input, each matrix and bias has
/// the shape its layer needs, and values are finite. `what` names the source.
void validate_weight_set(const WeightSet& weights, std::string_view what);

/// Throws snn::Error unless layer shapes chain (in_i == out_{i-1}), there is at
/// least one layer, every matrix's data size matches rows * cols, and every
/// weight is finite. `what` names the source in messages.
void validate_layers(const std::vector<Matrix>& layers, std::string_view what);

}  // namespace snn
