// The data model of a feed-forward spiking network: populations of
// integrate-and-fire neurons joined, each to the next, by connections that hold
// fan-out tables. No simulation here: engine/ quantises and runs what this
// describes.
//
// Population 0 is the input (its neurons are the encoder's channels and have
// no neuron parameters); population p >= 1 receives exactly one connection,
// connection p - 1, from population p - 1. Weights are in model units: the
// trained ANN's float weights after normalisation, compared against the
// target population's threshold theta.
#pragma once

#include "snn/network/layer_spec.h"
#include "snn/network/matrix.h"
#include "snn/types.h"

#include <boost/container/vector.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace snn {

/// What a neuron's potential becomes after it spikes.
enum class ResetMode {
  Subtract,  ///< v -= theta (the default; snntorch's Leaky, keeps the residue)
  Zero,      ///< v = 0 (Diehl et al.'s own code)
};
/// "subtract", "zero".
std::string_view to_string(ResetMode mode);
/// Inverse of to_string; throws snn::Error naming the value and the choices.
ResetMode parse_reset_mode(std::string_view text);

/// Parameters shared by every neuron of a population.
struct NeuronParams {
  /// Firing threshold theta in model units (> 0, finite). A neuron spikes at a
  /// step when its potential is strictly greater than theta.
  double threshold = 1.0;
  ResetMode reset = ResetMode::Subtract;
  /// Leak factor in (0, 1], applied to the potential once per step before the
  /// step's input is integrated; 1 is pure integrate-and-fire (the seed's).
  double beta = 1.0;
  /// Steps after a spike during which the neuron neither integrates nor fires
  /// (its potential is held); >= 0, 0 = none.
  Step refractory = 0;
  bool operator==(const NeuronParams&) const = default;
};

/// Fully connected fan-out table: row s holds source s's weights to every
/// target, contiguous (the transpose of torch's [out, in] layout), so
/// delivering a spike of s is one flat vector add and target ids are implicit.
struct DenseFanOut {
  std::size_t sources = 0;
  std::size_t targets = 0;
  std::vector<Weight> weights;  ///< sources * targets, row-major by source
  const Weight* row(std::size_t source) const { return weights.data() + source * targets; }
};

/// Compressed sparse rows: source s's synapses are entries offsets[s] ..
/// offsets[s + 1] - 1 of target_ids / weights, sorted by target id.
/// boost::container::vector because it can be sized with default_init: the
/// arrays are sized once and then filled, so zeroing them first is wasted work.
struct SparseFanOut {
  template <typename T>
  using Array = boost::container::vector<T>;
  std::size_t sources = 0;
  std::size_t targets = 0;
  Array<std::uint64_t> offsets;  ///< sources + 1 entries, offsets[0] == 0
  Array<NeuronId> target_ids;    ///< offsets[sources] entries
  Array<Weight> weights;         ///< offsets[sources] entries
  std::size_t row_size(std::size_t source) const { return offsets[source + 1] - offsets[source]; }
};

/// Geometry of a convolution or pooling connection: source (c, y, x) of
/// `input` reaches target (o, oy, ox) of `output` through kernel tap (ky, kx)
/// when y = oy * stride_h - pad_h + ky and x = ox * stride_w - pad_w + kx.
/// Neurons are numbered in CHW order (torch's), id = (c * height + y) * width + x.
struct WindowGeometry {
  Shape input;
  Shape output;
  std::size_t kernel_h = 1, kernel_w = 1;
  std::size_t stride_h = 1, stride_w = 1;
  std::size_t pad_h = 0, pad_w = 0;
  /// Output rows [first, last] whose window covers input row y (empty if first > last).
  std::pair<std::size_t, std::size_t> rows_of(std::size_t y) const {
    return axis_range(y, kernel_h, stride_h, pad_h, output.height);
  }
  std::pair<std::size_t, std::size_t> cols_of(std::size_t x) const {
    return axis_range(x, kernel_w, stride_w, pad_w, output.width);
  }
  /// Output positions (oy, ox) whose window covers input position (y, x).
  std::size_t positions_of(std::size_t y, std::size_t x) const;
  bool operator==(const WindowGeometry&) const = default;

 private:
  // Outputs o with o * stride - pad <= i <= o * stride - pad + kernel - 1.
  static std::pair<std::size_t, std::size_t> axis_range(std::size_t i, std::size_t kernel, std::size_t stride, std::size_t pad,
                                                        std::size_t out) {
    const std::size_t ip = i + pad;  // position in the padded input
    const std::size_t hi = std::min(ip / stride, out - 1);
    const std::size_t lo = ip + 1 >= kernel ? (ip + 1 - kernel + stride - 1) / stride : 0;
    return {lo, hi};
  }
};

/// Convolution: fan-out generated from the kernel at delivery time, never
/// expanded into a table; memory O(kernel). `weights` is torch's
/// Conv2d.weight.view(out_channels, -1): [out_channels, in_channels * kh * kw],
/// column (c * kh + ky) * kw + kx. Zero padding.
struct ConvFanOut {
  WindowGeometry geometry;
  Matrix weights;
};

/// Average pooling: target (c, oy, ox) receives from every source of its
/// window in channel c with the same weight `weight` (model units): 1 / (kh *
/// kw) times a scale normalisation may set. No padding; memory O(1).
struct PoolFanOut {
  WindowGeometry geometry;
  Weight weight = 0.0f;
};

/// The kinds of connection (how fan-out is stored or generated).
enum class FanOutFormat {
  Dense,    ///< DenseFanOut: every source reaches every target
  Sparse,   ///< SparseFanOut: zero weights and |w| < cutoff are left out
  Conv,     ///< ConvFanOut: generated from the kernel
  AvgPool,  ///< PoolFanOut: generated from the window, one uniform weight
};
/// "dense", "sparse", "conv", "avgpool".
std::string_view to_string(FanOutFormat format);
/// Inverse of to_string for the formats a user chooses ("dense", "sparse");
/// throws snn::Error naming the value and the choices.
FanOutFormat parse_fan_out_format(std::string_view text);

/// One connection's table, whichever the kind.
using FanOutTable = std::variant<DenseFanOut, SparseFanOut, ConvFanOut, PoolFanOut>;

/// How to build one connection from its [out, in] weight matrix.
struct ConnectionSpec {
  FanOutFormat format = FanOutFormat::Dense;
  /// Sparse only: synapses with |w| < cutoff (model units, >= 0) are dropped;
  /// exact zeros are always dropped. Must be 0 for dense.
  double cutoff = 0.0;
  /// Steps between a source spike and its delivery (>= 0; 0: same step).
  Step delay = 0;
  /// Average pooling only: every weight is scale / (kh * kw) (model units;
  /// finite, > 0). Normalisation may change it; 1 is a plain average.
  double pool_scale = 1.0;
};

/// A population: `size` neurons with shared parameters (unused for population 0).
struct Population {
  std::string name;
  std::size_t size = 0;
  NeuronParams params;
  /// CHW shape of the neurons (size == shape.size()); {size, 1, 1} when flat.
  Shape shape;
  /// Per-neuron bias, model units: a constant current added at every step
  /// (Rueckauer et al. 2017), compared against theta like the weights. Empty:
  /// no biases (population 0 never has any).
  std::vector<Weight> bias;
};

/// Connection from population `source` to population `source + 1`.
class Connection {
 public:
  Connection(PopulationId source, std::size_t source_size, std::size_t target_size, Step delay, FanOutTable table);

  PopulationId source() const { return source_; }
  PopulationId target() const { return source_ + 1; }
  std::size_t source_size() const { return source_size_; }
  std::size_t target_size() const { return target_size_; }
  Step delay() const { return delay_; }
  FanOutFormat format() const { return static_cast<FanOutFormat>(table_.index()); }
  /// The table; throws snn::Error if the connection has another format.
  const DenseFanOut& dense() const;
  const SparseFanOut& sparse() const;
  const ConvFanOut& conv() const;
  const PoolFanOut& pool() const;
  const FanOutTable& table() const { return table_; }
  /// Synapses of source s: targets reached by one of its spikes (conv and
  /// pool: fewer at the edges, where windows leave the input).
  std::size_t fan_out(std::size_t source) const;
  /// Synapses of the model (sum of fan_out; dense: sources * targets).
  std::size_t synapses() const;
  /// Bytes the table holds (conv: the kernel; pool: nothing per neuron).
  std::size_t table_bytes() const;
  /// The weights as torch's [out, in] matrix (dropped synapses as 0; conv and
  /// pool expanded, so only for small layers: tests and the reference).
  Matrix to_matrix() const;

 private:
  PopulationId source_;
  std::size_t source_size_;
  std::size_t target_size_;
  Step delay_;
  FanOutTable table_;
};

/// A feed-forward stack: input population, then one population per weight
/// layer. Every constructor and add_layer validates and throws snn::Error
/// naming the layer and the value at fault.
class Network {
 public:
  /// A network with only an input population of `input_size` (> 0) channels.
  explicit Network(std::size_t input_size, std::string input_name = "input");
  /// An input population of shape `input` (CHW).
  explicit Network(const Shape& input, std::string input_name = "input");

  /// Appends population `populations().size()` of weights.rows neurons, fed
  /// from the current last population through `weights` ([out, in], in ==
  /// the last population's size; finite values). `name` defaults to
  /// "layer<p>". Returns the new population's id.
  PopulationId add_layer(const Matrix& weights, const NeuronParams& params, const ConnectionSpec& spec = {},
                         std::string name = {});

  /// The network of `layers` (layer i: [out_i, in_i], in_i == out_{i-1}).
  /// `params` and `specs` hold one entry per layer, or a single entry used for
  /// all (specs may also be empty: all defaults). `names` empty or one per layer.
  static Network from_matrices(const std::vector<Matrix>& layers, const std::vector<NeuronParams>& params,
                               const std::vector<ConnectionSpec>& specs = {}, const std::vector<std::string>& names = {});

  /// Sets the biases of population p >= 1: one finite value per neuron
  /// (model units), or empty for none. Throws snn::Error naming the population.
  void set_bias(PopulationId p, std::vector<Weight> bias);

  /// Appends a convolution (`layer.kind` == Conv) fed from the last
  /// population, whose shape must be CHW; `weights` is [out_channels,
  /// in_channels * kh * kw]. The new population has the output shape. Throws
  /// snn::Error naming the layer for any shape that does not fit.
  PopulationId add_conv(const LayerSpec& layer, const Matrix& weights, const NeuronParams& params,
                        const ConnectionSpec& spec = {}, std::string name = {});
  /// Appends an average pooling population (`layer.kind` == AvgPool), weight
  /// spec.pool_scale / (kh * kw).
  PopulationId add_pool(const LayerSpec& layer, const NeuronParams& params, const ConnectionSpec& spec = {},
                        std::string name = {});

  /// The network of `layers` applied to `input`: one population per spiking
  /// layer (flatten makes none, it only reshapes), one weight matrix per dense
  /// or conv layer in order (dense [out, in.size()], conv [out_channels,
  /// in_channels * kh * kw]). `params` and `specs` hold one entry per
  /// population / connection, or a single entry for all (specs may be empty).
  /// `biases`: empty, or one entry per population (each empty or one value
  /// per neuron, model units; see set_bias).
  /// Every shape is checked (infer_shapes, weight_shape); errors name the layer.
  static Network from_layers(const Shape& input, const std::vector<LayerSpec>& layers, const std::vector<Matrix>& weights,
                             const std::vector<NeuronParams>& params, const std::vector<ConnectionSpec>& specs = {},
                             const std::vector<std::vector<Weight>>& biases = {});

  const std::vector<Population>& populations() const { return populations_; }
  const std::vector<Connection>& connections() const { return connections_; }
  const Population& population(PopulationId p) const { return populations_.at(p); }
  /// Connection c feeds population c + 1.
  const Connection& connection(std::size_t c) const { return connections_.at(c); }
  std::size_t input_size() const { return populations_.front().size; }
  std::size_t output_size() const { return populations_.back().size; }
  /// Number of connections (= populations().size() - 1).
  std::size_t connection_count() const { return connections_.size(); }

 private:
  std::vector<Population> populations_;
  std::vector<Connection> connections_;
};

/// Throws snn::Error unless theta > 0 and finite, beta in (0, 1], refractory
/// >= 0. `what` names the population in the message.
void validate_neuron_params(const NeuronParams& params, std::string_view what);

/// Fan-out tables from an [out, in] matrix (validated: finite values).
/// make_conv_fan_out / make_pool_fan_out check `layer` against `input`
/// (output_shape) and the kernel's shape, naming layer `index` (1-based).
ConvFanOut make_conv_fan_out(const LayerSpec& layer, const Shape& input, const Matrix& weights, std::size_t index);
PoolFanOut make_pool_fan_out(const LayerSpec& layer, const Shape& input, double scale, std::size_t index);
DenseFanOut make_dense_fan_out(const Matrix& weights);
SparseFanOut make_sparse_fan_out(const Matrix& weights, double cutoff);

}  // namespace snn
