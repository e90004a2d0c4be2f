// The ANN weights a config asks for: given (network.weights), found in the
// weight cache, or trained now and stored there. The cache is a directory per
// key under output.cache; the key is a hash of the training data's bytes and of
// every setting that changes the trained weights, so changing only simulation
// or normalisation settings never retrains.
#pragma once

#include "snn/network/dataset.h"
#include "snn/network/weights.h"
#include "snn/tool/commands.h"
#include "snn/tool/config.h"

#include <filesystem>
#include <string>

namespace snn::tool {

/// The network `config` describes on images of `train`'s size: network.layers
/// (input 1 x rows x cols; layers without a name get one by kind: conv1, pool1,
/// flatten1, fc1, ...), or the MLP of network.hidden (flat input, fc1, fc2,
/// ...); with the training section's output ReLU, dropout, its placement and
/// bias. Throws snn::Error naming the layer and shapes if the layers do not fit
/// the images.
conversion::NetworkSpec network_spec(const Config& config, const Dataset& train);

/// Throws snn::Error unless `weights` (loaded from `source`) have the
/// architecture network.layers describes, layer by layer (kind, sizes, input
/// shape: 1 x data's rows x cols; names aside), naming the first layer that
/// differs. Nothing to check
/// without network.layers.
void check_weights_fit_layers(const Config& config, const WeightSet& weights, const std::string& source, const Dataset& data);

/// Where trained weights for `config` are cached: <output.cache>/<name>-<key>.
std::filesystem::path weight_cache_dir(const Config& config, const Dataset& train);

/// The training checkpoint's name inside a cache entry (see ann_weights).
inline constexpr const char* kCheckpointFile = "training.ckpt";

/// OpenBLAS threads training always uses, whatever --threads says: sgemm's
/// summation order (so the weights' last bits) depends on it. (The activation
/// passes, normalisation and ANN accuracy, use one per batch: mpi.h.)
int training_blas_threads();

/// ANN weights and where they came from.
struct AnnWeights {
  WeightSet weights;
  bool cached = false;  ///< true when training was skipped thanks to the cache
  std::string source;   ///< network.model, network.weights, or the cache entry's directory
  /// "onnx" (network.model), "weights" (network.weights) or "trained" (by snnsim, now or cached).
  std::string kind;
  /// Whether the ANN applies ReLU to its outputs (training.output_relu; an
  /// imported model's own last layer): the ANN accuracy is computed so.
  bool output_relu = true;
};

/// The ANN of an ONNX file (network.model) as a weight set, checked against
/// the dataset: its input shape must be the images' (1 x rows x cols, or
/// rows * cols flat) and its outputs dataset.classes. Throws snn::Error naming
/// the file and both shapes.
AnnWeights model_weights(const Config& config, const DatasetSplits& data);

/// The ANN weights of `config`: network.model or network.weights if given, else the cache entry,
/// else trained now (and cached). While training, the cache entry holds a
/// checkpoint (kCheckpointFile) of the last completed epoch, removed once the
/// weights are saved; options.resume continues from it.
AnnWeights ann_weights(const Config& config, const DatasetSplits& data, const CommonOptions& options);

}  // namespace snn::tool
