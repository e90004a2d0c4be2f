#include "snn/network/layer_spec.h"

#include "snn/error.h"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace snn {

namespace {

constexpr std::array<std::pair<LayerKind, std::string_view>, 4> kKindNames{{
    {LayerKind::Dense, "dense"},
    {LayerKind::Conv, "conv"},
    {LayerKind::AvgPool, "avgpool"},
    {LayerKind::Flatten, "flatten"},
}};

std::string window_text(std::size_t h, std::size_t w) { return fmt::format("{}x{}", h, w); }

// One spatial axis of a conv or pool window: the output length, or an error
// naming the axis. Exact tiling is required so that no input row is silently
// dropped.
std::size_t window_axis(const LayerSpec& layer, std::size_t index, std::size_t in, std::size_t kernel, std::size_t stride,
                        std::size_t pad, const Shape& input) {
  const std::size_t padded = in + 2 * pad;
  if (kernel > padded) {
    throw Error("layer {} '{}' needs at least {} input{}, gets {}x{}", index, describe(layer),
                window_text(layer.kernel_h, layer.kernel_w), pad ? fmt::format(" (with padding {})", pad) : "", input.height,
                input.width);
  }
  if ((padded - kernel) % stride != 0) {
    throw Error(
        "layer {} '{}' does not tile its {}x{} input: (size{} - kernel) = {} is not a multiple of the stride {} "
        "(snnsim drops no edge rows or columns; pad or crop the input, or choose a size that divides)",
        index, describe(layer), input.height, input.width, pad ? " + 2 padding" : "", padded - kernel, stride);
  }
  return (padded - kernel) / stride + 1;
}

void check_window(const LayerSpec& layer, std::size_t index) {
  if (layer.kernel_h == 0 || layer.kernel_w == 0) {
    throw Error("layer {} '{}': the {} size must be at least 1", index, describe(layer),
                layer.kind == LayerKind::Conv ? "kernel" : "window");
  }
  if (layer.stride_h == 0 || layer.stride_w == 0) {
    throw Error("layer {} '{}': the stride must be at least 1", index, describe(layer));
  }
}

}  // namespace

std::string to_string(const Shape& shape) {
  if (shape.flat()) return fmt::format("{}", shape.channels);
  return fmt::format("{}x{}x{}", shape.channels, shape.height, shape.width);
}

std::string_view to_string(LayerKind kind) {
  for (const auto& [k, name] : kKindNames) {
    if (k == kind) return name;
  }
  return "?";
}

LayerKind parse_layer_kind(std::string_view text) {
  for (const auto& [k, name] : kKindNames) {
    if (name == text) return k;
  }
  throw Error("unknown layer kind '{}' (choose dense, conv, avgpool or flatten)", text);
}

LayerSpec LayerSpec::dense(std::size_t neurons, std::string name) {
  LayerSpec s;
  s.kind = LayerKind::Dense;
  s.outputs = neurons;
  s.name = std::move(name);
  return s;
}

LayerSpec LayerSpec::conv(std::size_t channels, std::size_t kernel, std::size_t stride, std::size_t padding, std::string name) {
  LayerSpec s;
  s.kind = LayerKind::Conv;
  s.outputs = channels;
  s.kernel_h = s.kernel_w = kernel;
  s.stride_h = s.stride_w = stride;
  s.pad_h = s.pad_w = padding;
  s.name = std::move(name);
  return s;
}

LayerSpec LayerSpec::avgpool(std::size_t window, std::string name) {
  LayerSpec s;
  s.kind = LayerKind::AvgPool;
  s.kernel_h = s.kernel_w = window;
  s.stride_h = s.stride_w = window;
  s.name = std::move(name);
  return s;
}

LayerSpec LayerSpec::flatten(std::string name) {
  LayerSpec s;
  s.kind = LayerKind::Flatten;
  s.name = std::move(name);
  return s;
}

std::string describe(const LayerSpec& layer) {
  const auto stride_pad = [&](bool with_pad) {
    std::string out;
    if (layer.stride_h != layer.stride_w) {
      out += fmt::format(" stride {}x{}", layer.stride_h, layer.stride_w);
    } else if ((layer.kind == LayerKind::Conv && layer.stride_h != 1) ||
               (layer.kind == LayerKind::AvgPool && layer.stride_h != layer.kernel_h)) {
      out += fmt::format(" stride {}", layer.stride_h);
    }
    if (with_pad && (layer.pad_h || layer.pad_w)) {
      out +=
          layer.pad_h == layer.pad_w ? fmt::format(" pad {}", layer.pad_h) : fmt::format(" pad {}x{}", layer.pad_h, layer.pad_w);
    }
    return out;
  };
  switch (layer.kind) {
    case LayerKind::Dense: return fmt::format("dense {}", layer.outputs);
    case LayerKind::Conv:
      return fmt::format("conv {} {}{}", layer.outputs, window_text(layer.kernel_h, layer.kernel_w), stride_pad(true));
    case LayerKind::AvgPool: {
      const bool square_default =
          layer.kernel_h == layer.kernel_w && layer.stride_h == layer.kernel_h && layer.stride_w == layer.kernel_w;
      if (square_default) return fmt::format("avgpool {}", layer.kernel_h);
      return fmt::format("avgpool {}{}", window_text(layer.kernel_h, layer.kernel_w), stride_pad(false));
    }
    case LayerKind::Flatten: return "flatten";
  }
  return "?";
}

Shape output_shape(const LayerSpec& layer, const Shape& input, std::size_t index) {
  switch (layer.kind) {
    case LayerKind::Dense:
      if (layer.outputs == 0) throw Error("layer {} '{}': a dense layer needs at least 1 neuron", index, describe(layer));
      return Shape{layer.outputs, 1, 1};
    case LayerKind::Flatten: return Shape{input.size(), 1, 1};
    case LayerKind::Conv:
    case LayerKind::AvgPool: break;
  }
  const bool conv = layer.kind == LayerKind::Conv;
  if (conv && layer.outputs == 0) {
    throw Error("layer {} '{}': a convolution needs at least 1 output channel", index, describe(layer));
  }
  check_window(layer, index);
  if (input.flat() && (layer.kernel_h > 1 || layer.kernel_w > 1)) {
    throw Error(
        "layer {} '{}' needs a channels x height x width input, gets a flat vector of {} (put it before "
        "the first dense or flatten layer)",
        index, describe(layer), input.channels);
  }
  if (!conv && (layer.pad_h || layer.pad_w)) {
    throw Error("layer {} '{}': average pooling takes no padding", index, describe(layer));
  }
  const std::size_t h = window_axis(layer, index, input.height, layer.kernel_h, layer.stride_h, layer.pad_h, input);
  const std::size_t w = window_axis(layer, index, input.width, layer.kernel_w, layer.stride_w, layer.pad_w, input);
  return Shape{conv ? layer.outputs : input.channels, h, w};
}

std::vector<Shape> infer_shapes(const Shape& input, std::span<const LayerSpec> layers) {
  if (layers.empty()) throw Error("the network has no layers");
  if (input.size() == 0) throw Error("the network's input shape {} has a zero size", to_string(input));
  std::vector<Shape> shapes;
  shapes.reserve(layers.size());
  Shape in = input;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    in = output_shape(layers[i], in, i + 1);
    shapes.push_back(in);
  }
  return shapes;
}

std::vector<std::size_t> weight_shape(const LayerSpec& layer, const Shape& input) {
  switch (layer.kind) {
    case LayerKind::Dense: return {layer.outputs, input.size()};
    case LayerKind::Conv: return {layer.outputs, input.channels, layer.kernel_h, layer.kernel_w};
    case LayerKind::AvgPool:
    case LayerKind::Flatten: return {};
  }
  return {};
}

std::vector<LayerSpec> dense_stack(std::span<const std::size_t> widths) {
  std::vector<LayerSpec> layers;
  layers.reserve(widths.size());
  for (std::size_t w : widths) layers.push_back(LayerSpec::dense(w));
  return layers;
}

}  // namespace snn
