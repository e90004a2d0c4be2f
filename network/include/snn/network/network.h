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

#include "snn/network/matrix.h"
#include "snn/types.h"

#include <boost/container/vector.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
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

enum class FanOutFormat {
  Dense,   ///< DenseFanOut: every source reaches every target
  Sparse,  ///< SparseFanOut: zero weights and |w| < cutoff are left out
};
/// "dense", "sparse".
std::string_view to_string(FanOutFormat format);
/// Inverse of to_string; throws snn::Error naming the value and the choices.
FanOutFormat parse_fan_out_format(std::string_view text);

/// How to build one connection from its [out, in] weight matrix.
struct ConnectionSpec {
  FanOutFormat format = FanOutFormat::Dense;
  /// Sparse only: synapses with |w| < cutoff (model units, >= 0) are dropped;
  /// exact zeros are always dropped. Must be 0 for dense.
  double cutoff = 0.0;
  /// Steps between a source spike and its delivery (>= 0; 0: same step).
  Step delay = 0;
};

/// A population: `size` neurons with shared parameters (unused for population 0).
struct Population {
  std::string name;
  std::size_t size = 0;
  NeuronParams params;
};

/// Connection from population `source` to population `source + 1`.
class Connection {
 public:
  Connection(PopulationId source, std::size_t source_size, std::size_t target_size, Step delay,
             std::variant<DenseFanOut, SparseFanOut> table);

  PopulationId source() const { return source_; }
  PopulationId target() const { return source_ + 1; }
  std::size_t source_size() const { return source_size_; }
  std::size_t target_size() const { return target_size_; }
  Step delay() const { return delay_; }
  FanOutFormat format() const {
    return std::holds_alternative<DenseFanOut>(table_) ? FanOutFormat::Dense : FanOutFormat::Sparse;
  }
  /// The table; throws snn::Error if the connection has the other format.
  const DenseFanOut& dense() const;
  const SparseFanOut& sparse() const;
  /// Synapses of source s: targets reached by one of its spikes.
  std::size_t fan_out(std::size_t source) const;
  /// Synapses stored (dense: sources * targets).
  std::size_t synapses() const;
  /// The weights as torch's [out, in] matrix (dropped synapses as 0).
  Matrix to_matrix() const;

 private:
  PopulationId source_;
  std::size_t source_size_;
  std::size_t target_size_;
  Step delay_;
  std::variant<DenseFanOut, SparseFanOut> table_;
};

/// A feed-forward stack: input population, then one population per weight
/// layer. Every constructor and add_layer validates and throws snn::Error
/// naming the layer and the value at fault.
class Network {
 public:
  /// A network with only an input population of `input_size` (> 0) channels.
  explicit Network(std::size_t input_size, std::string input_name = "input");

  /// Appends population `populations().size()` of weights.rows neurons, fed
  /// from the current last population through `weights` ([out, in], in ==
  /// the last population's size; finite values). `name` defaults to
  /// "layer<p>". Returns the new population's id.
  PopulationId add_layer(const Matrix& weights, const NeuronParams& params,
                         const ConnectionSpec& spec = {}, std::string name = {});

  /// The network of `layers` (layer i: [out_i, in_i], in_i == out_{i-1}).
  /// `params` and `specs` hold one entry per layer, or a single entry used for
  /// all (specs may also be empty: all defaults). `names` empty or one per layer.
  static Network from_matrices(const std::vector<Matrix>& layers,
                               const std::vector<NeuronParams>& params,
                               const std::vector<ConnectionSpec>& specs = {},
                               const std::vector<std::string>& names = {});

  const std::vector<Population>& populations() const { return populations_; }
  const std::vector<Connection>& connections() const { return connections_; }
  const Population& population(PopulationId p) const { return populations_.at(p); }
  /// Connection c feeds population c + 1.
  const Connection& connection(std::size_t c) const { return connections_.at(c); }
  std::size_t input_size() const { return populations_.front().size; }
  std::size_t output_size() const { return populations_.back().size; }
  /// Number of connections (= populations - 1).
  std::size_t layers() const { return connections_.size(); }

 private:
  std::vector<Population> populations_;
  std::vector<Connection> connections_;
};

/// Throws snn::Error unless theta > 0 and finite, beta in (0, 1], refractory
/// >= 0. `what` names the population in the message.
void validate_neuron_params(const NeuronParams& params, std::string_view what);

/// Fan-out tables from an [out, in] matrix (validated: finite values).
DenseFanOut make_dense_fan_out(const Matrix& weights);
SparseFanOut make_sparse_fan_out(const Matrix& weights, double cutoff);

}  // namespace snn
