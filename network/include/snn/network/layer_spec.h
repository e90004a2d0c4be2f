// A feed-forward network's architecture as data: a list of layer specs applied
// in order to one sample's activations, shared by the config (tools/), the
// trainer and normalisation (conversion/), the model importers and the engine's
// network builder. Shapes follow torch: a sample is channels x height x width
// (CHW, row-major), a flat vector is {n, 1, 1}, and flattening keeps CHW order
// (torch.flatten), so a dense layer after a convolution sees the same feature
// order as torch's.
//
// Spiking layers: dense, conv and avgpool each become a population of
// integrate-and-fire neurons (an average pool is a layer of neurons whose
// incoming weights are 1/(kh*kw), Diehl et al. 2015); flatten only reinterprets
// the shape and adds no population.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace snn {

/// One sample's activation shape, torch's CHW order.
struct Shape {
  std::size_t channels = 0;
  std::size_t height = 1;
  std::size_t width = 1;
  std::size_t size() const { return channels * height * width; }
  /// True for {n, 1, 1}: a plain vector (what dense layers produce).
  bool flat() const { return height == 1 && width == 1; }
  bool operator==(const Shape&) const = default;
};
/// "784" for a flat shape, else "12x24x24" (channels x height x width).
std::string to_string(const Shape& shape);

enum class LayerKind {
  Dense,    ///< fully connected; any input shape, read flat in CHW order
  Conv,     ///< 2-D convolution, zero padding, no dilation, one group
  AvgPool,  ///< average pooling over kernel_h x kernel_w windows, no padding
  Flatten,  ///< CxHxW -> C*H*W, no neurons
};
/// "dense", "conv", "avgpool", "flatten".
std::string_view to_string(LayerKind kind);
/// Inverse of to_string; throws snn::Error naming the value and the choices.
LayerKind parse_layer_kind(std::string_view text);

struct LayerSpec {
  LayerKind kind = LayerKind::Dense;
  /// Dense: neurons; conv: output channels; unused (0) for avgpool and flatten.
  std::size_t outputs = 0;
  /// Conv: kernel; avgpool: window. Unused (0) for dense and flatten.
  std::size_t kernel_h = 0;
  std::size_t kernel_w = 0;
  /// Conv and avgpool: step between windows (>= 1). An avgpool's stride is
  /// normally its window (Diehl et al.'s 2x2, stride 2).
  std::size_t stride_h = 1;
  std::size_t stride_w = 1;
  /// Conv only: zero rows/columns added on each side.
  std::size_t pad_h = 0;
  std::size_t pad_w = 0;
  /// e.g. "conv1"; names the weight file. Empty: "layer<i>".
  std::string name;

  /// Dense or conv: the layers that hold trained weights.
  bool has_weights() const { return kind == LayerKind::Dense || kind == LayerKind::Conv; }
  /// Dense, conv or avgpool: the layers that become a population of neurons.
  bool spiking() const { return kind != LayerKind::Flatten; }

  static LayerSpec dense(std::size_t neurons, std::string name = {});
  static LayerSpec conv(std::size_t channels, std::size_t kernel, std::size_t stride = 1, std::size_t padding = 0,
                        std::string name = {});
  static LayerSpec avgpool(std::size_t window, std::string name = {});
  static LayerSpec flatten(std::string name = {});
  bool operator==(const LayerSpec&) const = default;
};

/// How the layer reads in messages and tables: "dense 10", "conv 64 5x5",
/// "conv 32 3x3 stride 2 pad 1", "avgpool 2", "avgpool 3x3 stride 2", "flatten".
std::string describe(const LayerSpec& layer);

/// Shape after `layer` given its input shape. `index` is the layer's 1-based
/// position, used in messages. Throws snn::Error naming the layer, its
/// description and the shapes, e.g. "layer 3 'conv 64 5x5' needs at least 5x5
/// input, gets 4x4", for: zero sizes, a kernel larger than the padded input,
/// a stride that does not tile the (padded) input exactly ((in + 2 pad -
/// kernel) must be a multiple of stride: snnsim drops no edge rows, unlike
/// torch's floor mode), and a conv after a flat input.
Shape output_shape(const LayerSpec& layer, const Shape& input, std::size_t index);

/// Output shape of every layer in order (result[i] is layer i's output).
/// Throws as output_shape does for the first layer at fault; also if `layers`
/// is empty or `input` has a zero size.
std::vector<Shape> infer_shapes(const Shape& input, std::span<const LayerSpec> layers);

/// Shape of the trained weight tensor of a dense or conv layer given its input
/// shape: dense [out, in.size()] (torch.nn.Linear.weight), conv
/// [out_channels, in.channels, kernel_h, kernel_w] (torch.nn.Conv2d.weight).
/// Stored as a Matrix, a conv kernel is [out_channels, in.channels * kh * kw]
/// (torch's weight.view(out, -1), the im2col GEMM layout). Empty for layers
/// without weights.
std::vector<std::size_t> weight_shape(const LayerSpec& layer, const Shape& input);

/// The plain MLP: one dense layer per width, in order.
std::vector<LayerSpec> dense_stack(std::span<const std::size_t> widths);

}  // namespace snn
