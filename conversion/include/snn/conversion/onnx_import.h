// Reads a trained ReLU network from an ONNX file (torch.onnx.export,
// tf2onnx, ...) into snnsim's data model: a chain of layer specs with their
// weights and biases. Parsing uses ONNX's own protobuf definitions (Debian's
// libonnx-dev); a build without them (SNNSIM_ONNX=OFF) still has this API, and
// import_onnx then throws snn::Error saying so.
//
// The graph must be a chain from its one input to its one output. Supported
// operators: Gemm, MatMul (+Add), Conv (2-D, dilation 1, group 1, symmetric
// pads), Relu, AveragePool (no padding), GlobalAveragePool, Flatten, Reshape
// to [batch, n], Pad with all-zero pads, BatchNormalization, Dropout and
// Identity (dropped), a trailing Softmax/LogSoftmax (dropped), and element-wise
// Add/Sub/Mul/Div by constants where they can be folded: on the input (input
// normalisation, folded into the first weighted layer's weights and bias) or
// directly after a Conv/Gemm/MatMul (folded into its weights and bias, as
// BatchNormalization is). Opsets 9 to 18; initializers inline or as Constant
// nodes. docs/models.md has the operator table and the reasons for refusals.
//
// Everything else is an snn::Error naming the file, the node (its name, or
// "#<index>" in graph order when unnamed), its op type and what to do.
#pragma once

#include "snn/network/layer_spec.h"
#include "snn/network/matrix.h"
#include "snn/network/weights.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace snn::conversion {

/// What the importer did with one ONNX node (graph order), for `snnsim info`.
struct OnnxNodeInfo {
  std::string name;     ///< the node's name, or "#<index>" when it has none
  std::string op_type;  ///< e.g. "Conv"
  /// e.g. "layer 1: conv 4 5x5", "folded into layer 1 (batch norm)",
  /// "dropped (no-op at inference)", "constant".
  std::string action;
  /// Index into OnnxModel::layers of the layer it became or was folded into
  /// (batch norm, bias, scaling); unset for constants, dropped nodes, ReLUs
  /// and input normalisation (which folds into the first weighted layer).
  std::optional<std::size_t> layer;
};

struct OnnxModel {
  std::filesystem::path file;
  std::int64_t opset = 0;  ///< default-domain opset the model declares
  std::string producer;    ///< e.g. "pytorch 1.13.0"; empty if not recorded
  Shape input;             ///< one sample (the batch axis is not part of it)
  /// In order; named conv1, pool1, flatten1, fc1, ... by kind (file-safe
  /// names for weight files); `nodes` maps ONNX nodes to them.
  std::vector<LayerSpec> layers;
  std::vector<Shape> shapes;  ///< infer_shapes(input, layers): shapes[i] is layer i's output
  /// One per layer with has_weights(), in order: dense [out, in]
  /// (torch.nn.Linear.weight), conv [out_channels, in_channels * kh * kw]
  /// (torch's weight.view(out, -1)). All folding already applied.
  std::vector<Matrix> weights;
  /// One per weighted layer, same order: `out` values (one per neuron or
  /// output channel), or empty when the layer has no bias.
  std::vector<std::vector<float>> biases;
  /// Whether the ANN applies ReLU after its last weighted layer too. Every
  /// other weighted layer is followed by ReLU (the importer refuses a missing
  /// one: spiking neurons rectify every layer), and average pools never are
  /// (they average rectified values, or the input).
  bool output_relu = false;
  std::vector<OnnxNodeInfo> nodes;

  /// Weights plus biases over all layers.
  std::size_t parameters() const;
  /// Weights plus bias of layer `layer` (0 for avgpool and flatten).
  std::size_t parameters(std::size_t layer) const;
  /// Index into weights/biases of layer `layer`, which must have weights.
  std::size_t weight_index(std::size_t layer) const;
};

/// True when this build can read ONNX files (CMake option SNNSIM_ONNX).
bool onnx_supported();

/// Reads and folds `file`. Throws snn::Error naming the file: cannot open,
/// not an ONNX model (garbage or truncated), or (naming the node and op type)
/// anything listed as refused in docs/models.md.
OnnxModel import_onnx(const std::filesystem::path& file);

/// The model as a weight set (input shape, architecture, weights, layer
/// names; biases unless no layer has one), unnormalised: what `network.model`
/// and Python's snnsim.from_onnx simulate. (output_relu is not part of a
/// weight set: evaluate the ANN with the model's.)
WeightSet to_weight_set(const OnnxModel& model);

/// The layer table `snnsim info net.onnx` prints: file, opset, producer,
/// input shape, then one line per layer (name, description, output shape,
/// parameters, bias or not) and the total; then the node table.
std::string describe(const OnnxModel& model);

}  // namespace snn::conversion
